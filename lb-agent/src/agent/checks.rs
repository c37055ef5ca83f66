//! The node's check plan -> the health scheduler: one scheduled check per real that has checks
//! and per `vrrp_scripts` entry, added, updated and removed as the plan changes; the
//! scheduler's events are mapped back to the node's (by real key and script name).

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
    time::Duration,
};

use lb_common::ServiceKey;
use tracing::warn;

use crate::{
    config::{CheckCfg, RealCfg, ScriptCfg},
    health::{
        self, HttpCheck, Probe, RealId, RealSpec, Scheduler, ScriptCheck, StatusRange, Target,
        TcpCheck, TlsOptions,
    },
    node::{CheckPlan, Event, RealKey},
};

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
            CheckCfg::Dns {
                port,
                name,
                qtype,
                tcp,
                rcode,
                require_answer,
                connect_timeout,
                bind_to,
                probe_vip,
            } => Some(Probe::Dns(health::dns::DnsCheck {
                connect_port: Some(*port),
                name: name.clone(),
                qtype: qtype.clone(),
                tcp: *tcp,
                rcode: *rcode,
                require_answer: *require_answer,
                bind_to: *bind_to,
                connect_timeout: *connect_timeout,
                probe_vip: *probe_vip,
            })),
            CheckCfg::Udp {
                port,
                payload,
                require_reply,
                reply_regex,
                connect_timeout,
                bind_to,
                probe_vip,
            } => {
                let reply_regex = match reply_regex.as_deref().map(regex::bytes::Regex::new) {
                    None => None,
                    Some(Ok(r)) => Some(r),
                    Some(Err(e)) => {
                        warn!(error = %e, "invalid reply regex; check skipped");
                        return None;
                    }
                };
                Some(Probe::Udp(health::udp::UdpCheck {
                    connect_port: Some(*port),
                    payload: payload.clone(),
                    require_reply: *require_reply,
                    reply_regex,
                    bind_to: *bind_to,
                    connect_timeout: *connect_timeout,
                    probe_vip: *probe_vip,
                }))
            }
            CheckCfg::Ping { connect_timeout } => Some(Probe::Ping(health::ping::PingCheck {
                connect_timeout: *connect_timeout,
            })),
            CheckCfg::File {
                path,
                weight,
                reverse,
            } => Some(Probe::File(health::file::FileCheck {
                path: path.clone(),
                weight: *weight,
                reverse: *reverse,
            })),
        })
        .collect();
    list
}

pub fn spec(real: &RealCfg) -> RealSpec {
    let target = Target::new(real.addr, real.port);
    let mut s = RealSpec::new(target, probes(&real.checks));
    s.delay_loop = real.interval;
    s.rise = real.rise;
    s.fall = real.fall;
    s
}

/// What a scheduled id checks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Checked {
    Real(RealKey),
    Script(String),
}

/// What the scheduler was given for a real or script, to tell whether a reload changed it.
type Sig = (Vec<CheckCfg>, Vec<String>, Duration, Duration, u32, u32);

fn real_sig(r: &RealCfg) -> Sig {
    (
        r.checks.clone(),
        Vec::new(),
        Duration::ZERO,
        r.interval,
        r.rise,
        r.fall,
    )
}

fn script_sig(s: &ScriptCfg) -> Sig {
    (
        Vec::new(),
        s.argv.clone(),
        s.timeout,
        s.interval,
        s.rise,
        s.fall,
    )
}

/// A `vrrp_scripts` entry as a scheduled check: a script check without a target, with the
/// script's interval and rise/fall.
fn script_spec(s: &ScriptCfg) -> RealSpec {
    let probe = Probe::Script(ScriptCheck {
        argv: s.argv.clone(),
        timeout: s.timeout,
        dynamic: false,
    });
    let mut spec = RealSpec::new(Target::new(Ipv4Addr::LOCALHOST.into(), 0), vec![probe]);
    spec.delay_loop = s.interval;
    spec.rise = s.rise;
    spec.fall = s.fall;
    spec
}

/// Which scheduled id is which real (or VRRP script), by key and name: reals and scripts
/// whose checks did not change keep running (and keep their state) across reloads.
#[derive(Default)]
pub struct Registry {
    ids: HashMap<u64, (Checked, Sig)>,
    next: u64,
    paused: BTreeSet<ServiceKey>,
}

impl Registry {
    /// Makes the scheduler run exactly `plan`.
    pub fn reconcile(&mut self, sched: &Scheduler, plan: &CheckPlan) {
        let mut wanted: Vec<(Checked, Sig, RealSpec)> = plan
            .reals
            .iter()
            .filter(|(_, r)| !r.checks.is_empty())
            .map(|(k, r)| (Checked::Real(*k), real_sig(r), spec(r)))
            .collect();
        wanted.extend(plan.scripts.iter().map(|s| {
            (
                Checked::Script(s.name.clone()),
                script_sig(s),
                script_spec(s),
            )
        }));
        let mut keep = HashMap::new();
        for (what, sig, spec) in wanted {
            let existing = self
                .ids
                .iter()
                .find(|(_, (w, _))| *w == what)
                .map(|(id, (_, old))| (*id, old.clone()));
            match existing {
                Some((id, old)) if old == sig => {
                    keep.insert(id, (what, sig));
                }
                Some((id, _)) => {
                    if let Err(e) = sched.update(RealId(id), spec) {
                        warn!(check = ?what, error = %e, "cannot update health check");
                    }
                    keep.insert(id, (what, sig));
                }
                None => {
                    self.next += 1;
                    if let Err(e) = sched.add(RealId(self.next), spec) {
                        warn!(check = ?what, error = %e, "cannot schedule health check");
                        continue;
                    }
                    keep.insert(self.next, (what, sig));
                }
            }
        }
        for id in self.ids.keys() {
            if !keep.contains_key(id) {
                sched.remove(RealId(*id));
            }
        }
        self.ids = keep;
        // Pause the reals behind a down interface; resume the others.
        for (id, (what, _)) in &self.ids {
            if let Checked::Real(k) = what {
                sched.set_paused(RealId(*id), plan.paused.contains(&k.0));
            }
        }
        self.paused.clone_from(&plan.paused);
    }

    /// A scheduler event as the node's event.
    pub fn translate(&self, ev: health::Event) -> Option<Event> {
        let id = match &ev {
            health::Event::Health(e) => e.real,
            health::Event::Weight(e) => e.real,
            health::Event::ProbeDone(e) => e.real,
        };
        let (what, _) = self.ids.get(&id.0)?;
        match (what, ev) {
            (Checked::Script(name), health::Event::Health(e)) => Some(Event::Script {
                name: name.clone(),
                ok: e.state == health::State::Up,
                reason: e.reason,
            }),
            (Checked::Script(_), _) => None,
            (Checked::Real(real), health::Event::Health(e)) => Some(Event::RealHealth {
                real: *real,
                up: e.state == health::State::Up,
                weight: e.weight,
                reason: e.reason,
            }),
            (Checked::Real(real), health::Event::Weight(e)) => Some(Event::RealWeight {
                real: *real,
                weight: e.weight,
                reason: e.reason,
            }),
            (Checked::Real(real), health::Event::ProbeDone(e)) => Some(Event::Probe {
                real: *real,
                ok: e.outcome.ok,
                reason: e.outcome.reason,
                latency: e.outcome.latency,
            }),
        }
    }
}
