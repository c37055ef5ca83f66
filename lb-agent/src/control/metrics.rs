//! Prometheus exposition (`global_defs.metrics_listen`): the snapshot's figures encoded by
//! `prometheus-client` (OpenMetrics text, which Prometheus scrapes) and served by hyper:
//! GET /metrics (or /).
//!
//! Every figure already lives in the agent (the data path's per-CPU counters, the node's
//! state), so nothing is registered and updated as it happens: each scrape takes a snapshot
//! and a collector encodes it, families in a fixed order.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tracing::{debug, info};

use super::{server::Call, Request, Response, Snapshot};

/// The text exposition's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label values as the text format needs them (prometheus-client writes them as given).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Clone, Copy, Debug)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(u64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: a name ending in `_total` is a counter (the encoder writes the suffix),
/// anything else a gauge.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels, Value)>,
}

#[derive(Debug, Default)]
struct Histogram {
    name: &'static str,
    help: &'static str,
    sum: f64,
    count: u64,
    /// (upper bound, observations in this bucket alone); the last bound is `f64::MAX` (+Inf).
    buckets: Vec<(f64, u64)>,
}

#[derive(Debug, Default)]
struct Exposition {
    families: Vec<Family>,
    histograms: Vec<Histogram>,
}

impl Exposition {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        samples: impl IntoIterator<Item = (Labels, Value)>,
    ) {
        self.families.push(Family {
            name,
            help,
            samples: samples.into_iter().collect(),
        });
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        for f in &self.families {
            let (name, kind) = match f.name.strip_suffix("_total") {
                Some(base) => (base, MetricType::Counter),
                None => (f.name, MetricType::Gauge),
            };
            let mut family = encoder.encode_descriptor(name, f.help, None, kind)?;
            match f.samples.as_slice() {
                // A lone sample without labels: `name value`, not `name{} value`.
                [(labels, v)] if labels.is_empty() => encode_value(kind, *v, family)?,
                samples => {
                    for (labels, v) in samples {
                        encode_value(kind, *v, family.encode_family(labels)?)?;
                    }
                }
            }
        }
        for h in &self.histograms {
            let mut metric =
                encoder.encode_descriptor(h.name, h.help, None, MetricType::Histogram)?;
            metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum, h.count, &h.buckets, None,
            )?;
        }
        Ok(())
    }
}

fn encode_value(
    kind: MetricType,
    v: Value,
    metric: prometheus_client::encoding::MetricEncoder<'_>,
) -> std::fmt::Result {
    match (kind, v) {
        (MetricType::Counter, Value::Int(n)) => ConstCounter::new(n).encode(metric),
        (MetricType::Counter, Value::Float(x)) => ConstCounter::new(x).encode(metric),
        (_, Value::Int(n)) => ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(metric),
        (_, Value::Float(x)) => ConstGauge::new(x).encode(metric),
    }
}

/// The snapshot in the text exposition.
pub fn render(s: &Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition(s)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

fn one(labels: Labels, v: impl Into<Value>) -> (Labels, Value) {
    (labels, v.into())
}

fn exposition(s: &Snapshot) -> Exposition {
    let mut e = Exposition::default();
    e.family(
        "lb_up",
        "The agent is running.",
        [one(vec![("router_id", esc(&s.router_id))], 1u64)],
    );
    e.family(
        "lb_xdp_packets_total",
        "Frames by data-path verdict: each frame counts once, so a sum is the frames seen.",
        s.verdicts
            .iter()
            .map(|(k, v)| one(vec![("verdict", esc(k))], *v)),
    );
    e.family(
        "lb_xdp_info_total",
        "Data-path informational counters (new flows, affinity hits, ICMP errors steered, ...); \
         not a partition of the frames.",
        s.info
            .iter()
            .map(|(k, v)| one(vec![("counter", esc(k))], *v)),
    );
    e.family(
        "lb_conntrack_entries",
        "Connection-table entries, counted every minute.",
        s.conntrack
            .iter()
            .map(|t| one(vec![("family", esc(&t.family))], t.entries)),
    );
    e.family(
        "lb_conntrack_capacity",
        "Connection-table size (entries).",
        s.conntrack
            .iter()
            .map(|t| one(vec![("family", esc(&t.family))], t.capacity)),
    );
    if let Some(r) = &s.last_reload {
        e.family(
            "lb_reload_success",
            "Whether the last reload was applied (1) or rejected (0).",
            [one(vec![], r.ok)],
        );
        e.family(
            "lb_reload_timestamp_seconds",
            "When the last reload was asked for (Unix time).",
            [one(vec![], r.at_unix)],
        );
    }
    if let Some(b) = &s.bgp {
        e.family(
            "lb_bgp_vip_announced",
            "Scale-out mode: the node has the VIP announced (1) or withdrawn (0); the reason is \
             in `lb-agent status`.",
            b.vips
                .iter()
                .map(|v| one(vec![("vip", esc(&v.vip))], v.announced)),
        );
        e.family(
            "lb_bgp_bird_configured",
            "BIRD accepted the last routes file (1), or `birdc configure` is failing (0).",
            [one(
                vec![],
                b.bird_error.is_none() && b.bird_applied.is_some(),
            )],
        );
        e.family(
            "lb_bgp_bird_failures_total",
            "`birdc configure` runs that failed.",
            [one(vec![], b.bird_failures)],
        );
    }
    if let Some(f) = &s.flow_sync {
        flow_sync(&mut e, f);
    }
    e.family(
        "lb_xdp_attached",
        "XDP program attached to the interface (1), or not (0), for every service interface.",
        s.xdp
            .iter()
            .map(|x| one(vec![("interface", esc(&x.interface))], x.attached)),
    );
    e.family(
        "lb_xdp_mode",
        "The mode XDP is attached in on the interface (native or generic), 1 while attached.",
        s.xdp.iter().filter(|x| x.attached).map(|x| {
            one(
                vec![("interface", esc(&x.interface)), ("mode", esc(&x.mode))],
                1u64,
            )
        }),
    );
    services(&mut e, s);
    reals(&mut e, s);
    vrrp(&mut e, s);
    let mut buckets = Vec::new();
    let mut below = 0;
    for (le, cumulative) in &s.check_latency_buckets {
        buckets.push((*le, cumulative.saturating_sub(below)));
        below = *cumulative;
    }
    buckets.push((f64::MAX, s.check_latency_count.saturating_sub(below)));
    e.histograms.push(Histogram {
        name: "lb_health_check_duration_seconds",
        help: "Health check duration.",
        sum: s.check_latency_sum_s,
        count: s.check_latency_count,
        buckets,
    });
    e
}

fn services(e: &mut Exposition, s: &Snapshot) {
    type Get = fn(&super::snapshot::ServiceSnap) -> Value;
    let per_service: [(&str, &str, Get); 5] = [
        (
            "lb_service_packets_total",
            "Packets forwarded for the virtual service.",
            |v| v.packets.into(),
        ),
        (
            "lb_service_bytes_total",
            "IP bytes forwarded for the virtual service.",
            |v| v.bytes.into(),
        ),
        (
            "lb_service_flows_total",
            "New flows assigned for the virtual service.",
            |v| v.flows.into(),
        ),
        (
            "lb_service_active",
            "This node forwards for the service (1) or stands by (0).",
            |v| v.active.into(),
        ),
        (
            "lb_service_quorum_up",
            "Live weight at or above quorum.",
            |v| v.quorum_up.into(),
        ),
    ];
    for (name, help, get) in per_service {
        e.family(
            name,
            help,
            s.services
                .iter()
                .map(|v| (vec![("service", esc(&v.service))], get(v))),
        );
    }
    e.family(
        "lb_build_info",
        "The agent's version and commit (always 1).",
        [one(
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("commit", env!("LB_GIT_COMMIT").to_owned()),
            ],
            1u64,
        )],
    );
    e.family(
        "lb_service_maglev_info",
        "The digest of what the service's Maglev table is built from (always 1): nodes with \
         different digests place new flows differently.",
        s.services.iter().map(|v| {
            one(
                vec![
                    ("service", esc(&v.service)),
                    ("fingerprint", esc(&v.maglev_fingerprint)),
                ],
                1u64,
            )
        }),
    );
}

fn reals(e: &mut Exposition, s: &Snapshot) {
    type Get = fn(&super::snapshot::RealSnap) -> Value;
    let per_real: [(&str, &str, Get); 10] = [
        (
            "lb_real_override",
            "1 while the operator's weight (lb-agent real drain|weight) replaces the configured one.",
            |r| r.override_weight.is_some().into(),
        ),
        (
            "lb_real_packets_total",
            "Packets forwarded to the real server.",
            |r| r.packets.into(),
        ),
        (
            "lb_real_bytes_total",
            "IP bytes forwarded to the real server.",
            |r| r.bytes.into(),
        ),
        (
            "lb_real_flows_total",
            "New flows assigned to the real server.",
            |r| r.flows.into(),
        ),
        (
            "lb_real_up",
            "Health: 1 up (or assumed up), 0 down or unknown.",
            |r| (r.health == "up" || r.health == "assumed-up").into(),
        ),
        ("lb_real_weight", "Weight the data path uses now.", |r| {
            r.effective_weight.into()
        }),
        (
            "lb_real_health_transitions_total",
            "Health state changes.",
            |r| r.transitions.into(),
        ),
        (
            "lb_real_checks_passed_total",
            "Health-check rounds that passed.",
            |r| r.checks_ok.into(),
        ),
        (
            "lb_real_checks_failed_total",
            "Health-check rounds that failed.",
            |r| r.checks_failed.into(),
        ),
        (
            "lb_real_check_latency_seconds",
            "Duration of the last health check.",
            |r| (r.check_latency_ms.unwrap_or(0.0) / 1000.0).into(),
        ),
    ];
    for (name, help, get) in per_real {
        e.family(
            name,
            help,
            s.services.iter().flat_map(|v| {
                v.reals.iter().map(move |r| {
                    (
                        vec![("service", esc(&v.service)), ("real", esc(&r.real))],
                        get(r),
                    )
                })
            }),
        );
    }
}

fn vrrp(e: &mut Exposition, s: &Snapshot) {
    const STATES: [&str; 6] = [
        "initialize",
        "backup",
        "master",
        "fault",
        "releasing",
        "stopped",
    ];
    e.family(
        "lb_vrrp_state",
        "VRRP state of the instance (1 for the current one).",
        s.instances.iter().flat_map(|i| {
            STATES.iter().map(move |st| {
                one(
                    vec![("vrrp_instance", esc(&i.name)), ("state", (*st).to_owned())],
                    i.state == *st,
                )
            })
        }),
    );
    type Get = fn(&super::snapshot::InstanceSnap) -> Value;
    let per_instance: [(&str, &str, Get); 6] = [
        ("lb_vrrp_priority", "Effective priority.", |i| {
            u32::from(i.priority).into()
        }),
        ("lb_vrrp_transitions_total", "State transitions.", |i| {
            i.transitions.into()
        }),
        ("lb_vrrp_adverts_received_total", "Adverts accepted.", |i| {
            i.adverts_rx.into()
        }),
        ("lb_vrrp_adverts_sent_total", "Adverts sent.", |i| {
            i.adverts_tx.into()
        }),
        (
            "lb_vrrp_split_brain_total",
            "Times this master heard another master.",
            |i| i.split_brains.into(),
        ),
        (
            "lb_vrrp_send_errors_total",
            "Adverts the kernel refused to send.",
            |i| i.adverts_tx_errors.into(),
        ),
    ];
    for (name, help, get) in per_instance {
        e.family(
            name,
            help,
            s.instances
                .iter()
                .map(|i| (vec![("vrrp_instance", esc(&i.name))], get(i))),
        );
    }
    e.family(
        "lb_vrrp_adverts_dropped_total",
        "Adverts dropped by the instance, by reason.",
        s.instances.iter().flat_map(|i| {
            i.dropped.iter().map(move |(reason, n)| {
                one(
                    vec![("vrrp_instance", esc(&i.name)), ("reason", esc(reason))],
                    *n,
                )
            })
        }),
    );
    e.family(
        "lb_vrrp_invalid_packets_total",
        "VRRP datagrams failing packet checks, by interface and reason.",
        s.vrrp_invalid.iter().map(|(k, n)| {
            let (iface, reason) = k.split_once('/').unwrap_or((k, ""));
            one(vec![("interface", esc(iface)), ("reason", esc(reason))], *n)
        }),
    );
}

/// Serves GET /metrics on `addr` with snapshots from the core.
pub async fn spawn(addr: SocketAddr, core: mpsc::Sender<Call>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics_listen {addr}"))?;
    info!(%addr, "metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let core = core.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, core.clone()));
                // One request per connection (a scrape every few seconds needs no more).
                let conn = http1::Builder::new()
                    .keep_alive(false)
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .max_buf_size(16 * 1024)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(Duration::from_secs(30), conn).await {
                    Ok(Err(e)) => debug!(error = %e, "metrics connection"),
                    Err(_) => debug!("metrics connection closed after 30 s"),
                    Ok(Ok(())) => {}
                }
            });
        }
    });
    Ok(())
}

async fn answer(
    req: hyper::Request<Incoming>,
    core: mpsc::Sender<Call>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    let path = req.uri().path();
    if req.method() != Method::GET || !(path == "/metrics" || path == "/") {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try GET /metrics\n".into(),
        ));
    }
    let (tx, rx) = oneshot::channel();
    let snap = match core.send((Request::Status { flows: false }, tx)).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    Ok(match snap {
        Some(Response::Status(s)) => reply(StatusCode::OK, CONTENT_TYPE, render(&s)),
        _ => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "agent busy\n".into(),
        ),
    })
}

/// The flow sync's families.
fn flow_sync(e: &mut Exposition, f: &super::snapshot::FlowSyncSnap) {
    e.family(
        "lb_flow_sync_records_sent_total",
        "Connection-table records sent to the peers (new flows and refreshes; once per \
         destination).",
        [one(vec![], f.records_sent)],
    );
    e.family(
        "lb_flow_sync_sent_bytes_total",
        "UDP payload bytes of the flow-sync datagrams sent.",
        [one(vec![], f.bytes_sent)],
    );
    e.family(
        "lb_flow_sync_records_received_total",
        "Records received in accepted flow-sync messages.",
        [one(vec![], f.records_received)],
    );
    e.family(
        "lb_flow_sync_records_applied_total",
        "Received records written into the connection table.",
        [one(vec![], f.records_applied)],
    );
    e.family(
        "lb_flow_sync_dropped_total",
        "Flow-sync messages or records dropped, by reason (not_peer, bad_mac, truncated, \
         unknown_real, ...).",
        f.dropped
            .iter()
            .map(|(k, v)| one(vec![("reason", esc(k))], *v)),
    );
    e.family(
        "lb_flow_sync_publish_failed_total",
        "New flows the data path could not hand to the agent (its queue was overrun before the agent read it).",
        [one(vec![], f.publish_failed)],
    );
    e.family(
        "lb_flow_sync_peer_last_heard_seconds",
        "Seconds since a flow-sync message from the peer was accepted (absent: never).",
        f.peers
            .iter()
            .filter_map(|p| p.last_heard_s.map(|s| one(vec![("peer", esc(&p.addr))], s))),
    );
    e.family(
        "lb_flow_sync_lag_seconds",
        "Sync lag of received new flows over the recent samples (from the entry on the sender \
         to the entry here), by quantile.",
        [
            ("0.5", f.lag_p50_ms),
            ("0.99", f.lag_p99_ms),
            ("1", f.lag_max_ms),
        ]
        .into_iter()
        .filter_map(|(q, v)| v.map(|ms| one(vec![("quantile", q.to_owned())], ms / 1000.0))),
    );
    e.family(
        "lb_flow_sync_bulk_done",
        "The bulk sync of this start got a peer's whole table (1), or not (0: running, timed \
         out, or no peer answered).",
        [one(vec![], f.bulk.state == "done")],
    );
    e.family(
        "lb_flow_sync_bulk_holding",
        "Preemption (VRRP) or announcement (BGP) waits for the bulk sync (1).",
        [one(vec![], f.bulk.holding)],
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::control::snapshot::{
        BgpSnap, InstanceSnap, RealSnap, ReloadSnap, ServiceSnap, TableFill, VipSnap, XdpSnap,
    };

    /// A snapshot with one of everything, so every family has a sample.
    fn full() -> Snapshot {
        Snapshot {
            router_id: "lb1".into(),
            instances: vec![InstanceSnap {
                name: "VI_1".into(),
                state: "master".into(),
                dropped: [("bad_ttl".to_owned(), 1)].into(),
                ..Default::default()
            }],
            services: vec![ServiceSnap {
                service: "192.0.2.100:80/tcp".into(),
                maglev_fingerprint: "00ff".into(),
                reals: vec![RealSnap {
                    real: "10.0.0.11:80".into(),
                    health: "up".into(),
                    override_weight: Some(0),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            verdicts: [("tx".to_owned(), 5)].into(),
            info: [("flow_new".to_owned(), 2)].into(),
            last_reload: Some(ReloadSnap {
                at_unix: 1,
                ok: false,
                message: "bad".into(),
            }),
            conntrack: vec![TableFill {
                family: "ipv4".into(),
                entries: 1,
                capacity: 2,
                counted_unix: 1,
            }],
            xdp: vec![XdpSnap {
                interface: "eth0".into(),
                attached: true,
                mode: "native".into(),
            }],
            bgp: Some(BgpSnap {
                vips: vec![VipSnap {
                    vip: "192.0.2.100".into(),
                    announced: true,
                    why: "up".into(),
                }],
                bird_applied: Some(vec!["192.0.2.100".into()]),
                ..Default::default()
            }),
            flow_sync: Some(crate::control::snapshot::FlowSyncSnap {
                peers: vec![crate::control::snapshot::SyncPeerSnap {
                    addr: "10.0.0.2".into(),
                    last_heard_s: Some(0.5),
                    records_received: 3,
                }],
                dropped: [("bad_mac".to_owned(), 1)].into(),
                lag_p50_ms: Some(10.0),
                lag_p99_ms: Some(20.0),
                lag_max_ms: Some(21.0),
                ..Default::default()
            }),
            vrrp_invalid: [("eth0/bad_ttl".to_owned(), 1)].into(),
            check_latency_buckets: vec![(0.1, 1)],
            check_latency_count: 1,
            ..Default::default()
        }
    }

    fn metric_names(text: &str) -> BTreeSet<String> {
        let re = regex::Regex::new(r"\blb_[a-z0-9_]+").expect("regex");
        re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
    }

    #[test]
    fn alerts_and_dashboard_use_only_metrics_we_export() {
        let out = render(&full());
        let exported: BTreeSet<String> = out
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/monitoring/");
        for file in ["alerts.yaml", "alerts.test.yaml", "grafana-dashboard.json"] {
            let text = std::fs::read_to_string(format!("{root}{file}")).expect(file);
            for name in metric_names(&text) {
                assert!(exported.contains(&name), "{file} uses {name}, not exported");
            }
        }
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(format!("{root}grafana-dashboard.json")).expect("json"),
        )
        .expect("the dashboard is JSON");
    }

    #[test]
    fn no_label_is_called_instance_and_verdicts_are_their_own_family() {
        let out = render(&full());
        assert!(!out.contains("{instance="), "Prometheus owns `instance`");
        assert!(!out.contains(",instance="), "Prometheus owns `instance`");
        assert!(out.contains("lb_vrrp_state{vrrp_instance=\"VI_1\",state=\"master\"} 1"));
        assert!(out.contains("lb_xdp_packets_total{verdict=\"tx\"} 5"));
        assert!(out.contains("lb_xdp_info_total{counter=\"flow_new\"} 2"));
        assert!(!out.contains("lb_xdp_packets_total{verdict=\"flow_new\"}"));
        assert!(out.contains("lb_reload_success 0"));
        assert!(out.contains("lb_conntrack_entries{family=\"ipv4\"} 1"));
        assert!(out.contains("lb_build_info{version="));
        assert!(out
            .contains("lb_real_override{service=\"192.0.2.100:80/tcp\",real=\"10.0.0.11:80\"} 1"));
        assert!(out.contains("lb_bgp_vip_announced{vip=\"192.0.2.100\"} 1"));
        assert!(out.contains("lb_bgp_bird_configured 1"));
    }

    /// prometheus-client's exposition: counters typed without their `_total` suffix, the
    /// histogram cumulative with +Inf equal to the count, the end marked.
    #[test]
    fn exposition_is_openmetrics() {
        let mut s = full();
        s.check_latency_buckets = vec![(0.001, 2), (0.01, 5)];
        s.check_latency_count = 7;
        s.check_latency_sum_s = 0.25;
        let out = render(&s);
        assert!(out.contains("# TYPE lb_xdp_packets counter\n"), "{out}");
        assert!(out.contains("# TYPE lb_up gauge\n"));
        assert!(
            out.contains("lb_health_check_duration_seconds_bucket{le=\"0.001\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("lb_health_check_duration_seconds_bucket{le=\"0.01\"} 5\n"));
        assert!(out.contains("lb_health_check_duration_seconds_bucket{le=\"+Inf\"} 7\n"));
        assert!(out.contains("lb_health_check_duration_seconds_count 7\n"));
        assert!(out.ends_with("# EOF\n"));
        // A label value with a quote stays one label.
        s.instances[0].name = "a\"b".into();
        assert!(render(&s).contains("vrrp_instance=\"a\\\"b\""));
    }
}
