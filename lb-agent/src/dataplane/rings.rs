//! The Maglev tables, written through a shared mapping of the `LB_RINGS` array
//! (`BPF_F_MMAPABLE`): rewriting a 65537-slot table is a memory walk, not 65537 syscalls.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

pub struct Rings {
    base: NonNull<AtomicU32>,
    entries: usize,
    bytes: usize,
}

// SAFETY: the mapping is plain shared memory; all access goes through atomics.
unsafe impl Send for Rings {}
unsafe impl Sync for Rings {}

impl Rings {
    /// Maps the whole array read-write as `entries` u32 slots (its elements are `[u32; 2]`,
    /// exactly 8 bytes, so the mapping is a flat u32 array).
    pub fn map(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let entries = entries as usize;
        let bytes = (entries * 4).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a BPF map fd; the kernel checks size and flags.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU32>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Rings {
            base,
            entries,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn slot(&self, i: usize) -> Option<&AtomicU32> {
        // SAFETY: in bounds of the mapping, which lives as long as self.
        (i < self.entries).then(|| unsafe { &*self.base.as_ptr().add(i) })
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

impl Drop for Rings {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}
