//! Golden tests: every `tests/import/golden/NAME.conf` imports to exactly `tests/import/golden/NAME.yaml`.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the YAML files (review the diff).

use std::{
    fs,
    path::{Path, PathBuf},
};

use lb_agent::config::{
    import::{import_file, to_yaml},
    schema,
};

const DIR: &str = "tests/import/golden";

/// The golden inputs, sorted. Paths stay relative so that notes name files the same way on
/// every machine (cargo runs tests from the package root).
fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| Path::new(DIR).join(e.file_name()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn there_are_enough_cases() {
    let names: Vec<String> = cases().iter().map(|p| p.display().to_string()).collect();
    assert!(names.len() >= 7, "only {names:?}");
}

#[test]
fn golden_outputs_match() {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for conf in cases() {
        let report = match import_file(&conf) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: import failed: {e}", conf.display()));
                continue;
            }
        };
        let got = to_yaml(&report);
        let golden = conf.with_extension("yaml");
        if update {
            if let Err(e) = fs::write(&golden, &got) {
                failures.push(format!("{}: {e}", golden.display()));
            }
            continue;
        }
        let want = fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failures.push(format!(
                "{} differs from {} at line {}:\n  got:  {:?}\n  want: {:?}",
                conf.display(),
                golden.display(),
                line + 1,
                got.lines().nth(line).unwrap_or("<end>"),
                want.lines().nth(line).unwrap_or("<end>"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 cargo test --test golden rewrites them)",
        failures.join("\n")
    );
}

#[test]
fn golden_yaml_parses_back_into_the_schema() {
    for conf in cases() {
        let golden = conf.with_extension("yaml");
        let text = fs::read_to_string(&golden).unwrap_or_default();
        let parsed: schema::File =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        let report = import_file(&conf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, report.file, "{}", golden.display());
    }
}

#[test]
fn every_note_names_an_existing_line() {
    for conf in cases() {
        let report = import_file(&conf).unwrap_or_else(|e| panic!("{e}"));
        for n in &report.notes {
            let text = fs::read_to_string(&n.file).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert!(
                n.line >= 1 && n.line <= text.lines().count(),
                "{n}: no such line"
            );
        }
    }
}

#[test]
fn golden_yaml_passes_lb_agent_check() {
    for conf in cases() {
        let yaml = conf.with_extension("yaml");
        let text = fs::read_to_string(&yaml).unwrap_or_default();
        if let Err(e) = lb_agent::config::parse(&text, &yaml.display().to_string()) {
            panic!("{e}");
        }
    }
}
