//! The agent's VRRP instances: each wraps the sans-IO protocol core with what the node does
//! about it (VIPs held, gratuitous ARPs planned, hand-over grace) and the tracking inputs
//! that set its priority.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use crate::{
    config::{InstanceCfg, V3Checksum, VrrpVersion},
    vrrp::{
        garp,
        packet::{self, Auth, Version},
        state::{Instance, InstanceConfig, State},
    },
};

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

/// A tracked condition's effect on an instance (keepalived semantics): weight 0 means a
/// failure faults the instance; a positive weight is added while it is fine, a negative one
/// while it fails.
pub fn tracked(ok: bool, weight: i32) -> Effect {
    match (ok, weight) {
        (false, 0) => Effect::Fault,
        (true, w) if w > 0 => Effect::Add(w),
        (false, w) if w < 0 => Effect::Add(w),
        _ => Effect::Add(0),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Fault,
    Add(i32),
}

/// Effective priority from the base and every tracked effect; None = fault.
pub fn effective_priority(base: u8, effects: &[Effect]) -> Option<u8> {
    let mut p = i32::from(base);
    for e in effects {
        match e {
            Effect::Fault => return None,
            Effect::Add(w) => p += w,
        }
    }
    // An owner (255) is not adjusted; others stay within 1..=254 (RFC: 255 is the owner).
    if base == 255 {
        return Some(255);
    }
    Some(p.clamp(1, 254) as u8)
}

pub fn protocol_config(c: &InstanceCfg, primary: Ipv4Addr) -> InstanceConfig {
    InstanceConfig {
        name: c.name.clone(),
        vrid: c.vrid,
        version: match c.version {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        },
        priority: c.priority,
        advert_interval: c.advert_int,
        preempt: c.preempt,
        preempt_delay: c.preempt_delay,
        primary_addr: primary,
        vips: c.vips.iter().map(|v| v.addr).collect(),
        auth: c.auth_pass.map_or(Auth::None, |s| Auth::Pass(s.0)),
        unicast_peers: c.unicast_peers.clone(),
        allowed_peers: c.allowed_peers.clone(),
        handover_timeout: None,
    }
}

pub fn checksum_form(c: &InstanceCfg) -> packet::V3Checksum {
    match c.v3_checksum {
        V3Checksum::Keepalived => packet::V3Checksum::PseudoHeader,
        V3Checksum::Rfc9568 => packet::V3Checksum::VrrpOnly,
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

pub struct InstRt {
    pub cfg: InstanceCfg,
    pub sm: Instance,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub src: Ipv4Addr,
    /// VIPs on the interface and XDP forwarding for this instance's services.
    pub holds: bool,
    /// When a node that left master gives up what it holds.
    pub release_at: Option<Instant>,
    /// Planned gratuitous ARP rounds (one frame per VIP each).
    pub garp_at: Vec<Instant>,
    pub garp_tx: Option<garp::Sender>,
    pub ident: u16,
    /// The instance's own interface is up (implicitly tracked, as keepalived does).
    pub link_up: bool,
    pub faulted: bool,
    pub split_brains_logged: u64,
    pub adverts_tx_errors: u64,
    pub became_master_at: Option<Instant>,
}

impl InstRt {
    /// Plans the gratuitous ARPs of a new master: `repeat` now (spaced by `interval`), as
    /// many again after `delay`.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_weight_rules() {
        assert_eq!(tracked(false, 0), Effect::Fault);
        assert_eq!(tracked(true, 0), Effect::Add(0));
        assert_eq!(tracked(true, 10), Effect::Add(10));
        assert_eq!(tracked(false, 10), Effect::Add(0));
        assert_eq!(tracked(false, -30), Effect::Add(-30));
        assert_eq!(tracked(true, -30), Effect::Add(0));
        assert_eq!(
            effective_priority(100, &[Effect::Add(-30), Effect::Add(5)]),
            Some(75)
        );
        assert_eq!(effective_priority(100, &[Effect::Add(-300)]), Some(1));
        assert_eq!(effective_priority(250, &[Effect::Add(10)]), Some(254));
        assert_eq!(effective_priority(255, &[Effect::Add(-10)]), Some(255));
        assert_eq!(
            effective_priority(100, &[Effect::Add(5), Effect::Fault]),
            None
        );
    }

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
