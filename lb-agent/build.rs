//! Compiles `lb-ebpf` for the BPF target with the nightly toolchain and leaves the object in
//! OUT_DIR, where `dataplane::object` embeds it: the agent binary is self-contained.
use anyhow::Context as _;

/// The commit the agent is built from, for `lb-agent --version` (`LB_GIT_COMMIT` wins, for
/// builds from a source tarball; "unknown" without git).
fn git_commit() {
    println!("cargo:rerun-if-env-changed=LB_GIT_COMMIT");
    let git = concat!(env!("CARGO_MANIFEST_DIR"), "/../.git");
    println!("cargo:rerun-if-changed={git}/HEAD");
    if let Ok(head) = std::fs::read_to_string(format!("{git}/HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            let loose = format!("{git}/{r}");
            if std::path::Path::new(&loose).exists() {
                println!("cargo:rerun-if-changed={loose}");
            } else {
                println!("cargo:rerun-if-changed={git}/packed-refs");
            }
        }
    }
    let commit = std::env::var("LB_GIT_COMMIT").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=LB_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}

fn main() -> anyhow::Result<()> {
    git_commit();
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
