//! `lb-agent conns`: the connection table as `ipvsadm -Lnc` shows IPVS's, read from the maps
//! the XDP program uses. The whole table is read (both families), so the per-real counts are
//! exact; the listing is filtered and cut at a limit the output states. The table keeps no
//! timestamps (the LRU ages entries out by itself), so there is no age column.
//!
//! It runs on the IO runtime with its own handles on the maps (duplicated descriptors), so a
//! table of a million entries never holds up the node loop.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, IterableMap as _, Map, MapData};
use lb_common::{ip_of, FlowKey, FlowKey6, FlowValue, Real, IPPROTO_TCP};
use serde::{Deserialize, Serialize};

use super::maps::Maps;
use crate::config::host_port;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub vip: Option<IpAddr>,
    pub real: Option<IpAddr>,
    pub client: Option<IpAddr>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    pub proto: String,
    pub client: String,
    pub vip: String,
    pub real: String,
    /// False when the real's slot was given to another real since (the entry is stale and
    /// the next packet is balanced afresh).
    pub current: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Matching entries, at most `limit`.
    pub conns: Vec<Conn>,
    /// Entries that match the filter (may exceed what is listed).
    pub matched: u64,
    /// Entries read: the whole table of both families.
    pub scanned: u64,
    /// Entries per real over the whole table, current ones only.
    pub per_real: BTreeMap<String, u64>,
    /// Entries whose real's slot was reused.
    pub stale: u64,
}

pub(crate) type Table4 = HashMap<MapData, FlowKey, FlowValue>;
pub(crate) type Table6 = HashMap<MapData, FlowKey6, FlowValue>;

/// Duplicated descriptors of the IPv4 and IPv6 connection tables.
pub struct FlowTables {
    flows: OwnedFd,
    flows6: OwnedFd,
}

impl FlowTables {
    pub fn of(maps: &Maps) -> Result<FlowTables> {
        Ok(FlowTables {
            flows: dup(maps.flows.map()).context("LB_FLOWS")?,
            flows6: dup(maps.flows6.map()).context("LB_FLOWS6")?,
        })
    }

    /// Both tables, opened on copies of the descriptors.
    pub fn open(&self) -> Result<(Table4, Table6)> {
        let flows = Map::LruHashMap(MapData::from_fd(self.flows.try_clone()?)?).try_into()?;
        let flows6 = Map::LruHashMap(MapData::from_fd(self.flows6.try_clone()?)?).try_into()?;
        Ok((flows, flows6))
    }
}

/// A copy of a map's descriptor.
pub(crate) fn dup(m: &MapData) -> std::io::Result<OwnedFd> {
    m.fd().as_fd().try_clone_to_owned()
}

/// Duplicated descriptors of the maps a listing reads.
pub struct Handles {
    tables: FlowTables,
    reals: OwnedFd,
}

impl Handles {
    pub fn of(maps: &Maps) -> Result<Handles> {
        Ok(Handles {
            tables: FlowTables::of(maps)?,
            reals: dup(maps.reals.map()).context("LB_REALS")?,
        })
    }

    /// Entries in the IPv4 and IPv6 tables (keys only: one system call per entry).
    pub fn count(&self) -> Result<(u64, u64)> {
        let (flows, flows6) = self.tables.open()?;
        let n4 = flows.keys().filter(Result::is_ok).count() as u64;
        let n6 = flows6.keys().filter(Result::is_ok).count() as u64;
        Ok((n4, n6))
    }

    /// Entries per real id in both tables (up to `cap` entries read), for `status --flows`.
    pub fn per_real(&self, cap: usize) -> Result<std::collections::HashMap<u32, u64>> {
        let (flows, flows6) = self.tables.open()?;
        let mut out = std::collections::HashMap::new();
        let v4 = flows.iter().flatten().map(|(_, v)| v);
        let v6 = flows6.iter().flatten().map(|(_, v)| v);
        for v in v4.chain(v6).take(cap) {
            *out.entry(v.real_id).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// Reads the tables.
    pub fn list(self, filter: &Filter) -> Result<Listing> {
        let (flows, flows6) = self.tables.open()?;
        let reals: Array<MapData, Real> = Map::Array(MapData::from_fd(self.reals)?).try_into()?;
        let mut names: std::collections::HashMap<u32, Option<(IpAddr, String, u32)>> =
            std::collections::HashMap::new();
        let mut real_of = |id: u32| {
            names
                .entry(id)
                .or_insert_with(|| {
                    let r = reals.get(&id, 0).ok()?;
                    let ip = ip_of(&r.addr);
                    Some((ip, host_port(ip, u16::from_be(r.port_be)), r.gen))
                })
                .clone()
        };
        let mut out = Listing::default();
        let v4 = flows.iter().map(|e| {
            e.map(|(k, v)| {
                let client = SocketAddr::new(be4(k.src_be), u16::from_be(k.sport_be));
                let vip = SocketAddr::new(be4(k.dst_be), u16::from_be(k.dport_be));
                (client, vip, k.proto, v)
            })
        });
        let v6 = flows6.iter().map(|e| {
            e.map(|(k, v)| {
                let client = SocketAddr::new(ip_of(&k.src), u16::from_be(k.sport_be));
                let vip = SocketAddr::new(ip_of(&k.dst), u16::from_be(k.dport_be));
                (client, vip, k.proto, v)
            })
        });
        for entry in v4.chain(v6) {
            // An entry the LRU evicted between two reads is simply gone.
            let Ok((client, vip, proto, v)) = entry else {
                continue;
            };
            out.scanned += 1;
            let real = real_of(v.real_id);
            let current = real.as_ref().is_some_and(|r| r.2 == v.real_gen);
            let real_label = real
                .as_ref()
                .map_or_else(|| format!("#{}", v.real_id), |r| r.1.clone());
            if current {
                *out.per_real.entry(real_label.clone()).or_insert(0) += 1;
            } else {
                out.stale += 1;
            }
            let wanted = filter.vip.is_none_or(|a| a == vip.ip())
                && filter.client.is_none_or(|a| a == client.ip())
                && filter
                    .real
                    .is_none_or(|a| real.as_ref().is_some_and(|r| r.0 == a));
            if !wanted {
                continue;
            }
            out.matched += 1;
            if out.conns.len() < filter.limit {
                out.conns.push(Conn {
                    proto: if proto == u32::from(IPPROTO_TCP) {
                        "tcp".into()
                    } else {
                        "udp".into()
                    },
                    client: client.to_string(),
                    vip: vip.to_string(),
                    real: real_label,
                    current,
                });
            }
        }
        Ok(out)
    }
}

pub(crate) fn be4(be: u32) -> IpAddr {
    IpAddr::from(be.to_ne_bytes())
}
