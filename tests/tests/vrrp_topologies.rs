//! VRRP beyond one pair and one VIP: active-active (each node master of one VIP), sync groups
//! failing over together, notify scripts, and the classic one-way split brain.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use lb_tests::{
    agent::{Agent, WorkDir},
    client::{tally, udp_many},
    netns::wait_for,
    topology::{lb_ip, real_ip, Spec, Topology},
};

const VIP1: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 101);

fn holds(t: &Topology, lb: usize, vip: Ipv4Addr) -> bool {
    t.holds(lb, vip)
}

/// Two instances (VIP1, VIP2) with the given priorities; `extra` is appended to each
/// instance; `top` is extra top-level YAML.
fn config(rid: &str, prios: [u8; 2], extra: [&str; 2], top: &str) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: 65536\n{top}vrrp_instances:\n"
    );
    for (k, vip) in [VIP1, VIP2].iter().enumerate() {
        y += &format!(
            "  - name: VI_{n}\n    interface: eth0\n    virtual_router_id: {vrid}\n    priority: {p}\n    version: 3\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{vip}/24\"]\n{e}",
            n = k + 1,
            vrid = 51 + k,
            p = prios[k],
            e = extra[k],
        );
    }
    y += "virtual_servers:\n";
    for vip in [VIP1, VIP2] {
        y += &format!("  - address: {vip}\n    port: 80\n    protocol: udp\n    interface: eth0\n    real_servers:\n");
        for i in 0..2 {
            y += &format!("      - {{ address: {}, port: 80 }}\n", real_ip(i));
        }
    }
    y
}

fn lab(tag: &str) -> (Topology, WorkDir) {
    let mut t = Topology::build(
        tag,
        Spec {
            lbs: 2,
            reals: 2,
            native_xdp: true,
        },
    )
    .expect("topology");
    for r in &t.reals {
        r.ns.ip(&["addr", "add", &format!("{VIP2}/32"), "dev", "lo"])
            .expect("vip2 on lo");
    }
    for i in 0..2 {
        let udp2 = format!("{VIP2}:80");
        t.start_server(i, &["--udp", &udp2]).expect("server");
    }
    let dir = WorkDir::new(&t.prefix).expect("dir");
    (t, dir)
}

fn script(dir: &WorkDir, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.0.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.display().to_string()
}

#[test]
fn active_active_each_node_masters_one_vip_and_notifies() {
    let (t, dir) = lab("lbaa");
    let log = dir.0.join("notify.log");
    let notify = script(
        &dir,
        "notify.sh",
        &format!("echo \"$@\" >> {}", log.display()),
    );
    let n = format!("    notify: {notify}\n");
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(&t.router_id(0), [150, 100], [&n, &n], ""),
    )
    .expect("a");
    let b = Agent::start(
        &t.lbs[1].ns,
        &dir,
        &t.router_id(1),
        &config(&t.router_id(1), [100, 150], ["", ""], ""),
    )
    .expect("b");
    let ok = wait_for(Duration::from_secs(10), || {
        (holds(&t, 0, VIP1) && !holds(&t, 0, VIP2) && holds(&t, 1, VIP2) && !holds(&t, 1, VIP1))
            .then_some(())
    });
    assert!(ok.is_some(), "{}\n{}", a.log_text(), b.log_text());
    assert!(
        t.xdp_attached(0).expect("ip") && t.xdp_attached(1).expect("ip"),
        "both nodes forward"
    );
    for vip in [VIP1, VIP2] {
        let c = wait_for(Duration::from_secs(5), || {
            let c = tally(&udp_many(&t.client.ns, SocketAddr::from((vip, 80)), 20).ok()?);
            (!c.contains_key("error")).then_some(c)
        });
        assert!(c.is_some(), "traffic to {vip} failed");
    }
    let got = wait_for(Duration::from_secs(3), || {
        let s = std::fs::read_to_string(&log).ok()?;
        (s.contains("INSTANCE VI_1 MASTER 150") && s.contains("INSTANCE VI_2 BACKUP 100"))
            .then_some(s)
    });
    assert!(
        got.is_some(),
        "notify log: {:?}",
        std::fs::read_to_string(&log)
    );
}

#[test]
fn sync_group_members_fail_over_together() {
    let (t, dir) = lab("lbsg");
    let flag = dir.0.join("ok");
    std::fs::write(&flag, "").expect("flag");
    let top = format!(
        "vrrp_scripts:\n  - {{ name: leg2, script: \"/usr/bin/test -e {}\", interval: 100ms, weight: -100 }}\nvrrp_sync_groups:\n  - {{ name: G, group: [VI_1, VI_2] }}\n",
        flag.display()
    );
    // Node A is master of both; VI_2 tracks a script. Its weight (-100, which alone would put
    // VI_2 below B and split the group) is ignored in a sync group: a failure faults the group.
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(
            &t.router_id(0),
            [150, 150],
            ["", "    track_scripts: [leg2]\n"],
            &top,
        ),
    )
    .expect("a");
    let b = Agent::start(
        &t.lbs[1].ns,
        &dir,
        &t.router_id(1),
        &config(&t.router_id(1), [100, 100], ["", ""], ""),
    )
    .expect("b");
    let both = |lb: usize| holds(&t, lb, VIP1) && holds(&t, lb, VIP2);
    assert!(
        wait_for(Duration::from_secs(10), || both(0).then_some(())).is_some(),
        "{}\n{}",
        a.log_text(),
        b.log_text()
    );
    // VI_2's script fails: VI_1 must follow it, both VIPs move to B.
    std::fs::remove_file(&flag).expect("fail");
    let moved = wait_for(Duration::from_secs(5), || {
        (both(1) && !holds(&t, 0, VIP1) && !holds(&t, 0, VIP2)).then_some(())
    });
    assert!(
        moved.is_some(),
        "the group did not move together:\n{}",
        a.log_text()
    );
    std::fs::write(&flag, "").expect("recover");
    assert!(
        wait_for(Duration::from_secs(5), || both(0).then_some(())).is_some(),
        "did not come back together"
    );
}

#[test]
fn a_sync_group_member_that_becomes_master_pulls_the_others_along() {
    let (t, dir) = lab("lbsm");
    let top = "vrrp_sync_groups:\n  - { name: G, group: [VI_1, VI_2] }\n";
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(&t.router_id(0), [150, 150], ["", ""], top),
    )
    .expect("a");
    assert!(wait_for(Duration::from_secs(10), || holds(&t, 0, VIP2).then_some(())).is_some());
    let b = Agent::start(
        &t.lbs[1].ns,
        &dir,
        &t.router_id(1),
        &config(&t.router_id(1), [100, 100], ["", ""], top),
    )
    .expect("b");
    assert!(b.wait_log("to=\"backup\"", Duration::from_secs(10)));
    // B stops hearing VI_1 (VRID 51) only: its VI_1 takes over by its Master_Down_Timer, and
    // VI_2, which still hears A, must follow it at once instead of staying backup.
    let ns = &t.lbs[1].ns;
    // The VRID is the second byte of the VRRP header, after a 20-byte IP header.
    ns.drop_input("sm", &["ip", "protocol", "vrrp", "@nh,168,8", "51"])
        .expect("nft");
    let pulled = b.wait_log(
        "instance=VI_2 from=\"backup\" to=\"master\" reason=\"sync_group\"",
        Duration::from_secs(3),
    );
    assert!(pulled, "VI_2 did not follow VI_1:\n{}", b.log_text());
    // Healed: A (higher priority for both) is master of both again, B of neither.
    ns.undrop("sm").expect("nft");
    let settled = wait_for(Duration::from_secs(5), || {
        (holds(&t, 0, VIP1) && holds(&t, 0, VIP2) && !holds(&t, 1, VIP1) && !holds(&t, 1, VIP2))
            .then_some(())
    });
    assert!(settled.is_some(), "{}\n{}", a.log_text(), b.log_text());
}

#[test]
fn one_way_multicast_loss_split_brain_is_counted_and_heals_within_an_interval() {
    let (t, dir) = lab("lbsb");
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(&t.router_id(0), [150, 150], ["", ""], ""),
    )
    .expect("a");
    assert!(wait_for(Duration::from_secs(10), || holds(&t, 0, VIP1).then_some(())).is_some());
    let b = Agent::start(
        &t.lbs[1].ns,
        &dir,
        &t.router_id(1),
        &config(&t.router_id(1), [100, 100], ["", ""], ""),
    )
    .expect("b");
    assert!(b.wait_log("to=\"backup\"", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!holds(&t, 1, VIP1));

    // The seeds' classic: B's firewall drops VRRP from A (one way). B becomes a second master.
    let ns = &t.lbs[1].ns;
    ns.drop_input(
        "sb",
        &[
            "ip",
            "saddr",
            &lb_ip(0).to_string(),
            "ip",
            "protocol",
            "vrrp",
        ],
    )
    .expect("nft");
    assert!(
        wait_for(Duration::from_secs(3), || holds(&t, 1, VIP1).then_some(())).is_some(),
        "B never became master:\n{}",
        b.log_text()
    );
    // A hears B's adverts: warns with the peer, counts, answers at once.
    assert!(
        a.wait_log("split brain", Duration::from_secs(2)),
        "{}",
        a.log_text()
    );
    let s = a.status().expect("status");
    let count = s["instances"][0]["split_brains"].as_u64().unwrap_or(0);
    assert!(count > 0, "{s}");

    // Heal, then sample B's VIPs every 5 ms, and read when B detached XDP from its own log
    // (microsecond timestamps): B must stop forwarding (VIP and XDP) within one interval.
    let before = b.log_text().len();
    ns.undrop("sb").expect("nft");
    let healed = Instant::now();
    let healed_wall = std::time::SystemTime::now();
    let mut both_until = healed;
    while healed.elapsed() < Duration::from_secs(2) {
        let b_forwards = holds(&t, 1, VIP1) || holds(&t, 1, VIP2);
        if b_forwards {
            both_until = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let overlap = both_until - healed;
    eprintln!("measured: split brain resolved {overlap:?} after healing");
    // One advert interval (100 ms) plus the sampling and `ip` command cost.
    assert!(
        overlap <= Duration::from_millis(130),
        "two masters for {overlap:?} after healing"
    );
    assert!(holds(&t, 0, VIP1) && !holds(&t, 1, VIP1));
    assert!(!t.xdp_attached(1).expect("ip"), "B still forwards");
    let log = b.log_text();
    let detached = log[before..]
        .lines()
        .filter(|l| l.contains("XDP detached"))
        .find_map(|l| lb_tests::pair::parse_log_time(l.split_whitespace().next()?))
        .expect("B never logged its XDP detach");
    let xdp_overlap = detached
        .duration_since(healed_wall)
        .unwrap_or(Duration::ZERO);
    eprintln!("measured: B detached XDP {xdp_overlap:?} after healing");
    assert!(
        xdp_overlap <= Duration::from_millis(130),
        "B kept XDP attached {xdp_overlap:?} after healing:\n{log}"
    );
}
