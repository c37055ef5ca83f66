//! `cargo xtask`: set up a machine, build, test, run the lab, benchmark.

mod dist;
mod fuzz;
mod man;
mod readme;
mod run;
mod setup;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and demo lb")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the project needs (idempotent): Debian packages, the nightly's rust-src,
    /// bpf-linker built against the nightly's own LLVM, and cargo-fuzz.
    Setup,
    /// Build the release agent: one self-contained binary, target/release/lb-agent.
    Build,
    /// Build the release package: target/dist/lb-agent_<version>_amd64.deb (the agent, its
    /// systemd unit, /etc/lb/lb.yaml when absent, man pages, completions, docs). Install it on
    /// a server with `dpkg -i`; it needs no Rust there.
    Dist,
    /// Run every test: unit tests, BPF_PROG_TEST_RUN fixtures, network-namespace topologies,
    /// keepalived interop (needs root; CI runs as root).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
    /// With no arguments: build, then run the lab (network namespaces: client, load
    /// balancers, real servers) and show it working. With `-- ARGS`: run `lb-agent ARGS` on
    /// this host instead.
    BuildAndRun {
        /// Run the lab's scripted tour without pauses; exit 0 only if every step did what it
        /// announced.
        #[arg(long)]
        script: bool,
        /// Keep the lab running until Ctrl-C instead of touring it.
        #[arg(long)]
        no_tour: bool,
        /// Tour the scale-out mode instead: three active nodes with BIRD behind an ECMP
        /// router (docs/bgp.md).
        #[arg(long)]
        ecmp: bool,
        /// Arguments for lb-agent (after `--`).
        #[arg(last = true)]
        agent_args: Vec<String>,
    },
    /// The soak: the lab for minutes under mixed traffic with a failover every 30 s and a real
    /// flapping every 20 s; passes with zero errors on flows that should survive and flat
    /// memory.
    Soak {
        /// How long, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
    /// Benchmarks: data-path cost against a MAC-swap floor, end-to-end against nginx, HAProxy
    /// and nftables, failover against keepalived, control-plane costs. Writes
    /// target/bench/report.md, report.json and SVG charts.
    Bench {
        /// A reduced set in a few minutes, written to target/bench (the full run writes
        /// docs/bench and README's tables).
        #[arg(long)]
        quick: bool,
        /// Do not measure: regenerate README's benchmark section from docs/bench/report.md.
        #[arg(long, conflicts_with = "quick")]
        update_readme: bool,
    },
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer, the nightly) of the VRRP datagram
    /// parser, the YAML config and the keepalived.conf importer; installs cargo-fuzz if
    /// missing. Fails if a target crashes; the input is saved in fuzz/artifacts/<target>/.
    Fuzz {
        /// Seconds of fuzzing per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Only this target: vrrp_packet, config_yaml or keepalived_import.
        #[arg(long)]
        target: Option<String>,
        /// A short pass of every target (10 s each), for CI.
        #[arg(long, conflicts_with_all = ["time", "target"])]
        smoke: bool,
    },
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.cmd {
        Cmd::Setup => setup::setup().map(|_| ()),
        Cmd::Build => run::build(&root),
        Cmd::Dist => dist::dist(&root).map(|_| ()),
        Cmd::Test { filter } => run::test(&root, filter.as_deref()),
        Cmd::BuildAndRun {
            script,
            no_tour,
            ecmp,
            agent_args,
        } => run::build_and_run(&root, script, no_tour, ecmp, &agent_args),
        Cmd::Bench {
            quick,
            update_readme,
        } => {
            if update_readme {
                readme::update(&root)
            } else {
                run::bench(&root, quick)
            }
        }
        Cmd::Soak { minutes } => run::soak(&root, minutes),
        Cmd::Fuzz {
            time,
            target,
            smoke,
        } => fuzz::fuzz(&root, time, target.as_deref(), smoke),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
