//! Faults around agent restarts, under traffic: the flow table survives a restart of the
//! master's agent (pinned maps), and a restarted agent removes the VIPs an earlier run left
//! and never answers for a VIP it no longer owns.

use std::time::Duration;

use lb_tests::{
    client::LongConn,
    netns::wait_for,
    pair::{vip_addr, Node, Pair},
};

fn active_flows(p: &Pair, i: usize) -> u64 {
    let s = p.agent(i).status().expect("status");
    s["services"]
        .as_array()
        .map(|v| {
            v.iter()
                .flat_map(|svc| svc["reals"].as_array().cloned().unwrap_or_default())
                .filter_map(|r| r["active_flows"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn restarting_the_masters_agent_keeps_its_flow_table_and_connections() {
    let mut p = Pair::start("lbrs", vec![Node::v3(150), Node::v3(100)], 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let mut conns: Vec<LongConn> = (0..10)
        .map(|_| LongConn::open(&p.t.client.ns, vip_addr(80)).expect("connect"))
        .collect();
    let before = active_flows(&p, 0);
    assert!(before >= 10, "{before} flows in lb1's table");

    // SIGKILL and an immediate restart: lb2 may step in meanwhile; lb1 preempts back.
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.kill();
    }
    p.agents[0] = Some(p.start_agent(0).expect("restart"));
    assert!(
        p.agent(0)
            .wait_log("reusing pinned maps", Duration::from_secs(10)),
        "{}",
        p.agent(0).log_text()
    );
    p.wait_master(0, Duration::from_secs(10))
        .expect("lb1 master again");
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c
            .ping(1)
            .unwrap_or_else(|e| panic!("connection {i} broke across the restart: {e}"));
        assert_eq!(r, c.real);
    }
    let after = active_flows(&p, 0);
    assert!(
        after >= before,
        "the flow table lost entries across the restart: {before} -> {after}"
    );
}

#[test]
fn restarted_agent_removes_stale_vips_and_stays_away_from_them() {
    let mut n1 = Node::v3(150);
    n1.instance_extra = "    nopreempt: true\n".into();
    let mut p = Pair::start("lbrv", vec![n1, Node::v3(100)], 2).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.kill();
    }
    // lb1's kernel still holds the VIP: nobody removed it.
    assert!(
        p.holds_vip(0),
        "a killed agent's VIP stays until it restarts"
    );
    assert!(
        wait_for(Duration::from_secs(5), || p.holds_vip(1).then_some(())).is_some(),
        "lb2 never took over"
    );

    p.agents[0] = Some(p.start_agent(0).expect("restart"));
    assert!(
        p.agent(0).wait_log(
            "removed a VIP left by an earlier run",
            Duration::from_secs(10)
        ),
        "{}",
        p.agent(0).log_text()
    );
    // From then on lb1 never holds the VIP (nopreempt: lb2 stays master), and stops
    // forwarding once it has heard lb2.
    for _ in 0..60 {
        assert!(
            !p.holds_vip(0),
            "the restarted node answered for a VIP it does not own"
        );
        assert!(p.holds_vip(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !p.t.xdp_attached(0).expect("ip"),
        "the adopted XDP link was not released"
    );
}
