//! Scale-out mode (`bgp:`): which VIPs this node has BIRD announce, and why each is or is not.
//!
//! A VIP is announced while the node can serve every service on it: XDP attached on the
//! service's interface, that interface up, and the service at or above its quorum with at
//! least one real taking new flows. A graceful stop withdraws everything first. The route
//! carries every port of the VIP, so a node that cannot serve one of them leaves the VIP to
//! the nodes that can.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::services::ServiceRt;

/// One VIP's announcement and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipAnnounce {
    pub vip: IpAddr,
    pub announced: bool,
    /// Why not (the first reason found), or what it rests on.
    pub why: String,
}

/// What the announcement of every VIP depends on, as the node knows it now.
pub struct Inputs<'a> {
    pub services: &'a [ServiceRt],
    /// Interfaces where XDP is attached (as the agent reported it).
    pub attached: &'a BTreeSet<String>,
    pub link_up: &'a dyn Fn(&str) -> bool,
    pub stopping: bool,
    /// The flow sync's bulk sync has not ended yet.
    pub sync_pending: bool,
}

/// Every VIP of the services, in address order.
pub fn decide(i: &Inputs) -> Vec<VipAnnounce> {
    let mut by_vip: BTreeMap<IpAddr, Vec<&ServiceRt>> = BTreeMap::new();
    for s in i.services {
        by_vip.entry(s.cfg.addr).or_default().push(s);
    }
    by_vip
        .into_iter()
        .map(|(vip, services)| {
            let why_not = services.iter().find_map(|s| why_not(i, s));
            VipAnnounce {
                vip,
                announced: why_not.is_none(),
                why: why_not.unwrap_or_else(|| {
                    format!("{} service(s) above quorum, XDP attached", services.len())
                }),
            }
        })
        .collect()
}

fn why_not(i: &Inputs, s: &ServiceRt) -> Option<String> {
    let itf = &s.cfg.interface;
    if i.stopping {
        Some("stopping: withdrawn, draining".into())
    } else if i.sync_pending {
        Some("waiting for the flow bulk sync".into())
    } else if !(i.link_up)(itf) {
        Some(format!("interface {itf} is down"))
    } else if !i.attached.contains(itf) {
        Some(format!("XDP is not attached on {itf}"))
    } else if !s.quorum_up || s.live_weight() == 0 {
        Some(format!(
            "{} is below quorum (live weight {}, quorum {})",
            s.cfg.label(),
            s.live_weight(),
            s.cfg.quorum.max(1)
        ))
    } else {
        None
    }
}

/// The VIPs to announce.
pub fn announced(list: &[VipAnnounce]) -> Vec<IpAddr> {
    list.iter().filter(|v| v.announced).map(|v| v.vip).collect()
}
