//! `FILE_CHECK`: the real's state from a number in a file (an operator's or an orchestrator's
//! switch). With a non-zero `weight`, the number times the weight is the real's weight and 0
//! or less is down; with weight 0 the file holds a status: 0 is up, anything else down. A
//! missing or unreadable file reads as 0, so removing it takes the real out unless the
//! weight is 0.

use std::path::PathBuf;

use tokio::time::Instant;

use super::probe::Outcome;

/// `FILE_CHECK` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    pub path: PathBuf,
    pub weight: i64,
    /// Negate the number first (keepalived's `reverse`).
    pub reverse: bool,
}

/// The number a track file holds: its first token as an integer; 0 when the file is missing,
/// empty or not a number.
pub fn read_value(text: Option<&str>) -> i64 {
    text.and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The verdict for the number `value`: up (with a weight for weighted checks) or down.
pub fn judge(c: &FileCheck, value: i64) -> Result<Option<u32>, String> {
    if c.weight == 0 {
        // A status: 0 is fine (reversed: 0 is the failure).
        return if (value == 0) != c.reverse {
            Ok(None)
        } else {
            Err(format!("{} says {value}", c.path.display()))
        };
    }
    let v = if c.reverse {
        value.saturating_neg()
    } else {
        value
    };
    let w = v.saturating_mul(c.weight);
    if w <= 0 {
        Err(format!("{} says {value} (weight {w})", c.path.display()))
    } else {
        Ok(Some(u32::try_from(w).unwrap_or(u32::MAX)))
    }
}

pub async fn check(c: &FileCheck) -> Outcome {
    let start = Instant::now();
    let text = tokio::fs::read_to_string(&c.path).await.ok();
    let value = read_value(text.as_deref());
    match judge(c, value) {
        Ok(weight) => {
            let mut out = Outcome::up(
                format!("{} says {value}", c.path.display()),
                start.elapsed(),
            );
            out.weight = weight;
            out
        }
        Err(reason) => Outcome::down(reason, start.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(weight: i64, reverse: bool) -> FileCheck {
        FileCheck {
            path: "/run/lb/r1".into(),
            weight,
            reverse,
        }
    }

    #[test]
    fn numbers_weights_and_statuses() {
        assert_eq!(read_value(Some("5\n")), 5);
        assert_eq!(read_value(Some("  -3 trailing")), -3);
        assert_eq!(read_value(Some("x")), 0);
        assert_eq!(read_value(None), 0);
        assert_eq!(judge(&cfg(1, false), 5), Ok(Some(5)));
        assert_eq!(judge(&cfg(10, false), 3), Ok(Some(30)));
        assert!(judge(&cfg(1, false), 0).is_err(), "0 is down");
        assert!(judge(&cfg(1, false), -2).is_err());
        assert_eq!(judge(&cfg(1, true), -4), Ok(Some(4)));
        assert_eq!(judge(&cfg(0, false), 0), Ok(None), "status: 0 is up");
        assert!(judge(&cfg(0, false), 1).is_err());
        assert!(
            judge(&cfg(0, true), 0).is_err(),
            "reversed status: 0 is down"
        );
    }
}
