//! `lb-agent status` for people: like `ipvsadm -Ln --stats` plus VRRP.

use std::fmt::Write as _;

use super::Snapshot;

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "lb-agent {} (config {}), up {:.0}s; XDP on: {}",
        s.router_id,
        s.config,
        s.uptime_s,
        if s.xdp.iter().all(|x| !x.attached) {
            "none".into()
        } else {
            s.xdp
                .iter()
                .filter(|x| x.attached)
                .map(|x| format!("{} ({})", x.interface, x.mode))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if !s.instances.is_empty() {
        let _ = writeln!(o, "\nVRRP");
        let _ = writeln!(
            o,
            "  {:<12} {:<8} {:>4} {:>2} {:<9} {:>9} {:<22} {:>6} {:>6} {:>8} {:>8}",
            "Instance",
            "Iface",
            "VRID",
            "v",
            "State",
            "Prio",
            "Master",
            "Split",
            "Trans",
            "AdvRx",
            "AdvTx"
        );
        for i in &s.instances {
            let master = match (&i.master, i.master_priority) {
                (Some(m), Some(p)) => format!("{m} ({p})"),
                (Some(m), None) => m.clone(),
                _ => "-".into(),
            };
            let _ = writeln!(
                o,
                "  {:<12} {:<8} {:>4} {:>2} {:<9} {:>9} {:<22} {:>6} {:>6} {:>8} {:>8}",
                i.name,
                i.interface,
                i.vrid,
                i.version,
                i.state.to_uppercase(),
                format!("{}/{}", i.priority, i.base_priority),
                master,
                i.split_brains,
                i.transitions,
                i.adverts_rx,
                i.adverts_tx
            );
            let drops: Vec<String> = i
                .dropped
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            if !drops.is_empty() {
                let _ = writeln!(o, "    dropped adverts: {}", drops.join(" "));
            }
        }
    }
    if let Some(b) = &s.bgp {
        let _ = writeln!(o, "\nBGP (announced through BIRD: {})", b.routes_file);
        for v in &b.vips {
            let state = if v.announced {
                "ANNOUNCED"
            } else {
                "WITHDRAWN"
            };
            let _ = writeln!(o, "  {:<40} {:<10} {}", v.vip, state, v.why);
        }
        match (&b.bird_error, &b.bird_applied) {
            (Some(e), _) => {
                let _ = writeln!(
                    o,
                    "  BIRD: configure failing ({} failures): {e}",
                    b.bird_failures
                );
            }
            (None, None) => {
                let _ = writeln!(o, "  BIRD: not configured yet");
            }
            (None, Some(a)) => {
                let _ = writeln!(o, "  BIRD: accepted {} route(s)", a.len());
            }
        }
    }
    if let Some(f) = &s.flow_sync {
        flow_sync(&mut o, f);
    }
    if !s.vrrp_invalid.is_empty() {
        let bad: Vec<String> = s
            .vrrp_invalid
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(o, "  invalid VRRP packets: {}", bad.join(" "));
    }
    let _ = writeln!(o, "\nVirtual services");
    let _ = writeln!(
        o,
        "  {:<26} {:<11} {:<8} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "Prot LocalAddress:Port",
        "Scheduler",
        "State",
        "Flows",
        "Pkts",
        "Bytes",
        "Pkts/s",
        "Bytes/s"
    );
    let _ = writeln!(
        o,
        "    {:<24} {:>6} {:<12} {:<26} {:>8} {:>10} {:>10} {:>9}",
        "-> RemoteAddress:Port",
        "Weight",
        "Health",
        "Last check",
        "Flows",
        "Pkts",
        "Bytes",
        "Active"
    );
    for v in &s.services {
        let state = if !v.active {
            "standby"
        } else if !v.quorum_up {
            "no-quorum"
        } else {
            "active"
        };
        let _ = writeln!(
            o,
            "  {:<26} {:<11} {:<8} {:>8} {:>10} {:>10} {:>9} {:>9}",
            v.service,
            v.scheduler,
            state,
            v.flows,
            v.packets,
            human_bytes(v.bytes as f64),
            format!("{:.0}", v.pps),
            human_bytes(v.bps)
        );
        for r in &v.reals {
            let mut last = r.last_check.clone();
            if let Some(ms) = r.check_latency_ms {
                let _ = write!(last, " {ms:.1}ms");
            }
            if last.len() > 26 {
                last.truncate(25);
                last.push('~');
            }
            let _ = writeln!(
                o,
                "    -> {:<21} {:>6} {:<12} {:<26} {:>8} {:>10} {:>10} {:>9}",
                format!("{}{}", r.real, if r.sorry { " (sorry)" } else { "" }),
                format!("{}/{}", r.effective_weight, r.weight),
                match r.arp.split_whitespace().next() {
                    Some("silent" | "unknown") if !r.sorry => format!("{} no-mac", r.health),
                    Some("kept") => format!("{} mac-kept", r.health),
                    _ => r.health.clone(),
                },
                last,
                r.flows,
                r.packets,
                human_bytes(r.bytes as f64),
                r.active_flows.map_or("-".to_owned(), |n| n.to_string())
            );
            if let Some(w) = r.override_weight {
                let what = if w == 0 {
                    "drained".to_owned()
                } else {
                    format!("weight {w}")
                };
                let _ = writeln!(
                    o,
                    "       override: {what} by the operator {} ago (lb-agent real enable ends it)",
                    age(r.override_age_s.unwrap_or(0))
                );
            }
        }
    }
    let nonzero = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(o, "\nData path: {}", nonzero(&s.verdicts));
    let _ = writeln!(o, "Data path info: {}", nonzero(&s.info));
    for t in &s.conntrack {
        let _ = writeln!(
            o,
            "Connection table {}: {} of {} entries ({:.1}%, counted {} ago)",
            t.family,
            t.entries,
            t.capacity,
            100.0 * t.entries as f64 / t.capacity.max(1) as f64,
            age(crate::agent::unix_now().saturating_sub(t.counted_unix))
        );
    }
    if let Some(r) = &s.last_reload {
        let _ = writeln!(
            o,
            "Last reload: {} {} ago: {}",
            if r.ok { "applied" } else { "REJECTED" },
            age(crate::agent::unix_now().saturating_sub(r.at_unix)),
            r.message
        );
    }
    o
}

/// The time of day in UTC, `HH:MM:SS UTC`.
pub fn clock() -> String {
    let s = crate::agent::unix_now();
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// `95s` -> `1m35s`.
fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `lb-agent conns`, like `ipvsadm -Lnc`.
pub fn conns(l: &crate::dataplane::conns::Listing) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<5} {:<42} {:<42} {:<42}",
        "Pro", "Client", "Virtual", "Real"
    );
    for c in &l.conns {
        let _ = writeln!(
            o,
            "{:<5} {:<42} {:<42} {}{}",
            c.proto,
            c.client,
            c.vip,
            c.real,
            if c.current { "" } else { " (stale)" }
        );
    }
    let listed = l.conns.len() as u64;
    if listed < l.matched {
        let _ = writeln!(o, "... {} more match (raise --limit)", l.matched - listed);
    }
    let _ = writeln!(
        o,
        "\n{} of {} entries match; the whole table was read ({} stale).",
        l.matched, l.scanned, l.stale
    );
    let _ = writeln!(o, "Entries per real (whole table):");
    for (real, n) in &l.per_real {
        let _ = writeln!(o, "  {real:<44} {n}");
    }
    o
}

/// `lb-agent explain`, for people.
pub fn explain(e: &crate::dataplane::explain::Explanation) -> String {
    let mut o = String::new();
    let real = |r: &crate::dataplane::explain::RealRef| {
        format!("{}{}", r.real, if r.usable { "" } else { " (not usable)" })
    };
    let _ = writeln!(
        o,
        "service:   {}",
        e.service.as_deref().unwrap_or("none active here")
    );
    let _ = writeln!(
        o,
        "entry:     {}",
        e.entry.as_ref().map_or("none".to_owned(), real)
    );
    let new = e.new_flow_real.as_ref().map_or("none".to_owned(), real);
    match e.slot {
        Some((slot, size)) => {
            let _ = writeln!(o, "new flow:  {new} (Maglev slot {slot} of {size})");
        }
        None => {
            let _ = writeln!(o, "new flow:  {new}");
        }
    }
    let _ = writeln!(o, "decision:  {}", e.decision);
    o
}

fn flow_sync(o: &mut String, f: &super::snapshot::FlowSyncSnap) {
    let b = &f.bulk;
    let _ = writeln!(
        o,
        "\nFlow sync (port {}, {})",
        f.port,
        if f.authenticated {
            "HMAC-SHA256"
        } else {
            "not authenticated"
        }
    );
    let took = b
        .took_ms
        .map(|t| format!(" in {t:.0} ms"))
        .unwrap_or_default();
    let from = b
        .peer
        .as_deref()
        .map(|p| format!(" from {p}"))
        .unwrap_or_default();
    let holding = if b.holding {
        " (preemption/announcement waits for it)"
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "  bulk sync: {}{from}, {} records, {} applied{took}{holding}",
        b.state, b.records, b.applied
    );
    for p in &f.peers {
        let heard = p
            .last_heard_s
            .map_or_else(|| "never heard".into(), |s| format!("heard {s:.1}s ago"));
        let _ = writeln!(
            o,
            "  peer {:<40} {heard}, {} records received",
            p.addr, p.records_received
        );
    }
    let lag = match (f.lag_p50_ms, f.lag_p99_ms, f.lag_max_ms) {
        (Some(a), Some(b), Some(c)) => format!("{a:.1} / {b:.1} / {c:.1} ms"),
        _ => "-".into(),
    };
    let _ = writeln!(
        o,
        "  sent: {} records in {} datagrams ({} bytes), {} refreshed, {} send errors",
        f.records_sent, f.datagrams_sent, f.bytes_sent, f.refreshed, f.send_errors
    );
    let _ = writeln!(
        o,
        "  received: {} records, {} applied; lag p50 / p99 / max {lag} ({} samples)",
        f.records_received, f.records_applied, f.lag_samples
    );
    if !f.dropped.is_empty() || f.publish_failed > 0 {
        let mut d: Vec<String> = f.dropped.iter().map(|(k, n)| format!("{k}={n}")).collect();
        if f.publish_failed > 0 {
            d.push(format!("publish_failed={}", f.publish_failed));
        }
        let _ = writeln!(o, "  dropped: {}", d.join(" "));
    }
}
