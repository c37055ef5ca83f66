//! SIGHUP / `lb-agent reload`: validate first (a bad file changes nothing), then apply only
//! the difference. Reals that stay keep their health, MAC and flows; new reals start unchecked
//! (no traffic until their first check passes); XDP stays attached; VRRP instances whose
//! settings did not change keep running untouched.

use anyhow::{bail, Result};
use tracing::info;

use super::{Core, ServiceRt};
use crate::config::{self, Config};

/// Settings that size or place the maps, or VRRP instances: changing them needs a restart.
fn restart_needed(old: &Config, new: &Config) -> Option<&'static str> {
    if old.capacity != new.capacity {
        Some("a map capacity (max_services, max_reals, maglev_table_size, conntrack_size)")
    } else if old.pin_path != new.pin_path {
        Some("global_defs.bpf_pin_path")
    } else if old.router_id != new.router_id {
        Some("global_defs.router_id")
    } else if old.xdp_mode != new.xdp_mode {
        Some("global_defs.xdp_mode")
    } else if old.instances != new.instances || old.sync_groups != new.sync_groups {
        Some("vrrp_instances or vrrp_sync_groups")
    } else {
        None
    }
}

impl Core {
    pub(super) async fn reload(&mut self) -> Result<()> {
        let new = config::load(&self.cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(why) = restart_needed(&self.cfg, &new) {
            bail!("{why} changed: that needs a restart");
        }
        let mut services = Vec::with_capacity(new.services.len());
        for scfg in &new.services {
            let mut rt = ServiceRt::new(scfg.clone());
            if let Some(old) = self.services.iter().find(|o| o.cfg.key() == scfg.key()) {
                for r in &mut rt.reals {
                    if let Some(o) = old
                        .reals
                        .iter()
                        .find(|o| o.cfg.addr == r.cfg.addr && o.cfg.port == r.cfg.port)
                    {
                        // Same real: keep what we know about it unless its checks changed.
                        r.l2 = o.l2;
                        r.transitions = o.transitions;
                        r.checks_ok = o.checks_ok;
                        r.checks_failed = o.checks_failed;
                        if o.cfg.checks == r.cfg.checks {
                            r.health = o.health;
                            r.dynamic_weight = o.dynamic_weight;
                            r.last_result.clone_from(&o.last_result);
                            r.last_latency = o.last_latency;
                        }
                    }
                }
                rt.sorry_l2 = old.sorry_l2;
                rt.quorum_up = old.quorum_up;
            }
            services.push(rt);
        }
        let added = new
            .services
            .iter()
            .filter(|n| !self.services.iter().any(|o| o.cfg.key() == n.key()))
            .count();
        let removed = self
            .services
            .iter()
            .filter(|o| !new.services.iter().any(|n| n.key() == o.cfg.key()))
            .count();
        self.services = services;
        self.script_ok.resize(new.scripts.len(), None);
        self.cfg = new;
        self.reconcile_checks();
        self.update_active();
        self.tick().await;
        info!(
            services_added = added,
            services_removed = removed,
            "configuration reloaded"
        );
        Ok(())
    }
}
