//! What an import produces: the lb configuration, the notes about everything that did not carry
//! over as is, and the errors that stop an import altogether.

use std::fmt;

use super::super::schema;

/// The converted configuration and what the user must know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub file: schema::File,
    /// In file order (files in the order they were read), then line order.
    pub notes: Vec<Note>,
}

/// One remark about a line of the keepalived configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The file as it was opened (the path given, or joined from an `include`).
    pub file: String,
    /// 1-based; 0 when the note is about the file as a whole.
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// keepalived does something here that lb does not: not imported.
    Unsupported,
    /// Imported, but written differently or with a (documented) change of behaviour.
    Converted,
    /// Imported with a guess or a repair, or keepalived itself would have changed or ignored it:
    /// review it.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unsupported => "unsupported",
            Severity::Converted => "converted",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.severity, self.message
        )
    }
}

/// Why nothing could be imported. `file`/`line` name the place to fix (line 0: the file itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{file}:{line}: cannot read `{path}`: {reason}")]
    Read {
        file: String,
        line: usize,
        path: String,
        reason: String,
    },
    #[error("{file}:{line}: {message}")]
    Unbalanced {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: include cycle: {}", chain.join(" -> "))]
    IncludeCycle {
        file: String,
        line: usize,
        /// The files from the outermost to the one included again.
        chain: Vec<String>,
    },
}

impl ImportError {
    pub fn file(&self) -> &str {
        match self {
            ImportError::Read { file, .. }
            | ImportError::Unbalanced { file, .. }
            | ImportError::IncludeCycle { file, .. } => file,
        }
    }

    pub fn line(&self) -> usize {
        match self {
            ImportError::Read { line, .. }
            | ImportError::Unbalanced { line, .. }
            | ImportError::IncludeCycle { line, .. } => *line,
        }
    }
}

/// Collects notes while converting; sorts them by file (in reading order) and line at the end.
#[derive(Debug, Default)]
pub struct Notes {
    files: Vec<String>,
    list: Vec<Note>,
}

impl Notes {
    /// Files sort in the order they are registered (or first noted).
    pub fn register_file(&mut self, file: &str) {
        if !self.files.iter().any(|f| f == file) {
            self.files.push(file.to_owned());
        }
    }

    pub fn push(&mut self, file: &str, line: usize, severity: Severity, message: String) {
        self.register_file(file);
        self.list.push(Note {
            file: file.to_owned(),
            line,
            severity,
            message: message.replace(['\n', '\r'], " "),
        });
    }

    pub fn into_sorted(self) -> Vec<Note> {
        let files = self.files;
        let rank = |f: &str| files.iter().position(|x| x == f).unwrap_or(usize::MAX);
        let mut list = self.list;
        // Stable: notes about one line keep the order they were made in.
        list.sort_by_key(|n| (rank(&n.file), n.line));
        list
    }
}
