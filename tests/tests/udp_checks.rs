//! Checks for UDP services in the namespace lab, against real servers that really stop: DNS
//! reals running Debian's dnsmasq behind the VIP (one stops, one answers SERVFAIL), UDP checks
//! with and without a reply, a ping check against a real whose link goes down, and the file
//! check and track_file (the operator's switches).

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use lb_tests::{
    agent::{Agent, WorkDir},
    netns::{wait_for, Netns, Proc},
    standalone::Standalone,
    topology::{real_ip, Spec, Topology, VIP},
};

/// dnsmasq on a real: answers `www.lab` with 10.0.0.<n> (so the client can tell the reals
/// apart) and `health.lab` with NOERROR, on every address (the VIP on lo included). With
/// `servfail`, it forwards `health.lab` to an upstream that answers SERVFAIL (a python
/// responder in the same namespace), so the real itself answers SERVFAIL.
fn dnsmasq(ns: &Netns, dir: &WorkDir, n: usize, servfail: bool) -> Vec<Proc> {
    let log = dir.0.join(format!("dnsmasq-{n}.log"));
    let www = format!("--address=/www.lab/10.0.0.{n}");
    let log_arg = format!("--log-facility={}", log.display());
    let mut args = vec![
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--port=53",
        "--user=root",
        "--pid-file=",
        "--cache-size=0",
        &www,
        &log_arg,
    ];
    let mut procs = Vec::new();
    if servfail {
        args.push("--server=/health.lab/127.0.0.1#5353");
        let script = [
            "import socket",
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
            "s.bind(('127.0.0.1', 5353))",
            "while True:",
            "    q, a = s.recvfrom(512)",
            "    r = bytearray(q)",
            "    r[2] |= 0x80",
            "    r[3] = (r[3] & 0xf0) | 2",
            "    s.sendto(bytes(r), a)",
        ]
        .join("\n");
        procs.push(
            ns.spawn("/usr/bin/python3", &["-c", &script])
                .expect("SERVFAIL upstream"),
        );
    } else {
        args.push("--address=/health.lab/192.0.2.1");
    }
    procs.push(ns.spawn("dnsmasq", &args).expect("dnsmasq"));
    procs
}

/// A DNS query for `www.lab` A from `client` to `to`: the last octet of the answer (the real).
fn ask_www(client: &Netns, to: SocketAddr, count: usize) -> Vec<Option<u8>> {
    client
        .enter(move || {
            (0..count)
                .map(|i| {
                    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
                    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
                    s.connect(to).ok()?;
                    let id = (i as u16).to_be_bytes();
                    let mut q = vec![id[0], id[1], 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                    for label in ["www", "lab"] {
                        q.push(label.len() as u8);
                        q.extend_from_slice(label.as_bytes());
                    }
                    q.extend_from_slice(&[0, 0, 1, 0, 1]);
                    s.send(&q).ok()?;
                    let mut buf = [0u8; 512];
                    let n = s.recv(&mut buf).ok()?;
                    (n > 4 && buf[..2] == id).then(|| buf[n - 1])
                })
                .collect()
        })
        .expect("netns")
}

fn real_of(agent: &Agent, real: &str) -> Option<serde_json::Value> {
    let s = agent.status().ok()?;
    s["services"]
        .as_array()?
        .iter()
        .flat_map(|v| v["reals"].as_array().cloned().unwrap_or_default())
        .find(|r| r["real"] == real)
}

fn health(agent: &Agent, real: &str) -> Option<String> {
    real_of(agent, real)?["health"].as_str().map(str::to_owned)
}

/// Waits for `real` to be `want`; how long it took.
fn wait_health(agent: &Agent, real: &str, want: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(limit, || {
        (health(agent, real).as_deref() == Some(want)).then(|| t0.elapsed())
    })
}

#[test]
fn dns_service_through_the_vip_with_dnsmasq_reals() {
    // 200 ms checks, fall 2, rise 2, 300 ms timeout: a stopped server is out within
    // 2 x 200 ms + 300 ms (plus the ±10 % jitter).
    let cfg = |rid: &str| {
        let reals: String = (0..3)
            .map(|i| format!("      - {{ address: {}, port: 53 }}\n", real_ip(i)))
            .collect();
        format!(
            "global_defs:\n  router_id: {rid}\nvirtual_servers:\n  - address: {VIP}\n    port: 53\n    protocol: udp\n    interface: eth0\n    delay_loop: 200ms\n    rise: 2\n    fall: 2\n    checks: [ {{ dns: {{ name: health.lab, type: A, rcode: NOERROR, connect_timeout: 300ms }} }} ]\n    real_servers:\n{reals}"
        )
    };
    let l = Standalone::start("lbud", 3, false, cfg).expect("lab");
    let mut servers: Vec<Vec<Proc>> = (0..3)
        .map(|i| dnsmasq(&l.t.reals[i].ns, &l.dir, i + 1, false))
        .collect();
    let vip = SocketAddr::from((VIP, 53));
    // Up is not yet forwarding: the data path uses a real once its MAC is resolved too.
    let all_ready = wait_for(Duration::from_secs(15), || {
        (0..3)
            .all(|i| {
                real_of(&l.agent, &format!("{}:53", real_ip(i))).is_some_and(|r| {
                    r["health"] == "up" && r["mac"].as_str().is_some_and(|m| m.len() == 17)
                })
            })
            .then_some(())
    });
    assert!(all_ready.is_some(), "{}", l.agent.log_text());
    let answers = ask_www(&l.t.client.ns, vip, 60);
    for n in 1..=3u8 {
        assert!(
            answers.iter().filter(|a| **a == Some(n)).count() >= 5,
            "real {n} answered too few of the queries through the VIP: {answers:?}"
        );
    }
    assert!(answers.iter().all(Option::is_some), "{answers:?}");

    // r2's server stops: out within fall x delay_loop + timeout.
    let r2 = format!("{}:53", real_ip(1));
    for p in &mut servers[1] {
        p.kill();
    }
    let out = wait_health(&l.agent, &r2, "down", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("r2 never went down:\n{}", l.agent.log_text()));
    eprintln!(
        "measured: DNS real out {} ms after its server stopped",
        out.as_millis()
    );
    assert!(out < Duration::from_millis(2 * 220 + 300 + 500), "{out:?}");
    let answers = ask_www(&l.t.client.ns, vip, 30);
    assert!(
        answers.iter().all(|a| matches!(a, Some(1) | Some(3))),
        "queries still reach r2 (or fail): {answers:?}"
    );
    // Back after rise.
    servers[1] = dnsmasq(&l.t.reals[1].ns, &l.dir, 2, false);
    let back = wait_health(&l.agent, &r2, "up", Duration::from_secs(5));
    assert!(
        back.is_some(),
        "r2 never came back:\n{}",
        l.agent.log_text()
    );

    // r3 answers SERVFAIL: down, although it answers, because the check wants NOERROR.
    let r3 = format!("{}:53", real_ip(2));
    for p in &mut servers[2] {
        p.kill();
    }
    servers[2] = dnsmasq(&l.t.reals[2].ns, &l.dir, 3, true);
    // While the new dnsmasq starts, nothing answers ("no answer" also counts down): wait
    // until r3 is down *and* its checks see the SERVFAIL answers.
    let servfail = wait_for(Duration::from_secs(5), || {
        real_of(&l.agent, &r3).filter(|r| {
            r["health"] == "down"
                && r["last_check"]
                    .as_str()
                    .is_some_and(|w| w.contains("Server Failure"))
        })
    });
    assert!(
        servfail.is_some(),
        "r3 (SERVFAIL) never down on a SERVFAIL answer; last: {:?}\n{}",
        real_of(&l.agent, &r3),
        l.agent.log_text()
    );
}

/// A UDP listener on the real that never answers.
fn silent(ns: &Netns, port: u16) -> Proc {
    let script = format!(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {port}))\ntime.sleep(3600)\n"
    );
    ns.spawn("/usr/bin/python3", &["-c", &script])
        .expect("silent listener")
}

#[test]
fn udp_checks_with_and_without_a_reply() {
    // One UDP service; each real has its own check:
    //   r1: an echo (lb-testsrv) on the VIP, asked through the real (probe_vip), reply
    //       required and matched: up; down once r1 loses the VIP from its loopback;
    //   r2: a silent listener on 7001, reply required: down;
    //   r3: the same silent listener, no reply required: up; then nobody listens: down.
    let cfg = |rid: &str| {
        let real = |i: usize, check: &str| {
            format!(
                "      - {{ address: {}, checks: [ {{ udp: {{ {check}, connect_timeout: 300ms }} }} ] }}\n",
                real_ip(i)
            )
        };
        format!(
            "global_defs:\n  router_id: {rid}\nvirtual_servers:\n  - address: {VIP}\n    port: 7000\n    protocol: udp\n    interface: eth0\n    delay_loop: 200ms\n    real_servers:\n"
        ) + &real(0, "payload: hello, reply_regex: \"^r1 hello\", probe_vip: true")
            + &real(1, "connect_port: 7001, require_reply: true")
            + &real(2, "connect_port: 7001")
    };
    let mut l = Standalone::start("lbuu", 3, false, cfg).expect("lab");
    let echo = format!("{VIP}:7000");
    l.t.start_server(0, &["--udp", &echo]).expect("echo");
    let _s2 = silent(&l.t.reals[1].ns, 7001);
    let mut s3 = silent(&l.t.reals[2].ns, 7001);
    let want = [("r1", 0, "up"), ("r2", 1, "down"), ("r3", 2, "up")];
    for (name, i, state) in want {
        let got = wait_health(
            &l.agent,
            &format!("{}:7000", real_ip(i)),
            state,
            Duration::from_secs(5),
        );
        assert!(
            got.is_some(),
            "{name} should be {state}: {:?}\n{}",
            real_of(&l.agent, &format!("{}:7000", real_ip(i))),
            l.agent.log_text()
        );
    }
    // r1 loses the VIP from its loopback: it still answers on its own address, but no longer
    // for the VIP, which is what the data path sends it.
    l.t.reals[0]
        .ns
        .ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"])
        .expect("del VIP");
    let r1 = format!("{}:7000", real_ip(0));
    assert!(
        wait_health(&l.agent, &r1, "down", Duration::from_secs(5)).is_some(),
        "{:?}",
        real_of(&l.agent, &r1)
    );
    // Stable: r3 stays up on silence (no ICMP error), r2 stays down.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        health(&l.agent, &format!("{}:7000", real_ip(2))).as_deref(),
        Some("up")
    );
    assert_eq!(
        health(&l.agent, &format!("{}:7000", real_ip(1))).as_deref(),
        Some("down")
    );
    // Nobody listens on r3 any more: port unreachable, down.
    s3.kill();
    let down = wait_health(
        &l.agent,
        &format!("{}:7000", real_ip(2)),
        "down",
        Duration::from_secs(5),
    );
    assert!(down.is_some(), "{}", l.agent.log_text());
    let why =
        real_of(&l.agent, &format!("{}:7000", real_ip(2))).map(|r| r["last_check"].to_string());
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("port unreachable")),
        "{why:?}"
    );
}

#[test]
fn ping_check_follows_the_real_link() {
    let cfg = |rid: &str| {
        format!(
            "global_defs:\n  router_id: {rid}\nvirtual_servers:\n  - address: {VIP}\n    port: 80\n    interface: eth0\n    delay_loop: 200ms\n    checks: [ {{ ping: {{ connect_timeout: 300ms }} }} ]\n    real_servers:\n      - {{ address: {} }}\n",
            real_ip(0)
        )
    };
    let l = Standalone::start("lbup", 1, false, cfg).expect("lab");
    let r1 = format!("{}:80", real_ip(0));
    assert!(
        wait_health(&l.agent, &r1, "up", Duration::from_secs(5)).is_some(),
        "{}",
        l.agent.log_text()
    );
    l.t.reals[0]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("down");
    assert!(
        wait_health(&l.agent, &r1, "down", Duration::from_secs(5)).is_some(),
        "{}",
        l.agent.log_text()
    );
    l.t.reals[0]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("up");
    assert!(
        wait_health(&l.agent, &r1, "up", Duration::from_secs(5)).is_some(),
        "{}",
        l.agent.log_text()
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn file_check_sets_the_weight_and_track_file_the_priority() {
    let t = Topology::build(
        "lbuf",
        Spec {
            lbs: 1,
            reals: 1,
            native_xdp: true,
        },
    )
    .expect("topology");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let (weight, maint, prio) = (
        dir.0.join("r1.weight"),
        dir.0.join("maint"),
        dir.0.join("prio"),
    );
    write(&weight, "5\n");
    write(&prio, "0\n");
    let rid = t.router_id(0);
    let yaml = format!(
        "global_defs:\n  router_id: {rid}\n\
vrrp_track_files:\n\
  - {{ name: maint, file: {maint}, weight: 0, reverse: true, init_file: 1 }}\n\
  - {{ name: prio, file: {prio}, weight: -10 }}\n\
vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: 150\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{VIP}/24\"]\n    track_files: [maint, prio]\n\
virtual_servers:\n  - address: {VIP}\n    port: 80\n    interface: eth0\n    delay_loop: 200ms\n    checks: [ {{ file: {{ path: {weight} }} }} ]\n    real_servers:\n      - {{ address: {r1} }}\n",
        maint = maint.display(),
        prio = prio.display(),
        weight = weight.display(),
        r1 = real_ip(0),
    );
    let a = Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml).expect("agent");
    let r1 = format!("{}:80", real_ip(0));
    let inst = |a: &Agent| a.status().ok().map(|s| s["instances"][0].clone());
    let master = wait_for(Duration::from_secs(10), || {
        (inst(&a)?["state"] == "master").then_some(())
    });
    assert!(master.is_some(), "{}", a.log_text());
    assert_eq!(
        std::fs::read_to_string(&maint).ok().as_deref(),
        Some("1\n"),
        "init_file"
    );

    // The file's number is the real's weight; 0 takes it out.
    let eff = |a: &Agent| real_of(a, &r1).and_then(|r| r["effective_weight"].as_u64());
    assert!(
        wait_for(Duration::from_secs(5), || (eff(&a)? == 5).then_some(())).is_some(),
        "{:?}",
        real_of(&a, &r1)
    );
    write(&weight, "2\n");
    assert!(
        wait_for(Duration::from_secs(5), || (eff(&a)? == 2).then_some(())).is_some(),
        "{:?}",
        real_of(&a, &r1)
    );
    write(&weight, "0\n");
    assert!(
        wait_health(&a, &r1, "down", Duration::from_secs(5)).is_some(),
        "{:?}",
        real_of(&a, &r1)
    );

    // track_file with weight -10: 3 lowers the priority by 30.
    write(&prio, "3\n");
    let lowered = wait_for(Duration::from_secs(5), || {
        (inst(&a)?["priority"] == 120).then_some(())
    });
    assert!(lowered.is_some(), "{:?}", inst(&a));
    // The maintenance switch (weight 0, reverse): 0 faults the instance, it gives up the VIP.
    write(&maint, "0\n");
    let fault = wait_for(Duration::from_secs(5), || {
        (inst(&a)?["state"] == "fault" && !t.holds(0, VIP)).then_some(())
    });
    assert!(fault.is_some(), "{:?}\n{}", inst(&a), a.log_text());
    write(&maint, "1\n");
    let back = wait_for(Duration::from_secs(5), || {
        (inst(&a)?["state"] == "master" && t.holds(0, VIP)).then_some(())
    });
    assert!(back.is_some(), "{:?}", inst(&a));
}
