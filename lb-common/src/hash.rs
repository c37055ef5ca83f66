//! The flow hash. Both sides use this one function: the XDP program to pick a Maglev slot, the
//! agent's tests to predict which real a flow lands on. It has no per-node seed, so every node
//! with the same configuration picks the same real for the same flow (failover keeps flows).

/// A fixed seed; part of the wire contract between nodes, never randomise it.
const SEED: u32 = 0x6c62_2d31; // "lb-1"

/// The murmur3 32-bit finaliser: full avalanche in five cheap instructions.
#[inline(always)]
pub const fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Hash of a 5-tuple. Addresses and ports are the raw wire bytes read as native integers
/// (`u32::from_ne_bytes(addr.octets())`), exactly as the XDP program loads them.
#[inline(always)]
pub const fn flow_hash(src_be: u32, dst_be: u32, sport_be: u16, dport_be: u16, proto: u8) -> u32 {
    let ports = (sport_be as u32) | ((dport_be as u32) << 16);
    let mut h = mix32(SEED ^ src_be);
    h = mix32(h ^ dst_be);
    h = mix32(h ^ ports);
    mix32(h ^ proto as u32)
}

/// Hash of (source, destination, protocol): what every fragment of a datagram carries
/// (`fragments: true` services).
#[inline(always)]
pub const fn address_hash(src_be: u32, dst_be: u32, proto: u8) -> u32 {
    let h = mix32(SEED ^ src_be);
    mix32(mix32(h ^ dst_be) ^ proto as u32)
}

/// An IPv6 address (wire words) hashed to 32 bits: what the IPv6 forms of the hashes below
/// use in place of an IPv4 address.
#[inline(always)]
pub const fn addr6_hash(a: &crate::Addr6) -> u32 {
    let mut h = mix32(SEED ^ a[0]);
    h = mix32(h ^ a[1]);
    h = mix32(h ^ a[2]);
    mix32(h ^ a[3])
}

/// `flow_hash` of an IPv6 5-tuple.
#[inline(always)]
pub const fn flow_hash6(
    src: &crate::Addr6,
    dst: &crate::Addr6,
    sport_be: u16,
    dport_be: u16,
    proto: u8,
) -> u32 {
    flow_hash(addr6_hash(src), addr6_hash(dst), sport_be, dport_be, proto)
}

/// Hash of the source address only (`scheduler: source_hash`, keepalived's `sh`).
#[inline(always)]
pub const fn source_hash(src_be: u32) -> u32 {
    mix32(mix32(SEED ^ src_be))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Pinned: changing these values breaks flow continuity between mixed-version nodes.
        assert_eq!(flow_hash(0, 0, 0, 0, 0), flow_hash(0, 0, 0, 0, 0));
        let a = flow_hash(
            u32::from_ne_bytes([10, 0, 0, 1]),
            u32::from_ne_bytes([10, 0, 0, 100]),
            1234u16.to_be(),
            80u16.to_be(),
            6,
        );
        let b = flow_hash(
            u32::from_ne_bytes([10, 0, 0, 1]),
            u32::from_ne_bytes([10, 0, 0, 100]),
            1235u16.to_be(),
            80u16.to_be(),
            6,
        );
        assert_ne!(a, b);
        assert_eq!(mix32(0), 0);
        assert_eq!(mix32(1), 0x514e_28b7);
    }

    #[test]
    fn spreads_sequential_ports() {
        // 65537 buckets, 200k sequential source ports: no bucket may be wildly over-full.
        let mut buckets = [0u8; 1024];
        for port in 0..200_000u32 {
            let h = flow_hash(1, 2, (port & 0xffff) as u16, 80, (port >> 16) as u8);
            let b = &mut buckets[(h % 1024) as usize];
            *b = b.saturating_add(1);
        }
        let max = buckets.iter().copied().max().unwrap_or(0);
        let min = buckets.iter().copied().min().unwrap_or(0);
        assert!(max < 255 && min > 120, "min {min} max {max}");
    }
}
