//! The product's main promise, event by event: established connections survive. Two agents
//! (VRRP v3 at 100 ms, priorities 150 and 100) in front of three reals with TCP checks; 60
//! long-lived connections through the VIP each answer a line every 100 ms across the event,
//! and afterwards every one must still be answered by the real it started on.

use std::time::{Duration, SystemTime};

use lb_tests::{
    held::{Held, HeldReport},
    netns::wait_for,
    pair::{vip_addr, Node, Pair},
};

const CONNS: usize = 60;
const PERIOD: Duration = Duration::from_millis(100);

/// Health checks every 100 ms that mark a real down after one failure: any check judged
/// through our own outage would show.
fn nodes() -> Vec<Node> {
    let checks = "    delay_loop: 100ms\n    checks: [ { tcp: { connect_timeout: 100ms } } ]\n";
    [150, 100]
        .map(|prio| Node {
            service_extra: checks.into(),
            ..Node::v3(prio)
        })
        .to_vec()
}

fn start(tag: &str) -> (Pair, Held) {
    start_with(tag, 3)
}

fn start_with(tag: &str, reals: usize) -> (Pair, Held) {
    let p = Pair::start(tag, nodes(), reals).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let held = Held::open(&p.t.client.ns, vip_addr(80), CONNS, PERIOD).expect("connections");
    let spread: std::collections::BTreeSet<&String> = held.reals.iter().collect();
    assert_eq!(
        spread.len(),
        reals,
        "the connections should spread over the reals: {:?}",
        held.reals
    );
    (p, held)
}

fn check(event: &str, p: &Pair, r: &HeldReport) {
    eprintln!("measured: {event}: {r}");
    assert!(
        r.all_same(),
        "{event}: {r}\n--- node 0 ---\n{}\n--- node 1 ---\n{}",
        p.agents[0]
            .as_ref()
            .map(|a| a.log_text())
            .unwrap_or_default(),
        p.agents[1]
            .as_ref()
            .map(|a| a.log_text())
            .unwrap_or_default(),
    );
}

#[test]
fn master_link_down_and_back_with_preempt_keeps_every_connection() {
    let (p, held) = start("lbhl");
    let t0 = SystemTime::now();
    p.t.lbs[0]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    wait_for(Duration::from_secs(5), || p.became_master_after(1, t0)).expect("takeover");
    // Down long enough for every check and every ARP attempt through it to have failed.
    std::thread::sleep(Duration::from_secs(3));
    let t1 = SystemTime::now();
    p.t.lbs[0]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("link up");
    wait_for(Duration::from_secs(10), || p.became_master_after(0, t1)).expect("preempt back");
    p.wait_master(0, Duration::from_secs(5))
        .expect("only master");
    // Past the returning master's first neighbour refreshes and checks.
    std::thread::sleep(Duration::from_secs(4));
    check("master link down and back", &p, &held.finish());
}

#[test]
fn master_killed_and_restarted_keeps_every_connection() {
    let (mut p, held) = start("lbhk");
    let t0 = SystemTime::now();
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.kill();
    }
    wait_for(Duration::from_secs(5), || p.became_master_after(1, t0)).expect("takeover");
    std::thread::sleep(Duration::from_secs(1));
    // While the agent is away its node's neighbour table is flushed (a crash of a host
    // service, an operator): the restarted agent must not depend on it.
    p.t.lbs[0]
        .ns
        .ip(&["neigh", "flush", "dev", "eth0"])
        .expect("flush");
    let t1 = SystemTime::now();
    p.agents[0] = Some(p.start_agent(0).expect("restart"));
    wait_for(Duration::from_secs(10), || p.became_master_after(0, t1)).expect("preempt back");
    p.wait_master(0, Duration::from_secs(5))
        .expect("only master");
    std::thread::sleep(Duration::from_secs(3));
    check("master SIGKILL and restart", &p, &held.finish());
}

#[test]
fn neighbour_flush_on_the_master_keeps_every_connection() {
    let (p, held) = start("lbhf");
    for _ in 0..3 {
        p.t.lbs[0]
            .ns
            .ip(&["neigh", "flush", "dev", "eth0"])
            .expect("flush");
        std::thread::sleep(Duration::from_millis(700));
    }
    std::thread::sleep(Duration::from_secs(2));
    check("neighbour flush on the master", &p, &held.finish());
    assert!(p.holds_vip(0) && !p.holds_vip(1), "the master changed");
}

#[test]
fn backup_link_flap_changes_nothing() {
    let (p, held) = start("lbhb");
    let before = p.agent(0).log_text().len();
    p.t.lbs[1]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    std::thread::sleep(Duration::from_secs(2));
    p.t.lbs[1]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("link up");
    std::thread::sleep(Duration::from_secs(4));
    check("backup link flap", &p, &held.finish());
    let log = p.agent(0).log_text();
    assert!(
        !log[before..].contains("VRRP state change"),
        "the master changed state:\n{log}"
    );
    p.wait_master(0, Duration::from_secs(2))
        .expect("still the only master");
}

#[test]
fn a_service_without_a_usable_real_drops_and_keeps_every_connection() {
    // One real, so no flow can move: the question is only what happens to packets while the
    // service has no usable real.
    let (p, held) = start_with("lbha", 1);
    // The master's own checks cannot reach the real for a moment (forwarded frames are not
    // affected): it is marked down, the service has no usable real. Its packets must be
    // dropped (TCP retransmits), not handed to the master's stack, which holds the VIP and
    // would reset them.
    let lb = &p.t.lbs[0].ns;
    let ups_before = p.agent(0).log_text().matches("real server UP").count();
    lb.drop_output("lbtest", &["tcp", "flags", "syn", "tcp", "dport", "80"])
        .expect("block checks");
    let downs = wait_for(Duration::from_secs(5), || {
        let n = p.agent(0).log_text().matches("real server DOWN").count();
        (n >= 2).then_some(n)
    });
    std::thread::sleep(Duration::from_millis(500));
    lb.undrop("lbtest").expect("unblock");
    assert!(
        downs.is_some(),
        "the checks never failed:\n{}",
        p.agent(0).log_text()
    );
    let ups = wait_for(Duration::from_secs(5), || {
        let n = p.agent(0).log_text().matches("real server UP").count();
        (n >= ups_before + 2).then_some(())
    });
    assert!(
        ups.is_some(),
        "the reals never came back:\n{}",
        p.agent(0).log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    check("the only real down for a moment", &p, &held.finish());
}
