//! What differs between IPv4 and IPv6 once a packet is parsed: the address type, the
//! connection-table and affinity maps and their keys, the hashes, what a spoofed source is.
//! The balancing code (`select`, `main::balance`) is written once over `Family`.

use aya_ebpf::maps::LruHashMap;
use lb_common::{
    addr6_hash, address_hash, filter_addr, flow_hash, flow_hash6, fold6, source_hash, v4_mapped,
    Addr6, AffinityKey, AffinityKey6, AffinityValue, FlowKey, FlowKey6, FlowValue, ServiceKey,
};

use crate::maps::{LB_AFFINITY, LB_AFFINITY6, LB_FLOWS, LB_FLOWS6};

pub trait Family {
    type Addr: Copy;
    type Flow: Copy + 'static;
    type Affinity: 'static;
    /// Counted for each new flow of the family, beside `flow_new` (IPv6: `ipv6`).
    const NEW_FLOW_INFO: Option<u32>;

    fn flow_key(
        src: &Self::Addr,
        dst: &Self::Addr,
        sport_be: u16,
        dport_be: u16,
        proto: u8,
    ) -> Self::Flow;
    fn flows() -> &'static LruHashMap<Self::Flow, FlowValue>;
    /// The Maglev hash of a flow.
    fn flow_hash(k: &Self::Flow) -> u32;
    /// The Maglev hash of (client, VIP, protocol) (`fragments: true`).
    fn address_hash(src: &Self::Addr, dst: &Self::Addr, proto: u8) -> u32;
    /// The Maglev hash of a client (`source_hash`, affinity).
    fn source_hash(a: &Self::Addr) -> u32;
    fn affinity_key(svc_id: u32, src: &Self::Addr) -> Self::Affinity;
    fn affinity() -> &'static LruHashMap<Self::Affinity, AffinityValue>;
    /// The 32 bits of a destination the service filter hashes.
    fn filter_addr(a: &Self::Addr) -> u32;
    fn service_key(a: &Self::Addr, port_be: u16, proto: u8) -> ServiceKey;
    fn bogus_source(a: &Self::Addr) -> bool;
}

pub struct V4;
pub struct V6;

impl Family for V4 {
    type Addr = u32;
    type Flow = FlowKey;
    type Affinity = AffinityKey;
    const NEW_FLOW_INFO: Option<u32> = None;

    #[inline(always)]
    fn flow_key(src: &u32, dst: &u32, sport_be: u16, dport_be: u16, proto: u8) -> FlowKey {
        FlowKey {
            src_be: *src,
            dst_be: *dst,
            sport_be,
            dport_be,
            proto: proto as u32,
        }
    }
    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey, FlowValue> {
        &LB_FLOWS
    }
    #[inline(always)]
    fn flow_hash(k: &FlowKey) -> u32 {
        flow_hash(k.src_be, k.dst_be, k.sport_be, k.dport_be, k.proto as u8)
    }
    #[inline(always)]
    fn address_hash(src: &u32, dst: &u32, proto: u8) -> u32 {
        address_hash(*src, *dst, proto)
    }
    #[inline(always)]
    fn source_hash(a: &u32) -> u32 {
        source_hash(*a)
    }
    #[inline(always)]
    fn affinity_key(svc_id: u32, src: &u32) -> AffinityKey {
        AffinityKey {
            svc_id,
            src_be: *src,
        }
    }
    #[inline(always)]
    fn affinity() -> &'static LruHashMap<AffinityKey, AffinityValue> {
        &LB_AFFINITY
    }
    #[inline(always)]
    fn filter_addr(a: &u32) -> u32 {
        *a
    }
    #[inline(always)]
    fn service_key(a: &u32, port_be: u16, proto: u8) -> ServiceKey {
        ServiceKey::of(v4_mapped(*a), port_be, proto)
    }
    #[inline(always)]
    fn bogus_source(a: &u32) -> bool {
        crate::parse::bogus_source(*a)
    }
}

impl Family for V6 {
    type Addr = Addr6;
    type Flow = FlowKey6;
    type Affinity = AffinityKey6;
    const NEW_FLOW_INFO: Option<u32> = Some(lb_common::stats::INFO_IPV6);

    #[inline(always)]
    fn flow_key(src: &Addr6, dst: &Addr6, sport_be: u16, dport_be: u16, proto: u8) -> FlowKey6 {
        FlowKey6 {
            src: *src,
            dst: *dst,
            sport_be,
            dport_be,
            proto: proto as u32,
        }
    }
    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey6, FlowValue> {
        &LB_FLOWS6
    }
    #[inline(always)]
    fn flow_hash(k: &FlowKey6) -> u32 {
        flow_hash6(&k.src, &k.dst, k.sport_be, k.dport_be, k.proto as u8)
    }
    #[inline(always)]
    fn address_hash(src: &Addr6, dst: &Addr6, proto: u8) -> u32 {
        address_hash(addr6_hash(src), addr6_hash(dst), proto)
    }
    #[inline(always)]
    fn source_hash(a: &Addr6) -> u32 {
        source_hash(addr6_hash(a))
    }
    #[inline(always)]
    fn affinity_key(svc_id: u32, src: &Addr6) -> AffinityKey6 {
        AffinityKey6 { svc_id, src: *src }
    }
    #[inline(always)]
    fn affinity() -> &'static LruHashMap<AffinityKey6, AffinityValue> {
        &LB_AFFINITY6
    }
    #[inline(always)]
    fn filter_addr(a: &Addr6) -> u32 {
        fold6(a)
    }
    #[inline(always)]
    fn service_key(a: &Addr6, port_be: u16, proto: u8) -> ServiceKey {
        ServiceKey::of(*a, port_be, proto)
    }
    #[inline(always)]
    fn bogus_source(a: &Addr6) -> bool {
        crate::parse6::bogus_source(a)
    }
}

// The agent sets filter bits with `lb_common::filter_addr`, which must agree with both.
const _: () = {
    let v4 = v4_mapped(0x0100_000a);
    assert!(filter_addr(&v4) == 0x0100_000a);
};
