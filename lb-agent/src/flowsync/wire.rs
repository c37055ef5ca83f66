//! The flow-sync messages, as they travel: over UDP one message per datagram (new flows and
//! refreshes), over TCP length-prefixed messages (the bulk sync). Pure: parsed and built
//! here, fuzzed (`cargo xtask fuzz`), never trusted further than these checks.
//!
//! ```text
//!  0  magic "LBFS"      4  version (1)   5  kind   6  flags (bit 0: MAC)   7  0
//!  8  sender id (u32, random per agent start)      12 sequence (u32)
//! 16  sent at (u64, µs since the Unix epoch, sender's clock)
//! 24  body: Flows, BulkPage: count (u16), then records; BulkEnd: total (u64); BulkRequest: -
//!     then, with the MAC flag, HMAC-SHA256 of everything before it, cut to 16 bytes
//! record: tag (4 or 6), protocol, client addr+port, VIP addr+port, real addr+port (ports u16),
//!         age (u32 µs since the data path made the entry; u32::MAX: unknown)
//! ```
//! A record names the real by address and port, not by id: ids are per node.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ring::hmac;

pub const MAGIC: [u8; 4] = *b"LBFS";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 24;
pub const MAC_LEN: usize = 16;
/// Largest datagram sent or accepted: fits a 1500-byte MTU with IPv6 and UDP headers.
pub const MAX_DATAGRAM: usize = 1400;
/// Largest bulk-sync message (TCP): many records per message, bounded so a hostile peer
/// cannot make the receiver allocate much.
pub const MAX_BULK_MESSAGE: usize = 64 * 1024;
pub const RECORD4_LEN: usize = 2 + 3 * 6 + 4;
pub const RECORD6_LEN: usize = 2 + 3 * 18 + 4;
/// Age of a record whose age is not known (bulk sync, refresh).
pub const AGE_UNKNOWN: u32 = u32::MAX;
const FLAG_MAC: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// New flows, or a refresh of known ones (UDP).
    Flows = 1,
    /// "Send me your whole table" (TCP).
    BulkRequest = 2,
    /// A page of the whole table (TCP).
    BulkPage = 3,
    /// The table is sent: this many records in all (TCP).
    BulkEnd = 4,
}

impl Kind {
    fn of(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Flows,
            2 => Kind::BulkRequest,
            3 => Kind::BulkPage,
            4 => Kind::BulkEnd,
            _ => return None,
        })
    }
}

/// One connection-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub proto: u8,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    pub real: SocketAddr,
    /// µs since the data path made the entry, when known.
    pub age_us: u32,
}

impl Record {
    fn v6(&self) -> bool {
        self.client.is_ipv6()
    }

    pub fn wire_len(&self) -> usize {
        if self.v6() {
            RECORD6_LEN
        } else {
            RECORD4_LEN
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub sender: u32,
    pub seq: u32,
    pub sent_us: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Records(Vec<Record>),
    Request,
    End { total: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why a message was dropped. Each is counted under its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    Truncated,
    Oversized,
    BadMagic,
    BadVersion,
    BadKind,
    /// A key is configured and the message has no MAC, or the other way round.
    MacMissing,
    MacUnexpected,
    BadMac,
    /// A record of an unknown family, with mixed families, or a count that does not match
    /// the bytes.
    BadRecord,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::Truncated,
        Reject::Oversized,
        Reject::BadMagic,
        Reject::BadVersion,
        Reject::BadKind,
        Reject::MacMissing,
        Reject::MacUnexpected,
        Reject::BadMac,
        Reject::BadRecord,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::Oversized => "oversized",
            Reject::BadMagic => "bad_magic",
            Reject::BadVersion => "bad_version",
            Reject::BadKind => "bad_kind",
            Reject::MacMissing => "mac_missing",
            Reject::MacUnexpected => "mac_unexpected",
            Reject::BadMac => "bad_mac",
            Reject::BadRecord => "bad_record",
        }
    }
}

/// The pre-shared key, ready to sign and verify.
#[derive(Clone)]
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let t = hmac::sign(&self.0, data);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&t.as_ref()[..MAC_LEN]);
        out
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Parses one message of at most `max` bytes. With `key`, the MAC must be present and valid
/// (compared in constant time); without, it must be absent.
pub fn parse(buf: &[u8], key: Option<&Key>, max: usize) -> Result<Message, Reject> {
    if buf.len() > max {
        return Err(Reject::Oversized);
    }
    if buf.len() < HEADER_LEN {
        return Err(Reject::Truncated);
    }
    if buf[0..4] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if buf[4] != VERSION {
        return Err(Reject::BadVersion);
    }
    let kind = Kind::of(buf[5]).ok_or(Reject::BadKind)?;
    let has_mac = buf[6] & FLAG_MAC != 0;
    let signed_len = match (key, has_mac) {
        (Some(_), false) => return Err(Reject::MacMissing),
        (None, true) => return Err(Reject::MacUnexpected),
        (None, false) => buf.len(),
        (Some(k), true) => {
            let n = buf
                .len()
                .checked_sub(MAC_LEN)
                .filter(|n| *n >= HEADER_LEN)
                .ok_or(Reject::Truncated)?;
            let want = k.tag(&buf[..n]);
            if !constant_time_eq(&want, &buf[n..]) {
                return Err(Reject::BadMac);
            }
            n
        }
    };
    let header = Header {
        kind,
        sender: u32::from_be_bytes(bytes(buf, 8)?),
        seq: u32::from_be_bytes(bytes(buf, 12)?),
        sent_us: u64::from_be_bytes(bytes(buf, 16)?),
    };
    let body = &buf[HEADER_LEN..signed_len];
    let body = match kind {
        Kind::Flows | Kind::BulkPage => Body::Records(records(body)?),
        Kind::BulkRequest if body.is_empty() => Body::Request,
        Kind::BulkEnd if body.len() == 8 => Body::End {
            total: u64::from_be_bytes(bytes(body, 0)?),
        },
        Kind::BulkRequest | Kind::BulkEnd => return Err(Reject::BadRecord),
    };
    Ok(Message { header, body })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bytes<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], Reject> {
    buf.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Reject::Truncated)
}

fn records(body: &[u8]) -> Result<Vec<Record>, Reject> {
    let count = u16::from_be_bytes(bytes(body, 0)?) as usize;
    let mut at = 2;
    let mut out = Vec::with_capacity(count.min(body.len() / RECORD4_LEN));
    for _ in 0..count {
        let r = record(body, &mut at)?;
        out.push(r);
    }
    if at != body.len() {
        return Err(Reject::BadRecord);
    }
    Ok(out)
}

fn record(b: &[u8], at: &mut usize) -> Result<Record, Reject> {
    let tag = *b.get(*at).ok_or(Reject::Truncated)?;
    let proto = *b.get(*at + 1).ok_or(Reject::Truncated)?;
    let alen = match tag {
        4 => 4,
        6 => 16,
        _ => return Err(Reject::BadRecord),
    };
    let mut pos = *at + 2;
    let mut endpoint = || -> Result<SocketAddr, Reject> {
        let ip = if alen == 4 {
            IpAddr::V4(Ipv4Addr::from(bytes::<4>(b, pos)?))
        } else {
            IpAddr::V6(Ipv6Addr::from(bytes::<16>(b, pos)?))
        };
        let port = u16::from_be_bytes(bytes(b, pos + alen)?);
        pos += alen + 2;
        Ok(SocketAddr::new(ip, port))
    };
    let client = endpoint()?;
    let vip = endpoint()?;
    let real = endpoint()?;
    let age_us = u32::from_be_bytes(bytes(b, pos)?);
    *at = pos + 4;
    Ok(Record {
        proto,
        client,
        vip,
        real,
        age_us,
    })
}

/// Builds messages of one kind, at most `max` bytes each (MAC included).
pub struct Builder {
    kind: Kind,
    sender: u32,
    key: Option<Key>,
    max: usize,
    buf: Vec<u8>,
    count: u16,
}

impl Builder {
    pub fn new(kind: Kind, sender: u32, key: Option<Key>, max: usize) -> Builder {
        let mut b = Builder {
            kind,
            sender,
            key,
            max,
            buf: Vec::with_capacity(max),
            count: 0,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&MAGIC);
        self.buf.push(VERSION);
        self.buf.push(self.kind as u8);
        self.buf.push(if self.key.is_some() { FLAG_MAC } else { 0 });
        self.buf.push(0);
        self.buf.extend_from_slice(&self.sender.to_be_bytes());
        self.buf.extend_from_slice(&[0; 12]); // sequence and time, set by `finish`
        if matches!(self.kind, Kind::Flows | Kind::BulkPage) {
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.count = 0;
    }

    fn room(&self) -> usize {
        let mac = if self.key.is_some() { MAC_LEN } else { 0 };
        self.max.saturating_sub(self.buf.len() + mac)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a record; false when it does not fit (finish the message first).
    pub fn push(&mut self, r: &Record) -> bool {
        let mixed = r.client.is_ipv4() != r.vip.is_ipv4() || r.client.is_ipv4() != r.real.is_ipv4();
        if mixed || r.wire_len() > self.room() || self.count == u16::MAX {
            return false;
        }
        self.buf.push(if r.v6() { 6 } else { 4 });
        self.buf.push(r.proto);
        for ep in [r.client, r.vip, r.real] {
            match ep.ip() {
                IpAddr::V4(a) => self.buf.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => self.buf.extend_from_slice(&a.octets()),
            }
            self.buf.extend_from_slice(&ep.port().to_be_bytes());
        }
        self.buf.extend_from_slice(&r.age_us.to_be_bytes());
        self.count += 1;
        true
    }

    /// The message so far (with `total` for a BulkEnd), stamped and signed; the builder is
    /// empty again.
    pub fn finish(&mut self, seq: u32, sent_us: u64, total: Option<u64>) -> Vec<u8> {
        self.buf[12..16].copy_from_slice(&seq.to_be_bytes());
        self.buf[16..24].copy_from_slice(&sent_us.to_be_bytes());
        if matches!(self.kind, Kind::Flows | Kind::BulkPage) {
            self.buf[24..26].copy_from_slice(&self.count.to_be_bytes());
        }
        if let Some(t) = total {
            self.buf.extend_from_slice(&t.to_be_bytes());
        }
        if let Some(k) = &self.key {
            let tag = k.tag(&self.buf);
            self.buf.extend_from_slice(&tag);
        }
        let out = std::mem::replace(&mut self.buf, Vec::with_capacity(self.max));
        self.reset();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v6: bool, i: u16) -> Record {
        let ip = |n: u8| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n as u16))
            } else {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
            }
        };
        Record {
            proto: 6,
            client: SocketAddr::new(ip(1), 40000 + i),
            vip: SocketAddr::new(ip(100), 80),
            real: SocketAddr::new(ip(11), 8080),
            age_us: 1234,
        }
    }

    fn build(key: Option<Key>, recs: &[Record]) -> Vec<u8> {
        let mut b = Builder::new(Kind::Flows, 7, key, MAX_DATAGRAM);
        for r in recs {
            assert!(b.push(r));
        }
        b.finish(3, 99, None)
    }

    #[test]
    fn records_of_both_families_round_trip_signed_and_not() {
        let recs = [rec(false, 1), rec(true, 2), rec(false, 3)];
        for key in [None, Some(Key::new(b"0123456789abcdef"))] {
            let msg = build(key.clone(), &recs);
            let m = parse(&msg, key.as_ref(), MAX_DATAGRAM).expect("parses");
            assert_eq!(m.header.sender, 7);
            assert_eq!(m.header.seq, 3);
            assert_eq!(m.header.sent_us, 99);
            assert_eq!(m.body, Body::Records(recs.to_vec()));
        }
        let msg = build(None, &recs);
        assert_eq!(
            msg.len(),
            HEADER_LEN + 2 + 2 * RECORD4_LEN + RECORD6_LEN,
            "the documented sizes"
        );
    }

    #[test]
    fn a_datagram_holds_as_many_records_as_fit_and_no_more() {
        let key = Key::new(b"0123456789abcdef");
        let mut b = Builder::new(Kind::Flows, 1, Some(key.clone()), MAX_DATAGRAM);
        let mut n = 0u16;
        while b.push(&rec(false, n)) {
            n += 1;
        }
        assert_eq!(
            n as usize,
            (MAX_DATAGRAM - HEADER_LEN - 2 - MAC_LEN) / RECORD4_LEN
        );
        let msg = b.finish(0, 0, None);
        assert!(msg.len() <= MAX_DATAGRAM);
        assert!(parse(&msg, Some(&key), MAX_DATAGRAM).is_ok());
        assert!(b.is_empty(), "finish empties the builder");
    }

    #[test]
    fn hostile_messages_are_rejected_under_their_reason() {
        let key = Key::new(b"0123456789abcdef");
        let good = build(Some(key.clone()), &[rec(false, 1)]);
        let other = Key::new(b"fedcba9876543210");
        assert_eq!(
            parse(&good, Some(&other), MAX_DATAGRAM),
            Err(Reject::BadMac)
        );
        assert_eq!(parse(&good, None, MAX_DATAGRAM), Err(Reject::MacUnexpected));
        let plain = build(None, &[rec(false, 1)]);
        assert_eq!(
            parse(&plain, Some(&key), MAX_DATAGRAM),
            Err(Reject::MacMissing)
        );
        let mut flipped = good.clone();
        flipped[30] ^= 1;
        assert_eq!(
            parse(&flipped, Some(&key), MAX_DATAGRAM),
            Err(Reject::BadMac)
        );
        for n in 0..plain.len() {
            assert!(
                parse(&plain[..n], None, MAX_DATAGRAM).is_err(),
                "cut at {n}"
            );
        }
        assert_eq!(
            parse(&plain[..10], None, MAX_DATAGRAM),
            Err(Reject::Truncated)
        );
        assert_eq!(
            parse(&plain[..40], None, MAX_DATAGRAM),
            Err(Reject::Truncated)
        );
        let big = vec![0u8; MAX_DATAGRAM + 1];
        assert_eq!(parse(&big, None, MAX_DATAGRAM), Err(Reject::Oversized));
        let mut m = plain.clone();
        m[0] = b'X';
        assert_eq!(parse(&m, None, MAX_DATAGRAM), Err(Reject::BadMagic));
        let mut m = plain.clone();
        m[4] = 2;
        assert_eq!(parse(&m, None, MAX_DATAGRAM), Err(Reject::BadVersion));
        let mut m = plain.clone();
        m[5] = 9;
        assert_eq!(parse(&m, None, MAX_DATAGRAM), Err(Reject::BadKind));
        let mut m = plain.clone();
        m[26] = 5; // record tag
        assert_eq!(parse(&m, None, MAX_DATAGRAM), Err(Reject::BadRecord));
        let mut m = plain.clone();
        m.push(0); // trailing byte
        assert_eq!(parse(&m, None, MAX_DATAGRAM), Err(Reject::BadRecord));
    }

    #[test]
    fn bulk_control_messages_round_trip() {
        let mut b = Builder::new(Kind::BulkRequest, 5, None, MAX_DATAGRAM);
        let m = parse(&b.finish(1, 2, None), None, MAX_DATAGRAM).expect("request");
        assert_eq!(m.body, Body::Request);
        let mut b = Builder::new(Kind::BulkEnd, 5, None, MAX_DATAGRAM);
        let m = parse(&b.finish(1, 2, Some(1_000_000)), None, MAX_DATAGRAM).expect("end");
        assert_eq!(m.body, Body::End { total: 1_000_000 });
    }
}
