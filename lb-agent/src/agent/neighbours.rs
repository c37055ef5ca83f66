//! Keeps each real's layer-2 path (its MAC, our interface and MAC) current from the kernel's
//! neighbour table, asking the kernel to resolve reals it does not know yet.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::Result;
use tracing::{info, warn};

use crate::{
    dataplane::L2,
    netlink::{link::Link, Netlink},
};

/// How often a real without a MAC is asked for again.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Resolver {
    last_ask: HashMap<Ipv4Addr, Instant>,
    /// Reals we already warned about (so the log says it once).
    warned: HashMap<Ipv4Addr, ()>,
}

impl Resolver {
    /// Looks up every address in `wanted` (with the interface it should be on). Returns the
    /// L2 path of those that resolved; asks the kernel about the others.
    pub async fn refresh(
        &mut self,
        nl: &Netlink,
        wanted: &[(Ipv4Addr, String)],
        links: &HashMap<u32, Link>,
    ) -> Result<HashMap<Ipv4Addr, L2>> {
        let table = nl.neighbours().await?;
        let mut out = HashMap::new();
        let now = Instant::now();
        for (ip, ifname) in wanted {
            let link = links.values().find(|l| &l.name == ifname);
            match (table.get(ip), link) {
                (Some(n), Some(link)) if n.ifindex == link.index => {
                    if let Some(src) = link.mac {
                        out.insert(
                            *ip,
                            L2 {
                                dst_mac: n.mac,
                                src_mac: src,
                                ifindex: link.index,
                            },
                        );
                        if self.warned.remove(ip).is_some() {
                            info!(real = %ip, "MAC resolved");
                        }
                    }
                }
                (_, Some(link)) => {
                    let due = self
                        .last_ask
                        .get(ip)
                        .is_none_or(|t| now.duration_since(*t) >= RESOLVE_EVERY);
                    if due {
                        self.last_ask.insert(*ip, now);
                        if let Err(e) = nl.resolve(link.index, *ip).await {
                            warn!(real = %ip, interface = %ifname, error = %e, "cannot ask the kernel to resolve");
                        }
                    }
                    if self.warned.insert(*ip, ()).is_none() {
                        info!(real = %ip, interface = %ifname, "MAC not known yet; resolving (not used until then)");
                    }
                }
                (_, None) => {
                    if self.warned.insert(*ip, ()).is_none() {
                        warn!(real = %ip, interface = %ifname, "interface not found; real not used");
                    }
                }
            }
        }
        Ok(out)
    }
}
