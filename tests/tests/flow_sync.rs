//! Flow-state sharing (issue 18), VRRP mode: two agents (v3, 100 ms, priorities 150 and 100)
//! in front of three reals. The connections begin while the nodes serve two reals; then the
//! third is added on both nodes (so Maglev would now send a third of the flows elsewhere) and
//! the master stops. With `flow_sync`, the backup received every entry and keeps each flow on
//! its real; without it (the positive control) some of them break.

use std::time::{Duration, SystemTime};

use lb_tests::{
    held::{Held, HeldReport},
    netns::wait_for,
    pair::{vip_addr, Node, Pair},
    topology::lb_ip,
};

const CONNS: usize = 60;
const PERIOD: Duration = Duration::from_millis(100);
const KEY: &str = "lab-flow-sync-key-0123456789";

/// The `flow_sync` section both nodes run (the same list on each: a node skips itself).
fn sync_section() -> String {
    format!(
        "flow_sync:\n  peers: [{}, {}]\n  key: {KEY}\n  batch_interval: 20ms\n",
        lb_ip(0),
        lb_ip(1)
    )
}

fn nodes(sync: bool) -> Vec<Node> {
    [150, 100]
        .map(|prio| Node {
            top_extra: if sync { sync_section() } else { String::new() },
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

/// Two reals configured, connections opened, the third real added, then the master stops.
fn real_added_then_master_stops(tag: &str, sync: bool) -> (Pair, HeldReport) {
    let mut p = Pair::start_configured(tag, nodes(sync), 3, 2).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let held = Held::open(&p.t.client.ns, vip_addr(80), CONNS, PERIOD).expect("connections");
    if sync {
        let got = wait_for(Duration::from_secs(5), || {
            let n = status_u64(&p, 1, &["flow_sync", "records_applied"]);
            (n >= CONNS as u64).then_some(n)
        });
        assert!(
            got.is_some(),
            "the backup never applied the master's {CONNS} flows:\n{}\n{}",
            p.agent(0)
                .status()
                .map(|s| s["flow_sync"].to_string())
                .unwrap_or_default(),
            p.agent(1)
                .status()
                .map(|s| s["flow_sync"].to_string())
                .unwrap_or_default(),
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
    let (p, r) = real_added_then_master_stops("lbfs", true);
    eprintln!("measured: with flow_sync: {r}");
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
    let (_p, r) = real_added_then_master_stops("lbfn", false);
    eprintln!("measured: without flow_sync: {r}");
    assert!(
        r.broken > 0,
        "the positive control should lose connections: {r}"
    );
}
