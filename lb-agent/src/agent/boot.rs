//! What the node needs to know of the host before it starts (or before a reload adds
//! instances): each instance's interface (index, MAC, state) and advert source address. Also
//! the one startup chore: VIPs an earlier run left behind belong to nobody yet.

use std::{collections::HashMap, net::IpAddr};

use anyhow::{anyhow, Result};
use tracing::info;

use crate::{config::Config, netlink::Netlink, node::Iface};

/// The interface of every instance of `cfg`, by instance name.
pub async fn ifaces(nl: &Netlink, cfg: &Config) -> Result<HashMap<String, Iface>> {
    let mut out = HashMap::new();
    for c in &cfg.instances {
        let link = nl
            .link_by_name(&c.interface)
            .await?
            .ok_or_else(|| anyhow!("instance {}: interface {} not found", c.name, c.interface))?;
        let v6 = c.vips.first().is_some_and(|v| v.addr.is_ipv6());
        let src = match c.unicast_src_ip {
            Some(a) => a,
            None if v6 => nl
                .ipv6_link_local(link.index)
                .await?
                .map(IpAddr::V6)
                .ok_or_else(|| {
                    anyhow!(
                        "instance {}: {} has no IPv6 link-local address to send adverts from \
                         (is IPv6 disabled on it?)",
                        c.name,
                        c.interface
                    )
                })?,
            None => nl
                .ipv4_addresses(link.index)
                .await?
                .into_iter()
                .map(IpAddr::V4)
                .find(|a| !c.vips.iter().any(|v| v.addr == *a))
                .ok_or_else(|| {
                    anyhow!(
                        "instance {}: {} has no IPv4 address to send adverts from (add one, or \
                         set unicast_src_ip)",
                        c.name,
                        c.interface
                    )
                })?,
        };
        out.insert(
            c.name.clone(),
            Iface {
                ifindex: link.index,
                mac: link.mac.unwrap_or([0; 6]),
                src,
                up: link.up,
            },
        );
    }
    Ok(out)
}

/// An earlier run (killed) may have left its VIPs on the interfaces: this node holds nothing
/// until VRRP says so.
pub async fn remove_stale_vips(nl: &Netlink, cfg: &Config) -> Result<()> {
    for c in &cfg.instances {
        for v in &c.vips {
            let Some(link) = nl.link_by_name(&v.dev).await? else {
                continue;
            };
            if nl.del_address(link.index, v.addr).await.unwrap_or(false) {
                info!(instance = %c.name, vip = %v.addr, "removed a VIP left by an earlier run");
            }
        }
    }
    Ok(())
}
