//! ICMP errors about a service flow's replies, for the real that owns the flow. A real answers
//! clients from the VIP directly (DR), so when a router on the way back cannot deliver a reply
//! (fragmentation needed, time exceeded, unreachable, parameter problem), its ICMP error is
//! addressed to the VIP and arrives here; the real must get it (path MTU discovery) or the
//! connection hangs. The error quotes the reply's IP header and first 8 transport bytes: the
//! flow is that quote read backwards (client, VIP, client port, service port).

use lb_common::{stats, FlowKey, IPPROTO_TCP, IPPROTO_UDP};

use crate::{frame::Frame, parse::Ipv4};

/// ICMP types that report a problem with a datagram (RFC 792), and quote it.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETER_PROBLEM: u8 = 12;
/// ICMP header: type, code, checksum, 4 bytes the error types do not use (or the MTU).
const ICMP_HLEN: usize = 8;
const IPV4_MIN_HLEN: usize = 20;

/// An ICMP error about a service flow: the flow's key (as the client's packets carry it) and
/// the IP length of the error (for the byte counters).
pub struct Quoted<K> {
    pub key: K,
    pub ip_len: u32,
}

/// Reads the flow an ICMP error to `ip.daddr_be` quotes. `Err` is the reason it is not one
/// to forward: not an error type, a quote cut short, or not a reply from the VIP it came to.
#[inline(always)]
pub fn quoted(frame: &Frame, ip: &Ipv4) -> Result<Quoted<FlowKey>, u32> {
    let l4 = ip.l3 + ip.ihl;
    let [type_code, _csum, _, _] = frame
        .words::<{ ICMP_HLEN / 2 }>(l4)
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    let [ty, _code] = type_code.to_ne_bytes();
    if ty != ICMP_DEST_UNREACH && ty != ICMP_TIME_EXCEEDED && ty != ICMP_PARAMETER_PROBLEM {
        return Err(stats::PASS_OTHER_PROTO);
    }
    let inner = l4 + ICMP_HLEN;
    let q = frame
        .words::<{ IPV4_MIN_HLEN / 2 }>(inner)
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    let [ver_ihl, _] = q[0].to_ne_bytes();
    let ihl = ((ver_ihl & 0x0f) as usize) * 4;
    if ver_ihl >> 4 != 4 || ihl < IPV4_MIN_HLEN {
        return Err(stats::PASS_ICMP_TRUNCATED);
    }
    let proto = q[4].to_ne_bytes()[1];
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err(stats::PASS_ICMP_OTHER);
    }
    let (src, dst) = (
        crate::frame::join(q[6], q[7]),
        crate::frame::join(q[8], q[9]),
    );
    // The quoted datagram was sent by the VIP this error came to.
    if src != ip.daddr_be {
        return Err(stats::PASS_ICMP_OTHER);
    }
    // `ihl` is at most 60: the offset stays bounded for the verifier.
    let ports = frame
        .words::<2>(inner + (ihl & 0x3c))
        .ok_or(stats::PASS_ICMP_TRUNCATED)?;
    Ok(Quoted {
        key: FlowKey {
            src_be: dst,
            dst_be: src,
            sport_be: ports[1],
            dport_be: ports[0],
            proto: proto as u32,
        },
        ip_len: ip.ip_len as u32,
    })
}
