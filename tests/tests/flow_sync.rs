//! Flow-state sharing (issue 18). VRRP mode: two agents (v3, 100 ms, priorities 150 and 100)
//! in front of three reals. The connections begin while the nodes serve two reals; then the
//! third is added on both nodes (so Maglev would now send a third of the flows elsewhere) and
//! the master stops. With `flow_sync`, the backup received every entry and keeps each flow on
//! its real; without it (the positive control) some of them break. A returning master
//! preempts only after its bulk sync. Scale-out mode: the same with three nodes behind ECMP
//! and one node stopping.

use std::time::{Duration, SystemTime};

use lb_tests::{
    client::{FlowsReport, UdpFlows},
    held::{Held, HeldReport},
    netns::wait_for,
    pair::{vip_addr, Node, Pair},
    scale_out::{wait_hops, ScaleOut, NODES},
    topology::lb_ip,
};

const CONNS: usize = 60;
const PERIOD: Duration = Duration::from_millis(100);
const KEY: &str = "lab-flow-sync-key-0123456789";

/// The `flow_sync` section both nodes run (the same list on each: a node skips itself).
fn sync_section(extra: &str) -> String {
    format!(
        "flow_sync:\n  peers: [{}, {}]\n  key: {KEY}\n  batch_interval: 20ms\n{extra}",
        lb_ip(0),
        lb_ip(1)
    )
}

fn nodes(sync: Option<&str>) -> Vec<Node> {
    [150, 100]
        .map(|prio| Node {
            top_extra: sync.map(sync_section).unwrap_or_default(),
            service_extra:
                "    delay_loop: 200ms\n    checks: [ { tcp: { connect_timeout: 200ms } } ]\n"
                    .into(),
            ..Node::v3(prio)
        })
        .to_vec()
}

fn status_u64(p: &Pair, i: usize, path: &[&str]) -> u64 {
    let Ok(mut v) = p.agent(i).status() else {
        return 0;
    };
    for k in path {
        v = v[*k].take();
    }
    v.as_u64().unwrap_or(0)
}

/// Both nodes' `flow_sync` status, for failure messages.
fn sync_status(p: &Pair) -> String {
    (0..2)
        .map(|i| {
            let s = p.agent(i).status().map(|s| s["flow_sync"].to_string());
            format!("node {i}: {}\n", s.unwrap_or_default())
        })
        .collect()
}

/// Two reals configured, connections opened, the third real added, then the master stops.
/// `sync`: the extra `flow_sync` keys, or None for no `flow_sync` at all.
fn real_added_then_master_stops(tag: &str, sync: Option<&str>) -> (Pair, HeldReport) {
    let mut p = Pair::start_configured(tag, nodes(sync), 3, 2).expect("lab");
    let refreshes = sync.is_some_and(|s| s.contains("refresh_interval"));
    let sync = sync.is_some();
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let held = Held::open(&p.t.client.ns, vip_addr(80), CONNS, PERIOD).expect("connections");
    if sync {
        let got = wait_for(Duration::from_secs(5), || {
            let n = status_u64(&p, 1, &["flow_sync", "records_applied"]);
            (n >= CONNS as u64).then_some(n)
        });
        assert!(
            got.is_some(),
            "the backup never applied the master's {CONNS} flows:\n{}",
            sync_status(&p)
        );
    }
    if refreshes {
        // The master, forwarding, re-sends its whole table every refresh_interval: the backup
        // applies every entry again, so its copies stay as fresh as the master's.
        let refreshed = wait_for(Duration::from_secs(8), || {
            let sent = status_u64(&p, 0, &["flow_sync", "refreshed"]);
            let applied = status_u64(&p, 1, &["flow_sync", "records_applied"]);
            (sent >= CONNS as u64 && applied >= 2 * CONNS as u64).then_some(())
        });
        assert!(
            refreshed.is_some(),
            "no refresh reached the backup:\n{}",
            sync_status(&p)
        );
    }
    p.reload_reals(3).expect("r3 added on both nodes");
    let t0 = SystemTime::now();
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.signal(libc::SIGTERM).expect("SIGTERM");
    }
    wait_for(Duration::from_secs(5), || p.became_master_after(1, t0)).expect("takeover");
    std::thread::sleep(Duration::from_secs(2));
    (p, held.finish())
}

#[test]
fn a_real_added_before_a_failover_keeps_every_connection_with_flow_sync() {
    let (p, r) = real_added_then_master_stops("lbfs", Some("  refresh_interval: 5s\n"));
    eprintln!("measured: with flow_sync: {r}");
    // While it forwarded, the master re-sent its table every 5 s (refresh): the backup's
    // status counts it (the master stopped since).
    assert!(
        r.all_same(),
        "{r}\n--- node 1 ---\n{}",
        p.agent(1).log_text()
    );
    let dropped = p.agent(1).status().expect("status")["flow_sync"]["dropped"].clone();
    assert_eq!(
        dropped,
        serde_json::json!({}),
        "nothing dropped between honest peers"
    );
}

#[test]
fn without_flow_sync_the_same_failover_breaks_connections() {
    let (_p, r) = real_added_then_master_stops("lbfn", None);
    eprintln!("measured: without flow_sync: {r}");
    assert!(
        r.broken > 0,
        "the positive control should lose connections: {r}"
    );
}

/// Flows held through the returning master: TCP connections answering every 100 ms, and
/// many UDP flows (an entry each), all begun on node 1 while node 0 was away.
const RETURN_CONNS: usize = 100;
const RETURN_UDP_FLOWS: usize = 10_000;

/// Node 0 is killed; node 1 takes over and the flows begin there (two reals); r3 is added;
/// node 0 restarts with three reals and preempts. Node 0 never saw these flows: only the bulk
/// sync can give them to it.
fn master_returns(tag: &str, bulk_timeout: &str) -> (Pair, SystemTime, HeldReport, FlowsReport) {
    let extra = format!("  bulk_sync_timeout: {bulk_timeout}\n");
    let mut p = Pair::start_configured(tag, nodes(Some(&extra)), 3, 2).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let t0 = SystemTime::now();
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.kill();
    }
    wait_for(Duration::from_secs(5), || p.became_master_after(1, t0)).expect("takeover");
    let held = Held::open(&p.t.client.ns, vip_addr(80), RETURN_CONNS, PERIOD).expect("tcp");
    let udp = UdpFlows::open(&p.t.client.ns, vip_addr(80), RETURN_UDP_FLOWS).expect("udp flows");
    p.agents[0] = None;
    p.reload_reals(3).expect("r3 added on node 1");
    let t1 = SystemTime::now();
    p.agents[0] = Some(p.start_agent(0).expect("restart"));
    wait_for(Duration::from_secs(15), || p.became_master_after(0, t1)).expect("preempt back");
    std::thread::sleep(Duration::from_secs(2));
    let udp = udp.check();
    (p, t1, held.finish(), udp)
}

#[test]
fn a_returning_master_preempts_only_after_its_bulk_sync_and_keeps_every_flow() {
    let (p, restarted, tcp, udp) = master_returns("lbfb", "10s");
    eprintln!("measured: returning master with bulk sync: {tcp}; {udp}");
    let log = p.agent(0).log_text();
    let synced = log
        .lines()
        .filter(|l| l.contains("bulk sync done"))
        .filter_map(|l| lb_tests::pair::parse_log_time(l.split_whitespace().next()?))
        .find(|t| *t >= restarted);
    let master = p.became_master_after(0, restarted).map(|d| restarted + d);
    assert!(
        synced.is_some() && master.is_some() && synced <= master,
        "node 0 must finish its bulk sync before it preempts (sync {synced:?}, master {master:?}):\n{log}"
    );
    // What docs/flow-sync.md shows under "What you see".
    if let Ok((_, text, _)) = p.agent(0).cli(&["status"]) {
        eprintln!("status of the returned master:\n{text}");
    }
    let bulk = &p.agent(0).status().expect("status")["flow_sync"]["bulk"];
    assert_eq!(bulk["state"], "done", "{bulk}");
    assert!(
        bulk["applied"].as_u64().unwrap_or(0) >= (RETURN_CONNS + RETURN_UDP_FLOWS) as u64,
        "the whole table: {bulk}"
    );
    assert!(tcp.all_same(), "{tcp}\n{log}");
    assert_eq!(udp.same, RETURN_UDP_FLOWS, "{udp}");
}

#[test]
fn a_returning_master_without_its_bulk_sync_moves_flows() {
    // The positive control: no time for the bulk sync, so node 0 preempts with its own
    // Maglev choice for flows it never saw.
    let (_p, _, tcp, udp) = master_returns("lbfc", "0s");
    eprintln!("measured: returning master without bulk sync: {tcp}; {udp}");
    assert!(tcp.broken > 0 && udp.moved > 0, "{tcp}; {udp}");
}

/// Scale-out mode: three nodes behind the ECMP router, 100 connections spread over them
/// (reals r1 and r2); r3 is added on every node, then lb1's agent stops and the router moves
/// its flows to the other two.
fn scale_out_real_added_then_node_stops(tag: &str, sync: bool) -> HeldReport {
    let bin = lb_tests::topology::bin_path("lb-agent").expect("lb-agent built");
    let extra = if sync {
        format!(
            "flow_sync:\n  peers: [{}, {}, {}]\n  key: {KEY}\n  batch_interval: 20ms\n",
            lb_ip(0),
            lb_ip(1),
            lb_ip(2)
        )
    } else {
        String::new()
    };
    let mut lab = ScaleOut::start_with(tag, &bin, extra).expect("scale-out lab");
    let held = lab.hold_n(100).expect("100 connections through the VIP");
    if sync {
        // Every node has the other nodes' flows: each applied what the two others made.
        let all = wait_for(Duration::from_secs(5), || {
            (0..NODES)
                .all(|i| {
                    lab.status(i).is_some_and(|s| {
                        let got = s["flow_sync"]["records_applied"].as_u64().unwrap_or(0);
                        let own = s["info"]["flow_new"].as_u64().unwrap_or(0);
                        got + own >= 100
                    })
                })
                .then_some(())
        });
        assert!(
            all.is_some(),
            "not every flow reached every node:\n{}",
            lab.dump()
        );
    }
    lab.add_r3_everywhere().expect("r3 added");
    let a = lab.agents[0].take().expect("lb1");
    a.proc.signal(libc::SIGTERM).expect("SIGTERM");
    let two: Vec<std::net::Ipv4Addr> = (1..NODES).map(lb_ip).collect();
    wait_hops(lab.router_ns(), &two, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lb1 never left the route:\n{}", lab.dump()));
    std::thread::sleep(Duration::from_secs(2));
    drop(a);
    held.finish()
}

#[test]
fn scale_out_a_real_added_before_a_node_stops_keeps_every_connection_with_flow_sync() {
    let r = scale_out_real_added_then_node_stops("lbfe", true);
    eprintln!("measured: scale-out with flow_sync: {r}");
    assert!(r.all_same(), "{r}");
}

#[test]
fn scale_out_without_flow_sync_the_same_stop_breaks_connections() {
    let r = scale_out_real_added_then_node_stops("lbfx", false);
    eprintln!("measured: scale-out without flow_sync: {r}");
    assert!(
        r.broken > 0,
        "the positive control should lose connections: {r}"
    );
}

/// Datagrams a peer must not accept: each is dropped and counted under its own reason, and
/// none reaches the connection table.
#[test]
fn hostile_sync_datagrams_are_dropped_under_their_own_counters() {
    use lb_agent::flowsync::wire::{Builder, Key, Kind, Record, AGE_UNKNOWN, MAX_DATAGRAM};
    use std::net::{SocketAddr, UdpSocket};

    let p = Pair::start_configured("lbfh", nodes(Some("")), 3, 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let target = SocketAddr::from((lb_ip(1), 7789));
    let record = |real: u8| Record {
        proto: 6,
        client: "10.99.0.2:40000".parse().expect("addr"),
        vip: vip_addr(80),
        real: SocketAddr::from(([10, 99, 0, real], 80)),
        age_us: AGE_UNKNOWN,
    };
    let signed = |key: &[u8], real: u8| {
        let mut b = Builder::new(Kind::Flows, 1, Some(Key::new(key)), MAX_DATAGRAM);
        assert!(b.push(&record(real)));
        b.finish(1, 0, None)
    };
    let good_key = KEY.as_bytes();
    // 10.99.0.99 is no real of the lab.
    let unknown_real = signed(good_key, 99);
    let bad_mac = signed(b"another-key-0123456789", 11);
    let mut truncated = signed(good_key, 11);
    truncated.truncate(30);
    let oversized = vec![0u8; MAX_DATAGRAM + 100];
    let send = |ns: &lb_tests::netns::Netns, msgs: Vec<Vec<u8>>| {
        ns.enter(move || -> std::io::Result<()> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            for m in msgs {
                s.send_to(&m, target)?;
            }
            Ok(())
        })
        .expect("namespace")
        .expect("send");
    };
    // The master's own flows so far (the election's probe) have reached the backup.
    let applied_before = wait_for(Duration::from_secs(5), || {
        let sent = status_u64(&p, 0, &["flow_sync", "records_sent"]);
        let applied = status_u64(&p, 1, &["flow_sync", "records_applied"]);
        (sent > 0 && applied == sent).then_some(applied)
    })
    .expect("the master's flows reach the backup");
    // From node 0 (a peer), and from the client (not a peer, with a valid message).
    send(
        &p.t.lbs[0].ns,
        vec![unknown_real, bad_mac, truncated, oversized],
    );
    send(&p.t.client.ns, vec![signed(good_key, 11)]);
    let want = [
        "unknown_real",
        "bad_mac",
        "truncated",
        "oversized",
        "not_peer",
    ];
    let dropped = wait_for(Duration::from_secs(5), || {
        let d = p.agent(1).status().ok()?["flow_sync"]["dropped"].clone();
        want.iter().all(|k| d[*k].as_u64() == Some(1)).then_some(d)
    });
    assert!(
        dropped.is_some(),
        "each datagram counted once under its reason:\n{}",
        sync_status(&p)
    );
    assert_eq!(
        status_u64(&p, 1, &["flow_sync", "records_applied"]),
        applied_before,
        "nothing applied"
    );
}

#[test]
fn flow_records_travel_over_a_multicast_group() {
    let group = "  group: 239.255.77.1\n  interface: eth0\n";
    let (p, r) = real_added_then_master_stops("lbfg", Some(group));
    eprintln!("measured: with flow_sync over a multicast group: {r}");
    assert!(r.all_same(), "{r}\n{}", sync_status(&p));
    // The backup (now master) heard the old master on the group.
    let peers = &p.agent(1).status().expect("status")["flow_sync"]["peers"];
    assert!(
        peers[0]["records_received"].as_u64().unwrap_or(0) >= CONNS as u64,
        "{peers}"
    );
}
