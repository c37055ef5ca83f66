//! The validated configuration the agent runs on: typed, defaults filled in, cross-references
//! resolved. Built only by `validate`, so everything here is known to be consistent.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Duration,
};

use lb_common::ServiceKey;

pub use crate::vrrp::packet::{V3Checksum, Version};

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub router_id: String,
    pub pin_path: PathBuf,
    pub control_socket: PathBuf,
    /// The operator's overrides are kept here across restarts.
    pub state_dir: PathBuf,
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The XDP attach mode of interfaces not listed in `xdp_modes`.
    pub xdp_mode: XdpMode,
    /// Per-interface attach modes (`interfaces:`).
    pub xdp_modes: std::collections::BTreeMap<String, XdpMode>,
    pub capacity: Capacity,
    pub mcast_group: Ipv4Addr,
    pub mcast_group6: Ipv6Addr,
    pub scripts: Vec<ScriptCfg>,
    pub track_files: Vec<TrackFileCfg>,
    pub instances: Vec<InstanceCfg>,
    pub sync_groups: Vec<SyncGroupCfg>,
    pub services: Vec<ServiceCfg>,
    /// Scale-out mode (`bgp:`): no VRRP, the VIPs announced through BIRD.
    pub bgp: Option<BgpCfg>,
    /// Flow-state sharing with the other nodes (`flow_sync:`).
    pub flow_sync: Option<FlowSyncCfg>,
}

/// Where the flow-sync key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncKey {
    Inline(String),
    File(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSyncCfg {
    pub peers: Vec<IpAddr>,
    pub port: u16,
    pub group: Option<IpAddr>,
    pub interface: Option<String>,
    pub source: Option<IpAddr>,
    pub key: Option<SyncKey>,
    pub batch_interval: Duration,
    pub refresh_interval: Duration,
    pub bulk_sync_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpCfg {
    pub routes_file: PathBuf,
    pub routes_file6: PathBuf,
    pub bird_socket: PathBuf,
    pub birdc: PathBuf,
    pub drain_time: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic with a log line.
    Auto,
    Native,
    Generic,
}

/// Sizes of the data-path maps, fixed when they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub max_services: u32,
    /// Entries of the service map: a port of a service each.
    pub service_ports: u32,
    pub max_reals: u32,
    pub ring_size: u32,
    pub conntrack: u32,
    /// IPv6 connection-table entries.
    pub conntrack6: u32,
    pub affinity: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Garp {
    pub repeat: u32,
    pub delay: Duration,
    pub refresh: Option<Duration>,
    pub interval: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScriptCfg {
    pub name: String,
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: String,
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceCfg {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    pub version: Version,
    pub advert_int: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub vips: Vec<Vip>,
    /// v2 PASS authentication, zero padded to 8 bytes.
    pub auth_pass: Option<Secret>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    pub allowed_peers: Vec<IpAddr>,
    /// The group adverts go to (of the instance's family).
    pub mcast_group: IpAddr,
    /// The form v3 checksums are sent in (`keepalived`: with the IPv4 pseudo-header;
    /// `rfc9568`: the VRRP message only). Both are accepted.
    pub v3_checksum: V3Checksum,
    pub track_interfaces: Vec<(String, i32)>,
    /// (name of a `vrrp_scripts` entry, weight override or the script's weight).
    pub track_scripts: Vec<(String, i32)>,
    /// (name of a `vrrp_track_files` entry, weight override or the file's weight).
    pub track_files: Vec<(String, i32)>,
    /// (a virtual service, weight): by key, so inserting a service never changes what an
    /// instance tracks.
    pub track_services: Vec<(ServiceKey, i32)>,
    pub notify: Notify,
    pub garp: Garp,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Notify {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    pub any: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncGroupCfg {
    pub name: String,
    /// Names of its `vrrp_instances`.
    pub members: Vec<String>,
    pub notify: Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// Weighted Maglev over the 5-tuple.
    Maglev,
    /// Weighted Maglev over the client address only.
    SourceHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => lb_common::IPPROTO_TCP,
            Proto::Udp => lb_common::IPPROTO_UDP,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    /// The protocol a control request names (`tcp` or `udp`, as `name` writes it); the
    /// error says what is accepted.
    pub fn from_name(s: &str) -> Result<Proto, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("protocol {other:?}: tcp or udp")),
        }
    }
}

/// The ports a service serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Every port (`port: 0`).
    All,
    /// Ascending, non-overlapping inclusive ranges.
    Ranges(Vec<(u16, u16)>),
}

impl Ports {
    /// The lowest port (0 for all): with the address and protocol, the service's identity.
    pub fn primary(&self) -> u16 {
        match self {
            Ports::All => 0,
            Ports::Ranges(r) => r.first().map_or(0, |(lo, _)| *lo),
        }
    }

    /// Every port, ascending (`[0]` for all ports).
    pub fn expand(&self) -> Vec<u16> {
        match self {
            Ports::All => vec![0],
            Ports::Ranges(r) => r.iter().flat_map(|(lo, hi)| *lo..=*hi).collect(),
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        match self {
            Ports::All => true,
            Ports::Ranges(r) => r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }

    /// `80`, `80,443`, `8000-8099`, `*`.
    pub fn label(&self) -> String {
        match self {
            Ports::All => "*".into(),
            Ports::Ranges(r) => r
                .iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCfg {
    pub addr: IpAddr,
    /// The lowest port served (0 for all ports): the service's identity and its reals'
    /// default check port.
    pub port: u16,
    pub ports: Ports,
    pub proto: Proto,
    pub interface: String,
    pub scheduler: Scheduler,
    pub persistence: Option<Duration>,
    pub table_size: u32,
    pub sorry: Option<(IpAddr, u16)>,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<Vec<String>>,
    pub quorum_down: Option<Vec<String>>,
    /// Forward ICMP errors about its replies to their real.
    pub forward_icmp_errors: bool,
    /// Steer by client and VIP only, so fragments reach one real.
    pub fragments: bool,
    pub reals: Vec<RealCfg>,
}

impl ServiceCfg {
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(self.addr, self.port, self.proto.number())
    }
    /// `10.0.0.100:80/tcp`, `10.0.0.100:80,443/tcp`, `10.0.0.100:*/tcp`.
    pub fn label(&self) -> String {
        format!(
            "{}/{}",
            host_port(self.addr, self.ports.label()),
            self.proto.name()
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealCfg {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub inhibit_on_failure: bool,
    pub notify_up: Option<Vec<String>>,
    pub notify_down: Option<Vec<String>>,
    pub checks: Vec<CheckCfg>,
    pub interval: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CheckCfg {
    Tcp {
        port: u16,
        connect_timeout: Duration,
        bind_to: Option<IpAddr>,
        probe_vip: Option<IpAddr>,
    },
    Http {
        tls: bool,
        port: u16,
        path: String,
        virtualhost: Option<String>,
        status: Vec<(u16, u16)>,
        regex: Option<String>,
        connect_timeout: Duration,
        timeout: Duration,
        bind_to: Option<IpAddr>,
        verify: bool,
    },
    Script {
        argv: Vec<String>,
        timeout: Duration,
        dynamic: bool,
    },
    Dns {
        port: u16,
        name: String,
        /// Record type, as its mnemonic (`SOA`) or number.
        qtype: String,
        tcp: bool,
        /// Only this response code is up.
        rcode: Option<u16>,
        require_answer: bool,
        connect_timeout: Duration,
        bind_to: Option<IpAddr>,
        probe_vip: Option<IpAddr>,
    },
    Udp {
        port: u16,
        payload: Vec<u8>,
        require_reply: bool,
        reply_regex: Option<String>,
        connect_timeout: Duration,
        bind_to: Option<IpAddr>,
        probe_vip: Option<IpAddr>,
    },
    Ping {
        connect_timeout: Duration,
    },
    File {
        path: PathBuf,
        /// Multiplier (0: the file holds a status, 0 = up).
        weight: i64,
        reverse: bool,
    },
}

/// keepalived `track_file`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackFileCfg {
    pub name: String,
    pub path: PathBuf,
    pub weight: i32,
    pub reverse: bool,
    pub init: Option<i64>,
}

impl Config {
    /// The XDP attach mode for `ifname`.
    pub fn xdp_mode_of(&self, ifname: &str) -> XdpMode {
        self.xdp_modes.get(ifname).copied().unwrap_or(self.xdp_mode)
    }
}

impl CheckCfg {
    /// A TCP or HTTP check without a port to connect to (an all-ports service's real).
    pub fn needs_port(&self) -> bool {
        matches!(
            self,
            CheckCfg::Tcp { port: 0, .. } | CheckCfg::Http { port: 0, .. }
        )
    }
}

/// A password: never printed (Debug shows `***`), so it cannot reach logs or status.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret(pub [u8; 8]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `10.0.0.1:80`, `[2001:db8::1]:80`: an address with a port (or a port label), as URLs and
/// socket addresses write it.
pub fn host_port(addr: IpAddr, port: impl std::fmt::Display) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
