//! Keeps each real's layer-2 path (its MAC, our interface and MAC) current from the kernel's
//! neighbour table, and says which reals the kernel should be asked to resolve. Sans-IO: the
//! caller reads the table and the links, passes them in with `now`, and carries out the asks.
//!
//! The rules, and why:
//! - A MAC once learned stays in use while the kernel's entry is gone, incomplete or being
//!   re-resolved: the kernel flushes its neighbours when a link goes down (or an operator runs
//!   `ip neigh flush`), and a master coming back from a link flap must forward its established
//!   flows at once, not hand them to its own stack to be reset.
//! - A real is declared silent (its MAC forgotten, not used) only when a resolution that *we*
//!   asked for while its link had been up for [`LINK_SETTLE`] has failed. A failure left over
//!   from probes sent while the link was down, or in the second after it came back (the
//!   kernel's link-watch can hold traffic that long), proves nothing about the real.
//! - A real whose MAC changed is picked up as soon as the kernel learns the new one.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::{
    dataplane::L2,
    netlink::{link::Link, neigh::Neighbour},
};

/// How often a real without a current kernel entry is asked for again.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);
/// How long a link must have been up before a failed resolution through it counts: the
/// kernel's link-watch can take up to a second before a returning link passes traffic.
pub const LINK_SETTLE: Duration = Duration::from_secs(1);

/// What the agent knows of a real's MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arp {
    /// Never resolved yet (or forgotten): not used.
    Unknown,
    /// The kernel's entry is current.
    Resolved,
    /// The kernel has no current entry (flushed, incomplete, link down): the last MAC learned
    /// stays in use while it re-resolves.
    Kept,
    /// A resolution asked for while the link was up failed: not used until it answers.
    Silent,
}

impl Arp {
    pub fn label(self) -> &'static str {
        match self {
            Arp::Unknown => "unknown",
            Arp::Resolved => "resolved",
            Arp::Kept => "kept (re-resolving)",
            Arp::Silent => "silent (no ARP answer)",
        }
    }
}

#[derive(Clone, Debug)]
struct RealNeigh {
    known: Option<L2>,
    arp: Arp,
    /// When we last asked the kernel (any link state), to pace the asks.
    last_ask: Option<Instant>,
    /// When we last asked while the link was settled: only a failure after such an ask counts.
    settled_ask: Option<Instant>,
    /// Logged "interface not found" already.
    no_link_logged: bool,
}

impl Default for RealNeigh {
    fn default() -> Self {
        RealNeigh {
            known: None,
            arp: Arp::Unknown,
            last_ask: None,
            settled_ask: None,
            no_link_logged: false,
        }
    }
}

/// The outcome of one pass.
#[derive(Debug, Default)]
pub struct Plan {
    /// The path to use for each real that has one.
    pub l2: HashMap<IpAddr, L2>,
    /// Ask the kernel to resolve these (ifindex, address).
    pub ask: Vec<(u32, IpAddr)>,
}

#[derive(Default)]
pub struct Resolver {
    reals: HashMap<IpAddr, RealNeigh>,
    /// When each interface was first seen up since it was last seen down.
    up_since: HashMap<u32, Instant>,
}

impl Resolver {
    /// A path known from elsewhere (the pinned maps of an earlier run): used until the kernel
    /// says otherwise, so a restarted agent forwards established flows at once.
    pub fn seed(&mut self, ip: IpAddr, l2: L2) {
        let r = self.reals.entry(ip).or_default();
        if r.known.is_none() {
            r.known = Some(l2);
            r.arp = Arp::Kept;
        }
    }

    /// The ask for `ip` did not reach the kernel: a failure seen next proves nothing.
    pub fn ask_failed(&mut self, ip: IpAddr) {
        if let Some(r) = self.reals.get_mut(&ip) {
            r.settled_ask = None;
        }
    }

    pub fn arp(&self, ip: IpAddr) -> Arp {
        self.reals.get(&ip).map_or(Arp::Unknown, |r| r.arp)
    }

    /// One pass over every address in `wanted` (with the interface it should be on), given
    /// the kernel's neighbour table and links as read just now.
    pub fn update(
        &mut self,
        now: Instant,
        wanted: &[(IpAddr, String)],
        table: &HashMap<IpAddr, Neighbour>,
        links: &HashMap<u32, Link>,
    ) -> Plan {
        for l in links.values() {
            if l.up {
                self.up_since.entry(l.index).or_insert(now);
            } else {
                self.up_since.remove(&l.index);
            }
        }
        self.up_since.retain(|i, _| links.contains_key(i));
        let mut plan = Plan::default();
        for (ip, ifname) in wanted {
            let r = self.reals.entry(*ip).or_default();
            let Some(link) = links.values().find(|l| &l.name == ifname) else {
                if !r.no_link_logged {
                    r.no_link_logged = true;
                    warn!(real = %ip, interface = %ifname, "interface not found; real not used");
                }
                continue;
            };
            r.no_link_logged = false;
            let settled = self
                .up_since
                .get(&link.index)
                .is_some_and(|t| now.duration_since(*t) >= LINK_SETTLE);
            if !link.up {
                // Nothing can be learned through a dead link: keep what we had, ask nothing,
                // and forget asks made before (their failure would prove nothing).
                r.settled_ask = None;
            }
            let entry = table.get(ip).filter(|n| n.ifindex == link.index);
            match (entry.and_then(|n| n.mac), link.mac) {
                (Some(mac), Some(src)) => {
                    let l2 = L2 {
                        dst_mac: mac,
                        src_mac: src,
                        ifindex: link.index,
                    };
                    if matches!(r.arp, Arp::Silent | Arp::Unknown) {
                        info!(real = %ip, interface = %ifname, "MAC resolved");
                    }
                    r.known = Some(l2);
                    r.arp = Arp::Resolved;
                    r.settled_ask = None;
                }
                _ => {
                    let failed = entry.is_some_and(Neighbour::failed);
                    // Our own ask, made on a settled link, came back failed: the real is gone.
                    if failed && r.settled_ask.is_some() && r.arp != Arp::Silent {
                        warn!(real = %ip, interface = %ifname, "no ARP answer from the real; not used until it answers");
                        r.known = None;
                        r.arp = Arp::Silent;
                    }
                    // Keep a learned path on the interface it was learned on.
                    if r.known.is_some_and(|k| k.ifindex != link.index) {
                        r.known = None;
                    }
                    if r.known.is_some() {
                        r.arp = Arp::Kept;
                    } else if r.arp == Arp::Kept || r.arp == Arp::Resolved {
                        r.arp = Arp::Unknown;
                    }
                    let due = r
                        .last_ask
                        .is_none_or(|t| now.duration_since(t) >= RESOLVE_EVERY);
                    if link.up && due {
                        if r.arp == Arp::Unknown && r.last_ask.is_none() {
                            info!(real = %ip, interface = %ifname, "MAC not known yet; resolving (not used until then)");
                        }
                        r.last_ask = Some(now);
                        if settled {
                            // Keep the first settled ask: the failure that follows it counts.
                            r.settled_ask.get_or_insert(now);
                        }
                        plan.ask.push((link.index, *ip));
                    }
                }
            }
            if let Some(k) = r.known {
                // Our own MAC can change (an operator, a bond): always write the current one.
                plan.l2.insert(
                    *ip,
                    L2 {
                        src_mac: link.mac.unwrap_or(k.src_mac),
                        ..k
                    },
                );
            }
        }
        let wanted: HashSet<IpAddr> = wanted.iter().map(|(ip, _)| *ip).collect();
        self.reals.retain(|ip, _| wanted.contains(ip));
        plan
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::neighbour::NeighbourState;

    use super::*;

    const IF: u32 = 7;
    const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const REAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn ip() -> IpAddr {
        IpAddr::from([10, 0, 0, 11])
    }

    fn links(up: bool) -> HashMap<u32, Link> {
        HashMap::from([(
            IF,
            Link {
                index: IF,
                name: "eth0".into(),
                mac: Some(OUR_MAC),
                up,
            },
        )])
    }

    fn table(state: Option<NeighbourState>) -> HashMap<IpAddr, Neighbour> {
        state
            .map(|s| {
                (
                    ip(),
                    Neighbour {
                        mac: crate::netlink::neigh::usable(s).then_some(REAL_MAC),
                        ifindex: IF,
                        state: s,
                    },
                )
            })
            .into_iter()
            .collect()
    }

    fn wanted() -> Vec<(IpAddr, String)> {
        vec![(ip(), "eth0".into())]
    }

    struct Run {
        r: Resolver,
        t0: Instant,
    }

    impl Run {
        fn new() -> Run {
            Run {
                r: Resolver::default(),
                t0: Instant::now(),
            }
        }
        fn at(&mut self, ms: u64, state: Option<NeighbourState>, up: bool) -> Plan {
            let now = self.t0 + Duration::from_millis(ms);
            self.r.update(now, &wanted(), &table(state), &links(up))
        }
    }

    #[test]
    fn resolves_then_keeps_the_mac_across_a_flush() {
        let mut run = Run::new();
        let p = run.at(0, None, true);
        assert!(p.l2.is_empty());
        assert_eq!(p.ask, vec![(IF, ip())]);
        let p = run.at(1000, Some(NeighbourState::Reachable), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        assert!(p.ask.is_empty());
        // Flushed: still used, and asked for again.
        let p = run.at(2000, None, true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        assert_eq!(p.ask.len(), 1);
        assert_eq!(run.r.arp(ip()), Arp::Kept);
    }

    #[test]
    fn failures_from_a_down_or_unsettled_link_do_not_count() {
        let mut run = Run::new();
        run.at(0, Some(NeighbourState::Reachable), true);
        // Link down: nothing asked, MAC kept; the kernel's entry fails meanwhile.
        let p = run.at(1000, Some(NeighbourState::Failed), false);
        assert!(p.ask.is_empty());
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        // Back up: the stale failure (and one right after, before the link settled) is not
        // evidence; we ask again and keep forwarding.
        let p = run.at(2000, Some(NeighbourState::Failed), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        assert_eq!(p.ask.len(), 1);
        let p = run.at(2500, Some(NeighbourState::Failed), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        // Settled now: this ask counts...
        let p = run.at(3100, Some(NeighbourState::Incomplete), true);
        assert_eq!(p.ask.len(), 1);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        // ...and the answer arrives: resolved, never dropped.
        let p = run.at(4100, Some(NeighbourState::Reachable), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
        assert_eq!(run.r.arp(ip()), Arp::Resolved);
    }

    #[test]
    fn a_real_that_fails_our_settled_ask_is_silent_until_it_answers() {
        let mut run = Run::new();
        run.at(0, Some(NeighbourState::Reachable), true);
        let p = run.at(1500, None, true);
        assert_eq!(p.ask.len(), 1, "asked once the link is settled");
        let p = run.at(2500, Some(NeighbourState::Incomplete), true);
        assert_eq!(p.l2.len(), 1, "kept while the kernel re-resolves");
        let p = run.at(4500, Some(NeighbourState::Failed), true);
        assert!(p.l2.is_empty(), "our own ask failed: not used");
        assert_eq!(run.r.arp(ip()), Arp::Silent);
        let p = run.at(5500, Some(NeighbourState::Reachable), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
    }

    #[test]
    fn a_seeded_path_is_used_until_the_kernel_knows_better() {
        let mut run = Run::new();
        let seeded = L2 {
            dst_mac: [2, 0, 0, 0, 0, 5],
            src_mac: OUR_MAC,
            ifindex: IF,
        };
        run.r.seed(ip(), seeded);
        let p = run.at(0, None, true);
        assert_eq!(p.l2[&ip()], seeded);
        let p = run.at(1000, Some(NeighbourState::Stale), true);
        assert_eq!(p.l2[&ip()].dst_mac, REAL_MAC);
    }
}
