//! A consistent picture of the running agent, taken in the node loop on request: the node's
//! views, the data path's counters and the IO side's own counts. What `lb-agent status`
//! prints and the Prometheus endpoint exports.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use lb_common::{stats, Counters};

use crate::{
    config::Scheduler,
    control::{
        snapshot::{InstanceSnap, RealSnap, ServiceSnap, XdpSnap},
        Snapshot,
    },
    dataplane::Dataplane,
    node::Node,
    vrrp::state::DropReason,
};

/// Upper bounds (seconds) of the health-check latency histogram.
pub const LATENCY_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, f64::INFINITY];

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

    /// Samples every real's counters.
    pub fn sample_all(&mut self, node: &Node, dp: &Dataplane, now: Instant) {
        for s in node.services() {
            let key = s.cfg.key();
            for r in &s.reals {
                if let Some(id) = dp.programmer.real_id(&key, r.cfg.addr, r.cfg.port) {
                    if let Ok(c) = crate::dataplane::counters::real(&dp.loaded.maps, id) {
                        self.sample(id, c, now);
                    }
                }
            }
        }
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

/// What only the IO side knows.
pub struct IoStats<'a> {
    pub config: String,
    pub started: Instant,
    pub rates: &'a Rates,
    pub latency: &'a Latency,
    /// Adverts that could not be sent, by instance.
    pub tx_errors: &'a HashMap<String, u64>,
    /// Datagrams the kernel dropped before we read them, by interface.
    pub socket_drops: BTreeMap<String, u64>,
    pub last_reload: Option<crate::control::snapshot::ReloadSnap>,
    pub conntrack: Vec<crate::control::snapshot::TableFill>,
    /// Scale-out mode: what BIRD was last told.
    pub bird: Option<super::bird::BirdState>,
    pub flow_sync: Option<crate::control::snapshot::FlowSyncSnap>,
}

fn bgp(node: &Node, io: &IoStats<'_>) -> Option<crate::control::snapshot::BgpSnap> {
    use crate::control::snapshot::{BgpSnap, VipSnap};
    let cfg = node.config().bgp.as_ref()?;
    let bird = io.bird.clone().unwrap_or_default();
    Some(BgpSnap {
        vips: node
            .announcements()
            .iter()
            .map(|v| VipSnap {
                vip: v.vip.to_string(),
                announced: v.announced,
                why: v.why.clone(),
            })
            .collect(),
        routes_file: cfg.routes_file.display().to_string(),
        bird_applied: bird
            .applied
            .map(|l| l.iter().map(ToString::to_string).collect()),
        bird_error: bird.error,
        bird_configures: bird.configures,
        bird_failures: bird.failures,
    })
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The picture; `flows` (connection-table entries per real id, counted off the node loop
/// for `status --flows`) fills each real's `active_flows`.
pub fn snapshot(
    node: &Node,
    dp: &Dataplane,
    io: &IoStats<'_>,
    flows: Option<&HashMap<u32, u64>>,
) -> Snapshot {
    let counters = dp.counters(&[]).unwrap_or_default();
    let counter = |i: u32| (stats::NAMES[i as usize].to_owned(), counters.get(i));
    let verdicts = (0..stats::COUNT)
        .filter(|i| stats::is_verdict(*i))
        .map(counter)
        .collect();
    let info = (0..stats::COUNT)
        .filter(|i| !stats::is_verdict(*i))
        .map(counter)
        .collect();
    let now_unix = super::unix_now();
    let mut services = Vec::new();
    for s in node.services() {
        let key = s.cfg.key();
        let mut total = dp.programmer.retired(&key);
        let (mut pps, mut bps) = (0.0, 0.0);
        let mut reals = Vec::new();
        let sorry = s.cfg.sorry.map(|(a, p)| (a, p, None, 1));
        let listed = s
            .reals
            .iter()
            .map(|r| (r.cfg.addr, r.cfg.port, Some(r), r.cfg.weight))
            .chain(sorry);
        for (addr, port, rt, weight) in listed {
            let id = dp.programmer.real_id(&key, addr, port);
            let c = id
                .and_then(|id| crate::dataplane::counters::real(&dp.loaded.maps, id).ok())
                .unwrap_or_default();
            total.add(&c);
            let (rp, rb) = id.map_or((0.0, 0.0), |id| io.rates.get(id));
            pps += rp;
            bps += rb;
            let d = rt.map(|r| r.desired());
            reals.push(RealSnap {
                real: crate::config::host_port(addr, port),
                weight,
                effective_weight: d.as_ref().map_or(0, |d| d.weight),
                health: rt.map_or("sorry".into(), |r| r.health_label().to_owned()),
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
                arp: node.arp(addr).label().to_owned(),
                packets: c.packets,
                bytes: c.bytes,
                flows: c.flows,
                active_flows: flows.map(|f| id.and_then(|id| f.get(&id).copied()).unwrap_or(0)),
                pps: rp,
                bps: rb,
                sorry: rt.is_none(),
                override_weight: rt.and_then(|r| r.operator).map(|o| o.weight),
                override_age_s: rt
                    .and_then(|r| r.operator)
                    .map(|o| now_unix.saturating_sub(o.since_unix)),
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
            maglev_fingerprint: format!(
                "{:016x}",
                crate::dataplane::maglev::fingerprint(&s.desired())
            ),
            reals,
        });
    }
    let instances = node
        .instances()
        .iter()
        .map(|i| {
            let st = i.sm.stats();
            InstanceSnap {
                name: i.cfg.name.clone(),
                interface: i.cfg.interface.clone(),
                vrid: i.cfg.vrid,
                version: i.cfg.version.number(),
                state: i.sm.state().label().to_owned(),
                priority: i.sm.priority(),
                base_priority: i.cfg.priority,
                master: i.sm.master_addr().map(|a| {
                    if a == i.iface.src {
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
                adverts_tx_errors: io.tx_errors.get(&i.cfg.name).copied().unwrap_or(0),
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
    let mut vrrp_invalid: BTreeMap<String, u64> = node
        .vrrp_invalid()
        .iter()
        .map(|((ifname, reason), n)| (format!("{ifname}/{reason}"), *n))
        .collect();
    for (ifname, drops) in &io.socket_drops {
        if *drops > 0 {
            vrrp_invalid.insert(format!("{ifname}/socket_overflow"), *drops);
        }
    }
    Snapshot {
        router_id: node.config().router_id.clone(),
        config: io.config.clone(),
        uptime_s: io.started.elapsed().as_secs_f64(),
        instances,
        services,
        verdicts,
        info,
        last_reload: io.last_reload.clone(),
        conntrack: io.conntrack.clone(),
        attached: dp.attached().map(str::to_owned).collect(),
        xdp: {
            let modes: BTreeMap<&str, &str> = dp.attached_modes().collect();
            let mut ifaces: Vec<String> = node
                .services()
                .iter()
                .map(|s| s.cfg.interface.clone())
                .collect();
            ifaces.sort();
            ifaces.dedup();
            ifaces
                .into_iter()
                .map(|i| {
                    let attached = modes.get(i.as_str()).copied();
                    let configured = match node.config().xdp_mode_of(&i) {
                        crate::config::XdpMode::Auto => "auto",
                        crate::config::XdpMode::Native => "native",
                        crate::config::XdpMode::Generic => "generic",
                    };
                    XdpSnap {
                        attached: attached.is_some(),
                        mode: attached.unwrap_or(configured).to_owned(),
                        interface: i,
                    }
                })
                .collect()
        },
        bgp: bgp(node, io),
        flow_sync: io.flow_sync.clone(),
        vrrp_invalid,
        check_latency_buckets: LATENCY_BUCKETS
            .iter()
            .copied()
            .zip(io.latency.counts.iter().copied())
            .filter(|(le, _)| le.is_finite())
            .collect(),
        check_latency_sum_s: io.latency.sum,
        check_latency_count: io.latency.n,
    }
}
