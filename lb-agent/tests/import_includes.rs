//! Reading files: includes, cycles, errors with their file and line.

use std::path::Path;

use lb_agent::config::import::{import_file, import_str, ImportError, Severity};

#[test]
fn include_cycle_is_an_error_with_the_chain() {
    let err = import_file(Path::new("tests/import/fixtures/cycle/a.conf"));
    match err {
        Err(ImportError::IncludeCycle { file, line, chain }) => {
            assert_eq!(file, "tests/import/fixtures/cycle/b.conf");
            assert_eq!(line, 2);
            assert_eq!(
                chain,
                vec![
                    "tests/import/fixtures/cycle/a.conf",
                    "tests/import/fixtures/cycle/b.conf",
                    "tests/import/fixtures/cycle/sub/../a.conf",
                ]
            );
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn a_file_including_itself_is_a_cycle() {
    let err = import_file(Path::new("tests/import/fixtures/self/self.conf"));
    assert!(
        matches!(&err, Err(ImportError::IncludeCycle { line: 2, .. })),
        "{err:?}"
    );
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.starts_with("tests/import/fixtures/self/self.conf:2: include cycle"),
        "{msg}"
    );
}

#[test]
fn unclosed_block_in_an_included_file_names_that_file() {
    let err = import_file(Path::new("tests/import/fixtures/unbalanced/main.conf"));
    match err {
        Err(e @ ImportError::Unbalanced { .. }) => {
            assert_eq!(e.file(), "tests/import/fixtures/unbalanced/part.conf");
            assert_eq!(e.line(), 1);
        }
        other => panic!("expected unbalanced braces, got {other:?}"),
    }
}

#[test]
fn missing_main_file_is_a_read_error() {
    let err = import_file(Path::new("tests/import/fixtures/no-such-file.conf"));
    assert!(
        matches!(&err, Err(ImportError::Read { line: 0, .. })),
        "{err:?}"
    );
}

#[test]
fn import_str_reports_includes_instead_of_reading_them() {
    let r = import_str("include /etc/keepalived/conf.d/*.conf\n", "kc");
    let notes = r.map(|r| r.notes).unwrap_or_default();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].severity, Severity::Warning);
    assert_eq!((notes[0].file.as_str(), notes[0].line), ("kc", 1));
}

#[test]
fn extra_closing_brace_has_its_line() {
    let err = import_str("global_defs {\n  router_id a\n}\n}\n", "x.conf");
    assert_eq!(
        err.err().map(|e| e.to_string()),
        Some("x.conf:4: `}` closes no block".to_string())
    );
}
