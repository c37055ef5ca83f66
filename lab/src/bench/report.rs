//! The bench report: report.md (the tables README shows), report.json (every figure, with
//! the rounds and phases behind it) and SVG charts. Labels (CPU, kernel, tool versions) are
//! read from the machine and the tools, never written in.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path, process::Command};

use anyhow::Result;

use super::{
    charts, control::ControlReport, e2e::WayResult, failover::Row, scale_out::ScaleOutReport,
    xdp::Case, xdp::Live, Stat,
};

#[derive(Default, serde::Serialize)]
pub struct Report {
    pub machine: String,
    /// Tool name -> the version it printed (or why it could not be read).
    pub tools: BTreeMap<String, String>,
    pub date: String,
    pub mode: String,
    pub seconds: f64,
    pub xdp: Vec<Case>,
    pub xdp_live: Option<Live>,
    pub e2e: Vec<WayResult>,
    pub failover: Vec<Row>,
    pub control: Option<ControlReport>,
    pub scale_out: Option<ScaleOutReport>,
    pub flow_sync: Option<super::flow_sync::FlowSyncReport>,
    /// Parts that failed: a figure that could not be taken is reported here, not filled in.
    pub errors: Vec<String>,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().find(|l| !l.trim().is_empty()).map_or_else(
                || format!("({cmd} printed nothing)"),
                |l| l.trim().to_owned(),
            )
        }
        Err(e) => format!("({cmd}: {e})"),
    }
}

/// CPU model, cores and kernel release, as the machine reports them.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "(no model name in /proc/cpuinfo)".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpu}, {cores} cores, kernel {}",
        first_line("uname", &["-r"])
    )
}

/// The versions of the peers and tools the bench runs, as they print them.
pub fn tools() -> BTreeMap<String, String> {
    [
        ("keepalived", "keepalived", &["--version"][..]),
        ("nginx", "nginx", &["-v"][..]),
        ("haproxy", "haproxy", &["-v"][..]),
        ("nftables", "nft", &["--version"][..]),
        ("wrk", "wrk", &["-v"][..]),
    ]
    .into_iter()
    .map(|(name, cmd, args)| (name.to_owned(), first_line(cmd, args)))
    .collect()
}

fn st(s: &Stat, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {} — {} ({} run, {:.1} minutes)\n",
        r.machine,
        r.date,
        r.mode,
        r.seconds / 60.0
    );
    let tools: Vec<String> = r.tools.values().cloned().collect();
    let _ = writeln!(s, "Tools: {}\n", tools.join("; "));
    let _ = writeln!(
        s,
        "Every comparison alternates its contenders in rounds within this one run; figures are \
         the median and (min–max) over the rounds.\n"
    );
    if !r.xdp.is_empty() {
        let _ = writeln!(s, "#### Data path: ns per packet (BPF_PROG_TEST_RUN, 64-byte frames), beside a MAC-swap XDP_TX floor taken the same way in the same rounds\n");
        let _ = writeln!(
            s,
            "| case | services | reals | how | rounds | ns/pkt | floor ns | ratio to floor |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
        for c in &r.xdp {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.2}x ({:.2}–{:.2}) |",
                c.name,
                c.services,
                c.reals,
                c.method,
                c.rounds,
                st(&c.ns, 1),
                c.floor_ns.median,
                c.ratio.median,
                c.ratio.min,
                c.ratio.max
            );
        }
    }
    let vs_ipv4: Vec<&Case> = r.xdp.iter().filter(|c| c.vs_ipv4.is_some()).collect();
    if !vs_ipv4.is_empty() {
        let _ = writeln!(
            s,
            "\n#### Data path: IPv6 against IPv4, per round (the same rounds)\n"
        );
        let _ = writeln!(s, "| case | rounds | IPv6 ns / IPv4 ns |");
        let _ = writeln!(s, "| --- | ---: | ---: |");
        for c in vs_ipv4 {
            if let Some(v) = &c.vs_ipv4 {
                let _ = writeln!(s, "| {} | {} | {} |", c.name, c.rounds, st(v, 2));
            }
        }
    }
    let vs_base: Vec<&Case> = r.xdp.iter().filter(|c| c.vs_base_ns.is_some()).collect();
    if !vs_base.is_empty() {
        let _ = writeln!(s, "\n#### Data path: what the edge handling (ICMP errors to reals, fragment steering) costs: lb_xdp minus lb_xdp_base, the same program built without it, per round\n");
        let _ = writeln!(s, "| case | rounds | ns/pkt lb_xdp - lb_xdp_base |");
        let _ = writeln!(s, "| --- | ---: | ---: |");
        for c in vs_base {
            if let Some(d) = &c.vs_base_ns {
                let _ = writeln!(s, "| {} | {} | {} |", c.name, c.rounds, st(d, 2));
            }
        }
    }
    let vs_nosync: Vec<&Case> = r.xdp.iter().filter(|c| c.vs_nosync.is_some()).collect();
    if !vs_nosync.is_empty() {
        let _ = writeln!(s, "\n#### Data path: what publishing new flows for the flow sync costs, per round (the same rounds)\n");
        let _ = writeln!(s, "| case | rounds | ns/pkt flow_sync on / off |");
        let _ = writeln!(s, "| --- | ---: | ---: |");
        for c in vs_nosync {
            if let Some(v) = &c.vs_nosync {
                let _ = writeln!(s, "| {} | {} | {} |", c.name, c.rounds, st(v, 2));
            }
        }
    }
    if let Some(l) = &r.xdp_live {
        let _ = writeln!(s, "\n#### Data path: forwarded packets per second on one core (live frames injected into a veth, counted where they arrive)\n");
        let _ = writeln!(
            s,
            "| program | rounds | Mpps | frames injected / counted at the far end |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
        let mpps = |x: &Stat| Stat {
            median: x.median / 1e6,
            min: x.min / 1e6,
            max: x.max / 1e6,
        };
        let _ = writeln!(
            s,
            "| lb_xdp (established flow, MAC rewrite, XDP_TX) | {} | {} | {} / {} |",
            l.rounds,
            st(&mpps(&l.pps), 2),
            l.injected,
            l.received
        );
        let _ = writeln!(
            s,
            "| MAC-swap floor | {} | {} | {} / {} |",
            l.rounds,
            st(&mpps(&l.floor_pps), 2),
            l.injected,
            l.floor_received
        );
        let _ = writeln!(
            s,
            "| ratio lb_xdp / floor | | {:.2} ({:.2}–{:.2}) | |",
            l.ratio.median, l.ratio.min, l.ratio.max
        );
    }
    if !r.e2e.is_empty() {
        let _ = writeln!(s, "\n#### End to end in the namespace lab (same client, 3 nginx reals, same VIP; wrk with one thread per core; the same port range and TIME_WAIT reuse for every way)\n");
        let _ = writeln!(s, "| way | rounds | keep-alive req/s | p50 / p99 ms | new conn req/s | p50 / p99 ms | errors | CPU s per M req, keep-alive: user / system / softirq | new conn: user / system / softirq | UDP flood delivered pkt/s (sent) |");
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for w in &r.e2e {
            let udp = match (&w.udp_pps, &w.udp_sent_pps) {
                (Some(g), Some(t)) => format!("{} ({:.0})", st(g, 0), t.median),
                _ => "n/a (no UDP)".into(),
            };
            let (k, n) = (&w.keepalive, &w.new_conn);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} / {:.2} | {} | {:.2} / {:.2} | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {} |",
                w.name,
                w.rounds,
                st(&k.requests_per_s, 0),
                k.p50_ms.median,
                k.p99_ms.median,
                st(&n.requests_per_s, 0),
                n.p50_ms.median,
                n.p99_ms.median,
                k.errors + n.errors,
                k.cpu_user.median,
                k.cpu_system.median,
                k.cpu_softirq.median,
                n.cpu_user.median,
                n.cpu_system.median,
                n.cpu_softirq.median,
                udp
            );
        }
    }
    if !r.failover.is_empty() {
        let _ = writeln!(s, "\n#### Failover (two nodes, priorities 150 and 100, three reals; the fault lands at a random phase of the advert interval)\n");
        let _ = writeln!(s, "Times are from the fault to frames the new master sent, timestamped by the kernel on its switch port (microseconds). Takeover: its first advert. First reply: its first answer to the client's pings (one every 1 ms: 1 ms resolution). First forward (ours): the first UDP probe (one every 1 ms) it forwards to a real. Connections: 60 TCP connections through the VIP opened before each fault, afterwards still answered by the same real, moved to another real, or broken.\n");
        let _ = writeln!(s, "| implementation | VRRP | event | runs | takeover ms | first reply ms | first forward ms | lost pings | connections: opened / same / moved / broken |");
        let _ = writeln!(
            s,
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for f in &r.failover {
            let conns = f.conns.as_ref().map_or("n/a (no IPVS here)".into(), |c| {
                format!("{} / {} / {} / {}", c.opened, c.same, c.moved, c.broken)
            });
            let _ = writeln!(
                s,
                "| {} | v{} {} | {} | {} | {} | {} | {} | {} | {} |",
                f.label,
                f.version,
                if f.version == 2 { "1 s" } else { "100 ms" },
                f.event.name(),
                f.runs,
                st(&f.takeover_ms, 1),
                st(&f.first_reply_ms, 1),
                f.first_forward_ms
                    .as_ref()
                    .map_or("n/a".into(), |x| st(x, 1)),
                st(&f.lost_pings, 0),
                conns
            );
        }
    }
    if let Some(c) = &r.control {
        let _ = writeln!(s, "\n#### Control plane ({} rounds each)\n", c.rounds);
        let _ = writeln!(s, "| measure | value |");
        let _ = writeln!(s, "| --- | ---: |");
        for (n, x) in &c.maglev_build_ms {
            let _ = writeln!(
                s,
                "| Maglev build, {n} reals, 65537 slots | {} ms |",
                st(x, 2)
            );
        }
        let _ = writeln!(
            s,
            "| one real down -> maps updated (100 services x 10 reals) | {} ms |",
            st(&c.health_change_to_maps_ms, 2)
        );
        let _ = writeln!(
            s,
            "| `lb-agent reload` round trip (100 services x 10 reals) | {} ms |",
            st(&c.reload_ms, 1)
        );
        let _ = writeln!(
            s,
            "| agent RSS, 100 services / 1,000 reals | {:.1} MiB |",
            c.agent_rss_mib
        );
        let _ = writeln!(
            s,
            "| agent CPU, 1,000 TCP checks/s ({:.0} measured) | {:.1} % of one core |",
            c.checks_per_s, c.agent_cpu_pct
        );
        let _ = writeln!(
            s,
            "| agent CPU, 1,000 DNS checks/s ({:.0} measured) | {:.1} % of one core |",
            c.dns_checks_per_s, c.dns_agent_cpu_pct
        );
        for j in &c.jitter {
            let _ = writeln!(
                s,
                "| advert interval jitter (v3, 100 ms; {} intervals), {}: p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
                j.intervals, j.case, j.p50_ms, j.p99_ms, j.max_ms
            );
        }
    }
    if let Some(so) = &r.scale_out {
        scale_out_md(&mut s, so);
    }
    if let Some(fs) = &r.flow_sync {
        flow_sync_md(&mut s, fs);
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "\n#### Parts that failed (no figure taken)\n");
        for e in &r.errors {
            let _ = writeln!(s, "- {}", e.replace('\n', " "));
        }
    }
    s
}

fn scale_out_md(s: &mut String, so: &ScaleOutReport) {
    let _ = writeln!(s, "\n#### Scale-out mode: three nodes with BIRD behind an ECMP router (BGP, BFD 100 ms x 3, L4 hashing), three reals\n");
    let _ = writeln!(s, "Each run builds the lab afresh and plays the events in this order. Connections: 100 TCP connections through the VIP opened before each event, afterwards still answered by the same real, moved to another real, or broken (summed over the runs). Route changed: from the event to the router's kernel route having the new next hops (polled every 10 ms). New connections: opened one after another during the event.\n");
    let _ = writeln!(s, "| event | runs | route changed after, ms | connections: opened / same / moved / broken | new connections failed |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    for e in &so.events {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} / {} / {} | {} |",
            e.event,
            e.runs,
            e.route_change_ms
                .as_ref()
                .map_or("unchanged".into(), |x| st(x, 0)),
            e.opened,
            e.same,
            e.moved,
            e.broken,
            e.requests
                .map_or("-".into(), |(sent, failed)| format!("{failed} of {sent}"))
        );
    }
    let _ = writeln!(s, "\nThroughput with 1, 2 and 3 nodes announcing (the others' sessions disabled; the counts alternated in rounds). wrk keep-alive, 32 connections, from the far client; one 2-core machine runs the client, router, nodes and reals, so the total is bounded by the box, not by the nodes: the point is the per-node share of the forwarded frames.\n");
    let _ = writeln!(
        s,
        "| nodes announcing | rounds | req/s | share of frames lb1 / lb2 / lb3 | errors |"
    );
    let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
    for t in &so.throughput {
        let shares: Vec<String> = t
            .node_share_pct
            .iter()
            .map(|p| format!("{p:.0} %"))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            t.nodes,
            t.rounds,
            st(&t.requests_per_s, 0),
            shares.join(" / "),
            t.errors
        );
    }
}

pub fn write(dir: &Path, r: &Report) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("report.md"), markdown(r))?;
    fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    if !r.xdp.is_empty() {
        let groups: Vec<String> = r
            .xdp
            .iter()
            .map(|c| {
                format!(
                    "{} ({}x{})",
                    c.name.replace("VIP hit, ", ""),
                    c.services,
                    c.reals
                )
            })
            .collect();
        charts::bars(
            &dir.join("xdp.svg"),
            "Data path: ns per packet beside the MAC-swap floor",
            "ns per packet",
            &groups,
            &[
                ("lb_xdp", r.xdp.iter().map(|c| c.ns.median).collect()),
                (
                    "MAC-swap floor",
                    r.xdp.iter().map(|c| c.floor_ns.median).collect(),
                ),
            ],
        )?;
    }
    if !r.e2e.is_empty() {
        let groups: Vec<String> = r.e2e.iter().map(|w| w.name.clone()).collect();
        charts::bars(
            &dir.join("requests.svg"),
            "Requests per second through the VIP",
            "requests/s",
            &groups,
            &[
                (
                    "keep-alive",
                    r.e2e
                        .iter()
                        .map(|w| w.keepalive.requests_per_s.median)
                        .collect(),
                ),
                (
                    "new connection per request",
                    r.e2e
                        .iter()
                        .map(|w| w.new_conn.requests_per_s.median)
                        .collect(),
                ),
            ],
        )?;
        charts::bars(
            &dir.join("cpu.svg"),
            "CPU seconds per million requests (new connection per request)",
            "CPU s / M req",
            &groups,
            &[
                (
                    "user",
                    r.e2e.iter().map(|w| w.new_conn.cpu_user.median).collect(),
                ),
                (
                    "system",
                    r.e2e.iter().map(|w| w.new_conn.cpu_system.median).collect(),
                ),
                (
                    "softirq",
                    r.e2e
                        .iter()
                        .map(|w| w.new_conn.cpu_softirq.median)
                        .collect(),
                ),
            ],
        )?;
    }
    Ok(())
}

fn flow_sync_md(s: &mut String, fs: &super::flow_sync::FlowSyncReport) {
    let _ = writeln!(
        s,
        "\n#### Flow sync (docs/flow-sync.md): two VRRP nodes, the master publishing new UDP flows the client opens at a steady rate, the backup applying them; a fresh lab per run\n"
    );
    let _ = writeln!(
        s,
        "| new flows/s | s | runs | flows sent / records sent / applied | lag p50 / p99 / max, ms | bytes per flow (UDP payload / IP) | agent CPU, % of a core (master / backup) |"
    );
    let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for l in &fs.lag {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} / {} / {} | {} / {} / {} | {} / {} | {} / {} |",
            l.rate,
            l.seconds,
            l.runs,
            l.flows_sent,
            l.records_sent,
            l.records_applied,
            st(&l.lag_p50_ms, 1),
            st(&l.lag_p99_ms, 1),
            st(&l.lag_max_ms, 1),
            st(&l.payload_bytes_per_flow, 1),
            st(&l.ip_bytes_per_flow, 1),
            st(&l.master_cpu_pct, 1),
            st(&l.backup_cpu_pct, 1),
        );
    }
    if let Some(b) = &fs.bulk {
        let _ = writeln!(
            s,
            "\n| bulk sync of a whole table (TCP) | runs | records received / applied | time from request to last entry written, ms |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
        let _ = writeln!(
            s,
            "| {} entries | {} | {} / {} | {} |",
            b.entries,
            b.runs,
            b.received,
            b.applied,
            st(&b.took_ms, 0)
        );
    }
}
