//! Which real a flow goes to, and why, read from the maps the data path uses (`lb-agent
//! explain`): its connection-table entry if it has one (and whether that real still takes it),
//! otherwise the choice the data path would make for a new flow (client affinity or the Maglev
//! slot). The same lookups in the same order as `lb-ebpf`'s `select`, so an answer here is what
//! the next packet of that flow meets.

use std::net::{IpAddr, SocketAddr};

use lb_common::{
    addr6_hash, address_hash, flow_hash, flow_hash6, ip_of, source_hash, words6, AffinityKey,
    AffinityKey6, AffinityValue, FlowKey, FlowKey6, FlowValue, Real, ServiceKey, REAL_F_KEEP_FLOWS,
    REAL_NONE, SVC_F_AFFINITY, SVC_F_FRAGMENTS, SVC_F_HASH_SRC,
};
use serde::{Deserialize, Serialize};

use super::maps::Maps;

/// A real as the maps name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRef {
    pub id: u32,
    /// `10.0.0.11:80`.
    pub real: String,
    /// It keeps flows (healthy, or draining) and has a MAC.
    pub usable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The virtual service the flow matches, if it is active on this node.
    pub service: Option<String>,
    /// The connection-table entry of this flow.
    pub entry: Option<RealRef>,
    /// What a new packet of this flow meets now: "entry" (the entry's real), "affinity",
    /// "maglev", "none" (no usable real: dropped) or "no service" (passed to the kernel).
    pub decision: String,
    /// The real a new flow would get now (table slot or affinity), if any.
    pub new_flow_real: Option<RealRef>,
    /// Maglev slot and table size, when the table decides.
    pub slot: Option<(u32, u32)>,
}

fn real_ref(maps: &Maps, id: u32, gen: Option<u32>) -> Option<RealRef> {
    let r: Real = maps.reals.get(&id, 0).ok()?;
    let same = gen.is_none_or(|g| g == r.gen);
    Some(RealRef {
        id,
        real: crate::config::host_port(ip_of(&r.addr), u16::from_be(r.port_be)),
        usable: same && r.flags & REAL_F_KEEP_FLOWS != 0 && r.dst_mac != [0; 6],
    })
}

/// The clock `bpf_ktime_get_ns` reads (CLOCK_MONOTONIC).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the data path computes from a flow's addresses: its connection-table and affinity
/// entries, and its hashes. One per family, as in `lb-ebpf`'s `Family`.
struct Flow {
    entry: Option<FlowValue>,
    affinity: Option<AffinityValue>,
    flow_hash: u32,
    source_hash: u32,
    address_hash: u32,
}

fn flow(
    maps: &Maps,
    client: SocketAddr,
    vip: SocketAddr,
    proto: u8,
    svc_id: Option<u32>,
) -> Option<Flow> {
    let (sport_be, dport_be) = (client.port().to_be(), vip.port().to_be());
    match (client.ip(), vip.ip()) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            let (src_be, dst_be) = (
                u32::from_ne_bytes(c.octets()),
                u32::from_ne_bytes(v.octets()),
            );
            let key = FlowKey {
                src_be,
                dst_be,
                sport_be,
                dport_be,
                proto: u32::from(proto),
            };
            Some(Flow {
                entry: maps.flows.get(&key, 0).ok(),
                affinity: svc_id
                    .and_then(|svc_id| maps.affinity.get(&AffinityKey { svc_id, src_be }, 0).ok()),
                flow_hash: flow_hash(src_be, dst_be, sport_be, dport_be, proto),
                source_hash: source_hash(src_be),
                address_hash: address_hash(src_be, dst_be, proto),
            })
        }
        (IpAddr::V6(c), IpAddr::V6(v)) => {
            let (src, dst) = (words6(c), words6(v));
            let key = FlowKey6 {
                src,
                dst,
                sport_be,
                dport_be,
                proto: u32::from(proto),
            };
            Some(Flow {
                entry: maps.flows6.get(&key, 0).ok(),
                affinity: svc_id
                    .and_then(|svc_id| maps.affinity6.get(&AffinityKey6 { svc_id, src }, 0).ok()),
                flow_hash: flow_hash6(&src, &dst, sport_be, dport_be, proto),
                source_hash: source_hash(addr6_hash(&src)),
                address_hash: address_hash(addr6_hash(&src), addr6_hash(&dst), proto),
            })
        }
        _ => None,
    }
}

/// Explains `client -> vip` over `proto` (an IP protocol number).
pub fn explain(maps: &Maps, client: SocketAddr, vip: SocketAddr, proto: u8) -> Explanation {
    let skey = ServiceKey::new(vip.ip(), vip.port(), proto);
    let svc = maps.services.get(&skey, 0).ok().or_else(|| {
        maps.services
            .get(&ServiceKey::new(vip.ip(), lb_common::PORT_ANY, proto), 0)
            .ok()
    });
    let Some(f) = flow(maps, client, vip, proto, svc.map(|s| s.id)) else {
        return Explanation {
            decision: "no service".into(),
            ..Default::default()
        };
    };
    let mut out = Explanation {
        entry: f
            .entry
            .and_then(|v| real_ref(maps, v.real_id, Some(v.real_gen))),
        ..Default::default()
    };
    let Some(svc) = svc else {
        out.decision = "no service".into();
        return out;
    };
    out.service = Some(format!(
        "{vip}/{}",
        match proto {
            lb_common::IPPROTO_TCP => "tcp",
            lb_common::IPPROTO_UDP => "udp",
            _ => "?",
        }
    ));
    let from_table = |hash: u32, out: &mut Explanation| -> Option<RealRef> {
        let slot = hash.checked_rem(svc.ring_size)?;
        out.slot = Some((slot, svc.ring_size));
        let id = maps
            .rings
            .get(svc.ring_base.wrapping_add(slot) as usize)
            .filter(|id| *id != REAL_NONE)?;
        real_ref(maps, id, None)
    };
    let mut via = "maglev";
    out.new_flow_real = if svc.flags & SVC_F_FRAGMENTS != 0 {
        via = "address hash";
        from_table(f.address_hash, &mut out)
    } else if svc.flags & SVC_F_AFFINITY != 0 {
        let remembered = f
            .affinity
            .filter(|a| {
                let timeout = u64::from(svc.affinity_timeout_s) * 1_000_000_000;
                monotonic_ns().wrapping_sub(a.last_seen_ns) <= timeout
            })
            .and_then(|a| real_ref(maps, a.real_id, Some(a.real_gen)))
            .filter(|r| r.usable);
        match remembered {
            Some(r) => {
                via = "affinity";
                Some(r)
            }
            None => from_table(f.source_hash, &mut out),
        }
    } else if svc.flags & SVC_F_HASH_SRC != 0 {
        from_table(f.source_hash, &mut out)
    } else {
        from_table(f.flow_hash, &mut out)
    };
    out.decision = match (&out.entry, &out.new_flow_real) {
        (Some(e), _) if e.usable => "entry",
        (_, Some(_)) => via,
        (_, None) => "none",
    }
    .into();
    out
}
