//! What the data path should hold, computed from config + health + neighbour state. Pure data:
//! `sync` turns it into map writes.

use std::net::IpAddr;

use lb_common::ServiceKey;

impl DesiredService {
    /// The LB_SERVICES keys: one per port.
    pub fn keys(&self) -> Vec<ServiceKey> {
        if self.ports.is_empty() {
            return vec![self.key];
        }
        self.ports
            .iter()
            .map(|p| ServiceKey::new(self.key.addr(), *p, self.key.proto))
            .collect()
    }
}

/// Layer-2 path to a real: everything the data path writes into the Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct L2 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ifindex: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredReal {
    pub addr: IpAddr,
    pub port: u16,
    /// Share of new flows; 0 = none (down, drained or configured 0).
    pub weight: u32,
    /// Established flows may stay (healthy, or draining with `inhibit_on_failure`).
    pub keep_flows: bool,
    /// None while the MAC is unknown: the real is then not used at all.
    pub l2: Option<L2>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// The service's identity: its address, protocol and lowest port (0 for all ports).
    pub key: ServiceKey,
    /// Every port it serves, ascending (`[0]` for all ports; empty means just `key`'s).
    pub ports: Vec<u16>,
    /// False while another node is master for this service's VIP: the entry is withdrawn
    /// (traffic passes to the kernel) but ids and tables are kept for a quick return.
    pub active: bool,
    /// `SVC_F_*`.
    pub flags: u32,
    pub affinity_timeout_s: u32,
    pub table_size: u32,
    pub reals: Vec<DesiredReal>,
    /// Takes all new flows when no real can.
    pub sorry: Option<DesiredReal>,
}
