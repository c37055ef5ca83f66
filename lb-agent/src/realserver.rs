//! `lb-agent real-server check|setup`: the other half of direct routing, on each real server.
//! The real must accept packets addressed to the VIP (the VIP on `lo`), must not answer ARP for
//! it on its network interface (`arp_ignore=1`) nor use it as the source of its own ARP
//! requests (`arp_announce=2`), must not drop them by reverse-path filtering, and must listen on
//! the service's ports. `check` reports each; `setup` applies the runtime part and prints the
//! persistent form (`--write` also writes it).

use std::{fmt::Write as _, net::IpAddr, path::Path};

use crate::{
    netlink::Netlink,
    preflight::{Report, Verdict},
};

/// A port the real must listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub port: u16,
    pub udp: bool,
}

impl std::str::FromStr for Listen {
    type Err = String;
    /// `80`, `80/tcp`, `53/udp`.
    fn from_str(s: &str) -> Result<Listen, String> {
        let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(format!("{s}: a port is N, N/tcp or N/udp")),
        };
        let port = port
            .parse()
            .map_err(|_| format!("{s}: a port is N, N/tcp or N/udp"))?;
        Ok(Listen { port, udp })
    }
}

/// The ARP sysctls of direct routing (IPv4 only: an IPv6 address on `lo` is not answered for
/// on other interfaces).
const ARP: [(&str, u32, &str); 2] = [
    (
        "net.ipv4.conf.all.arp_ignore",
        1,
        "answer ARP only for addresses of the receiving interface (not the VIP on lo)",
    ),
    (
        "net.ipv4.conf.all.arp_announce",
        2,
        "never use the VIP as the source of ARP requests",
    ),
];

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn sysctl(key: &str) -> Option<u32> {
    std::fs::read_to_string(sysctl_path(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a socket listens on `l` for any address or `vip`, from /proc/net (this namespace).
fn listening(l: Listen, vip: IpAddr) -> bool {
    let tables: [&str; 2] = if l.udp {
        ["/proc/net/udp", "/proc/net/udp6"]
    } else {
        ["/proc/net/tcp", "/proc/net/tcp6"]
    };
    // TCP_LISTEN is 0A; an unconnected UDP socket shows 07 (TCP_CLOSE).
    let state = if l.udp { "07" } else { "0A" };
    let vip_hex = match vip {
        IpAddr::V4(a) => format!("{:08X}", u32::from_ne_bytes(a.octets())),
        IpAddr::V6(a) => a
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    };
    tables.iter().any(|t| {
        std::fs::read_to_string(t)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(st)) = (f.get(1), f.get(3)) else {
                    return false;
                };
                let Some((addr, port)) = local.split_once(':') else {
                    return false;
                };
                *st == state
                    && u16::from_str_radix(port, 16) == Ok(l.port)
                    && (addr.chars().all(|c| c == '0') || *addr == vip_hex)
            })
    })
}

fn lo_index() -> u32 {
    crate::dataplane::attach::ifindex("lo").unwrap_or(1)
}

/// Checks this host as a real server for `vip`.
pub fn check(vip: IpAddr, ports: &[Listen]) -> Report {
    let mut r = Report::default();
    let on_lo = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
        .and_then(|rt| {
            rt.block_on(async {
                let nl = Netlink::connect().ok()?;
                nl.has_address(lo_index(), vip).await.ok()
            })
        });
    match on_lo {
        Some(true) => r.add(Verdict::Pass, "VIP on lo", format!("{vip} is on lo")),
        Some(false) => r.add(
            Verdict::Fail,
            "VIP on lo",
            format!("{vip} is not on lo: packets to it would be dropped"),
        ),
        None => r.add(Verdict::Fail, "VIP on lo", "cannot read lo's addresses"),
    }
    if vip.is_ipv4() {
        for (key, want, why) in ARP {
            match sysctl(key) {
                Some(v) if v >= want => r.add(Verdict::Pass, key, format!("{v}")),
                Some(v) => r.add(Verdict::Fail, key, format!("{v}, needs {want}: {why}")),
                None => r.add(Verdict::Fail, key, "unreadable"),
            }
        }
        // Strict reverse-path filtering is fine when the client's route leaves by the
        // interface the packet came in on, which is the normal case; say what it is.
        match sysctl("net.ipv4.conf.all.rp_filter") {
            Some(1) => r.add(
                Verdict::Warn,
                "net.ipv4.conf.all.rp_filter",
                "1 (strict): clients must be routed back out of the interface the balancer \
                 sends on; 2 (loose) is safe where that is not so",
            ),
            Some(v) => r.add(Verdict::Pass, "net.ipv4.conf.all.rp_filter", format!("{v}")),
            None => r.add(Verdict::Warn, "net.ipv4.conf.all.rp_filter", "unreadable"),
        }
    }
    for l in ports {
        let what = format!(
            "listening on {}/{}",
            l.port,
            if l.udp { "udp" } else { "tcp" }
        );
        if listening(*l, vip) {
            r.add(Verdict::Pass, what, format!("on {vip} or every address"));
        } else {
            r.add(
                Verdict::Fail,
                what,
                format!("nothing listens on {vip} or on every address"),
            );
        }
    }
    r
}

/// One file of the persistent form.
pub struct PersistentFile {
    pub path: &'static str,
    /// What it is for, when that is not obvious from the path.
    pub note: &'static str,
    pub text: String,
    /// `--write` writes it (the ifupdown alternative is only printed).
    pub written: bool,
}

/// The persistent form of the settings: a sysctl.d file and the VIP on lo for
/// systemd-networkd and ifupdown.
pub fn persistent(vip: IpAddr) -> Vec<PersistentFile> {
    let plen = if vip.is_ipv4() { 32 } else { 128 };
    let mut out = Vec::new();
    if vip.is_ipv4() {
        let mut s = String::from(
            "# Direct routing: this host holds the VIP on lo (lb-agent real-server setup)\n",
        );
        for (key, want, _) in ARP {
            let _ = writeln!(s, "{key} = {want}");
        }
        out.push(PersistentFile {
            path: "/etc/sysctl.d/90-lb-real-server.conf",
            note: "",
            text: s,
            written: true,
        });
    }
    out.push(PersistentFile {
        path: "/etc/systemd/network/90-lb-vip-lo.network",
        note: "",
        text: format!("[Match]\nName=lo\n\n[Address]\nAddress={vip}/{plen}\n"),
        written: true,
    });
    let family = if vip.is_ipv4() { "inet" } else { "inet6" };
    out.push(PersistentFile {
        path: "/etc/network/interfaces.d/lb-vip-lo",
        note: " (ifupdown, instead of the networkd file)",
        text: format!("auto lo:lb\niface lo:lb {family} static\n    address {vip}/{plen}\n"),
        written: false,
    });
    out
}

/// Applies the runtime settings; returns what was done.
pub fn setup(vip: IpAddr) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    if vip.is_ipv4() {
        for (key, want, _) in ARP {
            if sysctl(key).is_none_or(|v| v < want) {
                std::fs::write(sysctl_path(key), want.to_string())
                    .map_err(|e| format!("setting {key}: {e}"))?;
                done.push(format!("{key} = {want}"));
            }
        }
    }
    let plen = if vip.is_ipv4() { 32 } else { 128 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let added = rt.block_on(async {
        let nl = Netlink::connect().map_err(|e| format!("{e:#}"))?;
        nl.add_address(lo_index(), vip, plen, None)
            .await
            .map_err(|e| format!("{e:#}"))
    })?;
    if added {
        done.push(format!("{vip}/{plen} added to lo"));
    }
    Ok(done)
}

/// Writes the persistent files (the networkd one only where networkd is used).
pub fn write_persistent(vip: IpAddr) -> Result<Vec<String>, String> {
    let mut written = Vec::new();
    for f in persistent(vip).into_iter().filter(|f| f.written) {
        if f.path.starts_with("/etc/systemd/network") && !Path::new("/run/systemd/netif").exists() {
            continue;
        }
        if let Some(dir) = Path::new(f.path).parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(f.path, f.text).map_err(|e| format!("{}: {e}", f.path))?;
        written.push(f.path.to_owned());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(
            "80".parse(),
            Ok(Listen {
                port: 80,
                udp: false
            })
        );
        assert_eq!(
            "53/udp".parse(),
            Ok(Listen {
                port: 53,
                udp: true
            })
        );
        assert!("53/sctp".parse::<Listen>().is_err());
        assert!("http".parse::<Listen>().is_err());
    }

    #[test]
    fn persistent_forms() {
        let v4 = persistent("192.0.2.1".parse().expect("ip"));
        assert!(v4[0].text.contains("net.ipv4.conf.all.arp_ignore = 1"));
        assert!(v4[1].text.contains("Address=192.0.2.1/32"));
        assert!(v4
            .iter()
            .filter(|f| !f.written)
            .all(|f| f.path.contains("interfaces.d")));
        let v6 = persistent("2001:db8::1".parse().expect("ip"));
        assert_eq!(v6.len(), 2, "no ARP sysctls for IPv6");
        assert!(v6[0].text.contains("Address=2001:db8::1/128"));
    }
}
