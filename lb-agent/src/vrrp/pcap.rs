//! A tiny reader of classic pcap files (not pcapng), test-only, for the
//! keepalived captures in `fixtures/`.
//!
//! Layout (libpcap `pcap-savefile(5)`): a 24-byte global header (magic,
//! version, thiszone, sigfigs, snaplen, linktype) then records of a 16-byte
//! header (ts_sec, ts_frac, incl_len, orig_len) and `incl_len` bytes. The
//! magic tells the byte order and whether `ts_frac` is micro- or
//! nanoseconds. Only Ethernet (linktype 1) is accepted, since that is what
//! the fixtures are and all we need.

use std::time::Duration;

const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERNET_HEADER_LEN: usize = 14;

/// Why a capture could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapError {
    /// The file ends inside a header or a record.
    Truncated,
    /// Not a classic pcap magic number in either byte order.
    BadMagic(u32),
    /// Not Ethernet.
    LinkType(u32),
}

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Capture timestamp since the Unix epoch.
    pub ts: Duration,
    /// Length of the frame on the wire (may exceed `data.len()` if the
    /// snaplen cut it).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Reads every record of a classic pcap file with Ethernet link type.
pub fn records(file: &[u8]) -> Result<Vec<Record<'_>>, PcapError> {
    let header = file.get(..GLOBAL_HEADER_LEN).ok_or(PcapError::Truncated)?;
    let magic_le = read_u32(header, 0, false);
    let (big_endian, nanos) = match (magic_le, magic_le.swap_bytes()) {
        (MAGIC_MICROS, _) => (false, false),
        (MAGIC_NANOS, _) => (false, true),
        (_, MAGIC_MICROS) => (true, false),
        (_, MAGIC_NANOS) => (true, true),
        _ => return Err(PcapError::BadMagic(magic_le)),
    };
    let linktype = read_u32(header, 20, big_endian);
    if linktype != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType(linktype));
    }
    let mut out = Vec::new();
    let mut rest = &file[GLOBAL_HEADER_LEN..];
    while !rest.is_empty() {
        let rec = rest.get(..RECORD_HEADER_LEN).ok_or(PcapError::Truncated)?;
        let secs = read_u32(rec, 0, big_endian);
        let frac = read_u32(rec, 4, big_endian);
        let incl = read_u32(rec, 8, big_endian) as usize;
        let orig_len = read_u32(rec, 12, big_endian);
        let end = RECORD_HEADER_LEN + incl;
        let data = rest
            .get(RECORD_HEADER_LEN..end)
            .ok_or(PcapError::Truncated)?;
        let frac = if nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        out.push(Record {
            ts: Duration::from_secs(u64::from(secs)) + frac,
            orig_len,
            data,
        });
        rest = &rest[end..];
    }
    Ok(out)
}

/// The IPv4 datagram in an Ethernet II frame (one optional 802.1Q tag),
/// including any link-layer padding after it.
pub fn ipv4_payload(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let mut offset = ETHERNET_HEADER_LEN;
    if ethertype == ETHERTYPE_VLAN {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        offset += 4;
    }
    (ethertype == ETHERTYPE_IPV4)
        .then(|| frame.get(offset..))
        .flatten()
}

/// A captured frame carrying VRRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrrpFrame<'a> {
    /// Capture timestamp since the Unix epoch.
    pub ts: Duration,
    /// The whole Ethernet frame.
    pub frame: &'a [u8],
    /// The IPv4 datagram (plus any link-layer padding).
    pub ip: &'a [u8],
}

/// Capture records that carry IPv4 protocol 112.
pub fn vrrp_frames(file: &[u8]) -> Result<Vec<VrrpFrame<'_>>, PcapError> {
    Ok(records(file)?
        .into_iter()
        .filter_map(|r| {
            let ip = ipv4_payload(r.data)?;
            (ip.get(9) == Some(&super::packet::VRRP_PROTO)).then_some(VrrpFrame {
                ts: r.ts,
                frame: r.data,
                ip,
            })
        })
        .collect())
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    if big_endian {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    }
}

/// The fixture captures, loaded at compile time.
pub mod fixtures {
    /// v3 over IPv6, multicast, 1 s; VIPs fe80::51:1 and 2001:db8:1::100: election,
    /// preemption, priority-0 hand-back, neighbour advertisements.
    pub const V6_TERM: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv3_ipv6.pcap"
    ));
    /// v3 over IPv6 with `unicast_src_ip`/`unicast_peer` (global addresses, hop limit 64).
    pub const V6_UNICAST: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv3_ipv6_unicast.pcap"
    ));
    /// v2, advert_int 1, multicast; SIGTERM failover.
    pub const V2_TERM: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv2_term_failover.pcap"
    ));
    /// v2 with `unicast_peer`; SIGTERM failover.
    pub const V2_UNICAST_TERM: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv2_unicast_term_failover.pcap"
    ));
    /// v3, 100 cs; SIGTERM failover.
    pub const V3_100CS_TERM: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv3_adv1_term_failover.pcap"
    ));
    /// v3, 10 cs; SIGTERM failover.
    pub const V3_10CS_TERM: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv3_adv0.1_term_failover.pcap"
    ));
    /// v2 multicast; backup's VRRP input dropped by nftables, then unblocked.
    pub const V2_SPLIT_BRAIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv2_splitbrain_block_unblock.pcap"
    ));
    /// v2 unicast split brain resolving.
    pub const V2_UNICAST_SPLIT_BRAIN: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/vrrp/keepalived_vrrpv2_uc_splitbrain_resolution_garp_race.pcap"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a pcap file from scratch in the given byte order and
    /// timestamp precision.
    fn build(
        big_endian: bool,
        nanos: bool,
        linktype: u32,
        frames: &[(u32, u32, &[u8])],
    ) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, v: u32| {
            if big_endian {
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        let mut out = Vec::new();
        put(&mut out, if nanos { MAGIC_NANOS } else { MAGIC_MICROS });
        let version = if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        };
        out.extend_from_slice(&version);
        put(&mut out, 0);
        put(&mut out, 0);
        put(&mut out, 65535);
        put(&mut out, linktype);
        for (secs, frac, data) in frames {
            put(&mut out, *secs);
            put(&mut out, *frac);
            put(&mut out, data.len() as u32);
            put(&mut out, data.len() as u32);
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn fixture_record_counts_match_tcpdump() {
        // `tcpdump -r FILE | wc -l` and the same with `ip proto 112`.
        let cases: [(&[u8], usize, usize); 6] = [
            (fixtures::V2_TERM, 19, 5),
            (fixtures::V2_UNICAST_TERM, 19, 5),
            (fixtures::V3_100CS_TERM, 13, 4),
            (fixtures::V3_10CS_TERM, 14, 7),
            (fixtures::V2_SPLIT_BRAIN, 52, 17),
            (fixtures::V2_UNICAST_SPLIT_BRAIN, 35, 6),
        ];
        for (file, total, vrrp) in cases {
            assert_eq!(records(file).map(|r| r.len()), Ok(total));
            assert_eq!(vrrp_frames(file).map(|r| r.len()), Ok(vrrp));
        }
    }

    #[test]
    fn fixture_timestamps_are_microseconds() {
        // tcpdump -tt: first frame 1795694500.252970, first VRRP frame
        // 1795694500.255548.
        let recs = records(fixtures::V2_TERM).unwrap();
        assert_eq!(recs[0].ts, Duration::new(1_795_694_500, 252_970_000));
        let vrrp = vrrp_frames(fixtures::V2_TERM).unwrap();
        assert_eq!(vrrp[0].ts, Duration::new(1_795_694_500, 255_548_000));
        assert_eq!(vrrp[0].frame.len(), 54);
        assert_eq!(recs[0].orig_len, 42);
    }

    #[test]
    fn reads_both_byte_orders_and_precisions() {
        let frame = [0u8; 14];
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let file = build(
                    big_endian,
                    nanos,
                    1,
                    &[(7, 999, &frame), (8, 1, &frame[..3])],
                );
                let recs = records(&file).unwrap();
                let unit = if nanos { 1 } else { 1000 };
                assert_eq!(recs.len(), 2);
                assert_eq!(recs[0].ts, Duration::new(7, 999 * unit));
                assert_eq!(recs[1].ts, Duration::new(8, unit));
                assert_eq!(recs[1].data, &frame[..3]);
            }
        }
    }

    #[test]
    fn rejects_bad_files() {
        let frame = [0u8; 14];
        let good = build(false, false, 1, &[(1, 2, &frame)]);
        for cut in 1..good.len() {
            if cut != GLOBAL_HEADER_LEN {
                assert_eq!(
                    records(&good[..cut]),
                    Err(PcapError::Truncated),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(records(&good[..GLOBAL_HEADER_LEN]), Ok(vec![]));
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(matches!(records(&bad_magic), Err(PcapError::BadMagic(_))));
        let raw_ip = build(false, false, 101, &[]);
        assert_eq!(records(&raw_ip), Err(PcapError::LinkType(101)));
    }

    #[test]
    fn ethernet_payload_extraction() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
        assert_eq!(ipv4_payload(&frame), Some(&[0x45, 0x00][..]));
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 0x45]);
        assert_eq!(ipv4_payload(&tagged), Some(&[0x45][..]));
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0x00]);
        assert_eq!(ipv4_payload(&arp), None);
        assert_eq!(ipv4_payload(&[0u8; 13]), None);
    }
}
