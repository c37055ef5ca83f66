//! What a tracked condition (interface, script, service quorum) does to an instance, with
//! keepalived's semantics: weight 0 means a failure faults the instance; a positive weight is
//! added while the condition holds, a negative one while it fails. The result is an effective
//! priority, or a fault.

use crate::vrrp::state::{MAX_BACKUP_PRIORITY, OWNER_PRIORITY};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracked {
    Fault,
    Add(i32),
}

/// The effect of one tracked condition that is `ok` or not, with `weight`.
pub fn tracked(ok: bool, weight: i32) -> Tracked {
    match (ok, weight) {
        (false, 0) => Tracked::Fault,
        (true, w) if w > 0 => Tracked::Add(w),
        (false, w) if w < 0 => Tracked::Add(w),
        _ => Tracked::Add(0),
    }
}

/// The effect of a tracked file holding `value` (keepalived's `track_file`): with weight 0 a
/// status (non-zero fails; reversed, zero fails); otherwise the value (negated when reversed)
/// times the weight is added, and below -253 it is a fault.
pub fn tracked_file(value: i64, weight: i32, reverse: bool) -> Tracked {
    if weight == 0 {
        return if (value != 0) != reverse {
            Tracked::Fault
        } else {
            Tracked::Add(0)
        };
    }
    let v = if reverse {
        value.saturating_neg()
    } else {
        value
    };
    let r = v.saturating_mul(i64::from(weight));
    if r < -253 {
        Tracked::Fault
    } else {
        Tracked::Add(r.min(253) as i32)
    }
}

/// Effective priority from the base and every tracked effect; None = fault. The address
/// owner is not adjusted; others stay within 1..=254 (255 belongs to the owner, 0 means
/// "leaving").
pub fn effective_priority(base: u8, effects: &[Tracked]) -> Option<u8> {
    let mut p = i32::from(base);
    for e in effects {
        match e {
            Tracked::Fault => return None,
            Tracked::Add(w) => p += w,
        }
    }
    if base == OWNER_PRIORITY {
        return Some(OWNER_PRIORITY);
    }
    Some(p.clamp(1, i32::from(MAX_BACKUP_PRIORITY)) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_track_file_rules() {
        assert_eq!(tracked_file(0, 0, false), Tracked::Add(0));
        assert_eq!(tracked_file(1, 0, false), Tracked::Fault);
        assert_eq!(tracked_file(0, 0, true), Tracked::Fault, "reversed status");
        assert_eq!(tracked_file(7, 0, true), Tracked::Add(0));
        assert_eq!(tracked_file(3, 10, false), Tracked::Add(30));
        assert_eq!(tracked_file(3, -10, false), Tracked::Add(-30));
        assert_eq!(tracked_file(3, 10, true), Tracked::Add(-30));
        assert_eq!(tracked_file(-2, 200, false), Tracked::Fault, "below -253");
        assert_eq!(tracked_file(9, 100, false), Tracked::Add(253));
    }

    #[test]
    fn keepalived_weight_rules() {
        assert_eq!(tracked(false, 0), Tracked::Fault);
        assert_eq!(tracked(true, 0), Tracked::Add(0));
        assert_eq!(tracked(true, 10), Tracked::Add(10));
        assert_eq!(tracked(false, 10), Tracked::Add(0));
        assert_eq!(tracked(false, -30), Tracked::Add(-30));
        assert_eq!(tracked(true, -30), Tracked::Add(0));
        assert_eq!(
            effective_priority(100, &[Tracked::Add(-30), Tracked::Add(5)]),
            Some(75)
        );
        assert_eq!(effective_priority(100, &[Tracked::Add(-300)]), Some(1));
        assert_eq!(effective_priority(250, &[Tracked::Add(10)]), Some(254));
        assert_eq!(effective_priority(255, &[Tracked::Add(-10)]), Some(255));
        assert_eq!(
            effective_priority(100, &[Tracked::Add(5), Tracked::Fault]),
            None
        );
    }
}
