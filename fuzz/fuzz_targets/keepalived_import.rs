//! The keepalived.conf importer (`lb-agent import-keepalived`): the file comes from wherever the
//! operator found it. `import_str` must answer Ok or Err, never panic, and what it writes must
//! always be YAML of our schema (`config::parse_schema`) that reads back as exactly the
//! configuration the importer built (the notes are comments): an importer that writes a file
//! `lb-agent` then refuses, or reads differently, is a bug even when the input was nonsense.
#![no_main]

use lb_agent::config::{self, import};
use libfuzzer_sys::fuzz_target;

/// Real keepalived.conf files are a few KiB; this bounds the work per input.
const MAX_INPUT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(data);
    match import::import_str(&text, "fuzz.conf") {
        Ok(report) => {
            for note in &report.notes {
                let _ = note.to_string();
            }
            let yaml = import::to_yaml(&report);
            match config::parse_schema(&yaml, "imported.yaml") {
                Ok(file) => assert!(
                    file == report.file,
                    "the importer's YAML reads back differently:\n--- yaml ---\n{yaml}\n\
                     --- built ---\n{:#?}\n--- read back ---\n{file:#?}",
                    report.file
                ),
                Err(e) => {
                    panic!(
                        "the importer wrote YAML that lb-agent refuses:\n{e}\n--- yaml ---\n{yaml}"
                    )
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
