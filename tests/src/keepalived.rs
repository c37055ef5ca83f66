//! The real keepalived (Debian's package) as a VRRP peer in a namespace.

use std::{fs, os::unix::process::CommandExt as _, process::Stdio};

use anyhow::{Context as _, Result};

use crate::{
    agent::{write_config, WorkDir},
    netns::{Netns, Proc},
    topology::{VIP, VIP6},
};

/// How the VRRP instance is set up on both sides of an interop test.
#[derive(Clone, Debug)]
pub struct Flavour {
    pub version: u8,
    /// keepalived spelling: "1" (v2) or "0.1" (v3).
    pub advert_int: &'static str,
    pub auth_pass: Option<&'static str>,
    /// Unicast: (our source, peer).
    pub unicast: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// The instance carries the IPv6 VIP (fd00:99::100/64) instead of the IPv4 one.
    pub v6: bool,
}

/// A keepalived.conf for one node.
pub fn conf(name: &str, priority: u8, f: &Flavour) -> String {
    let mut c = format!(
        "global_defs {{\n  router_id {name}\n  enable_script_security\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int {adv}\n  version {ver}\n",
        adv = f.advert_int,
        ver = f.version,
    );
    if let Some(p) = f.auth_pass {
        c += &format!("  authentication {{\n    auth_type PASS\n    auth_pass {p}\n  }}\n");
    }
    if let Some((src, peer)) = f.unicast {
        c += &format!("  unicast_src_ip {src}\n  unicast_peer {{\n    {peer}\n  }}\n");
    }
    let vip = if f.v6 {
        format!("{VIP6}/64")
    } else {
        format!("{VIP}/24")
    };
    c += &format!("  virtual_ipaddress {{\n    {vip}\n  }}\n}}\n");
    c
}

pub struct Keepalived {
    pub proc: Proc,
    pub log: std::path::PathBuf,
}

impl Keepalived {
    /// Runs `keepalived -n -P` in `ns` with its own pid files (never the host's).
    pub fn start(ns: &Netns, dir: &WorkDir, name: &str, conf_text: &str) -> Result<Keepalived> {
        let conf = dir.0.join(format!("{name}.conf"));
        write_config(&conf, conf_text)?;
        let log = dir.0.join(format!("{name}.log"));
        let logf = fs::File::create(&log)?;
        let mut cmd = ns.command("keepalived");
        cmd.args(["-n", "-P", "-l", "-D", "-G", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.0.join(format!("{name}.pid")))
            .arg("-r")
            .arg(dir.0.join(format!("{name}-vrrp.pid")))
            .arg("-c")
            .arg(dir.0.join(format!("{name}-check.pid")))
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            // Its own process group, so the VRRP child can be killed with the parent.
            .process_group(0);
        let child = cmd.spawn().context("starting keepalived")?;
        Ok(Keepalived {
            proc: Proc::new(child, "keepalived"),
            log,
        })
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: keepalived sends priority 0 and removes its VIPs.
    pub fn stop(&mut self) -> Result<()> {
        self.proc.signal(libc::SIGTERM)?;
        self.proc.wait_timeout(std::time::Duration::from_secs(10))?;
        Ok(())
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(pid) = self.proc.pid() {
            // SAFETY: kill(2) on the process group of a child we spawned.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}
