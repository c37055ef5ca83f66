//! `MISC_CHECK`: run a program and judge the real by its exit code.
//!
//! * The program runs directly from its argv (no shell), in its own process group, with
//!   stdin/stdout/stderr on `/dev/null` (a script filling a pipe nobody reads would hang).
//! * On timeout the whole process group is SIGKILLed, not just the direct child: check scripts
//!   typically start `curl`/`nc` children which would otherwise outlive the check and pile up.
//!   The same happens if the check future is dropped (real removed, scheduler shut down).
//! * Like keepalived's `script_security`, a script that a non-root user could modify (the file
//!   or any directory on its path) is refused, because the agent runs it as root.
//! * Nothing here blocks the runtime: the permission walk runs on the blocking pool and the
//!   wait is tokio's SIGCHLD-driven `Child::wait`.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use super::probe::{fmt_duration, Outcome, ScriptCheck};

/// Used when the agent's environment has no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Sticky bit of `st_mode`.
const S_ISVTX: u32 = 0o1000;

/// Run the script once. Reasons: `"exit 0"`, `"exit 1"`, `"exit 7, weight 5"`,
/// `"timeout 2s (killed)"`, `"refusing to run …: … is world-writable"`.
pub async fn check(cfg: &ScriptCheck) -> Outcome {
    let start = Instant::now();
    let Some((program, args)) = cfg.argv.split_first() else {
        return Outcome::down("script argv is empty", Duration::ZERO);
    };
    let lookup = program.clone();
    let resolved = match tokio::task::spawn_blocking(move || secure_path(&lookup)).await {
        Ok(Ok(path)) => path,
        Ok(Err(reason)) => return Outcome::down(reason, start.elapsed()),
        Err(e) => return Outcome::down(format!("script security check: {e}"), start.elapsed()),
    };

    // Execute the canonical path that was checked (not a symlink that could be swapped),
    // while the program still sees the configured name as argv[0].
    let mut cmd = tokio::process::Command::new(&resolved);
    cmd.arg0(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::down(
                format!("spawn {}: {e}", resolved.display()),
                start.elapsed(),
            )
        }
    };
    // With process_group(0) the group id is the child's pid.
    let mut group = GroupKill::new(child.id());

    match tokio::time::timeout(cfg.timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // The leader has been reaped, so its pid (= the group id) may be reused: never
            // signal the group after this point.
            group.disarm();
            interpret(status, cfg.dynamic, start.elapsed())
        }
        // Still running or unknown; `group` kills it on drop.
        Ok(Err(e)) => Outcome::down(format!("wait: {e}"), start.elapsed()),
        Err(_) => {
            let latency = start.elapsed();
            group.kill();
            // Reap the leader; SIGKILL cannot be caught, so this is quick. If it somehow is
            // not, kill_on_drop plus tokio's orphan reaper finish the job.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Outcome::down(
                format!("timeout {} (killed)", fmt_duration(cfg.timeout)),
                latency,
            )
        }
    }
}

fn interpret(status: ExitStatus, dynamic: bool, latency: Duration) -> Outcome {
    match status.code() {
        Some(0) => Outcome::up("exit 0", latency),
        // keepalived misc_dynamic: 2..=255 means up, with weight code - 2.
        Some(code @ 2..=255) if dynamic => {
            let weight = u32::try_from(code - 2).unwrap_or(0);
            Outcome {
                ok: true,
                reason: format!("exit {code}, weight {weight}"),
                latency,
                weight: Some(weight),
            }
        }
        Some(code) => Outcome::down(format!("exit {code}"), latency),
        None => Outcome::down(
            match status.signal() {
                Some(sig) => format!("killed by signal {sig}"),
                None => "terminated abnormally".into(),
            },
            latency,
        ),
    }
}

/// SIGKILLs the child's process group on drop unless disarmed.
struct GroupKill {
    pgid: Option<libc::pid_t>,
}

impl GroupKill {
    fn new(pid: Option<u32>) -> Self {
        // pgid 0 or 1 would make kill() hit our own group or every process: refuse those.
        let pgid = pid
            .and_then(|p| libc::pid_t::try_from(p).ok())
            .filter(|&p| p > 1);
        Self { pgid }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) has no memory-safety preconditions. pgid > 1, and the group
            // leader has not been reaped yet, so the id still names the script's group.
            let rc = unsafe { libc::kill(-pgid, libc::SIGKILL) };
            if rc != 0 {
                tracing::debug!(pgid, error = %std::io::Error::last_os_error(), "killpg");
            }
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resolve the program and apply keepalived's `script_security` rule to it and to every
/// directory above it: each must be owned by root (or by our own uid when not running as
/// root), and must not be writable by group (unless the group is root) or others; a
/// world-writable directory is tolerated only with the sticky bit (like `/tmp`), since then
/// only the owner of an entry, which must be root, can replace it.
pub(crate) fn secure_path(program: &str) -> Result<PathBuf, String> {
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        find_in_path(program).ok_or_else(|| format!("script {program}: not found in PATH"))?
    };
    let real =
        std::fs::canonicalize(&path).map_err(|e| format!("script {}: {e}", path.display()))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("script {}: {e}", real.display()))?;
    if !meta.is_file() {
        return Err(format!("script {}: not a regular file", real.display()));
    }
    if meta.mode() & 0o111 == 0 {
        return Err(format!("script {}: not executable", real.display()));
    }
    // SAFETY: geteuid() cannot fail and has no preconditions.
    let euid = unsafe { libc::geteuid() };
    for component in real.ancestors() {
        let m = std::fs::metadata(component)
            .map_err(|e| format!("script {}: {}: {e}", real.display(), component.display()))?;
        if let Some(why) = insecure(&m, euid) {
            return Err(format!(
                "refusing to run {}: {} {why}",
                real.display(),
                component.display()
            ));
        }
    }
    Ok(real)
}

fn insecure(m: &Metadata, euid: u32) -> Option<String> {
    insecure_bits(m.uid(), m.gid(), m.mode(), m.is_dir(), euid)
}

/// The rule itself, on the owner, group and mode bits of one path component.
fn insecure_bits(uid: u32, gid: u32, mode: u32, is_dir: bool, euid: u32) -> Option<String> {
    if uid != 0 && uid != euid {
        return Some(format!("is owned by uid {uid}"));
    }
    if is_dir && mode & S_ISVTX != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some("is world-writable".into());
    }
    if gid != 0 && mode & 0o020 != 0 {
        return Some(format!("is group-writable (gid {gid})"));
    }
    None
}

/// `PATH` lookup like execvp's, but only absolute entries (a relative entry would make the
/// result depend on the agent's working directory).
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::TempDir;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        // SAFETY: no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn cfg(argv: &[&str]) -> ScriptCheck {
        ScriptCheck {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(10),
            dynamic: false,
        }
    }

    fn sh(dir: &TempDir, name: &str, body: &str) -> String {
        dir.script(name, &format!("#!/bin/sh\n{body}\n"), 0o755)
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Running: exists and is not a zombie.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn read_pid(p: &Path) -> Option<i32> {
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    #[tokio::test]
    async fn exit_codes() {
        let dir = TempDir::new();
        let code = sh(&dir, "code.sh", r#"exit "$1""#);
        let run = |c: &str, dynamic: bool| {
            let mut s = cfg(&[&code, c]);
            s.dynamic = dynamic;
            async move { check(&s).await }
        };
        let out = run("0", false).await;
        assert_eq!(
            (out.ok, out.reason.as_str(), out.weight),
            (true, "exit 0", None)
        );
        let out = run("1", false).await;
        assert_eq!(
            (out.ok, out.reason.as_str(), out.weight),
            (false, "exit 1", None)
        );
        let out = run("7", false).await;
        assert_eq!(
            (out.ok, out.reason.as_str(), out.weight),
            (false, "exit 7", None)
        );
        let out = run("7", true).await;
        assert_eq!(
            (out.ok, out.reason.as_str(), out.weight),
            (true, "exit 7, weight 5", Some(5))
        );
        let out = run("2", true).await;
        assert_eq!((out.ok, out.weight), (true, Some(0)));
        let out = run("255", true).await;
        assert_eq!((out.ok, out.weight), (true, Some(253)));
        let out = run("1", true).await;
        assert_eq!((out.ok, out.reason.as_str()), (false, "exit 1"));
        let out = run("0", true).await;
        assert_eq!((out.ok, out.weight), (true, None));
    }

    #[tokio::test]
    async fn argv_is_passed_verbatim_without_shell() {
        let dir = TempDir::new();
        let p = sh(
            &dir,
            "args.sh",
            r#"[ "$#" = 2 ] && [ "$1" = 'a b; exit 0' ] && [ "$2" = '$HOME' ] && exit 0; exit 1"#,
        );
        let out = check(&cfg(&[&p, "a b; exit 0", "$HOME"])).await;
        assert!(out.ok, "{out:?}");
        let out = check(&cfg(&[&p, "a", "b"])).await;
        assert!(!out.ok);
    }

    #[tokio::test]
    async fn killed_by_signal() {
        let dir = TempDir::new();
        let p = sh(&dir, "sig.sh", "kill -TERM $$");
        let out = check(&cfg(&[&p])).await;
        assert_eq!(
            (out.ok, out.reason.as_str()),
            (false, "killed by signal 15")
        );
    }

    #[tokio::test]
    async fn program_from_path() {
        assert!(check(&cfg(&["true"])).await.ok);
        let out = check(&cfg(&["false"])).await;
        assert_eq!(out.reason, "exit 1");
        let out = check(&cfg(&["no-such-program-here"])).await;
        assert_eq!(out.reason, "script no-such-program-here: not found in PATH");
    }

    const SPAWNS_GRANDCHILD: &str = r#"echo $$ > "$1/leader.pid"
sleep 30 &
echo $! > "$1/child.pid"
wait"#;

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = TempDir::new();
        let p = sh(&dir, "hang.sh", SPAWNS_GRANDCHILD);
        let mut c = cfg(&[&p, dir.path().to_str().unwrap()]);
        c.timeout = Duration::from_secs(1);
        let task = tokio::spawn(async move { check(&c).await });

        let (leader_file, child_file) =
            (dir.path().join("leader.pid"), dir.path().join("child.pid"));
        wait_until("script start", || read_pid(&child_file).is_some()).await;
        let leader = read_pid(&leader_file).unwrap();
        let child = read_pid(&child_file).unwrap();
        // Both really run before the timeout (so the "gone" assertion below means something).
        assert!(alive(leader) && alive(child));

        let out = task.await.unwrap();
        assert!(!out.ok);
        assert_eq!(out.reason, "timeout 1s (killed)");
        assert!(
            out.latency >= Duration::from_secs(1) && out.latency < Duration::from_secs(5),
            "{:?}",
            out.latency
        );
        wait_until("leader gone", || !alive(leader)).await;
        wait_until("grandchild gone", || !alive(child)).await;
    }

    #[tokio::test]
    async fn dropping_the_check_kills_the_group() {
        let dir = TempDir::new();
        let p = sh(&dir, "hang.sh", SPAWNS_GRANDCHILD);
        let c = cfg(&[&p, dir.path().to_str().unwrap()]);
        let task = tokio::spawn(async move { check(&c).await });
        let child_file = dir.path().join("child.pid");
        wait_until("script start", || read_pid(&child_file).is_some()).await;
        let leader = read_pid(&dir.path().join("leader.pid")).unwrap();
        let child = read_pid(&child_file).unwrap();
        assert!(alive(leader) && alive(child));
        // What the scheduler does when a real is removed mid-check.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        wait_until("leader gone", || !alive(leader)).await;
        wait_until("grandchild gone", || !alive(child)).await;
    }

    #[tokio::test]
    async fn waiting_does_not_block_the_runtime() {
        // Current-thread runtime: if the check blocked its thread while the script sleeps
        // for 1s, the 10ms ticker would see a gap of at least 1s; the bound leaves room for a
        // loaded machine.
        let dir = TempDir::new();
        let p = sh(&dir, "slow.sh", "sleep 1");
        let c = cfg(&[&p]);
        let check = check(&c);
        tokio::pin!(check);
        let mut ticker = tokio::time::interval(Duration::from_millis(10));
        let mut last = Instant::now();
        let mut max_gap = Duration::ZERO;
        let out = loop {
            tokio::select! {
                out = &mut check => break out,
                _ = ticker.tick() => {
                    max_gap = max_gap.max(last.elapsed());
                    last = Instant::now();
                }
            }
        };
        assert!(out.ok, "{out:?}");
        assert!(out.latency >= Duration::from_secs(1));
        assert!(
            max_gap < Duration::from_millis(500),
            "runtime stalled for {max_gap:?}"
        );
    }

    #[tokio::test]
    async fn refuses_world_writable_script() {
        let dir = TempDir::new();
        let marker = dir.path().join("ran");
        let p = dir.script(
            "ww.sh",
            &format!("#!/bin/sh\ntouch {}\n", marker.display()),
            0o777,
        );
        let out = check(&cfg(&[p.to_str().unwrap()])).await;
        assert!(!out.ok);
        assert_eq!(
            out.reason,
            format!("refusing to run {0}: {0} is world-writable", p.display())
        );
        assert!(!marker.exists(), "insecure script was executed");
        // Same script made safe runs (and creates the marker): the refusal was the mode.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check(&cfg(&[p.to_str().unwrap()])).await.ok);
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn refuses_script_in_world_writable_dir_but_not_sticky_one() {
        let dir = TempDir::new();
        let sub = dir.path().join("open");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = sub.join("ok.sh");
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = check(&cfg(&[p.to_str().unwrap()])).await;
        assert_eq!(
            out.reason,
            format!(
                "refusing to run {}: {} is world-writable",
                p.display(),
                sub.display()
            )
        );
        // Sticky bit (like /tmp): entries can only be replaced by their owner.
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let out = check(&cfg(&[p.to_str().unwrap()])).await;
        assert!(out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn refuses_group_writable_unless_root_group() {
        let dir = TempDir::new();
        let p = dir.script("gw.sh", "#!/bin/sh\nexit 0\n", 0o775);
        let ps = p.to_str().unwrap();
        if is_root() {
            // Root-owned, group root: only root can write it.
            assert!(check(&cfg(&[ps])).await.ok);
            std::os::unix::fs::chown(&p, None, Some(65534)).unwrap();
        }
        let gid = std::fs::metadata(&p).unwrap().gid();
        assert_ne!(gid, 0);
        let out = check(&cfg(&[ps])).await;
        assert_eq!(
            out.reason,
            format!("refusing to run {ps}: {ps} is group-writable (gid {gid})")
        );
    }

    #[test]
    fn insecure_bits_refuse_other_owners() {
        // As root: anything not owned by root is refused.
        assert_eq!(
            insecure_bits(65534, 0, 0o755, false, 0).as_deref(),
            Some("is owned by uid 65534")
        );
        // As a user: root's and our own files are fine, a third user's are not.
        assert_eq!(insecure_bits(0, 0, 0o755, false, 1000), None);
        assert_eq!(insecure_bits(1000, 1000, 0o755, false, 1000), None);
        assert!(insecure_bits(1001, 1000, 0o755, false, 1000).is_some());
        // Group-writable only matters for a group other than root; sticky dirs are fine.
        assert_eq!(
            insecure_bits(0, 7, 0o775, false, 0).as_deref(),
            Some("is group-writable (gid 7)")
        );
        assert_eq!(insecure_bits(0, 0, 0o775, false, 0), None);
        assert_eq!(insecure_bits(0, 0, 0o1777, true, 0), None);
        assert_eq!(
            insecure_bits(0, 0, 0o777, true, 0).as_deref(),
            Some("is world-writable")
        );
    }

    #[tokio::test]
    async fn refuses_script_owned_by_another_user() {
        if !is_root() {
            super::super::testutil::skip(
                "needs root to chown (the rule itself: insecure_bits_refuse_other_owners)",
            );
            return;
        }
        let dir = TempDir::new();
        let p = dir.script("other.sh", "#!/bin/sh\nexit 0\n", 0o755);
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let ps = p.to_str().unwrap();
        let out = check(&cfg(&[ps])).await;
        assert_eq!(
            out.reason,
            format!("refusing to run {ps}: {ps} is owned by uid 65534")
        );
    }

    #[tokio::test]
    async fn missing_or_not_executable() {
        let dir = TempDir::new();
        let p = dir.script("noexec.sh", "#!/bin/sh\nexit 0\n", 0o644);
        let out = check(&cfg(&[p.to_str().unwrap()])).await;
        assert_eq!(
            out.reason,
            format!("script {}: not executable", p.display())
        );
        let out = check(&cfg(&["/nonexistent/x.sh"])).await;
        assert!(!out.ok);
        assert!(
            out.reason.starts_with("script /nonexistent/x.sh: "),
            "{}",
            out.reason
        );
    }
}
