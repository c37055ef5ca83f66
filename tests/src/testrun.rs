//! BPF_PROG_TEST_RUN through aya: runs a loaded XDP program on a frame in the kernel, without
//! a network. Used by the fixture tests (verdict and output frame) and the benchmarks (ns per
//! packet).

use anyhow::{Context as _, Result};
use aya::programs::{TestRun as _, TestRunOptions, Xdp};

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

impl XdpMd {
    fn bytes(&self) -> Vec<u8> {
        [
            self.data,
            self.data_end,
            self.data_meta,
            self.ingress_ifindex,
            self.rx_queue_index,
            self.egress_ifindex,
        ]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The XDP action (XDP_PASS = 2, XDP_TX = 3, ...).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Average ns per run (over `repeat` runs), as the kernel measured it.
    pub ns_per_run: u64,
}

/// Runs `prog` on `frame` `repeat` times (at least once). `ingress_ifindex` 0 = none.
pub fn run(prog: &Xdp, frame: &[u8], repeat: u32, ingress_ifindex: u32) -> Result<Outcome> {
    let mut out = vec![0u8; frame.len() + 256];
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex,
        ..Default::default()
    }
    .bytes();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.repeat = repeat.max(1);
    if ingress_ifindex != 0 {
        opts.ctx_in = Some(&ctx);
    }
    let r = prog.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    out.truncate(r.data_size_out as usize);
    Ok(Outcome {
        action: r.return_value,
        frame: out,
        ns_per_run: r.duration.as_nanos() as u64,
    })
}

/// Pins the calling thread to `cpu`: a test run executes on the caller's CPU, so every run
/// then uses that CPU's per-CPU state (its flow-sync queue), and "per core" means one core.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity on this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}
