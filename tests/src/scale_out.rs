//! The scale-out lab (docs/bgp.md): three active LB nodes behind a router that spreads flows
//! over them with ECMP (BIRD merges the nodes' BGP routes; L4 hashing), each node running
//! the agent and BIRD, BFD on every session. Reals answer the far client straight through
//! the router (direct routing). Used by the scale-out test and the lab's `--ecmp` tour.
//!
//! ```text
//!  far client 10.98.0.2 ── router 10.98.0.1 / 10.99.0.254 (BIRD, ECMP) ──┐ br0
//!                     lb1..lb3 10.99.0.3-5 (agent + BIRD, XDP) ──────────┤
//!                     r1..r3   10.99.0.11-13 (VIP on lo) ─────────────────┘
//! ```

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::{
    agent::{Agent, WorkDir},
    bird::{lb_node_conf, next_hops, router_conf, Bird, LbNode},
    held::Held,
    netns::{wait_for, Netns},
    topology::{lb_ip, real_ip, FarClient, Spec, Topology, ROUTER_IP, VIP},
};

pub const ROUTER_AS: u32 = 65000;
pub const NODE_AS: u32 = 65001;
pub const NODES: usize = 3;
/// Both reals of the first config must be up for a node to announce.
pub const QUORUM: u32 = 2;

pub struct ScaleOut {
    /// The agent binary the nodes run.
    pub bin: PathBuf,
    // Drop order: agents and BIRDs before the namespaces.
    pub agents: Vec<Option<Agent>>,
    pub birds: Vec<Bird>,
    pub router: Bird,
    pub far: FarClient,
    pub dir: WorkDir,
    pub t: Topology,
    /// Top-level YAML appended to every node's config (e.g. `flow_sync:`).
    pub top_extra: String,
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
pub fn agent_cfg(
    lab_dir: &WorkDir,
    t: &Topology,
    i: usize,
    reals: &[usize],
    quorum: u32,
) -> String {
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

pub fn lb_hops() -> Vec<Ipv4Addr> {
    (0..NODES).map(lb_ip).collect()
}

/// Waits until the router's route to the VIP has exactly `want` as next hops; how long it took.
pub fn wait_hops(router: &Netns, want: &[Ipv4Addr], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    wait_for(limit, || {
        (next_hops(router, VIP) == want).then(|| t0.elapsed())
    })
}

impl ScaleOut {
    /// Builds the lab and starts everything with `bin` as the nodes' agent; returns once the
    /// router has all three nodes as next hops of the VIP.
    pub fn start(tag: &str, bin: &Path) -> Result<ScaleOut> {
        ScaleOut::start_with(tag, bin, String::new())
    }

    /// As [`ScaleOut::start`], with `top_extra` appended to every node's config.
    pub fn start_with(tag: &str, bin: &Path, top_extra: String) -> Result<ScaleOut> {
        let mut t = Topology::build(
            tag,
            Spec {
                lbs: NODES,
                reals: 3,
                native_xdp: true,
            },
        )?;
        t.start_all_servers()?;
        let far = t.add_far_client(1500)?;
        for (k, v) in [
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv4.fib_multipath_use_neigh", "1"),
        ] {
            far.router.ns.sysctl(k, v)?;
        }
        let dir = WorkDir::new(&t.prefix)?;
        // The agents first: each writes its routes files, which BIRD's config includes.
        let mut agents = Vec::new();
        for i in 0..NODES {
            let yaml = agent_cfg(&dir, &t, i, &[0, 1], QUORUM) + &top_extra;
            agents.push(Some(start_agent(bin, &t, &dir, i, &yaml)?));
        }
        for i in 0..NODES {
            let f = routes_file(&dir, i, true);
            wait_for(Duration::from_secs(10), || {
                Path::new(&f).exists().then_some(())
            })
            .with_context(|| format!("agent {i} never wrote {f}"))?;
        }
        let mut birds = Vec::new();
        for i in 0..NODES {
            let conf = lb_node_conf(&LbNode {
                node_ip: lb_ip(i),
                local_as: NODE_AS,
                router_ip: ROUTER_IP,
                router_as: ROUTER_AS,
                routes_file: &routes_file(&dir, i, false),
                routes_file6: &routes_file(&dir, i, true),
            });
            birds.push(Bird::start(
                &t.lbs[i].ns,
                &dir.0,
                &format!("lb{}", i + 1),
                &conf,
            )?);
        }
        let peers: Vec<(Ipv4Addr, u32)> = (0..NODES).map(|i| (lb_ip(i), NODE_AS)).collect();
        let router = Bird::start(
            &far.router.ns,
            &dir.0,
            "router",
            &router_conf(ROUTER_IP, ROUTER_AS, &peers),
        )?;
        let lab = ScaleOut {
            bin: bin.to_owned(),
            agents,
            birds,
            router,
            far,
            dir,
            t,
            top_extra,
        };
        if wait_hops(&lab.far.router.ns, &lb_hops(), Duration::from_secs(30)).is_none() {
            anyhow::bail!(
                "the router never had all three nodes as next hops:\n{}",
                lab.dump()
            );
        }
        Ok(lab)
    }

    /// Starts node `i`'s agent (again) with the reals `reals` in its config.
    pub fn start_agent(&mut self, i: usize, reals: &[usize]) -> Result<()> {
        let yaml = self.cfg(i, reals);
        self.agents[i] = Some(start_agent(&self.bin, &self.t, &self.dir, i, &yaml)?);
        Ok(())
    }

    /// Node `i`'s config with the reals `reals`.
    pub fn cfg(&self, i: usize, reals: &[usize]) -> String {
        agent_cfg(&self.dir, &self.t, i, reals, QUORUM) + &self.top_extra
    }

    /// Reloads every running node with r1, r2 and r3 and waits until each checks r3 up.
    pub fn add_r3_everywhere(&self) -> Result<()> {
        for (i, a) in self.agents.iter().enumerate() {
            if let Some(a) = a {
                a.reload(&self.cfg(i, &[0, 1, 2]))?;
            }
        }
        let r3 = format!("{}:80", real_ip(2));
        for (i, a) in self.agents.iter().enumerate() {
            if a.is_none() {
                continue;
            }
            let up = wait_for(Duration::from_secs(10), || {
                let s = self.status(i)?;
                s["services"][0]["reals"]
                    .as_array()?
                    .iter()
                    .any(|r| r["real"] == r3 && r["health"] == "up")
                    .then_some(())
            });
            anyhow::ensure!(up.is_some(), "r3 never up on lb{}", i + 1);
        }
        Ok(())
    }

    /// `lb-agent status --json` of node `i`.
    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.status_out(i, &["--json"])?).ok()
    }

    /// `lb-agent status` of node `i`, as the operator reads it.
    pub fn status_text(&self, i: usize) -> String {
        self.status_out(i, &[])
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default()
    }

    fn status_out(&self, i: usize, args: &[&str]) -> Option<Vec<u8>> {
        let a = self.agents[i].as_ref()?;
        let out = std::process::Command::new(&self.bin)
            .arg("status")
            .args(args)
            .arg("--socket")
            .arg(a.socket())
            .output()
            .ok()?;
        Some(out.stdout)
    }

    pub fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("agent running")
    }

    pub fn router_ns(&self) -> &Netns {
        &self.far.router.ns
    }

    /// The router's route and sessions, each node's recent log and BIRD routes.
    pub fn dump(&self) -> String {
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
    pub fn tx(&self) -> Vec<u64> {
        (0..NODES)
            .map(|i| {
                self.status(i)
                    .and_then(|s| s["verdicts"]["tx"].as_u64())
                    .unwrap_or(0)
            })
            .collect()
    }

    pub fn vip80(&self) -> SocketAddr {
        SocketAddr::from((VIP, 80))
    }

    /// `n` connections held through the VIP, answering every 200 ms.
    pub fn hold_n(&self, n: usize) -> Result<Held> {
        Held::open(
            &self.far.client,
            self.vip80(),
            n,
            Duration::from_millis(200),
        )
    }
}

fn start_agent(bin: &Path, t: &Topology, dir: &WorkDir, i: usize, yaml: &str) -> Result<Agent> {
    Agent::start_with(bin, &t.lbs[i].ns, dir, &t.router_id(i), yaml)
}
