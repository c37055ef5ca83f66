//! Reading keepalived values (numbers, timers, booleans, addresses) off a statement, with a note
//! for every value that cannot be used and for every word that is left over.

use std::{net::IpAddr, str::FromStr, time::Duration};

use super::super::duration;
use super::ast::Stmt;
use super::report::{Notes, Severity};

/// Notes about a statement.
pub trait NoteAt {
    fn at(&mut self, s: &Stmt, severity: Severity, message: String);

    fn unsupported(&mut self, s: &Stmt, message: String) {
        self.at(s, Severity::Unsupported, message);
    }
    fn converted(&mut self, s: &Stmt, message: String) {
        self.at(s, Severity::Converted, message);
    }
    fn warning(&mut self, s: &Stmt, message: String) {
        self.at(s, Severity::Warning, message);
    }
    /// A keyword lb does not import, with the reason (or a generic one).
    fn not_imported(&mut self, s: &Stmt, why: Option<&str>) {
        let why = why.unwrap_or("not supported by lb (or not a keepalived keyword here)");
        let what = if s.block.is_some() {
            format!("`{}` block", s.keyword)
        } else {
            format!("`{}`", s.keyword)
        };
        self.unsupported(s, format!("{what}: {why}; not imported"));
    }
}

impl NoteAt for Notes {
    fn at(&mut self, s: &Stmt, severity: Severity, message: String) {
        self.push(&s.file, s.line, severity, message);
    }
}

/// Reports a `{ }` block after a keyword that takes none.
pub fn no_block(s: &Stmt, n: &mut Notes) {
    if let Some(b) = &s.block {
        n.warning(
            s,
            format!(
                "`{}` takes no `{{ }}` block; the {} statement(s) in it are ignored",
                s.keyword,
                b.len()
            ),
        );
    }
}

/// The block of `s`, or a note that it has none.
pub fn block<'a>(s: &'a Stmt, n: &mut Notes) -> Option<&'a [Stmt]> {
    match &s.block {
        Some(b) => Some(b),
        None => {
            n.warning(s, format!("`{}` needs a `{{ }}` block; ignored", s.text()));
            None
        }
    }
}

/// The single value of `keyword value`; extra words are reported.
pub fn value<'a>(s: &'a Stmt, n: &mut Notes) -> Option<&'a str> {
    no_block(s, n);
    match s.args.as_slice() {
        [] => {
            n.warning(s, format!("`{}` needs a value; ignored", s.keyword));
            None
        }
        [v, ..] if v.is_empty() => {
            n.warning(s, format!("`{}`: the value is empty; ignored", s.keyword));
            None
        }
        [v] => Some(v),
        [v, rest @ ..] => {
            n.warning(
                s,
                format!(
                    "`{} {v}`: extra word(s) `{}` ignored",
                    s.keyword,
                    rest.join(" ")
                ),
            );
            Some(v)
        }
    }
}

/// A keyword that takes no value (`nopreempt`); extra words are reported.
pub fn flag(s: &Stmt, n: &mut Notes) {
    no_block(s, n);
    if !s.args.is_empty() {
        n.warning(
            s,
            format!(
                "`{}`: extra word(s) `{}` ignored",
                s.keyword,
                s.args.join(" ")
            ),
        );
    }
}

fn parsed<T: FromStr>(s: &Stmt, n: &mut Notes, what: &str) -> Option<T> {
    let v = value(s, n)?;
    match v.parse() {
        Ok(x) => Some(x),
        Err(_) => {
            n.warning(s, format!("`{} {v}`: not {what}; ignored", s.keyword));
            None
        }
    }
}

pub fn u32_in(s: &Stmt, n: &mut Notes, lo: u32, hi: u32) -> Option<u32> {
    let v: u32 = parsed(s, n, "a whole number")?;
    if !(lo..=hi).contains(&v) {
        n.warning(
            s,
            format!("`{} {v}`: out of range {lo}..={hi}; ignored", s.keyword),
        );
        return None;
    }
    Some(v)
}

pub fn i32_in(s: &Stmt, n: &mut Notes, lo: i32, hi: i32) -> Option<i32> {
    let v: i32 = parsed(s, n, "a whole number")?;
    if !(lo..=hi).contains(&v) {
        n.warning(
            s,
            format!("`{} {v}`: out of range {lo}..={hi}; ignored", s.keyword),
        );
        return None;
    }
    Some(v)
}

/// An address of either family.
pub fn ip(s: &Stmt, n: &mut Notes) -> Option<IpAddr> {
    let v = value(s, n)?;
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            n.warning(
                s,
                format!("`{} {v}`: not an IP address; ignored", s.keyword),
            );
            None
        }
    }
}

/// A keepalived <TIMER>: seconds, possibly fractional (`2`, `0.5`, `2.71828`).
pub fn seconds(s: &Stmt, n: &mut Notes) -> Option<duration::Dur> {
    let v = value(s, n)?;
    match parse_seconds(v) {
        Some(d) => Some(duration::Dur(d)),
        None => {
            n.warning(
                s,
                format!("`{} {v}`: not a time in seconds; ignored", s.keyword),
            );
            None
        }
    }
}

/// Whole seconds, where keepalived reads an integer (`interval`, `timeout`, `misc_timeout`,
/// `garp_master_delay`...): it refuses `1.5` there and keeps its default, and so does this.
pub fn whole_seconds(s: &Stmt, n: &mut Notes) -> Option<duration::Dur> {
    let v = value(s, n)?;
    match v.parse::<u32>() {
        Ok(secs) => Some(duration::Dur::secs(u64::from(secs))),
        Err(_) if parse_seconds(v).is_some() => {
            n.warning(
                s,
                format!(
                    "`{} {v}`: keepalived takes whole seconds here and ignores this value (keeping its default); not imported either",
                    s.keyword
                ),
            );
            None
        }
        Err(_) => {
            n.warning(
                s,
                format!(
                    "`{} {v}`: not a whole number of seconds; ignored",
                    s.keyword
                ),
            );
            None
        }
    }
}

/// A check or script interval: lb accepts 10ms to 1h. keepalived turns 0 into 1s.
pub fn interval(d: Option<duration::Dur>, s: &Stmt, n: &mut Notes) -> Option<duration::Dur> {
    let d = d?;
    let (lo, hi) = (Duration::from_millis(10), Duration::from_secs(3600));
    let fixed = if d.0.is_zero() {
        Duration::from_secs(1)
    } else {
        d.0.clamp(lo, hi)
    };
    if fixed != d.0 {
        n.warning(
            s,
            format!(
                "`{} {}`: lb's intervals are 10ms to 1h{}; imported as {}",
                s.keyword,
                s.args.first().map(String::as_str).unwrap_or_default(),
                if d.0.is_zero() {
                    " (keepalived makes 0 into 1s)"
                } else {
                    ""
                },
                duration::Dur(fixed)
            ),
        );
    }
    Some(duration::Dur(fixed))
}

/// An HTTP `virtualhost`: a host name, no spaces or control characters.
pub fn host(s: &Stmt, n: &mut Notes) -> Option<String> {
    let v = value(s, n)?;
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        n.warning(s, format!("`{} {v}`: not a host name; ignored", s.keyword));
        return None;
    }
    Some(v.to_owned())
}

/// `keyword` alone means true; else on|off|true|false|yes|no.
pub fn boolean(s: &Stmt, n: &mut Notes) -> Option<bool> {
    no_block(s, n);
    match s.args.as_slice() {
        [] => Some(true),
        [v, rest @ ..] => {
            if !rest.is_empty() {
                n.warning(
                    s,
                    format!(
                        "`{} {v}`: extra word(s) `{}` ignored",
                        s.keyword,
                        rest.join(" ")
                    ),
                );
            }
            let b = parse_bool(v);
            if b.is_none() {
                n.warning(
                    s,
                    format!(
                        "`{} {v}`: expected on|off|true|false|yes|no; ignored",
                        s.keyword
                    ),
                );
            }
            b
        }
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Exact decimal seconds to a duration, at keepalived's resolution, the microsecond (further
/// digits are dropped; lb's duration syntax has no unit below `us` either).
pub fn parse_seconds(v: &str) -> Option<Duration> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    if secs > 1_000_000_000 {
        return None;
    }
    let mut micros: u32 = 0;
    for (i, b) in frac.bytes().take(6).enumerate() {
        micros += u32::from(b - b'0') * 10u32.pow(5 - i as u32);
    }
    Some(Duration::new(secs, micros * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(parse_seconds("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_seconds("0.1"), Some(Duration::from_millis(100)));
        assert_eq!(parse_seconds(".5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("3."), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_seconds("2.71828"),
            Some(Duration::from_micros(2_718_280))
        );
        assert_eq!(parse_seconds("0.0000019"), Some(Duration::from_micros(1)));
        for bad in ["", ".", "-1", "1e3", "1s", "1.2.3", "99999999999999999999"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("1"), None);
    }
}
