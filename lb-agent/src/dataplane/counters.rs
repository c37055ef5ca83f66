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
    pub reals: HashMap<u32, Counters>,
}

impl Snapshot {
    pub fn get(&self, stat: u32) -> u64 {
        self.verdicts.get(stat as usize).copied().unwrap_or(0)
    }
}

/// One real's counters summed over the CPUs.
pub fn real(maps: &Maps, id: u32) -> Result<Counters> {
    let mut c = Counters::default();
    for x in maps.real_stats.get(&id, 0)?.iter() {
        c.add(x);
    }
    Ok(c)
}

/// One data-path counter summed over the CPUs (0 if unreadable).
pub fn stat(maps: &Maps, i: u32) -> u64 {
    maps.stats
        .get(&i, 0)
        .map_or(0, |c| c.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
}

pub fn read(maps: &Maps, real_ids: &[u32]) -> Result<Snapshot> {
    let mut verdicts = Vec::with_capacity(stats::COUNT as usize);
    for i in 0..stats::COUNT {
        verdicts.push(stat(maps, i));
    }
    let mut reals = HashMap::new();
    for &id in real_ids {
        reals.insert(id, real(maps, id)?);
    }
    Ok(Snapshot { verdicts, reals })
}
