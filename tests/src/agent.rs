//! Running `lb-agent` in a load balancer's namespace with a config written for the test.

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context as _, Result};

use crate::{
    netns::{Netns, Proc},
    topology::bin_path,
};

pub struct Agent {
    pub proc: Proc,
    pub config: PathBuf,
    pub log: PathBuf,
    pub router_id: String,
}

/// A work directory for one test run, removed on drop.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn new(prefix: &str) -> Result<WorkDir> {
        let d = std::env::temp_dir().join(prefix);
        fs::create_dir_all(&d)?;
        Ok(WorkDir(d))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `yaml` to `path` with mode 0600 (the agent refuses world-writable configs).
pub fn write_config(path: &PathBuf, yaml: &str) -> Result<()> {
    fs::write(path, yaml)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

impl Agent {
    /// Starts `lb-agent run` in `ns`. The config must set `global_defs.router_id` to
    /// `router_id` (pins and control socket are named after it).
    pub fn start(ns: &Netns, dir: &WorkDir, router_id: &str, yaml: &str) -> Result<Agent> {
        Agent::start_with(&bin_path("lbt-agent")?, ns, dir, router_id, yaml)
    }

    /// As `start`, with a given agent binary (the lab runs the release `lb-agent`).
    pub fn start_with(
        bin: &std::path::Path,
        ns: &Netns,
        dir: &WorkDir,
        router_id: &str,
        yaml: &str,
    ) -> Result<Agent> {
        let config = dir.0.join(format!("{router_id}.yaml"));
        write_config(&config, yaml)?;
        let log = dir.0.join(format!("{router_id}.log"));
        let logf = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = ns
            .command(&bin.to_string_lossy())
            .args(["--log-level", "info,lb_agent=debug", "run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("starting lb-agent")?;
        Ok(Agent {
            proc: Proc::new(child, "lb-agent"),
            config,
            log,
            router_id: router_id.to_owned(),
        })
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        crate::netns::wait_for(timeout, || self.log_text().contains(needle).then_some(())).is_some()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<Option<std::process::ExitStatus>> {
        self.proc.signal(libc::SIGTERM)?;
        self.proc.wait_timeout(Duration::from_secs(10))
    }

    /// The control socket (default path for this router id).
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/lb-agent/{}.sock", self.router_id))
    }

    /// Runs `lb-agent ARGS` (the test build) against this agent's socket; (exit ok, stdout,
    /// stderr).
    pub fn cli(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let bin = bin_path("lbt-agent")?;
        let out = std::process::Command::new(bin)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `lb-agent status --json`, parsed.
    pub fn status(&self) -> Result<serde_json::Value> {
        let (ok, out, err) = self.cli(&["status", "--json", "--flows"])?;
        anyhow::ensure!(ok, "status failed: {err}");
        Ok(serde_json::from_str(&out)?)
    }

    pub fn reload(&self, yaml: &str) -> Result<()> {
        write_config(&self.config, yaml)?;
        self.proc.signal(libc::SIGHUP)
    }

    /// Reloads `yaml` and waits until the agent logs that it applied it.
    pub fn reload_and_wait(&self, yaml: &str) -> Result<()> {
        let before = self.log_text().matches("configuration reloaded").count();
        self.reload(yaml)?;
        let done = crate::netns::wait_for(Duration::from_secs(10), || {
            (self.log_text().matches("configuration reloaded").count() > before).then_some(())
        });
        anyhow::ensure!(
            done.is_some(),
            "{} did not reload:\n{}",
            self.router_id,
            self.log_text()
        );
        Ok(())
    }
}

/// Scrapes the agent's Prometheus endpoint `listen` (as `metrics_listen` gives it) from inside
/// `ns`; every sample as `name{labels}` -> value. Fails on a sample that is not a number.
pub fn scrape(ns: &Netns, listen: &str) -> Result<std::collections::HashMap<String, f64>> {
    use std::io::{Read as _, Write as _};
    let listen = listen.to_owned();
    let body = ns.enter(move || -> Result<String> {
        let mut s = std::net::TcpStream::connect(&listen)?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })??;
    let (head, text) = body.split_once("\r\n\r\n").context("not HTTP")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (k, v) = line.rsplit_once(' ').context("sample without a value")?;
        let v: f64 = v.parse().with_context(|| format!("not a number: {line}"))?;
        samples.insert(k.to_owned(), v);
    }
    Ok(samples)
}
