//! Config -> health scheduler: one scheduled real per configured real that has checks, added,
//! updated and removed as the config changes; events are mapped back to (service, real).

use std::{collections::HashMap, net::Ipv4Addr};

use lb_common::ServiceKey;
use tracing::warn;

use crate::{
    config::{CheckCfg, RealCfg},
    health::{
        self, HttpCheck, Probe, RealId, RealSpec, Scheduler, ScriptCheck, StatusRange, Target,
        TcpCheck, TlsOptions,
    },
};

pub type RealKey = (ServiceKey, Ipv4Addr, u16);

/// Translates check configs into probes.
pub fn probes(checks: &[CheckCfg]) -> (Vec<Probe>, Option<Ipv4Addr>) {
    let mut vip = None;
    let list = checks
        .iter()
        .filter_map(|c| match c {
            CheckCfg::Tcp {
                port,
                connect_timeout,
                bind_to,
                probe_vip,
            } => {
                if probe_vip.is_some() {
                    vip = *probe_vip;
                }
                Some(Probe::Tcp(TcpCheck {
                    connect_port: Some(*port),
                    bind_to: bind_to.map(Into::into),
                    connect_timeout: *connect_timeout,
                }))
            }
            CheckCfg::Http {
                tls,
                port,
                path,
                virtualhost,
                status,
                regex,
                connect_timeout,
                timeout,
                bind_to,
                verify,
            } => {
                let body_regex = match regex.as_deref().map(regex::bytes::Regex::new) {
                    None => None,
                    Some(Ok(r)) => Some(r),
                    Some(Err(e)) => {
                        warn!(error = %e, "invalid body regex; check skipped");
                        return None;
                    }
                };
                let mut h = HttpCheck::new(path.clone());
                h.virtualhost.clone_from(virtualhost);
                h.status_codes = status
                    .iter()
                    .map(|&(lo, hi)| StatusRange { lo, hi })
                    .collect();
                h.body_regex = body_regex;
                h.connect_port = Some(*port);
                h.bind_to = bind_to.map(Into::into);
                h.connect_timeout = *connect_timeout;
                h.timeout = *timeout;
                h.tls = tls.then(|| TlsOptions {
                    verify: *verify,
                    ca_file: None,
                });
                Some(Probe::Http(h))
            }
            CheckCfg::Script {
                argv,
                timeout,
                dynamic,
            } => Some(Probe::Script(ScriptCheck {
                argv: argv.clone(),
                timeout: *timeout,
                dynamic: *dynamic,
            })),
        })
        .collect();
    (list, vip)
}

pub fn spec(real: &RealCfg) -> RealSpec {
    let (checks, probe_vip) = probes(&real.checks);
    let mut target = Target::new(real.addr.into(), real.port);
    target.probe_vip = probe_vip;
    let mut s = RealSpec::new(target, checks);
    s.delay_loop = real.interval;
    s.rise = real.rise;
    s.fall = real.fall;
    s
}

/// Which scheduled id is which real.
#[derive(Default)]
pub struct Registry {
    ids: HashMap<RealKey, (RealId, RealSpecSig)>,
    keys: HashMap<u64, RealKey>,
    next: u64,
}

/// What the scheduler was given for a real, to tell whether a reload changed it.
type RealSpecSig = (Vec<CheckCfg>, std::time::Duration, u32, u32);

fn sig(r: &RealCfg) -> RealSpecSig {
    (r.checks.clone(), r.interval, r.rise, r.fall)
}

impl Registry {
    pub fn key(&self, id: RealId) -> Option<&RealKey> {
        self.keys.get(&id.0)
    }

    /// Makes the scheduler check exactly `wanted` (reals with checks), keeping the state of
    /// reals whose checks did not change.
    pub fn reconcile(&mut self, sched: &Scheduler, wanted: &[(ServiceKey, &RealCfg)]) {
        let mut keep = HashMap::new();
        for (svc, r) in wanted {
            if r.checks.is_empty() {
                continue;
            }
            let key = (*svc, r.addr, r.port);
            let s = sig(r);
            match self.ids.get(&key) {
                Some((id, old)) if *old == s => {
                    keep.insert(key, (*id, s));
                }
                Some((id, _)) => {
                    if let Err(e) = sched.update(*id, spec(r)) {
                        warn!(real = %r.addr, error = %e, "cannot update health check");
                    }
                    keep.insert(key, (*id, s));
                }
                None => {
                    self.next += 1;
                    let id = RealId(self.next);
                    if let Err(e) = sched.add(id, spec(r)) {
                        warn!(real = %r.addr, error = %e, "cannot schedule health check");
                        continue;
                    }
                    self.keys.insert(id.0, key);
                    keep.insert(key, (id, s));
                }
            }
        }
        for (key, (id, _)) in &self.ids {
            if !keep.contains_key(key) {
                sched.remove(*id);
                self.keys.remove(&id.0);
            }
        }
        self.ids = keep;
    }
}

pub use health::Event;
