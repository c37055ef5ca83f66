//! Config + health + VRRP state -> desired data-path state -> map writes and attachments.

use std::{collections::BTreeSet, time::Instant};

use anyhow::Result;
use tracing::{error, info, warn};

use super::{hooks, neighbours::LINK_SETTLE, state::Health, Core, ServiceRt};
use crate::dataplane::attach;

impl Core {
    fn standalone(&self) -> bool {
        self.cfg.instances.is_empty()
    }

    /// Which services this node forwards for now: all of them standalone; otherwise those
    /// whose VIP belongs to an instance that holds it (master, or handing over), those on an
    /// interface whose pinned XDP link was adopted from an earlier run, and those whose VIP
    /// no instance owns.
    pub(super) fn update_active(&mut self) {
        let standalone = self.standalone();
        for s in &mut self.services {
            let owner = self
                .vrrp
                .iter()
                .find(|i| i.cfg.vips.iter().any(|v| v.addr == s.cfg.addr));
            let owned_elsewhere = owner.is_none()
                && self
                    .cfg
                    .instances
                    .iter()
                    .any(|i| i.vips.iter().any(|v| v.addr == s.cfg.addr));
            s.active = standalone
                || owner.is_some_and(|i| i.holds)
                || self.adopted.contains_key(&s.cfg.interface)
                || (owner.is_none() && !owned_elsewhere);
        }
    }

    pub(super) async fn refresh_links(&mut self) -> Result<()> {
        self.links = self.nl.links().await?;
        for inst in &mut self.vrrp {
            let up = self.links.get(&inst.ifindex).is_some_and(|l| l.up);
            if up != inst.link_up {
                if up {
                    info!(instance = %inst.cfg.name, interface = %inst.cfg.interface, "link up");
                } else {
                    warn!(instance = %inst.cfg.name, interface = %inst.cfg.interface, "link down");
                }
                inst.link_up = up;
            }
        }
        self.pause_checks_behind_down_links();
        Ok(())
    }

    /// A check through an interface that is down measures our own outage, not the real: it
    /// would mark every real behind it down, and a master returning after a link flap would
    /// then have no real to send its flows to. Those checks pause until the link has been back
    /// for [`LINK_SETTLE`]; the reals keep the state they had.
    fn pause_checks_behind_down_links(&mut self) {
        let now = Instant::now();
        let down: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| s.cfg.interface.clone())
            .filter(|name| !self.links.values().any(|l| &l.name == name && l.up))
            .collect();
        for name in &down {
            if self.checks_paused.insert(name.clone(), None).is_none() {
                warn!(interface = %name, "interface down: health checks of the reals behind it paused");
            }
        }
        self.checks_paused.retain(|name, up_since| {
            if down.contains(name) {
                return true;
            }
            let since = *up_since.get_or_insert(now);
            let settled = now.duration_since(since) >= LINK_SETTLE;
            if settled {
                info!(interface = %name, "interface up: health checks resumed");
            }
            !settled
        });
        let keys = self
            .services
            .iter()
            .filter(|s| self.checks_paused.contains_key(&s.cfg.interface))
            .map(|s| s.cfg.key())
            .collect();
        self.checks.pause(&self.sched, &keys);
    }

    /// Re-reads neighbours and updates each real's L2 path; asks the kernel to resolve the
    /// reals it has no current entry for.
    async fn refresh_l2(&mut self) -> Result<()> {
        let mut wanted = Vec::new();
        for s in &self.services {
            for r in &s.reals {
                wanted.push((r.cfg.addr, s.cfg.interface.clone()));
            }
            if let Some((a, _)) = s.cfg.sorry {
                wanted.push((a, s.cfg.interface.clone()));
            }
        }
        let table = self.nl.neighbours().await?;
        let plan = self
            .resolver
            .update(Instant::now(), &wanted, &table, &self.links);
        for (ifindex, ip) in plan.ask {
            if let Err(e) = self.nl.resolve(ifindex, ip).await {
                self.resolver.ask_failed(ip);
                warn!(real = %ip, error = %e, "cannot ask the kernel to resolve");
            }
        }
        for s in &mut self.services {
            for r in &mut s.reals {
                r.l2 = plan.l2.get(&r.cfg.addr).copied();
            }
            s.sorry_l2 = s.cfg.sorry.and_then(|(a, _)| plan.l2.get(&a).copied());
        }
        Ok(())
    }

    /// Recomputes which services are active and pushes everything to the data path; a failure
    /// is logged (the next event or tick retries).
    pub(super) fn resync(&mut self) {
        self.update_active();
        if let Err(e) = self.sync() {
            error!(error = %format!("{e:#}"), "updating the data path failed");
        }
    }

    /// Pushes the desired state into the maps and (de)attaches XDP where needed.
    pub(super) fn sync(&mut self) -> Result<()> {
        let desired: Vec<_> = self.services.iter().map(ServiceRt::desired).collect();
        self.dp.apply(&desired)?;
        let want: BTreeSet<String> = self
            .services
            .iter()
            .filter(|s| s.active)
            .map(|s| s.cfg.interface.clone())
            .collect();
        let have: Vec<String> = self.dp.attached().map(str::to_owned).collect();
        for ifname in &have {
            if !want.contains(ifname) {
                self.dp.detach(ifname);
            }
        }
        for ifname in &want {
            if let Err(e) = self.dp.attach(ifname) {
                error!(interface = %ifname, error = %format!("{e:#}"), "cannot attach XDP");
            }
        }
        Ok(())
    }

    /// The periodic pass: links, MACs, quorum, data path.
    pub(super) async fn tick(&mut self) {
        if let Err(e) = self.refresh_links().await {
            warn!(error = %format!("{e:#}"), "reading links failed");
        }
        if let Err(e) = self.refresh_l2().await {
            warn!(error = %format!("{e:#}"), "reading neighbours failed");
        }
        self.update_quorum();
        self.apply_tracking(Instant::now());
        self.vrrp_drive().await;
        self.resync();
        self.sample_rates();
    }

    /// Services crossing their quorum: log, run quorum_up/quorum_down.
    pub(super) fn update_quorum(&mut self) {
        for s in &mut self.services {
            if let Some(up) = s.update_quorum() {
                let label = s.cfg.label();
                if up {
                    info!(service = %label, live_weight = s.live_weight(), "service quorum gained");
                    if let Some(h) = &s.cfg.quorum_up {
                        hooks::spawn(format!("quorum_up {label}"), h, &[]);
                    }
                } else {
                    warn!(service = %label, live_weight = s.live_weight(), quorum = s.cfg.quorum, "service below quorum");
                    if let Some(h) = &s.cfg.quorum_down {
                        hooks::spawn(format!("quorum_down {label}"), h, &[]);
                    }
                }
            }
        }
    }

    /// Tells the health scheduler which reals and VRRP scripts to check.
    pub(super) fn reconcile_checks(&mut self) {
        let wanted: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(move |r| (s.cfg.key(), &r.cfg)))
            .collect();
        self.checks.reconcile(&self.sched, &wanted);
        self.checks
            .reconcile_scripts(&self.sched, &self.cfg.scripts);
        self.pause_checks_behind_down_links();
    }

    /// Reals found in the (pinned) maps at startup keep serving until their first check, so
    /// restarting the agent does not take healthy reals out for a check interval.
    pub(super) fn adopt_recovered(&mut self) {
        // Their paths too: a restarted agent forwards established flows before the kernel's
        // neighbour table (perhaps flushed meanwhile) answers again.
        for (ip, l2) in self.dp.programmer.recovered_paths() {
            self.resolver.seed(ip, l2);
        }
        for s in &mut self.services {
            let key = s.cfg.key();
            for r in &mut s.reals {
                if r.health == Health::Unknown
                    && self
                        .dp
                        .programmer
                        .real_serving(&key, r.cfg.addr, r.cfg.port)
                {
                    r.health = Health::Assumed;
                }
            }
        }
    }

    /// An earlier run that was killed left XDP attached (pinned): its node kept forwarding for
    /// clients whose ARP caches still pointed at it. Keep doing so (with this run's program)
    /// until this node's role is known, for at most three advert intervals (plus a second),
    /// then the normal rules decide. Standalone: it is simply taken over.
    pub(super) fn adopt_pinned_links(&mut self) {
        let Some(dir) = self.dp.loaded.pin_dir.clone() else {
            return;
        };
        let max_int = self
            .cfg
            .instances
            .iter()
            .map(|i| i.advert_int)
            .max()
            .unwrap_or_default();
        let until = Instant::now() + max_int * 3 + std::time::Duration::from_secs(1);
        let ifaces: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| s.cfg.interface.clone())
            .collect();
        for ifname in attach::pinned_links(&dir) {
            if ifaces.contains(&ifname) && !self.standalone() {
                info!(interface = %ifname, "XDP link left by an earlier run: keeps forwarding until this node's role is known");
                self.adopted.insert(ifname, until);
            }
        }
        self.update_active();
        let keep: Vec<String> = self
            .services
            .iter()
            .filter(|s| s.active)
            .map(|s| s.cfg.interface.clone())
            .collect();
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        self.dp.release_stale_links(&keep);
    }

    /// An adopted link is no longer needed once an instance on its interface knows who the
    /// master is.
    pub(super) fn settle_adopted(&mut self) {
        let settled: Vec<String> = self
            .adopted
            .keys()
            .filter(|ifname| {
                self.vrrp.iter().any(|i| {
                    &&i.cfg.interface == ifname
                        && (i.holds || i.sm.master_addr().is_some_and(|m| m != i.src))
                })
            })
            .cloned()
            .collect();
        for k in settled {
            info!(interface = %k, "role known; the adopted XDP link follows it now");
            self.adopted.remove(&k);
        }
    }
}
