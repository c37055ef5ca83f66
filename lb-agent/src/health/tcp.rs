//! `TCP_CHECK`, and the connect helper shared with the HTTP check.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use super::probe::{fmt_duration, Outcome, Target, TcpCheck, NET_DOWN, NET_UNREACHABLE};

/// Connect the way every check does: optional source address, bounded handshake time.
/// The error is already the human-readable reason for the [`Outcome`].
pub(super) async fn connect(
    addr: SocketAddr,
    bind_to: Option<IpAddr>,
    connect_timeout: Duration,
) -> Result<TcpStream, String> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(src) = bind_to {
        // Port 0: the kernel picks the source port. Bind errors (address not local) are
        // config problems but must still read clearly in the real's status.
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind to {src}: {e}"))?;
    }
    match tokio::time::timeout(connect_timeout, socket.connect(addr)).await {
        Err(_) => Err(format!("connect timeout {}", fmt_duration(connect_timeout))),
        Ok(Err(e)) => Err(connect_error(&e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// Short, stable reasons for the common failures (operators grep for them); the OS text for
/// the rest.
fn connect_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::HostUnreachable => "host unreachable".into(),
        io::ErrorKind::NetworkUnreachable => NET_UNREACHABLE.into(),
        io::ErrorKind::NetworkDown => NET_DOWN.into(),
        io::ErrorKind::TimedOut => "connect timed out (kernel)".into(),
        _ => format!("connect: {e}"),
    }
}

/// Connect, then close. The connection is closed normally (FIN), as keepalived does, so the
/// real's service does not log resets for every check.
pub async fn check(cfg: &TcpCheck, target: &Target) -> Outcome {
    let start = Instant::now();
    let addr = target.socket_addr(cfg.connect_port);
    match connect(addr, cfg.bind_to, cfg.connect_timeout).await {
        Ok(stream) => {
            let latency = start.elapsed();
            drop(stream);
            Outcome::up("connected", latency)
        }
        Err(reason) => Outcome::down(reason, start.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn target(port: u16) -> Target {
        Target::new(IpAddr::from([127, 0, 0, 1]), port)
    }

    fn cfg() -> TcpCheck {
        TcpCheck {
            connect_timeout: Duration::from_secs(2),
            ..TcpCheck::default()
        }
    }

    #[tokio::test]
    async fn up_against_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = check(&cfg(), &target(port)).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.reason, "connected");
        // The check really reached this listener.
        let (_conn, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[tokio::test]
    async fn connect_port_and_bind_to_are_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Target port 1 is closed; the check must go to connect_port instead, from 127.0.0.2
        // (all of 127/8 is local on Linux, so this stays on loopback).
        let c = TcpCheck {
            connect_port: Some(port),
            bind_to: Some(IpAddr::from([127, 0, 0, 2])),
            ..cfg()
        };
        let out = check(&c, &target(1)).await;
        assert!(out.ok, "{out:?}");
        let (_conn, peer) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 2]));
    }

    #[tokio::test]
    async fn bind_to_non_local_address_fails_with_reason() {
        // With ip_nonlocal_bind the bind would succeed and the reply to 192.0.2.1 would be
        // routed off this machine: never risk that.
        let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind");
        if nonlocal.map_or(true, |v| v.trim() != "0") {
            super::super::testutil::skip("net.ipv4.ip_nonlocal_bind is not 0 on this host");
            return;
        }
        let c = TcpCheck {
            // TEST-NET-1, not configured here: bind fails locally, no packet is sent.
            bind_to: Some(IpAddr::from([192, 0, 2, 1])),
            ..cfg()
        };
        let out = check(&c, &target(1)).await;
        assert!(!out.ok);
        assert!(
            out.reason.starts_with("bind to 192.0.2.1: "),
            "{}",
            out.reason
        );
    }

    #[tokio::test]
    async fn refused_on_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let out = check(&cfg(), &target(port)).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "connection refused");
    }

    /// A port whose accept queue is full drops SYNs, which is a black hole that exists only on
    /// loopback (no packet to any other host, no firewall rule needed).
    #[tokio::test]
    async fn timeout_on_blackholed_port() {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = sock.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Fill the accept queue (never accepting) until a connect attempt hangs.
        let mut fillers = Vec::new();
        let mut blackholed = false;
        for _ in 0..64 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => fillers.push(s),
                Ok(Err(e)) => panic!("filler connect failed: {e}"),
                Err(_) => {
                    blackholed = true;
                    break;
                }
            }
        }
        assert!(blackholed, "accept queue never filled");
        let c = TcpCheck {
            connect_timeout: Duration::from_millis(300),
            ..cfg()
        };
        let out = check(&c, &target(addr.port())).await;
        assert!(!out.ok);
        assert_eq!(out.reason, "connect timeout 300ms");
        assert!(
            out.latency >= Duration::from_millis(300),
            "{:?}",
            out.latency
        );
        assert!(out.latency < Duration::from_secs(2), "{:?}", out.latency);
        drop(listener);
    }
}
