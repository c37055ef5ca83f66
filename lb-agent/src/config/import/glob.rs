//! The part of glob(3) that keepalived's `include` uses: `*`, `?`, `[...]` in any path
//! component, csh-style `{a,b}` alternatives (GLOB_BRACE), results sorted per alternative,
//! directories left out. Reads directories, nothing else.

use std::{
    fs, io,
    path::{Component, Path, PathBuf},
};

/// More alternatives than this from `{...}` is not a configuration, it is an attack.
const MAX_ALTERNATIVES: usize = 256;

/// The regular files matching `pattern`, relative to `base` unless absolute, in glob order.
/// No match is not an error (keepalived only logs it).
pub fn glob(base: &Path, pattern: &str) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for alternative in expand_braces(pattern) {
        let full = base.join(&alternative);
        let mut found = Vec::new();
        let mut candidates = vec![PathBuf::new()];
        for comp in full.components() {
            let mut next = Vec::new();
            match comp {
                Component::Normal(name) => {
                    let name = name.to_string_lossy();
                    if has_magic(&name) {
                        for dir in &candidates {
                            let read_from = if dir.as_os_str().is_empty() {
                                Path::new(".")
                            } else {
                                dir.as_path()
                            };
                            let Ok(entries) = fs::read_dir(read_from) else {
                                continue;
                            };
                            let mut names: Vec<String> = entries
                                .filter_map(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .filter(|n| {
                                    (!n.starts_with('.') || name.starts_with('.'))
                                        && fnmatch(&name, n)
                                })
                                .collect();
                            names.sort();
                            next.extend(names.into_iter().map(|n| dir.join(n)));
                        }
                    } else {
                        let literal = unescape(&name);
                        next.extend(candidates.iter().map(|d| d.join(&literal)));
                    }
                }
                Component::CurDir => continue,
                other => next.extend(candidates.iter().map(|d| d.join(other))),
            }
            candidates = next;
        }
        for c in candidates {
            match fs::metadata(&c) {
                Ok(m) if m.is_file() => found.push(c),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Exists but cannot be looked at: let the reader report it.
                Err(_) => found.push(c),
            }
        }
        out.extend(found);
    }
    Ok(out)
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// `a{b,c{d,e}}f` -> `abf`, `acdf`, `acef`. A `{` without a matching `}` or `,` is literal.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out);
    out
}

fn expand_into(pattern: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_ALTERNATIVES {
        return;
    }
    let b = pattern.as_bytes();
    // The first `{` that has a matching `}` with a top-level `,` in between.
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'{' {
            let mut depth = 0usize;
            let mut commas = Vec::new();
            let mut j = i;
            let mut close = None;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 1,
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            close = Some(j);
                            break;
                        }
                    }
                    b',' if depth == 1 => commas.push(j),
                    _ => {}
                }
                j += 1;
            }
            if let Some(close) = close {
                if !commas.is_empty() {
                    let (pre, post) = (&pattern[..i], &pattern[close + 1..]);
                    let mut from = i + 1;
                    for end in commas.into_iter().chain(std::iter::once(close)) {
                        let alt = &pattern[from..end];
                        expand_into(&format!("{pre}{alt}{post}"), out);
                        from = end + 1;
                    }
                    return;
                }
            }
        }
        i += 1;
    }
    out.push(pattern.to_owned());
}

/// Shell wildcard match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`,
/// `\` escapes.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, name index it stood at).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], n[ni]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(2),
            Some(&c) => (c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (`[...]`); returns the class length if it
/// matches. An unclosed `[` is a literal `[`.
fn class(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    // No closing `]`: a literal `[`.
    (c == '[').then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(fnmatch("*.conf", "10-vrrp.conf"));
        assert!(!fnmatch("*.conf", "10-vrrp.conf.bak"));
        assert!(fnmatch("??-*.conf", "10-vrrp.conf"));
        assert!(fnmatch("[0-9]*", "10"));
        assert!(!fnmatch("[!0-9]*", "10"));
        assert!(fnmatch("a*b*c", "axxbyyc"));
        assert!(!fnmatch("a*b*c", "axxbyy"));
        assert!(fnmatch("\\*", "*"));
        assert!(fnmatch("[abc", "[abc"));
        assert!(fnmatch("*", ""));
    }

    #[test]
    fn braces() {
        assert_eq!(expand_braces("a{b,c{d,e}}f"), vec!["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("{x}"), vec!["{x}"]);
        assert_eq!(expand_braces("a{b"), vec!["a{b"]);
        assert_eq!(expand_braces("}{"), vec!["}{"]);
        let many = "{a,b}".repeat(20);
        assert!(expand_braces(&many).len() <= MAX_ALTERNATIVES);
    }
}
