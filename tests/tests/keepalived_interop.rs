//! Interop with the real keepalived (Debian's package) in a namespace lab, both roles, for v2
//! without and with PASS authentication, v3 and unicast: election, graceful takeover and
//! preemption must behave as between two keepalived nodes.

use std::{
    net::IpAddr,
    time::{Duration, SystemTime},
};

use lb_tests::{
    agent::{Agent, WorkDir},
    keepalived::{self, Flavour, Keepalived},
    netns::wait_for,
    pair::{config, Family, Node},
    topology::{lb_ip, Spec, Topology, VIP, VIP6},
};

fn node(f: &Flavour, priority: u8) -> Node {
    let mut n = if f.version == 2 {
        Node::v2(priority)
    } else {
        Node::v3(priority)
    };
    if let Some(p) = f.auth_pass {
        n.instance_extra += &format!("    authentication: {{ auth_type: PASS, auth_pass: {p} }}\n");
    }
    if let Some((src, peer)) = f.unicast {
        n.instance_extra += &format!("    unicast_src_ip: {src}\n    unicast_peers: [{peer}]\n");
    }
    if f.v6 {
        n.family = Family::V6;
    }
    n
}

fn vip(f: &Flavour) -> IpAddr {
    if f.v6 {
        VIP6.into()
    } else {
        VIP.into()
    }
}

fn wait_holder(t: &Topology, f: &Flavour, holder: usize, timeout: Duration) -> Option<Duration> {
    let t0 = std::time::Instant::now();
    wait_for(timeout, || {
        (t.holds(holder, vip(f)) && !t.holds(1 - holder, vip(f))).then(|| t0.elapsed())
    })
}

/// lb-agent (node 0) and keepalived (node 1); `lb_high`: which one has the higher priority.
fn interop(tag: &str, f: Flavour, lb_high: bool) {
    let mut t = Topology::build(
        tag,
        Spec {
            lbs: 2,
            reals: 1,
            native_xdp: true,
        },
    )
    .expect("topology");
    t.start_all_servers().expect("servers");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let (lb_prio, ka_prio) = if lb_high { (150, 100) } else { (100, 150) };
    let ka_flavour = Flavour {
        unicast: f.unicast.map(|(a, b)| (b, a)),
        ..f.clone()
    };
    let ka_conf = keepalived::conf("ka", ka_prio, &ka_flavour);
    let rid = t.router_id(0);
    let yaml = config(&rid, &node(&f, lb_prio), 1, "");
    let slow = if f.version == 2 { 5 } else { 2 };
    let limit = Duration::from_secs(slow * 3);

    // The higher priority starts first and must be master; then the other joins as backup.
    let (mut agent, mut ka);
    if lb_high {
        agent = Some(Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("agent"));
        wait_holder(&t, &f, 0, limit).unwrap_or_else(|| {
            panic!(
                "lb-agent never master:\n{}",
                agent.as_ref().map(|a| a.log_text()).unwrap_or_default()
            )
        });
        ka = Some(Keepalived::start(&t.lbs[1].ns, &dir, "ka", &ka_conf).expect("keepalived"));
    } else {
        ka = Some(Keepalived::start(&t.lbs[1].ns, &dir, "ka", &ka_conf).expect("keepalived"));
        wait_holder(&t, &f, 1, limit).unwrap_or_else(|| {
            panic!(
                "keepalived never master:\n{}",
                ka.as_ref().map(|k| k.log_text()).unwrap_or_default()
            )
        });
        agent = Some(Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("agent"));
    }
    let (high, low) = if lb_high { (0, 1) } else { (1, 0) };
    // Stable: the lower priority joins and does not take over.
    std::thread::sleep(Duration::from_secs(slow));
    let logs = |a: &Option<Agent>, k: &Option<Keepalived>| {
        format!(
            "lb-agent:\n{}\nkeepalived:\n{}",
            a.as_ref().map(|a| a.log_text()).unwrap_or_default(),
            k.as_ref().map(|k| k.log_text()).unwrap_or_default()
        )
    };
    assert!(
        t.holds(high, vip(&f)) && !t.holds(low, vip(&f)),
        "election not stable:\n{}",
        logs(&agent, &ka)
    );
    assert_eq!(
        t.xdp_attached(0).expect("ip"),
        lb_high,
        "XDP must follow mastership"
    );

    // Graceful stop of the master: the backup takes over after its Skew_Time.
    let t0 = SystemTime::now();
    if lb_high {
        agent.as_mut().expect("agent").stop().expect("stop agent");
    } else {
        ka.as_mut().expect("ka").stop().expect("stop keepalived");
    }
    let took = wait_holder(&t, &f, low, limit)
        .unwrap_or_else(|| panic!("no takeover:\n{}", logs(&agent, &ka)));
    let _ = t0;
    let bound = if f.version == 2 {
        Duration::from_millis(1500)
    } else {
        Duration::from_millis(400)
    };
    assert!(took < bound, "takeover took {took:?}");
    assert_eq!(
        t.xdp_attached(0).expect("ip"),
        !lb_high,
        "XDP must follow mastership"
    );

    // The higher priority comes back and preempts.
    if lb_high {
        agent = Some(Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("agent"));
    } else {
        ka = Some(Keepalived::start(&t.lbs[1].ns, &dir, "ka", &ka_conf).expect("keepalived"));
    }
    wait_holder(&t, &f, high, limit)
        .unwrap_or_else(|| panic!("no preemption:\n{}", logs(&agent, &ka)));
    assert!(wait_for(Duration::from_secs(2), || (t.xdp_attached(0).ok()?
        == lb_high)
        .then_some(()))
    .is_some());
    let mut lost = None;
    if f.v6 {
        // The master loses its link: the backup takes over; the link returns: preempted back.
        let dev = &t.switch;
        let port = &t.lbs[high].port;
        dev.ip(&["link", "set", port, "down"]).expect("link down");
        lost = Some(
            wait_for(limit, || t.holds(low, vip(&f)).then_some(()))
                .ok_or("no takeover on link loss"),
        );
        dev.ip(&["link", "set", port, "up"]).expect("link up");
        wait_holder(&t, &f, high, limit).unwrap_or_else(|| {
            panic!(
                "no preemption after the link returned:\n{}",
                logs(&agent, &ka)
            )
        });
    }
    if let Some(Err(e)) = lost {
        panic!("{e}:\n{}", logs(&agent, &ka));
    }
    eprintln!("measured: {tag}: takeover {took:?}");
}

fn v2() -> Flavour {
    Flavour {
        version: 2,
        advert_int: "1",
        auth_pass: None,
        unicast: None,
        v6: false,
    }
}

#[test]
fn v2_lb_master_keepalived_backup() {
    interop("lbk2a", v2(), true);
}

#[test]
fn v2_keepalived_master_lb_backup() {
    interop("lbk2b", v2(), false);
}

#[test]
fn v2_pass_auth_both_roles() {
    let f = Flavour {
        auth_pass: Some("s3cret"),
        ..v2()
    };
    interop("lbk2c", f.clone(), true);
    interop("lbk2d", f, false);
}

#[test]
fn v3_100ms_both_roles() {
    let f = Flavour {
        version: 3,
        advert_int: "0.1",
        auth_pass: None,
        unicast: None,
        v6: false,
    };
    interop("lbk3a", f.clone(), true);
    interop("lbk3b", f, false);
}

#[test]
fn v2_unicast_both_roles() {
    let f = Flavour {
        unicast: Some((lb_ip(0).into(), lb_ip(1).into())),
        ..v2()
    };
    interop("lbkua", f.clone(), true);
    interop("lbkub", f, false);
}

/// VRRPv3 over IPv6 (multicast ff02::12 from link-local addresses, unsolicited neighbour
/// advertisements): election, graceful stop, preemption, and takeover on link loss.
#[test]
fn v3_ipv6_both_roles() {
    let f = Flavour {
        version: 3,
        advert_int: "0.1",
        auth_pass: None,
        unicast: None,
        v6: true,
    };
    interop("lbk6a", f.clone(), true);
    interop("lbk6b", f, false);
}
