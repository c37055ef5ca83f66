//! Compiles `lb-ebpf` for the BPF target with the nightly toolchain and leaves the object in
//! OUT_DIR, where `dataplane::object` embeds it: the agent binary is self-contained.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    // A cargo started by this build script must not inherit the outer (stable) toolchain,
    // or build-std looks for stable's rust-src.
    for var in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WRAPPER",
    ] {
        std::env::remove_var(var);
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../lb-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lb-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF object failed; run `cargo xtask setup` to install the nightly \
         rust-src and bpf-linker it needs",
    )
}
