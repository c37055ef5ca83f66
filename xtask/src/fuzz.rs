//! `cargo xtask fuzz`: coverage-guided fuzzing (cargo-fuzz, libFuzzer, the nightly) of the
//! inputs a hostile party controls: VRRP datagrams, the YAML config, keepalived.conf files.
//!
//! The fuzz crate is `fuzz/` (its own workspace, built into `fuzz/target`). Each target reads
//! the committed seeds in `fuzz/corpus/<target>/` and keeps what it discovers in
//! `fuzz/target/corpus/<target>/` (ignored by git), so runs build on each other without
//! touching the committed seeds. A crash, a hang (`-timeout`) or a memory blow-up
//! (`-rss_limit_mb`) leaves its input in `fuzz/artifacts/<target>/` and fails the run.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::setup::{clean_env, status, step};

/// Seconds per target for `--smoke`.
pub const SMOKE_SECS: u64 = 10;
/// libFuzzer options on every run: hang detection per input, a memory ceiling, and inputs up
/// to the targets' own bound (64 KiB).
const LIBFUZZER_ARGS: &[&str] = &[
    "-rss_limit_mb=2048",
    "-timeout=5",
    "-max_len=65536",
    "-print_final_stats=1",
];

/// The fuzz crate's targets (`fuzz/fuzz_targets/<name>.rs`), each with `fuzz/corpus/<name>/`.
const TARGETS: &[&str] = &[
    "vrrp_packet",
    "config_yaml",
    "keepalived_import",
    "flowsync_message",
];

/// `cargo fuzz --version`, if cargo-fuzz works.
fn cargo_fuzz_version() -> Option<String> {
    let out = clean_env(&mut Command::new("cargo"))
        .args(["fuzz", "--version"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Installs cargo-fuzz unless `cargo fuzz --version` already works (idempotent; `cargo xtask
/// setup` calls this too).
pub fn ensure_cargo_fuzz() -> Result<()> {
    if let Some(v) = cargo_fuzz_version() {
        eprintln!("    cargo-fuzz: present ({v})");
        return Ok(());
    }
    eprintln!("    cargo-fuzz: installing (cargo install cargo-fuzz --locked)");
    status(clean_env(&mut Command::new("cargo")).args(["install", "cargo-fuzz", "--locked"]))?;
    let v = cargo_fuzz_version().ok_or_else(|| {
        anyhow!(
            "cargo-fuzz was installed but `cargo fuzz --version` fails: is ~/.cargo/bin on PATH?"
        )
    })?;
    eprintln!("    cargo-fuzz: installed ({v})");
    Ok(())
}

/// What one libFuzzer run reported.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    execs: Option<u64>,
    cov: Option<u64>,
    features: Option<u64>,
    corpus: Option<u64>,
    peak_rss_mb: Option<u64>,
    /// The input libFuzzer saved ("Test unit written to ...").
    artifact: Option<String>,
    /// The first line that says what went wrong (a Rust panic, an ASan report, a timeout).
    failure: Option<String>,
    /// The Rust panic message follows the "panicked at" line.
    want_panic_message: bool,
}

impl Outcome {
    fn feed(&mut self, line: &str) {
        let line = line.trim_end();
        if self.want_panic_message {
            self.want_panic_message = false;
            if let Some(f) = &mut self.failure {
                f.push_str(": ");
                f.push_str(line.trim());
            }
        }
        if let Some(n) = stat(line, "stat::number_of_executed_units:") {
            self.execs = Some(n);
        } else if let Some(n) = stat(line, "stat::peak_rss_mb:") {
            self.peak_rss_mb = Some(n);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            // "Done 123456 runs in 60 second(s)" (before the final stats).
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                self.execs.get_or_insert(n);
            }
        } else if line.starts_with('#') {
            // "#4096  pulse  cov: 812 ft: 2345 corp: 120/4Kb exec/s: 2048 rss: 60Mb"
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                let value = || -> Option<u64> {
                    let v = words.clone().next()?;
                    v.split('/').next()?.parse().ok()
                };
                match w {
                    "cov:" => self.cov = value().or(self.cov),
                    "ft:" => self.features = value().or(self.features),
                    "corp:" => self.corpus = value().or(self.corpus),
                    _ => {}
                }
            }
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_owned());
        }
        if self.failure.is_none() {
            if line.starts_with("thread '") && line.contains(" panicked at ") {
                self.failure = Some(line.trim().trim_end_matches(':').to_owned());
                self.want_panic_message = true;
            } else if line.contains("ERROR: libFuzzer:") || line.contains("ERROR: AddressSanitizer")
            {
                self.failure = Some(line.trim().to_owned());
            }
        }
    }
}

fn stat(line: &str, key: &str) -> Option<u64> {
    line.strip_prefix(key)?.trim().parse().ok()
}

/// libFuzzer's per-input progress lines: logged, not echoed (hundreds per minute).
fn noisy(line: &str) -> bool {
    line.starts_with('#') && (line.contains("\tNEW ") || line.contains("\tREDUCE "))
}

struct Report {
    name: &'static str,
    took: Duration,
    outcome: Outcome,
    /// `None` if the run ended cleanly, else what went wrong.
    failed: Option<String>,
}

fn fuzz_cmd(root: &Path, sub: &str) -> Command {
    let mut cmd = Command::new("cargo");
    clean_env(&mut cmd)
        .current_dir(root)
        // fuzz/target whatever the caller's CARGO_TARGET_DIR says.
        .env("CARGO_TARGET_DIR", root.join("fuzz/target"))
        // --debug-assertions: arithmetic overflow and debug_assert! are bugs worth finding.
        .args([
            "+nightly",
            "fuzz",
            sub,
            "--fuzz-dir",
            "fuzz",
            "--debug-assertions",
        ]);
    cmd
}

fn run_one(root: &Path, name: &str, secs: u64) -> Result<(Outcome, bool)> {
    let work = root.join("fuzz/target/corpus").join(name);
    let seeds = root.join("fuzz/corpus").join(name);
    let logs = root.join("fuzz/target/logs");
    for d in [&work, &logs] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if !seeds.is_dir() {
        bail!("no seed corpus at {}", seeds.display());
    }
    let log_path = logs.join(format!("{name}.log"));
    let mut log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let mut cmd = fuzz_cmd(root, "run");
    // libFuzzer writes new inputs into the first directory and reads all of them.
    cmd.arg(name)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .args(LIBFUZZER_ARGS)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no stderr pipe from cargo fuzz"))?;
    let mut outcome = Outcome::default();
    for line in BufReader::new(stderr).split(b'\n') {
        let line = line.context("reading cargo fuzz output")?;
        let line = String::from_utf8_lossy(&line);
        writeln!(log, "{line}").with_context(|| format!("writing {}", log_path.display()))?;
        outcome.feed(&line);
        if !noisy(&line) {
            eprintln!("{line}");
        }
    }
    let st = child
        .wait()
        .with_context(|| format!("waiting for {cmd:?}"))?;
    eprintln!("    full log: {}", log_path.display());
    Ok((outcome, st.success()))
}

/// `cargo xtask fuzz`: every target (or `only`) for `secs` seconds each. Fails if any target
/// crashed, hung, ran out of memory or did not build.
pub fn fuzz(root: &Path, secs: u64, only: Option<&str>, smoke: bool) -> Result<()> {
    let secs = if smoke { SMOKE_SECS } else { secs };
    if secs == 0 {
        bail!("--time 0 would fuzz forever (libFuzzer's -max_total_time=0): give seconds");
    }
    let selected: Vec<&'static str> = match only {
        Some(name) => vec![*TARGETS.iter().find(|t| **t == name).ok_or_else(|| {
            anyhow!("no fuzz target `{name}`; there are: {}", TARGETS.join(", "))
        })?],
        None => TARGETS.to_vec(),
    };
    step("fuzz: cargo-fuzz", ensure_cargo_fuzz)?;

    // Build first, so that the run times below are fuzzing time.
    step("fuzz: build the targets (nightly, ASan, coverage)", || {
        let mut cmd = fuzz_cmd(root, "build");
        if let [name] = selected.as_slice() {
            cmd.arg(name);
        }
        status(&mut cmd)
    })?;

    let mut reports: Vec<Report> = Vec::new();
    for name in selected {
        let t0 = Instant::now();
        let (outcome, ok) = step(&format!("fuzz: {name} for {secs}s"), || {
            run_one(root, name, secs)
        })?;
        let failed = match (ok, &outcome.artifact) {
            (true, _) => None,
            (false, Some(a)) => Some(format!("crash, input saved to {a}")),
            (false, None) => Some("cargo fuzz failed (no input saved; see the log)".into()),
        };
        let r = Report {
            name,
            took: t0.elapsed(),
            outcome,
            failed,
        };
        eprintln!("    {}", line(&r));
        reports.push(r);
    }

    eprintln!("fuzz summary ({secs}s per target):");
    for r in &reports {
        eprintln!("  {}", line(r));
    }
    let failed = reports.iter().filter(|r| r.failed.is_some()).count();
    if failed > 0 {
        bail!(
            "{failed} fuzz target{} failed; reproduce with \
             `cargo +nightly fuzz run --fuzz-dir fuzz -a <target> <input>`",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn line(r: &Report) -> String {
    let o = &r.outcome;
    let mut s = format!("{:<18} {:>6.1}s", r.name, r.took.as_secs_f64());
    match o.execs {
        Some(n) => s.push_str(&format!(
            "  {n} execs ({:.0}/s)",
            n as f64 / r.took.as_secs_f64().max(0.001)
        )),
        None => s.push_str("  execs unknown"),
    }
    for (label, v) in [("cov", o.cov), ("ft", o.features), ("corpus", o.corpus)] {
        if let Some(v) = v {
            s.push_str(&format!("  {label} {v}"));
        }
    }
    if let Some(rss) = o.peak_rss_mb {
        s.push_str(&format!("  rss {rss}MB"));
    }
    match &r.failed {
        None => s.push_str("  crashes: none"),
        Some(why) => {
            s.push_str(&format!("  FAILED: {why}"));
            if let Some(f) = &o.failure {
                s.push_str(&format!(" ({f})"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Outcome {
        let mut o = Outcome::default();
        for l in text.lines() {
            o.feed(l);
        }
        o
    }

    #[test]
    fn clean_run() {
        let o = parse(
            "INFO: Seed: 1\n\
             #2\tINITED cov: 100 ft: 120 corp: 5/300b exec/s: 0 rss: 40Mb\n\
             #1024\tNEW    cov: 150 ft: 200 corp: 9/1Kb lim: 4 exec/s: 0 rss: 41Mb\n\
             #524288\tpulse  cov: 151 ft: 230 corp: 12/2Kb lim: 8 exec/s: 26214 rss: 44Mb\n\
             #600000\tDONE   cov: 152 ft: 231 corp: 13/2Kb lim: 8 exec/s: 10000 rss: 45Mb\n\
             Done 600000 runs in 61 second(s)\n\
             stat::number_of_executed_units: 600001\n\
             stat::average_exec_per_sec:     9836\n\
             stat::peak_rss_mb:              45\n",
        );
        assert_eq!(o.execs, Some(600001));
        assert_eq!(
            (o.cov, o.features, o.corpus),
            (Some(152), Some(231), Some(13))
        );
        assert_eq!(o.peak_rss_mb, Some(45));
        assert_eq!((o.artifact, o.failure), (None, None));
    }

    #[test]
    fn panic() {
        let o = parse(
            "#10\tNEW    cov: 10 ft: 10 corp: 2/2b lim: 4 exec/s: 0 rss: 40Mb\n\
             \n\
             thread '<unnamed>' (16370) panicked at fuzz_targets/config_yaml.rs:20:13:\n\
             an error names the file: oops\n\
             note: run with `RUST_BACKTRACE=1`\n\
             ==1234== ERROR: libFuzzer: deadly signal\n\
             MS: 1 ChangeByte-; base unit: 0000\n\
             artifact_prefix='/w/fuzz/artifacts/config_yaml/'; Test unit written to \
             /w/fuzz/artifacts/config_yaml/crash-abc\n",
        );
        assert_eq!(
            o.artifact.as_deref(),
            Some("/w/fuzz/artifacts/config_yaml/crash-abc")
        );
        assert_eq!(
            o.failure.as_deref(),
            Some(
                "thread '<unnamed>' (16370) panicked at fuzz_targets/config_yaml.rs:20:13: \
                 an error names the file: oops"
            )
        );
        assert_eq!(o.execs, None);
    }

    #[test]
    fn noisy_lines() {
        assert!(noisy("#1024\tNEW    cov: 150 ft: 200"));
        assert!(noisy("#1024\tREDUCE cov: 150 ft: 200"));
        assert!(!noisy("#524288\tpulse  cov: 151"));
        assert!(!noisy("#2\tINITED cov: 100"));
    }

    #[test]
    fn targets_have_seeds() {
        let root = crate::workspace_root();
        for t in TARGETS {
            let dir = root.join("fuzz/corpus").join(t);
            let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            assert!(n > 0, "{} has no seeds", dir.display());
        }
    }
}
