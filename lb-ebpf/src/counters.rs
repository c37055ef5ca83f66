//! Per-CPU counters: no atomics, no contention; the agent sums the CPUs when it reads.

use crate::maps::{LB_REAL_STATS, LB_STATS};

#[inline(always)]
pub fn count(stat: u32) {
    if let Some(c) = LB_STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while we run.
        unsafe { *c += 1 };
    }
}

/// A forwarded packet: its real's counters (a service's are the sum of its reals').
#[inline(always)]
pub fn count_forward(real_id: u32, bytes: u64, new_flow: bool) {
    if let Some(c) = LB_REAL_STATS.get_ptr_mut(real_id) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while we run.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
            if new_flow {
                (*c).flows += 1;
            }
        }
    }
}
