//! Operator overrides of a real's weight (`lb-agent real drain|weight|enable`), like
//! `ipvsadm -e -w`: they take effect at once, without a reload, survive agent restarts (the
//! agent saves them in its state directory) and end when cleared or when the config changes
//! that real (its fingerprint then differs from the one saved with the override).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::config::{RealCfg, ServiceCfg};

/// A weight set by the operator, in place of the configured (or dynamic) one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// 0 drains: established flows stay, new ones go elsewhere.
    pub weight: u32,
    /// When it was set (seconds since the Unix epoch, the operator's wall clock).
    pub since_unix: u64,
}

/// An override as saved across restarts: which real of which service, and the real's config
/// fingerprint when it was set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: String,
    pub real: SocketAddr,
    #[serde(flatten)]
    pub set: Override,
    /// [`fingerprint`] of the real's config: a different one means the config changed it.
    pub config: u64,
}

impl Saved {
    pub fn new(svc: &ServiceCfg, real: &RealCfg, set: Override) -> Saved {
        Saved {
            vip: svc.addr,
            port: svc.port,
            protocol: svc.proto.name().into(),
            real: SocketAddr::new(real.addr, real.port),
            set,
            config: fingerprint(real),
        }
    }

    /// Whether this override belongs to `real` of `svc` as configured now.
    pub fn applies_to(&self, svc: &ServiceCfg, real: &RealCfg) -> bool {
        self.vip == svc.addr
            && self.port == svc.port
            && self.protocol == svc.proto.name()
            && self.real == SocketAddr::new(real.addr, real.port)
            && self.config == fingerprint(real)
    }
}

/// A stable digest of a real's configuration (FNV-1a over its debug form, which leaves
/// secrets out): the same config gives the same number in every run and build.
pub fn fingerprint(real: &RealCfg) -> u64 {
    format!("{real:?}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// The file the agent keeps them in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub overrides: Vec<Saved>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn real(weight: u32) -> RealCfg {
        RealCfg {
            addr: IpAddr::from([10, 0, 0, 2]),
            port: 80,
            weight,
            inhibit_on_failure: false,
            notify_up: None,
            notify_down: None,
            checks: vec![],
            interval: Duration::from_secs(1),
            rise: 1,
            fall: 1,
        }
    }

    #[test]
    fn fingerprint_follows_the_config() {
        assert_eq!(fingerprint(&real(1)), fingerprint(&real(1)));
        assert_ne!(fingerprint(&real(1)), fingerprint(&real(2)));
    }

    #[test]
    fn saved_form_is_readable_json() {
        let s = Saved {
            vip: IpAddr::from([10, 0, 0, 1]),
            port: 80,
            protocol: "tcp".into(),
            real: "10.0.0.2:80".parse().expect("addr"),
            set: Override {
                weight: 0,
                since_unix: 7,
            },
            config: 42,
        };
        let text = serde_json::to_string(&File {
            overrides: vec![s.clone()],
        })
        .expect("json");
        assert!(text.contains(r#""weight":0"#), "{text}");
        let back: File = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.overrides, vec![s]);
    }
}
