//! VRRP timer arithmetic, exactly as the RFCs define it.
//!
//! * v2, RFC 3768 §6.1: `Skew_Time = (256 - Priority) / 256` seconds,
//!   independent of the advertisement interval, and
//!   `Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time`.
//! * v3, RFC 5798 §6.1 / RFC 9568 §6.1 (which renames Master to Active):
//!   `Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256` and
//!   `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`, where
//!   Master_Adver_Interval is learned from the master's adverts.
//!
//! Rounding: the RFCs write the formulas in (centi)seconds but a skew is
//! rarely a whole number of them (priority 100 at 100 ms is 60.9375 ms). We
//! evaluate them in integer nanoseconds and floor once at the end, so a
//! result is at most 1 ns below the exact rational value and is exact
//! whenever that value is a whole number of nanoseconds (every v2 skew,
//! since 10^9 / 256 = 3 906 250 ns). Flooring to whole centiseconds instead
//! would shorten a 60.9375 ms skew to 60 ms and shift the staggering of
//! backups; keepalived computes in microseconds, and the captured keepalived
//! takeovers (609.375 ms + ~1 ms of processing after a priority-0 advert)
//! match the exact value.

use std::time::{Duration, Instant};

use super::packet::Version;

/// Nanoseconds per centisecond.
pub const NANOS_PER_CS: u64 = 10_000_000;
/// Nanoseconds per second.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A centisecond count as a duration.
pub const fn cs_to_duration(cs: u16) -> Duration {
    Duration::from_nanos(cs as u64 * NANOS_PER_CS)
}

/// Skew_Time for a router of `priority` (RFC 3768 §6.1 for v2; RFC 5798
/// §6.1 / RFC 9568 §6.1 for v3, scaled by `master_adver_interval_cs`).
pub const fn skew_time(version: Version, priority: u8, master_adver_interval_cs: u16) -> Duration {
    let weight = 256 - priority as u64;
    let nanos = match version {
        Version::V2 => weight * NANOS_PER_SEC / 256,
        Version::V3 => weight * master_adver_interval_cs as u64 * NANOS_PER_CS / 256,
    };
    Duration::from_nanos(nanos)
}

/// Master_Down_Interval = 3 × interval + Skew_Time (RFC 3768 §6.1 with
/// the configured Advertisement_Interval, which must match the master's;
/// RFC 9568 §6.1 with the learned Master_Adver_Interval).
pub const fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval_cs: u16,
) -> Duration {
    let three = 3 * master_adver_interval_cs as u64 * NANOS_PER_CS;
    let skew = skew_time(version, priority, master_adver_interval_cs);
    Duration::from_nanos(three + skew.as_nanos() as u64)
}

/// Default graceful-handover wait: Skew_Time of the worst possible backup
/// (priority 1) plus one advertisement interval. A backup that heard our
/// priority-0 advert takes over within its Skew_Time (RFC 9568 §6.4.2), and
/// its first advert reaches us within a further interval even with slack
/// for scheduling; waiting longer only prolongs a gap if the priority-0
/// advert was lost.
pub const fn default_handover_timeout(version: Version, adver_interval_cs: u16) -> Duration {
    let skew = skew_time(version, 1, adver_interval_cs);
    Duration::from_nanos(skew.as_nanos() as u64 + adver_interval_cs as u64 * NANOS_PER_CS)
}

/// The advertisement intervals the wire can carry: v2 whole seconds 1..=255 (RFC 3768 §5.3.7,
/// an 8-bit field in seconds), v3 whole centiseconds 1..=4095 (RFC 9568 §5.2.7, a 12-bit
/// field in centiseconds). The one place this rule lives: config validation, the importer and
/// the protocol core all ask here.
pub const fn interval_bounds(version: Version) -> (Duration, Duration, Duration) {
    match version {
        Version::V2 => (
            Duration::from_secs(1),
            Duration::from_secs(255),
            Duration::from_secs(1),
        ),
        Version::V3 => (
            cs_to_duration(1),
            cs_to_duration(super::packet::V3_MAX_INTERVAL_CS),
            cs_to_duration(1),
        ),
    }
}

/// Whether `d` is an interval the wire can carry exactly.
pub fn interval_valid(version: Version, d: Duration) -> bool {
    let (min, max, step) = interval_bounds(version);
    d >= min && d <= max && d.as_nanos().is_multiple_of(step.as_nanos())
}

/// The carried interval nearest to `d` (rounded to the step, clamped to the range).
pub fn nearest_interval(version: Version, d: Duration) -> Duration {
    let (min, max, step) = interval_bounds(version);
    let step_ns = step.as_nanos();
    let steps = (d.as_nanos() + step_ns / 2) / step_ns;
    Duration::from_nanos((steps * step_ns).min(u64::MAX as u128) as u64).clamp(min, max)
}

/// The rule in words, for messages.
pub const fn interval_rule(version: Version) -> &'static str {
    match version {
        Version::V2 => "VRRPv2 intervals are whole seconds, 1s..=255s",
        Version::V3 => "VRRPv3 intervals are 10ms..=40.95s in steps of 10ms",
    }
}

/// The interval in centiseconds as the wire carries it (`d` is normally valid; anything else
/// is clamped and truncated to what the wire can say).
pub fn interval_cs(version: Version, d: Duration) -> u16 {
    let (min, max, step) = interval_bounds(version);
    let d = d.clamp(min, max);
    let steps = d.as_nanos() / step.as_nanos();
    let cs = steps * step.as_nanos() / u128::from(NANOS_PER_CS);
    u16::try_from(cs).unwrap_or(super::packet::V3_MAX_INTERVAL_CS)
}

/// `now + d`. `Instant` addition can only overflow near the end of the
/// platform's time range, centuries away; rather than panic there, the
/// deadline becomes `now` (fires at once), which is safe for every VRRP
/// timer.
pub fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn interval_rule_is_the_wire() {
        use super::*;
        let ms = Duration::from_millis;
        assert!(interval_valid(Version::V3, ms(10)));
        assert!(interval_valid(Version::V3, ms(40_950)));
        assert!(!interval_valid(Version::V3, ms(15)));
        assert!(!interval_valid(Version::V3, ms(40_960)));
        assert!(interval_valid(Version::V2, Duration::from_secs(1)));
        assert!(!interval_valid(Version::V2, ms(1500)));
        assert!(!interval_valid(Version::V2, Duration::from_secs(256)));
        assert_eq!(
            nearest_interval(Version::V2, ms(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            nearest_interval(Version::V2, ms(10)),
            Duration::from_secs(1)
        );
        assert_eq!(nearest_interval(Version::V3, ms(14)), ms(10));
        assert_eq!(
            nearest_interval(Version::V3, Duration::from_secs(60)),
            ms(40_950)
        );
        assert_eq!(interval_cs(Version::V3, ms(100)), 10);
        assert_eq!(interval_cs(Version::V2, Duration::from_secs(3)), 300);
        assert_eq!(interval_cs(Version::V2, ms(1500)), 100);
    }

    use super::*;

    const MS: u64 = 1_000_000;

    fn ns(d: Duration) -> u128 {
        d.as_nanos()
    }

    #[test]
    fn v3_100ms_priority_100() {
        // (256 - 100) * 10 cs / 256 = 6.09375 cs = 60 937 500 ns exactly.
        assert_eq!(ns(skew_time(Version::V3, 100, 10)), 60_937_500);
        assert_eq!(ns(master_down_interval(Version::V3, 100, 10)), 360_937_500);
    }

    #[test]
    fn v3_10ms_priority_100() {
        assert_eq!(ns(skew_time(Version::V3, 100, 1)), 6_093_750);
        assert_eq!(ns(master_down_interval(Version::V3, 100, 1)), 36_093_750);
    }

    #[test]
    fn v3_1s_priority_150_and_100() {
        // 106 * 100 cs / 256 = 41.40625 cs; 156 * 100 / 256 = 60.9375 cs.
        assert_eq!(ns(skew_time(Version::V3, 150, 100)), 414_062_500);
        assert_eq!(
            ns(master_down_interval(Version::V3, 150, 100)),
            3_414_062_500
        );
        assert_eq!(ns(skew_time(Version::V3, 100, 100)), 609_375_000);
    }

    #[test]
    fn v2_skew_ignores_interval() {
        // RFC 3768: (256 - Priority) / 256 s whatever the interval.
        assert_eq!(ns(skew_time(Version::V2, 100, 100)), 609_375_000);
        assert_eq!(ns(skew_time(Version::V2, 100, 300)), 609_375_000);
        assert_eq!(
            ns(master_down_interval(Version::V2, 100, 100)),
            3_609_375_000
        );
        assert_eq!(
            ns(master_down_interval(Version::V2, 100, 300)),
            9_609_375_000
        );
        assert_eq!(
            ns(master_down_interval(Version::V2, 150, 100)),
            3_414_062_500
        );
    }

    #[test]
    fn extremes_and_rounding() {
        // Owner priority: 1/256 of an interval.
        assert_eq!(ns(skew_time(Version::V3, 255, 10)), 390_625);
        assert_eq!(ns(skew_time(Version::V2, 255, 100)), 3_906_250);
        // 255 * 40.95 s / 256 = 40 790 039 062.5 ns: floored by 0.5 ns.
        assert_eq!(ns(skew_time(Version::V3, 1, 4095)), 40_790_039_062);
        assert_eq!(
            ns(master_down_interval(Version::V3, 1, 4095)),
            3 * 40_950 * MS as u128 + 40_790_039_062
        );
        // 255 * 10 ms / 256 = 9 960 937.5 ns: floored.
        assert_eq!(ns(skew_time(Version::V3, 1, 1)), 9_960_937);
    }

    #[test]
    fn handover_timeout_defaults() {
        // v3 100 ms: 255 * 100 / 256 = 99.609375 ms + 100 ms.
        assert_eq!(ns(default_handover_timeout(Version::V3, 10)), 199_609_375);
        // v2 1 s: 996.09375 ms + 1 s.
        assert_eq!(
            ns(default_handover_timeout(Version::V2, 100)),
            1_996_093_750
        );
    }

    #[test]
    fn skew_strictly_decreases_with_priority() {
        // The staggering that makes the best backup fire first.
        for version in [Version::V2, Version::V3] {
            for p in 1..255u8 {
                assert!(skew_time(version, p, 1) > skew_time(version, p + 1, 1));
            }
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(cs_to_duration(10), Duration::from_millis(100));
        assert_eq!(cs_to_duration(4095), Duration::from_millis(40_950));
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_millis(5)),
            now + Duration::from_millis(5)
        );
        assert_eq!(deadline(now, Duration::MAX), now);
    }
}
