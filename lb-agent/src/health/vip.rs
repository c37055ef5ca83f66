//! `probe_vip`: check the service on the **VIP through the real**. In direct routing the real
//! must hold the VIP on its loopback; one that lost it still answers on its own address (so an
//! ordinary check passes) but silently drops every forwarded packet. This probe sends a TCP SYN
//! to the VIP inside a frame addressed to the real's MAC, as the data path would, on an
//! AF_PACKET socket, and waits for the SYN-ACK (up) or a RST (down); it then resets the
//! half-open connection. A kernel filter on the socket lets only the answer through. Both
//! families: the real's MAC comes from the ARP table (IPv4) or the neighbour table (IPv6).

use std::{
    io,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use tokio::{io::unix::AsyncFd, time::Instant};

use super::probe::{fmt_duration, Outcome, Target, TcpCheck};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Why a probe through the VIP did not find it answering.
#[derive(Debug, thiserror::Error)]
pub enum VipFailure {
    #[error("the VIP {vip} and the real {real} are of different families")]
    Family { vip: IpAddr, real: IpAddr },
    #[error("MAC of {0} unknown (not in the neighbour table)")]
    NoNeighbour(IpAddr),
    #[error("/proc/net/arp: {0}")]
    NeighbourTable(io::Error),
    #[error("interface {0} not found")]
    NoInterface(String),
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
    #[error("no source address of the VIP's family towards the real")]
    NoSource,
    #[error("neighbour table: {0}")]
    Netlink(String),
    #[error(
        "no answer on VIP {vip}:{port} through {real} in {waited} (VIP missing on its loopback?)"
    )]
    NoAnswer {
        vip: IpAddr,
        port: u16,
        real: IpAddr,
        waited: String,
    },
    #[error("VIP {vip}:{port} refused through {real}")]
    Refused {
        vip: IpAddr,
        port: u16,
        real: IpAddr,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> VipFailure {
    move |err| VipFailure::Io { what, err }
}

pub async fn check(c: &TcpCheck, target: &Target, vip: IpAddr) -> Outcome {
    let start = Instant::now();
    match probe(c, target, vip).await {
        Ok(reason) => Outcome::up(reason, start.elapsed()),
        Err(why) => Outcome::down(why.to_string(), start.elapsed()),
    }
}

/// The real's MAC and interface, from the kernel's neighbour table of this namespace.
async fn neighbour(real: IpAddr) -> Result<([u8; 6], String), VipFailure> {
    if real.is_ipv4() {
        return arp_entry(real);
    }
    let nl = crate::netlink::Netlink::connect().map_err(|e| VipFailure::Netlink(e.to_string()))?;
    let table = nl
        .neighbours()
        .await
        .map_err(|e| VipFailure::Netlink(e.to_string()))?;
    let n = table.get(&real).ok_or(VipFailure::NoNeighbour(real))?;
    let mac = n.mac.ok_or(VipFailure::NoNeighbour(real))?;
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes into `name`.
    let p = unsafe { libc::if_indextoname(n.ifindex, name.as_mut_ptr()) };
    if p.is_null() {
        return Err(VipFailure::NoInterface(n.ifindex.to_string()));
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    let dev = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    Ok((mac, dev.to_string_lossy().into_owned()))
}

/// An IPv4 real's MAC and interface, from /proc/net/arp.
fn arp_entry(real: IpAddr) -> Result<([u8; 6], String), VipFailure> {
    let table = std::fs::read_to_string("/proc/net/arp").map_err(VipFailure::NeighbourTable)?;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0] != real.to_string() {
            continue;
        }
        // Flags 0x2: complete.
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & 0x2 == 0 {
            continue;
        }
        let mut mac = [0u8; 6];
        let parts: Vec<u8> = f[3]
            .split(':')
            .filter_map(|p| u8::from_str_radix(p, 16).ok())
            .collect();
        if parts.len() != 6 {
            continue;
        }
        mac.copy_from_slice(&parts);
        return Ok((mac, f[5].to_owned()));
    }
    Err(VipFailure::NoNeighbour(real))
}

fn if_mac_index(ifname: &str) -> Result<([u8; 6], u32), VipFailure> {
    let missing = || VipFailure::NoInterface(ifname.to_owned());
    let c = std::ffi::CString::new(ifname).map_err(|_| missing())?;
    // SAFETY: if_nametoindex reads a valid C string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(missing());
    }
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(io_err("socket"))?;
    // SAFETY: a zeroed ifreq with the name copied in; SIOCGIFHWADDR fills ifr_hwaddr.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(io_err("SIOCGIFHWADDR")(io::Error::last_os_error()));
    }
    let mut mac = [0u8; 6];
    // SAFETY: the union member the ioctl filled.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    Ok((mac, index))
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        for c in p.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 or IPv6 + TCP frame (no payload). `src` and `dst` are of one family.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Vec<u8> {
    let syn = flags & SYN != 0;
    let opts: &[u8] = if syn { &[2, 4, 0x05, 0xb4] } else { &[] }; // MSS 1460
    let tcp_len = 20 + opts.len();
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(((tcp_len / 4) as u8) << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&(if syn { 64240u16 } else { 0 }).to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(opts);
    ip_frame([dst_mac, src_mac], src, dst, 6, tcp, 16, seq as u16)
}

/// An Ethernet + IPv4 or IPv6 + UDP frame carrying `payload`.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ip_frame([dst_mac, src_mac], src, dst, 17, udp, 6, sport)
}

/// The frame around a transport segment `l4` of protocol `proto`, whose checksum (at `csum_at`,
/// zero on entry) is filled in with the pseudo-header of either family.
fn ip_frame(
    [dst_mac, src_mac]: [[u8; 6]; 2],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    mut l4: Vec<u8>,
    csum_at: usize,
    ident: u16,
) -> Vec<u8> {
    let (s, d) = (octets(src), octets(dst));
    // The pseudo-header (the same sum for both families' layouts).
    let pseudo = [
        &s[..],
        &d[..],
        &[0, proto],
        &(l4.len() as u16).to_be_bytes()[..],
    ]
    .concat();
    let c = match checksum(&[&pseudo, &l4]) {
        // UDP sends a zero sum as all ones (zero means "none", not allowed over IPv6).
        0 if proto == 17 => 0xffff,
        c => c,
    };
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());

    let (ip, ethertype) = if src.is_ipv4() {
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&ident.to_be_bytes());
        ip.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&s);
        ip.extend_from_slice(&d);
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        (ip, ETH_P_IP)
    } else {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[proto, 64]);
        ip.extend_from_slice(&s);
        ip.extend_from_slice(&d);
        (ip, ETH_P_IPV6)
    };

    let mut f = Vec::with_capacity(14 + ip.len() + l4.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Classic BPF: accept only `proto` (TCP or UDP) from vip:port to our source port.
fn filter(vip: IpAddr, proto: u8, port: u16, sport: u16) -> Vec<libc::sock_filter> {
    match vip {
        IpAddr::V4(v4) => filter4(u32::from(v4), proto, port, sport),
        IpAddr::V6(v6) => filter6(v6.octets(), proto, port, sport),
    }
}

/// IPv6 (no extension headers: answers carry none) from vip:port.
fn filter6(vip: [u8; 16], proto: u8, port: u16, sport: u16) -> Vec<libc::sock_filter> {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const LDW_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let w = |i: usize| u32::from_be_bytes([vip[i], vip[i + 1], vip[i + 2], vip[i + 3]]);
    // Each check jumps to the reject (the second to last instruction) when it fails.
    let mut p = vec![
        ins(LDH_ABS, 0, 0, 12),
        ins(JEQ_K, 0, 14, u32::from(ETH_P_IPV6)),
        ins(LDB_ABS, 0, 0, 20),
        ins(JEQ_K, 0, 12, u32::from(proto)),
    ];
    for (k, off) in [22u32, 26, 30, 34].iter().enumerate() {
        let left = 10 - 2 * k as u8;
        p.push(ins(LDW_ABS, 0, 0, *off));
        p.push(ins(JEQ_K, 0, left, w(k * 4)));
    }
    p.extend([
        ins(LDH_ABS, 0, 0, 54),
        ins(JEQ_K, 0, 2, u32::from(port)),
        ins(LDH_ABS, 0, 0, 56),
        ins(JEQ_K, 1, 0, u32::from(sport)),
        ins(RET_K, 0, 0, 0),
        ins(RET_K, 0, 0, 0xffff),
    ]);
    p
}

/// IPv4 from vip:port to our source port.
fn filter4(vip: u32, proto: u8, port: u16, sport: u16) -> Vec<libc::sock_filter> {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const LDW_ABS: u16 = 0x20;
    const LDXB_MSH: u16 = 0xb1;
    const LDH_IND: u16 = 0x48;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    vec![
        ins(LDH_ABS, 0, 0, 12),
        ins(JEQ_K, 0, 9, u32::from(ETH_P_IP)),
        ins(LDB_ABS, 0, 0, 23),
        ins(JEQ_K, 0, 7, u32::from(proto)),
        ins(LDW_ABS, 0, 0, 26),
        ins(JEQ_K, 0, 5, vip),
        ins(LDXB_MSH, 0, 0, 14),
        ins(LDH_IND, 0, 0, 14),
        ins(JEQ_K, 0, 2, u32::from(port)),
        ins(LDH_IND, 0, 0, 16),
        ins(JEQ_K, 1, 0, u32::from(sport)),
        ins(RET_K, 0, 0, 0),
        ins(RET_K, 0, 0, 0xffff),
    ]
}

fn packet_socket(ifindex: u32, ethertype: u16, prog: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    // Protocol 0: nothing is queued until the filter is in place and we bind.
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: setsockopt with a valid sock_fprog pointing at `prog`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a valid sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn send(fd: &OwnedFd, ifindex: u32, dst_mac: [u8; 6], frame: &[u8]) -> io::Result<()> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    crate::packet_socket::send_frame(fd.as_raw_fd(), ifindex, ethertype, dst_mac, frame)
}

/// The way to a real at layer 2: its MAC, our interface and MAC, and the source address the
/// kernel would use towards it.
struct Way {
    real_mac: [u8; 6],
    our_mac: [u8; 6],
    ifindex: u32,
    src: IpAddr,
}

/// Finds the way to `real` (asking the kernel to resolve it if needed, within `timeout`).
async fn way(
    real: IpAddr,
    vip: IpAddr,
    port: u16,
    bind_to: Option<IpAddr>,
    timeout: std::time::Duration,
) -> Result<Way, VipFailure> {
    if real.is_ipv4() != vip.is_ipv4() {
        return Err(VipFailure::Family { vip, real });
    }
    let any: SocketAddr = if real.is_ipv4() {
        ([0u8; 4], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let (real_mac, dev) = match neighbour(real).await {
        Ok(n) => n,
        Err(_) => {
            // Unknown yet: a datagram to the discard port makes the kernel resolve it.
            if let Ok(s) = UdpSocket::bind(any) {
                let _ = s.send_to(&[], SocketAddr::from((real, 9)));
            }
            let until = Instant::now() + timeout;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                match neighbour(real).await {
                    Ok(n) => break n,
                    Err(e) if Instant::now() >= until => return Err(e),
                    Err(_) => {}
                }
            }
        }
    };
    let (our_mac, ifindex) = if_mac_index(&dev)?;
    let src = {
        let s = UdpSocket::bind(any).map_err(io_err("socket"))?;
        s.connect(SocketAddr::from((real, port)))
            .map_err(io_err("route to the real"))?;
        s.local_addr().map_err(io_err("source address"))?.ip()
    };
    let src = match bind_to {
        Some(b) if b.is_ipv4() == real.is_ipv4() => b,
        _ => src,
    };
    if src.is_ipv4() != real.is_ipv4() {
        return Err(VipFailure::NoSource);
    }
    Ok(Way {
        real_mac,
        our_mac,
        ifindex,
        src,
    })
}

/// A port and sequence number of our own for one probe.
fn nonce() -> (u16, u32) {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
        .unwrap_or(0x5eed);
    (32768 + (n % 28000) as u16, n.rotate_left(13))
}

/// A packet socket on the real's interface that lets through only the answers `prog` matches.
fn answers(w: &Way, prog: &[libc::sock_filter]) -> Result<AsyncFd<OwnedFd>, VipFailure> {
    let ethertype = if w.src.is_ipv4() {
        ETH_P_IP
    } else {
        ETH_P_IPV6
    };
    let fd = packet_socket(w.ifindex, ethertype, prog).map_err(io_err("packet socket"))?;
    // SAFETY: the AsyncFd owns the fd; nothing else closes or replaces it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| io_err("registering the socket")(e.into()))
}

/// Waits (until `deadline`) for the answer `on_frame` recognises in what `afd` lets through:
/// `Ok(None)` when none came.
async fn wait_for<T>(
    afd: &AsyncFd<OwnedFd>,
    deadline: Instant,
    mut on_frame: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, VipFailure> {
    let mut buf = vec![0u8; 4096];
    loop {
        let ready = match tokio::time::timeout_at(deadline, afd.readable()).await {
            Err(_) => return Ok(None),
            Ok(r) => r,
        };
        let mut guard = ready.map_err(io_err("wait"))?;
        // SAFETY: recv into our buffer.
        let n = unsafe {
            libc::recv(
                afd.get_ref().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(io_err("recv")(e));
        }
        if let Some(t) = on_frame(&buf[..n as usize]) {
            return Ok(Some(t));
        }
    }
}

/// The transport header of a received frame (IPv6: no extension headers, as answers have).
fn l4(frame: &[u8], v4: bool) -> &[u8] {
    let ihl = if v4 {
        usize::from(frame.get(14).copied().unwrap_or(0) & 0x0f) * 4
    } else {
        40
    };
    frame.get(14 + ihl..).unwrap_or(&[])
}

/// The up reason, or why the VIP did not answer (down either way).
async fn probe(c: &TcpCheck, target: &Target, vip: IpAddr) -> Result<String, VipFailure> {
    let real = target.addr;
    let port = c.connect_port.unwrap_or(target.port);
    let w = way(real, vip, port, c.bind_to, c.connect_timeout).await?;
    let (sport, seq) = nonce();
    let afd = answers(&w, &filter(vip, 6, port, sport))?;
    let frame = |seq, ack, flags| {
        tcp_frame(
            w.real_mac, w.our_mac, w.src, vip, sport, port, seq, ack, flags,
        )
    };
    send(afd.get_ref(), w.ifindex, w.real_mac, &frame(seq, 0, SYN)).map_err(io_err("send"))?;
    let answer = wait_for(&afd, Instant::now() + c.connect_timeout, |f| {
        let tcp = l4(f, vip.is_ipv4()).get(..20)?;
        let flags = tcp[13];
        let their_seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let their_ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
        if flags & (SYN | ACK) == SYN | ACK && their_ack == seq.wrapping_add(1) {
            Some(Ok((their_seq, their_ack)))
        } else if flags & RST != 0 {
            Some(Err(()))
        } else {
            None
        }
    })
    .await?;
    match answer {
        Some(Ok((their_seq, their_ack))) => {
            // Close the half-open connection on the real.
            let rst = frame(their_ack, their_seq.wrapping_add(1), RST | ACK);
            let _ = send(afd.get_ref(), w.ifindex, w.real_mac, &rst);
            Ok(format!("VIP {vip}:{port} answers through {real}"))
        }
        Some(Err(())) => Err(VipFailure::Refused { vip, port, real }),
        None => Err(VipFailure::NoAnswer {
            vip,
            port,
            real,
            waited: fmt_duration(c.connect_timeout),
        }),
    }
}

/// A UDP exchange with the VIP through the real: `payload` to vip:port in a frame addressed to
/// the real's MAC, and the reply's payload to `judge` (`Some`: the verdict; `None`: not the
/// answer, keep waiting). What UDP and DNS checks use for `probe_vip`.
pub async fn udp_exchange(
    target: &Target,
    vip: IpAddr,
    port: u16,
    payload: &[u8],
    timeout: std::time::Duration,
    judge: impl Fn(&[u8]) -> Option<Result<String, String>>,
) -> Result<String, String> {
    let real = target.addr;
    let w = way(real, vip, port, None, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let (sport, _) = nonce();
    let afd = answers(&w, &filter(vip, 17, port, sport)).map_err(|e| e.to_string())?;
    let frame = udp_frame(w.real_mac, w.our_mac, w.src, vip, sport, port, payload);
    send(afd.get_ref(), w.ifindex, w.real_mac, &frame).map_err(|e| format!("send: {e}"))?;
    let verdict = wait_for(&afd, Instant::now() + timeout, |f| {
        let udp = l4(f, vip.is_ipv4());
        let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
        judge(udp.get(8..len.max(8))?)
    })
    .await
    .map_err(|e| e.to_string())?;
    match verdict {
        Some(Ok(reason)) => Ok(format!("through {real}: {reason}")),
        Some(Err(reason)) => Err(format!("through {real}: {reason}")),
        None => Err(VipFailure::NoAnswer {
            vip,
            port,
            real,
            waited: fmt_duration(timeout),
        }
        .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_frame_checksums_verify() {
        let f = tcp_frame(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            std::net::Ipv4Addr::new(10, 0, 0, 100).into(),
            40000,
            80,
            7,
            0,
            SYN,
        );
        assert_eq!(f.len(), 14 + 20 + 24);
        assert_eq!(checksum(&[&f[14..34]]), 0, "IP header checksum");
        let pseudo = [&f[26..34], &[0, 6], &24u16.to_be_bytes()[..]].concat();
        assert_eq!(checksum(&[&pseudo, &f[34..]]), 0, "TCP checksum");
        assert_eq!(f[47], SYN);
    }

    #[test]
    fn filter_jumps_stay_inside_the_program() {
        for p in [
            filter([10, 0, 0, 100].into(), 6, 80, 40000),
            filter([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100].into(), 17, 80, 40000),
        ] {
            for (i, ins) in p.iter().enumerate() {
                if ins.code == 0x15 {
                    assert!(
                        i + 1 + usize::from(ins.jt) < p.len()
                            && i + 1 + usize::from(ins.jf) < p.len()
                    );
                    let t = &p[i + 1 + usize::from(ins.jf)];
                    // Every "not equal" lands on the reject.
                    assert!(t.code == 0x06 && t.k == 0 || ins.jf == 0, "instruction {i}");
                }
            }
        }
    }

    /// Runs a classic BPF program of the opcodes `filter` uses over `pkt`: its return value.
    fn run_filter(p: &[libc::sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |off: usize, n: usize| -> Option<u32> {
            pkt.get(off..off + n)
                .map(|b| b.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)))
        };
        while let Some(i) = p.get(pc) {
            pc += 1;
            let k = i.k as usize;
            // A load past the packet ends the program with 0 (drop), as in the kernel.
            let loaded = match i.code {
                0x28 => load(k, 2),
                0x30 => load(k, 1),
                0x20 => load(k, 4),
                0x48 => load(x as usize + k, 2),
                0xb1 => {
                    x = (load(k, 1).unwrap_or(0) & 0x0f) * 4;
                    continue;
                }
                0x15 => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                    continue;
                }
                0x06 => return i.k,
                other => panic!("opcode {other:#x}"),
            };
            match loaded {
                Some(v) => a = v,
                None => return 0,
            }
        }
        panic!("fell off the program")
    }

    #[test]
    fn filter_takes_the_answer_and_nothing_else() {
        let mac = [2, 0, 0, 0, 0, 1];
        for (vip, client) in [
            (IpAddr::from([10, 0, 0, 100]), IpAddr::from([10, 0, 0, 1])),
            (
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100]),
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            ),
        ] {
            let p = filter(vip, 6, 80, 40000);
            let answer = |from: IpAddr, sport: u16, dport: u16| {
                tcp_frame(mac, mac, from, client, sport, dport, 1, 8, SYN | ACK)
            };
            assert_eq!(run_filter(&p, &answer(vip, 80, 40000)), 0xffff, "{vip}");
            assert_eq!(run_filter(&p, &answer(vip, 81, 40000)), 0, "other port");
            assert_eq!(
                run_filter(&p, &answer(vip, 80, 40001)),
                0,
                "other client port"
            );
            assert_eq!(
                run_filter(&p, &answer(client, 80, 40000)),
                0,
                "not from the VIP"
            );
        }
    }
}
