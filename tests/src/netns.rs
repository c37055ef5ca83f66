//! Network namespaces for tests and the lab. Every namespace, interface and process made here
//! is removed when its guard drops (also on panic), names carry a per-run prefix so parallel
//! runs never collide, and nothing ever touches the root namespace's interfaces.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique prefix for this run: `lbt<pid>x<n>`.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "{tag}{}x{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(out)
}

/// Runs `cmd` whatever its exit status: (success, stdout then stderr). Panics only when it
/// cannot be started (a missing tool is a broken setup, not a test outcome).
pub fn outcome(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command run inside the namespace (network only: the mount namespace and so
    /// /sys/fs/bpf stay the host's, which pinned maps need).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(program);
        // Its own process group, so killing it also kills what it forked (nginx workers).
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        c
    }

    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Drops incoming packets that match `rule` (nftables words, e.g. `["ip", "protocol",
    /// "vrrp", "drop"]` without the verdict), in an input chain of table `table` that runs
    /// before everything else. Undo with [`Netns::undrop`].
    pub fn drop_input(&self, table: &str, rule: &[&str]) -> Result<()> {
        self.drop_at("input", table, rule, &["drop"])
    }

    /// As [`Netns::drop_input`], answering TCP with a reset (a refused connection, at once).
    pub fn reject_input(&self, table: &str, rule: &[&str]) -> Result<()> {
        self.drop_at("input", table, rule, &["reject", "with", "tcp", "reset"])
    }

    /// As [`Netns::drop_input`], for packets this namespace's own stack sends (XDP-forwarded
    /// frames never pass here).
    pub fn drop_output(&self, table: &str, rule: &[&str]) -> Result<()> {
        self.drop_at("output", table, rule, &["drop"])
    }

    fn drop_at(&self, hook: &str, table: &str, rule: &[&str], verdict: &[&str]) -> Result<()> {
        self.exec("nft", &["add", "table", "inet", table])?;
        let chain = format!("{{ type filter hook {hook} priority -300 ; }}");
        self.exec("nft", &["add", "chain", "inet", table, hook, &chain])?;
        let mut args = vec!["add", "rule", "inet", table, hook];
        args.extend_from_slice(rule);
        args.extend_from_slice(verdict);
        self.exec("nft", &args)?;
        Ok(())
    }

    /// Removes what [`Netns::drop_input`] added.
    pub fn undrop(&self, table: &str) -> Result<()> {
        self.exec("nft", &["delete", "table", "inet", table])?;
        Ok(())
    }

    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])?;
        Ok(())
    }

    /// Runs `f` on a thread inside this namespace; sockets it creates belong to it.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        self.thread(f)?
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
    }

    /// Starts `f` on a thread inside this namespace without waiting for it.
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let file = File::open(self.path()).with_context(|| format!("opening {}", self.path()))?;
        Ok(std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with an fd we own.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(anyhow::anyhow!(
                    "setns: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(f())
        }))
    }

    /// Spawns a process in the namespace; it is killed when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<Proc> {
        let child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {program} in {}", self.name))?;
        Ok(Proc::new(child, program))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process, killed (SIGKILL, by its own PID) on drop if still running.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn new(child: Child, name: &str) -> Proc {
        Proc {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn signal(&self, sig: i32) -> Result<()> {
        let pid = self.pid().context("process already reaped")?;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        if unsafe { libc::kill(pid as i32, sig) } != 0 {
            bail!("kill {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code if it did.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().context("process already reaped")?;
        loop {
            if let Some(st) = child.try_wait()? {
                self.child = None;
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL to the process and its process group (children it forked).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the process group of a child we spawned in its own group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 10 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
