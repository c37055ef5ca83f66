//! The running agent: one task owns all state (config, health, VRRP, data path) and changes it
//! only in response to events (a timer, a packet, a health result, a signal), so there are no
//! locks and no races between decisions.

pub mod checks;
pub mod dataflow;
pub mod health_events;
pub mod hooks;
pub mod neighbours;
pub mod reload;
pub mod snapshot;
pub mod state;
pub mod vrrp;
pub mod vrrp_driver;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};
use tracing::{error, info, warn};

use crate::{
    config::{self, Config},
    control,
    dataplane::{pins::PinLock, Dataplane},
    health::{Scheduler, SchedulerConfig},
    netlink::{link::Link, Netlink},
    vrrp::io::VrrpSocket,
};
use state::ServiceRt;

/// How often neighbours (reals' MACs) and links are re-read (links also on every netlink
/// link event).
const REFRESH: Duration = Duration::from_secs(1);
/// Upper bound on a graceful stop (hand-over plus grace), whatever the intervals.
const MAX_STOP: Duration = Duration::from_secs(10);

pub struct Options {
    pub config: PathBuf,
}

pub struct Core {
    pub cfg: Config,
    pub cfg_path: PathBuf,
    pub dp: Dataplane,
    pub nl: Netlink,
    pub services: Vec<ServiceRt>,
    pub vrrp: Vec<vrrp::InstRt>,
    pub links: HashMap<u32, Link>,
    /// Latest result of each `vrrp_scripts` entry (None until its first run).
    pub script_ok: Vec<Option<bool>>,
    /// VRRP datagrams that failed the packet checks, by interface and reason.
    pub vrrp_rx_invalid: BTreeMap<(String, &'static str), u64>,
    /// Interfaces whose XDP link an earlier run left pinned: kept forwarding until this node's
    /// role is known, then taken over or released.
    pub adopted: BTreeMap<String, Instant>,
    pub(crate) vrrp_socks: HashMap<String, Arc<VrrpSocket>>,
    pub started: Instant,
    rates: snapshot::Rates,
    latency: snapshot::Latency,
    resolver: neighbours::Resolver,
    sched: Scheduler,
    checks: checks::Registry,
    /// Interfaces whose reals' health checks are paused: down, or back up since (settling).
    checks_paused: BTreeMap<String, Option<Instant>>,
}

/// `lb-agent run`.
pub async fn run(opts: Options) -> Result<()> {
    let cfg = config::load(&opts.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _lock = PinLock::acquire(&cfg.pin_path)?;
    let dp = Dataplane::open(&cfg.capacity, Some(&cfg.pin_path), cfg.xdp_mode)
        .context("loading the data path")?;
    let nl = Netlink::connect()?;
    let links = nl.links().await?;
    let services = cfg.services.iter().cloned().map(ServiceRt::new).collect();
    let (sched, mut health_rx) = Scheduler::new(SchedulerConfig::default());
    let script_ok = vec![None; cfg.scripts.len()];
    let mut core = Core {
        cfg,
        cfg_path: opts.config,
        dp,
        nl,
        services,
        vrrp: Vec::new(),
        links,
        script_ok,
        vrrp_rx_invalid: BTreeMap::new(),
        adopted: BTreeMap::new(),
        vrrp_socks: HashMap::new(),
        started: Instant::now(),
        rates: snapshot::Rates::default(),
        latency: snapshot::Latency::default(),
        resolver: neighbours::Resolver::default(),
        sched,
        checks: checks::Registry::default(),
        checks_paused: BTreeMap::new(),
    };
    info!(
        router_id = %core.cfg.router_id,
        services = core.services.len(),
        instances = core.cfg.instances.len(),
        "lb-agent starting"
    );
    core.adopt_recovered();
    core.reconcile_checks();
    core.adopt_pinned_links();
    let (control_tx, mut control_rx) = mpsc::channel::<control::server::Call>(64);
    let listener = control::server::bind(&core.cfg.control_socket)?;
    control::server::spawn(
        listener,
        core.cfg.control_socket.clone(),
        control_tx.clone(),
    );
    if let Some(addr) = core.cfg.metrics_listen {
        control::metrics::spawn(addr, control_tx.clone()).await?;
    }
    let (vrrp_tx, mut vrrp_rx) = mpsc::channel(1024);
    core.vrrp_start(vrrp_tx.clone()).await?;
    core.tick().await;

    let mut link_events = link_events()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut refresh = tokio::time::interval(REFRESH);
    let mut stopping: Option<Instant> = None;
    loop {
        if let Some(t) = stopping {
            if core.vrrp_done() || t.elapsed() > MAX_STOP {
                break;
            }
        }
        let deadline = core.next_deadline();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = refresh.tick() => core.tick().await,
            _ = timer => core.on_timers().await,
            Some(ev) = health_rx.recv() => core.on_health(ev).await,
            Some(m) = vrrp_rx.recv() => core.on_vrrp(m).await,
            Some(()) = link_events.recv() => core.on_links_changed().await,
            Some((req, reply)) = control_rx.recv() => {
                let resp = core.on_control(req).await;
                let _ = reply.send(resp);
            }
            _ = term.recv(), if stopping.is_none() => {
                info!("SIGTERM: stopping (a master hands over first)");
                stopping = Some(Instant::now());
                core.vrrp_shutdown();
                core.vrrp_drive().await;
            }
            _ = int.recv(), if stopping.is_none() => {
                info!("SIGINT: stopping (a master hands over first)");
                stopping = Some(Instant::now());
                core.vrrp_shutdown();
                core.vrrp_drive().await;
            }
            _ = hup.recv() => {
                info!(config = %core.cfg_path.display(), "SIGHUP: reloading");
                if let Err(e) = core.reload().await {
                    error!(error = %format!("{e:#}"), "reload failed; the running configuration stays");
                }
            }
        }
    }
    core.stop().await;
    let _ = std::fs::remove_file(&core.cfg.control_socket);
    info!("stopped");
    Ok(())
}

/// A message per netlink link event (carrier, admin state), so link failures are acted on at
/// once rather than at the next poll.
fn link_events() -> Result<mpsc::Receiver<()>> {
    use rtnetlink::sys::{AsyncSocket as _, SocketAddr};
    let (mut conn, _handle, mut messages) =
        rtnetlink::new_connection().context("opening rtnetlink for link events")?;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
        .context("subscribing to link events")?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while messages.next().await.is_some() {
            if tx.try_send(()).is_err() && tx.is_closed() {
                return;
            }
        }
    });
    Ok(rx)
}

impl Core {
    fn next_deadline(&self) -> Option<Instant> {
        [self.vrrp_deadline(), self.adopted.values().min().copied()]
            .into_iter()
            .flatten()
            .min()
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .adopted
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        if !expired.is_empty() {
            for k in expired {
                self.adopted.remove(&k);
            }
            self.resync();
        }
        self.vrrp_timers().await;
    }

    async fn on_links_changed(&mut self) {
        if let Err(e) = self.refresh_links().await {
            warn!(error = %format!("{e:#}"), "reading links failed");
        }
        self.apply_tracking(Instant::now());
        self.vrrp_drive().await;
    }

    /// Final cleanup: release everything still held, detach XDP (the pins of the maps stay,
    /// so the next run keeps the connection table).
    async fn stop(&mut self) {
        for i in 0..self.vrrp.len() {
            self.release(i).await;
        }
        self.dp.detach_all();
    }
}
