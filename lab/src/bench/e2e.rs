//! End-to-end in the namespace lab: the same client, real servers (nginx) and VIP, four ways
//! through the load-balancer node: our XDP direct routing, an nginx `stream` proxy, HAProxy in
//! TCP mode, and nftables DNAT (with masquerade, so replies come back through it). Load from
//! wrk (keep-alive, and a new connection per request) and a UDP small-packet flood.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::Stat;
use lb_tests::{
    agent::{Agent, WorkDir},
    netns::{run, wait_for, Netns, Proc},
    topology::{real_ip, Spec, Topology, VIP},
};

const REALS: usize = 3;
const FLOOD_PORT: u16 = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Way {
    Xdp,
    Nginx,
    Haproxy,
    Nftables,
}

impl Way {
    pub fn name(self) -> &'static str {
        match self {
            Way::Xdp => "lb (XDP DR)",
            Way::Nginx => "nginx stream",
            Way::Haproxy => "HAProxy tcp",
            Way::Nftables => "nftables DNAT",
        }
    }
}

/// One wrk run: what the client saw and where the machine's CPU went meanwhile.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Load {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// CPU seconds of the whole machine (client, load balancer, reals: one kernel) per
    /// million requests, split as /proc/stat splits it.
    pub cpu: CpuSplit,
}

/// CPU seconds per million requests, by kind.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CpuSplit {
    /// user + nice: wrk, nginx on the reals, a proxy's own work.
    pub user: f64,
    /// system: system calls (socket work of the client, reals and proxies).
    pub system: f64,
    /// softirq + irq: the network stack's receive path, XDP programs, conntrack and NAT.
    pub softirq: f64,
}

/// A way's figures over the rounds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoadStats {
    pub requests_per_s: Stat,
    pub p50_ms: Stat,
    pub p99_ms: Stat,
    /// Summed over the rounds.
    pub errors: u64,
    pub cpu_user: Stat,
    pub cpu_system: Stat,
    pub cpu_softirq: Stat,
}

impl LoadStats {
    fn of(runs: &[Load]) -> LoadStats {
        let st = |f: fn(&Load) -> f64| Stat::of(&runs.iter().map(f).collect::<Vec<_>>());
        LoadStats {
            requests_per_s: st(|l| l.requests_per_s),
            p50_ms: st(|l| l.p50_ms),
            p99_ms: st(|l| l.p99_ms),
            errors: runs.iter().map(|l| l.errors).sum(),
            cpu_user: st(|l| l.cpu.user),
            cpu_system: st(|l| l.cpu.system),
            cpu_softirq: st(|l| l.cpu.softirq),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct WayResult {
    pub way: Way,
    pub name: String,
    pub rounds: usize,
    pub keepalive: LoadStats,
    pub new_conn: LoadStats,
    /// UDP datagrams per second delivered to the reals during a flood (None: not supported).
    pub udp_pps: Option<Stat>,
    pub udp_sent_pps: Option<Stat>,
}

pub struct Plan {
    pub seconds: u64,
    pub connections: u32,
    pub flood_seconds: u64,
    /// Each round runs every way once, in an order that rotates from round to round.
    pub rounds: usize,
}

/// The first line of /proc/stat: (user+nice, system, irq+softirq) jiffies.
fn cpu_jiffies() -> Result<(u64, u64, u64)> {
    let s = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    if f.len() < 7 {
        bail!("unexpected /proc/stat: {}", s.lines().next().unwrap_or(""));
    }
    Ok((f[0] + f[1], f[2], f[5] + f[6]))
}

fn hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let h = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if h > 0 {
        h as f64
    } else {
        100.0
    }
}

/// wrk's `--latency` output: requests/s, p50 and p99 (ms), socket errors. An output without
/// a rate is an error, never a zero.
pub(crate) fn parse_wrk(out: &str) -> Result<Load> {
    let ms = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(0.0);
        match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => n,
        }
    };
    let mut l = Load::default();
    let mut rate = None;
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["Requests/sec:", v, ..] => rate = v.parse::<f64>().ok(),
            ["50%", v] => l.p50_ms = ms(v),
            ["99%", v] => l.p99_ms = ms(v),
            ["Socket", "errors:", rest @ ..] => {
                l.errors += rest
                    .iter()
                    .filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", v] => l.errors += v.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    l.requests_per_s = rate.with_context(|| format!("no request rate in wrk's output:\n{out}"))?;
    Ok(l)
}

/// One GET answered with 200 (nginx reals send no X-Served-By).
fn http_ok(addr: SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200"))
}

struct Bed {
    t: Topology,
    dir: WorkDir,
    _webs: Vec<Proc>,
}

fn nginx_conf(
    dir: &WorkDir,
    name: &str,
    body: &str,
    load_stream: bool,
) -> Result<std::path::PathBuf> {
    let d = dir.0.join(name);
    fs::create_dir_all(&d)?;
    let p = d.join("nginx.conf");
    let head = if load_stream {
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
    } else {
        ""
    };
    fs::write(
        &p,
        format!(
            "{head}worker_processes auto;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n{body}\n",
            d = d.display()
        ),
    )?;
    Ok(p)
}

/// Runs nginx in `ns` with the config file `conf`, its output discarded.
fn spawn_nginx(ns: &Netns, conf: &std::path::Path) -> Result<Proc> {
    let child = ns
        .command("nginx")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    Ok(Proc::new(child, "nginx"))
}

/// An nginx in `ns` answering every GET on port 80 with 200 and `name`.
pub(super) fn web_server(ns: &Netns, dir: &WorkDir, name: &str) -> Result<Proc> {
    spawn_nginx(ns, &nginx_conf(dir, name, &web_body(dir, name), false)?)
}

/// An HTTP server answering 200 with `name`.
fn web_body(dir: &WorkDir, name: &str) -> String {
    let d = dir.0.join(name);
    format!(
        "http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; \
         uwsgi_temp_path {d}/u; scgi_temp_path {d}/s; keepalive_requests 1000000; \
         server {{ listen 80 reuseport backlog=4096; location / {{ return 200 \"{name}\\n\"; }} }} }}",
        d = d.display()
    )
}

impl Bed {
    fn new() -> Result<Bed> {
        let t = Topology::build(
            "lbb",
            Spec {
                lbs: 1,
                reals: REALS,
                native_xdp: true,
            },
        )?;
        let dir = WorkDir::new(&t.prefix)?;
        let mut webs = Vec::new();
        for (i, r) in t.reals.iter().enumerate() {
            webs.push(web_server(&r.ns, &dir, &format!("r{}", i + 1))?);
        }
        let bed = Bed {
            t,
            dir,
            _webs: webs,
        };
        for i in 0..REALS {
            let addr = SocketAddr::from((real_ip(i), 80));
            let up = wait_for(Duration::from_secs(5), || {
                bed.t
                    .client
                    .ns
                    .enter(move || {
                        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                            .is_ok()
                    })
                    .ok()
                    .filter(|x| *x)
            });
            if up.is_none() {
                bail!("nginx on r{} did not start", i + 1);
            }
        }
        bed.t.lbs[0]
            .ns
            .ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
        // The same client-side tuning for every way (and for the LB node, whose proxies and
        // NAT open connections too): the full ephemeral port range and reuse of TIME_WAIT
        // ports, or a new-connection-per-request load measures port exhaustion.
        for ns in [&bed.t.client.ns, &bed.t.lbs[0].ns] {
            ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
            ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
        }
        Ok(bed)
    }

    fn lb(&self) -> &Netns {
        &self.t.lbs[0].ns
    }

    /// Sets the way up; returns what must stay alive.
    fn setup(&self, way: Way) -> Result<(Vec<Proc>, Option<Agent>)> {
        let reals: Vec<Ipv4Addr> = (0..REALS).map(real_ip).collect();
        match way {
            Way::Xdp => {
                let rid = self.t.router_id(0);
                let mut y = format!("global_defs:\n  router_id: {rid}\n  max_services: 4\n  max_reals: 16\nvirtual_servers:\n");
                for (proto, port) in [("tcp", 80u16), ("udp", FLOOD_PORT)] {
                    y += &format!("  - address: {VIP}\n    port: {port}\n    protocol: {proto}\n    interface: eth0\n    real_servers:\n");
                    for r in &reals {
                        y += &format!("      - {{ address: {r}, port: {port} }}\n");
                    }
                }
                let a = Agent::start_with(&super::agent_bin(), self.lb(), &self.dir, &rid, &y)?;
                if !self.answers(Duration::from_secs(15)) {
                    bail!("XDP way never answered:\n{}", a.log_text());
                }
                Ok((vec![], Some(a)))
            }
            Way::Nginx => {
                let ups: String = reals.iter().map(|r| format!("server {r}:80;")).collect();
                let upu: String = reals
                    .iter()
                    .map(|r| format!("server {r}:{FLOOD_PORT};"))
                    .collect();
                let body = format!(
                    "stream {{ upstream t {{ {ups} }} upstream u {{ {upu} }} \
                     server {{ listen {VIP}:80 reuseport backlog=4096; proxy_pass t; }} \
                     server {{ listen {VIP}:{FLOOD_PORT} udp; proxy_pass u; proxy_responses 0; }} }}"
                );
                let conf = nginx_conf(&self.dir, "lbnginx", &body, true)?;
                let p = spawn_nginx(self.lb(), &conf)?;
                self.ready("nginx")?;
                Ok((vec![p], None))
            }
            Way::Haproxy => {
                let d = self.dir.0.join("haproxy");
                fs::create_dir_all(&d)?;
                let servers: String = reals
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("  server r{i} {r}:80\n"))
                    .collect();
                let conf = d.join("haproxy.cfg");
                fs::write(
                    &conf,
                    format!(
                        "global\n  maxconn 8000\n  nbthread {threads}\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                         frontend f\n  bind {VIP}:80\n  default_backend b\nbackend b\n  balance roundrobin\n{servers}",
                        threads = cores()
                    ),
                )?;
                let log = fs::File::create(d.join("haproxy.log"))?;
                let child = self
                    .lb()
                    .command("haproxy")
                    .arg("-db")
                    .arg("-f")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()?;
                let p = Proc::new(child, "haproxy");
                self.ready("haproxy").with_context(|| {
                    fs::read_to_string(d.join("haproxy.log")).unwrap_or_default()
                })?;
                Ok((vec![p], None))
            }
            Way::Nftables => {
                let list = |port: u16| -> String {
                    reals
                        .iter()
                        .enumerate()
                        .map(|(i, r)| format!("{i} : {r} . {port}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let rules = format!(
                    "table ip lbbench {{\n chain pre {{ type nat hook prerouting priority -100;\n  \
                     ip daddr {VIP} tcp dport 80 dnat ip to numgen random mod {REALS} map {{ {t} }}\n  \
                     ip daddr {VIP} udp dport {FLOOD_PORT} dnat ip to numgen random mod {REALS} map {{ {u} }}\n }}\n \
                     chain post {{ type nat hook postrouting priority 100;\n  ip daddr 10.99.0.0/24 ip saddr 10.99.0.0/24 oifname eth0 masquerade\n }}\n}}\n",
                    t = list(80),
                    u = list(FLOOD_PORT)
                );
                let f = self.dir.0.join("nft.conf");
                fs::write(&f, rules)?;
                self.lb().exec("nft", &["-f", &f.to_string_lossy()])?;
                self.lb().sysctl("net.ipv4.ip_forward", "1")?;
                self.ready("nftables")?;
                Ok((vec![], None))
            }
        }
    }

    /// Whether a GET through the VIP gets a 200 within `timeout`.
    fn answers(&self, timeout: Duration) -> bool {
        let vip = SocketAddr::from((VIP, 80));
        wait_for(timeout, || {
            self.t
                .client
                .ns
                .enter(move || http_ok(vip))
                .ok()
                .filter(|ok| *ok)
        })
        .is_some()
    }

    /// Waits until a GET through the VIP gets a 200.
    fn ready(&self, what: &str) -> Result<()> {
        if !self.answers(Duration::from_secs(10)) {
            bail!("{what} never answered through the VIP");
        }
        Ok(())
    }

    fn teardown(&self, way: Way, procs: Vec<Proc>, agent: Option<Agent>) {
        drop(procs);
        if let Some(mut a) = agent {
            let _ = a.stop();
        }
        if way == Way::Nftables {
            let _ = self.lb().exec("nft", &["delete", "table", "ip", "lbbench"]);
            let _ = self.lb().sysctl("net.ipv4.ip_forward", "0");
        }
        // Until nothing listens on the VIP any more (the next way binds it).
        let vip = SocketAddr::from((VIP, 80));
        let _ = wait_for(Duration::from_secs(5), || {
            self.t
                .client
                .ns
                .enter(move || !http_ok(vip))
                .ok()
                .filter(|free| *free)
        });
    }

    fn wrk(&self, plan: &Plan, close: bool) -> Result<Load> {
        let c0 = cpu_jiffies()?;
        let mut args = vec![
            format!("-t{}", cores()),
            format!("-c{}", plan.connections),
            format!("-d{}s", plan.seconds),
            "--latency".to_owned(),
        ];
        if close {
            args.push("-H".into());
            args.push("Connection: close".into());
        }
        args.push(format!("http://{VIP}/"));
        let out = run(self.t.client.ns.command("wrk").args(&args))?;
        let c1 = cpu_jiffies()?;
        let mut l = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
        let total = l.requests_per_s * plan.seconds as f64;
        if total <= 0.0 {
            bail!("wrk completed no request");
        }
        let per_m = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz() / total * 1e6;
        l.cpu = CpuSplit {
            user: per_m(c0.0, c1.0),
            system: per_m(c0.1, c1.1),
            softirq: per_m(c0.2, c1.2),
        };
        Ok(l)
    }

    /// Packets the reals' interfaces received.
    fn rx_packets(&self) -> Result<u64> {
        let mut n = 0;
        for r in &self.t.reals {
            let out = r.ns.ip(&["-j", "-s", "link", "show", "dev", "eth0"])?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            n += v[0]["stats64"]["rx"]["packets"]
                .as_u64()
                .context("no rx packet count in ip -s link")?;
        }
        Ok(n)
    }

    /// Floods VIP:9/udp with 18-byte datagrams (64-byte frames) from 64 source ports.
    fn flood(&self, secs: u64) -> Result<(f64, f64)> {
        let r0 = self.rx_packets()?;
        let dst = SocketAddr::from((VIP, FLOOD_PORT));
        let sent = self.t.client.ns.enter(move || -> Result<u64> {
            let socks: Vec<UdpSocket> = (0..64)
                .map(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
                .collect::<std::io::Result<_>>()?;
            for s in &socks {
                s.set_nonblocking(true)?;
            }
            let payload = [0u8; 18];
            let until = Instant::now() + Duration::from_secs(secs);
            let mut n = 0u64;
            while Instant::now() < until {
                for s in &socks {
                    if s.send_to(&payload, dst).is_ok() {
                        n += 1;
                    }
                }
            }
            Ok(n)
        })??;
        std::thread::sleep(Duration::from_millis(200));
        let got = self.rx_packets()? - r0;
        Ok((got as f64 / secs as f64, sent as f64 / secs as f64))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What one way measured in one round.
#[derive(Default)]
struct Runs {
    keepalive: Vec<Load>,
    new_conn: Vec<Load>,
    udp: Vec<f64>,
    udp_sent: Vec<f64>,
}

pub fn run_all(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Vec<WayResult>> {
    let bed = Bed::new()?;
    let ways = [Way::Xdp, Way::Nginx, Way::Haproxy, Way::Nftables];
    let mut runs: Vec<Runs> = ways.iter().map(|_| Runs::default()).collect();
    for round in 0..plan.rounds {
        // The order rotates, so no way always runs first (or right after another).
        for k in 0..ways.len() {
            let i = (round + k) % ways.len();
            let way = ways[i];
            progress(&format!(
                "e2e: round {}/{}: {}",
                round + 1,
                plan.rounds,
                way.name()
            ));
            let (procs, agent) = bed.setup(way)?;
            let r = &mut runs[i];
            r.keepalive.push(bed.wrk(plan, false)?);
            r.new_conn.push(bed.wrk(plan, true)?);
            if way != Way::Haproxy {
                let (g, s) = bed.flood(plan.flood_seconds)?;
                r.udp.push(g);
                r.udp_sent.push(s);
            }
            bed.teardown(way, procs, agent);
        }
    }
    Ok(ways
        .iter()
        .zip(runs)
        .map(|(way, r)| WayResult {
            way: *way,
            name: way.name().to_owned(),
            rounds: plan.rounds,
            keepalive: LoadStats::of(&r.keepalive),
            new_conn: LoadStats::of(&r.new_conn),
            udp_pps: (!r.udp.is_empty()).then(|| Stat::of(&r.udp)),
            udp_sent_pps: (!r.udp_sent.is_empty()).then(|| Stat::of(&r.udp_sent)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk() {
        let out = "Running 1s test @ http://10.99.0.100/\n  Latency Distribution\n     50%  312.00us\n     75%  1.02ms\n     90%    2.1ms\n     99%    5.50ms\n  1000 requests in 1.00s\n  Socket errors: connect 0, read 3, write 0, timeout 1\nRequests/sec:   9876.54\n";
        let l = parse_wrk(out).expect("parsed");
        assert_eq!(l.requests_per_s, 9876.54);
        assert_eq!(l.p50_ms, 0.312);
        assert_eq!(l.p99_ms, 5.5);
        assert_eq!(l.errors, 4);
        assert!(parse_wrk("unable to connect").is_err());
    }
}
