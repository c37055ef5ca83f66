//! The node core, sans-IO: everything one load-balancer node decides, in virtual time.
//!
//! It owns the VRRP instances, sync groups and tracking, the services and their health
//! summary, the host's links and the reals' paths, and the desired data-path state. It reads
//! no clock and touches no socket: the agent feeds it [`Event`]s stamped with `now`
//! ([`Node::handle`]), wakes it at [`Node::poll_timeout`], and carries out the [`Effect`]s
//! it drains from [`Node::poll_effect`], in order. So every decision a failover depends on
//! can be tested without root, on a simulated network, in virtual time (`sim`).

mod adopted;
pub mod announce;
mod effects;
pub mod host;
pub mod instance;
pub mod io;
pub mod neighbours;
pub mod overrides;
mod reload;
pub mod services;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
pub mod tracking;
pub mod vrrp;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::{config::Config, dataplane::L2, netlink::link::Link, vrrp::state::State};
use adopted::Adopted;
use effects::Effects;
use host::Host;
pub use instance::Iface;
pub use io::{CheckPlan, DataplaneState, Effect, Event, RealKey};
use services::Services;
use vrrp::{TrackInputs, Vrrp};

/// Upper bound on a graceful stop (hand-over plus grace), whatever the intervals.
pub const MAX_STOP: Duration = Duration::from_secs(10);

/// What the host held when the node starts.
#[derive(Clone, Debug, Default)]
pub struct Boot {
    pub links: HashMap<u32, Link>,
    /// The interface of each instance, by instance name.
    pub ifaces: HashMap<String, Iface>,
    /// Reals the pinned maps of an earlier run hold as serving.
    pub serving: Vec<RealKey>,
    /// The layer-2 paths those maps hold.
    pub paths: Vec<(IpAddr, L2)>,
    /// Interfaces where an earlier run left its XDP link pinned.
    pub pinned_links: Vec<String>,
    /// The operator's overrides an earlier run saved.
    pub overrides: Vec<overrides::Saved>,
}

pub struct Node {
    cfg: Config,
    vrrp: Vrrp,
    services: Services,
    host: Host,
    /// Latest result of each `vrrp_scripts` entry (None until its first).
    scripts: BTreeMap<String, Option<bool>>,
    /// Latest number of each `vrrp_track_files` entry (0 until read).
    files: BTreeMap<String, i64>,
    adopted: Adopted,
    out: Effects,
    /// Interfaces where the agent reports XDP attached (None until its first report: no
    /// announcement is decided before, so a restart does not withdraw for a moment).
    attached: Option<BTreeSet<String>>,
    /// Scale-out mode: each VIP's announcement (empty without `bgp:`).
    announce: Vec<announce::VipAnnounce>,
    /// When a graceful stop began.
    stopping: Option<Instant>,
    stopped: bool,
    /// `flow_sync:` is set and its bulk sync has not ended: no preemption, no announcement.
    sync_pending: bool,
}

impl Node {
    /// A node for `cfg` on the host described by `boot`, started at `now`: its first effects
    /// (checks to run, the data path, the first adverts) are queued.
    pub fn new(now: Instant, cfg: Config, boot: Boot) -> Result<Node, String> {
        let mut vrrp = Vrrp::new(&cfg.instances, &cfg.sync_groups, &boot.ifaces)?;
        let sync_pending = cfg.flow_sync.is_some();
        vrrp.hold_preempt(sync_pending);
        let mut services = Services::new(&cfg.services);
        services.assume(&boot.serving);
        services.restore_overrides(&boot.overrides);
        let mut host = Host::default();
        for (ip, l2) in &boot.paths {
            host.resolver.seed(*ip, *l2);
        }
        let standalone = cfg.instances.is_empty();
        let adopted = Adopted::new(
            now,
            &cfg,
            &services.interfaces(),
            &boot.pinned_links,
            standalone,
        );
        let mut node = Node {
            scripts: cfg.scripts.iter().map(|s| (s.name.clone(), None)).collect(),
            files: cfg
                .track_files
                .iter()
                .map(|f| (f.name.clone(), 0))
                .collect(),
            cfg,
            vrrp,
            services,
            host,
            adopted,
            out: Effects::default(),
            attached: None,
            announce: Vec::new(),
            stopping: None,
            stopped: false,
            sync_pending,
        };
        info!(
            router_id = %node.cfg.router_id,
            services = node.services.list.len(),
            instances = node.cfg.instances.len(),
            "lb-agent starting"
        );
        node.host
            .set_links(now, boot.links, &node.services.interfaces());
        node.vrrp.set_links(&|n| node.host.link_up(n));
        node.plan_checks();
        node.out.watch(node.services.neighbours());
        node.out.saved_overrides(boot.overrides);
        node.save_overrides();
        node.sync_dataplane();
        node.vrrp.start(now);
        node.after(now);
        Ok(node)
    }

    /// Feeds one event.
    pub fn handle(&mut self, now: Instant, ev: Event) {
        if self.stopped {
            return;
        }
        match ev {
            Event::Timer => {
                if self.adopted.expire(now) {
                    self.sync_dataplane();
                }
                if self.services.expire_removed(now) {
                    self.out.watch(self.services.neighbours());
                }
                self.vrrp.on_timer(now, &mut self.out);
                self.host.update_pauses(now, &self.services.interfaces());
                self.plan_checks();
            }
            Event::Advert {
                ifname,
                src,
                advert,
            } => self.vrrp.on_advert(now, &ifname, src, &advert),
            Event::BadAdvert { ifname, reason } => self.vrrp.bad(&ifname, reason),
            Event::Links(links) => {
                self.host.set_links(now, links, &self.services.interfaces());
                let host = &self.host;
                self.vrrp.set_links(&|n| host.link_up(n));
                self.plan_checks();
            }
            Event::Neighbours(table) => {
                let plan = self
                    .host
                    .neighbours(now, &self.services.neighbours(), &table);
                for (ifindex, ip) in plan.ask {
                    self.out.push(Effect::Resolve { ifindex, ip });
                }
                self.services.set_paths(&plan.l2);
            }
            Event::ResolveFailed(ip) => self.host.resolver.ask_failed(ip),
            Event::Attached(set) => self.attached = Some(set),
            Event::FlowSyncReady => {
                if self.sync_pending {
                    info!("flow bulk sync ended: preemption and announcements may go ahead");
                }
                self.sync_pending = false;
                self.vrrp.hold_preempt(false);
            }
            Event::VipRemoved(addr) => self.vrrp.vip_removed(addr),
            Event::RealHealth {
                real,
                up,
                weight,
                reason,
            } => {
                self.services
                    .health(&real, up, weight, &reason, &mut self.out);
            }
            Event::RealWeight {
                real,
                weight,
                reason,
            } => {
                self.services.weight(&real, weight, &reason);
            }
            Event::Probe {
                real,
                ok,
                reason,
                latency,
            } => self.services.probe(&real, ok, &reason, latency),
            Event::Script { name, ok, reason } => {
                if ok {
                    info!(script = %name, %reason, "vrrp_script succeeds");
                } else {
                    warn!(script = %name, %reason, "vrrp_script fails");
                }
                if let Some(slot) = self.scripts.get_mut(&name) {
                    *slot = Some(ok);
                }
            }
            Event::TrackFile { name, value } => {
                if let Some(slot) = self.files.get_mut(&name) {
                    if *slot != value {
                        info!(track_file = %name, from = *slot, to = value, "track_file changed");
                    }
                    *slot = value;
                }
            }
            Event::Override { real, set } => {
                self.services.set_override(&real, set);
                self.save_overrides();
            }
            Event::Reload { cfg, ifaces } => {
                self.reload(now, *cfg, &ifaces);
                self.save_overrides();
            }
            Event::Shutdown => {
                if self.stopping.is_none() {
                    match &self.cfg.bgp {
                        Some(b) => info!(
                            drain = ?b.drain_time,
                            "stopping: VIPs withdrawn, forwarding until the drain ends"
                        ),
                        None => info!("stopping (a master hands over first)"),
                    }
                    self.stopping = Some(now);
                    self.vrrp.shutdown(now);
                }
            }
        }
        self.after(now);
    }

    /// Everything that follows any event: quorum, tracking, the protocol's actions, the data
    /// path, and the end of a stop.
    fn after(&mut self, now: Instant) {
        self.services.update_quorum(&mut self.out);
        self.apply_tracking(now);
        self.drive(now);
        if self.adopted.settle(&self.vrrp.insts) {
            self.sync_dataplane();
        }
        self.vrrp.reap();
        self.sync_dataplane();
        self.update_announcements();
        self.finish_stop(now);
    }

    /// Scale-out mode: decides each VIP's announcement; logs and queues the changes.
    fn update_announcements(&mut self) {
        let (Some(_), Some(attached)) = (&self.cfg.bgp, &self.attached) else {
            return;
        };
        let host = &self.host;
        let next = announce::decide(&announce::Inputs {
            services: &self.services.list,
            attached,
            link_up: &|n| host.link_up(n),
            stopping: self.stopping.is_some(),
            sync_pending: self.sync_pending,
        });
        for v in &next {
            let was = self.announce.iter().find(|o| o.vip == v.vip);
            if was.map(|o| o.announced) == Some(v.announced) {
                continue;
            }
            if v.announced {
                info!(vip = %v.vip, why = %v.why, "VIP announced");
            } else if was.is_some_and(|o| o.announced) {
                warn!(vip = %v.vip, why = %v.why, "VIP withdrawn");
            } else {
                info!(vip = %v.vip, why = %v.why, "VIP not announced yet");
            }
        }
        self.out.announce(announce::announced(&next));
        self.announce = next;
    }

    fn apply_tracking(&mut self, now: Instant) {
        let (host, scripts, services) = (&self.host, &self.scripts, &self.services);
        let (files, file_cfgs) = (&self.files, &self.cfg.track_files);
        let inputs = TrackInputs {
            link_up: &|n| host.link_up(n),
            script_ok: &|n| scripts.get(n).copied().flatten().unwrap_or(false),
            quorum_up: &|k| services.get(k).is_some_and(|s| s.quorum_up),
            file: &|n| {
                let reverse = file_cfgs.iter().any(|f| f.name == n && f.reverse);
                (files.get(n).copied().unwrap_or(0), reverse)
            },
        };
        self.vrrp.apply_tracking(now, &inputs);
    }

    fn drive(&mut self, now: Instant) {
        let (cfg, services, adopted) = (&self.cfg, &mut self.services, &self.adopted);
        let mut sync = |insts: &[instance::Inst], out: &mut Effects| {
            out.dataplane(dataplane(cfg, services, adopted, insts));
        };
        self.vrrp.drive(now, &mut self.out, &mut sync);
    }

    /// Queues the data-path state if it changed.
    fn sync_dataplane(&mut self) {
        let state = dataplane(
            &self.cfg,
            &mut self.services,
            &self.adopted,
            &self.vrrp.insts,
        );
        self.out.dataplane(state);
    }

    /// Queues the overrides to be saved if they changed.
    fn save_overrides(&mut self) {
        let list = self.services.saved_overrides();
        self.out.saved_overrides(list);
    }

    fn plan_checks(&mut self) {
        let paused: BTreeSet<String> = self.host.paused().cloned().collect();
        let plan = CheckPlan {
            reals: self.services.checked(),
            scripts: self.cfg.scripts.clone(),
            track_files: self.cfg.track_files.clone(),
            paused: self
                .services
                .list
                .iter()
                .filter(|s| paused.contains(&s.cfg.interface))
                .map(|s| s.cfg.key())
                .collect(),
        };
        self.out.checks(plan);
    }

    /// A graceful stop ends when every instance has handed over and released (or after
    /// [`MAX_STOP`]): then everything is released and the data path detached.
    fn finish_stop(&mut self, now: Instant) {
        let Some(since) = self.stopping else { return };
        // Scale-out: the VIPs were withdrawn when the stop began; keep forwarding what the
        // routers still send until the drain ends (no drain with VRRP).
        if now.duration_since(since) < self.drain_time() {
            return;
        }
        let expired = now.duration_since(since) >= self.stop_limit();
        let instances_done = self
            .vrrp
            .insts
            .iter()
            .all(|i| i.sm.state() == State::Stopped && i.release_at.is_none());
        if !(instances_done || expired) {
            return;
        }
        self.vrrp.release_all(&mut self.out);
        if self.vrrp.finished() || expired {
            for s in &mut self.services.list {
                s.active = false;
            }
            self.out.dataplane(DataplaneState {
                services: self.services.desired(self.cfg.flow_sync.is_some()),
                attach: BTreeSet::new(),
            });
            self.out.push(Effect::Stopped);
            self.stopped = true;
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        [
            self.vrrp.next_deadline(),
            self.adopted.next_deadline(),
            self.host.next_deadline(),
            self.services.next_deadline(),
            self.stopping
                .filter(|_| self.cfg.bgp.is_some())
                .map(|t| t + self.drain_time()),
            self.stopping.map(|t| t + self.stop_limit()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The drain of a scale-out node's stop (zero with VRRP).
    fn drain_time(&self) -> Duration {
        self.cfg
            .bgp
            .as_ref()
            .map_or(Duration::ZERO, |b| b.drain_time)
    }

    /// Upper bound on a graceful stop: [`MAX_STOP`] after the drain.
    fn stop_limit(&self) -> Duration {
        self.drain_time() + MAX_STOP
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.out.pop()
    }

    // ----- views, for status and metrics ------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn instances(&self) -> &[instance::Inst] {
        &self.vrrp.insts
    }

    pub fn services(&self) -> &[services::ServiceRt] {
        &self.services.list
    }

    pub fn arp(&self, ip: IpAddr) -> neighbours::Arp {
        self.host.resolver.arp(ip)
    }

    pub fn vrrp_invalid(&self) -> &BTreeMap<(String, &'static str), u64> {
        &self.vrrp.invalid
    }

    /// Scale-out mode: each VIP's announcement and why (empty without `bgp:`).
    pub fn announcements(&self) -> &[announce::VipAnnounce] {
        &self.announce
    }

    /// Preemption and announcements wait for the flow sync's bulk sync.
    pub fn sync_pending(&self) -> bool {
        self.sync_pending
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

/// Which services this node forwards for, and where XDP must be attached: all services
/// standalone; otherwise those whose VIP belongs to an instance that forwards (master, or
/// handing over), those on an interface whose pinned XDP link was adopted from an earlier
/// run, and those whose VIP no instance owns.
fn dataplane(
    cfg: &Config,
    services: &mut Services,
    adopted: &Adopted,
    insts: &[instance::Inst],
) -> DataplaneState {
    let standalone = cfg.instances.is_empty();
    for s in &mut services.list {
        let owner = insts
            .iter()
            .find(|i| i.cfg.vips.iter().any(|v| v.addr == s.cfg.addr));
        let owned_elsewhere = owner.is_none()
            && cfg
                .instances
                .iter()
                .any(|i| i.vips.iter().any(|v| v.addr == s.cfg.addr));
        s.active = standalone
            || owner.is_some_and(instance::Inst::forwards)
            || adopted.holds(&s.cfg.interface)
            || (owner.is_none() && !owned_elsewhere);
    }
    DataplaneState {
        services: services.desired(cfg.flow_sync.is_some()),
        attach: services
            .list
            .iter()
            .filter(|s| s.active)
            .map(|s| s.cfg.interface.clone())
            .collect(),
    }
}
