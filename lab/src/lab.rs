//! The lab behind `cargo xtask build-and-run`: two load balancers (VRRP v3, 100 ms) in front
//! of real servers, a client driving traffic, a live view, and a scripted tour whose every
//! step checks that it did what it announced.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use lb_agent::control::{self, Request, Response, Snapshot};

use lb_tests::{
    agent::{Agent, WorkDir},
    client::{http_get, LongConn},
    netns::{wait_for, Netns},
    topology::{real_ip, Spec, Topology, VIP},
};

/// The lab's configs are the ordinary example files.
pub const LB1_YAML: &str = include_str!("../../examples/lab-lb1.yaml");
pub const LB2_YAML: &str = include_str!("../../examples/lab-lb2.yaml");

/// Set by SIGINT/SIGTERM: every loop of the lab checks it and winds down.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps in small steps, returning early (false) on Ctrl-C.
pub fn pause(d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stopped() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

/// What the client sees, per second.
#[derive(Default)]
pub struct Traffic {
    /// Requests per real (and "error") in the current second.
    pub window: BTreeMap<String, u64>,
    /// Totals.
    pub ok: u64,
    pub errors: u64,
    pub last_second: BTreeMap<String, u64>,
    pub window_start: Option<Instant>,
    /// Why the request thread stopped early, if it did.
    pub failed: Option<String>,
}

pub struct Lab {
    pub t: Topology,
    pub dir: WorkDir,
    pub agents: [Option<Agent>; 2],
    pub configs: [String; 2],
    pub traffic: Arc<Mutex<Traffic>>,
    pub long_ok: Arc<AtomicU64>,
    pub long_broken: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop_traffic: Arc<AtomicBool>,
    agent_bin: PathBuf,
}

/// Replaces the example's router_id with this run's (pins and sockets must not collide with
/// another lab or a real agent on this host).
fn personalise(yaml: &str, router_id: &str) -> String {
    yaml.lines()
        .map(|l| {
            if l.trim_start().starts_with("router_id:") {
                format!("  router_id: {router_id}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

impl Lab {
    pub fn start(agent_bin: PathBuf, progress: &mut dyn FnMut(&str)) -> Result<Lab> {
        progress("creating namespaces: client, lb1, lb2, r1..r4, and a bridge");
        let mut t = Topology::build(
            "lab",
            Spec {
                lbs: 2,
                reals: 4,
                native_xdp: true,
            },
        )?;
        progress("starting HTTP servers on r1..r4 (VIPs 10.99.0.100 and fd00:99::100 on their lo)");
        t.start_all_servers()?;
        let dir = WorkDir::new(&t.prefix)?;
        let configs = [
            personalise(LB1_YAML, &t.router_id(0)),
            personalise(LB2_YAML, &t.router_id(1)),
        ];
        let mut lab = Lab {
            t,
            dir,
            agents: [None, None],
            configs,
            traffic: Arc::new(Mutex::new(Traffic::default())),
            long_ok: Arc::new(AtomicU64::new(0)),
            long_broken: Arc::new(AtomicU64::new(0)),
            threads: Vec::new(),
            stop_traffic: Arc::new(AtomicBool::new(false)),
            agent_bin,
        };
        progress("starting lb-agent on lb1 (priority 150) and lb2 (priority 100)");
        lab.start_agent(0)?;
        if wait_for(Duration::from_secs(10), || lab.holds_vip(0).then_some(())).is_none() {
            bail!("lb1 never became master:\n{}", lab.log(0));
        }
        lab.start_agent(1)?;
        // From the client's namespace (never from this one: packets stay in the lab).
        let ready = wait_for(Duration::from_secs(15), || {
            lb_tests::client::http_many(&lab.t.client.ns, vip(), 1)
                .ok()?
                .pop()?
                .ok()
                .filter(|_| !stopped())
        });
        if ready.is_none() {
            bail!("no answer through the VIP:\n{}", lab.log(0));
        }
        progress("client: a new HTTP request every 20 ms, and 10 long-lived connections");
        lab.start_traffic()?;
        Ok(lab)
    }

    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        let rid = self.t.router_id(i);
        let a = Agent::start_with(
            &self.agent_bin,
            &self.t.lbs[i].ns,
            &self.dir,
            &rid,
            &self.configs[i],
        )?;
        self.agents[i] = Some(a);
        Ok(())
    }

    pub fn log(&self, i: usize) -> String {
        self.agents[i]
            .as_ref()
            .map(|a| a.log_text())
            .unwrap_or_default()
    }

    pub fn holds_vip(&self, i: usize) -> bool {
        self.t.holds(i, VIP)
    }

    pub fn holds_vip6(&self, i: usize) -> bool {
        self.t.holds(i, lb_tests::topology::VIP6)
    }

    pub fn status(&self, i: usize) -> Option<Snapshot> {
        let a = self.agents[i].as_ref()?;
        match control::client::call(&a.socket(), &Request::Status { flows: false }) {
            Ok(Response::Status(s)) => Some(*s),
            _ => None,
        }
    }

    fn start_traffic(&mut self) -> Result<()> {
        let ns_name = self.t.client.ns.name.clone();
        // Short requests.
        {
            let traffic = self.traffic.clone();
            let stop = self.stop_traffic.clone();
            let ns = Netns {
                name: ns_name.clone(),
            };
            let file = std::fs::File::open(ns.path())?;
            std::mem::forget(ns);
            self.threads.push(std::thread::spawn(move || {
                // SAFETY: setns on this thread only.
                if unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                } != 0
                {
                    let e = std::io::Error::last_os_error();
                    if let Ok(mut t) = traffic.lock() {
                        t.failed = Some(format!("request thread: setns: {e}"));
                    }
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    let r = http_get(vip());
                    let mut t = match traffic.lock() {
                        Ok(t) => t,
                        Err(_) => return,
                    };
                    let now = Instant::now();
                    if t.window_start
                        .is_none_or(|s| now - s >= Duration::from_secs(1))
                    {
                        t.last_second = std::mem::take(&mut t.window);
                        t.window_start = Some(now);
                    }
                    match r {
                        Ok(real) => {
                            t.ok += 1;
                            *t.window.entry(real).or_insert(0) += 1;
                        }
                        Err(_) => {
                            t.errors += 1;
                            *t.window.entry("error".into()).or_insert(0) += 1;
                        }
                    }
                    drop(t);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }));
        }
        // Long-lived connections, pinged every 200 ms.
        let client = Netns { name: ns_name };
        let mut conns = Vec::new();
        for _ in 0..10 {
            conns.push(LongConn::open(&client, vip())?);
        }
        std::mem::forget(client);
        let (ok, broken, stop) = (
            self.long_ok.clone(),
            self.long_broken.clone(),
            self.stop_traffic.clone(),
        );
        self.threads.push(std::thread::spawn(move || {
            let mut seq = 1;
            let mut alive: Vec<Option<LongConn>> = conns.into_iter().map(Some).collect();
            while !stop.load(Ordering::Relaxed) {
                for c in alive.iter_mut() {
                    if let Some(conn) = c {
                        match conn.ping(seq) {
                            Ok(r) if r == conn.real => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                broken.fetch_add(1, Ordering::Relaxed);
                                *c = None;
                            }
                        }
                    }
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
        Ok(())
    }

    /// (sent, failed) since `before` (an earlier [`Lab::requests`]).
    pub fn since(&self, before: (u64, u64)) -> Result<(u64, u64)> {
        let now = self.requests()?;
        Ok((now.0 - before.0, now.1 - before.1))
    }

    /// Requests sent and failed so far. An error if the request thread is not running: a
    /// "0 failed" that sent nothing would prove nothing.
    pub fn requests(&self) -> Result<(u64, u64)> {
        let t = self
            .traffic
            .lock()
            .map_err(|_| anyhow::anyhow!("traffic state poisoned"))?;
        if let Some(why) = &t.failed {
            bail!("client traffic is not running: {why}");
        }
        Ok((t.ok + t.errors, t.errors))
    }

    /// The live view: both nodes, the reals, the client.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let status: Vec<Option<Snapshot>> = (0..2).map(|i| self.status(i)).collect();
        o += "  node  VRRP       prio  VIP  XDP   (v3, advert 100ms)\n";
        for (i, s) in status.iter().enumerate() {
            let inst = s.as_ref().and_then(|s| s.instances.first());
            let state = inst.map_or("down".to_owned(), |x| x.state.to_uppercase());
            let prio = inst.map_or("-".to_owned(), |x| x.priority.to_string());
            let xdp = self.t.xdp_attached(i).unwrap_or(false);
            o += &format!(
                "  lb{}   {:<10} {:>4}  {:<4} {}\n",
                i + 1,
                state,
                prio,
                if self.holds_vip(i) { "yes" } else { "-" },
                if xdp { "attached" } else { "-" }
            );
        }
        let master = status
            .iter()
            .flatten()
            .find(|s| s.instances.first().is_some_and(|x| x.state == "master"));
        let t = self.traffic.lock().ok();
        o += &format!(
            "\n  {:<4} {:<14} {:<11} {:<26} {:>5}\n",
            "real", "address", "health", "last check", "req/s"
        );
        for i in 0..4 {
            let name = format!("r{}", i + 1);
            let addr = format!("{}:80", real_ip(i));
            let real = master.and_then(|m| {
                m.services
                    .iter()
                    .flat_map(|v| &v.reals)
                    .find(|r| r.real == addr)
            });
            let (health, last) = match real {
                Some(r) => (r.health.clone(), r.last_check.clone()),
                None => ("not in config".to_owned(), String::new()),
            };
            let rps = t
                .as_ref()
                .and_then(|t| t.last_second.get(&name).copied())
                .unwrap_or(0);
            let mut last = last;
            last.truncate(26);
            o += &format!("  {name:<4} {addr:<14} {health:<11} {last:<26} {rps:>5}\n");
        }
        if let Some(t) = t {
            let total = t.ok + t.errors;
            let rate = if total == 0 {
                100.0
            } else {
                t.ok as f64 * 100.0 / total as f64
            };
            o += &format!(
                "\n  client: {} requests, {} errors ({rate:.2}% ok); long-lived: {} answers, {} broken\n",
                total,
                t.errors,
                self.long_ok.load(Ordering::Relaxed),
                self.long_broken.load(Ordering::Relaxed)
            );
        }
        o
    }

    pub fn stop(&mut self) {
        self.stop_traffic.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        for a in self.agents.iter_mut().flatten() {
            let _ = a.stop();
        }
    }
}

/// The terminal of an interactive run: announcements scroll, and the live view stays below
/// them, redrawn in place.
pub struct Screen {
    tty: bool,
    panel_lines: std::cell::Cell<usize>,
}

impl Screen {
    pub fn new(tty: bool) -> Screen {
        Screen {
            tty,
            panel_lines: std::cell::Cell::new(0),
        }
    }

    fn clear_panel(&self, out: &mut impl Write) {
        let n = self.panel_lines.replace(0);
        if self.tty && n > 0 {
            // To the start of the panel's first line, then erase to the end of the screen.
            let _ = write!(out, "\x1b[{n}F\x1b[J");
        }
    }

    /// A line that stays (above the live view).
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        self.clear_panel(&mut out);
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Replaces the live view (on a terminal; elsewhere it is not drawn).
    pub fn panel(&self, title: &str, lab: &Lab) {
        if !self.tty {
            return;
        }
        let text = format!("── lb lab: {title} ──\n{}", lab.render());
        let mut out = std::io::stdout().lock();
        self.clear_panel(&mut out);
        let _ = write!(out, "{text}");
        let _ = out.flush();
        self.panel_lines.set(text.lines().count());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tour step: what it announces and how it is verified.
pub struct Step {
    pub say: &'static str,
    pub result: Result<String>,
}

pub fn context<T>(r: Option<T>, what: &str) -> Result<T> {
    r.with_context(|| what.to_owned())
}
