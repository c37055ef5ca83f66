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
    topology::{lb_ip, real_ip, Spec, Topology, VIP},
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

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Load {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// CPU seconds of the whole machine (client, load balancer, reals) per million requests.
    pub machine_cpu_s_per_m: f64,
    /// CPU seconds of the load balancer's user-space process per million requests (0 for XDP
    /// and nftables, which run in the kernel).
    pub lb_process_cpu_s_per_m: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct WayResult {
    pub way: Way,
    pub name: String,
    pub keepalive: Load,
    pub new_conn: Load,
    /// UDP datagrams per second delivered to the reals during a flood (None: not supported).
    pub udp_pps: Option<f64>,
    pub udp_sent_pps: Option<f64>,
}

pub struct Plan {
    pub seconds: u64,
    pub connections: u32,
    pub flood_seconds: u64,
}

fn cpu_jiffies() -> u64 {
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum()
}

fn proc_jiffies(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // After the ")" closing the command name: state is field 3, utime 14, stime 15.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// All descendants of `pid` (nginx and haproxy fork workers).
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(c) = fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
        i += 1;
    }
    out
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

/// wrk's `--latency` output: requests/s, p50 and p99 (ms), socket errors.
fn parse_wrk(out: &str) -> Load {
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
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["Requests/sec:", v, ..] => l.requests_per_s = v.parse().unwrap_or(0.0),
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
    l
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
            "{head}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
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
        Ok(bed)
    }

    fn lb(&self) -> &Netns {
        &self.t.lbs[0].ns
    }

    /// Sets the way up; returns what must stay alive and the pids whose CPU counts.
    fn setup(&self, way: Way) -> Result<(Vec<Proc>, Option<Agent>, Vec<u32>)> {
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
                Ok((vec![], Some(a), vec![]))
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
                let pid = p.pid().unwrap_or(0);
                Ok((vec![p], None, vec![pid]))
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
                        "global\n  maxconn 8000\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                         frontend f\n  bind {VIP}:80\n  default_backend b\nbackend b\n  balance roundrobin\n{servers}"
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
                let pid = p.pid().unwrap_or(0);
                Ok((vec![p], None, vec![pid]))
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
                Ok((vec![], None, vec![]))
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

    fn wrk(&self, plan: &Plan, close: bool, lb_pids: &[u32]) -> Result<Load> {
        let pids: Vec<u32> = lb_pids.iter().flat_map(|p| tree(*p)).collect();
        let (m0, p0) = (cpu_jiffies(), proc_jiffies(&pids));
        let mut args = vec![
            "-t2".to_owned(),
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
        let (m1, p1) = (cpu_jiffies(), proc_jiffies(&pids));
        let mut l = parse_wrk(&String::from_utf8_lossy(&out.stdout));
        let total = l.requests_per_s * plan.seconds as f64;
        if total > 0.0 {
            l.machine_cpu_s_per_m = (m1 - m0) as f64 / hz() / total * 1e6;
            l.lb_process_cpu_s_per_m = (p1.saturating_sub(p0)) as f64 / hz() / total * 1e6;
        }
        Ok(l)
    }

    fn rx_packets(&self) -> u64 {
        self.t
            .reals
            .iter()
            .filter_map(|r| {
                let out = r.ns.ip(&["-j", "-s", "link", "show", "dev", "eth0"]).ok()?;
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                v[0]["stats64"]["rx"]["packets"].as_u64()
            })
            .sum()
    }

    /// Floods VIP:9/udp with 18-byte datagrams (64-byte frames) from 64 source ports.
    fn flood(&self, secs: u64) -> Result<(f64, f64)> {
        let r0 = self.rx_packets();
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
        let got = self.rx_packets() - r0;
        Ok((got as f64 / secs as f64, sent as f64 / secs as f64))
    }
}

pub fn run_all(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Vec<WayResult>> {
    let bed = Bed::new()?;
    let _ = lb_ip(0);
    let mut out = Vec::new();
    for way in [Way::Xdp, Way::Nginx, Way::Haproxy, Way::Nftables] {
        progress(&format!("e2e: {}", way.name()));
        let (procs, agent, pids) = bed.setup(way)?;
        let keepalive = bed.wrk(plan, false, &pids)?;
        let new_conn = bed.wrk(plan, true, &pids)?;
        let (udp, sent) = if way == Way::Haproxy {
            (None, None)
        } else {
            let (g, s) = bed.flood(plan.flood_seconds)?;
            (Some(g), Some(s))
        };
        bed.teardown(way, procs, agent);
        out.push(WayResult {
            way,
            name: way.name().to_owned(),
            keepalive,
            new_conn,
            udp_pps: udp,
            udp_sent_pps: sent,
        });
    }
    let _ = Stat::default();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk() {
        let out = "Running 1s test @ http://10.99.0.100/\n  Latency Distribution\n     50%  312.00us\n     75%  1.02ms\n     90%    2.1ms\n     99%    5.50ms\n  1000 requests in 1.00s\n  Socket errors: connect 0, read 3, write 0, timeout 1\nRequests/sec:   9876.54\n";
        let l = parse_wrk(out);
        assert_eq!(l.requests_per_s, 9876.54);
        assert_eq!(l.p50_ms, 0.312);
        assert_eq!(l.p99_ms, 5.5);
        assert_eq!(l.errors, 4);
    }
}
