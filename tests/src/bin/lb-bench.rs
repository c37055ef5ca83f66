//! `cargo xtask bench [--quick]`: see tests/src/bench.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use lb_tests::bench::{report, xdp};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench"));
    let t0 = Instant::now();
    let mut progress = |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
    let plan = if quick {
        xdp::Plan {
            rounds: 5,
            repeat: 1_000_000,
            scaling: false,
        }
    } else {
        xdp::Plan {
            rounds: 9,
            repeat: 2_000_000,
            scaling: true,
        }
    };
    let cases = match xdp::run(&plan, &mut progress) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lb-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let r = report::Report {
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
        xdp: cases,
    };
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
    ExitCode::SUCCESS
}
