//! Two agents running VRRP in a namespace lab: election, graceful and hard failover, link
//! failure, tracking, preemption, with probes through the VIP every 10 ms.

use std::time::{Duration, SystemTime};

use lb_tests::{
    client::{http_many, tally, LongConn, Prober},
    pair::{vip_addr, Node, Pair},
};

const PROBE: Duration = Duration::from_millis(10);

#[test]
fn graceful_stop_of_the_master_loses_no_probe() {
    let mut p = Pair::start("lbvg", vec![Node::v3(150), Node::v3(100)], 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let mut conn = LongConn::open(&p.t.client.ns, vip_addr(80)).expect("connect");
    let prober = Prober::start(&p.t.client.ns, vip_addr(80), PROBE).expect("prober");
    std::thread::sleep(Duration::from_millis(300));

    // Sample which nodes have XDP attached (asked of the kernel) every 10 ms across the
    // hand-over.
    let names: Vec<String> = p.t.lbs.iter().map(|l| l.ns.name.clone()).collect();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let on = sampling.clone();
    let sampler = std::thread::spawn(move || {
        let attached = |ns: &str| {
            std::process::Command::new("ip")
                .args(["-n", ns, "-j", "link", "show", "dev", "eth0"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"xdp\""))
                .unwrap_or(false)
        };
        let mut samples = Vec::new();
        while on.load(std::sync::atomic::Ordering::Relaxed) {
            let t = std::time::Instant::now();
            samples.push((t, attached(&names[0]), attached(&names[1])));
            std::thread::sleep(Duration::from_millis(10));
        }
        samples
    });
    std::thread::sleep(Duration::from_millis(100));
    let t0 = SystemTime::now();
    let mut a = p.agents[0].take().expect("agent");
    let status = a.stop().expect("stop");
    assert!(
        status.is_some_and(|s| s.success()),
        "agent did not exit cleanly:\n{}",
        a.log_text()
    );
    p.agents[0] = Some(a);
    p.wait_master(1, Duration::from_secs(5)).expect("takeover");
    std::thread::sleep(Duration::from_millis(300));
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    let gaps = samples.iter().filter(|(_, a, b)| !a && !b).count();
    assert_eq!(
        gaps, 0,
        "a moment with XDP attached nowhere during a graceful hand-over"
    );
    let both: Vec<_> = samples
        .iter()
        .filter(|(_, a, b)| *a && *b)
        .map(|(t, ..)| *t)
        .collect();
    let overlap = match (both.first(), both.last()) {
        (Some(f), Some(l)) => *l - *f + Duration::from_millis(10),
        _ => Duration::ZERO,
    };
    eprintln!(
        "measured: both nodes attached for {overlap:?} ({} of {} samples)",
        both.len(),
        samples.len()
    );
    assert!(
        // The planned hand-over grace (one interval) plus the sampling period.
        overlap <= Duration::from_millis(200),
        "two nodes forwarded for {overlap:?}"
    );
    let r = prober.finish();
    let took = p.became_master_after(1, t0).expect("takeover logged");
    eprintln!("measured: graceful takeover {took:?}, probes {r:?}");
    assert_eq!(r.lost, 0, "probes lost on a graceful stop: {r:?}");
    // Skew_Time for priority 100 at 100 ms is 61 ms; allow scheduling margin.
    assert!(took < Duration::from_millis(400), "takeover took {took:?}");
    for seq in 1..10 {
        assert_eq!(
            conn.ping(seq).expect("established connection broke"),
            conn.real
        );
    }
}

#[test]
fn killed_master_is_replaced_within_master_down_interval() {
    let mut p = Pair::start("lbvk", vec![Node::v3(150), Node::v3(100)], 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let mut conn = LongConn::open(&p.t.client.ns, vip_addr(80)).expect("connect");
    let prober = Prober::start(&p.t.client.ns, vip_addr(80), PROBE).expect("prober");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = SystemTime::now();
    if let Some(a) = p.agents[0].as_mut() {
        a.proc.kill();
    }
    // The killed node keeps its VIP (nobody removes it) and its pinned XDP link: it goes on
    // forwarding for clients that still send to it, until lb2's gratuitous ARPs move them.
    let took = lb_tests::netns::wait_for(Duration::from_secs(5), || p.became_master_after(1, t0));
    let took = took.expect("no takeover after SIGKILL");
    std::thread::sleep(Duration::from_millis(500));
    let r = prober.finish();
    eprintln!("measured: SIGKILL takeover {took:?}, probes {r:?}");
    // Master_Down_Interval for priority 100 at 100 ms: 361 ms.
    assert!(
        took < Duration::from_millis(361 + 250),
        "takeover took {took:?}"
    );
    assert_eq!(
        r.lost, 0,
        "the killed node's pinned XDP link should have kept forwarding: {r:?}"
    );
    for seq in 1..10 {
        assert_eq!(
            conn.ping(seq).expect("established connection broke"),
            conn.real
        );
    }
}

#[test]
fn link_down_faults_the_master_and_it_forwards_at_once_when_back() {
    // Health checks every 100 ms, down after one failure: with the link down they would all
    // fail (and the returning master would have no real) unless they pause with the link.
    let checks = "    delay_loop: 100ms\n    checks: [ { tcp: { connect_timeout: 100ms } } ]\n";
    let nodes = [150, 100].map(|prio| Node {
        service_extra: checks.into(),
        ..Node::v3(prio)
    });
    let p = Pair::start("lbvl", nodes.to_vec(), 3).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    let t0 = SystemTime::now();
    p.t.lbs[0]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    let took = lb_tests::netns::wait_for(Duration::from_secs(5), || p.became_master_after(1, t0));
    let took = took.expect("no takeover after link down");
    eprintln!("measured: link-down takeover {took:?}");
    if std::env::var("LB_TEST_LOGS").is_ok() {
        eprintln!("{}\n{}", p.agent(0).log_text(), p.agent(1).log_text());
    }
    assert!(
        took < Duration::from_millis(361 + 250),
        "takeover took {took:?}"
    );
    assert!(
        p.agent(0).wait_log("FAULT", Duration::from_secs(2)),
        "{}",
        p.agent(0).log_text()
    );
    assert!(!p.holds_vip(0), "a faulted node must give up its VIP");
    // Long enough down for every check to have failed several times over.
    std::thread::sleep(Duration::from_secs(1));
    // Link back: lb0 preempts again, and forwards at once: the kernel flushed its neighbours
    // with the link, but the reals' MACs are kept, and their health was not judged through a
    // dead link. (Before, its own stack answered with resets until they re-resolved.)
    p.t.lbs[0]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("link up");
    p.wait_master(0, Duration::from_secs(5))
        .expect("preempt back");
    let answers = http_many(&p.t.client.ns, vip_addr(80), 30).expect("requests");
    let counts = tally(&answers);
    assert_eq!(
        counts.get("error"),
        None,
        "requests right after the master came back: {answers:?}\n{}",
        p.agent(0).log_text()
    );
    assert!(
        p.agent(0)
            .log_text()
            .contains("health checks of the reals behind it paused"),
        "{}",
        p.agent(0).log_text()
    );
    assert!(
        !p.agent(0).log_text().contains("real server DOWN"),
        "a real was judged through the dead link:\n{}",
        p.agent(0).log_text()
    );
}

#[test]
fn track_script_lowers_priority_and_preempt_brings_the_master_back() {
    let dir = std::env::temp_dir().join(format!("lbvt{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let flag = dir.join("ok");
    std::fs::write(&flag, "").expect("flag");
    let script = format!("/usr/bin/test -e {}", flag.display());
    let mut n1 = Node::v3(150);
    n1.top_extra = format!("vrrp_scripts:\n  - {{ name: chk, script: \"{script}\", interval: 100ms, weight: -100, rise: 1, fall: 1 }}\n");
    n1.instance_extra = "    track_scripts: [chk]\n".into();
    let p = Pair::start("lbvs", vec![n1, Node::v3(100)], 2).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    std::fs::remove_file(&flag).expect("fail the script");
    p.wait_master(1, Duration::from_secs(5))
        .expect("backup takes over when the script fails");
    std::fs::write(&flag, "").expect("recover the script");
    p.wait_master(0, Duration::from_secs(5))
        .expect("preempted back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nopreempt_keeps_the_current_master() {
    let mut n1 = Node::v3(150);
    n1.instance_extra = "    nopreempt: true\n".into();
    let mut n2 = Node::v3(100);
    n2.instance_extra = "    nopreempt: true\n".into();
    let mut p = Pair::start("lbvn", vec![n1, n2], 2).expect("lab");
    p.wait_master(0, Duration::from_secs(10)).expect("election");
    if let Some(mut a) = p.agents[0].take() {
        a.stop().expect("stop");
    }
    p.wait_master(1, Duration::from_secs(5)).expect("takeover");
    p.agents[0] = Some(p.start_agent(0).expect("restart"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        p.holds_vip(1) && !p.holds_vip(0),
        "the higher priority took over despite nopreempt"
    );
}
