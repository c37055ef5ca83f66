//! Driving the VRRP instances: sockets in, actions out. Entering master: attach XDP (the data
//! path is ready before traffic arrives), add the VIPs, gratuitous ARPs, notify. Leaving
//! master: no more gratuitous ARPs at once; VIPs and forwarding kept for a short grace so
//! packets already on their way to this node still arrive, then released; notify.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Context as _, Result};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::{
    hooks,
    vrrp::{self, InstRt},
    Core,
};
use crate::vrrp::{
    garp,
    io::VrrpSocket,
    packet::{self, Advert},
    state::{Action, Instance, Reason, State},
};

/// What the receive tasks send the core.
pub enum VrrpMsg {
    Advert {
        ifname: String,
        src: Ipv4Addr,
        advert: Advert,
    },
    /// A datagram failed the packet checks (counted under its label).
    Invalid {
        ifname: String,
        reason: &'static str,
    },
}

fn spawn_receiver(sock: Arc<VrrpSocket>, tx: mpsc::Sender<VrrpMsg>) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    warn!(interface = %sock.ifname, error = %e, "VRRP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let msg = match packet::parse_datagram(&buf[..n]) {
                Ok((meta, advert)) => VrrpMsg::Advert {
                    ifname: sock.ifname.clone(),
                    src: meta.src,
                    advert,
                },
                Err(e) => VrrpMsg::Invalid {
                    ifname: sock.ifname.clone(),
                    reason: e.label(),
                },
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    });
}

impl Core {
    /// Opens sockets, removes VIPs an earlier run left behind, starts every instance.
    pub(super) async fn vrrp_start(&mut self, tx: mpsc::Sender<VrrpMsg>) -> Result<()> {
        let now = Instant::now();
        for g in &self.cfg.sync_groups {
            for c in g.members.iter().filter_map(|m| self.cfg.instances.get(*m)) {
                let weighted = c.track_interfaces.iter().any(|t| t.1 != 0)
                    || c.track_scripts.iter().any(|t| t.1 != 0)
                    || c.track_services.iter().any(|t| t.1 != 0);
                if weighted {
                    warn!(instance = %c.name, group = %g.name, "in a sync group tracking weights are ignored: a failing tracked item faults the group");
                }
            }
        }
        let mut by_if: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for c in &self.cfg.instances {
            let groups = by_if.entry(c.interface.clone()).or_default();
            if c.unicast_peers.is_empty() && !groups.contains(&c.mcast_group) {
                groups.push(c.mcast_group);
            }
        }
        for (ifname, groups) in &by_if {
            let link = self
                .nl
                .link_by_name(ifname)
                .await?
                .ok_or_else(|| anyhow!("VRRP interface {ifname} not found"))?;
            let sock = Arc::new(
                VrrpSocket::open(ifname, link.index, groups)
                    .with_context(|| format!("opening the VRRP socket on {ifname}"))?,
            );
            spawn_receiver(sock.clone(), tx.clone());
            self.vrrp_socks.insert(ifname.clone(), sock);
        }
        for c in self.cfg.instances.clone() {
            let link = self
                .nl
                .link_by_name(&c.interface)
                .await?
                .ok_or_else(|| anyhow!("interface {} not found", c.interface))?;
            let vips: Vec<Ipv4Addr> = c.vips.iter().map(|v| v.addr).collect();
            let src = match c.unicast_src_ip {
                Some(a) => a,
                None => self
                    .nl
                    .ipv4_addresses(link.index)
                    .await?
                    .into_iter()
                    .find(|a| !vips.contains(a))
                    .ok_or_else(|| {
                        anyhow!(
                            "instance {}: {} has no IPv4 address to send adverts from \
                             (add one, or set unicast_src_ip)",
                            c.name,
                            c.interface
                        )
                    })?,
            };
            // An earlier run (killed) may have left its VIPs: this node owns nothing yet.
            for v in &c.vips {
                let idx = self.ifindex_of(&v.dev).await.unwrap_or(link.index);
                if self.nl.del_address(idx, v.addr).await.unwrap_or(false) {
                    info!(instance = %c.name, vip = %v.addr, "removed a VIP left by an earlier run");
                }
            }
            let garp_tx = garp::Sender::new(link.index)
                .map_err(
                    |e| warn!(interface = %c.interface, error = %e, "no gratuitous ARP socket"),
                )
                .ok();
            let sm = Instance::new(vrrp::protocol_config(&c, src));
            info!(
                instance = %c.name,
                interface = %c.interface,
                vrid = c.vrid,
                priority = c.priority,
                source = %src,
                version = if c.version == crate::config::VrrpVersion::V2 { 2 } else { 3 },
                "VRRP instance starting"
            );
            self.vrrp.push(InstRt {
                cfg: c,
                sm,
                ifindex: link.index,
                mac: link.mac.unwrap_or([0; 6]),
                src,
                holds: false,
                release_at: None,
                garp_at: Vec::new(),
                garp_tx,
                ident: 0,
                link_up: link.up,
                faulted: false,
                split_brains_logged: 0,
                adverts_tx_errors: 0,
                became_master_at: None,
            });
        }
        for i in 0..self.vrrp.len() {
            self.vrrp[i].sm.startup(now);
        }
        self.apply_tracking(now);
        self.vrrp_drive().await;
        Ok(())
    }

    pub(super) async fn ifindex_of(&self, ifname: &str) -> Option<u32> {
        self.nl
            .link_by_name(ifname)
            .await
            .ok()
            .flatten()
            .map(|l| l.index)
    }

    pub(super) async fn on_vrrp(&mut self, m: VrrpMsg) {
        let now = Instant::now();
        match m {
            VrrpMsg::Invalid { ifname, reason } => {
                *self.vrrp_rx_invalid.entry((ifname, reason)).or_insert(0) += 1;
            }
            VrrpMsg::Advert {
                ifname,
                src,
                advert,
            } => {
                let mut matched = false;
                for inst in self
                    .vrrp
                    .iter_mut()
                    .filter(|i| i.cfg.interface == ifname && i.cfg.vrid == advert.vrid)
                {
                    matched = true;
                    if let Err(reason) = inst.sm.handle_advert(now, src, &advert) {
                        debug!(instance = %inst.cfg.name, peer = %src, reason = reason.label(), "advert dropped");
                    }
                }
                if !matched {
                    *self
                        .vrrp_rx_invalid
                        .entry((ifname, "unknown_vrid"))
                        .or_insert(0) += 1;
                }
            }
        }
        self.vrrp_drive().await;
    }

    /// Fires every VRRP deadline that has passed.
    pub(super) async fn vrrp_timers(&mut self) {
        let now = Instant::now();
        for i in 0..self.vrrp.len() {
            self.vrrp[i].sm.handle_timeout(now);
            // Gratuitous ARPs due.
            let due = self.vrrp[i]
                .garp_at
                .iter()
                .take_while(|t| **t <= now)
                .count();
            if due > 0 {
                self.vrrp[i].garp_at.drain(..due);
                self.send_garps(i);
                if let Some(r) = self.vrrp[i].cfg.garp.refresh {
                    if self.vrrp[i].sm.state() == State::Master
                        && !self.vrrp[i].garp_at.iter().any(|t| *t > now + r / 2)
                    {
                        self.vrrp[i].garp_at.push(now + r);
                    }
                }
            }
            if self.vrrp[i].release_at.is_some_and(|t| t <= now) {
                self.vrrp[i].release_at = None;
                self.release(i).await;
            }
        }
        self.vrrp_drive().await;
    }

    pub(super) fn vrrp_deadline(&self) -> Option<Instant> {
        self.vrrp.iter().filter_map(InstRt::next_deadline).min()
    }

    fn send_garps(&mut self, i: usize) {
        let inst = &self.vrrp[i];
        let Some(tx) = &inst.garp_tx else { return };
        for v in &inst.cfg.vips {
            if let Err(e) = tx.send(&garp::frame(inst.mac, v.addr)) {
                debug!(instance = %inst.cfg.name, vip = %v.addr, error = %e, "gratuitous ARP not sent");
            }
        }
    }

    fn transmit(&mut self, i: usize, advert: &Advert) {
        let inst = &mut self.vrrp[i];
        let Some(sock) = self.vrrp_socks.get(&inst.cfg.interface) else {
            return;
        };
        let form = vrrp::checksum_form(&inst.cfg);
        let dsts: Vec<Ipv4Addr> = if inst.cfg.unicast_peers.is_empty() {
            vec![inst.cfg.mcast_group]
        } else {
            inst.cfg.unicast_peers.clone()
        };
        for dst in dsts {
            inst.ident = inst.ident.wrapping_add(1);
            let d = packet::emit_datagram(advert, inst.src, dst, inst.ident, form);
            if let Err(e) = sock.send(&d, dst) {
                inst.adverts_tx_errors += 1;
                debug!(instance = %inst.cfg.name, error = %e, "advert not sent");
            }
        }
    }

    /// Processes every pending action of every instance, then the data path.
    pub(super) async fn vrrp_drive(&mut self) {
        let mut changed = false;
        // Until quiet: a transition can move the other members of a sync group.
        let mut busy = true;
        while busy {
            busy = false;
            for i in 0..self.vrrp.len() {
                while let Some(a) = self.vrrp[i].sm.poll_action() {
                    busy = true;
                    match a {
                        Action::Transmit(ad) => self.transmit(i, &ad),
                        Action::SplitBrain {
                            peer,
                            peer_priority,
                        } => {
                            let inst = &mut self.vrrp[i];
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
                            self.on_transition(i, from, to, reason).await;
                            self.sync_group_follow(i, from, to, reason);
                            changed = true;
                        }
                    }
                }
            }
        }
        let adopted = self.adopted.len();
        self.settle_adopted();
        if changed || adopted != self.adopted.len() {
            self.resync();
        }
    }

    async fn on_transition(&mut self, i: usize, from: State, to: State, reason: Reason) {
        let now = Instant::now();
        {
            let inst = &self.vrrp[i];
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
                let inst = &mut self.vrrp[i];
                inst.release_at = None;
                inst.became_master_at = Some(now);
                inst.holds = true;
                self.take(i).await;
                self.vrrp[i].plan_garps(now);
                self.vrrp_timers_now(i);
            }
            State::Releasing => {
                // Still forwarding; no more gratuitous ARPs.
                self.vrrp[i].garp_at.clear();
            }
            State::Fault => {
                self.vrrp[i].garp_at.clear();
                self.release(i).await;
            }
            State::Backup | State::Stopped | State::Initialize => {
                let inst = &mut self.vrrp[i];
                inst.garp_at.clear();
                if inst.holds {
                    // A planned hand-over (we were releasing) waits longer: nothing else is
                    // forwarding-critical about it, and clients that act late on the new
                    // master's gratuitous ARPs still lose nothing.
                    let grace = if from == State::Releasing {
                        vrrp::planned_handover_grace(inst.cfg.advert_int)
                    } else {
                        vrrp::handover_grace(inst.cfg.advert_int)
                    };
                    inst.release_at = Some(now + grace);
                }
            }
        }
        self.notify(i, to);
        self.notify_group(i, to);
    }

    /// Sync groups move as one (keepalived): a member that becomes master pulls its backup
    /// siblings up, a master that loses an election takes its master siblings down. (A fault
    /// faults them all: see [`Self::apply_tracking`].)
    fn sync_group_follow(&mut self, i: usize, from: State, to: State, reason: Reason) {
        if reason == Reason::SyncGroup {
            return;
        }
        let Some(g) = self.cfg.sync_groups.iter().find(|g| g.members.contains(&i)) else {
            return;
        };
        let now = Instant::now();
        for &m in g.members.iter().filter(|&&m| m != i) {
            let Some(sib) = self.vrrp.get_mut(m) else {
                continue;
            };
            match (from, to) {
                (_, State::Master) => sib.sm.sync_master(now),
                (State::Master, State::Backup) => sib.sm.sync_backup(now),
                _ => {}
            }
        }
    }

    /// A sync group's notify scripts run once all its members reached the same state.
    fn notify_group(&self, i: usize, to: State) {
        let Some(g) = self.cfg.sync_groups.iter().find(|g| g.members.contains(&i)) else {
            return;
        };
        let same = g
            .members
            .iter()
            .all(|m| self.vrrp.get(*m).is_some_and(|x| x.sm.state() == to));
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
            hooks::spawn(format!("notify_{} group {}", to.label(), g.name), argv, &[]);
        }
        if let Some(argv) = &g.notify.any {
            if matches!(to, State::Master | State::Backup | State::Fault) {
                let args = [
                    "GROUP".to_owned(),
                    g.name.clone(),
                    vrrp::notify_state(to).to_owned(),
                    "0".to_owned(),
                ];
                hooks::spawn(format!("notify group {}", g.name), argv, &args);
            }
        }
    }

    /// Sends the first burst of gratuitous ARPs at once (they are due now).
    fn vrrp_timers_now(&mut self, i: usize) {
        let now = Instant::now();
        let due = self.vrrp[i]
            .garp_at
            .iter()
            .take_while(|t| **t <= now)
            .count();
        if due > 0 {
            self.vrrp[i].garp_at.drain(..due);
            for _ in 0..due {
                self.send_garps(i);
            }
        }
    }

    /// Becoming master: data path first (services active, XDP attached by the sync that
    /// follows), then the VIPs.
    async fn take(&mut self, i: usize) {
        self.resync();
        let vips = self.vrrp[i].cfg.vips.clone();
        for v in vips {
            let idx = match self.ifindex_of(&v.dev).await {
                Some(x) => x,
                None => {
                    error!(vip = %v.addr, dev = %v.dev, "VIP interface not found");
                    continue;
                }
            };
            if let Err(e) = self
                .nl
                .add_address(idx, v.addr, v.prefix, v.label.as_deref())
                .await
            {
                error!(vip = %v.addr, error = %format!("{e:#}"), "cannot add VIP");
            }
        }
    }

    /// Gives up the VIPs and, through the sync that follows, this instance's forwarding.
    pub(super) async fn release(&mut self, i: usize) {
        let inst = &mut self.vrrp[i];
        inst.release_at = None;
        inst.garp_at.clear();
        if !inst.holds {
            return;
        }
        inst.holds = false;
        let vips = inst.cfg.vips.clone();
        for v in vips {
            if let Some(idx) = self.ifindex_of(&v.dev).await {
                if let Err(e) = self.nl.del_address(idx, v.addr).await {
                    error!(vip = %v.addr, error = %format!("{e:#}"), "cannot remove VIP");
                }
            }
        }
        self.resync();
    }

    fn notify(&self, i: usize, to: State) {
        let inst = &self.vrrp[i];
        let n = &inst.cfg.notify;
        let specific = match to {
            State::Master => n.master.as_ref(),
            State::Backup => n.backup.as_ref(),
            State::Fault => n.fault.as_ref(),
            State::Stopped => n.stop.as_ref(),
            State::Releasing | State::Initialize => None,
        };
        if let Some(argv) = specific {
            hooks::spawn(
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
                vrrp::notify_state(to).to_owned(),
                inst.sm.priority().to_string(),
            ];
            hooks::spawn(format!("notify {}", inst.cfg.name), argv, &args);
        }
    }

    /// Recomputes every instance's priority or fault from what it tracks.
    pub(super) fn apply_tracking(&mut self, now: Instant) {
        // Each instance's own verdict: a priority, or None for a fault.
        let mut verdicts: Vec<Option<u8>> = (0..self.vrrp.len())
            .map(|i| {
                let inst = &self.vrrp[i];
                // In a sync group tracking weights are ignored and a failure faults the group
                // (keepalived's rule): members whose priorities drifted apart would win and
                // lose their elections separately and pull each other back and forth.
                let grouped = self.cfg.sync_groups.iter().any(|g| g.members.contains(&i));
                let weight = |w: i32| if grouped { 0 } else { w };
                let mut effects = Vec::new();
                // The instance's own interface: keepalived faults an instance whose link is
                // down.
                effects.push(vrrp::tracked(inst.link_up, 0));
                for (name, w) in &inst.cfg.track_interfaces {
                    let up = self.links.values().any(|l| &l.name == name && l.up);
                    effects.push(vrrp::tracked(up, weight(*w)));
                }
                for (idx, w) in &inst.cfg.track_scripts {
                    // No result yet counts as failing (keepalived's initial state).
                    let ok = self.script_ok.get(*idx).copied().flatten().unwrap_or(false);
                    effects.push(vrrp::tracked(ok, weight(*w)));
                }
                for (idx, w) in &inst.cfg.track_services {
                    let ok = self.services.get(*idx).is_some_and(|s| s.quorum_up);
                    effects.push(vrrp::tracked(ok, weight(*w)));
                }
                vrrp::effective_priority(inst.cfg.priority, &effects)
            })
            .collect();
        // Sync groups change state together: one member's fault faults them all (the usual
        // reason for a group: both legs of a router must move as one).
        for g in &self.cfg.sync_groups {
            if g.members
                .iter()
                .any(|m| verdicts.get(*m).is_some_and(Option::is_none))
            {
                for m in &g.members {
                    if let Some(v) = verdicts.get_mut(*m) {
                        *v = None;
                    }
                }
            }
        }
        for (i, eff) in verdicts.into_iter().enumerate() {
            let inst = &mut self.vrrp[i];
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

    /// SIGTERM: every master announces priority 0 and keeps forwarding until the new master
    /// speaks (graceful hand-over).
    pub(super) fn vrrp_shutdown(&mut self) {
        let now = Instant::now();
        for inst in &mut self.vrrp {
            inst.sm.shutdown(now);
        }
    }

    /// True when no instance still needs the node (all stopped, grace periods over).
    pub(super) fn vrrp_done(&self) -> bool {
        self.vrrp
            .iter()
            .all(|i| i.sm.state() == State::Stopped && i.release_at.is_none())
    }
}
