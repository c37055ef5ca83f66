//! `cargo xtask build-and-run`: the lab. Two load balancers (VRRP v3, 100 ms) in front of four
//! real servers, a client driving traffic, a live view, and a scripted tour.
//!
//!   lb-lab [--agent PATH] [--script] [--no-tour] [--ecmp]

use std::{
    io::IsTerminal as _,
    path::PathBuf,
    process::ExitCode,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

/// A step that claims "0 requests failed" must have sent at least this many (the client sends
/// one every 20 ms; each step watches for more than a second).
const MIN_REQUESTS: u64 = 20;
use lb_lab::lab::{self, pause, stopped, Lab, Screen};
use lb_tests::{
    netns::wait_for,
    topology::{bin_path, real_ip},
};

struct Opts {
    agent: Option<PathBuf>,
    script: bool,
    no_tour: bool,
    soak: Option<u64>,
    ecmp: bool,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        agent: None,
        script: false,
        no_tour: false,
        soak: None,
        ecmp: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agent" => o.agent = args.next().map(PathBuf::from),
            "--script" => o.script = true,
            "--no-tour" => o.no_tour = true,
            "--ecmp" => o.ecmp = true,
            "--soak" => o.soak = args.next().and_then(|s| s.parse().ok()),
            "-h" | "--help" => {
                println!("lb-lab [--agent PATH] [--script] [--no-tour] [--soak SECONDS] [--ecmp]\n\n\
                    Builds a network-namespace lab (client, lb1, lb2, r1..r4) and runs lb-agent on\n\
                    both load balancers (IPv4 and IPv6 VIPs). Default: a live view and a guided tour (IPv6, failover, preemption,\n\
                    a real failing and returning, a reload adding a real). --script: the tour without\n\
                    pauses, exit 0 only if every step did what it announced. --no-tour: keep the lab\n\
                    running until Ctrl-C. --ecmp: the scale-out tour instead (three active nodes\n\
                    with BIRD behind an ECMP router; docs/bgp.md). Everything is removed on exit\n\
                    or Ctrl-C.");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    Ok(o)
}

struct Tour<'a> {
    lab: &'a mut Lab,
    script: bool,
    screen: &'a Screen,
    step: usize,
    failed: usize,
}

impl Tour<'_> {
    fn say(&mut self, text: &str) {
        self.step += 1;
        self.screen.line(&format!("\n[step {}] {text}", self.step));
    }

    /// Keeps the live view on screen for `d` (interactive), or just waits (script).
    fn watch(&self, title: &str, d: Duration) -> bool {
        if self.script {
            return pause(d);
        }
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.screen.panel(title, self.lab);
            if !pause(Duration::from_millis(500)) {
                return false;
            }
        }
        true
    }

    fn check(&mut self, ok: bool, detail: String) {
        if ok {
            self.screen.line(&format!("  ok: {detail}"));
        } else {
            self.screen.line(&format!("  FAILED: {detail}"));
            self.failed += 1;
        }
    }

    fn serving(&self, want: &[&str]) -> bool {
        self.lab
            .traffic
            .lock()
            .map(|t| {
                want.iter().all(|r| t.last_second.contains_key(*r))
                    && !t.last_second.contains_key("error")
            })
            .unwrap_or(false)
    }

    fn master_is(&self, i: usize) -> bool {
        self.lab.holds_vip(i)
            && self.lab.t.xdp_attached(i).unwrap_or(false)
            && !self.lab.holds_vip(1 - i)
            && !self.lab.t.xdp_attached(1 - i).unwrap_or(true)
    }

    fn real_health(&self, i: usize) -> Option<String> {
        let addr = format!("{}:80", real_ip(i));
        (0..2)
            .filter_map(|n| self.lab.status(n))
            .find(|s| s.instances.first().is_some_and(|x| x.state == "master"))
            .and_then(|s| {
                s.services
                    .iter()
                    .flat_map(|v| &v.reals)
                    .find(|r| r.real == addr)
                    .map(|r| r.health.clone())
            })
    }

    fn run(&mut self) -> Result<()> {
        let pace = if self.script {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(4)
        };

        self.say("lb1 (priority 150) is master, lb2 (100) is backup; the client's traffic flows through lb1 to r1..r3");
        let ok = wait_for(Duration::from_secs(5), || {
            (self.master_is(0) && self.serving(&["r1", "r2", "r3"])).then_some(())
        })
        .is_some();
        self.check(ok, "VIP and XDP on lb1 only; r1, r2, r3 all serving".into());
        if !self.watch("lb1 master", pace) {
            return Ok(());
        }

        self.say("IPv6 beside IPv4: the client's requests to [fd00:99::100]:80 reach r1..r3 through lb1 too (VRRPv3 over IPv6, one sync group)");
        let vip6 = std::net::SocketAddr::from((lb_tests::topology::VIP6, 80));
        let answers = lb_tests::client::tally(
            &lb_tests::client::http_many(&self.lab.t.client.ns, vip6, 30).unwrap_or_default(),
        );
        let all = ["r1", "r2", "r3"].iter().all(|r| answers.contains_key(*r));
        self.check(
            all && !answers.contains_key("error") && self.lab.holds_vip6(0),
            format!("30 requests over IPv6 answered by {answers:?}; the IPv6 VIP is on lb1"),
        );

        self.say("Stop lb1 gracefully (SIGTERM): it sends priority 0 and keeps forwarding until lb2 takes over");
        let before = self.lab.requests()?;
        let t0 = Instant::now();
        if let Some(a) = self.lab.agents[0].as_mut() {
            a.stop()?;
        }
        let took = wait_for(Duration::from_secs(3), || {
            self.master_is(1).then(|| t0.elapsed())
        });
        self.check(
            took.is_some(),
            format!(
                "lb2 is master (after {} ms)",
                took.unwrap_or_default().as_millis()
            ),
        );
        pause(Duration::from_millis(1200));
        let (sent, lost) = self.lab.since(before)?;
        let broken = self.lab.long_broken.load(Ordering::Relaxed);
        self.check(
            lost == 0 && sent >= MIN_REQUESTS,
            format!("{lost} of {sent} client requests failed during the takeover"),
        );
        self.check(
            broken == 0,
            format!("{broken} of 10 long-lived connections broke"),
        );
        if !self.watch("lb2 master", pace) {
            return Ok(());
        }

        self.say("Start lb1 again: it preempts lb2 (higher priority)");
        let before = self.lab.requests()?;
        self.lab.start_agent(0)?;
        let ok = wait_for(Duration::from_secs(5), || self.master_is(0).then_some(())).is_some();
        self.check(ok, "lb1 is master again, lb2 backup".into());
        pause(Duration::from_millis(1200));
        let (sent, lost) = self.lab.since(before)?;
        self.check(
            lost == 0 && sent >= MIN_REQUESTS,
            format!("{lost} of {sent} client requests failed during the preemption"),
        );
        let broken = self.lab.long_broken.load(Ordering::Relaxed);
        self.check(
            broken == 0,
            format!("{broken} of 10 long-lived connections broke"),
        );
        if !self.watch("lb1 master again", pace) {
            return Ok(());
        }

        self.say("Stop r2's HTTP server: health checks (every 500 ms, fall 2) take it out; traffic moves to r1 and r3");
        let before = self.lab.requests()?;
        self.lab.t.stop_server(1);
        let t0 = Instant::now();
        let gone = wait_for(Duration::from_secs(5), || {
            (self.real_health(1).as_deref() == Some("down")).then(|| t0.elapsed())
        });
        self.check(
            gone.is_some(),
            format!(
                "r2 is down (after {} ms)",
                gone.unwrap_or_default().as_millis()
            ),
        );
        let moved = wait_for(Duration::from_secs(4), || {
            self.serving(&["r1", "r3"]).then_some(())
        })
        .is_some();
        let (sent, lost) = self.lab.since(before)?;
        self.check(moved, format!("r1 and r3 serve, no errors in the last second ({lost} of {sent} requests hit r2 before it was out)"));
        if !self.watch("r2 down", pace) {
            return Ok(());
        }

        self.say("Start r2 again: back after 2 successful checks");
        self.lab.t.start_server(1, &[])?;
        let back = wait_for(Duration::from_secs(5), || {
            (self.real_health(1).as_deref() == Some("up")).then_some(())
        })
        .is_some()
            && wait_for(Duration::from_secs(4), || {
                self.serving(&["r1", "r2", "r3"]).then_some(())
            })
            .is_some();
        self.check(back, "r2 is up and serving".into());
        if !self.watch("r2 back", pace) {
            return Ok(());
        }

        self.say("Reload both nodes with a fourth real, r4 (SIGHUP): it is checked, then takes traffic; XDP stays attached");
        let before = self.lab.requests()?;
        let prog = xdp_prog(&self.lab.t, 0);
        let line = format!("      - {{ address: {}, port: 80 }}\n", real_ip(3));
        for i in 0..2 {
            self.lab.configs[i].push_str(&line);
            if let Some(a) = self.lab.agents[i].as_ref() {
                a.reload(&self.lab.configs[i])?;
            }
        }
        let ok = wait_for(Duration::from_secs(6), || {
            self.serving(&["r1", "r2", "r3", "r4"]).then_some(())
        })
        .is_some();
        self.check(ok, "r4 serves beside r1..r3".into());
        let (sent, lost) = self.lab.since(before)?;
        self.check(
            lost == 0 && sent >= MIN_REQUESTS,
            format!("{lost} of {sent} client requests failed during the reload"),
        );
        let same = xdp_prog(&self.lab.t, 0) == prog && prog.is_some();
        self.check(
            same,
            format!(
                "the XDP program on lb1 is the same one (id {})",
                prog.unwrap_or(0)
            ),
        );
        self.watch("r4 added", pace);
        Ok(())
    }
}

fn xdp_prog(t: &lb_tests::topology::Topology, lb: usize) -> Option<u64> {
    let out = t.lbs[lb]
        .ns
        .ip(&["-j", "link", "show", "dev", "eth0"])
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["xdp"]["prog"]["id"].as_u64()
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lb-lab: {e}");
            return ExitCode::from(2);
        }
    };
    lab::install_signal_handlers();
    let agent = match opts
        .agent
        .clone()
        .map(Ok)
        .unwrap_or_else(|| bin_path("lb-agent"))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lb-lab: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if opts.ecmp {
        return ecmp(&agent, opts.script);
    }
    let t0 = Instant::now();
    let mut progress = |what: &str| println!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let mut lab = match Lab::start(agent, &mut progress) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lb-lab: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let screen = Screen::new(std::io::stdout().is_terminal());
    progress("lab running");
    let code = if let Some(secs) = opts.soak {
        let mut say = |s: &str| println!("{s}");
        match lb_lab::soak::run(&mut lab, secs, &mut say) {
            Ok(r) => {
                println!("\nsoak: {r:#?}");
                if r.passed() {
                    println!("soak passed: no error on flows that should survive, memory flat");
                    ExitCode::SUCCESS
                } else {
                    println!("soak FAILED");
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("lb-lab: soak: {e:#}");
                ExitCode::FAILURE
            }
        }
    } else if opts.no_tour {
        println!("Lab running; Ctrl-C to stop and remove it.");
        while !stopped() {
            screen.panel("no tour (Ctrl-C to leave)", &lab);
            pause(Duration::from_millis(500));
        }
        ExitCode::SUCCESS
    } else {
        let mut tour = Tour {
            lab: &mut lab,
            script: opts.script,
            screen: &screen,
            step: 0,
            failed: 0,
        };
        let r = tour.run();
        let failed = tour.failed;
        screen.line(&format!("\n{}", lab.render()));
        verdict(r, failed, || {
            for i in 0..2 {
                eprintln!("--- lb{} log ---\n{}", i + 1, lab.log(i));
            }
        })
    };
    progress("removing the lab");
    drop(lab);
    code
}

/// The scale-out tour (`--ecmp`).
fn ecmp(agent: &std::path::Path, script: bool) -> ExitCode {
    let screen = Screen::new(std::io::stdout().is_terminal());
    let mut tour = lb_lab::ecmp_tour::EcmpTour::new(&screen, script);
    let r = tour.run(agent);
    verdict(r, tour.failed, || {})
}

/// A tour's exit status: it ran to the end and every check held. `on_failed_checks` shows
/// what helps to understand a failed check.
fn verdict(r: Result<()>, failed: usize, on_failed_checks: impl FnOnce()) -> ExitCode {
    match r {
        Err(e) => {
            eprintln!("lb-lab: {e:#}");
            ExitCode::FAILURE
        }
        Ok(()) if stopped() => {
            println!("interrupted");
            ExitCode::FAILURE
        }
        Ok(()) if failed > 0 => {
            println!("tour: {failed} check(s) FAILED");
            on_failed_checks();
            ExitCode::FAILURE
        }
        Ok(()) => {
            println!("tour: every step did what it announced");
            ExitCode::SUCCESS
        }
    }
}
