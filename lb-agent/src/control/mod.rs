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
    Error { message: String },
}
