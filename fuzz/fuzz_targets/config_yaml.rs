//! The YAML configuration: whoever can write the config file (or feed `lb-agent check`)
//! chooses these bytes. `config::parse` must answer Ok or Err, never panic, and an error must
//! render (the located messages go to the operator).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Real configs are a few KiB; this bounds the work per input.
const MAX_INPUT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(data);
    match lb_agent::config::parse(&text, "fuzz.yaml") {
        Ok(cfg) => {
            // What `lb-agent check` prints for a valid config.
            let _ = lb_agent::config::summary(&cfg);
        }
        Err(e) => {
            let rendered = e.to_string();
            assert!(
                rendered.starts_with("fuzz.yaml: "),
                "an error names the file: {rendered}"
            );
            assert!(!e.problems.is_empty(), "an error has at least one problem");
        }
    }
});
