//! A timestamped capture: every frame an interface receives (or sends), with the kernel's
//! receive timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME, nanoseconds), recorded by a thread
//! until stopped. Frames are kept up to `SNAP` bytes: enough for every header the benches
//! look at.

use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};

use crate::netns::Netns;

/// Bytes kept of each frame.
pub const SNAP: usize = 96;

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub at: SystemTime,
    /// The kernel saw it leave this interface (rather than arrive).
    pub outgoing: bool,
    pub bytes: Vec<u8>,
}

impl Frame {
    pub fn src_mac(&self) -> Option<[u8; 6]> {
        self.bytes.get(6..12)?.try_into().ok()
    }

    /// (IP protocol, source, destination) of an untagged IPv4 frame.
    pub fn ipv4(&self) -> Option<(u8, std::net::Ipv4Addr, std::net::Ipv4Addr)> {
        let b = &self.bytes;
        if b.len() < 34 || b[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = |o: usize| std::net::Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        Some((b[23], ip(26), ip(30)))
    }

    /// ICMP type of an untagged IPv4 ICMP frame (options-free header).
    pub fn icmp_type(&self) -> Option<u8> {
        let (proto, ..) = self.ipv4()?;
        (proto == 1).then(|| self.bytes.get(34).copied())?
    }
}

pub struct Sniffer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Frame>>>>,
}

fn open(ifname: &str) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
    if fd < 0 {
        bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // A read timeout lets the thread notice when it is stopped.
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    let c = std::ffi::CString::new(ifname)?;
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no interface {ifname}");
    }
    // SAFETY: setsockopt/bind with correctly sized values that outlive the calls.
    unsafe {
        for (level, opt, val, len) in [
            (
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of_val(&one),
            ),
            (
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of_val(&tv),
            ),
        ] {
            if libc::setsockopt(fd.as_raw_fd(), level, opt, val, len as u32) != 0 {
                bail!("setsockopt: {}", std::io::Error::last_os_error());
            }
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = idx as i32;
        if libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        ) != 0
        {
            bail!("bind AF_PACKET: {}", std::io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// One frame with its timestamp; None on timeout.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<Frame>> {
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut ctrl = [0u8; 128];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; its pointers are set to live buffers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.as_mut_ptr().cast();
    msg.msg_controllen = ctrl.len();
    // SAFETY: recvmsg into the buffers msg points at.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e).context("recvmsg"),
        };
    }
    let mut at = None;
    // SAFETY: walking the control messages the kernel wrote into `ctrl`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(
                    SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let len = (n as usize).min(buf.len());
    Ok(Some(Frame {
        at: at.context("no kernel timestamp on a captured frame")?,
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        bytes: buf[..len].to_vec(),
    }))
}

impl Sniffer {
    /// Starts recording what passes `ifname` in `ns`.
    pub fn start(ns: &Netns, ifname: &str) -> Result<Sniffer> {
        let name = ifname.to_owned();
        let fd = ns.enter(move || open(&name))??;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || -> Result<Vec<Frame>> {
            let mut out = Vec::new();
            let mut buf = vec![0u8; SNAP];
            while !s.load(Ordering::Relaxed) {
                if let Some(f) = recv(&fd, &mut buf)? {
                    out.push(f);
                }
            }
            Ok(out)
        });
        Ok(Sniffer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and returns everything captured, in arrival order.
    pub fn finish(mut self) -> Result<Vec<Frame>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the capture thread panicked"),
            None => bail!("capture already finished"),
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
