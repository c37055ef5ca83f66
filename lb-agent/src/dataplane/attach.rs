//! Attaching the program to an interface through a pinned bpf_link: the attachment outlives
//! the agent process. If the agent is killed, its node keeps forwarding for clients whose ARP
//! cache still points at it (instead of its kernel resetting their connections) until the new
//! master's gratuitous ARPs move them; a restarted agent takes the link over, swapping in its
//! program atomically, or releases it.

use std::{
    ffi::CString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context as _, Result};
use aya::programs::{
    links::{FdLink, PinnedLink},
    xdp::XdpLink,
    Xdp, XdpMode,
};
use tracing::{info, warn};

/// An interface with our program on it.
#[derive(Debug)]
pub struct Attachment {
    pub ifname: String,
    pub ifindex: u32,
    pub mode: XdpMode,
    /// Held so the link lives at least as long as we want it.
    _link: Hold,
    pin: Option<PathBuf>,
}

#[derive(Debug)]
enum Hold {
    Pinned(#[allow(dead_code)] PinnedLink),
    Owned(#[allow(dead_code)] FdLink),
}

pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| anyhow!("bad interface name {name:?}"))?;
    // SAFETY: if_nametoindex reads a valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface named {name} in this network namespace");
    }
    Ok(idx)
}

/// Where the link for `ifname` is pinned.
pub fn link_pin(dir: &Path, ifname: &str) -> PathBuf {
    dir.join(format!("link_{ifname}"))
}

/// Attaches `prog` to `ifname`, trying `modes` in order (native, then generic). With `pin_dir`,
/// an existing pinned link is taken over (the program swapped in atomically, no gap in
/// forwarding); otherwise a new link is created and pinned.
pub fn attach(
    prog: &mut Xdp,
    ifname: &str,
    modes: &[XdpMode],
    pin_dir: Option<&Path>,
) -> Result<Attachment> {
    let ifindex = ifindex(ifname)?;
    let pin = pin_dir.map(|d| link_pin(d, ifname));
    if let Some(path) = pin.as_ref().filter(|p| p.exists()) {
        match take_over(prog, path) {
            Ok(link) => {
                info!(
                    interface = ifname,
                    "took over the pinned XDP link (program replaced)"
                );
                return Ok(Attachment {
                    ifname: ifname.to_owned(),
                    ifindex,
                    mode: modes.first().copied().unwrap_or_default(),
                    _link: Hold::Pinned(link),
                    pin,
                });
            }
            Err(e) => {
                warn!(interface = ifname, error = %e, "stale pinned XDP link; replacing it");
                let _ = fs::remove_file(path);
            }
        }
    }
    let mut last = None;
    for &mode in modes {
        match prog.attach_to_if_index(ifindex, mode) {
            Ok(id) => {
                if mode != modes[0] {
                    warn!(
                        interface = ifname,
                        ?mode,
                        "native XDP unavailable; attached in generic mode"
                    );
                }
                let link = prog.take_link(id)?;
                let fd_link: FdLink = link
                    .try_into()
                    .map_err(|e| anyhow!("kernel gave no bpf_link for XDP ({e}); need 5.9+"))?;
                let hold =
                    match &pin {
                        Some(path) => Hold::Pinned(fd_link.pin(path).with_context(|| {
                            format!("pinning the XDP link at {}", path.display())
                        })?),
                        None => Hold::Owned(fd_link),
                    };
                info!(interface = ifname, ?mode, "XDP attached");
                return Ok(Attachment {
                    ifname: ifname.to_owned(),
                    ifindex,
                    mode,
                    _link: hold,
                    pin,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!(
        "attaching XDP to {ifname}: {}",
        last.map(|e| format!("{e:#}"))
            .unwrap_or_else(|| "no mode to try".into())
    ))
}

fn take_over(prog: &mut Xdp, path: &Path) -> Result<PinnedLink> {
    let pinned = PinnedLink::from_pin(path)?;
    let fd_link: FdLink = pinned.into();
    let xdp_link = XdpLink::try_from(fd_link)?;
    let id = prog.attach_to_link(xdp_link)?;
    let link = prog.take_link(id)?;
    let fd_link: FdLink = link
        .try_into()
        .map_err(|e| anyhow!("taken-over link is not a bpf_link: {e}"))?;
    // Re-pinning at the same path replaces nothing: the file is already there. Remove it and
    // pin the same link again so we hold a PinnedLink for it.
    let _ = fs::remove_file(path);
    Ok(fd_link.pin(path)?)
}

impl Attachment {
    /// Detaches: removes the pin and closes our fd, which releases the link.
    pub fn detach(self) {
        if let Some(p) = &self.pin {
            let _ = fs::remove_file(p);
        }
        info!(interface = %self.ifname, "XDP detached");
        drop(self);
    }
}

/// Releases a link left pinned by an earlier run (this node is not master any more).
pub fn release_stale(pin_dir: &Path, ifname: &str) -> bool {
    let p = link_pin(pin_dir, ifname);
    if p.exists() && fs::remove_file(&p).is_ok() {
        info!(
            interface = ifname,
            "released the XDP link pinned by an earlier run"
        );
        return true;
    }
    false
}

/// All links pinned in `pin_dir` (interface names).
pub fn pinned_links(pin_dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(pin_dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("link_"))
                .map(str::to_owned)
        })
        .collect()
}
