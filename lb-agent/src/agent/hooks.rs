//! Notify hooks (`notify_master`, `notify_up`, `quorum_down`, ...): run without a shell, in
//! the background, with a timeout, and refused like keepalived's `script_security` when a
//! non-root user could have changed the program. A hook never blocks a decision.

use std::{process::Stdio, time::Duration};

use tracing::{debug, warn};

use crate::health::script::secure_path;

/// Hooks are killed after this long.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `argv` followed by `extra` arguments; returns at once.
pub fn spawn(what: String, argv: &[String], extra: &[String]) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let program = program.clone();
    let mut args: Vec<String> = args.to_vec();
    args.extend_from_slice(extra);
    tokio::spawn(async move {
        let checked = program.clone();
        let path = match tokio::task::spawn_blocking(move || secure_path(&checked)).await {
            Ok(Ok(p)) => p,
            Ok(Err(reason)) => {
                warn!(hook = %what, %reason, "hook refused");
                return;
            }
            Err(e) => {
                warn!(hook = %what, error = %e, "hook check failed");
                return;
            }
        };
        let mut cmd = tokio::process::Command::new(&path);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                warn!(hook = %what, program = %path.display(), error = %e, "hook could not start");
                return;
            }
        };
        match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
            Ok(Ok(st)) if st.success() => debug!(hook = %what, "hook done"),
            Ok(Ok(st)) => warn!(hook = %what, status = %st, "hook failed"),
            Ok(Err(e)) => warn!(hook = %what, error = %e, "hook wait failed"),
            Err(_) => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) on the process group of a child we still own.
                    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                }
                let _ = child.wait().await;
                warn!(hook = %what, timeout = ?HOOK_TIMEOUT, "hook timed out and was killed");
            }
        }
    });
}
