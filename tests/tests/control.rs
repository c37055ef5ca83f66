//! The control plane against a running agent: status --json, Prometheus metrics scraped over
//! HTTP, and reloads under continuous traffic (zero failed requests, the same XDP program).

use std::{net::SocketAddr, time::Duration};

use lb_tests::{
    agent::scrape,
    client::{http_many, tally, LongConn, Prober},
    held::Held,
    netns::wait_for,
    standalone::Standalone,
    topology::{real_ip, Topology, VIP},
};

fn config(rid: &str, reals: &[(usize, u32)], extra_global: &str) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: 65536\n{extra_global}virtual_servers:\n"
    );
    for proto in ["tcp", "udp"] {
        y += &format!("  - address: {VIP}\n    port: 80\n    protocol: {proto}\n    interface: eth0\n    real_servers:\n");
        for (i, w) in reals {
            y += &format!(
                "      - {{ address: {}, port: 80, weight: {w} }}\n",
                real_ip(*i)
            );
        }
    }
    y
}

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

type Lab = Standalone;

fn lab(tag: &str, reals: usize, yaml: impl Fn(&str) -> String) -> Lab {
    let l = Standalone::start(tag, reals, true, yaml).expect("lab");
    // Ready when both services answer (their tables are written one after the other).
    let up = wait_for(Duration::from_secs(15), || {
        http_many(&l.t.client.ns, vip(), 1).ok()?.pop()?.ok()?;
        lb_tests::client::udp_many(&l.t.client.ns, vip(), 1)
            .ok()?
            .pop()?
            .ok()
    });
    assert!(up.is_some(), "{}", l.agent.log_text());
    l
}

fn xdp_prog_id(t: &Topology) -> u64 {
    let out = t.lbs[0]
        .ns
        .ip(&["-j", "link", "show", "dev", "eth0"])
        .expect("ip");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .expect("an XDP program id")
}

#[test]
fn status_json_reports_services_reals_and_counters() {
    let l = lab("lbcs", 2, |rid| config(rid, &[(0, 1), (1, 1)], ""));
    let answers = http_many(&l.t.client.ns, vip(), 40).expect("traffic");
    assert_eq!(tally(&answers).get("error"), None);
    let s = l.agent.status().expect("status");
    let svc = s["services"].as_array().expect("services");
    assert_eq!(svc.len(), 2);
    let tcp = svc
        .iter()
        .find(|v| v["service"] == format!("{VIP}:80/tcp"))
        .expect("tcp service");
    assert_eq!(tcp["active"], true);
    let reals = tcp["reals"].as_array().expect("reals");
    assert_eq!(reals.len(), 2);
    let mut total = 0;
    for r in reals {
        assert_eq!(r["health"], "up");
        assert!(r["mac"].as_str().is_some_and(|m| m.len() == 17), "{r}");
        total += r["packets"].as_u64().unwrap_or(0);
        assert!(r["active_flows"].as_u64().is_some(), "{r}");
    }
    // 40 connections of at least 3 client->VIP packets each went through the data path.
    assert!(total >= 120, "{total} packets counted: {tcp}");
    assert_eq!(tcp["packets"].as_u64(), Some(total));
    assert!(s["verdicts"]["tx"].as_u64().unwrap_or(0) >= total);
    assert_eq!(s["attached"][0], "eth0");
    // The human form has the same numbers.
    let (ok, text, _) = l.agent.cli(&["status"]).expect("status");
    assert!(
        ok && text.contains(&format!("{VIP}:80/tcp")) && text.contains("-> 10.99.0.11:80"),
        "{text}"
    );
}

#[test]
fn metrics_are_scraped_and_parse() {
    let l = lab("lbcm", 2, |rid| {
        config(rid, &[(0, 1), (1, 1)], "  metrics_listen: 127.0.0.1:9469\n")
    });
    http_many(&l.t.client.ns, vip(), 20).expect("traffic");
    // Every sample line is `name{labels} value` with a number.
    let samples = scrape(&l.t.lbs[0].ns, "127.0.0.1:9469").expect("scrape");
    let real_pkts: f64 = samples
        .iter()
        .filter(|(k, _)| k.starts_with("lb_real_packets_total{service=\"10.99.0.100:80/tcp\""))
        .map(|(_, v)| v)
        .sum();
    assert!(real_pkts >= 60.0, "{real_pkts}");
    assert_eq!(
        samples.get("lb_xdp_attached{interface=\"eth0\"}"),
        Some(&1.0)
    );
    assert!(samples.keys().any(|k| k.starts_with("lb_real_up{")));
}

#[test]
fn reload_under_traffic_drops_nothing_and_keeps_the_program() {
    let rid_cfg = |reals: &[(usize, u32)]| {
        let r = reals.to_vec();
        move |rid: &str| config(rid, &r, "")
    };
    let l = lab("lbcr", 4, rid_cfg(&[(0, 1), (1, 1), (2, 1)]));
    let prog = xdp_prog_id(&l.t);
    let prober = Prober::start(&l.t.client.ns, vip(), Duration::from_millis(10)).expect("prober");
    // Continuous new TCP connections during the reloads.
    let client = l.t.client.ns.name.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let ns = lb_tests::netns::Netns { name: client };
    let worker = std::thread::spawn(move || {
        let mut all = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            all.extend(http_many(&ns, vip(), 10).unwrap_or_default());
        }
        std::mem::forget(ns); // owned by the topology
        all
    });
    // Long-lived connections across the reloads, some of them on r3, which the last reload
    // removes: it keeps the flows it serves (no reset), it only takes no new ones.
    let held = Held::open(&l.t.client.ns, vip(), 40, Duration::from_millis(100)).expect("held");
    let on_r3 = held.reals.iter().filter(|r| *r == "r3").count();
    let rid = l.agent.router_id.clone();
    for reals in [
        vec![(0, 1), (1, 1), (2, 1), (3, 1)],
        vec![(0, 2), (1, 1), (2, 1), (3, 1)],
        vec![(0, 2), (1, 1), (3, 1)],
    ] {
        std::thread::sleep(Duration::from_millis(500));
        let before = l.agent.log_text().matches("configuration reloaded").count();
        l.agent.reload(&rid_cfg(&reals)(&rid)).expect("reload");
        assert!(wait_for(Duration::from_secs(5), || (l
            .agent
            .log_text()
            .matches("configuration reloaded")
            .count()
            > before)
            .then_some(()))
        .is_some());
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = worker.join().expect("worker");
    let r = prober.finish();
    let kept = held.finish();
    let c = tally(&answers);
    let errors: Vec<&String> = answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .take(3)
        .collect();
    assert_eq!(
        c.get("error"),
        None,
        "failed requests during reloads: {c:?}; first errors: {errors:?}"
    );
    assert!(
        on_r3 > 0,
        "no held connection on r3: the removal case was not exercised"
    );
    assert!(
        kept.all_same(),
        "held connections across the reloads ({on_r3} on r3): {kept}"
    );
    assert!(answers.len() > 50, "too little traffic: {}", answers.len());
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(
        xdp_prog_id(&l.t),
        prog,
        "a reload must not replace or detach the XDP program"
    );
    assert!(c.contains_key("r4"), "the added real never served: {c:?}");
}

#[test]
fn invalid_reload_keeps_the_running_config() {
    let l = lab("lbci", 2, |rid| config(rid, &[(0, 1), (1, 1)], ""));
    let good = std::fs::read_to_string(&l.agent.config).expect("config");
    // A typo'd key and a port the DR rule forbids: both are reported, at once.
    let bad = good.replacen("weight: 1", "wieght: 1", 1).replacen(
        "port: 80, weight: 1",
        "port: 8080, weight: 1",
        1,
    );
    assert_ne!(
        bad.matches("8080").count(),
        0,
        "the port error was not injected"
    );
    lb_tests::agent::write_config(&l.agent.config, &bad).expect("write");
    let (ok, _, err) = l.agent.cli(&["reload"]).expect("cli");
    assert!(!ok, "reload of an invalid file must fail");
    let line = bad
        .lines()
        .position(|l| l.contains("wieght"))
        .expect("typo")
        + 1;
    assert!(
        err.contains("unknown field `wieght`") && err.contains(&format!(".yaml:{line}:")),
        "{err}"
    );
    assert!(
        err.contains("direct routing cannot change the port"),
        "the second problem was not reported: {err}"
    );
    let c = tally(&http_many(&l.t.client.ns, vip(), 20).expect("traffic"));
    assert_eq!(c.get("error"), None, "{c:?}");
    assert_eq!(c.len(), 2, "{c:?}");
}

#[test]
fn explain_agrees_with_the_data_path() {
    let l = lab("lbce", 3, |rid| config(rid, &[(0, 1), (1, 1), (2, 1)], ""));
    for _ in 0..5 {
        let mut conn = LongConn::open(&l.t.client.ns, vip()).expect("connect");
        let local = conn.local().expect("local").to_string();
        let (ok, out, err) = l
            .agent
            .cli(&["explain", &local, &vip().to_string(), "tcp", "--json"])
            .expect("cli");
        assert!(ok, "{err}");
        let e: serde_json::Value = serde_json::from_str(&out).expect("json");
        let served = conn.real.clone();
        let idx: usize = served[1..].parse::<usize>().expect("name") - 1;
        assert_eq!(e["decision"], "entry", "{e}");
        assert_eq!(e["entry"]["real"], format!("{}:80", real_ip(idx)), "{e}");
        // And the Maglev choice for a new flow with this tuple is the same real (the table
        // did not change since the flow started).
        assert_eq!(e["new_flow_real"]["real"], e["entry"]["real"], "{e}");
        assert_eq!(conn.ping(1).expect("ping"), served);
    }
    // A flow that never existed: no entry, a table choice.
    let (ok, out, _) = l
        .agent
        .cli(&[
            "explain",
            "10.99.0.2:1",
            &vip().to_string(),
            "udp",
            "--json",
        ])
        .expect("cli");
    assert!(ok);
    let e: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(e["decision"], "maglev", "{e}");
    assert!(e["entry"].is_null(), "{e}");
}
