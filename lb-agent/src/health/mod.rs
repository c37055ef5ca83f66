//! Real-server health checks.

/// Checks that `re` compiles as a body regex (used by config validation).
pub fn validate_regex(re: &str) -> Result<(), String> {
    regex::Regex::new(re)
        .map(|_| ())
        .map_err(|e| format!("invalid regex: {e}"))
}
