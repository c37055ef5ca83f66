//! Failover in the lab, ours against keepalived (Debian's package) with the same settings:
//! takeover time and lost probes (a client pinging the VIP every 10 ms) for a graceful stop,
//! SIGKILL and link down, v2 (1 s) and v3 (100 ms); for ours also the UDP probes through the
//! data path and the share of 200 established TCP connections through the VIP that survive.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use super::Stat;
use lb_tests::{
    agent::{Agent, WorkDir},
    client::{LongConn, Prober},
    keepalived::{self, Flavour, Keepalived},
    netns::wait_for,
    pair::{config, Node},
    topology::{Spec, Topology, VIP},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Imp {
    Lb,
    Keepalived,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Event {
    Graceful,
    Kill,
    LinkDown,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Graceful => "graceful stop (SIGTERM)",
            Event::Kill => "SIGKILL",
            Event::LinkDown => "master link down",
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub imp: Imp,
    pub version: u8,
    pub event: Event,
    pub runs: usize,
    pub takeover_ms: Stat,
    pub lost_pings: Stat,
    /// Ours only: UDP probes through the data path that got no answer.
    pub lost_udp: Option<Stat>,
    /// Ours only: established TCP connections (of 200) still working afterwards.
    pub tcp_survived: Option<Stat>,
}

enum Node2 {
    Lb(Agent),
    Ka(Keepalived),
}

struct Bed {
    t: Topology,
    dir: WorkDir,
    imp: Imp,
    version: u8,
    nodes: [Option<Node2>; 2],
}

fn holds(t: &Topology, i: usize) -> bool {
    t.holds(i, VIP)
}

impl Bed {
    fn new(imp: Imp, version: u8) -> Result<Bed> {
        let mut t = Topology::build(
            "lbf",
            Spec {
                lbs: 2,
                reals: 1,
                native_xdp: true,
            },
        )?;
        t.start_all_servers()?;
        let dir = WorkDir::new(&t.prefix)?;
        let mut b = Bed {
            t,
            dir,
            imp,
            version,
            nodes: [None, None],
        };
        b.start(0)?;
        if wait_for(Duration::from_secs(10), || holds(&b.t, 0).then_some(())).is_none() {
            bail!("node 0 never master");
        }
        b.start(1)?;
        std::thread::sleep(b.interval() * 4);
        Ok(b)
    }

    fn interval(&self) -> Duration {
        if self.version == 2 {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        }
    }

    fn start(&mut self, i: usize) -> Result<()> {
        let prio = if i == 0 { 150 } else { 100 };
        let node = match self.imp {
            Imp::Lb => {
                let rid = self.t.router_id(i);
                let n = if self.version == 2 {
                    Node::v2(prio)
                } else {
                    Node::v3(prio)
                };
                Node2::Lb(Agent::start_with(
                    &super::agent_bin(),
                    &self.t.lbs[i].ns,
                    &self.dir,
                    &rid,
                    &config(&rid, &n, 1, ""),
                )?)
            }
            Imp::Keepalived => {
                let f = Flavour {
                    version: self.version,
                    advert_int: if self.version == 2 { "1" } else { "0.1" },
                    auth_pass: None,
                    unicast: None,
                };
                Node2::Ka(Keepalived::start(
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

    /// Does `event` to node 0 (the master); returns when node 1 holds the VIP.
    fn fail(&mut self, event: Event) -> Result<Duration> {
        let t0 = Instant::now();
        match event {
            Event::Graceful => match self.nodes[0].as_mut() {
                Some(Node2::Lb(a)) => {
                    a.proc.signal(libc::SIGTERM)?;
                }
                Some(Node2::Ka(k)) => {
                    k.proc.signal(libc::SIGTERM)?;
                }
                None => {}
            },
            Event::Kill => match self.nodes[0].as_mut() {
                Some(Node2::Lb(a)) => a.proc.kill(),
                Some(Node2::Ka(k)) => {
                    if let Some(pid) = k.proc.pid() {
                        // SAFETY: kill(2) on the process group of a child we spawned.
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                }
                None => {}
            },
            Event::LinkDown => {
                self.t.lbs[0].ns.ip(&["link", "set", "eth0", "down"])?;
            }
        }
        let took = wait_for(Duration::from_secs(10), || {
            holds(&self.t, 1).then(|| t0.elapsed())
        });
        took.ok_or_else(|| anyhow::anyhow!("no takeover after {}", event.name()))
    }

    /// Brings node 0 back and waits until it is master again.
    fn restore(&mut self, event: Event) -> Result<()> {
        match event {
            Event::LinkDown => {
                self.t.lbs[0].ns.ip(&["link", "set", "eth0", "up"])?;
            }
            Event::Graceful | Event::Kill => {
                if let Some(n) = self.nodes[0].take() {
                    drop(n);
                }
                // A killed keepalived leaves its VIP; so does ours (its restart removes it).
                if self.imp == Imp::Keepalived {
                    let _ =
                        self.t.lbs[0]
                            .ns
                            .ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
                }
                std::thread::sleep(Duration::from_millis(200));
                self.start(0)?;
            }
        }
        let back = wait_for(Duration::from_secs(15), || {
            (holds(&self.t, 0) && !holds(&self.t, 1)).then_some(())
        });
        if back.is_none() {
            bail!("node 0 did not take the VIP back");
        }
        // Linux ignores an ARP update for an entry updated less than `locktime` (1 s) ago: a
        // failover right after the previous one would measure that, not the failover.
        std::thread::sleep((self.interval() * 3).max(Duration::from_millis(1500)));
        Ok(())
    }
}

/// ping -i 0.01 for `secs`: (sent, received).
fn ping(t: &Topology, secs: f64) -> std::thread::JoinHandle<(u64, u64)> {
    let cmd = t.client.ns.command("ping");
    let count = (secs * 100.0) as u64;
    let mut cmd = cmd;
    cmd.args([
        "-q",
        "-n",
        "-i",
        "0.01",
        "-W",
        "1",
        "-c",
        &count.to_string(),
        &VIP.to_string(),
    ]);
    std::thread::spawn(move || {
        let out = cmd
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let line = out
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("");
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse().ok())
            .collect();
        (
            nums.first().copied().unwrap_or(0),
            nums.get(1).copied().unwrap_or(0),
        )
    })
}

pub fn run_case(
    imp: Imp,
    version: u8,
    event: Event,
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Row> {
    progress(&format!(
        "failover: {} v{version} {} x{runs}",
        if imp == Imp::Lb {
            "lb-agent"
        } else {
            "keepalived"
        },
        event.name()
    ));
    let mut bed = Bed::new(imp, version)?;
    let (mut took, mut lost, mut udp, mut tcp) = (vec![], vec![], vec![], vec![]);
    let window = if version == 2 { 7.0 } else { 3.0 };
    for _ in 0..runs {
        let vip = SocketAddr::from((VIP, 80));
        let prober = if imp == Imp::Lb {
            Prober::start(&bed.t.client.ns, vip, Duration::from_millis(10)).ok()
        } else {
            None
        };
        let pinger = ping(&bed.t, window);
        std::thread::sleep(Duration::from_millis(500));
        let d = bed.fail(event)?;
        took.push(d.as_secs_f64() * 1000.0);
        let (sent, got) = pinger.join().unwrap_or((0, 0));
        lost.push(sent.saturating_sub(got) as f64);
        if let Some(p) = prober {
            udp.push(p.finish().lost as f64);
        }
        bed.restore(event)?;
    }
    // Survival of established connections is measured on a separate pass so pings and the
    // connection churn do not disturb each other.
    if imp == Imp::Lb {
        for _ in 0..runs.min(3) {
            let vip = SocketAddr::from((VIP, 80));
            let mut conns: Vec<LongConn> = (0..200)
                .filter_map(|_| LongConn::open(&bed.t.client.ns, vip).ok())
                .collect();
            let opened = conns.len();
            bed.fail(event)?;
            std::thread::sleep(Duration::from_millis(if version == 2 { 1500 } else { 500 }));
            let ok = conns
                .iter_mut()
                .map(|c| c.ping(1).is_ok_and(|r| r == c.real))
                .filter(|ok| *ok)
                .count();
            tcp.push(if opened == 0 {
                0.0
            } else {
                ok as f64 * 200.0 / opened as f64
            });
            drop(conns);
            bed.restore(event)?;
        }
    }
    Ok(Row {
        imp,
        version,
        event,
        runs,
        takeover_ms: Stat::of(&took),
        lost_pings: Stat::of(&lost),
        lost_udp: (!udp.is_empty()).then(|| Stat::of(&udp)),
        tcp_survived: (!tcp.is_empty()).then(|| Stat::of(&tcp)),
    })
}
