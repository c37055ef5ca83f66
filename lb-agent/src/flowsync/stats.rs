//! What the flow sync counts, shared between its tasks and the status snapshot.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::control::snapshot::{BulkSnap, FlowSyncSnap, SyncPeerSnap};

/// Lag samples kept for the percentiles.
const LAG_WINDOW: usize = 65_536;

#[derive(Debug, Default)]
struct PeerStats {
    last_heard: Option<Instant>,
    records: u64,
}

#[derive(Debug, Default)]
pub struct Bulk {
    pub state: &'static str,
    pub peer: Option<IpAddr>,
    pub records: u64,
    pub applied: u64,
    pub took: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub records_sent: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub send_errors: u64,
    pub refreshed: u64,
    pub records_received: u64,
    pub records_applied: u64,
    pub dropped: BTreeMap<&'static str, u64>,
    pub bulk_served: u64,
    /// New flows overwritten in the data path's queues before they were read.
    pub lost: u64,
    pub bulk: Bulk,
    peers: HashMap<IpAddr, PeerStats>,
    lag_us: VecDeque<u64>,
}

impl Counts {
    pub fn drop(&mut self, reason: &'static str, n: u64) {
        *self.dropped.entry(reason).or_insert(0) += n;
    }

    pub fn heard(&mut self, peer: IpAddr, now: Instant, records: u64) {
        let p = self.peers.entry(peer).or_default();
        p.last_heard = Some(now);
        p.records += records;
    }

    pub fn lag(&mut self, us: u64) {
        if self.lag_us.len() == LAG_WINDOW {
            self.lag_us.pop_front();
        }
        self.lag_us.push_back(us);
    }
}

/// The counters behind a lock: each task takes it briefly, once per batch.
#[derive(Debug, Default)]
pub struct Stats(Mutex<Counts>);

impl Stats {
    pub fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    pub fn snapshot(
        &self,
        peers: &[IpAddr],
        port: u16,
        authenticated: bool,
        holding: bool,
        publish_failed: u64,
    ) -> FlowSyncSnap {
        let now = Instant::now();
        self.with(|c| {
            let mut lags: Vec<u64> = c.lag_us.iter().copied().collect();
            lags.sort_unstable();
            let pct = |p: f64| -> Option<f64> {
                let last = lags.len().checked_sub(1)?;
                let i = ((last as f64) * p).round() as usize;
                Some(lags[i.min(last)] as f64 / 1000.0)
            };
            FlowSyncSnap {
                port,
                authenticated,
                peers: peers
                    .iter()
                    .map(|a| {
                        let p = c.peers.get(a);
                        SyncPeerSnap {
                            addr: a.to_string(),
                            last_heard_s: p
                                .and_then(|p| p.last_heard)
                                .map(|t| now.duration_since(t).as_secs_f64()),
                            records_received: p.map_or(0, |p| p.records),
                        }
                    })
                    .collect(),
                records_sent: c.records_sent,
                datagrams_sent: c.datagrams_sent,
                bytes_sent: c.bytes_sent,
                send_errors: c.send_errors,
                refreshed: c.refreshed,
                records_received: c.records_received,
                records_applied: c.records_applied,
                dropped: c
                    .dropped
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect(),
                publish_failed: publish_failed + c.lost,
                lag_samples: lags.len() as u64,
                lag_p50_ms: pct(0.5),
                lag_p99_ms: pct(0.99),
                lag_max_ms: pct(1.0),
                bulk: BulkSnap {
                    state: if c.bulk.state.is_empty() {
                        "running".into()
                    } else {
                        c.bulk.state.into()
                    },
                    peer: c.bulk.peer.map(|p| p.to_string()),
                    records: c.bulk.records,
                    applied: c.bulk.applied,
                    took_ms: c.bulk.took.map(|d| d.as_secs_f64() * 1000.0),
                    holding,
                },
                bulk_served: c.bulk_served,
            }
        })
    }
}
