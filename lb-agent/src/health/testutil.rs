//! Test helpers shared by the check modules' tests (no `tempfile` dependency).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory (mode 0755) under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "health-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write an executable file with exactly `mode` (umask does not apply).
    pub fn script(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test that cannot run here says so and returns; under `cargo xtask test` (which CI runs,
/// as root, and which sets `LB_NO_SKIP`) a skip is a failure instead, so CI never passes a
/// test that did not run.
pub fn skip(reason: &str) {
    if std::env::var_os("LB_NO_SKIP").is_some() {
        panic!("cannot skip under cargo xtask test: {reason}");
    }
    eprintln!("skipped: {reason}");
}
