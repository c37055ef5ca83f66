//! One load balancer without VRRP: a client, the LB holding the VIP on its eth0, and reals
//! with the VIP on lo, running one agent.

use std::{net::SocketAddr, time::Duration};

use anyhow::Result;

use crate::{
    agent::{Agent, WorkDir},
    client::http_many,
    netns::wait_for,
    topology::{Spec, Topology, VIP},
};

/// Fields drop in this order: the agent stops before its namespaces go.
pub struct Standalone {
    pub agent: Agent,
    pub dir: WorkDir,
    pub t: Topology,
}

impl Standalone {
    /// Builds the lab (starting the reals' servers when `servers`) and starts the agent with
    /// the config `yaml(router_id)`.
    pub fn start(
        tag: &str,
        reals: usize,
        servers: bool,
        yaml: impl Fn(&str) -> String,
    ) -> Result<Standalone> {
        let mut t = Topology::build(
            tag,
            Spec {
                lbs: 1,
                reals,
                native_xdp: true,
            },
        )?;
        t.lbs[0]
            .ns
            .ip(&["addr", "add", &format!("{VIP}/24"), "dev", "eth0"])?;
        if servers {
            t.start_all_servers()?;
        }
        let dir = WorkDir::new(&t.prefix)?;
        let rid = t.router_id(0);
        let agent = Agent::start(&t.lbs[0].ns, &dir, &rid, &yaml(&rid))?;
        Ok(Standalone { agent, dir, t })
    }

    /// Whether an HTTP request through the VIP gets an answer within `timeout` (MACs
    /// resolved, tables written, XDP attached).
    pub fn wait_http(&self, timeout: Duration) -> bool {
        let vip = SocketAddr::from((VIP, 80));
        wait_for(timeout, || {
            http_many(&self.t.client.ns, vip, 1).ok()?.pop()?.ok()
        })
        .is_some()
    }
}
