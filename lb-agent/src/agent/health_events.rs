//! Health-check results: a real's state or weight changes the data path at once; a VRRP
//! script's result changes its instances' priority.

use std::time::Instant;

use tracing::{info, warn};

use super::{hooks, state::Health, Core};
use crate::health;

impl Core {
    pub(super) async fn on_health(&mut self, ev: health::Event) {
        let id = match &ev {
            health::Event::Health(e) => e.real,
            health::Event::Weight(e) => e.real,
            health::Event::ProbeDone(e) => e.real,
        };
        if let Some(idx) = self.checks.script_index(id) {
            if let health::Event::Health(e) = ev {
                let ok = e.state == health::State::Up;
                let name = self
                    .cfg
                    .scripts
                    .get(idx)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                if ok {
                    info!(script = %name, reason = %e.reason, "vrrp_script succeeds");
                } else {
                    warn!(script = %name, reason = %e.reason, "vrrp_script fails");
                }
                if let Some(slot) = self.script_ok.get_mut(idx) {
                    *slot = Some(ok);
                }
                self.apply_tracking(Instant::now());
                self.vrrp_drive().await;
            }
            return;
        }
        let Some(key) = self.checks.key(id).copied() else {
            return;
        };
        let Some(svc) = self.services.iter_mut().find(|s| s.cfg.key() == key.0) else {
            return;
        };
        let label = svc.cfg.label();
        let Some(real) = svc
            .reals
            .iter_mut()
            .find(|r| r.cfg.addr == key.1 && r.cfg.port == key.2)
        else {
            return;
        };
        let who = format!("{}:{}", key.1, key.2);
        let changed = match ev {
            health::Event::Health(e) => {
                let up = e.state == health::State::Up;
                real.health = if up { Health::Up } else { Health::Down };
                real.dynamic_weight = e.weight.or(real.dynamic_weight);
                real.last_result.clone_from(&e.reason);
                real.transitions += 1;
                if up {
                    info!(service = %label, real = %who, reason = %e.reason, "real server UP");
                    if let Some(h) = &real.cfg.notify_up {
                        hooks::spawn(format!("notify_up {who}"), h, &[]);
                    }
                } else {
                    warn!(service = %label, real = %who, reason = %e.reason, "real server DOWN");
                    if let Some(h) = &real.cfg.notify_down {
                        hooks::spawn(format!("notify_down {who}"), h, &[]);
                    }
                }
                true
            }
            health::Event::Weight(e) => {
                info!(service = %label, real = %who, weight = e.weight, reason = %e.reason, "dynamic weight");
                real.dynamic_weight = Some(e.weight);
                true
            }
            health::Event::ProbeDone(e) => {
                real.last_result = e.outcome.reason.clone();
                if e.outcome.ok {
                    real.checks_ok += 1;
                } else {
                    real.checks_failed += 1;
                }
                real.last_latency = Some(e.outcome.latency);
                self.latency.observe(e.outcome.latency.as_secs_f64());
                false
            }
        };
        if changed {
            self.resync();
            self.update_quorum();
            self.apply_tracking(Instant::now());
            self.vrrp_drive().await;
        }
    }
}
