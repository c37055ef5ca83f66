//! Ethernet (optionally one 802.1Q tag), then IPv4 -> TCP/UDP ports, in steps so traffic to an
//! address that is no VIP leaves before the transport header is read (IPv6: `parse6`). Every
//! way out that is not a balanceable packet is a `stats::*` reason.

use lb_common::{stats, IPPROTO_TCP, IPPROTO_UDP};

use crate::frame::{join, Frame};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_MIN_HLEN: usize = 20;
pub const TCP_HLEN: usize = 20;
pub const UDP_HLEN: usize = 8;
/// More-fragments flag and fragment offset, in host order of the `frag_off` field.
const IP_MF_OFFSET_MASK: u16 = 0x3fff;

/// Header fields as indices of 16-bit words (the frame is read in aligned words).
mod word {
    /// Ethernet: source MAC bytes 0-1 (the multicast bit), EtherType.
    pub const ETH_SRC_MAC01: usize = 3;
    pub const ETH_TYPE: usize = 6;
    pub const ETH_WORDS: usize = 7;
    /// 802.1Q: the inner EtherType after the tag control word.
    pub const VLAN_INNER_TYPE: usize = 1;
    /// IPv4: version+IHL / TOS, total length, flags+fragment offset, TTL / protocol,
    /// source and destination (two words each).
    pub const IP_VER_IHL: usize = 0;
    pub const IP_TOTAL_LEN: usize = 1;
    pub const IP_FRAG: usize = 3;
    pub const IP_TTL_PROTO: usize = 4;
    pub const IP_SADDR: usize = 6;
    pub const IP_DADDR: usize = 8;
    pub const IP_WORDS: usize = 10;
    /// TCP and UDP: source and destination port.
    pub const L4_SPORT: usize = 0;
    pub const L4_DPORT: usize = 1;
}

/// What the data path needs from a packet of either family (`A`: `u32` or `Addr6`).
/// Addresses and ports hold wire bytes.
pub struct Packet<A> {
    pub saddr: A,
    pub daddr: A,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    /// Bytes of the IP packet (for byte counters).
    pub ip_len: u32,
    pub eth_src_multicast: bool,
    pub vlan: bool,
    /// IPv4 options or IPv6 extension headers.
    pub ip_options: bool,
}

/// The Ethernet header's facts: where the IP header starts and what it is.
pub struct L2 {
    pub ethertype: u16,
    /// Offset of the IP header in the frame.
    pub l3: usize,
    pub eth_src_multicast: bool,
    pub vlan: bool,
}

/// The IPv4 header's facts the data path needs, before the transport header is read.
pub struct Ipv4 {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub proto: u8,
    /// Header length in bytes.
    pub ihl: usize,
    /// Offset of the IPv4 header in the frame.
    pub l3: usize,
    pub ip_len: u16,
    pub eth_src_multicast: bool,
    pub vlan: bool,
    /// A fragment (first or not): only the first carries the transport header.
    pub fragment: bool,
}

/// Ethernet, with at most one VLAN tag.
#[inline(always)]
pub fn ethernet(frame: &Frame) -> Result<L2, u32> {
    let eth = frame
        .words::<{ word::ETH_WORDS }>(0)
        .ok_or(stats::PASS_TRUNCATED_ETH)?;
    let eth_src_multicast = eth[word::ETH_SRC_MAC01].to_ne_bytes()[0] & 1 != 0;
    let mut ethertype = u16::from_be(eth[word::ETH_TYPE]);
    let mut l3 = ETH_HLEN;
    let vlan = ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD;
    if vlan {
        let tag = frame
            .words::<2>(ETH_HLEN)
            .ok_or(stats::PASS_TRUNCATED_VLAN)?;
        ethertype = u16::from_be(tag[word::VLAN_INNER_TYPE]);
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            return Err(stats::PASS_VLAN_STACKED);
        }
        l3 = ETH_HLEN + VLAN_HLEN;
    }
    Ok(L2 {
        ethertype,
        l3,
        eth_src_multicast,
        vlan,
    })
}

/// The IPv4 header, checked.
#[inline(always)]
pub fn ipv4(frame: &Frame, l2: &L2) -> Result<Ipv4, u32> {
    let l3 = l2.l3;
    let ip = frame
        .words::<{ word::IP_WORDS }>(l3)
        .ok_or(stats::PASS_TRUNCATED_IP)?;
    let [ver_ihl, _tos] = ip[word::IP_VER_IHL].to_ne_bytes();
    let ihl = ((ver_ihl & 0x0f) as usize) * 4;
    if ver_ihl >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return Err(stats::PASS_BAD_IP_HEADER);
    }
    Ok(Ipv4 {
        fragment: u16::from_be(ip[word::IP_FRAG]) & IP_MF_OFFSET_MASK != 0,
        saddr_be: join(ip[word::IP_SADDR], ip[word::IP_SADDR + 1]),
        daddr_be: join(ip[word::IP_DADDR], ip[word::IP_DADDR + 1]),
        proto: ip[word::IP_TTL_PROTO].to_ne_bytes()[1],
        ihl,
        l3,
        ip_len: u16::from_be(ip[word::IP_TOTAL_LEN]),
        eth_src_multicast: l2.eth_src_multicast,
        vlan: l2.vlan,
    })
}

/// The transport ports, after checking the header lies inside the frame and the datagram.
#[inline(always)]
pub fn transport(frame: &Frame, ip: &Ipv4) -> Result<Packet<u32>, u32> {
    let l4 = ip.l3 + ip.ihl;
    // Packet bounds first: were the datagram-length checks below done first, the compiler
    // could prove this check redundant and drop it, and the verifier cannot follow that proof.
    let ports: [u16; 2] = match ip.proto {
        IPPROTO_TCP => {
            let h = frame
                .words::<{ TCP_HLEN / 2 }>(l4)
                .ok_or(stats::PASS_TRUNCATED_L4)?;
            [h[word::L4_SPORT], h[word::L4_DPORT]]
        }
        IPPROTO_UDP => {
            let h = frame
                .words::<{ UDP_HLEN / 2 }>(l4)
                .ok_or(stats::PASS_TRUNCATED_L4)?;
            [h[word::L4_SPORT], h[word::L4_DPORT]]
        }
        _ => return Err(stats::PASS_OTHER_PROTO),
    };
    let l4_min = if ip.proto == IPPROTO_TCP {
        TCP_HLEN
    } else {
        UDP_HLEN
    };
    let end = ip.l3 + ip.ip_len as usize;
    if (ip.ip_len as usize) < ip.ihl || (end > frame.len() && end > frame.total_len()) {
        return Err(stats::PASS_BAD_IP_HEADER);
    }
    // The minimal L4 header must also lie inside the IP datagram (not in trailing padding).
    if ip.ihl + l4_min > ip.ip_len as usize {
        return Err(stats::PASS_TRUNCATED_L4);
    }

    Ok(Packet {
        saddr: ip.saddr_be,
        daddr: ip.daddr_be,
        sport_be: ports[0],
        dport_be: ports[1],
        proto: ip.proto,
        ip_len: ip.ip_len as u32,
        eth_src_multicast: ip.eth_src_multicast,
        vlan: ip.vlan,
        ip_options: ip.ihl > IPV4_MIN_HLEN,
    })
}

/// A source no client can legitimately have: 0/8, 127/8, multicast 224/4, reserved 240/4
/// (which includes the limited broadcast 255.255.255.255).
#[inline(always)]
pub fn bogus_source(saddr_be: u32) -> bool {
    let first = saddr_be.to_ne_bytes()[0];
    first == 0 || first == 127 || first >= 224
}
