//! A consistent picture of the running agent, taken by the core on request: what
//! `lb-agent status` prints and the Prometheus endpoint exports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub router_id: String,
    pub config: String,
    pub uptime_s: f64,
    pub instances: Vec<InstanceSnap>,
    pub services: Vec<ServiceSnap>,
    /// Data-path verdict counters by name (each frame lands in exactly one).
    pub verdicts: BTreeMap<String, u64>,
    /// Data-path informational counters by name (a frame may add to several, or none).
    #[serde(default)]
    pub info: BTreeMap<String, u64>,
    /// The last reload asked for (SIGHUP or `lb-agent reload`), if any.
    #[serde(default)]
    pub last_reload: Option<ReloadSnap>,
    /// Connection-table fill per family, counted in the background.
    #[serde(default)]
    pub conntrack: Vec<TableFill>,
    /// Interfaces with the XDP program attached.
    pub attached: Vec<String>,
    /// Every interface a service lives on: whether XDP is attached there, in which mode.
    #[serde(default)]
    pub xdp: Vec<XdpSnap>,
    /// Scale-out mode (`bgp:`): each VIP's announcement and BIRD's last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpSnap>,
    /// Flow-state sharing (`flow_sync:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_sync: Option<FlowSyncSnap>,
    /// VRRP datagrams that failed packet checks, "interface/reason" -> count.
    pub vrrp_invalid: BTreeMap<String, u64>,
    /// Health-check latency histogram: finite upper bounds (s) and cumulative counts (the
    /// +Inf bucket is `check_latency_count`).
    pub check_latency_buckets: Vec<(f64, u64)>,
    pub check_latency_sum_s: f64,
    pub check_latency_count: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BgpSnap {
    pub vips: Vec<VipSnap>,
    pub routes_file: String,
    /// The VIPs in the routes file BIRD last accepted (None: not yet).
    pub bird_applied: Option<Vec<String>>,
    /// Why the last `birdc configure` failed (None: it succeeded).
    pub bird_error: Option<String>,
    pub bird_configures: u64,
    pub bird_failures: u64,
}

/// The flow sync's state and counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FlowSyncSnap {
    pub port: u16,
    /// Messages carry an HMAC of the configured key.
    pub authenticated: bool,
    pub peers: Vec<SyncPeerSnap>,
    /// New flows and refreshes sent (records, datagrams, UDP payload bytes; each datagram
    /// counts once per destination).
    pub records_sent: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub send_errors: u64,
    /// Records of the whole table re-sent by refreshes.
    pub refreshed: u64,
    /// Records received in accepted messages, and of them written to the table.
    pub records_received: u64,
    pub records_applied: u64,
    /// Dropped messages and records by reason (`not_peer`, `bad_mac`, `truncated`,
    /// `unknown_real`, ...).
    pub dropped: BTreeMap<String, u64>,
    /// New flows that never reached the sync: overwritten in the data path's queue before
    /// the agent read it (or no queue for the CPU).
    pub publish_failed: u64,
    /// Sync lag of received new flows (from the data path's entry on the sender to the
    /// entry here), over the last samples: milliseconds.
    pub lag_samples: u64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub bulk: BulkSnap,
    /// Whole tables sent to peers that asked.
    pub bulk_served: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncPeerSnap {
    pub addr: String,
    /// Seconds since a message from it was accepted (None: never).
    pub last_heard_s: Option<f64>,
    pub records_received: u64,
}

/// The bulk sync of this node's start.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BulkSnap {
    /// `running`, `done`, `timed out` or `no peer answered`.
    pub state: String,
    /// The peer the table came from.
    pub peer: Option<String>,
    pub records: u64,
    pub applied: u64,
    pub took_ms: Option<f64>,
    /// Preemption (VRRP) or announcement (BGP) waits for it.
    pub holding: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VipSnap {
    pub vip: String,
    /// The node wants it announced.
    pub announced: bool,
    /// Why not, or what it rests on.
    pub why: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadSnap {
    /// When (seconds since the Unix epoch).
    pub at_unix: u64,
    pub ok: bool,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableFill {
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub entries: u64,
    pub capacity: u64,
    /// When the entries were counted (seconds since the Unix epoch).
    pub counted_unix: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct XdpSnap {
    pub interface: String,
    pub attached: bool,
    /// `native` or `generic` while attached; the configured mode (`auto`, `native`,
    /// `generic`) otherwise.
    pub mode: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstanceSnap {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: String,
    pub priority: u8,
    pub base_priority: u8,
    /// The master this node last heard (itself when master).
    pub master: Option<String>,
    pub master_priority: Option<u8>,
    pub split_brains: u64,
    pub transitions: u64,
    pub adverts_rx: u64,
    pub adverts_tx: u64,
    pub adverts_tx_errors: u64,
    pub dropped: BTreeMap<String, u64>,
    pub vips: Vec<String>,
    pub holds_vips: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceSnap {
    /// `10.0.0.100:80/tcp`.
    pub service: String,
    pub interface: String,
    pub scheduler: String,
    pub active: bool,
    pub quorum_up: bool,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub pps: f64,
    pub bps: f64,
    /// A digest of what its Maglev table is built from (table size, reals taking new flows
    /// and their weights): two nodes with the same one place new flows alike.
    #[serde(default)]
    pub maglev_fingerprint: String,
    pub reals: Vec<RealSnap>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RealSnap {
    /// `10.0.0.11:80`.
    pub real: String,
    pub weight: u32,
    /// Weight the data path uses now (0 when down or drained).
    pub effective_weight: u32,
    pub health: String,
    pub last_check: String,
    pub check_latency_ms: Option<f64>,
    pub transitions: u64,
    /// Check rounds that passed / failed since the agent started.
    #[serde(default)]
    pub checks_ok: u64,
    #[serde(default)]
    pub checks_failed: u64,
    pub mac: Option<String>,
    /// Where the MAC stands: resolved, kept (re-resolving), silent (no ARP answer), unknown.
    #[serde(default)]
    pub arp: String,
    pub packets: u64,
    pub bytes: u64,
    /// Flows assigned to this real since its id was allocated.
    pub flows: u64,
    /// Entries in the connection table that point at it (None when not counted).
    pub active_flows: Option<u64>,
    pub pps: f64,
    pub bps: f64,
    pub sorry: bool,
    /// The operator's weight (`lb-agent real drain|weight`; 0 = drained), while set.
    #[serde(default)]
    pub override_weight: Option<u32>,
    /// How long ago the operator set it (seconds).
    #[serde(default)]
    pub override_age_s: Option<u64>,
}
