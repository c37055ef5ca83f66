//! Map names and default capacities, used by both sides. The XDP object declares each map with
//! a placeholder size; the agent sets the real capacity at load time from its configuration.

/// `[u64; FILTER_WORDS]`: bits of active service keys (see `types::filter_bit`).
pub const FILTER: &str = "LB_FILTER";
/// `ServiceKey -> Service`. No-prealloc hash: a replaced entry is freed after RCU, so the data
/// path never reads a recycled element while the agent flips a table.
pub const SERVICES: &str = "LB_SERVICES";
/// Flat array of real ids, two per element (`[u32; 2]`): two Maglev tables (active and
/// standby) per service slot. Slot `i` is element `i / 2`, lane `i % 2`.
pub const RINGS: &str = "LB_RINGS";
/// `real id -> Real`.
pub const REALS: &str = "LB_REALS";
/// The connection table: LRU `FlowKey -> FlowValue`.
pub const FLOWS: &str = "LB_FLOWS";
/// Client affinity: LRU `AffinityKey -> AffinityValue`.
pub const AFFINITY: &str = "LB_AFFINITY";
/// The IPv6 connection table: LRU `FlowKey6 -> FlowValue`.
pub const FLOWS6: &str = "LB_FLOWS6";
/// IPv6 client affinity: LRU `AffinityKey6 -> AffinityValue`.
pub const AFFINITY6: &str = "LB_AFFINITY6";
/// Per-CPU `u64` counters indexed by `stats::*`.
pub const STATS: &str = "LB_STATS";
/// Per-CPU `Counters` per real id. Each real id belongs to one service, so the agent sums a
/// service's counters from its reals' (the data path updates one counter per packet).
pub const REAL_STATS: &str = "LB_REAL_STATS";

/// `FragKey -> ServiceKey`: the service that steers fragments to a VIP and protocol.
pub const FRAG_SERVICES: &str = "LB_FRAG_SERVICES";

/// `FlowSlot`s: the new flows of services with `SVC_F_SYNC`, for the agent's flow sync. One
/// queue of `FLOW_QUEUE_SLOTS` per possible CPU (CPU `c` owns `c * FLOW_QUEUE_SLOTS ..`),
/// written with plain stores; the agent maps it and drains it every batch interval.
pub const FLOW_EVENTS: &str = "LB_FLOW_EVENTS";
/// `FlowHead`s, one per possible CPU: how many records that CPU's queue has taken (the data
/// path's) and how many the agent has read.
pub const FLOW_HEADS: &str = "LB_FLOW_HEADS";

/// Every map the data path uses, in a stable order (pinning, compatibility checks).
pub const ALL: [&str; 13] = [
    FILTER,
    SERVICES,
    RINGS,
    REALS,
    FLOWS,
    AFFINITY,
    STATS,
    REAL_STATS,
    FRAG_SERVICES,
    FLOWS6,
    AFFINITY6,
    FLOW_EVENTS,
    FLOW_HEADS,
];

/// Names of the XDP programs in the object.
pub const PROG_LB: &str = "lb_xdp";
/// The balancer without the edge handling (ICMP errors, fragment steering), for the bench.
pub const PROG_LB_BASE: &str = "lb_xdp_base";
/// Passes everything: put on the far end of a veth so native XDP_TX frames are delivered.
pub const PROG_PASS: &str = "lb_pass";
/// Swaps the Ethernet addresses and transmits: the floor the benchmarks compare against.
pub const PROG_MACSWAP: &str = "lb_macswap";
/// Drops everything: the receiving end of the forwarding benchmark (counts nothing itself;
/// the veth's own XDP counters do).
pub const PROG_DROP: &str = "lb_drop";

pub const DEFAULT_MAX_SERVICES: u32 = 64;
pub const DEFAULT_MAX_REALS: u32 = 4096;
/// Entries of the service map: one per port of every service (a multi-port service has one
/// per port). The map allocates on use, so the default costs nothing until used.
pub const DEFAULT_MAX_SERVICE_PORTS: u32 = 4096;
pub const DEFAULT_RING_SIZE: u32 = 65537;
pub const DEFAULT_FLOWS: u32 = 1 << 20;
/// IPv6 connection-table entries: a map of its own (40-byte keys), preallocated like the IPv4
/// one, so smaller by default.
pub const DEFAULT_FLOWS6: u32 = 1 << 18;
pub const DEFAULT_AFFINITY: u32 = 1 << 16;
/// Slots of each CPU's queue in `LB_FLOW_EVENTS` (a power of two): 1 MiB a CPU, 1.6 s of
/// 10,000 new flows a second on one CPU, or a burst of 16,000 within one batch interval.
pub const FLOW_QUEUE_SLOTS: u32 = 1 << 14;
/// A table must have at least this many slots (and be prime).
pub const MIN_RING_SIZE: u32 = 13;
/// Upper bound on a table, so `ring_base + slot` never overflows with the largest capacities.
pub const MAX_RING_SIZE: u32 = 1 << 20;
