//! BPF_PROG_TEST_RUN: runs a loaded XDP program on a frame in the kernel, without a network.
//! Used by the fixture tests (verdict and output frame) and the benchmarks (ns per packet).

use std::{io, os::fd::AsRawFd as _};

use anyhow::{Context as _, Result};
use aya::programs::Xdp;

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// `bpf_attr.test` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as the test-run context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The XDP action (XDP_PASS = 2, XDP_TX = 3, ...).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Average ns per run (over `repeat` runs), as the kernel measured it.
    pub ns_per_run: u32,
}

/// Runs `prog` on `frame` `repeat` times (at least once). `ingress_ifindex` 0 = none.
pub fn run(prog: &Xdp, frame: &[u8], repeat: u32, ingress_ifindex: u32) -> Result<Outcome> {
    let fd = prog.fd().context("program not loaded")?;
    let mut out = vec![0u8; frame.len() + 256];
    let ctx = XdpMd {
        data: 0,
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..Default::default()
    };
    let mut attr = TestAttr {
        prog_fd: fd.as_fd().as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: repeat.max(1),
        ..Default::default()
    };
    if ingress_ifindex != 0 {
        attr.ctx_in = &ctx as *const XdpMd as u64;
        attr.ctx_size_in = std::mem::size_of::<XdpMd>() as u32;
    }
    // SAFETY: bpf(2) with a correctly laid out attr whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("BPF_PROG_TEST_RUN");
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Outcome {
        action: attr.retval,
        frame: out,
        ns_per_run: attr.duration,
    })
}

use std::os::fd::AsFd as _;
