//! `cargo xtask setup`: makes a fresh Debian machine able to build, test and demo lb, and
//! says what it did. Safe to run again: each step checks before it acts.
//! Never updates a toolchain: it uses the installed `stable` and `nightly` as they are.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{anyhow, bail, Context as _, Result};

/// Debian packages: test peers and tools (keepalived for interop, nginx/haproxy/nftables as the
/// benchmark's alternatives, wrk for load, tcpdump/tshark for captures, ethtool for veth
/// offloads, iproute2 for namespaces).
pub const PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "ethtool",
    "keepalived",
    "nginx",
    "libnginx-mod-stream",
    "haproxy",
    "nftables",
    "wrk",
    "tcpdump",
    "tshark",
    "curl",
    "python3-scapy",
    "dnsmasq-base",
    "procps",
    "openssl",
    // `cargo xtask dist`: readelf and strip for the package, and its man pages read back.
    "binutils",
    "gzip",
    // promtool checks and unit-tests docs/monitoring/alerts.yaml (the server never starts:
    // policy-rc.d below).
    "prometheus",
    // Scale-out mode: BIRD on the router and on every node of the ECMP lab (started by the
    // tests inside their namespaces; the packaged service never starts: policy-rc.d).
    "bird2",
];

pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    eprintln!("==> {name}");
    let r = f();
    match &r {
        Ok(_) => eprintln!("    done in {:.1}s", t.elapsed().as_secs_f64()),
        Err(e) => eprintln!("    FAILED after {:.1}s: {e:#}", t.elapsed().as_secs_f64()),
    }
    r
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed with {st}");
    }
    Ok(())
}

/// A cargo/rustc started from here must not inherit the outer toolchain selection.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for v in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("    apt: all {} packages present", PACKAGES.len());
        return Ok(());
    }
    eprintln!("    apt: installing {}", missing.join(" "));
    // Packages like nginx and keepalived would start their services on install: forbid that
    // (policy-rc.d exit 101), so nothing runs in the root namespace behind our back.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing policy-rc.d")?;
        set_mode(policy, 0o755)?;
    }
    let r = (|| {
        status(
            Command::new("apt-get")
                .args(["-q", "update"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null()),
        )?;
        status(
            Command::new("apt-get")
                .args(["-q", "-y", "install", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null()),
        )
    })();
    if ours {
        let _ = fs::remove_file(policy);
    }
    r?;
    let still: Vec<&str> = missing.iter().copied().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt did not install: {}", still.join(" "));
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let s = output(clean_env(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
    ))
    .context("the nightly toolchain is required (rustup toolchain list)")?;
    Ok(PathBuf::from(s.trim()))
}

fn rust_src(sysroot: &Path) -> Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        eprintln!("    rust-src: present for nightly");
        return Ok(());
    }
    eprintln!("    rust-src: adding to nightly");
    status(clean_env(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ])))
}

fn data_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".local/share/lb-toolchain")
}

/// bpf-linker, built against the LLVM the nightly ships (it must match the LLVM that produced
/// the bitcode). Rebuilt when the nightly changes.
fn bpf_linker(sysroot: &Path) -> Result<()> {
    let vv = output(clean_env(Command::new("rustc").args(["+nightly", "-vV"])))?;
    let llvm = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .ok_or_else(|| anyhow!("nightly rustc -vV has no LLVM version"))?
        .trim()
        .to_owned();
    let major = llvm.split('.').next().unwrap_or("").to_owned();
    let lib = sysroot.join("lib");
    let libllvm = fs::read_dir(&lib)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .ok_or_else(|| anyhow!("no libLLVM.so.* in {}", lib.display()))?;
    let libname = libllvm
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("odd libLLVM name"))?
        .to_owned();

    let stamp_text = format!("{vv}{libname}\n");
    let prefix = data_dir().join(format!(
        "llvm-{}",
        libname.trim_start_matches("libLLVM.so.")
    ));
    let stamp = data_dir().join("bpf-linker.stamp");
    // The one on PATH is the one rustc will run.
    let works = Command::new("bpf-linker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if works && fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text.as_str()) {
        eprintln!("    bpf-linker: up to date (LLVM {llvm} of the nightly)");
        return Ok(());
    }
    eprintln!("    bpf-linker: building against LLVM {llvm} ({libname}); about a minute");
    let libdir = prefix.join("lib");
    fs::create_dir_all(&libdir)?;
    for name in ["libLLVM.so", libname.as_str()] {
        let l = libdir.join(name);
        let _ = fs::remove_file(&l);
        std::os::unix::fs::symlink(&libllvm, &l)
            .with_context(|| format!("linking {}", l.display()))?;
    }
    status(
        clean_env(&mut Command::new("cargo"))
            .args([
                "+nightly",
                "install",
                "--force",
                "--locked",
                "bpf-linker",
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
    .or_else(|_| {
        // Without --locked if the lock file pins something this nightly cannot build.
        status(
            clean_env(&mut Command::new("cargo"))
                .args([
                    "+nightly",
                    "install",
                    "--force",
                    "bpf-linker",
                    "--no-default-features",
                    "--features",
                    &format!("llvm-{major}"),
                ])
                .env("LLVM_PREFIX", &prefix),
        )
    })?;
    fs::write(&stamp, stamp_text)?;
    Ok(())
}

pub struct Setup;

pub fn setup() -> Result<Setup> {
    step(
        "setup: Debian packages, nightly rust-src, bpf-linker, cargo-fuzz",
        || {
            if euid() != 0 {
                bail!("setup installs packages and tests need root: run as root");
            }
            apt()?;
            let sysroot = nightly_sysroot()?;
            rust_src(&sysroot)?;
            bpf_linker(&sysroot)?;
            crate::fuzz::ensure_cargo_fuzz()?;
            Ok(Setup)
        },
    )
}

fn euid() -> u32 {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(u32::MAX)
}
