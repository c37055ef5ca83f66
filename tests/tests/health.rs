//! Health checks against real servers that really stop and start, in a namespace lab.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lb_tests::{
    client::{http_many, tally, LongConn},
    netns::wait_for,
    standalone::Standalone,
    topology::{real_ip, VIP},
};

fn vip() -> SocketAddr {
    SocketAddr::from((VIP, 80))
}

/// A one-service config; `checks` is the YAML list under the service, `extra` extra service keys.
fn config(rid: &str, n_reals: usize, checks: &str, extra: &str, real_extra: &str) -> String {
    let mut y = format!(
        "global_defs:\n  router_id: {rid}\n  max_services: 2\n  max_reals: 16\n  conntrack_size: 65536\n\
         virtual_servers:\n  - address: {VIP}\n    port: 80\n    interface: eth0\n    delay_loop: 300ms\n    rise: 2\n    fall: 2\n{extra}    checks:\n{checks}    real_servers:\n"
    );
    for i in 0..n_reals {
        y += &format!(
            "      - {{ address: {}, port: 80{real_extra} }}\n",
            real_ip(i)
        );
    }
    y
}

type Lab = Standalone;

fn lab(tag: &str, n: usize, cfg: impl Fn(&str) -> String, start_servers: bool) -> Lab {
    Standalone::start(tag, n, start_servers, cfg).expect("lab")
}

/// Waits until every one of `want` reals serves and nothing fails.
fn wait_serving(l: &Lab, want: &[&str], timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(timeout, || {
        let c = tally(&http_many(&l.t.client.ns, vip(), 30).ok()?);
        let ok = !c.contains_key("error")
            && want.iter().all(|r| c.contains_key(*r))
            && c.len() == want.len();
        ok.then(|| t0.elapsed())
    })
}

const TCP_CHECK: &str = "      - tcp: { connect_timeout: 300ms }\n";

#[test]
fn stopped_real_leaves_within_fall_intervals_and_returns_after_rise() {
    let mut l = lab("lbh", 3, |rid| config(rid, 3, TCP_CHECK, "", ""), true);
    let all = ["r1", "r2", "r3"];
    assert!(
        wait_serving(&l, &all, Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );

    // Stop r2. Bound: fall x delay_loop (+10% jitter) + connect timeout + margin for the
    // agent's update and this client's polling.
    let bound = Duration::from_millis(2 * 330 + 300 + 700);
    l.t.stop_server(1);
    let gone = wait_serving(&l, &["r1", "r3"], Duration::from_secs(10));
    let gone = gone.expect("r2 never left the table");
    assert!(gone <= bound, "r2 took {gone:?} to leave (bound {bound:?})");
    assert!(
        l.agent.log_text().contains("real server DOWN"),
        "{}",
        l.agent.log_text()
    );
    // Traffic to the others continues without errors and never reaches r2.
    let c = tally(&http_many(&l.t.client.ns, vip(), 60).expect("traffic"));
    assert_eq!(c.get("error"), None, "{c:?}");
    assert_eq!(c.get("r2"), None, "{c:?}");

    // Restart: back after `rise` (2) successful checks.
    l.t.start_server(1, &[]).expect("restart r2");
    let back = wait_serving(&l, &all, Duration::from_secs(10)).expect("r2 never came back");
    let bound = Duration::from_millis(2 * 330 + 700);
    assert!(
        back <= bound,
        "r2 took {back:?} to come back (bound {bound:?})"
    );
    eprintln!("measured: detection {gone:?}, rejoin {back:?}");
}

#[test]
fn http_status_and_body_checks() {
    let checks = "      - http: { path: /, status_code: [200], regex: \"^r[0-9]\", connect_timeout: 300ms }\n";
    let mut l = lab("lbhh", 3, |rid| config(rid, 3, checks, "", ""), false);
    l.t.start_server(0, &[]).expect("r1");
    l.t.start_server(1, &["--status", "500"]).expect("r2 500");
    l.t.start_server(2, &["--body", "maintenance\n"])
        .expect("r3 wrong body");
    assert!(
        wait_serving(&l, &["r1"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    let log = l.agent.log_text();
    assert!(log.contains("HTTP 500"), "reason for r2 not logged:\n{log}");
    assert!(
        log.contains("body did not match"),
        "reason for r3 not logged:\n{log}"
    );
    // Fix r2: it comes back.
    l.t.stop_server(1);
    l.t.start_server(1, &[]).expect("r2 ok");
    assert!(wait_serving(&l, &["r1", "r2"], Duration::from_secs(10)).is_some());
}

#[test]
fn https_check_with_self_signed_real() {
    let checks = "      - https: { path: /, verify: false, connect_port: 443, connect_timeout: 500ms, timeout: 1s }\n";
    let mut l = lab("lbhs", 2, |rid| config(rid, 2, checks, "", ""), true);
    // Only r1 runs a TLS server. r2 answers HTTP on 443 in plain text: a check that did not
    // speak TLS (or accepted any open port) would take it in; it must stay out.
    l.t.stop_server(1);
    l.t.start_server(1, &["--tcp", "0.0.0.0:443"])
        .expect("r2 plain HTTP on 443");
    let key = l.dir.0.join("key.pem");
    let cert = l.dir.0.join("cert.pem");
    lb_tests::netns::run(std::process::Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=r1",
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &cert.to_string_lossy(),
    ]))
    .expect("openssl req");
    let _tls = l.t.reals[0]
        .ns
        .spawn(
            "openssl",
            &[
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                "443",
                "-cert",
                &cert.to_string_lossy(),
                "-key",
                &key.to_string_lossy(),
            ],
        )
        .expect("s_server");
    assert!(
        wait_serving(&l, &["r1"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    // r2's checks ran and failed on the handshake (not for want of trying).
    let r2 = format!("{}:80", real_ip(1));
    let failed = wait_for(Duration::from_secs(5), || {
        let s = l.agent.status().ok()?;
        let r = s["services"][0]["reals"]
            .as_array()?
            .iter()
            .find(|r| r["real"] == r2.as_str())?
            .clone();
        let last = r["last_check"].as_str()?.to_owned();
        (r["health"] == "unknown" || r["health"] == "down")
            .then_some(last)
            .filter(|l| !l.is_empty())
    });
    let last = failed.expect("r2 was never checked");
    assert!(
        last.to_lowercase().contains("tls") || last.to_lowercase().contains("handshake"),
        "r2 failed for another reason than TLS: {last}"
    );
    // And it never took traffic.
    let c = tally(&http_many(&l.t.client.ns, vip(), 30).expect("traffic"));
    assert_eq!(c.get("r2"), None, "{c:?}");
}

#[test]
fn script_check_and_dynamic_weight() {
    let dir = std::env::temp_dir().join(format!("lbhsc{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = dir.join("check.sh");
    let state = dir.join("state");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", state.display()),
    )
    .expect("script");
    std::fs::write(&state, "0").expect("state");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let checks = format!(
        "      - script: {{ script: \"{}\", timeout: 1s, dynamic: true }}\n",
        script.display()
    );
    // r1 checked by the script; r2 without checks (always up), weight 1.
    let cfg = |rid: &str| {
        let mut y = config(rid, 1, "", "", "");
        y = y.replace("    checks:\n", "");
        y.replace(
            &format!("      - {{ address: {}, port: 80 }}\n", real_ip(0)),
            &format!(
                "      - {{ address: {}, port: 80, checks: [{{ script: {{ script: \"{}\", timeout: 1s, dynamic: true }} }}] }}\n      - {{ address: {}, port: 80, checks: [] }}\n",
                real_ip(0), script.display(), real_ip(1)
            ),
        )
    };
    let _ = checks;
    let l = lab("lbhd", 2, cfg, true);
    assert!(
        wait_serving(&l, &["r1", "r2"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    // Exit 1: down.
    std::fs::write(&state, "1").expect("state");
    assert!(
        wait_serving(&l, &["r2"], Duration::from_secs(10)).is_some(),
        "script failure ignored:\n{}",
        l.agent.log_text()
    );
    // Exit 12: up with weight 10 against r2's 1: r1 takes about 10/11 of new flows.
    std::fs::write(&state, "12").expect("state");
    assert!(wait_serving(&l, &["r1", "r2"], Duration::from_secs(10)).is_some());
    // The data path uses weight 10 for r1 (asked of the agent, not assumed).
    let weighted = wait_for(Duration::from_secs(5), || {
        let s = l.agent.status().ok()?;
        let r = s["services"][0]["reals"]
            .as_array()?
            .iter()
            .find(|r| r["real"] == format!("{}:80", real_ip(0)))?
            .clone();
        (r["effective_weight"] == 10).then_some(())
    });
    assert!(
        weighted.is_some(),
        "r1's dynamic weight never reached the data path:\n{}",
        l.agent.log_text()
    );
    let c = tally(&http_many(&l.t.client.ns, vip(), 200).expect("traffic"));
    let r1 = c.get("r1").copied().unwrap_or(0);
    assert!(
        r1 >= 160,
        "weight 10 vs 1 should give r1 ~180 of 200, got {c:?}"
    );
    // Exit 2: weight 0: drained, no new flows.
    std::fs::write(&state, "2").expect("state");
    assert!(
        wait_serving(&l, &["r2"], Duration::from_secs(10)).is_some(),
        "weight 0 ignored:\n{}",
        l.agent.log_text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A real whose every check round sees the opposite of the one before: with rise = fall = 2 it
/// never changes state (two equal results in a row are never seen), where rise = fall = 1
/// would change it every round. The result of each round is set, right after the previous one
/// is counted, by a firewall rule on r1 that refuses its port 80 (instant, unlike stopping
/// and starting a server).
#[test]
fn flapping_real_changes_state_no_faster_than_rise_and_fall_allow() {
    let mut l = lab("lbhf", 2, |rid| config(rid, 2, TCP_CHECK, "", ""), true);
    assert!(
        wait_serving(&l, &["r1", "r2"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    let r1 = format!("{}:80", real_ip(0));
    let r1_field = |field: &str| -> Option<u64> {
        let s = l.agent.status().ok()?;
        s["services"][0]["reals"]
            .as_array()?
            .iter()
            .find(|r| r["real"] == r1.as_str())?[field]
            .as_u64()
    };
    let rounds = || Some(r1_field("checks_ok")? + r1_field("checks_failed")?);
    let (failed_before, transitions_before) = (
        r1_field("checks_failed").expect("status"),
        r1_field("transitions").expect("status"),
    );
    let r1_ns = &l.t.reals[0].ns;
    let mut answering = true;
    for _ in 0..12 {
        let seen = rounds().expect("status");
        let next = wait_for(Duration::from_secs(3), || {
            rounds().filter(|n| *n > seen).map(|_| ())
        });
        assert!(
            next.is_some(),
            "no check round finished:\n{}",
            l.agent.log_text()
        );
        // The next round sees the opposite.
        if answering {
            r1_ns
                .reject_input("flap", &["tcp", "dport", "80"])
                .expect("nft");
        } else {
            r1_ns.undrop("flap").expect("nft");
        }
        answering = !answering;
    }
    if !answering {
        r1_ns.undrop("flap").expect("nft");
    }
    let log = l.agent.log_text();
    let failed = r1_field("checks_failed").expect("status") - failed_before;
    let transitions = r1_field("transitions").expect("status") - transitions_before;
    // The agent saw the flapping...
    assert!(
        failed >= 4,
        "only {failed} failed rounds while r1 flapped:\n{log}"
    );
    // ...and held r1's state, as rise = fall = 2 say.
    assert_eq!(transitions, 0, "r1 changed state while flapping:\n{log}");
    // It still acts on a real that stays down.
    l.t.stop_server(0);
    let gone = wait_for(Duration::from_secs(3), || {
        (r1_field("transitions")? > transitions_before).then_some(())
    });
    assert!(
        gone.is_some(),
        "r1 stayed up after its server stopped for good:\n{}",
        l.agent.log_text()
    );
}

#[test]
fn inhibit_on_failure_drains_established_flows() {
    let l = lab(
        "lbhi",
        2,
        |rid| config(rid, 2, TCP_CHECK, "", ", inhibit_on_failure: true"),
        true,
    );
    assert!(
        wait_serving(&l, &["r1", "r2"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    // An established connection on some real...
    let mut conn = LongConn::open(&l.t.client.ns, vip()).expect("connect");
    let idx: usize = conn.real[1..].parse::<usize>().expect("name") - 1;
    let other = if idx == 0 { "r2" } else { "r1" };
    // ...whose health check starts failing while the connection itself stays fine: block the
    // check's SYNs to port 80 from the LB only for new connections (the established one keeps
    // its state), using nftables on the real.
    let ns = &l.t.reals[idx].ns;
    ns.drop_input(
        "t",
        &[
            "ip",
            "saddr",
            "10.99.0.3",
            "tcp",
            "dport",
            "80",
            "ct",
            "state",
            "new",
        ],
    )
    .expect("nft");
    assert!(
        l.agent.wait_log("real server DOWN", Duration::from_secs(5)),
        "{}",
        l.agent.log_text()
    );
    // New flows avoid it...
    assert!(wait_serving(&l, &[other], Duration::from_secs(5)).is_some());
    // ...the established one keeps its real.
    for seq in 1..20 {
        let r = conn.ping(seq).expect("drained connection broke");
        assert_eq!(r, conn.real);
    }
}

#[test]
fn probe_vip_detects_a_real_without_its_loopback_vip() {
    let checks = "      - tcp: { connect_timeout: 300ms, probe_vip: true }\n";
    let l = lab("lbhv", 2, |rid| config(rid, 2, checks, "", ""), true);
    assert!(
        wait_serving(&l, &["r1", "r2"], Duration::from_secs(15)).is_some(),
        "{}",
        l.agent.log_text()
    );
    assert!(
        l.agent.log_text().contains("answers through"),
        "{}",
        l.agent.log_text()
    );
    // r2 loses its VIP: its own address still answers, the VIP through it does not.
    let downs = l.agent.log_text().matches("real server DOWN").count();
    l.t.reals[1]
        .ns
        .ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"])
        .expect("del vip");
    let down = wait_for(Duration::from_secs(5), || {
        (l.agent.log_text().matches("real server DOWN").count() > downs).then_some(())
    });
    assert!(down.is_some(), "{}", l.agent.log_text());
    assert!(
        l.agent.log_text().contains("VIP missing on its loopback"),
        "{}",
        l.agent.log_text()
    );
    let own =
        l.t.client
            .ns
            .enter(|| {
                std::net::TcpStream::connect_timeout(
                    &std::net::SocketAddr::from((real_ip(1), 80)),
                    Duration::from_secs(1),
                )
                .is_ok()
            })
            .expect("netns");
    assert!(
        own,
        "r2's own address must still answer (an ordinary check would pass)"
    );
    assert!(wait_serving(&l, &["r1"], Duration::from_secs(5)).is_some());
    // The VIP comes back: so does r2.
    l.t.reals[1]
        .ns
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
        .expect("add vip");
    assert!(wait_serving(&l, &["r1", "r2"], Duration::from_secs(5)).is_some());
}
