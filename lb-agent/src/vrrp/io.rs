//! The VRRP socket of an interface: raw IPPROTO_VRRP (112) with our own IP header
//! (`IP_HDRINCL`, so TTL 255 and TOS 0xc0 are exactly keepalived's), bound to the interface,
//! joined to the multicast group(s), multicast loopback off (we never hear ourselves).

use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::AsRawFd as _,
};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::packet::VRRP_PROTO;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    pub ifname: String,
}

impl VrrpSocket {
    pub fn open(ifname: &str, ifindex: u32, groups: &[Ipv4Addr]) -> io::Result<VrrpSocket> {
        let s = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(VRRP_PROTO))),
        )?;
        s.set_header_included_v4(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.set_multicast_loop_v4(false)?;
        // Room for bursts (a flood should cost drops, counted, not a missed peer advert).
        let _ = s.set_recv_buffer_size(1 << 20);
        for g in groups {
            match s.join_multicast_v4_n(g, &InterfaceIndexOrAddress::Index(ifindex)) {
                Ok(()) => {}
                // Two instances sharing a group on one interface.
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
                Err(e) => return Err(e),
            }
        }
        s.set_nonblocking(true)?;
        Ok(VrrpSocket {
            // SAFETY: the socket owns a valid fd that nothing else closes or replaces while
            // the AsyncFd holds it.
            fd: unsafe { AsyncFd::register(s)? },
            ifname: ifname.to_owned(),
        })
    }

    /// Receives one datagram (IP header included).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard.try_io(|inner| {
                // SAFETY: recv into a buffer we own.
                let n = unsafe {
                    libc::recv(
                        inner.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(res) => return res,
                Err(_would_block) => continue,
            }
        }
    }

    /// Datagrams the kernel dropped because our receive buffer was full (SO_MEMINFO).
    pub fn kernel_drops(&self) -> u64 {
        const SK_MEMINFO_DROPS: usize = 8;
        let mut info = [0u32; 9];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: getsockopt into a buffer of the length we pass.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.get_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            u64::from(info[SK_MEMINFO_DROPS])
        } else {
            0
        }
    }

    /// Sends a complete IPv4 datagram to `dst`. Never blocks: a full socket buffer is an error
    /// (the next advert follows within one interval).
    pub fn send(&self, datagram: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(datagram, &addr).map(|_| ())
    }
}
