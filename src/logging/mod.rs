//! Structured logs: JSON lines in a daily-rotating file, never on stdout.
//!
//! `tracing_subscriber::fmt()` writes to stdout unless told otherwise; in
//! `serve` stdout is the MCP channel, so [`crate::stdio`] points fd 1 at
//! stderr before this runs, and here every writer is named explicitly.
//!
//! A line is written by the thread that logs it, in one `write` to the file
//! (the page cache; no fsync), before the call's answer is sent: a writer
//! thread fed through a channel cost a wake-up per tool call, more CPU than
//! the write itself (`cargo bench --bench sidecar`).
//!
//! The files are bounded in number ([`KEEP_FILES`] days) and in total size:
//! tracing-appender rotates by time only, so the oldest files are removed at
//! startup and every hour while the directory holds more than the cap
//! (`--max-log-mb`), and the current day's file stops growing at the cap (one
//! line says so; the lines after it that day are dropped). The directory
//! stays within the cap give or take an hour of logging.

mod line;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use time::{Date, OffsetDateTime};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Log files are `<prefix>.<YYYY-MM-DD>.<suffix>`; `stats` reads them by
/// this name.
pub const FILE_PREFIX: &str = "toolbridge-mcp";
pub const FILE_SUFFIX: &str = "jsonl";

/// Days of log files kept.
const KEEP_FILES: usize = 7;

/// How often the directory is checked against its cap.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The default cap on the log directory, in MB (`--max-log-mb`).
pub const DEFAULT_MAX_LOG_MB: u32 = 100;

/// The levels `--log-level` takes, alone or as `target=level`.
const LEVELS: &str = "error, warn, info, debug, trace, off";

/// Checks a `--log-level` / `TOOLBRIDGE_LOG` value at startup: a level, or
/// comma-separated tracing directives that each end in a level
/// (`info,toolbridge_mcp=debug`). `EnvFilter` alone would take any word as a
/// target to log in full (`verbose`), and the log would stay empty.
pub fn parse_filter(filter: &str) -> Result<String, String> {
    let refused =
        || format!("expected a level ({LEVELS}) or directives such as info,toolbridge_mcp=debug");
    let mut directives = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .peekable();
    if directives.peek().is_none() {
        return Err(refused());
    }
    for directive in directives {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if level.parse::<LevelFilter>().is_err() {
            return Err(refused());
        }
    }
    EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    Ok(filter.to_owned())
}

/// Held until exit by the commands that log. Lines are written as they are
/// logged, so there is nothing to flush when it drops.
pub struct LogGuard(());

/// Installs the global subscriber. When the log directory cannot be used the
/// reason goes to stderr and logs follow it there: losing logs must not stop
/// the server. `max_bytes` caps the directory's log files together.
pub fn init(dir: &Path, level: &str, max_bytes: u64) -> LogGuard {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("toolbridge-mcp: ignoring log filter `{level}` ({e}); using info");
        EnvFilter::new("info")
    });
    // Owner-only: the directories made here 0700; the files 0600, by the
    // process umask (`fsmode::private_umask`), since the appender takes no mode.
    let appender = crate::fsmode::create_private_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .filename_suffix(FILE_SUFFIX)
                .max_log_files(KEEP_FILES)
                .build(dir)
                .map_err(|e| e.to_string())
        });
    match appender {
        Ok(appender) => {
            let capped = Mutex::new(Capped::new(appender, dir, max_bytes));
            install(capped, filter);
            // After the subscriber: what pruning removes is logged.
            prune(dir, max_bytes);
            keep_pruning(dir.to_owned(), max_bytes);
            LogGuard(())
        }
        Err(e) => {
            eprintln!(
                "toolbridge-mcp: cannot write logs to {}: {e}; logging to stderr",
                dir.display()
            );
            install(std::io::stderr, filter);
            LogGuard(())
        }
    }
}

/// Installs the one layer: `filter`'s events as JSON lines to `writer`.
/// Events only: no line shows a span, and rmcp runs every task of a session
/// inside its `serve_inner` span, which while enabled costs each poll of
/// each task a trip through the subscriber to enter and leave it. (A
/// `target[span]=level` directive, which tracing's syntax allows, then
/// matches nothing; the sidecar has no spans of its own.)
fn install<W>(writer: W, filter: EnvFilter)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let events = filter.and(filter_fn(|meta| meta.is_event()));
    let layer = tracing_subscriber::fmt::layer()
        .event_format(line::JsonLine)
        .with_writer(writer)
        .with_filter(events);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// `s` cut to at most `max` characters, `…` marking a cut: for text a log
/// line or a report shows but does not control (an error's message, a
/// tool's name).
pub fn shorten(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.chars().count() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let kept = max.saturating_sub(1);
    std::borrow::Cow::Owned(s.chars().take(kept).chain(['…']).collect())
}

/// The log file of `date`.
pub fn file_name(date: Date) -> String {
    format!(
        "{FILE_PREFIX}.{:04}-{:02}-{:02}.{FILE_SUFFIX}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Whether `name` is one of our log files (then its date orders it).
fn is_log_file(name: &str) -> bool {
    name.strip_prefix(FILE_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(FILE_SUFFIX))
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|date| {
            date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
}

/// Removes the oldest log files until those left add up to `max_bytes` or
/// less. The newest file (the one being written) is never removed. Returns
/// the files removed. Failures are skipped: pruning must not stop logging.
pub fn prune(dir: &Path, max_bytes: u64) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf, u64)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let meta = entry.metadata().ok()?;
            (is_log_file(&name) && meta.is_file()).then(|| (name, entry.path(), meta.len()))
        })
        .collect();
    // Dated names sort oldest first.
    files.sort();
    let mut total: u64 = files.iter().map(|(_, _, len)| len).sum();
    let mut removed = Vec::new();
    let newest = files.len().saturating_sub(1);
    for (_, path, len) in files.into_iter().take(newest) {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            files = removed.len(),
            max_bytes,
            "removed the oldest log files: the log directory was over its cap"
        );
    }
    removed
}

/// Prunes every [`PRUNE_EVERY`] on a thread of its own, for as long as the
/// process lives.
fn keep_pruning(dir: PathBuf, max_bytes: u64) {
    let spawned = std::thread::Builder::new()
        .name("log-prune".into())
        .spawn(move || {
            loop {
                std::thread::sleep(PRUNE_EVERY);
                prune(&dir, max_bytes);
            }
        });
    if let Err(e) = spawned {
        eprintln!("toolbridge-mcp: cannot start pruning old logs: {e}");
    }
}

/// A writer that passes at most `max_bytes` a day to the day's file: past
/// that it writes one line saying so and drops the rest until the next day.
/// It sees each log line whole (the fmt layer writes one line per call).
struct Capped<W> {
    inner: W,
    max_bytes: u64,
    /// The day counted (UTC, as the appender rotates) and the bytes its file
    /// holds.
    day: Date,
    written: u64,
    /// The cap-reached line is written for `day`.
    said: bool,
}

impl<W: Write> Capped<W> {
    /// Counts from the size today's file in `dir` already has.
    fn new(inner: W, dir: &Path, max_bytes: u64) -> Self {
        let day = OffsetDateTime::now_utc().date();
        let written = std::fs::metadata(dir.join(file_name(day))).map_or(0, |m| m.len());
        Self {
            inner,
            max_bytes,
            day,
            written,
            said: false,
        }
    }

    fn write_on(&mut self, today: Date, buf: &[u8]) -> io::Result<usize> {
        if today != self.day {
            self.day = today;
            self.written = 0;
            self.said = false;
        }
        let len = buf.len() as u64;
        if self.written + len <= self.max_bytes {
            self.inner.write_all(buf)?;
            self.written += len;
        } else if !self.said {
            self.said = true;
            let line = format!(
                "{{\"timestamp\":\"{}\",\"level\":\"WARN\",\"message\":\"log file cap reached: the lines after this one today are dropped\",\"max_bytes\":{}}}\n",
                rfc3339_now(),
                self.max_bytes
            );
            self.inner.write_all(line.as_bytes())?;
            self.written += line.len() as u64;
        }
        // A dropped line is still "written": the caller's `write_all` must not
        // retry it.
        Ok(buf.len())
    }
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_on(OffsetDateTime::now_utc().date(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn rfc3339_now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    /// A level or directives ending in levels pass; a bare word (which
    /// `EnvFilter` takes as a target) or nothing does not.
    #[test]
    fn log_filters_are_levels_or_directives() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "warn,toolbridge_mcp=trace",
            "toolbridge_mcp::upstream=debug",
            "toolbridge_mcp[call{tool=x}]=debug",
        ] {
            assert_eq!(parse_filter(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "verbose",
            "",
            " , ",
            "toolbridge_mcp",
            "toolbridge_mcp=loud",
            "info,noisy",
        ] {
            let refused = parse_filter(bad).unwrap_err();
            assert!(
                refused.contains("error, warn, info, debug, trace, off"),
                "{bad}: {refused}"
            );
        }
    }

    fn write(dir: &Path, name: &str, len: usize) {
        std::fs::write(dir.join(name), vec![b'x'; len]).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The oldest go first until the rest fit; the newest stays even when
    /// it alone is over; files that are not ours are never touched.
    #[test]
    fn prune_removes_the_oldest_until_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (day, len) in [(25, 400), (26, 300), (27, 200), (28, 100)] {
            write(
                d,
                &file_name(date!(2026 - 11 - 01).replace_day(day).unwrap()),
                len,
            );
        }
        write(d, "notes.txt", 5000);
        write(d, "toolbridge-mcp.2026-11-2x.jsonl", 5000);
        let removed = prune(d, 350);
        assert_eq!(removed.len(), 2);
        assert_eq!(
            names(d),
            [
                "notes.txt",
                "toolbridge-mcp.2026-11-27.jsonl",
                "toolbridge-mcp.2026-11-28.jsonl",
                "toolbridge-mcp.2026-11-2x.jsonl"
            ]
        );
        assert!(prune(d, 300).is_empty(), "already under the cap");
        assert_eq!(prune(d, 10).len(), 1);
        assert_eq!(
            names(d),
            [
                "notes.txt",
                "toolbridge-mcp.2026-11-28.jsonl",
                "toolbridge-mcp.2026-11-2x.jsonl"
            ],
            "the newest stays"
        );
    }

    /// Past the cap one line says so and the rest of the day is dropped; a
    /// new day starts counting again.
    #[test]
    fn the_days_file_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut capped = Capped::new(Vec::new(), dir.path(), 100);
        let day = capped.day;
        let line = [b'a'; 40];
        for _ in 0..5 {
            assert_eq!(capped.write_on(day, &line).unwrap(), 40);
        }
        let text = String::from_utf8(capped.inner.clone()).unwrap();
        assert_eq!(text.matches("aaaa").count(), 2 * 10, "two lines fit");
        assert_eq!(text.matches("log file cap reached").count(), 1);
        let before = capped.inner.len();
        capped.write_on(day.next_day().unwrap(), &line).unwrap();
        assert_eq!(capped.inner.len(), before + 40, "a new day, a new count");
    }

    /// Today's file counts from its size when the process starts.
    #[test]
    fn counts_from_the_size_of_todays_file() {
        let dir = tempfile::tempdir().unwrap();
        let today = OffsetDateTime::now_utc().date();
        write(dir.path(), &file_name(today), 90);
        let mut capped = Capped::new(Vec::new(), dir.path(), 100);
        capped.write_on(today, &[b'a'; 20]).unwrap();
        assert!(!capped.inner.starts_with(b"aaaa"));
    }

    #[test]
    fn file_names_are_what_stats_reads() {
        assert_eq!(
            file_name(date!(2026 - 01 - 05)),
            "toolbridge-mcp.2026-01-05.jsonl"
        );
        assert!(is_log_file("toolbridge-mcp.2026-01-05.jsonl"));
        assert!(!is_log_file("toolbridge-mcp.2026-01-05.jsonl.gz"));
        assert!(!is_log_file("toolbridge-mcp.jsonl"));
    }
}
