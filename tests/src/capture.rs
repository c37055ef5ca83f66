//! A raw AF_PACKET socket in a namespace: the IP frames an interface receives, by source and
//! destination address.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::RawFd,
    time::Duration,
};

use anyhow::{bail, Result};

use crate::netns::Netns;

pub struct Capture {
    fd: RawFd,
}

impl Capture {
    /// Starts capturing everything that arrives on `ifname` in `ns`.
    pub fn start(ns: &Netns, ifname: &str) -> Result<Capture> {
        let ifname = ifname.to_owned();
        let fd = ns.enter(move || -> Result<RawFd> {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain socket(2)/bind(2) calls with valid arguments.
            let fd = unsafe {
                libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto)
            };
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let c = std::ffi::CString::new(ifname)?;
            let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto as u16;
            sll.sll_ifindex = idx as i32;
            let rc = unsafe {
                libc::bind(
                    fd,
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                unsafe { libc::close(fd) };
                bail!("bind AF_PACKET: {}", std::io::Error::last_os_error());
            }
            Ok(fd)
        })??;
        Ok(Capture { fd })
    }

    /// Reads what arrived so far (incoming frames only): (source, destination) of each IPv4
    /// or IPv6 frame. Reading consumes them: take once, then count what you need.
    pub fn take(&self) -> Vec<(IpAddr, IpAddr)> {
        std::thread::sleep(Duration::from_millis(50));
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: recvfrom into our buffer and address struct.
            let r = unsafe {
                libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if r <= 0 {
                return out;
            }
            let f = &buf[..r as usize];
            if from.sll_pkttype == libc::PACKET_OUTGOING || f.len() < 34 {
                continue;
            }
            let addr6 = |b: &[u8]| {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0800 => out.push((
                    Ipv4Addr::new(f[26], f[27], f[28], f[29]).into(),
                    Ipv4Addr::new(f[30], f[31], f[32], f[33]).into(),
                )),
                0x86dd if f.len() >= 54 => out.push((addr6(&f[22..38]), addr6(&f[38..54]))),
                _ => {}
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(self.fd) };
    }
}
