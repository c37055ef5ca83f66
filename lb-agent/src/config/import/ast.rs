//! Statements and blocks: `keyword args... [{ statements }]`.
//!
//! A statement is the run of words of one line up to a brace (keepalived cuts a line at every
//! brace, so `url { path / }` is `url`, then `path /` inside the block). A `{` opens the block
//! of the statement before it, on the same line or alone at the start of a following line.
//! Included files arrive already spliced into the line stream, so a block may start in one
//! file and end in another, as in keepalived.

use std::rc::Rc;

use super::lexer::{Line, TokenKind};
use super::report::ImportError;

/// Deeper than any keepalived configuration (which nests 5 levels at most); also bounds the
/// recursion of whoever walks the tree.
pub const MAX_DEPTH: usize = 32;

/// A lexed line and the file it comes from.
#[derive(Clone, Debug)]
pub struct SourceLine {
    pub file: Rc<str>,
    pub line: Line,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub keyword: String,
    /// The words after the keyword, double quotes removed.
    pub args: Vec<String>,
    /// The text of the arguments as written (quotes and escapes kept), for commands.
    pub raw_args: String,
    pub file: Rc<str>,
    pub line: usize,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// `keyword arg1 arg2` as written (quotes removed), for messages.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Builds the statement tree. Fails only on braces that do not balance (or nest absurdly deep).
pub fn parse(lines: &[SourceLine]) -> Result<Vec<Stmt>, ImportError> {
    // Open blocks, innermost last: the statement owning the block and its children so far.
    let mut stack: Vec<(Stmt, Vec<Stmt>)> = Vec::new();
    let mut root: Vec<Stmt> = Vec::new();
    // The last statement, still able to take a `{`.
    let mut pending: Option<Stmt> = None;

    fn container<'a>(
        root: &'a mut Vec<Stmt>,
        stack: &'a mut [(Stmt, Vec<Stmt>)],
    ) -> &'a mut Vec<Stmt> {
        match stack.last_mut() {
            Some((_, children)) => children,
            None => root,
        }
    }

    for sl in lines {
        let toks = &sl.line.tokens;
        let mut i = 0;
        while i < toks.len() {
            match &toks[i].kind {
                TokenKind::Word(_) => {
                    let start = i;
                    while i < toks.len() && matches!(toks[i].kind, TokenKind::Word(_)) {
                        i += 1;
                    }
                    let mut words = toks[start..i].iter().filter_map(|t| match &t.kind {
                        TokenKind::Word(w) => Some(w.clone()),
                        _ => None,
                    });
                    let keyword = words.next().unwrap_or_default();
                    let args: Vec<String> = words.collect();
                    let raw_args = if i - start > 1 {
                        let from = toks[start + 1].start;
                        let to = toks[i - 1].end;
                        sl.line.text.get(from..to).unwrap_or("").to_owned()
                    } else {
                        String::new()
                    };
                    if let Some(p) = pending.take() {
                        container(&mut root, &mut stack).push(p);
                    }
                    pending = Some(Stmt {
                        keyword,
                        args,
                        raw_args,
                        file: sl.file.clone(),
                        line: sl.line.number,
                        block: None,
                    });
                    continue;
                }
                TokenKind::Open => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ImportError::Unbalanced {
                            file: sl.file.to_string(),
                            line: sl.line.number,
                            message: format!("blocks nested more than {MAX_DEPTH} deep"),
                        });
                    }
                    // A `{` with no statement before it: keep it as an anonymous block so that
                    // its `}` balances, and let the converter report it.
                    let owner = pending.take().unwrap_or_else(|| Stmt {
                        keyword: "{".into(),
                        args: Vec::new(),
                        raw_args: String::new(),
                        file: sl.file.clone(),
                        line: sl.line.number,
                        block: None,
                    });
                    stack.push((owner, Vec::new()));
                }
                TokenKind::Close => {
                    if let Some(p) = pending.take() {
                        container(&mut root, &mut stack).push(p);
                    }
                    let Some((mut owner, children)) = stack.pop() else {
                        return Err(ImportError::Unbalanced {
                            file: sl.file.to_string(),
                            line: sl.line.number,
                            message: "`}` closes no block".into(),
                        });
                    };
                    owner.block = Some(children);
                    container(&mut root, &mut stack).push(owner);
                }
            }
            i += 1;
        }
    }
    if let Some((owner, _)) = stack.last() {
        return Err(ImportError::Unbalanced {
            file: owner.file.to_string(),
            line: owner.line,
            message: format!(
                "the block of `{}` opened here is never closed (missing `}}`)",
                owner.text()
            ),
        });
    }
    if let Some(p) = pending.take() {
        root.push(p);
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<Stmt>, ImportError> {
        let file: Rc<str> = Rc::from("t.conf");
        let lines: Vec<SourceLine> = lex(text)
            .0
            .into_iter()
            .map(|line| SourceLine {
                file: file.clone(),
                line,
            })
            .collect();
        parse(&lines)
    }

    fn shape(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| match &s.block {
                Some(b) => format!("{}@{}{{{}}}", s.text(), s.line, shape(b)),
                None => format!("{}@{}", s.text(), s.line),
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn nested_blocks_on_one_or_many_lines() {
        let s = parse_str(
            "virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 80 {\n    HTTP_GET { url { \
             path / } }\n  }\n}\n",
        )
        .unwrap_or_default();
        assert_eq!(
            shape(&s),
            "virtual_server 10.0.0.1 80@1{real_server 10.0.1.1 80@2{HTTP_GET@3{url@3{path /@3}}}}"
        );
    }

    #[test]
    fn brace_on_the_next_line_opens_the_block() {
        let s = parse_str("vrrp_instance VI_1\n{\n  state MASTER\n}\nnext 1\n").unwrap_or_default();
        assert_eq!(shape(&s), "vrrp_instance VI_1@1{state MASTER@3};next 1@5");
    }

    #[test]
    fn values_then_block_on_same_line() {
        let s = parse_str("group { VI_1 VI_2 }\n").unwrap_or_default();
        assert_eq!(shape(&s), "group@1{VI_1 VI_2@1}");
        assert_eq!(
            s[0].block.as_ref().map(|b| b[0].args.clone()),
            Some(vec!["VI_2".to_string()])
        );
    }

    #[test]
    fn raw_args_keep_quotes() {
        let s = parse_str("script \"/bin/x 'a b'\"   extra\n").unwrap_or_default();
        assert_eq!(s[0].raw_args, "\"/bin/x 'a b'\"   extra");
        assert_eq!(s[0].args, vec!["/bin/x 'a b'", "extra"]);
    }

    #[test]
    fn unclosed_block_points_at_its_opening_line() {
        let e =
            parse_str("global_defs {\n  router_id a\n}\nvrrp_instance VI_1 {\n  state MASTER\n");
        match e {
            Err(ImportError::Unbalanced {
                line,
                file,
                message,
            }) => {
                assert_eq!((file.as_str(), line), ("t.conf", 4));
                assert!(message.contains("vrrp_instance VI_1"), "{message}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn stray_close_brace_has_its_line() {
        let e = parse_str("a {\n}\n\n}\n");
        assert!(
            matches!(&e, Err(ImportError::Unbalanced { line: 4, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "a {\n".repeat(MAX_DEPTH + 1);
        assert!(
            matches!(parse_str(&deep), Err(ImportError::Unbalanced { line, .. }) if line == MAX_DEPTH + 1)
        );
    }
}
