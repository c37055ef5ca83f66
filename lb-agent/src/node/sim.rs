//! Whole nodes on a simulated segment, in virtual time (test-only): every advert a node sends
//! goes through the real wire format to the other nodes (after a latency, unless a link is
//! down or the path is cut), and the host's side of each effect is played the way a kernel
//! would (VIPs held, XDP attached, removals confirmed). Nodes can crash (go silent, keeping
//! what they hold, as a dead host keeps its VIPs), restart, lose their link, be stopped or
//! reloaded. No root, no sockets, no clock.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use super::{Boot, CheckPlan, Effect, Event, Iface, Node};
use crate::{config::Config, netlink::link::Link, vrrp::packet};

pub const IFINDEX: u32 = 2;
/// One-way delay between two nodes.
pub const LATENCY: Duration = Duration::from_micros(200);

pub fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8))
}

fn mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 0, 1 + i as u8]
}

/// What the host of one node holds, as the effects left it.
#[derive(Default)]
pub struct HostState {
    pub vips: BTreeSet<IpAddr>,
    pub attached: BTreeSet<String>,
    pub garps: Vec<(Instant, IpAddr)>,
    pub hooks: Vec<(Instant, String)>,
    pub adverts: Vec<(Instant, u8)>,
    pub checks: Option<CheckPlan>,
    pub stopped: bool,
    /// When XDP was last attached and detached.
    pub attach_log: Vec<(Instant, bool)>,
    /// The last data-path state asked for.
    pub dataplane: Option<super::DataplaneState>,
    /// Scale-out: the VIPs last handed to BIRD.
    pub announced: Option<Vec<IpAddr>>,
    /// The operator overrides saved (they survive a restart, as the agent's state file does).
    pub saved: Vec<super::overrides::Saved>,
}

pub struct SimNode {
    pub cfg_yaml: String,
    pub node: Option<Node>,
    pub host: HostState,
    pub link_up: bool,
    pub crashed: bool,
}

struct InFlight {
    at: Instant,
    to: usize,
    ev: Event,
}

pub struct Sim {
    pub now: Instant,
    pub nodes: Vec<SimNode>,
    in_flight: Vec<InFlight>,
    /// Directed paths that drop everything (from, to).
    cut: BTreeSet<(usize, usize)>,
}

fn links(i: usize, up: bool) -> HashMap<u32, Link> {
    HashMap::from([(
        IFINDEX,
        Link {
            index: IFINDEX,
            name: "eth0".into(),
            mac: Some(mac(i)),
            up,
        },
    )])
}

fn boot(i: usize, cfg: &Config, up: bool) -> Boot {
    Boot {
        links: links(i, up),
        ifaces: cfg
            .instances
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    Iface {
                        ifindex: IFINDEX,
                        mac: mac(i),
                        src: addr(i),
                        up,
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn parse(yaml: &str) -> Config {
    match crate::config::parse(yaml, "sim.yaml") {
        Ok(c) => c,
        Err(e) => panic!("bad sim config: {e}\n{yaml}"),
    }
}

impl Sim {
    /// Nodes from their YAML configs, started together at t = 0.
    pub fn new(yamls: &[String]) -> Sim {
        let mut s = Sim {
            now: Instant::now(),
            nodes: Vec::new(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
        };
        for y in yamls {
            s.nodes.push(SimNode {
                cfg_yaml: y.clone(),
                node: None,
                host: HostState::default(),
                link_up: true,
                crashed: false,
            });
        }
        for i in 0..s.nodes.len() {
            s.start(i);
        }
        s
    }

    /// Starts (or restarts) node `i` from its config.
    pub fn start(&mut self, i: usize) {
        let cfg = parse(&self.nodes[i].cfg_yaml);
        let up = self.nodes[i].link_up;
        // A starting agent removes the VIPs an earlier run left (the agent's boot does it).
        self.nodes[i].host.vips.clear();
        let mut b = boot(i, &cfg, up);
        b.overrides = self.nodes[i].host.saved.clone();
        let node = Node::new(self.now, cfg.clone(), b);
        self.nodes[i].node = Some(node.unwrap_or_else(|e| panic!("node {i}: {e}")));
        self.nodes[i].crashed = false;
        self.nodes[i].host.stopped = false;
        self.pump(i);
    }

    fn deliver(&mut self, i: usize, ev: Event) {
        if self.nodes[i].crashed {
            return;
        }
        if let Some(n) = self.nodes[i].node.as_mut() {
            n.handle(self.now, ev);
        }
        self.pump(i);
    }

    /// Plays the host's side of node `i`'s effects.
    fn pump(&mut self, i: usize) {
        loop {
            let Some(e) = self.nodes[i].node.as_mut().and_then(Node::poll_effect) else {
                return;
            };
            let now = self.now;
            match e {
                Effect::SendAdvert { datagram, .. } => {
                    if let Ok((_, ad)) = packet::parse_datagram(&datagram) {
                        self.nodes[i].host.adverts.push((now, ad.priority));
                    }
                    if !self.nodes[i].link_up {
                        continue;
                    }
                    for j in 0..self.nodes.len() {
                        if j == i || !self.nodes[j].link_up || self.cut.contains(&(i, j)) {
                            continue;
                        }
                        if let Ok((meta, advert)) = packet::parse_datagram(&datagram) {
                            self.in_flight.push(InFlight {
                                at: now + LATENCY,
                                to: j,
                                ev: Event::Advert {
                                    ifname: "eth0".into(),
                                    src: meta.src.into(),
                                    advert,
                                },
                            });
                        }
                    }
                }
                Effect::SendFrame { frame, .. } => {
                    // An ARP frame's sender address (bytes 28..32).
                    if let Some(b) = frame.get(28..32) {
                        let vip = IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
                        self.nodes[i].host.garps.push((now, vip));
                    }
                }
                Effect::AddVip(v) => {
                    self.nodes[i].host.vips.insert(v.addr);
                }
                Effect::RemoveVip(v) => {
                    self.nodes[i].host.vips.remove(&v.addr);
                    self.in_flight.push(InFlight {
                        at: now + Duration::from_millis(1),
                        to: i,
                        ev: Event::VipRemoved(v.addr),
                    });
                }
                Effect::Dataplane(state) => {
                    let h = &mut self.nodes[i].host;
                    let was = !h.attached.is_empty();
                    h.attached = state.attach.clone();
                    if was == h.attached.is_empty() {
                        h.attach_log.push((now, !h.attached.is_empty()));
                    }
                    // The agent reports what is attached after each change.
                    self.in_flight.push(InFlight {
                        at: now,
                        to: i,
                        ev: Event::Attached(state.attach.clone()),
                    });
                    h.dataplane = Some(state);
                }
                Effect::Announce(vips) => self.nodes[i].host.announced = Some(vips),
                Effect::Hook { what, .. } => self.nodes[i].host.hooks.push((now, what)),
                Effect::Checks(plan) => self.nodes[i].host.checks = Some(plan),
                Effect::Stopped => self.nodes[i].host.stopped = true,
                Effect::SaveOverrides(list) => self.nodes[i].host.saved = list,
                Effect::Resolve { .. } | Effect::WatchNeighbours(_) => {}
            }
        }
    }

    /// Runs until `until`, delivering packets and firing timers in time order.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.in_flight.iter().map(|f| f.at).min();
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.crashed)
                .filter_map(|(i, n)| n.node.as_ref()?.poll_timeout().map(|t| (t, i)))
                .min();
            let next = [next_packet, next_timer.map(|(t, _)| t)]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    if next_packet == Some(t) {
                        let k = self
                            .in_flight
                            .iter()
                            .position(|f| f.at == t)
                            .unwrap_or_default();
                        let f = self.in_flight.remove(k);
                        self.deliver(f.to, f.ev);
                    } else if let Some((_, i)) = next_timer {
                        self.deliver(i, Event::Timer);
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `cond` holds (checked after every step), at most `limit`; the time it took.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let t0 = self.now;
        let step = Duration::from_millis(1);
        while self.now - t0 <= limit {
            if cond(self) {
                return Some(self.now - t0);
            }
            self.run_for(step);
        }
        None
    }

    /// Nodes that hold the VIP `vip`.
    pub fn holders(&self, vip: IpAddr) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].host.vips.contains(&vip))
            .collect()
    }

    /// Nodes with XDP attached.
    pub fn forwarders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].host.attached.is_empty())
            .collect()
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i]
            .node
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} not running"))
    }

    /// Node `i`'s link goes down or up (its packets stop both ways; it is told).
    pub fn link(&mut self, i: usize, up: bool) {
        self.nodes[i].link_up = up;
        self.deliver(i, Event::Links(links(i, up)));
    }

    /// Node `i` dies: silent, holding what it held.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].crashed = true;
        self.in_flight.retain(|f| f.to != i);
    }

    pub fn shutdown(&mut self, i: usize) {
        self.deliver(i, Event::Shutdown);
    }

    pub fn reload(&mut self, i: usize, yaml: &str) {
        self.nodes[i].cfg_yaml = yaml.to_owned();
        let cfg = parse(yaml);
        let ifaces = boot(i, &cfg, self.nodes[i].link_up).ifaces;
        self.deliver(
            i,
            Event::Reload {
                cfg: Box::new(cfg),
                ifaces,
            },
        );
    }

    /// Drops everything `from` sends to `to` (or restores it).
    pub fn cut(&mut self, from: usize, to: usize, cut: bool) {
        if cut {
            self.cut.insert((from, to));
        } else {
            self.cut.remove(&(from, to));
        }
    }

    pub fn event(&mut self, i: usize, ev: Event) {
        self.deliver(i, ev);
    }
}
