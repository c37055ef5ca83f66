//! `lb-agent real drain|weight|enable`: which real the operator means, and what to tell them.

use std::net::{IpAddr, SocketAddr};

use crate::{
    config::{host_port, Proto},
    node::{
        overrides::Override,
        services::{self, ServiceRt},
        RealKey,
    },
};

/// What the operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Weight 0: established flows stay, new ones go elsewhere.
    Drain,
    Weight(u32),
    /// Back to the configured (or checked) weight.
    Enable,
}

/// The real `real` (an address, or address:port when one address serves on several ports)
/// of the service at `vip` over `proto`, with a label for messages.
pub fn resolve(
    list: &[ServiceRt],
    vip: SocketAddr,
    proto: &str,
    real: &str,
) -> Result<(RealKey, String), String> {
    let proto = Proto::from_name(proto)?;
    let svc = services::find(list, vip.ip(), vip.port(), proto).ok_or_else(|| {
        format!(
            "no virtual service {}/{} in the running config (see `lb-agent status`)",
            host_port(vip.ip(), vip.port()),
            proto.name()
        )
    })?;
    let (addr, port): (IpAddr, Option<u16>) = match real.parse::<SocketAddr>() {
        Ok(sa) => (sa.ip(), Some(sa.port())),
        Err(_) => (
            real.parse()
                .map_err(|_| format!("{real:?} is not an address or address:port"))?,
            None,
        ),
    };
    let matching: Vec<_> = svc
        .reals
        .iter()
        .filter(|r| r.cfg.addr == addr && port.is_none_or(|p| r.cfg.port == p))
        .collect();
    match matching.as_slice() {
        [r] => Ok((
            (svc.cfg.key(), r.cfg.addr, r.cfg.port),
            format!(
                "{} of {}",
                host_port(r.cfg.addr, r.cfg.port),
                svc.cfg.label()
            ),
        )),
        [] => Err(format!(
            "{real} is not a real server of {} (it has: {})",
            svc.cfg.label(),
            svc.reals
                .iter()
                .map(|r| host_port(r.cfg.addr, r.cfg.port))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err(format!(
            "{real} serves {} on several ports: name one as address:port",
            svc.cfg.label()
        )),
    }
}

/// The override an action sets (None: cleared), stamped with the wall clock.
pub fn override_for(action: Action) -> Option<Override> {
    let since_unix = super::unix_now();
    match action {
        Action::Drain => Some(Override {
            weight: 0,
            since_unix,
        }),
        Action::Weight(weight) => Some(Override { weight, since_unix }),
        Action::Enable => None,
    }
}

/// What the operator is told.
pub fn message(action: Action, label: &str) -> String {
    match action {
        Action::Drain => format!(
            "{label}: drained (weight 0): its established flows stay, new flows go to the \
             other reals. `lb-agent real enable` ends it."
        ),
        Action::Weight(w) => format!("{label}: weight {w} until `lb-agent real enable`"),
        Action::Enable => format!("{label}: the configured weight applies again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<ServiceRt> {
        let yaml = "virtual_servers:\n  - address: 10.0.0.100\n    ports: [80, 443]\n    protocol: tcp\n    interface: eth0\n    real_servers:\n      - { address: 10.0.0.11, port: 80 }\n      - { address: 10.0.0.12, port: 80 }\n";
        let cfg = crate::config::parse(yaml, "t.yaml").expect("config");
        cfg.services.into_iter().map(ServiceRt::new).collect()
    }

    #[test]
    fn finds_the_real_by_address_or_address_and_port() {
        let list = services();
        let vip: SocketAddr = "10.0.0.100:443".parse().expect("vip");
        let (key, label) = resolve(&list, vip, "tcp", "10.0.0.11").expect("found");
        assert_eq!((key.1, key.2), ("10.0.0.11".parse().expect("ip"), 80));
        assert!(
            label.starts_with("10.0.0.11:80 of 10.0.0.100:80,443/tcp"),
            "{label}"
        );
        let (key, _) = resolve(&list, vip, "tcp", "10.0.0.12:80").expect("found");
        assert_eq!(key.1, "10.0.0.12".parse::<IpAddr>().expect("ip"));
        assert!(resolve(&list, vip, "tcp", "10.0.0.12:81").is_err());
    }

    #[test]
    fn says_what_is_wrong() {
        let list = services();
        let vip: SocketAddr = "10.0.0.100:80".parse().expect("vip");
        let e = |v: SocketAddr, p: &str, r: &str| resolve(&list, v, p, r).expect_err("refused");
        assert!(e(vip, "udp", "10.0.0.11").contains("no virtual service"));
        assert!(e("10.0.0.100:81".parse().expect("vip"), "tcp", "10.0.0.11")
            .contains("no virtual service"));
        assert!(e(vip, "tcp", "10.0.0.99").contains("it has: 10.0.0.11:80"));
        assert!(e(vip, "tcp", "web1").contains("not an address"));
        assert!(e(vip, "sctp", "10.0.0.11").contains("tcp or udp"));
    }
}
