//! Announcing a VIP after taking it, so the LAN learns where it lives now: a gratuitous ARP
//! for IPv4, an unsolicited neighbour advertisement for IPv6. Frames are laid out exactly as
//! keepalived sends them, and sent whole on an AF_PACKET socket.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
};

use socket2::{Domain, Protocol, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// The frame announcing `vip` at `mac`.
pub fn frame(mac: [u8; 6], vip: IpAddr) -> Vec<u8> {
    match vip {
        IpAddr::V4(v4) => arp(mac, v4).to_vec(),
        IpAddr::V6(v6) => neighbour_advert(mac, v6).to_vec(),
    }
}

/// IPv4: an ARP request with sender = target = VIP, target MAC broadcast (42 bytes).
pub fn arp(mac: [u8; 6], vip: Ipv4Addr) -> [u8; 42] {
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

/// The all-nodes group ff02::1 and its MAC.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ICMPV6: u8 = 58;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Flags word of an unsolicited advertisement: Override only (RFC 4861 §7.2.6; not Router,
/// not Solicited), as keepalived sends it.
const NA_OVERRIDE: u32 = 0x2000_0000;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// IPv6: an unsolicited neighbour advertisement from and for `vip`, to all nodes, hop limit
/// 255, with the target link-layer address option (86 bytes).
pub fn neighbour_advert(mac: [u8; 6], vip: Ipv6Addr) -> [u8; 86] {
    let mut f = [0u8; 86];
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6: version 6, payload 32 bytes, next header ICMPv6, hop limit 255.
    f[14] = 0x60;
    f[18..20].copy_from_slice(&32u16.to_be_bytes());
    f[20] = ICMPV6;
    f[21] = 255;
    f[22..38].copy_from_slice(&vip.octets());
    f[38..54].copy_from_slice(&ALL_NODES.octets());
    // ICMPv6 NA: type, code, checksum, flags, target, option.
    f[54] = ND_NEIGHBOR_ADVERT;
    f[58..62].copy_from_slice(&NA_OVERRIDE.to_be_bytes());
    f[62..78].copy_from_slice(&vip.octets());
    f[78] = ND_OPT_TARGET_LINKADDR;
    f[79] = 1;
    f[80..86].copy_from_slice(&mac);
    let c = icmpv6_checksum(vip, ALL_NODES, &f[54..86]);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f
}

/// The ICMPv6 checksum of `msg` (checksum field zero) with the IPv6 pseudo-header.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut add = |b: &[u8]| {
        for w in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
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

    /// Sends a frame built by [`frame`] (its own Ethernet header says where to).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let (Some(dst), Some(ty)) = (frame.get(0..6), frame.get(12..14)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "short frame"));
        };
        let mut dst_mac = [0u8; 6];
        dst_mac.copy_from_slice(dst);
        crate::packet_socket::send_frame(
            self.sock.as_raw_fd(),
            self.ifindex,
            u16::from_be_bytes([ty[0], ty[1]]),
            dst_mac,
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
            assert_eq!(r.data, &arp(mac, Ipv4Addr::new(10, 99, 0, 100))[..]);
        }
    }

    #[test]
    fn neighbour_adverts_byte_exact_with_keepalived() {
        // keepalived 2.2.7 taking over an IPv6 instance (fe80::51:1 and 2001:db8:1::100).
        let file = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/vrrp/keepalived_vrrpv3_ipv6.pcap"
        ));
        let recs = super::super::pcap::records(file).unwrap_or_default();
        let nas: Vec<_> = recs
            .iter()
            .filter(|r| r.data.len() == 86 && r.data[12..14] == [0x86, 0xdd] && r.data[54] == 136)
            .collect();
        assert!(nas.len() >= 4, "the capture holds the takeover's adverts");
        for r in nas {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&r.data[6..12]);
            let mut target = [0u8; 16];
            target.copy_from_slice(&r.data[62..78]);
            let vip = Ipv6Addr::from(target);
            assert_eq!(r.data, &neighbour_advert(mac, vip)[..], "{vip}");
        }
    }
}
