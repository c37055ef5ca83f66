//! Loads the XDP object with the configured capacities, reusing (or creating) pinned maps, and
//! verifies the programs. Nothing is attached here.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use aya::{
    maps::MapType,
    programs::{Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use lb_common::{
    maps as names, stats, AffinityKey, AffinityKey6, AffinityValue, Counters, FlowHead, FlowKey,
    FlowKey6, FlowSlot, FlowValue, FragKey, Real, Service, ServiceKey,
};
use tracing::{debug, info};

use super::{
    maps::Maps,
    object::OBJECT,
    pins::{self, Expect},
};
use crate::config::Capacity;

/// Table slots in `LB_RINGS`: two tables (active and standby) per service slot.
pub fn ring_slots(cap: &Capacity) -> u32 {
    cap.max_services
        .saturating_mul(2)
        .saturating_mul(cap.ring_size)
}

/// `LB_RINGS` elements: two slots each.
pub fn ring_elements(cap: &Capacity) -> u32 {
    ring_slots(cap).div_ceil(2)
}

/// The kernel's possible CPUs: the data path's CPU numbers are below this, so it is the
/// number of flow-event queues.
pub fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(1, |n| n.max(1) as u32)
}

fn size<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// Every map with the size this capacity gives it.
pub fn expected(cap: &Capacity) -> [Expect; 13] {
    let e = |name, map_type, key_size, value_size, max_entries| Expect {
        name,
        map_type,
        key_size,
        value_size,
        max_entries,
    };
    [
        e(names::FILTER, MapType::Array, 4, 8, lb_common::FILTER_WORDS),
        e(
            names::SERVICES,
            MapType::Hash,
            size::<ServiceKey>(),
            size::<Service>(),
            cap.service_ports,
        ),
        e(names::RINGS, MapType::Array, 4, 8, ring_elements(cap)),
        e(
            names::REALS,
            MapType::Array,
            4,
            size::<Real>(),
            cap.max_reals,
        ),
        e(
            names::FLOWS,
            MapType::LruHash,
            size::<FlowKey>(),
            size::<FlowValue>(),
            cap.conntrack,
        ),
        e(
            names::AFFINITY,
            MapType::LruHash,
            size::<AffinityKey>(),
            size::<AffinityValue>(),
            cap.affinity,
        ),
        e(
            names::FRAG_SERVICES,
            MapType::Hash,
            size::<FragKey>(),
            size::<ServiceKey>(),
            cap.max_services,
        ),
        e(
            names::FLOWS6,
            MapType::LruHash,
            size::<FlowKey6>(),
            size::<FlowValue>(),
            cap.conntrack6,
        ),
        e(
            names::AFFINITY6,
            MapType::LruHash,
            size::<AffinityKey6>(),
            size::<AffinityValue>(),
            cap.affinity,
        ),
        e(names::STATS, MapType::PerCpuArray, 4, 8, stats::COUNT),
        e(
            names::REAL_STATS,
            MapType::PerCpuArray,
            4,
            size::<Counters>(),
            cap.max_reals,
        ),
        e(
            names::FLOW_EVENTS,
            MapType::Array,
            4,
            size::<FlowSlot>(),
            possible_cpus().saturating_mul(names::FLOW_QUEUE_SLOTS),
        ),
        e(
            names::FLOW_HEADS,
            MapType::Array,
            4,
            size::<FlowHead>(),
            possible_cpus(),
        ),
    ]
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub maps: Maps,
    pub pin_dir: Option<PathBuf>,
    /// Maps that were found pinned and reused (state carried over from a previous run).
    pub reused: Vec<&'static str>,
}

impl Loaded {
    /// The balancing program (loaded, verified).
    pub fn program(&mut self) -> Result<&mut Xdp> {
        program(&mut self.ebpf, names::PROG_LB)
    }
}

pub fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the XDP object"))?;
    Ok(p.try_into()?)
}

/// Loads the object. With `pin_dir`, maps are reused from there (or created and pinned), so
/// the connection table and counters survive a restart.
pub fn load(cap: &Capacity, pin_dir: Option<&Path>) -> Result<Loaded> {
    raise_memlock();
    let expect = expected(cap);
    let mut reused = Vec::new();
    if let Some(dir) = pin_dir {
        pins::ensure_dir(dir)?;
        pins::drop_incompatible(dir, &expect);
        reused = expect
            .iter()
            .filter(|e| dir.join(e.name).exists())
            .map(|e| e.name)
            .collect();
    }
    let pin_paths: Vec<(&'static str, PathBuf)> = match pin_dir {
        Some(dir) => expect.iter().map(|e| (e.name, dir.join(e.name))).collect(),
        None => Vec::new(),
    };
    let mut loader = EbpfLoader::new();
    for e in &expect {
        loader.map_max_entries(e.name, e.max_entries);
    }
    for (name, path) in &pin_paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader
        .load(OBJECT)
        .context("loading the XDP object (are you root, with BPF enabled?)")?;
    for name in [
        names::PROG_LB,
        names::PROG_LB_BASE,
        names::PROG_PASS,
        names::PROG_MACSWAP,
        names::PROG_DROP,
    ] {
        program(&mut ebpf, name)?
            .load()
            .with_context(|| format!("the kernel verifier rejected {name}"))?;
    }
    let maps = Maps::take(&mut ebpf, ring_slots(cap))?;
    if !reused.is_empty() {
        info!(maps = ?reused, "reusing pinned maps from a previous run");
    }
    Ok(Loaded {
        ebpf,
        maps,
        pin_dir: pin_dir.map(Path::to_path_buf),
        reused,
    })
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. Newer ones (and sandboxes that
/// forbid raising it) do not need it, so a failure is only worth a debug line.
fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        debug!(
            err = %std::io::Error::last_os_error(),
            "setrlimit(RLIMIT_MEMLOCK) failed; not needed on kernel 5.11+"
        );
    }
}

/// Maps the config's mode onto aya's; `Auto` tries native first.
pub fn xdp_modes(mode: crate::config::XdpMode) -> &'static [XdpMode] {
    match mode {
        crate::config::XdpMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
        crate::config::XdpMode::Native => &[XdpMode::Driver],
        crate::config::XdpMode::Generic => &[XdpMode::Skb],
    }
}
