//! keepalived commands (`script`, `notify_*`, `misc_path`, `quorum_up`...) to lb commands.
//!
//! keepalived takes the first word of the line (quotes and escapes processed) as the command
//! and splits it again into program and arguments, `'...'` keeping spaces together; it runs
//! it without a shell. lb also runs commands without a shell and wants the program as an
//! absolute path. So:
//! * shell syntax (pipes, `&&`, `;`, `$`, redirections, backquotes) is kept working by
//!   wrapping the command as `["/bin/sh", "-c", "..."]`, with a warning;
//! * a program named without a path (`killall`, `pidof`) runs through `/usr/bin/env`, which
//!   looks it up in `PATH` as keepalived did, with a warning to write the full path.

use super::super::schema;
use super::ast::Stmt;
use super::lexer::split_quoted_escaped;
use super::report::Notes;
use super::values::{no_block, NoteAt};
use schema::Command;

/// What keepalived does with the words after the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// `notify_master "cmd" [username [groupname]]`.
    UserGroup,
    /// `script "cmd"`: anything after is ignored by keepalived.
    Nothing,
}

const SHELL_CHARS: [char; 9] = ['|', '&', ';', '<', '>', '$', '`', '(', ')'];

pub fn command(s: &Stmt, n: &mut Notes, after: After) -> Option<Command> {
    no_block(s, n);
    let words = match split_quoted_escaped(&s.raw_args) {
        Ok(w) => w,
        Err(e) => {
            n.warning(s, format!("`{}`: {e}; not imported", s.keyword));
            return None;
        }
    };
    let Some((cmd, rest)) = words.split_first() else {
        n.warning(s, format!("`{}` needs a command; ignored", s.keyword));
        return None;
    };
    if !rest.is_empty() {
        match after {
            After::UserGroup => n.unsupported(
                s,
                format!(
                    "`{}`: running as user/group `{}` is not supported (lb runs hooks as \
                     itself); the command is imported without it",
                    s.keyword,
                    rest.join(" ")
                ),
            ),
            After::Nothing => n.warning(
                s,
                format!(
                    "`{}`: keepalived runs only the first word (`{cmd}`) and ignores `{}`; \
                     imported the same way: quote the whole command if you meant it",
                    s.keyword,
                    rest.join(" ")
                ),
            ),
        }
    }
    if cmd.contains(SHELL_CHARS) {
        n.warning(
            s,
            format!(
                "`{}`: the command uses shell syntax, which keepalived did not interpret (it \
                 runs commands without a shell); imported as /bin/sh -c \"{cmd}\": check that \
                 it does what you want",
                s.keyword
            ),
        );
        return Some(Command::Argv(vec![
            "/bin/sh".into(),
            "-c".into(),
            cmd.clone(),
        ]));
    }
    let mut argv = match split_quoted_escaped(cmd) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            n.warning(s, format!("`{}`: the command is empty; ignored", s.keyword));
            return None;
        }
        Err(e) => {
            n.warning(s, format!("`{}`: {e}; not imported", s.keyword));
            return None;
        }
    };
    if !argv[0].starts_with('/') {
        n.warning(
            s,
            format!(
                "`{}`: `{}` is not an absolute path; imported as /usr/bin/env {} (a PATH \
                 lookup, as keepalived did): better write the full path",
                s.keyword, argv[0], argv[0]
            ),
        );
        argv.insert(0, "/usr/bin/env".into());
    }
    Some(as_command(argv))
}

/// A plain string when splitting it on white space gives back `argv`, else the list.
pub fn as_command(argv: Vec<String>) -> Command {
    let line = argv.join(" ");
    if line.split_whitespace().eq(argv.iter().map(String::as_str)) {
        Command::Line(line)
    } else {
        Command::Argv(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::parse;
    use super::super::include::load_str;
    use super::*;

    fn conv(line: &str, after: After) -> (Option<Command>, Vec<String>) {
        let loaded = load_str(line, "t");
        let stmts = parse(&loaded.lines).unwrap_or_default();
        let mut notes = loaded.notes;
        let c = stmts.first().and_then(|s| command(s, &mut notes, after));
        (
            c,
            notes
                .into_sorted()
                .into_iter()
                .map(|n| n.severity.to_string())
                .collect(),
        )
    }

    #[test]
    fn plain_quoted_command_is_a_line() {
        let (c, notes) = conv("script \"/usr/bin/pgrep -x haproxy\"", After::Nothing);
        assert_eq!(c, Some(Command::Line("/usr/bin/pgrep -x haproxy".into())));
        assert!(notes.is_empty());
    }

    #[test]
    fn single_quotes_keep_an_argument_together() {
        let (c, _) = conv("script \"/bin/check 'a b' c\"", After::Nothing);
        assert_eq!(
            c,
            Some(Command::Argv(vec![
                "/bin/check".into(),
                "a b".into(),
                "c".into()
            ]))
        );
    }

    #[test]
    fn shell_syntax_is_wrapped() {
        let (c, notes) = conv("script \"/bin/pidof x || exit 1\"", After::Nothing);
        assert_eq!(
            c,
            Some(Command::Argv(vec![
                "/bin/sh".into(),
                "-c".into(),
                "/bin/pidof x || exit 1".into()
            ]))
        );
        assert_eq!(notes, vec!["warning"]);
    }

    #[test]
    fn relative_program_goes_through_env() {
        let (c, notes) = conv("script \"killall -0 haproxy\"", After::Nothing);
        assert_eq!(
            c,
            Some(Command::Line("/usr/bin/env killall -0 haproxy".into()))
        );
        assert_eq!(notes, vec!["warning"]);
    }

    #[test]
    fn notify_user_is_reported() {
        let (c, notes) = conv(
            "notify_master /etc/ka/master.sh root root",
            After::UserGroup,
        );
        assert_eq!(c, Some(Command::Line("/etc/ka/master.sh".into())));
        assert_eq!(notes, vec!["unsupported"]);
    }
}
