//! The keepalived.conf importer (`lb-agent import-keepalived`): the file comes from wherever the
//! operator found it. `import_str` must answer Ok or Err, never panic, and what it produces must
//! always be valid YAML of our schema (`config::parse_schema`): an importer that writes a file
//! `lb-agent` then refuses to read is a bug even when the input was nonsense.
//!
//! Built only with the `import` feature (`required-features`), i.e. once
//! `lb_agent::config::import` exists; `cargo xtask fuzz` enables it when it does.
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
            let yaml = import::to_yaml(&report);
            if let Err(e) = config::parse_schema(&yaml, "imported.yaml") {
                panic!("the importer wrote YAML that lb-agent refuses:\n{e}\n--- yaml ---\n{yaml}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
