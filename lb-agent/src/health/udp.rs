//! `UDP_CHECK`: one datagram to the real on a connected socket, so ICMP errors come back as
//! errors. With `require_reply`, up when a reply arrives in time (and matches `reply_regex`);
//! without, up unless an ICMP error arrives within the timeout (keepalived's rule: silence is
//! success). A port unreachable is down at once either way.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{net::UdpSocket, time::Instant};

use super::probe::{fmt_duration, Outcome, Target, NET_DOWN, NET_UNREACHABLE};

/// `UDP_CHECK` settings.
#[derive(Debug, Clone)]
pub struct UdpCheck {
    pub connect_port: Option<u16>,
    pub payload: Vec<u8>,
    pub require_reply: bool,
    pub reply_regex: Option<regex::bytes::Regex>,
    pub bind_to: Option<IpAddr>,
    pub connect_timeout: Duration,
    /// Send to the VIP through the real (see `super::vip`); needs `require_reply`.
    pub probe_vip: Option<IpAddr>,
}

/// keepalived's free-form hex: tokens separated by spaces, each read two digits at a time
/// (`Ab12f 3` is `ab 12 0f 03`).
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let digits: Vec<u8> = tok
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()?;
        for pair in digits.chunks(2) {
            out.push(match pair {
                [hi, lo] => hi << 4 | lo,
                [lo] => *lo,
                _ => return None,
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A UDP socket connected to `addr` (from `bind_to` if given).
pub(super) async fn connected(
    addr: SocketAddr,
    bind_to: Option<IpAddr>,
) -> Result<UdpSocket, String> {
    let local = match (bind_to, addr) {
        (Some(b), _) => SocketAddr::new(b, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::from(([0u8; 4], 0)),
        (None, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind to {local}: {e}"))?;
    sock.connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(sock)
}

/// The reason for a failed send.
pub(super) fn send_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) => NET_UNREACHABLE.into(),
        Some(libc::ENETDOWN) => NET_DOWN.into(),
        _ => format!("send: {e}"),
    }
}

/// The reason for a failed receive: the ICMP error the kernel reported on the socket.
pub(super) fn recv_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "port unreachable".into(),
        Some(libc::EHOSTUNREACH) => "host unreachable".into(),
        Some(libc::ENETUNREACH) => NET_UNREACHABLE.into(),
        Some(libc::ENETDOWN) => NET_DOWN.into(),
        _ => format!("recv: {e}"),
    }
}

/// Judges a reply: up, or why not.
fn judge(c: &UdpCheck, reply: &[u8]) -> Result<String, String> {
    match &c.reply_regex {
        Some(re) if !re.is_match(reply) => Err(format!(
            "reply of {} bytes did not match /{}/",
            reply.len(),
            re.as_str()
        )),
        _ => Ok(format!("reply of {} bytes", reply.len())),
    }
}

pub async fn check(c: &UdpCheck, target: &Target) -> Outcome {
    let start = Instant::now();
    let addr = target.socket_addr(c.connect_port);
    let result = match c.probe_vip {
        Some(vip) => {
            super::vip::udp_exchange(
                target,
                vip,
                addr.port(),
                &c.payload,
                c.connect_timeout,
                |r| Some(judge(c, r)),
            )
            .await
        }
        None => exchange(c, addr).await,
    };
    match result {
        Ok(reason) => Outcome::up(reason, start.elapsed()),
        Err(reason) => Outcome::down(reason, start.elapsed()),
    }
}

async fn exchange(c: &UdpCheck, addr: SocketAddr) -> Result<String, String> {
    let sock = connected(addr, c.bind_to).await?;
    sock.send(&c.payload).await.map_err(|e| send_error(&e))?;
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(c.connect_timeout, sock.recv(&mut buf)).await {
        Err(_) if c.require_reply => {
            Err(format!("no reply in {}", fmt_duration(c.connect_timeout)))
        }
        Err(_) => Ok(format!(
            "no ICMP error in {}",
            fmt_duration(c.connect_timeout)
        )),
        Ok(Err(e)) => Err(recv_error(&e)),
        Ok(Ok(n)) => judge(c, &buf[..n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(require_reply: bool) -> UdpCheck {
        UdpCheck {
            connect_port: None,
            payload: b"ping".to_vec(),
            require_reply,
            reply_regex: None,
            bind_to: None,
            connect_timeout: Duration::from_millis(300),
            probe_vip: None,
        }
    }

    #[test]
    fn keepalived_hex() {
        assert_eq!(
            parse_hex("Ab12f 3 456 546443123"),
            Some(vec![
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ])
        );
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex("  "), None);
    }

    #[tokio::test]
    async fn reply_silence_and_refusal() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let echo_port = echo.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let mut r = b"pong ".to_vec();
                r.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&r, from).await;
            }
        });
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let silent_port = silent.local_addr().expect("addr").port();
        let lo = |port| Target::new("127.0.0.1".parse().expect("ip"), port);

        assert!(check(&cfg(true), &lo(echo_port)).await.ok);
        let matching = UdpCheck {
            reply_regex: Some(regex::bytes::Regex::new("^pong ping$").expect("re")),
            ..cfg(true)
        };
        assert!(check(&matching, &lo(echo_port)).await.ok);
        let other = UdpCheck {
            reply_regex: Some(regex::bytes::Regex::new("^nope").expect("re")),
            ..cfg(true)
        };
        assert!(!check(&other, &lo(echo_port)).await.ok);

        // Silence: up without require_reply, down with it.
        assert!(check(&cfg(false), &lo(silent_port)).await.ok);
        let out = check(&cfg(true), &lo(silent_port)).await;
        assert!(!out.ok && out.reason.starts_with("no reply"), "{out:?}");
        drop(silent);

        // Nobody listens: port unreachable, at once (not after the timeout), either way.
        for require_reply in [false, true] {
            let c = UdpCheck {
                connect_timeout: Duration::from_secs(5),
                ..cfg(require_reply)
            };
            let out = check(&c, &lo(silent_port)).await;
            assert!(!out.ok && out.reason == "port unreachable", "{out:?}");
            assert!(out.latency < c.connect_timeout, "{out:?}");
        }
    }
}
