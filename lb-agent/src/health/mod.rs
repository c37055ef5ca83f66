//! Real-server health checks (keepalived `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`,
//! `DNS_CHECK`, `UDP_CHECK`, `PING_CHECK` and `FILE_CHECK` semantics) on tokio.
//!
//! Layout, bottom up:
//! * [`hysteresis`]: pure rise/fall state machine (no clock, no I/O).
//! * [`probe`]: check config types and [`probe::run`], which dispatches to
//!   [`tcp`], [`http`] (plain or over [`tls`]), [`script`], [`dns`], [`udp`], [`ping`] and
//!   [`file`]; [`vip`] sends a check to the VIP through a real.
//! * [`scheduler`]: runs the checks of many reals on one runtime and reports
//!   transitions on an mpsc channel.

pub mod dns;
pub mod file;
pub mod http;
pub mod hysteresis;
pub mod ping;
pub mod probe;
pub mod scheduler;
pub mod script;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod vip;

#[cfg(test)]
mod testutil;

pub use hysteresis::{Hysteresis, State, Transition};
pub use probe::{
    run, ConfigError, HttpCheck, Outcome, Probe, ScriptCheck, StatusRange, Target, TcpCheck,
    TlsOptions,
};
pub use scheduler::{
    Event, HealthEvent, NetProber, ProbeDone, Prober, RealId, RealSpec, Scheduler, SchedulerConfig,
    SchedulerError, WeightEvent,
};

/// Checks that `re` compiles as a body regex (used by config validation).
pub fn validate_regex(re: &str) -> Result<(), String> {
    regex::bytes::Regex::new(re)
        .map(|_| ())
        .map_err(|e| format!("invalid regex: {e}"))
}
