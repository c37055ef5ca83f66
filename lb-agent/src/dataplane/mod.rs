//! The data path from user space: load the object, keep its maps equal to the desired state,
//! attach it where this node forwards.

pub mod attach;
pub mod conns;
pub mod counters;
pub mod desired;
pub mod explain;
pub mod loader;
pub mod maglev;
pub mod mapping;
pub mod maps;
pub mod object;
pub mod pins;
pub mod rings;
pub mod sync;

use std::{collections::BTreeMap, path::Path};

use anyhow::Result;
use aya::programs::XdpMode;

pub use desired::{DesiredReal, DesiredService, L2};

use crate::config::Capacity;

pub struct Dataplane {
    pub loaded: loader::Loaded,
    pub programmer: sync::Programmer,
    attached: BTreeMap<String, attach::Attachment>,
    default_mode: crate::config::XdpMode,
    modes: BTreeMap<String, crate::config::XdpMode>,
}

impl Dataplane {
    /// Loads the object (reusing pinned maps under `pin_dir`) and reads back their state.
    pub fn open(
        cap: &Capacity,
        pin_dir: Option<&Path>,
        mode: crate::config::XdpMode,
    ) -> Result<Self> {
        let loaded = loader::load(cap, pin_dir)?;
        let programmer =
            sync::Programmer::recover(&loaded.maps, cap.max_services, cap.max_reals, cap.ring_size);
        Ok(Dataplane {
            loaded,
            programmer,
            attached: BTreeMap::new(),
            default_mode: mode,
            modes: BTreeMap::new(),
        })
    }

    pub fn apply(&mut self, desired: &[DesiredService]) -> Result<sync::Report> {
        self.programmer.apply(&mut self.loaded.maps, desired)
    }

    pub fn is_attached(&self, ifname: &str) -> bool {
        self.attached.contains_key(ifname)
    }

    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.attached.keys().map(String::as_str)
    }

    /// Each attached interface with the mode it is attached in (`native`, `generic`).
    pub fn attached_modes(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.attached
            .iter()
            .map(|(k, a)| (k.as_str(), attach::mode_name(a.mode)))
    }

    /// The attach mode of each interface (others: the default given to `open`).
    pub fn set_modes(&mut self, modes: BTreeMap<String, crate::config::XdpMode>) {
        self.modes = modes;
    }

    /// Whether `ifname`'s driver runs XDP natively: the pass-everything program is attached in
    /// native mode for a moment. `Err` names the driver.
    pub fn probe_native(&mut self, ifname: &str) -> Result<()> {
        let prog = loader::program(&mut self.loaded.ebpf, lb_common::maps::PROG_PASS)?;
        let idx = attach::ifindex(ifname)?;
        match prog.attach_to_if_index(idx, XdpMode::Driver) {
            Ok(id) => {
                let _ = prog.detach(id);
                Ok(())
            }
            // Something is attached already (an earlier run's link): not a verdict on the
            // driver.
            Err(e) if attached_already(&e) => Ok(()),
            Err(e) => {
                let driver = attach::driver(ifname).unwrap_or_else(|| "unknown".into());
                anyhow::bail!(
                    "interface {ifname}: its driver ({driver}) cannot run XDP natively ({e:#}), \
                     and xdp_mode is native: use xdp_mode: auto or generic for it"
                )
            }
        }
    }

    /// Attaches to `ifname` unless already attached.
    pub fn attach(&mut self, ifname: &str) -> Result<()> {
        if self.attached.contains_key(ifname) {
            return Ok(());
        }
        let pin = self.loaded.pin_dir.clone();
        let mode = self.modes.get(ifname).copied().unwrap_or(self.default_mode);
        let modes = loader::xdp_modes(mode);
        let prog = self.loaded.program()?;
        let a = attach::attach(prog, ifname, modes, pin.as_deref())?;
        self.attached.insert(ifname.to_owned(), a);
        Ok(())
    }

    pub fn detach(&mut self, ifname: &str) {
        if let Some(a) = self.attached.remove(ifname) {
            a.detach();
        }
    }

    pub fn detach_all(&mut self) {
        let names: Vec<String> = self.attached.keys().cloned().collect();
        for n in names {
            self.detach(&n);
        }
    }

    /// Links pinned by an earlier run that this run did not take over.
    pub fn release_stale_links(&mut self, keep: &[&str]) {
        if let Some(dir) = self.loaded.pin_dir.clone() {
            for ifname in attach::pinned_links(&dir) {
                if !keep.contains(&ifname.as_str()) && !self.attached.contains_key(&ifname) {
                    attach::release_stale(&dir, &ifname);
                }
            }
        }
    }

    /// The verdict counters (with the derived `tx` and `flow_new`: the data path counts a
    /// forwarded packet only on its real) and the counters of `real_ids`.
    pub fn counters(&self, real_ids: &[u32]) -> Result<counters::Snapshot> {
        let live = self.programmer.live_ids();
        let mut s = counters::read(&self.loaded.maps, &live)?;
        let mut forwarded = self.programmer.retired_total();
        for c in s.reals.values() {
            forwarded.add(c);
        }
        let redirect = s.get(lb_common::stats::REDIRECT);
        if let Some(v) = s.verdicts.get_mut(lb_common::stats::TX as usize) {
            *v = forwarded.packets.saturating_sub(redirect);
        }
        if let Some(v) = s.verdicts.get_mut(lb_common::stats::INFO_FLOW_NEW as usize) {
            *v = forwarded.flows;
        }
        s.reals.retain(|id, _| real_ids.contains(id));
        for &id in real_ids {
            if let std::collections::hash_map::Entry::Vacant(e) = s.reals.entry(id) {
                e.insert(counters::real(&self.loaded.maps, id)?);
            }
        }
        Ok(s)
    }
}

/// Whether an attach failed because a program is attached already (EBUSY, EEXIST), which says
/// nothing about the driver.
fn attached_already(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) {
                return true;
            }
        }
        let text = err.to_string().to_lowercase();
        if text.contains("exists") || text.contains("busy") {
            return true;
        }
        cur = err.source();
    }
    false
}
