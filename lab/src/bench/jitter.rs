//! Advert timing under load: a master's VRRP adverts (v3, 100 ms) timestamped by the kernel
//! where they arrive on the switch, and how far each interval strays from 100 ms:
//! - idle;
//! - with 10,000 entries in the node's neighbour table and `ip neigh show` dumping it in a
//!   loop (the agent reads neighbours every second, netlink is busy);
//! - while a notify_master hook hangs (until the hook timeout kills it).
//!
//! The node loop has its own thread: none of these may delay an advert.

use std::{fs, os::unix::fs::PermissionsExt as _, time::Duration};

use anyhow::{bail, Context as _, Result};

use lb_tests::{
    agent::{Agent, WorkDir},
    netns::{self, wait_for, Proc},
    sniff::Sniffer,
    topology::{Spec, Topology, VIP},
};

const INTERVAL_MS: f64 = 100.0;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Jitter {
    pub case: String,
    pub intervals: usize,
    /// |interval - 100 ms|, in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn config(rid: &str, hook: Option<&str>) -> String {
    let notify = hook.map_or(String::new(), |h| format!("    notify_master: \"{h}\"\n"));
    format!(
        "global_defs:\n  router_id: {rid}\nvrrp_instances:\n  - name: VI_1\n    interface: eth0\n    \
         virtual_router_id: 51\n    priority: 150\n    version: 3\n    advert_int: 100ms\n    \
         virtual_ipaddresses: [\"{VIP}/24\"]\n{notify}virtual_servers:\n  - address: {VIP}\n    port: 80\n    \
         interface: eth0\n    real_servers:\n      - {{ address: 10.99.0.11, port: 80 }}\n"
    )
}

/// Captures the master's adverts for `secs` and measures the intervals.
fn measure(t: &Topology, case: &str, secs: u64) -> Result<Jitter> {
    let mac = t.lbs[0].mac;
    let sniff = Sniffer::start(&t.switch, &t.lbs[0].port)?;
    std::thread::sleep(Duration::from_secs(secs));
    let frames = sniff.finish()?;
    let times: Vec<_> = frames
        .iter()
        .filter(|f| !f.outgoing && f.src_mac() == Some(mac))
        .filter(|f| f.ipv4().is_some_and(|(p, ..)| p == 112))
        .map(|f| f.at)
        .collect();
    if times.len() < 10 {
        bail!("{case}: only {} adverts captured in {secs} s", times.len());
    }
    let mut dev: Vec<f64> = times
        .windows(2)
        .map(|w| {
            let ms = w[1].duration_since(w[0]).unwrap_or_default().as_secs_f64() * 1000.0;
            (ms - INTERVAL_MS).abs()
        })
        .collect();
    dev.sort_by(f64::total_cmp);
    Ok(Jitter {
        case: case.to_owned(),
        intervals: dev.len(),
        p50_ms: percentile(&dev, 0.5),
        p99_ms: percentile(&dev, 0.99),
        max_ms: dev.last().copied().unwrap_or(f64::NAN),
    })
}

fn start(t: &Topology, dir: &WorkDir, hook: Option<&str>) -> Result<Agent> {
    let rid = t.router_id(0);
    let a = Agent::start_with(
        &super::agent_bin(),
        &t.lbs[0].ns,
        dir,
        &rid,
        &config(&rid, hook),
    )?;
    if wait_for(Duration::from_secs(10), || t.holds(0, VIP).then_some(())).is_none() {
        bail!("the node never became master:\n{}", a.log_text());
    }
    Ok(a)
}

pub fn run(quick: bool, progress: &mut dyn FnMut(&str)) -> Result<Vec<Jitter>> {
    let secs = if quick { 5 } else { 20 };
    let t = Topology::build(
        "lbj",
        Spec {
            lbs: 1,
            reals: 0,
            native_xdp: true,
        },
    )?;
    let dir = WorkDir::new(&t.prefix)?;
    let mut out = Vec::new();

    progress("control: advert jitter, idle");
    let mut a = start(&t, &dir, None)?;
    out.push(measure(&t, "idle", secs)?);

    progress("control: advert jitter, 10,000 neighbours and a netlink dump loop");
    let lb = &t.lbs[0].ns;
    lb.ip(&["addr", "add", "10.98.255.254/16", "dev", "eth0"])?;
    let batch: String = (0..10_000u32)
        .map(|i| {
            let (hi, lo) = (i / 250, i % 250 + 1);
            format!(
                "neigh add 10.98.{hi}.{lo} lladdr 02:00:00:00:{:02x}:{:02x} dev eth0 nud permanent\n",
                hi, lo
            )
        })
        .collect();
    let bf = dir.0.join("neigh.batch");
    fs::write(&bf, batch)?;
    netns::run(
        std::process::Command::new("ip")
            .args(["-n", &lb.name, "-batch"])
            .arg(&bf),
    )
    .context("adding 10,000 neighbours")?;
    let dumper: Proc = lb.spawn("sh", &["-c", "while :; do ip neigh show > /dev/null; done"])?;
    out.push(measure(&t, "10,000 neighbours, netlink dump loop", secs)?);
    drop(dumper);
    a.stop()?;

    progress("control: advert jitter, a notify_master hook hanging");
    let hook = dir.0.join("hang.sh");
    fs::write(&hook, "#!/bin/sh\nexec sleep 120\n")?;
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
    let mut a = start(&t, &dir, Some(&hook.display().to_string()))?;
    out.push(measure(&t, "notify_master hook hanging", secs.min(25))?);
    a.stop()?;
    Ok(out)
}
