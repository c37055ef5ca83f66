//! The VIPs: added on becoming master, removed on leaving, found and removed when stale.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};

use super::Netlink;

fn has_addr(m: &AddressMessage, ip: IpAddr) -> bool {
    m.attributes
        .iter()
        .any(|a| matches!(a, AddressAttribute::Local(x) | AddressAttribute::Address(x) if *x == ip))
}

impl Netlink {
    /// The address messages of one interface.
    async fn addresses(&self, ifindex: u32) -> Result<Vec<AddressMessage>> {
        let mut out = Vec::new();
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        while let Some(m) = s.try_next().await? {
            if m.header.index == ifindex {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn find(&self, ifindex: u32, ip: IpAddr) -> Result<Option<AddressMessage>> {
        Ok(self
            .addresses(ifindex)
            .await?
            .into_iter()
            .find(|m| has_addr(m, ip)))
    }

    pub async fn has_address(&self, ifindex: u32, ip: IpAddr) -> Result<bool> {
        Ok(self.find(ifindex, ip).await?.is_some())
    }

    /// Adds `ip/prefix` (with an optional label) unless it is there already. An IPv6 address
    /// is added without duplicate address detection (`nodad`, as keepalived does: a VIP moves
    /// between nodes by design, and DAD would keep it unusable for a second after a takeover)
    /// and deprecated (preferred lifetime 0): it still takes traffic, but the kernel never
    /// picks it as a source. Otherwise a VIP sharing the node's /64 becomes the source of
    /// the node's own connections (the newest address wins the tie), and a real, which holds
    /// the VIP on its loopback, would answer health checks to itself.
    pub async fn add_address(
        &self,
        ifindex: u32,
        ip: IpAddr,
        prefix: u8,
        label: Option<&str>,
    ) -> Result<bool> {
        if self.find(ifindex, ip).await?.is_some() {
            return Ok(false);
        }
        let mut req = self.handle.address().add(ifindex, ip, prefix);
        let msg = req.message_mut();
        if let Some(l) = label {
            msg.attributes.push(AddressAttribute::Label(l.to_owned()));
        }
        if ip.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            let mut life = CacheInfo::default();
            life.ifa_preferred = 0;
            life.ifa_valid = u32::MAX;
            msg.attributes.push(AddressAttribute::CacheInfo(life));
        }
        req.execute()
            .await
            .with_context(|| format!("adding {ip}/{prefix}"))?;
        Ok(true)
    }

    /// Removes `ip` from the interface if present. Returns whether it was there.
    pub async fn del_address(&self, ifindex: u32, ip: IpAddr) -> Result<bool> {
        let Some(m) = self.find(ifindex, ip).await? else {
            return Ok(false);
        };
        self.handle
            .address()
            .del(m)
            .execute()
            .await
            .with_context(|| format!("removing {ip}"))?;
        Ok(true)
    }
}

impl Netlink {
    /// The interface's IPv4 addresses in kernel order (primary first).
    pub async fn ipv4_addresses(&self, ifindex: u32) -> Result<Vec<Ipv4Addr>> {
        Ok(self
            .addresses(ifindex)
            .await?
            .iter()
            .flat_map(|m| &m.attributes)
            .filter_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
            .collect())
    }

    /// The interface's IPv6 link-local address (the source of IPv6 adverts), if it has one.
    pub async fn ipv6_link_local(&self, ifindex: u32) -> Result<Option<Ipv6Addr>> {
        Ok(self
            .addresses(ifindex)
            .await?
            .iter()
            .flat_map(|m| &m.attributes)
            .find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V6(ip)) if ip.is_unicast_link_local() => {
                    Some(*ip)
                }
                _ => None,
            }))
    }
}
