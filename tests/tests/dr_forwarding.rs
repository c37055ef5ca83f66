//! The standalone data path in a namespace lab: client, one load balancer, real servers with
//! the VIP on lo. Real TCP and UDP traffic, replies straight from the reals, and a long-lived
//! connection that survives reals being added and removed.

use std::{net::SocketAddr, time::Duration};

use lb_tests::{
    capture::Capture,
    client::{http_many, tally, udp_many, LongConn},
    netns::wait_for,
    standalone::Standalone,
    topology::{real_ip, CLIENT_IP, VIP},
};

fn config(router_id: &str, reals: &[usize]) -> String {
    let list: String = reals
        .iter()
        .map(|&i| format!("      - {{ address: {}, port: 80 }}\n", real_ip(i)))
        .collect();
    let mut y = format!(
        "global_defs:\n  router_id: {router_id}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: 65536\nvirtual_servers:\n"
    );
    for proto in ["tcp", "udp"] {
        y += &format!(
            "  - address: {VIP}\n    port: 80\n    protocol: {proto}\n    interface: eth0\n    real_servers:\n{list}"
        );
    }
    y
}

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

#[test]
fn standalone_dr_forwards_tcp_and_udp_to_every_real() {
    let l = Standalone::start("lbf", 4, true, |rid| config(rid, &[0, 1, 2])).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "no answer through the VIP; agent log:\n{}",
        l.agent.log_text()
    );
    let Standalone {
        mut agent,
        dir: _dir,
        t,
    } = l;
    assert!(t.xdp_attached(0).expect("ip link"), "XDP not attached");

    // Replies must not come back through the load balancer.
    let cap = Capture::start(&t.lbs[0].ns, "eth0").expect("capture");

    let tcp = http_many(&t.client.ns, vip(), 90).expect("tcp");
    let counts = tally(&tcp);
    assert_eq!(counts.get("error"), None, "TCP errors: {tcp:?}");
    for r in ["r1", "r2", "r3"] {
        assert!(
            counts.get(r).copied().unwrap_or(0) >= 10,
            "{r} got too few: {counts:?}"
        );
    }
    assert_eq!(counts.get("r4"), None, "r4 is not configured: {counts:?}");

    let udp = udp_many(&t.client.ns, vip(), 90).expect("udp");
    let counts = tally(&udp);
    assert_eq!(counts.get("error"), None, "UDP errors: {udp:?}");
    for r in ["r1", "r2", "r3"] {
        assert!(
            counts.get(r).copied().unwrap_or(0) >= 10,
            "{r} got too few UDP: {counts:?}"
        );
    }

    // Control: the capture does see what the LB's own stack receives (pings to its address).
    t.client
        .ns
        .exec("ping", &["-c", "3", "-i", "0.05", "-W", "1", "10.99.0.3"])
        .expect("ping lb");
    let reals: Vec<std::net::IpAddr> = (0..4).map(|i| real_ip(i).into()).collect();
    let seen = cap.take();
    let count = |f: &dyn Fn(std::net::IpAddr, std::net::IpAddr) -> bool| {
        seen.iter().filter(|(s, d)| f(*s, *d)).count()
    };
    let via_lb = count(&|s, d| reals.contains(&s) && d == CLIENT_IP);
    let pings = count(&|s, d| s == CLIENT_IP && d == std::net::Ipv4Addr::new(10, 99, 0, 3));
    assert!(
        pings >= 3,
        "the capture missed the pings to the load balancer itself ({pings}): it cannot vouch \
         for what it did not see"
    );
    assert_eq!(via_lb, 0, "real->client frames reached the load balancer");

    agent.stop().expect("stop");
    assert!(
        !t.xdp_attached(0).expect("ip link"),
        "XDP still attached after a clean stop"
    );
}

#[test]
fn long_lived_connection_survives_reals_added_and_removed() {
    let l = Standalone::start("lbl", 4, true, |rid| config(rid, &[0, 1, 2])).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "no answer; log:\n{}",
        l.agent.log_text()
    );
    let Standalone {
        agent,
        dir: _dir,
        t,
    } = l;
    let rid = t.router_id(0);

    let mut conn = LongConn::open(&t.client.ns, vip()).expect("connect");
    let mine: usize = conn.real[1..].parse::<usize>().expect("real name") - 1;
    let mut seq = 1;
    let mut ping = |conn: &mut LongConn| {
        for _ in 0..20 {
            let r = conn.ping(seq).expect("long-lived connection broke");
            assert_eq!(r, conn.real, "the connection moved to another real");
            seq += 1;
        }
    };
    ping(&mut conn);

    // Add r4: every Maglev table changes, the connection table keeps this flow where it is.
    agent.reload(&config(&rid, &[0, 1, 2, 3])).expect("reload");
    assert!(
        agent.wait_log("configuration reloaded", Duration::from_secs(10)),
        "{}",
        agent.log_text()
    );
    ping(&mut conn);
    let served = wait_for(Duration::from_secs(10), || {
        let c = tally(&http_many(&t.client.ns, vip(), 40).ok()?);
        c.contains_key("r4").then_some(c)
    });
    assert!(served.is_some(), "the added real never got traffic");

    // Remove two reals that are not this connection's.
    let keep: Vec<usize> = (0..4)
        .filter(|&i| i == mine || i == (mine + 1) % 4)
        .collect();
    agent.reload(&config(&rid, &keep)).expect("reload");
    assert!(wait_for(Duration::from_secs(10), || (agent
        .log_text()
        .matches("configuration reloaded")
        .count()
        >= 2)
        .then_some(()))
    .is_some());
    ping(&mut conn);
    let counts = tally(&http_many(&t.client.ns, vip(), 40).expect("tcp"));
    assert_eq!(counts.get("error"), None, "{counts:?}");
    assert_eq!(
        counts.len(),
        2,
        "only the two remaining reals may serve: {counts:?}"
    );
}

#[test]
fn a_flushed_neighbour_keeps_forwarding_and_a_silent_real_leaves() {
    let l = Standalone::start("lbfn", 3, true, |rid| config(rid, &[0, 1, 2])).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    let Standalone {
        agent,
        dir: _dir,
        t,
    } = l;

    // The kernel forgets every neighbour (as it does when a link goes down): nothing is refused
    // while the reals re-resolve (two agent ticks).
    t.lbs[0]
        .ns
        .ip(&["neigh", "flush", "dev", "eth0"])
        .expect("flush");
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut answers = Vec::new();
    while std::time::Instant::now() < until {
        answers.extend(http_many(&t.client.ns, vip(), 10).expect("requests"));
    }
    let counts = tally(&answers);
    assert_eq!(counts.get("error"), None, "after the flush: {counts:?}");

    // r2 stops answering ARP (its link is down) and is asked again: once the kernel gives up on
    // it, it leaves, and every request goes to r1 or r3.
    t.reals[1]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("r2 down");
    t.lbs[0]
        .ns
        .ip(&["neigh", "del", &real_ip(1).to_string(), "dev", "eth0"])
        .expect("forget r2");
    // A learned MAC is kept across a flush, but not past a failed resolution: the agent's
    // own state says when it gave up on r2 (the kernel fails a resolution after ~3 s).
    let r2 = format!("{}:80", real_ip(1));
    let silent = wait_for(Duration::from_secs(15), || {
        let st = agent.status().ok()?;
        let arp = st["services"]
            .as_array()?
            .iter()
            .flat_map(|s| s["reals"].as_array().into_iter().flatten())
            .filter(|r| r["real"] == r2.as_str())
            .map(|r| r["arp"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>();
        (!arp.is_empty() && arp.iter().all(|a| a.starts_with("silent"))).then_some(())
    });
    assert!(
        silent.is_some(),
        "r2 never declared silent:\n{}",
        agent.log_text()
    );
    assert!(agent
        .log_text()
        .contains("no ARP answer from the real; not used until it answers"));
    let answers = http_many(&t.client.ns, vip(), 60).expect("requests");
    let counts = tally(&answers);
    assert_eq!(counts.get("error"), None, "with r2 silent: {counts:?}");
    assert_eq!(counts.get("r2"), None, "{counts:?}");
}
