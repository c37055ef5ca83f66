//! Config -> health scheduler: one scheduled real per configured real that has checks, added,
//! updated and removed as the config changes; events are mapped back to (service, real).

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
};

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
pub fn probes(checks: &[CheckCfg]) -> Vec<Probe> {
    let list = checks
        .iter()
        .filter_map(|c| match c {
            CheckCfg::Tcp {
                port,
                connect_timeout,
                bind_to,
                probe_vip,
            } => Some(Probe::Tcp(TcpCheck {
                connect_port: Some(*port),
                bind_to: bind_to.map(Into::into),
                connect_timeout: *connect_timeout,
                probe_vip: *probe_vip,
            })),
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
    list
}

pub fn spec(real: &RealCfg) -> RealSpec {
    let target = Target::new(real.addr.into(), real.port);
    let mut s = RealSpec::new(target, probes(&real.checks));
    s.delay_loop = real.interval;
    s.rise = real.rise;
    s.fall = real.fall;
    s
}

/// Scheduler ids at and above this are `vrrp_scripts` (index = id - SCRIPT_BASE).
const SCRIPT_BASE: u64 = 1 << 62;

/// Which scheduled id is which real (or VRRP script).
#[derive(Default)]
pub struct Registry {
    ids: HashMap<RealKey, (RealId, RealSpecSig)>,
    keys: HashMap<u64, RealKey>,
    next: u64,
    scripts: Vec<crate::config::ScriptCfg>,
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

    /// The `vrrp_scripts` index of a scheduler id, if it is a script.
    pub fn script_index(&self, id: RealId) -> Option<usize> {
        id.0.checked_sub(SCRIPT_BASE).map(|i| i as usize)
    }

    /// Runs each `vrrp_scripts` entry on its interval with rise/fall, through the same
    /// scheduler as the real servers' checks (a script is a check without a target).
    pub fn reconcile_scripts(&mut self, sched: &Scheduler, scripts: &[crate::config::ScriptCfg]) {
        if self.scripts == scripts {
            return;
        }
        for i in 0..self.scripts.len() {
            sched.remove(RealId(SCRIPT_BASE + i as u64));
        }
        for (i, s) in scripts.iter().enumerate() {
            let probe = Probe::Script(ScriptCheck {
                argv: s.argv.clone(),
                timeout: s.timeout,
                dynamic: false,
            });
            let mut spec = RealSpec::new(Target::new(Ipv4Addr::LOCALHOST.into(), 0), vec![probe]);
            spec.delay_loop = s.interval;
            spec.rise = s.rise;
            spec.fall = s.fall;
            if let Err(e) = sched.add(RealId(SCRIPT_BASE + i as u64), spec) {
                warn!(script = %s.name, error = %e, "cannot schedule vrrp_script");
            }
        }
        self.scripts = scripts.to_vec();
    }

    /// Pauses the checks of the reals of `down` services and resumes the others'.
    pub fn pause(&self, sched: &Scheduler, down: &BTreeSet<ServiceKey>) {
        for ((svc, _, _), (id, _)) in &self.ids {
            sched.set_paused(*id, down.contains(svc));
        }
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
