//! The HTML report: one self-contained page with inline SVG drawn here. No
//! scripts, fonts, images or links to fetch, and a Content-Security-Policy
//! that forbids them anyway. Every string that came from the log (tool names,
//! codes, the log directory, file names) is escaped: the file may have been
//! tampered with.
//!
//! The charts are hand-written SVG rather than `plotters`: three plain charts
//! are a page of code, and this way the escaping, the size (successful calls
//! that land on the same spot are drawn once; each failed call is a mark of
//! its own) and the markup (no namespace URL, no fonts) stay in our hands,
//! with no new dependency.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::report::{Summary, ToolSummary, to_second};
use crate::error::ErrorCode;
use crate::logging::shorten;

/// One color per error code, the same in every report.
const CODE_COLORS: &[(ErrorCode, &str)] = &[
    (ErrorCode::InvalidInput, "#9467bd"),
    (ErrorCode::NotFound, "#1f77b4"),
    (ErrorCode::Gone, "#17becf"),
    (ErrorCode::Conflict, "#e377c2"),
    (ErrorCode::Unauthorized, "#8c564b"),
    (ErrorCode::Forbidden, "#bcbd22"),
    (ErrorCode::RateLimited, "#ff7f0e"),
    (ErrorCode::Timeout, "#d62728"),
    (ErrorCode::Cancelled, "#2ca02c"),
    (ErrorCode::UpstreamUnavailable, "#000000"),
    (ErrorCode::UpstreamError, "#ad494a"),
];
const OK_COLOR: &str = "#9fb3c8";
/// A code this build does not know (a newer or a forged log).
const OTHER_COLOR: &str = "#555555";
const OPEN_COLOR: &str = "#d62728";

// The timeline's geometry, in SVG units.
const WIDTH: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const PLOT_HEIGHT: f64 = 280.0;
const BOTTOM: f64 = 40.0;
/// Successful calls closer than this many units on both axes are one dot:
/// the page stays small for a million calls. Failed calls, what a reader
/// counts and looks for, are never merged.
const CELL: f64 = 2.0;
/// The fastest duration the log scale shows; faster calls sit on its floor.
const FLOOR_MS: f64 = 0.01;

const STYLE: &str = "
body { font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; }
.meta { color: #57606a; margin-top: 0; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.4em 1.2em; }
ul.legend span { display: inline-block; width: 10px; height: 10px; margin-right: 0.35em; border-radius: 50%; vertical-align: -1px; }
ul.legend span.area { border-radius: 0; opacity: 0.3; width: 14px; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.8em 0.2em 0; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text { text-align: left; }
th { border-bottom: 1px solid #d0d7de; font-weight: 600; }
tr.total td { border-top: 1px solid #d0d7de; font-weight: 600; }
";

/// The whole page.
pub fn render(s: &Summary) -> String {
    let mut page = String::with_capacity(64 * 1024);
    page.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta name=\"referrer\" content=\"no-referrer\">\n",
        "<title>toolbridge-mcp stats</title>\n<style>",
    ));
    page.push_str(STYLE);
    page.push_str("</style>\n</head>\n<body>\n<h1>toolbridge-mcp stats</h1>\n");
    let _ = writeln!(
        page,
        "<p class=\"meta\">{} to {} UTC · {} in {}{} · {} lines read, {} skipped (corrupt, truncated or foreign)</p>",
        to_second(s.window.since),
        to_second(s.window.until),
        count(s.files.len() as u64, "log file"),
        esc(&s.log_dir),
        s.tool
            .as_deref()
            .map(|t| format!(" · only {}", esc(t)))
            .unwrap_or_default(),
        s.lines.read,
        s.lines.skipped,
    );

    page.push_str("<h2>Calls over time</h2>\n");
    timeline(&mut page, s);
    page.push_str("<h2>Calls and error rate per tool</h2>\n");
    bars(&mut page, s);
    page.push_str("<h2>Per tool</h2>\n");
    tool_table(&mut page, s);
    page.push_str("<h2>Upstream</h2>\n");
    upstream(&mut page, s);
    page.push_str("</body>\n</html>\n");
    page
}

/// Latency of each call over time on a log scale, errors colored by code,
/// circuit openings as shaded spans.
fn timeline(page: &mut String, s: &Summary) {
    let spans: Vec<(f64, f64)> = s
        .upstream
        .circuit
        .iter()
        .map(|o| {
            let start = seconds(o.opened_at);
            (start, start + o.open_s)
        })
        .collect();
    let times = s
        .points
        .iter()
        .map(|p| p.at)
        .chain(spans.iter().flat_map(|&(a, b)| [a, b]));
    let (Some(t0), Some(t1)) = (times.clone().reduce(f64::min), times.reduce(f64::max)) else {
        page.push_str("<p>No calls in the window.</p>\n");
        return;
    };
    // A single instant still gets a readable axis.
    let (t0, t1) = if t1 - t0 < 1.0 {
        (t0 - 0.5, t1 + 0.5)
    } else {
        (t0, t1)
    };
    let fastest = s
        .points
        .iter()
        .map(|p| f64::from(p.ms))
        .fold(f64::INFINITY, f64::min);
    let slowest = s.points.iter().map(|p| f64::from(p.ms)).fold(1.0, f64::max);
    let lo = fastest.max(FLOOR_MS).min(slowest).log10().floor();
    let hi = slowest.log10().ceil().max(lo + 1.0);
    let plot_width = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0) * plot_width;
    let y = |ms: f64| TOP + (1.0 - (ms.max(FLOOR_MS).log10() - lo) / (hi - lo)) * PLOT_HEIGHT;
    let height = TOP + PLOT_HEIGHT + BOTTOM;

    let _ = writeln!(
        page,
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Duration of each call over time, log scale\">"
    );
    // Circuit openings first, behind the calls.
    for (o, &(start, end)) in s.upstream.circuit.iter().zip(&spans) {
        let (a, b) = (x(start), x(end));
        let _ = writeln!(
            page,
            "<rect x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{PLOT_HEIGHT}\" fill=\"{OPEN_COLOR}\" fill-opacity=\"0.15\"><title>circuit open at {} for {:.1} s{}</title></rect>",
            (b - a).max(2.0),
            to_second(o.opened_at),
            o.open_s,
            if o.closed {
                ""
            } else {
                " (its cooldown; no close logged)"
            },
        );
    }
    // Decades on the duration axis.
    let mut decade = lo;
    while decade <= hi {
        let ty = y(10f64.powf(decade));
        let _ = writeln!(
            page,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#eaeef2\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            duration_label(decade),
        );
        decade += 1.0;
    }
    // Time ticks.
    let (step, format) = time_step(t1 - t0);
    let mut tick = (t0 / step).ceil() * step;
    while tick <= t1 {
        let tx = x(tick);
        let label = OffsetDateTime::from_unix_timestamp(tick as i64)
            .ok()
            .and_then(|at| at.format(format).ok())
            .unwrap_or_default();
        let _ = writeln!(
            page,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#eaeef2\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP + PLOT_HEIGHT,
            TOP + PLOT_HEIGHT + 16.0,
        );
        tick += step;
    }
    let _ = writeln!(
        page,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_width}\" height=\"{PLOT_HEIGHT}\" fill=\"none\" stroke=\"#8c959f\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (UTC)</text>",
        LEFT + plot_width / 2.0,
        TOP + PLOT_HEIGHT + 34.0,
    );

    // The calls, `ok` first so errors are drawn on top; successes merged
    // per cell, one mark per failure.
    let mut seen = HashSet::new();
    let mut dots: BTreeMap<u16, String> = BTreeMap::new();
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    for p in &s.points {
        *counts.entry(p.outcome).or_default() += 1;
        let cell = (
            (x(p.at) / CELL) as i32,
            (y(f64::from(p.ms)) / CELL) as i32,
            p.outcome,
        );
        if p.outcome != 0 || seen.insert(cell) {
            let path = dots.entry(p.outcome).or_default();
            let _ = write!(
                path,
                "M{:.0} {:.0}h0",
                (f64::from(cell.0) + 0.5) * CELL,
                (f64::from(cell.1) + 0.5) * CELL
            );
        }
    }
    for (outcome, path) in &dots {
        let (class, color, width, opacity) = if *outcome == 0 {
            ("ok", OK_COLOR, 3, 0.7)
        } else {
            ("failed", code_color(s.outcome(*outcome)), 6, 0.9)
        };
        // `class` and `data-outcome` let a reader (or a test) pick the
        // marks of one outcome: each `M` of a failed path is one call.
        let _ = writeln!(
            page,
            "<path class=\"{class}\" data-outcome=\"{}\" d=\"{path}\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-linecap=\"round\" stroke-opacity=\"{opacity}\" fill=\"none\"/>",
            esc(s.outcome(*outcome))
        );
    }
    page.push_str("</svg>\n<ul class=\"legend\">\n");
    for (outcome, n) in &counts {
        let name = s.outcome(*outcome);
        let color = if *outcome == 0 {
            OK_COLOR
        } else {
            code_color(name)
        };
        let _ = writeln!(
            page,
            "<li><span style=\"background:{color}\"></span>{} ({n})</li>",
            esc(name)
        );
    }
    if !spans.is_empty() {
        let _ = writeln!(
            page,
            "<li><span class=\"area\" style=\"background:{OPEN_COLOR}\"></span>circuit open ({})</li>",
            spans.len()
        );
    }
    page.push_str("</ul>\n");
}

/// Per tool: a bar of calls (its failed part in red) and a bar of the error
/// rate out of 100 %.
fn bars(page: &mut String, s: &Summary) {
    if s.tools.is_empty() {
        page.push_str("<p>No calls in the window.</p>\n");
        return;
    }
    const ROW: f64 = 22.0;
    const LABEL: f64 = 200.0;
    const CALLS_AT: f64 = 210.0;
    const CALLS_WIDTH: f64 = 420.0;
    const RATE_AT: f64 = 730.0;
    const RATE_WIDTH: f64 = 160.0;
    let mut tools: Vec<(&String, &ToolSummary)> = s.tools.iter().collect();
    tools.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
    let most = tools.first().map_or(1, |(_, t)| t.calls.max(1)) as f64;
    let height = 24.0 + ROW * tools.len() as f64;
    let _ = writeln!(
        page,
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Calls and error rate per tool\">\n<text x=\"{CALLS_AT}\" y=\"12\">calls (failed in red)</text><text x=\"{RATE_AT}\" y=\"12\">error rate</text>"
    );
    for (i, (name, t)) in tools.iter().enumerate() {
        let top = 20.0 + ROW * i as f64;
        let mid = top + ROW / 2.0 + 4.0;
        let ok_width = t.ok as f64 / most * CALLS_WIDTH;
        let failed_width = t.failed as f64 / most * CALLS_WIDTH;
        let rate = if t.calls == 0 {
            0.0
        } else {
            t.failed as f64 / t.calls as f64
        };
        let _ = writeln!(
            page,
            "<g><title>{}: {} calls, {} failed ({:.1} %)</title>\
<text x=\"{LABEL}\" y=\"{mid:.1}\" text-anchor=\"end\">{}</text>\
<rect x=\"{CALLS_AT}\" y=\"{:.1}\" width=\"{ok_width:.1}\" height=\"14\" fill=\"{OK_COLOR}\"/>\
<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{failed_width:.1}\" height=\"14\" fill=\"{OPEN_COLOR}\"/>\
<text x=\"{:.1}\" y=\"{mid:.1}\">{}</text>\
<rect x=\"{RATE_AT}\" y=\"{:.1}\" width=\"{RATE_WIDTH}\" height=\"14\" fill=\"#f6f8fa\"/>\
<rect x=\"{RATE_AT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{OPEN_COLOR}\"/>\
<text x=\"{:.1}\" y=\"{mid:.1}\">{:.1} %</text></g>",
            esc(name),
            t.calls,
            t.failed,
            rate * 100.0,
            esc(&shorten(name, 30)),
            top + 4.0,
            CALLS_AT + ok_width,
            top + 4.0,
            CALLS_AT + ok_width + failed_width + 6.0,
            t.calls,
            top + 4.0,
            top + 4.0,
            rate * RATE_WIDTH,
            RATE_AT + RATE_WIDTH + 6.0,
            rate * 100.0,
        );
    }
    page.push_str("</svg>\n");
}

fn tool_table(page: &mut String, s: &Summary) {
    if s.tools.is_empty() {
        page.push_str("<p>No calls in the window.</p>\n");
        return;
    }
    page.push_str(
        "<table>\n<tr><th>tool</th><th>calls</th><th>ok</th><th>failed</th><th>p50 ms</th><th>p95 ms</th><th>max ms</th><th>retries</th><th>waited ms</th><th>stale</th><th>returned</th><th>errors</th></tr>\n",
    );
    for (name, t) in &s.tools {
        tool_row(page, name, t, "");
    }
    if s.tools.len() > 1 {
        tool_row(page, "total", &s.total, " class=\"total\"");
    }
    page.push_str("</table>\n");
}

fn tool_row(page: &mut String, name: &str, t: &ToolSummary, class: &str) {
    let mut cells = super::report::tool_row(name, t, esc);
    let errors = cells.pop().unwrap_or_default();
    let _ = write!(page, "<tr{class}>");
    for cell in cells {
        let _ = write!(page, "<td>{cell}</td>");
    }
    let _ = writeln!(page, "<td class=\"text\">{errors}</td></tr>");
}

fn upstream(page: &mut String, s: &Summary) {
    let u = &s.upstream;
    let r = &u.replica;
    let by_status: Vec<String> = u
        .by_status
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    let _ = writeln!(
        page,
        "<table>\n<tr><td>circuit openings</td><td>{}</td></tr>\n<tr><td>re-sessions</td><td>{}</td></tr>\n<tr><td>429 answers</td><td>{}</td></tr>\n<tr><td>5xx answers</td><td>{}</td></tr>\n<tr><td>by status</td><td class=\"text\">{}</td></tr>\n<tr><td>replica refreshes</td><td>{}</td></tr>\n<tr><td>items fetched</td><td>{}</td></tr>\n<tr><td>replica rebuilds</td><td>{}</td></tr>\n<tr><td>reads answered stale</td><td>{}</td></tr>\n</table>",
        u.circuit_openings,
        u.resessions,
        u.status_429,
        u.status_5xx,
        if by_status.is_empty() {
            "-".into()
        } else {
            by_status.join(", ")
        },
        r.refreshes,
        r.fetched,
        r.rebuilds,
        r.stale_reads,
    );
    if !u.circuit.is_empty() {
        page.push_str("<table>\n<tr><th>circuit opened (UTC)</th><th>open for</th><th>closed</th><th>reopened by failed probes</th></tr>\n");
        for o in &u.circuit {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{:.1} s</td><td>{}</td><td>{}</td></tr>",
                to_second(o.opened_at),
                o.open_s,
                if o.closed {
                    "yes"
                } else {
                    "no close logged: its cooldown"
                },
                o.reopened,
            );
        }
        page.push_str("</table>\n");
    }
    if s.tool.is_some() {
        page.push_str(
            "<p class=\"meta\">The upstream is shared: these are not filtered by tool.</p>\n",
        );
    }
}

impl Summary {
    /// The name of a [`super::scan::Point::outcome`].
    fn outcome(&self, index: u16) -> &str {
        self.outcomes
            .get(usize::from(index))
            .map_or("?", String::as_str)
    }
}

fn code_color(code: &str) -> &'static str {
    CODE_COLORS
        .iter()
        .find(|(c, _)| c.as_str() == code)
        .map_or(OTHER_COLOR, |(_, color)| color)
}

/// A tick every `step` seconds, at most about eight, and how to label them.
fn time_step(span: f64) -> (f64, &'static [BorrowedFormatItem<'static>]) {
    const STEPS: &[f64] = &[
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0,
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|step| span / step <= 8.0)
        .unwrap_or_else(|| (span / 8.0 / 86400.0).ceil() * 86400.0);
    let format: &'static [BorrowedFormatItem<'static>] = if step >= 86400.0 {
        format_description!("[month]-[day]")
    } else if span > 86400.0 {
        format_description!("[month]-[day] [hour]:[minute]")
    } else if step < 60.0 {
        format_description!("[hour]:[minute]:[second]")
    } else {
        format_description!("[hour]:[minute]")
    };
    (step, format)
}

/// `0.01 ms` … `100 ms`, `1 s`, `10 s`: exact labels, not `10f64.powf`'s.
fn duration_label(decade: f64) -> String {
    match decade as i32 {
        -2 => "0.01 ms".into(),
        -1 => "0.1 ms".into(),
        0 => "1 ms".into(),
        1 => "10 ms".into(),
        2 => "100 ms".into(),
        3 => "1 s".into(),
        4 => "10 s".into(),
        5 => "100 s".into(),
        n => format!("1e{n} ms"),
    }
}

fn seconds(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Text safe in HTML and SVG, both as content and inside a quoted attribute.
fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<b>x</b> & "y" 'z'"#),
            "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot; &#39;z&#39;"
        );
        assert_eq!(esc("get_note"), "get_note");
    }

    #[test]
    fn every_code_has_its_own_color() {
        for (i, (code, color)) in CODE_COLORS.iter().enumerate() {
            assert_eq!(code_color(code.as_str()), *color);
            assert!(
                CODE_COLORS[i + 1..].iter().all(|(_, c)| c != color),
                "{color}"
            );
            assert_ne!(*color, OK_COLOR);
        }
        assert_eq!(code_color("made_up"), OTHER_COLOR);
    }

    #[test]
    fn time_ticks_stay_few() {
        for span in [0.5, 30.0, 3600.0, 86400.0, 7.0 * 86400.0, 400.0 * 86400.0] {
            let (step, _) = time_step(span);
            assert!(span / step <= 8.0, "{span}: {step}");
        }
    }
}
