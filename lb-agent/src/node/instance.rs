//! One VRRP instance as the node runs it: the sans-IO protocol core plus what the node does
//! about it (VIPs held, gratuitous ARPs planned, hand-over grace, the fault from tracking).

use std::{
    collections::BTreeSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{
    config::InstanceCfg,
    vrrp::{
        packet::Auth,
        state::{ConfigError, Instance, InstanceConfig, State},
    },
};

/// What the host says about an instance's interface: resolved by the agent (netlink) and
/// handed to the node, which never asks itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// The source of our adverts (IPv4: the interface's first address that is not a VIP;
    /// IPv6: its link-local address; or `unicast_src_ip`).
    pub src: IpAddr,
    /// The interface is up (admin and carrier) now.
    pub up: bool,
}

/// How long a node that stopped being master keeps forwarding (and its VIPs) after the new
/// master announced itself: the new master sends its gratuitous ARPs with that advert, so
/// this only covers packets already on their way (sub-millisecond on a LAN) and scheduling;
/// a quarter interval, at most 20 ms, keeps two nodes from forwarding for one VIP for longer
/// than one advert interval after a partition heals.
pub fn handover_grace(advert_int: Duration) -> Duration {
    (advert_int / 4).min(Duration::from_millis(20))
}

/// After a graceful stop, once the new master has spoken: one advert interval, within
/// 50 ms..500 ms (the new master is already forwarding; this only absorbs clients slow to
/// follow its gratuitous ARPs).
pub fn planned_handover_grace(advert_int: Duration) -> Duration {
    advert_int.clamp(Duration::from_millis(50), Duration::from_millis(500))
}

/// The protocol core's configuration of `c`, sending from `src`.
pub fn protocol_config(c: &InstanceCfg, src: IpAddr) -> InstanceConfig {
    InstanceConfig {
        name: c.name.clone(),
        vrid: c.vrid,
        version: c.version,
        priority: c.priority,
        advert_interval: c.advert_int,
        preempt: c.preempt,
        preempt_delay: c.preempt_delay,
        primary_addr: src,
        vips: c.vips.iter().map(|v| v.addr).collect(),
        auth: c.auth_pass.map_or(Auth::None, |s| Auth::Pass(s.0)),
        unicast_peers: c.unicast_peers.clone(),
        allowed_peers: c.allowed_peers.clone(),
        handover_timeout: None,
    }
}

/// keepalived's state names for notify scripts.
pub fn notify_state(s: State) -> &'static str {
    match s {
        State::Master | State::Releasing => "MASTER",
        State::Backup | State::Initialize => "BACKUP",
        State::Fault => "FAULT",
        State::Stopped => "STOP",
    }
}

pub struct Inst {
    pub cfg: InstanceCfg,
    pub sm: Instance,
    pub iface: Iface,
    /// VIPs on the interface and XDP forwarding for this instance's services.
    pub holds: bool,
    /// VIPs given up whose removal the host has not confirmed yet: forwarding for them goes
    /// on until it has (a VIP still on the interface without XDP would have this node's stack
    /// reset the flows that still arrive).
    pub releasing: BTreeSet<IpAddr>,
    /// When a node that left master gives up what it holds.
    pub release_at: Option<Instant>,
    /// Planned gratuitous ARP rounds (one frame per VIP each).
    pub garp_at: Vec<Instant>,
    /// IPv4 identification of our adverts.
    pub ident: u16,
    /// The instance's own interface is up (implicitly tracked, as keepalived does).
    pub link_up: bool,
    pub faulted: bool,
    pub split_brains_logged: u64,
    pub became_master_at: Option<Instant>,
    /// Removed by a reload: shut down, and dropped once stopped and released.
    pub retiring: bool,
}

impl Inst {
    /// A new instance (not started). Refuses what the protocol core would only normalize:
    /// an unusable source address, our own address as a unicast peer.
    pub fn new(cfg: InstanceCfg, iface: Iface) -> Result<Inst, ConfigError> {
        let sm = Instance::try_new(protocol_config(&cfg, iface.src))?;
        Ok(Inst {
            link_up: iface.up,
            cfg,
            sm,
            iface,
            holds: false,
            releasing: BTreeSet::new(),
            release_at: None,
            garp_at: Vec::new(),
            ident: 0,
            faulted: false,
            split_brains_logged: 0,
            became_master_at: None,
            retiring: false,
        })
    }

    /// Plans the gratuitous ARPs of a new master: `repeat` now (spaced by `interval`), as
    /// many again after `delay`, and the periodic refresh.
    pub fn plan_garps(&mut self, now: Instant) {
        let g = &self.cfg.garp;
        self.garp_at.clear();
        for k in 0..g.repeat {
            self.garp_at.push(now + g.interval * k);
            if !g.delay.is_zero() {
                self.garp_at.push(now + g.delay + g.interval * k);
            }
        }
        if let Some(r) = g.refresh {
            self.garp_at.push(now + r);
        }
        self.garp_at.sort();
    }

    /// Takes the GARP rounds due at `now`; plans the next refresh when one was among them.
    pub fn due_garps(&mut self, now: Instant) -> usize {
        let due = self.garp_at.iter().take_while(|t| **t <= now).count();
        self.garp_at.drain(..due);
        if due > 0 {
            if let Some(r) = self.cfg.garp.refresh {
                let master = self.sm.state() == State::Master;
                if master && !self.garp_at.iter().any(|t| *t > now + r / 2) {
                    self.garp_at.push(now + r);
                }
            }
        }
        due
    }

    /// Forwarding for this instance's VIPs goes on (master, in the hand-over grace, or until
    /// the host confirmed the VIPs are gone).
    pub fn forwards(&self) -> bool {
        self.holds || !self.releasing.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.sm.poll_timeout(),
            self.release_at,
            self.garp_at.first().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A stopped instance that holds and forwards nothing more.
    pub fn finished(&self) -> bool {
        self.sm.state() == State::Stopped
            && self.release_at.is_none()
            && !self.holds
            && self.releasing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_short() {
        let ms = Duration::from_millis;
        assert_eq!(handover_grace(ms(100)), ms(20));
        assert_eq!(handover_grace(ms(40)), ms(10));
        assert_eq!(handover_grace(Duration::from_secs(1)), ms(20));
        assert_eq!(planned_handover_grace(ms(100)), ms(100));
        assert_eq!(planned_handover_grace(ms(10)), ms(50));
        assert_eq!(planned_handover_grace(Duration::from_secs(3)), ms(500));
    }
}
