//! Map keys and values. Layouts are fixed by the size asserts at the bottom.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers the data path balances.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// An IPv6 address as four words of wire bytes (`u32::from_ne_bytes` of each 4-byte group),
/// as the data path loads it. IPv4 addresses in family-neutral keys are IPv4-mapped
/// (`::ffff:a.b.c.d`).
pub type Addr6 = [u32; 4];

/// Word 2 of an IPv4-mapped address (`::ffff:0:0/96`), in wire bytes.
const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// `addr_be` (wire bytes) as an IPv4-mapped `Addr6`.
#[inline(always)]
pub const fn v4_mapped(addr_be: u32) -> Addr6 {
    [0, 0, V4_MAPPED_WORD, addr_be]
}

/// The IPv4 address (wire bytes) an IPv4-mapped `Addr6` holds.
#[inline(always)]
pub const fn as_v4(a: &Addr6) -> Option<u32> {
    if a[0] == 0 && a[1] == 0 && a[2] == V4_MAPPED_WORD {
        Some(a[3])
    } else {
        None
    }
}

/// An address of either family as an `Addr6` (IPv4 mapped).
pub const fn addr6_of(addr: IpAddr) -> Addr6 {
    match addr {
        IpAddr::V4(a) => v4_mapped(u32::from_ne_bytes(a.octets())),
        IpAddr::V6(a) => words6(a),
    }
}

/// An IPv6 address as wire words.
pub const fn words6(a: Ipv6Addr) -> Addr6 {
    let o = a.octets();
    [
        u32::from_ne_bytes([o[0], o[1], o[2], o[3]]),
        u32::from_ne_bytes([o[4], o[5], o[6], o[7]]),
        u32::from_ne_bytes([o[8], o[9], o[10], o[11]]),
        u32::from_ne_bytes([o[12], o[13], o[14], o[15]]),
    ]
}

/// The address an `Addr6` holds: IPv4 when mapped.
pub const fn ip_of(a: &Addr6) -> IpAddr {
    if let Some(v4) = as_v4(a) {
        let [x, y, z, w] = v4.to_ne_bytes();
        return IpAddr::V4(Ipv4Addr::new(x, y, z, w));
    }
    let mut o = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = a[i].to_ne_bytes();
        o[4 * i] = b[0];
        o[4 * i + 1] = b[1];
        o[4 * i + 2] = b[2];
        o[4 * i + 3] = b[3];
        i += 1;
    }
    IpAddr::V6(Ipv6Addr::from_octets(o))
}

/// The 32 bits of an address the service filter hashes: an IPv4 address itself, an IPv6
/// address's four words folded (XOR).
#[inline(always)]
pub const fn filter_addr(a: &Addr6) -> u32 {
    match as_v4(a) {
        Some(v4) => v4,
        None => fold6(a),
    }
}

/// An IPv6 address folded to 32 bits for the service filter.
#[inline(always)]
pub const fn fold6(a: &Addr6) -> u32 {
    a[0] ^ a[1] ^ a[2] ^ a[3]
}

/// A ring slot or flow entry that points at no real server.
pub const REAL_NONE: u32 = u32::MAX;

/// `Service::flags`: hash only the client address (keepalived `sh`).
pub const SVC_F_HASH_SRC: u32 = 1 << 0;
/// `Service::flags`: keep a client on one real for `affinity_timeout_s` (`persistence_timeout`).
pub const SVC_F_AFFINITY: u32 = 1 << 1;
/// `Service::flags`: forward ICMP errors about the service's flows to their real.
pub const SVC_F_ICMP: u32 = 1 << 2;
/// `Service::flags`: steer by (client, VIP, protocol) only, with no connection table, so every
/// fragment of a datagram (which carries no ports but in the first) reaches the same real.
pub const SVC_F_FRAGMENTS: u32 = 1 << 3;
/// Publish the service's new flows to the agent (`LB_FLOW_EVENTS`) for its peers
/// (`flow_sync`).
pub const SVC_F_SYNC: u32 = 1 << 4;

/// A service key's port that stands for every port (`port: 0`, keepalived's port-less
/// services): looked up when no service has the packet's own port.
pub const PORT_ANY: u16 = 0;

/// `Real::flags`: flows already in the connection table may keep using this real. Set while
/// the real is healthy or draining (`inhibit_on_failure`); cleared when it fails, which makes
/// the data path move its flows to the real the Maglev table now names.
pub const REAL_F_KEEP_FLOWS: u32 = 1 << 0;

/// Words in `LB_FILTER`: a 65536-bit filter of (VIP, port, protocol) hashes. A clear bit means
/// "certainly not a service": traffic to the load balancer itself passes after one array read
/// instead of a hash-map lookup.
pub const FILTER_WORDS: u32 = 1024;

/// The filter bit of a service key: (word, bit).
#[inline(always)]
pub const fn filter_bit(addr_be: u32, port_be: u16, proto: u8) -> (u32, u32) {
    let h = crate::hash::mix32(addr_be ^ ((port_be as u32) << 8) ^ ((proto as u32) << 24));
    ((h >> 6) % FILTER_WORDS, h & 63)
}

/// Key of `LB_SERVICES`: what a packet must match to be balanced. One map for both families:
/// an IPv4 VIP is IPv4-mapped (the lookup is off the hot path, which is the connection table).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: Addr6,
    pub port_be: u16,
    pub proto: u8,
    pub _pad: u8,
}

impl ServiceKey {
    pub fn new(addr: impl Into<IpAddr>, port: u16, proto: u8) -> Self {
        Self::of(addr6_of(addr.into()), port.to_be(), proto)
    }

    /// From wire values.
    #[inline(always)]
    pub const fn of(addr: Addr6, port_be: u16, proto: u8) -> Self {
        Self {
            addr,
            port_be,
            proto,
            _pad: 0,
        }
    }

    pub const fn addr(&self) -> IpAddr {
        ip_of(&self.addr)
    }

    pub const fn is_v4(&self) -> bool {
        as_v4(&self.addr).is_some()
    }

    pub const fn port(&self) -> u16 {
        u16::from_be(self.port_be)
    }
}

/// Value of `LB_SERVICES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// The service's slot: its Maglev tables are at `2 * id` and `2 * id + 1` (times the table
    /// stride) in `LB_RINGS`, and `AffinityKey::svc_id` names it.
    pub id: u32,
    /// First `LB_RINGS` index of the active Maglev table. The agent writes the inactive half of
    /// the service's two tables, then flips this field with one map update.
    pub ring_base: u32,
    /// Number of slots in the table (prime, e.g. 65537).
    pub ring_size: u32,
    /// `SVC_F_*`.
    pub flags: u32,
    /// With `SVC_F_AFFINITY`: how long a client stays on its real after its last packet.
    pub affinity_timeout_s: u32,
}

/// Value of `LB_REALS` (indexed by real id; one id per real server *of a service*).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    /// The real server's MAC (resolved by the agent from the neighbour table).
    pub dst_mac: [u8; 6],
    /// The MAC of the interface the real is reached through.
    pub src_mac: [u8; 6],
    /// That interface. When it is not the one the packet came in on, the frame is redirected.
    pub ifindex: u32,
    /// Bumped whenever the id is given to another real, so stale flow entries are not followed.
    pub gen: u32,
    /// `REAL_F_*`.
    pub flags: u32,
    /// Which real of which service this id is (read back by a restarted agent, so ids and the
    /// connection table survive the restart; not used by the data path).
    pub svc_id: u32,
    /// The real's address (IPv4-mapped for IPv4).
    pub addr: Addr6,
    pub port_be: u16,
    pub _pad: [u8; 2],
}

/// Key of `LB_FRAG_SERVICES`: a VIP and protocol whose fragments a service steers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub addr_be: u32,
    pub proto: u32,
}

/// Key of `LB_FLOWS`, the connection table. `proto` is widened to 32 bits so the key has no
/// padding to zero on the hot path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src_be: u32,
    pub dst_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u32,
}

/// Key of `LB_FLOWS6`, the IPv6 connection table (a map of its own: IPv4 keys stay 16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey6 {
    pub src: Addr6,
    pub dst: Addr6,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u32,
}

/// Value of `LB_FLOWS` and `LB_FLOWS6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub real_id: u32,
    pub real_gen: u32,
}

/// A new connection-table entry, published by the data path (in a [`FlowSlot`]) for the
/// agent to share with its peers: the entry as written, and when. The record's length says
/// its family: [`FlowEvent4`] (32 bytes) or [`FlowEvent6`] (56).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent<K> {
    /// `bpf_ktime_get_coarse_ns()` when the entry was made: CLOCK_MONOTONIC at tick
    /// resolution, so an age read against the fine clock is up to one tick high.
    pub created_ns: u64,
    pub value: FlowValue,
    pub key: K,
}

pub type FlowEvent4 = FlowEvent<FlowKey>;
pub type FlowEvent6 = FlowEvent<FlowKey6>;

/// An element of `LB_FLOW_EVENTS`: one cache line holding a [`FlowEvent4`] or
/// [`FlowEvent6`] at the start of `event`, `len` bytes long.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSlot {
    pub len: u32,
    pub _pad: u32,
    pub event: [u64; 7],
}

/// An element of `LB_FLOW_HEADS`: one CPU's queue positions, each on a cache line of its own
/// so the data path's stores never contend with the agent's.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHead {
    /// Records this CPU has written (the next goes to slot `head % FLOW_QUEUE_SLOTS`).
    pub head: u64,
    pub _pad: [u64; 7],
    /// Records the agent has read.
    pub tail: u64,
    pub _pad2: [u64; 7],
}

/// Key of `LB_AFFINITY` (`persistence_timeout`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub svc_id: u32,
    pub src_be: u32,
}

/// Key of `LB_AFFINITY6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey6 {
    pub svc_id: u32,
    pub src: Addr6,
}

/// Value of `LB_AFFINITY` and `LB_AFFINITY6`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityValue {
    pub real_id: u32,
    pub real_gen: u32,
    /// `bpf_ktime_get_ns()` of the client's last packet.
    pub last_seen_ns: u64,
}

/// Per-CPU traffic counters of a real (`LB_REAL_STATS`); a service's are the sum of its
/// reals'.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    /// Flows that were assigned here (new flow-table entries), like ipvsadm's "Conns".
    pub flows: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.flows = self.flows.wrapping_add(other.flows);
    }
}

const _: () = {
    assert!(core::mem::size_of::<ServiceKey>() == 20);
    assert!(core::mem::size_of::<Service>() == 20);
    assert!(core::mem::size_of::<Real>() == 48);
    assert!(core::mem::size_of::<FlowKey>() == 16);
    assert!(core::mem::size_of::<FlowKey6>() == 40);
    assert!(core::mem::size_of::<AffinityKey6>() == 20);
    assert!(core::mem::size_of::<FragKey>() == 8);
    assert!(core::mem::size_of::<FlowValue>() == 8);
    assert!(core::mem::size_of::<FlowEvent4>() == 32);
    assert!(core::mem::size_of::<FlowEvent6>() == 56);
    assert!(core::mem::size_of::<FlowSlot>() == 64);
    assert!(core::mem::size_of::<FlowEvent6>() <= core::mem::size_of::<[u64; 7]>());
    assert!(core::mem::size_of::<FlowHead>() == 128);
    assert!(core::mem::size_of::<AffinityKey>() == 8);
    assert!(core::mem::size_of::<AffinityValue>() == 16);
    assert!(core::mem::size_of::<Counters>() == 24);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)] structs of integers and byte arrays with explicit
    // padding fields, so every bit pattern is valid and there are no uninitialised bytes.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for Service {}
    unsafe impl aya::Pod for Real {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FlowKey6 {}
    unsafe impl aya::Pod for AffinityKey6 {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl<K: aya::Pod> aya::Pod for FlowEvent<K> {}
    unsafe impl aya::Pod for FlowSlot {}
    unsafe impl aya::Pod for FlowHead {}
    unsafe impl aya::Pod for AffinityKey {}
    unsafe impl aya::Pod for AffinityValue {}
    unsafe impl aya::Pod for Counters {}
}
