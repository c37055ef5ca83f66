//! A third host on the LAN sends hostile VRRP: every bad advert is dropped and counted under
//! its reason, the instances do not change state, and the agent stays responsive under a
//! flood.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use lb_agent::vrrp::packet::{self, Advert, Auth, V3Checksum, Version};
use lb_tests::{
    agent::{Agent, WorkDir},
    frames::checksum,
    netns::wait_for,
    topology::{lb_ip, Spec, Topology, CLIENT_IP},
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const VIP_A: &str = "10.99.0.100/24";
const VIP_B: &str = "10.99.0.101/24";
const MCAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

fn config(rid: &str) -> String {
    [
        "global_defs:".to_owned(),
        format!("  router_id: {rid}"),
        "vrrp_instances:".into(),
        "  - name: VI_A".into(),
        "    interface: eth0".into(),
        "    virtual_router_id: 51".into(),
        "    priority: 150".into(),
        "    version: 2".into(),
        "    advert_int: 1".into(),
        "    authentication: { auth_type: PASS, auth_pass: s3cret }".into(),
        format!("    virtual_ipaddresses: [\"{VIP_A}\"]"),
        "  - name: VI_B".into(),
        "    interface: eth0".into(),
        "    virtual_router_id: 52".into(),
        "    priority: 150".into(),
        "    version: 3".into(),
        "    advert_int: 100ms".into(),
        format!("    unicast_peers: [{}]", lb_ip(1)),
        format!("    virtual_ipaddresses: [\"{VIP_B}\"]"),
        "  - name: VI_C".into(),
        "    interface: eth0".into(),
        "    virtual_router_id: 53".into(),
        "    priority: 150".into(),
        "    version: 3".into(),
        "    advert_int: 100ms".into(),
        format!("    allowed_peers: [{}]", lb_ip(1)),
        "    virtual_ipaddresses: [\"10.99.0.102/24\"]".into(),
    ]
    .join("\n")
        + "\n"
}

fn advert_a(priority: u8, auth: Auth, interval_cs: u16) -> Advert {
    Advert {
        version: Version::V2,
        vrid: 51,
        priority,
        interval_cs,
        addresses: vec![Ipv4Addr::new(10, 99, 0, 100).into()],
        auth,
    }
}

fn fix_ip_checksum(d: &mut [u8]) {
    d[10] = 0;
    d[11] = 0;
    let c = checksum(&d[..20]);
    d[10..12].copy_from_slice(&c.to_be_bytes());
}

fn status(a: &Agent) -> serde_json::Value {
    a.status().expect("status")
}

fn inst<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["instances"]
        .as_array()
        .and_then(|v| v.iter().find(|i| i["name"] == name))
        .expect("instance")
}

#[test]
fn hostile_adverts_are_dropped_and_counted() {
    let t = Topology::build(
        "lbhv",
        Spec {
            lbs: 2,
            reals: 0,
            native_xdp: true,
        },
    )
    .expect("topology");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(&t.router_id(0)),
    )
    .expect("agent");
    let masters = wait_for(Duration::from_secs(10), || {
        let s = a.status().ok()?;
        (inst(&s, "VI_A")["state"] == "master" && inst(&s, "VI_B")["state"] == "master")
            .then_some(())
    });
    assert!(masters.is_some(), "{}", a.log_text());
    let before = status(&a);
    let transitions = |s: &serde_json::Value| {
        (
            inst(s, "VI_A")["transitions"].clone(),
            inst(s, "VI_B")["transitions"].clone(),
        )
    };

    // The attacker: the client host, with a raw IP socket.
    let sock = t
        .client
        .ns
        .enter(|| -> std::io::Result<Socket> {
            let s = Socket::new(
                Domain::IPV4,
                Type::RAW,
                Some(Protocol::from(libc::IPPROTO_RAW)),
            )?;
            s.bind_device(Some(b"eth0"))?;
            Ok(s)
        })
        .expect("netns")
        .expect("raw socket");
    let send = |d: &[u8], dst: Ipv4Addr| {
        sock.send_to(d, &SockAddr::from(SocketAddrV4::new(dst, 0)))
            .expect("send");
    };
    let pass = Auth::pass(b"s3cret");
    let good =
        |adv: &Advert| packet::emit_datagram(adv, CLIENT_IP, MCAST, 1, V3Checksum::PseudoHeader);

    // TTL below 255.
    let mut d = good(&advert_a(200, pass, 100));
    d[8] = 64;
    fix_ip_checksum(&mut d);
    send(&d, MCAST);
    // Bad VRRP checksum.
    let mut d = good(&advert_a(200, pass, 100));
    d[26] ^= 0xff;
    send(&d, MCAST);
    // A VRID nobody here uses.
    let mut adv = advert_a(200, pass, 100);
    adv.vrid = 99;
    send(&good(&adv), MCAST);
    // Wrong and missing authentication.
    send(&good(&advert_a(200, Auth::pass(b"guess"), 100)), MCAST);
    send(&good(&advert_a(200, Auth::None, 100)), MCAST);
    // Truncated (the IP total length says so too).
    let mut d = good(&advert_a(200, pass, 100));
    d.truncate(26);
    d[2..4].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_checksum(&mut d);
    send(&d, MCAST);
    // Address count beyond the payload.
    let mut d = good(&advert_a(200, pass, 100));
    d[23] = 10;
    send(&d, MCAST);
    // A mismatched interval (v2 must match).
    send(&good(&advert_a(200, pass, 200)), MCAST);
    // VI_B is unicast with lb2 as its only peer: a higher priority from anyone else.
    let b = Advert {
        version: Version::V3,
        vrid: 52,
        priority: 254,
        interval_cs: 10,
        addresses: vec![Ipv4Addr::new(10, 99, 0, 101).into()],
        auth: Auth::None,
    };
    send(
        &packet::emit_datagram(&b, CLIENT_IP, lb_ip(0), 1, V3Checksum::PseudoHeader),
        lb_ip(0),
    );
    // VI_C is multicast with an allow-list (only lb2): a higher priority from anyone else.
    let c = Advert {
        vrid: 53,
        addresses: vec![Ipv4Addr::new(10, 99, 0, 102).into()],
        ..b.clone()
    };
    send(
        &packet::emit_datagram(&c, CLIENT_IP, MCAST, 1, V3Checksum::PseudoHeader),
        MCAST,
    );

    let counted = wait_for(Duration::from_secs(3), || {
        let s = a.status().ok()?;
        let inv = &s["vrrp_invalid"];
        let ok = inv["eth0/ttl"].as_u64()? >= 1
            && inv["eth0/checksum"].as_u64()? >= 1
            && inv["eth0/unknown_vrid"].as_u64()? >= 1
            && inv["eth0/truncated"].as_u64()? >= 1
            && inv["eth0/address_count"].as_u64()? >= 1
            && inst(&s, "VI_A")["dropped"]["auth"].as_u64()? >= 2
            && inst(&s, "VI_A")["dropped"]["interval_mismatch"].as_u64()? >= 1
            && inst(&s, "VI_B")["dropped"]["not_a_peer"].as_u64()? >= 1
            && inst(&s, "VI_C")["dropped"]["not_a_peer"].as_u64()? >= 1;
        ok.then_some(s)
    });
    let after = counted.unwrap_or_else(|| panic!("not every drop was counted: {}", status(&a)));
    assert_eq!(
        transitions(&before),
        transitions(&after),
        "a hostile advert changed state"
    );
    assert_eq!(inst(&after, "VI_A")["state"], "master");
    assert_eq!(
        inst(&after, "VI_A")["adverts_rx"],
        inst(&before, "VI_A")["adverts_rx"],
        "a bad advert was accepted"
    );

    // A flood of valid-looking adverts from a non-peer: all dropped, the agent answers.
    let flood = packet::emit_datagram(&b, CLIENT_IP, lb_ip(0), 2, V3Checksum::PseudoHeader);
    let started = Instant::now();
    let sender = std::thread::scope(|scope| {
        let h = scope.spawn(|| {
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(3) {
                if sock
                    .send_to(&flood, &SockAddr::from(SocketAddrV4::new(lb_ip(0), 0)))
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        });
        std::thread::sleep(Duration::from_millis(1000));
        let t0 = Instant::now();
        let s = status(&a);
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "status took {took:?} under the flood"
        );
        assert_eq!(inst(&s, "VI_B")["state"], "master");
        h.join().unwrap_or(0)
    });
    std::thread::sleep(Duration::from_millis(500));
    let s = status(&a);
    let dropped = inst(&s, "VI_B")["dropped"]["not_a_peer"]
        .as_u64()
        .unwrap_or(0);
    // What the agent could not read in time the kernel dropped from its socket and counted.
    let overflow = s["vrrp_invalid"]["eth0/socket_overflow"]
        .as_u64()
        .unwrap_or(0);
    eprintln!("measured: flood of {sender} adverts in 3 s: {dropped} counted as not_a_peer, {overflow} socket overflows");
    assert!(
        (dropped + overflow) as f64 >= sender as f64 * 0.99,
        "sent {sender}, counted {dropped} + {overflow}"
    );
    assert_eq!(
        transitions(&before),
        transitions(&s),
        "the flood changed state"
    );
}
