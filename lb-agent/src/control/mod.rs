//! The control plane: a unix socket only root can open, speaking one JSON request and one
//! JSON answer per connection (`lb-agent status`, `lb-agent reload`), and the optional
//! Prometheus endpoint.

pub mod client;
pub mod metrics;
pub mod server;
pub mod snapshot;
pub mod text;

use serde::{Deserialize, Serialize};

pub use snapshot::Snapshot;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status {
        /// Count connection-table entries per real (scans the table; capped).
        #[serde(default)]
        flows: bool,
    },
    Reload,
    /// Sets (`weight`: 0 drains) or clears (`weight`: none) the operator's weight of a real.
    SetReal {
        vip: std::net::SocketAddr,
        /// `tcp` or `udp`.
        proto: String,
        /// The real's address, or address:port.
        real: String,
        /// `drain`, `weight` or `enable`.
        action: String,
        #[serde(default)]
        weight: Option<u32>,
    },
    /// Connection-table entries, filtered, and the count per real over the whole table.
    Conns {
        #[serde(default)]
        vip: Option<std::net::IpAddr>,
        #[serde(default)]
        real: Option<std::net::IpAddr>,
        #[serde(default)]
        client: Option<std::net::IpAddr>,
        limit: usize,
    },
    /// Which real a flow goes to and why.
    Explain {
        client: std::net::SocketAddr,
        vip: std::net::SocketAddr,
        /// `tcp` or `udp`.
        proto: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status(Box<Snapshot>),
    Reloaded { message: String },
    Explain(crate::dataplane::explain::Explanation),
    Done { message: String },
    Conns(crate::dataplane::conns::Listing),
    Error { message: String },
}
