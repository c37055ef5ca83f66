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

/// Beside the pinned link: the mode it was attached in (a link taken over keeps it).
fn mode_file(pin: &Path) -> PathBuf {
    let mut p = pin.as_os_str().to_owned();
    p.push(".mode");
    PathBuf::from(p)
}

/// `native` or `generic`, as status and metrics name the modes.
pub fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Skb => "generic",
        XdpMode::Hardware => "offload",
        _ => "native",
    }
}

fn mode_from_name(s: &str) -> Option<XdpMode> {
    match s.trim() {
        "native" => Some(XdpMode::Driver),
        "generic" => Some(XdpMode::Skb),
        _ => None,
    }
}

/// The driver behind `ifname` (ethtool's ETHTOOL_GDRVINFO), for messages.
pub fn driver(ifname: &str) -> Option<String> {
    /// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // SAFETY: a zeroed DrvInfo and ifreq are valid; the ioctl fills the DrvInfo the ifreq points
    // at, both alive for the call.
    unsafe {
        let mut info: DrvInfo = std::mem::zeroed();
        info.cmd = ETHTOOL_GDRVINFO;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(ifname.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
        if libc::ioctl(fd, SIOCETHTOOL as _, &mut req) != 0 {
            return None;
        }
        let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
        Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
    }
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
                let mode = fs::read_to_string(mode_file(path))
                    .ok()
                    .and_then(|s| mode_from_name(&s))
                    .or_else(|| modes.first().copied())
                    .unwrap_or_default();
                info!(
                    interface = ifname,
                    mode = mode_name(mode),
                    "took over the pinned XDP link (program replaced)"
                );
                return Ok(Attachment {
                    ifname: ifname.to_owned(),
                    ifindex,
                    mode,
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
                let hold = match &pin {
                    Some(path) => {
                        let _ = fs::write(mode_file(path), mode_name(mode));
                        Hold::Pinned(fd_link.pin(path).with_context(|| {
                            format!("pinning the XDP link at {}", path.display())
                        })?)
                    }
                    None => Hold::Owned(fd_link),
                };
                info!(interface = ifname, mode = mode_name(mode), "XDP attached");
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
    let driver = driver(ifname).unwrap_or_else(|| "unknown".into());
    if modes == [XdpMode::Driver] {
        bail!(
            "attaching XDP natively to {ifname} (driver {driver}) failed: {}; the driver cannot \
             run XDP natively (xdp_mode: native): use xdp_mode: auto or generic for it",
            last.map(|e| format!("{e:#}")).unwrap_or_default()
        );
    }
    Err(anyhow!(
        "attaching XDP to {ifname} (driver {driver}): {}",
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
            let _ = fs::remove_file(mode_file(p));
        }
        info!(interface = %self.ifname, "XDP detached");
        drop(self);
    }
}

/// Releases a link left pinned by an earlier run (this node is not master any more).
pub fn release_stale(pin_dir: &Path, ifname: &str) -> bool {
    let p = link_pin(pin_dir, ifname);
    let _ = fs::remove_file(mode_file(&p));
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
                .filter(|n| !n.ends_with(".mode"))
                .and_then(|n| n.strip_prefix("link_"))
                .map(str::to_owned)
        })
        .collect()
}
