//! `cargo xtask bench`: measurements, each a ratio of things measured alternately in one run
//! where possible (this machine is shared and noisy), reported as median with min and max.

pub mod charts;
pub mod control;
pub mod e2e;
pub mod failover;
pub mod flow_sync;
pub mod jitter;
pub mod report;
pub mod scale_out;
pub mod xdp;

use std::{path::PathBuf, sync::OnceLock};

static AGENT: OnceLock<PathBuf> = OnceLock::new();

/// The agent binary the benchmarks run (the release build under `cargo xtask bench`).
pub fn set_agent_bin(p: PathBuf) {
    let _ = AGENT.set(p);
}

pub fn agent_bin() -> PathBuf {
    AGENT
        .get()
        .cloned()
        .or_else(|| lb_tests::topology::bin_path("lb-agent").ok())
        .unwrap_or_else(|| PathBuf::from("lb-agent"))
}

/// Health checks completed so far, from the agent's latency histogram.
pub fn checks_done(a: &lb_tests::agent::Agent) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    a.status()?["check_latency_count"]
        .as_u64()
        .context("no check_latency_count in the agent's status")
}

/// Median, min and max of a sample.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return Stat::default();
        }
        s.sort_by(f64::total_cmp);
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Stat {
            median,
            min: s[0],
            max: s[s.len() - 1],
        }
    }
}
