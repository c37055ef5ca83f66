//! Per-CPU counters: no atomics, no contention; the agent sums the CPUs when it reads.

use lb_common::Counters;

use crate::maps::{LB_REAL_STATS, LB_STATS, LB_SVC_STATS};

#[inline(always)]
pub fn count(stat: u32) {
    if let Some(c) = LB_STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while we run.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn add(c: Option<*mut Counters>, bytes: u64, new_flow: bool) {
    if let Some(c) = c {
        // SAFETY: as above.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += bytes;
            if new_flow {
                (*c).flows += 1;
            }
        }
    }
}

#[inline(always)]
pub fn count_forward(svc_id: u32, real_id: u32, bytes: u64, new_flow: bool) {
    add(LB_SVC_STATS.get_ptr_mut(svc_id), bytes, new_flow);
    add(LB_REAL_STATS.get_ptr_mut(real_id), bytes, new_flow);
}
