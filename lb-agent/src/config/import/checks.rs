//! keepalived health checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `DNS_CHECK`,
//! `UDP_CHECK`, `PING_CHECK`, `FILE_CHECK`) to lb checks.
//!
//! keepalived retries a failed check `retry` times, `delay_before_retry` apart, before it marks
//! the real down; lb checks every `delay_loop` and marks the real down after `fall` failures in
//! a row. `retry N` becomes `fall: N` (lb's documented mapping; see [`fall_from_retry`]).

use super::super::{duration, schema};
use super::ast::Stmt;
use super::command::{command, After};
use super::report::Notes;
use super::values::{self, NoteAt};
use duration::Dur;
use schema::{
    Check, DnsCheck, FileCheck, HttpCheck, PingCheck, ScriptCheck, StatusCode, TcpCheck, UdpCheck,
};

/// What a checker inherits from its real server, which inherits it from its virtual server.
#[derive(Clone, Debug, Default)]
pub struct Inherited {
    pub connect_timeout: Option<Dur>,
    pub retry: Option<u32>,
    pub virtualhost: Option<String>,
    /// The port the checker connects to when it names none: the real server's port as written
    /// (keepalived takes it before it resets a mismatched real port to the virtual port).
    pub connect_port: Option<u16>,
    /// keepalived's MISC_CHECK timeout when `misc_timeout` is absent: the virtual server's
    /// `delay_loop`.
    pub misc_timeout: Option<Dur>,
    /// The imported `track_file` blocks (FILE_CHECK names one).
    pub track_files: Vec<schema::TrackFile>,
}

impl Inherited {
    /// Takes a key that a virtual or real server passes down to its checkers
    /// (`virtualhost`, `connect_timeout`, `retry`/`nb_get_retry`; `delay_before_retry` is
    /// only noted). `false` when `d` is none of them.
    pub fn take(&mut self, d: &Stmt, n: &mut Notes) -> bool {
        match d.keyword.as_str() {
            "virtualhost" => self.virtualhost = values::host(d, n),
            "connect_timeout" => self.connect_timeout = values::seconds(d, n),
            "retry" | "nb_get_retry" => self.retry = values::u32_in(d, n, 0, u32::MAX),
            "delay_before_retry" => {
                if values::seconds(d, n).is_some() {
                    n.converted(
                        d,
                        "`delay_before_retry`: lb has no separate retry delay; it checks every \
                         delay_loop, and `retry` became `fall`"
                            .into(),
                    );
                }
            }
            _ => return false,
        }
        true
    }
}

/// `alpha`, at any level: always the case in lb, noted when set.
pub fn alpha(d: &Stmt, n: &mut Notes) {
    if values::boolean(d, n) == Some(true) {
        n.converted(
            d,
            "`alpha`: always the case in lb (a real gets no traffic before its first check \
             passes)"
                .into(),
        );
    }
}

/// One keepalived checker, converted.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    /// One check, or one per `url` of an HTTP_GET/SSL_GET (all must pass, as in keepalived).
    pub checks: Vec<Check>,
    /// keepalived's `retry` (own or inherited), if any was given.
    pub retry: Option<u32>,
    /// The checker's own `delay_loop`.
    pub delay_loop: Option<Dur>,
}

/// lb's `fall` for keepalived's `retry N`: `N`, at least 1.
///
/// keepalived itself marks a real down after 1 + N failed attempts, the retries
/// `delay_before_retry` apart; lb spaces its checks by `delay_loop`, so `fall: N` keeps the
/// time to detect a dead real close to keepalived's. This is the mapping lb documents
/// (`schema::VirtualServer::fall`).
pub fn fall_from_retry(retry: u32) -> u32 {
    retry.max(1)
}

/// PCRE syntax that lb's regex engine does not have.
const PCRE_ONLY: [&str; 13] = [
    "(?=", "(?!", "(?<=", "(?<!", "\\1", "\\2", "\\3", "\\4", "\\5", "\\6", "\\7", "\\8", "\\9",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Http,
    Https,
    Misc,
    Dns,
    Udp,
    Ping,
    File,
}

/// Converts the checker `s` (a `real_server` statement whose keyword names a checker).
/// `None` (with a note) for checkers lb does not have.
pub fn checker(s: &Stmt, n: &mut Notes, inh: &Inherited) -> Option<Checker> {
    let kind = match s.keyword.as_str() {
        "TCP_CHECK" => Kind::Tcp,
        "HTTP_GET" => Kind::Http,
        "SSL_GET" => Kind::Https,
        "MISC_CHECK" => Kind::Misc,
        "DNS_CHECK" => Kind::Dns,
        "UDP_CHECK" => Kind::Udp,
        "PING_CHECK" => Kind::Ping,
        "FILE_CHECK" => Kind::File,
        "SMTP_CHECK" | "BFD_CHECK" => {
            n.unsupported(
                s,
                format!(
                    "`{}`: lb has no such check; not imported: the real server keeps only its \
                     other checks (a MISC_CHECK script can speak SMTP)",
                    s.keyword
                ),
            );
            return None;
        }
        _ => return None,
    };
    let block = values::block(s, n)?;
    let mut out = Checker {
        retry: inh.retry,
        ..Checker::default()
    };
    let mut connect_port = inh.connect_port;
    let mut connect_timeout = inh.connect_timeout;
    let mut bind_to = None;
    let mut virtualhost = inh.virtualhost.clone();
    let mut urls: Vec<&Stmt> = Vec::new();
    let mut script = None;
    let mut script_timeout = None;
    let mut dynamic = None;
    let mut dns = DnsCheck::default();
    let mut udp = UdpCheck::default();
    let mut file: Option<(String, &Stmt)> = None;
    let mut file_weight: Option<(i64, bool)> = None;
    let network = !matches!(kind, Kind::Misc | Kind::File);
    for d in block {
        let kw = d.keyword.as_str();
        match kw {
            "connect_port" if network => {
                connect_port = values::u32_in(d, n, 1, 65535).map(|p| p as u16)
            }
            "connect_timeout" if network => connect_timeout = values::seconds(d, n),
            "bindto" if network => bind_to = values::ip(d, n),
            "connect_ip" if network => n.not_imported(
                d,
                Some(
                    "lb checks the real server's own address (or the VIP through it, `probe_vip`)",
                ),
            ),
            "bind_port" | "bind_if" | "fwmark" if network => {
                n.not_imported(d, Some("not supported by lb's checks"))
            }
            "retry" | "nb_get_retry" => out.retry = values::u32_in(d, n, 0, u32::MAX),
            "delay_before_retry" => {
                if values::seconds(d, n).is_some() {
                    n.converted(
                        d,
                        format!(
                            "`delay_before_retry {}`: lb has no separate retry delay; it checks \
                             every delay_loop, and `retry` became `fall`",
                            d.args.first().map(String::as_str).unwrap_or_default()
                        ),
                    );
                }
            }
            "delay_loop" => out.delay_loop = values::interval(values::seconds(d, n), d, n),
            "warmup" => n.not_imported(
                d,
                Some("lb spreads checks by itself (±10 % jitter on every interval)"),
            ),
            "alpha" => alpha(d, n),
            "log_all_failures" => n.not_imported(d, Some("lb logs every state change")),
            "url" if matches!(kind, Kind::Http | Kind::Https) => urls.push(d),
            "virtualhost" if matches!(kind, Kind::Http | Kind::Https) => {
                virtualhost = values::host(d, n)
            }
            "http_protocol" | "fast_recovery" if matches!(kind, Kind::Http | Kind::Https) => n
                .not_imported(
                    d,
                    Some("lb's HTTP check always speaks HTTP/1.1 with Connection: close"),
                ),
            "enable_sni" if kind == Kind::Https => n.converted(
                d,
                "`enable_sni`: lb always sends SNI (the virtualhost, or the real's address)".into(),
            ),
            "misc_path" if kind == Kind::Misc => script = command(d, n, After::Nothing),
            "misc_timeout" if kind == Kind::Misc => script_timeout = values::whole_seconds(d, n),
            "misc_dynamic" if kind == Kind::Misc => {
                values::flag(d, n);
                dynamic = Some(true);
            }
            "user" if kind == Kind::Misc => {
                n.not_imported(d, Some("lb runs scripts as its own user"))
            }
            "type" if kind == Kind::Dns => dns.qtype = values::value(d, n).map(str::to_owned),
            "name" if kind == Kind::Dns => dns.name = values::value(d, n).map(str::to_owned),
            "payload" if kind == Kind::Udp => udp.payload_hex = Some(d.args.join(" ")),
            "require_reply" if kind == Kind::Udp => {
                udp.require_reply = Some(true);
                if !d.args.is_empty() {
                    match hex_regex(&d.args.join(" ")) {
                        Some(re) => udp.reply_regex = Some(re),
                        None => n.warning(
                            d,
                            "`require_reply`: not keepalived hex; any reply is accepted".into(),
                        ),
                    }
                }
            }
            "min_reply_length" | "max_reply_length" if kind == Kind::Udp => n.not_imported(
                d,
                Some("lb matches the reply with require_reply's pattern only"),
            ),
            "track_file" if kind == Kind::File => {
                file = values::value(d, n).map(|v| (v.to_owned(), d));
            }
            "weight" if kind == Kind::File => {
                let w = d.args.first().and_then(|w| w.parse::<i64>().ok());
                let reverse = d.args.get(1).is_some_and(|r| r == "reverse");
                match w {
                    Some(w) => file_weight = Some((w, reverse)),
                    None => n.warning(d, "`weight`: not a number; ignored".into()),
                }
            }
            "dynamic" if kind == Kind::File => {
                values::flag(d, n);
                n.converted(
                    d,
                    "`dynamic`: an lb file check always sets the real's weight from the file"
                        .into(),
                );
            }
            _ => n.not_imported(d, None),
        }
    }
    match kind {
        Kind::Dns => out.checks.push(Check {
            dns: Some(DnsCheck {
                connect_port,
                connect_timeout,
                bind_to,
                ..dns
            }),
            ..Check::default()
        }),
        Kind::Udp => out.checks.push(Check {
            udp: Some(UdpCheck {
                connect_port,
                connect_timeout,
                bind_to,
                ..udp
            }),
            ..Check::default()
        }),
        Kind::Ping => out.checks.push(Check {
            ping: Some(PingCheck { connect_timeout }),
            ..Check::default()
        }),
        Kind::File => {
            let Some((name, at)) = file else {
                n.warning(s, "`FILE_CHECK` names no track_file; not imported".into());
                return None;
            };
            let Some(tf) = inh.track_files.iter().find(|f| f.name == name) else {
                n.warning(
                    at,
                    format!("`track_file {name}`: no such track_file was imported; not imported"),
                );
                return None;
            };
            let (weight, reverse) = file_weight.unwrap_or((
                i64::from(tf.weight.unwrap_or(1)),
                tf.reverse.unwrap_or(false),
            ));
            out.checks.push(Check {
                file: Some(FileCheck {
                    path: tf.file.clone(),
                    weight: Some(weight),
                    reverse: Some(reverse),
                }),
                ..Check::default()
            });
        }
        Kind::Tcp => out.checks.push(Check {
            tcp: Some(TcpCheck {
                connect_port,
                connect_timeout,
                bind_to,
                probe_vip: None,
            }),
            ..Check::default()
        }),
        Kind::Http | Kind::Https => {
            if urls.is_empty() {
                n.warning(
                    s,
                    format!(
                        "`{}` has no `url` (keepalived drops such a checker too); not imported",
                        s.keyword
                    ),
                );
                return None;
            }
            if urls.len() > 1 {
                n.converted(
                    s,
                    format!(
                        "`{}` with {} `url` blocks -> {} {} checks; the real is up only if all \
                         pass, as in keepalived",
                        s.keyword,
                        urls.len(),
                        urls.len(),
                        if kind == Kind::Http { "http" } else { "https" }
                    ),
                );
            }
            if kind == Kind::Https {
                n.converted(
                    s,
                    "`SSL_GET`: keepalived does not verify the real's certificate; imported \
                     with `verify: false` (set it to true if the reals have valid certificates)"
                        .into(),
                );
            }
            for u in urls {
                let mut h = HttpCheck {
                    connect_port,
                    connect_timeout,
                    bind_to,
                    virtualhost: virtualhost.clone(),
                    verify: (kind == Kind::Https).then_some(false),
                    ..HttpCheck::default()
                };
                if url(u, n, &mut h) {
                    out.checks.push(if kind == Kind::Http {
                        Check {
                            http: Some(h),
                            ..Check::default()
                        }
                    } else {
                        Check {
                            https: Some(h),
                            ..Check::default()
                        }
                    });
                }
            }
            if out.checks.is_empty() {
                return None;
            }
        }
        Kind::Misc => {
            let Some(script) = script else {
                n.warning(
                    s,
                    "`MISC_CHECK` has no usable `misc_path`; not imported".into(),
                );
                return None;
            };
            let timeout = match (script_timeout, inh.misc_timeout) {
                (Some(t), _) => Some(t),
                (None, Some(t)) => {
                    n.converted(
                        s,
                        format!(
                            "`MISC_CHECK` has no misc_timeout: keepalived lets the script run for \
                             the virtual server's delay_loop; written as `timeout: {t}` (lb's \
                             default is 5s)"
                        ),
                    );
                    Some(t)
                }
                (None, None) => None,
            };
            out.checks.push(Check {
                script: Some(ScriptCheck {
                    script,
                    timeout,
                    dynamic,
                }),
                ..Check::default()
            });
        }
    }
    Some(out)
}

/// One `url { path ... status_code ... }`; false when it cannot be used.
fn url(u: &Stmt, n: &mut Notes, h: &mut HttpCheck) -> bool {
    let Some(block) = values::block(u, n) else {
        return false;
    };
    let mut no_match = false;
    for d in block {
        match d.keyword.as_str() {
            "path" => {
                if let Some(p) = values::value(d, n) {
                    if p.starts_with('/') && !p.chars().any(|c| c.is_control() || c == ' ') {
                        h.path = Some(p.to_owned());
                    } else {
                        n.warning(
                            d,
                            format!(
                                "`path {p}`: lb needs a path starting with `/` without spaces; \
                                 this url is not imported"
                            ),
                        );
                        return false;
                    }
                }
            }
            "status_code" => {
                values::no_block(d, n);
                if d.args.is_empty() {
                    n.warning(d, "`status_code` needs a value; ignored".into());
                }
                for a in &d.args {
                    match status_code(a) {
                        Some(c) => h.status_code.push(c),
                        None => n.warning(
                            d,
                            format!("`status_code {a}`: expected a code 100..599 or a range like 200-299; ignored"),
                        ),
                    }
                }
            }
            "digest" => n.unsupported(
                d,
                "`digest`: lb does not compare MD5 digests of the page; not imported: check the \
                 content with `regex` instead"
                    .into(),
            ),
            "virtualhost" => h.virtualhost = values::host(d, n),
            "regex" => {
                h.regex = values::value(d, n).map(str::to_owned);
                if let Some(re) = &h.regex {
                    if PCRE_ONLY.iter().any(|p| re.contains(p)) {
                        n.warning(
                            d,
                            format!(
                                "`regex {re}`: keepalived uses PCRE; lb's regex has no \
                                 look-around or back-references: check that it still works"
                            ),
                        );
                    }
                }
            }
            "regex_no_match" => {
                values::flag(d, n);
                no_match = true;
                n.unsupported(
                    d,
                    "`regex_no_match`: lb has no inverted match (a check fails when its regex \
                     does not match); the regex of this url is not imported"
                        .into(),
                );
            }
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                n.not_imported(d, Some("lb's regex takes no options"))
            }
            _ => n.not_imported(d, None),
        }
    }
    if no_match {
        h.regex = None;
    }
    if h.path.is_none() {
        n.warning(u, "`url` has no `path`; imported with path `/`".into());
        h.path = Some("/".into());
    }
    true
}

fn status_code(a: &str) -> Option<StatusCode> {
    let ok = |c: u16| (100..=599).contains(&c);
    match a.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
            (ok(lo) && ok(hi) && lo <= hi).then(|| StatusCode::Range(format!("{lo}-{hi}")))
        }
        None => a.parse().ok().filter(|c| ok(*c)).map(StatusCode::Code),
    }
}

/// keepalived's `require_reply` hex (free format, `X` for a nibble that may be anything) as a
/// regular expression over the reply's bytes, anchored at its start.
pub fn hex_regex(hex: &str) -> Option<String> {
    let mut out = String::from("(?s-u)^");
    for tok in hex.split_whitespace() {
        let chars: Vec<char> = tok.chars().collect();
        for pair in chars.chunks(2) {
            let (hi, lo) = match pair {
                [h, l] => (*h, *l),
                [l] => ('0', *l),
                _ => return None,
            };
            let digit = |c: char| c.to_digit(16).map(|d| d as u8);
            match (hi.eq_ignore_ascii_case(&'x'), lo.eq_ignore_ascii_case(&'x')) {
                (false, false) => {
                    let b = digit(hi)? << 4 | digit(lo)?;
                    out += &format!("\\x{b:02x}");
                }
                (true, true) => out += ".",
                (true, false) => {
                    let l = digit(lo)?;
                    out += "[";
                    for h in 0..16u8 {
                        out += &format!("\\x{:02x}", h << 4 | l);
                    }
                    out += "]";
                }
                (false, true) => {
                    let h = digit(hi)? << 4;
                    out += &format!("[\\x{h:02x}-\\x{:02x}]", h | 0x0f);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod hex_tests {
    use super::hex_regex;

    #[test]
    fn keepalived_reply_hex_as_a_regex() {
        let re = |h: &str| regex::bytes::Regex::new(&hex_regex(h).expect("hex")).expect("regex");
        assert!(re("0a0b").is_match(&[0x0a, 0x0b, 0xff]));
        assert!(!re("0a0b").is_match(&[0x0b, 0x0a]));
        assert!(re("0aXb").is_match(&[0x0a, 0x7b]));
        assert!(re("0a xX").is_match(&[0x0a, 0x00]));
        assert!(re("0a3X").is_match(&[0x0a, 0x3f]));
        assert!(!re("0a3X").is_match(&[0x0a, 0x4f]));
        assert!(hex_regex("zz").is_none());
    }
}
