//! The running agent: one task owns all state (config, health, VRRP, data path) and changes it
//! only in response to events, so there are no locks and no races between decisions.

pub mod checks;
pub mod hooks;
pub mod neighbours;
pub mod state;

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::{
    config::{self, Config},
    dataplane::{pins::PinLock, Dataplane},
    health::{self, Scheduler, SchedulerConfig},
    netlink::Netlink,
};
use state::{Health, ServiceRt};

/// How often neighbours (reals' MACs) and links are re-read.
const REFRESH: Duration = Duration::from_secs(1);

pub struct Options {
    pub config: PathBuf,
}

pub struct Core {
    pub cfg: Config,
    pub cfg_path: PathBuf,
    pub dp: Dataplane,
    pub nl: Netlink,
    pub services: Vec<ServiceRt>,
    resolver: neighbours::Resolver,
    sched: Scheduler,
    checks: checks::Registry,
}

impl Core {
    fn standalone(&self) -> bool {
        self.cfg.instances.is_empty()
    }

    /// Recomputes which services this node forwards for.
    fn update_active(&mut self) {
        let standalone = self.standalone();
        for s in &mut self.services {
            s.active = standalone;
        }
    }

    /// Re-reads links and neighbours and updates each real's L2 path.
    async fn refresh_l2(&mut self) -> Result<()> {
        let links = self.nl.links().await?;
        let mut wanted = Vec::new();
        for s in &self.services {
            for r in &s.reals {
                wanted.push((r.cfg.addr, s.cfg.interface.clone()));
            }
            if let Some((a, _)) = s.cfg.sorry {
                wanted.push((a, s.cfg.interface.clone()));
            }
        }
        let found = self.resolver.refresh(&self.nl, &wanted, &links).await?;
        for s in &mut self.services {
            for r in &mut s.reals {
                r.l2 = found.get(&r.cfg.addr).copied();
            }
            s.sorry_l2 = s.cfg.sorry.and_then(|(a, _)| found.get(&a).copied());
        }
        Ok(())
    }

    /// Pushes the desired state into the maps and (de)attaches XDP where needed.
    fn sync(&mut self) -> Result<()> {
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

    async fn tick(&mut self) {
        if let Err(e) = self.refresh_l2().await {
            warn!(error = %format!("{e:#}"), "reading neighbours failed");
        }
        if let Err(e) = self.sync() {
            error!(error = %format!("{e:#}"), "updating the data path failed");
        }
    }

    /// SIGHUP / `lb-agent reload`: validate first (a bad file changes nothing), then apply
    /// only the difference. Reals that stay keep their health, MAC and flows; new reals start
    /// unchecked (no traffic until their first check passes); XDP stays attached.
    async fn reload(&mut self) -> Result<()> {
        let new = config::load(&self.cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(why) = restart_needed(&self.cfg, &new) {
            anyhow::bail!("{why} changed: that needs a restart; the running config stays");
        }
        let mut services = Vec::with_capacity(new.services.len());
        for scfg in &new.services {
            let mut rt = ServiceRt::new(scfg.clone());
            if let Some(old) = self.services.iter().find(|o| o.cfg.key() == scfg.key()) {
                for r in &mut rt.reals {
                    if let Some(o) = old
                        .reals
                        .iter()
                        .find(|o| o.cfg.addr == r.cfg.addr && o.cfg.port == r.cfg.port)
                    {
                        // Same real: keep what we know about it unless its checks changed.
                        r.l2 = o.l2;
                        if o.cfg.checks == r.cfg.checks {
                            r.health = o.health;
                            r.dynamic_weight = o.dynamic_weight;
                            r.last_result.clone_from(&o.last_result);
                        }
                    }
                }
                rt.sorry_l2 = old.sorry_l2;
            }
            services.push(rt);
        }
        let (added, removed) = (
            new.services
                .iter()
                .filter(|n| !self.services.iter().any(|o| o.cfg.key() == n.key()))
                .count(),
            self.services
                .iter()
                .filter(|o| !new.services.iter().any(|n| n.key() == o.cfg.key()))
                .count(),
        );
        self.services = services;
        self.cfg = new;
        self.reconcile_checks();
        self.update_active();
        self.refresh_l2().await?;
        self.sync()?;
        info!(
            services_added = added,
            services_removed = removed,
            "configuration reloaded"
        );
        Ok(())
    }

    /// Tells the health scheduler which reals to check (after start and each reload).
    fn reconcile_checks(&mut self) {
        let wanted: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(move |r| (s.cfg.key(), &r.cfg)))
            .collect();
        self.checks.reconcile(&self.sched, &wanted);
    }

    /// Reals found in the (pinned) maps at startup keep serving until their first check, so
    /// restarting the agent does not take healthy reals out for a check interval.
    fn adopt_recovered(&mut self) {
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

    fn on_health(&mut self, ev: health::Event) {
        let (id, changed) = match &ev {
            health::Event::Health(e) => (e.real, true),
            health::Event::Weight(e) => (e.real, true),
            health::Event::ProbeDone(e) => (e.real, false),
        };
        let Some(key) = self.checks.key(id).copied() else {
            return;
        };
        let Some(svc) = self.services.iter_mut().find(|s| s.cfg.key() == key.0) else {
            return;
        };
        let label = svc.cfg.label();
        let Some(real) = svc
            .reals
            .iter_mut()
            .find(|r| r.cfg.addr == key.1 && r.cfg.port == key.2)
        else {
            return;
        };
        match ev {
            health::Event::Health(e) => {
                let up = e.state == health::State::Up;
                real.health = if up { Health::Up } else { Health::Down };
                real.dynamic_weight = e.weight.or(real.dynamic_weight);
                real.last_result.clone_from(&e.reason);
                real.transitions += 1;
                if up {
                    info!(service = %label, real = %format!("{}:{}", key.1, key.2), reason = %e.reason, "real server UP");
                    if let Some(h) = &real.cfg.notify_up {
                        hooks::spawn(format!("notify_up {}", key.1), h, &[]);
                    }
                } else {
                    warn!(service = %label, real = %format!("{}:{}", key.1, key.2), reason = %e.reason, "real server DOWN");
                    if let Some(h) = &real.cfg.notify_down {
                        hooks::spawn(format!("notify_down {}", key.1), h, &[]);
                    }
                }
            }
            health::Event::Weight(e) => {
                info!(service = %label, real = %key.1, weight = e.weight, reason = %e.reason, "dynamic weight");
                real.dynamic_weight = Some(e.weight);
            }
            health::Event::ProbeDone(e) => {
                real.last_result = e.outcome.reason.clone();
                real.last_latency = Some(e.outcome.latency);
            }
        }
        if changed {
            if let Err(e) = self.sync() {
                error!(error = %format!("{e:#}"), "updating the data path failed");
            }
        }
    }

    fn shutdown(&mut self) {
        self.dp.detach_all();
    }
}

/// `lb-agent run`.
pub async fn run(opts: Options) -> Result<()> {
    let cfg = config::load(&opts.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _lock = PinLock::acquire(&cfg.pin_path)?;
    let dp = Dataplane::open(&cfg.capacity, Some(&cfg.pin_path), cfg.xdp_mode)
        .context("loading the data path")?;
    let nl = Netlink::connect()?;
    let services = cfg.services.iter().cloned().map(ServiceRt::new).collect();
    let (sched, mut health_rx) = Scheduler::new(SchedulerConfig::default());
    let mut core = Core {
        cfg,
        cfg_path: opts.config,
        dp,
        nl,
        services,
        resolver: neighbours::Resolver::default(),
        sched,
        checks: checks::Registry::default(),
    };
    info!(
        router_id = %core.cfg.router_id,
        services = core.services.len(),
        instances = core.cfg.instances.len(),
        "lb-agent starting"
    );
    core.adopt_recovered();
    core.reconcile_checks();
    core.update_active();
    let keep: Vec<String> = core
        .services
        .iter()
        .filter(|s| s.active)
        .map(|s| s.cfg.interface.clone())
        .collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    core.dp.release_stale_links(&keep);
    core.tick().await;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut refresh = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = refresh.tick() => core.tick().await,
            Some(ev) = health_rx.recv() => core.on_health(ev),
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                info!(config = %core.cfg_path.display(), "SIGHUP: reloading");
                if let Err(e) = core.reload().await {
                    error!(error = %format!("{e:#}"), "reload failed");
                }
            }
        }
    }
    info!("stopping");
    core.shutdown();
    Ok(())
}

/// Settings that size or place the maps: changing them means recreating the data path.
fn restart_needed(old: &Config, new: &Config) -> Option<&'static str> {
    if old.capacity != new.capacity {
        Some("a map capacity (max_services, max_reals, maglev_table_size, conntrack_size)")
    } else if old.pin_path != new.pin_path {
        Some("global_defs.bpf_pin_path")
    } else if old.router_id != new.router_id {
        Some("global_defs.router_id")
    } else if old.xdp_mode != new.xdp_mode {
        Some("global_defs.xdp_mode")
    } else {
        None
    }
}
