//! build, test, build-and-run.

use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

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
    // Every suite runs even after a failure, so one broken test never hides the state of the
    // others; the summary at the end says what passed and what did not.
    let mut tally = Tally::default();
    const UNIT: [&str; 8] = [
        "-p",
        "lb-common",
        "-p",
        "lb-agent",
        "-p",
        "xtask",
        "-p",
        "lb-lab",
    ];
    eprintln!("==> test: unit and simulation tests (lb-common, lb-agent, xtask, lb-lab)");
    tally.run(
        cargo(root)
            // A test that cannot run here fails instead of passing as skipped.
            .env("LB_NO_SKIP", "1")
            .args(["test", "--no-fail-fast"])
            .args(UNIT)
            .args(&f),
    )?;
    // What a plain `cargo test` runs must pass without root too: the same binaries again as
    // an unprivileged user (root-only parts say they skipped).
    eprintln!("==> test: unit and simulation tests again, as user nobody");
    for (exe, dir) in test_executables(root, &UNIT)? {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "HOME=/tmp",
        ])
        .arg(&exe)
        .args(&f)
        .current_dir(&dir);
        tally.run(&mut cmd)?;
    }
    // The package the `package` test installs and removes.
    let deb = crate::dist::dist(root)?;
    // Integration tests build and tear down network namespaces and load XDP programs: one at
    // a time on this 2-core machine, so their timing is not disturbed by each other.
    eprintln!("==> test: integration tests (XDP fixtures, netns topologies, keepalived interop)");
    tally.run(
        cargo(root)
            .env("LB_NO_SKIP", "1")
            .env("LB_DEB", &deb)
            .args(["test", "--no-fail-fast", "-p", "lb-tests"])
            .args(&f)
            .args(["--", "--test-threads=1"]),
    )?;
    eprintln!("{}", tally.summary());
    if !tally.ok() {
        bail!("some tests failed");
    }
    Ok(())
}

/// The test executables `cargo test` builds for `packages`, with the directory each runs in
/// (its package's, as cargo runs them).
fn test_executables(root: &Path, packages: &[&str]) -> Result<Vec<(String, std::path::PathBuf)>> {
    let out = cargo(root)
        .args(["test", "--no-run", "--message-format=json"])
        .args(packages)
        .stderr(std::process::Stdio::null())
        .output()
        .context("cargo test --no-run")?;
    let mut list = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(manifest)) = (v["executable"].as_str(), v["manifest_path"].as_str())
        else {
            continue;
        };
        if v["profile"]["test"].as_bool() != Some(true) {
            continue;
        }
        let dir = Path::new(manifest)
            .parent()
            .map_or_else(|| root.to_path_buf(), Path::to_path_buf);
        list.push((exe.to_owned(), dir));
    }
    Ok(list)
}

/// What `cargo test` reported, summed over its runs.
#[derive(Default)]
struct Tally {
    suites_ok: usize,
    suites_failed: usize,
    passed: usize,
    failed: usize,
    ignored: usize,
    failed_names: Vec<String>,
    /// A cargo run that failed without a test failing (a build error, a crashed binary).
    broken_runs: usize,
}

impl Tally {
    /// Runs `cmd`, passing its output through and reading the test results from it.
    fn run(&mut self, cmd: &mut Command) -> Result<()> {
        use std::io::{BufRead as _, BufReader};
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running {cmd:?}"))?;
        let failed_before = self.failed + self.suites_failed;
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines() {
                let line = line.context("reading cargo test output")?;
                println!("{line}");
                self.read_line(&line);
            }
        }
        let st = child.wait()?;
        if !st.success() && self.failed + self.suites_failed == failed_before {
            self.broken_runs += 1;
        }
        Ok(())
    }

    fn read_line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("test result: ") {
            if rest.starts_with("ok") {
                self.suites_ok += 1;
            } else {
                self.suites_failed += 1;
            }
            let num = |what: &str| -> usize {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(what))
                    .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
                    .unwrap_or(0)
            };
            self.passed += num(" passed");
            self.failed += num(" failed");
            self.ignored += num(" ignored");
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            self.failed_names.push(name.to_owned());
        }
    }

    fn ok(&self) -> bool {
        self.suites_failed == 0 && self.failed == 0 && self.broken_runs == 0
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "test summary: {} suites passed, {} failed; {} tests passed, {} failed, {} ignored",
            self.suites_ok, self.suites_failed, self.passed, self.failed, self.ignored
        );
        if self.broken_runs > 0 {
            s += &format!("; {} cargo runs failed before reporting", self.broken_runs);
        }
        if !self.failed_names.is_empty() {
            s += &format!(" (failed: {})", self.failed_names.join(", "));
        }
        s
    }
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
                "-p",
                "lb-lab",
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
    ecmp: bool,
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
    if ecmp {
        lab.arg("--ecmp");
    }
    let st = lab.status()?;
    if !st.success() {
        bail!("the lab failed ({st})");
    }
    Ok(())
}

/// The full run writes docs/bench (the report README shows) and then README's tables; the
/// quick one writes target/bench only.
pub fn bench(root: &Path, quick: bool) -> Result<()> {
    let bin = release_bins(root)?;
    let out = if quick {
        root.join("target/bench")
    } else {
        root.join(crate::readme::REPORT_DIR)
    };
    let mut b = Command::new(bin.join("lb-bench"));
    b.arg("--agent")
        .arg(bin.join("lb-agent"))
        .arg("--out")
        .arg(&out);
    if quick {
        b.arg("--quick");
    }
    let measured = status(&mut b);
    if !quick && out.join("report.md").exists() {
        crate::readme::update(root)?;
    }
    measured
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

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn reads_cargo_test_results() {
        let mut t = Tally::default();
        for l in [
            "test a::b ... ok",
            "test a::c ... FAILED",
            "test result: FAILED. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.2s",
            "test result: ok. 7 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.1s",
        ] {
            t.read_line(l);
        }
        assert_eq!((t.suites_ok, t.suites_failed), (1, 1));
        assert_eq!((t.passed, t.failed, t.ignored), (10, 1, 2));
        assert_eq!(t.failed_names, vec!["a::c".to_owned()]);
        assert!(!t.ok());
        assert!(t.summary().starts_with(
            "test summary: 1 suites passed, 1 failed; 10 tests passed, 1 failed, 2 ignored"
        ));
    }
}
