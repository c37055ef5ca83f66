//! Which real gets the packet: the connection table first, then client affinity, then the
//! service's Maglev table. All tables are computed by the agent; this only looks things up.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use lb_common::{
    flow_hash, source_hash, stats, AffinityKey, AffinityValue, FlowKey, FlowValue, Real, Service,
    REAL_F_KEEP_FLOWS, REAL_NONE, SVC_F_AFFINITY, SVC_F_HASH_SRC,
};

use crate::{
    counters::count,
    maps::{LB_AFFINITY, LB_FLOWS, LB_REALS, LB_RINGS},
    parse::Packet,
};

pub struct Choice {
    pub real_id: u32,
    pub real: Real,
    /// The flow was assigned to this real just now.
    pub new_flow: bool,
}

const NS_PER_SEC: u64 = 1_000_000_000;

#[inline(always)]
fn real(id: u32) -> Option<Real> {
    LB_REALS.get(id).copied()
}

/// A remembered real is usable if it is still the same real (generation) and still keeps flows.
#[inline(always)]
fn usable(id: u32, gen: u32) -> Option<Real> {
    let r = real(id)?;
    if r.gen == gen && r.flags & REAL_F_KEEP_FLOWS != 0 {
        Some(r)
    } else {
        None
    }
}

#[inline(always)]
pub fn choose(svc: &Service, pkt: &Packet) -> Result<Choice, u32> {
    let key = FlowKey {
        src_be: pkt.saddr_be,
        dst_be: pkt.daddr_be,
        sport_be: pkt.sport_be,
        dport_be: pkt.dport_be,
        proto: pkt.proto,
        _pad: [0; 3],
    };
    // SAFETY: the value is copied at once; LRU entries are only ever replaced whole.
    if let Some(v) = unsafe { LB_FLOWS.get(&key) }.copied() {
        if let Some(r) = usable(v.real_id, v.real_gen) {
            count(stats::INFO_FLOW_HIT);
            return Ok(Choice {
                real_id: v.real_id,
                real: r,
                new_flow: false,
            });
        }
        count(stats::INFO_FLOW_RESELECT);
    }

    let (real_id, r) = if svc.flags & SVC_F_AFFINITY != 0 {
        by_affinity(svc, pkt.saddr_be)?
    } else if svc.flags & SVC_F_HASH_SRC != 0 {
        by_table(svc, source_hash(pkt.saddr_be))?
    } else {
        let hash = flow_hash(
            pkt.saddr_be,
            pkt.daddr_be,
            pkt.sport_be,
            pkt.dport_be,
            pkt.proto,
        );
        by_table(svc, hash)?
    };

    let value = FlowValue {
        real_id,
        real_gen: r.gen,
    };
    if LB_FLOWS.insert(&key, &value, 0).is_err() {
        count(stats::INFO_FLOW_INSERT_FAILED);
    }
    count(stats::INFO_FLOW_NEW);
    Ok(Choice {
        real_id,
        real: r,
        new_flow: true,
    })
}

/// The real in the service's Maglev table slot for `hash`.
#[inline(always)]
fn by_table(svc: &Service, hash: u32) -> Result<(u32, Real), u32> {
    let slot = hash
        .checked_rem(svc.ring_size)
        .ok_or(stats::PASS_INTERNAL)?;
    let idx = svc.ring_base.wrapping_add(slot);
    let pair = LB_RINGS.get(idx >> 1).ok_or(stats::PASS_INTERNAL)?;
    let id = pair[(idx & 1) as usize];
    if id == REAL_NONE {
        return Err(stats::PASS_NO_REAL);
    }
    let r = real(id).ok_or(stats::PASS_INTERNAL)?;
    Ok((id, r))
}

/// Client affinity (`persistence_timeout`): the client's last real while it is usable and the
/// client was seen within the timeout; otherwise the table's choice, remembered.
#[inline(always)]
fn by_affinity(svc: &Service, saddr_be: u32) -> Result<(u32, Real), u32> {
    let key = AffinityKey {
        svc_id: svc.id,
        src_be: saddr_be,
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let timeout = svc.affinity_timeout_s as u64 * NS_PER_SEC;
    if let Some(v) = LB_AFFINITY.get_ptr_mut(&key) {
        // SAFETY: a valid map value pointer; fields are read and written in place.
        let (id, gen, seen) = unsafe { ((*v).real_id, (*v).real_gen, (*v).last_seen_ns) };
        if now.wrapping_sub(seen) <= timeout {
            if let Some(r) = usable(id, gen) {
                unsafe { (*v).last_seen_ns = now };
                count(stats::INFO_AFFINITY_HIT);
                return Ok((id, r));
            }
        }
    }
    let (id, r) = by_table(svc, source_hash(saddr_be))?;
    let value = AffinityValue {
        real_id: id,
        real_gen: r.gen,
        last_seen_ns: now,
    };
    let _ = LB_AFFINITY.insert(&key, &value, 0);
    Ok((id, r))
}
