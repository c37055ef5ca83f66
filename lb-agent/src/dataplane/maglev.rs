//! Weighted Maglev (Eisenbud et al., NSDI 2016, §3.4): every backend walks its own permutation
//! of the table and claims the next free slot on its turn. Turns are handed out in proportion
//! to weights (a backend with weight w gets w/max_weight of a turn per round), so slot shares
//! follow the weights, and removing one of N backends moves only about 1/N of the slots.
//!
//! The result depends only on the backends' identities (address, port) and weights, never on
//! the order they are given in or on anything node-local: two nodes with the same config build
//! the same table, so a flow keeps its real when the VIP fails over.

use std::net::IpAddr;

/// A backend as Maglev sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// 64-bit FNV-1a then a murmur3 finaliser: a fixed, platform-independent hash (never
/// `std`'s randomly seeded one: the table must be the same on every node).
fn hash64(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The bytes a backend's permutation is hashed from: its address (4 or 16 bytes) and port.
fn identity(b: &Backend) -> Vec<u8> {
    let mut v = match b.addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    v.extend_from_slice(&b.port.to_be_bytes());
    v
}

/// A digest of what a service's table is built from: its size and the reals that take new
/// flows (weight above 0 and a known MAC) with their weights, in canonical order. Nodes whose
/// digests agree place new flows alike (the `lb_service_maglev_info` metric compares them).
pub fn fingerprint(svc: &super::DesiredService) -> u64 {
    let mut live: Vec<Backend> = svc
        .reals
        .iter()
        .filter(|r| r.weight > 0 && r.l2.is_some())
        .map(|r| Backend {
            addr: r.addr,
            port: r.port,
            weight: r.weight,
        })
        .collect();
    live.sort();
    let mut bytes = svc.table_size.to_be_bytes().to_vec();
    for b in &live {
        bytes.extend_from_slice(&identity(b));
        bytes.extend_from_slice(&b.weight.to_be_bytes());
    }
    hash64(&bytes, 0)
}

/// Builds the table: `size` slots (prime), each holding an index into `backends`.
/// Backends with weight 0 get no slot. Returns `None` when no backend has a weight.
pub fn build(backends: &[Backend], size: u32) -> Option<Vec<u32>> {
    let m = size as u64;
    // Canonical order: identical on every node whatever the config order.
    let mut order: Vec<usize> = (0..backends.len())
        .filter(|&i| backends[i].weight > 0)
        .collect();
    if order.is_empty() || m < 2 {
        return None;
    }
    order.sort_by_key(|&i| identity(&backends[i]));
    let max_w = order.iter().map(|&i| backends[i].weight).max().unwrap_or(1) as u64;

    struct Walk {
        idx: u32,
        offset: u64,
        skip: u64,
        next: u64,
        weight: u64,
        credit: u64,
    }
    let mut walks: Vec<Walk> = order
        .iter()
        .map(|&i| {
            let id = identity(&backends[i]);
            Walk {
                idx: i as u32,
                offset: hash64(&id, 0x6d61_676c_6576_3031) % m,
                skip: hash64(&id, 0x736b_6970_3032_3033) % (m - 1) + 1,
                next: 0,
                weight: backends[i].weight as u64,
                credit: 0,
            }
        })
        .collect();

    let mut table = vec![u32::MAX; size as usize];
    let mut filled = 0u64;
    while filled < m {
        for w in walks.iter_mut() {
            w.credit += w.weight;
            if w.credit < max_w {
                continue;
            }
            w.credit -= max_w;
            // Next free slot on this backend's permutation. The permutation visits every slot
            // (skip is coprime with the prime m), so this terminates.
            loop {
                let slot = ((w.offset + w.next * w.skip) % m) as usize;
                w.next += 1;
                if table[slot] == u32::MAX {
                    table[slot] = w.idx;
                    filled += 1;
                    break;
                }
            }
            if filled == m {
                break;
            }
        }
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8, weight: impl Fn(u8) -> u32) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                addr: std::net::Ipv4Addr::new(10, 0, 1, i + 1).into(),
                port: 80,
                weight: weight(i),
            })
            .collect()
    }

    fn shares(table: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in table {
            c[s as usize] += 1;
        }
        c
    }

    #[test]
    fn even_with_equal_weights() {
        for n in [2u8, 3, 10, 100] {
            let b = backends(n, |_| 1);
            let t = build(&b, 65537).unwrap_or_default();
            let c = shares(&t, n as usize);
            let (min, max) = (*c.iter().min().unwrap_or(&0), *c.iter().max().unwrap_or(&0));
            // The Maglev paper reports max/min close to 1 for M >> N.
            assert!(
                max as f64 / min as f64 <= 1.02,
                "n={n}: min {min} max {max}"
            );
        }
    }

    #[test]
    fn shares_follow_weights() {
        let b = backends(3, |i| [1, 2, 5][i as usize]);
        let t = build(&b, 65537).unwrap_or_default();
        let c = shares(&t, 3);
        let unit = 65537.0 / 8.0;
        for (i, w) in [1.0, 2.0, 5.0].iter().enumerate() {
            let ratio = c[i] as f64 / (unit * w);
            assert!(
                (0.98..=1.02).contains(&ratio),
                "backend {i}: {} slots",
                c[i]
            );
        }
    }

    #[test]
    fn zero_weight_gets_nothing_and_empty_is_none() {
        let b = backends(3, |i| if i == 1 { 0 } else { 1 });
        let t = build(&b, 251).unwrap_or_default();
        assert!(!t.contains(&1));
        assert!(t.iter().all(|&s| s == 0 || s == 2));
        assert_eq!(build(&backends(2, |_| 0), 251), None);
        assert_eq!(build(&[], 251), None);
    }

    #[test]
    fn order_of_config_does_not_matter() {
        let mut b = backends(7, |i| 1 + i as u32 % 3);
        let t1 = build(&b, 65537).unwrap_or_default();
        let ids1: Vec<Backend> = t1.iter().map(|&i| b[i as usize]).collect();
        b.reverse();
        let t2 = build(&b, 65537).unwrap_or_default();
        let ids2: Vec<Backend> = t2.iter().map(|&i| b[i as usize]).collect();
        assert_eq!(ids1, ids2);
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth() {
        for n in [5u8, 10, 50] {
            let b = backends(n, |_| 1);
            let before = build(&b, 65537).unwrap_or_default();
            let removed = b[(n / 2) as usize];
            let rest: Vec<Backend> = b.iter().copied().filter(|x| *x != removed).collect();
            let after = build(&rest, 65537).unwrap_or_default();
            let moved = before
                .iter()
                .zip(&after)
                .filter(|(x, y)| b[**x as usize] != rest[**y as usize])
                .count();
            let ideal = 65537.0 / n as f64;
            // Slots of the removed backend must move; Maglev moves a little more than that.
            assert!(
                moved as f64 >= ideal * 0.97 && (moved as f64) <= ideal * 1.6,
                "n={n}: moved {moved}, ideal {ideal:.0}"
            );
        }
    }
}
