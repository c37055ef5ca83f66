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
        "Data-path decisions by verdict or info counter.",
    );
    for (k, v) in &s.verdicts {
        let _ = writeln!(o, "lb_xdp_packets_total{{counter=\"{}\"}} {v}", esc(k));
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
