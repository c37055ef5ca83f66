//! Shared helpers of lb's integration tests and of the lab (`cargo xtask build-and-run`).

pub mod frames;
