//! Programs that run lb in network namespaces and report what it did: the lab tour behind
//! `cargo xtask build-and-run`, the soak (`cargo xtask soak`) and the benchmarks (`cargo
//! xtask bench`). They use the test harness (`lb-tests`) but are not tests.

pub mod bench;
pub mod ecmp_tour;
pub mod lab;
pub mod soak;
