//! The data path's per-CPU queues of new entries (`LB_FLOW_EVENTS`, positions in
//! `LB_FLOW_HEADS`), read through shared mappings. Each CPU's queue is a ring of
//! `FLOW_QUEUE_SLOTS` that the data path fills with plain stores and never waits on: it keeps
//! the newest `FLOW_QUEUE_SLOTS - 1` records (the next one's slot may be being written). When
//! the agent falls further behind, the oldest records are overwritten, and the agent counts
//! them as lost instead of reading torn ones. The agent's read position is kept in the map,
//! so a restarted agent (or another reader, such as the bench) goes on where the last stopped.

use std::{
    os::fd::BorrowedFd,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context as _, Result};
use lb_common::{maps::FLOW_QUEUE_SLOTS, FlowHead, FlowSlot};

use super::directory::Published;
use crate::dataplane::{loader::possible_cpus, mapping::Mapping, maps::Maps};

const SLOTS: u64 = FLOW_QUEUE_SLOTS as u64;

pub struct FlowQueue {
    slots: Mapping,
    heads: Mapping,
    cpus: usize,
    /// Copies of one CPU's slots, reused between drains.
    buf: Vec<FlowSlot>,
}

impl FlowQueue {
    /// Maps the queues behind `events` and `heads` (sized as the loader sized them).
    pub fn open(events: BorrowedFd<'_>, heads: BorrowedFd<'_>) -> Result<FlowQueue> {
        let cpus = possible_cpus() as usize;
        Ok(FlowQueue {
            slots: Mapping::new(events, cpus * SLOTS as usize * size_of::<FlowSlot>())
                .context("mapping LB_FLOW_EVENTS")?,
            heads: Mapping::new(heads, cpus * size_of::<FlowHead>())
                .context("mapping LB_FLOW_HEADS")?,
            cpus,
            buf: Vec::new(),
        })
    }

    /// The queues of a loaded object.
    pub fn of(maps: &Maps) -> Result<FlowQueue> {
        use std::os::fd::AsFd as _;
        FlowQueue::open(maps.flow_events.fd().as_fd(), maps.flow_heads.fd().as_fd())
    }

    /// Appends the records published since the last drain to `out`, oldest first per CPU.
    /// Returns how many were lost: overwritten before they were read.
    pub fn drain(&mut self, out: &mut Vec<Published>) -> u64 {
        let mut lost = 0;
        for cpu in 0..self.cpus {
            lost += self.drain_cpu(cpu, out);
        }
        lost
    }

    fn drain_cpu(&mut self, cpu: usize, out: &mut Vec<Published>) -> u64 {
        let Some((head, tail)) = positions(&self.heads, cpu) else {
            return 0;
        };
        let h = head.load(Ordering::Acquire);
        let t = tail.load(Ordering::Relaxed).min(h);
        // Only the last ring's worth can still be there, less the slot record `h` goes to
        // (the data path may be writing it now).
        let from = t.max((h + 1).saturating_sub(SLOTS));
        let mut lost = from - t;
        let buf = &mut self.buf;
        buf.clear();
        for i in from..h {
            let idx = cpu * SLOTS as usize + (i % SLOTS) as usize;
            match self.slots.at::<FlowSlot>(idx) {
                // SAFETY: a mapped element; a volatile read, as the data path may be
                // rewriting it (then it is dropped below).
                Some(p) => buf.push(unsafe { p.as_ptr().read_volatile() }),
                None => break,
            }
        }
        // A copy is good only if the data path had not begun to rewrite its slot by the
        // time the copy was done: it writes record `i + SLOTS` there after publishing `head`
        // = `i + SLOTS`.
        let h2 = head.load(Ordering::Acquire);
        let first_good = (h2 + 1).saturating_sub(SLOTS);
        let torn = first_good.saturating_sub(from).min(buf.len() as u64) as usize;
        lost += torn as u64;
        out.extend(buf[torn..].iter().filter_map(Published::of));
        tail.store(h, Ordering::Release);
        lost
    }
}

/// (head, tail) of `cpu`'s queue: the data path's and the reader's position.
fn positions(heads: &Mapping, cpu: usize) -> Option<(&AtomicU64, &AtomicU64)> {
    let h: NonNull<FlowHead> = heads.at(cpu)?;
    // SAFETY: two aligned u64 fields of a mapped element, living as long as `heads`; the
    // data path writes `head` only, the reader `tail` only.
    unsafe {
        let p = h.as_ptr();
        Some((
            AtomicU64::from_ptr(&raw mut (*p).head),
            AtomicU64::from_ptr(&raw mut (*p).tail),
        ))
    }
}
