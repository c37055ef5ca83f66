//! Bounds-checked access to the packet: the only place that turns an offset into a pointer.

use core::mem::size_of;

use aya_ebpf::{bindings::xdp_md, helpers::bpf_xdp_get_buff_len, programs::XdpContext};

pub struct Frame {
    start: usize,
    end: usize,
    md: *mut xdp_md,
}

impl Frame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        Self {
            start: ctx.data(),
            end: ctx.data_end(),
            md: ctx.ctx,
        }
    }

    /// Length of the whole packet: its first buffer (`len`) and, when it is a multi-buffer
    /// frame (a jumbo MTU in native mode), the rest. A helper call: only for packets longer
    /// than their first buffer.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        // SAFETY: `md` is the context the program was called with.
        unsafe { bpf_xdp_get_buff_len(self.md) as usize }
    }

    /// Length of the frame's first (linear) buffer in bytes: all of a frame unless it is a
    /// multi-buffer one. Headers are always in it.
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

    /// Reads `N` 16-bit words at `offset` (bytes), in wire order, as the native-endian values
    /// of their bytes. Packets start 2-byte aligned in every XDP path and every offset used
    /// here is even, so these are aligned 16-bit loads (byte-wise unaligned reads cost twice
    /// the instructions on this hot path).
    #[inline(always)]
    pub fn words<const N: usize>(&self, offset: usize) -> Option<[u16; N]> {
        // SAFETY: `ptr` checked that all 2*N bytes lie inside the packet.
        self.ptr::<[u16; N]>(offset)
            .map(|p| unsafe { core::ptr::read(p) })
    }
}

/// Two wire-order 16-bit words as the native value of their four bytes (little-endian BPF).
#[inline(always)]
pub fn join(lo: u16, hi: u16) -> u32 {
    (lo as u32) | ((hi as u32) << 16)
}
