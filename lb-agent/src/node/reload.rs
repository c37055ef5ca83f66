//! A new configuration, applied as a difference: services keep what is known about the reals
//! that stay; VRRP instances keep running with their new settings (VIPs, priority, interval,
//! preemption, tracking, scripts, notify hooks); an instance whose interface, VRID or version
//! changed is the one thing that is stopped (gracefully: a master hands over) and started
//! again; removed instances stop the same way, new ones start. Whether the change is allowed
//! at all (map sizes, pins) was decided before: the node takes what it is given.

use std::{collections::HashMap, time::Instant};

use tracing::{info, warn};

use super::{
    instance::{protocol_config, Iface},
    io::Effect,
    vrrp, Node,
};
use crate::{
    config::{Config, InstanceCfg},
    vrrp::{garp, state::State},
};

/// An instance must be stopped and started again (not reconfigured) when this changes.
fn identity_changed(old: &InstanceCfg, new: &InstanceCfg) -> bool {
    old.interface != new.interface
        || old.vrid != new.vrid
        || old.version != new.version
        || old.unicast_src_ip != new.unicast_src_ip
        || (old.priority == crate::vrrp::state::OWNER_PRIORITY)
            != (new.priority == crate::vrrp::state::OWNER_PRIORITY)
}

impl Node {
    pub(super) fn reload(&mut self, now: Instant, cfg: Config, ifaces: &HashMap<String, Iface>) {
        let (added, removed) = self.services.reload(now, &cfg.services);
        let mut restarted = Vec::new();
        let mut started = Vec::new();
        // Instances: reconfigured in place, or retired (and started anew).
        for i in 0..self.vrrp.insts.len() {
            let name = self.vrrp.insts[i].cfg.name.clone();
            if self.vrrp.insts[i].retiring {
                continue;
            }
            match cfg.instances.iter().find(|c| c.name == name) {
                Some(new) if !identity_changed(&self.vrrp.insts[i].cfg, new) => {
                    self.reconfigure(now, i, new.clone());
                }
                Some(_) => {
                    restarted.push(name.clone());
                    self.retire(now, i);
                }
                None => self.retire(now, i),
            }
        }
        for c in &cfg.instances {
            let running = self
                .vrrp
                .insts
                .iter()
                .any(|i| i.cfg.name == c.name && !i.retiring);
            if running {
                continue;
            }
            match vrrp::make(c, ifaces) {
                Ok(mut inst) => {
                    inst.sm.hold_preempt(self.sync_pending);
                    self.vrrp.insts.push(inst);
                    started.push(c.name.clone());
                }
                Err(e) => warn!(instance = %c.name, error = %e, "instance not started"),
            }
        }
        self.vrrp.groups.clone_from(&cfg.sync_groups);
        self.scripts = cfg
            .scripts
            .iter()
            .map(|s| (s.name.clone(), self.scripts.get(&s.name).copied().flatten()))
            .collect();
        self.files = cfg
            .track_files
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    self.files.get(&f.name).copied().unwrap_or(0),
                )
            })
            .collect();
        self.cfg = cfg;
        let host = &self.host;
        self.vrrp.set_links(&|n| host.link_up(n));
        self.vrrp.start(now);
        self.host.update_pauses(now, &self.services.interfaces());
        self.plan_checks();
        self.out.watch(self.services.neighbours());
        info!(
            services_added = added,
            services_removed = removed,
            instances_started = started.len(),
            instances_restarted = ?restarted,
            "configuration reloaded"
        );
    }

    /// New settings for a running instance: VIPs added or removed on a master at once (with
    /// gratuitous ARPs for the new ones), the protocol core reconfigured in place.
    fn reconfigure(&mut self, now: Instant, i: usize, new: InstanceCfg) {
        let inst = &mut self.vrrp.insts[i];
        if inst.cfg == new {
            return;
        }
        let master = inst.holds;
        let gone: Vec<_> = inst
            .cfg
            .vips
            .iter()
            .filter(|v| !new.vips.contains(v))
            .cloned()
            .collect();
        let fresh: Vec<_> = new
            .vips
            .iter()
            .filter(|v| !inst.cfg.vips.contains(v))
            .cloned()
            .collect();
        inst.sm
            .reconfigure(now, protocol_config(&new, inst.iface.src));
        inst.cfg = new;
        info!(instance = %inst.cfg.name, "instance reconfigured");
        if master {
            // The data path for new VIPs first (the services of a new VIP become active).
            self.sync_dataplane();
            let inst = &mut self.vrrp.insts[i];
            for v in &gone {
                inst.releasing.insert(v.addr);
                self.out.push(Effect::RemoveVip(v.clone()));
            }
            for v in &fresh {
                self.out.push(Effect::AddVip(v.clone()));
                self.out.push(Effect::SendFrame {
                    ifindex: inst.iface.ifindex,
                    frame: garp::frame(inst.iface.mac, v.addr),
                });
            }
        }
    }

    /// Stops an instance for good (a master hands over first); it is dropped once released.
    fn retire(&mut self, now: Instant, i: usize) {
        let inst = &mut self.vrrp.insts[i];
        inst.retiring = true;
        info!(instance = %inst.cfg.name, "instance removed by the reload: stopping it");
        if inst.sm.state() != State::Stopped {
            inst.sm.shutdown(now);
        }
    }
}
