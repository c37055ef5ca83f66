//! Typed handles on the data-path maps, taken out of the loaded object.

use std::os::fd::AsFd as _;

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    Ebpf,
};
use lb_common::{
    maps as names, AffinityKey, AffinityKey6, AffinityValue, Counters, FlowKey, FlowKey6,
    FlowValue, FragKey, Real, Service, ServiceKey,
};

use super::rings::Rings;

pub struct Maps {
    pub filter: Array<MapData, u64>,
    pub services: HashMap<MapData, ServiceKey, Service>,
    pub rings: Rings,
    pub reals: Array<MapData, Real>,
    pub flows: HashMap<MapData, FlowKey, FlowValue>,
    pub affinity: HashMap<MapData, AffinityKey, AffinityValue>,
    pub stats: PerCpuArray<MapData, u64>,
    pub real_stats: PerCpuArray<MapData, Counters>,
    pub frag_services: HashMap<MapData, FragKey, ServiceKey>,
    pub flows6: HashMap<MapData, FlowKey6, FlowValue>,
    pub affinity6: HashMap<MapData, AffinityKey6, AffinityValue>,
    /// New flows of synced services (per-CPU queues) and the queues' positions, read by the
    /// flow sync through shared mappings.
    pub flow_events: MapData,
    pub flow_heads: MapData,
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the XDP object"))
}

/// An array map's data, for a shared mapping.
fn array(ebpf: &mut Ebpf, name: &str) -> Result<MapData> {
    match take(ebpf, name)? {
        aya::maps::Map::Array(m) => Ok(m),
        _ => Err(anyhow!("{name} is not an array map")),
    }
}

impl Maps {
    pub fn take(ebpf: &mut Ebpf, ring_slots: u32) -> Result<Maps> {
        let rings = Rings::map(array(ebpf, names::RINGS)?.fd().as_fd(), ring_slots)
            .context("mapping LB_RINGS (needs BPF_F_MMAPABLE, kernel 5.5+)")?;
        Ok(Maps {
            filter: take(ebpf, names::FILTER)?.try_into()?,
            services: take(ebpf, names::SERVICES)?.try_into()?,
            rings,
            reals: take(ebpf, names::REALS)?.try_into()?,
            flows: take(ebpf, names::FLOWS)?.try_into()?,
            affinity: take(ebpf, names::AFFINITY)?.try_into()?,
            stats: take(ebpf, names::STATS)?.try_into()?,
            real_stats: take(ebpf, names::REAL_STATS)?.try_into()?,
            frag_services: take(ebpf, names::FRAG_SERVICES)?.try_into()?,
            flows6: take(ebpf, names::FLOWS6)?.try_into()?,
            affinity6: take(ebpf, names::AFFINITY6)?.try_into()?,
            flow_events: array(ebpf, names::FLOW_EVENTS)?,
            flow_heads: array(ebpf, names::FLOW_HEADS)?,
        })
    }
}
