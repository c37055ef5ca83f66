//! Reading the configuration: the main file and, in place of each `include PATTERN` line, the
//! files the pattern matches (relative to the directory of the file that includes them, as
//! keepalived does), recursively, refusing cycles.

use std::{
    fs,
    path::{Path, PathBuf},
    rc::Rc,
};

use super::ast::SourceLine;
use super::glob;
use super::lexer::{self, Line};
use super::report::{ImportError, Notes, Severity};

/// keepalived's `include` and its stricter variants.
const INCLUDE_WORDS: [&str; 6] = [
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// The lines of all files, includes spliced in, and the notes made while reading.
pub struct Loaded {
    pub lines: Vec<SourceLine>,
    pub notes: Notes,
}

/// Reads `path` and everything it includes.
pub fn load_file(path: &Path) -> Result<Loaded, ImportError> {
    let name = path.display().to_string();
    let mut ctx = Ctx {
        lines: Vec::new(),
        notes: Notes::default(),
        stack: Vec::new(),
    };
    let text = read(path).map_err(|reason| ImportError::Read {
        file: name.clone(),
        line: 0,
        path: name.clone(),
        reason,
    })?;
    ctx.file(&name, path, text)?;
    Ok(Loaded {
        lines: ctx.lines,
        notes: ctx.notes,
    })
}

/// Lexes `text`, named `name`; `include` lines are reported, not followed.
pub fn load_str(text: &str, name: &str) -> Loaded {
    let file: Rc<str> = Rc::from(name);
    let mut notes = Notes::default();
    notes.register_file(name);
    let (lines, lex_notes) = lexer::lex(text);
    for n in lex_notes {
        notes.push(name, n.line, n.severity, n.message);
    }
    let mut out = Vec::new();
    for line in lines {
        if let Some(pattern) = include_pattern(&line, name, &mut notes) {
            if let Some(pattern) = pattern {
                notes.push(
                    name,
                    line.number,
                    Severity::Warning,
                    format!(
                        "`include {pattern}`: not followed (the configuration was given as text); \
                         import the file instead"
                    ),
                );
            }
            continue;
        }
        out.push(SourceLine {
            file: file.clone(),
            line,
        });
    }
    Loaded { lines: out, notes }
}

/// `Some(Some(pattern))` for an include line, `Some(None)` for a malformed one (reported),
/// `None` for any other line.
fn include_pattern(line: &Line, file: &str, notes: &mut Notes) -> Option<Option<String>> {
    let first = match line.tokens.first().map(|t| &t.kind) {
        Some(lexer::TokenKind::Word(w)) if INCLUDE_WORDS.contains(&w.as_str()) => w.clone(),
        _ => return None,
    };
    match line.words().as_deref() {
        Some([_, pattern]) => Some(Some((*pattern).to_owned())),
        _ => {
            notes.push(
                file,
                line.number,
                Severity::Warning,
                format!(
                    "`{first}` needs exactly one file pattern on its line (quote a pattern that \
                     has spaces); line ignored, as keepalived does"
                ),
            );
            Some(None)
        }
    }
}

/// The text of `path`; whether invalid UTF-8 had to be replaced.
fn read(path: &Path) -> Result<(String, bool), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    })
}

struct Ctx {
    lines: Vec<SourceLine>,
    notes: Notes,
    /// Canonical paths of the files being read, outermost first, with their display names.
    stack: Vec<(PathBuf, String)>,
}

impl Ctx {
    fn file(
        &mut self,
        name: &str,
        path: &Path,
        (text, lossy): (String, bool),
    ) -> Result<(), ImportError> {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push((canonical, name.to_owned()));
        self.notes.register_file(name);
        if lossy {
            self.notes.push(
                name,
                0,
                Severity::Warning,
                "the file is not valid UTF-8; invalid bytes were replaced by U+FFFD".into(),
            );
        }
        let file: Rc<str> = Rc::from(name);
        let (lines, lex_notes) = lexer::lex(&text);
        for n in lex_notes {
            self.notes.push(name, n.line, n.severity, n.message);
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for line in lines {
            match include_pattern(&line, name, &mut self.notes) {
                None => self.lines.push(SourceLine {
                    file: file.clone(),
                    line,
                }),
                Some(None) => {}
                Some(Some(pattern)) => self.include(name, line.number, &dir, &pattern)?,
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn include(
        &mut self,
        from: &str,
        line: usize,
        dir: &Path,
        pattern: &str,
    ) -> Result<(), ImportError> {
        let matches = glob::glob(dir, pattern).map_err(|e| ImportError::Read {
            file: from.to_owned(),
            line,
            path: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        if matches.is_empty() {
            self.notes.push(
                from,
                line,
                Severity::Warning,
                format!("`include {pattern}`: no file matches (keepalived goes on without it)"),
            );
        }
        for path in matches {
            let name = path.display().to_string();
            let canonical = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if let Some(pos) = self.stack.iter().position(|(c, _)| *c == canonical) {
                let mut chain: Vec<String> =
                    self.stack[pos..].iter().map(|(_, n)| n.clone()).collect();
                chain.push(name);
                return Err(ImportError::IncludeCycle {
                    file: from.to_owned(),
                    line,
                    chain,
                });
            }
            let text = read(&path).map_err(|reason| ImportError::Read {
                file: from.to_owned(),
                line,
                path: name.clone(),
                reason,
            })?;
            self.file(&name, &path, text)?;
        }
        Ok(())
    }
}
