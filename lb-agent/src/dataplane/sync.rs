//! Desired state -> map writes, keeping the data path consistent at every instant:
//! - a real's entry is written before any table names it, and cleared only after none does;
//! - a service's new Maglev table goes into its standby half (only the slots that differ),
//!   then one update of the service entry flips to it: never an empty or half-written table;
//! - ids are stable: a real keeps its id (and so its flows) across reloads and restarts; an id
//!   given to another real gets a new generation, so stale flow entries are not followed.

use std::{
    collections::{BTreeSet, HashMap},
    hash::{Hash, Hasher},
    net::IpAddr,
};

use anyhow::{anyhow, Context as _, Result};
use aya::maps::PerCpuValues;
use lb_common::{
    addr6_of, as_v4, filter_addr, filter_bit, ip_of, Counters, FragKey, Real, Service, ServiceKey,
    FILTER_WORDS, REAL_F_KEEP_FLOWS, REAL_NONE, SVC_F_FRAGMENTS,
};
use tracing::debug;

use super::{
    desired::{DesiredReal, DesiredService},
    maglev::{self, Backend},
    maps::Maps,
};

type RealKey = (u32, IpAddr, u16);

struct SvcState {
    id: u32,
    entry: Service,
    /// The keys (one per port) the entry is in LB_SERVICES under; empty while the service is
    /// withdrawn.
    published: Vec<ServiceKey>,
    /// Hash of what the active table was built from; equal => nothing to rebuild.
    table_sig: u64,
}

struct RealState {
    id: u32,
    entry: Real,
}

/// What one `apply` changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub services_added: usize,
    pub services_removed: usize,
    pub tables_flipped: usize,
    pub slots_written: usize,
    pub reals_written: usize,
    pub reals_removed: usize,
}

impl Report {
    pub fn is_noop(&self) -> bool {
        *self == Report::default()
    }
}

impl Programmer {
    /// The flow sync's view of what was written: every service's keys (a port each, withdrawn
    /// services included) and every real's id and generation.
    pub fn directory(&self, desired: &[DesiredService]) -> crate::flowsync::directory::Directory {
        let mut d = crate::flowsync::directory::Directory::default();
        for svc in desired {
            if let Some(s) = self.services.get(&svc.key) {
                for k in svc.keys() {
                    d.add_service(k, s.id);
                }
            }
        }
        for ((svc_id, addr, port), r) in &self.reals {
            d.add_real(
                *svc_id,
                std::net::SocketAddr::new(*addr, *port),
                r.id,
                r.entry.gen,
            );
        }
        d
    }
}

pub struct Programmer {
    stride: u32,
    services: HashMap<ServiceKey, SvcState>,
    reals: HashMap<RealKey, RealState>,
    free_svc: BTreeSet<u32>,
    free_real: BTreeSet<u32>,
    /// Last generation handed out per real id.
    gens: Vec<u32>,
    /// What LB_FILTER holds.
    filter: Vec<u64>,
    /// Counters of reals that left each service (so service totals never go backwards).
    retired: HashMap<ServiceKey, Counters>,
    /// Counters of every real that left, whatever its service (for the derived totals).
    retired_total: Counters,
    /// What LB_FRAG_SERVICES holds.
    frag: HashMap<FragKey, ServiceKey>,
}

fn nr_cpus() -> usize {
    aya::util::nr_cpus().map(|n| n.max(1)).unwrap_or(1)
}

fn ring_base(stride: u32, svc_id: u32, half: u32) -> u32 {
    (svc_id * 2 + half) * stride
}

/// Puts `entry` in LB_SERVICES under every key of `want` (one update each: the data path sees
/// the old entry or the new one, never none) and takes out the keys no longer wanted.
fn publish(
    maps: &mut Maps,
    published: &mut Vec<ServiceKey>,
    want: &[ServiceKey],
    entry: Service,
) -> Result<()> {
    for k in want {
        maps.services
            .insert(*k, entry, 0)
            .context("publishing a service")?;
    }
    let stale: Vec<ServiceKey> = published
        .iter()
        .filter(|k| !want.contains(k))
        .copied()
        .collect();
    unpublish(maps, &stale)?;
    *published = want.to_vec();
    Ok(())
}

/// Takes `keys` out of LB_SERVICES (traffic to them passes to the kernel).
fn unpublish(maps: &mut Maps, keys: &[ServiceKey]) -> Result<()> {
    for k in keys {
        match maps.services.remove(k) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e).context("withdrawing a service"),
        }
    }
    Ok(())
}

impl Programmer {
    /// Makes LB_FRAG_SERVICES name, for each VIP and protocol, the active service that steers
    /// its fragments (validation allows one).
    fn write_frag(&mut self, maps: &mut Maps, desired: &[DesiredService]) -> Result<()> {
        let want: HashMap<FragKey, ServiceKey> = desired
            .iter()
            .filter(|s| s.active && s.flags & SVC_F_FRAGMENTS != 0)
            // IPv4 only (validation refuses `fragments` on an IPv6 service).
            .filter_map(|s| {
                let fk = FragKey {
                    addr_be: as_v4(&s.key.addr)?,
                    proto: u32::from(s.key.proto),
                };
                Some((fk, s.key))
            })
            .collect();
        for (fk, sk) in &want {
            if self.frag.get(fk) != Some(sk) {
                maps.frag_services
                    .insert(fk, sk, 0)
                    .context("writing LB_FRAG_SERVICES")?;
            }
        }
        for fk in self.frag.keys().filter(|k| !want.contains_key(k)) {
            match maps.frag_services.remove(fk) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(e).context("removing from LB_FRAG_SERVICES"),
            }
        }
        self.frag = want;
        Ok(())
    }

    /// Reads back what a previous run left in (pinned) maps, so ids and tables carry over.
    pub fn recover(maps: &Maps, max_services: u32, max_reals: u32, stride: u32) -> Programmer {
        // A multi-port service is in LB_SERVICES once per port, all with its id: grouped by
        // id, under its lowest port (how `DesiredService::key` names it).
        let mut by_id: HashMap<u32, (Service, Vec<ServiceKey>)> = HashMap::new();
        for item in maps.services.iter() {
            let Ok((key, entry)) = item else { continue };
            if entry.id < max_services {
                by_id
                    .entry(entry.id)
                    .or_insert((entry, Vec::new()))
                    .1
                    .push(key);
            }
        }
        let mut services = HashMap::new();
        for (id, (entry, mut keys)) in by_id {
            keys.sort_by_key(ServiceKey::port);
            if let Some(primary) = keys.first().copied() {
                services.insert(
                    primary,
                    SvcState {
                        id,
                        entry,
                        published: keys,
                        table_sig: 0,
                    },
                );
            }
        }
        let frag = maps.frag_services.iter().flatten().collect();
        let mut reals = HashMap::new();
        let mut gens = vec![0u32; max_reals as usize];
        for id in 0..max_reals {
            let Ok(entry) = maps.reals.get(&id, 0) else {
                continue;
            };
            gens[id as usize] = entry.gen;
            let live = services.values().any(|s| s.id == entry.svc_id);
            if entry.gen != 0 && entry.addr != [0; 4] && live {
                let addr = ip_of(&entry.addr);
                reals.insert(
                    (entry.svc_id, addr, u16::from_be(entry.port_be)),
                    RealState { id, entry },
                );
            }
        }
        let filter = (0..FILTER_WORDS)
            .map(|i| maps.filter.get(&i, 0).unwrap_or(0))
            .collect();
        let used_svc: BTreeSet<u32> = services.values().map(|s| s.id).collect();
        let used_real: BTreeSet<u32> = reals.values().map(|r| r.id).collect();
        Programmer {
            stride,
            free_svc: (0..max_services)
                .filter(|i| !used_svc.contains(i))
                .collect(),
            free_real: (0..max_reals).filter(|i| !used_real.contains(i)).collect(),
            services,
            reals,
            gens,
            filter,
            frag,
            retired: HashMap::new(),
            retired_total: Counters::default(),
        }
    }

    /// Counters of reals that were removed from `svc` while this agent ran.
    pub fn retired(&self, svc: &ServiceKey) -> Counters {
        self.retired.get(svc).copied().unwrap_or_default()
    }

    /// Counters of every real that was removed while this agent ran.
    pub fn retired_total(&self) -> Counters {
        self.retired_total
    }

    /// Every real id in use.
    pub fn live_ids(&self) -> Vec<u32> {
        self.reals.values().map(|r| r.id).collect()
    }

    /// Writes the words of LB_FILTER that differ from `want`.
    fn write_filter(&mut self, maps: &mut Maps, want: &[u64]) -> Result<()> {
        for (i, (have, w)) in self.filter.iter_mut().zip(want).enumerate() {
            if have != w {
                maps.filter
                    .set(i as u32, *w, 0)
                    .context("writing LB_FILTER")?;
                *have = *w;
            }
        }
        Ok(())
    }

    pub fn service_id(&self, key: &ServiceKey) -> Option<u32> {
        self.services.get(key).map(|s| s.id)
    }

    /// Whether the maps hold this real as usable (recovered from a previous run).
    pub fn real_serving(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.service_id(svc)
            .and_then(|sid| self.reals.get(&(sid, addr, port)))
            .is_some_and(|r| r.entry.flags & REAL_F_KEEP_FLOWS != 0)
    }

    /// The layer-2 path of every real the maps hold as usable (recovered from a previous run).
    pub fn recovered_paths(&self) -> Vec<(IpAddr, super::desired::L2)> {
        self.reals
            .iter()
            .filter(|(_, r)| r.entry.flags & REAL_F_KEEP_FLOWS != 0 && r.entry.dst_mac != [0; 6])
            .map(|((_, addr, _), r)| {
                let l2 = super::desired::L2 {
                    dst_mac: r.entry.dst_mac,
                    src_mac: r.entry.src_mac,
                    ifindex: r.entry.ifindex,
                };
                (*addr, l2)
            })
            .collect()
    }

    pub fn real_id(&self, svc: &ServiceKey, addr: IpAddr, port: u16) -> Option<u32> {
        let sid = self.service_id(svc)?;
        self.reals.get(&(sid, addr, port)).map(|r| r.id)
    }

    /// Makes the maps hold `desired` (all services; absent ones are removed).
    pub fn apply(&mut self, maps: &mut Maps, desired: &[DesiredService]) -> Result<Report> {
        let mut report = Report::default();
        let mut wanted_reals: HashMap<RealKey, ()> = HashMap::new();

        // The filter: bits of the services that will be active. Bits that go away are cleared
        // first (before their services go), bits that appear are set last (after their
        // services exist), so a packet that passes the filter always finds its service.
        let mut bits = vec![0u64; FILTER_WORDS as usize];
        for svc in desired.iter().filter(|s| s.active) {
            // The service under each of its ports, and its address alone (the data path's
            // first check).
            let keys = svc.keys();
            let each = keys.iter().map(|k| (k.port_be, k.proto));
            for (port_be, proto) in each.chain([(0, 0)]) {
                let (w, b) = filter_bit(filter_addr(&svc.key.addr), port_be, proto);
                bits[w as usize] |= 1 << b;
            }
        }
        let keep: Vec<u64> = self.filter.iter().zip(&bits).map(|(a, b)| a & b).collect();
        self.write_filter(maps, &keep)?;

        for svc in desired {
            let sid = match self.services.get(&svc.key) {
                Some(s) => s.id,
                None => {
                    let id = self.free_svc.pop_first().ok_or_else(|| {
                        anyhow!("out of service slots (global_defs.max_services)")
                    })?;
                    self.services.insert(
                        svc.key,
                        SvcState {
                            id,
                            entry: Service {
                                id,
                                ring_base: u32::MAX,
                                ..Default::default()
                            },
                            published: Vec::new(),
                            table_sig: 0,
                        },
                    );
                    report.services_added += 1;
                    id
                }
            };

            // 1. Real entries first, so the table below never names an unwritten real.
            let mut table_reals: Vec<(Backend, u32)> = Vec::new();
            let mut sorry_id = None;
            for (r, is_sorry) in svc
                .reals
                .iter()
                .map(|r| (r, false))
                .chain(svc.sorry.iter().map(|r| (r, true)))
            {
                let rk = (sid, r.addr, r.port);
                wanted_reals.insert(rk, ());
                let id = self.write_real(maps, rk, r, svc.active, &mut report)?;
                if r.l2.is_none() {
                    continue;
                }
                if is_sorry {
                    sorry_id = Some(id);
                } else if r.weight > 0 {
                    table_reals.push((
                        Backend {
                            addr: r.addr,
                            port: r.port,
                            weight: r.weight,
                        },
                        id,
                    ));
                }
            }

            // 2. The table, into the standby half, then flip.
            self.write_table(maps, svc, sid, &table_reals, sorry_id, &mut report)?;
        }

        // 3. Services no longer wanted: remove the entry (traffic to them passes to the
        //    kernel), then their reals below.
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !desired.iter().any(|d| d.key == **k))
            .copied()
            .collect();
        for key in gone {
            if let Some(s) = self.services.remove(&key) {
                unpublish(maps, &s.published)?;
                self.free_svc.insert(s.id);
                report.services_removed += 1;
            }
        }
        self.write_frag(maps, desired)?;

        // 4. Reals no longer wanted: clear the entry (flows on it move), free the id.
        let gone: Vec<RealKey> = self
            .reals
            .keys()
            .filter(|k| !wanted_reals.contains_key(*k))
            .copied()
            .collect();
        for rk in gone {
            if let Some(r) = self.reals.remove(&rk) {
                if let Ok(c) = super::counters::real(maps, r.id) {
                    self.retired_total.add(&c);
                    let svc = self.services.iter().find(|(_, s)| s.id == rk.0);
                    if let Some((key, _)) = svc {
                        self.retired.entry(*key).or_default().add(&c);
                    }
                }
                let cleared = Real {
                    gen: r.entry.gen,
                    ..Default::default()
                };
                maps.reals
                    .set(r.id, cleared, 0)
                    .context("clearing a real")?;
                self.free_real.insert(r.id);
                report.reals_removed += 1;
            }
        }
        self.write_filter(maps, &bits)?;
        if !report.is_noop() {
            debug!(?report, "data path updated");
        }
        Ok(report)
    }

    fn write_real(
        &mut self,
        maps: &mut Maps,
        rk: RealKey,
        r: &DesiredReal,
        active: bool,
        report: &mut Report,
    ) -> Result<u32> {
        let (id, gen) = match self.reals.get(&rk) {
            Some(s) => (s.id, s.entry.gen),
            None => {
                let id = self
                    .free_real
                    .pop_first()
                    .ok_or_else(|| anyhow!("out of real server slots (global_defs.max_reals)"))?;
                let g = self.gens.get(id as usize).copied().unwrap_or(0);
                let gen = g.wrapping_add(1).max(1);
                if let Some(slot) = self.gens.get_mut(id as usize) {
                    *slot = gen;
                }
                // A reused id starts its counters from zero.
                let zeros = PerCpuValues::try_from(vec![Counters::default(); nr_cpus()])
                    .context("per-CPU zeros")?;
                maps.real_stats
                    .set(id, zeros, 0)
                    .context("zeroing a real's counters")?;
                (id, gen)
            }
        };
        let l2 = r.l2.unwrap_or(super::desired::L2 {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            ifindex: 0,
        });
        let entry = Real {
            dst_mac: l2.dst_mac,
            src_mac: l2.src_mac,
            ifindex: l2.ifindex,
            gen,
            // Flows stay only while this node serves the service: a withdrawn service's flows
            // must leave the connection-table fast path.
            flags: if r.keep_flows && r.l2.is_some() && active {
                REAL_F_KEEP_FLOWS
            } else {
                0
            },
            svc_id: rk.0,
            addr: addr6_of(rk.1),
            port_be: rk.2.to_be(),
            _pad: [0; 2],
        };
        let unchanged = self.reals.get(&rk).is_some_and(|s| s.entry == entry);
        if !unchanged {
            maps.reals.set(id, entry, 0).context("writing a real")?;
            report.reals_written += 1;
            self.reals.insert(rk, RealState { id, entry });
        }
        Ok(id)
    }

    fn write_table(
        &mut self,
        maps: &mut Maps,
        svc: &DesiredService,
        sid: u32,
        backends: &[(Backend, u32)],
        sorry_id: Option<u32>,
        report: &mut Report,
    ) -> Result<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        svc.table_size.hash(&mut h);
        for (b, id) in backends {
            (b, id).hash(&mut h);
        }
        sorry_id.hash(&mut h);
        let sig = h.finish();

        let stride = self.stride;
        let state = self
            .services
            .get_mut(&svc.key)
            .ok_or_else(|| anyhow!("service state vanished"))?;
        let size = svc.table_size.min(stride);
        let want_meta = Service {
            id: sid,
            ring_base: state.entry.ring_base,
            ring_size: size,
            flags: svc.flags,
            affinity_timeout_s: svc.affinity_timeout_s,
        };
        let live = state.entry.ring_base != u32::MAX;
        if !svc.active {
            if !state.published.is_empty() {
                unpublish(maps, &state.published)?;
                state.published.clear();
                report.services_removed += 1;
            }
            return Ok(());
        }
        let keys = svc.keys();
        if live && state.published == keys && state.table_sig == sig && state.entry == want_meta {
            return Ok(());
        }

        let table: Vec<u32> = {
            let list: Vec<Backend> = backends.iter().map(|(b, _)| *b).collect();
            match maglev::build(&list, size) {
                Some(t) => t.into_iter().map(|i| backends[i as usize].1).collect(),
                None => vec![sorry_id.unwrap_or(REAL_NONE); size as usize],
            }
        };

        // The active half already holds exactly this (restart, or a service coming back):
        // just (re)publish the entry.
        if live && maps.rings.equals(state.entry.ring_base as usize, &table) {
            if state.published != keys || state.entry != want_meta {
                publish(maps, &mut state.published, &keys, want_meta)?;
                state.entry = want_meta;
                report.tables_flipped += 1;
            }
            state.table_sig = sig;
            return Ok(());
        }

        let active_half = if live && state.entry.ring_base == ring_base(stride, sid, 1) {
            1
        } else {
            0
        };
        let standby = ring_base(stride, sid, 1 - active_half);
        let written = maps
            .rings
            .write_diff(standby as usize, &table)
            .ok_or_else(|| anyhow!("Maglev table outside LB_RINGS (capacity mismatch)"))?;
        let entry = Service {
            ring_base: standby,
            ..want_meta
        };
        publish(maps, &mut state.published, &keys, entry)?;
        state.entry = entry;
        state.table_sig = sig;
        report.tables_flipped += 1;
        report.slots_written += written;
        Ok(())
    }
}
