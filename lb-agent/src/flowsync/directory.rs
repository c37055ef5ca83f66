//! Between flow-sync records (which name reals by address and port) and this node's maps
//! (which name them by id and generation). The agent hands the sync a new [`Directory`] after
//! each data-path change (from what it wrote, withdrawn services included: a backup maps its
//! peers' flows to the ids its reals will have when it takes over). Also writes received
//! entries into the connection table and reads it back for the bulk sync and refreshes.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    os::fd::OwnedFd,
};

use anyhow::{Context as _, Result};
use lb_common::{
    addr6_of, ip_of, FlowEvent4, FlowEvent6, FlowKey, FlowKey6, FlowSlot, FlowValue, ServiceKey,
    PORT_ANY,
};

use super::wire::{Record, AGE_UNKNOWN};
use crate::dataplane::{
    conns::{be4, dup, FlowTables, Table4, Table6},
    maps::Maps,
};

/// Ages above this (µs) are reported as unknown.
const MAX_AGE_US: u64 = 60_000_000;

/// Duplicated descriptors of the maps the flow sync reads and writes.
pub struct Handles {
    tables: FlowTables,
    pub events: OwnedFd,
    pub heads: OwnedFd,
}

impl Handles {
    pub fn of(maps: &Maps) -> Result<Handles> {
        Ok(Handles {
            tables: FlowTables::of(maps)?,
            events: dup(&maps.flow_events).context("LB_FLOW_EVENTS")?,
            heads: dup(&maps.flow_heads).context("LB_FLOW_HEADS")?,
        })
    }

    pub fn tables(&self) -> Result<Tables> {
        let (v4, v6) = self.tables.open()?;
        Ok(Tables { v4, v6 })
    }
}

/// The connection tables, on their own descriptors.
pub struct Tables {
    pub v4: Table4,
    pub v6: Table6,
}

/// A new entry the data path published (`LB_FLOW_EVENTS`, read by [`super::queue`]).
#[derive(Clone, Copy, Debug)]
pub enum Published {
    V4(FlowEvent4),
    V6(FlowEvent6),
}

impl Published {
    /// The record in a queue slot; its length says its family (None: it is neither).
    pub fn of(slot: &FlowSlot) -> Option<Published> {
        let p = slot.event.as_ptr();
        // SAFETY: both are plain integers (any bit pattern is valid) that fit in `event`
        // (checked in lb-common), which is 8-aligned.
        unsafe {
            match slot.len as usize {
                n if n == size_of::<FlowEvent4>() => {
                    Some(Published::V4(p.cast::<FlowEvent4>().read()))
                }
                n if n == size_of::<FlowEvent6>() => {
                    Some(Published::V6(p.cast::<FlowEvent6>().read()))
                }
                _ => None,
            }
        }
    }
}

/// (client, VIP) of an IPv4 entry.
fn endpoints4(k: &FlowKey) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::new(be4(k.src_be), u16::from_be(k.sport_be)),
        SocketAddr::new(be4(k.dst_be), u16::from_be(k.dport_be)),
    )
}

/// (client, VIP) of an IPv6 entry.
fn endpoints6(k: &FlowKey6) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::new(ip_of(&k.src), u16::from_be(k.sport_be)),
        SocketAddr::new(ip_of(&k.dst), u16::from_be(k.dport_be)),
    )
}

/// Why a record could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotApplied {
    /// No service for the record's VIP, port and protocol here.
    UnknownService,
    /// The service has no such real here (or it takes no flows).
    UnknownReal,
    /// The kernel refused the insert.
    TableError,
}

impl NotApplied {
    pub fn label(self) -> &'static str {
        match self {
            NotApplied::UnknownService => "unknown_service",
            NotApplied::UnknownReal => "unknown_real",
            NotApplied::TableError => "table_error",
        }
    }
}

/// Services and reals of this node, by what the records carry.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    services: HashMap<ServiceKey, u32>,
    /// (service id, address, port) -> (real id, generation).
    by_addr: HashMap<(u32, IpAddr, u16), (u32, u32)>,
    /// real id -> (address and port, generation).
    by_id: HashMap<u32, (SocketAddr, u32)>,
}

impl Directory {
    /// A service's key (one per port) and its id.
    pub fn add_service(&mut self, key: ServiceKey, id: u32) {
        self.services.insert(key, id);
    }

    /// A real of service `svc_id` with its id and generation.
    pub fn add_real(&mut self, svc_id: u32, real: SocketAddr, id: u32, gen: u32) {
        let ip = real.ip().to_canonical();
        self.by_addr.insert((svc_id, ip, real.port()), (id, gen));
        self.by_id
            .insert(id, (SocketAddr::new(ip, real.port()), gen));
    }

    /// The record for a new flow the data path published, if its real is still the one that
    /// id names.
    pub fn record(&self, p: &Published, now_ns: u64) -> Option<Record> {
        let (created_ns, proto, (client, vip), value) = match p {
            Published::V4(e) => (e.created_ns, e.key.proto, endpoints4(&e.key), e.value),
            Published::V6(e) => (e.created_ns, e.key.proto, endpoints6(&e.key), e.value),
        };
        let age = now_ns.saturating_sub(created_ns) / 1000;
        // An entry older than this was left in the ring by an earlier run: its age says
        // nothing about the sync.
        let age_us = if age > MAX_AGE_US {
            AGE_UNKNOWN
        } else {
            age as u32
        };
        let r = self.entry_record(proto, client, vip, &value)?;
        Some(Record { age_us, ..r })
    }

    /// The entry this node's table should hold for a record.
    pub fn entry(&self, r: &Record) -> Result<FlowValue, NotApplied> {
        let vip = addr6_of(r.vip.ip());
        let exact = ServiceKey::of(vip, r.vip.port().to_be(), r.proto);
        let svc = self
            .services
            .get(&exact)
            .or_else(|| self.services.get(&ServiceKey::of(vip, PORT_ANY, r.proto)))
            .ok_or(NotApplied::UnknownService)?;
        let (real_id, real_gen) = *self
            .by_addr
            .get(&(*svc, r.real.ip().to_canonical(), r.real.port()))
            .ok_or(NotApplied::UnknownReal)?;
        Ok(FlowValue { real_id, real_gen })
    }

    /// The record for a connection-table entry (bulk sync, refresh), if its real is current.
    pub fn entry_record(
        &self,
        proto: u32,
        client: SocketAddr,
        vip: SocketAddr,
        v: &FlowValue,
    ) -> Option<Record> {
        let (real, gen) = *self.by_id.get(&v.real_id)?;
        (gen == v.real_gen).then_some(Record {
            proto: proto as u8,
            client,
            vip,
            real,
            age_us: AGE_UNKNOWN,
        })
    }
}

impl Tables {
    /// Writes a record's entry (replacing one the table has for the flow).
    pub fn apply(&mut self, d: &Directory, r: &Record) -> Result<(), NotApplied> {
        let value = d.entry(r)?;
        let done = match (r.client.ip(), r.vip.ip()) {
            (IpAddr::V4(c), IpAddr::V4(v)) => {
                let key = FlowKey {
                    src_be: u32::from_ne_bytes(c.octets()),
                    dst_be: u32::from_ne_bytes(v.octets()),
                    sport_be: r.client.port().to_be(),
                    dport_be: r.vip.port().to_be(),
                    proto: u32::from(r.proto),
                };
                self.v4.insert(key, value, 0)
            }
            (c, v) => {
                let key = FlowKey6 {
                    src: addr6_of(c),
                    dst: addr6_of(v),
                    sport_be: r.client.port().to_be(),
                    dport_be: r.vip.port().to_be(),
                    proto: u32::from(r.proto),
                };
                self.v6.insert(key, value, 0)
            }
        };
        done.map_err(|_| NotApplied::TableError)
    }

    /// Every entry of both tables whose real is current, as records (read as they are
    /// consumed: a table of a million entries is never held in memory).
    pub fn records<'a>(&'a self, d: &'a Directory) -> impl Iterator<Item = Record> + 'a {
        let v4 = self.v4.iter().flatten().filter_map(|(k, v)| {
            let (client, vip) = endpoints4(&k);
            d.entry_record(k.proto, client, vip, &v)
        });
        let v6 = self.v6.iter().flatten().filter_map(|(k, v)| {
            let (client, vip) = endpoints6(&k);
            d.entry_record(k.proto, client, vip, &v)
        });
        v4.chain(v6)
    }
}
