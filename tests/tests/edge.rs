//! The edge of the data path in the namespace lab: path MTU discovery through the VIP (ICMP
//! errors forwarded to the real of the flow), fragmented UDP in shuffled order, services on
//! several ports and on all ports, the XDP attach mode as status and metrics show it, and a
//! jumbo-MTU interface in native mode.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use lb_tests::{
    agent::{scrape, Agent, WorkDir},
    client::{bulk, http_get_from, http_many, tally, udp_many},
    netns::{wait_for, Netns},
    standalone::Standalone,
    topology::{real_ip, Spec, Topology, FAR_CLIENT_IP, VIP},
};

const MB: usize = 1 << 20;
const METRICS: &str = "127.0.0.1:9470";

/// An agent config: `top` goes at the top level (after global_defs), `services` is the list
/// under `virtual_servers:`.
fn config(rid: &str, top: &str, services: &str) -> String {
    format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: 65536\n  metrics_listen: {METRICS}\n{top}virtual_servers:\n{services}"
    )
}

/// One service entry (`head` holds its keys after the address) with reals `reals`.
fn service(head: &str, reals: &[usize]) -> String {
    let list: String = reals
        .iter()
        .map(|&i| format!("      - {{ address: {} }}\n", real_ip(i)))
        .collect();
    format!("  - address: {VIP}\n    interface: eth0\n{head}    real_servers:\n{list}")
}

fn vip(port: u16) -> SocketAddr {
    SocketAddr::from((VIP, port))
}

/// Waits for the agent to log its `n`-th reload.
fn reloaded(agent: &Agent, n: usize) -> bool {
    wait_for(Duration::from_secs(5), || {
        (agent.log_text().matches("configuration reloaded").count() >= n).then_some(())
    })
    .is_some()
}

/// `lb-agent status --json`'s data-path counter `name` (a verdict or an info counter).
fn verdict(agent: &Agent, name: &str) -> u64 {
    let s = agent.status().expect("status");
    s["verdicts"][name]
        .as_u64()
        .or(s["info"][name].as_u64())
        .unwrap_or(0)
}

#[test]
fn icmp_fragmentation_needed_reaches_the_real_and_a_1mb_transfer_completes() {
    let pmtu = |rid: &str, forward: bool| {
        config(
            rid,
            "",
            &service(
                &format!("    port: 80\n    forward_icmp_errors: {forward}\n"),
                &[0],
            ),
        )
    };
    // The positive control first: forwarding off.
    let l = Standalone::start("lbpm", 1, true, |rid| pmtu(rid, false)).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    // The far client's replies cross a 1,000-byte link; the endpoints both have 1,500 and
    // agree on a 1,460-byte MSS, so only an ICMP "fragmentation needed" from the router can
    // tell the real to send smaller segments. No PMTU black-hole probing to hide a loss.
    let far = l.t.add_far_client(1000).expect("router and far client");
    let real = &l.t.reals[0].ns;
    real.sysctl("net.ipv4.tcp_mtu_probing", "0")
        .expect("sysctl");
    let route_mtu = |ns: &Netns| {
        let out = ns
            .ip(&["-4", "route", "get", &FAR_CLIENT_IP.to_string()])
            .expect("ip route get");
        String::from_utf8_lossy(&out.stdout).contains("mtu 1000")
    };

    let got = bulk(&far.client, vip(80), MB, Duration::from_secs(3)).expect("bulk");
    assert!(
        got < MB,
        "with forward_icmp_errors: false the transfer must stall (it got all {got} bytes: the \
         test cannot tell forwarding from no forwarding)"
    );
    assert!(
        !route_mtu(real),
        "the real learnt a path MTU without the ICMP"
    );
    assert!(
        verdict(&l.agent, "pass_icmp_other") > 0,
        "the router's errors reached the LB's own stack"
    );

    l.agent
        .reload(&pmtu(&l.agent.router_id, true))
        .expect("reload");
    assert!(reloaded(&l.agent, 1), "{}", l.agent.log_text());
    let got = bulk(&far.client, vip(80), MB, Duration::from_secs(5)).expect("bulk");
    assert_eq!(
        got, MB,
        "the transfer must complete once the real gets the ICMP"
    );
    assert!(
        route_mtu(real),
        "the real's route cache must hold the path MTU the router reported"
    );
    assert!(verdict(&l.agent, "icmp_to_flow_real") > 0);
}

/// Runs `tests/scripts/udp_fragments.py` in the client namespace: the reals that answered each
/// datagram, in sending order (`count` per source address).
fn send_fragmented(
    client: &Netns,
    srcs: &[Ipv4Addr],
    count: usize,
    shuffle: bool,
) -> Vec<Vec<String>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/udp_fragments.py");
    let mut args = vec![
        script.to_owned(),
        "--vip".into(),
        VIP.to_string(),
        "--count".into(),
        count.to_string(),
    ];
    for s in srcs {
        args.extend(["--src".into(), s.to_string()]);
    }
    if shuffle {
        args.push("--shuffle".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The distribution's python, which has scapy (setup installs python3-scapy).
    let out = client
        .exec("/usr/bin/python3", &args)
        .expect("udp_fragments.py");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let answers = v["answers"].as_array().expect("answers");
    assert_eq!(answers.len(), srcs.len() * count);
    answers
        .iter()
        .map(|a| {
            a["reals"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn shuffled_fragments_of_a_datagram_reach_one_real() {
    let cfg = |rid: &str, fragments: bool| {
        let udp = format!("    port: 80\n    protocol: udp\n    fragments: {fragments}\n");
        config(
            rid,
            "",
            &(service("    port: 80\n", &[0, 1, 2]) + &service(&udp, &[0, 1, 2])),
        )
    };
    let l = Standalone::start("lbfr", 3, true, |rid| cfg(rid, false)).expect("lab");
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    let srcs: Vec<Ipv4Addr> = (50..56).map(|i| Ipv4Addr::new(10, 99, 0, i)).collect();
    for s in &srcs {
        l.t.client
            .ns
            .ip(&["addr", "add", &format!("{s}/24"), "dev", "eth0"])
            .expect("client address");
    }
    // Small datagrams are balanced either way.
    let small = tally(&udp_many(&l.t.client.ns, vip(80), 30).expect("udp"));
    assert_eq!(small.get("error"), None, "{small:?}");

    // Control: without steering, the fragments go to the LB's own stack, which has no
    // listener on the VIP: nothing is answered.
    let answered = send_fragmented(&l.t.client.ns, &srcs[..2], 5, true)
        .iter()
        .filter(|r| !r.is_empty())
        .count();
    assert_eq!(
        answered, 0,
        "fragments were balanced without `fragments: true`"
    );

    l.agent
        .reload(&cfg(&l.agent.router_id, true))
        .expect("reload");
    assert!(reloaded(&l.agent, 1), "{}", l.agent.log_text());
    let steered = verdict(&l.agent, "fragment_steered");
    for shuffle in [true, false] {
        let answers = send_fragmented(&l.t.client.ns, &srcs, 10, shuffle);
        let mut per_src = std::collections::BTreeMap::<usize, Vec<String>>::new();
        for (i, reals) in answers.iter().enumerate() {
            assert_eq!(
                reals.len(),
                1,
                "datagram {i} (shuffled: {shuffle}) answered by {reals:?}: each must be \
                 answered by exactly one real"
            );
            per_src.entry(i / 10).or_default().push(reals[0].clone());
        }
        let used: std::collections::BTreeSet<&String> = per_src.values().flatten().collect();
        assert!(used.len() >= 2, "six clients all on one real: {per_src:?}");
    }
    // Three fragments per 3,000-byte datagram, 120 datagrams.
    assert!(verdict(&l.agent, "fragment_steered") >= steered + 360);
}

#[test]
fn several_ports_and_all_ports_keep_a_client_on_one_real() {
    let services = service(
        "    ports: [80, 443, \"8000-8001\"]\n    persistence_timeout: 300\n",
        &[0, 1, 2],
    ) + &service("    port: 0\n    protocol: udp\n", &[0, 1, 2]);
    let mut l = Standalone::start("lbmp", 3, false, |rid| config(rid, "", &services)).expect("lab");
    let udp = |p: u16| format!("{VIP}:{p}");
    let (u5, u6) = (udp(5000), udp(6000));
    for i in 0..3 {
        l.t.start_server(
            i,
            &[
                "--tcp",
                "0.0.0.0:443",
                "--tcp",
                "0.0.0.0:8000",
                "--tcp",
                "0.0.0.0:8001",
                "--tcp",
                "0.0.0.0:8002",
                "--udp",
                &u5,
                "--udp",
                &u6,
            ],
        )
        .expect("server");
    }
    assert!(
        l.wait_http(Duration::from_secs(15)),
        "{}",
        l.agent.log_text()
    );
    let srcs: Vec<Ipv4Addr> = (50..62).map(|i| Ipv4Addr::new(10, 99, 0, i)).collect();
    for s in &srcs {
        l.t.client
            .ns
            .ip(&["addr", "add", &format!("{s}/24"), "dev", "eth0"])
            .expect("client address");
    }
    let per_src =
        l.t.client
            .ns
            .enter({
                let srcs = srcs.clone();
                move || {
                    srcs.iter()
                        .map(|&s| {
                            [80, 443, 8000, 8001, 80]
                                .iter()
                                .map(|&p| http_get_from(s, vip(p)).map_err(|e| format!("{e:#}")))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                }
            })
            .expect("netns");
    let mut used = std::collections::BTreeSet::new();
    for (src, answers) in srcs.iter().zip(&per_src) {
        let first = answers[0].as_ref().expect("port 80");
        for a in answers {
            assert_eq!(
                a.as_ref().ok(),
                Some(first),
                "{src}: persistence must hold across the service's ports: {answers:?}"
            );
        }
        used.insert(first.clone());
    }
    assert!(used.len() >= 2, "twelve clients on one real: {per_src:?}");

    // A port the service does not list reaches the LB's own stack (no listener: refused),
    // although every real listens on it.
    let unlisted =
        l.t.client
            .ns
            .enter(|| http_get_from(Ipv4Addr::new(10, 99, 0, 2), vip(8002)).is_err())
            .expect("netns");
    assert!(unlisted, "port 8002 is not the service's");

    // All ports: any UDP port of the VIP is balanced.
    for p in [5000, 6000] {
        let answers = tally(&udp_many(&l.t.client.ns, vip(p), 30).expect("udp"));
        assert_eq!(answers.get("error"), None, "udp {p}: {answers:?}");
        assert!(
            answers.len() >= 2,
            "udp {p} reached one real only: {answers:?}"
        );
    }
    let http = tally(&http_many(&l.t.client.ns, vip(443), 10).expect("http"));
    assert_eq!(http.get("error"), None, "{http:?}");
}

/// The kernel's view of `dev` in `ns`: "xdp" (native), "xdpgeneric", or none.
fn kernel_xdp_mode(ns: &Netns, dev: &str) -> Option<String> {
    let out = ns.ip(&["-d", "-j", "link", "show", "dev", dev]).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mode = v[0]["xdp"]["mode"].as_u64()?;
    // XDP_ATTACHED_DRV = 1, XDP_ATTACHED_SKB = 2.
    Some(if mode == 1 { "xdp" } else { "xdpgeneric" }.into())
}

#[test]
fn xdp_mode_is_chosen_seen_and_detached_with_the_master_role() {
    let mut t = Topology::build(
        "lbxm",
        Spec {
            lbs: 1,
            reals: 1,
            native_xdp: true,
        },
    )
    .expect("topology");
    t.start_all_servers().expect("servers");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let flag = dir.0.join("ok");
    std::fs::write(&flag, "").expect("flag");
    let rid = t.router_id(0);
    let vrrp = |mode: &str| {
        format!(
            "interfaces:\n  - {{ name: eth0, xdp_mode: {mode} }}\n\
vrrp_scripts:\n  - {{ name: chk, script: \"/usr/bin/test -e {}\", interval: 100ms, weight: 0, rise: 1, fall: 1 }}\n\
vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 61\n    priority: 100\n    advert_int: 100ms\n    virtual_ipaddresses: [\"{VIP}/24\"]\n    track_scripts: [chk]\n",
            flag.display()
        )
    };
    let services = service("    port: 80\n", &[0]);
    let lb = &t.lbs[0].ns;
    for (mode, kernel) in [("generic", "xdpgeneric"), ("native", "xdp")] {
        let mut agent =
            Agent::start(lb, &dir, &rid, &config(&rid, &vrrp(mode), &services)).expect("agent");
        let attached = wait_for(Duration::from_secs(10), || {
            (kernel_xdp_mode(lb, "eth0").as_deref() == Some(kernel)).then_some(())
        });
        assert!(attached.is_some(), "{mode}: {}", agent.log_text());
        let st = agent
            .status()
            .unwrap_or_else(|e| panic!("{mode}: status: {e:#}\n{}", agent.log_text()));
        let x = &st["xdp"][0];
        assert_eq!(x["interface"], "eth0");
        assert_eq!(x["attached"], true, "{st}");
        assert_eq!(x["mode"], mode, "{st}");
        let (ok, text, _) = agent.cli(&["status"]).expect("status text");
        assert!(ok && text.contains(&format!("eth0 ({mode})")), "{text}");
        let m = scrape(lb, METRICS).expect("metrics");
        assert_eq!(
            m.get(&format!(
                "lb_xdp_mode{{interface=\"eth0\",mode=\"{mode}\"}}"
            )),
            Some(&1.0),
            "{m:?}"
        );
        assert_eq!(m.get("lb_xdp_attached{interface=\"eth0\"}"), Some(&1.0));

        // FAULT (the tracked script fails): the program leaves the interface, and the
        // status and metrics say so.
        std::fs::remove_file(&flag).expect("fail the script");
        let detached = wait_for(Duration::from_secs(5), || {
            kernel_xdp_mode(lb, "eth0").is_none().then_some(())
        });
        assert!(detached.is_some(), "{}", agent.log_text());
        let ok = wait_for(Duration::from_secs(2), || {
            let m = scrape(lb, METRICS).ok()?;
            (m.get("lb_xdp_attached{interface=\"eth0\"}") == Some(&0.0)
                && !m.keys().any(|k| k.starts_with("lb_xdp_mode{")))
            .then_some(())
        });
        assert!(
            ok.is_some(),
            "metrics after detach: {:?}",
            scrape(lb, METRICS)
        );
        assert_eq!(agent.status().expect("status")["xdp"][0]["attached"], false);
        let exit = agent.stop().expect("stop");
        assert!(
            exit.is_some_and(|e| e.success()),
            "{mode}: a clean exit within 10 s: {exit:?}\n{}",
            agent.log_text()
        );
        std::fs::write(&flag, "").expect("flag");
    }

    // native where the driver cannot: a bridge. The agent refuses to start, naming it.
    lb.ip(&["link", "add", "br9", "type", "bridge"])
        .expect("bridge");
    lb.ip(&["link", "set", "br9", "up"]).expect("up");
    let bad = config(
        &rid,
        "interfaces:\n  - { name: br9, xdp_mode: native }\n",
        &service("    port: 80\n", &[0]).replace("interface: eth0", "interface: br9"),
    );
    let mut agent = Agent::start(lb, &dir, &rid, &bad).expect("agent");
    let status = agent
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("wait");
    let log = agent.log_text();
    assert!(
        matches!(status, Some(s) if !s.success()),
        "the agent must refuse native mode on a bridge: {log}"
    );
    assert!(
        log.contains("br9") && log.contains("driver (bridge)"),
        "the refusal must name the interface and its driver: {log}"
    );
    assert!(kernel_xdp_mode(lb, "br9").is_none());
}

#[test]
fn jumbo_mtu_native_attach_forwards_large_frames() {
    let mut t = Topology::build(
        "lbj",
        Spec {
            lbs: 1,
            reals: 1,
            native_xdp: true,
        },
    )
    .expect("topology");
    // 9,000 bytes everywhere: the bridge ports (one with lb_pass attached), the hosts.
    for port in ["p-client", "p-lb1", "p-r1"] {
        t.switch
            .ip(&["link", "set", port, "mtu", "9000"])
            .expect("port mtu");
    }
    for ns in [&t.client.ns, &t.lbs[0].ns, &t.reals[0].ns] {
        ns.ip(&["link", "set", "eth0", "mtu", "9000"]).expect("mtu");
    }
    t.lbs[0]
        .ns
        .ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])
        .expect("vip");
    t.start_all_servers().expect("servers");
    let dir = WorkDir::new(&t.prefix).expect("dir");
    let rid = t.router_id(0);
    let cfg = config(
        &rid,
        "interfaces:\n  - { name: eth0, xdp_mode: native }\n",
        &service("    port: 80\n", &[0]),
    );
    let agent = Agent::start(&t.lbs[0].ns, &dir, &rid, &cfg).expect("agent");
    let up = wait_for(Duration::from_secs(15), || {
        http_many(&t.client.ns, vip(80), 1).ok()?.pop()?.ok()
    });
    assert!(up.is_some(), "{}", agent.log_text());
    assert_eq!(
        kernel_xdp_mode(&t.lbs[0].ns, "eth0").as_deref(),
        Some("xdp")
    );

    // Full-size frames: the client's 8,948-byte segments (MSS for a 9,000 MTU), each one frame
    // of more than a page, go through the program natively.
    let before = agent.status().expect("status")["services"][0]["bytes"]
        .as_u64()
        .unwrap_or(0);
    let echo = t
        .client
        .ns
        .enter(|| -> anyhow::Result<usize> {
            use std::io::{BufRead as _, BufReader, Write as _};
            let mut s = std::net::TcpStream::connect_timeout(&vip(80), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let line = format!("{}\n", "j".repeat(64 * 1024));
            s.write_all(line.as_bytes())?;
            let mut back = String::new();
            BufReader::new(s).read_line(&mut back)?;
            Ok(back.len())
        })
        .expect("netns")
        .expect("echo");
    assert!(echo > 64 * 1024, "the 64 KiB line came back ({echo} bytes)");
    let after = agent.status().expect("status")["services"][0]["bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        after - before >= 64 * 1024,
        "the LB forwarded {} bytes of the 64 KiB line",
        after - before
    );
}
