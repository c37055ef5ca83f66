//! What the node knows of the host: its interfaces (up or down, and since when) and the reals'
//! layer-2 paths (the neighbour resolver). Both only change through events.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    time::Instant,
};

use tracing::{info, warn};

use super::neighbours::{Plan, Resolver, LINK_SETTLE};
use crate::netlink::{link::Link, neigh::Neighbour};

#[derive(Default)]
pub struct Host {
    pub links: HashMap<u32, Link>,
    pub resolver: Resolver,
    /// Interfaces whose reals' health checks are paused: down (None), or back up since then
    /// and settling. A check through a dead link measures our own outage, not the real: it
    /// would mark every real behind it down, and a master returning after a link flap would
    /// have no real to send its flows to.
    paused: BTreeMap<String, Option<Instant>>,
}

impl Host {
    pub fn link_up(&self, name: &str) -> bool {
        self.links.values().any(|l| l.name == name && l.up)
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// New link states; then the pause of checks behind `ifaces` is brought up to date.
    pub fn set_links(
        &mut self,
        now: Instant,
        links: HashMap<u32, Link>,
        ifaces: &BTreeSet<String>,
    ) {
        self.links = links;
        self.update_pauses(now, ifaces);
    }

    /// Pauses the checks behind an interface that is down; resumes them once it has been up
    /// for [`LINK_SETTLE`] (the kernel's link-watch can hold traffic that long).
    pub fn update_pauses(&mut self, now: Instant, ifaces: &BTreeSet<String>) {
        for name in ifaces {
            if !self.link_up(name) {
                if self.paused.insert(name.clone(), None).is_none() {
                    warn!(interface = %name, "interface down: health checks of the reals behind it paused");
                }
            } else if let Some(since) = self.paused.get_mut(name) {
                since.get_or_insert(now);
            }
        }
        self.paused.retain(|name, since| {
            if !ifaces.contains(name) {
                return false;
            }
            let settled = since.is_some_and(|s| now.duration_since(s) >= LINK_SETTLE);
            if settled {
                info!(interface = %name, "interface up: health checks resumed");
            }
            !settled
        });
    }

    pub fn paused(&self) -> impl Iterator<Item = &String> {
        self.paused.keys()
    }

    /// When a settling interface's checks resume.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.paused
            .values()
            .flatten()
            .map(|s| *s + LINK_SETTLE)
            .min()
    }

    /// Runs the resolver over a fresh neighbour table.
    pub fn neighbours(
        &mut self,
        now: Instant,
        wanted: &[(IpAddr, String)],
        table: &HashMap<IpAddr, Neighbour>,
    ) -> Plan {
        self.resolver.update(now, wanted, table, &self.links)
    }
}
