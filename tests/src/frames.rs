//! Builds test frames byte by byte: Ethernet (optionally 802.1Q), IPv4 (optionally with
//! options or fragment bits) or IPv6 (optionally with extension headers), TCP, UDP, ICMP or
//! ICMPv6. IP and ICMP checksums are correct unless a test breaks them (the data path reads no
//! transport checksum, so TCP and UDP leave theirs zero).

use std::net::IpAddr;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;

/// IPv6 extension header numbers.
pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_DEST: u8 = 60;
pub const IPPROTO_ICMPV6: u8 = 58;

/// One IPv6 extension header: its type and the bytes after Next Header and Hdr Ext Len
/// (padded to a multiple of 8 with zeros; a fragment header's 6 bytes are taken as they are).
#[derive(Clone, Debug)]
pub struct Ext {
    pub kind: u8,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlans: Vec<u16>,
    pub ethertype: u16,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// IPv4 only.
    pub ip_options: Vec<u8>,
    /// IPv4 only: the raw frag_off field (flags + offset).
    pub frag: u16,
    /// IPv6 only: extension headers, in order, before the transport header.
    pub ext: Vec<Ext>,
    /// ICMP only: type, code and the four bytes after the checksum (the MTU of "fragmentation
    /// needed", the identifier and sequence of an echo).
    pub icmp: (u8, u8, [u8; 4]),
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn tcp(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>, dport: u16) -> Self {
        let (src, dst) = (src.into(), dst.into());
        Frame {
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src_mac: [0x02, 0, 0, 0, 0, 0xc1],
            vlans: vec![],
            ethertype: if src.is_ipv4() { ETH_P_IP } else { ETH_P_IPV6 },
            src,
            dst,
            proto: 6,
            sport,
            dport,
            ip_options: vec![],
            frag: 0x4000, // DF
            ext: vec![],
            icmp: (0, 0, [0; 4]),
            payload: b"hello".to_vec(),
        }
    }

    pub fn udp(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>, dport: u16) -> Self {
        Frame {
            proto: 17,
            ..Frame::tcp(src, sport, dst, dport)
        }
    }

    /// An ICMP (IPv4) or ICMPv6 message: `payload` follows the 8-byte header (for an error, the
    /// quoted datagram: see `quote`).
    pub fn icmp(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        ty: u8,
        code: u8,
        rest: [u8; 4],
    ) -> Self {
        let f = Frame::tcp(src, 0, dst, 0);
        Frame {
            proto: if f.src.is_ipv4() { 1 } else { IPPROTO_ICMPV6 },
            icmp: (ty, code, rest),
            payload: Vec::new(),
            ..f
        }
    }

    /// What an ICMP error quotes of this frame: its IP header (and IPv6 extension headers) and
    /// the first `l4` bytes after it (RFC 792 asks for 8; routers may send more).
    pub fn quote(&self, l4: usize) -> Vec<u8> {
        let b = self.bytes();
        let ip = 14 + 4 * self.vlans.len();
        let hlen = match self.src {
            IpAddr::V4(_) => 20 + self.ip_options.len(),
            IpAddr::V6(_) => 40 + self.ext_bytes().len(),
        };
        b[ip..(ip + hlen + l4).min(b.len())].to_vec()
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for v in &self.vlans {
            f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&self.ethertype.to_be_bytes());
        if self.ethertype != ETH_P_IP && self.ethertype != ETH_P_IPV6 {
            f.extend_from_slice(&[0u8; 28]);
            return f;
        }
        let l4 = self.l4();
        match (self.src, self.dst) {
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ext = self.ext_bytes();
                let first = self.ext.first().map_or(self.proto, |e| e.kind);
                let payload = ext.len() + l4.len();
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(payload as u16).to_be_bytes());
                f.extend_from_slice(&[first, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&ext);
            }
            (src, dst) => {
                let ihl = 20 + self.ip_options.len();
                let total = ihl + l4.len();
                let mut ip = vec![
                    0x40 | (ihl / 4) as u8,
                    0,
                    (total >> 8) as u8,
                    total as u8,
                    0x12,
                    0x34,
                    (self.frag >> 8) as u8,
                    self.frag as u8,
                    64,
                    self.proto,
                    0,
                    0,
                ];
                ip.extend_from_slice(&octets(src));
                ip.extend_from_slice(&octets(dst));
                ip.extend_from_slice(&self.ip_options);
                let c = checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
        }
        f.extend_from_slice(&l4);
        f
    }

    /// The IPv6 extension headers, chained to the transport protocol.
    fn ext_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(self.proto, |n| n.kind);
            let mut h = vec![next, 0];
            h.extend_from_slice(&e.body);
            if e.kind != NEXTHDR_FRAGMENT {
                while h.len() % 8 != 0 {
                    h.push(0);
                }
                h[1] = (h.len() / 8 - 1) as u8;
            }
            out.extend_from_slice(&h);
        }
        out
    }

    fn l4(&self) -> Vec<u8> {
        if self.proto == 1 || self.proto == IPPROTO_ICMPV6 {
            let (ty, code, rest) = self.icmp;
            let mut h = vec![ty, code, 0, 0];
            h.extend_from_slice(&rest);
            h.extend_from_slice(&self.payload);
            let c = match (self.src, self.dst) {
                // ICMPv6 sums a pseudo-header too (RFC 4443 §2.3).
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    let mut p = s.octets().to_vec();
                    p.extend_from_slice(&d.octets());
                    p.extend_from_slice(&(h.len() as u32).to_be_bytes());
                    p.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
                    p.extend_from_slice(&h);
                    checksum(&p)
                }
                _ => checksum(&h),
            };
            h[2..4].copy_from_slice(&c.to_be_bytes());
            return h;
        }
        let mut h = Vec::new();
        h.extend_from_slice(&self.sport.to_be_bytes());
        h.extend_from_slice(&self.dport.to_be_bytes());
        match self.proto {
            6 => {
                h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
            }
            17 => {
                let len = 8 + self.payload.len();
                h.extend_from_slice(&(len as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
            }
            _ => {}
        }
        h.extend_from_slice(&self.payload);
        h
    }
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
