//! The running agent: wiring and the carrying out of effects, nothing else. The node core
//! (`crate::node`) decides; this feeds it events stamped with the time and does what it asks.
//!
//! Two runtimes: the node loop runs on its own thread (a current-thread runtime) with the
//! VRRP sockets, the timers, the maps and XDP; everything that may be slow (netlink, health
//! checks, hooks, the control socket, metrics) runs on a second runtime. So the advert timer
//! never waits on netlink, a check or a script.

pub mod bird;
pub mod boot;
pub mod checks;
pub mod hooks;
pub mod host;
pub mod operator;
pub mod receive;
pub mod snapshot;
pub mod state;
pub mod systemd;
pub mod track_files;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use std::os::unix::fs::MetadataExt as _;

use anyhow::{Context as _, Result};
use tokio::{
    runtime::Handle,
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
};
use tracing::{debug, error, info, warn};

use crate::{
    config::{self, Config},
    control::{self, Request, Response},
    dataplane::{pins::PinLock, Dataplane},
    health::{Scheduler, SchedulerConfig},
    netlink::Netlink,
    node::{Boot, DataplaneState, Effect, Event, Iface, Node},
    vrrp::{garp, io::VrrpSocket},
};

/// How long before a deadline the node loop leaves tokio's timer for a precise sleep.
const EARLY: Duration = Duration::from_millis(2);
/// How often the per-real rates are sampled.
const RATES_EVERY: Duration = Duration::from_secs(1);
/// How often the connection tables' entries are counted (a key walk: cheap, not free).
const FILL_EVERY: Duration = Duration::from_secs(60);

pub struct Options {
    pub config: PathBuf,
}

/// A reload's config, read and validated, with its instances' interfaces (or why not).
type Prepared = Result<(Config, HashMap<String, Iface>), String>;

/// What reaches the node loop besides node events.
enum Cmd {
    /// A reload prepared on the IO runtime (config read and validated, interfaces looked up).
    Reload {
        prepared: Box<Prepared>,
        reply: Option<oneshot::Sender<Response>>,
    },
    /// `status --flows`: the connection table was counted on the IO runtime.
    Status {
        flows: HashMap<u32, u64>,
        reply: oneshot::Sender<Response>,
    },
}

/// Most connection-table entries read for `status --flows`.
const FLOW_SCAN_CAP: usize = 200_000;

/// `lb-agent run`.
pub fn run(opts: Options) -> Result<()> {
    let cfg = config::load(&opts.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lb-io")
        .enable_all()
        .build()
        .context("starting the IO runtime")?;
    let node_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the node runtime")?;
    favour_this_thread();
    let r = node_rt.block_on(Agent::start(cfg, opts.config, io.handle().clone()));
    io.shutdown_timeout(Duration::from_secs(1));
    r
}

/// Settings that size or place the maps: changing them needs a restart.
fn restart_needed(old: &Config, new: &Config) -> Option<&'static str> {
    if old.capacity != new.capacity {
        Some(
            "a map capacity (max_services, max_service_ports, max_reals, maglev_table_size, \
             conntrack_size)",
        )
    } else if old.pin_path != new.pin_path {
        Some("global_defs.bpf_pin_path")
    } else if old.router_id != new.router_id {
        Some("global_defs.router_id")
    } else if old.xdp_mode != new.xdp_mode || old.xdp_modes != new.xdp_modes {
        Some("global_defs.xdp_mode or an interface's xdp_mode")
    } else if old.control_socket != new.control_socket {
        Some("global_defs.control_socket")
    } else if old.state_dir != new.state_dir {
        Some("global_defs.state_dir")
    } else if old.metrics_listen != new.metrics_listen {
        Some("global_defs.metrics_listen")
    } else if old.bgp != new.bgp {
        Some("the bgp section")
    } else if old.flow_sync != new.flow_sync {
        Some("the flow_sync section")
    } else {
        None
    }
}

struct Agent {
    cfg_path: PathBuf,
    node: Node,
    dp: Dataplane,
    io: Handle,
    host: mpsc::Sender<host::Request>,
    events: mpsc::Sender<Event>,
    /// By interface and family (true: IPv6).
    socks: HashMap<(String, bool), Arc<VrrpSocket>>,
    garps: HashMap<u32, garp::Sender>,
    sched: Scheduler,
    registry: checks::Registry,
    /// Saves the operator's overrides.
    saver: tokio::sync::watch::Sender<Vec<crate::node::overrides::Saved>>,
    /// The task reading the track files, with the list it reads.
    track_files: Option<(
        Vec<crate::config::TrackFileCfg>,
        tokio::task::JoinHandle<()>,
    )>,
    tx_errors: HashMap<String, u64>,
    latency: snapshot::Latency,
    rates: snapshot::Rates,
    started: Instant,
    last_reload: Option<control::snapshot::ReloadSnap>,
    /// Connection-table fill, counted on the IO runtime.
    conntrack: Arc<std::sync::Mutex<Vec<control::snapshot::TableFill>>>,
    /// Pinned links of an earlier run not taken over are released with the first data-path
    /// state.
    first_dataplane: bool,
    /// Scale-out mode: the BIRD driver.
    bird: Option<bird::Bird>,
    /// Flow-state sharing with the peers (`flow_sync:`).
    flow_sync: Option<crate::flowsync::FlowSync>,
}

impl Agent {
    async fn start(cfg: Config, cfg_path: PathBuf, io: Handle) -> Result<()> {
        let _lock = PinLock::acquire(&cfg.pin_path)?;
        let mut dp = Dataplane::open(&cfg.capacity, Some(&cfg.pin_path), cfg.xdp_mode)
            .context("loading the data path")?;
        dp.set_modes(cfg.xdp_modes.clone());
        // An interface whose driver cannot do what `xdp_mode: native` demands is refused now,
        // not when the node first becomes master.
        let mut native: Vec<&String> = cfg
            .services
            .iter()
            .map(|s| &s.interface)
            .filter(|i| cfg.xdp_mode_of(i) == config::XdpMode::Native)
            .collect();
        native.sort();
        native.dedup();
        for ifname in native {
            dp.probe_native(ifname)?;
        }
        // Host facts, read on the IO runtime (netlink lives there).
        let boot_cfg = cfg.clone();
        let (links, ifaces) = io
            .spawn(async move {
                let nl = Netlink::connect()?;
                boot::remove_stale_vips(&nl, &boot_cfg).await?;
                let ifaces = boot::ifaces(&nl, &boot_cfg).await?;
                Ok::<_, anyhow::Error>((nl.links().await?, ifaces))
            })
            .await
            .context("reading the host")??;
        let pinned_links = dp
            .loaded
            .pin_dir
            .as_deref()
            .map(crate::dataplane::attach::pinned_links)
            .unwrap_or_default();
        let boot = Boot {
            links,
            ifaces,
            serving: recovered_serving(&cfg, &dp),
            paths: dp.programmer.recovered_paths(),
            pinned_links,
            overrides: state::load(&cfg.state_dir),
        };
        let (events_tx, mut events) = mpsc::channel::<Event>(4096);
        let (host_tx, host_rx) = mpsc::channel(1024);
        io.spawn(host::run(host_rx, events_tx.clone()));
        let (sched, mut health) = {
            let _g = io.enter();
            Scheduler::new(SchedulerConfig::default())
        };
        let (cmd_tx, mut cmds) = mpsc::channel::<Cmd>(64);
        let (control_tx, mut control_rx) = mpsc::channel::<control::server::Call>(64);
        {
            let _g = io.enter();
            let listener = control::server::bind(&cfg.control_socket)?;
            control::server::spawn(listener, cfg.control_socket.clone(), control_tx.clone());
            if let Some(addr) = cfg.metrics_listen {
                control::metrics::spawn(addr, control_tx.clone()).await?;
            }
        }
        let socket_path = cfg.control_socket.clone();
        // Which file is ours: at exit it is removed only if it still is (a successor started
        // while this agent was stopping has bound a new one at the same path).
        let socket_ino = std::fs::metadata(&socket_path).map(|m| m.ino()).ok();
        let saver = {
            let _g = io.enter();
            state::writer(cfg.state_dir.clone())
        };
        let bird = cfg.bgp.clone().map(|b| {
            let _g = io.enter();
            bird::Bird::spawn(b)
        });
        let flow_sync = match cfg.flow_sync.clone() {
            Some(fs) => {
                let handles = crate::flowsync::directory::Handles::of(&dp.loaded.maps)?;
                let ready = events_tx.clone();
                Some(
                    crate::flowsync::start(fs, handles, move || {
                        let _ = ready.blocking_send(Event::FlowSyncReady);
                    })
                    .context("starting the flow sync")?,
                )
            }
            None => None,
        };
        let node = Node::new(Instant::now(), cfg, boot).map_err(|e| anyhow::anyhow!(e))?;
        let mut a = Agent {
            cfg_path,
            node,
            dp,
            io: io.clone(),
            host: host_tx,
            events: events_tx,
            socks: HashMap::new(),
            garps: HashMap::new(),
            sched,
            registry: checks::Registry::default(),
            saver,
            track_files: None,
            tx_errors: HashMap::new(),
            latency: snapshot::Latency::default(),
            rates: snapshot::Rates::default(),
            started: Instant::now(),
            last_reload: None,
            conntrack: Arc::default(),
            first_dataplane: true,
            bird,
            flow_sync,
        };
        a.count_conntrack();
        a.open_sockets()?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut rates = tokio::time::interval(RATES_EVERY);
        let watchdog = systemd::watchdog_enabled();
        let mut ready = false;
        loop {
            a.carry_out();
            if a.node.is_stopped() {
                break;
            }
            if !ready {
                // The maps hold the first state and XDP is where it should be.
                ready = true;
                systemd::notify(&format!(
                    "READY=1\nSTATUS=serving {} services, {} VRRP instances",
                    a.node.services().len(),
                    a.node.instances().len()
                ));
            }
            let deadline = a.node.poll_timeout();
            let timer = async {
                match deadline {
                    Some(d) => wait_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = timer => a.node.handle(Instant::now(), Event::Timer),
                Some(ev) = events.recv() => a.node.handle(Instant::now(), ev),
                Some(ev) = health.recv() => {
                    if let health::Event::ProbeDone(p) = &ev {
                        a.latency.observe(p.outcome.latency.as_secs_f64());
                    }
                    if let Some(ev) = a.registry.translate(ev) {
                        a.node.handle(Instant::now(), ev);
                    }
                }
                Some((req, reply)) = control_rx.recv() => a.control(req, reply, &cmd_tx),
                Some(cmd) = cmds.recv() => a.command(cmd),
                _ = rates.tick() => {
                    a.rates.sample_all(&a.node, &a.dp, Instant::now());
                    if watchdog {
                        systemd::notify("WATCHDOG=1");
                    }
                }
                _ = term.recv() => {
                    info!("SIGTERM: stopping (a master hands over first)");
                    a.node.handle(Instant::now(), Event::Shutdown);
                }
                _ = int.recv() => {
                    info!("SIGINT: stopping (a master hands over first)");
                    a.node.handle(Instant::now(), Event::Shutdown);
                }
                _ = hup.recv() => {
                    info!(config = %a.cfg_path.display(), "SIGHUP: reloading");
                    a.prepare_reload(None, &cmd_tx);
                }
            }
        }
        if let Some(b) = &a.bird {
            if !b.withdrawn(Duration::from_secs(5)).await {
                warn!("BIRD did not confirm the withdrawal of the VIPs before exit");
            }
        }
        if std::fs::metadata(&socket_path).map(|m| m.ino()).ok() == socket_ino {
            let _ = std::fs::remove_file(&socket_path);
        }
        systemd::notify("STOPPING=1");
        info!("stopped");
        Ok(())
    }

    /// Counts the connection tables' entries every [`FILL_EVERY`] on the IO runtime.
    fn count_conntrack(&self) {
        let handles = match crate::dataplane::conns::Handles::of(&self.dp.loaded.maps) {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "connection-table fill not counted");
                return;
            }
        };
        let cap = self.node.config().capacity;
        let out = self.conntrack.clone();
        self.io.spawn(async move {
            let handles = Arc::new(handles);
            // The first count once the table has had some traffic, then every FILL_EVERY.
            let first = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut every = tokio::time::interval_at(first, FILL_EVERY);
            loop {
                every.tick().await;
                let h = handles.clone();
                let Ok(Ok((n4, n6))) = tokio::task::spawn_blocking(move || h.count()).await else {
                    continue;
                };
                let now = unix_now();
                let fill = |family: &str, entries, capacity: u32| control::snapshot::TableFill {
                    family: family.into(),
                    entries,
                    capacity: u64::from(capacity),
                    counted_unix: now,
                };
                let list = vec![
                    fill("ipv4", n4, cap.conntrack),
                    fill("ipv6", n6, cap.conntrack6),
                ];
                if let Ok(mut g) = out.lock() {
                    *g = list;
                }
            }
        });
    }

    /// One VRRP socket (and receiver) per interface and family with instances.
    fn open_sockets(&mut self) -> Result<()> {
        let mut by_if: BTreeMap<(String, bool), Vec<IpAddr>> = BTreeMap::new();
        for i in self.node.instances() {
            let v6 = i.cfg.mcast_group.is_ipv6();
            let groups = by_if.entry((i.cfg.interface.clone(), v6)).or_default();
            if i.cfg.unicast_peers.is_empty() && !groups.contains(&i.cfg.mcast_group) {
                groups.push(i.cfg.mcast_group);
            }
        }
        for ((ifname, v6), groups) in by_if {
            if self.socks.contains_key(&(ifname.clone(), v6)) {
                continue;
            }
            let ifindex = self
                .node
                .instances()
                .iter()
                .find(|i| i.cfg.interface == ifname)
                .map_or(0, |i| i.iface.ifindex);
            let sock = Arc::new(
                VrrpSocket::open(&ifname, ifindex, v6, &groups)
                    .with_context(|| format!("opening the VRRP socket on {ifname}"))?,
            );
            receive::spawn(sock.clone(), self.events.clone());
            self.socks.insert((ifname, v6), sock);
        }
        Ok(())
    }

    /// Carries out every pending effect, in order.
    fn carry_out(&mut self) {
        while let Some(e) = self.node.poll_effect() {
            match e {
                Effect::SendAdvert {
                    instance,
                    ifname,
                    src,
                    dst,
                    datagram,
                } => {
                    let sent = self
                        .socks
                        .get(&(ifname, dst.is_ipv6()))
                        .map(|s| s.send(&datagram, src, dst));
                    if !matches!(sent, Some(Ok(()))) {
                        *self.tx_errors.entry(instance.clone()).or_insert(0) += 1;
                        debug!(%instance, result = ?sent, "advert not sent");
                    }
                }
                Effect::SendFrame { ifindex, frame } => self.send_frame(ifindex, &frame),
                Effect::AddVip(v) => self.to_host(host::Request::AddVip(v)),
                Effect::RemoveVip(v) => self.to_host(host::Request::RemoveVip(v)),
                Effect::Resolve { ifindex, ip } => {
                    self.to_host(host::Request::Resolve { ifindex, ip })
                }
                Effect::WatchNeighbours(list) => self.to_host(host::Request::Watch(list)),
                Effect::Dataplane(state) => self.dataplane(&state),
                Effect::Hook { what, argv, args } => {
                    let _g = self.io.enter();
                    hooks::spawn(what, &argv, &args);
                }
                Effect::Checks(plan) => {
                    self.registry.reconcile(&self.sched, &plan);
                    self.read_track_files(plan.track_files);
                }
                Effect::Announce(vips) => {
                    if let Some(b) = &self.bird {
                        b.announce(vips);
                    }
                }
                Effect::SaveOverrides(list) => {
                    let _ = self.saver.send(list);
                }
                Effect::Stopped => {}
            }
        }
    }

    /// Reads exactly `files` from now on (a new reader when the list changed).
    fn read_track_files(&mut self, files: Vec<crate::config::TrackFileCfg>) {
        if self.track_files.as_ref().is_some_and(|(f, _)| *f == files) {
            return;
        }
        if let Some((_, task)) = self.track_files.take() {
            task.abort();
        }
        if !files.is_empty() {
            let _rt = self.io.enter();
            let task = track_files::spawn(files.clone(), self.events.clone());
            self.track_files = Some((files, task));
        }
    }

    fn send_frame(&mut self, ifindex: u32, frame: &[u8]) {
        let sender = match self.garps.entry(ifindex) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match garp::Sender::new(ifindex) {
                Ok(s) => e.insert(s),
                Err(err) => {
                    warn!(ifindex, error = %err, "no gratuitous ARP socket");
                    return;
                }
            },
        };
        if let Err(e) = sender.send(frame) {
            debug!(ifindex, error = %e, "gratuitous ARP not sent");
        }
    }

    fn to_host(&self, req: host::Request) {
        if let Err(e) = self.host.try_send(req) {
            error!(error = %e, "the host worker is not taking requests");
        }
    }

    /// The maps first, then XDP where wanted (and nowhere else).
    fn dataplane(&mut self, state: &DataplaneState) {
        if let Err(e) = self.dp.apply(&state.services) {
            error!(error = %format!("{e:#}"), "updating the data path failed");
        }
        if let Some(fs) = &self.flow_sync {
            fs.set_directory(self.dp.programmer.directory(&state.services));
        }
        let have: Vec<String> = self.dp.attached().map(str::to_owned).collect();
        for ifname in have.iter().filter(|i| !state.attach.contains(*i)) {
            self.dp.detach(ifname);
        }
        for ifname in &state.attach {
            if let Err(e) = self.dp.attach(ifname) {
                error!(interface = %ifname, error = %format!("{e:#}"), "cannot attach XDP");
            }
        }
        if std::mem::take(&mut self.first_dataplane) {
            let keep: Vec<&str> = state.attach.iter().map(String::as_str).collect();
            self.dp.release_stale_links(&keep);
        }
        let attached: std::collections::BTreeSet<String> =
            self.dp.attached().map(str::to_owned).collect();
        if let Some(fs) = &self.flow_sync {
            fs.set_active(!attached.is_empty());
        }
        self.node.handle(Instant::now(), Event::Attached(attached));
    }

    fn io_stats(&self) -> snapshot::IoStats<'_> {
        snapshot::IoStats {
            config: self.cfg_path.display().to_string(),
            started: self.started,
            rates: &self.rates,
            latency: &self.latency,
            tx_errors: &self.tx_errors,
            last_reload: self.last_reload.clone(),
            conntrack: self.conntrack.lock().map(|g| g.clone()).unwrap_or_default(),
            bird: self
                .bird
                .as_ref()
                .and_then(|b| b.state.lock().ok().map(|s| s.clone())),
            flow_sync: self.flow_sync.as_ref().map(|fs| {
                let failed = crate::dataplane::counters::stat(
                    &self.dp.loaded.maps,
                    lb_common::stats::INFO_FLOW_PUBLISH_FAILED,
                );
                fs.snapshot(self.node.sync_pending(), failed)
            }),
            socket_drops: self
                .socks
                .iter()
                .map(|((i, v6), s)| {
                    let name = if *v6 { format!("{i}/ipv6") } else { i.clone() };
                    (name, s.kernel_drops())
                })
                .collect(),
        }
    }

    fn control(
        &mut self,
        req: Request,
        reply: oneshot::Sender<Response>,
        cmds: &mpsc::Sender<Cmd>,
    ) {
        let resp = match req {
            Request::Status { flows: false } => Response::Status(Box::new(snapshot::snapshot(
                &self.node,
                &self.dp,
                &self.io_stats(),
                None,
            ))),
            // Walking the connection table takes a while: never on the node loop.
            Request::Status { flows: true } => {
                match crate::dataplane::conns::Handles::of(&self.dp.loaded.maps) {
                    Ok(handles) => {
                        let cmds = cmds.clone();
                        self.io.spawn(async move {
                            let counted = tokio::task::spawn_blocking(move || {
                                handles.per_real(FLOW_SCAN_CAP)
                            })
                            .await;
                            match counted {
                                Ok(Ok(flows)) => {
                                    let _ = cmds.send(Cmd::Status { flows, reply }).await;
                                }
                                Ok(Err(e)) => {
                                    let _ = reply.send(Response::Error {
                                        message: format!("reading the connection table: {e:#}"),
                                    });
                                }
                                Err(e) => {
                                    let _ = reply.send(Response::Error {
                                        message: format!("counting the connection table: {e}"),
                                    });
                                }
                            }
                        });
                        return;
                    }
                    Err(e) => Response::Error {
                        message: format!("{e:#}"),
                    },
                }
            }
            Request::Explain { client, vip, proto } => match config::Proto::from_name(&proto) {
                Ok(p) => Response::Explain(crate::dataplane::explain::explain(
                    &self.dp.loaded.maps,
                    client,
                    vip,
                    p.number(),
                )),
                Err(message) => Response::Error { message },
            },
            Request::Reload => {
                self.prepare_reload(Some(reply), cmds);
                return;
            }
            Request::SetReal {
                vip,
                proto,
                real,
                action,
                weight,
            } => self.set_real(vip, &proto, &real, &action, weight),
            Request::Conns {
                vip,
                real,
                client,
                limit,
            } => {
                let filter = crate::dataplane::conns::Filter {
                    vip,
                    real,
                    client,
                    limit,
                };
                match crate::dataplane::conns::Handles::of(&self.dp.loaded.maps) {
                    Ok(handles) => {
                        self.io.spawn_blocking(move || {
                            let resp = match handles.list(&filter) {
                                Ok(l) => Response::Conns(l),
                                Err(e) => Response::Error {
                                    message: format!("reading the connection table: {e:#}"),
                                },
                            };
                            let _ = reply.send(resp);
                        });
                        return;
                    }
                    Err(e) => Response::Error {
                        message: format!("{e:#}"),
                    },
                }
            }
        };
        let _ = reply.send(resp);
    }

    /// `lb-agent real drain|weight|enable`.
    fn set_real(
        &mut self,
        vip: std::net::SocketAddr,
        proto: &str,
        real: &str,
        action: &str,
        weight: Option<u32>,
    ) -> Response {
        let action = match (action, weight) {
            ("drain", _) => operator::Action::Drain,
            ("weight", Some(w)) => operator::Action::Weight(w),
            ("enable", _) => operator::Action::Enable,
            (other, _) => {
                return Response::Error {
                    message: format!("action {other:?}: drain, weight N or enable"),
                }
            }
        };
        match operator::resolve(self.node.services(), vip, proto, real) {
            Ok((key, label)) => {
                self.node.handle(
                    Instant::now(),
                    Event::Override {
                        real: key,
                        set: operator::override_for(action),
                    },
                );
                Response::Done {
                    message: operator::message(action, &label),
                }
            }
            Err(message) => Response::Error { message },
        }
    }

    /// Reads and validates the config and looks up its interfaces on the IO runtime; the
    /// result comes back as a command.
    fn prepare_reload(&self, reply: Option<oneshot::Sender<Response>>, cmds: &mpsc::Sender<Cmd>) {
        let path = self.cfg_path.clone();
        let cmds = cmds.clone();
        self.io.spawn(async move {
            let prepared = async {
                let cfg = config::load(&path).map_err(|e| e.to_string())?;
                let nl = Netlink::connect().map_err(|e| format!("{e:#}"))?;
                let ifaces = boot::ifaces(&nl, &cfg)
                    .await
                    .map_err(|e| format!("{e:#}"))?;
                Ok((cfg, ifaces))
            }
            .await;
            let _ = cmds
                .send(Cmd::Reload {
                    prepared: Box::new(prepared),
                    reply,
                })
                .await;
        });
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Status { flows, reply } => {
                let snap = snapshot::snapshot(&self.node, &self.dp, &self.io_stats(), Some(&flows));
                let _ = reply.send(Response::Status(Box::new(snap)));
            }
            Cmd::Reload { prepared, reply } => {
                let resp = match (*prepared).and_then(|(cfg, ifaces)| {
                    match restart_needed(self.node.config(), &cfg) {
                        Some(why) => Err(format!("{why} changed: that needs a restart")),
                        None => Ok((cfg, ifaces)),
                    }
                }) {
                    Ok((cfg, ifaces)) => {
                        self.node.handle(
                            Instant::now(),
                            Event::Reload {
                                cfg: Box::new(cfg),
                                ifaces,
                            },
                        );
                        if let Err(e) = self.open_sockets() {
                            error!(error = %format!("{e:#}"), "a VRRP socket for the reloaded config");
                        }
                        Response::Reloaded {
                            message: "configuration reloaded".into(),
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "reload failed; the running configuration stays");
                        Response::Error {
                            message: format!("reload failed, the running configuration stays: {e}"),
                        }
                    }
                };
                self.last_reload = Some(control::snapshot::ReloadSnap {
                    at_unix: unix_now(),
                    ok: matches!(resp, Response::Reloaded { .. }),
                    message: match &resp {
                        Response::Reloaded { message } | Response::Error { message } => {
                            message.clone()
                        }
                        _ => String::new(),
                    },
                });
                if let Some(reply) = reply {
                    let _ = reply.send(resp);
                }
            }
        }
    }
}

/// The node loop runs on this thread: ask the scheduler to run it before ordinary work, so
/// adverts leave on time on a busy host: real-time `SCHED_FIFO` priority 1 (keepalived's
/// `vrrp_rt_priority`; the loop sleeps between events, and the kernel's real-time throttling
/// bounds it anyway), with reset-on-fork so no thread or process started from here inherits
/// it; else nice -10 (keepalived's `vrrp_priority`). A refusal only costs timing precision.
fn favour_this_thread() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid sched_param.
    let rt = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if rt == 0 {
        return;
    }
    debug!(error = %std::io::Error::last_os_error(), "no real-time priority for the node loop; nice -10");
    // SAFETY: gettid and setpriority on the calling thread, no pointers.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10)
    };
    if r != 0 {
        debug!(error = %std::io::Error::last_os_error(), "cannot raise the node loop's priority");
    }
}

/// Waits until `d`, to a fraction of a millisecond: tokio's timer ticks in whole milliseconds
/// (a deadline is rounded up to the next tick) and its driver's `epoll_wait` rounds its
/// timeout up to a whole millisecond again, so a tokio sleep may end up to 2 ms after it was
/// due. It sleeps until [`EARLY`] before and this dedicated thread sleeps the rest: adverts
/// leave on time, not up to 1 ms late (measured: p50 0.45 ms late with a 1 ms margin in some
/// runs, when the tick phase fell badly).
async fn wait_until(d: Instant) {
    let early = d.checked_sub(EARLY).unwrap_or(d);
    if Instant::now() < early {
        tokio::time::sleep_until(early.into()).await;
    }
    let now = Instant::now();
    if d > now {
        std::thread::sleep(d - now);
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reals the pinned maps hold as serving (an earlier run's): they keep serving until checked.
fn recovered_serving(cfg: &Config, dp: &Dataplane) -> Vec<crate::node::RealKey> {
    cfg.services
        .iter()
        .flat_map(|s| {
            let key = s.key();
            s.reals
                .iter()
                .filter(move |r| dp.programmer.real_serving(&key, r.addr, r.port))
                .map(move |r| (key, r.addr, r.port))
        })
        .collect()
}

use crate::health;
