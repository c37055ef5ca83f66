//! Keeps each real's layer-2 path (its MAC, our interface and MAC) current from the kernel's
//! neighbour table, asking the kernel to resolve reals it does not know yet.
//!
//! A MAC once learned is kept while the kernel's entry is gone or being re-resolved: the
//! kernel flushes its neighbours when a link goes down, and a master coming back from a link
//! flap would otherwise have no real to forward to (its own stack would reset the flows) until
//! they resolve again. A real whose resolution failed (no ARP answer) is forgotten and not used;
//! a real whose MAC changed is picked up as soon as the kernel learns the new one.

use std::{
    collections::{HashMap, HashSet},
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
    /// The last path learned for each real.
    known: HashMap<Ipv4Addr, L2>,
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
            let entry = table
                .get(ip)
                .filter(|n| link.is_some_and(|l| l.index == n.ifindex));
            if entry.is_some_and(|n| n.failed()) && self.known.remove(ip).is_some() {
                self.warned.insert(*ip, ());
                warn!(real = %ip, interface = %ifname, "no ARP answer from the real; not used until it answers");
            }
            match (entry.and_then(|n| n.mac), link) {
                (Some(mac), Some(link)) => {
                    if let Some(src) = link.mac {
                        let l2 = L2 {
                            dst_mac: mac,
                            src_mac: src,
                            ifindex: link.index,
                        };
                        out.insert(*ip, l2);
                        self.known.insert(*ip, l2);
                        if self.warned.remove(ip).is_some() {
                            info!(real = %ip, "MAC resolved");
                        }
                    }
                }
                (_, Some(link)) => {
                    let kept = self
                        .known
                        .get(ip)
                        .filter(|k| k.ifindex == link.index)
                        .map(|k| L2 {
                            src_mac: link.mac.unwrap_or(k.src_mac),
                            ..*k
                        });
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
                    if let Some(l2) = kept {
                        out.insert(*ip, l2);
                    } else if self.warned.insert(*ip, ()).is_none() {
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
        let wanted: HashSet<Ipv4Addr> = wanted.iter().map(|(ip, _)| *ip).collect();
        self.known.retain(|ip, _| wanted.contains(ip));
        Ok(out)
    }
}
