//! `cargo xtask bench [--quick]`: see tests/src/bench.
//!
//!   lb-bench [--quick] [--agent PATH] [--out DIR] [--only xdp,e2e,failover,control]
//!            [--rounds N (data path)]

use std::{path::PathBuf, process::ExitCode, time::Instant};

use lb_lab::bench::{control, e2e, failover, report, set_agent_bin, xdp};

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
    let only = flag("--only").unwrap_or_else(|| "xdp,e2e,failover,control".into());
    let want = |part: &str| only.split(',').any(|p| p == part);
    let t0 = Instant::now();
    let mut progress = |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
    let mut r = report::Report {
        machine: report::machine(),
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
    let mut failed = false;
    let mut note = |what: &str, e: anyhow::Error| {
        eprintln!("lb-bench: {what} failed: {e:#}");
        failed = true;
    };
    if want("xdp") {
        let plan = if quick {
            xdp::Plan {
                rounds: 5,
                repeat: 1_000_000,
                new_flows: 5_000,
                scaling: false,
            }
        } else {
            xdp::Plan {
                rounds: 9,
                repeat: 2_000_000,
                new_flows: 20_000,
                scaling: true,
            }
        };
        let mut plan = plan;
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
            (7, 5_000_000)
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
            }
        } else {
            e2e::Plan {
                seconds: 10,
                connections: 64,
                flood_seconds: 5,
            }
        };
        match e2e::run_all(&plan, &mut progress) {
            Ok(w) => r.e2e = w,
            Err(e) => note("end to end", e),
        }
    }
    if want("failover") {
        let (runs, cases): (usize, Vec<(u8, failover::Event)>) = if quick {
            (
                1,
                vec![(3, failover::Event::Graceful), (3, failover::Event::Kill)],
            )
        } else {
            let ev = [
                failover::Event::Graceful,
                failover::Event::Kill,
                failover::Event::LinkDown,
            ];
            (
                5,
                [3u8, 2]
                    .iter()
                    .flat_map(|v| ev.iter().map(move |e| (*v, *e)))
                    .collect(),
            )
        };
        for (v, ev) in cases {
            for imp in [failover::Imp::Lb, failover::Imp::Keepalived] {
                match failover::run_case(imp, v, ev, runs, &mut progress) {
                    Ok(row) => r.failover.push(row),
                    Err(e) => note("failover", e),
                }
            }
        }
    }
    if want("control") {
        match control::run_all(quick, &mut progress) {
            Ok(c) => r.control = Some(c),
            Err(e) => note("control plane", e),
        }
    }
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
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
