//! Bounds-checked access to the packet: the only place that turns an offset into a pointer.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

pub struct Frame {
    start: usize,
    end: usize,
}

impl Frame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    /// Length of the frame in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// A pointer to a `T` at `offset`, if all of it lies inside the frame. `offset` must be
    /// bounded (a constant, or a masked header length) so the verifier can follow it.
    #[inline(always)]
    pub fn ptr<T>(&self, offset: usize) -> Option<*mut T> {
        let at = self.start + offset;
        if at + size_of::<T>() > self.end {
            return None;
        }
        Some(at as *mut T)
    }

    /// Reads a `T` at `offset` (unaligned).
    #[inline(always)]
    pub fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        // SAFETY: `ptr` checked that the whole T lies inside the packet.
        self.ptr::<T>(offset)
            .map(|p| unsafe { core::ptr::read_unaligned(p) })
    }
}
