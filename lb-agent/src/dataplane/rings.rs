//! The Maglev tables, written through a shared mapping of the `LB_RINGS` array
//! (`BPF_F_MMAPABLE`): rewriting a 65537-slot table is a memory walk, not 65537 syscalls.

use std::{
    io,
    os::fd::BorrowedFd,
    sync::atomic::{AtomicU32, Ordering},
};

use super::mapping::Mapping;

pub struct Rings {
    map: Mapping,
    entries: usize,
}

impl Rings {
    /// Maps the whole array read-write as `entries` u32 slots (its elements are `[u32; 2]`,
    /// exactly 8 bytes, so the mapping is a flat u32 array).
    pub fn map(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        let entries = entries as usize;
        Ok(Rings {
            map: Mapping::new(fd, entries * 4)?,
            entries,
        })
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn slot(&self, i: usize) -> Option<&AtomicU32> {
        // SAFETY: a u32 of the mapping, which lives as long as self.
        self.map
            .at::<AtomicU32>(i)
            .filter(|_| i < self.entries)
            .map(|p| unsafe { p.as_ref() })
    }

    pub fn get(&self, i: usize) -> Option<u32> {
        self.slot(i).map(|s| s.load(Ordering::Relaxed))
    }

    /// Writes `table` at `base`, touching only slots whose value differs. Returns how many
    /// slots were written, or None if the range is outside the array.
    pub fn write_diff(&self, base: usize, table: &[u32]) -> Option<usize> {
        if base.checked_add(table.len())? > self.entries {
            return None;
        }
        let mut written = 0;
        for (i, v) in table.iter().enumerate() {
            let s = self.slot(base + i)?;
            if s.load(Ordering::Relaxed) != *v {
                s.store(*v, Ordering::Relaxed);
                written += 1;
            }
        }
        // Publish before the caller flips the service entry to this half.
        std::sync::atomic::fence(Ordering::SeqCst);
        Some(written)
    }

    /// True if `table` equals the slots at `base`.
    pub fn equals(&self, base: usize, table: &[u32]) -> bool {
        table
            .iter()
            .enumerate()
            .all(|(i, v)| self.get(base + i) == Some(*v))
    }
}
