//! Gratuitous ARP: after taking a VIP, tell the LAN where it lives now. Frames are laid out
//! exactly as keepalived sends them (an ARP request with sender = target = VIP, target MAC
//! broadcast), sent on an AF_PACKET socket bound to the interface.

use std::{io, net::Ipv4Addr, os::fd::AsRawFd as _};

use socket2::{Domain, Protocol, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;

/// The 42-byte frame announcing `vip` at `mac`.
pub fn frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request.
    f[14..22].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&vip.octets());
    f[32..38].copy_from_slice(&[0xff; 6]);
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// A raw socket sending whole Ethernet frames out of one interface.
pub struct Sender {
    sock: Socket,
    ifindex: u32,
}

impl Sender {
    pub fn new(ifindex: u32) -> io::Result<Sender> {
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ARP.to_be()))),
        )?;
        sock.set_nonblocking(true)?;
        Ok(Sender { sock, ifindex })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        crate::packet_socket::send_frame(
            self.sock.as_raw_fd(),
            self.ifindex,
            ETH_P_ARP,
            [0xff; 6],
            frame,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_exact_with_keepalived() {
        let file = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/vrrp/keepalived_garp_burst.pcap"
        ));
        let recs = super::super::pcap::records(file).unwrap_or_default();
        assert_eq!(recs.len(), 10, "two bursts of 5");
        for r in &recs {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&r.data[6..12]);
            assert_eq!(mac[..5], [0x02, 0x99, 0, 0, 0]);
            assert_eq!(r.data, &frame(mac, Ipv4Addr::new(10, 99, 0, 100))[..]);
        }
    }
}
