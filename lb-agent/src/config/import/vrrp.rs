//! `vrrp_script`, `vrrp_instance` and `vrrp_sync_group`.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use super::super::{duration, schema};
use super::ast::Stmt;
use super::command::{command, After};
use super::convert::Cx;
use super::report::Notes;
use super::values::{self, NoteAt};
use duration::Dur;
use schema::{
    Authentication, SyncGroup, TrackInterface, TrackScript, VirtualIp, VirtualIpFull, VrrpInstance,
    VrrpScript,
};

/// keepalived's default priority.
const DEFAULT_PRIORITY: u32 = 100;

// ---------------------------------------------------------------------------------------------
// vrrp_script

/// `track_file NAME { file PATH  weight W [reverse]  init_file [V] [overwrite] }`.
pub fn track_files(list: &[&Stmt], cx: &mut Cx) -> Vec<schema::TrackFile> {
    let mut out: Vec<schema::TrackFile> = Vec::new();
    for s in list {
        let n = &mut cx.notes;
        let Some(name) = name_of(s, n) else { continue };
        let Some(block) = values::block(s, n) else {
            continue;
        };
        let mut t = schema::TrackFile {
            name: name.clone(),
            file: std::path::PathBuf::new(),
            weight: None,
            reverse: None,
            init_file: None,
        };
        for d in block {
            match d.keyword.as_str() {
                "file" => {
                    if let Some(v) = values::value(d, n) {
                        t.file = v.trim_matches('"').into();
                    }
                }
                "weight" => {
                    t.weight = d.args.first().and_then(|w| w.parse().ok());
                    if t.weight.is_none() {
                        n.warning(d, "`weight`: not a number; ignored".into());
                    }
                    if d.args.get(1).is_some_and(|r| r == "reverse") {
                        t.reverse = Some(true);
                    }
                }
                "init_file" => {
                    t.init_file = Some(d.args.first().and_then(|v| v.parse().ok()).unwrap_or(0));
                    if d.args.iter().any(|a| a == "overwrite") {
                        n.unsupported(
                            d,
                            "`init_file ... overwrite`: lb writes the value only when the file is \
                             missing"
                                .into(),
                        );
                    }
                }
                _ => n.not_imported(d, None),
            }
        }
        if t.file.as_os_str().is_empty() {
            n.warning(
                s,
                format!("`track_file {name}` names no file; not imported"),
            );
            continue;
        }
        if out.iter().any(|o| o.name == name) {
            n.warning(
                s,
                format!("`track_file {name}` is defined twice; this one is not imported"),
            );
            continue;
        }
        out.push(t);
    }
    out
}

pub fn scripts(list: &[&Stmt], cx: &mut Cx) -> Vec<VrrpScript> {
    let mut out: Vec<VrrpScript> = Vec::new();
    for s in list {
        let Some(script) = script(s, &mut cx.notes) else {
            continue;
        };
        if out.iter().any(|o| o.name == script.name) {
            cx.notes.warning(
                s,
                format!(
                    "`vrrp_script {}` is defined twice; this one is not imported",
                    script.name
                ),
            );
            continue;
        }
        out.push(script);
    }
    out
}

fn name_of(s: &Stmt, n: &mut Notes) -> Option<String> {
    match s.args.as_slice() {
        [name] => Some(name.clone()),
        [] => {
            n.warning(s, format!("`{}` needs a name; not imported", s.keyword));
            None
        }
        [name, rest @ ..] => {
            n.warning(
                s,
                format!(
                    "`{} {name}`: extra word(s) `{}` ignored",
                    s.keyword,
                    rest.join(" ")
                ),
            );
            Some(name.clone())
        }
    }
}

fn script(s: &Stmt, n: &mut Notes) -> Option<VrrpScript> {
    let name = name_of(s, n)?;
    let block = values::block(s, n)?;
    let mut cmd = None;
    let mut out = VrrpScript {
        name: name.clone(),
        script: schema::Command::Argv(Vec::new()),
        interval: None,
        timeout: None,
        weight: None,
        rise: None,
        fall: None,
    };
    let mut reverse = None;
    for d in block {
        match d.keyword.as_str() {
            "script" => cmd = command(d, n, After::Nothing),
            "interval" => out.interval = values::interval(values::whole_seconds(d, n), d, n),
            "timeout" => out.timeout = values::whole_seconds(d, n),
            "weight" => {
                if let Some((w, rev)) = weight(d, n, &d.args) {
                    out.weight = Some(w);
                    if rev {
                        reverse = Some(d);
                    }
                }
            }
            "rise" => out.rise = values::u32_in(d, n, 1, u32::MAX),
            "fall" => out.fall = values::u32_in(d, n, 1, u32::MAX),
            "init_fail" => {
                values::flag(d, n);
                n.converted(
                    d,
                    "`init_fail`: lb always counts a script as failing until its first result"
                        .into(),
                );
            }
            "user" => n.not_imported(d, Some("lb runs scripts as its own user")),
            _ => n.not_imported(d, None),
        }
    }
    if let Some(d) = reverse {
        n.unsupported(
            d,
            format!(
                "`weight ... reverse`: reversed weights are not supported; vrrp_script `{name}` \
                 is not imported (and not tracked)"
            ),
        );
        return None;
    }
    let Some(cmd) = cmd else {
        n.warning(
            s,
            format!("`vrrp_script {name}` has no usable `script`; not imported"),
        );
        return None;
    };
    out.script = cmd;
    Some(out)
}

/// `N [reverse|no_reverse|noreverse]` (or `weight N ...` when `args` starts after `weight`).
fn weight(d: &Stmt, n: &mut Notes, args: &[String]) -> Option<(i32, bool)> {
    values::no_block(d, n);
    let (num, rest) = match args.split_first() {
        Some(x) => x,
        None => {
            n.warning(d, format!("`{}`: weight needs a value; ignored", d.text()));
            return None;
        }
    };
    let Some(w) = num.parse::<i32>().ok().filter(|w| (-253..=253).contains(w)) else {
        n.warning(
            d,
            format!(
                "`{}`: weight must be a number in -253..=253; ignored",
                d.text()
            ),
        );
        return None;
    };
    let mut reverse = false;
    for r in rest {
        match r.as_str() {
            "reverse" => reverse = true,
            "no_reverse" | "noreverse" => {}
            other => n.warning(d, format!("`{}`: `{other}` ignored", d.text())),
        }
    }
    Some((w, reverse))
}

// ---------------------------------------------------------------------------------------------
// vrrp_instance

/// `authentication { auth_type T auth_pass P }` as read.
struct RawAuth<'a> {
    at: &'a Stmt,
    ty: Option<String>,
    pass: Option<(String, &'a Stmt)>,
}

/// An instance as read, before keepalived's own corrections and lb's checks.
struct Raw<'a> {
    stmt: &'a Stmt,
    inst: VrrpInstance,
    interface: Option<String>,
    vrid: Option<u32>,
    priority: Option<u32>,
    version: Option<u8>,
    advert_int: Option<(Duration, &'a Stmt)>,
    nopreempt: Option<&'a Stmt>,
    preempt_delay: Option<(Dur, &'a Stmt)>,
    auth: Option<RawAuth<'a>>,
    /// Each VIP with the line it came from.
    vips: Vec<(IpAddr, VirtualIp, &'a Stmt)>,
    /// Tracked scripts with their lines, checked once all scripts are known.
    track_scripts: Vec<(TrackScript, &'a Stmt)>,
    /// Tracked files with their lines, likewise.
    track_files: Vec<(TrackScript, &'a Stmt)>,
}

pub fn instances(list: &[&Stmt], scripts: &[VrrpScript], cx: &mut Cx) -> Vec<VrrpInstance> {
    let mut out: Vec<VrrpInstance> = Vec::new();
    let mut vip_owner: HashMap<IpAddr, String> = HashMap::new();
    let mut vrids: HashMap<(String, u32, bool), String> = HashMap::new();
    for s in list {
        let Some(raw) = read_instance(s, &mut cx.notes) else {
            continue;
        };
        let Some(inst) = finish(raw, scripts, cx, &mut vip_owner) else {
            continue;
        };
        if out.iter().any(|o| o.name == inst.name) {
            cx.notes.warning(
                s,
                format!(
                    "`vrrp_instance {}` is defined twice; this one is not imported",
                    inst.name
                ),
            );
            continue;
        }
        // An IPv4 and an IPv6 instance may share a VRID (they are different routers).
        let v6 = inst.virtual_ipaddresses.first().is_some_and(|v| match v {
            VirtualIp::Short(t) => t.contains(':'),
            VirtualIp::Full(f) => f.address.contains(':'),
        });
        if let Some(other) = vrids.insert(
            (inst.interface.clone(), inst.virtual_router_id, v6),
            inst.name.clone(),
        ) {
            cx.notes.warning(
                s,
                format!(
                    "`vrrp_instance {}`: virtual_router_id {} on {} is also used by `{other}`; \
                     lb refuses that: change one of them",
                    inst.name, inst.virtual_router_id, inst.interface
                ),
            );
        }
        out.push(inst);
    }
    out
}

fn read_instance<'a>(s: &'a Stmt, n: &mut Notes) -> Option<Raw<'a>> {
    let name = name_of(s, n)?;
    let block = values::block(s, n)?;
    let mut r = Raw {
        stmt: s,
        inst: VrrpInstance {
            name,
            state: None,
            interface: String::new(),
            virtual_router_id: 0,
            priority: 0,
            version: None,
            advert_int: None,
            preempt: None,
            nopreempt: None,
            preempt_delay: None,
            virtual_ipaddresses: Vec::new(),
            authentication: None,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            allowed_peers: Vec::new(),
            mcast_group4: None,
            mcast_group6: None,
            v3_checksum: None,
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            track_files: Vec::new(),
            track_services: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            garp_master_repeat: None,
            garp_master_delay: None,
            garp_master_refresh: None,
        },
        interface: None,
        vrid: None,
        priority: None,
        version: None,
        advert_int: None,
        nopreempt: None,
        preempt_delay: None,
        auth: None,
        vips: Vec::new(),
        track_scripts: Vec::new(),
        track_files: Vec::new(),
    };
    for d in block {
        instance_stmt(d, &mut r, n);
    }
    Some(r)
}

fn instance_stmt<'a>(d: &'a Stmt, r: &mut Raw<'a>, n: &mut Notes) {
    let i = &mut r.inst;
    match d.keyword.as_str() {
        "state" => {
            if let Some(v) = values::value(d, n) {
                match v {
                    "MASTER" | "BACKUP" => i.state = Some(v.to_owned()),
                    _ => n.warning(
                        d,
                        format!("`state {v}`: expected MASTER or BACKUP; ignored"),
                    ),
                }
            }
        }
        "interface" => r.interface = values::value(d, n).map(str::to_owned),
        "virtual_router_id" => {
            r.vrid = values::u32_in(d, n, 1, u32::from(crate::vrrp::packet::MAX_VRID))
        }
        "priority" => {
            r.priority = values::u32_in(d, n, 1, u32::from(crate::vrrp::state::OWNER_PRIORITY))
        }
        "version" => r.version = values::u32_in(d, n, 2, 3).map(|v| v as u8),
        "advert_int" => r.advert_int = values::seconds(d, n).map(|v| (v.0, d)),
        "nopreempt" => {
            values::flag(d, n);
            r.nopreempt = Some(d);
        }
        "preempt" => values::flag(d, n),
        "preempt_delay" => {
            r.preempt_delay = values::seconds(d, n).and_then(|v| {
                if v.0 > Duration::from_secs(1000) {
                    n.warning(
                        d,
                        "`preempt_delay`: keepalived allows 0 to 1000 seconds; ignored".into(),
                    );
                    None
                } else {
                    Some((v, d))
                }
            })
        }
        "authentication" => {
            if let Some(b) = values::block(d, n) {
                let mut ty = None;
                let mut pass = None;
                for a in b {
                    match a.keyword.as_str() {
                        "auth_type" => ty = values::value(a, n).map(str::to_owned),
                        "auth_pass" => pass = values::value(a, n).map(|p| (p.to_owned(), a)),
                        _ => n.not_imported(a, None),
                    }
                }
                r.auth = Some(RawAuth { at: d, ty, pass });
            }
        }
        "unicast_src_ip" => i.unicast_src_ip = values::ip(d, n),
        "mcast_src_ip" => {
            i.unicast_src_ip = values::ip(d, n);
            if let Some(a) = i.unicast_src_ip {
                n.converted(
                    d,
                    format!(
                        "`mcast_src_ip {a}` -> `unicast_src_ip: {a}` (lb sends every advert, \
                         multicast or unicast, from unicast_src_ip)"
                    ),
                );
            }
        }
        "mcast_dst_ip" => match values::ip(d, n) {
            Some(IpAddr::V4(a)) if a.is_multicast() => {
                i.mcast_group4 = Some(a);
                n.converted(d, format!("`mcast_dst_ip {a}` -> `mcast_group4: {a}`"));
            }
            Some(IpAddr::V6(a)) if a.is_multicast() => {
                i.mcast_group6 = Some(a);
                n.converted(d, format!("`mcast_dst_ip {a}` -> `mcast_group6: {a}`"));
            }
            Some(a) => n.warning(
                d,
                format!("`mcast_dst_ip {a}`: not a multicast address; ignored"),
            ),
            None => {}
        },
        "native_ipv6" => n.converted(
            d,
            "`native_ipv6` dropped: lb takes an instance's family from its virtual addresses"
                .into(),
        ),
        "unicast_peer" => {
            if let Some(b) = values::block(d, n) {
                for p in b {
                    unicast_peer(p, &mut i.unicast_peers, n);
                }
            }
        }
        "virtual_ipaddress" => {
            if let Some(b) = values::block(d, n) {
                for v in b {
                    if let Some((a, vip)) = vip(v, n) {
                        r.vips.push((a, vip, v));
                    }
                }
            }
        }
        "virtual_ipaddress_excluded" => {
            if let Some(b) = values::block(d, n) {
                n.warning(
                    d,
                    "`virtual_ipaddress_excluded`: lb has no excluded addresses; these are \
                     imported as ordinary virtual_ipaddresses, so they now appear in adverts \
                     (a keepalived peer may log a mismatch)"
                        .into(),
                );
                for v in b {
                    if let Some((a, vip)) = vip(v, n) {
                        r.vips.push((a, vip, v));
                    }
                }
            }
        }
        "track_script" => {
            if let Some(b) = values::block(d, n) {
                for t in b {
                    if let Some(ts) = track_script(t, n) {
                        r.track_scripts.push((ts, t));
                    }
                }
            }
        }
        "track_file" => {
            if let Some(b) = values::block(d, n) {
                for t in b {
                    if let Some(ts) = track_script(t, n) {
                        r.track_files.push((ts, t));
                    }
                }
            }
        }
        "track_interface" => {
            if let Some(b) = values::block(d, n) {
                for t in b {
                    if let Some(ti) = track_interface(t, n) {
                        i.track_interfaces.push(ti);
                    }
                }
            }
        }
        "notify_master" => i.notify_master = command(d, n, After::UserGroup),
        "notify_backup" => i.notify_backup = command(d, n, After::UserGroup),
        "notify_fault" => i.notify_fault = command(d, n, After::UserGroup),
        "notify_stop" => i.notify_stop = command(d, n, After::UserGroup),
        "notify" => i.notify = command(d, n, After::UserGroup),
        "garp_master_delay" => i.garp_master_delay = values::whole_seconds(d, n),
        "garp_master_repeat" => i.garp_master_repeat = values::u32_in(d, n, 0, 100),
        "garp_master_refresh" => i.garp_master_refresh = values::whole_seconds(d, n),
        kw => n.not_imported(d, instance_unsupported(kw)),
    }
}

fn instance_unsupported(kw: &str) -> Option<&'static str> {
    Some(match kw {
        "use_vmac" | "vmac_xmit_base" | "use_vmac_addr" | "use_ipvlan" => {
            "virtual MAC / ipvlan interfaces are not supported (lb sends gratuitous ARPs for the \
             VIPs on the real interface)"
        }
        "dont_track_primary" => "lb always tracks the instance's interface",
        "track_process" | "track_bfd" => {
            "not supported: use a vrrp_script that checks the same thing"
        }
        "strict_mode"
        | "accept"
        | "no_accept"
        | "skip_check_adv_addr"
        | "check_unicast_src"
        | "track_src_ip"
        | "unicast_fault_no_peer"
        | "lower_prio_no_advert"
        | "higher_prio_send_advert"
        | "down_timer_adverts"
        | "unicast_ttl"
        | "old_unicast_checksum"
        | "kernel_rx_buf_size"
        | "linkbeat_use_polling"
        | "garp_lower_prio_delay"
        | "garp_lower_prio_repeat"
        | "garp_master_refresh_repeat"
        | "garp_extra_if"
        | "vrf"
        | "promote_secondaries" => "no equivalent in lb",
        "virtual_routes" | "virtual_rules" => {
            "lb does not manage routes or rules: use notify scripts"
        }
        "notify_master_rx_lower_pri" | "notify_priority_changes" => "not supported",
        "smtp_alert" => "lb sends no e-mail: use notify scripts",
        "lvs_sync_daemon_interface" => "lb has no IPVS connection sync",
        "debug" => "use lb-agent's log level",
        _ => return None,
    })
}

fn unicast_peer(p: &Stmt, peers: &mut Vec<IpAddr>, n: &mut Notes) {
    values::no_block(p, n);
    match p.keyword.parse::<IpAddr>() {
        Ok(a) => {
            if peers.contains(&a) {
                n.warning(p, format!("unicast peer {a} is listed twice"));
            } else {
                peers.push(a);
            }
            if !p.args.is_empty() {
                n.unsupported(
                    p,
                    format!(
                        "unicast peer {a}: `{}` (TTL checks) is not supported; peer imported \
                         without it",
                        p.args.join(" ")
                    ),
                );
            }
        }
        Err(_) => n.warning(
            p,
            format!("unicast peer `{}`: not an IP address; ignored", p.keyword),
        ),
    }
}

/// One `virtual_ipaddress` line: `ADDR[/LEN] [dev IF] [label L] [...]`.
fn vip(v: &Stmt, n: &mut Notes) -> Option<(IpAddr, VirtualIp)> {
    values::no_block(v, n);
    let text = v.keyword.as_str();
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            n.warning(
                v,
                format!("virtual IP `{text}`: not an IP address; ignored"),
            );
            return None;
        }
    };
    let max = if addr.is_ipv6() { 128 } else { 32 };
    if len.is_some_and(|l| l.parse::<u8>().ok().filter(|l| *l <= max).is_none()) {
        n.warning(
            v,
            format!("virtual IP `{text}`: bad prefix length; ignored"),
        );
        return None;
    }
    let broadcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() || broadcast {
        n.warning(
            v,
            format!("virtual IP `{text}`: not a usable unicast address; ignored"),
        );
        return None;
    }
    let (mut dev, mut label) = (None, None);
    let mut ignored: Vec<String> = Vec::new();
    let mut it = v.args.iter();
    while let Some(opt) = it.next() {
        match opt.as_str() {
            "dev" | "label" => match it.next() {
                Some(val) if opt == "dev" => dev = Some(val.clone()),
                Some(val) => {
                    if val.len() > 15 {
                        n.warning(
                            v,
                            format!(
                                "virtual IP `{text}`: label `{val}` is longer than 15 \
                                 characters (the kernel's limit); label dropped"
                            ),
                        );
                    } else {
                        label = Some(val.clone());
                    }
                }
                None => n.warning(v, format!("virtual IP `{text}`: `{opt}` needs a value")),
            },
            "brd" | "scope" | "peer" | "preferred_lft" | "track_group" => {
                let val = it.next().map(String::as_str).unwrap_or("");
                ignored.push(format!("{opt} {val}").trim_end().to_owned());
            }
            _ => ignored.push(opt.clone()),
        }
    }
    if !ignored.is_empty() {
        n.unsupported(
            v,
            format!(
                "virtual IP `{text}`: `{}` not supported; address imported without it",
                ignored.join(" ")
            ),
        );
    }
    let vip = if dev.is_none() && label.is_none() {
        VirtualIp::Short(text.to_owned())
    } else {
        VirtualIp::Full(VirtualIpFull {
            address: text.to_owned(),
            dev,
            label,
        })
    };
    Some((addr, vip))
}

/// `NAME [weight N [reverse|no_reverse]]`.
fn track_script(t: &Stmt, n: &mut Notes) -> Option<TrackScript> {
    values::no_block(t, n);
    match t.args.split_first() {
        None => Some(TrackScript::Name(t.keyword.clone())),
        Some((w, rest)) if w == "weight" => {
            let (weight, reverse) = weight(t, n, rest)?;
            if reverse {
                n.unsupported(
                    t,
                    format!(
                        "track_script `{}`: reversed weights are not supported; not tracked",
                        t.keyword
                    ),
                );
                return None;
            }
            Some(TrackScript::Weighted {
                name: t.keyword.clone(),
                weight,
            })
        }
        Some(_) => {
            n.warning(
                t,
                format!(
                    "track_script `{}`: unexpected `{}`; not tracked",
                    t.keyword,
                    t.args.join(" ")
                ),
            );
            None
        }
    }
}

/// `IFNAME [weight N [reverse|noreverse]]`.
fn track_interface(t: &Stmt, n: &mut Notes) -> Option<TrackInterface> {
    values::no_block(t, n);
    match t.args.split_first() {
        None => Some(TrackInterface::Name(t.keyword.clone())),
        Some((w, rest)) if w == "weight" => {
            let (weight, reverse) = weight(t, n, rest)?;
            if reverse {
                n.unsupported(
                    t,
                    format!(
                        "track_interface `{}`: reversed weights are not supported; not tracked",
                        t.keyword
                    ),
                );
                return None;
            }
            Some(TrackInterface::Weighted {
                name: t.keyword.clone(),
                weight,
            })
        }
        Some(_) => {
            n.warning(
                t,
                format!(
                    "track_interface `{}`: unexpected `{}`; not tracked",
                    t.keyword,
                    t.args.join(" ")
                ),
            );
            None
        }
    }
}

/// keepalived's own corrections, then what lb needs; `None` when the instance cannot be
/// imported.
fn finish(
    mut r: Raw<'_>,
    scripts: &[VrrpScript],
    cx: &mut Cx,
    vip_owner: &mut HashMap<IpAddr, String>,
) -> Option<VrrpInstance> {
    let n = &mut cx.notes;
    let s = r.stmt;
    let name = r.inst.name.clone();
    let Some(vrid) = r.vrid else {
        n.warning(
            s,
            format!(
                "`vrrp_instance {name}` has no usable virtual_router_id (keepalived refuses it \
                 too); not imported"
            ),
        );
        return None;
    };
    r.inst.virtual_router_id = vrid;
    r.inst.priority = r.priority.unwrap_or(DEFAULT_PRIORITY);
    // keepalived runs an IPv6 instance as version 3 whatever its default.
    let v6 = r.vips.first().is_some_and(|(a, _, _)| a.is_ipv6());
    let version = match r.version {
        Some(2) if v6 => {
            n.converted(
                s,
                format!(
                    "`vrrp_instance {name}`: `version 2` with IPv6 addresses -> version 3 \
                     (VRRP v2 has no IPv6 form; keepalived does the same)"
                ),
            );
            3
        }
        Some(v) => v,
        None if v6 => 3,
        None => cx.default_version,
    };
    r.inst.version = Some(version);
    r.inst.interface = match (r.interface.take(), &cx.default_interface) {
        (Some(i), _) => i,
        (None, Some(d)) => d.clone(),
        (None, None) => {
            n.warning(
                s,
                format!(
                    "`vrrp_instance {name}` names no interface: imported with `interface: \
                     eth0` (keepalived's default); check it"
                ),
            );
            "eth0".into()
        }
    };

    if let Some((d, at)) = r.advert_int {
        let fixed = advert_int(d, version);
        if fixed != d {
            n.warning(
                at,
                format!(
                    "`advert_int`: {}; imported as {}",
                    crate::vrrp::timers::interval_rule(if version == 2 {
                        crate::vrrp::packet::Version::V2
                    } else {
                        crate::vrrp::packet::Version::V3
                    }),
                    Dur(fixed)
                ),
            );
        }
        r.inst.advert_int = Some(Dur(fixed));
    }

    // keepalived: nopreempt and preempt_delay need initial state BACKUP, nopreempt does not
    // apply to the address owner, and preempt_delay means nothing with nopreempt.
    let master = r.inst.state.as_deref() == Some("MASTER");
    if let Some(at) = r.nopreempt {
        if master {
            n.warning(
                at,
                "`nopreempt` with `state MASTER`: keepalived clears nopreempt (\"nopreempt will \
                 not work with initial state MASTER\"); not imported: use state BACKUP"
                    .into(),
            );
        } else if r.inst.priority == u32::from(crate::vrrp::state::OWNER_PRIORITY) {
            n.warning(
                at,
                "`nopreempt` with priority 255: keepalived clears nopreempt for the address \
                 owner; not imported"
                    .into(),
            );
        } else {
            r.inst.nopreempt = Some(true);
        }
    }
    if let Some((d, at)) = r.preempt_delay {
        if master {
            n.warning(
                at,
                "`preempt_delay` with `state MASTER`: keepalived clears it; not imported".into(),
            );
        } else if r.inst.nopreempt == Some(true) {
            n.warning(
                at,
                "`preempt_delay` with `nopreempt`: keepalived resets it to 0 (there is no \
                 preemption to delay); not imported"
                    .into(),
            );
        } else {
            r.inst.preempt_delay = Some(d);
        }
    }

    if let Some(a) = r.auth {
        r.inst.authentication = authentication(a, version, n);
    }

    for (ts, at) in r.track_scripts {
        let script_name = match &ts {
            TrackScript::Name(x) | TrackScript::Weighted { name: x, .. } => x,
        };
        if scripts.iter().any(|sc| &sc.name == script_name) {
            r.inst.track_scripts.push(ts);
        } else {
            n.warning(
                at,
                format!(
                    "track_script `{script_name}`: no such vrrp_script was imported; not tracked"
                ),
            );
        }
    }

    for (tf, at) in r.track_files {
        let file_name = match &tf {
            TrackScript::Name(x) | TrackScript::Weighted { name: x, .. } => x,
        };
        if cx.track_files.iter().any(|f| &f.name == file_name) {
            r.inst.track_files.push(tf);
        } else {
            n.warning(
                at,
                format!("track_file `{file_name}`: no such track_file was imported; not tracked"),
            );
        }
    }

    let mut seen = HashSet::new();
    for (addr, vip, at) in r.vips {
        if addr.is_ipv6() != v6 {
            n.unsupported(
                at,
                format!(
                    "virtual IP {addr} is not of `{name}`'s family (its first address's): \
                     keepalived adds it without advertising it; lb keeps one family per \
                     instance: declare a vrrp_instance of its own for it (version 3; on every \
                     node, or the nodes will disagree); not imported"
                ),
            );
            continue;
        }
        if !seen.insert(addr) {
            n.warning(at, format!("virtual IP {addr} is listed twice in `{name}`"));
            continue;
        }
        if let Some(other) = vip_owner.get(&addr) {
            n.warning(
                at,
                format!(
                    "virtual IP {addr} is already a VIP of instance `{other}`; lb requires each \
                     VIP in one instance: not imported here"
                ),
            );
            continue;
        }
        r.inst.virtual_ipaddresses.push(vip);
    }
    if r.inst.virtual_ipaddresses.is_empty() {
        n.unsupported(
            s,
            format!(
                "`vrrp_instance {name}` has no (usable) virtual IP: lb needs at least one per \
                 instance; not imported"
            ),
        );
        return None;
    }
    for v in &r.inst.virtual_ipaddresses {
        let text = match v {
            VirtualIp::Short(t) => t,
            VirtualIp::Full(f) => &f.address,
        };
        if let Some(a) = text.split('/').next().and_then(|a| a.parse().ok()) {
            vip_owner.insert(a, name.clone());
        }
    }
    Some(r.inst)
}

/// The nearest interval the wire can carry (the rule is the protocol core's).
fn advert_int(d: Duration, version: u8) -> Duration {
    let v = if version == 2 {
        crate::vrrp::packet::Version::V2
    } else {
        crate::vrrp::packet::Version::V3
    };
    crate::vrrp::timers::nearest_interval(v, d)
}

fn authentication(a: RawAuth<'_>, version: u8, n: &mut Notes) -> Option<Authentication> {
    let RawAuth { at, ty, pass } = a;
    match ty.as_deref() {
        Some("PASS") => {}
        Some("AH") => {
            n.unsupported(
                at,
                "`auth_type AH`: IPsec AH authentication is not supported (RFC 3768 removed it); \
                 not imported"
                    .into(),
            );
            return None;
        }
        other => {
            n.warning(
                at,
                format!(
                    "`authentication`: auth_type {} is not PASS; not imported",
                    other.unwrap_or("missing")
                ),
            );
            return None;
        }
    }
    if version != 2 {
        n.warning(
            at,
            "`authentication` with VRRPv3: keepalived ignores it (RFC 5798 has none); not \
             imported"
                .into(),
        );
        return None;
    }
    let Some((mut pass, pat)) = pass else {
        n.warning(at, "`authentication` has no auth_pass; not imported".into());
        return None;
    };
    if pass.len() > 8 {
        let mut cut = 8;
        while !pass.is_char_boundary(cut) {
            cut -= 1;
        }
        let full = pass.clone();
        pass.truncate(cut);
        n.warning(
            pat,
            format!(
                "`auth_pass {full}`: keepalived uses only the first 8 bytes; imported as \
                 `{pass}`, which is what peers see"
            ),
        );
    }
    if pass.is_empty() {
        n.warning(
            pat,
            "`auth_pass` is empty; authentication not imported".into(),
        );
        return None;
    }
    Some(Authentication {
        auth_type: "PASS".into(),
        auth_pass: pass,
    })
}

// ---------------------------------------------------------------------------------------------
// vrrp_sync_group

pub fn sync_groups(list: &[&Stmt], instances: &[VrrpInstance], cx: &mut Cx) -> Vec<SyncGroup> {
    let n = &mut cx.notes;
    let mut out = Vec::new();
    let mut member_of: HashMap<String, String> = HashMap::new();
    for s in list {
        let Some(name) = name_of(s, n) else { continue };
        let Some(block) = values::block(s, n) else {
            continue;
        };
        let mut g = SyncGroup {
            name: name.clone(),
            group: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify: None,
        };
        for d in block {
            match d.keyword.as_str() {
                "group" => {
                    let Some(members) = values::block(d, n) else {
                        continue;
                    };
                    for m in members {
                        values::no_block(m, n);
                        for member in std::iter::once(&m.keyword).chain(&m.args) {
                            if !instances.iter().any(|i| &i.name == member) {
                                n.warning(
                                    m,
                                    format!(
                                        "sync group `{name}`: `{member}` is not an imported \
                                         vrrp_instance; left out"
                                    ),
                                );
                            } else if let Some(other) = member_of.get(member) {
                                n.warning(
                                    m,
                                    format!(
                                        "sync group `{name}`: `{member}` is already in sync \
                                         group `{other}`; left out"
                                    ),
                                );
                            } else {
                                member_of.insert(member.clone(), name.clone());
                                g.group.push(member.clone());
                            }
                        }
                    }
                }
                "notify_master" => g.notify_master = command(d, n, After::UserGroup),
                "notify_backup" => g.notify_backup = command(d, n, After::UserGroup),
                "notify_fault" => g.notify_fault = command(d, n, After::UserGroup),
                "notify" => g.notify = command(d, n, After::UserGroup),
                "notify_stop" => n.not_imported(
                    d,
                    Some("sync groups have no stop hook in lb: use the instances' notify_stop"),
                ),
                "track_script" | "track_interface" | "track_file" | "track_process"
                | "track_bfd" => n.not_imported(
                    d,
                    Some("sync groups track nothing in lb: track in each instance instead"),
                ),
                "global_tracking" | "sync_group_tracking_weight" => {
                    n.not_imported(d, Some("no equivalent in lb"))
                }
                "smtp_alert" => n.not_imported(d, Some("lb sends no e-mail: use notify scripts")),
                _ => n.not_imported(d, None),
            }
        }
        if g.group.is_empty() {
            n.warning(
                s,
                format!("sync group `{name}` has no usable member; not imported"),
            );
            continue;
        }
        if g.group.len() == 1 {
            n.warning(
                s,
                format!(
                    "sync group `{name}` has only one member (keepalived warns: \"this probably \
                     isn't what you want\"); imported as it is"
                ),
            );
        }
        out.push(g);
    }
    out
}
