//! Shared helpers of lb's integration tests and of the lab (`cargo xtask build-and-run`).

pub mod agent;
pub mod bench;
pub mod capture;
pub mod client;
pub mod frames;
pub mod held;
pub mod keepalived;
pub mod lab;
pub mod netns;
pub mod pair;
pub mod soak;
pub mod standalone;
pub mod topology;
