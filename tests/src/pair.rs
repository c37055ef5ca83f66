//! Two load balancers running VRRP in front of the same real servers: the lab most tests,
//! the benchmarks and `cargo xtask build-and-run` share.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime},
};

use anyhow::{bail, Result};

use crate::{
    agent::{Agent, WorkDir},
    netns::wait_for,
    topology::{real_ip, real_ip6, Spec, Topology, VIP, VIP6},
};

/// Which address families a node's instances and services carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// An IPv4 and an IPv6 instance (VRID 51 both) in one sync group, services of both.
    Dual,
}

impl Family {
    pub fn vips(self) -> Vec<IpAddr> {
        match self {
            Family::V4 => vec![VIP.into()],
            Family::V6 => vec![VIP6.into()],
            Family::Dual => vec![VIP.into(), VIP6.into()],
        }
    }
}

pub fn vip_addr(port: u16) -> SocketAddr {
    SocketAddr::from((VIP, port))
}

/// Settings of one node's instance.
#[derive(Clone, Debug)]
pub struct Node {
    pub priority: u8,
    pub version: u8,
    pub advert_int: &'static str,
    /// Extra keys for the vrrp_instance (YAML lines, already indented by 4).
    pub instance_extra: String,
    /// Extra top-level YAML (e.g. vrrp_scripts).
    pub top_extra: String,
    /// Extra keys for each virtual_server (e.g. checks; indented by 4).
    pub service_extra: String,
    pub family: Family,
    /// Connection-table entries per family.
    pub conntrack_size: u32,
}

impl Node {
    pub fn v3(priority: u8) -> Node {
        Node {
            priority,
            version: 3,
            advert_int: "100ms",
            instance_extra: String::new(),
            top_extra: String::new(),
            service_extra: String::new(),
            family: Family::V4,
            conntrack_size: 65536,
        }
    }

    pub fn v2(priority: u8) -> Node {
        Node {
            version: 2,
            advert_int: "1s",
            ..Node::v3(priority)
        }
    }
}

/// The agent config of one node: its instance(s) on eth0 with the VIP(s), TCP and UDP services
/// on port 80 to every real, for each of the node's families.
pub fn config(router_id: &str, node: &Node, reals: usize, checks: &str) -> String {
    let instance = |name: &str, vip: String| {
        format!(
            "  - name: {name}\n    interface: eth0\n    virtual_router_id: 51\n    priority: {prio}\n    \
             version: {ver}\n    advert_int: {adv}\n    virtual_ipaddresses: [\"{vip}\"]\n{extra}",
            prio = node.priority,
            ver = node.version,
            adv = node.advert_int,
            extra = node.instance_extra,
        )
    };
    let (v4, v6) = match node.family {
        Family::V4 => (true, false),
        Family::V6 => (false, true),
        Family::Dual => (true, true),
    };
    let mut y = format!(
        "global_defs:\n  router_id: {router_id}\n  max_services: 4\n  max_reals: 32\n  conntrack_size: {ct}\n  conntrack_size6: 65536\n{}vrrp_instances:\n",
        node.top_extra,
        ct = node.conntrack_size,
    );
    if v4 {
        y += &instance("VI_1", format!("{VIP}/24"));
    }
    if v6 {
        y += &instance("VI_6", format!("{VIP6}/64"));
    }
    if v4 && v6 {
        y += "vrrp_sync_groups:\n  - { name: VG, group: [VI_1, VI_6] }\n";
    }
    y += "virtual_servers:\n";
    let mut families: Vec<(String, Vec<String>)> = Vec::new();
    if v4 {
        families.push((
            VIP.to_string(),
            (0..reals).map(|i| real_ip(i).to_string()).collect(),
        ));
    }
    if v6 {
        families.push((
            format!("\"{VIP6}\""),
            (0..reals).map(|i| format!("\"{}\"", real_ip6(i))).collect(),
        ));
    }
    for (vip, list) in families {
        let list: String = list
            .iter()
            .map(|r| format!("      - {{ address: {r}, port: 80 }}\n"))
            .collect();
        for proto in ["tcp", "udp"] {
            y += &format!(
                "  - address: {vip}\n    port: 80\n    protocol: {proto}\n    interface: eth0\n{checks}    real_servers:\n{list}"
            );
        }
    }
    y
}

pub struct Pair {
    pub t: Topology,
    pub dir: WorkDir,
    pub agents: Vec<Option<Agent>>,
    pub nodes: Vec<Node>,
    /// How many of the lab's reals the agents' configs name (the first ones).
    pub configured_reals: usize,
    /// The agent binary (None: the tests' `lbt-agent`).
    pub agent_bin: Option<std::path::PathBuf>,
}

impl Pair {
    /// Builds the lab and starts the agents: node 0 first, the others once it holds the VIP
    /// (so the first election does not depend on which process loaded faster).
    pub fn start(tag: &str, nodes: Vec<Node>, reals: usize) -> Result<Pair> {
        Pair::start_configured(tag, nodes, reals, reals)
    }

    /// As [`Pair::start`], with the agents' configs naming only the first `configured` of
    /// the lab's `reals` (the others can be added by [`Pair::reload_reals`]).
    pub fn start_configured(
        tag: &str,
        nodes: Vec<Node>,
        reals: usize,
        configured: usize,
    ) -> Result<Pair> {
        let mut p = Pair::new(tag, nodes, reals)?;
        p.configured_reals = configured;
        p.start_agents()?;
        Ok(p)
    }

    /// The lab with its servers running and no agent yet (see [`Pair::start_agents`]).
    pub fn new(tag: &str, nodes: Vec<Node>, reals: usize) -> Result<Pair> {
        let mut t = Topology::build(
            tag,
            Spec {
                lbs: nodes.len(),
                reals,
                native_xdp: true,
            },
        )?;
        t.start_all_servers()?;
        let dir = WorkDir::new(&t.prefix)?;
        Ok(Pair {
            t,
            dir,
            agents: Vec::new(),
            nodes,
            configured_reals: reals,
            agent_bin: None,
        })
    }

    /// Starts the agents: node 0 first, the others once it holds the VIP.
    pub fn start_agents(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            let a = self.start_agent(i)?;
            self.agents.push(Some(a));
            if i == 0
                && wait_for(Duration::from_secs(10), || self.holds_vip(0).then_some(())).is_none()
            {
                bail!("node 0 never became master:\n{}", self.agent(0).log_text());
            }
            if i > 0
                && !self
                    .agent(i)
                    .wait_log("to=\"backup\"", Duration::from_secs(10))
            {
                bail!(
                    "node {i} never started as backup:\n{}",
                    self.agent(i).log_text()
                );
            }
        }
        Ok(())
    }

    pub fn start_agent(&self, i: usize) -> Result<Agent> {
        let rid = self.t.router_id(i);
        let node = &self.nodes[i];
        let yaml = config(&rid, node, self.configured_reals, &node.service_extra);
        match &self.agent_bin {
            Some(bin) => Agent::start_with(bin, &self.t.lbs[i].ns, &self.dir, &rid, &yaml),
            None => Agent::start(&self.t.lbs[i].ns, &self.dir, &rid, &yaml),
        }
    }

    /// Has every running agent reload a config naming the first `reals` reals, and waits
    /// until each has applied it.
    pub fn reload_reals(&mut self, reals: usize) -> Result<()> {
        self.configured_reals = reals;
        for (i, a) in self.agents.iter().enumerate() {
            let Some(a) = a else { continue };
            let rid = self.t.router_id(i);
            let node = &self.nodes[i];
            a.reload_and_wait(&config(&rid, node, reals, &node.service_extra))?;
        }
        Ok(())
    }

    pub fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("agent not running")
    }

    /// Whether node `i` holds its VIPs on eth0 (asked of the kernel).
    pub fn holds_vip(&self, i: usize) -> bool {
        self.nodes[i]
            .family
            .vips()
            .into_iter()
            .all(|v| self.t.holds(i, v))
    }

    /// Whether node `i` holds none of its VIPs.
    fn holds_none(&self, i: usize) -> bool {
        self.nodes[i]
            .family
            .vips()
            .into_iter()
            .all(|v| !self.t.holds(i, v))
    }

    /// Waits until node `master` holds the VIP and every other node does not, XDP is attached
    /// on the master only, and a request through the VIP is answered.
    pub fn wait_master(&self, master: usize, timeout: Duration) -> Result<()> {
        let ok = wait_for(timeout, || {
            let vips = (0..self.nodes.len()).all(|i| {
                if i == master {
                    self.holds_vip(i)
                } else {
                    self.holds_none(i)
                }
            });
            let xdp = (0..self.nodes.len())
                .all(|i| self.t.xdp_attached(i).unwrap_or(false) == (i == master));
            (vips && xdp).then_some(())
        });
        if ok.is_none() {
            let logs: Vec<String> = self
                .agents
                .iter()
                .flatten()
                .map(|a| format!("--- {} ---\n{}", a.router_id, a.log_text()))
                .collect();
            bail!(
                "node {master} did not become the only master:\n{}",
                logs.join("\n")
            );
        }
        let answered = wait_for(timeout, || {
            self.nodes[master]
                .family
                .vips()
                .into_iter()
                .try_for_each(|v| {
                    crate::client::udp_many(&self.t.client.ns, SocketAddr::from((v, 80)), 1)
                        .ok()?
                        .pop()?
                        .ok()
                        .map(|_| ())
                })
        });
        if answered.is_none() {
            bail!("no answer through the VIP with node {master} as master");
        }
        Ok(())
    }

    /// Time from `since` to node `i`'s last logged transition to master.
    pub fn became_master_after(&self, i: usize, since: SystemTime) -> Option<Duration> {
        let log = self.agents[i].as_ref()?.log_text();
        log.lines()
            .filter(|l| l.contains("VRRP state change") && l.contains("to=\"master\""))
            .filter_map(|l| parse_log_time(l.split_whitespace().next()?))
            .filter(|t| *t >= since)
            .map(|t| t.duration_since(since).unwrap_or_default())
            .next()
    }
}

/// Parses tracing's `2026-11-26T14:04:59.311468Z`.
pub fn parse_log_time(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time() {
        let t = parse_log_time("1970-01-02T00:00:01.5Z").unwrap_or(SystemTime::UNIX_EPOCH);
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            Duration::from_millis(86_401_500)
        );
    }
}
