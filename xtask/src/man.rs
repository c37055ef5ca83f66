//! The subset of Markdown the docs use, as a man page: headings, paragraphs, lists, code
//! blocks and `key | default | meaning` tables (each row a tagged paragraph). So `lb.yaml(5)`
//! is docs/config.md, never a second text to keep in step.

/// Inline Markdown to roff: `code` bold, **strong** bold, [text](link) as its text, and the
/// characters roff treats specially escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    let mut strong = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if strong { "\\fR" } else { "\\fB" });
                strong = !strong;
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '[' if !code => {}
            ']' if !code && chars.peek() == Some(&'(') => {
                // Drop the link target.
                for c in chars.by_ref() {
                    if c == ')' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    if code {
        out.push_str("\\fR");
    }
    out
}

/// A line must not start with `.` or `'` (roff requests).
fn text_line(s: &str) -> String {
    let t = inline(s.trim());
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn cells(row: &str) -> Vec<String> {
    row.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_owned())
        .collect()
}

/// `md` as a man page titled `title(section)`.
pub fn from_markdown(md: &str, title: &str, section: &str, version: &str) -> String {
    let mut o = format!(".TH {title} {section} \"\" \"lb {version}\" \"lb manual\"\n");
    let mut in_code = false;
    let mut table_header = false;
    for line in md.lines() {
        let t = line.trim_end();
        if t.starts_with("```") {
            o.push_str(if in_code {
                ".fi\n.RE\n"
            } else {
                ".RS 4\n.nf\n"
            });
            in_code = !in_code;
            continue;
        }
        if in_code {
            o.push_str(&format!("\\&{}\n", t.replace('\\', "\\e")));
            continue;
        }
        if let Some(h) = t.strip_prefix("# ") {
            o.push_str(&format!(".SH NAME\nlb.yaml \\- {}\n", inline(h)));
        } else if let Some(h) = t.strip_prefix("## ") {
            o.push_str(&format!(".SH \"{}\"\n", inline(&h.to_uppercase())));
        } else if let Some(h) = t.strip_prefix("### ") {
            o.push_str(&format!(".SS \"{}\"\n", inline(h)));
        } else if t.starts_with('|') {
            let row = cells(t);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if !table_header {
                table_header = true;
                continue;
            }
            let (key, rest) = row
                .split_first()
                .map_or(("", &[][..]), |(k, r)| (k.as_str(), r));
            o.push_str(&format!(".TP\n{}", text_line(key)));
            match rest {
                [default, meaning, ..] => o.push_str(&format!(
                    " (default: {})\n{}\n",
                    inline(default),
                    text_line(meaning)
                )),
                [meaning] => o.push_str(&format!("\n{}\n", text_line(meaning))),
                [] => o.push('\n'),
            }
        } else if let Some(item) = t.trim_start().strip_prefix("- ") {
            table_header = false;
            o.push_str(&format!(".IP \\(bu 2\n{}\n", text_line(item)));
        } else if t.is_empty() {
            table_header = false;
            o.push_str(".PP\n");
        } else {
            o.push_str(&format!("{}\n", text_line(t)));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_tables_code_and_escapes() {
        let md = "# lb-agent configuration\n\nText with `code` and a [link](x.md).\n\n## `global_defs`\n\n| key | default | meaning |\n| --- | --- | --- |\n| `router_id` | `lb` | Names it. |\n\n```yaml\n.dot: \\x\n```\n- item\n";
        let man = from_markdown(md, "LB.YAML", "5", "0.1.0");
        assert!(man.starts_with(".TH LB.YAML 5"), "{man}");
        assert!(
            man.contains(".SH NAME\nlb.yaml \\- lb\\-agent configuration"),
            "{man}"
        );
        assert!(man.contains("Text with \\fBcode\\fR and a link."), "{man}");
        assert!(man.contains(".SH \"\\fBGLOBAL_DEFS\\fR\""), "{man}");
        assert!(
            man.contains(".TP\n\\fBrouter_id\\fR (default: \\fBlb\\fR)\nNames it."),
            "{man}"
        );
        assert!(!man.contains("| key |"), "the header row is not an entry");
        assert!(man.contains(".nf\n\\&.dot: \\ex\n.fi"), "{man}");
        assert!(man.contains(".IP \\(bu 2\nitem"), "{man}");
    }
}
