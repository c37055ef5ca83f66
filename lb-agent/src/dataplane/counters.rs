//! Reading the per-CPU counters and summing the CPUs.

use std::collections::HashMap;

use anyhow::Result;
use lb_common::{stats, Counters};

use super::maps::Maps;

/// Totals over all CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Indexed by `lb_common::stats::*`.
    pub verdicts: Vec<u64>,
    pub services: HashMap<u32, Counters>,
    pub reals: HashMap<u32, Counters>,
}

impl Snapshot {
    pub fn get(&self, stat: u32) -> u64 {
        self.verdicts.get(stat as usize).copied().unwrap_or(0)
    }
}

pub fn read(maps: &Maps, svc_ids: &[u32], real_ids: &[u32]) -> Result<Snapshot> {
    let mut verdicts = Vec::with_capacity(stats::COUNT as usize);
    for i in 0..stats::COUNT {
        let per_cpu = maps.stats.get(&i, 0)?;
        verdicts.push(per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v)));
    }
    let sum = |v: aya::maps::PerCpuValues<Counters>| {
        let mut c = Counters::default();
        for x in v.iter() {
            c.add(x);
        }
        c
    };
    let mut services = HashMap::new();
    for &id in svc_ids {
        services.insert(id, sum(maps.svc_stats.get(&id, 0)?));
    }
    let mut reals = HashMap::new();
    for &id in real_ids {
        reals.insert(id, sum(maps.real_stats.get(&id, 0)?));
    }
    Ok(Snapshot {
        verdicts,
        services,
        reals,
    })
}
