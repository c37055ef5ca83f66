//! The direct-routing lab: a client, load balancers and real servers on one bridge, each in its
//! own network namespace, the bridge in a namespace of its own. Real servers hold the VIP on
//! `lo` with `arp_ignore=1`/`arp_announce=2`, as DR requires. Dual-stack: every host also
//! has `fd00:99::<last byte>/64` and every real the IPv6 VIP on `lo` (addresses without
//! duplicate address detection, so nothing waits for it).
//!
//! ```text
//!   client 10.99.0.2  fd00:99::2  ─┐
//!   lb1    10.99.0.3  fd00:99::3  ─┤ br0 (namespace <prefix>sw)
//!   lb2    10.99.0.4  fd00:99::4  ─┤
//!   r1..rN 10.99.0.11+ fd00:99::11+┘  VIPs 10.99.0.100, fd00:99::100 on lo of every real
//! ```

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{bail, Context as _, Result};
use aya::{
    programs::{Xdp, XdpMode},
    Ebpf,
};

use crate::netns::{Netns, Proc};

pub const SUBNET_PREFIX: u8 = 24;
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x100);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);

/// The IPv6 address of the host with IPv4 address 10.99.0.N: fd00:99::N (N's decimal digits
/// read as hex, so the two look alike).
pub fn ip6(v4: Ipv4Addr) -> Ipv6Addr {
    let n = u16::from_str_radix(&v4.octets()[3].to_string(), 16).unwrap_or(0);
    Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, n)
}

pub fn lb_ip6(i: usize) -> Ipv6Addr {
    ip6(lb_ip(i))
}

pub fn real_ip6(i: usize) -> Ipv6Addr {
    ip6(real_ip(i))
}
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The router to the far client's subnet, and that client (`Topology::add_far_client`).
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 254);
pub const FAR_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);

pub fn lb_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 3 + i as u8)
}

pub fn real_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 11 + i as u8)
}

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0x6c, 0x62, 0, 0, last]
}

pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Finds a binary built from this workspace next to the running executable (target/<profile>).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    bail!(
        "{name} not found next to {}; build it first (cargo xtask test does: \
         cargo build -p lb-agent -p lb-tests --bins)",
        exe.display()
    )
}

pub struct Host {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// The host's port on the bridge (in the switch namespace).
    pub port: String,
}

pub struct Topology {
    pub prefix: String,
    pub switch: Netns,
    pub client: Host,
    pub lbs: Vec<Host>,
    pub reals: Vec<Host>,
    pub servers: Vec<Option<Proc>>,
    /// Holds the pass programs on the load balancers' bridge ports.
    _pass: Option<Ebpf>,
}

pub struct Spec {
    pub lbs: usize,
    pub reals: usize,
    /// Put an XDP_PASS program on each LB's bridge port, so native XDP_TX frames are delivered.
    pub native_xdp: bool,
}

impl Topology {
    pub fn build(tag: &str, spec: Spec) -> Result<Topology> {
        let prefix = crate::netns::unique_prefix(tag);
        let switch = Netns::new(&format!("{prefix}sw"))?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let host = |name: &str, ip: Ipv4Addr, last: u8| plug(&switch, &prefix, name, ip, last);
        let client = host("client", CLIENT_IP, 2)?;
        // XDP_TX rewrites frames in place: the client's checksum offload would leave them
        // with partial checksums the reals drop.
        client.ns.exec("ethtool", &["-K", "eth0", "tx", "off"])?;
        let mut lbs = Vec::new();
        for i in 0..spec.lbs {
            let h = host(&format!("lb{}", i + 1), lb_ip(i), 3 + i as u8)?;
            h.ns.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
            lbs.push(h);
        }
        let mut reals = Vec::new();
        for i in 0..spec.reals {
            let h = host(&format!("r{}", i + 1), real_ip(i), 11 + i as u8)?;
            h.ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            h.ns.ip(&["addr", "add", &format!("{VIP6}/128"), "dev", "lo", "nodad"])?;
            for dev in ["all", "eth0"] {
                h.ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1")?;
                h.ns.sysctl(&format!("net.ipv4.conf.{dev}.arp_announce"), "2")?;
                h.ns.sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0")?;
            }
            reals.push(h);
        }
        let mut topo = Topology {
            prefix,
            switch,
            client,
            lbs,
            reals,
            servers: Vec::new(),
            _pass: None,
        };
        if spec.native_xdp {
            topo._pass = Some(topo.pass_on_lb_ports()?);
        }
        Ok(topo)
    }

    /// A client behind a router, for paths that are not one flat LAN: the router `<prefix>rt`
    /// (10.99.0.254 on the bridge) links to `<prefix>far` (FAR_CLIENT_IP, 10.98.0.0/24) over a
    /// veth whose router end has MTU `mtu` (the client's end keeps 1500, so only what the
    /// router forwards to the client meets the smaller MTU). The reals route 10.98.0.0/24
    /// through the router.
    pub fn add_far_client(&self, mtu: u32) -> Result<FarClient> {
        let router = plug(&self.switch, &self.prefix, "rt", ROUTER_IP, 0xfe)?;
        let client = Netns::new(&format!("{}far", self.prefix))?;
        router.ns.ip(&[
            "link",
            "add",
            "to-far",
            "mtu",
            &mtu.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &client.name,
        ])?;
        router
            .ns
            .ip(&["addr", "add", "10.98.0.1/24", "dev", "to-far"])?;
        router.ns.ip(&["link", "set", "to-far", "up"])?;
        router.ns.sysctl("net.ipv4.ip_forward", "1")?;
        client.ip(&["addr", "add", &format!("{FAR_CLIENT_IP}/24"), "dev", "eth0"])?;
        client.ip(&["link", "set", "eth0", "up"])?;
        client.ip(&["route", "add", "default", "via", "10.98.0.1"])?;
        // As for the LAN client: frames XDP_TX rewrites in place must carry full checksums.
        for (ns, dev) in [
            (&client, "eth0"),
            (&router.ns, "eth0"),
            (&router.ns, "to-far"),
        ] {
            ns.exec("ethtool", &["-K", dev, "tx", "off"])?;
        }
        for r in &self.reals {
            r.ns.ip(&[
                "route",
                "add",
                "10.98.0.0/24",
                "via",
                &ROUTER_IP.to_string(),
            ])?;
        }
        Ok(FarClient { router, client })
    }

    fn pass_on_lb_ports(&self) -> Result<Ebpf> {
        let ports: Vec<String> = self.lbs.iter().map(|h| h.port.clone()).collect();
        self.switch.enter(move || -> Result<Ebpf> {
            let mut ebpf = Ebpf::load(lb_agent::dataplane::object::OBJECT)?;
            let prog: &mut Xdp = ebpf
                .program_mut(lb_common::maps::PROG_PASS)
                .context("lb_pass missing")?
                .try_into()?;
            prog.load()?;
            for p in &ports {
                prog.attach(p, XdpMode::Driver)
                    .with_context(|| format!("attaching lb_pass to {p}"))?;
            }
            Ok(ebpf)
        })?
    }

    /// Starts `lb-testsrv` on real `i` (TCP on all addresses, UDP on both VIPs) and waits until
    /// it listens.
    pub fn start_server(&mut self, i: usize, extra: &[&str]) -> Result<()> {
        let bin = bin_path("lb-testsrv")?;
        let name = format!("r{}", i + 1);
        let udp = format!("{VIP}:80");
        let udp6 = format!("[{VIP6}]:80");
        // `[::]:80` takes both families (IPv4 as mapped addresses).
        let mut args = vec![
            "--name", &name, "--tcp", "[::]:80", "--udp", &udp, "--udp", &udp6,
        ];
        args.extend_from_slice(extra);
        let mut child = self.reals[i]
            .ns
            .command(&bin.to_string_lossy())
            .args(&args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("lb-testsrv on {name} did not start");
        }
        while self.servers.len() <= i {
            self.servers.push(None);
        }
        self.servers[i] = Some(Proc::new(child, &name));
        Ok(())
    }

    pub fn stop_server(&mut self, i: usize) {
        if let Some(Some(p)) = self.servers.get_mut(i).map(Option::take) {
            let mut p = p;
            p.kill();
        }
    }

    pub fn start_all_servers(&mut self) -> Result<()> {
        for i in 0..self.reals.len() {
            self.start_server(i, &[])?;
        }
        Ok(())
    }

    /// Whether an XDP program is attached to `lb`'s eth0, asked of the kernel.
    pub fn xdp_attached(&self, lb: usize) -> Result<bool> {
        let out = self.lbs[lb].ns.ip(&["-j", "link", "show", "dev", "eth0"])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v.get(0).and_then(|l| l.get("xdp")).is_some())
    }

    /// Whether load balancer `lb` has `addr` on its eth0, asked of the kernel.
    pub fn holds(&self, lb: usize, addr: impl Into<std::net::IpAddr>) -> bool {
        let addr = addr.into();
        let family = if addr.is_ipv4() { "-4" } else { "-6" };
        self.lbs[lb]
            .ns
            .ip(&[family, "-o", "addr", "show", "dev", "eth0"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
            .unwrap_or(false)
    }

    /// Pin directory the agent of `lb` uses (router id `<prefix>lb<i>`).
    pub fn router_id(&self, lb: usize) -> String {
        format!("{}lb{}", self.prefix, lb + 1)
    }
}

/// Plugs a new namespace `<prefix><name>` into the bridge as `eth0` with address `ip`.
fn plug(switch: &Netns, prefix: &str, name: &str, ip: Ipv4Addr, last: u8) -> Result<Host> {
    let ns = Netns::new(&format!("{prefix}{name}"))?;
    // Before the veth moves in: its link-local address must not wait for DAD either.
    for scope in ["all", "default"] {
        ns.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
    }
    let port = format!("p-{name}");
    switch.ip(&[
        "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
    ])?;
    switch.ip(&["link", "set", &port, "master", "br0", "up"])?;
    let m = mac(last);
    ns.ip(&["link", "set", "eth0", "address", &mac_str(&m), "up"])?;
    ns.ip(&[
        "addr",
        "add",
        &format!("{ip}/{SUBNET_PREFIX}"),
        "dev",
        "eth0",
    ])?;
    ns.ip(&[
        "addr",
        "add",
        &format!("{}/64", ip6(ip)),
        "dev",
        "eth0",
        "nodad",
    ])?;
    Ok(Host {
        ns,
        ip,
        mac: m,
        port,
    })
}

/// See `Topology::add_far_client`. Fields drop in order: the client's namespace (and its veth)
/// before the router's.
pub struct FarClient {
    pub client: Netns,
    pub router: Host,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(p) = s.as_mut() {
                p.kill();
            }
        }
        // What agents killed by a test leave behind (a clean stop removes them itself).
        for i in 0..self.lbs.len() {
            let rid = self.router_id(i);
            let dir = PathBuf::from(format!("/sys/fs/bpf/lb/{rid}"));
            let _ = lb_agent::dataplane::pins::remove_all(&dir);
            let _ = std::fs::remove_file(format!("/run/lb-agent/{rid}.sock"));
            let _ = std::fs::remove_file(format!("/run/lb-agent/locks/%sys%fs%bpf%lb%{rid}.lock"));
            let _ = std::fs::remove_dir_all(format!("/var/lib/lb/{rid}"));
        }
    }
}
