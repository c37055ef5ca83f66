//! `cargo xtask dist`: the release artifact, a `.deb` with the agent, its systemd unit, the
//! example config (installed as /etc/lb/lb.yaml only when there is none), man pages and shell
//! completions generated from the command line, and the docs.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    man,
    setup::{status, step},
};

const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
    # The example becomes the config only where there is none: an existing one is kept.
    if [ ! -e /etc/lb/lb.yaml ]; then
        install -d -m 0755 /etc/lb
        install -m 0600 /usr/share/lb-agent/lb.yaml /etc/lb/lb.yaml
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
"#;

const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop lb-agent.service >/dev/null 2>&1 || true
fi
"#;

const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/lb/lb.yaml
    rmdir /etc/lb 2>/dev/null || true
    rm -rf /var/lib/lb
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
"#;

fn write(path: &Path, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn gzip(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(fs::File::create(path)?)
        .spawn()
        .context("gzip")?;
    child.stdin.take().context("gzip stdin")?.write_all(data)?;
    if !child.wait()?.success() {
        bail!("gzip failed");
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The package's Depends: the shared libraries the binary links, and the newest glibc symbol
/// version it uses (so apt refuses a host whose glibc is older).
fn depends(bin: &Path) -> Result<(String, String)> {
    let dynamic = output(Command::new("readelf").arg("-dW").arg(bin))?;
    let symbols = output(Command::new("readelf").arg("-VW").arg(bin))?;
    let glibc = symbols
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
            parts
        })
        .max()
        .context("no GLIBC_ symbol versions in the binary")?;
    let glibc = glibc
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let mut deps = vec![format!("libc6 (>= {glibc})")];
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        if line.contains("libgcc_s.so.1") {
            deps.push("libgcc-s1".into());
        } else if ![
            "libc.so.6",
            "libm.so.6",
            "ld-linux",
            "libpthread",
            "libdl",
            "librt",
        ]
        .iter()
        .any(|l| line.contains(l))
        {
            bail!("the binary links a library the package does not declare: {line}");
        }
    }
    Ok((deps.join(", "), glibc))
}

/// Builds target/dist/lb-agent_<version>_amd64.deb and returns its path.
pub fn dist(root: &Path) -> Result<PathBuf> {
    crate::run::build(root)?;
    let bin = root.join("target/release/lb-agent");
    let version_line = output(Command::new(&bin).arg("--version"))?;
    // "lb-agent 0.1.0 (commit 0123abcd)"
    let version = version_line
        .split_whitespace()
        .nth(1)
        .context("lb-agent --version printed no version")?
        .to_owned();
    let dist = root.join("target/dist");
    let stage = dist.join("stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;

    let sbin = stage.join("usr/sbin/lb-agent");
    fs::create_dir_all(sbin.parent().context("path")?)?;
    step("dist: strip the agent", || {
        status(
            Command::new("strip")
                .args(["--strip-unneeded", "-o"])
                .arg(&sbin)
                .arg(&bin),
        )
    })?;
    fs::set_permissions(&sbin, fs::Permissions::from_mode(0o755))?;

    write(
        &stage.join("lib/systemd/system/lb-agent.service"),
        fs::read(root.join("examples/lb-agent.service"))?,
        0o644,
    )?;
    write(
        &stage.join("usr/share/lb-agent/lb.yaml"),
        fs::read(root.join("examples/lb.yaml"))?,
        0o644,
    )?;

    // Man pages and completions from the CLI's own definition.
    let gen = dist.join("generated");
    let _ = fs::remove_dir_all(&gen);
    step("dist: man pages and completions from the CLI", || {
        status(Command::new(&bin).arg("generate-docs").arg(&gen))
    })?;
    for e in fs::read_dir(gen.join("man8"))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        gzip(
            &stage.join(format!("usr/share/man/man8/{name}.gz")),
            &fs::read(e.path())?,
        )?;
    }
    let config_md = fs::read_to_string(root.join("docs/config.md"))?;
    gzip(
        &stage.join("usr/share/man/man5/lb.yaml.5.gz"),
        man::from_markdown(&config_md, "LB.YAML", "5", &version).as_bytes(),
    )?;
    let comp = gen.join("completions");
    for (from, to) in [
        (
            "lb-agent.bash",
            "usr/share/bash-completion/completions/lb-agent",
        ),
        ("_lb-agent", "usr/share/zsh/vendor-completions/_lb-agent"),
        (
            "lb-agent.fish",
            "usr/share/fish/vendor_completions.d/lb-agent.fish",
        ),
    ] {
        write(&stage.join(to), fs::read(comp.join(from))?, 0o644)?;
    }

    let doc = stage.join("usr/share/doc/lb-agent");
    for (from, to) in [
        ("README.md", "README.md"),
        ("docs/config.md", "config.md"),
        ("docs/datapath.md", "datapath.md"),
        ("docs/operations.md", "operations.md"),
    ] {
        if root.join(from).exists() {
            write(&doc.join(to), fs::read(root.join(from))?, 0o644)?;
        }
    }
    write(
        &doc.join("copyright"),
        "lb: an XDP direct-routing load balancer with a keepalived-compatible VRRP agent.\n\
         License: see the project's Cargo.toml (workspace license).\n",
        0o644,
    )?;

    let (deps, glibc) = depends(&sbin)?;
    let size_kib = dir_size(&stage)? / 1024;
    let control = format!(
        "Package: lb-agent\nVersion: {version}\nArchitecture: amd64\nMaintainer: lb developers <lb@localhost>\n\
         Installed-Size: {size_kib}\nDepends: {deps}\nSection: net\nPriority: optional\n\
         Description: XDP direct-routing load balancer with a keepalived-compatible VRRP agent\n \
         lb-agent balances TCP and UDP virtual services to real servers in direct-routing\n \
         mode with an XDP program (Maglev consistent hashing and a connection table), runs\n \
         VRRP v2/v3 interoperable with keepalived, and health-checks the real servers.\n \
         Needs Linux {}.{} or later. Start with: lb-agent check --host -c /etc/lb/lb.yaml\n",
        lb_agent_min_kernel().0,
        lb_agent_min_kernel().1
    );
    write(&stage.join("DEBIAN/control"), control, 0o644)?;
    write(&stage.join("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&stage.join("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&stage.join("DEBIAN/postrm"), POSTRM, 0o755)?;

    let deb = dist.join(format!("lb-agent_{version}_amd64.deb"));
    step("dist: dpkg-deb --build", || {
        status(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zxz", "--build"])
                .arg(&stage)
                .arg(&deb),
        )
    })?;
    let size = fs::metadata(&deb)?.len();
    eprintln!(
        "built {} ({:.1} MiB; {}; needs glibc {glibc} or later, e.g. Debian 12, Ubuntu 22.04)",
        deb.display(),
        size as f64 / 1048576.0,
        version_line.trim()
    );
    Ok(deb)
}

/// Mirrors `lb_agent::preflight::MIN_KERNEL` (xtask does not link the agent).
fn lb_agent_min_kernel() -> (u32, u32) {
    (5, 18)
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}
