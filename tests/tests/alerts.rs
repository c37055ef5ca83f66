//! The shipped Prometheus rules (docs/monitoring/alerts.yaml): `promtool check rules` accepts
//! them and `promtool test rules` shows each alert firing on the situation it names and not on
//! a healthy one. Which metric names they may use is checked against the agent's exposition by
//! a unit test in `control::metrics`.

use std::{path::PathBuf, process::Command};

use lb_tests::netns::outcome;

fn monitoring() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring")
}

fn promtool(args: &[&str]) -> (bool, String) {
    outcome(
        Command::new("promtool")
            .args(args)
            .current_dir(monitoring()),
    )
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 11 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yaml"]);
    assert!(ok, "{out}");
}
