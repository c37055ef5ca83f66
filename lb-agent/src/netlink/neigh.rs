//! Real servers' MACs from the kernel's neighbour table. Users configure reals by IP address;
//! the agent asks the kernel to resolve them (NTF_USE: an ARP request, no traffic to the real)
//! and reads the answers back. A real whose MAC is unknown is not used.

use std::{collections::HashMap, net::IpAddr};

use anyhow::Result;
use futures::TryStreamExt as _;
use rtnetlink::packet_route::{
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState},
    AddressFamily,
};

use super::Netlink;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Known and believed current (see [`usable`]); `None` otherwise.
    pub mac: Option<[u8; 6]>,
    pub ifindex: u32,
    pub state: NeighbourState,
}

impl Neighbour {
    /// The kernel tried and got no answer: the host is not there.
    pub fn failed(&self) -> bool {
        self.state == NeighbourState::Failed
    }
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
    /// IPv4 and IPv6 neighbours by address: with their MAC when it is usable, and the failed
    /// ones.
    pub async fn neighbours(&self) -> Result<HashMap<IpAddr, Neighbour>> {
        let mut out = HashMap::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            self.dump(family, &mut out).await?;
        }
        Ok(out)
    }

    async fn dump(
        &self,
        family: AddressFamily,
        out: &mut HashMap<IpAddr, Neighbour>,
    ) -> Result<()> {
        let mut s = self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute();
        while let Some(m) = s.try_next().await? {
            let state = m.header.state;
            if !usable(state) && state != NeighbourState::Failed {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                        dst = Some(IpAddr::V4(*ip))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                        dst = Some(IpAddr::V6(*ip))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        let mut b = [0u8; 6];
                        b.copy_from_slice(l);
                        mac = Some(b);
                    }
                    _ => {}
                }
            }
            if let Some(ip) = dst {
                out.insert(
                    ip,
                    Neighbour {
                        mac: mac.filter(|_| usable(state)),
                        ifindex: m.header.ifindex,
                        state,
                    },
                );
            }
        }
        Ok(())
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (like `ip neigh replace IP dev DEV use`).
    pub async fn resolve(&self, ifindex: u32, ip: IpAddr) -> Result<()> {
        self.handle
            .neighbours()
            .add(ifindex, ip)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await?;
        Ok(())
    }
}
