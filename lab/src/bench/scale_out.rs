//! Scale-out mode (docs/bgp.md) on the lab of `lb_tests::scale_out`: three nodes with BIRD
//! behind an ECMP router.
//!
//! - Events, each round on a fresh lab, in a fixed sequence (each event needs the state the
//!   one before left): SIGTERM of one node's agent, that node joining again, SIGKILL of another
//!   node's agent and its restart, link down on the third and its return, a real added to every
//!   node. Each with 100 connections held through the VIP (same / moved / broken) and the time
//!   from the event to the router's kernel route having the new next hops (polled every
//!   10 ms: 10 ms resolution). During the SIGTERM, new connections are opened one after
//!   another and their failures counted.
//! - Throughput with 1, 2 and 3 nodes announcing (the others' BGP sessions disabled with
//!   `birdc disable`), the counts alternated in rounds: wrk keep-alive from the far client,
//!   and each node's forwarded frames. One 2-core machine runs the client, the router, three
//!   nodes and three reals: the absolute figure is this box's, the per-node split is the point.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context as _, Result};
use lb_tests::{
    client::Requests,
    held::{Held, HeldReport},
    netns::run as run_cmd,
    scale_out::{lb_hops, wait_hops, ScaleOut, NODES},
    topology::{lb_ip, VIP},
};

use super::{e2e::parse_wrk, Stat};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EventRow {
    pub event: String,
    pub runs: usize,
    /// From the event to the router's new route (None: the route is not meant to change).
    pub route_change_ms: Option<Stat>,
    pub opened: usize,
    pub same: usize,
    pub moved: usize,
    pub broken: usize,
    /// New connections opened during the event: (sent, failed), summed over the runs.
    pub requests: Option<(usize, usize)>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ThroughputRow {
    pub nodes: usize,
    pub rounds: usize,
    pub requests_per_s: Stat,
    /// Median share of the forwarded frames per node (lb1, lb2, lb3), percent.
    pub node_share_pct: Vec<f64>,
    pub errors: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScaleOutReport {
    pub events: Vec<EventRow>,
    pub throughput: Vec<ThroughputRow>,
}

pub struct Plan {
    pub event_runs: usize,
    pub throughput_rounds: usize,
    pub wrk_seconds: u64,
}

/// What one event did in one run.
struct Sample {
    held: HeldReport,
    route_ms: Option<f64>,
    requests: Option<(usize, usize)>,
}

const EVENTS: [&str; 6] = [
    "SIGTERM of one node's agent",
    "that node joins again",
    "SIGKILL of one node's agent, then restart",
    "link down on one node",
    "its link returns",
    "a real added to every node",
];

pub fn run(plan: &Plan, agent: &Path, progress: &mut dyn FnMut(&str)) -> Result<ScaleOutReport> {
    let mut samples: Vec<Vec<Sample>> = EVENTS.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.event_runs {
        progress(&format!(
            "scale-out events, run {}/{}",
            round + 1,
            plan.event_runs
        ));
        let mut lab = ScaleOut::start("lbbs", agent)?;
        for (i, s) in events(&mut lab)?.into_iter().enumerate() {
            samples[i].push(s);
        }
    }
    let events = EVENTS
        .iter()
        .zip(samples)
        .map(|(name, runs)| {
            let ms: Vec<f64> = runs.iter().filter_map(|s| s.route_ms).collect();
            let requests = runs
                .iter()
                .filter_map(|s| s.requests)
                .reduce(|a, b| (a.0 + b.0, a.1 + b.1));
            EventRow {
                event: (*name).to_owned(),
                runs: runs.len(),
                route_change_ms: (!ms.is_empty()).then(|| Stat::of(&ms)),
                opened: runs.iter().map(|s| s.held.opened).sum(),
                same: runs.iter().map(|s| s.held.same).sum(),
                moved: runs.iter().map(|s| s.held.moved).sum(),
                broken: runs.iter().map(|s| s.held.broken).sum(),
                requests,
            }
        })
        .collect();
    progress("scale-out throughput with 1, 2 and 3 nodes");
    let throughput = throughput(plan, agent, progress)?;
    Ok(ScaleOutReport { events, throughput })
}

fn hold(lab: &ScaleOut) -> Result<Held> {
    lab.hold_n(100).context("100 connections through the VIP")
}

/// Milliseconds until the router's route has exactly `want`, or an error.
fn route_ms(lab: &ScaleOut, want: &[std::net::Ipv4Addr], t0: std::time::Instant) -> Result<f64> {
    wait_hops(lab.router_ns(), want, Duration::from_secs(30))
        .with_context(|| format!("the router never had {want:?} as next hops"))?;
    Ok(t0.elapsed().as_secs_f64() * 1000.0)
}

/// 100 connections held across `event`, timed until the router's route has `want`.
fn rerouted(
    lab: &mut ScaleOut,
    want: &[std::net::Ipv4Addr],
    event: impl FnOnce(&mut ScaleOut) -> Result<()>,
) -> Result<Sample> {
    let held = hold(lab)?;
    let t0 = std::time::Instant::now();
    event(lab)?;
    let ms = route_ms(lab, want, t0)?;
    std::thread::sleep(SETTLE);
    Ok(Sample {
        held: held.finish(),
        route_ms: Some(ms),
        requests: None,
    })
}

/// How long connections are watched after an event has settled.
const SETTLE: Duration = Duration::from_secs(1);

/// The six events, in order, on one lab.
fn events(lab: &mut ScaleOut) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    let others: Vec<_> = (1..NODES).map(lb_ip).collect();
    let first_two: Vec<_> = (0..2).map(lb_ip).collect();

    // SIGTERM of lb1's agent, new connections meanwhile.
    let held = hold(lab)?;
    let requests = Requests::start(&lab.far.client, lab.vip80())?;
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    let mut a = lab.agents[0].take().context("lb1 running")?;
    a.proc.signal(libc::SIGTERM)?;
    let ms = route_ms(lab, &others, t0)?;
    if a.proc.wait_timeout(Duration::from_secs(15))?.is_none() {
        bail!("lb1's agent did not stop");
    }
    std::thread::sleep(SETTLE);
    let req = requests.finish()?;
    out.push(Sample {
        held: held.finish(),
        route_ms: Some(ms),
        requests: Some(req),
    });

    // lb1 joins again.
    out.push(rerouted(lab, &lb_hops(), |lab| {
        lab.start_agent(0, &[0, 1])
    })?);

    // SIGKILL of lb2's agent; the route must not change; restart.
    let held = hold(lab)?;
    let mut a = lab.agents[1].take().context("lb2 running")?;
    a.proc.kill();
    std::thread::sleep(Duration::from_secs(2));
    if lb_tests::bird::next_hops(lab.router_ns(), VIP) != lb_hops() {
        bail!("the route changed after an agent was killed");
    }
    lab.start_agent(1, &[0, 1])?;
    std::thread::sleep(Duration::from_secs(2));
    out.push(Sample {
        held: held.finish(),
        route_ms: None,
        requests: None,
    });

    // Link down on lb3, then back.
    for (state, want) in [("down", &first_two), ("up", &lb_hops())] {
        out.push(rerouted(lab, want, |lab| {
            lab.t.lbs[2].ns.ip(&["link", "set", "eth0", state])?;
            Ok(())
        })?);
    }

    // A real added to every node.
    let held = hold(lab)?;
    lab.add_r3_everywhere()?;
    std::thread::sleep(SETTLE);
    out.push(Sample {
        held: held.finish(),
        route_ms: None,
        requests: None,
    });
    Ok(out)
}

/// Announces from exactly the first `k` nodes (the others' BGP sessions disabled).
fn set_active(lab: &ScaleOut, k: usize) -> Result<()> {
    for (i, b) in lab.birds.iter().enumerate() {
        let verb = if i < k { "enable" } else { "disable" };
        b.cli(&[verb, "uplink"])?;
    }
    let want: Vec<_> = (0..k).map(lb_ip).collect();
    wait_hops(lab.router_ns(), &want, Duration::from_secs(30))
        .with_context(|| format!("the router never had {want:?} as next hops"))?;
    Ok(())
}

fn throughput(
    plan: &Plan,
    agent: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ThroughputRow>> {
    let lab = ScaleOut::start("lbbt", agent)?;
    let counts = [1usize, 2, 3];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    let mut shares: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); NODES]; counts.len()];
    let mut errors = vec![0u64; counts.len()];
    for round in 0..plan.throughput_rounds {
        // Rotate the order so no count always runs first.
        for j in 0..counts.len() {
            let c = (j + round) % counts.len();
            let k = counts[c];
            progress(&format!(
                "  round {}/{}: {k} node(s) announcing",
                round + 1,
                plan.throughput_rounds
            ));
            set_active(&lab, k)?;
            let before = lab.tx();
            let out = run_cmd(lab.far.client.command("wrk").args([
                "-t2".to_owned(),
                "-c32".to_owned(),
                format!("-d{}s", plan.wrk_seconds),
                "--latency".to_owned(),
                format!("http://{VIP}/"),
            ]))?;
            let after = lab.tx();
            let l = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
            rates[c].push(l.requests_per_s);
            errors[c] += l.errors;
            let delta: Vec<f64> = after
                .iter()
                .zip(&before)
                .map(|(a, b)| a.saturating_sub(*b) as f64)
                .collect();
            let total: f64 = delta.iter().sum();
            for (n, d) in delta.iter().enumerate() {
                shares[c][n].push(if total > 0.0 { d / total * 100.0 } else { 0.0 });
            }
        }
    }
    set_active(&lab, NODES)?;
    Ok(counts
        .iter()
        .enumerate()
        .map(|(c, k)| ThroughputRow {
            nodes: *k,
            rounds: rates[c].len(),
            requests_per_s: Stat::of(&rates[c]),
            node_share_pct: shares[c].iter().map(|v| Stat::of(v).median).collect(),
            errors: errors[c],
        })
        .collect())
}
