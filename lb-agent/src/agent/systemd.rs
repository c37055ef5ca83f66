//! systemd's readiness protocol (`Type=notify`): `READY=1` once the data path holds its first
//! state, `STATUS=` lines, and `WATCHDOG=1` from the node loop itself, so a wedged loop is
//! restarted. Nothing is sent when `NOTIFY_SOCKET` is unset (not under systemd).

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// Sends `state` (newline-separated `KEY=value`) to systemd, if it listens.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let r = UnixDatagram::unbound().and_then(|s| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket.
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            s.send_to_addr(state.as_bytes(), &addr)
        } else {
            s.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = r {
        debug!(error = %e, "systemd notification not sent");
    }
}

/// Whether systemd expects watchdog keep-alives (`WatchdogSec=` is set).
pub fn watchdog_enabled() -> bool {
    std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|us| us > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_listening_socket() {
        let dir = std::env::temp_dir().join(format!("lb-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let listener = UnixDatagram::bind(&dir).expect("bind");
        // No other test of this binary reads NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &dir);
        notify("READY=1\nSTATUS=test");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=test");
        let _ = std::fs::remove_file(&dir);
    }
}
