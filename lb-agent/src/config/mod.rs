//! Configuration: one YAML file (schema), checked into a typed model. Every problem is reported
//! at once with file, line and column; nothing runs on a config that did not validate.

pub mod duration;
pub mod import;
pub mod locate;
pub mod model;
pub mod schema;
pub mod validate;

use std::{fmt, os::unix::fs::PermissionsExt as _, path::Path};

pub use model::*;

/// Why a config was refused: each problem with its place in the file.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Located>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match (p.line, p.column) {
                (Some(l), Some(c)) => write!(f, "  {}:{l}:{c}: ", self.file)?,
                _ => write!(f, "  {}: ", self.file)?,
            }
            if p.path.is_empty() {
                writeln!(f, "{}", p.message)?;
            } else {
                writeln!(f, "{}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn single(file: &str, message: String) -> Self {
        ConfigError {
            file: file.to_owned(),
            problems: vec![Located {
                line: None,
                column: None,
                path: String::new(),
                message,
            }],
        }
    }
}

/// Reads and validates `path`. A world-writable file is refused: anyone could make this
/// agent run their scripts as root.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::single(&name, format!("cannot read: {e}")))?;
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(ConfigError::single(
            &name,
            "refusing a world-writable config file (chmod o-w it)".into(),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::single(&name, format!("cannot read: {e}")))?;
    parse(&text, &name)
}

/// Parses the YAML in `text` (named `file` in messages) and validates it. Every unknown key and
/// every validation problem is reported at once.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let pos = locate::Positions::of(text);
    let located = |path: String, message: String| {
        let at = pos.locate(&path);
        Located {
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            path,
            message,
        }
    };
    let (schema, unknown) = parse_lenient(text, file)?;
    let mut problems: Vec<Located> = unknown
        .into_iter()
        .map(|(path, message)| located(path, message))
        .collect();
    match validate::validate(&schema) {
        Ok(cfg) if problems.is_empty() => return Ok(cfg),
        Ok(_) => {}
        Err(found) => problems.extend(found.into_iter().map(|p| located(p.path, p.message))),
    }
    Err(ConfigError {
        file: file.to_owned(),
        problems,
    })
}

/// The schema pass, going on past unknown keys: each one is recorded (path of the key,
/// serde's message with the keys expected there) and left out, and the rest is parsed again,
/// so a file with three typos and a bad port gets four problems back, not one. Any other
/// schema error (a wrong type, bad YAML) stops at once, with serde_yaml's position.
fn parse_lenient(
    text: &str,
    file: &str,
) -> Result<(schema::File, Vec<(String, String)>), ConfigError> {
    /// More unknown keys than this in one file: stop listing them.
    const MAX_UNKNOWN: usize = 50;
    let mut unknown = Vec::new();
    let mut current = text.to_owned();
    loop {
        match parse_schema(&current, file) {
            Ok(s) => return Ok((s, unknown)),
            Err(e) => {
                let first = e.problems.first().map(|p| p.message.clone());
                let removed = first
                    .as_deref()
                    .and_then(unknown_key)
                    .filter(|_| unknown.len() < MAX_UNKNOWN)
                    .and_then(|(parent, key)| {
                        let mut v: serde_yaml::Value = serde_yaml::from_str(&current).ok()?;
                        remove_key(&mut v, &parent, &key)?;
                        Some((parent, key, serde_yaml::to_string(&v).ok()?))
                    });
                match removed {
                    Some((parent, key, rest)) => {
                        let message = first.unwrap_or_default();
                        let message = message
                            .strip_prefix(&format!("{parent}: "))
                            .unwrap_or(&message)
                            .to_owned();
                        let path = if parent.is_empty() {
                            key
                        } else {
                            format!("{parent}.{key}")
                        };
                        unknown.push((path, message));
                        current = rest;
                    }
                    // Not an unknown key: report what was found so far, then this one (with
                    // its position in the original text when it came from there).
                    None if unknown.is_empty() => return Err(e),
                    None => {
                        let mut problems: Vec<Located> = Vec::new();
                        let pos = locate::Positions::of(text);
                        for (path, message) in unknown {
                            let at = pos.locate(&path);
                            problems.push(Located {
                                line: at.map(|a| a.0),
                                column: at.map(|a| a.1),
                                path,
                                message,
                            });
                        }
                        problems.extend(e.problems.into_iter().map(|p| Located {
                            line: None,
                            column: None,
                            ..p
                        }));
                        return Err(ConfigError {
                            file: file.to_owned(),
                            problems,
                        });
                    }
                }
            }
        }
    }
}

/// `(parent path, key)` of serde's "PATH: unknown field `KEY`, expected ..." message.
fn unknown_key(message: &str) -> Option<(String, String)> {
    let at = message.find("unknown field `")?;
    let key = message[at + "unknown field `".len()..].split('`').next()?;
    let parent = message[..at].strip_suffix(": ").unwrap_or("");
    Some((parent.to_owned(), key.to_owned()))
}

/// Removes `key` from the mapping at `path` (`a.b[2].c`); None if it is not there.
fn remove_key(v: &mut serde_yaml::Value, path: &str, key: &str) -> Option<()> {
    let mut node = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            node = node.get_mut(name)?;
        }
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            node = node.get_mut(idx.parse::<usize>().ok()?)?;
        }
    }
    node.as_mapping_mut()?.remove(key).map(|_| ())
}

/// The strict schema pass alone (unknown keys, wrong types), with serde_yaml's position.
pub fn parse_schema(text: &str, file: &str) -> Result<schema::File, ConfigError> {
    if text.trim().is_empty() {
        return Ok(schema::File::default());
    }
    serde_yaml::from_str::<schema::File>(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        ConfigError {
            file: file.to_owned(),
            problems: vec![Located {
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                path: String::new(),
                message,
            }],
        }
    })
}

/// A human summary of a valid config (what `lb-agent check` prints).
pub fn summary(cfg: &Config) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "router_id {}", cfg.router_id);
    if let Some(b) = &cfg.bgp {
        let _ = writeln!(
            s,
            "scale-out (bgp): VIPs announced through BIRD ({}, {}; birdc -s {}), drain {}",
            b.routes_file.display(),
            b.routes_file6.display(),
            b.bird_socket.display(),
            duration::format_duration(b.drain_time)
        );
    }
    if let Some(f) = &cfg.flow_sync {
        let peers: Vec<String> = f.peers.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            "flow_sync: peers {} port {}{}, batch {}, refresh {}, bulk sync timeout {}, {}",
            peers.join(", "),
            f.port,
            f.group
                .map(|g| format!(" via group {g}"))
                .unwrap_or_default(),
            duration::format_duration(f.batch_interval),
            duration::format_duration(f.refresh_interval),
            duration::format_duration(f.bulk_sync_timeout),
            if f.key.is_some() {
                "authenticated (HMAC-SHA256)"
            } else {
                "NOT authenticated (no key)"
            }
        );
    }
    for i in &cfg.instances {
        let vips: Vec<String> = i
            .vips
            .iter()
            .map(|v| format!("{}/{}", v.addr, v.prefix))
            .collect();
        let _ = writeln!(
            s,
            "vrrp_instance {}: {} vrid {} priority {} v{} advert {} {} vips {}",
            i.name,
            i.interface,
            i.vrid,
            i.priority,
            i.version.number(),
            duration::format_duration(i.advert_int),
            if i.preempt { "preempt" } else { "nopreempt" },
            vips.join(" ")
        );
    }
    for v in &cfg.services {
        let _ = writeln!(
            s,
            "virtual_server {} on {} ({:?}, table {}): {} real{}",
            v.label(),
            v.interface,
            v.scheduler,
            v.table_size,
            v.reals.len(),
            if v.reals.len() == 1 { "" } else { "s" }
        );
        for r in &v.reals {
            let _ = writeln!(
                s,
                "  real_server {} weight {}{} checks {}",
                host_port(r.addr, r.port),
                r.weight,
                if r.inhibit_on_failure {
                    " inhibit_on_failure"
                } else {
                    ""
                },
                r.checks.len()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests;
