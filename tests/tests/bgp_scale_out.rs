//! Scale-out mode in the namespace lab: three active LB nodes behind a router that spreads flows
//! over them with ECMP (BIRD merges the nodes' BGP routes; L4 hashing), each node running the
//! agent and BIRD with the config of docs/bgp.md, BFD on every session. Reals answer the far
//! client straight through the router (direct routing).
//!
//! ```text
//!  far client 10.98.0.2 ── router 10.98.0.1 / 10.99.0.254 (BIRD, ECMP) ──┐ br0
//!                     lb1..lb3 10.99.0.3-5 (agent + BIRD, XDP) ──────────┤
//!                     r1..r3   10.99.0.11-13 (VIP on lo) ─────────────────┘
//! ```
//!
//! Each event runs with 100 established connections held through the VIP; each reports
//! same / moved / broken, and the time until the router's route changed.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use lb_tests::{
    agent::{Agent, WorkDir},
    bird::{lb_node_conf, next_hops, router_conf, Bird, LbNode},
    client::{http_get, http_many},
    held::{Held, HeldReport},
    netns::{wait_for, Netns},
    topology::{lb_ip, real_ip, FarClient, Spec, Topology, ROUTER_IP, VIP},
};

const ROUTER_AS: u32 = 65000;
const NODE_AS: u32 = 65001;
const NODES: usize = 3;
/// Both reals of the first config must be up for a node to announce.
const QUORUM: u32 = 2;

struct Lab {
    // Drop order: agents and BIRDs before the namespaces.
    agents: Vec<Option<Agent>>,
    birds: Vec<Bird>,
    router: Bird,
    far: FarClient,
    dir: WorkDir,
    t: Topology,
}

fn routes_file(dir: &WorkDir, i: usize, v6: bool) -> String {
    let fam = if v6 { 6 } else { 4 };
    dir.0
        .join(format!("lb{}-vips{fam}.conf", i + 1))
        .display()
        .to_string()
}

/// Node `i`'s agent config: one TCP service on the VIP with the reals `reals` (indices),
/// checked every 300 ms; `quorum` as given.
fn agent_cfg(lab_dir: &WorkDir, t: &Topology, i: usize, reals: &[usize], quorum: u32) -> String {
    let list: String = reals
        .iter()
        .map(|r| format!("      - {{ address: {}, port: 80 }}\n", real_ip(*r)))
        .collect();
    format!(
        "global_defs:\n  router_id: {rid}\nbgp:\n  routes_file: {f4}\n  routes_file6: {f6}\n  \
         bird_socket: {sock}\n  drain_time: 1s\nvirtual_servers:\n  - address: {VIP}\n    port: 80\n    \
         protocol: tcp\n    interface: eth0\n    delay_loop: 300ms\n    quorum: {quorum}\n    \
         checks: [ {{ tcp: {{ connect_timeout: 300ms }} }} ]\n    real_servers:\n{list}",
        rid = t.router_id(i),
        f4 = routes_file(lab_dir, i, false),
        f6 = routes_file(lab_dir, i, true),
        sock = lab_dir.0.join(format!("bird-lb{}.ctl", i + 1)).display(),
    )
}

fn lb_hops() -> Vec<Ipv4Addr> {
    (0..NODES).map(lb_ip).collect()
}

/// Waits until the router's route to the VIP has exactly `want` as next hops; how long it took.
fn wait_hops(router: &Netns, want: &[Ipv4Addr], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(limit, || {
        (next_hops(router, VIP) == want).then(|| t0.elapsed())
    })
}

impl Lab {
    fn start() -> Lab {
        let mut t = Topology::build(
            "lbbg",
            Spec {
                lbs: NODES,
                reals: 3,
                native_xdp: true,
            },
        )
        .expect("topology");
        t.start_all_servers().expect("servers");
        let far = t.add_far_client(1500).expect("router and far client");
        for (k, v) in [
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv4.fib_multipath_use_neigh", "1"),
        ] {
            far.router.ns.sysctl(k, v).expect("sysctl");
        }
        let dir = WorkDir::new(&t.prefix).expect("workdir");
        // The agents first: each writes its routes files, which BIRD's config includes.
        let agents = (0..NODES)
            .map(|i| Some(start_agent(&t, &dir, i, &[0, 1], QUORUM)))
            .collect();
        for i in 0..NODES {
            let f = routes_file(&dir, i, true);
            wait_for(Duration::from_secs(10), || {
                std::path::Path::new(&f).exists().then_some(())
            })
            .unwrap_or_else(|| panic!("agent {i} never wrote {f}"));
        }
        let birds = (0..NODES)
            .map(|i| {
                let conf = lb_node_conf(&LbNode {
                    node_ip: lb_ip(i),
                    local_as: NODE_AS,
                    router_ip: ROUTER_IP,
                    router_as: ROUTER_AS,
                    routes_file: &routes_file(&dir, i, false),
                    routes_file6: &routes_file(&dir, i, true),
                });
                Bird::start(&t.lbs[i].ns, &dir.0, &format!("lb{}", i + 1), &conf).expect("bird")
            })
            .collect();
        let peers: Vec<(Ipv4Addr, u32)> = (0..NODES).map(|i| (lb_ip(i), NODE_AS)).collect();
        let router = Bird::start(
            &far.router.ns,
            &dir.0,
            "router",
            &router_conf(ROUTER_IP, ROUTER_AS, &peers),
        )
        .expect("router bird");
        let lab = Lab {
            agents,
            birds,
            router,
            far,
            dir,
            t,
        };
        if wait_hops(&lab.far.router.ns, &lb_hops(), Duration::from_secs(30)).is_none() {
            panic!(
                "the router never had all three nodes as next hops:\n{}",
                lab.dump()
            );
        }
        lab
    }

    fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("agent running")
    }

    fn router_ns(&self) -> &Netns {
        &self.far.router.ns
    }

    fn dump(&self) -> String {
        let mut s = format!(
            "router route: {:?}\nrouter bird: {}\n",
            next_hops(self.router_ns(), VIP),
            self.router.cli(&["show", "protocols"]).unwrap_or_default()
        );
        for (i, a) in self.agents.iter().enumerate() {
            if let Some(a) = a {
                let log = a.log_text();
                let tail: Vec<&str> = log
                    .lines()
                    .filter(|l| !l.contains(" DEBUG "))
                    .rev()
                    .take(15)
                    .collect();
                s.push_str(&format!(
                    "--- agent lb{} (last lines, newest first)\n{}\n",
                    i + 1,
                    tail.join("\n")
                ));
            }
            s.push_str(&format!(
                "--- bird lb{}: {}\n",
                i + 1,
                self.birds[i].cli(&["show", "route"]).unwrap_or_default()
            ));
        }
        s
    }

    /// The data-path `tx` count of every node.
    fn tx(&self) -> Vec<u64> {
        (0..NODES)
            .map(|i| {
                self.agents[i]
                    .as_ref()
                    .and_then(|a| a.status().ok())
                    .and_then(|s| s["verdicts"]["tx"].as_u64())
                    .unwrap_or(0)
            })
            .collect()
    }

    fn vip80(&self) -> SocketAddr {
        SocketAddr::from((VIP, 80))
    }

    fn hold(&self) -> Held {
        Held::open(
            &self.far.client,
            self.vip80(),
            100,
            Duration::from_millis(200),
        )
        .expect("100 connections through the VIP")
    }
}

fn start_agent(t: &Topology, dir: &WorkDir, i: usize, reals: &[usize], quorum: u32) -> Agent {
    let rid = t.router_id(i);
    Agent::start(
        &t.lbs[i].ns,
        dir,
        &rid,
        &agent_cfg(dir, t, i, reals, quorum),
    )
    .expect("agent")
}

/// New connections through the VIP, one after another, until stopped: (sent, failed).
struct Requests {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<usize>,
}

impl Requests {
    fn start(client: &Netns, addr: SocketAddr) -> Requests {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, f) = (stop.clone(), failed.clone());
        let ns = client.path();
        let thread = std::thread::spawn(move || {
            let Ok(file) = std::fs::File::open(&ns) else {
                return 0;
            };
            // SAFETY: setns(2) on this thread only, with a namespace file we opened.
            if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) }
                != 0
            {
                return 0;
            }
            let mut sent = 0;
            while !s.load(Ordering::Relaxed) {
                sent += 1;
                if http_get(addr).is_err() {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            sent
        });
        Requests {
            stop,
            failed,
            thread,
        }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.thread.join().unwrap_or(0);
        (sent, self.failed.load(Ordering::Relaxed))
    }
}

struct Row {
    event: &'static str,
    held: HeldReport,
    route_changed: Option<Duration>,
    requests: Option<(usize, usize)>,
}

fn print_table(rows: &[Row]) {
    eprintln!("measured: scale-out events, 100 connections held through the VIP each");
    eprintln!(
        "| event | same | moved | broken | router's route changed after | new requests failed |"
    );
    eprintln!("|---|---|---|---|---|---|");
    for r in rows {
        eprintln!(
            "| {} | {} | {} | {} | {} | {} |",
            r.event,
            r.held.same,
            r.held.moved,
            r.held.broken,
            r.route_changed
                .map_or("-".into(), |d| format!("{} ms", d.as_millis())),
            r.requests
                .map_or("-".into(), |(s, f)| format!("{f} of {s}")),
        );
    }
}

#[test]
fn three_active_nodes_behind_ecmp_keep_every_connection() {
    let mut lab = Lab::start();
    let mut rows = Vec::new();

    // New flows spread over the three nodes.
    let before = lab.tx();
    let answers = http_many(&lab.far.client, lab.vip80(), 90).expect("requests");
    let failed = answers.iter().filter(|a| a.is_err()).count();
    assert_eq!(failed, 0, "{answers:?}");
    let after = lab.tx();
    let split: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("measured: 90 new connections, frames forwarded per node: {split:?}");
    for (i, n) in split.iter().enumerate() {
        assert!(*n >= 15, "node lb{} carried too little: {split:?}", i + 1);
    }
    // Every node reports the VIP announced, and the same Maglev input.
    let prints: Vec<String> = (0..NODES)
        .map(|i| {
            let s = lab.agent(i).status().expect("status");
            assert_eq!(s["bgp"]["vips"][0]["announced"], true, "{s}");
            s["services"][0]["maglev_fingerprint"].to_string()
        })
        .collect();
    assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");

    // A service below quorum on one node is withdrawn there and nowhere else: lb1's checks
    // of r2 fail (dropped on lb1 only), so lb1 has 1 of the 2 reals its quorum needs.
    let r2 = real_ip(1).to_string();
    lab.t.lbs[0]
        .ns
        .drop_output("lbquorum", &["ip", "daddr", &r2, "tcp", "dport", "80"])
        .expect("nft");
    let others: Vec<Ipv4Addr> = (1..NODES).map(lb_ip).collect();
    wait_hops(lab.router_ns(), &others, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lb1 below quorum not withdrawn:\n{}", lab.dump()));
    let s = lab.agent(0).status().expect("status");
    let why = s["bgp"]["vips"][0]["why"].as_str().unwrap_or_default();
    assert!(why.contains("below quorum"), "{s}");
    for i in 1..NODES {
        let s = lab.agent(i).status().expect("status");
        assert_eq!(s["bgp"]["vips"][0]["announced"], true, "{s}");
    }
    lab.t.lbs[0].ns.undrop("lbquorum").expect("nft");
    wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("lb1 never announced again:\n{}", lab.dump()));

    // SIGTERM of lb1's agent: withdraw first, drain, then stop; no request fails.
    let held = lab.hold();
    let requests = Requests::start(&lab.far.client, lab.vip80());
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut a = lab.agents[0].take().expect("lb1");
    a.proc.signal(libc::SIGTERM).expect("SIGTERM");
    let changed =
        wait_hops(lab.router_ns(), &others, Duration::from_secs(10)).map(|_| t0.elapsed());
    let exited = a.proc.wait_timeout(Duration::from_secs(10)).expect("wait");
    assert!(
        exited.is_some_and(|s| s.success()),
        "lb1 did not stop cleanly:\n{}",
        a.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let req = requests.finish();
    rows.push(Row {
        event: "SIGTERM of one node's agent",
        held: held.finish(),
        route_changed: changed,
        requests: Some(req),
    });
    assert!(changed.is_some(), "{}", lab.dump());

    // lb1 joins again: ECMP moves some flows onto it.
    let held = lab.hold();
    let t0 = Instant::now();
    lab.agents[0] = Some(start_agent(&lab.t, &lab.dir, 0, &[0, 1], QUORUM));
    let changed =
        wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(20)).map(|_| t0.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "a node joins",
        held: held.finish(),
        route_changed: changed,
        requests: None,
    });
    assert!(changed.is_some(), "{}", lab.dump());

    // SIGKILL of lb2's agent: the pinned XDP program keeps forwarding and BIRD keeps
    // announcing (docs/bgp.md): nothing changes for the router.
    let held = lab.hold();
    let mut a = lab.agents[1].take().expect("lb2");
    a.proc.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        next_hops(lab.router_ns(), VIP),
        lb_hops(),
        "route kept after the crash"
    );
    lab.agents[1] = Some(start_agent(&lab.t, &lab.dir, 1, &[0, 1], QUORUM));
    assert!(
        lab.agent(1)
            .wait_log("VIP announced", Duration::from_secs(10)),
        "{}",
        lab.agent(1).log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(next_hops(lab.router_ns(), VIP), lb_hops());
    rows.push(Row {
        event: "SIGKILL of one node's agent, then restart",
        held: held.finish(),
        route_changed: None,
        requests: None,
    });

    // Link down on lb3: BFD takes it out of the route; its flows move to the other nodes,
    // which send them to the same reals (Maglev agreement).
    let held = lab.hold();
    let t0 = Instant::now();
    lab.t.lbs[2]
        .ns
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    let two: Vec<Ipv4Addr> = (0..2).map(lb_ip).collect();
    let changed = wait_hops(lab.router_ns(), &two, Duration::from_secs(10)).map(|_| t0.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "link down on one node",
        held: held.finish(),
        route_changed: changed,
        requests: None,
    });
    assert!(changed.is_some(), "{}", lab.dump());
    lab.t.lbs[2]
        .ns
        .ip(&["link", "set", "eth0", "up"])
        .expect("link up");
    wait_hops(lab.router_ns(), &lb_hops(), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("lb3 never back in the route:\n{}", lab.dump()));

    // A real added to every node: established flows stay where their connection entry says.
    let held = lab.hold();
    for i in 0..NODES {
        lab.agent(i)
            .reload(&agent_cfg(&lab.dir, &lab.t, i, &[0, 1, 2], QUORUM))
            .expect("reload");
    }
    let r3 = format!("{}:80", real_ip(2));
    for i in 0..NODES {
        let up = wait_for(Duration::from_secs(10), || {
            let s = lab.agent(i).status().ok()?;
            s["services"][0]["reals"]
                .as_array()?
                .iter()
                .any(|r| r["real"] == r3 && r["health"] == "up")
                .then_some(())
        });
        assert!(up.is_some(), "r3 never up on lb{}", i + 1);
    }
    std::thread::sleep(Duration::from_secs(1));
    rows.push(Row {
        event: "a real added to every node",
        held: held.finish(),
        route_changed: None,
        requests: None,
    });

    print_table(&rows);
    for r in &rows {
        assert!(r.held.all_same(), "{}: {}\n{}", r.event, r.held, lab.dump());
        if let Some((sent, failed)) = r.requests {
            assert!(sent > 10, "{}: only {sent} requests", r.event);
            assert_eq!(
                failed, 0,
                "{}: {failed} of {sent} new requests failed",
                r.event
            );
        }
    }
}
