//! Check configuration types and the `run` dispatch.
//!
//! The types here are plain data that the agent builds from its config file; the network and
//! process work lives in the sibling modules (`tcp`, `http`, `tls`, `script`). [`run`] never
//! panics and never returns an error: whatever goes wrong (bad config, refused connection,
//! garbage from the server, a hung script) becomes a failed [`Outcome`] with a human-readable
//! reason, because for a health checker "I could not check" and "the real is down" must both
//! keep traffic away from the real.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where a check is sent: the real server's address and service port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub port: u16,
}

impl Target {
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Self { addr, port }
    }

    /// The socket address to connect to, honouring a per-check `connect_port`.
    pub fn socket_addr(&self, connect_port: Option<u16>) -> SocketAddr {
        SocketAddr::new(self.addr, connect_port.unwrap_or(self.port))
    }
}

/// Result of one check (or of one round of checks for a real).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// Short human-readable cause, e.g. `"HTTP 503"`, `"connect timeout 1s"`,
    /// `"connection refused"`, `"body did not match /ok/"`, `"exit 1"`.
    pub reason: String,
    /// Wall time the check took (not counting time queued for a concurrency permit).
    pub latency: Duration,
    /// Dynamic weight reported by a `MISC_CHECK` with `dynamic: true` (`None` = keep the
    /// configured/previous weight).
    pub weight: Option<u32>,
}

/// Reasons that mean our own node cannot reach the network at all (no route: typically the
/// interface toward the reals just went down). Such a result says nothing about the real, so
/// it is not counted: the real keeps its state.
pub const LOCAL_FAILURES: [&str; 2] = [NET_UNREACHABLE, NET_DOWN];
pub const NET_UNREACHABLE: &str = "network unreachable";
pub const NET_DOWN: &str = "network down";

impl Outcome {
    pub fn is_local_failure(&self) -> bool {
        !self.ok && LOCAL_FAILURES.contains(&self.reason.as_str())
    }

    pub fn up(reason: impl Into<String>, latency: Duration) -> Self {
        Self {
            ok: true,
            reason: reason.into(),
            latency,
            weight: None,
        }
    }

    pub fn down(reason: impl Into<String>, latency: Duration) -> Self {
        Self {
            ok: false,
            reason: reason.into(),
            latency,
            weight: None,
        }
    }
}

/// One checker of a real (keepalived's `TCP_CHECK`, `HTTP_GET`/`SSL_GET`, `MISC_CHECK`,
/// `DNS_CHECK`, `UDP_CHECK`, `PING_CHECK`, `FILE_CHECK`).
#[derive(Debug, Clone)]
pub enum Probe {
    Tcp(TcpCheck),
    /// HTTP/1.1 GET; with `tls: Some(..)` it is keepalived's `SSL_GET`.
    Http(HttpCheck),
    Script(ScriptCheck),
    Dns(super::dns::DnsCheck),
    Udp(super::udp::UdpCheck),
    Ping(super::ping::PingCheck),
    File(super::file::FileCheck),
}

/// `TCP_CHECK`: success means the TCP handshake completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheck {
    /// Port to connect to instead of the real's service port.
    pub connect_port: Option<u16>,
    /// Source address for the check connection (must be local). Useful when the director has
    /// several addresses and the reals only accept checks from one of them.
    pub bind_to: Option<IpAddr>,
    pub connect_timeout: Duration,
    /// Check the service *on the VIP, through the real* (see `super::vip`): a real that lost
    /// its loopback VIP still answers on its own address but would black-hole DR traffic.
    pub probe_vip: Option<IpAddr>,
}

impl Default for TcpCheck {
    /// `connect_timeout` defaults to 5s like keepalived's.
    fn default() -> Self {
        Self {
            connect_port: None,
            bind_to: None,
            connect_timeout: Duration::from_secs(5),
            probe_vip: None,
        }
    }
}

/// An inclusive range of accepted HTTP status codes; a single code is `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

impl StatusRange {
    pub const fn single(code: u16) -> Self {
        Self { lo: code, hi: code }
    }

    pub const fn new(lo: u16, hi: u16) -> Self {
        Self { lo, hi }
    }

    pub fn contains(&self, code: u16) -> bool {
        (self.lo..=self.hi).contains(&code)
    }

    fn is_valid(&self) -> bool {
        (100..=599).contains(&self.lo) && (100..=599).contains(&self.hi) && self.lo <= self.hi
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for StatusRange {
    type Err = ConfigError;

    /// Parses `"200"` or `"300-399"` (the config form `[200, "300-399"]`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::StatusRange(s.to_owned());
        let s = s.trim();
        let range = match s.split_once('-') {
            Some((lo, hi)) => StatusRange::new(
                lo.trim().parse().map_err(|_| bad())?,
                hi.trim().parse().map_err(|_| bad())?,
            ),
            None => StatusRange::single(s.parse().map_err(|_| bad())?),
        };
        if range.is_valid() {
            Ok(range)
        } else {
            Err(bad())
        }
    }
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// Request target, e.g. `/healthz?full=1`. Must start with `/`.
    pub path: String,
    /// `Host` header, and the TLS SNI name. Default: the real's address (plus `:port` when
    /// the port is not the scheme default).
    pub virtualhost: Option<String>,
    /// Accepted status codes. Default `200-299`.
    pub status_codes: Vec<StatusRange>,
    /// Optional regex the (de-chunked, at most 1 MiB) body must match. Compiled when the
    /// config is loaded so a typo is a config error, not a down real.
    pub body_regex: Option<regex::bytes::Regex>,
    pub connect_port: Option<u16>,
    pub bind_to: Option<IpAddr>,
    /// Bound on the TCP handshake alone, so an unreachable real is reported as such.
    pub connect_timeout: Duration,
    /// Bound on the whole exchange: connect, TLS, request, headers and body.
    pub timeout: Duration,
    /// `Some` makes this an HTTPS check.
    pub tls: Option<TlsOptions>,
}

impl HttpCheck {
    /// A plain-HTTP GET of `path` with keepalived-like defaults (5s connect, 10s overall,
    /// 2xx accepted).
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            virtualhost: None,
            status_codes: vec![StatusRange::new(200, 299)],
            body_regex: None,
            connect_port: None,
            bind_to: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            tls: None,
        }
    }

    pub fn status_ok(&self, code: u16) -> bool {
        self.status_codes.iter().any(|r| r.contains(code))
    }
}

/// TLS settings of an HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Verify the server certificate chain and name. `false` accepts any certificate (reals
    /// commonly use self-signed certs); the handshake signatures are still checked, so the
    /// check still proves a working TLS stack.
    pub verify: bool,
    /// PEM file of CA certificates to trust instead of the built-in web PKI roots (for reals
    /// with certificates from a private CA). Read at every check so CA rotation needs no
    /// reload. Ignored when `verify` is false.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            verify: true,
            ca_file: None,
        }
    }
}

/// `MISC_CHECK`: run a program; exit 0 = up, 1 = down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCheck {
    /// Program and arguments, executed directly (no shell, so no quoting or injection issues).
    /// A program without `/` is looked up in `PATH`.
    pub argv: Vec<String>,
    /// After this the whole process group is killed and the check fails.
    pub timeout: Duration,
    /// keepalived's `misc_dynamic`: exit code 2..=255 means up with weight `code - 2`.
    pub dynamic: bool,
}

/// A config value the checker cannot work with. Reported when a real is added or updated so a
/// typo fails the reload instead of silently marking reals down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("invalid HTTP path {0:?}: must start with '/' and contain only visible ASCII")]
    Path(String),
    #[error("invalid virtualhost {0:?}: must be non-empty visible ASCII without spaces")]
    Virtualhost(String),
    #[error("invalid status code range {0:?}: expected e.g. 200 or \"300-399\" within 100-599")]
    StatusRange(String),
    #[error("status_codes must not be empty")]
    NoStatusCodes,
    #[error("script argv must not be empty")]
    EmptyArgv,
    #[error("bind_to {bind} and target {target} are of different address families")]
    BindFamily { bind: IpAddr, target: IpAddr },
    #[error("probe_vip: the VIP and the real are of different families")]
    ProbeVipFamily,
}

impl Probe {
    /// Overall bound on one run of this check; [`run`] never takes (much) longer.
    pub fn timeout(&self) -> Duration {
        match self {
            Probe::Tcp(c) => c.connect_timeout,
            Probe::Http(c) => c.timeout,
            Probe::Script(c) => c.timeout,
            // TCP: connect, then the answer, each within the timeout.
            Probe::Dns(c) => c.connect_timeout * 2,
            Probe::Udp(c) => c.connect_timeout,
            Probe::Ping(c) => c.connect_timeout,
            Probe::File(_) => Duration::from_secs(1),
        }
    }

    /// Short name for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp(_) => "tcp",
            Probe::Http(c) if c.tls.is_some() => "https",
            Probe::Http(_) => "http",
            Probe::Script(_) => "script",
            Probe::Dns(_) => "dns",
            Probe::Udp(_) => "udp",
            Probe::Ping(_) => "ping",
            Probe::File(_) => "file",
        }
    }

    /// Check the config against the target it will be used for.
    pub fn validate(&self, target: &Target) -> Result<(), ConfigError> {
        let probe_vip = match self {
            Probe::Tcp(c) => c.probe_vip,
            Probe::Dns(c) => c.probe_vip,
            Probe::Udp(c) => c.probe_vip,
            _ => None,
        };
        if probe_vip.is_some_and(|v| v.is_ipv4() != target.addr.is_ipv4()) {
            return Err(ConfigError::ProbeVipFamily);
        }
        let check_bind = |bind: Option<IpAddr>| match bind {
            Some(b) if b.is_ipv4() != target.addr.is_ipv4() => Err(ConfigError::BindFamily {
                bind: b,
                target: target.addr,
            }),
            _ => Ok(()),
        };
        match self {
            Probe::Tcp(c) => {
                if c.connect_timeout.is_zero() {
                    return Err(ConfigError::Zero("connect_timeout"));
                }
                check_bind(c.bind_to)
            }
            Probe::Http(c) => {
                if c.connect_timeout.is_zero() {
                    return Err(ConfigError::Zero("connect_timeout"));
                }
                if c.timeout.is_zero() {
                    return Err(ConfigError::Zero("timeout"));
                }
                if !c.path.starts_with('/') || !is_visible_ascii(&c.path) {
                    return Err(ConfigError::Path(c.path.clone()));
                }
                if let Some(vh) = &c.virtualhost {
                    if !is_visible_ascii(vh) {
                        return Err(ConfigError::Virtualhost(vh.clone()));
                    }
                }
                if c.status_codes.is_empty() {
                    return Err(ConfigError::NoStatusCodes);
                }
                if let Some(r) = c.status_codes.iter().find(|r| !r.is_valid()) {
                    return Err(ConfigError::StatusRange(r.to_string()));
                }
                check_bind(c.bind_to)
            }
            Probe::Script(c) => {
                if c.timeout.is_zero() {
                    return Err(ConfigError::Zero("timeout"));
                }
                if c.argv.first().is_none_or(|p| p.is_empty()) {
                    return Err(ConfigError::EmptyArgv);
                }
                Ok(())
            }
            Probe::Dns(c) => {
                if c.connect_timeout.is_zero() {
                    return Err(ConfigError::Zero("connect_timeout"));
                }
                check_bind(c.bind_to)
            }
            Probe::Udp(c) => {
                if c.connect_timeout.is_zero() {
                    return Err(ConfigError::Zero("connect_timeout"));
                }
                check_bind(c.bind_to)
            }
            Probe::Ping(c) if c.connect_timeout.is_zero() => {
                Err(ConfigError::Zero("connect_timeout"))
            }
            Probe::Ping(_) | Probe::File(_) => Ok(()),
        }
    }
}

/// Non-empty, only `!`..=`~`: what may appear in a request line or header value unescaped
/// without letting a config value inject CR/LF or split the request line.
fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Run one check against `target`. Never panics, never errors: every problem is a failed
/// [`Outcome`] with a reason. Bounded in time by [`Probe::timeout`].
pub async fn run(probe: &Probe, target: &Target) -> Outcome {
    if let Err(e) = probe.validate(target) {
        return Outcome::down(format!("invalid config: {e}"), Duration::ZERO);
    }
    match probe {
        Probe::Tcp(c) => match c.probe_vip {
            Some(vip) => super::vip::check(c, target, vip).await,
            None => super::tcp::check(c, target).await,
        },
        Probe::Http(c) => super::http::check(c, target).await,
        Probe::Script(c) => super::script::check(c).await,
        Probe::Dns(c) => super::dns::check(c, target).await,
        Probe::Udp(c) => super::udp::check(c, target).await,
        Probe::Ping(c) => super::ping::check(c, target).await,
        Probe::File(c) => super::file::check(c).await,
    }
}

/// Compact duration for reasons: `1s`, `300ms`, `1.5s`.
pub(super) fn fmt_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", d.as_secs())
    } else if nanos.is_multiple_of(1_000_000) {
        let ms = d.as_millis();
        if ms < 1000 {
            format!("{ms}ms")
        } else {
            let s = format!("{}.{:03}", ms / 1000, ms % 1000);
            format!("{}s", s.trim_end_matches('0'))
        }
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_range_parse() {
        assert_eq!("200".parse::<StatusRange>(), Ok(StatusRange::single(200)));
        assert_eq!(
            " 300 - 399 ".parse::<StatusRange>(),
            Ok(StatusRange::new(300, 399))
        );
        for bad in ["", "abc", "99", "600", "399-300", "200-", "-200", "2xx"] {
            assert!(bad.parse::<StatusRange>().is_err(), "{bad:?} accepted");
        }
        let mut c = HttpCheck::new("/");
        c.status_codes = vec![StatusRange::single(200), "300-399".parse().unwrap()];
        assert!(c.status_ok(200) && c.status_ok(302) && c.status_ok(399));
        assert!(!c.status_ok(201) && !c.status_ok(404) && !c.status_ok(500));
        assert!(HttpCheck::new("/").status_ok(204));
        assert!(!HttpCheck::new("/").status_ok(300));
    }

    #[test]
    fn validate_rejects_bad_config() {
        let t = Target::new("127.0.0.1".parse().unwrap(), 80);
        let http = |f: fn(&mut HttpCheck)| {
            let mut c = HttpCheck::new("/health");
            f(&mut c);
            Probe::Http(c).validate(&t)
        };
        assert_eq!(http(|_| {}), Ok(()));
        assert!(matches!(
            http(|c| c.path = "health".into()),
            Err(ConfigError::Path(_))
        ));
        assert!(matches!(
            http(|c| c.path = "/a b".into()),
            Err(ConfigError::Path(_))
        ));
        assert!(matches!(
            http(|c| c.path = "/a\r\nX: y".into()),
            Err(ConfigError::Path(_))
        ));
        assert!(matches!(
            http(|c| c.virtualhost = Some("a\r\nb".into())),
            Err(ConfigError::Virtualhost(_))
        ));
        assert_eq!(
            http(|c| c.status_codes.clear()),
            Err(ConfigError::NoStatusCodes)
        );
        assert!(matches!(
            http(|c| c.status_codes = vec![StatusRange::new(500, 200)]),
            Err(ConfigError::StatusRange(_))
        ));
        assert_eq!(
            http(|c| c.timeout = Duration::ZERO),
            Err(ConfigError::Zero("timeout"))
        );
        assert!(matches!(
            http(|c| c.bind_to = Some("::1".parse().unwrap())),
            Err(ConfigError::BindFamily { .. })
        ));
        let script = Probe::Script(ScriptCheck {
            argv: vec![],
            timeout: Duration::from_secs(1),
            dynamic: false,
        });
        assert_eq!(script.validate(&t), Err(ConfigError::EmptyArgv));
        let v6 = Target::new("::1".parse().unwrap(), 80);
        let through_vip = Probe::Tcp(TcpCheck {
            probe_vip: Some(std::net::Ipv4Addr::new(192, 0, 2, 1).into()),
            ..TcpCheck::default()
        });
        assert_eq!(through_vip.validate(&v6), Err(ConfigError::ProbeVipFamily));
    }

    #[tokio::test]
    async fn run_reports_invalid_config_as_failure() {
        let t = Target::new("127.0.0.1".parse().unwrap(), 80);
        let out = run(&Probe::Http(HttpCheck::new("no-slash")), &t).await;
        assert!(!out.ok);
        assert!(
            out.reason.starts_with("invalid config: invalid HTTP path"),
            "{}",
            out.reason
        );
    }

    #[test]
    fn durations_format_compactly() {
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(2050)), "2.05s");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.5ms");
    }
}
