//! Scale-out mode: has BIRD announce the VIPs the node decided on. The interface is BIRD's
//! own: routes files (`route <vip>/32 blackhole;` per VIP; IPv4 and IPv6 apart, as a static
//! protocol has one channel) that `protocol static` blocks of the operator's BIRD include,
//! written atomically, then `birdc configure` (BIRD diffs the
//! static routes and sends only the changes; the BGP sessions stay up). Runs on the IO
//! runtime: the node loop never waits on BIRD. A failed `configure` is retried every second
//! until it succeeds or the wanted set changes.

use std::{
    net::IpAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{anyhow, Context as _, Result};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BgpCfg;

/// How long one `birdc configure` may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(1);

/// What BIRD was last told, for `status` and metrics.
#[derive(Clone, Debug, Default)]
pub struct BirdState {
    /// The VIPs in the routes file BIRD last accepted.
    pub applied: Option<Vec<IpAddr>>,
    /// The last `configure` failed: why.
    pub error: Option<String>,
    pub configures: u64,
    pub failures: u64,
}

pub struct Bird {
    want: watch::Sender<Option<Vec<IpAddr>>>,
    pub state: Arc<Mutex<BirdState>>,
}

impl Bird {
    /// Starts the driver on the current runtime.
    pub fn spawn(cfg: BgpCfg) -> Bird {
        let (want, rx) = watch::channel(None);
        let state = Arc::new(Mutex::new(BirdState::default()));
        tokio::spawn(drive(cfg, rx, state.clone()));
        Bird { want, state }
    }

    pub fn announce(&self, vips: Vec<IpAddr>) {
        let _ = self.want.send(Some(vips));
    }

    /// Waits (up to `limit`) until BIRD has accepted a routes file without any VIP: a
    /// stopping agent withdraws before it exits.
    pub async fn withdrawn(&self, limit: Duration) -> bool {
        let state = self.state.clone();
        let done = move || {
            state
                .lock()
                .map(|s| s.applied.as_ref().is_some_and(Vec::is_empty))
                .unwrap_or(false)
        };
        tokio::time::timeout(limit, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok()
    }
}

async fn drive(
    cfg: BgpCfg,
    mut rx: watch::Receiver<Option<Vec<IpAddr>>>,
    state: Arc<Mutex<BirdState>>,
) {
    loop {
        let want = rx.borrow_and_update().clone();
        if let Some(vips) = want {
            let r = apply(&cfg, &vips).await;
            if !record(&state, vips, r) {
                // Retry, unless a new set arrives first.
                let _ = tokio::time::timeout(RETRY, rx.changed()).await;
                continue;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Records the outcome of one `configure`; whether it succeeded.
fn record(state: &Mutex<BirdState>, vips: Vec<IpAddr>, r: Result<()>) -> bool {
    let Ok(mut s) = state.lock() else {
        return false;
    };
    s.configures += 1;
    match r {
        Ok(()) => {
            if s.error.take().is_some() || s.applied.is_none() {
                info!(vips = vips.len(), "BIRD configured");
            }
            s.applied = Some(vips);
            true
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if s.error.as_deref() != Some(&msg) {
                warn!(error = %msg, "BIRD not configured; retrying every second");
            }
            s.failures += 1;
            s.error = Some(msg);
            false
        }
    }
}

/// A routes file's text: the VIPs of one family.
pub fn routes_text(vips: &[IpAddr], v6: bool) -> String {
    let mut t = String::from("# Written by lb-agent: the VIPs this node announces. Do not edit.\n");
    for v in vips.iter().filter(|v| v.is_ipv6() == v6) {
        let len = if v.is_ipv4() { 32 } else { 128 };
        t.push_str(&format!("route {v}/{len} blackhole;\n"));
    }
    t
}

async fn apply(cfg: &BgpCfg, vips: &[IpAddr]) -> Result<()> {
    write_atomic(&cfg.routes_file, &routes_text(vips, false))?;
    write_atomic(&cfg.routes_file6, &routes_text(vips, true))?;
    let out = tokio::time::timeout(
        BIRDC_TIMEOUT,
        tokio::process::Command::new(&cfg.birdc)
            .arg("-s")
            .arg(&cfg.bird_socket)
            .arg("configure")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow!("birdc configure took over {BIRDC_TIMEOUT:?}"))?
    .with_context(|| format!("running {}", cfg.birdc.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // birdc exits 0 for replies below 8000 ("Reconfigured", "Reconfiguration in progress").
    if out.status.success() {
        Ok(())
    } else {
        Err(anyhow!(
            "birdc configure: {}",
            [text, err]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" / ")
        ))
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_blackhole_route_per_vip() {
        let vips = ["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let (v4, v6) = (routes_text(&vips, false), routes_text(&vips, true));
        assert!(v4.contains("route 10.0.0.1/32 blackhole;\n") && !v4.contains("2001"));
        assert!(v6.contains("route 2001:db8::1/128 blackhole;\n") && !v6.contains("10.0"));
        assert_eq!(routes_text(&[], false).lines().count(), 1);
    }
}
