//! Builds test frames byte by byte: Ethernet (optionally 802.1Q), IPv4 (optionally with
//! options or fragment bits), TCP, UDP or ICMP. Checksums are correct unless a test breaks
//! them.

use std::net::Ipv4Addr;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;

#[derive(Clone, Debug)]
pub struct Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlans: Vec<u16>,
    pub ethertype: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ip_options: Vec<u8>,
    /// Raw frag_off field (flags + offset).
    pub frag: u16,
    /// ICMP only: type, code and the four bytes after the checksum (the MTU of "fragmentation
    /// needed", the identifier and sequence of an echo).
    pub icmp: (u8, u8, [u8; 4]),
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Frame {
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src_mac: [0x02, 0, 0, 0, 0, 0xc1],
            vlans: vec![],
            ethertype: ETH_P_IP,
            src,
            dst,
            proto: 6,
            sport,
            dport,
            ip_options: vec![],
            frag: 0x4000, // DF
            icmp: (0, 0, [0; 4]),
            payload: b"hello".to_vec(),
        }
    }

    /// An ICMP message: `payload` follows the 8-byte ICMP header (for an error, the quoted
    /// datagram: see `quote`).
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: [u8; 4]) -> Self {
        Frame {
            proto: 1,
            icmp: (ty, code, rest),
            payload: Vec::new(),
            ..Frame::tcp(src, 0, dst, 0)
        }
    }

    /// What an ICMP error quotes of this frame: its IP header and the first `l4` bytes after
    /// it (RFC 792 asks for 8; routers may send more).
    pub fn quote(&self, l4: usize) -> Vec<u8> {
        let b = self.bytes();
        let ip = 14 + 4 * self.vlans.len();
        let ihl = 20 + self.ip_options.len();
        b[ip..(ip + ihl + l4).min(b.len())].to_vec()
    }

    pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Self {
        Frame {
            proto: 17,
            ..Frame::tcp(src, sport, dst, dport)
        }
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
        if self.ethertype != ETH_P_IP {
            f.extend_from_slice(&[0u8; 28]);
            return f;
        }
        let l4 = self.l4();
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
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        ip.extend_from_slice(&self.ip_options);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
        f
    }

    fn l4(&self) -> Vec<u8> {
        if self.proto == 1 {
            let (ty, code, rest) = self.icmp;
            let mut h = vec![ty, code, 0, 0];
            h.extend_from_slice(&rest);
            h.extend_from_slice(&self.payload);
            let c = checksum(&h);
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
