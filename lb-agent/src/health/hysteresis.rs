//! Rise/fall hysteresis for one real server.
//!
//! This is deliberately a pure state machine with no clock and no I/O: the scheduler feeds it
//! one combined result per check round, and it answers whether the real changed state. Keeping
//! it pure makes the traffic-affecting decision (when does a real enter or leave the Maglev
//! table) testable exhaustively without sockets or timers.

use std::fmt;

/// Health state of a real as seen by its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No check has completed yet. A real in this state must not receive traffic: the agent
    /// adds reals before their first check so they are never sent traffic unchecked.
    Unknown,
    /// The checks pass (after `rise` consecutive successes, or the very first success).
    Up,
    /// The checks fail (after `fall` consecutive failures, or the very first failure).
    Down,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        })
    }
}

/// A state change decided by one result, with that result's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Reason of the deciding result (e.g. `"HTTP 503"`), so the operator sees *why* a real
    /// flipped, not only that it did.
    pub reason: String,
}

/// Rise/fall counter with keepalived/HAProxy semantics.
///
/// * The state starts [`State::Unknown`] and the first result decides it immediately (one
///   success makes it `Up`, one failure `Down`). Waiting `rise` rounds before a new real can
///   take traffic would slow startup and reloads for no safety gain: the real has been checked
///   once either way, and it gets no traffic while `Unknown`.
/// * Afterwards `rise` consecutive successes are needed to go `Up` from `Down`, and `fall`
///   consecutive failures to go `Down` from `Up`. Any result agreeing with the current state
///   resets the opposite streak, so alternating input never changes the state when
///   `rise, fall > 1` (a flapping real is not flapped in the data plane).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    state: State,
    /// Consecutive results that disagree with `state` (successes while `Down`, failures while
    /// `Up`). Always zero while `Unknown`.
    streak: u32,
}

impl Hysteresis {
    /// New counter in [`State::Unknown`]. `rise` and `fall` of 0 are treated as 1 (a threshold
    /// of zero results has no meaning; config validation rejects it before it gets here).
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            state: State::Unknown,
            streak: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn rise(&self) -> u32 {
        self.rise
    }

    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Change thresholds on a config reload without forgetting the state, so a reload does not
    /// pull healthy reals out of service. A streak already at or past a lowered threshold
    /// completes on the next disagreeing result.
    pub fn set_thresholds(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// Feed one result; returns the transition if this result changed the state.
    pub fn observe(&mut self, ok: bool, reason: &str) -> Option<Transition> {
        let target = if ok { State::Up } else { State::Down };
        let from = self.state;
        match from {
            State::Unknown => {
                self.state = target;
                self.streak = 0;
            }
            s if s == target => {
                // Agreeing result: any partial streak towards the other state is void.
                self.streak = 0;
                return None;
            }
            _ => {
                self.streak = self.streak.saturating_add(1);
                let needed = if ok { self.rise } else { self.fall };
                if self.streak < needed {
                    return None;
                }
                self.state = target;
                self.streak = 0;
            }
        }
        Some(Transition {
            from,
            to: target,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut Hysteresis, input: &[bool]) -> Vec<Option<(State, State)>> {
        input
            .iter()
            .map(|&ok| h.observe(ok, "r").map(|t| (t.from, t.to)))
            .collect()
    }

    #[test]
    fn first_success_is_up_immediately() {
        let mut h = Hysteresis::new(3, 3);
        assert_eq!(h.state(), State::Unknown);
        let t = h.observe(true, "HTTP 200");
        assert_eq!(
            t,
            Some(Transition {
                from: State::Unknown,
                to: State::Up,
                reason: "HTTP 200".into()
            })
        );
        assert_eq!(h.state(), State::Up);
    }

    #[test]
    fn first_failure_is_down_immediately() {
        let mut h = Hysteresis::new(3, 3);
        let t = h.observe(false, "connection refused");
        assert_eq!(
            t.map(|t| (t.from, t.to, t.reason)),
            Some((State::Unknown, State::Down, "connection refused".into()))
        );
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn fall_exactly() {
        let mut h = Hysteresis::new(2, 3);
        h.observe(true, "ok");
        // Two failures are not enough, the third one is.
        assert_eq!(feed(&mut h, &[false, false]), vec![None, None]);
        assert_eq!(h.state(), State::Up);
        let t = h
            .observe(false, "HTTP 503")
            .map(|t| (t.from, t.to, t.reason));
        assert_eq!(t, Some((State::Up, State::Down, "HTTP 503".into())));
        assert_eq!(h.state(), State::Down);
    }

    #[test]
    fn rise_exactly() {
        let mut h = Hysteresis::new(4, 2);
        h.observe(false, "down");
        assert_eq!(feed(&mut h, &[true, true, true]), vec![None, None, None]);
        assert_eq!(h.state(), State::Down);
        assert_eq!(feed(&mut h, &[true]), vec![Some((State::Down, State::Up))]);
        // Further successes do not report again.
        assert_eq!(feed(&mut h, &[true, true]), vec![None, None]);
    }

    #[test]
    fn opposite_result_resets_streak() {
        let mut h = Hysteresis::new(2, 3);
        h.observe(true, "ok");
        // F F S F F: the success in the middle restarts the failure count.
        assert_eq!(
            feed(&mut h, &[false, false, true, false, false]),
            vec![None; 5]
        );
        assert_eq!(h.state(), State::Up);
        assert_eq!(feed(&mut h, &[false]), vec![Some((State::Up, State::Down))]);
        // S F S: the failure restarts the success count.
        assert_eq!(feed(&mut h, &[true, false, true]), vec![None; 3]);
        assert_eq!(h.state(), State::Down);
        assert_eq!(feed(&mut h, &[true]), vec![Some((State::Down, State::Up))]);
    }

    #[test]
    fn flapping_never_changes_state() {
        for (rise, fall) in [(2, 2), (2, 5), (5, 2), (3, 3)] {
            for start in [true, false] {
                let mut h = Hysteresis::new(rise, fall);
                h.observe(start, "first");
                let expect = h.state();
                let input: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
                assert!(feed(&mut h, &input).iter().all(Option::is_none));
                assert_eq!(h.state(), expect, "rise={rise} fall={fall}");
            }
        }
    }

    #[test]
    fn rise_fall_of_one_follow_every_result() {
        let mut h = Hysteresis::new(1, 1);
        let got = feed(&mut h, &[true, false, true, true, false]);
        assert_eq!(
            got,
            vec![
                Some((State::Unknown, State::Up)),
                Some((State::Up, State::Down)),
                Some((State::Down, State::Up)),
                None,
                Some((State::Up, State::Down)),
            ]
        );
    }

    #[test]
    fn zero_thresholds_are_clamped() {
        let mut h = Hysteresis::new(0, 0);
        assert_eq!((h.rise(), h.fall()), (1, 1));
        h.observe(true, "ok");
        assert!(h.observe(false, "x").is_some());
    }

    #[test]
    fn set_thresholds_keeps_state_and_streak() {
        let mut h = Hysteresis::new(1, 5);
        h.observe(true, "ok");
        assert_eq!(feed(&mut h, &[false, false]), vec![None, None]);
        // Lower fall to 2 on reload: the streak (2) already reached it, so the next failure
        // completes it; the state itself is untouched by the reload.
        h.set_thresholds(1, 2);
        assert_eq!(h.state(), State::Up);
        assert_eq!(feed(&mut h, &[false]), vec![Some((State::Up, State::Down))]);
    }
}
