//! The maps. Capacities here are placeholders: the agent sets the real ones at load time
//! (`EbpfLoader::map_max_entries`) from its configuration.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use lb_common::{
    stats, AffinityKey, AffinityKey6, AffinityValue, Counters, FlowHead, FlowKey, FlowKey6,
    FlowSlot, FlowValue, FragKey, Real, Service, ServiceKey, FILTER_WORDS,
};

/// Bits of active service keys: most traffic that is not for a service leaves after one read.
#[map]
pub static LB_FILTER: Array<u64> = Array::with_max_entries(FILTER_WORDS, 0);

#[map]
pub static LB_SERVICES: HashMap<ServiceKey, Service> =
    HashMap::with_max_entries(64, BPF_F_NO_PREALLOC);

/// Real ids, two per element: the kernel rounds array elements up to 8 bytes, so a plain `u32`
/// array would waste half its memory and not be a flat `u32` array when the agent maps it
/// (mmap-able, so a whole Maglev table is written without a syscall per slot).
#[map]
pub static LB_RINGS: Array<[u32; 2]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

#[map]
pub static LB_REALS: Array<Real> = Array::with_max_entries(1, 0);

#[map]
pub static LB_FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(1024, 0);

/// The IPv6 connection table: its own map, so IPv4 keys stay 16 bytes.
#[map]
pub static LB_FLOWS6: LruHashMap<FlowKey6, FlowValue> = LruHashMap::with_max_entries(1024, 0);

/// The service that steers fragments to a VIP and protocol.
#[map]
pub static LB_FRAG_SERVICES: HashMap<FragKey, ServiceKey> = HashMap::with_max_entries(64, 0);

#[map]
pub static LB_AFFINITY: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::with_max_entries(1024, 0);

#[map]
pub static LB_AFFINITY6: LruHashMap<AffinityKey6, AffinityValue> =
    LruHashMap::with_max_entries(1024, 0);

#[map]
pub static LB_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

#[map]
pub static LB_REAL_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

/// New flows of synced services, for the agent's flow sync: a queue of `FLOW_QUEUE_SLOTS`
/// per CPU. An array (not a ring buffer) so a record costs plain stores: the verifier inlines
/// the lookups, no lock is taken and no atomic is made. Mapped by the agent.
#[map]
pub static LB_FLOW_EVENTS: Array<FlowSlot> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Each CPU's queue positions in `LB_FLOW_EVENTS`.
#[map]
pub static LB_FLOW_HEADS: Array<FlowHead> = Array::with_max_entries(1, BPF_F_MMAPABLE);
