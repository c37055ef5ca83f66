//! The node's picture of each service and real: config, health, resolved MAC. A pure function
//! of it gives the desired data-path state (unit-tested without a kernel).

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_common::{ServiceKey, SVC_F_AFFINITY, SVC_F_HASH_SRC};
use tracing::{info, warn};

use super::{
    effects::Effects,
    io::RealKey,
    overrides::{Override, Saved},
};
use crate::{
    config::host_port,
    config::{RealCfg, Scheduler, ServiceCfg},
    dataplane::{DesiredReal, DesiredService, L2},
};

/// Health of a real as the data path should treat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet: no new flows (a new real is checked before it gets traffic).
    Unknown,
    /// Found in the maps at startup and not checked yet: keeps serving as before.
    Assumed,
    Up,
    Down,
}

impl Health {
    pub fn label(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Assumed => "assumed-up",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RealRt {
    pub cfg: RealCfg,
    pub health: Health,
    /// Weight set by a dynamic script check (`misc_dynamic`).
    pub dynamic_weight: Option<u32>,
    /// Weight set by the operator (`lb-agent real drain|weight`): wins over the others.
    pub operator: Option<Override>,
    pub last_result: String,
    pub last_latency: Option<std::time::Duration>,
    /// Health transitions since the agent started.
    pub transitions: u64,
    /// Check rounds that passed and that failed since the agent started.
    pub checks_ok: u64,
    pub checks_failed: u64,
    pub l2: Option<L2>,
    /// A reload removed this real while it served: it keeps its established flows (no new
    /// ones, no checks) until [`REMOVED_GRACE`] after this.
    pub removed_at: Option<Instant>,
}

/// How long a real that a reload removed keeps its established flows, as IPVS keeps the
/// connections of a deleted destination: a reload must not reset connections. To move
/// long-lived flows off a real first, drain it (`lb-agent real drain`) before removing it.
pub const REMOVED_GRACE: Duration = Duration::from_secs(300);

impl RealRt {
    pub fn new(cfg: RealCfg) -> Self {
        let health = if cfg.checks.is_empty() {
            Health::Up
        } else {
            Health::Unknown
        };
        RealRt {
            cfg,
            health,
            dynamic_weight: None,
            operator: None,
            last_result: String::new(),
            last_latency: None,
            transitions: 0,
            checks_ok: 0,
            checks_failed: 0,
            l2: None,
            removed_at: None,
        }
    }

    fn serving(&self) -> bool {
        matches!(self.health, Health::Up | Health::Assumed) && self.removed_at.is_none()
    }

    /// The health shown in status: `removed` while a removed real keeps its flows.
    pub fn health_label(&self) -> &'static str {
        if self.removed_at.is_some() {
            "removed"
        } else {
            self.health.label()
        }
    }

    /// What the data path should do with this real.
    pub fn desired(&self) -> DesiredReal {
        let serving = self.serving();
        DesiredReal {
            addr: self.cfg.addr,
            port: self.cfg.port,
            weight: if serving {
                self.operator
                    .map(|o| o.weight)
                    .or(self.dynamic_weight)
                    .unwrap_or(self.cfg.weight)
            } else {
                0
            },
            // Draining (`inhibit_on_failure`): a failed real takes no new flows but keeps
            // the ones it has.
            keep_flows: serving
                || self.removed_at.is_some()
                || (self.cfg.inhibit_on_failure && self.health == Health::Down),
            l2: self.l2,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceRt {
    pub cfg: ServiceCfg,
    pub reals: Vec<RealRt>,
    pub sorry_l2: Option<L2>,
    /// Whether this node forwards for it now (standalone, or its VRRP instance is master).
    pub active: bool,
    /// Live weight at or above quorum (with hysteresis).
    pub quorum_up: bool,
}

impl ServiceRt {
    pub fn new(cfg: ServiceCfg) -> Self {
        ServiceRt {
            reals: cfg.reals.iter().cloned().map(RealRt::new).collect(),
            cfg,
            sorry_l2: None,
            active: false,
            quorum_up: true,
        }
    }

    /// keepalived quorum: the service goes down when the live weight falls below
    /// `quorum - hysteresis` and comes back at `quorum + hysteresis`. Returns the new state
    /// when it changed.
    pub fn update_quorum(&mut self) -> Option<bool> {
        let live = self.live_weight();
        let q = self.cfg.quorum;
        let h = self.cfg.hysteresis;
        let next = if self.quorum_up {
            live >= q.saturating_sub(h)
        } else {
            live >= q.saturating_add(h)
        };
        // Nothing checked yet: no verdict (a starting agent should not page anyone).
        if self.reals.iter().all(|r| r.health == Health::Unknown) && !self.reals.is_empty() {
            return None;
        }
        (next != self.quorum_up).then(|| {
            self.quorum_up = next;
            next
        })
    }

    pub fn real_mut(&mut self, addr: IpAddr, port: u16) -> Option<&mut RealRt> {
        self.reals
            .iter_mut()
            .find(|r| r.cfg.addr == addr && r.cfg.port == port)
    }

    /// Sum of the weights of the reals that take new flows.
    pub fn live_weight(&self) -> u32 {
        self.reals.iter().map(|r| r.desired().weight).sum()
    }

    pub fn desired(&self) -> DesiredService {
        let mut flags = 0;
        if self.cfg.scheduler == Scheduler::SourceHash {
            flags |= SVC_F_HASH_SRC;
        }
        if self.cfg.persistence.is_some() {
            flags |= SVC_F_AFFINITY;
        }
        if self.cfg.forward_icmp_errors {
            flags |= lb_common::SVC_F_ICMP;
        }
        if self.cfg.fragments {
            flags |= lb_common::SVC_F_FRAGMENTS;
        }
        DesiredService {
            key: self.cfg.key(),
            ports: self.cfg.ports.expand(),
            active: self.active,
            flags,
            affinity_timeout_s: self
                .cfg
                .persistence
                .map_or(0, |d| d.as_secs().min(u32::MAX as u64) as u32),
            table_size: self.cfg.table_size,
            reals: self.reals.iter().map(RealRt::desired).collect(),
            sorry: self.cfg.sorry.map(|(addr, port)| DesiredReal {
                addr,
                port,
                weight: 1,
                keep_flows: true,
                l2: self.sorry_l2,
            }),
        }
    }
}

/// The service a client reaches at `vip`:`port` over `proto` (any of its ports).
pub fn find(
    list: &[ServiceRt],
    vip: IpAddr,
    port: u16,
    proto: crate::config::Proto,
) -> Option<&ServiceRt> {
    list.iter().find(|s| {
        s.cfg.addr == vip
            && s.cfg.proto == proto
            && (s.cfg.port == port || s.cfg.ports.contains(port))
    })
}

/// Every service, in config order, looked up by key.
#[derive(Default)]
pub struct Services {
    pub list: Vec<ServiceRt>,
}

impl Services {
    pub fn new(cfgs: &[ServiceCfg]) -> Services {
        Services {
            list: cfgs.iter().cloned().map(ServiceRt::new).collect(),
        }
    }

    /// What the data path should hold for every service; with `sync`, each service that
    /// keeps a connection table publishes its new flows (`SVC_F_SYNC`).
    pub fn desired(&self, sync: bool) -> Vec<DesiredService> {
        self.list
            .iter()
            .map(|s| {
                let mut d = s.desired();
                if sync && !s.cfg.fragments {
                    d.flags |= lb_common::SVC_F_SYNC;
                }
                d
            })
            .collect()
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&ServiceRt> {
        self.list.iter().find(|s| s.cfg.key() == *key)
    }

    /// Sets (or clears, with `None`) the operator's weight of a real.
    pub fn set_override(&mut self, real: &RealKey, set: Option<Override>) {
        let Some((label, r)) = self.real_mut(real) else {
            return;
        };
        let who = host_port(real.1, real.2);
        match set {
            Some(o) if o.weight == 0 => {
                info!(service = %label, real = %who, "real drained by the operator: established flows stay, new ones go elsewhere")
            }
            Some(o) => {
                info!(service = %label, real = %who, weight = o.weight, "real's weight set by the operator")
            }
            None => {
                info!(service = %label, real = %who, "operator's override cleared: the configured weight applies")
            }
        }
        r.operator = set;
    }

    /// The operator's overrides, as saved across restarts.
    pub fn saved_overrides(&self) -> Vec<Saved> {
        self.list
            .iter()
            .flat_map(|s| {
                s.reals
                    .iter()
                    .filter_map(|r| Some(Saved::new(&s.cfg, &r.cfg, r.operator?)))
            })
            .collect()
    }

    /// Overrides saved by an earlier run, for the reals the config has not changed since.
    pub fn restore_overrides(&mut self, saved: &[Saved]) {
        for o in saved {
            let mut found = false;
            for s in &mut self.list {
                for r in &mut s.reals {
                    if o.applies_to(&s.cfg, &r.cfg) {
                        r.operator = Some(o.set);
                        found = true;
                    }
                }
            }
            if found {
                info!(real = %o.real, service = %format!("{}:{}/{}", o.vip, o.port, o.protocol), weight = o.set.weight, "operator's override kept from the last run");
            } else {
                info!(real = %o.real, service = %format!("{}:{}/{}", o.vip, o.port, o.protocol), "operator's override dropped: the config changed that real");
            }
        }
    }

    fn real_mut(&mut self, key: &RealKey) -> Option<(String, &mut RealRt)> {
        let svc = self.list.iter_mut().find(|s| s.cfg.key() == key.0)?;
        let label = svc.cfg.label();
        Some((label, svc.real_mut(key.1, key.2)?))
    }

    /// Interfaces services live on.
    pub fn interfaces(&self) -> BTreeSet<String> {
        self.list.iter().map(|s| s.cfg.interface.clone()).collect()
    }

    /// Every real (and sorry server) address, with the interface it is reached on.
    pub fn neighbours(&self) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        for s in &self.list {
            for r in &s.reals {
                out.push((r.cfg.addr, s.cfg.interface.clone()));
            }
            if let Some((a, _)) = s.cfg.sorry {
                out.push((a, s.cfg.interface.clone()));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The reals' layer-2 paths from the resolver.
    pub fn set_paths(&mut self, paths: &HashMap<IpAddr, L2>) {
        for s in &mut self.list {
            for r in &mut s.reals {
                r.l2 = paths.get(&r.cfg.addr).copied();
            }
            s.sorry_l2 = s.cfg.sorry.and_then(|(a, _)| paths.get(&a).copied());
        }
    }

    /// Reals with checks, by key.
    pub fn checked(&self) -> Vec<(RealKey, RealCfg)> {
        self.list
            .iter()
            .flat_map(|s| {
                let key = s.cfg.key();
                s.reals
                    .iter()
                    .filter(|r| r.removed_at.is_none())
                    .map(move |r| ((key, r.cfg.addr, r.cfg.port), r.cfg.clone()))
            })
            .collect()
    }

    /// Reals the maps of an earlier run hold as serving keep serving until their first check.
    pub fn assume(&mut self, serving: &[RealKey]) {
        for s in &mut self.list {
            let key = s.cfg.key();
            for r in &mut s.reals {
                if r.health == Health::Unknown && serving.contains(&(key, r.cfg.addr, r.cfg.port)) {
                    r.health = Health::Assumed;
                }
            }
        }
    }

    /// A real's health changed. True when the data path must change.
    pub fn health(
        &mut self,
        real: &RealKey,
        up: bool,
        weight: Option<u32>,
        reason: &str,
        out: &mut Effects,
    ) -> bool {
        let Some((label, r)) = self.real_mut(real) else {
            return false;
        };
        let who = host_port(real.1, real.2);
        r.health = if up { Health::Up } else { Health::Down };
        r.dynamic_weight = weight.or(r.dynamic_weight);
        reason.clone_into(&mut r.last_result);
        r.transitions += 1;
        if up {
            info!(service = %label, real = %who, %reason, "real server UP");
            if let Some(h) = &r.cfg.notify_up {
                out.hook(format!("notify_up {who}"), h, &[]);
            }
        } else {
            warn!(service = %label, real = %who, %reason, "real server DOWN");
            if let Some(h) = &r.cfg.notify_down {
                out.hook(format!("notify_down {who}"), h, &[]);
            }
        }
        true
    }

    /// A real's dynamic weight changed. True when the data path must change.
    pub fn weight(&mut self, real: &RealKey, weight: u32, reason: &str) -> bool {
        let Some((label, r)) = self.real_mut(real) else {
            return false;
        };
        info!(service = %label, real = %host_port(real.1, real.2), weight, %reason, "dynamic weight");
        r.dynamic_weight = Some(weight);
        true
    }

    /// One check round of a real finished.
    pub fn probe(&mut self, real: &RealKey, ok: bool, reason: &str, latency: Duration) {
        if let Some((_, r)) = self.real_mut(real) {
            reason.clone_into(&mut r.last_result);
            r.last_latency = Some(latency);
            if ok {
                r.checks_ok += 1;
            } else {
                r.checks_failed += 1;
            }
        }
    }

    /// Services crossing their quorum: log, run quorum_up/quorum_down. True if any crossed.
    pub fn update_quorum(&mut self, out: &mut Effects) -> bool {
        let mut changed = false;
        for s in &mut self.list {
            if let Some(up) = s.update_quorum() {
                changed = true;
                let label = s.cfg.label();
                if up {
                    info!(service = %label, live_weight = s.live_weight(), "service quorum gained");
                    if let Some(h) = &s.cfg.quorum_up {
                        out.hook(format!("quorum_up {label}"), h, &[]);
                    }
                } else {
                    warn!(service = %label, live_weight = s.live_weight(), quorum = s.cfg.quorum, "service below quorum");
                    if let Some(h) = &s.cfg.quorum_down {
                        out.hook(format!("quorum_down {label}"), h, &[]);
                    }
                }
            }
        }
        changed
    }

    /// The services of a new config; those that stay keep what is known about them: a real
    /// that stays keeps its MAC and counters, and its health unless its checks changed (a
    /// new real is checked before it gets traffic).
    pub fn reload(&mut self, now: Instant, cfgs: &[ServiceCfg]) -> (usize, usize) {
        let mut next = Vec::with_capacity(cfgs.len());
        for scfg in cfgs {
            let mut rt = ServiceRt::new(scfg.clone());
            if let Some(old) = self.get(&scfg.key()) {
                for r in &mut rt.reals {
                    let same = |o: &&RealRt| o.cfg.addr == r.cfg.addr && o.cfg.port == r.cfg.port;
                    if let Some(o) = old.reals.iter().find(same) {
                        r.l2 = o.l2;
                        r.transitions = o.transitions;
                        r.checks_ok = o.checks_ok;
                        r.checks_failed = o.checks_failed;
                        if o.cfg == r.cfg {
                            r.operator = o.operator;
                        } else if o.operator.is_some() {
                            info!(service = %scfg.label(), real = %host_port(r.cfg.addr, r.cfg.port), "operator's override dropped: the reload changed that real");
                        }
                        if o.cfg.checks == r.cfg.checks {
                            r.health = o.health;
                            r.dynamic_weight = o.dynamic_weight;
                            r.last_result.clone_from(&o.last_result);
                            r.last_latency = o.last_latency;
                        }
                    }
                }
                // Reals the reload removed keep the flows they serve for a while.
                for o in &old.reals {
                    let stays = rt
                        .reals
                        .iter()
                        .any(|r| r.cfg.addr == o.cfg.addr && r.cfg.port == o.cfg.port);
                    if stays || !(o.serving() || o.removed_at.is_some()) {
                        continue;
                    }
                    let mut kept = o.clone();
                    kept.operator = None;
                    if kept.removed_at.is_none() {
                        kept.removed_at = Some(now);
                        info!(service = %scfg.label(), real = %host_port(o.cfg.addr, o.cfg.port), grace = ?REMOVED_GRACE, "real removed by the reload: no new flows, its established ones stay until the grace ends");
                    }
                    rt.reals.push(kept);
                }
                rt.sorry_l2 = old.sorry_l2;
                rt.quorum_up = old.quorum_up;
                rt.active = old.active;
            }
            next.push(rt);
        }
        let added = cfgs.iter().filter(|n| self.get(&n.key()).is_none()).count();
        let removed = self
            .list
            .iter()
            .filter(|o| !cfgs.iter().any(|n| n.key() == o.cfg.key()))
            .count();
        self.list = next;
        (added, removed)
    }

    /// Drops the removed reals whose grace has ended; whether any was.
    pub fn expire_removed(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for s in &mut self.list {
            let label = s.cfg.label();
            s.reals.retain(|r| {
                let keep = r
                    .removed_at
                    .is_none_or(|t| now.duration_since(t) < REMOVED_GRACE);
                if !keep {
                    info!(service = %label, real = %host_port(r.cfg.addr, r.cfg.port), "removed real's grace ended: its remaining flows are balanced afresh");
                    changed = true;
                }
                keep
            });
        }
        changed
    }

    /// When the next removed real's grace ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|s| s.reals.iter().filter_map(|r| r.removed_at))
            .min()
            .map(|t| t + REMOVED_GRACE)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Proto, RealCfg};

    fn real(weight: u32, inhibit: bool, checked: bool) -> RealRt {
        RealRt::new(RealCfg {
            addr: IpAddr::from([10, 0, 0, 2]),
            port: 80,
            weight,
            inhibit_on_failure: inhibit,
            notify_up: None,
            notify_down: None,
            checks: if checked {
                vec![crate::config::CheckCfg::Tcp {
                    port: 80,
                    connect_timeout: Duration::from_secs(1),
                    bind_to: None,
                    probe_vip: None,
                }]
            } else {
                vec![]
            },
            interval: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        })
    }

    #[test]
    fn unchecked_real_is_up_checked_starts_unknown() {
        assert_eq!(real(3, false, false).desired().weight, 3);
        let r = real(3, false, true);
        assert_eq!(r.health, Health::Unknown);
        assert_eq!(r.desired().weight, 0);
        assert!(!r.desired().keep_flows);
    }

    #[test]
    fn down_real_drains_only_with_inhibit() {
        let mut r = real(2, false, true);
        r.health = Health::Down;
        assert_eq!((r.desired().weight, r.desired().keep_flows), (0, false));
        let mut r = real(2, true, true);
        r.health = Health::Down;
        assert_eq!((r.desired().weight, r.desired().keep_flows), (0, true));
        r.health = Health::Up;
        r.dynamic_weight = Some(7);
        assert_eq!((r.desired().weight, r.desired().keep_flows), (7, true));
    }

    #[test]
    fn service_flags() {
        let cfg = ServiceCfg {
            addr: IpAddr::from([10, 0, 0, 100]),
            port: 80,
            ports: crate::config::Ports::Ranges(vec![(80, 80), (443, 443)]),
            forward_icmp_errors: true,
            fragments: true,
            proto: Proto::Udp,
            interface: "lb0".into(),
            scheduler: Scheduler::SourceHash,
            persistence: Some(Duration::from_secs(300)),
            table_size: 251,
            sorry: None,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            reals: vec![],
        };
        let d = ServiceRt::new(cfg).desired();
        assert_eq!(
            d.flags,
            SVC_F_HASH_SRC | SVC_F_AFFINITY | lb_common::SVC_F_ICMP | lb_common::SVC_F_FRAGMENTS
        );
        assert_eq!(d.ports, vec![80, 443]);
        assert_eq!(d.keys().len(), 2);
        assert_eq!(d.affinity_timeout_s, 300);
        assert!(!d.active);
    }
}
