//! The YAML schema, as the user writes it. Key names follow keepalived where a keepalived user
//! would look for them. Every struct denies unknown keys; `validate` turns this into the typed,
//! checked `Config`. Defaults live here, next to the keys, and in docs/config.md.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use super::duration::Dur;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub global_defs: GlobalDefs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_scripts: Vec<VrrpScript>,
    /// keepalived `track_file` blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_track_files: Vec<TrackFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_instances: Vec<VrrpInstance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp_sync_groups: Vec<SyncGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_servers: Vec<VirtualServer>,
    /// Per-interface settings (the XDP attach mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Scale-out mode: every node forwards, and BIRD announces each VIP over BGP while this
    /// node can serve it. Exclusive with `vrrp_instances` in one file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<Bgp>,
    /// Share the connection table with the other nodes, so a flow keeps its real on whichever
    /// node takes it over (docs/flow-sync.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_sync: Option<FlowSync>,
}

/// Flow-state sharing between the nodes (docs/flow-sync.md).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowSync {
    /// The other nodes' addresses (all IPv4 or all IPv6). Datagrams from anyone else are
    /// dropped. This node's own addresses may be listed (one list for every node): they are
    /// skipped.
    pub peers: Vec<IpAddr>,
    /// UDP port of the flow records and TCP port of the bulk sync. Default 7789.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Send the flow records to this multicast group instead of to each peer (the peers list
    /// still says whom to accept). Needs `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    /// The interface the multicast group is joined and sent on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The local address to bind and send from. Default: any (the kernel picks the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// A pre-shared key: every message carries an HMAC-SHA256 of it and messages without a
    /// valid one are dropped. Prefer `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A file holding the key (its first line), read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// How often new flows are sent (batched). Default 20ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_interval: Option<Dur>,
    /// How often a forwarding node re-sends its whole table, so a peer's copy of a long-lived
    /// flow is not aged out before the flow ends. Default 60s; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<Dur>,
    /// How long a starting node waits for a peer's whole table before it preempts (VRRP) or
    /// announces (BGP) without it. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_sync_timeout: Option<Dur>,
}

/// How the agent has BIRD announce the VIPs (docs/bgp.md).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    /// The file the agent writes, one `route <vip>/32 blackhole;` line per VIP to announce,
    /// included by a `protocol static` in BIRD's config. Default `/run/lb/bird-vips.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes_file: Option<PathBuf>,
    /// The same for IPv6 VIPs (`route <vip>/128 blackhole;`), for a static protocol with an
    /// `ipv6` channel. Always written, empty without IPv6 VIPs. Default
    /// `/run/lb/bird-vips6.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes_file6: Option<PathBuf>,
    /// BIRD's control socket, for `birdc configure`. Default `/run/bird/bird.ctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird_socket: Option<PathBuf>,
    /// The birdc binary. Default `birdc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birdc: Option<PathBuf>,
    /// On a graceful stop: how long the node keeps forwarding after its VIPs are withdrawn
    /// (flows the routers still send while the withdrawal spreads). Default 2s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_time: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    /// `auto` (native, falling back to generic with a warning), `native` (refused where the
    /// driver cannot) or `generic`. Default `global_defs.xdp_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalDefs {
    /// Names this agent: its pins, control socket and logs. Default: `lb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Where the maps and XDP links are pinned. Default `/sys/fs/bpf/lb/<router_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_pin_path: Option<PathBuf>,
    /// Unix socket of `lb-agent status` / `reload`. Default `/run/lb-agent/<router_id>.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_socket: Option<PathBuf>,
    /// Where the agent keeps state across restarts (the operator's overrides). Default
    /// `/var/lib/lb/<router_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Prometheus endpoint, e.g. `127.0.0.1:9469`. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// `auto` (native, falling back to generic), `native` or `generic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_table_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_services: Option<u32>,
    /// Ports over all services (a service with `ports: [80, 443]` takes two); default 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_service_ports: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reals: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_size: Option<u32>,
    /// IPv6 connection-table entries (a map of its own); default 262144.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_size6: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_mcast_group4: Option<Ipv4Addr>,
    /// IPv6 instances' multicast group (default ff02::12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_mcast_group6: Option<Ipv6Addr>,
    /// Gratuitous ARPs sent on becoming master (keepalived default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_repeat: Option<u32>,
    /// Delay of the second GARP burst after becoming master (keepalived default 5s; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_delay: Option<Dur>,
    /// Periodic GARP refresh while master (0 = off, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_master_refresh: Option<Dur>,
    /// Spacing between the GARPs of one burst (default 0: back to back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_interval: Option<Dur>,
}

/// keepalived `vrrp_script`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VrrpScript {
    pub name: String,
    /// Program and arguments, run without a shell. A string is split on whitespace.
    pub script: Command,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Added to the priority while the script succeeds (weight > 0) or fails (weight < 0);
    /// 0 means a failing script puts the instance into FAULT (keepalived semantics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

/// A program to run: `"/usr/bin/check --fast"` or `["/usr/bin/check", "--fast"]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Command {
    Line(String),
    Argv(Vec<String>),
}

impl Command {
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Line(s) => s.split_whitespace().map(str::to_owned).collect(),
            Command::Argv(v) => v.clone(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    pub name: String,
    /// keepalived `state MASTER|BACKUP`: only a hint; the election decides (RFC 5798 §6.4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub interface: String,
    pub virtual_router_id: u32,
    pub priority: u32,
    /// 2 or 3 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// Default 1s. v3: 10ms..40.95s in steps of 10ms; v2: whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_int: Option<Dur>,
    /// Default true. `nopreempt: true` is the same as `preempt: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nopreempt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<Dur>,
    /// Addresses this instance owns while master: `10.0.0.100/24`, optionally with
    /// `dev` and `label` (`{address: 10.0.0.100/24, dev: eth1, label: eth1:vip}`).
    pub virtual_ipaddresses: Vec<VirtualIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast_src_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<IpAddr>,
    /// Multicast mode: accept adverts only from these addresses (empty = anyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_peers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_group4: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_group6: Option<Ipv6Addr>,
    /// v3 IPv4 checksum: `keepalived` (with pseudo-header, default) or `rfc9568`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v3_checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_interfaces: Vec<TrackInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_scripts: Vec<TrackScript>,
    /// Names of `vrrp_track_files`, or `{name, weight}` to override the file's weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_files: Vec<TrackScript>,
    /// Virtual services whose quorum lowers this instance's priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_services: Vec<TrackService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_stop: Option<Command>,
    /// Called as `<cmd> INSTANCE <name> <STATE> <priority>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_repeat: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_master_refresh: Option<Dur>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum VirtualIp {
    Short(String),
    Full(VirtualIpFull),
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualIpFull {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// `PASS` (v2 only). keepalived's `AH` is not supported.
    pub auth_type: String,
    pub auth_pass: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TrackInterface {
    Name(String),
    Weighted { name: String, weight: i32 },
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TrackScript {
    Name(String),
    Weighted { name: String, weight: i32 },
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackService {
    /// `address:port/protocol` of a virtual server, e.g. `10.0.0.100:80/tcp`.
    pub service: String,
    /// Added to the priority while the service is below quorum (negative), 0 = FAULT.
    pub weight: i32,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    pub name: String,
    pub group: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_master: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_backup: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_fault: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Command>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// The VIP.
    pub address: IpAddr,
    /// One port; 0 = every port (keepalived's port-less services). Give this or `ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Several ports served as one service (one Maglev table, one persistence): numbers and
    /// ranges, e.g. `[80, 443, "8000-8099"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortItem>,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Where the XDP program attaches for this service.
    pub interface: String,
    /// `maglev` (default; weighted consistent hashing of the 5-tuple) or `source_hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Client affinity: a client stays on its real until idle this long (`persistence_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<Dur>,
    /// Maglev table size for this service (prime). Default `global_defs.maglev_table_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u32>,
    /// Health-check interval (default 5s, with ±10 % jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    /// Consecutive successes to come back (default 1) and failures to go down (default 1;
    /// keepalived's `retry` maps to `fall`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Checks applied to every real that has none of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Used when no real is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// Minimum healthy weight... keepalived: sum of weights of live reals; below it the
    /// service is down (`quorum_down`), back at `quorum + hysteresis` (`quorum_up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<Command>,
    /// Forward ICMP errors about the service's replies (fragmentation needed above all) to
    /// the real that sent them (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_icmp_errors: Option<bool>,
    /// Steer by client and VIP only (no ports, no connection table), so that every fragment of
    /// a datagram reaches the same real (default false; for UDP services that get fragments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragments: Option<bool>,
    pub real_servers: Vec<RealServer>,
}

/// A port or a range of ports (`"8000-8099"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum PortItem {
    Port(u16),
    Range(String),
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SorryServer {
    pub address: IpAddr,
    pub port: u16,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    pub address: IpAddr,
    /// The virtual port (direct routing cannot change it); may be left out. For a multi-port
    /// or all-ports service, the port its checks use by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default 1. 0 = takes no new flows (drained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// On failure, drain (weight 0, established flows stay) instead of removing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<Command>,
    /// Overrides the service's `checks` for this real (`[]` = no check: always up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<Check>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

/// One checker, written as a one-key map (`- tcp: {...}`). Several may be combined: a real
/// is healthy only if all pass.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// keepalived TCP_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// keepalived HTTP_GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// keepalived SSL_GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpCheck>,
    /// keepalived MISC_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptCheck>,
    /// keepalived DNS_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsCheck>,
    /// keepalived UDP_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpCheck>,
    /// keepalived PING_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingCheck>,
    /// keepalived FILE_CHECK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileCheck>,
}

/// A DNS query to the real; up when an answer with the query's id arrives in time.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    /// The name to ask for (default `.`, as keepalived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The record type (default `SOA`): A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, SRV...
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub qtype: Option<String>,
    /// `udp` (default) or `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Only this response code is up (e.g. `NOERROR`); default: any answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// The answer section must not be empty (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_answer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_to: Option<IpAddr>,
    /// Ask on the VIP through the real (UDP only), as `tcp.probe_vip` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_vip: Option<bool>,
}

/// A datagram to the real. Without `require_reply`, up unless an ICMP error (port
/// unreachable above all) comes back within the timeout; with it, up when a reply arrives
/// (matching `reply_regex` if given). An ICMP port unreachable is down at once either way.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UdpCheck {
    /// The datagram as text (default: 8 bytes `lb-check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The datagram in hex (keepalived's `payload`): `"0a0b 0c"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<bool>,
    /// A regular expression the reply's bytes must match (implies require_reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_to: Option<IpAddr>,
    /// Send to the VIP through the real (needs require_reply), as `tcp.probe_vip` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_vip: Option<bool>,
}

/// ICMP (or ICMPv6) echo to the real.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PingCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
}

/// The real's state from a file holding a number: with `weight` (default 1) non-zero, the
/// number times the weight is the real's weight, and 0 or less is down; with `weight: 0`, 0
/// is up and anything else down. A missing or unreadable file reads as 0.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Negate the number first (keepalived's `reverse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
}

/// keepalived `track_file`: a file holding a number that changes the priority of the
/// instances that track it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    pub name: String,
    pub file: PathBuf,
    /// Default 1: the number times the weight is added to the priority (below -253: FAULT).
    /// 0: a non-zero number is FAULT, 0 is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Negate the number first (with weight 0: 0 is FAULT, anything else fine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Write this value to the file at start if it does not exist (keepalived `init_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_file: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_to: Option<IpAddr>,
    /// Probe the VIP through the real (catches a real that lost its loopback VIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_vip: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// Accepted codes: `[200, "300-399"]`. Default 200-299.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_code: Vec<StatusCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_to: Option<IpAddr>,
    /// https only: verify the certificate (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StatusCode {
    Code(u16),
    Range(String),
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptCheck {
    pub script: Command,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Exit codes 2..255 set the weight to code - 2 (keepalived `misc_dynamic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<bool>,
}
