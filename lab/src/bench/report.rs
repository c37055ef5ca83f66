//! The bench report: a table on stdout, target/bench/report.md, report.json and SVG charts.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::Result;

use super::{charts, control::ControlReport, e2e::WayResult, failover::Row, xdp::Case};

#[derive(Default, serde::Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub mode: String,
    pub xdp: Vec<Case>,
    pub xdp_live: Option<super::xdp::Live>,
    pub e2e: Vec<WayResult>,
    pub failover: Vec<Row>,
    pub control: Option<ControlReport>,
}

pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, kernel {}", kernel.trim())
}

fn s3(s: &super::Stat) -> String {
    format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max)
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {} — {} ({} run)\n", r.machine, r.date, r.mode);
    if !r.xdp.is_empty() {
        let _ = writeln!(s, "### Data path: ns per packet (BPF_PROG_TEST_RUN, 64-byte frames), beside a MAC-swap XDP_TX program measured in the same rounds\n");
        let _ = writeln!(s, "| case | services | reals | ns/pkt median (min–max) | floor ns | ratio to floor, median (min–max) |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for c in &r.xdp {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} ({:.1}–{:.1}) | {:.1} | {:.2}x ({:.2}–{:.2}) |",
                c.name,
                c.services,
                c.reals,
                c.ns.median,
                c.ns.min,
                c.ns.max,
                c.floor_ns.median,
                c.ratio.median,
                c.ratio.min,
                c.ratio.max
            );
        }
    }
    if !r.e2e.is_empty() {
        let _ = writeln!(s, "\n### End to end in the namespace lab (same client, 3 nginx reals, same VIP; wrk -t2)\n");
        let _ = writeln!(s, "| way | keep-alive req/s | p50 / p99 ms | new conn req/s | p50 / p99 ms | errors | machine CPU s per M req (keep-alive / new) | LB process CPU s per M req | UDP flood delivered pkt/s (sent) |");
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for w in &r.e2e {
            let udp = match (w.udp_pps, w.udp_sent_pps) {
                (Some(g), Some(t)) => format!("{g:.0} ({t:.0})"),
                _ => "n/a (no UDP)".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {} | {:.1} / {:.1} | {:.1} | {} |",
                w.name,
                w.keepalive.requests_per_s,
                w.keepalive.p50_ms,
                w.keepalive.p99_ms,
                w.new_conn.requests_per_s,
                w.new_conn.p50_ms,
                w.new_conn.p99_ms,
                w.keepalive.errors + w.new_conn.errors,
                w.keepalive.machine_cpu_s_per_m,
                w.new_conn.machine_cpu_s_per_m,
                w.keepalive.lb_process_cpu_s_per_m.max(w.new_conn.lb_process_cpu_s_per_m),
                udp
            );
        }
    }
    if !r.failover.is_empty() {
        let _ = writeln!(
            s,
            "\n### Failover (client pings the VIP every 10 ms; median (min–max) of the runs)\n"
        );
        let _ = writeln!(s, "| implementation | VRRP | event | runs | takeover ms | lost pings | lost UDP probes through the VIP | established TCP surviving (of 200) |");
        let _ = writeln!(s, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
        for f in &r.failover {
            let _ = writeln!(
                s,
                "| {} | v{} {} | {} | {} | {} | {} | {} | {} |",
                if f.imp == super::failover::Imp::Lb {
                    "lb-agent"
                } else {
                    "keepalived 2.2.7"
                },
                f.version,
                if f.version == 2 { "1 s" } else { "100 ms" },
                f.event.name(),
                f.runs,
                s3(&f.takeover_ms),
                s3(&f.lost_pings),
                f.lost_udp.as_ref().map_or("n/a".into(), s3),
                f.tcp_survived
                    .as_ref()
                    .map_or("n/a (no IPVS here)".into(), s3),
            );
        }
    }
    if let Some(c) = &r.control {
        let _ = writeln!(s, "\n### Control plane\n");
        let _ = writeln!(s, "| measure | value |");
        let _ = writeln!(s, "| --- | ---: |");
        for (n, st) in &c.maglev_build_ms {
            let _ = writeln!(
                s,
                "| Maglev build, {n} reals, 65537 slots | {:.2} ms ({:.2}–{:.2}) |",
                st.median, st.min, st.max
            );
        }
        let h = &c.health_change_to_maps_ms;
        let _ = writeln!(
            s,
            "| one real down -> maps updated (100 services x 10 reals) | {:.2} ms ({:.2}–{:.2}) |",
            h.median, h.min, h.max
        );
        let _ = writeln!(
            s,
            "| `lb-agent reload` round trip (100 services x 10 reals) | {:.1} ms ({:.1}–{:.1}) |",
            c.reload_ms.median, c.reload_ms.min, c.reload_ms.max
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
    }
    s
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
                    r.e2e.iter().map(|w| w.keepalive.requests_per_s).collect(),
                ),
                (
                    "new connection per request",
                    r.e2e.iter().map(|w| w.new_conn.requests_per_s).collect(),
                ),
            ],
        )?;
        charts::bars(
            &dir.join("latency.svg"),
            "Latency through the VIP (keep-alive)",
            "ms",
            &groups,
            &[
                ("p50", r.e2e.iter().map(|w| w.keepalive.p50_ms).collect()),
                ("p99", r.e2e.iter().map(|w| w.keepalive.p99_ms).collect()),
            ],
        )?;
    }
    Ok(())
}
