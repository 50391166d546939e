//! The finished numbers, and how they read as text and as JSON. The HTML page
//! draws the same [`Summary`], so all three agree.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::scan::{Failure, Opening, Point, Scan, ToolTotals};

const SECOND: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
const MILLISECOND: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

/// Everything stats reports. Serialized, it is the `--json` document.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub log_dir: String,
    pub window: Window,
    /// The log files read (only those that can overlap the window).
    pub files: Vec<String>,
    pub lines: Lines,
    /// The `--tool` filter, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Per tool, by name.
    pub tools: BTreeMap<String, ToolSummary>,
    /// All the tools above together.
    pub total: ToolSummary,
    pub upstream: Upstream,
    /// The failed calls, newest first (`--errors`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FailedCall>>,
    /// Each call, for the HTML timeline (`--html`).
    #[serde(skip)]
    pub points: Vec<Point>,
    /// Names of [`Point::outcome`].
    #[serde(skip)]
    pub outcomes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Window {
    #[serde(serialize_with = "rfc3339")]
    pub since: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub until: OffsetDateTime,
}

#[derive(Debug, Serialize)]
pub struct Lines {
    /// Non-blank lines in the files read.
    pub read: u64,
    /// Well-formed lines older than the window.
    pub before_window: u64,
    /// Corrupt, truncated or foreign lines.
    pub skipped: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ToolSummary {
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    /// Failed calls by error code.
    pub errors: BTreeMap<String, u64>,
    /// `null` without calls.
    pub duration_ms: Option<Durations>,
    /// Backoff retries taken.
    pub retries: u64,
    /// Time spent waiting on rate-limit pauses and pacing.
    pub waited_ms: f64,
    /// Reads answered from the local replica while the upstream was away.
    pub stale: u64,
    /// Bytes returned to the caller (the results' compact JSON), and the
    /// most one call returned.
    pub bytes: u64,
    pub max_bytes: u64,
}

/// Nearest-rank percentiles: p50 is the smallest duration at least half the
/// calls took no longer than.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Durations {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Upstream {
    pub circuit_openings: usize,
    pub circuit: Vec<CircuitOpening>,
    /// Sync sessions renewed after the upstream lost one.
    pub resessions: u64,
    /// Attempts answered 429.
    pub status_429: u64,
    /// Attempts answered 5xx.
    pub status_5xx: u64,
    /// Both, by status.
    pub by_status: BTreeMap<u16, u64>,
    pub replica: Replica,
}

#[derive(Debug, Serialize)]
pub struct CircuitOpening {
    #[serde(serialize_with = "rfc3339")]
    pub opened_at: OffsetDateTime,
    /// `null` when no close line follows.
    #[serde(serialize_with = "rfc3339_or_null")]
    pub closed_at: Option<OffsetDateTime>,
    /// Until closed; without a close line, until its last cooldown ran out.
    pub open_s: f64,
    pub closed: bool,
    /// Failed probes that opened it again.
    pub reopened: u64,
}

#[derive(Debug, Serialize)]
pub struct Replica {
    pub refreshes: u64,
    /// Items fetched by those refreshes.
    pub fetched: u64,
    pub rebuilds: u64,
    /// Reads answered stale (the tools' `stale` summed).
    pub stale_reads: u64,
}

#[derive(Debug, Serialize)]
pub struct FailedCall {
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    pub tool: String,
    pub code: String,
    pub correlation_id: Option<String>,
    /// The upstream's own id for the call, when it differs from ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_correlation_id: Option<String>,
    /// The item the call acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u64>,
    pub message: Option<String>,
}

impl Summary {
    pub fn new(
        scan: Scan,
        log_dir: &Path,
        files: Vec<String>,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Self {
        let failures = scan.wanted().failures;
        let tool = scan.wanted().tool.clone();
        let mut all_durations = Vec::new();
        let mut total = ToolSummary::default();
        let mut tools = BTreeMap::new();
        for (name, totals) in scan.tools {
            all_durations.extend_from_slice(&totals.durations);
            let summary = ToolSummary::new(totals);
            total.add(&summary);
            tools.insert(name, summary);
        }
        total.duration_ms = durations(&mut all_durations);
        let by_status = scan.statuses;
        let mut errors: Vec<FailedCall> = scan.failures.into_iter().map(FailedCall::from).collect();
        // Stable: calls logged in the same instant keep the log's order, reversed.
        errors.reverse();
        errors.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        Self {
            log_dir: log_dir.display().to_string(),
            window: Window { since, until },
            files,
            lines: Lines {
                read: scan.read,
                before_window: scan.before_window,
                skipped: scan.skipped,
            },
            tool,
            upstream: Upstream {
                circuit_openings: scan.openings.len(),
                circuit: scan.openings.iter().map(CircuitOpening::from).collect(),
                resessions: scan.resessions,
                status_429: by_status.get(&429).copied().unwrap_or(0),
                status_5xx: by_status.range(500..600).map(|(_, n)| n).sum(),
                by_status,
                replica: Replica {
                    refreshes: scan.refreshes,
                    fetched: scan.fetched,
                    rebuilds: scan.rebuilds,
                    stale_reads: total.stale,
                },
            },
            tools,
            total,
            errors: failures.then_some(errors),
            points: scan.points,
            outcomes: scan.outcomes,
        }
    }
}

impl ToolSummary {
    fn new(mut totals: ToolTotals) -> Self {
        Self {
            calls: totals.calls,
            ok: totals.ok,
            failed: totals.calls - totals.ok,
            duration_ms: durations(&mut totals.durations),
            errors: totals.errors,
            retries: totals.retries,
            waited_ms: round3(totals.waited_ms),
            stale: totals.stale,
            bytes: totals.bytes,
            max_bytes: totals.max_bytes,
        }
    }

    fn add(&mut self, other: &ToolSummary) {
        self.calls += other.calls;
        self.ok += other.ok;
        self.failed += other.failed;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.retries += other.retries;
        self.waited_ms = round3(self.waited_ms + other.waited_ms);
        self.stale += other.stale;
        self.bytes += other.bytes;
        self.max_bytes = self.max_bytes.max(other.max_bytes);
    }
}

impl From<&Opening> for CircuitOpening {
    fn from(o: &Opening) -> Self {
        let end = o
            .closed
            .unwrap_or(o.last_opened + time::Duration::seconds_f64(o.cooldown_s));
        Self {
            opened_at: o.opened,
            closed_at: o.closed,
            open_s: round3((end - o.opened).as_seconds_f64()),
            closed: o.closed.is_some(),
            reopened: o.reopened,
        }
    }
}

impl From<Failure> for FailedCall {
    fn from(f: Failure) -> Self {
        Self {
            timestamp: f.at,
            tool: f.tool,
            code: f.code,
            correlation_id: f.correlation_id,
            upstream_correlation_id: f.upstream_correlation_id,
            uid: f.uid,
            status: f.status,
            message: f.message,
        }
    }
}

/// p50, p95 and max by nearest rank; `None` without durations.
fn durations(values: &mut [f32]) -> Option<Durations> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f32::total_cmp);
    let n = values.len();
    // The smallest value with at least p% of the values at or below it.
    let rank = |percent: usize| values[(percent * n).div_ceil(100).clamp(1, n) - 1];
    Some(Durations {
        p50: round3(f64::from(rank(50))),
        p95: round3(f64::from(rank(95))),
        max: round3(f64::from(values[n - 1])),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rfc3339<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    match at.format(&Rfc3339) {
        Ok(text) => s.serialize_str(&text),
        Err(e) => Err(serde::ser::Error::custom(e)),
    }
}

fn rfc3339_or_null<S: Serializer>(at: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// `2026-11-30 10:28:45`, in UTC like the log.
pub fn to_second(at: OffsetDateTime) -> String {
    at.format(SECOND).unwrap_or_default()
}

fn to_millisecond(at: OffsetDateTime) -> String {
    at.format(MILLISECOND).unwrap_or_default()
}

/// A string from the log made safe for a terminal: control characters (an
/// escape sequence planted in a tampered file) are shown escaped.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// The `--json` document.
pub fn json(summary: &Summary) -> String {
    let mut text = serde_json::to_string_pretty(summary).unwrap_or_default();
    text.push('\n');
    text
}

/// The tables: per tool, then the upstream.
pub fn text(s: &Summary) -> String {
    let mut out = header(s);
    if s.tools.is_empty() {
        match &s.tool {
            Some(tool) => {
                let _ = writeln!(out, "No calls to {} in the window.", printable(tool));
            }
            None => out.push_str("No tool calls in the window.\n"),
        }
    } else {
        let mut rows: Vec<Vec<String>> = s
            .tools
            .iter()
            .map(|(name, t)| tool_row(name, t, printable))
            .collect();
        if s.tools.len() > 1 {
            rows.push(tool_row("total", &s.total, printable));
        }
        out.push_str(&table(
            &[
                ("tool", Align::Left),
                ("calls", Align::Right),
                ("ok", Align::Right),
                ("failed", Align::Right),
                ("p50 ms", Align::Right),
                ("p95 ms", Align::Right),
                ("max ms", Align::Right),
                ("retries", Align::Right),
                ("waited ms", Align::Right),
                ("stale", Align::Right),
                ("returned", Align::Right),
                ("errors", Align::Left),
            ],
            &rows,
        ));
    }

    let u = &s.upstream;
    out.push_str("\nUpstream\n");
    let mut rows = vec![vec![
        "circuit openings".to_owned(),
        u.circuit_openings.to_string(),
    ]];
    for o in &u.circuit {
        let mut how = if o.closed {
            format!("open {:.1} s, then closed", o.open_s)
        } else {
            format!("open {:.1} s (its cooldown; no close logged)", o.open_s)
        };
        if o.reopened > 0 {
            let _ = write!(how, ", reopened {} times by failed probes", o.reopened);
        }
        rows.push(vec![
            String::new(),
            format!("{}  {how}", to_second(o.opened_at)),
        ]);
    }
    rows.push(vec!["re-sessions".into(), u.resessions.to_string()]);
    rows.push(vec!["429 answers".into(), u.status_429.to_string()]);
    let by_5xx: Vec<String> = u
        .by_status
        .iter()
        .filter(|(status, _)| (500..600).contains(*status))
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    rows.push(vec![
        "5xx answers".into(),
        if by_5xx.is_empty() {
            u.status_5xx.to_string()
        } else {
            format!("{} ({})", u.status_5xx, by_5xx.join(", "))
        },
    ]);
    let r = &u.replica;
    rows.push(vec![
        "replica".into(),
        format!(
            "{} refreshes, {} items fetched, {} reads answered stale, {} rebuilds",
            r.refreshes, r.fetched, r.stale_reads, r.rebuilds
        ),
    ]);
    for row in rows {
        let _ = writeln!(out, "  {:<18}{}", row[0], row[1]);
    }
    if s.tool.is_some() {
        out.push_str("  (the upstream is shared: these are not filtered by --tool)\n");
    }
    out.push_str(&footer(s));
    out
}

/// `--errors`: the failed calls, newest first.
pub fn failures_text(s: &Summary) -> String {
    let mut out = header(s);
    let errors = s.errors.as_deref().unwrap_or_default();
    if errors.is_empty() {
        out.push_str("No failed calls in the window.\n");
    } else {
        let rows: Vec<Vec<String>> = errors
            .iter()
            .map(|e| {
                vec![
                    to_millisecond(e.timestamp),
                    printable(&e.tool).into_owned(),
                    printable(&e.code).into_owned(),
                    match (&e.correlation_id, &e.upstream_correlation_id) {
                        (Some(ours), Some(theirs)) => {
                            format!("{} (upstream: {})", printable(ours), printable(theirs))
                        }
                        (Some(ours), None) => printable(ours).into_owned(),
                        (None, _) => "-".into(),
                    },
                    e.uid
                        .as_deref()
                        .map_or("-".into(), |u| printable(u).into_owned()),
                    e.message
                        .as_deref()
                        .map_or("-".into(), |m| printable(m).into_owned()),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                ("time (UTC)", Align::Left),
                ("tool", Align::Left),
                ("code", Align::Left),
                ("correlation id", Align::Left),
                ("uid", Align::Left),
                ("message", Align::Left),
            ],
            &rows,
        ));
    }
    out.push_str(&footer(s));
    out
}

fn header(s: &Summary) -> String {
    format!(
        "Tool calls from {} to {} UTC ({} in {})\n\n",
        to_second(s.window.since),
        to_second(s.window.until),
        plural(s.files.len() as u64, "log file"),
        printable(&s.log_dir)
    )
}

fn footer(s: &Summary) -> String {
    if s.lines.skipped == 0 {
        return String::new();
    }
    format!(
        "\nSkipped {} that {} not this program's log lines (corrupt, truncated or foreign).\n",
        plural(s.lines.skipped, "line"),
        if s.lines.skipped == 1 { "is" } else { "are" }
    )
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One tool's cells, for the text table and the HTML page alike; `clean`
/// makes a name or an error code from the log safe for where it goes.
pub(super) fn tool_row(
    name: &str,
    t: &ToolSummary,
    clean: fn(&str) -> Cow<'_, str>,
) -> Vec<String> {
    let ms = |pick: fn(&Durations) -> f64| {
        t.duration_ms
            .as_ref()
            .map_or("-".into(), |d| format!("{:.1}", pick(d)))
    };
    let errors: Vec<String> = t
        .errors
        .iter()
        .map(|(code, n)| format!("{} {n}", clean(code)))
        .collect();
    vec![
        clean(name).into_owned(),
        t.calls.to_string(),
        t.ok.to_string(),
        t.failed.to_string(),
        ms(|d| d.p50),
        ms(|d| d.p95),
        ms(|d| d.max),
        t.retries.to_string(),
        format!("{:.0}", t.waited_ms),
        t.stale.to_string(),
        human_bytes(t.bytes),
        errors.join(", "),
    ]
}

/// `812 B`, `4.2 kB`, `17.0 MB`, `1.3 GB` (powers of 1000).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart; the last column
/// is not padded.
fn table(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|(h, _)| (*h).to_owned()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, (cell, ((_, align), width))) in
            row.iter().zip(header.iter().zip(&widths)).enumerate()
        {
            let pad = width.saturating_sub(cell.chars().count());
            let last = i + 1 == header.len();
            if i > 0 {
                line.push_str("  ");
            }
            match align {
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
                Align::Left => {
                    line.push_str(cell);
                    if !last {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut values: Vec<f32> = (1..=100).rev().map(|v| v as f32).collect();
        let d = durations(&mut values).unwrap();
        assert_eq!((d.p50, d.p95, d.max), (50.0, 95.0, 100.0));
        let d = durations(&mut [7.0]).unwrap();
        assert_eq!((d.p50, d.p95, d.max), (7.0, 7.0, 7.0));
        let d = durations(&mut [1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((d.p50, d.p95, d.max), (2.0, 4.0, 4.0));
        assert!(durations(&mut []).is_none());
    }

    #[test]
    fn bytes_read_as_people_say_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1000), "1.0 kB");
        assert_eq!(human_bytes(4_250), "4.2 kB");
        assert_eq!(human_bytes(999_960), "1.0 MB");
        assert_eq!(human_bytes(17_000_000), "17.0 MB");
        assert_eq!(human_bytes(u64::MAX), "18446744.1 TB");
    }

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &[
                ("tool", Align::Left),
                ("calls", Align::Right),
                ("errors", Align::Left),
            ],
            &[
                vec!["get_note".into(), "12".into(), "not_found 1".into()],
                vec!["x".into(), "3".into(), String::new()],
            ],
        );
        assert_eq!(
            text,
            "tool      calls  errors\nget_note     12  not_found 1\nx             3\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(printable("get_note"), "get_note");
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
