//! `lb-agent check --host`: whether this host can run the configuration, item by item (pass,
//! warn, fail), before the agent is started on it. It reads the host and loads the XDP
//! program (without pinning or attaching it for traffic); the one thing it changes is a native
//! attach of the pass-everything program for a moment on each interface, the same probe the
//! agent makes at start.

use std::{collections::BTreeSet, fmt::Write as _, net::IpAddr, time::Duration};

use crate::{
    config::{Config, XdpMode},
    dataplane::{attach, Dataplane},
    netlink::Netlink,
};

/// The oldest kernel the program loads on: XDP multi-buffer (`frags`) programs arrived in
/// 5.18.
pub const MIN_KERNEL: (u32, u32) = (5, 18);
/// The largest MTU a driver without XDP multi-buffer runs XDP at (4 KiB page, headroom).
const SINGLE_BUFFER_MTU: u32 = 3498;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub verdict: Verdict,
    pub what: String,
    pub detail: String,
}

#[derive(Default)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    pub fn add(&mut self, verdict: Verdict, what: impl Into<String>, detail: impl Into<String>) {
        self.items.push(Item {
            verdict,
            what: what.into(),
            detail: detail.into(),
        });
    }

    pub fn failed(&self) -> bool {
        self.items.iter().any(|i| i.verdict == Verdict::Fail)
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        for i in &self.items {
            let v = match i.verdict {
                Verdict::Pass => "PASS",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(o, "{v}  {:<34} {}", i.what, i.detail);
        }
        let n = |v| self.items.iter().filter(|i| i.verdict == v).count();
        let _ = writeln!(
            o,
            "\n{} passed, {} warnings, {} failed",
            n(Verdict::Pass),
            n(Verdict::Warn),
            n(Verdict::Fail)
        );
        o
    }
}

/// Runs every check for `cfg` on this host.
pub fn run(cfg: &Config) -> Report {
    let mut r = Report::default();
    kernel(&mut r);
    let caps_ok = capabilities(&mut r);
    bpffs(&mut r);
    let dp = if caps_ok {
        match Dataplane::open(&cfg.capacity, None, cfg.xdp_mode) {
            Ok(dp) => {
                r.add(
                    Verdict::Pass,
                    "XDP program",
                    format!(
                        "loads: the verifier accepts it, with maps for {} + {} flows",
                        cfg.capacity.conntrack, cfg.capacity.conntrack6
                    ),
                );
                Some(dp)
            }
            Err(e) => {
                r.add(
                    Verdict::Fail,
                    "XDP program",
                    format!("does not load: {e:#}"),
                );
                None
            }
        }
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let nl = rt
        .as_ref()
        .ok()
        .and_then(|rt| rt.block_on(async { Netlink::connect().ok() }));
    interfaces(&mut r, cfg, dp);
    if let (Ok(rt), Some(nl)) = (&rt, &nl) {
        rt.block_on(neighbours(&mut r, cfg, nl));
    } else {
        r.add(Verdict::Fail, "netlink", "cannot open a netlink socket");
    }
    if let Some(b) = &cfg.bgp {
        bird(&mut r, b);
    }
    r
}

/// Scale-out mode: BIRD answers on its socket and the routes files can be written.
fn bird(r: &mut Report, b: &crate::config::BgpCfg) {
    let out = std::process::Command::new(&b.birdc)
        .arg("-s")
        .arg(&b.bird_socket)
        .args(["show", "status"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let version = text.lines().next().unwrap_or("").trim().to_owned();
            r.add(
                Verdict::Pass,
                "BIRD",
                format!("answers on {}: {version}", b.bird_socket.display()),
            );
        }
        Ok(o) => r.add(
            Verdict::Fail,
            "BIRD",
            format!(
                "{} -s {} show status: {}{}",
                b.birdc.display(),
                b.bird_socket.display(),
                String::from_utf8_lossy(&o.stdout).trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ),
        Err(e) => r.add(
            Verdict::Fail,
            "BIRD",
            format!(
                "cannot run {}: {e} (install bird2, or set bgp.birdc)",
                b.birdc.display()
            ),
        ),
    }
    for f in [&b.routes_file, &b.routes_file6] {
        let dir = f.parent().unwrap_or(std::path::Path::new("/"));
        let writable = dir.is_dir() && {
            let probe = dir.join(".lb-agent-preflight");
            let ok = std::fs::write(&probe, b"").is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        };
        if writable || !dir.exists() {
            // A missing directory is created by the agent at start.
            r.add(
                Verdict::Pass,
                "BIRD routes file",
                format!("{} can be written", f.display()),
            );
        } else {
            r.add(
                Verdict::Fail,
                "BIRD routes file",
                format!("cannot write in {}", dir.display()),
            );
        }
    }
}

fn kernel(r: &mut Report) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let need = format!("{}.{}", MIN_KERNEL.0, MIN_KERNEL.1);
    if version >= MIN_KERNEL {
        r.add(
            Verdict::Pass,
            "kernel",
            format!("{release} (needs {need} or later)"),
        );
    } else {
        r.add(
            Verdict::Fail,
            "kernel",
            format!("{release}: the XDP program needs {need} or later (XDP multi-buffer)"),
        );
    }
}

/// The effective capabilities of this process. True when all that the agent needs are held.
fn capabilities(r: &mut Report) -> bool {
    const NEEDED: [(u32, &str); 4] = [
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (21, "CAP_SYS_ADMIN"),
        (39, "CAP_BPF"),
    ];
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, n)| *n)
        .collect();
    if missing.is_empty() {
        r.add(
            Verdict::Pass,
            "capabilities",
            "CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_SYS_ADMIN",
        );
        true
    } else {
        r.add(
            Verdict::Fail,
            "capabilities",
            format!(
                "missing {} (run as root, or as the systemd unit grants them)",
                missing.join(" ")
            ),
        );
        false
    }
}

fn bpffs(r: &mut Report) {
    if crate::dataplane::pins::is_bpffs(std::path::Path::new("/sys/fs/bpf")) {
        r.add(
            Verdict::Pass,
            "bpffs",
            "mounted at /sys/fs/bpf (maps survive restarts)",
        );
    } else {
        r.add(
            Verdict::Warn,
            "bpffs",
            "not mounted at /sys/fs/bpf: the agent mounts it (needs CAP_SYS_ADMIN)",
        );
    }
}

fn sysfs_u32(ifname: &str, file: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{file}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Every interface the config uses: present, up, driver, native XDP, MTU.
fn interfaces(r: &mut Report, cfg: &Config, mut dp: Option<Dataplane>) {
    let xdp: BTreeSet<&str> = cfg.services.iter().map(|s| s.interface.as_str()).collect();
    let vrrp: BTreeSet<&str> = cfg.instances.iter().map(|i| i.interface.as_str()).collect();
    for ifname in xdp.union(&vrrp) {
        let what = format!("interface {ifname}");
        if attach::ifindex(ifname).is_err() {
            r.add(Verdict::Fail, what, "not found in this network namespace");
            continue;
        }
        let driver = attach::driver(ifname).unwrap_or_else(|| "unknown".into());
        let mtu = sysfs_u32(ifname, "mtu").unwrap_or(0);
        let up = sysfs_u32(ifname, "carrier") == Some(1);
        let mut detail = format!(
            "driver {driver}, MTU {mtu}, {}",
            if up { "up" } else { "no carrier" }
        );
        let mut verdict = if up { Verdict::Pass } else { Verdict::Warn };
        if xdp.contains(ifname) {
            let mode = cfg.xdp_mode_of(ifname);
            let native = dp.as_mut().map(|d| d.probe_native(ifname));
            match (native, mode) {
                (Some(Ok(())), XdpMode::Generic) => {
                    detail.push_str(", native XDP possible (xdp_mode generic is set)");
                }
                (Some(Ok(())), _) => {
                    detail.push_str(", native XDP");
                    if mtu > SINGLE_BUFFER_MTU {
                        detail.push_str(" with multi-buffer frames (jumbo MTU)");
                    }
                }
                (Some(Err(e)), XdpMode::Native) => {
                    verdict = Verdict::Fail;
                    detail.push_str(&format!(
                        ", no native XDP ({}) and xdp_mode is native: use auto or generic",
                        root_cause(&e)
                    ));
                }
                (Some(Err(e)), XdpMode::Auto) => {
                    verdict = verdict.max(Verdict::Warn);
                    detail.push_str(&format!(
                        ", no native XDP ({}): generic mode (several times slower)",
                        root_cause(&e)
                    ));
                }
                (Some(Err(_)), XdpMode::Generic) => detail.push_str(", generic XDP (configured)"),
                (None, _) => detail.push_str(", XDP not probed (the program did not load)"),
            }
        }
        r.add(verdict, what, detail);
    }
}

fn root_cause(e: &anyhow::Error) -> String {
    e.root_cause().to_string()
}

/// Reals (and sorry servers) and unicast VRRP peers answer ARP / neighbour discovery.
async fn neighbours(r: &mut Report, cfg: &Config, nl: &Netlink) {
    let mut wanted: Vec<(String, IpAddr, &str)> = Vec::new();
    for s in &cfg.services {
        for real in &s.reals {
            wanted.push(("real".into(), real.addr, &s.interface));
        }
        if let Some((a, _)) = s.sorry {
            wanted.push(("sorry server".into(), a, &s.interface));
        }
    }
    for i in &cfg.instances {
        for p in &i.unicast_peers {
            wanted.push((format!("VRRP {} peer", i.name), *p, &i.interface));
        }
        if i.unicast_peers.is_empty() {
            let multicast = sysfs_u32(&i.interface, "flags").is_some_and(|f| f & 0x1000 != 0);
            r.add(
                if multicast {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                format!("VRRP {}", i.name),
                if multicast {
                    format!("multicast {} on {}", i.mcast_group, i.interface)
                } else {
                    format!("{} has multicast off: use unicast_peers", i.interface)
                },
            );
        }
    }
    wanted.sort();
    wanted.dedup();
    let mut table = nl.neighbours().await.unwrap_or_default();
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(_, ip, _)| table.get(ip).and_then(|n| n.mac).is_none())
        .collect();
    if !missing.is_empty() {
        for (_, ip, ifname) in &missing {
            if let Ok(idx) = attach::ifindex(ifname) {
                let _ = nl.resolve(idx, *ip).await;
            }
        }
        // The kernel's ARP / ND retries take about a second each.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            table = nl.neighbours().await.unwrap_or_default();
            if missing
                .iter()
                .all(|(_, ip, _)| table.get(ip).is_some_and(|n| n.mac.is_some() || n.failed()))
            {
                break;
            }
        }
    }
    for (what, ip, ifname) in &wanted {
        let what = format!("{what} {ip}");
        match table.get(ip).and_then(|n| n.mac) {
            Some(mac) => r.add(
                Verdict::Pass,
                what,
                format!(
                    "answers on {ifname} ({})",
                    mac.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                ),
            ),
            None => r.add(
                Verdict::Warn,
                what,
                format!("no ARP/ND answer on {ifname}: it gets no traffic until it answers"),
            ),
        }
    }
}
