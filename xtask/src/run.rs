//! build, test, build-and-run.

use std::{path::Path, process::Command};

use anyhow::{bail, Result};

use crate::setup::{self, clean_env, status, step};

fn cargo(root: &Path) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root);
    c
}

pub fn build(root: &Path) -> Result<()> {
    setup::setup()?;
    step(
        "build: release lb-agent (with the XDP object embedded)",
        || status(cargo(root).args(["build", "--release", "-p", "lb-agent"])),
    )?;
    let bin = root.join("target/release/lb-agent");
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "built {} ({:.1} MiB)",
        bin.display(),
        size as f64 / 1048576.0
    );
    Ok(())
}

pub fn test(root: &Path, filter: Option<&str>) -> Result<()> {
    setup::setup()?;
    let f: Vec<&str> = filter.into_iter().collect();
    step(
        "test: build the agent and the lab binaries the tests run",
        || status(cargo(root).args(["build", "-p", "lb-agent", "-p", "lb-tests", "--bins"])),
    )?;
    step("test: unit tests (lb-common, lb-agent, xtask)", || {
        status(
            cargo(root)
                .args(["test", "-p", "lb-common", "-p", "lb-agent", "-p", "xtask"])
                .args(&f),
        )
    })?;
    // Integration tests build and tear down network namespaces and load XDP programs: one at
    // a time on this 2-core machine, so their timing is not disturbed by each other.
    step(
        "test: integration tests (XDP fixtures, netns topologies, keepalived interop)",
        || {
            status(
                cargo(root)
                    .args(["test", "-p", "lb-tests"])
                    .args(&f)
                    .args(["--", "--test-threads=1"]),
            )
        },
    )?;
    eprintln!("all tests passed");
    Ok(())
}

/// Setup, then the release agent and the lab and benchmark binaries; returns target/release.
fn release_bins(root: &Path) -> Result<std::path::PathBuf> {
    setup::setup()?;
    step(
        "build: release lb-agent, the lab and the benchmarks",
        || {
            status(cargo(root).args([
                "build",
                "--release",
                "-p",
                "lb-agent",
                "-p",
                "lb-tests",
                "--bins",
            ]))
        },
    )?;
    Ok(root.join("target/release"))
}

pub fn build_and_run(
    root: &Path,
    script: bool,
    no_tour: bool,
    agent_args: &[String],
) -> Result<()> {
    let bin = release_bins(root)?;
    if !agent_args.is_empty() {
        return status(clean_env(&mut Command::new(bin.join("lb-agent"))).args(agent_args));
    }
    let mut lab = Command::new(bin.join("lb-lab"));
    lab.arg("--agent").arg(bin.join("lb-agent"));
    if script {
        lab.arg("--script");
    }
    if no_tour {
        lab.arg("--no-tour");
    }
    let st = lab.status()?;
    if !st.success() {
        bail!("the lab failed ({st})");
    }
    Ok(())
}

pub fn bench(root: &Path, quick: bool) -> Result<()> {
    let bin = release_bins(root)?;
    let mut b = Command::new(bin.join("lb-bench"));
    b.arg("--agent")
        .arg(bin.join("lb-agent"))
        .arg("--out")
        .arg(root.join("target/bench"));
    if quick {
        b.arg("--quick");
    }
    status(&mut b)
}

pub fn soak(root: &Path, minutes: u64) -> Result<()> {
    let bin = release_bins(root)?;
    status(
        Command::new(bin.join("lb-lab"))
            .arg("--agent")
            .arg(bin.join("lb-agent"))
            .arg("--soak")
            .arg((minutes * 60).to_string()),
    )
}
