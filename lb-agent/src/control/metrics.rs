//! Prometheus text exposition (`global_defs.metrics_listen`), served by a minimal HTTP/1.1
//! responder: GET /metrics only.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tracing::{info, warn};

use super::{server::Call, Request, Response, Snapshot};

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    family(&mut o, "lb_up", "gauge", "The agent is running.");
    let _ = writeln!(o, "lb_up{{router_id=\"{}\"}} 1", esc(&s.router_id));

    family(
        &mut o,
        "lb_xdp_packets_total",
        "counter",
        "Frames by data-path verdict: each frame counts once, so a sum is the frames seen.",
    );
    for (k, v) in &s.verdicts {
        let _ = writeln!(o, "lb_xdp_packets_total{{verdict=\"{}\"}} {v}", esc(k));
    }
    family(
        &mut o,
        "lb_xdp_info_total",
        "counter",
        "Data-path informational counters (new flows, affinity hits, ICMP errors steered, ...); \
         not a partition of the frames.",
    );
    for (k, v) in &s.info {
        let _ = writeln!(o, "lb_xdp_info_total{{counter=\"{}\"}} {v}", esc(k));
    }
    family(
        &mut o,
        "lb_conntrack_entries",
        "gauge",
        "Connection-table entries, counted every minute.",
    );
    for t in &s.conntrack {
        let _ = writeln!(
            o,
            "lb_conntrack_entries{{family=\"{}\"}} {}",
            t.family, t.entries
        );
    }
    family(
        &mut o,
        "lb_conntrack_capacity",
        "gauge",
        "Connection-table size (entries).",
    );
    for t in &s.conntrack {
        let _ = writeln!(
            o,
            "lb_conntrack_capacity{{family=\"{}\"}} {}",
            t.family, t.capacity
        );
    }
    if let Some(r) = &s.last_reload {
        family(
            &mut o,
            "lb_reload_success",
            "gauge",
            "Whether the last reload was applied (1) or rejected (0).",
        );
        let _ = writeln!(o, "lb_reload_success {}", u8::from(r.ok));
        family(
            &mut o,
            "lb_reload_timestamp_seconds",
            "gauge",
            "When the last reload was asked for (Unix time).",
        );
        let _ = writeln!(o, "lb_reload_timestamp_seconds {}", r.at_unix);
    }
    if let Some(b) = &s.bgp {
        family(
            &mut o,
            "lb_bgp_vip_announced",
            "gauge",
            "Scale-out mode: the node has the VIP announced (1) or withdrawn (0); the reason is \
             in `lb-agent status`.",
        );
        for v in &b.vips {
            let _ = writeln!(
                o,
                "lb_bgp_vip_announced{{vip=\"{}\"}} {}",
                esc(&v.vip),
                u8::from(v.announced)
            );
        }
        family(
            &mut o,
            "lb_bgp_bird_configured",
            "gauge",
            "BIRD accepted the last routes file (1), or `birdc configure` is failing (0).",
        );
        let ok = b.bird_error.is_none() && b.bird_applied.is_some();
        let _ = writeln!(o, "lb_bgp_bird_configured {}", u8::from(ok));
        family(
            &mut o,
            "lb_bgp_bird_failures_total",
            "counter",
            "`birdc configure` runs that failed.",
        );
        let _ = writeln!(o, "lb_bgp_bird_failures_total {}", b.bird_failures);
    }
    family(
        &mut o,
        "lb_xdp_attached",
        "gauge",
        "XDP program attached to the interface (1), or not (0), for every service interface.",
    );
    for x in &s.xdp {
        let _ = writeln!(
            o,
            "lb_xdp_attached{{interface=\"{}\"}} {}",
            esc(&x.interface),
            u8::from(x.attached)
        );
    }
    family(
        &mut o,
        "lb_xdp_mode",
        "gauge",
        "The mode XDP is attached in on the interface (native or generic), 1 while attached.",
    );
    for x in s.xdp.iter().filter(|x| x.attached) {
        let _ = writeln!(
            o,
            "lb_xdp_mode{{interface=\"{}\",mode=\"{}\"}} 1",
            esc(&x.interface),
            esc(&x.mode)
        );
    }

    type SvcGet = fn(&super::snapshot::ServiceSnap) -> f64;
    let svc_metrics: [(&str, &str, SvcGet); 4] = [
        (
            "lb_service_packets_total",
            "Packets forwarded for the virtual service.",
            |v| v.packets as f64,
        ),
        (
            "lb_service_bytes_total",
            "IP bytes forwarded for the virtual service.",
            |v| v.bytes as f64,
        ),
        (
            "lb_service_flows_total",
            "New flows assigned for the virtual service.",
            |v| v.flows as f64,
        ),
        (
            "lb_service_active",
            "This node forwards for the service (1) or stands by (0).",
            |v| f64::from(u8::from(v.active)),
        ),
    ];
    for (name, help, get) in svc_metrics {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(&mut o, name, kind, help);
        for v in &s.services {
            let _ = writeln!(o, "{name}{{service=\"{}\"}} {}", esc(&v.service), get(v));
        }
    }
    family(
        &mut o,
        "lb_build_info",
        "gauge",
        "The agent's version and commit (always 1).",
    );
    let _ = writeln!(
        o,
        "lb_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("LB_GIT_COMMIT")
    );
    family(
        &mut o,
        "lb_service_maglev_info",
        "gauge",
        "The digest of what the service's Maglev table is built from (always 1): nodes with \
         different digests place new flows differently.",
    );
    for v in &s.services {
        let _ = writeln!(
            o,
            "lb_service_maglev_info{{service=\"{}\",fingerprint=\"{}\"}} 1",
            esc(&v.service),
            v.maglev_fingerprint
        );
    }
    family(
        &mut o,
        "lb_service_quorum_up",
        "gauge",
        "Live weight at or above quorum.",
    );
    for v in &s.services {
        let _ = writeln!(
            o,
            "lb_service_quorum_up{{service=\"{}\"}} {}",
            esc(&v.service),
            u8::from(v.quorum_up)
        );
    }

    type RealGet = fn(&super::snapshot::RealSnap) -> f64;
    let real_metrics: [(&str, &str, RealGet); 10] = [
        (
            "lb_real_override",
            "1 while the operator's weight (lb-agent real drain|weight) replaces the configured one.",
            |r| f64::from(u8::from(r.override_weight.is_some())),
        ),
        (
            "lb_real_packets_total",
            "Packets forwarded to the real server.",
            |r| r.packets as f64,
        ),
        (
            "lb_real_bytes_total",
            "IP bytes forwarded to the real server.",
            |r| r.bytes as f64,
        ),
        (
            "lb_real_flows_total",
            "New flows assigned to the real server.",
            |r| r.flows as f64,
        ),
        (
            "lb_real_up",
            "Health: 1 up (or assumed up), 0 down or unknown.",
            |r| f64::from(u8::from(r.health == "up" || r.health == "assumed-up")),
        ),
        ("lb_real_weight", "Weight the data path uses now.", |r| {
            f64::from(r.effective_weight)
        }),
        (
            "lb_real_health_transitions_total",
            "Health state changes.",
            |r| r.transitions as f64,
        ),
        (
            "lb_real_checks_passed_total",
            "Health-check rounds that passed.",
            |r| r.checks_ok as f64,
        ),
        (
            "lb_real_checks_failed_total",
            "Health-check rounds that failed.",
            |r| r.checks_failed as f64,
        ),
        (
            "lb_real_check_latency_seconds",
            "Duration of the last health check.",
            |r| r.check_latency_ms.unwrap_or(0.0) / 1000.0,
        ),
    ];
    for (name, help, get) in real_metrics {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(&mut o, name, kind, help);
        for v in &s.services {
            for r in &v.reals {
                let _ = writeln!(
                    o,
                    "{name}{{service=\"{}\",real=\"{}\"}} {}",
                    esc(&v.service),
                    esc(&r.real),
                    get(r)
                );
            }
        }
    }

    family(
        &mut o,
        "lb_vrrp_state",
        "gauge",
        "VRRP state of the instance (1 for the current one).",
    );
    for i in &s.instances {
        for st in [
            "initialize",
            "backup",
            "master",
            "fault",
            "releasing",
            "stopped",
        ] {
            let _ = writeln!(
                o,
                "lb_vrrp_state{{vrrp_instance=\"{}\",state=\"{st}\"}} {}",
                esc(&i.name),
                u8::from(i.state == st)
            );
        }
    }
    type InstGet = fn(&super::snapshot::InstanceSnap) -> f64;
    let inst_metrics: [(&str, &str, InstGet); 6] = [
        ("lb_vrrp_priority", "Effective priority.", |i| {
            f64::from(i.priority)
        }),
        ("lb_vrrp_transitions_total", "State transitions.", |i| {
            i.transitions as f64
        }),
        ("lb_vrrp_adverts_received_total", "Adverts accepted.", |i| {
            i.adverts_rx as f64
        }),
        ("lb_vrrp_adverts_sent_total", "Adverts sent.", |i| {
            i.adverts_tx as f64
        }),
        (
            "lb_vrrp_split_brain_total",
            "Times this master heard another master.",
            |i| i.split_brains as f64,
        ),
        (
            "lb_vrrp_send_errors_total",
            "Adverts the kernel refused to send.",
            |i| i.adverts_tx_errors as f64,
        ),
    ];
    for (name, help, get) in inst_metrics {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(&mut o, name, kind, help);
        for i in &s.instances {
            let _ = writeln!(o, "{name}{{vrrp_instance=\"{}\"}} {}", esc(&i.name), get(i));
        }
    }
    family(
        &mut o,
        "lb_vrrp_adverts_dropped_total",
        "counter",
        "Adverts dropped by the instance, by reason.",
    );
    for i in &s.instances {
        for (reason, n) in &i.dropped {
            let _ = writeln!(
                o,
                "lb_vrrp_adverts_dropped_total{{vrrp_instance=\"{}\",reason=\"{}\"}} {n}",
                esc(&i.name),
                esc(reason)
            );
        }
    }
    family(
        &mut o,
        "lb_vrrp_invalid_packets_total",
        "counter",
        "VRRP datagrams failing packet checks, by interface and reason.",
    );
    for (k, n) in &s.vrrp_invalid {
        let (iface, reason) = k.split_once('/').unwrap_or((k, ""));
        let _ = writeln!(
            o,
            "lb_vrrp_invalid_packets_total{{interface=\"{}\",reason=\"{}\"}} {n}",
            esc(iface),
            esc(reason)
        );
    }
    family(
        &mut o,
        "lb_health_check_duration_seconds",
        "histogram",
        "Health check duration.",
    );
    for (le, n) in &s.check_latency_buckets {
        let le = if le.is_infinite() {
            "+Inf".to_owned()
        } else {
            le.to_string()
        };
        let _ = writeln!(
            o,
            "lb_health_check_duration_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        o,
        "lb_health_check_duration_seconds_sum {}",
        s.check_latency_sum_s
    );
    let _ = writeln!(
        o,
        "lb_health_check_duration_seconds_count {}",
        s.check_latency_count
    );
    o
}

/// Serves GET /metrics on `addr` with snapshots from the core.
pub async fn spawn(addr: SocketAddr, core: mpsc::Sender<Call>) -> Result<()> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics_listen {addr}"))?;
    info!(%addr, "metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let core = core.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (status, body) =
                    if req.starts_with("GET ") && (path == "/metrics" || path == "/") {
                        let (tx, rx) = oneshot::channel();
                        if core
                            .send((Request::Status { flows: false }, tx))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        match rx.await {
                            Ok(Response::Status(snap)) => ("200 OK", render(&snap)),
                            _ => ("503 Service Unavailable", "agent busy\n".to_owned()),
                        }
                    } else {
                        ("404 Not Found", "try /metrics\n".to_owned())
                    };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = s.write_all(resp.as_bytes()).await {
                    warn!(error = %e, "metrics write failed");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::control::snapshot::{
        InstanceSnap, RealSnap, ReloadSnap, ServiceSnap, TableFill, XdpSnap,
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
    }
}
