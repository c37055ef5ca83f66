//! Which real gets the packet: the connection table first (the hot path: one lookup, no
//! service lookup), then for a new flow client affinity or the service's Maglev table. All
//! tables are computed by the agent; this only looks things up. Written once for both
//! families (`Family`).

use core::ptr::write_volatile;

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns};
use lb_common::{
    maps::FLOW_QUEUE_SLOTS, stats, AffinityValue, FlowEvent, FlowValue, Real, Service, PORT_ANY,
    REAL_F_KEEP_FLOWS, REAL_NONE, SVC_F_AFFINITY, SVC_F_FRAGMENTS, SVC_F_HASH_SRC, SVC_F_SYNC,
};

use crate::{
    counters::count,
    family::Family,
    maps::{LB_FLOW_EVENTS, LB_FLOW_HEADS, LB_REALS, LB_RINGS, LB_SERVICES},
    parse::Packet,
};

/// The service for (VIP, port, protocol): its own port's, else the VIP's all-ports service.
#[inline(always)]
pub fn service<F: Family>(addr: &F::Addr, port_be: u16, proto: u8) -> Option<Service> {
    let mut key = F::service_key(addr, port_be, proto);
    // SAFETY: copied at once; the map is no-prealloc, so a replaced entry is not recycled
    // under us.
    if let Some(s) = unsafe { LB_SERVICES.get(&key) } {
        return Some(*s);
    }
    key.port_be = PORT_ANY;
    // SAFETY: as above.
    unsafe { LB_SERVICES.get(&key) }.copied()
}

pub struct Choice {
    pub real_id: u32,
    pub real: Real,
}

const NS_PER_SEC: u64 = 1_000_000_000;

#[inline(always)]
fn real(id: u32) -> Option<Real> {
    LB_REALS.get(id).copied()
}

/// A remembered real is usable if it is still the same real (generation) and still keeps flows
/// (the agent clears that flag when the real fails, leaves the config, or its service is not
/// served by this node any more).
#[inline(always)]
fn usable(id: u32, gen: u32) -> Option<Real> {
    let r = real(id)?;
    if r.gen == gen && r.flags & REAL_F_KEEP_FLOWS != 0 {
        Some(r)
    } else {
        None
    }
}

pub enum Remembered {
    Usable(Choice),
    /// An entry whose real cannot take it any more.
    Stale,
    None,
}

/// The connection table's answer for this flow.
#[inline(always)]
pub fn remembered<F: Family>(key: &F::Flow) -> Remembered {
    // SAFETY: the value is copied at once; LRU entries are only ever replaced whole.
    match unsafe { F::flows().get(key) }.copied() {
        Some(v) => match usable(v.real_id, v.real_gen) {
            Some(real) => Remembered::Usable(Choice {
                real_id: v.real_id,
                real,
            }),
            None => Remembered::Stale,
        },
        None => Remembered::None,
    }
}

/// The real the service's table names for a flow, remembering nothing (an ICMP error about a
/// flow this node has no entry for). `src` is the flow's client.
#[inline(always)]
pub fn table_choice<F: Family>(
    svc: &Service,
    key: &F::Flow,
    src: &F::Addr,
    dst: &F::Addr,
    proto: u8,
) -> Result<Choice, u32> {
    let hash = if by_address(svc) {
        F::address_hash(src, dst, proto)
    } else if svc.flags & (SVC_F_HASH_SRC | SVC_F_AFFINITY) != 0 {
        F::source_hash(src)
    } else {
        F::flow_hash(key)
    };
    table_slot(svc, hash)
}

/// The real in the service's table slot for `hash`, remembering nothing.
#[inline(always)]
pub fn table_slot(svc: &Service, hash: u32) -> Result<Choice, u32> {
    let (real_id, real) = by_table(svc, hash)?;
    Ok(Choice { real_id, real })
}

/// Whether the service steers by (client, VIP, protocol) only (`fragments: true`): no
/// connection table, its packets and its fragments alike.
#[inline(always)]
pub fn by_address(svc: &Service) -> bool {
    svc.flags & SVC_F_FRAGMENTS != 0
}

/// Chooses a real for a new flow and remembers it.
#[inline(always)]
pub fn choose_new<F: Family>(
    svc: &Service,
    pkt: &Packet<F::Addr>,
    key: &F::Flow,
) -> Result<Choice, u32> {
    let (real_id, r) = if svc.flags & SVC_F_AFFINITY != 0 {
        by_affinity::<F>(svc, &pkt.saddr)?
    } else if svc.flags & SVC_F_HASH_SRC != 0 {
        by_table(svc, F::source_hash(&pkt.saddr))?
    } else {
        by_table(svc, F::flow_hash(key))?
    };
    let value = FlowValue {
        real_id,
        real_gen: r.gen,
    };
    if F::flows().insert(key, &value, 0).is_err() {
        count(stats::INFO_FLOW_INSERT_FAILED);
    } else if svc.flags & SVC_F_SYNC != 0 {
        publish::<F>(key, &value);
    }
    Ok(Choice { real_id, real: r })
}

/// Hands a new entry to the agent for its peers: the entry as written and the time (the
/// coarse clock: a tick-cached read, measured cheaper here than a clock-source read), into
/// this CPU's queue. Plain stores, no lock, no atomic: the slot, then the head that makes it
/// visible. Nothing else writes this CPU's queue while this runs (XDP runs in softirq
/// context, which does not nest on a CPU); the agent drops any slot it may have read while
/// it was being rewritten.
#[inline(always)]
fn publish<F: Family>(key: &F::Flow, value: &FlowValue) {
    // SAFETY: plain helper call.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(head) = LB_FLOW_HEADS.get_ptr_mut(cpu) else {
        count(stats::INFO_FLOW_PUBLISH_FAILED);
        return;
    };
    // SAFETY: a valid map value pointer, written only from this CPU.
    let n = unsafe { (*head).head };
    let idx = cpu
        .wrapping_mul(FLOW_QUEUE_SLOTS)
        .wrapping_add(n as u32 & (FLOW_QUEUE_SLOTS - 1));
    let Some(slot) = LB_FLOW_EVENTS.get_ptr_mut(idx) else {
        count(stats::INFO_FLOW_PUBLISH_FAILED);
        return;
    };
    // SAFETY: valid map value pointers; `event` is 8-aligned and holds either family's
    // record (checked in lb-common). All three stores are volatile, so they stay in this
    // order (the target has no fences): the head, last, never shows the agent a slot
    // before it is written.
    unsafe {
        write_volatile(&mut (*slot).len, size_of::<FlowEvent<F::Flow>>() as u32);
        write_volatile(
            (*slot).event.as_mut_ptr().cast::<FlowEvent<F::Flow>>(),
            FlowEvent {
                created_ns: bpf_ktime_get_coarse_ns(),
                value: *value,
                key: *key,
            },
        );
        write_volatile(&mut (*head).head, n.wrapping_add(1));
    }
}

/// The real in the service's Maglev table slot for `hash`.
#[inline(always)]
pub fn by_table(svc: &Service, hash: u32) -> Result<(u32, Real), u32> {
    let slot = hash
        .checked_rem(svc.ring_size)
        .ok_or(stats::PASS_INTERNAL)?;
    let idx = svc.ring_base.wrapping_add(slot);
    let pair = LB_RINGS.get(idx >> 1).ok_or(stats::PASS_INTERNAL)?;
    let id = pair[(idx & 1) as usize];
    if id == REAL_NONE {
        return Err(stats::DROP_NO_REAL);
    }
    let r = real(id).ok_or(stats::PASS_INTERNAL)?;
    Ok((id, r))
}

/// Client affinity (`persistence_timeout`): the client's last real while it is usable and the
/// client was seen within the timeout; otherwise the table's choice, remembered.
#[inline(always)]
fn by_affinity<F: Family>(svc: &Service, saddr: &F::Addr) -> Result<(u32, Real), u32> {
    let key = F::affinity_key(svc.id, saddr);
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let timeout = svc.affinity_timeout_s as u64 * NS_PER_SEC;
    if let Some(v) = F::affinity().get_ptr_mut(&key) {
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
    let (id, r) = by_table(svc, F::source_hash(saddr))?;
    let value = AffinityValue {
        real_id: id,
        real_gen: r.gen,
        last_seen_ns: now,
    };
    let _ = F::affinity().insert(&key, &value, 0);
    Ok((id, r))
}
