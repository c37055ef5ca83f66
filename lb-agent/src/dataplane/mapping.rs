//! A shared mapping of a `BPF_F_MMAPABLE` array: the agent reads and writes the map's memory
//! directly, as the data path does, instead of a system call per element.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::NonNull,
};

pub struct Mapping {
    base: NonNull<u8>,
    bytes: usize,
}

// SAFETY: plain shared memory; its users access it through atomics or volatile reads.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `bytes` (rounded up to whole pages) of the map behind `fd`, read-write.
    pub fn new(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<Mapping> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let bytes = bytes.div_ceil(page) * page;
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
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping { base, bytes })
    }

    /// The element of type `T` at index `i`, if it lies inside the mapping. `T` must be the
    /// map's value type (the kernel lays elements out at their size, 8-aligned).
    pub fn at<T>(&self, i: usize) -> Option<NonNull<T>> {
        let end = i.checked_add(1)?.checked_mul(size_of::<T>())?;
        // SAFETY: in bounds of the mapping, which lives as long as self.
        (end <= self.bytes).then(|| unsafe { self.base.cast::<T>().add(i) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}
