//! `virtual_server` and its `real_server`s.
//!
//! lb is a direct-routing load balancer: a keepalived service that uses NAT or tunnelling
//! cannot be carried over and is left out whole (with a note), and a real server whose port
//! differs from the virtual port (only possible with NAT) is left out. keepalived has no
//! interface per service; lb attaches its XDP program per service, on the interface that holds
//! the VIP in some vrrp_instance.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use super::super::{duration, schema};
use super::ast::Stmt;
use super::checks::{self, fall_from_retry, Inherited};
use super::command::{command, After};
use super::convert::Cx;
use super::report::Notes;
use super::values::{self, NoteAt};
use duration::Dur;
use schema::{Check, RealServer, SorryServer, VirtualIp, VirtualServer, VrrpInstance};

/// keepalived's checker interval when `delay_loop` is not given (lb's own default is 5s).
const KEEPALIVED_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's `persistence_timeout` without a value.
const KEEPALIVED_PERSISTENCE: Duration = Duration::from_secs(360);

/// A `virtual_server_group`: its name and members, each an address with the ports it serves
/// there (empty: all ports).
pub struct Group {
    pub name: String,
    pub members: Vec<(IpAddr, Vec<u16>)>,
    /// `fwmark` lines, which cannot be carried over.
    pub fwmarks: Vec<String>,
}

/// The `virtual_server_group` blocks: `ADDRESS PORT` lines and address ranges
/// (`10.0.0.1-10 80`: the last byte from 1 to 10), gathered per address.
pub fn groups(list: &[&Stmt], n: &mut Notes) -> Vec<Group> {
    let mut out = Vec::new();
    for s in list {
        let Some(name) = s.args.first().cloned() else {
            n.warning(s, "`virtual_server_group` needs a name; ignored".into());
            continue;
        };
        let Some(block) = values::block(s, n) else {
            continue;
        };
        let mut g = Group {
            name,
            members: Vec::new(),
            fwmarks: Vec::new(),
        };
        for d in block {
            if d.keyword == "fwmark" {
                g.fwmarks.push(d.args.first().cloned().unwrap_or_default());
                continue;
            }
            let Some(addrs) = address_range(d, n, &d.keyword) else {
                continue;
            };
            let port = match d.args.first() {
                None => 0,
                Some(p) if p == "0" => 0,
                Some(p) => match parse_port(d, n, p, "group member") {
                    Some(p) => p,
                    None => continue,
                },
            };
            for a in addrs {
                match g.members.iter_mut().find(|(m, _)| *m == a) {
                    Some((_, ports)) if port == 0 => ports.clear(),
                    Some((_, ports)) if !ports.is_empty() => ports.push(port),
                    Some(_) => {}
                    None => g
                        .members
                        .push((a, if port == 0 { vec![] } else { vec![port] })),
                }
            }
        }
        for (_, ports) in &mut g.members {
            ports.sort_unstable();
            ports.dedup();
        }
        out.push(g);
    }
    out
}

/// `10.0.0.1`, `10.0.0.1-10` (keepalived's range of the last byte), `2001:db8::1-1f` (of the
/// last 16-bit group, in hex).
fn address_range(d: &Stmt, n: &mut Notes, text: &str) -> Option<Vec<IpAddr>> {
    let (first, last) = match text.split_once('-') {
        Some((a, end)) => (a, Some(end)),
        None => (text, None),
    };
    let a = parse_addr(d, n, first, "group member")?;
    let Some(end) = last else {
        return Some(vec![a]);
    };
    let range = match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            end.parse::<u8>().ok().filter(|e| *e >= o[3]).map(|e| {
                (o[3]..=e)
                    .map(|b| IpAddr::from([o[0], o[1], o[2], b]))
                    .collect()
            })
        }
        IpAddr::V6(v6) => {
            let mut g = v6.segments();
            u16::from_str_radix(end, 16)
                .ok()
                .filter(|e| *e >= g[7])
                .map(|e| {
                    (g[7]..=e)
                        .map(|x| {
                            g[7] = x;
                            IpAddr::from(g)
                        })
                        .collect()
                })
        }
    };
    match range {
        Some(r) => Some(r),
        None => {
            n.warning(
                d,
                format!(
                    "`{}`: `{end}` is not the end of a range from {a}; ignored",
                    d.text()
                ),
            );
            None
        }
    }
}

pub fn virtual_servers(
    list: &[&Stmt],
    groups: &[Group],
    instances: &[VrrpInstance],
    cx: &mut Cx,
) -> Vec<VirtualServer> {
    let vip_iface = vip_interfaces(instances);
    let fallback_iface = instances
        .first()
        .map(|i| i.interface.clone())
        .or_else(|| cx.default_interface.clone());
    let mut out: Vec<VirtualServer> = Vec::new();
    let mut seen: HashSet<(IpAddr, u16, String)> = HashSet::new();
    for s in list {
        let (n, files) = (&mut cx.notes, &cx.track_files);
        for mut vs in virtual_server(s, groups, files, n) {
            let proto = vs.protocol.clone().unwrap_or_else(|| "tcp".into());
            let ports = all_ports(&vs);
            if let Some(dup) = ports
                .iter()
                .find(|p| seen.contains(&(vs.address, **p, proto.clone())))
            {
                n.warning(
                    s,
                    format!(
                        "`{}`: {}:{dup}/{proto} is already defined; not imported again",
                        s.text(),
                        vs.address,
                    ),
                );
                continue;
            }
            for p in ports {
                seen.insert((vs.address, p, proto.clone()));
            }
            vs.interface = interface(s, &vs, &vip_iface, &fallback_iface, n);
            out.push(vs);
        }
    }
    out
}

/// Every port a converted service serves (0 standing for all).
fn all_ports(vs: &VirtualServer) -> Vec<u16> {
    match vs.port {
        Some(p) => vec![p],
        None => vs
            .ports
            .iter()
            .filter_map(|p| match p {
                schema::PortItem::Port(p) => Some(*p),
                schema::PortItem::Range(_) => None,
            })
            .collect(),
    }
}

/// Where a service's XDP program attaches: the interface of the instance that holds its VIP.
fn interface(
    s: &Stmt,
    vs: &VirtualServer,
    vip_iface: &HashMap<IpAddr, String>,
    fallback_iface: &Option<String>,
    n: &mut Notes,
) -> String {
    match (vip_iface.get(&vs.address), fallback_iface) {
        (Some(i), _) => i.clone(),
        (None, Some(f)) => {
            n.warning(
                s,
                format!(
                    "`{}`: {} is not a VIP of any vrrp_instance; imported with `interface: \
                         {f}` (the first vrrp_instance's interface, or default_interface): check where its traffic arrives",
                    s.text(),
                    vs.address
                ),
            );
            f.clone()
        }
        (None, None) => {
            n.warning(
                s,
                format!(
                    "`{}`: no vrrp_instance tells which interface receives {}; imported \
                         with `interface: eth0`: check it",
                    s.text(),
                    vs.address
                ),
            );
            "eth0".into()
        }
    }
}

/// Each VIP's interface: its `dev`, else its instance's interface.
fn vip_interfaces(instances: &[VrrpInstance]) -> HashMap<IpAddr, String> {
    let mut map = HashMap::new();
    for i in instances {
        for v in &i.virtual_ipaddresses {
            let (text, dev) = match v {
                VirtualIp::Short(t) => (t.as_str(), None),
                VirtualIp::Full(f) => (f.address.as_str(), f.dev.as_ref()),
            };
            if let Some(a) = text.split('/').next().and_then(|a| a.parse().ok()) {
                map.entry(a)
                    .or_insert_with(|| dev.unwrap_or(&i.interface).clone());
            }
        }
    }
    map
}

fn parse_addr(s: &Stmt, n: &mut Notes, text: &str, what: &str) -> Option<IpAddr> {
    match text.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            n.warning(
                s,
                format!(
                    "`{}`: `{text}` is not an IP address; {what} not imported",
                    s.text()
                ),
            );
            None
        }
    }
}

fn parse_port(s: &Stmt, n: &mut Notes, text: &str, what: &str) -> Option<u16> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Some(p),
        _ => {
            n.warning(
                s,
                format!(
                    "`{}`: `{text}` is not a port (1-65535); {what} not imported",
                    s.text()
                ),
            );
            None
        }
    }
}

/// The method (`lb_kind`/`lvs_method`) of a block, last one winning, as keepalived.
fn method(block: &[Stmt]) -> Option<&Stmt> {
    block
        .iter()
        .rev()
        .find(|d| matches!(d.keyword.as_str(), "lb_kind" | "lvs_method"))
}

/// One keepalived `virtual_server` as lb services: one, or one per address of its group.
fn virtual_server(
    s: &Stmt,
    groups: &[Group],
    files: &[schema::TrackFile],
    n: &mut Notes,
) -> Vec<VirtualServer> {
    let heads: Vec<(IpAddr, Vec<u16>)> = match s.args.as_slice() {
        [fw, mark, ..] if fw == "fwmark" => {
            n.unsupported(
                s,
                format!(
                    "`{}`: lb matches address, protocol and ports itself, not a firewall mark: \
                     write a virtual_server with the VIP your mark rule matches and `ports: [...]` \
                     with the ports it marks (or `port: 0` for all), the same real servers and \
                     persistence_timeout; then remove the rule that sets mark {mark}; not imported",
                    s.text()
                ),
            );
            return Vec::new();
        }
        [g, name, ..] if g == "group" => match groups.iter().find(|x| &x.name == name) {
            Some(group) => {
                for mark in &group.fwmarks {
                    n.unsupported(
                        s,
                        format!(
                            "`{}`: the group's `fwmark {mark}` cannot be carried over (lb matches \
                             addresses and ports): list the marked addresses and ports in the \
                             group instead",
                            s.text()
                        ),
                    );
                }
                if group.members.len() > 1 {
                    n.converted(
                        s,
                        format!(
                            "`{}`: one virtual_server per address of the group ({})",
                            s.text(),
                            group.members.len()
                        ),
                    );
                }
                group.members.clone()
            }
            None => {
                n.warning(
                    s,
                    format!(
                        "`{}`: no virtual_server_group `{name}`; not imported",
                        s.text()
                    ),
                );
                return Vec::new();
            }
        },
        [addr] => match parse_addr(s, n, addr, "virtual server") {
            Some(a) => vec![(a, Vec::new())],
            None => return Vec::new(),
        },
        [addr, port, rest @ ..] => {
            let Some(a) = parse_addr(s, n, addr, "virtual server") else {
                return Vec::new();
            };
            let ports = if port == "0" {
                Vec::new()
            } else {
                match parse_port(s, n, port, "virtual server") {
                    Some(p) => vec![p],
                    None => return Vec::new(),
                }
            };
            if !rest.is_empty() {
                n.warning(
                    s,
                    format!("`{}`: extra word(s) `{}` ignored", s.text(), rest.join(" ")),
                );
            }
            vec![(a, ports)]
        }
        [] => {
            n.warning(
                s,
                "`virtual_server` needs an address and a port; not imported".into(),
            );
            return Vec::new();
        }
    };
    let Some(((address, ports), others)) = heads.split_first() else {
        return Vec::new();
    };
    let Some(first) = service(s, *address, ports, files, n) else {
        return Vec::new();
    };
    let mut out = vec![first.clone()];
    for (a, ports) in others {
        if first.real_servers.iter().any(|r| r.address == *a) {
            n.warning(
                s,
                format!(
                    "`{}`: {a} is also a real server of it; not imported",
                    s.text()
                ),
            );
            continue;
        }
        let mut vs = first.clone();
        vs.address = *a;
        set_ports(&mut vs, ports);
        out.push(vs);
    }
    out
}

/// `port` for one port or all (0), `ports` for several.
fn set_ports(vs: &mut VirtualServer, ports: &[u16]) {
    match ports {
        [] => {
            vs.port = Some(0);
            vs.ports = Vec::new();
        }
        [p] => {
            vs.port = Some(*p);
            vs.ports = Vec::new();
        }
        many => {
            vs.port = None;
            vs.ports = many.iter().map(|p| schema::PortItem::Port(*p)).collect();
        }
    }
}

/// The service a `virtual_server` block describes, at `address` with `ports` (empty: all).
fn service(
    s: &Stmt,
    address: IpAddr,
    ports: &[u16],
    files: &[schema::TrackFile],
    n: &mut Notes,
) -> Option<VirtualServer> {
    // Its reals' (and sorry server's) port: the first, or 0 for all ports.
    let port = ports.first().copied().unwrap_or(0);
    if !unicast(address) {
        n.warning(
            s,
            format!("`{}`: not a unicast address; not imported", s.text()),
        );
        return None;
    }
    let label = match s.args.as_slice() {
        [g, name, ..] if g == "group" => format!("virtual_server group {name}"),
        _ => format!("virtual_server {address} {port}"),
    };
    let block = values::block(s, n)?;
    let reals_count = block.iter().filter(|d| d.keyword == "real_server").count();

    // Forwarding method first: nothing else matters for a service lb cannot run.
    match method(block) {
        None => {
            n.unsupported(
                s,
                format!(
                    "`{label}` has no lb_kind, and keepalived's default is NAT, which direct \
                     routing cannot do; not imported ({reals_count} real server(s)): add \
                     `lb_kind DR` if the reals are set up for DR"
                ),
            );
            return None;
        }
        Some(m) => {
            let kind = m.args.first().map(String::as_str).unwrap_or("");
            if kind != "DR" {
                n.unsupported(
                    m,
                    format!(
                        "`{} {kind}`: lb only does direct routing (DR), which cannot {}; `{label}` \
                         is not imported ({reals_count} real server(s))",
                        m.keyword,
                        if kind == "TUN" { "tunnel" } else { "translate addresses or ports" }
                    ),
                );
                return None;
            }
            values::value(m, n);
        }
    }
    if let Some(p) = block.iter().rev().find(|d| d.keyword == "protocol") {
        if let Some(v) = p.args.first() {
            if !matches!(v.to_ascii_uppercase().as_str(), "TCP" | "UDP") {
                n.unsupported(
                    p,
                    format!(
                        "`protocol {v}`: lb balances TCP and UDP only; `{label}` is not imported"
                    ),
                );
                return None;
            }
        }
    }

    let mut vs = VirtualServer {
        address,
        port: None,
        ports: Vec::new(),
        forward_icmp_errors: None,
        fragments: None,
        protocol: None,
        interface: String::new(),
        scheduler: None,
        persistence_timeout: None,
        table_size: None,
        delay_loop: None,
        rise: None,
        fall: None,
        checks: Vec::new(),
        sorry_server: None,
        quorum: None,
        hysteresis: None,
        quorum_up: None,
        quorum_down: None,
        real_servers: Vec::new(),
    };
    let mut inh = Inherited {
        track_files: files.to_vec(),
        ..Inherited::default()
    };
    let mut inhibit = None;
    let mut reals = Vec::new();
    for d in block {
        match d.keyword.as_str() {
            "lb_kind" | "lvs_method" => {}
            "delay_loop" => vs.delay_loop = values::interval(values::seconds(d, n), d, n),
            "lb_algo" | "lvs_sched" => {
                if let Some(v) = values::value(d, n) {
                    vs.scheduler = Some(scheduler(d, v, n));
                }
            }
            "persistence_timeout" => vs.persistence_timeout = persistence(d, n),
            "protocol" => vs.protocol = values::value(d, n).map(str::to_ascii_lowercase),
            "quorum" => vs.quorum = values::u32_in(d, n, 1, u32::MAX),
            "hysteresis" => vs.hysteresis = values::u32_in(d, n, 0, u32::MAX),
            "quorum_up" => vs.quorum_up = command(d, n, After::UserGroup),
            "quorum_down" => vs.quorum_down = command(d, n, After::UserGroup),
            "sorry_server" => vs.sorry_server = sorry(d, n, port),
            "ip_family" => {
                n.not_imported(d, Some("lb takes the family from the addresses"));
            }
            "alpha" => checks::alpha(d, n),
            "omega" => n.not_imported(
                d,
                Some("lb runs no quorum_down or notify_down hooks when it stops"),
            ),
            _ if inh.take(d, n) => {}
            "inhibit_on_failure" => inhibit = values::boolean(d, n),
            "real_server" => reals.push(d),
            kw => n.not_imported(d, service_unsupported(kw)),
        }
    }

    if vs.protocol.is_none() {
        vs.protocol = Some("udp".into());
        n.warning(
            s,
            format!(
                "`{label}` has no protocol: keepalived then uses UDP (\"no protocol set - \
                 defaulting to UDP\"); imported as `protocol: udp`: write tcp if that is what \
                 it serves"
            ),
        );
    }
    if vs.scheduler.is_none() {
        vs.scheduler = Some("maglev".into());
        n.converted(
            s,
            format!(
                "`{label}` has no lb_algo: keepalived uses wlc -> `scheduler: maglev` (weighted \
                 consistent hashing; lb does not count connections)"
            ),
        );
    }
    set_ports(&mut vs, ports);
    if ports.is_empty() && vs.persistence_timeout.is_none() {
        n.warning(
            s,
            format!(
                "`{label}` serves all ports without persistence_timeout: each connection goes \
                 to a real by itself (a client's ports may land on different reals)"
            ),
        );
    }
    inh.misc_timeout = Some(vs.delay_loop.unwrap_or(Dur(KEEPALIVED_DELAY_LOOP)));
    let mut converted: Vec<Real> = Vec::new();
    for r in reals {
        let Some(real) = real_server(r, n, &vs, port, &inh, inhibit) else {
            continue;
        };
        if real.server.address == address {
            n.warning(
                r,
                format!(
                    "`{}`: a real server cannot be the VIP itself; not imported",
                    r.text()
                ),
            );
            continue;
        }
        if converted
            .iter()
            .any(|c| c.server.address == real.server.address)
        {
            n.warning(
                r,
                format!(
                    "`{}` is listed twice in `{label}`; not imported again",
                    r.text()
                ),
            );
            continue;
        }
        converted.push(real);
    }
    if converted.is_empty() && vs.sorry_server.is_none() {
        n.warning(
            s,
            format!(
                "`{label}` has no real server that lb can use (and no sorry_server); not imported"
            ),
        );
        return None;
    }
    hoist(&mut vs, converted, s, n);
    if let Some(q) = vs.quorum {
        let total: u64 = vs
            .real_servers
            .iter()
            .map(|r| u64::from(r.weight.unwrap_or(1)))
            .sum();
        if u64::from(q) > total.max(1) {
            n.warning(
                s,
                format!(
                    "`{label}`: quorum {q} exceeds the total weight of its real servers ({total}); \
                     lb refuses that: lower the quorum"
                ),
            );
        }
    }
    Some(vs)
}

fn service_unsupported(kw: &str) -> Option<&'static str> {
    Some(match kw {
        "persistence_granularity" => "lb's persistence is per client address",
        "persistence_engine" => "persistence engines (SIP) are not supported",
        "sorry_server_inhibit" | "sorry_server_lvs_method" => "not supported for the sorry server",
        "ha_suspend" => "lb checks the reals whether or not it holds the VIP",
        "warmup" => "lb spreads checks by itself (±10 % jitter on every interval)",
        "ops" => "one-packet scheduling is not supported",
        "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
            "IPVS scheduler flags have no equivalent in lb"
        }
        "net_mask" => "obsolete keyword",
        "smtp_alert" => "lb sends no e-mail: use quorum_up/quorum_down",
        "snmp_name" => "lb has no SNMP",
        "virtualhost_name" => "not supported",
        _ => return None,
    })
}

/// keepalived scheduler -> lb scheduler, with a note.
fn scheduler(d: &Stmt, v: &str, n: &mut Notes) -> String {
    let (to, why, warn) = match v {
        "sh" => ("source_hash", "source hashing", false),
        "mh" => ("maglev", "the same Maglev hashing", false),
        "rr" | "wrr" => ("maglev", "weighted consistent hashing spreads flows by weight; there is no per-connection rotation", false),
        "lc" | "wlc" | "lblc" | "lblcr" | "sed" | "nq" => (
            "maglev",
            "weighted consistent hashing; lb does not count connections, so load is spread by weight, not by current connections",
            false,
        ),
        "dh" => (
            "maglev",
            "destination hashing has no equivalent: flows to one destination may now go to different reals",
            true,
        ),
        _ => ("maglev", "no equivalent scheduler in lb", true),
    };
    let msg = format!("`{} {v}` -> `scheduler: {to}` ({why})", d.keyword);
    if warn {
        n.warning(d, msg);
    } else {
        n.converted(d, msg);
    }
    to.into()
}

fn persistence(d: &Stmt, n: &mut Notes) -> Option<Dur> {
    if d.args.is_empty() {
        values::no_block(d, n);
        return Some(Dur(KEEPALIVED_PERSISTENCE));
    }
    let v = values::u32_in(d, n, 0, 86_400 * 31)?;
    if v == 0 {
        n.converted(
            d,
            "`persistence_timeout 0`: no persistence (lb's default)".into(),
        );
        return None;
    }
    Some(Dur::secs(u64::from(v)))
}

fn sorry(d: &Stmt, n: &mut Notes, vport: u16) -> Option<SorryServer> {
    values::no_block(d, n);
    let (addr, port) = match d.args.as_slice() {
        [a] => (a, None),
        [a, p, ..] => (a, Some(p)),
        [] => {
            n.warning(d, "`sorry_server` needs an address; ignored".into());
            return None;
        }
    };
    let address = parse_addr(d, n, addr, "sorry server")?;
    let port = match port {
        Some(p) => parse_port(d, n, p, "sorry server")?,
        None => vport,
    };
    if port != vport {
        n.warning(
            d,
            format!(
                "`{}`: direct routing cannot change the port; keepalived resets it to the \
                 virtual port {vport} (and logs so): imported on port {vport}",
                d.text()
            ),
        );
    }
    Some(SorryServer {
        address,
        port: vport,
    })
}

/// A converted real server with what may move up to its service.
struct Real {
    server: RealServer,
    checks: Vec<Check>,
    fall: Option<u32>,
    delay_loop: Option<Dur>,
}

const CHECKERS: [&str; 10] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "BFD_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

fn real_server(
    r: &Stmt,
    n: &mut Notes,
    vs: &VirtualServer,
    vport: u16,
    vs_inh: &Inherited,
    vs_inhibit: Option<bool>,
) -> Option<Real> {
    let (addr, port) = match r.args.as_slice() {
        [a] => (a, None),
        [a, p, rest @ ..] => {
            if !rest.is_empty() {
                n.warning(
                    r,
                    format!("`{}`: extra word(s) `{}` ignored", r.text(), rest.join(" ")),
                );
            }
            (a, Some(p))
        }
        [] => {
            n.warning(r, "`real_server` needs an address; not imported".into());
            return None;
        }
    };
    let address = parse_addr(r, n, addr, "real server")?;
    let port = match port {
        Some(p) if p == "0" => 0,
        Some(p) => parse_port(r, n, p, "real server")?,
        None => vport,
    };
    let mut inh = vs_inh.clone();
    let single = vs.port.is_some_and(|p| p != 0);
    if single && port != vport {
        // keepalived, in DR mode: "virtual server ... and real server ... ports don't match -
        // resetting"; its checkers keep probing the port as written.
        n.warning(
            r,
            format!(
                "`{}`: direct routing cannot change the port; keepalived resets it to the \
                 virtual port {vport} (and logs so) but keeps checking port {port}: imported on \
                 port {vport} with checks on port {port}",
                r.text(),
            ),
        );
        inh.connect_port = Some(port);
    } else if !single && port != 0 && port != vport {
        // A multi-port or all-ports service: the real's port is the one its checks use.
        inh.connect_port = Some(port);
    }
    if !unicast(address) || address.is_loopback() {
        n.warning(
            r,
            format!("`{}`: not a unicast address; not imported", r.text()),
        );
        return None;
    }
    let block: &[Stmt] = r.block.as_deref().unwrap_or(&[]);
    if let Some(m) = method(block) {
        let kind = m.args.first().map(String::as_str).unwrap_or("");
        if kind != "DR" {
            n.unsupported(
                m,
                format!(
                    "`{} {kind}`: lb only does direct routing; real server {address} is not \
                     imported",
                    m.keyword
                ),
            );
            return None;
        }
    }
    let mut server = RealServer {
        address,
        port: single.then_some(vport),
        weight: None,
        inhibit_on_failure: vs_inhibit.filter(|b| *b),
        notify_up: None,
        notify_down: None,
        checks: None,
        delay_loop: None,
        rise: None,
        fall: None,
    };
    let mut checker_stmts = Vec::new();
    let mut real_delay = None;
    for d in block {
        match d.keyword.as_str() {
            "weight" => server.weight = values::u32_in(d, n, 0, 65_535),
            "inhibit_on_failure" => {
                server.inhibit_on_failure = values::boolean(d, n).filter(|b| *b)
            }
            "notify_up" => server.notify_up = command(d, n, After::UserGroup),
            "notify_down" => server.notify_down = command(d, n, After::UserGroup),
            "lb_kind" | "lvs_method" => {
                values::value(d, n);
            }
            _ if inh.take(d, n) => {}
            "delay_loop" => real_delay = values::interval(values::seconds(d, n), d, n),
            "alpha" => checks::alpha(d, n),
            kw if CHECKERS.contains(&kw) => checker_stmts.push(d),
            "uthreshold" | "lthreshold" => {
                n.not_imported(d, Some("connection thresholds are not supported"))
            }
            "warmup" => n.not_imported(
                d,
                Some("lb spreads checks by itself (±10 % jitter on every interval)"),
            ),
            "smtp_alert" => {
                n.not_imported(d, Some("lb sends no e-mail: use notify_up/notify_down"))
            }
            "snmp_name" => n.not_imported(d, Some("lb has no SNMP")),
            _ => n.not_imported(d, None),
        }
    }
    let mut checks = Vec::new();
    let mut falls = Vec::new();
    let mut delays = Vec::new();
    for c in &checker_stmts {
        if let Some(conv) = checks::checker(c, n, &inh) {
            checks.extend(conv.checks);
            falls.push(conv.retry.map(fall_from_retry));
            if let Some(d) = conv.delay_loop {
                delays.push(d);
            }
        }
    }
    if !checker_stmts.is_empty() && checks.is_empty() {
        n.warning(
            r,
            format!(
                "`{}`: none of its health checks could be imported, so lb will consider it \
                 always up: add a check lb supports",
                r.text()
            ),
        );
    }
    let fall = falls.iter().flatten().copied().max();
    if falls.iter().flatten().collect::<HashSet<_>>().len() > 1 {
        n.warning(
            r,
            format!(
                "`{}`: its checks retry differently; lb has one `fall` per real: imported as \
                 fall {}",
                r.text(),
                fall.unwrap_or(1)
            ),
        );
    }
    delays.sort();
    delays.dedup();
    if delays.len() > 1 {
        n.warning(
            r,
            format!(
                "`{}`: its checks have different delay_loops; lb has one interval per real: \
                 imported as {}",
                r.text(),
                delays[0]
            ),
        );
    }
    Some(Real {
        server,
        checks,
        fall,
        delay_loop: delays.first().copied().or(real_delay),
    })
}

/// Writes the reals into `vs`, moving checks, `fall` and `delay_loop` up to the service when
/// every real has the same (the usual keepalived file repeats one checker per real).
fn hoist(vs: &mut VirtualServer, reals: Vec<Real>, s: &Stmt, n: &mut Notes) {
    let any_checks = reals.iter().any(|r| !r.checks.is_empty());
    let same_checks = reals
        .first()
        .is_some_and(|f| !f.checks.is_empty() && reals.iter().all(|r| r.checks == f.checks));
    let same_fall = reals
        .first()
        .and_then(|f| f.fall)
        .filter(|f| reals.iter().all(|r| r.fall == Some(*f)));
    if any_checks && vs.delay_loop.is_none() {
        vs.delay_loop = Some(Dur(KEEPALIVED_DELAY_LOOP));
        n.converted(
            s,
            format!(
                "`{}` has no delay_loop: keepalived checks every 60s by default (lb: 5s); \
                 written as `delay_loop: 60s`",
                s.text()
            ),
        );
    }
    if same_checks {
        vs.checks = reals.first().map(|f| f.checks.clone()).unwrap_or_default();
    }
    vs.fall = same_fall;
    let service_delay = vs.delay_loop;
    for r in reals {
        let mut server = r.server;
        if !same_checks && !r.checks.is_empty() {
            server.checks = Some(r.checks);
        }
        if same_fall.is_none() {
            server.fall = r.fall;
        }
        server.delay_loop = r.delay_loop.filter(|d| Some(*d) != service_delay);
        vs.real_servers.push(server);
    }
}

/// Neither unspecified, multicast nor the IPv4 broadcast address.
fn unicast(a: IpAddr) -> bool {
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    !(a.is_unspecified() || a.is_multicast() || broadcast)
}
