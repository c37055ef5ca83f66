//! VRRP advertisement wire format, versions 2 (RFC 3768, IPv4) and 3
//! (RFC 5798, obsoleted by RFC 9568; IPv4 and IPv6), in the smoltcp style: a zero-copy
//! [`VrrpPacket`] view over bytes, a minimal [`Ipv4Header`] view for what a
//! raw `IPPROTO_VRRP` socket returns, and the owned representation
//! [`Advert`] with `parse`/`emit`.
//!
//! Receive path: [`parse_datagram`] takes the whole IPv4 datagram (raw
//! IPv4 sockets include the IP header; [`parse_v6`] takes the VRRP message
//! and what the IPv6 socket reported about its header), applies every per-packet check of
//! RFC 3768 §7.1 / RFC 9568 §7.1 that needs no configuration, and returns the
//! [`Advert`] or exactly one [`ParseError`] naming the drop reason. Checks
//! that need configuration (VRID, authentication, interval, peers) belong to
//! the instance (`super::state`).
//!
//! Nothing here panics on input from the wire: every length is checked
//! before it is used, nothing is allocated before the payload is known to
//! hold it, and there is no `unwrap` on received data.
//!
//! ```text
//! v2 (RFC 3768 §5.1)                      v3 (RFC 9568 §5.1)
//!  0       4       8              16              24             31
//! +-------+-------+---------------+---------------+---------------+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-------+-------+---------------+---------------+---------------+
//! v2: |   Auth Type   |   Adver Int   |          Checksum             |
//! v3: |(rsvd)| Max Adver Int (12 bit cs)|          Checksum             |
//! +---------------------------------------------------------------+
//! |     IPv4 Address(es) (4 bytes each) or IPv6 (16 bytes, v3)    |
//! +---------------------------------------------------------------+
//! v2 only:  Authentication Data (8 bytes)
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// IP protocol number of VRRP (RFC 3768 §5.2.4, RFC 9568 §5.1.1.4).
pub const VRRP_PROTO: u8 = 112;
/// Highest virtual router ID (RFC 3768 §5.3.3, RFC 9568 §5.2.3: 1..=255).
pub const MAX_VRID: u8 = 255;
/// The IPv4 multicast group adverts are sent to (RFC 3768 §5.2.2,
/// RFC 9568 §5.1.1.2).
pub const VRRP_MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group (RFC 9568 §5.1.2.2): ff02::12.
pub const VRRP_MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Adverts are sent with TTL 255 and a receiver drops any other TTL, which
/// proves the sender is on-link (RFC 3768 §5.2.3, RFC 9568 §5.1.1.3,
/// GTSM / RFC 5082).
pub const VRRP_TTL: u8 = 255;
/// IP TOS byte keepalived sends adverts with (DSCP CS6, "network control"),
/// so that they survive congestion ahead of data traffic.
pub const VRRP_TOS: u8 = 0xc0;
/// The only VRRP packet type (RFC 3768 §5.3.2, RFC 9568 §5.2.2).
pub const VRRP_TYPE_ADVERTISEMENT: u8 = 1;
/// v2 "no authentication" (RFC 3768 §5.3.6).
pub const AUTH_TYPE_NONE: u8 = 0;
/// v2 simple text password, RFC 2338 §5.3.6.1, still sent by keepalived's
/// `auth_type PASS`.
pub const AUTH_TYPE_PASS: u8 = 1;
/// Length of the fixed VRRP header (version .. checksum).
pub const HEADER_LEN: usize = 8;
/// Length of the v2 authentication data trailer (RFC 3768 §5.3.10).
pub const V2_AUTH_DATA_LEN: usize = 8;
/// Largest v3 Max Advertise Interval: 12 bits of centiseconds (40.95 s).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;
/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Byte offsets of the VRRP header fields (RFC 3768 §5.1, RFC 9568 §5.1).
mod field {
    pub type Field = core::ops::Range<usize>;

    /// Version (high nibble) and type (low nibble).
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: authentication type.
    pub const V2_AUTH_TYPE: usize = 4;
    /// v2: advertisement interval in whole seconds.
    pub const V2_ADVER_INT: usize = 5;
    /// v3: 4 reserved bits followed by the 12-bit Max Advertise Interval.
    pub const V3_RSVD_INTERVAL: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    /// First address.
    pub const ADDRESSES: usize = 8;

    /// The `i`th address, of `len` bytes (4 or 16).
    pub const fn address(i: usize, len: usize) -> Field {
        let start = ADDRESSES + len * i;
        start..start + len
    }

    /// v2 authentication data, which follows `count` (IPv4) addresses.
    pub const fn v2_auth_data(count: usize) -> Field {
        let start = ADDRESSES + 4 * count;
        start..start + super::V2_AUTH_DATA_LEN
    }
}

/// Byte offsets of the IPv4 header fields (RFC 791 §3.1).
mod ip_field {
    pub type Field = core::ops::Range<usize>;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: interval in whole seconds, authentication trailer.
    V2,
    /// RFC 5798 / RFC 9568: interval in centiseconds, no authentication.
    V3,
}

impl Version {
    /// The value of the version nibble.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The version for a version nibble, if it is one we speak.
    pub const fn from_number(n: u8) -> Option<Version> {
        match n {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }
}

/// v2 authentication (RFC 3768 §5.3.6). v3 has none; for v3 adverts this is
/// always [`Auth::None`].
///
/// RFC 3768 keeps the field only for backward compatibility with RFC 2338;
/// the password travels in clear text and protects against misconfiguration,
/// not attackers. We support it because keepalived's `auth_type PASS` peers
/// drop adverts without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    /// Auth type 0. The 8 data bytes are sent as zero and ignored on receipt
    /// (RFC 3768 §5.3.10).
    #[default]
    None,
    /// Auth type 1: the password, zero padded to 8 bytes.
    Pass([u8; V2_AUTH_DATA_LEN]),
}

impl Auth {
    /// keepalived's `auth_pass`: the first 8 bytes of `secret`, zero padded
    /// (keepalived truncates longer passwords the same way).
    pub fn pass(secret: &[u8]) -> Auth {
        let mut data = [0u8; V2_AUTH_DATA_LEN];
        for (dst, src) in data.iter_mut().zip(secret) {
            *dst = *src;
        }
        Auth::Pass(data)
    }

    /// The on-wire auth type and data.
    pub const fn wire(&self) -> (u8, [u8; V2_AUTH_DATA_LEN]) {
        match self {
            Auth::None => (AUTH_TYPE_NONE, [0; V2_AUTH_DATA_LEN]),
            Auth::Pass(data) => (AUTH_TYPE_PASS, *data),
        }
    }
}

/// Which checksum forms a received v3 advert may use. v2 always checksums
/// the VRRP message alone (RFC 3768 §5.3.8), so this only affects v3.
///
/// keepalived and Wireshark include the IPv4 pseudo-header in the v3
/// checksum (as RFC 5798 §5.2.8 reads for IPv6); RFC 9568 §5.2.8 says v3 over
/// IPv4 excludes it. Both are deployed, so the default accepts either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumCheck {
    /// Accept either form (default; interoperates with both camps).
    #[default]
    Either,
    /// Only the keepalived form, with the IPv4 pseudo-header.
    PseudoHeader,
    /// Only the RFC 9568 form, VRRP message alone.
    VrrpOnly,
}

/// Which checksum form to send v3 adverts with (ignored for v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum V3Checksum {
    /// Include the IPv4 pseudo-header: what keepalived sends and checks
    /// (default, so keepalived peers accept us).
    #[default]
    PseudoHeader,
    /// RFC 9568 §5.2.8: VRRP message only.
    VrrpOnly,
}

/// Why a received datagram is not a usable VRRP advertisement. One variant
/// per drop reason so that each can be counted separately ([`label`]).
///
/// [`label`]: ParseError::label
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// Shorter than a header says it is, or than the fixed fields need.
    Truncated,
    /// Not a sane IPv4 header: version, IHL, total length below the header
    /// length, header checksum, or a fragment (we never reassemble).
    BadIpHeader,
    /// IP protocol is not 112.
    NotVrrp,
    /// TTL is not 255 (RFC 3768 §7.1, RFC 9568 §5.1.1.3): possibly off-link.
    Ttl,
    /// VRRP version is neither 2 nor 3 (RFC 3768 §7.1, RFC 9568 §7.1).
    Version,
    /// Type is not ADVERTISEMENT (RFC 3768 §5.3.2, RFC 9568 §5.2.2).
    Type,
    /// Count is zero, or names more addresses than the payload holds
    /// (RFC 3768 §7.1, RFC 9568 §7.1 "complete VRRP packet").
    AddressCount,
    /// Checksum mismatch (RFC 3768 §7.1, RFC 9568 §7.1).
    Checksum,
    /// v2 auth type other than 0 (none) or 1 (PASS); 2 (IP AH) was removed
    /// by RFC 3768 §5.3.6.
    AuthType,
    /// Zero advertisement interval (RFC 9568 §7.1, erratum 8301). A zero
    /// interval would make backups' Master_Down_Interval collapse to the skew
    /// and churn mastership.
    Interval,
    /// IPv6: the source is not a link-local address (RFC 9568 §5.1.2.1: a
    /// router sends from its link-local address; anything else is not from
    /// this link).
    Source,
}

impl ParseError {
    /// Every variant, e.g. to pre-register counters.
    pub const ALL: [ParseError; 11] = [
        ParseError::Truncated,
        ParseError::BadIpHeader,
        ParseError::NotVrrp,
        ParseError::Ttl,
        ParseError::Version,
        ParseError::Type,
        ParseError::AddressCount,
        ParseError::Checksum,
        ParseError::AuthType,
        ParseError::Interval,
        ParseError::Source,
    ];

    /// Stable `snake_case` label for counters and logs. Never change one:
    /// dashboards and alerts key on them.
    pub const fn label(&self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::BadIpHeader => "bad_ip_header",
            ParseError::NotVrrp => "not_vrrp",
            ParseError::Ttl => "ttl",
            ParseError::Version => "version",
            ParseError::Type => "type",
            ParseError::AddressCount => "address_count",
            ParseError::Checksum => "checksum",
            ParseError::AuthType => "auth_type",
            ParseError::Interval => "interval",
            ParseError::Source => "source_not_link_local",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid VRRP datagram: {}", self.label())
    }
}

impl std::error::Error for ParseError {}

/// RFC 1071 Internet checksum helpers.
mod checksum {
    use std::net::IpAddr;

    /// Unfolded one's-complement sum of big-endian 16-bit words; an odd
    /// trailing byte is padded with zero. A `u64` accumulator cannot
    /// overflow for any slice that fits in memory.
    pub fn sum(data: &[u8]) -> u64 {
        let mut chunks = data.chunks_exact(2);
        let mut acc: u64 = chunks
            .by_ref()
            .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        if let [last] = chunks.remainder() {
            acc += u64::from(*last) << 8;
        }
        acc
    }

    /// Folds the carries back in (end-around carry).
    pub fn fold(mut acc: u64) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// Sum of the pseudo-header: source, destination, protocol, upper-layer
    /// length. IPv4: the RFC 768 layout (as keepalived uses for v3); IPv6:
    /// RFC 8200 §8.1 (32-bit length, next header).
    pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> u64 {
        let addrs = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => sum(&s.octets()) + sum(&d.octets()),
            (IpAddr::V6(s), IpAddr::V6(d)) => sum(&s.octets()) + sum(&d.octets()),
            // Mixed families never verify.
            _ => 0,
        };
        let len = len as u64;
        addrs + u64::from(protocol) + (len & 0xffff) + ((len >> 16) & 0xffff)
    }
}

/// Zero-copy view of a VRRP message (the IP payload).
///
/// Construct with [`new_checked`](Self::new_checked); after that no accessor
/// can panic. [`new_unchecked`](Self::new_unchecked) is for emitting into a
/// buffer of [`Advert::buffer_len`] bytes; fixed-field accessors on a shorter
/// unchecked buffer panic, as in smoltcp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
    /// Carried over IPv6: its addresses are 16 bytes (the message itself does
    /// not say; the IP header does).
    v6: bool,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Wraps a buffer without checking it (a message sent over IPv4).
    pub const fn new_unchecked(buffer: T) -> VrrpPacket<T> {
        VrrpPacket { buffer, v6: false }
    }

    /// Wraps a buffer without checking it (a message sent over IPv6).
    pub const fn new_unchecked_v6(buffer: T) -> VrrpPacket<T> {
        VrrpPacket { buffer, v6: true }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<VrrpPacket<T>, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Bytes per address: 4 over IPv4, 16 over IPv6.
    pub const fn addr_len(&self) -> usize {
        if self.v6 {
            16
        } else {
            4
        }
    }

    /// Checks that the buffer holds the fixed header, a known version (the
    /// layout depends on it), a non-zero address count, the addresses and,
    /// for v2, the authentication data. Every accessor is in bounds after
    /// this returns `Ok`.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let trailer = match Version::from_number(self.version()) {
            Some(Version::V2) => V2_AUTH_DATA_LEN,
            Some(Version::V3) => 0,
            None => return Err(ParseError::Version),
        };
        let room = len
            .checked_sub(HEADER_LEN + trailer)
            .ok_or(ParseError::Truncated)?;
        let count = usize::from(self.addr_count());
        if count == 0 || count > room / self.addr_len() {
            return Err(ParseError::AddressCount);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the VRRP message: the whole buffer (checksum scope).
    pub fn message_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The type nibble.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Virtual router ID.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Priority (0 = the master is leaving, 255 = address owner).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Count of IPv4 addresses.
    pub fn addr_count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    fn is_v2(&self) -> bool {
        self.version() == Version::V2.number()
    }

    /// v2 authentication type; `None` for v3, which has no such field.
    pub fn auth_type(&self) -> Option<u8> {
        self.is_v2()
            .then(|| self.buffer.as_ref()[field::V2_AUTH_TYPE])
    }

    /// Raw advertisement interval: v2 whole seconds (8 bits), v3
    /// centiseconds (12 bits, the reserved bits masked off).
    pub fn advert_interval(&self) -> u16 {
        let data = self.buffer.as_ref();
        if self.is_v2() {
            u16::from(data[field::V2_ADVER_INT])
        } else {
            let r = field::V3_RSVD_INTERVAL;
            u16::from_be_bytes([data[r.start], data[r.start + 1]]) & V3_MAX_INTERVAL_CS
        }
    }

    /// The interval in centiseconds for both versions (v2 seconds × 100, at
    /// most 25 500).
    pub fn interval_cs(&self) -> u16 {
        if self.is_v2() {
            self.advert_interval() * 100
        } else {
            self.advert_interval()
        }
    }

    /// v3 reserved bits (sent as zero, ignored on receipt, RFC 9568 §5.2.6);
    /// 0 for v2.
    pub fn reserved(&self) -> u8 {
        if self.is_v2() {
            0
        } else {
            self.buffer.as_ref()[field::V3_RSVD_INTERVAL.start] >> 4
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let data = self.buffer.as_ref();
        let c = field::CHECKSUM;
        u16::from_be_bytes([data[c.start], data[c.start + 1]])
    }

    /// The `i`th address, if the count and the buffer both cover it.
    pub fn address(&self, i: usize) -> Option<IpAddr> {
        if i >= usize::from(self.addr_count()) {
            return None;
        }
        let b = self
            .buffer
            .as_ref()
            .get(field::address(i, self.addr_len()))?;
        Some(ip_from(b))
    }

    /// The advertised addresses: `count` of them, never past the buffer.
    pub fn addresses(&self) -> impl ExactSizeIterator<Item = IpAddr> + '_ {
        let data = self.buffer.as_ref();
        let len = self.addr_len();
        let end = field::address(usize::from(self.addr_count()), len).start;
        let bytes = data
            .get(field::ADDRESSES..end.min(data.len()))
            .unwrap_or(&[]);
        bytes.chunks_exact(len).map(ip_from)
    }

    /// v2 authentication data (after the addresses); `None` for v3 or when
    /// the buffer is too short.
    pub fn auth_data(&self) -> Option<[u8; V2_AUTH_DATA_LEN]> {
        if !self.is_v2() {
            return None;
        }
        let range = field::v2_auth_data(usize::from(self.addr_count()));
        let bytes = self.buffer.as_ref().get(range)?;
        let mut out = [0u8; V2_AUTH_DATA_LEN];
        out.copy_from_slice(bytes);
        Some(out)
    }

    /// The checksum this message should carry, computed with the checksum
    /// field taken as zero. v2 covers the VRRP message only
    /// (RFC 3768 §5.3.8); v3 per `form`.
    /// Over IPv6 the pseudo-header is always included (RFC 9568 §5.2.8).
    pub fn compute_checksum(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        form: V3Checksum,
    ) -> u16 {
        let (src, dst) = (src.into(), dst.into());
        let data = self.buffer.as_ref();
        let c = field::CHECKSUM;
        let mut acc = checksum::sum(data.get(..c.start).unwrap_or(&[]))
            + checksum::sum(data.get(c.end..).unwrap_or(&[]));
        if self.v6 || (!self.is_v2() && form == V3Checksum::PseudoHeader) {
            acc += checksum::pseudo_header(src, dst, VRRP_PROTO, data.len());
        }
        !checksum::fold(acc)
    }

    /// Whether the stored checksum is valid in a form `check` allows. Sums
    /// the whole message including the checksum (RFC 1071), so both
    /// encodings of a zero sum (0x0000 and 0xffff) are accepted.
    pub fn verify_checksum(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        check: ChecksumCheck,
    ) -> bool {
        let (src, dst) = (src.into(), dst.into());
        let data = self.buffer.as_ref();
        let body = checksum::sum(data);
        let vrrp_only = checksum::fold(body) == 0xffff;
        if self.is_v2() && !self.v6 {
            return vrrp_only;
        }
        let pseudo = body + checksum::pseudo_header(src, dst, VRRP_PROTO, data.len());
        let with_pseudo = checksum::fold(pseudo) == 0xffff;
        if self.v6 {
            return with_pseudo;
        }
        match check {
            ChecksumCheck::Either => vrrp_only || with_pseudo,
            ChecksumCheck::PseudoHeader => with_pseudo,
            ChecksumCheck::VrrpOnly => vrrp_only,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// Sets the version and type nibbles. Call this first: the layout of the
    /// interval and authentication fields depends on the version.
    pub fn set_version_and_type(&mut self, version: Version, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version.number() << 4) | (msg_type & 0x0f);
    }

    /// Sets the virtual router ID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count (which also positions the v2 auth data).
    pub fn set_addr_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the v2 auth type; no-op for v3.
    pub fn set_auth_type(&mut self, auth_type: u8) {
        if self.is_v2() {
            self.buffer.as_mut()[field::V2_AUTH_TYPE] = auth_type;
        }
    }

    /// Sets the raw interval: v2 seconds (saturating at 255), v3 centiseconds
    /// (saturating at 4095, reserved bits zeroed as RFC 9568 §5.2.6 requires).
    pub fn set_advert_interval(&mut self, raw: u16) {
        if self.is_v2() {
            self.buffer.as_mut()[field::V2_ADVER_INT] = u8::try_from(raw).unwrap_or(u8::MAX);
        } else {
            let bytes = raw.min(V3_MAX_INTERVAL_CS).to_be_bytes();
            self.buffer.as_mut()[field::V3_RSVD_INTERVAL].copy_from_slice(&bytes);
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the `i`th address (of this packet's family; another is skipped).
    pub fn set_address(&mut self, i: usize, addr: IpAddr) {
        let range = field::address(i, self.addr_len());
        match addr {
            IpAddr::V4(a) if !self.v6 => self.buffer.as_mut()[range].copy_from_slice(&a.octets()),
            IpAddr::V6(a) if self.v6 => self.buffer.as_mut()[range].copy_from_slice(&a.octets()),
            _ => {}
        }
    }

    /// Sets the v2 authentication data (positioned by the current count);
    /// no-op for v3.
    pub fn set_auth_data(&mut self, data: [u8; V2_AUTH_DATA_LEN]) {
        if self.is_v2() {
            let range = field::v2_auth_data(usize::from(self.addr_count()));
            self.buffer.as_mut()[range].copy_from_slice(&data);
        }
    }

    /// Computes and stores the checksum; every other field must be final.
    pub fn fill_checksum(
        &mut self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        form: V3Checksum,
    ) {
        let value = self.compute_checksum(src, dst, form);
        self.set_checksum(value);
    }
}

/// Zero-copy view of the IPv4 header of a received datagram.
///
/// After [`new_checked`](Self::new_checked) the header and the
/// `total_len` bytes it claims are inside the buffer, so no accessor panics.
/// Everything is bounded by the IP total length, never by the buffer length:
/// Ethernet pads short frames to 60 bytes (veth does not), and the padding is
/// not part of the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Header<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv4Header<T> {
        Ipv4Header { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv4Header<T>, ParseError> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks version 4, IHL >= 5, and that the header and the total length
    /// fit the buffer.
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 4 || self.header_len() < IPV4_HEADER_LEN {
            return Err(ParseError::BadIpHeader);
        }
        if self.header_len() > len {
            return Err(ParseError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(ParseError::BadIpHeader);
        }
        if total > len {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }

    /// IP version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[ip_field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[ip_field::VER_IHL] & 0x0f) * 4
    }

    /// TOS / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[ip_field::TOS]
    }

    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        self.read_u16(ip_field::LENGTH.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.read_u16(ip_field::IDENT.start)
    }

    /// Whether this is a fragment (more-fragments flag or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.read_u16(ip_field::FLG_OFF.start) & 0x3fff != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[ip_field::TTL]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[ip_field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(ip_field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(ip_field::SRC.start)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(ip_field::DST.start)
    }

    /// Whether the header checksum (over IHL × 4 bytes) is valid.
    pub fn verify_checksum(&self) -> bool {
        let header = self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[]);
        !header.is_empty() && checksum::fold(checksum::sum(header)) == 0xffff
    }

    /// The payload: from the end of the header to the IP total length
    /// (link-layer padding excluded). Empty if the lengths are inconsistent.
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.total_len());
        self.buffer
            .as_ref()
            .get(self.header_len()..end)
            .unwrap_or(&[])
    }

    fn read_u16(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Header<T> {
    /// Sets version 4 and an IHL of 5 (no options).
    pub fn set_version_ihl_default(&mut self) {
        self.buffer.as_mut()[ip_field::VER_IHL] = 0x45;
    }

    /// Sets the TOS byte.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[ip_field::TOS] = tos;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        self.buffer.as_mut()[ip_field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, ident: u16) {
        self.buffer.as_mut()[ip_field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    /// Sets flags and fragment offset as one 16-bit word.
    pub fn set_flags_frag(&mut self, word: u16) {
        self.buffer.as_mut()[ip_field::FLG_OFF].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[ip_field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[ip_field::PROTOCOL] = protocol;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[ip_field::SRC].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[ip_field::DST].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let hlen = self.header_len();
        let data = self.buffer.as_mut();
        data[ip_field::CHECKSUM].copy_from_slice(&[0, 0]);
        let value = !checksum::fold(checksum::sum(&data[..hlen]));
        data[ip_field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }
}

/// The owned representation of a VRRP advertisement (smoltcp's `Repr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router ID, 1..=255.
    pub vrid: u8,
    /// Sender priority; 0 means "the master is leaving" and 255 "address
    /// owner".
    pub priority: u8,
    /// Advertisement interval in centiseconds for both versions. v2 carries
    /// whole seconds, so v2 values are multiples of 100 up to 25 500; v3
    /// carries 12 bits (at most 4 095).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family: the family of the IP
    /// header the advert travels in.
    pub addresses: Vec<IpAddr>,
    /// v2 authentication; always [`Auth::None`] for v3.
    pub auth: Auth,
}

impl Advert {
    /// Parses a VRRP message received from `src` to `dst`, checking in the
    /// order of RFC 9568 §7.1: version, type, completeness (count vs
    /// payload), checksum; then the v2 auth type and the interval.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &VrrpPacket<T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        check: ChecksumCheck,
    ) -> Result<Advert, ParseError> {
        let (src, dst) = (src.into(), dst.into());
        if packet.message_len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let version = Version::from_number(packet.version()).ok_or(ParseError::Version)?;
        if packet.msg_type() != VRRP_TYPE_ADVERTISEMENT {
            return Err(ParseError::Type);
        }
        packet.check_len()?;
        if !packet.verify_checksum(src, dst, check) {
            return Err(ParseError::Checksum);
        }
        let auth = match version {
            Version::V2 => parse_auth(packet)?,
            Version::V3 => Auth::None,
        };
        let interval_cs = packet.interval_cs();
        if interval_cs == 0 {
            return Err(ParseError::Interval);
        }
        // check_len() proved the payload holds `count` addresses, so this
        // allocates at most 255 entries backed by received bytes.
        let addresses = packet.addresses().collect();
        Ok(Advert {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            interval_cs,
            addresses,
            auth,
        })
    }

    /// Number of addresses that go on the wire (the count field is 8 bits).
    fn wire_count(&self) -> usize {
        self.addresses.len().min(usize::from(u8::MAX))
    }

    /// Length of the emitted VRRP message.
    pub fn buffer_len(&self) -> usize {
        let trailer = match self.version {
            Version::V2 => V2_AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + self.addr_len() * self.wire_count() + trailer
    }

    /// Sent over IPv6 (its addresses are IPv6).
    pub fn is_v6(&self) -> bool {
        self.addresses.first().is_some_and(IpAddr::is_ipv6)
    }

    fn addr_len(&self) -> usize {
        if self.is_v6() {
            16
        } else {
            4
        }
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_cs) * 10)
    }

    /// Writes this advert into `packet`, which must be exactly
    /// [`buffer_len`](Self::buffer_len) bytes (the checksum covers the whole
    /// buffer). Out-of-range values saturate rather than wrap: a v2 interval
    /// is sent as `interval_cs / 100` seconds capped at 255, a v3 interval
    /// is capped at 4 095 cs, and at most 255 addresses are sent.
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()` (a caller bug, as in
    /// smoltcp). [`to_bytes`](Self::to_bytes) cannot get this wrong.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut VrrpPacket<T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        form: V3Checksum,
    ) {
        let (src, dst) = (src.into(), dst.into());
        let count = self.wire_count();
        packet.set_version_and_type(self.version, VRRP_TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_addr_count(u8::try_from(count).unwrap_or(u8::MAX));
        match self.version {
            Version::V2 => {
                packet.set_auth_type(self.auth.wire().0);
                packet.set_advert_interval(self.interval_cs / 100);
            }
            Version::V3 => packet.set_advert_interval(self.interval_cs),
        }
        packet.set_checksum(0);
        for (i, addr) in self.addresses.iter().take(count).enumerate() {
            packet.set_address(i, *addr);
        }
        packet.set_auth_data(self.auth.wire().1);
        packet.fill_checksum(src, dst, form);
    }

    /// The VRRP message as a new buffer (IPv6 when its addresses are).
    pub fn to_bytes(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        form: V3Checksum,
    ) -> Vec<u8> {
        let (src, dst) = (src.into(), dst.into());
        let mut buf = vec![0u8; self.buffer_len()];
        let mut packet = if self.is_v6() {
            VrrpPacket::new_unchecked_v6(&mut buf[..])
        } else {
            VrrpPacket::new_unchecked(&mut buf[..])
        };
        self.emit(&mut packet, src, dst, form);
        buf
    }
}

/// v2 auth type and data (RFC 3768 §5.3.6, §5.3.10). Whether the password
/// matches the configuration is the instance's business.
fn parse_auth<T: AsRef<[u8]>>(packet: &VrrpPacket<T>) -> Result<Auth, ParseError> {
    match packet.auth_type() {
        Some(AUTH_TYPE_NONE) => Ok(Auth::None),
        Some(AUTH_TYPE_PASS) => packet
            .auth_data()
            .map(Auth::Pass)
            .ok_or(ParseError::Truncated),
        _ => Err(ParseError::AuthType),
    }
}

/// What the IP header of a received advert said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Meta {
    /// Sender's primary address: the tie-break key and the peer identity.
    pub src: Ipv4Addr,
    /// 224.0.0.18, or our address for unicast peers.
    pub dst: Ipv4Addr,
    /// Always 255 on success; kept for logging.
    pub ttl: u8,
}

/// Parses a datagram from a raw `IPPROTO_VRRP` socket (IP header included),
/// accepting either v3 checksum form.
pub fn parse_datagram(ip_bytes: &[u8]) -> Result<(Ipv4Meta, Advert), ParseError> {
    parse_datagram_with(ip_bytes, ChecksumCheck::Either)
}

/// [`parse_datagram`] with an explicit v3 checksum policy.
///
/// IP checks first (length, header, header checksum, fragments, protocol,
/// TTL 255 per RFC 3768 §7.1 / RFC 9568 §5.1.1.3), then [`Advert::parse`]
/// on exactly `total_len - header_len` bytes.
pub fn parse_datagram_with(
    ip_bytes: &[u8],
    check: ChecksumCheck,
) -> Result<(Ipv4Meta, Advert), ParseError> {
    let ip = Ipv4Header::new_checked(ip_bytes)?;
    if !ip.verify_checksum() || ip.is_fragment() {
        return Err(ParseError::BadIpHeader);
    }
    if ip.protocol() != VRRP_PROTO {
        return Err(ParseError::NotVrrp);
    }
    if ip.ttl() != VRRP_TTL {
        return Err(ParseError::Ttl);
    }
    let meta = Ipv4Meta {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ttl: ip.ttl(),
    };
    let vrrp = VrrpPacket::new_unchecked(ip.payload());
    let advert = Advert::parse(&vrrp, meta.src, meta.dst, check)?;
    Ok((meta, advert))
}

/// The link-local unicast prefix fe80::/10.
fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Parses a VRRP message received on a raw IPv6 socket, which delivers the
/// payload alone: `src` and `hop_limit` come from the socket (the address and
/// the `IPV6_HOPLIMIT` control message), `dst` from `IPV6_PKTINFO`. An advert
/// to the multicast group must have hop limit 255 (RFC 9568 §5.1.2.3) and a
/// link-local source (routers send from theirs, §5.1.2.1/§7.2: anything else
/// did not come from this link); a unicast one is vouched for by the
/// instance's peer list instead (keepalived sends those with the default hop
/// limit). Then version 3 (v2 has no IPv6 form) and [`Advert::parse`] with the
/// pseudo-header checksum.
pub fn parse_v6(
    payload: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: Option<u8>,
    multicast: bool,
) -> Result<Advert, ParseError> {
    if multicast && hop_limit != Some(VRRP_TTL) {
        return Err(ParseError::Ttl);
    }
    if multicast && !is_link_local(src) {
        return Err(ParseError::Source);
    }
    let vrrp = VrrpPacket::new_unchecked_v6(payload);
    if payload.len() >= HEADER_LEN && vrrp.version() != Version::V3.number() {
        return Err(ParseError::Version);
    }
    Advert::parse(&vrrp, src, dst, ChecksumCheck::PseudoHeader)
}

/// An address from 4 or 16 bytes.
fn ip_from(b: &[u8]) -> IpAddr {
    match <[u8; 16]>::try_from(b) {
        Ok(o) => IpAddr::from(o),
        Err(_) => match <[u8; 4]>::try_from(b) {
            Ok(o) => IpAddr::from(o),
            Err(_) => IpAddr::from([0u8; 4]),
        },
    }
}

/// A complete IPv4 datagram carrying `advert`, laid out as keepalived sends
/// it (IHL 5, TOS 0xc0, no DF, TTL 255, protocol 112), for drivers that use
/// `IP_HDRINCL` and for tests. Drivers that let the kernel build the header
/// must set `IP_TOS` 0xc0 and `IP_MULTICAST_TTL`/`IP_TTL` 255 themselves.
pub fn emit_datagram(
    advert: &Advert,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    form: V3Checksum,
) -> Vec<u8> {
    let total = IPV4_HEADER_LEN + advert.buffer_len();
    let mut buf = vec![0u8; total];
    let (head, body) = buf.split_at_mut(IPV4_HEADER_LEN);
    let mut ip = Ipv4Header::new_unchecked(head);
    ip.set_version_ihl_default();
    ip.set_tos(VRRP_TOS);
    // At most 20 + 8 + 4 * 255 + 8 = 1056 bytes, so this never saturates.
    ip.set_total_len(u16::try_from(total).unwrap_or(u16::MAX));
    ip.set_ident(ident);
    ip.set_flags_frag(0);
    ip.set_ttl(VRRP_TTL);
    ip.set_protocol(VRRP_PROTO);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    advert.emit(&mut VrrpPacket::new_unchecked(body), src, dst, form);
    buf
}

#[cfg(test)]
mod tests {
    use super::super::pcap::{self, fixtures};
    use super::*;

    const ADDR1: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const ADDR2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);

    /// README: v2 advert VRRP bytes from 10.99.0.1, priority 150.
    const V2_BYTES: [u8; 20] = [
        0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x3e, 0x03, 0x0a, 0x63, 0x00, 0x64, 0, 0, 0, 0, 0, 0,
        0, 0,
    ];
    /// README: v3 advert, 10 cs, keepalived (pseudo-header) checksum 0x4307.
    const V3_BYTES: [u8; 12] = [
        0x31, 0x33, 0x96, 0x01, 0x00, 0x0a, 0x43, 0x07, 0x0a, 0x63, 0x00, 0x64,
    ];

    /// Minimal xorshift64 PRNG: deterministic, no crates.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
        fn addr(&mut self) -> Ipv4Addr {
            Ipv4Addr::from(self.next() as u32)
        }
    }

    /// The IPv4 datagrams (trimmed to the IP total length) of every VRRP
    /// frame in a capture.
    fn datagrams(file: &[u8]) -> Vec<Vec<u8>> {
        pcap::vrrp_frames(file)
            .unwrap()
            .iter()
            .map(|f| {
                let len = usize::from(Ipv4Header::new_checked(f.ip).unwrap().total_len());
                f.ip[..len].to_vec()
            })
            .collect()
    }

    fn v2_advert(priority: u8) -> Advert {
        Advert {
            version: Version::V2,
            vrid: 51,
            priority,
            interval_cs: 100,
            addresses: vec![VIP.into()],
            auth: Auth::None,
        }
    }

    fn v3_advert(priority: u8, interval_cs: u16) -> Advert {
        Advert {
            version: Version::V3,
            ..v2_advert(priority)
        }
        .with_interval(interval_cs)
    }

    impl Advert {
        fn with_interval(mut self, interval_cs: u16) -> Advert {
            self.interval_cs = interval_cs;
            self
        }
    }

    /// Emits into a buffer pre-filled with 0xa5 so that any byte emit forgets
    /// to write shows up.
    fn emit_a5(advert: &Advert, src: Ipv4Addr, dst: Ipv4Addr, form: V3Checksum) -> Vec<u8> {
        let mut buf = vec![0xa5u8; advert.buffer_len()];
        advert.emit(&mut VrrpPacket::new_unchecked(&mut buf[..]), src, dst, form);
        buf
    }

    fn fix_ip_checksum(ip: &mut [u8]) {
        Ipv4Header::new_unchecked(ip).fill_checksum();
    }

    /// Recomputes the VRRP checksum (pseudo-header form for v3) and then the
    /// IP header checksum, so a mutation is seen by the check it targets and
    /// not by a checksum check first.
    fn refresh(ip: &mut [u8]) {
        let hdr = Ipv4Header::new_unchecked(&*ip);
        let (src, dst, hlen) = (hdr.src_addr(), hdr.dst_addr(), hdr.header_len());
        VrrpPacket::new_unchecked(&mut ip[hlen..]).fill_checksum(
            src,
            dst,
            V3Checksum::PseudoHeader,
        );
        fix_ip_checksum(ip);
    }

    fn mutated(ip: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = ip.to_vec();
        f(&mut out);
        out
    }

    /// The first VRRP datagram of the v2 capture, as a literal: IPv4 header
    /// (TOS 0xc0, ident 6, TTL 255, proto 112, 10.99.0.1 -> 224.0.0.18) and
    /// [`V2_BYTES`]. The negative tests mutate copies of these literals, so
    /// they do not depend on our emitter.
    const V2_DATAGRAM: [u8; 40] = [
        0x45, 0xc0, 0x00, 0x28, 0x00, 0x06, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x29, 0x0a, 0x63, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, 0x21, 0x33, 0x96, 0x01, 0x00, 0x01, 0x3e, 0x03, 0x0a, 0x63,
        0x00, 0x64, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    /// The first VRRP datagram of the v3 10 cs capture (ident 0x45).
    const V3_DATAGRAM: [u8; 32] = [
        0x45, 0xc0, 0x00, 0x20, 0x00, 0x45, 0x00, 0x00, 0xff, 0x70, 0xcf, 0xf2, 0x0a, 0x63, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, 0x31, 0x33, 0x96, 0x01, 0x00, 0x0a, 0x43, 0x07, 0x0a, 0x63,
        0x00, 0x64,
    ];

    fn v2_datagram() -> Vec<u8> {
        V2_DATAGRAM.to_vec()
    }

    fn v3_datagram() -> Vec<u8> {
        V3_DATAGRAM.to_vec()
    }

    #[test]
    fn datagram_literals_match_the_captures_and_the_emitter() {
        assert_eq!(datagrams(fixtures::V2_TERM)[0], V2_DATAGRAM);
        assert_eq!(datagrams(fixtures::V3_10CS_TERM)[0], V3_DATAGRAM);
        let form = V3Checksum::PseudoHeader;
        let v2 = emit_datagram(&v2_advert(150), ADDR1, VRRP_MCAST_V4, 6, form);
        assert_eq!(v2, V2_DATAGRAM);
        let v3 = emit_datagram(&v3_advert(150, 10), ADDR1, VRRP_MCAST_V4, 0x45, form);
        assert_eq!(v3, V3_DATAGRAM);
    }

    // ----- the README facts --------------------------------------------

    #[test]
    fn readme_v2_frame() {
        let frames = pcap::vrrp_frames(fixtures::V2_TERM).unwrap();
        let f = frames[0];
        assert_eq!(f.frame.len(), 54, "54-byte frame, no padding");
        assert_eq!(
            &f.frame[..6],
            &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12],
            "multicast MAC"
        );
        // Source MAC is the interface's own, not the VRRP virtual MAC
        // 00:00:5e:00:01:33 (keepalived default without use_vmac).
        assert_eq!(&f.frame[6..12], &[0x02, 0x99, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(&f.ip[..2], &[0x45, VRRP_TOS]);
        let ip = Ipv4Header::new_checked(f.ip).unwrap();
        assert_eq!((ip.ttl(), ip.protocol()), (VRRP_TTL, VRRP_PROTO));
        assert_eq!((ip.src_addr(), ip.dst_addr()), (ADDR1, VRRP_MCAST_V4));
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload(), &V2_BYTES);

        let (meta, advert) = parse_datagram(f.ip).unwrap();
        assert_eq!(
            meta,
            Ipv4Meta {
                src: ADDR1,
                dst: VRRP_MCAST_V4,
                ttl: 255
            }
        );
        assert_eq!(advert, v2_advert(150));
        assert_eq!(
            emit_a5(&advert, ADDR1, VRRP_MCAST_V4, V3Checksum::PseudoHeader),
            V2_BYTES
        );
        // v2 ignores the v3 checksum form.
        assert_eq!(
            emit_a5(&advert, ADDR1, VRRP_MCAST_V4, V3Checksum::VrrpOnly),
            V2_BYTES
        );
    }

    #[test]
    fn readme_v3_frame_and_both_checksum_forms() {
        let frames = pcap::vrrp_frames(fixtures::V3_10CS_TERM).unwrap();
        let f = frames[0];
        assert_eq!(f.frame.len(), 46);
        let ip = Ipv4Header::new_checked(f.ip).unwrap();
        assert_eq!(ip.payload(), &V3_BYTES);

        let pkt = VrrpPacket::new_checked(&V3_BYTES[..]).unwrap();
        let (src, dst) = (ADDR1, VRRP_MCAST_V4);
        assert_eq!(pkt.checksum(), 0x4307);
        assert_eq!(
            pkt.compute_checksum(src, dst, V3Checksum::PseudoHeader),
            0x4307
        );
        assert_eq!(pkt.compute_checksum(src, dst, V3Checksum::VrrpOnly), 0x2dfa);

        let advert = v3_advert(150, 10);
        assert_eq!(
            Advert::parse(&pkt, src, dst, ChecksumCheck::Either),
            Ok(advert.clone())
        );
        assert_eq!(
            Advert::parse(&pkt, src, dst, ChecksumCheck::PseudoHeader),
            Ok(advert.clone())
        );
        assert_eq!(
            Advert::parse(&pkt, src, dst, ChecksumCheck::VrrpOnly),
            Err(ParseError::Checksum)
        );
        assert_eq!(
            emit_a5(&advert, src, dst, V3Checksum::PseudoHeader),
            V3_BYTES
        );

        let rfc = emit_a5(&advert, src, dst, V3Checksum::VrrpOnly);
        let mut expected = V3_BYTES;
        expected[6..8].copy_from_slice(&[0x2d, 0xfa]);
        assert_eq!(rfc, expected);
        let rfc_pkt = VrrpPacket::new_checked(&rfc[..]).unwrap();
        assert_eq!(
            Advert::parse(&rfc_pkt, src, dst, ChecksumCheck::Either),
            Ok(advert.clone())
        );
        assert_eq!(
            Advert::parse(&rfc_pkt, src, dst, ChecksumCheck::VrrpOnly),
            Ok(advert)
        );
        assert_eq!(
            Advert::parse(&rfc_pkt, src, dst, ChecksumCheck::PseudoHeader),
            Err(ParseError::Checksum)
        );
        // The pseudo-header form depends on the addresses; VRRP-only doesn't.
        assert_eq!(
            Advert::parse(&pkt, ADDR2, dst, ChecksumCheck::Either),
            Err(ParseError::Checksum)
        );
        assert!(rfc_pkt.verify_checksum(ADDR2, dst, ChecksumCheck::VrrpOnly));
    }

    #[test]
    fn readme_priority_zero_adverts() {
        let v2 = datagrams(fixtures::V2_TERM);
        let v3 = datagrams(fixtures::V3_10CS_TERM);
        assert_eq!(
            &v2[3][20..28],
            &[0x21, 0x33, 0x00, 0x01, 0x00, 0x01, 0xd4, 0x03]
        );
        assert_eq!(
            &v3[3][20..28],
            &[0x31, 0x33, 0x00, 0x01, 0x00, 0x0a, 0xd9, 0x07]
        );
        let f = V3Checksum::PseudoHeader;
        assert_eq!(emit_a5(&v2_advert(0), ADDR1, VRRP_MCAST_V4, f), v2[3][20..]);
        assert_eq!(
            emit_a5(&v3_advert(0, 10), ADDR1, VRRP_MCAST_V4, f),
            v3[3][20..]
        );
        assert_eq!(parse_datagram(&v2[3]).map(|(_, a)| a), Ok(v2_advert(0)));
        assert_eq!(parse_datagram(&v3[3]).map(|(_, a)| a), Ok(v3_advert(0, 10)));
    }

    /// (source, priority) of each VRRP frame of a capture, in order.
    type Senders = Vec<(Ipv4Addr, u8)>;

    /// Every VRRP frame of every capture parses to the expected advert, and
    /// both the VRRP message and the whole IP datagram re-emit byte for byte.
    #[test]
    fn every_captured_frame_parses_and_reemits_exactly() {
        // (capture, version, interval_cs, [(source, priority)] in order)
        let s1 = |p| (ADDR1, p);
        let s2 = |p| (ADDR2, p);
        let split: Vec<_> = [
            s1(150),
            s1(150),
            s1(150),
            s1(150),
            s1(150),
            s2(100),
            s1(150),
            s1(150),
            s2(100),
            s1(150),
            s2(100),
            s1(150),
            s2(100),
            s1(150),
            s2(100),
            s1(150),
            s1(150),
        ]
        .to_vec();
        let cases: Vec<(&[u8], Version, u16, Senders)> = vec![
            (
                fixtures::V2_TERM,
                Version::V2,
                100,
                vec![s1(150), s1(150), s1(150), s1(0), s2(100)],
            ),
            (
                fixtures::V2_UNICAST_TERM,
                Version::V2,
                100,
                vec![s1(150), s1(150), s1(150), s1(0), s2(100)],
            ),
            (
                fixtures::V3_100CS_TERM,
                Version::V3,
                100,
                vec![s1(150), s1(150), s1(0), s2(100)],
            ),
            (
                fixtures::V3_10CS_TERM,
                Version::V3,
                10,
                vec![s1(150), s1(150), s1(150), s1(0), s2(100), s2(100), s2(100)],
            ),
            (fixtures::V2_SPLIT_BRAIN, Version::V2, 100, split),
            (
                fixtures::V2_UNICAST_SPLIT_BRAIN,
                Version::V2,
                100,
                vec![s2(100), s1(150), s2(100), s1(150), s1(150), s1(150)],
            ),
        ];
        for (file, version, interval_cs, expected) in cases {
            let frames = pcap::vrrp_frames(file).unwrap();
            assert_eq!(frames.len(), expected.len());
            for (f, (src, priority)) in frames.iter().zip(expected) {
                let ip = Ipv4Header::new_checked(f.ip).unwrap();
                let total = usize::from(ip.total_len());
                assert_eq!(f.frame.len(), 14 + total, "veth frames carry no padding");
                let (meta, advert) = parse_datagram(f.ip).unwrap();
                assert_eq!(meta.src, src);
                let want = Advert {
                    version,
                    vrid: 0x33,
                    priority,
                    interval_cs,
                    addresses: vec![VIP.into()],
                    auth: Auth::None,
                };
                assert_eq!(advert, want);
                let form = V3Checksum::PseudoHeader;
                let vrrp = emit_a5(&advert, meta.src, meta.dst, form);
                assert_eq!(vrrp, ip.payload());
                let whole = emit_datagram(&advert, meta.src, meta.dst, ip.ident(), form);
                assert_eq!(whole, &f.ip[..total]);
            }
        }
    }

    #[test]
    fn unicast_capture_addresses_the_peer() {
        let d = datagrams(fixtures::V2_UNICAST_TERM);
        let (meta, _) = parse_datagram(&d[0]).unwrap();
        assert_eq!((meta.src, meta.dst), (ADDR1, ADDR2));
        let (meta, _) = parse_datagram(&d[4]).unwrap();
        assert_eq!((meta.src, meta.dst), (ADDR2, ADDR1));
    }

    #[test]
    fn parses_by_ip_total_length_not_buffer_length() {
        for d in [v2_datagram(), v3_datagram()] {
            let want = parse_datagram(&d).unwrap();
            for pad in [0x00u8, 0xff, 0x5a] {
                // Ethernet pads to 60 bytes: 46 bytes of IP at least.
                let mut padded = d.clone();
                padded.resize(d.len().max(46) + 7, pad);
                assert_eq!(parse_datagram(&padded), Ok(want.clone()));
            }
        }
    }

    #[test]
    fn emit_writes_exactly_buffer_len_bytes() {
        let advert = Advert {
            addresses: vec![VIP.into(), ADDR1.into(), ADDR2.into()],
            auth: Auth::pass(b"secret"),
            ..v2_advert(100)
        };
        assert_eq!(advert.buffer_len(), 8 + 12 + 8);
        let mut buf = vec![0xa5u8; advert.buffer_len() + 5];
        let len = advert.buffer_len();
        advert.emit(
            &mut VrrpPacket::new_unchecked(&mut buf[..len]),
            ADDR1,
            ADDR2,
            V3Checksum::VrrpOnly,
        );
        assert!(buf[len..].iter().all(|b| *b == 0xa5));
        assert!(!buf[..len].contains(&0xa5));
        assert_eq!(&buf[len - 8..len], b"secret\0\0");
        assert_eq!(buf[4], AUTH_TYPE_PASS);
        let pkt = VrrpPacket::new_checked(&buf[..len]).unwrap();
        assert_eq!(pkt.auth_type(), Some(1));
        assert_eq!(pkt.addresses().collect::<Vec<_>>(), vec![VIP, ADDR1, ADDR2]);
        assert_eq!(
            Advert::parse(&pkt, ADDR1, ADDR2, ChecksumCheck::Either),
            Ok(advert)
        );
    }

    #[test]
    fn auth_pass_is_truncated_and_zero_padded_like_keepalived() {
        assert_eq!(Auth::pass(b"pw"), Auth::Pass(*b"pw\0\0\0\0\0\0"));
        assert_eq!(Auth::pass(b"0123456789"), Auth::Pass(*b"01234567"));
        assert_eq!(Auth::None.wire(), (0, [0; 8]));
    }

    #[test]
    fn v2_auth_data_is_ignored_for_auth_type_none() {
        // RFC 3768 §5.3.10: "ignored on reception".
        let d = mutated(&v2_datagram(), |d| {
            d[32..40].copy_from_slice(b"garbage!");
            refresh(d);
        });
        assert_eq!(parse_datagram(&d).map(|(_, a)| a), Ok(v2_advert(150)));
    }

    #[test]
    fn accessors_on_checked_packets() {
        let pkt = VrrpPacket::new_checked(&V2_BYTES[..]).unwrap();
        assert_eq!(
            (
                pkt.version(),
                pkt.msg_type(),
                pkt.vrid(),
                pkt.priority(),
                pkt.addr_count()
            ),
            (2, 1, 51, 150, 1)
        );
        assert_eq!(
            (pkt.auth_type(), pkt.advert_interval(), pkt.interval_cs()),
            (Some(0), 1, 100)
        );
        assert_eq!(
            (pkt.checksum(), pkt.reserved(), pkt.message_len()),
            (0x3e03, 0, 20)
        );
        assert_eq!((pkt.address(0), pkt.address(1)), (Some(VIP.into()), None));
        assert_eq!(pkt.auth_data(), Some([0; 8]));

        let mut v3 = V3_BYTES;
        v3[4] |= 0xa0; // reserved bits: ignored on receipt (RFC 9568 §5.2.6)
        let pkt = VrrpPacket::new_checked(&v3[..]).unwrap();
        assert_eq!(
            (pkt.auth_type(), pkt.auth_data(), pkt.reserved()),
            (None, None, 0xa)
        );
        assert_eq!((pkt.advert_interval(), pkt.interval_cs()), (10, 10));
        assert_eq!(pkt.into_inner().len(), 12);
    }

    #[test]
    fn v3_reserved_bits_are_ignored_and_emitted_as_zero() {
        let d = mutated(&v3_datagram(), |d| {
            d[24] |= 0xf0;
            refresh(d);
        });
        assert_eq!(parse_datagram(&d).map(|(_, a)| a), Ok(v3_advert(150, 10)));
        assert_eq!(
            emit_a5(
                &v3_advert(150, 10),
                ADDR1,
                VRRP_MCAST_V4,
                V3Checksum::VrrpOnly
            )[4],
            0
        );
    }

    #[test]
    fn emit_saturates_out_of_range_values() {
        let big_v3 = v3_advert(1, 9999);
        let bytes = big_v3.to_bytes(ADDR1, ADDR2, V3Checksum::VrrpOnly);
        let pkt = VrrpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(pkt.interval_cs(), V3_MAX_INTERVAL_CS);
        let big_v2 = v2_advert(1).with_interval(60_000);
        let bytes = big_v2.to_bytes(ADDR1, ADDR2, V3Checksum::VrrpOnly);
        assert_eq!(
            VrrpPacket::new_checked(&bytes[..])
                .unwrap()
                .advert_interval(),
            255
        );
        let many = Advert {
            addresses: (0..300u32).map(|a| Ipv4Addr::from(a).into()).collect(),
            ..v3_advert(5, 100)
        };
        assert_eq!(many.buffer_len(), 8 + 4 * 255);
        let bytes = many.to_bytes(ADDR1, ADDR2, V3Checksum::VrrpOnly);
        let parsed = Advert::parse(
            &VrrpPacket::new_checked(&bytes[..]).unwrap(),
            ADDR1,
            ADDR2,
            ChecksumCheck::VrrpOnly,
        )
        .unwrap();
        assert_eq!(parsed.addresses[..], many.addresses[..255]);
    }

    // ----- one negative test per ParseError ----------------------------

    #[test]
    fn truncated_at_every_length() {
        for d in [v2_datagram(), v3_datagram()] {
            for cut in 0..d.len() {
                assert_eq!(
                    parse_datagram(&d[..cut]),
                    Err(ParseError::Truncated),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn vrrp_message_prefixes() {
        for cut in 0..V2_BYTES.len() {
            let want = if cut < 16 {
                ParseError::Truncated
            } else {
                ParseError::AddressCount
            };
            assert_eq!(
                VrrpPacket::new_checked(&V2_BYTES[..cut]).err(),
                Some(want),
                "v2 {cut}"
            );
        }
        for cut in 0..V3_BYTES.len() {
            let want = if cut < 8 {
                ParseError::Truncated
            } else {
                ParseError::AddressCount
            };
            assert_eq!(
                VrrpPacket::new_checked(&V3_BYTES[..cut]).err(),
                Some(want),
                "v3 {cut}"
            );
        }
        let unchecked = VrrpPacket::new_unchecked(&V2_BYTES[..5]);
        assert_eq!(
            Advert::parse(&unchecked, ADDR1, ADDR2, ChecksumCheck::Either),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn bad_ip_header() {
        let d = v3_datagram();
        let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
            (
                "ipv6 version",
                mutated(&d, |d| d[0] = 0x65),
                ParseError::BadIpHeader,
            ),
            (
                "ihl 4",
                mutated(&d, |d| d[0] = 0x44),
                ParseError::BadIpHeader,
            ),
            (
                "ihl 0",
                mutated(&d, |d| d[0] = 0x40),
                ParseError::BadIpHeader,
            ),
            (
                "ihl beyond buffer",
                mutated(&d, |d| d[0] = 0x4f),
                ParseError::Truncated,
            ),
            (
                "total below header",
                mutated(&d, |d| {
                    d[2..4].copy_from_slice(&19u16.to_be_bytes());
                    fix_ip_checksum(d);
                }),
                ParseError::BadIpHeader,
            ),
            (
                "header checksum",
                mutated(&d, |d| d[10] ^= 0x01),
                ParseError::BadIpHeader,
            ),
            (
                "more fragments",
                mutated(&d, |d| {
                    d[6] = 0x20;
                    fix_ip_checksum(d);
                }),
                ParseError::BadIpHeader,
            ),
            (
                "fragment offset",
                mutated(&d, |d| {
                    d[7] = 0x01;
                    fix_ip_checksum(d);
                }),
                ParseError::BadIpHeader,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(parse_datagram(&bytes).err(), Some(want), "{what}");
        }
        // DF alone is fine.
        let df = mutated(&d, |d| {
            d[6] = 0x40;
            fix_ip_checksum(d);
        });
        assert!(parse_datagram(&df).is_ok());
    }

    #[test]
    fn ip_options_are_skipped() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL) before the VRRP message.
        let d = v2_datagram();
        let mut with_opt = d[..20].to_vec();
        with_opt[0] = 0x46;
        with_opt.extend_from_slice(&[1, 1, 1, 0]);
        with_opt.extend_from_slice(&d[20..]);
        let total = u16::try_from(with_opt.len()).unwrap();
        with_opt[2..4].copy_from_slice(&total.to_be_bytes());
        fix_ip_checksum(&mut with_opt);
        assert_eq!(parse_datagram(&with_opt), parse_datagram(&d));
    }

    #[test]
    fn not_vrrp() {
        for proto in [0u8, 6, 17, 51, 113] {
            let d = mutated(&v2_datagram(), |d| {
                d[9] = proto;
                fix_ip_checksum(d);
            });
            assert_eq!(
                parse_datagram(&d).err(),
                Some(ParseError::NotVrrp),
                "proto {proto}"
            );
        }
    }

    #[test]
    fn ttl_must_be_255() {
        for ttl in [0u8, 1, 64, 254] {
            for base in [v2_datagram(), v3_datagram()] {
                let d = mutated(&base, |d| {
                    d[8] = ttl;
                    fix_ip_checksum(d);
                });
                assert_eq!(parse_datagram(&d).err(), Some(ParseError::Ttl), "ttl {ttl}");
            }
        }
    }

    #[test]
    fn unknown_version() {
        for version in [0u8, 1, 4, 15] {
            let d = mutated(&v2_datagram(), |d| {
                d[20] = (version << 4) | 1;
                refresh(d);
            });
            assert_eq!(
                parse_datagram(&d).err(),
                Some(ParseError::Version),
                "v{version}"
            );
            let vrrp = &d[20..];
            assert_eq!(
                VrrpPacket::new_checked(vrrp).err(),
                Some(ParseError::Version)
            );
        }
    }

    #[test]
    fn unknown_type() {
        for ty in [0u8, 2, 15] {
            for base in [v2_datagram(), v3_datagram()] {
                let d = mutated(&base, |d| {
                    d[20] = (d[20] & 0xf0) | ty;
                    refresh(d);
                });
                assert_eq!(
                    parse_datagram(&d).err(),
                    Some(ParseError::Type),
                    "type {ty}"
                );
            }
        }
    }

    #[test]
    fn address_count_zero_or_beyond_payload() {
        for count in [0u8, 2, 3, 255] {
            for base in [v2_datagram(), v3_datagram()] {
                let d = mutated(&base, |d| {
                    d[23] = count;
                    refresh(d);
                });
                assert_eq!(
                    parse_datagram(&d).err(),
                    Some(ParseError::AddressCount),
                    "count {count}"
                );
            }
        }
    }

    #[test]
    fn checksum_mismatch() {
        for base in [v2_datagram(), v3_datagram()] {
            for (at, mask) in [(26usize, 0x01u8), (27, 0x80), (21, 0x04), (31, 0x10)] {
                let d = mutated(&base, |d| d[at] ^= mask);
                assert_eq!(
                    parse_datagram(&d).err(),
                    Some(ParseError::Checksum),
                    "byte {at}"
                );
            }
        }
        // Strict modes on the datagram path.
        let keepalived = v3_datagram();
        let rfc = emit_datagram(
            &v3_advert(150, 10),
            ADDR1,
            VRRP_MCAST_V4,
            1,
            V3Checksum::VrrpOnly,
        );
        for (d, ok_mode, bad_mode) in [
            (
                &keepalived,
                ChecksumCheck::PseudoHeader,
                ChecksumCheck::VrrpOnly,
            ),
            (&rfc, ChecksumCheck::VrrpOnly, ChecksumCheck::PseudoHeader),
        ] {
            assert!(parse_datagram_with(d, ChecksumCheck::Either).is_ok());
            assert!(parse_datagram_with(d, ok_mode).is_ok());
            assert_eq!(
                parse_datagram_with(d, bad_mode).err(),
                Some(ParseError::Checksum)
            );
        }
    }

    #[test]
    fn both_encodings_of_a_zero_sum_verify() {
        // RFC 1071: 0x0000 and 0xffff are the same one's-complement number.
        // Find a VRRP-only v3 message whose checksum computes to 0x0000 or
        // 0xffff, then check the other encoding verifies too.
        let mut found = 0;
        for vrid in 1..=255u8 {
            for priority in 0..=255u8 {
                let advert = Advert {
                    vrid,
                    priority,
                    ..v3_advert(0, 10)
                };
                let mut bytes = advert.to_bytes(ADDR1, ADDR2, V3Checksum::VrrpOnly);
                let c = u16::from_be_bytes([bytes[6], bytes[7]]);
                if c == 0 || c == 0xffff {
                    bytes[6..8].copy_from_slice(&(!c).to_be_bytes());
                    let pkt = VrrpPacket::new_checked(&bytes[..]).unwrap();
                    assert!(pkt.verify_checksum(ADDR1, ADDR2, ChecksumCheck::VrrpOnly));
                    found += 1;
                }
            }
        }
        assert!(found > 0);
    }

    #[test]
    fn auth_type_other_than_none_or_pass() {
        for auth_type in [2u8, 3, 255] {
            let d = mutated(&v2_datagram(), |d| {
                d[24] = auth_type;
                refresh(d);
            });
            assert_eq!(
                parse_datagram(&d).err(),
                Some(ParseError::AuthType),
                "{auth_type}"
            );
        }
        let pass = mutated(&v2_datagram(), |d| {
            d[24] = AUTH_TYPE_PASS;
            d[32..40].copy_from_slice(b"hunter2\0");
            refresh(d);
        });
        assert_eq!(
            parse_datagram(&pass).map(|(_, a)| a.auth),
            Ok(Auth::Pass(*b"hunter2\0"))
        );
    }

    #[test]
    fn zero_interval() {
        let v2 = mutated(&v2_datagram(), |d| {
            d[25] = 0;
            refresh(d);
        });
        assert_eq!(parse_datagram(&v2).err(), Some(ParseError::Interval));
        // v3: zero interval even with the reserved bits set.
        let v3 = mutated(&v3_datagram(), |d| {
            d[24..26].copy_from_slice(&[0xf0, 0x00]);
            refresh(d);
        });
        assert_eq!(parse_datagram(&v3).err(), Some(ParseError::Interval));
    }

    #[test]
    fn every_single_bit_flip_of_a_captured_datagram_is_rejected() {
        // The IP header checksum covers the header, the VRRP checksum covers
        // the message, and a one's-complement sum catches every single-bit
        // error. Neither pseudo-header sum here is ± a power of two, so a flip
        // cannot turn one v3 checksum form into the other either.
        for file in [
            fixtures::V2_TERM,
            fixtures::V3_10CS_TERM,
            fixtures::V3_100CS_TERM,
        ] {
            for d in datagrams(file) {
                for bit in 0..d.len() * 8 {
                    let flipped = mutated(&d, |d| d[bit / 8] ^= 1 << (bit % 8));
                    assert!(parse_datagram(&flipped).is_err(), "bit {bit} of {d:02x?}");
                }
            }
        }
    }

    /// keepalived's IPv6 adverts from a capture: (source, destination, hop limit, message).
    fn v6_adverts(file: &[u8]) -> Vec<(Ipv6Addr, Ipv6Addr, u8, Vec<u8>)> {
        let addr = |b: &[u8]| {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Ipv6Addr::from(o)
        };
        super::super::pcap::records(file)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.data.len() > 54 && r.data[12..14] == [0x86, 0xdd] && r.data[20] == 112)
            .map(|r| {
                let d = r.data;
                let len = usize::from(u16::from_be_bytes([d[18], d[19]]));
                (
                    addr(&d[22..38]),
                    addr(&d[38..54]),
                    d[21],
                    d[54..54 + len].to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn keepalived_ipv6_adverts_parse_and_reemit_byte_exact() {
        let ll: IpAddr = "fe80::51:1".parse().unwrap();
        let global: IpAddr = "2001:db8:1::100".parse().unwrap();
        let caps = v6_adverts(fixtures::V6_TERM);
        assert!(
            caps.len() >= 10,
            "the capture holds adverts ({})",
            caps.len()
        );
        let mut priorities = std::collections::BTreeSet::new();
        for (src, dst, hops, msg) in &caps {
            assert_eq!(*dst, VRRP_MCAST_V6);
            let a = parse_v6(msg, *src, *dst, Some(*hops), true).expect("keepalived's advert");
            assert_eq!((a.version, a.vrid, a.interval_cs), (Version::V3, 51, 100));
            assert_eq!(a.addresses, vec![ll, global]);
            priorities.insert(a.priority);
            assert_eq!(
                &a.to_bytes(*src, *dst, V3Checksum::PseudoHeader),
                msg,
                "re-emitted from {src}"
            );
        }
        assert!(
            priorities.contains(&0),
            "the capture has the priority-0 hand-back"
        );
        // Unicast: global addresses, the default hop limit; the peer list vouches.
        let uni = v6_adverts(fixtures::V6_UNICAST);
        assert!(!uni.is_empty());
        for (src, dst, hops, msg) in &uni {
            assert_ne!(
                *hops, 255,
                "keepalived sends unicast with the default hop limit"
            );
            let a = parse_v6(msg, *src, *dst, Some(*hops), false).expect("unicast advert");
            assert_eq!(&a.to_bytes(*src, *dst, V3Checksum::PseudoHeader), msg);
            assert_eq!(
                parse_v6(msg, *src, *dst, Some(*hops), true),
                Err(ParseError::Ttl),
                "the same to the group would be off-link"
            );
        }
    }

    #[test]
    fn hostile_ipv6_adverts_are_refused_for_their_reason() {
        let (src, dst, _, msg) = v6_adverts(fixtures::V6_TERM)
            .into_iter()
            .next()
            .expect("an advert");
        let ok = |m: &[u8], s: Ipv6Addr, h: Option<u8>| parse_v6(m, s, dst, h, true);
        assert!(ok(&msg, src, Some(255)).is_ok());
        assert_eq!(ok(&msg, src, Some(254)), Err(ParseError::Ttl));
        assert_eq!(ok(&msg, src, None), Err(ParseError::Ttl));
        let global: Ipv6Addr = "2001:db8:1::b".parse().unwrap();
        assert_eq!(ok(&msg, global, Some(255)), Err(ParseError::Source));
        let mut bad = msg.clone();
        bad[6] ^= 0x55;
        assert_eq!(ok(&bad, src, Some(255)), Err(ParseError::Checksum));
        // The right sum for another source is the wrong one for this one.
        let other: Ipv6Addr = "fe80::99".parse().unwrap();
        assert_eq!(ok(&msg, other, Some(255)), Err(ParseError::Checksum));
        for len in 0..msg.len() {
            assert!(ok(&msg[..len], src, Some(255)).is_err(), "cut at {len}");
        }
        let mut v2 = msg.clone();
        v2[0] = 0x21;
        assert_eq!(ok(&v2, src, Some(255)), Err(ParseError::Version));
        let mut zero = msg.clone();
        zero[4] = 0;
        zero[5] = 0;
        let a = Advert::parse(
            &VrrpPacket::new_unchecked_v6(&zero[..]),
            src,
            dst,
            ChecksumCheck::Either,
        );
        assert!(a.is_err(), "zero interval (or its checksum)");
    }

    #[test]
    fn labels_are_unique_and_stable() {
        let labels: Vec<_> = ParseError::ALL.iter().map(ParseError::label).collect();
        assert_eq!(
            labels,
            [
                "truncated",
                "bad_ip_header",
                "not_vrrp",
                "ttl",
                "version",
                "type",
                "address_count",
                "checksum",
                "auth_type",
                "interval",
                "source_not_link_local"
            ]
        );
        assert_eq!(ParseError::Ttl.to_string(), "invalid VRRP datagram: ttl");
    }

    // ----- properties ---------------------------------------------------

    fn random_advert(rng: &mut XorShift) -> Advert {
        let version = if rng.below(2) == 0 {
            Version::V2
        } else {
            Version::V3
        };
        let (interval_cs, auth) = match version {
            Version::V2 => {
                let auth = if rng.below(2) == 0 {
                    Auth::None
                } else {
                    Auth::Pass(rng.next().to_le_bytes())
                };
                ((1 + rng.below(255) as u16) * 100, auth)
            }
            Version::V3 => (1 + rng.below(4095) as u16, Auth::None),
        };
        let count = if rng.below(10) == 0 {
            1 + rng.below(255)
        } else {
            1 + rng.below(4)
        };
        Advert {
            version,
            vrid: 1 + rng.below(255) as u8,
            priority: rng.byte(),
            interval_cs,
            addresses: (0..count).map(|_| rng.addr().into()).collect(),
            auth,
        }
    }

    #[test]
    fn round_trip_property() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..4000 {
            let advert = random_advert(&mut rng);
            let (src, dst) = (rng.addr(), rng.addr());
            let form = if rng.below(2) == 0 {
                V3Checksum::PseudoHeader
            } else {
                V3Checksum::VrrpOnly
            };
            let strict = match form {
                V3Checksum::PseudoHeader => ChecksumCheck::PseudoHeader,
                V3Checksum::VrrpOnly => ChecksumCheck::VrrpOnly,
            };
            let bytes = emit_a5(&advert, src, dst, form);
            assert_eq!(bytes, advert.to_bytes(src, dst, form));
            let pkt = VrrpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(Advert::parse(&pkt, src, dst, strict).as_ref(), Ok(&advert));
            assert_eq!(
                Advert::parse(&pkt, src, dst, ChecksumCheck::Either).as_ref(),
                Ok(&advert)
            );

            let ident = rng.next() as u16;
            let datagram = emit_datagram(&advert, src, dst, ident, form);
            let meta = Ipv4Meta {
                src,
                dst,
                ttl: VRRP_TTL,
            };
            assert_eq!(
                parse_datagram_with(&datagram, strict),
                Ok((meta, advert.clone()))
            );
            let ip = Ipv4Header::new_checked(&datagram[..]).unwrap();
            assert_eq!((ip.ident(), ip.tos()), (ident, VRRP_TOS));
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut ok = 0;
        for _ in 0..20_000 {
            let len = rng.below(96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            // Half the time, make the IP header plausible so the VRRP parser
            // sees the random part.
            if len >= 20 && rng.below(2) == 0 {
                bytes[0] = 0x45;
                bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                bytes[6] = 0;
                bytes[7] = 0;
                bytes[8] = VRRP_TTL;
                bytes[9] = VRRP_PROTO;
                if len > 20 && rng.below(2) == 0 {
                    bytes[20] = if rng.below(2) == 0 { 0x21 } else { 0x31 };
                }
                fix_ip_checksum(&mut bytes);
            }
            if parse_datagram(&bytes).is_ok() {
                ok += 1;
            }
            if let Ok(pkt) = VrrpPacket::new_checked(&bytes[..]) {
                // After new_checked every accessor must be in bounds.
                let _ = (pkt.version(), pkt.msg_type(), pkt.vrid(), pkt.priority());
                let _ = (pkt.auth_type(), pkt.advert_interval(), pkt.interval_cs());
                let _ = (pkt.checksum(), pkt.reserved(), pkt.auth_data());
                assert_eq!(pkt.addresses().count(), usize::from(pkt.addr_count()));
                for i in 0..=usize::from(pkt.addr_count()) {
                    let _ = pkt.address(i);
                }
            }
        }
        // Random bytes essentially never carry two valid checksums.
        assert!(ok < 5, "{ok} random datagrams parsed");
    }

    #[test]
    fn mutated_valid_datagrams_never_panic() {
        let mut rng = XorShift(42);
        let seeds = [v2_datagram(), v3_datagram()];
        for i in 0..20_000 {
            let mut d = seeds[i % 2].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(d.len() as u64) as usize;
                d[at] = rng.byte();
            }
            // Sometimes fix the checksums so the mutation reaches the later
            // checks (refresh() itself needs a sane header and 8 VRRP bytes).
            let sane = Ipv4Header::new_checked(&d[..]).is_ok_and(|h| h.payload().len() >= 8);
            if sane && rng.below(3) == 0 {
                refresh(&mut d);
            }
            let cut = rng.below(d.len() as u64 + 1) as usize;
            let _ = parse_datagram(&d[..cut]);
            let _ = parse_datagram(&d);
        }
    }
}
