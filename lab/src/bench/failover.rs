//! Failover in the lab, ours against keepalived (Debian's package) with the same VRRP
//! settings, alternating run by run: two nodes (priority 150 and 100) in front of three
//! reals. Each run faults the master (graceful stop, SIGKILL, or its link going down) at a
//! uniformly random phase of the advert interval and measures, from a timestamped capture of
//! what the new master sends (kernel receive timestamps on its switch port):
//! - takeover: from the fault to the new master's first advert;
//! - first reply: to the first answer the client gets from the new master (ICMP echo to the
//!   VIP every 1 ms, so this has 1 ms resolution);
//! - ours only, first forward: to the first UDP probe (1 ms apart) it forwards to a real;
//! - lost pings, and for ours the fate of 60 TCP connections opened through the VIP before
//!   the fault: still answered by the same real, moved, or broken.
//!
//! A further case (ours only) adds a real on both nodes between opening the connections and
//! the fault: a node that never saw a flow sends it by Maglev, whose answer changed for about
//! a third of the flows.

use std::{
    io::Write as _,
    net::SocketAddr,
    process::{Child, Stdio},
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};

use super::Stat;
use lb_tests::{
    agent::{Agent, WorkDir},
    client::Prober,
    held::{Held, HeldReport},
    keepalived::{self, Flavour, Keepalived},
    netns::{wait_for, Netns},
    pair::{config, Node},
    sniff::{Frame, Sniffer},
    topology::{Spec, Topology, CLIENT_IP, VIP},
};

/// Reals behind both nodes.
const REALS: usize = 3;
/// Connections held across each fault.
const CONNS: usize = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Imp {
    Lb,
    Keepalived,
}

impl Imp {
    pub fn name(self) -> &'static str {
        match self {
            Imp::Lb => "lb-agent",
            Imp::Keepalived => "keepalived",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Event {
    Graceful,
    Kill,
    LinkDown,
    /// Graceful stop after a real was added to both nodes (ours only).
    GracefulAfterRealAdded,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Graceful => "graceful stop (SIGTERM)",
            Event::Kill => "SIGKILL",
            Event::LinkDown => "master link down",
            Event::GracefulAfterRealAdded => "graceful stop, a real added since the flows began",
        }
    }
}

/// The four counts of the held connections, summed over the runs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Conns {
    pub opened: usize,
    pub same: usize,
    pub moved: usize,
    pub broken: usize,
}

impl Conns {
    fn add(&mut self, r: &HeldReport) {
        self.opened += r.opened;
        self.same += r.same;
        self.moved += r.moved;
        self.broken += r.broken;
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub imp: Imp,
    /// From the tool itself (`keepalived --version`, our crate version).
    pub label: String,
    pub version: u8,
    pub event: Event,
    pub runs: usize,
    pub takeover_ms: Stat,
    pub first_reply_ms: Stat,
    pub first_forward_ms: Option<Stat>,
    /// Of one ping every millisecond.
    pub lost_pings: Stat,
    pub conns: Option<Conns>,
    /// Where each fault fell in the advert interval (0..1), for the record.
    pub phases: Vec<f64>,
}

enum Daemon {
    Lb(Agent),
    Ka(Keepalived),
}

/// One topology with two nodes of one implementation.
struct Bed {
    t: Topology,
    dir: WorkDir,
    imp: Imp,
    version: u8,
    nodes: [Option<Daemon>; 2],
    /// How many of the topology's reals the config lists.
    reals_in_config: usize,
    /// Ours with `flow_sync:` between the two nodes.
    flow_sync: bool,
    label: String,
}

fn interval(version: u8) -> Duration {
    if version == 2 {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    }
}

/// A uniformly random duration below `d` (xorshift seeded from the clock; no need for more).
fn random_below(d: Duration) -> Duration {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |t| t.as_nanos() as u64)
        | 1;
    let mut x = seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d.mul_f64((x % 1_000_000) as f64 / 1_000_000.0)
}

/// `keepalived --version`'s first line, e.g. "Keepalived v2.2.7 (01/16,2022)".
pub fn keepalived_version() -> Result<String> {
    let out = std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .context("running keepalived --version")?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Keepalived v"))
        .context("no version in keepalived --version")?;
    Ok(line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

impl Bed {
    fn new(imp: Imp, version: u8, reals_in_config: usize, flow_sync: bool) -> Result<Bed> {
        let mut t = Topology::build(
            "lbf",
            Spec {
                lbs: 2,
                reals: REALS,
                native_xdp: true,
            },
        )?;
        t.start_all_servers()?;
        let dir = WorkDir::new(&t.prefix)?;
        let label = match imp {
            Imp::Lb if flow_sync => {
                format!("lb-agent {} with flow_sync", env!("CARGO_PKG_VERSION"))
            }
            Imp::Lb => format!("lb-agent {}", env!("CARGO_PKG_VERSION")),
            Imp::Keepalived => keepalived_version()?,
        };
        let mut b = Bed {
            t,
            dir,
            imp,
            version,
            nodes: [None, None],
            reals_in_config,
            flow_sync,
            label,
        };
        b.start(0)?;
        if wait_for(Duration::from_secs(10), || b.holds(0).then_some(())).is_none() {
            bail!("{} node 0 never became master", imp.name());
        }
        b.start(1)?;
        std::thread::sleep(interval(version) * 4);
        Ok(b)
    }

    fn holds(&self, i: usize) -> bool {
        self.t.holds(i, VIP)
    }

    fn lb_config(&self, i: usize, reals: usize) -> String {
        let prio = if i == 0 { 150 } else { 100 };
        let mut n = if self.version == 2 {
            Node::v2(prio)
        } else {
            Node::v3(prio)
        };
        if self.flow_sync {
            n.top_extra = format!(
                "flow_sync:\n  peers: [{}, {}]\n  key: bench-flow-sync-key-0123456789\n",
                lb_tests::topology::lb_ip(0),
                lb_tests::topology::lb_ip(1)
            );
        }
        config(&self.t.router_id(i), &n, reals, "")
    }

    fn start(&mut self, i: usize) -> Result<()> {
        let node = match self.imp {
            Imp::Lb => {
                let rid = self.t.router_id(i);
                Daemon::Lb(Agent::start_with(
                    &super::agent_bin(),
                    &self.t.lbs[i].ns,
                    &self.dir,
                    &rid,
                    &self.lb_config(i, self.reals_in_config),
                )?)
            }
            Imp::Keepalived => {
                let f = Flavour {
                    version: self.version,
                    advert_int: if self.version == 2 { "1" } else { "0.1" },
                    auth_pass: None,
                    unicast: None,
                    v6: false,
                };
                let prio = if i == 0 { 150 } else { 100 };
                Daemon::Ka(Keepalived::start(
                    &self.t.lbs[i].ns,
                    &self.dir,
                    &format!("ka{i}"),
                    &keepalived::conf(&format!("ka{i}"), prio, &f),
                )?)
            }
        };
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Reloads both of our nodes with `reals` reals and waits until both applied it.
    fn reload_reals(&mut self, reals: usize) -> Result<()> {
        for i in 0..2 {
            let yaml = self.lb_config(i, reals);
            if let Some(Daemon::Lb(a)) = &self.nodes[i] {
                a.reload_and_wait(&yaml)?;
            }
        }
        self.reals_in_config = reals;
        Ok(())
    }

    /// Waits until node 0 is master again (and only it), then past the kernel's ARP locktime:
    /// Linux ignores an ARP update for an entry updated less than a second ago, so a failover
    /// right after the previous one would measure that, not the failover.
    fn settle(&self) -> Result<()> {
        let back = wait_for(Duration::from_secs(15), || {
            (self.holds(0) && !self.holds(1)).then_some(())
        });
        if back.is_none() {
            bail!("{} node 0 did not take the VIP back", self.imp.name());
        }
        std::thread::sleep((interval(self.version) * 3).max(Duration::from_millis(1500)));
        Ok(())
    }

    /// Brings node 0 back after `event`.
    fn restore(&mut self, event: Event) -> Result<()> {
        match event {
            Event::LinkDown => {
                self.t.lbs[0].ns.ip(&["link", "set", "eth0", "up"])?;
            }
            Event::Graceful | Event::Kill | Event::GracefulAfterRealAdded => {
                if let Some(n) = self.nodes[0].take() {
                    drop(n);
                }
                // A killed keepalived leaves its VIP (ours removes it when it restarts).
                if self.imp == Imp::Keepalived {
                    let _ =
                        self.t.lbs[0]
                            .ns
                            .ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
                }
                self.start(0)?;
            }
        }
        self.settle()
    }
}

/// `ip -batch -` already running in a namespace: a command written to it runs within a fraction
/// of a millisecond, so the fault time is known (spawning `ip` takes milliseconds).
struct IpBatch(Child);

impl IpBatch {
    fn start(ns: &Netns) -> Result<IpBatch> {
        let child = std::process::Command::new("ip")
            .args(["-n", &ns.name, "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting ip -batch")?;
        Ok(IpBatch(child))
    }

    fn run(&mut self, cmd: &str) -> Result<()> {
        let stdin = self.0.stdin.as_mut().context("ip -batch stdin")?;
        stdin.write_all(format!("{cmd}\n").as_bytes())?;
        stdin.flush()?;
        Ok(())
    }
}

impl Drop for IpBatch {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// The client pings the VIP every millisecond (`ping -i 0.001`); (sent, received) when done.
struct Pinger(Child);

impl Pinger {
    fn start(client: &Netns, secs: f64) -> Result<Pinger> {
        let count = (secs * 1000.0) as u64;
        let child = client
            .command("ping")
            .args(["-q", "-n", "-i", "0.001", "-W", "1", "-c"])
            .arg(count.to_string())
            .arg(VIP.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ping")?;
        Ok(Pinger(child))
    }

    fn finish(self) -> Result<(u64, u64)> {
        let out = self.0.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .with_context(|| {
                format!(
                    "ping printed no summary: {}{}",
                    text,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse().ok())
            .collect();
        match nums.as_slice() {
            [sent, got, ..] => Ok((*sent, *got)),
            _ => bail!("cannot read ping's summary: {line}"),
        }
    }
}

/// What one run measured.
struct Run {
    takeover_ms: f64,
    first_reply_ms: f64,
    first_forward_ms: Option<f64>,
    lost_pings: f64,
    conns: Option<HeldReport>,
    phase: f64,
}

fn ms_after(t: SystemTime, since: SystemTime) -> f64 {
    t.duration_since(since).unwrap_or_default().as_secs_f64() * 1000.0
}

/// One fault of node 0 and what followed.
fn run_once(bed: &mut Bed, event: Event) -> Result<Run> {
    let iv = interval(bed.version);
    let vip = SocketAddr::from((VIP, 80));
    let node1_mac = bed.t.lbs[1].mac;
    // Traffic: pings (both), UDP probes and held connections (ours).
    let window = if bed.version == 2 { 7.5 } else { 2.5 };
    let pinger = Pinger::start(&bed.t.client.ns, window)?;
    let lb = bed.imp == Imp::Lb;
    let prober = if lb {
        Some(Prober::start(
            &bed.t.client.ns,
            vip,
            Duration::from_millis(1),
        )?)
    } else {
        None
    };
    let held = if lb {
        Some(Held::open(
            &bed.t.client.ns,
            vip,
            CONNS,
            Duration::from_millis(100),
        )?)
    } else {
        None
    };
    if event == Event::GracefulAfterRealAdded {
        bed.reload_reals(REALS)?;
    }
    let sniff = Sniffer::start(&bed.t.switch, &bed.t.lbs[1].port)?;
    let mut ip = IpBatch::start(&bed.t.lbs[0].ns)?;
    // One whole interval first, so the capture holds the master's advert before the fault
    // whatever the phase (at v2's 1 s interval, 300 ms alone often did not).
    std::thread::sleep(Duration::from_millis(300) + iv + random_below(iv));
    let t0 = SystemTime::now();
    match event {
        Event::Graceful | Event::GracefulAfterRealAdded => match bed.nodes[0].as_mut() {
            Some(Daemon::Lb(a)) => a.proc.signal(libc::SIGTERM)?,
            Some(Daemon::Ka(k)) => k.proc.signal(libc::SIGTERM)?,
            None => bail!("node 0 not running"),
        },
        Event::Kill => match bed.nodes[0].as_mut() {
            Some(Daemon::Lb(a)) => a.proc.kill(),
            Some(Daemon::Ka(k)) => {
                let pid = k.proc.pid().context("keepalived pid")?;
                // SAFETY: kill(2) on the process group of a child we spawned.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            None => bail!("node 0 not running"),
        },
        Event::LinkDown => ip.run("link set eth0 down")?,
    }
    let took = wait_for(Duration::from_secs(10), || bed.holds(1).then_some(()));
    if took.is_none() {
        bail!("{}: no takeover after {}", bed.imp.name(), event.name());
    }
    std::thread::sleep(window_rest(window, t0));
    let frames = sniff.finish()?;
    let (sent, got) = pinger.finish()?;
    let conns = held.map(Held::finish);
    let probes = prober.map(Prober::finish);
    let from_new = |f: &&Frame| f.at >= t0 && !f.outgoing && f.src_mac() == Some(node1_mac);
    let advert = frames
        .iter()
        .filter(from_new)
        .find(|f| f.ipv4().is_some_and(|(p, ..)| p == 112))
        .context("the new master sent no advert in the capture")?;
    let reply = frames
        .iter()
        .filter(from_new)
        .find(|f| f.icmp_type() == Some(0) && f.ipv4().is_some_and(|(_, s, _)| s == VIP))
        .context("the new master answered no ping in the capture")?;
    let first_forward_ms = if lb {
        let fwd = frames
            .iter()
            .filter(from_new)
            .find(|f| {
                f.ipv4()
                    .is_some_and(|(p, s, d)| p == 17 && s == CLIENT_IP && d == VIP)
            })
            .context("the new master forwarded no UDP probe in the capture")?;
        Some(ms_after(fwd.at, t0))
    } else {
        None
    };
    if let Some(p) = &probes {
        if p.sent == 0 {
            bail!("the UDP prober sent nothing");
        }
    }
    // Where in the advert cycle the fault fell: time since node 0's last advert before it
    // (the switch floods node 0's multicast adverts out of node 1's port).
    let node0_mac = bed.t.lbs[0].mac;
    let last0 = frames
        .iter()
        .rev()
        .filter(|f| f.at < t0 && f.outgoing && f.src_mac() == Some(node0_mac))
        .find(|f| f.ipv4().is_some_and(|(p, ..)| p == 112))
        .context("no advert of the master before the fault in the capture")?;
    let phase = ms_after(t0, last0.at) / (iv.as_secs_f64() * 1000.0);
    drop(ip);
    Ok(Run {
        takeover_ms: ms_after(advert.at, t0),
        first_reply_ms: ms_after(reply.at, t0),
        first_forward_ms,
        lost_pings: sent.saturating_sub(got) as f64,
        conns,
        phase,
    })
}

/// What is left of a traffic window of `secs` seconds that started at `t0`, plus a margin.
fn window_rest(secs: f64, t0: SystemTime) -> Duration {
    let elapsed = SystemTime::now().duration_since(t0).unwrap_or_default();
    Duration::from_secs_f64(secs)
        .saturating_sub(elapsed)
        .saturating_sub(Duration::from_millis(300))
}

fn row(bed: &Bed, event: Event, runs: &[Run]) -> Row {
    let col = |f: fn(&Run) -> f64| Stat::of(&runs.iter().map(f).collect::<Vec<_>>());
    let conns = if bed.imp == Imp::Lb {
        let mut c = Conns::default();
        for r in runs.iter().filter_map(|r| r.conns.as_ref()) {
            c.add(r);
        }
        Some(c)
    } else {
        None
    };
    Row {
        imp: bed.imp,
        label: bed.label.clone(),
        version: bed.version,
        event,
        runs: runs.len(),
        takeover_ms: col(|r| r.takeover_ms),
        first_reply_ms: col(|r| r.first_reply_ms),
        first_forward_ms: (bed.imp == Imp::Lb).then(|| {
            Stat::of(
                &runs
                    .iter()
                    .filter_map(|r| r.first_forward_ms)
                    .collect::<Vec<_>>(),
            )
        }),
        lost_pings: col(|r| r.lost_pings),
        conns,
        phases: runs.iter().map(|r| r.phase).collect(),
    }
}

/// One event at one VRRP version: ours and keepalived alternating, `runs` each.
pub fn run_case(
    version: u8,
    event: Event,
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Row>> {
    // With a real added, ours against ours with flow_sync (keepalived has no such case).
    let contenders: &[(Imp, bool)] = if event == Event::GracefulAfterRealAdded {
        &[(Imp::Lb, false), (Imp::Lb, true)]
    } else {
        &[(Imp::Lb, false), (Imp::Keepalived, false)]
    };
    let reals_at_start = if event == Event::GracefulAfterRealAdded {
        REALS - 1
    } else {
        REALS
    };
    let mut beds = Vec::new();
    for &(imp, sync) in contenders {
        beds.push(Bed::new(imp, version, reals_at_start, sync)?);
    }
    let mut results: Vec<Vec<Run>> = beds.iter().map(|_| Vec::new()).collect();
    for r in 0..runs {
        for k in 0..beds.len() {
            // Alternate who goes first.
            let i = (r + k) % beds.len();
            let bed = &mut beds[i];
            progress(&format!(
                "failover: v{version} {}: run {}/{runs}: {}",
                event.name(),
                r + 1,
                bed.label
            ));
            let run = run_once(bed, event)?;
            bed.restore(event)?;
            if event == Event::GracefulAfterRealAdded {
                bed.reload_reals(REALS - 1)?;
                std::thread::sleep(Duration::from_secs(1));
            }
            results[i].push(run);
        }
    }
    Ok(beds
        .iter()
        .zip(results)
        .map(|(b, runs)| row(b, event, &runs))
        .collect())
}
