//! BIRD 2 in the lab: the configs of docs/bgp.md (an LB node that announces the VIPs the agent
//! writes, a router that merges the nodes' routes into one ECMP route), a BIRD process per
//! namespace, and the router's view of the VIP's next hops.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::netns::{wait_for, Netns, Proc};

/// One LB node's BIRD: what docs/bgp.md shows with its example values.
pub struct LbNode<'a> {
    pub node_ip: Ipv4Addr,
    pub local_as: u32,
    pub router_ip: Ipv4Addr,
    pub router_as: u32,
    pub routes_file: &'a str,
    pub routes_file6: &'a str,
}

/// The session settings both ends of every BGP session share: fast failure detection (hold
/// time, BFD), quick retries, and no graceful restart (docs/bgp.md says why).
const SESSION: &str = "  hold time 3;
  connect delay time 1;
  connect retry time 5;
  error wait time 1, 5;
  graceful restart off;
  bfd on;
";

/// What every BIRD of the lab starts with: its id, interfaces, and BFD at 100 ms x 3.
fn head(router_id: Ipv4Addr) -> String {
    format!(
        r#"router id {router_id};

protocol device {{
}}

protocol bfd {{
  interface "*" {{
    interval 100 ms;
    multiplier 3;
  }};
}}
"#
    )
}

/// The BIRD config of an LB node (without a `log` line).
pub fn lb_node_conf(n: &LbNode) -> String {
    let head = head(n.node_ip);
    format!(
        r#"{head}
# The VIPs lb-agent announces: it rewrites these files and runs `birdc configure`.
protocol static lb_vips {{
  ipv4;
include "{routes_file}";
}}

protocol static lb_vips6 {{
  ipv6;
include "{routes_file6}";
}}

protocol bgp uplink {{
  local as {local_as};
  neighbor {router_ip} as {router_as};
{SESSION}  ipv4 {{
    import none;
    export where proto = "lb_vips";
    next hop self;
  }};
}}
"#,
        local_as = n.local_as,
        router_ip = n.router_ip,
        router_as = n.router_as,
        routes_file = n.routes_file,
        routes_file6 = n.routes_file6,
    )
}

/// The router's BIRD: one BGP session per LB node, the VIP routes merged into one multipath
/// route in the kernel (without a `log` line).
pub fn router_conf(router_ip: Ipv4Addr, router_as: u32, nodes: &[(Ipv4Addr, u32)]) -> String {
    let head = head(router_ip);
    let mut t = format!(
        r#"{head}
template bgp lb_node {{
  local as {router_as};
{SESSION}  ipv4 {{
    import where net.len = 32;
    export none;
  }};
}}

protocol kernel {{
  merge paths on;
  ipv4 {{
    import none;
    export where source = RTS_BGP;
  }};
}}
"#
    );
    for (i, (ip, asn)) in nodes.iter().enumerate() {
        t.push_str(&format!(
            "\nprotocol bgp lb{} from lb_node {{\n  neighbor {ip} as {asn};\n}}\n",
            i + 1
        ));
    }
    t
}

/// A BIRD running in a namespace, in the foreground, killed on drop.
pub struct Bird {
    pub proc: Proc,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Bird {
    /// Writes `conf` (with a log file in `dir`) and starts `bird` in `ns`; waits until its
    /// control socket answers.
    pub fn start(ns: &Netns, dir: &Path, name: &str, conf: &str) -> Result<Bird> {
        let path = dir.join(format!("bird-{name}.conf"));
        let log = dir.join(format!("bird-{name}.log"));
        let socket = dir.join(format!("bird-{name}.ctl"));
        std::fs::write(&path, format!("log \"{}\" all;\n{conf}", log.display()))?;
        let check = ns.exec("bird", &["-p", "-c", &path.to_string_lossy()])?;
        if !check.status.success() {
            bail!(
                "bird -p {}: {}",
                path.display(),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let proc = ns.spawn(
            "bird",
            &[
                "-f",
                "-c",
                &path.to_string_lossy(),
                "-s",
                &socket.to_string_lossy(),
                "-P",
                &dir.join(format!("bird-{name}.pid")).to_string_lossy(),
            ],
        )?;
        let b = Bird { proc, socket, log };
        wait_for(Duration::from_secs(5), || b.cli(&["show", "status"]).ok())
            .with_context(|| format!("bird {name} never answered on {}", b.socket.display()))?;
        Ok(b)
    }

    /// `birdc -s SOCKET ARGS`: its output, or an error with it.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "birdc {args:?}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The next hops of `dst/32` in `ns`'s main table, sorted (empty when there is no such route).
pub fn next_hops(ns: &Netns, dst: Ipv4Addr) -> Vec<Ipv4Addr> {
    let Ok(out) = ns.ip(&["-j", "route", "show", "exact", &format!("{dst}/32")]) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut hops: Vec<Ipv4Addr> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            let single = r.get("gateway").cloned().into_iter();
            let multi = r
                .get("nexthops")
                .and_then(|n| n.as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|h| h.get("gateway").cloned());
            single.chain(multi).collect::<Vec<_>>()
        })
        .filter_map(|g| g.as_str()?.parse().ok())
        .collect();
    hops.sort();
    hops
}
