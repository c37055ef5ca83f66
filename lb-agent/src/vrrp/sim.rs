//! A simulated LAN of VRRP instances on virtual time (test-only).
//!
//! Every advert goes through the real wire format: the sender's
//! `Action::Transmit` is emitted as a complete IPv4 datagram, carried over a
//! directed link with its own latency, jitter, loss and up/down state, and
//! parsed by `parse_datagram` at the receiver before `handle_advert`. Nodes
//! can crash (go silent, keeping their state, as a dead host keeps its VIPs),
//! restart with a fresh `Instance`, or shut down gracefully. Randomness comes
//! from a seeded xorshift generator, so every failure names a reproducible
//! seed.
//!
//! Events at the same instant run deliveries first (in send order), then
//! timers (by node index): deterministic, and the order a real host would
//! see if the packet arrived just before its timer.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::packet::{emit_datagram, parse_datagram, V3Checksum, Version, VRRP_MCAST_V4};
use super::state::{Action, DropReason, Instance, InstanceConfig, Reason, State};
use super::timers;

/// xorshift64 seeded through splitmix64 (so small seeds are fine).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_nanos(self.below(max.as_nanos() as u64 + 1))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// A directed link. FIFO like an Ethernet segment or a veth pair: jitter
/// varies the delay but never reorders two packets on the same link. (With
/// reordering, an old advert overtaken by the priority-0 one re-arms the
/// backups' Master_Down_Timer and the handover degrades to a plain
/// Master_Down_Interval failover, as in any VRRP implementation.)
#[derive(Debug, Clone, Copy)]
struct Link {
    up: bool,
    loss_permille: u64,
    latency: Duration,
    jitter: Duration,
    /// Arrival time of the last packet sent on this link.
    last_arrival: Option<Instant>,
}

/// A state change as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    at: Instant,
    from: State,
    to: State,
    reason: Reason,
}

struct Node {
    addr: IpAddr,
    inst: Instance,
    /// False after a crash: no timers, no receive, no transmit.
    up: bool,
    changes: Vec<Change>,
    /// The state the instance's next change must start from.
    state: State,
    /// Adverts this node transmitted: (time, priority).
    sent: Vec<(Instant, u8)>,
    /// Adverts this node accepted: (time, source, priority, our state).
    heard: Vec<(Instant, IpAddr, u8, State)>,
    drops: Vec<(Instant, IpAddr, DropReason)>,
    split_brain: Vec<(Instant, IpAddr)>,
    ident: u16,
}

struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

enum Event {
    Deliver(usize),
    Timer(usize),
}

struct Lan {
    now: Instant,
    nodes: Vec<Node>,
    links: Vec<Vec<Link>>,
    in_flight: Vec<InFlight>,
    rng: Rng,
    seq: u64,
    /// Intervals with no live node holding the VIPs.
    gaps: Vec<(Instant, Instant)>,
    gap_start: Option<Instant>,
}

impl Lan {
    /// Nodes from configs; links get a random latency in
    /// `latency_max / 4 ..= latency_max` minus jitter, and jitter up to
    /// `latency_max / 8`, so no delivery takes longer than `latency_max`.
    fn new(t0: Instant, seed: u64, cfgs: Vec<InstanceConfig>, latency_max: Duration) -> Lan {
        let mut rng = Rng::new(seed);
        let n = cfgs.len();
        let jitter = latency_max / 8;
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            let row = (0..n)
                .map(|_| {
                    let lo = latency_max / 4;
                    let latency = lo + rng.duration(latency_max - jitter - lo);
                    Link {
                        up: true,
                        loss_permille: 0,
                        latency,
                        jitter,
                        last_arrival: None,
                    }
                })
                .collect();
            links.push(row);
        }
        let nodes = cfgs
            .into_iter()
            .map(|cfg| Node {
                addr: cfg.primary_addr,
                inst: Instance::new(cfg),
                up: true,
                changes: Vec::new(),
                state: State::Initialize,
                sent: Vec::new(),
                heard: Vec::new(),
                drops: Vec::new(),
                split_brain: Vec::new(),
                ident: 0,
            })
            .collect();
        Lan {
            now: t0,
            nodes,
            links,
            in_flight: Vec::new(),
            rng,
            seq: 0,
            gaps: Vec::new(),
            gap_start: None,
        }
    }

    // ----- scenario controls ------------------------------------------------

    fn start(&mut self, i: usize) {
        self.nodes[i].inst.startup(self.now);
        self.pump(i);
    }

    fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Silent death: the instance is frozen, nothing more is sent or heard.
    fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
        self.track_holders();
    }

    /// A new process on the same host.
    fn restart(&mut self, i: usize, cfg: InstanceConfig) {
        let node = &mut self.nodes[i];
        node.inst = Instance::new(cfg);
        node.state = State::Initialize;
        node.up = true;
        self.start(i);
    }

    fn shutdown(&mut self, i: usize) {
        self.nodes[i].inst.shutdown(self.now);
        self.pump(i);
    }

    fn set_loss(&mut self, permille: u64) {
        for link in self.links.iter_mut().flatten() {
            link.loss_permille = permille;
        }
    }

    /// Cuts or restores every link towards `to` (it goes deaf).
    fn set_deaf(&mut self, to: usize, deaf: bool) {
        for row in &mut self.links {
            row[to].up = !deaf;
        }
    }

    // ----- the event loop -------------------------------------------------

    fn next_event(&self) -> Option<(Instant, Event)> {
        let delivery = self
            .in_flight
            .iter()
            .enumerate()
            .min_by_key(|(_, f)| (f.at, f.seq))
            .map(|(k, f)| (f.at, Event::Deliver(k)));
        let timer = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.up)
            .filter_map(|(i, n)| n.inst.poll_timeout().map(|t| (t, i)))
            .min()
            .map(|(t, i)| (t, Event::Timer(i)));
        match (delivery, timer) {
            (Some(d), Some(t)) => Some(if d.0 <= t.0 { d } else { t }),
            (d, t) => d.or(t),
        }
    }

    fn run_until(&mut self, end: Instant) {
        while let Some((at, event)) = self.next_event() {
            if at > end {
                break;
            }
            assert!(at >= self.now, "time went backwards");
            self.now = at;
            match event {
                Event::Deliver(k) => {
                    let f = self.in_flight.swap_remove(k);
                    self.deliver(f);
                }
                Event::Timer(i) => {
                    self.nodes[i].inst.handle_timeout(at);
                    let next = self.nodes[i].inst.poll_timeout();
                    assert!(
                        next.is_none_or(|t| t > at),
                        "node {i}: timer did not advance"
                    );
                    self.pump(i);
                }
            }
        }
        self.now = end;
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn deliver(&mut self, f: InFlight) {
        let now = self.now;
        let node = &mut self.nodes[f.to];
        if !node.up {
            return;
        }
        let (meta, advert) = parse_datagram(&f.bytes).expect("the LAN corrupts nothing");
        let state = node.inst.state();
        match node.inst.handle_advert(now, meta.src, &advert) {
            Ok(()) => node
                .heard
                .push((now, meta.src.into(), advert.priority, state)),
            Err(reason) => node.drops.push((now, meta.src.into(), reason)),
        }
        self.pump(f.to);
    }

    /// Drains node `i`'s actions, as the driver would.
    fn pump(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].inst.poll_action() {
            match action {
                Action::Transmit(advert) => {
                    self.nodes[i].sent.push((self.now, advert.priority));
                    self.transmit(i, &advert);
                }
                Action::StateChanged { from, to, reason } => {
                    let node = &mut self.nodes[i];
                    assert_eq!(from, node.state, "node {i}: state changes must chain");
                    assert_ne!(from, to, "node {i}: a change changes something");
                    node.state = to;
                    node.changes.push(Change {
                        at: self.now,
                        from,
                        to,
                        reason,
                    });
                }
                Action::SplitBrain { peer, .. } => self.nodes[i].split_brain.push((self.now, peer)),
            }
        }
        self.track_holders();
    }

    fn transmit(&mut self, from: usize, advert: &super::packet::Advert) {
        let src = self.nodes[from].addr;
        let peers = self.nodes[from].inst.config().unicast_peers.clone();
        for to in 0..self.nodes.len() {
            let unicast = !peers.is_empty();
            if to == from || (unicast && !peers.contains(&self.nodes[to].addr)) {
                continue;
            }
            let dst = if unicast {
                self.nodes[to].addr
            } else {
                VRRP_MCAST_V4.into()
            };
            let node = &mut self.nodes[from];
            node.ident = node.ident.wrapping_add(1);
            let bytes = emit_datagram(
                advert,
                v4(src),
                v4(dst),
                node.ident,
                V3Checksum::PseudoHeader,
            );
            let link = self.links[from][to];
            if !link.up || self.rng.below(1000) < link.loss_permille {
                continue;
            }
            let at = self.now + link.latency + self.rng.duration(link.jitter);
            let at = link.last_arrival.map_or(at, |last| at.max(last));
            self.links[from][to].last_arrival = Some(at);
            self.seq += 1;
            self.in_flight.push(InFlight {
                at,
                seq: self.seq,
                to,
                bytes,
            });
        }
    }

    fn track_holders(&mut self) {
        let held = self
            .nodes
            .iter()
            .any(|n| n.up && n.inst.state().holds_vips());
        match (held, self.gap_start) {
            (false, None) => self.gap_start = Some(self.now),
            (true, Some(start)) => {
                self.gap_start = None;
                if self.now > start {
                    self.gaps.push((start, self.now));
                }
            }
            _ => {}
        }
    }

    // ----- observations ---------------------------------------------------

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up && self.nodes[i].inst.state() == State::Master)
            .collect()
    }

    /// First change of node `i` into `to` at or after `t`.
    fn first_change(&self, i: usize, to: State, t: Instant) -> Option<Change> {
        self.nodes[i]
            .changes
            .iter()
            .find(|c| c.at >= t && c.to == to)
            .copied()
    }

    /// Earliest change into Master by any live node at or after `t`.
    fn first_takeover(&self, t: Instant) -> Option<(usize, Change)> {
        (0..self.nodes.len())
            .filter_map(|i| self.first_change(i, State::Master, t).map(|c| (i, c)))
            .min_by_key(|(_, c)| c.at)
    }

    fn changes_since(&self, t: Instant) -> usize {
        self.nodes
            .iter()
            .map(|n| n.changes.iter().filter(|c| c.at >= t).count())
            .sum()
    }

    fn gaps_since(&self, t: Instant) -> Vec<(Instant, Instant)> {
        let mut gaps: Vec<_> = self.gaps.iter().filter(|g| g.1 > t).copied().collect();
        if let Some(start) = self.gap_start {
            gaps.push((start, self.now));
        }
        gaps
    }

    /// Every drop must be explainable; only these reasons may occur.
    fn assert_drops_only(&self, allowed: &[DropReason]) {
        for (i, n) in self.nodes.iter().enumerate() {
            for (at, src, reason) in &n.drops {
                assert!(
                    allowed.contains(reason),
                    "node {i} dropped {src}'s advert at {at:?}: {reason:?}"
                );
            }
        }
    }
}

// ----- scenario building blocks ---------------------------------------------

/// Protocol timing of one scenario.
#[derive(Debug, Clone, Copy)]
struct Timing {
    version: Version,
    interval: Duration,
    /// Upper bound on one-way delivery time.
    latency_max: Duration,
}

impl Timing {
    /// One of: v2 1 s, v3 1 s, v3 100 ms, v3 10 ms; latency up to 2 % of the
    /// interval (20 ms at 1 s, 200 µs at 10 ms).
    fn random(rng: &mut Rng) -> Timing {
        let (version, interval) = match rng.below(4) {
            0 => (Version::V2, Duration::from_secs(1)),
            1 => (Version::V3, Duration::from_secs(1)),
            2 => (Version::V3, Duration::from_millis(100)),
            _ => (Version::V3, Duration::from_millis(10)),
        };
        Timing {
            version,
            interval,
            latency_max: interval / 50,
        }
    }

    fn cs(&self) -> u16 {
        (self.interval.as_millis() / 10) as u16
    }

    fn mdi(&self, priority: u8) -> Duration {
        timers::master_down_interval(self.version, priority, self.cs())
    }

    fn skew(&self, priority: u8) -> Duration {
        timers::skew_time(self.version, priority, self.cs())
    }

    fn intervals(&self, n: u32) -> Duration {
        self.interval * n
    }
}

fn node_config(timing: Timing, addr: IpAddr, priority: u8) -> InstanceConfig {
    InstanceConfig {
        name: format!("vi_{addr}"),
        vrid: 7,
        version: timing.version,
        priority,
        advert_interval: timing.interval,
        primary_addr: addr,
        vips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))],
        ..InstanceConfig::default()
    }
}

/// `n` distinct random host addresses in 10.0.0.0/24, in random order, so
/// that node index and address order are unrelated.
fn addresses(rng: &mut Rng, n: usize) -> Vec<IpAddr> {
    let mut hosts: Vec<u8> = (1..=254).collect();
    rng.shuffle(&mut hosts);
    hosts[..n]
        .iter()
        .map(|h| IpAddr::V4(Ipv4Addr::new(10, 0, 0, *h)))
        .collect()
}

/// `n` distinct priorities in 1..=254.
fn distinct_priorities(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut all: Vec<u8> = (1..=254).collect();
    rng.shuffle(&mut all);
    all.truncate(n);
    all
}

/// The simulation runs IPv4 nodes.
fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// The node that must win: highest priority, ties to the highest address
/// (RFC 9568 §6.4.3, unsigned comparison).
fn expected_winner(cfgs: &[InstanceConfig], alive: &[usize]) -> usize {
    *alive
        .iter()
        .max_by_key(|&&i| (cfgs[i].priority, u32::from(v4(cfgs[i].primary_addr))))
        .expect("someone is alive")
}

/// Seeds per scenario; `VRRP_SIM_SEEDS=100000 cargo test --release` for a
/// soak run (4 000 seeds of all scenarios take about 25 s in a debug build).
fn seeds() -> std::ops::Range<u64> {
    let n = std::env::var("VRRP_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok());
    0..n.unwrap_or(300)
}

fn base_time() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// A converged LAN of `n` nodes with distinct priorities and no loss;
/// returns it with its configs and the winner.
fn converged(seed: u64, n: usize) -> (Lan, Vec<InstanceConfig>, Timing, usize) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let timing = Timing::random(&mut rng);
    let addrs = addresses(&mut rng, n);
    let prios = distinct_priorities(&mut rng, n);
    let cfgs: Vec<_> = (0..n)
        .map(|i| node_config(timing, addrs[i], prios[i]))
        .collect();
    let mut lan = Lan::new(base_time(), seed, cfgs.clone(), timing.latency_max);
    lan.start_all();
    let all: Vec<usize> = (0..n).collect();
    let winner = expected_winner(&cfgs, &all);
    lan.run_for(timing.mdi(1) + timing.intervals(3));
    assert_eq!(lan.masters(), [winner], "seed {seed}: initial convergence");
    (lan, cfgs, timing, winner)
}

// ----- scenarios -------------------------------------------------------------

/// 2..=5 nodes started together, priorities drawn from a small set (ties
/// likely; sometimes an owner), 0..20 % loss for 40 intervals, then healed.
/// The winner becomes master exactly one Master_Down_Interval after startup
/// (at once if it is the owner) and never leaves; after healing there is
/// exactly one master, it is the winner, and nothing changes any more.
#[test]
fn elects_highest_priority_ties_by_address_under_loss() {
    for seed in seeds() {
        let mut rng = Rng::new(seed);
        let timing = Timing::random(&mut rng);
        let n = rng.range(2, 5) as usize;
        let addrs = addresses(&mut rng, n);
        let owner = rng.below(6) == 0;
        let cfgs: Vec<_> = (0..n)
            .map(|i| {
                let p = if owner && i == 0 {
                    255
                } else {
                    [50, 100, 150, 200][rng.below(4) as usize]
                };
                node_config(timing, addrs[i], p)
            })
            .collect();
        let t0 = base_time();
        let mut lan = Lan::new(t0, seed, cfgs.clone(), timing.latency_max);
        lan.set_loss(rng.below(200));
        lan.start_all();
        let all: Vec<usize> = (0..n).collect();
        let w = expected_winner(&cfgs, &all);
        let p = cfgs[w].priority;
        lan.run_until(t0 + timing.mdi(1) + timing.intervals(40));

        let won = lan
            .first_change(w, State::Master, t0)
            .expect("winner became master");
        let when = if p == 255 { t0 } else { t0 + timing.mdi(p) };
        assert_eq!(won.at, when, "seed {seed}: winner's takeover time");
        assert!(
            lan.nodes[w].changes.iter().all(|c| c.from != State::Master),
            "seed {seed}: the winner never leaves Master"
        );

        lan.set_loss(0);
        lan.run_for(timing.mdi(1) + timing.intervals(2));
        assert_eq!(lan.masters(), [w], "seed {seed}: one master after healing");
        let settled = lan.now;
        lan.run_for(timing.intervals(20));
        assert_eq!(lan.changes_since(settled), 0, "seed {seed}: stable");
        assert!(
            lan.gaps_since(won.at).is_empty(),
            "seed {seed}: VIPs always held"
        );
        lan.assert_drops_only(&[]);
    }
}

/// The master dies silently. The first takeover comes after more than
/// 2 intervals (no false alarm) and at most Master_Down_Interval (of the
/// best survivor) plus latency after the crash; the best survivor ends up as
/// the only live master.
#[test]
fn crash_fails_over_within_master_down_interval() {
    for seed in seeds() {
        let n = 2 + (seed % 4) as usize;
        let (mut lan, cfgs, timing, w) = converged(seed, n);
        let phase = lan.rng.duration(timing.interval);
        lan.run_for(phase);
        let tc = lan.now;
        lan.crash(w);
        let alive: Vec<usize> = (0..n).filter(|&i| i != w).collect();
        let next = expected_winner(&cfgs, &alive);
        let bound = timing.mdi(cfgs[next].priority) + timing.latency_max;
        lan.run_for(bound + timing.intervals(3));

        let (_, first) = lan.first_takeover(tc).expect("someone took over");
        assert!(
            first.at > tc + timing.intervals(2),
            "seed {seed}: too early"
        );
        assert!(
            first.at <= tc + bound,
            "seed {seed}: {:?} > bound {bound:?}",
            first.at - tc
        );
        assert_eq!(first.reason, Reason::MasterDownTimer);
        assert_eq!(lan.masters(), [next], "seed {seed}");
    }
}

/// The master shuts down gracefully. The best backup takes over within its
/// Skew_Time plus latency; the old master holds the VIPs (Releasing) until
/// a new master's advert reaches it, so there is never a moment without a
/// VIP holder; it sends exactly one advert (priority 0) after the shutdown.
#[test]
fn graceful_shutdown_hands_over_without_a_gap() {
    for seed in seeds() {
        let n = 2 + (seed % 4) as usize;
        let (mut lan, cfgs, timing, w) = converged(seed, n);
        let phase = lan.rng.duration(timing.interval);
        lan.run_for(phase);
        let ts = lan.now;
        lan.shutdown(w);
        let alive: Vec<usize> = (0..n).filter(|&i| i != w).collect();
        let next = expected_winner(&cfgs, &alive);
        let skew = timing.skew(cfgs[next].priority);
        lan.run_for(timing.mdi(1) + timing.intervals(3));

        let (_, first) = lan.first_takeover(ts).expect("someone took over");
        assert!(
            first.at >= ts + skew,
            "seed {seed}: before the best survivor's Skew_Time"
        );
        assert!(
            first.at <= ts + skew + timing.latency_max,
            "seed {seed}: {:?} after shutdown, skew {skew:?}",
            first.at - ts
        );
        assert!(
            matches!(first.reason, Reason::PriorityZeroReceived { peer } if peer == cfgs[w].primary_addr)
        );

        let old = &lan.nodes[w];
        let releasing = lan
            .first_change(w, State::Releasing, ts)
            .expect("releasing");
        let stopped = lan.first_change(w, State::Stopped, ts).expect("stopped");
        assert_eq!(releasing.at, ts);
        let Reason::NewMasterSeen { peer } = stopped.reason else {
            panic!("seed {seed}: stopped by {:?}", stopped.reason);
        };
        let heard = old
            .heard
            .iter()
            .find(|h| h.0 == stopped.at)
            .expect("the advert that stopped it");
        assert_eq!((heard.1, heard.3), (peer, State::Releasing));
        assert!(heard.2 > 0);
        assert!(
            stopped.at > first.at,
            "seed {seed}: only after a new master advertised"
        );
        assert!(
            stopped.at <= first.at + timing.latency_max,
            "seed {seed}: first advert stops it"
        );
        let after: Vec<_> = old.sent.iter().filter(|s| s.0 >= ts).collect();
        assert_eq!(after, [&(ts, 0)], "seed {seed}: one priority-0 advert");

        assert!(
            lan.gaps_since(ts).is_empty(),
            "seed {seed}: gaps {:?}",
            lan.gaps_since(ts)
        );
        assert_eq!(lan.masters(), [next], "seed {seed}");
    }
}

/// Same under 0..30 % loss: the old master reaches Stopped by the handover
/// timeout at the latest, and the best survivor ends up sole master.
#[test]
fn graceful_shutdown_under_loss_still_converges() {
    for seed in seeds() {
        let n = 2 + (seed % 4) as usize;
        let (mut lan, cfgs, timing, w) = converged(seed, n);
        let loss = lan.rng.below(300);
        lan.set_loss(loss);
        lan.run_for(timing.intervals(5));
        // Loss may have raised a transient master; let it settle first.
        lan.set_loss(0);
        lan.run_for(timing.mdi(1) + timing.intervals(2));
        assert_eq!(lan.masters(), [w], "seed {seed}");
        lan.set_loss(loss);
        let ts = lan.now;
        lan.shutdown(w);
        let handover = lan.nodes[w].inst.handover_timeout();
        lan.run_for(handover);
        assert_eq!(lan.nodes[w].inst.state(), State::Stopped, "seed {seed}");
        assert!(lan.first_change(w, State::Stopped, ts).unwrap().at <= ts + handover);
        lan.set_loss(0);
        lan.run_for(timing.mdi(1) + timing.intervals(3));
        let alive: Vec<usize> = (0..n).filter(|&i| i != w).collect();
        assert_eq!(
            lan.masters(),
            [expected_winner(&cfgs, &alive)],
            "seed {seed}"
        );
    }
}

/// One-way partition (the classic firewall split brain): a backup stops
/// hearing anyone but is still heard. It becomes a second master after
/// Master_Down_Interval; the real master keeps its role, answers every one
/// of its adverts at once and counts each as a split brain; the deaf node
/// counts none. Once healed, the pair converges within one advertisement
/// interval plus latency.
#[test]
fn one_way_partition_split_brain_then_heal() {
    for seed in seeds() {
        let n = 2 + (seed % 3) as usize;
        let (mut lan, cfgs, timing, w) = converged(seed, n);
        let candidates: Vec<usize> = (0..n).filter(|&i| i != w).collect();
        let deaf = candidates[lan.rng.below(candidates.len() as u64) as usize];
        let phase = lan.rng.duration(timing.interval);
        lan.run_for(phase);
        let tp = lan.now;
        lan.set_deaf(deaf, true);
        let k = 3 + lan.rng.below(8) as u32;
        lan.run_for(timing.mdi(cfgs[deaf].priority) + timing.latency_max + timing.intervals(k));

        let rogue = lan
            .first_change(deaf, State::Master, tp)
            .expect("deaf node took over");
        assert!(rogue.at > tp + timing.intervals(2), "seed {seed}");
        assert!(
            rogue.at <= tp + timing.mdi(cfgs[deaf].priority) + timing.latency_max,
            "seed {seed}"
        );
        assert_eq!(rogue.reason, Reason::MasterDownTimer);
        let mut masters = lan.masters();
        masters.sort_unstable();
        let mut both = vec![w, deaf];
        both.sort_unstable();
        assert_eq!(masters, both, "seed {seed}: exactly two masters");
        assert_eq!(
            lan.changes_since(tp),
            1,
            "seed {seed}: only the deaf node moved"
        );

        let deaf_addr = cfgs[deaf].primary_addr;
        let heard_from_deaf = lan.nodes[w]
            .heard
            .iter()
            .filter(|h| h.1 == deaf_addr && h.0 >= tp)
            .count();
        let counted = lan.nodes[w]
            .split_brain
            .iter()
            .filter(|s| s.1 == deaf_addr && s.0 >= tp)
            .count();
        assert!(heard_from_deaf >= k as usize, "seed {seed}");
        assert_eq!(
            counted, heard_from_deaf,
            "seed {seed}: every rogue advert is a split brain"
        );
        let total = lan.nodes[w].split_brain.len() as u64;
        assert_eq!(
            lan.nodes[w].inst.split_brain_count(),
            total,
            "seed {seed}: counter = events"
        );
        assert!(
            lan.nodes[deaf].split_brain.iter().all(|s| s.0 < tp),
            "seed {seed}: the deaf node hears nothing"
        );
        // The master answered each rogue advert at the instant it arrived.
        for h in lan.nodes[w].heard.iter().filter(|h| h.1 == deaf_addr) {
            assert!(
                lan.nodes[w].sent.iter().any(|s| s.0 == h.0),
                "seed {seed}: answered"
            );
        }

        let phase = lan.rng.duration(timing.interval);
        lan.run_for(phase);
        let th = lan.now;
        lan.set_deaf(deaf, false);
        lan.run_for(timing.interval + timing.latency_max);
        assert_eq!(
            lan.masters(),
            [w],
            "seed {seed}: healed within one interval"
        );
        let back = lan
            .first_change(deaf, State::Backup, th)
            .expect("stepped down");
        assert_eq!(
            back.reason,
            Reason::HigherPriorityAdvert {
                peer: cfgs[w].primary_addr,
                priority: cfgs[w].priority
            }
        );
    }
}

/// `nopreempt`: a higher-priority node that starts while a lower one is
/// master stays backup for as long as the master keeps advertising.
#[test]
fn nopreempt_holds() {
    for seed in seeds() {
        let mut rng = Rng::new(seed);
        let timing = Timing::random(&mut rng);
        let addrs = addresses(&mut rng, 3);
        let cfgs = vec![
            InstanceConfig {
                preempt: false,
                ..node_config(timing, addrs[0], 200)
            },
            node_config(timing, addrs[1], 100),
            node_config(timing, addrs[2], 50),
        ];
        let t0 = base_time();
        let mut lan = Lan::new(t0, seed, cfgs.clone(), timing.latency_max);
        lan.start(1);
        lan.start(2);
        lan.run_for(timing.mdi(100) + rng.duration(timing.interval));
        assert_eq!(lan.masters(), [1]);
        let t1 = lan.now;
        lan.start(0);
        lan.run_for(timing.intervals(100));
        assert_eq!(lan.masters(), [1], "seed {seed}");
        assert_eq!(
            lan.changes_since(t1),
            1,
            "seed {seed}: only node 0's Initialize -> Backup"
        );
        assert_eq!(lan.nodes[0].inst.state(), State::Backup);
    }
}

/// Preemption: the high-priority master crashes, a backup takes over, the
/// high-priority node restarts and takes its role back exactly one
/// Master_Down_Interval after startup (it ignores the lower master's
/// adverts), or with `preempt_delay` D within the interval before
/// startup + D + Master_Down_Interval; the old backup steps down on its
/// first advert, and VIPs are held throughout the preemption.
#[test]
fn preempt_brings_the_higher_priority_back() {
    for seed in seeds() {
        let n = 2 + (seed % 3) as usize;
        let (mut lan, cfgs, timing, w) = converged(seed, n);
        let delay = if seed % 2 == 0 {
            Duration::ZERO
        } else {
            lan.rng.duration(timing.intervals(5))
        };
        lan.crash(w);
        lan.run_for(timing.mdi(1) + timing.intervals(3));
        let alive: Vec<usize> = (0..n).filter(|&i| i != w).collect();
        let b = expected_winner(&cfgs, &alive);
        assert_eq!(lan.masters(), [b], "seed {seed}");
        let phase = lan.rng.duration(timing.interval);
        lan.run_for(phase);
        let tr = lan.now;
        let cfg = InstanceConfig {
            preempt_delay: delay,
            ..cfgs[w].clone()
        };
        lan.restart(w, cfg);
        lan.run_for(delay + timing.mdi(1) + timing.intervals(3));

        let back = lan
            .first_change(w, State::Master, tr)
            .expect("preempted back");
        let mdi = timing.mdi(cfgs[w].priority);
        if delay.is_zero() {
            assert_eq!(back.at, tr + mdi, "seed {seed}");
        } else {
            assert!(back.at <= tr + delay + mdi, "seed {seed}");
            // The last advert it followed arrived at most one interval (plus
            // jitter) before the delay ran out.
            assert!(
                back.at + timing.interval + timing.latency_max >= tr + delay + mdi,
                "seed {seed}"
            );
        }
        assert_eq!(
            back.reason,
            Reason::Preempted {
                peer: cfgs[b].primary_addr
            }
        );
        let yielded = lan
            .first_change(b, State::Backup, back.at)
            .expect("old backup yields");
        assert!(
            yielded.at > back.at && yielded.at <= back.at + timing.latency_max,
            "seed {seed}"
        );
        assert_eq!(lan.masters(), [w], "seed {seed}");
        assert!(lan.gaps_since(tr).is_empty(), "seed {seed}");
    }
}

/// Unicast mode: adverts from a source that is not a configured peer (here a
/// rogue router advertising priority 254 to everyone) are dropped as
/// `NotAPeer` and never influence the election or count as split brain.
#[test]
fn unicast_ignores_non_peers() {
    for seed in seeds() {
        let mut rng = Rng::new(seed);
        let timing = Timing::random(&mut rng);
        let n = rng.range(2, 4) as usize;
        let addrs = addresses(&mut rng, n + 1);
        let prios = distinct_priorities(&mut rng, n);
        let legit = &addrs[..n];
        let mut cfgs: Vec<_> = (0..n)
            .map(|i| InstanceConfig {
                unicast_peers: legit.iter().copied().filter(|a| *a != legit[i]).collect(),
                ..node_config(timing, legit[i], prios[i])
            })
            .collect();
        cfgs.push(InstanceConfig {
            unicast_peers: legit.to_vec(),
            ..node_config(timing, addrs[n], 254)
        });
        let mut lan = Lan::new(base_time(), seed, cfgs.clone(), timing.latency_max);
        lan.start_all();
        lan.run_for(timing.mdi(1) + timing.intervals(10));
        let all: Vec<usize> = (0..n).collect();
        let w = expected_winner(&cfgs, &all);
        let mut masters = lan.masters();
        masters.sort_unstable();
        let mut want = vec![w, n];
        want.sort_unstable();
        assert_eq!(
            masters, want,
            "seed {seed}: the rogue is master only in its own mind"
        );
        for i in 0..n {
            let dropped = lan.nodes[i].inst.stats().dropped(DropReason::NotAPeer);
            assert!(dropped >= 10, "seed {seed}: node {i} dropped {dropped}");
            assert!(
                lan.nodes[i].split_brain.iter().all(|s| s.1 != addrs[n]),
                "seed {seed}"
            );
            assert!(lan.nodes[i].heard.iter().all(|h| h.1 != addrs[n]));
        }
        lan.assert_drops_only(&[DropReason::NotAPeer]);
    }
}

/// Chaos: random loss, crashes, restarts and graceful shutdowns of random
/// nodes. Whatever happened, once the network is healed and quiet there is
/// exactly one live master and it is the best live node, and each node's
/// state changes chain (checked on every action by `pump`).
#[test]
fn chaos_always_reconverges() {
    for seed in seeds() {
        let mut rng = Rng::new(seed.wrapping_mul(7919));
        let timing = Timing::random(&mut rng);
        let n = rng.range(2, 5) as usize;
        let addrs = addresses(&mut rng, n);
        let prios = distinct_priorities(&mut rng, n);
        let cfgs: Vec<_> = (0..n)
            .map(|i| node_config(timing, addrs[i], prios[i]))
            .collect();
        let mut lan = Lan::new(base_time(), seed, cfgs.clone(), timing.latency_max);
        lan.set_loss(rng.below(250));
        lan.start_all();
        let mut alive: Vec<bool> = vec![true; n];
        for _ in 0..12 {
            lan.run_for(rng.duration(timing.intervals(6)));
            let i = rng.below(n as u64) as usize;
            match rng.below(3) {
                0 if alive[i] => {
                    lan.crash(i);
                    alive[i] = false;
                }
                1 if alive[i] => {
                    lan.shutdown(i);
                    alive[i] = false;
                }
                _ if !alive[i] => {
                    lan.restart(i, cfgs[i].clone());
                    alive[i] = true;
                }
                _ => {}
            }
        }
        if !alive.iter().any(|a| *a) {
            lan.restart(0, cfgs[0].clone());
            alive[0] = true;
        }
        lan.set_loss(0);
        lan.run_for(timing.mdi(1) + timing.intervals(4));
        let live: Vec<usize> = (0..n).filter(|&i| alive[i]).collect();
        assert_eq!(
            lan.masters(),
            [expected_winner(&cfgs, &live)],
            "seed {seed}"
        );
        let settled = lan.now;
        lan.run_for(timing.intervals(10));
        assert_eq!(lan.changes_since(settled), 0, "seed {seed}: quiet");
        lan.assert_drops_only(&[DropReason::Inactive]);
    }
}
