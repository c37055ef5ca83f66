//! The running agent: one task owns all state (config, health, VRRP, data path) and changes it
//! only in response to events, so there are no locks and no races between decisions.

pub mod neighbours;
pub mod state;

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::{
    config::{self, Config},
    dataplane::{pins::PinLock, Dataplane},
    netlink::Netlink,
};
use state::ServiceRt;

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
    let mut core = Core {
        cfg,
        cfg_path: opts.config,
        dp,
        nl,
        services,
        resolver: neighbours::Resolver::default(),
    };
    info!(
        router_id = %core.cfg.router_id,
        services = core.services.len(),
        instances = core.cfg.instances.len(),
        "lb-agent starting"
    );
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
    let _ = HashMap::<(), ()>::new();
    loop {
        tokio::select! {
            _ = refresh.tick() => core.tick().await,
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => info!("SIGHUP: reload is not implemented yet"),
        }
    }
    info!("stopping");
    core.shutdown();
    Ok(())
}
