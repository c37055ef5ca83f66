//! keepalived's line lexer: comments, quotes and braces of one file, line by line.
//!
//! keepalived reads its configuration a line at a time. It drops comments (`#` or `!` up to
//! the end of the line, except inside double quotes; `\#` and `\!` stand for the characters),
//! splits `{` and `}` off wherever they stand outside double quotes, and cuts the rest into
//! words at white space, a double-quoted string being one word without its quotes. This module
//! does the same and keeps, for every word, where it stands in the line, because commands
//! (`script`, `notify_master`, `misc_path`) are re-read from the raw text with keepalived's
//! other, quote-and-escape aware splitter ([`split_quoted_escaped`]).
//!
//! Preprocessor lines that lb does not implement (`@host` conditional lines, `$NAME=value`
//! definitions, `~SEQ` sequences) are left out of the token stream and reported.

use super::report::Severity;

/// One line of a file, after comment removal, with its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in its file.
    pub number: usize,
    /// The line without its comment and surrounding white space. Token offsets point into it.
    pub text: String,
    pub tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte range of the token in [`Line::text`], quotes included.
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A word, double quotes removed.
    Word(String),
    /// `{`
    Open,
    /// `}`
    Close,
}

/// Something the lexer noticed on a line (the caller knows the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexNote {
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl Line {
    /// The words of the line, if it holds no brace.
    pub fn words(&self) -> Option<Vec<&str>> {
        self.tokens
            .iter()
            .map(|t| match &t.kind {
                TokenKind::Word(w) => Some(w.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Splits `text` (one whole file) into lines of tokens. Never fails: what keepalived would
/// complain about but still read (an unterminated quote) is reported as a note.
pub fn lex(text: &str) -> (Vec<Line>, Vec<LexNote>) {
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut defined_any = false;
    for (i, raw) in text.split('\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (body, unterminated) = decomment(raw);
        if unterminated {
            notes.push(LexNote {
                line: number,
                severity: Severity::Warning,
                message: "unterminated double quote: the string runs to the end of the line".into(),
            });
        }
        if body.is_empty() {
            continue;
        }
        if body.starts_with('@') {
            notes.push(LexNote {
                line: number,
                severity: Severity::Unsupported,
                message: format!(
                    "`{}`: conditional configuration (`@host` lines) is not supported; line \
                     not imported: add it by hand on the host it was meant for",
                    first_word(&body)
                ),
            });
            continue;
        }
        if is_definition(&body) {
            defined_any = true;
            notes.push(LexNote {
                line: number,
                severity: Severity::Unsupported,
                message: format!(
                    "`{}`: parameter definitions are not supported and `$NAME` is not \
                     substituted anywhere; replace each use by its value",
                    first_word(&body)
                ),
            });
            continue;
        }
        if body.starts_with("~SEQ") {
            notes.push(LexNote {
                line: number,
                severity: Severity::Unsupported,
                message: "`~SEQ`: sequence blocks are not supported; line not imported".into(),
            });
            continue;
        }
        let tokens = tokenize(&body);
        if defined_any && body.contains('$') {
            notes.push(LexNote {
                line: number,
                severity: Severity::Warning,
                message: "`$`: this line may use a parameter definition, which is not \
                          substituted; check the imported value"
                    .into(),
            });
        }
        lines.push(Line {
            number,
            text: body,
            tokens,
        });
    }
    (lines, notes)
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

/// `$NAME=...` (keepalived's parameter definition).
fn is_definition(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('$') else {
        return false;
    };
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let starts_ok = rest
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_ok && rest[name_len..].trim_start().starts_with('=')
}

/// Removes the comment and surrounding blanks; turns `\#` and `\!` outside quotes into the bare
/// characters. Returns whether a double quote was left open.
fn decomment(line: &str) -> (String, bool) {
    let mut out = String::with_capacity(line.len());
    let mut in_quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '\\' => match chars.peek().copied() {
                Some(n @ ('#' | '!')) if !in_quote => {
                    out.push(n);
                    chars.next();
                }
                Some(n) => {
                    out.push(c);
                    out.push(n);
                    chars.next();
                }
                None => out.push(c),
            },
            '#' | '!' if !in_quote => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_matches(is_blank);
    (trimmed.to_owned(), in_quote)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\u{b}' | '\u{c}')
}

/// keepalived's word splitter for keyword lines: white space separates words, a word that
/// starts with `"` runs to the next `"` (no escapes), `{` and `}` outside quotes are tokens.
fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut iter = text.char_indices().peekable();
    while let Some(&(start, c)) = iter.peek() {
        if is_blank(c) {
            iter.next();
            continue;
        }
        match c {
            '{' | '}' => {
                iter.next();
                tokens.push(Token {
                    kind: if c == '{' {
                        TokenKind::Open
                    } else {
                        TokenKind::Close
                    },
                    start,
                    end: start + 1,
                });
            }
            '"' => {
                iter.next();
                let body_start = start + 1;
                let mut end = text.len();
                let mut body_end = text.len();
                for (j, d) in iter.by_ref() {
                    if d == '"' {
                        body_end = j;
                        end = j + 1;
                        break;
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::Word(text.get(body_start..body_end).unwrap_or("").into()),
                    start,
                    end,
                });
            }
            _ => {
                let mut end = text.len();
                while let Some(&(j, d)) = iter.peek() {
                    if is_blank(d) || matches!(d, '"' | '{' | '}') {
                        end = j;
                        break;
                    }
                    iter.next();
                }
                tokens.push(Token {
                    kind: TokenKind::Word(text.get(start..end).unwrap_or("").into()),
                    start,
                    end,
                });
            }
        }
    }
    tokens
}

/// keepalived's splitter for commands and their arguments (`alloc_strvec_quoted_escaped`):
/// words are separated by white space; `'` and `"` quote (and are removed), so
/// `"/bin/check 'a b'"` is one word whose own split gives `/bin/check` and `a b`; a backslash
/// escapes the next character, with C escapes (`\n`, `\t`, `\x41`, `\101`, `\cA`...).
pub fn split_quoted_escaped(text: &str) -> Result<Vec<String>, String> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    while i < bytes.len() {
        while i < bytes.len() && ws(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let mut word: Vec<u8> = Vec::new();
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            match (quote, b) {
                (_, b'\\') => {
                    i += 1;
                    let Some(&e) = bytes.get(i) else {
                        return Err(format!("`{text}` ends with a lone backslash"));
                    };
                    i += 1;
                    let v = match e {
                        b'x' if bytes.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                            let mut v: u8 = 0;
                            while let Some(h) = bytes.get(i).and_then(|h| (*h as char).to_digit(16))
                            {
                                v = v.wrapping_shl(4) | h as u8;
                                i += 1;
                            }
                            v
                        }
                        b'c' if i < bytes.len() => {
                            let v = bytes[i] & 0x1f;
                            i += 1;
                            v
                        }
                        b'0'..=b'7' => {
                            let mut v = e - b'0';
                            for _ in 0..2 {
                                match bytes.get(i) {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v.wrapping_shl(3).wrapping_add(d - b'0');
                                        i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            v
                        }
                        b'a' => 0x07,
                        b'b' => 0x08,
                        b'E' => 0x1b,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 0x0b,
                        other => other,
                    };
                    word.push(v);
                }
                (Some(q), _) if b == q => {
                    quote = None;
                    i += 1;
                }
                (Some(_), _) => {
                    word.push(b);
                    i += 1;
                }
                (None, b'"' | b'\'') => {
                    quote = Some(b);
                    i += 1;
                }
                (None, _) if ws(b) => break,
                (None, _) => {
                    word.push(b);
                    i += 1;
                }
            }
        }
        if let Some(q) = quote {
            return Err(format!("`{text}`: missing closing {}", q as char));
        }
        words.push(String::from_utf8_lossy(&word).into_owned());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &Line) -> Vec<String> {
        line.tokens
            .iter()
            .map(|t| match &t.kind {
                TokenKind::Word(w) => w.clone(),
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
            })
            .collect()
    }

    fn lex_words(text: &str) -> Vec<(usize, Vec<String>)> {
        lex(text).0.iter().map(|l| (l.number, words(l))).collect()
    }

    #[test]
    fn comments_hash_and_bang_anywhere() {
        let got = lex_words(
            "# whole line\n! also whole line\nrouter_id lb1 # trailing\npriority 100!x\n  \n",
        );
        assert_eq!(
            got,
            vec![
                (3, vec!["router_id".into(), "lb1".into()]),
                (4, vec!["priority".into(), "100".into()]),
            ]
        );
    }

    #[test]
    fn comment_chars_inside_double_quotes_and_escaped() {
        let got = lex_words("script \"/bin/check --tag #1 !x\"\nsmtp_server a\\#b\n");
        assert_eq!(got[0].1, vec!["script", "/bin/check --tag #1 !x"]);
        assert_eq!(got[1].1, vec!["smtp_server", "a#b"]);
    }

    #[test]
    fn single_quotes_do_not_protect_comments() {
        // As in keepalived: only double quotes hide `#`.
        let got = lex_words("misc_path '/bin/x #1'\n");
        assert_eq!(got[0].1, vec!["misc_path", "'/bin/x"]);
    }

    #[test]
    fn braces_split_anywhere_outside_quotes() {
        let got = lex_words("url{path /x}\nscript \"a { b }\"{\n}}\n");
        assert_eq!(got[0].1, vec!["url", "{", "path", "/x", "}"]);
        assert_eq!(got[1].1, vec!["script", "a { b }", "{"]);
        assert_eq!(got[2].1, vec!["}", "}"]);
    }

    #[test]
    fn quoted_word_keeps_spaces_and_raw_span() {
        let (lines, notes) = lex("notify_master \"/etc/ka/notify.sh  MASTER\" root\n");
        assert!(notes.is_empty());
        let l = &lines[0];
        assert_eq!(
            words(l),
            vec!["notify_master", "/etc/ka/notify.sh  MASTER", "root"]
        );
        assert_eq!(
            &l.text[l.tokens[1].start..l.tokens[2].end],
            "\"/etc/ka/notify.sh  MASTER\" root"
        );
    }

    #[test]
    fn unterminated_quote_is_a_note() {
        let (lines, notes) = lex("a\nscript \"/bin/x\n");
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].line, 2);
        assert_eq!(words(&lines[1]), vec!["script", "/bin/x"]);
    }

    #[test]
    fn preprocessor_lines_are_reported() {
        let (lines, notes) = lex("@lb1 priority 150\n$VIP=10.0.0.1\n~SEQ(i,1,3) x\nkeep me\n");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].number, 4);
        assert_eq!(notes.len(), 3);
        assert!(notes.iter().all(|n| n.severity == Severity::Unsupported));
    }

    #[test]
    fn crlf_and_line_numbers() {
        let got = lex_words("a 1\r\n\r\nb 2\r\n");
        assert_eq!(
            got,
            vec![
                (1, vec!["a".into(), "1".into()]),
                (3, vec!["b".into(), "2".into()])
            ]
        );
    }

    #[test]
    fn split_quoted_escaped_like_keepalived() {
        let s = |t: &str| split_quoted_escaped(t).unwrap_or_default();
        assert_eq!(s("/bin/check 'a b' c"), vec!["/bin/check", "a b", "c"]);
        assert_eq!(s(r#""/bin/x 'y z'""#), vec!["/bin/x 'y z'"]);
        assert_eq!(s(r"a\ b \x41\101\tq"), vec!["a b", "AA\tq"]);
        assert_eq!(s("ab\"c d\"e"), vec!["abc de"]);
        assert_eq!(s("   "), Vec::<String>::new());
        assert!(split_quoted_escaped("'open").is_err());
        assert!(split_quoted_escaped("trailing\\").is_err());
    }
}
