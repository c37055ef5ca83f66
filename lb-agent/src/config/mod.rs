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

/// Parses the YAML in `text` (named `file` in messages) and validates it.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let schema = parse_schema(text, file)?;
    validate::validate(&schema).map_err(|problems| {
        let pos = locate::Positions::of(text);
        ConfigError {
            file: file.to_owned(),
            problems: problems
                .into_iter()
                .map(|p| {
                    let at = pos.locate(&p.path);
                    Located {
                        line: at.map(|a| a.0),
                        column: at.map(|a| a.1),
                        path: p.path,
                        message: p.message,
                    }
                })
                .collect(),
        }
    })
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
            if i.version == VrrpVersion::V2 { 2 } else { 3 },
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
                "  real_server {}:{} weight {}{} checks {}",
                r.addr,
                r.port,
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
