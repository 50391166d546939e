//! `toolbridge-mcp stats`: what the sidecar's own JSON log files say about its
//! tool calls and its upstream, as an aligned table, one JSON document, or a
//! self-contained HTML page.
//!
//! - This file: the options, the `--since` window, and which log files can
//!   overlap it.
//! - [`scan`]: reads those files line by line into running totals; the log
//!   messages it understands are in one table there.
//! - [`report`]: the finished numbers ([`report::Summary`]) as text or JSON.
//! - [`html`]: the same numbers as an HTML page with inline SVG charts.
//!
//! The log files are the only store: stats keeps nothing of its own and needs
//! no upstream.

mod html;
mod report;
mod scan;

use std::io::Write;
use std::path::{Path, PathBuf};

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, UtcOffset};

use report::Summary;

/// Log file names: `toolbridge-mcp.YYYY-MM-DD.jsonl`, as [`crate::logging`]
/// names them (prefix, daily rotation, suffix).
const FILE_DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");

/// What `toolbridge-mcp stats` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub log_dir: PathBuf,
    /// `30m`, `24h`, `7d`, a date or an RFC 3339 time.
    pub since: String,
    /// Only this tool's calls.
    pub tool: Option<String>,
    /// List the failed calls.
    pub errors: bool,
    pub json: bool,
    /// Also write the HTML report here.
    pub html: Option<PathBuf>,
}

/// Why stats could not answer, with the exit code for each kind.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// Anything the filesystem said (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl StatsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

/// Reads the log files that can overlap the window, writes the HTML report
/// when asked, and returns what goes to stdout.
pub fn run(options: &Options) -> Result<String, StatsError> {
    let now = OffsetDateTime::now_utc();
    let since = parse_since(&options.since, now).map_err(StatsError::BadInput)?;
    let files = log_files(&options.log_dir, since.date())?;
    let mut scan = scan::Scan::new(scan::Wanted {
        since,
        tool: options.tool.clone(),
        failures: options.errors,
        timeline: options.html.is_some(),
    });
    for path in &files {
        match scan.read_file(path) {
            Ok(()) => {}
            // Pruned by a running sidecar's rotation since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StatsError::Failed(format!(
                    "cannot read the log file {}: {e}",
                    path.display()
                )));
            }
        }
    }
    let names = files
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let summary = Summary::new(scan, &options.log_dir, names, since, now);
    if let Some(path) = &options.html {
        write_private(path, html::render(&summary).as_bytes()).map_err(|e| {
            StatsError::Failed(format!(
                "cannot write the HTML report to {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(match (options.json, options.errors) {
        (true, _) => report::json(&summary),
        (false, true) => report::failures_text(&summary),
        (false, false) => report::text(&summary),
    })
}

/// The start of the window: a duration back from `now` (`90s`, `30m`, `24h`,
/// `7d`), a date (its midnight, UTC) or an RFC 3339 time.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let text = text.trim();
    if let Some(ago) = parse_ago(text) {
        return now
            .checked_sub(ago)
            .ok_or_else(|| format!("--since `{text}` reaches back too far"));
    }
    if let Ok(date) = Date::parse(text, FILE_DATE) {
        return Ok(date.midnight().assume_utc());
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.to_offset(UtcOffset::UTC));
    }
    Err(format!(
        "--since `{text}` is not a duration (30m, 24h, 7d), a date (2026-11-29) or an RFC 3339 time (2026-11-29T08:00:00Z)"
    ))
}

/// `30m` → 30 minutes; `None` for anything else (including an overflow).
fn parse_ago(text: &str) -> Option<time::Duration> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let seconds = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        'd' => n.checked_mul(86_400),
        _ => None,
    }?;
    Some(time::Duration::seconds(seconds))
}

/// The date in a log file's name, if it is one of ours.
fn log_file_date(name: &str) -> Option<Date> {
    let date = name
        .strip_prefix(crate::logging::FILE_PREFIX)?
        .strip_prefix('.')?
        .strip_suffix(crate::logging::FILE_SUFFIX)?
        .strip_suffix('.')?;
    Date::parse(date, FILE_DATE).ok()
}

/// The log files dated `from` or later, oldest first. A line is written to
/// the file of the day it is written in, never earlier than its timestamp, so
/// older files cannot hold a line of the window.
fn log_files(dir: &Path, from: Date) -> Result<Vec<PathBuf>, StatsError> {
    let no_logs = || StatsError::Failed(format!("no logs yet in {}", dir.display()));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_logs()),
        Err(e) => {
            return Err(StatsError::Failed(format!(
                "cannot read the log directory {}: {e}",
                dir.display()
            )));
        }
    };
    let mut dated: Vec<(Date, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let date = log_file_date(entry.file_name().to_str()?)?;
            Some((date, entry.path()))
        })
        .collect();
    if dated.is_empty() {
        return Err(no_logs());
    }
    dated.retain(|(date, _)| *date >= from);
    dated.sort();
    Ok(dated.into_iter().map(|(_, path)| path).collect())
}

/// Writes `bytes` to `path` readable by its owner only (0600 on unix): the
/// report reveals who used which tools when. An existing file is narrowed too.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all(file, bytes)
    }
    #[cfg(not(unix))]
    {
        write_all(options.open(path)?, bytes)
    }
}

fn write_all(mut file: std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn since_accepts_durations_dates_and_times() {
        let now = datetime!(2026-11-30 10:00 UTC);
        assert_eq!(parse_since("30m", now), Ok(datetime!(2026-11-30 9:30 UTC)));
        assert_eq!(parse_since("24h", now), Ok(datetime!(2026-11-29 10:00 UTC)));
        assert_eq!(parse_since("7d", now), Ok(datetime!(2026-11-23 10:00 UTC)));
        assert_eq!(
            parse_since("2026-11-29", now),
            Ok(datetime!(2026-11-29 0:00 UTC))
        );
        assert_eq!(
            parse_since("2026-11-29T08:00:00+02:00", now),
            Ok(datetime!(2026-11-29 6:00 UTC))
        );
        for bad in [
            "",
            "h",
            "24",
            "-1h",
            "1.5h",
            "24 hours",
            "99999999999999999d",
            "2026-13-01",
            "１h",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn only_our_log_files_have_a_date() {
        assert_eq!(
            log_file_date("toolbridge-mcp.2026-11-29.jsonl"),
            Some(time::macros::date!(2026 - 11 - 29))
        );
        for other in [
            "toolbridge-mcp.jsonl",
            "toolbridge-mcp.2026-11-29.jsonl.gz",
            "other.2026-11-29.jsonl",
            "toolbridge-mcp.2026-11-29-10.jsonl",
        ] {
            assert_eq!(log_file_date(other), None, "{other}");
        }
    }
}
