//! The VRRP socket of an interface, one per family:
//! - IPv4: raw IPPROTO_VRRP (112) with our own IP header (`IP_HDRINCL`, so TTL 255 and TOS
//!   0xc0 are exactly keepalived's);
//! - IPv6: raw IPPROTO_VRRP over IPv6, which carries the VRRP message alone; the hop limit
//!   (255), traffic class (0xc0) and the link-local source are set on the socket and per send
//!   (`IPV6_PKTINFO`), and the hop limit and destination of what arrives come back as control
//!   messages. We compute and check the checksum ourselves (no `IPV6_CHECKSUM`), so a bad one
//!   is counted like any other refusal instead of vanishing in the kernel.
//!
//! Both are bound to the interface, joined to the multicast group(s), multicast loopback off
//! (we never hear ourselves).

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv6Addr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd as _,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::packet::{VRRP_PROTO, VRRP_TOS, VRRP_TTL};

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    pub ifname: String,
    ifindex: u32,
    /// The IPv6 socket: sends need a source, receives report hop limit and destination.
    v6: bool,
}

/// One received datagram: over IPv4 the whole datagram (header included); over IPv6 the VRRP
/// message, with what the header said.
pub struct Received {
    pub len: usize,
    /// IPv6 only: the source, destination and hop limit (None when a control message was
    /// missing).
    pub v6: Option<(Ipv6Addr, Option<Ipv6Addr>, Option<u8>)>,
}

const IPV6_MULTICAST_ALL: libc::c_int = 29;

pub(crate) fn setsockopt_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to an int and its length.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl VrrpSocket {
    /// Opens the socket of `ifname` for the family of `groups` (`v6` when there are none:
    /// unicast only).
    pub fn open(ifname: &str, ifindex: u32, v6: bool, groups: &[IpAddr]) -> io::Result<VrrpSocket> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(VRRP_PROTO))),
        )?;
        s.bind_device(Some(ifname.as_bytes()))?;
        if v6 {
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_multicast_if_v6(ifindex)?;
            s.set_tclass_v6(u32::from(VRRP_TOS))?;
            setsockopt_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            setsockopt_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            // Only the groups joined here, not every group the host joined.
            setsockopt_int(&s, libc::IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)?;
        } else {
            s.set_header_included_v4(true)?;
            s.set_multicast_loop_v4(false)?;
        }
        // Room for bursts (a flood should cost drops, counted, not a missed peer advert).
        let _ = s.set_recv_buffer_size(1 << 20);
        for g in groups {
            let joined = match g {
                IpAddr::V4(g) => s.join_multicast_v4_n(g, &InterfaceIndexOrAddress::Index(ifindex)),
                IpAddr::V6(g) => s.join_multicast_v6(g, ifindex),
            };
            match joined {
                Ok(()) => {}
                // Two instances sharing a group on one interface.
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
                Err(e) => return Err(e),
            }
        }
        s.set_nonblocking(true)?;
        Ok(VrrpSocket {
            // SAFETY: the socket owns a valid fd that nothing else closes or replaces while
            // the AsyncFd holds it.
            fd: unsafe { AsyncFd::register(s)? },
            ifname: ifname.to_owned(),
            ifindex,
            v6,
        })
    }

    /// Receives one datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard.try_io(|inner| {
                let fd = inner.get_ref().as_raw_fd();
                if self.v6 {
                    recv_v6(fd, buf)
                } else {
                    // SAFETY: recv into a buffer we own.
                    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(Received {
                            len: n as usize,
                            v6: None,
                        })
                    }
                }
            });
            match r {
                Ok(res) => return res,
                Err(_would_block) => continue,
            }
        }
    }

    /// Datagrams the kernel dropped because our receive buffer was full (SO_MEMINFO).
    pub fn kernel_drops(&self) -> u64 {
        const SK_MEMINFO_DROPS: usize = 8;
        let mut info = [0u32; 9];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: getsockopt into a buffer of the length we pass.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.get_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            u64::from(info[SK_MEMINFO_DROPS])
        } else {
            0
        }
    }

    /// Sends an advert to `dst` from `src`: over IPv4 a complete datagram (`src` is in its
    /// header), over IPv6 the VRRP message, from `src` (our link-local address) through this
    /// interface. Never blocks: a full socket buffer is an error (the next advert follows
    /// within one interval).
    pub fn send(&self, datagram: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        match (dst, src) {
            (IpAddr::V4(dst), _) => {
                let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
                self.fd.get_ref().send_to(datagram, &addr).map(|_| ())
            }
            (IpAddr::V6(dst), IpAddr::V6(src)) => send_v6(
                self.fd.get_ref().as_raw_fd(),
                datagram,
                src,
                dst,
                self.ifindex,
            ),
            (IpAddr::V6(_), IpAddr::V4(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv6 advert needs an IPv6 source",
            )),
        }
    }
}

/// Room for the control messages we ask for (hop limit, packet info).
const CMSG_SPACE: usize = 128;

fn recv_v6(fd: libc::c_int, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: plain data structures, zeroed; recvmsg fills them within the lengths given.
    let mut from: libc::sockaddr_in6 = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; CMSG_SPACE / 8];
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_SPACE as _;
    // SAFETY: every pointer in `msg` points at live buffers of the lengths it gives.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let src = Ipv6Addr::from(from.sin6_addr.s6_addr);
    let (mut dst, mut hops) = (None, None);
    // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled, within
    // msg_controllen; each payload is read unaligned at its documented type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 {
                let data = libc::CMSG_DATA(c);
                match (*c).cmsg_type {
                    libc::IPV6_HOPLIMIT => {
                        let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                        hops = u8::try_from(v).ok();
                    }
                    libc::IPV6_PKTINFO => {
                        let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        dst = Some(Ipv6Addr::from(p.ipi6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received {
        len: n as usize,
        v6: Some((src, dst, hops)),
    })
}

fn send_v6(
    fd: libc::c_int,
    data: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ifindex: u32,
) -> io::Result<()> {
    let to = SockAddr::from(SocketAddrV6::new(dst, 0, 0, ifindex));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = [0u64; CMSG_SPACE / 8];
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: src.octets(),
        },
        ipi6_ifindex: ifindex,
    };
    // SAFETY: `msg` points at live buffers of the lengths it gives; the one control message
    // (IPV6_PKTINFO: source and interface) is written through the CMSG_* macros inside
    // `control`, whose size covers CMSG_SPACE(in6_pktinfo).
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
        if libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
