//! Flow-state sharing (docs/flow-sync.md) on the two-node VRRP lab, release agents:
//!
//! - Lag and cost at a steady rate of new flows: the client opens new UDP flows through the
//!   VIP at `rate` a second (a socket each, so a new source port each, paced every
//!   millisecond) for `seconds`; the master publishes each, the backup applies it. From the
//!   agents' own counters: records sent and applied, the backup's lag percentiles (from the
//!   data path's entry on the master to the entry on the backup, same host clock), UDP payload
//!   and IP bytes per flow, and each agent's CPU (utime + stime from /proc) over the window.
//!   A fresh lab per run.
//! - Bulk sync of a large table: the master's connection table is filled with `entries`
//!   entries (written into its pinned map), then the backup's agent restarts and fetches it;
//!   the figure is the time from its request to the last entry written, as its status reports.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use aya::maps::{Array, HashMap as BpfHash, Map, MapData};
use lb_common::{FlowKey, FlowValue, Real};
use lb_tests::{
    netns::wait_for,
    pair::{vip_addr, Node, Pair},
    topology::{lb_ip, real_ip},
};

use super::{agent_bin, Stat};

const KEY: &str = "bench-flow-sync-key-0123456789";

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LagRow {
    /// New flows a second offered, and for how long.
    pub rate: u32,
    pub seconds: u32,
    pub runs: usize,
    /// New flows the client sent (over all runs), records the master sent, the backup applied.
    pub flows_sent: u64,
    pub records_sent: u64,
    pub records_applied: u64,
    pub lag_p50_ms: Stat,
    pub lag_p99_ms: Stat,
    pub lag_max_ms: Stat,
    pub payload_bytes_per_flow: Stat,
    /// With the IPv4 and UDP headers (28 bytes a datagram).
    pub ip_bytes_per_flow: Stat,
    pub master_cpu_pct: Stat,
    pub backup_cpu_pct: Stat,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BulkRow {
    pub entries: u64,
    pub runs: usize,
    /// Records the backup received and wrote, summed over the runs.
    pub received: u64,
    pub applied: u64,
    pub took_ms: Stat,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FlowSyncReport {
    pub lag: Vec<LagRow>,
    pub bulk: Option<BulkRow>,
}

pub struct Plan {
    pub rate: u32,
    pub seconds: u32,
    pub lag_runs: usize,
    pub bulk_entries: u32,
    pub bulk_runs: usize,
}

fn nodes(conntrack: u32, bulk_timeout: &str) -> Vec<Node> {
    let sync = format!(
        "flow_sync:\n  peers: [{}, {}]\n  key: {KEY}\n  bulk_sync_timeout: {bulk_timeout}\n",
        lb_ip(0),
        lb_ip(1)
    );
    [150, 100]
        .map(|prio| Node {
            top_extra: sync.clone(),
            conntrack_size: conntrack,
            ..Node::v3(prio)
        })
        .to_vec()
}

fn lab(tag: &str, conntrack: u32, bulk_timeout: &str) -> Result<Pair> {
    let mut p = Pair::new(tag, nodes(conntrack, bulk_timeout), 3)?;
    p.agent_bin = Some(agent_bin());
    p.start_agents()?;
    p.wait_master(0, Duration::from_secs(10))?;
    Ok(p)
}

fn flow_sync(p: &Pair, i: usize) -> Result<serde_json::Value> {
    Ok(p.agent(i).status()?["flow_sync"].take())
}

fn num(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// utime + stime of a process, in seconds.
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).context("utime")?.parse::<f64>()? + f.get(12).context("stime")?.parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

fn pid(p: &Pair, i: usize) -> Result<u32> {
    p.agent(i).proc.pid().context("agent pid")
}

/// Distinct source ports a run can use (one new flow each).
const PORTS: u64 = 64_000;

/// Sends one datagram per new flow, each from a socket bound to a source port of its own
/// (1024 up: no two flows of a run share a 5-tuple), `rate` a second for `seconds`, paced in
/// 1 ms steps. The number sent.
fn new_flows(p: &Pair, rate: u32, seconds: u32) -> Result<u64> {
    let vip = vip_addr(80);
    let total = u64::from(rate) * u64::from(seconds);
    if total > PORTS {
        bail!("{total} new flows need more source ports than a run has ({PORTS})");
    }
    p.t.client.ns.enter(move || -> Result<u64> {
        let t0 = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let due = (t0.elapsed().as_secs_f64() * f64::from(rate)) as u64;
            while sent < due.min(total) {
                let port = 1024 + sent as u16;
                let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
                s.send_to(b"ping", vip)?;
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(sent)
    })?
}

fn lag_run(
    tag: &str,
    rate: u32,
    seconds: u32,
) -> Result<(u64, serde_json::Value, serde_json::Value, f64, f64)> {
    let p = lab(tag, 1 << 20, "10s")?;
    let (pm, pb) = (pid(&p, 0)?, pid(&p, 1)?);
    let (m0, b0) = (flow_sync(&p, 0)?, flow_sync(&p, 1)?);
    let (cm0, cb0) = (cpu_s(pm)?, cpu_s(pb)?);
    let t0 = Instant::now();
    let sent = new_flows(&p, rate, seconds)?;
    // The last batch: one batch interval, and some for the datagram and the writes.
    std::thread::sleep(Duration::from_millis(300));
    let window = t0.elapsed().as_secs_f64();
    let (cm1, cb1) = (cpu_s(pm)?, cpu_s(pb)?);
    let (m1, b1) = (flow_sync(&p, 0)?, flow_sync(&p, 1)?);
    let delta = |a: &serde_json::Value, b: &serde_json::Value, k: &str| num(b, k) - num(a, k);
    let mut sender = serde_json::json!({});
    for k in ["records_sent", "datagrams_sent", "bytes_sent"] {
        sender[k] = delta(&m0, &m1, k).into();
    }
    let mut receiver = b1.clone();
    receiver["records_applied"] = delta(&b0, &b1, "records_applied").into();
    Ok((
        sent,
        sender,
        receiver,
        100.0 * (cm1 - cm0) / window,
        100.0 * (cb1 - cb0) / window,
    ))
}

fn lag(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<LagRow> {
    let mut row = LagRow {
        rate: plan.rate,
        seconds: plan.seconds,
        runs: plan.lag_runs,
        ..Default::default()
    };
    let (mut p50, mut p99, mut max, mut payload, mut ip, mut cm, mut cb) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..plan.lag_runs {
        progress(&format!(
            "flow sync: {} new flows/s for {} s, run {}/{}",
            plan.rate,
            plan.seconds,
            run + 1,
            plan.lag_runs
        ));
        let (sent, tx, rx, mcpu, bcpu) = lag_run("lbbf", plan.rate, plan.seconds)?;
        let recs = num(&tx, "records_sent");
        if recs <= 0.0 {
            bail!("the master sent no records");
        }
        row.flows_sent += sent;
        row.records_sent += recs as u64;
        row.records_applied += num(&rx, "records_applied") as u64;
        for (v, k) in [
            (&mut p50, "lag_p50_ms"),
            (&mut p99, "lag_p99_ms"),
            (&mut max, "lag_max_ms"),
        ] {
            v.push(rx[k].as_f64().context("no lag samples on the backup")?);
        }
        payload.push(num(&tx, "bytes_sent") / recs);
        ip.push((num(&tx, "bytes_sent") + 28.0 * num(&tx, "datagrams_sent")) / recs);
        cm.push(mcpu);
        cb.push(bcpu);
    }
    row.lag_p50_ms = Stat::of(&p50);
    row.lag_p99_ms = Stat::of(&p99);
    row.lag_max_ms = Stat::of(&max);
    row.payload_bytes_per_flow = Stat::of(&payload);
    row.ip_bytes_per_flow = Stat::of(&ip);
    row.master_cpu_pct = Stat::of(&cm);
    row.backup_cpu_pct = Stat::of(&cb);
    Ok(row)
}

/// Writes `n` entries into node `i`'s pinned IPv4 connection table, all naming the real r1
/// of the UDP service (its id and generation read from the pinned reals).
fn fill(p: &Pair, i: usize, n: u32) -> Result<()> {
    let pins = Path::new("/sys/fs/bpf/lb").join(p.t.router_id(i));
    let reals: Array<MapData, Real> =
        Map::Array(MapData::from_pin(pins.join(lb_common::maps::REALS))?).try_into()?;
    let r1 = lb_common::addr6_of(real_ip(0).into());
    let (id, real) = (0..reals.len())
        .filter_map(|id| reals.get(&id, 0).ok().map(|r| (id, r)))
        .find(|(_, r)| r.addr == r1 && r.gen != 0)
        .context("r1 not in the pinned reals")?;
    let mut flows: BpfHash<MapData, FlowKey, FlowValue> =
        Map::LruHashMap(MapData::from_pin(pins.join(lb_common::maps::FLOWS))?).try_into()?;
    let vip = u32::from_ne_bytes(vip_addr(80).ip().to_string().parse::<Ipv4Addr>()?.octets());
    let value = FlowValue {
        real_id: id,
        real_gen: real.gen,
    };
    for k in 0..n {
        // Clients 10.96.0.0/16 and up, ports 1024 on: distinct keys.
        let client = Ipv4Addr::from(0x0a60_0000 + k / 60_000);
        let key = FlowKey {
            src_be: u32::from_ne_bytes(client.octets()),
            dst_be: vip,
            sport_be: (1024 + (k % 60_000) as u16).to_be(),
            dport_be: 80u16.to_be(),
            proto: 17,
        };
        flows.insert(key, value, 0)?;
    }
    Ok(())
}

fn bulk(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<BulkRow> {
    let n = plan.bulk_entries;
    let conntrack = (n + n / 8).next_power_of_two();
    progress(&format!(
        "flow sync: filling the master's table with {n} entries"
    ));
    let mut p = lab("lbbk", conntrack, "60s")?;
    fill(&p, 0, n)?;
    let mut row = BulkRow {
        entries: u64::from(n),
        runs: plan.bulk_runs,
        ..Default::default()
    };
    let mut took = Vec::new();
    for run in 0..plan.bulk_runs {
        progress(&format!(
            "flow sync: bulk sync of {n} entries, run {}/{}",
            run + 1,
            plan.bulk_runs
        ));
        p.agents[1] = None;
        p.agents[1] = Some(p.start_agent(1)?);
        let done = wait_for(Duration::from_secs(120), || {
            let b = p.agent(1).status().ok()?["flow_sync"]["bulk"].take();
            (b["state"] != "running").then_some(b)
        })
        .context("the bulk sync did not end within 2 minutes")?;
        if done["state"] != "done" {
            bail!("the bulk sync ended {}", done["state"]);
        }
        row.received += done["records"].as_u64().unwrap_or(0);
        row.applied += done["applied"].as_u64().unwrap_or(0);
        took.push(done["took_ms"].as_f64().context("took_ms")?);
    }
    row.took_ms = Stat::of(&took);
    Ok(row)
}

pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<FlowSyncReport> {
    Ok(FlowSyncReport {
        lag: vec![lag(plan, progress)?],
        bulk: Some(bulk(plan, progress)?),
    })
}
