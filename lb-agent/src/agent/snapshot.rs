//! The core's answers to the control socket and the metrics endpoint.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use lb_common::{stats, Counters};

use super::Core;
use crate::{
    config::Scheduler,
    control::{
        snapshot::{InstanceSnap, RealSnap, ServiceSnap},
        Request, Response, Snapshot,
    },
    vrrp::state::DropReason,
};

/// Upper bounds (seconds) of the health-check latency histogram.
pub const LATENCY_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, f64::INFINITY];

/// Most connection-table entries scanned for `status --flows`.
const FLOW_SCAN_CAP: usize = 200_000;

/// Per-real rates from consecutive samples.
#[derive(Default)]
pub struct Rates {
    last: HashMap<u32, (Counters, Instant)>,
    rate: HashMap<u32, (f64, f64)>,
}

impl Rates {
    pub fn sample(&mut self, id: u32, c: Counters, now: Instant) {
        if let Some((prev, at)) = self.last.get(&id) {
            let dt = now.duration_since(*at).as_secs_f64();
            if dt > 0.2 {
                let pps = c.packets.saturating_sub(prev.packets) as f64 / dt;
                let bps = c.bytes.saturating_sub(prev.bytes) as f64 / dt;
                self.rate.insert(id, (pps, bps));
                self.last.insert(id, (c, now));
            }
        } else {
            self.last.insert(id, (c, now));
        }
    }

    pub fn get(&self, id: u32) -> (f64, f64) {
        self.rate.get(&id).copied().unwrap_or((0.0, 0.0))
    }
}

/// Cumulative histogram of check latencies.
#[derive(Default)]
pub struct Latency {
    counts: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    n: u64,
}

impl Latency {
    pub fn observe(&mut self, secs: f64) {
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.n += 1;
    }
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Core {
    pub(super) async fn on_control(&mut self, req: Request) -> Response {
        match req {
            Request::Status { flows } => Response::Status(Box::new(self.snapshot(flows))),
            Request::Explain { client, vip, proto } => {
                let number = match proto.as_str() {
                    "tcp" => lb_common::IPPROTO_TCP,
                    "udp" => lb_common::IPPROTO_UDP,
                    other => {
                        return Response::Error {
                            message: format!("protocol {other:?}: tcp or udp"),
                        }
                    }
                };
                Response::Explain(crate::dataplane::explain::explain(
                    &self.dp.loaded.maps,
                    client,
                    vip,
                    number,
                ))
            }
            Request::Reload => match self.reload().await {
                Ok(()) => Response::Reloaded {
                    message: "configuration reloaded".into(),
                },
                Err(e) => Response::Error {
                    message: format!("reload failed, the running configuration stays: {e:#}"),
                },
            },
        }
    }

    /// Samples every real's counters (for rates); called on each tick.
    pub(super) fn sample_rates(&mut self) {
        let now = Instant::now();
        for s in &self.services {
            let key = s.cfg.key();
            for r in &s.reals {
                if let Some(id) = self.dp.programmer.real_id(&key, r.cfg.addr, r.cfg.port) {
                    if let Ok(c) = crate::dataplane::counters::real(&self.dp.loaded.maps, id) {
                        self.rates.sample(id, c, now);
                    }
                }
            }
        }
    }

    /// Connection-table entries per real id (up to FLOW_SCAN_CAP entries).
    fn active_flows(&self) -> HashMap<u32, u64> {
        let mut out = HashMap::new();
        for (_, v) in self
            .dp
            .loaded
            .maps
            .flows
            .iter()
            .take(FLOW_SCAN_CAP)
            .flatten()
        {
            *out.entry(v.real_id).or_insert(0) += 1;
        }
        out
    }

    pub fn snapshot(&self, count_flows: bool) -> Snapshot {
        let counters = self.dp.counters(&[]).unwrap_or_default();
        let verdicts = (0..stats::COUNT)
            .map(|i| (stats::NAMES[i as usize].to_owned(), counters.get(i)))
            .collect();
        let flows = if count_flows {
            Some(self.active_flows())
        } else {
            None
        };
        let mut services = Vec::new();
        for s in &self.services {
            let key = s.cfg.key();
            let mut total = self.dp.programmer.retired(&key);
            let (mut pps, mut bps) = (0.0, 0.0);
            let mut reals = Vec::new();
            let sorry = s.cfg.sorry.map(|(a, p)| (a, p, true));
            for (addr, port, weight, rt) in s
                .reals
                .iter()
                .map(|r| (r.cfg.addr, r.cfg.port, r.cfg.weight, Some(r)))
                .chain(sorry.map(|(a, p, _)| (a, p, 0, None)))
            {
                let id = self.dp.programmer.real_id(&key, addr, port);
                let c = id
                    .and_then(|id| crate::dataplane::counters::real(&self.dp.loaded.maps, id).ok())
                    .unwrap_or_default();
                total.add(&c);
                let (rp, rb) = id.map_or((0.0, 0.0), |id| self.rates.get(id));
                pps += rp;
                bps += rb;
                let d = rt.map(|r| r.desired());
                reals.push(RealSnap {
                    real: format!("{addr}:{port}"),
                    weight,
                    effective_weight: d.as_ref().map_or(0, |d| d.weight),
                    health: rt.map_or("sorry".into(), |r| r.health.label().to_owned()),
                    last_check: rt.map(|r| r.last_result.clone()).unwrap_or_default(),
                    check_latency_ms: rt
                        .and_then(|r| r.last_latency)
                        .map(|d| d.as_secs_f64() * 1000.0),
                    transitions: rt.map_or(0, |r| r.transitions),
                    checks_ok: rt.map_or(0, |r| r.checks_ok),
                    checks_failed: rt.map_or(0, |r| r.checks_failed),
                    mac: rt
                        .and_then(|r| r.l2)
                        .or(if rt.is_none() { s.sorry_l2 } else { None })
                        .map(|l| mac_str(l.dst_mac)),
                    arp: self.resolver.arp(addr).label().to_owned(),
                    packets: c.packets,
                    bytes: c.bytes,
                    flows: c.flows,
                    active_flows: flows
                        .as_ref()
                        .map(|f| id.and_then(|id| f.get(&id).copied()).unwrap_or(0)),
                    pps: rp,
                    bps: rb,
                    sorry: rt.is_none(),
                });
            }
            services.push(ServiceSnap {
                service: s.cfg.label(),
                interface: s.cfg.interface.clone(),
                scheduler: match s.cfg.scheduler {
                    Scheduler::Maglev => "maglev".into(),
                    Scheduler::SourceHash => "source_hash".into(),
                },
                active: s.active,
                quorum_up: s.quorum_up,
                packets: total.packets,
                bytes: total.bytes,
                flows: total.flows,
                pps,
                bps,
                reals,
            });
        }
        let instances = self
            .vrrp
            .iter()
            .map(|i| {
                let st = i.sm.stats();
                InstanceSnap {
                    name: i.cfg.name.clone(),
                    interface: i.cfg.interface.clone(),
                    vrid: i.cfg.vrid,
                    version: if i.cfg.version == crate::config::VrrpVersion::V2 {
                        2
                    } else {
                        3
                    },
                    state: i.sm.state().label().to_owned(),
                    priority: i.sm.priority(),
                    base_priority: i.cfg.priority,
                    master: i.sm.master_addr().map(|a| {
                        if a == i.src {
                            format!("{a} (self)")
                        } else {
                            a.to_string()
                        }
                    }),
                    master_priority: i.sm.master_priority(),
                    split_brains: i.sm.split_brain_count(),
                    transitions: i.sm.transitions(),
                    adverts_rx: st.adverts_rx,
                    adverts_tx: st.adverts_tx,
                    adverts_tx_errors: i.adverts_tx_errors,
                    dropped: DropReason::ALL
                        .iter()
                        .map(|r| (r.label().to_owned(), st.dropped(*r)))
                        .collect(),
                    vips: i
                        .cfg
                        .vips
                        .iter()
                        .map(|v| format!("{}/{}", v.addr, v.prefix))
                        .collect(),
                    holds_vips: i.holds,
                }
            })
            .collect();
        let mut vrrp_invalid: BTreeMap<String, u64> = self
            .vrrp_rx_invalid
            .iter()
            .map(|((ifname, reason), n)| (format!("{ifname}/{reason}"), *n))
            .collect();
        for (ifname, sock) in &self.vrrp_socks {
            let drops = sock.kernel_drops();
            if drops > 0 {
                vrrp_invalid.insert(format!("{ifname}/socket_overflow"), drops);
            }
        }
        Snapshot {
            router_id: self.cfg.router_id.clone(),
            config: self.cfg_path.display().to_string(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            instances,
            services,
            verdicts,
            attached: self.dp.attached().map(str::to_owned).collect(),
            vrrp_invalid,
            check_latency_buckets: LATENCY_BUCKETS
                .iter()
                .copied()
                .zip(self.latency.counts.iter().copied())
                .filter(|(le, _)| le.is_finite())
                .collect(),
            check_latency_sum_s: self.latency.sum,
            check_latency_count: self.latency.n,
        }
    }
}
