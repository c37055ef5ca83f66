//! Map keys and values. Layouts are fixed by the size asserts at the bottom.

use core::net::Ipv4Addr;

/// IP protocol numbers the data path balances.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

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

/// Key of `LB_SERVICES`: what a packet must match to be balanced.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr_be: u32,
    pub port_be: u16,
    pub proto: u8,
    pub _pad: u8,
}

impl ServiceKey {
    pub const fn new(addr: Ipv4Addr, port: u16, proto: u8) -> Self {
        Self {
            addr_be: u32::from_ne_bytes(addr.octets()),
            port_be: port.to_be(),
            proto,
            _pad: 0,
        }
    }

    pub const fn addr(&self) -> Ipv4Addr {
        let [a, b, c, d] = self.addr_be.to_ne_bytes();
        Ipv4Addr::new(a, b, c, d)
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
    pub addr_be: u32,
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

/// Value of `LB_FLOWS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub real_id: u32,
    pub real_gen: u32,
}

/// Key of `LB_AFFINITY` (`persistence_timeout`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub svc_id: u32,
    pub src_be: u32,
}

/// Value of `LB_AFFINITY`.
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
    assert!(core::mem::size_of::<ServiceKey>() == 8);
    assert!(core::mem::size_of::<Service>() == 20);
    assert!(core::mem::size_of::<Real>() == 36);
    assert!(core::mem::size_of::<FlowKey>() == 16);
    assert!(core::mem::size_of::<FragKey>() == 8);
    assert!(core::mem::size_of::<FlowValue>() == 8);
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
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FlowValue {}
    unsafe impl aya::Pod for AffinityKey {}
    unsafe impl aya::Pod for AffinityValue {}
    unsafe impl aya::Pod for Counters {}
}
