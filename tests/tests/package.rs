//! The release package (`cargo xtask dist`) on this machine: its contents, `dpkg -i`, the
//! installed agent's `--version` and `check` on the installed example config, an existing
//! config kept across a reinstall, and `dpkg -r` / `dpkg -P` leaving nothing behind.
//! `cargo xtask test` builds the package and passes it as LB_DEB.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

const CONFIG: &str = "/etc/lb/lb.yaml";

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    lb_tests::netns::outcome(Command::new(cmd).args(args))
}

fn must(cmd: &str, args: &[&str]) -> String {
    let (ok, text) = run(cmd, args);
    assert!(ok, "{cmd} {args:?} failed:\n{text}");
    text
}

/// Puts back what the machine had: purges the package, restores a config that was there.
struct Restore {
    saved: Option<Vec<u8>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "lb-agent"]);
        if let Some(data) = &self.saved {
            let _ = fs::create_dir_all("/etc/lb");
            let _ = fs::write(CONFIG, data);
            let _ = fs::set_permissions(CONFIG, fs::Permissions::from_mode(0o600));
        }
    }
}

fn deb() -> Option<PathBuf> {
    match std::env::var_os("LB_DEB") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("LB_NO_SKIP").is_some() => {
            panic!("LB_DEB is not set: run `cargo xtask test` (it builds the package)")
        }
        None => {
            eprintln!("SKIPPED: LB_DEB not set (`cargo xtask dist` builds the package)");
            None
        }
    }
}

#[test]
fn the_package_installs_runs_its_check_keeps_the_config_and_removes_cleanly() {
    let Some(deb) = deb() else { return };
    if !nix_is_root() {
        assert!(
            std::env::var_os("LB_NO_SKIP").is_none(),
            "installing a package needs root"
        );
        return;
    }
    let deb = deb.to_string_lossy().into_owned();

    // What is inside.
    let files: Vec<String> = must("dpkg-deb", &["--contents", &deb])
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    for want in [
        "/usr/sbin/lb-agent",
        "/lib/systemd/system/lb-agent.service",
        "/usr/share/lb-agent/lb.yaml",
        "/usr/share/man/man8/lb-agent.8.gz",
        "/usr/share/man/man8/lb-agent-real.8.gz",
        "/usr/share/man/man5/lb.yaml.5.gz",
        "/usr/share/bash-completion/completions/lb-agent",
        "/usr/share/zsh/vendor-completions/_lb-agent",
        "/usr/share/fish/vendor_completions.d/lb-agent.fish",
        "/usr/share/doc/lb-agent/config.md",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{want} missing from {files:#?}"
        );
    }
    let depends = must("dpkg-deb", &["--field", &deb, "Depends"]);
    assert!(depends.contains("libc6 (>= 2."), "Depends: {depends}");

    let _restore = Restore {
        saved: fs::read(CONFIG).ok(),
    };
    let _ = fs::remove_file(CONFIG);
    let _ = run("dpkg", &["--purge", "lb-agent"]);

    // Install: the example becomes the config, readable by root only.
    must("dpkg", &["-i", &deb]);
    let mode = fs::metadata(CONFIG)
        .expect("config installed")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config mode");
    assert_eq!(
        fs::read(CONFIG).expect("config"),
        fs::read("/usr/share/lb-agent/lb.yaml").expect("example")
    );
    let version = must("/usr/sbin/lb-agent", &["--version"]);
    assert!(
        version.starts_with("lb-agent ") && version.contains("(commit "),
        "{version}"
    );
    assert!(!version.contains("commit unknown"), "{version}");
    let check = must("/usr/sbin/lb-agent", &["check", "--config", CONFIG]);
    assert!(check.contains("configuration OK"), "{check}");
    let man = must("sh", &["-c", "zcat /usr/share/man/man8/lb-agent-real.8.gz"]);
    assert!(man.contains("drain"), "the man page documents `real drain`");
    let man5 = must("sh", &["-c", "zcat /usr/share/man/man5/lb.yaml.5.gz"]);
    assert!(man5.contains("router_id"), "lb.yaml(5) has the keys");

    // A reinstall keeps the operator's config.
    let mine = "# mine\nvirtual_servers: []\n";
    fs::write(CONFIG, mine).expect("write");
    must("dpkg", &["-i", &deb]);
    assert_eq!(fs::read_to_string(CONFIG).expect("config"), mine);

    // Remove keeps the config; purge removes it too; nothing of the package stays.
    must("dpkg", &["--remove", "lb-agent"]);
    assert!(!Path::new("/usr/sbin/lb-agent").exists());
    assert!(Path::new(CONFIG).exists(), "remove keeps the config");
    must("dpkg", &["--purge", "lb-agent"]);
    assert!(!Path::new("/etc/lb").exists(), "purge removes /etc/lb");
    for f in files.iter().filter(|f| !f.ends_with('/')) {
        assert!(!Path::new(f).exists(), "{f} left behind");
    }
    let (installed, _) = run("dpkg", &["-L", "lb-agent"]);
    assert!(!installed, "dpkg still knows the package");
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
