//! IPv6: the fixed header (enough for the address filter), then a bounded walk over the
//! extension headers to the transport header, then the ports. Every way out that is not a
//! balanceable packet is a `stats::*` reason.

use lb_common::{stats, Addr6, IPPROTO_TCP, IPPROTO_UDP};

use crate::{
    frame::{join, Frame},
    parse::{Packet, L2, TCP_HLEN, UDP_HLEN},
};

pub const IPV6_HLEN: usize = 40;
pub const IPPROTO_ICMPV6: u8 = 58;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers walked before giving up (`pass_ipv6_ext`).
const MAX_EXT: usize = 4;
/// The transport header must start within this many bytes of the IPv6 header (a bound the
/// verifier can follow; four extension headers of 256 bytes each fit).
const MAX_EXT_BYTES: usize = 1024;

/// The fixed IPv6 header's facts.
pub struct Ipv6 {
    pub saddr: Addr6,
    pub daddr: Addr6,
    /// The first Next Header value.
    pub next: u8,
    /// Offset of the IPv6 header in the frame.
    pub l3: usize,
    pub payload_len: u16,
    pub eth_src_multicast: bool,
    pub vlan: bool,
}

/// Where the transport header is.
pub struct Transport {
    pub proto: u8,
    /// Offset in the frame.
    pub offset: usize,
    /// Extension headers were skipped to get here.
    pub ext: bool,
}

/// Reads the 16-byte address at word `w` of a header.
#[inline(always)]
pub fn addr_at<const N: usize>(h: &[u16; N], w: usize) -> Addr6 {
    [
        join(h[w], h[w + 1]),
        join(h[w + 2], h[w + 3]),
        join(h[w + 4], h[w + 5]),
        join(h[w + 6], h[w + 7]),
    ]
}

/// The fixed header, checked (version, a payload length that fits the packet).
#[inline(always)]
pub fn ipv6(frame: &Frame, l2: &L2) -> Result<Ipv6, u32> {
    let h = frame
        .words::<{ IPV6_HLEN / 2 }>(l2.l3)
        .ok_or(stats::PASS_TRUNCATED_IP)?;
    if h[0].to_ne_bytes()[0] >> 4 != 6 {
        return Err(stats::PASS_BAD_IP_HEADER);
    }
    Ok(Ipv6 {
        payload_len: u16::from_be(h[2]),
        next: h[3].to_ne_bytes()[0],
        saddr: addr_at(&h, 4),
        daddr: addr_at(&h, 12),
        l3: l2.l3,
        eth_src_multicast: l2.eth_src_multicast,
        vlan: l2.vlan,
    })
}

/// Skips hop-by-hop, routing and destination-options headers (at most `MAX_EXT`) to the
/// transport header. A fragment header is `pass_fragment` (IPv6 fragments are never balanced:
/// every one goes to the kernel, so none reaches a different real than another); a routing
/// header with segments left (this node is not the final destination) or a longer chain is
/// `pass_ipv6_ext`.
#[inline(always)]
pub fn walk(frame: &Frame, ip: &Ipv6) -> Result<Transport, u32> {
    let mut next = ip.next;
    let mut len = 0usize;
    for _ in 0..MAX_EXT {
        match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                // Next Header, Hdr Ext Len (8-byte units after the first 8); for routing,
                // Routing Type and Segments Left.
                let w = frame
                    .words::<2>(ip.l3 + IPV6_HLEN + len)
                    .ok_or(stats::PASS_TRUNCATED_IP)?;
                let [nh, units] = w[0].to_ne_bytes();
                if next == NEXTHDR_ROUTING && w[1].to_ne_bytes()[1] != 0 {
                    return Err(stats::PASS_IPV6_EXT);
                }
                next = nh;
                len += (units as usize + 1) * 8;
                if len > MAX_EXT_BYTES {
                    return Err(stats::PASS_IPV6_EXT);
                }
            }
            NEXTHDR_FRAGMENT => return Err(stats::PASS_FRAGMENT),
            _ => {
                return Ok(Transport {
                    proto: next,
                    offset: ip.l3 + IPV6_HLEN + len,
                    ext: len != 0,
                })
            }
        }
    }
    match next {
        NEXTHDR_FRAGMENT => Err(stats::PASS_FRAGMENT),
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => Err(stats::PASS_IPV6_EXT),
        _ => Ok(Transport {
            proto: next,
            offset: ip.l3 + IPV6_HLEN + len,
            ext: true,
        }),
    }
}

/// The transport ports, after checking the header lies inside the frame and the payload.
#[inline(always)]
pub fn transport(frame: &Frame, ip: &Ipv6, t: &Transport) -> Result<Packet<Addr6>, u32> {
    // `offset` is at most l3 + 40 + MAX_EXT_BYTES: bounded for the verifier.
    let (ports, l4_min) = match t.proto {
        IPPROTO_TCP => {
            let h = frame
                .words::<{ TCP_HLEN / 2 }>(t.offset)
                .ok_or(stats::PASS_TRUNCATED_L4)?;
            ([h[0], h[1]], TCP_HLEN)
        }
        IPPROTO_UDP => {
            let h = frame
                .words::<{ UDP_HLEN / 2 }>(t.offset)
                .ok_or(stats::PASS_TRUNCATED_L4)?;
            ([h[0], h[1]], UDP_HLEN)
        }
        _ => return Err(stats::PASS_OTHER_PROTO),
    };
    // A zero payload length is a jumbogram (or nothing): not balanced.
    let end = ip.l3 + IPV6_HLEN + ip.payload_len as usize;
    if ip.payload_len == 0 || (end > frame.len() && end > frame.total_len()) {
        return Err(stats::PASS_BAD_IP_HEADER);
    }
    if t.offset + l4_min > end {
        return Err(stats::PASS_TRUNCATED_L4);
    }
    Ok(Packet {
        saddr: ip.saddr,
        daddr: ip.daddr,
        sport_be: ports[0],
        dport_be: ports[1],
        proto: t.proto,
        ip_len: IPV6_HLEN as u32 + ip.payload_len as u32,
        eth_src_multicast: ip.eth_src_multicast,
        vlan: ip.vlan,
        ip_options: t.ext,
    })
}

/// A source no client can legitimately have: unspecified (::), loopback (::1), multicast
/// (ff00::/8).
#[inline(always)]
pub fn bogus_source(a: &Addr6) -> bool {
    let first = a[0].to_ne_bytes()[0];
    first == 0xff || (a[0] == 0 && a[1] == 0 && a[2] == 0 && (a[3] == 0 || a[3] == 1u32.to_be()))
}
