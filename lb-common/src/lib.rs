//! Types shared by the XDP program (`lb-ebpf`) and the agent (`lb-agent`).
//!
//! Rules for everything in this crate (the kernel and user space must agree byte for byte):
//! `#[repr(C)]`, `Copy`, only integers and byte arrays, explicit `_pad` fields, a size assert
//! per type. No `bool`, `Option`, Rust enums or `usize`. A field holding network byte order says
//! so in its name (`_be`): it holds the wire bytes as they are, read with `from_ne_bytes`.
#![no_std]

pub mod hash;
pub mod maps;
pub mod stats;
pub mod types;

pub use hash::{addr6_hash, address_hash, flow_hash, flow_hash6, source_hash};
pub use types::*;
