//! `cargo xtask bench`: measurements, each a ratio of things measured alternately in one run
//! (this machine is shared and noisy), reported as median with min and max over rounds.

pub mod report;
pub mod xdp;

/// Median, min and max of a sample.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(v: &[f64]) -> Stat {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return Stat::default();
        }
        s.sort_by(f64::total_cmp);
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Stat {
            median,
            min: s[0],
            max: s[s.len() - 1],
        }
    }
}
