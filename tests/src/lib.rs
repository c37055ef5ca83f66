//! The test harness: network namespaces, topologies, the agent, clients, captures, frames,
//! BPF_PROG_TEST_RUN; shared by the integration tests and the lab (`lab/`).

pub mod agent;
pub mod bird;
pub mod capture;
pub mod client;
pub mod frames;
pub mod held;
pub mod keepalived;
pub mod netns;
pub mod pair;
pub mod scale_out;
pub mod sniff;
pub mod standalone;
pub mod testrun;
pub mod topology;
