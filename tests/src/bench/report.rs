//! The bench report: a table on stdout, target/bench/report.md and report.json.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::Result;

use super::xdp::Case;

#[derive(serde::Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub xdp: Vec<Case>,
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

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {} ({})\n", r.machine, r.date);
    let _ = writeln!(
        s,
        "### Data path, ns per packet (BPF_PROG_TEST_RUN, 64-byte frames)\n"
    );
    let _ = writeln!(s, "| case | services | reals | ns/pkt median (min–max) | MAC-swap floor | ratio median (min–max) |");
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
    s
}

pub fn write(dir: &Path, r: &Report) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join("report.md"), markdown(r))?;
    fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    Ok(())
}
