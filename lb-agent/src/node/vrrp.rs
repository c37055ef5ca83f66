//! The node's VRRP instances: adverts in, timers, transitions out, with what a transition
//! means for the node. Entering master: data path first (so traffic that follows the VIP is
//! forwarded at once), then the VIPs, gratuitous ARPs, notify. Leaving master: no more
//! gratuitous ARPs at once; VIPs and forwarding kept for a short grace so packets already on
//! their way still arrive, then released; notify. Sync groups move as one.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Instant,
};

use tracing::{debug, info, warn};

use super::{
    effects::Effects,
    instance::{self, Iface, Inst},
    io::Effect,
    tracking,
};
use crate::{
    config::{InstanceCfg, SyncGroupCfg},
    vrrp::{
        garp,
        packet::{self, Advert},
        state::{Action, Reason, State},
    },
};

/// What tracking looks at, as the node sees it now.
pub struct TrackInputs<'a> {
    pub link_up: &'a dyn Fn(&str) -> bool,
    pub script_ok: &'a dyn Fn(&str) -> bool,
    pub quorum_up: &'a dyn Fn(&lb_common::ServiceKey) -> bool,
    /// A track file's number and whether it is reversed.
    pub file: &'a dyn Fn(&str) -> (i64, bool),
}

#[derive(Default)]
pub struct Vrrp {
    pub insts: Vec<Inst>,
    pub groups: Vec<SyncGroupCfg>,
    /// VRRP datagrams that failed the packet checks, by interface and reason.
    pub invalid: BTreeMap<(String, &'static str), u64>,
}

/// Called when an instance is about to take its VIPs: the node brings the data path up first.
pub type Sync<'a> = dyn FnMut(&[Inst], &mut Effects) + 'a;

impl Vrrp {
    /// The instances of `cfgs` on the interfaces the host reported (not started yet).
    pub fn new(
        cfgs: &[InstanceCfg],
        groups: &[SyncGroupCfg],
        ifaces: &HashMap<String, Iface>,
    ) -> Result<Vrrp, String> {
        let mut v = Vrrp {
            groups: groups.to_vec(),
            ..Default::default()
        };
        for c in cfgs {
            v.insts.push(make(c, ifaces)?);
        }
        v.warn_group_weights();
        Ok(v)
    }

    fn warn_group_weights(&self) {
        for g in &self.groups {
            for c in self
                .insts
                .iter()
                .map(|i| &i.cfg)
                .filter(|c| g.members.contains(&c.name))
            {
                let weighted = c.track_interfaces.iter().any(|t| t.1 != 0)
                    || c.track_scripts.iter().any(|t| t.1 != 0)
                    || c.track_services.iter().any(|t| t.1 != 0);
                if weighted {
                    warn!(instance = %c.name, group = %g.name, "in a sync group tracking weights are ignored: a failing tracked item faults the group");
                }
            }
        }
    }

    /// Holds back (or allows) every instance's preemption (see `Instance::hold_preempt`).
    pub fn hold_preempt(&mut self, on: bool) {
        for i in &mut self.insts {
            i.sm.hold_preempt(on);
        }
    }

    pub fn start(&mut self, now: Instant) {
        for i in &mut self.insts {
            if i.sm.state() == State::Initialize {
                info!(
                    instance = %i.cfg.name,
                    interface = %i.cfg.interface,
                    vrid = i.cfg.vrid,
                    priority = i.cfg.priority,
                    source = %i.iface.src,
                    version = i.cfg.version.number(),
                    "VRRP instance starting"
                );
                i.sm.startup(now);
            }
        }
    }

    fn group_of(&self, name: &str) -> Option<&SyncGroupCfg> {
        self.groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == name))
    }

    pub fn on_advert(&mut self, now: Instant, ifname: &str, src: IpAddr, advert: &Advert) {
        let mut matched = false;
        for inst in self
            .insts
            .iter_mut()
            .filter(|i| i.cfg.interface == ifname && i.cfg.vrid == advert.vrid)
        {
            matched = true;
            if let Err(reason) = inst.sm.handle_advert(now, src, advert) {
                debug!(instance = %inst.cfg.name, peer = %src, reason = reason.label(), "advert dropped");
            }
        }
        if !matched {
            self.bad(ifname, "unknown_vrid");
        }
    }

    pub fn bad(&mut self, ifname: &str, reason: &'static str) {
        *self.invalid.entry((ifname.to_owned(), reason)).or_insert(0) += 1;
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.insts.iter().filter_map(Inst::next_deadline).min()
    }

    /// Fires every deadline that has passed.
    pub fn on_timer(&mut self, now: Instant, out: &mut Effects) {
        for i in 0..self.insts.len() {
            self.insts[i].sm.handle_timeout(now);
            let due = self.insts[i].due_garps(now);
            if due > 0 {
                self.send_garps(i, out);
            }
            if self.insts[i].release_at.is_some_and(|t| t <= now) {
                self.release(i, out);
            }
        }
    }

    fn send_garps(&self, i: usize, out: &mut Effects) {
        let inst = &self.insts[i];
        for v in &inst.cfg.vips {
            out.push(Effect::SendFrame {
                ifindex: inst.iface.ifindex,
                frame: garp::frame(inst.iface.mac, v.addr),
            });
        }
    }

    fn transmit(&mut self, i: usize, advert: &Advert, out: &mut Effects) {
        let inst = &mut self.insts[i];
        let dsts: Vec<IpAddr> = if inst.cfg.unicast_peers.is_empty() {
            vec![inst.cfg.mcast_group]
        } else {
            inst.cfg.unicast_peers.clone()
        };
        for dst in dsts {
            inst.ident = inst.ident.wrapping_add(1);
            let form = inst.cfg.v3_checksum;
            let datagram = match (inst.iface.src, dst) {
                (IpAddr::V4(src), IpAddr::V4(dst)) => {
                    packet::emit_datagram(advert, src, dst, inst.ident, form)
                }
                // IPv6: the message alone; its checksum covers the header the socket adds.
                (src, dst) => advert.to_bytes(src, dst, form),
            };
            out.push(Effect::SendAdvert {
                instance: inst.cfg.name.clone(),
                ifname: inst.cfg.interface.clone(),
                src: inst.iface.src,
                dst,
                datagram,
            });
        }
    }

    /// Processes every pending protocol action, until quiet (a transition can move the
    /// other members of a sync group). True if any instance changed state.
    pub fn drive(&mut self, now: Instant, out: &mut Effects, sync: &mut Sync<'_>) -> bool {
        let mut changed = false;
        let mut busy = true;
        while busy {
            busy = false;
            for i in 0..self.insts.len() {
                while let Some(a) = self.insts[i].sm.poll_action() {
                    busy = true;
                    match a {
                        Action::Transmit(ad) => self.transmit(i, &ad, out),
                        Action::SplitBrain {
                            peer,
                            peer_priority,
                        } => {
                            let inst = &mut self.insts[i];
                            inst.split_brains_logged += 1;
                            // Once per burst is enough in the log; the count is in status.
                            if inst.split_brains_logged <= 3
                                || inst.split_brains_logged.is_multiple_of(100)
                            {
                                warn!(
                                    instance = %inst.cfg.name,
                                    peer = %peer,
                                    peer_priority,
                                    count = inst.sm.split_brain_count(),
                                    "another master on this VRID (split brain); answering at once"
                                );
                            }
                        }
                        Action::StateChanged { from, to, reason } => {
                            self.on_transition(now, i, from, to, reason, out, sync);
                            self.sync_group_follow(now, i, from, to, reason);
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }

    #[allow(clippy::too_many_arguments)]
    fn on_transition(
        &mut self,
        now: Instant,
        i: usize,
        from: State,
        to: State,
        reason: Reason,
        out: &mut Effects,
        sync: &mut Sync<'_>,
    ) {
        {
            let inst = &self.insts[i];
            info!(
                instance = %inst.cfg.name,
                from = from.label(),
                to = to.label(),
                reason = reason.label(),
                priority = inst.sm.priority(),
                "VRRP state change"
            );
        }
        match to {
            State::Master => {
                let inst = &mut self.insts[i];
                inst.release_at = None;
                inst.became_master_at = Some(now);
                inst.holds = true;
                // Data path first: traffic that follows the VIP is forwarded at once.
                sync(&self.insts, out);
                for v in &self.insts[i].cfg.vips {
                    out.push(Effect::AddVip(v.clone()));
                }
                self.insts[i].plan_garps(now);
                if self.insts[i].due_garps(now) > 0 {
                    self.send_garps(i, out);
                }
            }
            State::Releasing => {
                // Still forwarding; no more gratuitous ARPs.
                self.insts[i].garp_at.clear();
            }
            State::Fault => {
                self.insts[i].garp_at.clear();
                self.release(i, out);
            }
            State::Backup | State::Stopped | State::Initialize => {
                let inst = &mut self.insts[i];
                inst.garp_at.clear();
                if inst.holds {
                    // A planned hand-over (we were releasing) waits longer: nothing else is
                    // forwarding-critical about it, and clients that act late on the new
                    // master's gratuitous ARPs still lose nothing.
                    let grace = if from == State::Releasing {
                        instance::planned_handover_grace(inst.cfg.advert_int)
                    } else {
                        instance::handover_grace(inst.cfg.advert_int)
                    };
                    inst.release_at = Some(now + grace);
                }
            }
        }
        self.notify(i, to, out);
        self.notify_group(i, to, out);
    }

    /// Gives up the VIPs; forwarding follows once the host confirms they are gone.
    pub fn release(&mut self, i: usize, out: &mut Effects) {
        // A VIP another instance holds now (the successor of a restarted instance) stays.
        let held_elsewhere: Vec<IpAddr> = self
            .insts
            .iter()
            .enumerate()
            .filter(|(k, x)| *k != i && x.holds)
            .flat_map(|(_, x)| x.cfg.vips.iter().map(|v| v.addr))
            .collect();
        let inst = &mut self.insts[i];
        inst.release_at = None;
        inst.garp_at.clear();
        if !inst.holds {
            return;
        }
        inst.holds = false;
        for v in inst
            .cfg
            .vips
            .iter()
            .filter(|v| !held_elsewhere.contains(&v.addr))
        {
            inst.releasing.insert(v.addr);
            out.push(Effect::RemoveVip(v.clone()));
        }
    }

    /// The host removed `addr` (or gave up trying).
    pub fn vip_removed(&mut self, addr: IpAddr) {
        for i in &mut self.insts {
            i.releasing.remove(&addr);
        }
    }

    /// Sync groups move as one (keepalived): a member that becomes master pulls its backup
    /// siblings up, a master that loses an election takes its master siblings down. (A fault
    /// faults them all: see [`Self::apply_tracking`].)
    fn sync_group_follow(
        &mut self,
        now: Instant,
        i: usize,
        from: State,
        to: State,
        reason: Reason,
    ) {
        if reason == Reason::SyncGroup {
            return;
        }
        let name = self.insts[i].cfg.name.clone();
        let Some(g) = self.group_of(&name) else {
            return;
        };
        let members = g.members.clone();
        let siblings = self
            .insts
            .iter_mut()
            .filter(|s| s.cfg.name != name && members.contains(&s.cfg.name));
        for sib in siblings {
            match (from, to) {
                (_, State::Master) => sib.sm.sync_master(now),
                (State::Master, State::Backup) => sib.sm.sync_backup(now),
                _ => {}
            }
        }
    }

    fn notify(&self, i: usize, to: State, out: &mut Effects) {
        let inst = &self.insts[i];
        let n = &inst.cfg.notify;
        let specific = match to {
            State::Master => n.master.as_ref(),
            State::Backup => n.backup.as_ref(),
            State::Fault => n.fault.as_ref(),
            State::Stopped => n.stop.as_ref(),
            State::Releasing | State::Initialize => None,
        };
        if let Some(argv) = specific {
            out.hook(
                format!("notify_{} {}", to.label(), inst.cfg.name),
                argv,
                &[],
            );
        }
        if matches!(to, State::Releasing | State::Initialize) {
            return;
        }
        if let Some(argv) = &n.any {
            let args = [
                "INSTANCE".to_owned(),
                inst.cfg.name.clone(),
                instance::notify_state(to).to_owned(),
                inst.sm.priority().to_string(),
            ];
            out.hook(format!("notify {}", inst.cfg.name), argv, &args);
        }
    }

    /// A sync group's notify scripts run once all its members reached the same state.
    fn notify_group(&self, i: usize, to: State, out: &mut Effects) {
        let Some(g) = self.group_of(&self.insts[i].cfg.name) else {
            return;
        };
        let same = g.members.iter().all(|m| {
            self.insts
                .iter()
                .find(|x| &x.cfg.name == m)
                .is_some_and(|x| x.sm.state() == to)
        });
        if !same {
            return;
        }
        let specific = match to {
            State::Master => g.notify.master.as_ref(),
            State::Backup => g.notify.backup.as_ref(),
            State::Fault => g.notify.fault.as_ref(),
            _ => None,
        };
        if let Some(argv) = specific {
            out.hook(format!("notify_{} group {}", to.label(), g.name), argv, &[]);
        }
        if let Some(argv) = &g.notify.any {
            if matches!(to, State::Master | State::Backup | State::Fault) {
                let args = [
                    "GROUP".to_owned(),
                    g.name.clone(),
                    instance::notify_state(to).to_owned(),
                    "0".to_owned(),
                ];
                out.hook(format!("notify group {}", g.name), argv, &args);
            }
        }
    }

    /// Recomputes every instance's priority or fault from what it tracks.
    pub fn apply_tracking(&mut self, now: Instant, t: &TrackInputs<'_>) {
        // Each instance's own verdict: a priority, or None for a fault.
        let mut verdicts: Vec<Option<u8>> = self
            .insts
            .iter()
            .map(|inst| {
                // In a sync group tracking weights are ignored and a failure faults the group
                // (keepalived's rule): members whose priorities drifted apart would win and
                // lose their elections separately and pull each other back and forth.
                let grouped = self.group_of(&inst.cfg.name).is_some();
                let weight = |w: i32| if grouped { 0 } else { w };
                let c = &inst.cfg;
                // The instance's own interface: keepalived faults an instance whose link is
                // down.
                let mut effects = vec![tracking::tracked(inst.link_up, 0)];
                effects.extend(
                    c.track_interfaces
                        .iter()
                        .map(|(name, w)| tracking::tracked((t.link_up)(name), weight(*w))),
                );
                // No script result yet counts as failing (keepalived's initial state).
                effects.extend(
                    c.track_scripts
                        .iter()
                        .map(|(name, w)| tracking::tracked((t.script_ok)(name), weight(*w))),
                );
                effects.extend(
                    c.track_services
                        .iter()
                        .map(|(key, w)| tracking::tracked((t.quorum_up)(key), weight(*w))),
                );
                effects.extend(c.track_files.iter().map(|(name, w)| {
                    let (value, reverse) = (t.file)(name);
                    tracking::tracked_file(value, weight(*w), reverse)
                }));
                tracking::effective_priority(c.priority, &effects)
            })
            .collect();
        // Sync groups change state together: one member's fault faults them all (the usual
        // reason for a group: both legs of a router must move as one).
        for g in &self.groups {
            let members: Vec<usize> = self
                .insts
                .iter()
                .enumerate()
                .filter(|(_, x)| g.members.contains(&x.cfg.name))
                .map(|(k, _)| k)
                .collect();
            if members.iter().any(|m| verdicts[*m].is_none()) {
                for m in members {
                    verdicts[m] = None;
                }
            }
        }
        for (inst, eff) in self.insts.iter_mut().zip(verdicts) {
            if inst.retiring {
                continue;
            }
            match eff {
                None => {
                    if !inst.faulted {
                        inst.faulted = true;
                        warn!(instance = %inst.cfg.name, "a tracked resource (or a sync-group member) failed: FAULT");
                        inst.sm.fault(now);
                    }
                }
                Some(p) => {
                    if inst.faulted {
                        inst.faulted = false;
                        info!(instance = %inst.cfg.name, "tracked resources recovered");
                        inst.sm.recover(now);
                    }
                    if p != inst.sm.priority() && !inst.sm.is_owner() {
                        info!(instance = %inst.cfg.name, from = inst.sm.priority(), to = p, "priority changed by tracking");
                        inst.sm.set_priority(now, p);
                    }
                }
            }
        }
    }

    /// The instances' own links, from the host's view.
    pub fn set_links(&mut self, link_up: &dyn Fn(&str) -> bool) {
        for inst in &mut self.insts {
            let up = link_up(&inst.cfg.interface);
            if up != inst.link_up {
                if up {
                    info!(instance = %inst.cfg.name, interface = %inst.cfg.interface, "link up");
                } else {
                    warn!(instance = %inst.cfg.name, interface = %inst.cfg.interface, "link down");
                }
                inst.link_up = up;
            }
        }
    }

    /// SIGTERM: every master announces priority 0 and keeps forwarding until the new master
    /// speaks (graceful hand-over); the others stop at once.
    pub fn shutdown(&mut self, now: Instant) {
        for inst in &mut self.insts {
            inst.sm.shutdown(now);
        }
    }

    /// True when no instance still needs the node.
    pub fn finished(&self) -> bool {
        self.insts.iter().all(Inst::finished)
    }

    /// Releases everything still held (the final stop).
    pub fn release_all(&mut self, out: &mut Effects) {
        for i in 0..self.insts.len() {
            self.release(i, out);
        }
    }

    /// Drops retired instances that are done.
    pub fn reap(&mut self) {
        self.insts.retain(|i| !(i.retiring && i.finished()));
    }
}

/// A new instance from its config and interface.
pub fn make(c: &InstanceCfg, ifaces: &HashMap<String, Iface>) -> Result<Inst, String> {
    let iface = ifaces
        .get(&c.name)
        .cloned()
        .ok_or_else(|| format!("instance {}: interface {} not found", c.name, c.interface))?;
    Inst::new(c.clone(), iface).map_err(|e| format!("instance {}: {e}", c.name))
}
