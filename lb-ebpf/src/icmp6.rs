//! ICMPv6 errors about a service flow's replies, for the real that owns the flow: the IPv6
//! counterpart of `icmp`. "Packet too big" matters most: IPv6 routers never fragment, so path
//! MTU discovery is the only way a real learns a smaller path MTU. The error quotes the reply's
//! IPv6 header and its transport header (when no extension header sits between them).

use lb_common::{stats, FlowKey6, IPPROTO_TCP, IPPROTO_UDP};

use crate::{
    frame::Frame,
    icmp::Quoted,
    parse6::{addr_at, Ipv6, Transport, IPV6_HLEN},
};

/// ICMPv6 error types (RFC 4443): destination unreachable, packet too big, time exceeded,
/// parameter problem.
const ICMP6_DST_UNREACH: u8 = 1;
const ICMP6_PARAM_PROB: u8 = 4;
const ICMP6_HLEN: usize = 8;

/// Reads the flow an ICMPv6 error to `ip.daddr` quotes (`t`: where the ICMPv6 header is).
/// `Err` is the reason it is not one to forward.
#[inline(always)]
pub fn quoted(frame: &Frame, ip: &Ipv6, t: &Transport) -> Result<Quoted<FlowKey6>, u32> {
    let [type_code, _, _, _] = frame
        .words::<{ ICMP6_HLEN / 2 }>(t.offset)
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    let ty = type_code.to_ne_bytes()[0];
    if !(ICMP6_DST_UNREACH..=ICMP6_PARAM_PROB).contains(&ty) {
        // Echo, neighbour discovery, MLD: the node's own stack.
        return Err(stats::PASS_OTHER_PROTO);
    }
    let inner = t.offset + ICMP6_HLEN;
    let q = frame
        .words::<{ IPV6_HLEN / 2 }>(inner)
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    if q[0].to_ne_bytes()[0] >> 4 != 6 {
        return Err(stats::PASS_ICMP_TRUNCATED);
    }
    let proto = q[3].to_ne_bytes()[0];
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err(stats::PASS_ICMP_OTHER);
    }
    let (src, dst) = (addr_at(&q, 4), addr_at(&q, 12));
    // The quoted datagram was sent by the VIP this error came to.
    if src != ip.daddr {
        return Err(stats::PASS_ICMP_OTHER);
    }
    let ports = frame
        .words::<2>(inner + IPV6_HLEN)
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    Ok(Quoted {
        key: FlowKey6 {
            src: dst,
            dst: src,
            sport_be: ports[1],
            dport_be: ports[0],
            proto: proto as u32,
        },
        ip_len: IPV6_HLEN as u32 + ip.payload_len as u32,
    })
}
