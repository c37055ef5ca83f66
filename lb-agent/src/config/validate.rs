//! Schema -> model: fills defaults, checks ranges and cross-references, and reports every
//! problem at once, each naming the key by its path (`virtual_servers[0].real_servers[1].port`)
//! so `load` can point at its line.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use lb_common::maps as caps;

use crate::vrrp::{
    packet::{V3Checksum, Version, MAX_VRID, VRRP_MCAST_V4, VRRP_MCAST_V6},
    state::OWNER_PRIORITY,
    timers,
};

use super::{
    duration::format_duration,
    model::*,
    schema::{self, Check, StatusCode, TrackInterface, TrackScript, VirtualIp},
};

/// One problem, at `path` (dotted keys and `[index]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

const DEFAULT_ROUTER_ID: &str = "lb";
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(5);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_ADVERT_INT: Duration = Duration::from_secs(1);

pub fn validate(file: &schema::File) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let g = &file.global_defs;

    let router_id = g
        .router_id
        .clone()
        .unwrap_or_else(|| DEFAULT_ROUTER_ID.into());
    if router_id.is_empty()
        || !router_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || router_id.len() > 64
    {
        p.add(
            "global_defs.router_id",
            "must be 1-64 characters of letters, digits, '-', '_' or '.' (it names files)",
        );
    }
    let pin_path = g
        .bpf_pin_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/bpf/lb/{router_id}")));
    if !pin_path.is_absolute() {
        p.add("global_defs.bpf_pin_path", "must be an absolute path");
    }
    let control_socket = g
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/run/lb-agent/{router_id}.sock")));
    if !control_socket.is_absolute() {
        p.add("global_defs.control_socket", "must be an absolute path");
    }
    let state_dir = g
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/lib/lb/{router_id}")));
    if !state_dir.is_absolute() {
        p.add("global_defs.state_dir", "must be an absolute path");
    }
    let metrics_listen = g.metrics_listen.as_ref().and_then(|m| match m.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                "global_defs.metrics_listen",
                format!("`{m}` is not an address:port (e.g. 127.0.0.1:9469)"),
            );
            None
        }
    });
    let xdp_mode = xdp_mode(&mut p, "global_defs.xdp_mode", g.xdp_mode.as_deref());
    let mut xdp_modes = std::collections::BTreeMap::new();
    for (i, itf) in file.interfaces.iter().enumerate() {
        let mode = xdp_mode_or(
            &mut p,
            &format!("interfaces[{i}].xdp_mode"),
            itf.xdp_mode.as_deref(),
            xdp_mode,
        );
        if xdp_modes.insert(itf.name.clone(), mode).is_some() {
            p.add(
                format!("interfaces[{i}].name"),
                format!("`{}` is listed twice", itf.name),
            );
        }
    }
    let ring_size = g.maglev_table_size.unwrap_or(caps::DEFAULT_RING_SIZE);
    check_table_size(&mut p, "global_defs.maglev_table_size", ring_size);
    let capacity = Capacity {
        max_services: g.max_services.unwrap_or(caps::DEFAULT_MAX_SERVICES),
        service_ports: g
            .max_service_ports
            .unwrap_or(caps::DEFAULT_MAX_SERVICE_PORTS),
        max_reals: g.max_reals.unwrap_or(caps::DEFAULT_MAX_REALS),
        ring_size,
        conntrack: g.conntrack_size.unwrap_or(caps::DEFAULT_FLOWS),
        conntrack6: g.conntrack_size6.unwrap_or(caps::DEFAULT_FLOWS6),
        affinity: caps::DEFAULT_AFFINITY,
    };
    range(
        &mut p,
        "global_defs.max_services",
        capacity.max_services,
        1,
        65_536,
    );
    range(
        &mut p,
        "global_defs.max_service_ports",
        capacity.service_ports,
        1,
        1 << 20,
    );
    range(
        &mut p,
        "global_defs.max_reals",
        capacity.max_reals,
        1,
        1 << 20,
    );
    range(
        &mut p,
        "global_defs.conntrack_size",
        capacity.conntrack,
        1024,
        1 << 28,
    );
    range(
        &mut p,
        "global_defs.conntrack_size6",
        capacity.conntrack6,
        1024,
        1 << 28,
    );
    let slots = capacity.max_services as u64 * 2 * ring_size as u64;
    if slots > u32::MAX as u64 / 2 {
        p.add(
            "global_defs.max_services",
            format!(
                "max_services x 2 x maglev_table_size = {slots} table slots; keep it under {}",
                u32::MAX / 2
            ),
        );
    }
    let mcast_group = g.vrrp_mcast_group4.unwrap_or(VRRP_MCAST_V4);
    if !mcast_group.is_multicast() {
        p.add(
            "global_defs.vrrp_mcast_group4",
            "must be a multicast address",
        );
    }
    let mcast_group6 = g.vrrp_mcast_group6.unwrap_or(VRRP_MCAST_V6);
    if !mcast_group6.is_multicast() {
        p.add(
            "global_defs.vrrp_mcast_group6",
            "must be a multicast address",
        );
    }
    let garp = Garp {
        repeat: g.vrrp_garp_master_repeat.unwrap_or(5),
        delay: g
            .vrrp_garp_master_delay
            .map_or(Duration::from_secs(5), |d| d.0),
        refresh: g
            .vrrp_garp_master_refresh
            .map(|d| d.0)
            .filter(|d| !d.is_zero()),
        interval: g.vrrp_garp_interval.map_or(Duration::ZERO, |d| d.0),
    };
    range(
        &mut p,
        "global_defs.vrrp_garp_master_repeat",
        garp.repeat,
        0,
        100,
    );

    let services = services(&mut p, &file.virtual_servers, ring_size);
    let scripts = scripts(&mut p, &file.vrrp_scripts);
    let track_files = track_files(&mut p, &file.vrrp_track_files);
    let instances = instances(
        &mut p,
        &file.vrrp_instances,
        (&scripts, &track_files),
        &services,
        (mcast_group, mcast_group6),
        &garp,
    );
    let sync_groups = sync_groups(&mut p, &file.vrrp_sync_groups, &instances);

    if capacity.max_services < services.len() as u32 {
        p.add(
            "global_defs.max_services",
            format!(
                "{} virtual servers are configured but max_services is {}",
                services.len(),
                capacity.max_services
            ),
        );
    }
    let ports: usize = services.iter().map(|s| s.ports.expand().len()).sum();
    if ports > capacity.service_ports as usize {
        p.add(
            "global_defs.max_service_ports",
            format!(
                "the virtual servers have {ports} ports in all but max_service_ports is {}",
                capacity.service_ports
            ),
        );
    }
    let reals: usize = services
        .iter()
        .map(|s| s.reals.len() + usize::from(s.sorry.is_some()))
        .sum();
    if (capacity.max_reals as usize) < reals {
        p.add(
            "global_defs.max_reals",
            format!(
                "{reals} real servers are configured but max_reals is {}",
                capacity.max_reals
            ),
        );
    }
    let bgp = file
        .bgp
        .as_ref()
        .map(|b| bgp(&mut p, b, !file.vrrp_instances.is_empty()));
    let flow_sync = file.flow_sync.as_ref().map(|f| flow_sync(&mut p, f));

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        router_id,
        pin_path,
        control_socket,
        state_dir,
        metrics_listen,
        xdp_mode,
        xdp_modes,
        capacity,
        mcast_group,
        mcast_group6,
        scripts,
        track_files,
        instances,
        sync_groups,
        services,
        bgp,
        flow_sync,
    })
}

/// The `flow_sync:` section.
fn flow_sync(p: &mut Problems, f: &schema::FlowSync) -> FlowSyncCfg {
    let dur = |d: Option<super::duration::Dur>, default: Duration| d.map_or(default, |d| d.0);
    let cfg = FlowSyncCfg {
        peers: f.peers.iter().map(|a| a.to_canonical()).collect(),
        port: f.port.unwrap_or(7789),
        group: f.group,
        interface: f.interface.clone(),
        source: f.source,
        key: match (&f.key, &f.key_file) {
            (Some(_), Some(_)) => {
                p.add("flow_sync.key", "give key or key_file, not both");
                None
            }
            (Some(k), None) => Some(SyncKey::Inline(k.clone())),
            (None, Some(path)) => Some(SyncKey::File(path.clone())),
            (None, None) => None,
        },
        batch_interval: dur(f.batch_interval, Duration::from_millis(20)),
        refresh_interval: dur(f.refresh_interval, Duration::from_secs(60)),
        bulk_sync_timeout: dur(f.bulk_sync_timeout, Duration::from_secs(10)),
    };
    if cfg.peers.is_empty() {
        p.add("flow_sync.peers", "name at least one other node");
    }
    let v4 = |a: &IpAddr| a.is_ipv4();
    if !(cfg.peers.iter().all(v4) || cfg.peers.iter().all(|a| !v4(a))) {
        p.add(
            "flow_sync.peers",
            "all IPv4 or all IPv6 (one socket carries the sync)",
        );
    }
    if cfg.port == 0 {
        p.add("flow_sync.port", "must not be 0");
    }
    if let Some(g) = cfg.group {
        if !g.is_multicast() {
            p.add("flow_sync.group", format!("{g} is not a multicast address"));
        }
        if cfg.peers.first().is_some_and(|a| v4(a) != v4(&g)) {
            p.add("flow_sync.group", "must be of the peers' family");
        }
        if cfg.interface.is_none() {
            p.add(
                "flow_sync.interface",
                "needed with group (where to join it)",
            );
        }
    }
    if let Some(src) = cfg.source {
        if cfg.peers.first().is_some_and(|a| v4(a) != v4(&src)) {
            p.add("flow_sync.source", "must be of the peers' family");
        }
    }
    if let Some(SyncKey::Inline(k)) = &cfg.key {
        if k.len() < 16 {
            p.add("flow_sync.key", "at least 16 characters");
        }
    }
    if let Some(SyncKey::File(path)) = &cfg.key {
        if !path.is_absolute() {
            p.add("flow_sync.key_file", "must be an absolute path");
        }
    }
    if cfg.batch_interval < Duration::from_millis(1) || cfg.batch_interval > Duration::from_secs(1)
    {
        p.add("flow_sync.batch_interval", "between 1ms and 1s");
    }
    if !cfg.refresh_interval.is_zero() && cfg.refresh_interval < Duration::from_secs(5) {
        p.add("flow_sync.refresh_interval", "0 (off) or at least 5s");
    }
    if cfg.bulk_sync_timeout > Duration::from_secs(600) {
        p.add("flow_sync.bulk_sync_timeout", "at most 10m");
    }
    cfg
}

/// The `bgp:` section; scale-out mode and VRRP do not mix in one file.
fn bgp(p: &mut Problems, b: &schema::Bgp, has_vrrp: bool) -> BgpCfg {
    if has_vrrp {
        p.add(
            "bgp",
            "a file runs either VRRP (vrrp_instances) or BGP scale-out (bgp), not both",
        );
    }
    let cfg = BgpCfg {
        routes_file: b
            .routes_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/lb/bird-vips.conf")),
        routes_file6: b
            .routes_file6
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/lb/bird-vips6.conf")),
        bird_socket: b
            .bird_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/bird/bird.ctl")),
        birdc: b.birdc.clone().unwrap_or_else(|| PathBuf::from("birdc")),
        drain_time: b.drain_time.map_or(Duration::from_secs(2), |d| d.0),
    };
    for (key, path) in [
        ("bgp.routes_file", &cfg.routes_file),
        ("bgp.routes_file6", &cfg.routes_file6),
        ("bgp.bird_socket", &cfg.bird_socket),
    ] {
        if !path.is_absolute() {
            p.add(key, "must be an absolute path");
        }
    }
    if cfg.routes_file == cfg.routes_file6 {
        p.add("bgp.routes_file6", "must differ from bgp.routes_file");
    }
    if cfg.drain_time > Duration::from_secs(300) {
        p.add("bgp.drain_time", "at most 5m");
    }
    cfg
}

fn xdp_mode(p: &mut Problems, path: &str, v: Option<&str>) -> XdpMode {
    xdp_mode_or(p, path, v, XdpMode::Auto)
}

fn xdp_mode_or(p: &mut Problems, path: &str, v: Option<&str>, default: XdpMode) -> XdpMode {
    match v {
        None => default,
        Some("auto") => XdpMode::Auto,
        Some("native" | "driver") => XdpMode::Native,
        Some("generic" | "skb") => XdpMode::Generic,
        Some(other) => {
            p.add(path, format!("`{other}`: expected auto, native or generic"));
            default
        }
    }
}

fn range(p: &mut Problems, path: &str, v: u32, lo: u32, hi: u32) {
    if v < lo || v > hi {
        p.add(path, format!("{v} is out of range {lo}..={hi}"));
    }
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

fn check_table_size(p: &mut Problems, path: &str, n: u32) {
    if !(caps::MIN_RING_SIZE..=caps::MAX_RING_SIZE).contains(&n) || !is_prime(n) {
        p.add(
            path,
            format!(
                "{n}: a Maglev table size must be a prime between {} and {} (e.g. 65537, 131071)",
                caps::MIN_RING_SIZE,
                caps::MAX_RING_SIZE
            ),
        );
    }
}

fn argv(p: &mut Problems, path: &str, c: &Option<schema::Command>) -> Option<Vec<String>> {
    let argv = c.as_ref()?.argv();
    if argv.is_empty() {
        p.add(path, "empty command");
        return None;
    }
    if !argv[0].starts_with('/') {
        p.add(
            path,
            format!(
                "`{}`: give the absolute path of the program (no shell, no PATH lookup)",
                argv[0]
            ),
        );
    }
    Some(argv)
}

fn positive(p: &mut Problems, path: &str, v: Option<u32>, default: u32) -> u32 {
    let v = v.unwrap_or(default);
    if v == 0 {
        p.add(path, "must be at least 1");
        return default;
    }
    v
}

/// The ports of a virtual server: `port` (0 = all) or `ports` (numbers and ranges).
fn ports(p: &mut Problems, at: &str, vs: &schema::VirtualServer) -> Ports {
    match (vs.port, vs.ports.is_empty()) {
        (Some(_), false) => {
            p.add(format!("{at}.ports"), "give `port` or `ports`, not both");
            Ports::All
        }
        (None, true) => {
            p.add(
                format!("{at}.port"),
                "missing: give `port` (0 for all ports) or `ports`",
            );
            Ports::All
        }
        (Some(0), true) => Ports::All,
        (Some(port), true) => Ports::Ranges(vec![(port, port)]),
        (None, false) => {
            let mut ranges = Vec::new();
            for (k, item) in vs.ports.iter().enumerate() {
                let path = format!("{at}.ports[{k}]");
                let r = match item {
                    schema::PortItem::Port(n) => Some((*n, *n)),
                    schema::PortItem::Range(s) => s
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))),
                };
                match r {
                    Some((lo, hi)) if lo >= 1 && lo <= hi => ranges.push((lo, hi)),
                    _ => p.add(
                        path,
                        "expected a port (1..=65535) or a range `LOW-HIGH` (use port: 0 for all)",
                    ),
                }
            }
            ranges.sort_unstable();
            if ranges.windows(2).any(|w| w[1].0 <= w[0].1) {
                p.add(format!("{at}.ports"), "ports and ranges overlap");
            }
            let n: usize = ranges.iter().map(|(lo, hi)| usize::from(hi - lo) + 1).sum();
            if n > MAX_SERVICE_PORTS {
                p.add(
                    format!("{at}.ports"),
                    format!("{n} ports; at most {MAX_SERVICE_PORTS} (use port: 0 for all ports)"),
                );
            }
            Ports::Ranges(ranges)
        }
    }
}

/// Most ports one multi-port service may list (each is an entry of the service map).
const MAX_SERVICE_PORTS: usize = 1024;

fn services(p: &mut Problems, list: &[schema::VirtualServer], ring_size: u32) -> Vec<ServiceCfg> {
    let mut seen = HashMap::new();
    let mut frag_seen = HashMap::new();
    let mut out = Vec::new();
    for (i, vs) in list.iter().enumerate() {
        let at = format!("virtual_servers[{i}]");
        let proto = match vs.protocol.as_deref().unwrap_or("tcp") {
            "tcp" | "TCP" => Proto::Tcp,
            "udp" | "UDP" => Proto::Udp,
            other => {
                p.add(
                    format!("{at}.protocol"),
                    format!("`{other}`: expected tcp or udp"),
                );
                Proto::Tcp
            }
        };
        let ports = ports(p, &at, vs);
        if let Err(e) = unicast(vs.address) {
            p.add(format!("{at}.address"), e);
        } else if vs.address.is_loopback() {
            p.add(
                format!("{at}.address"),
                "a VIP cannot be a loopback address",
            );
        }
        if vs.fragments == Some(true) && vs.address.is_ipv6() {
            p.add(
                format!("{at}.fragments"),
                "IPv4 only: IPv6 fragments always go to this node's stack (docs/datapath.md)",
            );
        }
        // No two services may claim a port of one VIP and protocol (the all-ports service only
        // takes what no other service has, so it may coexist with them).
        let claimed: Vec<u16> = match &ports {
            Ports::All => vec![0],
            Ports::Ranges(_) => ports.expand(),
        };
        for port in claimed {
            if let Some(first) = seen.insert((vs.address, port, proto), i) {
                let shown = if port == 0 {
                    "*".into()
                } else {
                    port.to_string()
                };
                p.add(
                    format!("{at}.address"),
                    format!(
                        "{}:{shown}/{} is already served by virtual_servers[{first}]",
                        vs.address,
                        proto.name()
                    ),
                );
                break;
            }
        }
        let fragments = vs.fragments.unwrap_or(false);
        if fragments {
            if let Some(first) = frag_seen.insert((vs.address, proto), i) {
                p.add(
                    format!("{at}.fragments"),
                    format!(
                        "virtual_servers[{first}] already steers the fragments to {}/{}: one \
                         service per VIP and protocol can",
                        vs.address,
                        proto.name()
                    ),
                );
            }
        }
        let vport = ports.primary();
        if vs.interface.is_empty() {
            p.add(format!("{at}.interface"), "must name an interface");
        }
        let scheduler = match vs.scheduler.as_deref().unwrap_or("maglev") {
            "maglev" | "mh" => Scheduler::Maglev,
            "source_hash" | "sh" => Scheduler::SourceHash,
            other => {
                p.add(
                    format!("{at}.scheduler"),
                    format!("`{other}`: expected maglev or source_hash"),
                );
                Scheduler::Maglev
            }
        };
        let table_size = vs.table_size.unwrap_or(ring_size);
        if vs.table_size.is_some() {
            check_table_size(p, &format!("{at}.table_size"), table_size);
            if table_size > ring_size {
                p.add(
                    format!("{at}.table_size"),
                    format!(
                        "{table_size} is larger than global_defs.maglev_table_size ({ring_size})"
                    ),
                );
            }
        }
        let persistence = vs.persistence_timeout.map(|d| d.0);
        if let Some(t) = persistence {
            if t < Duration::from_secs(1) || t > Duration::from_secs(86_400 * 31) {
                p.add(
                    format!("{at}.persistence_timeout"),
                    "must be between 1s and 31 days",
                );
            }
        }
        let interval = vs.delay_loop.map_or(DEFAULT_DELAY_LOOP, |d| d.0);
        check_interval(p, &format!("{at}.delay_loop"), interval);
        let rise = positive(p, &format!("{at}.rise"), vs.rise, 1);
        let fall = positive(p, &format!("{at}.fall"), vs.fall, 1);
        let default_checks: Vec<CheckCfg> = vs
            .checks
            .iter()
            .enumerate()
            .filter_map(|(j, c)| check(p, &format!("{at}.checks[{j}]"), c, vport, vs.address))
            .collect();

        let mut real_seen = HashSet::new();
        let mut reals = Vec::new();
        if vs.real_servers.is_empty() && vs.sorry_server.is_none() {
            p.add(
                format!("{at}.real_servers"),
                "a virtual server needs at least one real server (or a sorry_server)",
            );
        }
        for (j, rs) in vs.real_servers.iter().enumerate() {
            let rat = format!("{at}.real_servers[{j}]");
            let rport = rs.port.unwrap_or(vport);
            let single = matches!(&ports, Ports::Ranges(r) if r.len() == 1 && r[0].0 == r[0].1);
            if rs.port.is_some() && (single || rport == 0) && rport != vport {
                p.add(
                    format!("{rat}.port"),
                    format!(
                        "{rport}: direct routing cannot change the port; the real must listen on \
                         the virtual port {vport}"
                    ),
                );
            } else if !single && rport != 0 && !ports.contains(rport) {
                p.add(
                    format!("{rat}.port"),
                    format!(
                        "{rport} is not one of the service's ports ({}): direct routing cannot \
                         change the port",
                        ports.label()
                    ),
                );
            }
            if let Err(e) = unicast(rs.address).and_then(|()| {
                if rs.address.is_loopback() {
                    Err("a real server cannot be a loopback address".into())
                } else {
                    same_family(vs.address, rs.address)
                }
            }) {
                p.add(format!("{rat}.address"), e);
            }
            if rs.address == vs.address {
                p.add(
                    format!("{rat}.address"),
                    "a real server cannot be the VIP itself",
                );
            }
            if !real_seen.insert(rs.address) {
                p.add(
                    format!("{rat}.address"),
                    format!("{} is listed twice", rs.address),
                );
            }
            let weight = rs.weight.unwrap_or(1);
            range(p, &format!("{rat}.weight"), weight, 0, 65_535);
            let interval = rs.delay_loop.map_or(interval, |d| d.0);
            check_interval(p, &format!("{rat}.delay_loop"), interval);
            let checks = match &rs.checks {
                Some(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(k, c)| {
                        check(p, &format!("{rat}.checks[{k}]"), c, rport, vs.address)
                    })
                    .collect(),
                None => default_checks.clone(),
            };
            if rport == 0 && checks.iter().any(CheckCfg::needs_port) {
                p.add(
                    format!("{rat}.checks"),
                    "an all-ports service has no port to check: give the check a connect_port \
                     (or the real a port)",
                );
            }
            reals.push(RealCfg {
                addr: rs.address,
                port: vport,
                weight,
                inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(false),
                notify_up: argv(p, &format!("{rat}.notify_up"), &rs.notify_up),
                notify_down: argv(p, &format!("{rat}.notify_down"), &rs.notify_down),
                checks,
                interval,
                rise: positive(p, &format!("{rat}.rise"), rs.rise, rise),
                fall: positive(p, &format!("{rat}.fall"), rs.fall, fall),
            });
        }
        let sorry = vs.sorry_server.as_ref().map(|s| {
            if let Err(e) = same_family(vs.address, s.address) {
                p.add(format!("{at}.sorry_server.address"), e);
            }
            if s.port != vport && vport != 0 {
                p.add(
                    format!("{at}.sorry_server.port"),
                    "direct routing cannot change the port",
                );
            }
            (s.address, s.port)
        });
        let total: u32 = reals.iter().map(|r| r.weight).sum();
        let quorum = vs.quorum.unwrap_or(1);
        if quorum > total.max(1) {
            p.add(
                format!("{at}.quorum"),
                format!("{quorum} exceeds the total weight of the real servers ({total})"),
            );
        }
        out.push(ServiceCfg {
            addr: vs.address,
            port: vport,
            ports,
            proto,
            interface: vs.interface.clone(),
            scheduler,
            persistence,
            table_size,
            sorry,
            quorum,
            hysteresis: vs.hysteresis.unwrap_or(0),
            quorum_up: argv(p, &format!("{at}.quorum_up"), &vs.quorum_up),
            quorum_down: argv(p, &format!("{at}.quorum_down"), &vs.quorum_down),
            forward_icmp_errors: vs.forward_icmp_errors.unwrap_or(true),
            fragments,
            reals,
        });
    }
    out
}

fn check_interval(p: &mut Problems, path: &str, d: Duration) {
    if d < Duration::from_millis(10) || d > Duration::from_secs(3600) {
        p.add(
            path,
            format!("{}: must be between 10ms and 1h", format_duration(d)),
        );
    }
}

/// A unicast address of either family (the error says why not). IPv4-mapped IPv6 addresses
/// are refused: write them as IPv4.
fn unicast(a: IpAddr) -> Result<(), String> {
    match a {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => {
            Err(format!("{a} is not a unicast address"))
        }
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => {
            Err(format!("{a} is not a unicast address"))
        }
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Err(format!(
            "{a} is an IPv4-mapped IPv6 address: write it as IPv4 ({})",
            v6.to_canonical()
        )),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Err(format!(
            "{a} is link-local: a service needs an address routed to this network"
        )),
        _ => Ok(()),
    }
}

/// A service is of one family: its VIP's. Its reals, sorry server and check sources must be too.
fn same_family(vip: IpAddr, a: IpAddr) -> Result<(), String> {
    if vip.is_ipv4() == a.is_ipv4() {
        Ok(())
    } else {
        Err(format!(
            "{a} is {} but the virtual server's address {vip} is {}: a service has one family \
             (declare a second virtual_server for the other one)",
            family(a),
            family(vip)
        ))
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn check(p: &mut Problems, at: &str, c: &Check, port: u16, vip: IpAddr) -> Option<CheckCfg> {
    let kinds = [
        c.tcp.is_some(),
        c.http.is_some(),
        c.https.is_some(),
        c.script.is_some(),
        c.dns.is_some(),
        c.udp.is_some(),
        c.ping.is_some(),
        c.file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        p.add(
            at,
            "give exactly one of tcp, http, https, script, dns, udp, ping, file per list item",
        );
        return None;
    }
    let bind_to = c
        .tcp
        .as_ref()
        .and_then(|t| t.bind_to)
        .or_else(|| c.http.as_ref().or(c.https.as_ref()).and_then(|h| h.bind_to))
        .or_else(|| c.dns.as_ref().and_then(|d| d.bind_to))
        .or_else(|| c.udp.as_ref().and_then(|u| u.bind_to));
    if let Some(Err(e)) = bind_to.map(|b| same_family(vip, b)) {
        p.add(format!("{at}.bind_to"), e);
    }
    let out = if let Some(t) = &c.tcp {
        CheckCfg::Tcp {
            port: t.connect_port.unwrap_or(port),
            connect_timeout: t.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            bind_to: t.bind_to,
            probe_vip: t.probe_vip.unwrap_or(false).then_some(vip),
        }
    } else if let Some(h) = c.http.as_ref().or(c.https.as_ref()) {
        {
            let tls = c.https.is_some();
            let kind = if tls { "https" } else { "http" };
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' ') {
                p.add(
                    format!("{at}.{kind}.path"),
                    "must start with '/' and contain no spaces or control characters",
                );
            }
            if let Some(v) = &h.virtualhost {
                if v.is_empty() || v.chars().any(|c| c.is_control() || c == ' ') {
                    p.add(format!("{at}.{kind}.virtualhost"), "not a valid host name");
                }
            }
            let mut status = Vec::new();
            for (k, s) in h.status_code.iter().enumerate() {
                match status_range(s) {
                    Some(r) => status.push(r),
                    None => p.add(
                        format!("{at}.{kind}.status_code[{k}]"),
                        "expected a code 100..599 or a range like \"200-299\"",
                    ),
                }
            }
            if status.is_empty() {
                status.push((200, 299));
            }
            if let Some(re) = &h.regex {
                if let Err(e) = regex_check(re) {
                    p.add(format!("{at}.{kind}.regex"), e);
                }
            }
            let connect_timeout = h.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0);
            CheckCfg::Http {
                tls,
                port: h.connect_port.unwrap_or(port),
                path,
                virtualhost: h.virtualhost.clone(),
                status,
                regex: h.regex.clone(),
                connect_timeout,
                timeout: h.timeout.map_or(connect_timeout * 2, |d| d.0),
                bind_to: h.bind_to,
                verify: h.verify.unwrap_or(true),
            }
        }
    } else if let Some(d) = &c.dns {
        dns_check(p, &format!("{at}.dns"), d, port, vip)
    } else if let Some(u) = &c.udp {
        udp_check(p, &format!("{at}.udp"), u, port, vip)
    } else if let Some(g) = &c.ping {
        CheckCfg::Ping {
            connect_timeout: g.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
        }
    } else if let Some(f) = &c.file {
        CheckCfg::File {
            path: f.path.clone(),
            weight: f.weight.unwrap_or(1),
            reverse: f.reverse.unwrap_or(false),
        }
    } else {
        let s = c.script.as_ref()?;
        CheckCfg::Script {
            argv: argv(p, &format!("{at}.script.script"), &Some(s.script.clone()))?,
            timeout: s.timeout.map_or(DEFAULT_SCRIPT_TIMEOUT, |d| d.0),
            dynamic: s.dynamic.unwrap_or(false),
        }
    };
    Some(out)
}

fn dns_check(p: &mut Problems, at: &str, d: &schema::DnsCheck, port: u16, vip: IpAddr) -> CheckCfg {
    let name = d.name.clone().unwrap_or_else(|| ".".into());
    if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_control() || c == ' ') {
        p.add(format!("{at}.name"), "not a domain name");
    }
    let qtype = d
        .qtype
        .clone()
        .unwrap_or_else(|| "SOA".into())
        .to_ascii_uppercase();
    if crate::health::dns::record_type(&qtype).is_none() {
        p.add(
            format!("{at}.type"),
            format!(
                "`{qtype}`: not a DNS record type (A, AAAA, NS, SOA, MX, TXT, ... or a number)"
            ),
        );
    }
    let rcode = d.rcode.as_deref().and_then(|r| {
        let code = crate::health::dns::rcode(r);
        if code.is_none() {
            p.add(
                format!("{at}.rcode"),
                format!("`{r}`: expected NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED or a number"),
            );
        }
        code
    });
    let tcp = match d.protocol.as_deref().unwrap_or("udp") {
        "udp" | "UDP" => false,
        "tcp" | "TCP" => true,
        other => {
            p.add(
                format!("{at}.protocol"),
                format!("`{other}`: expected udp or tcp"),
            );
            false
        }
    };
    let probe_vip = d.probe_vip.unwrap_or(false).then_some(vip);
    if probe_vip.is_some() && tcp {
        p.add(
            format!("{at}.probe_vip"),
            "through the VIP the DNS check asks over UDP only",
        );
    }
    CheckCfg::Dns {
        port: d.connect_port.unwrap_or(port),
        name,
        qtype,
        tcp,
        rcode,
        require_answer: d.require_answer.unwrap_or(false),
        connect_timeout: d.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |x| x.0),
        bind_to: d.bind_to,
        probe_vip,
    }
}

fn udp_check(p: &mut Problems, at: &str, u: &schema::UdpCheck, port: u16, vip: IpAddr) -> CheckCfg {
    let payload = match (&u.payload, &u.payload_hex) {
        (Some(_), Some(_)) => {
            p.add(
                format!("{at}.payload_hex"),
                "give payload or payload_hex, not both",
            );
            Vec::new()
        }
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => match crate::health::udp::parse_hex(h) {
            Some(b) => b,
            None => {
                p.add(
                    format!("{at}.payload_hex"),
                    "not hex digits (spaces allowed)",
                );
                Vec::new()
            }
        },
        (None, None) => b"lb-check".to_vec(),
    };
    if let Some(re) = &u.reply_regex {
        if let Err(e) = regex_check(re) {
            p.add(format!("{at}.reply_regex"), e);
        }
    }
    let require_reply = u.require_reply.unwrap_or(false) || u.reply_regex.is_some();
    let probe_vip = u.probe_vip.unwrap_or(false).then_some(vip);
    if probe_vip.is_some() && !require_reply {
        p.add(
            format!("{at}.probe_vip"),
            "through the VIP only a reply proves anything: set require_reply",
        );
    }
    CheckCfg::Udp {
        port: u.connect_port.unwrap_or(port),
        payload,
        require_reply,
        reply_regex: u.reply_regex.clone(),
        connect_timeout: u.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |x| x.0),
        bind_to: u.bind_to,
        probe_vip,
    }
}

/// Validates a body regex without compiling it into the config (the checker compiles it).
fn regex_check(re: &str) -> Result<(), String> {
    if re.len() > 4096 {
        return Err("regex longer than 4096 characters".into());
    }
    crate::health::validate_regex(re)
}

fn status_range(s: &StatusCode) -> Option<(u16, u16)> {
    let (lo, hi) = match s {
        StatusCode::Code(c) => (*c, *c),
        StatusCode::Range(r) => match r.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let c = r.trim().parse().ok()?;
                (c, c)
            }
        },
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some((lo, hi))
}

fn track_files(p: &mut Problems, list: &[schema::TrackFile]) -> Vec<TrackFileCfg> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let at = format!("vrrp_track_files[{i}]");
        if !names.insert(f.name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("`{}` is defined twice", f.name),
            );
        }
        if !f.file.is_absolute() {
            p.add(format!("{at}.file"), "must be an absolute path");
        }
        let weight = f.weight.unwrap_or(1);
        if !(-254..=254).contains(&weight) {
            p.add(format!("{at}.weight"), "must be between -254 and 254");
        }
        out.push(TrackFileCfg {
            name: f.name.clone(),
            path: f.file.clone(),
            weight,
            reverse: f.reverse.unwrap_or(false),
            init: f.init_file,
        });
    }
    out
}

fn scripts(p: &mut Problems, list: &[schema::VrrpScript]) -> Vec<ScriptCfg> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let at = format!("vrrp_scripts[{i}]");
        if !names.insert(s.name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("`{}` is defined twice", s.name),
            );
        }
        let interval = s.interval.map_or(Duration::from_secs(1), |d| d.0);
        check_interval(p, &format!("{at}.interval"), interval);
        let weight = s.weight.unwrap_or(0);
        if !(-253..=253).contains(&weight) {
            p.add(format!("{at}.weight"), "must be between -253 and 253");
        }
        out.push(ScriptCfg {
            name: s.name.clone(),
            argv: argv(p, &format!("{at}.script"), &Some(s.script.clone())).unwrap_or_default(),
            interval,
            timeout: s.timeout.map_or(interval, |d| d.0),
            weight,
            rise: positive(p, &format!("{at}.rise"), s.rise, 1),
            fall: positive(p, &format!("{at}.fall"), s.fall, 1),
        });
    }
    out
}

/// The address text of a virtual address entry (empty for none).
fn vip_text(v: Option<&VirtualIp>) -> &str {
    match v {
        Some(VirtualIp::Short(s)) => s,
        Some(VirtualIp::Full(f)) => &f.address,
        None => "",
    }
}

fn parse_vip(p: &mut Problems, at: &str, v: &VirtualIp, iface: &str) -> Option<Vip> {
    let (text, dev, label) = match v {
        VirtualIp::Short(s) => (s.as_str(), None, None),
        VirtualIp::Full(f) => (f.address.as_str(), f.dev.clone(), f.label.clone()),
    };
    let (addr, prefix) = match text.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok()),
        None => (text, None),
    };
    let (Ok(addr), Some(prefix)) = (
        addr.parse::<IpAddr>(),
        prefix.or(Some(if addr.contains(':') { 128 } else { 32 })),
    ) else {
        p.add(
            at,
            format!("`{text}` is not an IP address with optional /prefix"),
        );
        return None;
    };
    let max = if addr.is_ipv6() { 128 } else { 32 };
    // A link-local IPv6 virtual address is allowed (RFC 9568 lists the router's link-local
    // address first); a service address is not.
    let link_local = matches!(addr, IpAddr::V6(a) if a.is_unicast_link_local());
    if prefix > max || (unicast(addr).is_err() && !link_local) || addr.is_loopback() {
        p.add(
            at,
            format!("`{text}` is not a usable unicast address/prefix"),
        );
        return None;
    }
    if let Some(l) = &label {
        if l.len() > 15 {
            p.add(at, format!("label `{l}` is longer than 15 characters"));
        }
    }
    Some(Vip {
        addr,
        prefix,
        dev: dev.unwrap_or_else(|| iface.to_owned()),
        label,
    })
}

fn instances(
    p: &mut Problems,
    list: &[schema::VrrpInstance],
    (scripts, files): (&[ScriptCfg], &[TrackFileCfg]),
    services: &[ServiceCfg],
    (mcast4, mcast6): (Ipv4Addr, Ipv6Addr),
    garp: &Garp,
) -> Vec<InstanceCfg> {
    let mut names = HashSet::new();
    let mut vrids = HashMap::new();
    let mut vip_owner: HashMap<IpAddr, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, vi) in list.iter().enumerate() {
        let at = format!("vrrp_instances[{i}]");
        if !names.insert(vi.name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("`{}` is defined twice", vi.name),
            );
        }
        if let Some(s) = &vi.state {
            if !matches!(s.as_str(), "MASTER" | "BACKUP" | "master" | "backup") {
                p.add(format!("{at}.state"), "expected MASTER or BACKUP");
            }
        }
        range(
            p,
            &format!("{at}.virtual_router_id"),
            vi.virtual_router_id,
            1,
            u32::from(MAX_VRID),
        );
        range(
            p,
            &format!("{at}.priority"),
            vi.priority,
            1,
            u32::from(OWNER_PRIORITY),
        );
        // An instance carries one family, its VIPs' (keepalived's rule); IPv4 and IPv6
        // instances may share a VRID on an interface (they are different routers).
        let v6 = vip_text(vi.virtual_ipaddresses.first()).contains(':');
        if let Some(first) = vrids.insert((vi.interface.clone(), vi.virtual_router_id, v6), i) {
            p.add(
                format!("{at}.virtual_router_id"),
                format!(
                    "VRID {} on {} is already used by vrrp_instances[{first}]",
                    vi.virtual_router_id, vi.interface
                ),
            );
        }
        let version = match vi.version.unwrap_or(3) {
            2 => Version::V2,
            3 => Version::V3,
            v => {
                p.add(format!("{at}.version"), format!("{v}: expected 2 or 3"));
                Version::V3
            }
        };
        let advert_int = vi.advert_int.map_or(DEFAULT_ADVERT_INT, |d| d.0);
        if !timers::interval_valid(version, advert_int) {
            let hint = if version == Version::V2 {
                " (use version: 3 for sub-second)"
            } else {
                ""
            };
            p.add(
                format!("{at}.advert_int"),
                format!(
                    "{}: {}{hint}",
                    format_duration(advert_int),
                    timers::interval_rule(version)
                ),
            );
        }
        let preempt = match (vi.preempt, vi.nopreempt) {
            (Some(a), Some(b)) if a == b => {
                p.add(
                    format!("{at}.nopreempt"),
                    "contradicts `preempt`; give only one of them",
                );
                a
            }
            (Some(a), _) => a,
            (None, Some(b)) => !b,
            (None, None) => true,
        };
        if vi.virtual_ipaddresses.is_empty() {
            p.add(
                format!("{at}.virtual_ipaddresses"),
                "an instance needs at least one virtual IP address",
            );
        }
        let mut vips = Vec::new();
        for (j, v) in vi.virtual_ipaddresses.iter().enumerate() {
            let vat = format!("{at}.virtual_ipaddresses[{j}]");
            if let Some(vip) = parse_vip(p, &vat, v, &vi.interface) {
                if let Some(other) = vip_owner.insert(vip.addr, vi.name.clone()) {
                    p.add(
                        vat,
                        format!("{} is already a VIP of instance `{other}`", vip.addr),
                    );
                }
                vips.push(vip);
            }
        }
        let auth_pass = vi.authentication.as_ref().and_then(|a| {
            if a.auth_type != "PASS" {
                p.add(
                    format!("{at}.authentication.auth_type"),
                    format!(
                        "`{}`: only PASS is supported (AH was removed in RFC 3768)",
                        a.auth_type
                    ),
                );
                return None;
            }
            if version != Version::V2 {
                p.add(
                    format!("{at}.authentication"),
                    "VRRPv3 has no authentication (RFC 5798 §9); use version: 2 or remove it",
                );
            }
            let bytes = a.auth_pass.as_bytes();
            if bytes.is_empty() || bytes.len() > 8 {
                p.add(
                    format!("{at}.authentication.auth_pass"),
                    "must be 1 to 8 bytes (keepalived truncates longer ones; we refuse)",
                );
                return None;
            }
            let mut out = [0u8; 8];
            out[..bytes.len()].copy_from_slice(bytes);
            Some(Secret(out))
        });
        if !vi.unicast_peers.is_empty() && !vi.allowed_peers.is_empty() {
            p.add(
                format!("{at}.allowed_peers"),
                "unicast_peers already restricts who is heard; allowed_peers is for multicast",
            );
        }
        if v6 && version == Version::V2 {
            p.add(
                format!("{at}.version"),
                "VRRP version 2 has no IPv6 form: use version 3 for IPv6 virtual addresses",
            );
        }
        for (j, v) in vips.iter().enumerate() {
            if v.addr.is_ipv6() != v6 {
                p.add(
                    format!("{at}.virtual_ipaddresses[{j}]"),
                    "an instance carries one family (its first address's): put the other \
                     family's addresses in an instance of their own (it may share the VRID)",
                );
            }
        }
        let mut own_family = |key: &str, list: &[IpAddr]| {
            for (j, a) in list.iter().enumerate() {
                if a.is_ipv6() != v6 {
                    p.add(
                        format!("{at}.{key}[{j}]"),
                        format!("{a}: not of the instance's family (its virtual addresses')"),
                    );
                }
            }
        };
        own_family("unicast_peers", &vi.unicast_peers);
        own_family("allowed_peers", &vi.allowed_peers);
        if let Some(src) = vi.unicast_src_ip {
            match src {
                IpAddr::V6(a) if !a.is_unicast_link_local() => p.add(
                    format!("{at}.unicast_src_ip"),
                    "IPv6 adverts are sent from a link-local address (RFC 9568 §5.1.2.1; peers \
                     drop others): give the interface's fe80:: address, or leave it out",
                ),
                _ if src.is_ipv6() != v6 => p.add(
                    format!("{at}.unicast_src_ip"),
                    "not of the instance's family (its virtual addresses')",
                ),
                _ => {}
            }
        }
        let mcast_group: IpAddr = if v6 {
            vi.mcast_group6.unwrap_or(mcast6).into()
        } else {
            vi.mcast_group4.unwrap_or(mcast4).into()
        };
        if !mcast_group.is_multicast() {
            p.add(format!("{at}.mcast_group"), "must be a multicast address");
        }
        let v3_checksum = match vi.v3_checksum.as_deref().unwrap_or("keepalived") {
            "keepalived" => V3Checksum::PseudoHeader,
            "rfc9568" => V3Checksum::VrrpOnly,
            other => {
                p.add(
                    format!("{at}.v3_checksum"),
                    format!("`{other}`: expected keepalived or rfc9568"),
                );
                V3Checksum::PseudoHeader
            }
        };
        let track_interfaces = vi
            .track_interfaces
            .iter()
            .map(|t| match t {
                TrackInterface::Name(n) => (n.clone(), 0),
                TrackInterface::Weighted { name, weight } => (name.clone(), *weight),
            })
            .collect();
        let mut track_scripts = Vec::new();
        for (j, t) in vi.track_scripts.iter().enumerate() {
            let (name, weight) = match t {
                TrackScript::Name(n) => (n, None),
                TrackScript::Weighted { name, weight } => (name, Some(*weight)),
            };
            match scripts.iter().find(|s| &s.name == name) {
                Some(s) => track_scripts.push((name.clone(), weight.unwrap_or(s.weight))),
                None => p.add(
                    format!("{at}.track_scripts[{j}]"),
                    format!("`{name}` is not defined in vrrp_scripts"),
                ),
            }
        }
        let mut track_files = Vec::new();
        for (j, t) in vi.track_files.iter().enumerate() {
            let (name, weight) = match t {
                TrackScript::Name(n) => (n, None),
                TrackScript::Weighted { name, weight } => (name, Some(*weight)),
            };
            match files.iter().find(|f| &f.name == name) {
                Some(f) => track_files.push((name.clone(), weight.unwrap_or(f.weight))),
                None => p.add(
                    format!("{at}.track_files[{j}]"),
                    format!("`{name}` is not defined in vrrp_track_files"),
                ),
            }
        }
        let mut track_services = Vec::new();
        for (j, t) in vi.track_services.iter().enumerate() {
            // An all-ports service may be named with port 0 or `*`.
            let wanted = t.service.replace(":0/", ":*/");
            match services.iter().find(|s| s.label() == wanted) {
                Some(s) => track_services.push((s.key(), t.weight)),
                None => p.add(
                    format!("{at}.track_services[{j}].service"),
                    format!(
                        "`{}` is not a virtual server (write it as address:port/protocol)",
                        t.service
                    ),
                ),
            }
        }
        let notify = Notify {
            master: argv(p, &format!("{at}.notify_master"), &vi.notify_master),
            backup: argv(p, &format!("{at}.notify_backup"), &vi.notify_backup),
            fault: argv(p, &format!("{at}.notify_fault"), &vi.notify_fault),
            stop: argv(p, &format!("{at}.notify_stop"), &vi.notify_stop),
            any: argv(p, &format!("{at}.notify"), &vi.notify),
        };
        out.push(InstanceCfg {
            name: vi.name.clone(),
            interface: vi.interface.clone(),
            vrid: vi.virtual_router_id.clamp(1, u32::from(MAX_VRID)) as u8,
            priority: vi.priority.clamp(1, u32::from(OWNER_PRIORITY)) as u8,
            version,
            advert_int,
            preempt,
            preempt_delay: vi.preempt_delay.map_or(Duration::ZERO, |d| d.0),
            vips,
            auth_pass,
            unicast_src_ip: vi.unicast_src_ip,
            unicast_peers: vi.unicast_peers.clone(),
            allowed_peers: vi.allowed_peers.clone(),
            mcast_group,
            v3_checksum,
            track_interfaces,
            track_scripts,
            track_files,
            track_services,
            notify,
            garp: Garp {
                repeat: vi.garp_master_repeat.unwrap_or(garp.repeat),
                delay: vi.garp_master_delay.map_or(garp.delay, |d| d.0),
                refresh: vi
                    .garp_master_refresh
                    .map_or(garp.refresh, |d| Some(d.0).filter(|d| !d.is_zero())),
                interval: garp.interval,
            },
        });
    }
    out
}

fn sync_groups(
    p: &mut Problems,
    list: &[schema::SyncGroup],
    instances: &[InstanceCfg],
) -> Vec<SyncGroupCfg> {
    let mut member_of: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, g) in list.iter().enumerate() {
        let at = format!("vrrp_sync_groups[{i}]");
        let mut members = Vec::new();
        for (j, name) in g.group.iter().enumerate() {
            match instances.iter().find(|x| &x.name == name) {
                Some(_) => {
                    if let Some(other) = member_of.insert(name.clone(), g.name.clone()) {
                        p.add(
                            format!("{at}.group[{j}]"),
                            format!("`{name}` is already in sync group `{other}`"),
                        );
                    }
                    members.push(name.clone());
                }
                None => p.add(
                    format!("{at}.group[{j}]"),
                    format!("`{name}` is not a vrrp_instance"),
                ),
            }
        }
        out.push(SyncGroupCfg {
            name: g.name.clone(),
            members,
            notify: Notify {
                master: argv(p, &format!("{at}.notify_master"), &g.notify_master),
                backup: argv(p, &format!("{at}.notify_backup"), &g.notify_backup),
                fault: argv(p, &format!("{at}.notify_fault"), &g.notify_fault),
                stop: None,
                any: argv(p, &format!("{at}.notify"), &g.notify),
            },
        });
    }
    out
}
