//! The YAML the user gets: a comment header with every note, then the configuration.

use std::fmt::Write as _;

use super::report::{Report, Severity};

/// The report as lb YAML. The notes are comments, so the text parses back into
/// `schema::File` unchanged.
pub fn to_yaml(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("# lb configuration imported from keepalived (lb-agent import-keepalived).\n");
    let count = |sev| report.notes.iter().filter(|n| n.severity == sev).count();
    if report.notes.is_empty() {
        out.push_str("# No notes: every directive was imported as it was.\n");
    } else {
        let _ = writeln!(
            out,
            "# {} note(s): {} unsupported (not imported), {} converted, {} warning(s).",
            report.notes.len(),
            count(Severity::Unsupported),
            count(Severity::Converted),
            count(Severity::Warning),
        );
        out.push_str("# Review them before running lb-agent with this file.\n#\n");
        for n in &report.notes {
            let line = format!("{}:{}: {}: {}", n.file, n.line, n.severity, n.message);
            let _ = writeln!(out, "# {}", comment_safe(&line));
        }
    }
    out.push('\n');
    match serde_yaml::to_string(&report.file) {
        Ok(y) => out.push_str(&y),
        Err(e) => {
            let _ = writeln!(out, "# cannot write the configuration: {e}");
        }
    }
    out
}

/// A YAML comment runs to the end of the line and may hold only printable characters: escape
/// the rest (control characters, line and paragraph separators, byte order marks).
fn comment_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(
            comment_safe("a\nb\u{85}c\u{2028}\td"),
            "a\\u{a}b\\u{85}c\\u{2028}\td"
        );
    }
}
