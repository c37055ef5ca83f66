//! lb-agent: the user-space half of lb, an XDP direct-routing load balancer with a built-in,
//! keepalived-compatible VRRP agent.
//!
//! Data flows one way: config + health + VRRP state -> desired data-path state -> map writes.

pub mod agent;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod flowsync;
pub mod health;
pub mod logs;
pub mod netlink;
pub mod node;
pub mod packet_socket;
pub mod preflight;
pub mod realserver;
pub mod vrrp;
