//! Control-plane costs: Maglev table builds, the map update a health change causes, a config
//! reload, and the agent's resident memory and idle CPU with 100 services and 1,000 reals
//! checked every second.

use std::{
    fs,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use lb_agent::{
    config::{Capacity, XdpMode},
    dataplane::{maglev, Dataplane, DesiredReal, DesiredService, L2},
};
use lb_common::ServiceKey;

use super::Stat;
use lb_tests::{
    agent::{Agent, WorkDir},
    netns::{run, wait_for},
    topology::{Spec, Topology},
};

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ControlReport {
    pub rounds: usize,
    /// (reals, ms) for a 65537-slot table.
    pub maglev_build_ms: Vec<(usize, Stat)>,
    /// One real of one service (of 100 x 10) goes down: the apply() that rewrites the maps.
    pub health_change_to_maps_ms: Stat,
    /// `lb-agent reload` round trip with 100 services x 10 reals (a weight changed).
    pub reload_ms: Stat,
    pub agent_rss_mib: f64,
    /// Share of one core, idle but for 1,000 TCP checks per second.
    pub agent_cpu_pct: f64,
    pub checks_per_s: f64,
    /// The same with 1,000 DNS checks per second (UDP services, one dnsmasq answering).
    #[serde(default)]
    pub dns_agent_cpu_pct: f64,
    #[serde(default)]
    pub dns_checks_per_s: f64,
    /// Advert timing of a master, idle and under load.
    pub jitter: Vec<super::jitter::Jitter>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn maglev_builds(rounds: usize) -> Vec<(usize, Stat)> {
    [10usize, 100, 1000]
        .into_iter()
        .map(|n| {
            let b: Vec<maglev::Backend> = (0..n)
                .map(|i| maglev::Backend {
                    addr: Ipv4Addr::from(0x0a00_0000 + i as u32).into(),
                    port: 80,
                    weight: 1 + (i % 3) as u32,
                })
                .collect();
            let v: Vec<f64> = (0..rounds)
                .map(|_| {
                    let t = Instant::now();
                    let _ = maglev::build(&b, 65537);
                    ms(t.elapsed())
                })
                .collect();
            (n, Stat::of(&v))
        })
        .collect()
}

fn svc(k: u32, down: Option<u32>) -> DesiredService {
    let vip = Ipv4Addr::from(0x0a61_0000 + k);
    DesiredService {
        ports: Vec::new(),
        key: ServiceKey::new(vip, 80, 6),
        active: true,
        flags: 0,
        affinity_timeout_s: 0,
        table_size: 65537,
        reals: (0..10)
            .map(|j| {
                let up = down != Some(j);
                DesiredReal {
                    addr: Ipv4Addr::from(0x0a62_0000 + k * 256 + j + 1).into(),
                    port: 80,
                    weight: u32::from(up),
                    keep_flows: up,
                    l2: Some(L2 {
                        dst_mac: [2, 0, 0, 0, k as u8, j as u8],
                        src_mac: [2, 0, 0, 0, 0, 1],
                        ifindex: 0,
                    }),
                }
            })
            .collect(),
        sorry: None,
    }
}

fn health_change(rounds: usize) -> Result<Stat> {
    let cap = Capacity {
        max_services: 128,
        service_ports: 128,
        max_reals: 2048,
        ring_size: 65537,
        conntrack: 1 << 16,
        conntrack6: 1024,
        affinity: 1024,
    };
    let mut dp = Dataplane::open(&cap, None, XdpMode::Auto)?;
    let mut all: Vec<DesiredService> = (0..100).map(|k| svc(k, None)).collect();
    dp.apply(&all)?;
    let mut v = Vec::new();
    for r in 0..rounds {
        all[42] = svc(42, if r % 2 == 0 { Some(3) } else { None });
        let t = Instant::now();
        dp.apply(&all)?;
        v.push(ms(t.elapsed()));
    }
    Ok(Stat::of(&v))
}

/// The checks of the control-plane runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    Tcp,
    Dns,
}

/// 100 services x 10 reals on one real namespace holding 1,000 addresses (one nginx; for DNS
/// checks, UDP services on port 53 and one dnsmasq).
fn big_config(rid: &str, weight: u32, checks: Checks) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 128\n  max_reals: 2048\n  conntrack_size: 65536\nvirtual_servers:\n"
    );
    let (port, proto, check) = match checks {
        Checks::Tcp => (80, "tcp", "{ tcp: { connect_timeout: 1s } }"),
        Checks::Dns => (
            53,
            "udp",
            "{ dns: { name: health.lab, type: A, rcode: NOERROR, connect_timeout: 1s } }",
        ),
    };
    for k in 0..100u32 {
        y += &format!(
            "  - address: 10.97.0.{}\n    port: {port}\n    protocol: {proto}\n    interface: eth0\n    delay_loop: 1s\n    checks: [ {check} ]\n",
            k + 1
        );
        y += "    real_servers:\n";
        for j in 0..10u32 {
            y += &format!(
                "      - {{ address: 10.98.{k}.{}, port: {port}, weight: {} }}\n",
                j + 1,
                if j == 0 { weight } else { 1 }
            );
        }
    }
    y
}

pub fn run_all(quick: bool, progress: &mut dyn FnMut(&str)) -> Result<ControlReport> {
    let rounds = if quick { 5 } else { 9 };
    progress("control: Maglev builds (10, 100, 1000 reals; 65537 slots)");
    let maglev_build_ms = maglev_builds(rounds);
    progress("control: map update after one health change (100 services x 10 reals)");
    let health_change_to_maps_ms = health_change(rounds * 2)?;

    progress("control: agent with 100 services and 1,000 reals (TCP check every 1 s each)");
    let t = Topology::build(
        "lbc",
        Spec {
            lbs: 1,
            reals: 1,
            native_xdp: true,
        },
    )?;
    let dir = WorkDir::new(&t.prefix)?;
    // 1,000 real addresses on the one real, a /16 beside the lab's /24.
    let batch: String = (0..100u32)
        .flat_map(|k| (1..=10u32).map(move |j| format!("addr add 10.98.{k}.{j}/16 dev eth0\n")))
        .collect();
    let bf = dir.0.join("addrs.batch");
    fs::write(&bf, batch)?;
    run(std::process::Command::new("ip")
        .args(["-n", &t.reals[0].ns.name, "-batch"])
        .arg(&bf))?;
    t.lbs[0]
        .ns
        .ip(&["addr", "add", "10.98.255.1/16", "dev", "eth0"])?;
    let _web = super::e2e::web_server(&t.reals[0].ns, &dir, "web")?;
    let rid = t.router_id(0);
    let (agent, agent_cpu_pct, checks_per_s, agent_rss_mib) =
        checked_agent(&t, &dir, &rid, Checks::Tcp, quick)?;
    progress("control: reload round trips");
    let mut reload = Vec::new();
    for r in 0..rounds {
        lb_tests::agent::write_config(
            &agent.config,
            &big_config(&rid, 2 + (r % 2) as u32, Checks::Tcp),
        )?;
        let t = Instant::now();
        let (ok, _, err) = agent.cli(&["reload"])?;
        if !ok {
            bail!("reload failed: {err}");
        }
        reload.push(ms(t.elapsed()));
    }
    drop(agent);
    progress("control: the same with 1,000 DNS checks per second (dnsmasq on the real)");
    let _dns = dnsmasq(&t.reals[0].ns, &dir)?;
    let (agent, dns_agent_cpu_pct, dns_checks_per_s, _) =
        checked_agent(&t, &dir, &rid, Checks::Dns, quick)?;
    drop(agent);
    let jitter = super::jitter::run(quick, progress)?;
    Ok(ControlReport {
        jitter,
        rounds,
        maglev_build_ms,
        health_change_to_maps_ms,
        reload_ms: Stat::of(&reload),
        agent_rss_mib,
        agent_cpu_pct,
        checks_per_s,
        dns_agent_cpu_pct,
        dns_checks_per_s,
    })
}

/// dnsmasq answering `health.lab` on every address of `ns` (until dropped).
fn dnsmasq(ns: &lb_tests::netns::Netns, dir: &WorkDir) -> Result<lb_tests::netns::Proc> {
    let log = dir.0.join("dnsmasq.log");
    let p = ns.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--port=53",
            "--address=/health.lab/192.0.2.1",
            "--user=root",
            "--pid-file=",
            "--cache-size=0",
            &format!("--log-facility={}", log.display()),
        ],
    )?;
    Ok(p)
}

/// Starts the agent with 100 x 10 `checks`'d reals, waits until all 1,000 are up, and
/// measures its CPU share and the checks it ran over a window: (agent, CPU %, checks/s, RSS
/// in MiB).
fn checked_agent(
    t: &Topology,
    dir: &WorkDir,
    rid: &str,
    checks: Checks,
    quick: bool,
) -> Result<(Agent, f64, f64, f64)> {
    let agent = Agent::start_with(
        &super::agent_bin(),
        &t.lbs[0].ns,
        dir,
        rid,
        &big_config(rid, 1, checks),
    )?;
    // Ready when all 1,000 reals are up.
    let up = wait_for(Duration::from_secs(60), || {
        let s = agent.status().ok()?;
        let n = s["services"]
            .as_array()?
            .iter()
            .flat_map(|v| v["reals"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["health"] == "up")
            .count();
        (n == 1000).then_some(())
    });
    if up.is_none() {
        bail!(
            "the 1,000 reals never all came up:\n{}",
            agent
                .log_text()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let pid = agent.proc.pid().context("agent pid")?;
    // nsenter execs the agent, so the pid is the agent's.
    let jiffies = || -> Result<u64> {
        let s = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| -> Result<u64> {
            f.get(i)
                .and_then(|x| x.parse::<u64>().ok())
                .with_context(|| format!("no CPU time in /proc/{pid}/stat"))
        };
        Ok(field(11)? + field(12)?)
    };
    let window = Duration::from_secs(if quick { 10 } else { 30 });
    let checks0 = super::checks_done(&agent)?;
    let (j0, t0) = (jiffies()?, Instant::now());
    std::thread::sleep(window);
    let (j1, el) = (jiffies()?, t0.elapsed());
    let checks1 = super::checks_done(&agent)?;
    let hz = {
        // SAFETY: sysconf has no preconditions.
        let h = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if h > 0 {
            h as f64
        } else {
            100.0
        }
    };
    let cpu_pct = (j1 - j0) as f64 / hz / el.as_secs_f64() * 100.0;
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_mib = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .context("no VmRSS in the agent's status")?
        / 1024.0;
    let per_s = (checks1.saturating_sub(checks0)) as f64 / el.as_secs_f64();
    Ok((agent, cpu_pct, per_s, rss_mib))
}
