//! Scale-out mode in the namespace lab (`lb_tests::scale_out`): three active LB nodes with
//! BIRD behind an ECMP router, running the BIRD config of docs/bgp.md.
//!
//! Each event runs with 100 established connections held through the VIP; each reports
//! same / moved / broken, and the time until the router's route changed.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use lb_tests::{
    bird::{lb_node_conf, next_hops, router_conf, LbNode},
    client::{http_many, Requests},
    held::HeldReport,
    netns::outcome,
    scale_out::{lb_hops, wait_hops, ScaleOut, NODES, NODE_AS, ROUTER_AS},
    topology::{bin_path, lb_ip, real_ip, VIP},
};

struct Row {
    event: &'static str,
    held: HeldReport,
    route_changed: Option<Duration>,
    requests: Option<(usize, usize)>,
}

fn print_table(rows: &[Row]) {
    eprintln!("measured: scale-out events, 100 connections held through the VIP each");
    eprintln!(
        "| event | same | moved | broken | router's route changed after | new requests failed |"
    );
    eprintln!("|---|---|---|---|---|---|");
    for r in rows {
        eprintln!(
            "| {} | {} | {} | {} | {} | {} |",
            r.event,
            r.held.same,
            r.held.moved,
            r.held.broken,
            r.route_changed
                .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            r.requests
                .map_or("-".into(), |(s, f)| format!("{f} of {s}")),
        );
    }
}

#[test]
fn three_active_nodes_behind_ecmp_keep_every_connection() {
    let bin = bin_path("lbt-agent").expect("test agent");
    let mut lab = ScaleOut::start("lbbg", &bin).expect("scale-out lab");
    let mut rows = Vec::new();

    // New flows spread over the three nodes.
    let before = lab.tx();
    let answers = http_many(&lab.far.client, lab.vip80(), 90).expect("requests");
    let failed = answers.iter().filter(|a| a.is_err()).count();
    assert_eq!(failed, 0, "{answers:?}");
    let after = lab.tx();
    let split: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("measured: 90 new connections, frames forwarded per node: {split:?}");
    for (i, n) in split.iter().enumerate() {
        assert!(*n >= 15, "node lb{} carried too little: {split:?}", i + 1);
    }
    // Every node reports the VIP announced, and the same Maglev input.
    let prints: Vec<String> = (0..NODES)
        .map(|i| {
            let s = lab.status(i).expect("status");
            assert_eq!(s["bgp"]["vips"][0]["announced"], true, "{s}");
            s["services"][0]["maglev_fingerprint"].to_string()
        })
        .collect();
    assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");

    // The host preflight finds BIRD on the node, and says so when the socket is wrong.
    let preflight = |cfg: &std::path::Path| {
        outcome(
            lab.t.lbs[0]
                .ns
                .command(&bin.to_string_lossy())
                .args(["check", "--host", "--config"])
                .arg(cfg),
        )
    };
    let (ok, out) = preflight(&lab.agent(0).config);
    assert!(ok && out.contains("PASS  BIRD "), "{out}");
    let wrong = lab.dir.0.join("wrong-socket.yaml");
    let yaml = std::fs::read_to_string(&lab.agent(0).config).expect("config");
    let yaml = yaml.replace("bird-lb1.ctl", "no-such.ctl");
    lb_tests::agent::write_config(&wrong, &yaml).expect("config");
    let (ok, out) = preflight(&wrong);
    assert!(!ok && out.contains("FAIL  BIRD "), "{out}");

    // A service below quorum on one node is withdrawn there and nowhere else: lb1's checks
    // of r2 fail (dropped on lb1 only), so lb1 has 1 of the 2 reals its quorum needs.
    let r2 = real_ip(1).to_string();
    lab.t.lbs[0]
        .ns
        .drop_output("lbquorum", &["ip", "daddr", &r2, "tcp", "dport", "80"])
        .expect("nft");
    let others: Vec<Ipv4Addr> = (1..NODES).map(lb_ip).collect();
    wait_hops(lab.router_ns(), &others, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lb1 below quorum not withdrawn:\n{}", lab.dump()));
    let s = lab.status(0).expect("status");
    let why = s["bgp"]["vips"][0]["why"].as_str().unwrap_or_default();
    assert!(why.contains("below quorum"), "{s}");
    for i in 1..NODES {
        let s = lab.status(i).expect("status");
        assert_eq!(s["bgp"]["vips"][0]["announced"], true, "{s}");
    }
    lab.t.lbs[0].ns.undrop("lbquorum").expect("nft");
    wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lb1 never announced again:\n{}", lab.dump()));

    // SIGTERM of lb1's agent: withdraw first, drain, then stop; no request fails.
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    let requests = Requests::start(&lab.far.client, lab.vip80()).expect("requests");
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut a = lab.agents[0].take().expect("lb1");
    a.proc.signal(libc::SIGTERM).expect("SIGTERM");
    let changed =
        wait_hops(lab.router_ns(), &others, Duration::from_secs(10)).map(|_| t0.elapsed());
    let exited = a.proc.wait_timeout(Duration::from_secs(10)).expect("wait");
    assert!(
        exited.is_some_and(|s| s.success()),
        "lb1 did not stop cleanly:\n{}",
        a.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let req = requests.finish().expect("requests");
    rows.push(Row {
        event: "SIGTERM of one node's agent",
        held: held.finish(),
        route_changed: changed,
        requests: Some(req),
    });
    assert!(changed.is_some(), "{}", lab.dump());

    // lb1 joins again: ECMP moves some flows onto it.
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    let t0 = Instant::now();
    lab.start_agent(0, &[0, 1]).expect("lb1 again");
    let changed =
        wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(20)).map(|_| t0.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "a node joins",
        held: held.finish(),
        route_changed: changed,
        requests: None,
    });
    assert!(changed.is_some(), "{}", lab.dump());

    // SIGKILL of lb2's agent: the pinned XDP program keeps forwarding and BIRD keeps
    // announcing (docs/bgp.md): nothing changes for the router.
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    let mut a = lab.agents[1].take().expect("lb2");
    a.proc.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        next_hops(lab.router_ns(), VIP),
        lb_hops(),
        "route kept after the crash"
    );
    lab.start_agent(1, &[0, 1]).expect("lb2 again");
    assert!(
        lab.agent(1)
            .wait_log("VIP announced", Duration::from_secs(10)),
        "{}",
        lab.agent(1).log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(next_hops(lab.router_ns(), VIP), lb_hops());
    rows.push(Row {
        event: "SIGKILL of one node's agent, then restart",
        held: held.finish(),
        route_changed: None,
        requests: None,
    });

    // Link down on lb3: BFD takes it out of the route; its flows move to the other nodes,
    // which send them to the same reals (Maglev agreement).
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    let t0 = Instant::now();
    lab.t.lbs[2]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    let two: Vec<Ipv4Addr> = (0..2).map(lb_ip).collect();
    let changed = wait_hops(lab.router_ns(), &two, Duration::from_secs(10)).map(|_| t0.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "link down on one node",
        held: held.finish(),
        route_changed: changed,
        requests: None,
    });
    assert!(changed.is_some(), "{}", lab.dump());
    lab.t.lbs[2]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("link up");
    wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("lb3 never back in the route:\n{}", lab.dump()));

    // A real added to every node: established flows stay where their connection entry says.
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    lab.add_r3_everywhere().expect("r3 added");
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "a real added to every node",
        held: held.finish(),
        route_changed: None,
        requests: None,
    });

    print_table(&rows);
    for r in &rows {
        assert!(r.held.all_same(), "{}: {}\n{}", r.event, r.held, lab.dump());
        if let Some((sent, failed)) = r.requests {
            assert!(sent > 10, "{}: only {sent} requests", r.event);
            assert_eq!(
                failed, 0,
                "{}: {failed} of {sent} new requests failed",
                r.event
            );
        }
    }
}

/// docs/bgp.md shows exactly the BIRD configs this lab runs (with the page's example
/// addresses), so the page cannot drift from what is tested.
#[test]
fn the_deployment_page_shows_the_tested_bird_configs() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bgp.md"))
        .expect("docs/bgp.md");
    let node = lb_node_conf(&LbNode {
        node_ip: Ipv4Addr::new(10, 0, 0, 11),
        local_as: NODE_AS,
        router_ip: Ipv4Addr::new(10, 0, 0, 1),
        router_as: ROUTER_AS,
        routes_file: "/run/lb/bird-vips.conf",
        routes_file6: "/run/lb/bird-vips6.conf",
    });
    let nodes: Vec<(Ipv4Addr, u32)> = (11..14)
        .map(|n| (Ipv4Addr::new(10, 0, 0, n), NODE_AS))
        .collect();
    let router = router_conf(Ipv4Addr::new(10, 0, 0, 1), ROUTER_AS, &nodes);
    for (what, conf) in [("LB node", node), ("router", router)] {
        assert!(
            page.contains(&conf),
            "docs/bgp.md lacks the tested {what} config:\n{conf}"
        );
    }
}
