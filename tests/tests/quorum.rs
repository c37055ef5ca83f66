//! A service below quorum lowers the priority of the instance that tracks it (and runs its
//! quorum hooks); the reals' notify hooks run on their transitions. Also: two agents may not
//! share pins.

use std::time::Duration;

use lb_tests::{
    agent::{Agent, WorkDir},
    netns::wait_for,
    topology::{real_ip, Spec, Topology, VIP},
};

fn hook(dir: &WorkDir, name: &str) -> (String, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let out = dir.0.join(format!("{name}.out"));
    let p = dir.0.join(format!("{name}.sh"));
    std::fs::write(&p, format!("#!/bin/sh\necho \"$@\" >> {}\n", out.display())).expect("hook");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (p.display().to_string(), out)
}

fn config(rid: &str, prio: u8, track: bool, hooks: &[(&str, String)]) -> String {
    let h = |k: &str| hooks.iter().find(|(n, _)| *n == k).map(|(_, p)| p.clone());
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 2\n  max_reals: 16\n  conntrack_size: 65536\n\
vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {prio}\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{VIP}/24\"]\n"
    );
    if track {
        y += &format!("    track_services: [ {{ service: \"{VIP}:80/tcp\", weight: -100 }} ]\n");
    }
    y += &format!("virtual_servers:\n  - address: {VIP}\n    port: 80\n    interface: eth0\n    delay_loop: 300ms\n    quorum: 2\n");
    if let Some(p) = h("quorum_down") {
        y += &format!("    quorum_down: {p} down\n");
    }
    if let Some(p) = h("quorum_up") {
        y += &format!("    quorum_up: {p} up\n");
    }
    y += "    checks: [ { tcp: { connect_timeout: 300ms } } ]\n    real_servers:\n";
    for i in 0..2 {
        let nd = h("notify_down")
            .map(|p| format!(", notify_down: \"{p} r{}\"", i + 1))
            .unwrap_or_default();
        y += &format!("      - {{ address: {}, port: 80{nd} }}\n", real_ip(i));
    }
    y
}

#[test]
fn below_quorum_lowers_the_tracking_instance_and_runs_the_hooks() {
    let mut t = Topology::build(
        "lbq",
        Spec {
            lbs: 2,
            reals: 2,
            native_xdp: true,
        },
    )
    .expect("topology");
    t.start_all_servers().expect("servers");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let (qdown, qdown_out) = hook(&dir, "quorum_down");
    let (qup, qup_out) = hook(&dir, "quorum_up");
    let (ndown, ndown_out) = hook(&dir, "notify_down");
    let hooks = [
        ("quorum_down", qdown),
        ("quorum_up", qup),
        ("notify_down", ndown),
    ];
    let a = Agent::start(
        &t.lbs[0].ns,
        &dir,
        &t.router_id(0),
        &config(&t.router_id(0), 150, true, &hooks),
    )
    .expect("a");
    assert!(
        wait_for(Duration::from_secs(10), || t.holds(0, VIP).then_some(())).is_some(),
        "{}",
        a.log_text()
    );
    let b = Agent::start(
        &t.lbs[1].ns,
        &dir,
        &t.router_id(1),
        &config(&t.router_id(1), 100, false, &[]),
    )
    .expect("b");
    assert!(b.wait_log("to=\"backup\"", Duration::from_secs(10)));

    // r1 stops: live weight 1 < quorum 2: lb1 drops to priority 50, lb2 (100) preempts.
    t.stop_server(0);
    let moved = wait_for(Duration::from_secs(5), || {
        (t.holds(1, VIP) && !t.holds(0, VIP)).then_some(())
    });
    assert!(moved.is_some(), "{}", a.log_text());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(3), || (read(&qdown_out)
            .contains("down")
            && read(&ndown_out).contains("r1"))
        .then_some(()))
        .is_some(),
        "hooks did not run: quorum_down {:?}, notify_down {:?}",
        read(&qdown_out),
        read(&ndown_out)
    );
    let s = a.status().expect("status");
    assert_eq!(s["instances"][0]["priority"], 50, "{s}");
    assert_eq!(s["services"][0]["quorum_up"], false);

    // r1 back: quorum regained, priority 150 again, lb1 preempts back.
    t.start_server(0, &[]).expect("restart");
    let back = wait_for(Duration::from_secs(5), || {
        (t.holds(0, VIP) && !t.holds(1, VIP)).then_some(())
    });
    assert!(back.is_some(), "{}", a.log_text());
    assert!(wait_for(Duration::from_secs(3), || read(&qup_out)
        .contains("up")
        .then_some(()))
    .is_some());
}

#[test]
fn two_agents_cannot_share_pins() {
    let t = Topology::build(
        "lbpin",
        Spec {
            lbs: 1,
            reals: 0,
            native_xdp: true,
        },
    )
    .expect("topology");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let rid = t.router_id(0);
    let yaml = format!("global_defs:\n  router_id: {rid}\nvirtual_servers: []\n");
    let first = Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("first");
    assert!(
        first.wait_log("lb-agent starting", Duration::from_secs(10)),
        "{}",
        first.log_text()
    );
    // Same router id, hence the same pin directory: refused, with a reason.
    let mut second = Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("second");
    let st = second
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("wait");
    assert!(
        st.is_some_and(|s| !s.success()),
        "the second agent kept running"
    );
    let log = second.log_text();
    assert!(
        log.contains("already uses") || log.contains("another agent"),
        "{log}"
    );
}
