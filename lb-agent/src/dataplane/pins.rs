//! The pin directory: where maps and XDP links outlive the agent process. Makes sure it is on
//! a bpffs (mounting one at /sys/fs/bpf when missing: `ip netns exec` remounts /sys, so a lab
//! namespace starts without it), that no two agents share it, and that a pinned map left by an
//! older layout is replaced rather than misread.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};
use aya::maps::{MapData, MapType};
use tracing::{info, warn};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
const LOCK_DIR: &str = "/run/lb-agent/locks";

fn fs_type(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s.f_type as i64)
}

/// Whether `path` is on a bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    fs_type(path).ok() == Some(BPF_FS_MAGIC)
}

fn mount_bpffs(at: &Path) -> Result<()> {
    fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
    let target = CString::new(at.as_os_str().as_bytes())?;
    let fstype = CString::new("bpf")?;
    // SAFETY: plain mount(2) with valid C strings.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting bpffs at {}: {}",
            at.display(),
            io::Error::last_os_error()
        );
    }
    info!(path = %at.display(), "mounted bpffs");
    Ok(())
}

/// Creates `dir` on a bpffs, mounting one at /sys/fs/bpf if that is where it belongs.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing
            .parent()
            .with_context(|| format!("{} has no existing parent", dir.display()))?;
    }
    if !is_bpffs(existing) {
        let default = Path::new(DEFAULT_BPFFS);
        if dir.starts_with(default) && !is_bpffs(default) {
            mount_bpffs(default)?;
        } else {
            bail!(
                "{} is not on a bpffs; mount one (mount -t bpf bpf DIR) or set \
                 global_defs.bpf_pin_path",
                dir.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Exclusive use of a pin directory for the life of the agent (flock on a file in /run).
pub struct PinLock {
    _file: File,
    path: PathBuf,
}

impl PinLock {
    pub fn acquire(pin_dir: &Path) -> Result<PinLock> {
        fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
        let name: String = pin_dir
            .to_string_lossy()
            .chars()
            .map(|c| if c == '/' { '%' } else { c })
            .collect();
        let path = Path::new(LOCK_DIR).join(format!("{name}.lock"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another lb-agent (pid {}) already uses {}; give each agent its own \
                 global_defs.router_id or bpf_pin_path",
                holder.trim(),
                pin_dir.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(PinLock { _file: file, path })
    }
}

impl Drop for PinLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What a pinned map must look like to be reused.
pub struct Expect {
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Removes pinned maps whose layout or size differs from what this agent would create (their
/// contents could not be read correctly). Returns the names of the maps that were dropped.
pub fn drop_incompatible(dir: &Path, expect: &[Expect]) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    for e in expect {
        let path = dir.join(e.name);
        if !path.exists() {
            continue;
        }
        let reason = match MapData::from_pin(&path).and_then(|m| m.info()) {
            Err(err) => Some(format!("unreadable ({err})")),
            Ok(info) => {
                let ty = info.map_type().ok();
                if ty != Some(e.map_type) {
                    Some(format!("type {ty:?}, expected {:?}", e.map_type))
                } else if info.key_size() != e.key_size || info.value_size() != e.value_size {
                    Some(format!(
                        "key/value size {}/{}, expected {}/{}",
                        info.key_size(),
                        info.value_size(),
                        e.key_size,
                        e.value_size
                    ))
                } else if info.max_entries() != e.max_entries {
                    Some(format!(
                        "{} entries, expected {}",
                        info.max_entries(),
                        e.max_entries
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(reason) = reason {
            warn!(
                map = e.name,
                %reason,
                "pinned map does not match this configuration; recreating it (its state is lost)"
            );
            if let Err(err) = fs::remove_file(&path) {
                warn!(map = e.name, %err, "cannot remove stale pin");
            }
            dropped.push(e.name);
        }
    }
    dropped
}

/// Removes every pin in `dir` and the directory itself (for `lb-agent` tests and `--unpin`).
pub fn remove_all(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        fs::remove_file(entry?.path())?;
    }
    fs::remove_dir(dir)
}
