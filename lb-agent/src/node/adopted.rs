//! XDP links an earlier run left pinned (it was killed): that node kept forwarding for clients
//! whose ARP caches still pointed at it. A restarted node keeps doing so (with this run's
//! program) until its role is known, for at most three advert intervals plus a second; then
//! the normal rules decide. Standalone nodes simply take the link over.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use tracing::info;

use super::instance::Inst;
use crate::config::Config;

#[derive(Default)]
pub struct Adopted(BTreeMap<String, Instant>);

impl Adopted {
    pub fn new(
        now: Instant,
        cfg: &Config,
        service_ifaces: &BTreeSet<String>,
        pinned: &[String],
        standalone: bool,
    ) -> Adopted {
        if standalone {
            return Adopted::default();
        }
        let max_int = cfg
            .instances
            .iter()
            .map(|i| i.advert_int)
            .max()
            .unwrap_or_default();
        let until = now + max_int * 3 + Duration::from_secs(1);
        let mut m = BTreeMap::new();
        for ifname in pinned.iter().filter(|i| service_ifaces.contains(*i)) {
            info!(interface = %ifname, "XDP link left by an earlier run: keeps forwarding until this node's role is known");
            m.insert(ifname.clone(), until);
        }
        Adopted(m)
    }

    pub fn holds(&self, ifname: &str) -> bool {
        self.0.contains_key(ifname)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }

    /// Drops the links whose time ran out; true if any.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.0.len();
        self.0.retain(|_, t| *t > now);
        before != self.0.len()
    }

    /// An adopted link is no longer needed once an instance on its interface knows who the
    /// master is. True if any was let go.
    pub fn settle(&mut self, insts: &[Inst]) -> bool {
        let before = self.0.len();
        self.0.retain(|ifname, _| {
            let known = insts.iter().any(|i| {
                &i.cfg.interface == ifname
                    && (i.holds || i.sm.master_addr().is_some_and(|m| m != i.iface.src))
            });
            if known {
                info!(interface = %ifname, "role known; the adopted XDP link follows it now");
            }
            !known
        });
        before != self.0.len()
    }
}
