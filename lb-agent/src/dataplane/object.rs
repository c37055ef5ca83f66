//! The XDP object, compiled by build.rs and embedded so the agent is one self-contained file.

/// ELF bytes of `lb-ebpf`, 8-byte aligned as the ELF parser needs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf"));
