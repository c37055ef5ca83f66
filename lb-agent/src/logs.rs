//! Log output: human lines or JSON on stderr. Under systemd (`JOURNAL_STREAM` set) each human
//! line starts with its syslog priority (`<3>` error ... `<7>` debug), which journald reads, so
//! `journalctl -p err` shows exactly the errors.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields},
    registry::LookupSpan,
};

/// The sd-daemon priority prefix of a level.
pub fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

/// Wraps a line format with the priority prefix.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The subscriber for `json` or human lines, with priorities when `journal`, writing to
/// `writer`.
fn subscriber<W>(
    json: bool,
    journal: bool,
    filter: tracing_subscriber::EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi && !journal);
    if json {
        Box::new(b.json().finish())
    } else if journal {
        // journald stamps each line itself.
        let format = tracing_subscriber::fmt::format().without_time();
        Box::new(b.event_format(Prioritised(format)).finish())
    } else {
        Box::new(b.finish())
    }
}

/// Installs the global subscriber. `level` is a tracing filter; `LB_LOG` overrides it.
pub fn init(json: bool, level: &str) {
    let filter = std::env::var("LB_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // `try_init` also forwards the `log` records of the netlink crates.
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber(
        json,
        journal,
        filter,
        ansi,
        std::io::stderr,
    ));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(journal: bool) -> Vec<String> {
        let buf = Buf::default();
        let out = buf.clone();
        let s = subscriber(
            false,
            journal,
            tracing_subscriber::EnvFilter::new("debug"),
            false,
            move || out.clone(),
        );
        tracing::subscriber::with_default(s, || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn under_journald_each_line_starts_with_its_priority() {
        let l = lines(true);
        let prefixes: Vec<&str> = l.iter().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"], "{l:?}");
        assert!(l[0].contains("ERROR") && l[0].ends_with(" e"), "{l:?}");
        // Without journald: no prefix, a timestamp first.
        let plain = lines(false);
        assert_eq!(plain.len(), 4);
        assert!(plain.iter().all(|l| !l.starts_with('<')), "{plain:?}");
    }
}
