//! keepalived.conf -> lb YAML (`lb-agent import-keepalived`).
//!
//! [`import_file`] reads a keepalived configuration and what it includes, and converts it into
//! lb's `schema::File`; every directive that does not carry over as it was gets a [`Note`]
//! with its file and line. [`to_yaml`] writes the result with the notes as a comment header.
//!
//! Pipeline: [`include`] (files, `include` globs, cycles) -> [`lexer`] (comments, quotes,
//! braces) -> [`ast`] (statements and blocks) -> [`convert`] ([`global`], [`vrrp`], [`lvs`],
//! [`checks`]) -> [`report::Report`].

pub mod ast;
pub mod checks;
pub mod command;
pub mod convert;
pub mod glob;
pub mod global;
pub mod include;
pub mod lexer;
pub mod lvs;
pub mod report;
pub mod values;
pub mod vrrp;
pub mod yaml;

use std::path::Path;

pub use report::{ImportError, Note, Report, Severity};
pub use yaml::to_yaml;

/// Imports `path` and the files it includes (`include` globs are relative to the including
/// file's directory, as in keepalived). Errors only when nothing sensible can be produced: a
/// file that cannot be read, braces that do not balance, an include cycle.
pub fn import_file(path: &Path) -> Result<Report, ImportError> {
    let loaded = include::load_file(path)?;
    let stmts = ast::parse(&loaded.lines)?;
    Ok(convert::convert(&stmts, loaded.notes))
}

/// Imports a configuration given as text, named `name` in notes and errors. `include` lines
/// are not followed (each gets a warning): use [`import_file`] for a file that has some.
pub fn import_str(text: &str, name: &str) -> Result<Report, ImportError> {
    let loaded = include::load_str(text, name);
    let stmts = ast::parse(&loaded.lines)?;
    Ok(convert::convert(&stmts, loaded.notes))
}
