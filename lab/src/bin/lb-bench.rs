//! `cargo xtask bench [--quick]`: see lab/src/bench.
//!
//!   lb-bench [--quick] [--agent PATH] [--out DIR]
//!            [--only xdp,e2e,failover,control,scale_out,flow_sync]
//!            [--rounds N (data path)]
//!
//! A part that fails is reported in the report's "Parts that failed" and makes the exit
//! status non-zero; the other parts still run.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use lb_lab::bench::{
    agent_bin, control, e2e, failover, flow_sync, report, scale_out, set_agent_bin, xdp,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = flag("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    if let Some(a) = flag("--agent") {
        set_agent_bin(PathBuf::from(a));
    }
    let only =
        flag("--only").unwrap_or_else(|| "xdp,e2e,failover,control,scale_out,flow_sync".into());
    let want = |part: &str| only.split(',').any(|p| p == part);
    let t0 = Instant::now();
    let mut progress = |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
    let mut r = report::Report {
        machine: report::machine(),
        tools: report::tools(),
        date: String::from_utf8_lossy(
            &std::process::Command::new("date")
                .arg("-u")
                .arg("+%Y-%m-%d %H:%M UTC")
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default(),
        )
        .trim()
        .to_owned(),
        mode: if quick { "quick".into() } else { "full".into() },
        ..Default::default()
    };
    let mut errors = Vec::new();
    let mut note = |what: &str, e: anyhow::Error| {
        eprintln!("lb-bench: {what} failed: {e:#}");
        errors.push(format!("{what}: {e:#}"));
    };
    if want("xdp") {
        let mut plan = if quick {
            xdp::Plan {
                rounds: 5,
                repeat: 1_000_000,
                new_flows: 5_000,
                scaling: false,
            }
        } else {
            xdp::Plan {
                rounds: 11,
                repeat: 2_000_000,
                new_flows: 10_000,
                scaling: true,
            }
        };
        if let Some(n) = flag("--rounds").and_then(|n| n.parse().ok()) {
            plan.rounds = n;
        }
        match xdp::run(&plan, &mut progress) {
            Ok(c) => r.xdp = c,
            Err(e) => note("data path", e),
        }
        let (rounds, frames) = if quick {
            (3, 2_000_000)
        } else {
            (9, 5_000_000)
        };
        match xdp::live(rounds, frames, &mut progress) {
            Ok(l) => r.xdp_live = Some(l),
            Err(e) => note("data path, live frames", e),
        }
    }
    if want("e2e") {
        let plan = if quick {
            e2e::Plan {
                seconds: 4,
                connections: 32,
                flood_seconds: 2,
                rounds: 1,
            }
        } else {
            e2e::Plan {
                seconds: 8,
                connections: 64,
                flood_seconds: 4,
                rounds: 3,
            }
        };
        match e2e::run_all(&plan, &mut progress) {
            Ok(w) => r.e2e = w,
            Err(e) => note("end to end", e),
        }
    }
    if want("failover") {
        use failover::Event;
        let (runs, cases): (usize, Vec<(u8, Event)>) = if quick {
            (
                1,
                vec![
                    (3, Event::Graceful),
                    (3, Event::Kill),
                    (3, Event::GracefulAfterRealAdded),
                ],
            )
        } else {
            let mut cases: Vec<(u8, Event)> = [3u8, 2]
                .iter()
                .flat_map(|v| {
                    [Event::Graceful, Event::Kill, Event::LinkDown]
                        .into_iter()
                        .map(move |e| (*v, e))
                })
                .collect();
            cases.push((3, Event::GracefulAfterRealAdded));
            (5, cases)
        };
        for (v, ev) in cases {
            match failover::run_case(v, ev, runs, &mut progress) {
                Ok(rows) => r.failover.extend(rows),
                Err(e) => note(&format!("failover v{v} {}", ev.name()), e),
            }
        }
    }
    if want("control") {
        match control::run_all(quick, &mut progress) {
            Ok(c) => r.control = Some(c),
            Err(e) => note("control plane", e),
        }
    }
    if want("scale_out") {
        let plan = if quick {
            scale_out::Plan {
                event_runs: 1,
                throughput_rounds: 1,
                wrk_seconds: 3,
            }
        } else {
            scale_out::Plan {
                event_runs: 3,
                throughput_rounds: 3,
                wrk_seconds: 5,
            }
        };
        match scale_out::run(&plan, &agent_bin(), &mut progress) {
            Ok(s) => r.scale_out = Some(s),
            Err(e) => note("scale-out", e),
        }
    }
    if want("flow_sync") {
        let plan = if quick {
            flow_sync::Plan {
                rate: 10_000,
                seconds: 2,
                lag_runs: 1,
                bulk_entries: 100_000,
                bulk_runs: 1,
            }
        } else {
            flow_sync::Plan {
                rate: 10_000,
                seconds: 4,
                lag_runs: 3,
                bulk_entries: 1_000_000,
                bulk_runs: 3,
            }
        };
        match flow_sync::run(&plan, &mut progress) {
            Ok(f) => r.flow_sync = Some(f),
            Err(e) => note("flow sync", e),
        }
    }
    r.errors = errors;
    r.seconds = t0.elapsed().as_secs_f64();
    print!("{}", report::markdown(&r));
    if let Err(e) = report::write(&out_dir, &r) {
        eprintln!("lb-bench: writing the report: {e:#}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "report written to {} in {:.0}s",
        out_dir.display(),
        t0.elapsed().as_secs_f64()
    );
    if r.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
