//! Real servers' MACs from the kernel's neighbour table. Users configure reals by IP address;
//! the agent asks the kernel to resolve them (NTF_USE: an ARP request, no traffic to the real)
//! and reads the answers back. A real whose MAC is unknown is not used.

use std::{collections::HashMap, net::Ipv4Addr};

use anyhow::Result;
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState},
    AddressFamily,
};

use super::Netlink;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: [u8; 6],
    pub ifindex: u32,
    pub state: NeighbourState,
}

/// States in which the MAC is known and believed current.
pub fn usable(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

impl Netlink {
    /// IPv4 neighbours with a usable MAC, by address.
    pub async fn neighbours(&self) -> Result<HashMap<Ipv4Addr, Neighbour>> {
        let mut out = HashMap::new();
        let mut s = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute();
        while let Some(m) = s.try_next().await? {
            if !usable(m.header.state) {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        let mut b = [0u8; 6];
                        b.copy_from_slice(l);
                        mac = Some(b);
                    }
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (dst, mac) {
                out.insert(
                    ip,
                    Neighbour {
                        mac,
                        ifindex: m.header.ifindex,
                        state: m.header.state,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (like `ip neigh replace IP dev DEV use`).
    pub async fn resolve(&self, ifindex: u32, ip: Ipv4Addr) -> Result<()> {
        self.handle
            .neighbours()
            .add(ifindex, ip.into())
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await?;
        Ok(())
    }
}
