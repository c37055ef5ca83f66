//! IPv6 in the namespace lab (every host is dual-stack, the reals hold both VIPs on `lo`):
//! v6 TCP and UDP through the VIP reach every real with replies bypassing the balancer, health
//! checks take a v6 real out and back, the reals never answer neighbour solicitations for the
//! VIP, a dual-stack pair of our agents fails over keeping established v6 flows, and hostile
//! VRRPv3-over-IPv6 adverts are dropped and counted.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use lb_agent::vrrp::packet::{Advert, Auth, V3Checksum, Version, VRRP_MCAST_V6};
use lb_tests::{
    agent::{Agent, WorkDir},
    capture::Capture,
    client::{http_many, tally, udp_many, LongConn},
    netns::{wait_for, Netns},
    pair::{Family, Node, Pair},
    standalone::Standalone,
    topology::{real_ip6, Spec, Topology, CLIENT_IP6, VIP, VIP6},
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn vip6(port: u16) -> SocketAddr {
    SocketAddr::from((VIP6, port))
}

/// Standalone: TCP and UDP services on both VIPs, 100 ms TCP checks.
fn config(rid: &str, reals: &[usize]) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 8\n  max_reals: 32\n  conntrack_size: 65536\n  conntrack_size6: 65536\nvirtual_servers:\n"
    );
    for vip in [VIP.to_string(), format!("\"{VIP6}\"")] {
        let v6 = vip.contains(':');
        let list: String = reals
            .iter()
            .map(|&i| {
                let a = if v6 {
                    format!("\"{}\"", real_ip6(i))
                } else {
                    lb_tests::topology::real_ip(i).to_string()
                };
                format!("      - {{ address: {a}, port: 80 }}\n")
            })
            .collect();
        for proto in ["tcp", "udp"] {
            let checks = if proto == "tcp" {
                "    delay_loop: 100ms\n    checks: [ { tcp: { connect_timeout: 300ms } } ]\n"
            } else {
                ""
            };
            y += &format!(
                "  - address: {vip}\n    port: 80\n    protocol: {proto}\n    interface: eth0\n{checks}    real_servers:\n{list}"
            );
        }
    }
    y
}

fn real_health(agent: &Agent, service: &str, real: &str) -> Option<String> {
    let s = agent.status().ok()?;
    let svc = s["services"]
        .as_array()?
        .iter()
        .find(|x| x["service"] == service)?;
    let r = svc["reals"]
        .as_array()?
        .iter()
        .find(|r| r["real"] == real)?;
    r["health"].as_str().map(str::to_owned)
}

/// The balancer holds the IPv6 VIP on eth0 as the agent adds it: no DAD, never a source.
fn hold_vip6(ns: &lb_tests::netns::Netns) {
    ns.ip(&[
        "addr",
        "add",
        &format!("{VIP6}/64"),
        "dev",
        "eth0",
        "nodad",
        "preferred_lft",
        "0",
    ])
    .expect("VIP6");
}

#[test]
fn v6_tcp_and_udp_reach_every_real_replies_bypass_and_checks_take_a_real_out() {
    let l = Standalone::start("lb6s", 3, true, |rid| config(rid, &[0, 1, 2])).expect("lab");
    hold_vip6(&l.t.lbs[0].ns);
    let Standalone {
        agent,
        dir: _d,
        mut t,
    } = l;
    let up = wait_for(Duration::from_secs(15), || {
        http_many(&t.client.ns, vip6(80), 1).ok()?.pop()?.ok()
    });
    assert!(
        up.is_some(),
        "no answer on [{VIP6}]:80:\n{}",
        agent.log_text()
    );

    let cap = Capture::start(&t.lbs[0].ns, "eth0").expect("capture");
    let tcp = tally(&http_many(&t.client.ns, vip6(80), 90).expect("tcp"));
    let udp = tally(&udp_many(&t.client.ns, vip6(80), 90).expect("udp"));
    for (what, counts) in [("TCP", &tcp), ("UDP", &udp)] {
        assert_eq!(counts.get("error"), None, "{what} errors: {counts:?}");
        for r in ["r1", "r2", "r3"] {
            assert!(
                counts.get(r).copied().unwrap_or(0) >= 10,
                "{what}: {r} got too few: {counts:?}"
            );
        }
    }
    // Replies go from the reals straight to the client; the LB sees only the client's side.
    t.client
        .ns
        .exec(
            "ping",
            &["-6", "-c", "3", "-i", "0.05", "-W", "1", "fd00:99::3"],
        )
        .expect("ping lb");
    let seen = cap.take();
    let reals: Vec<IpAddr> = (0..3).map(|i| real_ip6(i).into()).collect();
    let via_lb = seen
        .iter()
        .filter(|(s, d)| reals.contains(s) && *d == CLIENT_IP6)
        .count();
    let pings = seen
        .iter()
        .filter(|(s, d)| *s == CLIENT_IP6 && d.to_string() == "fd00:99::3")
        .count();
    assert!(
        pings >= 3,
        "the capture missed the pings ({pings}): it cannot vouch for the rest"
    );
    assert_eq!(via_lb, 0, "real -> client frames reached the load balancer");
    let v = agent.status().expect("status");
    assert!(
        v["info"]["ipv6"].as_u64().unwrap_or(0) >= 90,
        "{}",
        v["info"]
    );

    // r2's server stops: its v6 check fails and it leaves; back when it answers again.
    let service = format!("[{VIP6}]:80/tcp");
    let r2 = format!("[{}]:80", real_ip6(1));
    t.stop_server(1);
    let down = wait_for(Duration::from_secs(5), || {
        (real_health(&agent, &service, &r2)? == "down").then_some(())
    });
    assert!(down.is_some(), "r2 never went down:\n{}", agent.log_text());
    let without = tally(&http_many(&t.client.ns, vip6(80), 30).expect("tcp"));
    assert_eq!(without.get("error"), None, "{without:?}");
    assert_eq!(without.get("r2"), None, "{without:?}");
    t.start_server(1, &[]).expect("server");
    let back = wait_for(Duration::from_secs(5), || {
        (real_health(&agent, &service, &r2)? == "up").then_some(())
    });
    assert!(back.is_some(), "r2 never came back:\n{}", agent.log_text());
    let with = tally(&http_many(&t.client.ns, vip6(80), 60).expect("tcp"));
    assert!(with.get("r2").copied().unwrap_or(0) > 0, "{with:?}");
}

/// The client's neighbour entry for the VIP: its MAC, or None (never resolved).
fn neighbour_mac(client: &Netns, addr: Ipv6Addr) -> Option<String> {
    let out = client
        .ip(&["-6", "-j", "neigh", "show", &addr.to_string()])
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.as_array()?
        .iter()
        .find_map(|n| n["lladdr"].as_str().map(str::to_owned))
}

#[test]
fn reals_holding_the_vip_on_lo_never_answer_neighbour_solicitations() {
    let t = Topology::build(
        "lb6n",
        Spec {
            lbs: 1,
            reals: 3,
            native_xdp: false,
        },
    )
    .expect("topology");
    // Nobody but the reals (on lo) has the VIP: a solicitation for it goes unanswered.
    let _ = t.client.ns.exec(
        "ping",
        &["-6", "-c", "2", "-i", "0.2", "-W", "1", &VIP6.to_string()],
    );
    assert_eq!(
        neighbour_mac(&t.client.ns, VIP6),
        None,
        "a real answered for the VIP it holds on lo"
    );
    // The balancer takes it: the client resolves it to the balancer's MAC.
    hold_vip6(&t.lbs[0].ns);
    let _ = t
        .client
        .ns
        .exec("ping", &["-6", "-c", "1", "-W", "1", &VIP6.to_string()]);
    let lb_mac = lb_tests::topology::mac_str(&t.lbs[0].mac);
    let resolved = wait_for(Duration::from_secs(3), || neighbour_mac(&t.client.ns, VIP6));
    assert_eq!(resolved.as_deref(), Some(lb_mac.as_str()));
}

#[test]
fn dual_stack_pair_fails_over_and_keeps_established_v6_flows() {
    let nodes = [150, 100].map(|prio| Node {
        family: Family::Dual,
        ..Node::v3(prio)
    });
    let mut p = Pair::start("lb6p", nodes.to_vec(), 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let mut conns: Vec<LongConn> = (0..20)
        .map(|_| LongConn::open(&p.t.client.ns, vip6(80)).expect("v6 connection"))
        .collect();
    let mut conns4: Vec<LongConn> = (0..10)
        .map(|_| {
            LongConn::open(&p.t.client.ns, SocketAddr::from((VIP, 80))).expect("v4 connection")
        })
        .collect();
    let reals: std::collections::BTreeSet<String> = conns.iter().map(|c| c.real.clone()).collect();
    assert!(reals.len() >= 2, "v6 connections on one real: {reals:?}");

    // The master stops: the backup takes both instances (one sync group).
    p.agents[0].as_mut().expect("agent").stop().expect("stop");
    p.agents[0] = None;
    let taken = wait_for(Duration::from_secs(5), || p.holds_vip(1).then_some(()));
    assert!(taken.is_some(), "{}", p.agent(1).log_text());
    for (k, c) in conns.iter_mut().chain(conns4.iter_mut()).enumerate() {
        let before = c.real.clone();
        let now = c
            .ping(1)
            .unwrap_or_else(|e| panic!("connection {k} broke: {e:#}"));
        assert_eq!(now, before, "connection {k} moved to another real");
    }
}

/// An advert of ours for VRID 51 at priority 254 (above the instance's), as sent from `src`.
fn hostile(src: IpAddr, vrid: u8) -> Vec<u8> {
    Advert {
        version: Version::V3,
        vrid,
        priority: 254,
        interval_cs: 10,
        addresses: vec![VIP6.into()],
        auth: Auth::None,
    }
    .to_bytes(src, VRRP_MCAST_V6, V3Checksum::PseudoHeader)
}

/// The client's link-local address on eth0.
fn link_local(ns: &Netns) -> Ipv6Addr {
    let out = ns
        .ip(&["-6", "-j", "addr", "show", "dev", "eth0"])
        .expect("ip addr");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str()?.parse::<Ipv6Addr>().ok())
        .find(Ipv6Addr::is_unicast_link_local)
        .unwrap_or_else(|| panic!("no link-local address: {v}"))
}

#[test]
fn hostile_ipv6_adverts_are_dropped_and_counted() {
    let t = Topology::build(
        "lb6h",
        Spec {
            lbs: 1,
            reals: 0,
            native_xdp: false,
        },
    )
    .expect("topology");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let rid = t.router_id(0);
    let yaml = format!(
        "global_defs:\n  router_id: {rid}\nvrrp_instances:\n  - name: VI_6\n    interface: eth0\n    virtual_router_id: 51\n    priority: 150\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{VIP6}/64\"]\n"
    );
    let a = Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("agent");
    let state = |a: &Agent| a.status().ok().map(|s| s["instances"][0]["state"].clone());
    let master = wait_for(Duration::from_secs(10), || {
        (state(&a)? == "master").then_some(())
    });
    assert!(master.is_some(), "{}", a.log_text());

    let ll = link_local(&t.client.ns);
    let global: IpAddr = CLIENT_IP6.into();
    let sent = t
        .client
        .ns
        .enter(move || -> std::io::Result<()> {
            let open = |hops: u32| -> std::io::Result<Socket> {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112)))?;
                s.bind_device(Some(b"eth0"))?;
                s.set_multicast_hops_v6(hops)?;
                Ok(s)
            };
            let to = SockAddr::from(std::net::SocketAddrV6::new(VRRP_MCAST_V6, 0, 0, 0));
            // Hop limit below 255: not from this link.
            open(64)?.send_to(&hostile(ll.into(), 51), &to)?;
            // A global source.
            let g = open(255)?;
            g.bind(&SockAddr::from(SocketAddr::from((global, 0))))?;
            g.send_to(&hostile(global, 51), &to)?;
            // A bad checksum.
            let mut bad = hostile(ll.into(), 51);
            bad[6] ^= 0xff;
            let s = open(255)?;
            s.send_to(&bad, &to)?;
            // A VRID nobody here uses; a message cut short.
            s.send_to(&hostile(ll.into(), 99), &to)?;
            s.send_to(&hostile(ll.into(), 51)[..6], &to)?;
            // A flood of valid-looking takeovers from a global source.
            for _ in 0..5000 {
                g.send_to(&hostile(global, 51), &to)?;
            }
            Ok(())
        })
        .expect("netns");
    sent.expect("sending");
    let counted =
        |reason: &str| a.status().ok()?["vrrp_invalid"][format!("eth0/{reason}")].as_u64();
    for reason in ["ttl", "checksum", "unknown_vrid", "truncated"] {
        let n = wait_for(Duration::from_secs(3), || {
            counted(reason).filter(|n| *n >= 1)
        });
        assert!(n.is_some(), "{reason} not counted: {:?}", a.status().ok());
    }
    let n = wait_for(Duration::from_secs(3), || {
        counted("source_not_link_local").filter(|n| *n >= 1000)
    });
    assert!(
        n.is_some(),
        "the flood was not counted: {:?}",
        a.status().ok()
    );
    assert_eq!(
        state(&a),
        Some("master".into()),
        "a hostile advert moved the instance"
    );
}
