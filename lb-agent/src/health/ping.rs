//! `PING_CHECK`: an ICMP (IPv4) or ICMPv6 echo request to the real, on a raw socket (the agent
//! has CAP_NET_RAW; keepalived instead widens `ping_group_range` for a ping socket). Up when the
//! echo reply with our identifier and sequence comes back from the real within the timeout.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::{io::unix::AsyncFd, time::Instant};

use super::probe::{fmt_duration, Outcome, Target};

/// `PING_CHECK` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingCheck {
    pub connect_timeout: Duration,
}

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const ECHO6_REQUEST: u8 = 128;
const ECHO6_REPLY: u8 = 129;

static SEQ: AtomicU16 = AtomicU16::new(1);

/// An echo request (`v6`: ICMPv6, whose checksum the kernel fills in).
fn request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![if v6 { ECHO6_REQUEST } else { ECHO_REQUEST }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(b"lb-agent ping check");
    if !v6 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (an IPv4 datagram, or an ICMPv6 message) is the reply to (id, seq).
fn is_reply(v6: bool, packet: &[u8], id: u16, seq: u16) -> bool {
    let icmp = if v6 {
        packet
    } else {
        let ihl = usize::from(packet.first().copied().unwrap_or(0) & 0x0f) * 4;
        packet.get(ihl..).unwrap_or(&[])
    };
    let want = if v6 { ECHO6_REPLY } else { ECHO_REPLY };
    icmp.len() >= 8
        && icmp[0] == want
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

pub async fn check(c: &PingCheck, target: &Target) -> Outcome {
    let start = Instant::now();
    match ping(c, target.addr).await {
        Ok(()) => Outcome::up("echo reply", start.elapsed()),
        Err(reason) => Outcome::down(reason, start.elapsed()),
    }
}

async fn ping(c: &PingCheck, addr: IpAddr) -> Result<(), String> {
    let v6 = addr.is_ipv6();
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let sock = Socket::new(domain, Type::RAW, Some(proto)).map_err(|e| format!("socket: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("socket: {e}"))?;
    let id = (std::process::id() as u16) ^ 0x6c62;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let to = SockAddr::from(SocketAddr::new(addr, 0));
    sock.send_to(&request(v6, id, seq), &to)
        .map_err(|e| super::udp::send_error(&e))?;
    // SAFETY: the AsyncFd owns the socket; nothing else closes or replaces its fd.
    let afd = unsafe { AsyncFd::register(sock) }.map_err(|e| format!("socket: {e}"))?;
    let deadline = Instant::now() + c.connect_timeout;
    let mut buf = [0u8; 1500];
    loop {
        let mut guard = match tokio::time::timeout_at(deadline, afd.readable()).await {
            Err(_) => {
                return Err(format!(
                    "no echo reply in {}",
                    fmt_duration(c.connect_timeout)
                ))
            }
            Ok(g) => g.map_err(|e| format!("wait: {e}"))?,
        };
        let r = guard.try_io(|s| {
            // SAFETY: recvfrom into our buffer and socket2's address storage, within the
            // lengths given; socket2 reads the address back by its family.
            let (n, from) = unsafe {
                SockAddr::try_init(|storage, len| {
                    let n = libc::recvfrom(
                        s.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        storage.cast(),
                        len,
                    );
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                })?
            };
            Ok((n, from.as_socket().map(|a| a.ip())))
        });
        match r {
            Err(_would_block) => continue,
            Ok(Err(e)) => return Err(format!("recv: {e}")),
            Ok(Ok((n, src))) => {
                if src == Some(addr) && is_reply(v6, &buf[..n], id, seq) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies() {
        let r = request(false, 7, 9);
        assert_eq!(checksum(&r), 0, "the IPv4 checksum verifies");
        let mut reply = vec![0x45; 20];
        reply.extend_from_slice(&r);
        reply[20] = ECHO_REPLY;
        assert!(is_reply(false, &reply, 7, 9));
        assert!(!is_reply(false, &reply, 7, 10));
        let mut v6 = request(true, 7, 9);
        v6[0] = ECHO6_REPLY;
        assert!(is_reply(true, &v6, 7, 9));
        assert!(!is_reply(true, &v6[..6], 7, 9));
    }

    #[tokio::test]
    async fn loopback_answers() {
        // Raw sockets: root only (CI runs as root).
        if unsafe { libc::geteuid() } != 0 {
            return crate::health::testutil::skip("ping needs a raw socket (root)");
        }
        let c = PingCheck {
            connect_timeout: Duration::from_secs(2),
        };
        for addr in ["127.0.0.1", "::1"] {
            let out = check(&c, &Target::new(addr.parse().expect("ip"), 0)).await;
            assert!(out.ok, "{addr}: {out:?}");
        }
    }
}
