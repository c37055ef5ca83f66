//! Day-2 operations on a running agent, without a reload: `lb-agent real drain|weight|enable`
//! under traffic (established connections stay on the drained real, new ones never reach
//! it), kept across an agent restart; `lb-agent conns` and `explain` against flows the test
//! made; the control socket found without `--socket`.

use std::{net::SocketAddr, time::Duration};

use lb_tests::{
    agent::{scrape, Agent},
    client::{http_many, tally, LongConn},
    held::Held,
    netns::outcome,
    standalone::Standalone,
    topology::{real_ip, VIP},
};

const METRICS: &str = "127.0.0.1:9470";

fn config(rid: &str) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: 65536\n  metrics_listen: {METRICS}\nvirtual_servers:\n  - address: {VIP}\n    port: 80\n    protocol: tcp\n    interface: eth0\n    real_servers:\n"
    );
    for i in 0..3 {
        y += &format!("      - {{ address: {}, port: 80 }}\n", real_ip(i));
    }
    y
}

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

fn lab(tag: &str) -> Standalone {
    let l = Standalone::start(tag, 3, true, config).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    l
}

/// The status entry of real `i`.
fn real_status(a: &Agent, i: usize) -> serde_json::Value {
    let s = a.status().expect("status");
    s["services"][0]["reals"]
        .as_array()
        .expect("reals")
        .iter()
        .find(|r| r["real"] == format!("{}:80", real_ip(i)))
        .cloned()
        .expect("real listed")
}

#[test]
fn drain_under_traffic_keeps_established_connections_and_sends_new_ones_elsewhere() {
    let mut l = lab("lbod");
    let r1 = real_ip(0).to_string();
    let held = Held::open(&l.t.client.ns, vip(), 30, Duration::from_millis(200)).expect("held");
    let on_r1 = held.reals.iter().filter(|r| *r == "r1").count();
    assert!(on_r1 > 0, "some held connections on r1: {:?}", held.reals);

    let (ok, out, err) = l
        .agent
        .cli(&["real", "drain", &vip().to_string(), &r1])
        .expect("cli");
    assert!(ok && out.contains("drained"), "{out}{err}");
    let st = real_status(&l.agent, 0);
    assert_eq!(st["effective_weight"], 0, "{st}");
    assert_eq!(st["override_weight"], 0, "{st}");
    assert!(st["override_age_s"].as_u64().is_some(), "{st}");

    // New flows: none to r1, none failing.
    let answers = http_many(&l.t.client.ns, vip(), 60).expect("traffic");
    let t = tally(&answers);
    assert_eq!(t.get("error"), None, "{t:?}");
    assert_eq!(
        t.get("r1"),
        None,
        "a new flow reached the drained real: {t:?}"
    );
    let m = scrape(&l.t.lbs[0].ns, METRICS).expect("metrics");
    let key = format!("lb_real_override{{service=\"{VIP}:80/tcp\",real=\"{r1}:80\"}}");
    assert_eq!(m.get(&key), Some(&1.0), "{key}");

    // Established ones: every one still answered by its own real, r1's included.
    std::thread::sleep(Duration::from_millis(600));
    let report = held.finish();
    assert!(report.all_same(), "{report}");

    // Kept across a restart of the agent.
    l.agent.stop().expect("stop");
    let rid = l.agent.router_id.clone();
    l.agent = Agent::start(&l.t.lbs[0].ns, &l.dir, &rid, &config(&rid)).expect("restart");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    let st = real_status(&l.agent, 0);
    assert_eq!(st["override_weight"], 0, "kept across a restart: {st}");
    let t = tally(&http_many(&l.t.client.ns, vip(), 40).expect("traffic"));
    assert_eq!(t.get("r1"), None, "{t:?}");

    // A weight, then enabled again: r1 takes new flows.
    let (ok, out, err) = l
        .agent
        .cli(&["real", "weight", "3", &format!("{}/tcp", vip()), &r1])
        .expect("cli");
    assert!(ok, "{out}{err}");
    assert_eq!(real_status(&l.agent, 0)["effective_weight"], 3);
    let (ok, out, err) = l
        .agent
        .cli(&["real", "enable", &vip().to_string(), &r1])
        .expect("cli");
    assert!(ok, "{out}{err}");
    let st = real_status(&l.agent, 0);
    assert!(st["override_weight"].is_null(), "{st}");
    assert_eq!(st["effective_weight"], 1);
    let t = tally(&http_many(&l.t.client.ns, vip(), 60).expect("traffic"));
    assert!(t.get("r1").is_some_and(|n| *n > 0), "{t:?}");

    // Mistakes are explained, and change nothing.
    let (ok, _, err) = l
        .agent
        .cli(&["real", "drain", &vip().to_string(), "10.99.0.99"])
        .expect("cli");
    assert!(!ok && err.contains("is not a real server"), "{err}");
    let (ok, _, err) = l
        .agent
        .cli(&["real", "drain", "10.99.0.100:81", &r1])
        .expect("cli");
    assert!(!ok && err.contains("no virtual service"), "{err}");
}

#[test]
fn conns_and_explain_agree_with_the_data_path() {
    let l = lab("lboc");
    let mut conns = Vec::new();
    for _ in 0..6 {
        conns.push(LongConn::open(&l.t.client.ns, vip()).expect("connect"));
    }
    for c in &mut conns {
        let local = c.local().expect("local");
        let served = c.real.clone();
        let idx: usize = served[1..].parse::<usize>().expect("name") - 1;
        let want = format!("{}:80", real_ip(idx));
        let (ok, out, err) = l
            .agent
            .cli(&[
                "conns",
                "--client",
                &local.ip().to_string(),
                "--limit",
                "1000",
                "--json",
            ])
            .expect("cli");
        assert!(ok, "{err}");
        let listing: serde_json::Value = serde_json::from_str(&out).expect("json");
        let entry = listing["conns"]
            .as_array()
            .expect("conns")
            .iter()
            .find(|e| e["client"] == local.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("flow {local} not listed: {listing}"));
        assert_eq!(entry["real"], want, "{entry}");
        assert_eq!(entry["vip"], vip().to_string());
        assert_eq!(entry["proto"], "tcp");
        let (ok, out, _) = l
            .agent
            .cli(&[
                "explain",
                &local.to_string(),
                &vip().to_string(),
                "tcp",
                "--json",
            ])
            .expect("cli");
        assert!(ok);
        let e: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(e["entry"]["real"], want, "{e}");
        assert_eq!(c.ping(1).expect("ping"), served);
    }
    // The per-real counts cover the whole table and add up to it.
    let (ok, out, _) = l
        .agent
        .cli(&["conns", "--limit", "2", "--json"])
        .expect("cli");
    assert!(ok);
    let listing: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        listing["conns"].as_array().map(Vec::len),
        Some(2),
        "cut at --limit"
    );
    let total: u64 = listing["per_real"]
        .as_object()
        .expect("per_real")
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    let scanned = listing["scanned"].as_u64().expect("scanned");
    assert!(scanned >= 6, "{listing}");
    assert_eq!(total + listing["stale"].as_u64().unwrap_or(0), scanned);
    assert!(listing["matched"].as_u64().expect("matched") >= 6);
    // The text form says it was cut.
    let (_, text, _) = l.agent.cli(&["conns", "--limit", "2"]).expect("cli");
    assert!(text.contains("more match (raise --limit)"), "{text}");
}

#[test]
fn the_control_socket_is_found_without_being_named() {
    let l = lab("lbos");
    // Only when this agent's socket is the one in /run/lb-agent (other tests may run agents).
    let others = std::fs::read_dir("/run/lb-agent")
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
                .count()
        })
        .unwrap_or(0);
    let bin = lb_tests::topology::bin_path("lbt-agent").expect("bin");
    let out = std::process::Command::new(bin)
        .args(["status", "--json"])
        .output()
        .expect("run");
    if others == 1 {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(s["router_id"], l.agent.router_id);
    } else {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("several agents"));
    }
}

/// `lb-agent check --host` in the LB's namespace with `yaml`: (exit ok, output).
fn preflight(l: &Standalone, yaml: &str) -> (bool, String) {
    let path = l.dir.0.join("preflight.yaml");
    lb_tests::agent::write_config(&path, yaml).expect("config");
    let bin = lb_tests::topology::bin_path("lbt-agent").expect("bin");
    outcome(
        l.t.lbs[0]
            .ns
            .command(&bin.to_string_lossy())
            .args(["check", "--host", "--config"])
            .arg(&path),
    )
}

#[test]
fn the_host_preflight_passes_in_the_lab_and_fails_on_an_interface_without_xdp() {
    let l = lab("lbop");
    let (ok, out) = preflight(&l, &config("pf"));
    assert!(ok, "{out}");
    for want in [
        "PASS  kernel",
        "PASS  capabilities",
        "PASS  XDP program",
        "PASS  interface eth0",
        "native XDP",
        &format!("PASS  real {}", real_ip(0)),
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    assert!(out.contains(" 0 failed"), "{out}");

    // A bridge has no native XDP: with xdp_mode native that is a failure, with auto a warning.
    l.t.lbs[0]
        .ns
        .ip(&["link", "add", "pfbr0", "type", "bridge"])
        .expect("bridge");
    l.t.lbs[0]
        .ns
        .ip(&["link", "set", "pfbr0", "up"])
        .expect("up");
    let on_bridge = config("pf").replace("interface: eth0", "interface: pfbr0");
    let native = on_bridge.replace(
        "virtual_servers:",
        "interfaces:\n  - { name: pfbr0, xdp_mode: native }\nvirtual_servers:",
    );
    let (ok, out) = preflight(&l, &native);
    assert!(!ok, "a failure exits non-zero:\n{out}");
    assert!(
        out.contains("FAIL  interface pfbr0") && out.contains("driver bridge"),
        "{out}"
    );
    let (ok, out) = preflight(&l, &on_bridge);
    assert!(ok, "{out}");
    assert!(out.contains("WARN  interface pfbr0"), "{out}");
    // A real that does not exist is a warning, named.
    let ghost = config("pf").replace(
        &format!("      - {{ address: {}, port: 80 }}\n", real_ip(2)),
        "      - { address: 10.99.0.77, port: 80 }\n",
    );
    let (ok, out) = preflight(&l, &ghost);
    assert!(ok, "{out}");
    assert!(out.contains("WARN  real 10.99.0.77"), "{out}");
}

/// `lb-agent real-server ARGS` in `ns`: (exit ok, output).
fn real_server(ns: &lb_tests::netns::Netns, args: &[&str]) -> (bool, String) {
    let bin = lb_tests::topology::bin_path("lbt-agent").expect("bin");
    outcome(
        ns.command(&bin.to_string_lossy())
            .arg("real-server")
            .args(args),
    )
}

#[test]
fn real_server_check_finds_what_is_missing_and_setup_applies_it() {
    // A bare namespace stands for a fresh real server (its sysctls are its own).
    let ns = lb_tests::netns::Netns::new(&format!("lbrs{}", std::process::id())).expect("netns");
    let vip = "10.99.0.200";
    let (ok, out) = real_server(&ns, &["check", "--vip", vip, "--port", "8080"]);
    assert!(!ok, "{out}");
    for want in [
        "FAIL  VIP on lo",
        "FAIL  net.ipv4.conf.all.arp_ignore",
        "FAIL  net.ipv4.conf.all.arp_announce",
        "FAIL  listening on 8080/tcp",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{out}");
    }
    let (ok, out) = real_server(&ns, &["setup", "--vip", vip]);
    assert!(ok, "{out}");
    assert!(out.contains("10.99.0.200/32 added to lo"), "{out}");
    assert!(out.contains("net.ipv4.conf.all.arp_ignore = 1"), "{out}");
    assert!(
        out.contains("Address=10.99.0.200/32"),
        "the persistent form: {out}"
    );
    let lo = ns.ip(&["-o", "addr", "show", "dev", "lo"]).expect("ip");
    assert!(String::from_utf8_lossy(&lo.stdout).contains("10.99.0.200/32"));
    let (ok, out) = real_server(&ns, &["check", "--vip", vip, "--port", "8080"]);
    assert!(!ok, "still nothing listening:\n{out}");
    assert!(
        out.contains("PASS  VIP on lo") && out.contains("PASS  net.ipv4.conf.all.arp_ignore"),
        "{out}"
    );
    // A server listening on every address: everything passes.
    let listener = ns
        .enter(|| std::net::TcpListener::bind("0.0.0.0:8080"))
        .expect("enter")
        .expect("bind");
    let (ok, out) = real_server(&ns, &["check", "--vip", vip, "--port", "8080"]);
    assert!(ok, "{out}");
    assert!(out.contains("PASS  listening on 8080/tcp"), "{out}");
    drop(listener);
    // Setup again changes nothing.
    let (ok, out) = real_server(&ns, &["setup", "--vip", vip]);
    assert!(ok && out.contains("already set up"), "{out}");
}
