//! `toolbridge-mcp stats` at scale and in a browser, through the real binary:
//! a generated log of 100,000 calls over five rotated files, with corrupt
//! lines, whose `--json` figures must equal those counted here
//! independently; and the `--html` report opened in headless Chromium, whose
//! screenshot must not be blank and whose SVG must hold one mark per failed
//! call in the window.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_toolbridge-mcp");

const TOOLS: [&str; 8] = [
    "get_note",
    "list_notes",
    "create_note",
    "patch_task",
    "list_tasks",
    "search",
    "get_chat",
    "delete_comment",
];
const CODES: [&str; 5] = [
    "not_found",
    "timeout",
    "conflict",
    "upstream_unavailable",
    "rate_limited",
];

/// xorshift64*: the same log on every run, without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One tool's figures, counted here.
#[derive(Default)]
struct Tool {
    calls: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    durations: Vec<f64>,
    retries: u64,
    waited_ms: f64,
    stale: u64,
    bytes: u64,
    max_bytes: u64,
}

impl Tool {
    fn add(&mut self, other: &Tool) {
        self.calls += other.calls;
        self.ok += other.ok;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.durations.extend(&other.durations);
        self.retries += other.retries;
        self.waited_ms += other.waited_ms;
        self.stale += other.stale;
        self.bytes += other.bytes;
        self.max_bytes = self.max_bytes.max(other.max_bytes);
    }

    /// Nearest rank: the smallest value with at least `p` % at or below it.
    fn percentile(&self, p: usize) -> f64 {
        let mut sorted = self.durations.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (p * sorted.len()).div_ceil(100).max(1);
        sorted[rank - 1]
    }

    /// What stats must say for this tool.
    fn check(&self, name: &str, got: &Value) {
        let failed: u64 = self.errors.values().sum();
        assert_eq!(got["calls"], self.calls, "{name} calls");
        assert_eq!(got["ok"], self.ok, "{name} ok");
        assert_eq!(got["failed"], failed, "{name} failed");
        assert_eq!(got["errors"], json!(self.errors), "{name} errors");
        for (key, p) in [("p50", 50), ("p95", 95)] {
            assert_eq!(
                got["duration_ms"][key].as_f64(),
                Some(self.percentile(p)),
                "{name} {key}"
            );
        }
        assert_eq!(
            got["duration_ms"]["max"].as_f64(),
            Some(self.percentile(100)),
            "{name} max"
        );
        assert_eq!(got["retries"], self.retries, "{name} retries");
        assert_eq!(
            got["waited_ms"].as_f64(),
            Some(self.waited_ms),
            "{name} waited"
        );
        assert_eq!(got["stale"], self.stale, "{name} stale");
        assert_eq!(got["bytes"], self.bytes, "{name} bytes");
        assert_eq!(got["max_bytes"], self.max_bytes, "{name} max_bytes");
    }
}

/// Everything stats must report, counted while the log is written.
#[derive(Default)]
struct Expected {
    read: u64,
    before_window: u64,
    skipped: u64,
    tools: BTreeMap<String, Tool>,
    statuses: BTreeMap<u16, u64>,
    resessions: u64,
    refreshes: u64,
    fetched: u64,
    rebuilds: u64,
    /// (opened_at, closed_at, open_s)
    openings: Vec<(String, String, f64)>,
    /// Failed calls in the window.
    failed: u64,
    /// Calls (in the window) that failed with each code.
    failed_by_code: BTreeMap<String, u64>,
    /// Calls that failed fast in a burst while the circuit was open.
    bursts: u64,
}

/// Calls in each burst of fast failures.
const BURST: u64 = 40;

/// A log file being written, and what its lines count for.
struct File {
    bytes: Vec<u8>,
}

impl File {
    fn line(&mut self, expected: &mut Expected, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.bytes.push(b'\n');
        expected.read += 1;
    }
}

/// `2026-11-DDTHH:MM:SS[.mmm]Z`, as the writer stamps it; the fraction only
/// when there is one (RFC 3339 as stats prints it back).
fn stamp(day: u32, ms_of_day: u64) -> String {
    let (s, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    let base = format!(
        "2026-11-{day:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{}Z", format!("{ms:03}").trim_end_matches('0'))
    }
}

const HOUR_MS: u64 = 3_600_000;

/// Writes `days` daily files of `per_day` calls each (and an older file
/// that is outside the window) into `dir`; the window starts at noon of
/// `first_day`. Counts what stats must report.
fn generate(dir: &Path, first_day: u32, days: u32, per_day: u64, seed: u64) -> Expected {
    let mut rng = Rng(seed);
    let mut expected = Expected::default();
    let window_start = 12 * HOUR_MS;

    // A day before the window: its file is not even read.
    let older = (0..10)
        .map(|i| {
            call_json(
                &stamp(first_day - 1, i * 1000),
                "get_note",
                "ok",
                1.0,
                &json!({}),
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join(name(first_day - 1)), older + "\n").unwrap();

    for day in first_day..first_day + days {
        let mut file = File { bytes: Vec::new() };
        let in_window = |ms: u64| day > first_day || ms >= window_start;
        // Before the window, in the first day's file: read, not counted.
        if day == first_day {
            for status in [429, 503, 503] {
                let line = event(
                    &stamp(day, HOUR_MS),
                    "upstream status",
                    json!({"status": status}),
                );
                file.line(&mut expected, line.as_bytes());
                expected.before_window += 1;
            }
        }
        let step = 86_400_000 / per_day;
        for i in 0..per_day {
            let ms = i * step;
            let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
            let roll = rng.below(100);
            let outcome = if roll < 88 {
                "ok"
            } else {
                CODES[(roll % 5) as usize]
            };
            // Multiples of 1/8 ms: exact as the f32 stats keeps.
            let duration = rng.below(40_000) as f64 / 8.0;
            let mut extra = json!({"status": 200});
            let retries = if rng.below(10) == 0 {
                rng.below(3) + 1
            } else {
                0
            };
            if retries > 0 {
                extra["retries"] = json!(retries);
            }
            let waited = if rng.below(20) == 0 {
                rng.below(200) as f64 / 2.0
            } else {
                0.0
            };
            if waited > 0.0 {
                extra["waited_ms"] = json!(waited);
            }
            let stale = outcome == "ok" && rng.below(50) == 0;
            extra["stale"] = json!(stale);
            // One line in ten from before `bytes` was logged.
            let bytes = if rng.below(10) == 0 {
                0
            } else {
                let n = rng.below(100_000);
                extra["bytes"] = json!(n);
                n
            };
            if rng.below(4) == 0 {
                extra["uid"] = json!("6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70");
                extra["upstream_correlation_id"] = json!(format!("edge-{i}"));
            }
            if outcome != "ok" {
                extra["error"] = json!(format!("{outcome} on call {i}"));
            }
            let line = call_json(&stamp(day, ms), tool, outcome, duration, &extra);
            file.line(&mut expected, line.as_bytes());
            if !in_window(ms) {
                expected.before_window += 1;
                continue;
            }
            let t = expected.tools.entry(tool.to_owned()).or_default();
            t.calls += 1;
            if outcome == "ok" {
                t.ok += 1;
            } else {
                *t.errors.entry(outcome.to_owned()).or_default() += 1;
                expected.failed += 1;
                *expected
                    .failed_by_code
                    .entry(outcome.to_owned())
                    .or_default() += 1;
            }
            t.durations.push(duration);
            t.retries += retries;
            t.waited_ms += waited;
            t.stale += u64::from(stale);
            t.bytes += bytes;
            t.max_bytes = t.max_bytes.max(bytes);

            // Now and then, a line that is not one of ours or is broken.
            if rng.below(4000) == 0 {
                let broken = corrupt(&line, rng.below(5), day);
                file.line(&mut expected, &broken);
                expected.skipped += 1;
            }
            if rng.below(3000) == 0 {
                file.bytes.push(b'\n');
            }
        }
        // The upstream's side of the day, in the window.
        let evening = 20 * HOUR_MS;
        for k in 0..30u64 {
            let status = [429u16, 503, 502, 500][rng.below(4) as usize];
            let line = event(
                &stamp(day, evening + k * 1000),
                "upstream status",
                json!({"status": status, "correlation_id": "c"}),
            );
            file.line(&mut expected, line.as_bytes());
            *expected.statuses.entry(status).or_default() += 1;
        }
        for k in 0..4u64 {
            let line = event(
                &stamp(day, evening + 40_000 + k * 1000),
                "renewing the sync session",
                json!({"status": 428}),
            );
            file.line(&mut expected, line.as_bytes());
            expected.resessions += 1;
        }
        for k in 0..10u64 {
            let fetched = rng.below(1000);
            let line = event(
                &stamp(day, evening + 60_000 + k * 1000),
                "replica refreshed",
                json!({"entity": "notes", "fetched": fetched}),
            );
            file.line(&mut expected, line.as_bytes());
            expected.refreshes += 1;
            expected.fetched += fetched;
        }
        let rebuilt = if day % 2 == 0 {
            event(
                &stamp(day, evening + 80_000),
                "replica rebuilt: the upstream's data epoch changed",
                json!({"from": 1, "to": 2}),
            )
        } else {
            event(
                &stamp(day, evening + 80_000),
                "replica unusable, rebuilding it empty",
                json!({"reason": "not a readable SQLite file"}),
            )
        };
        file.line(&mut expected, rebuilt.as_bytes());
        expected.rebuilds += 1;
        for k in 0..2u64 {
            let opened = evening + 100_000 + k * 60_000;
            let line = event(
                &stamp(day, opened),
                "circuit opened: the upstream keeps failing",
                json!({"cooldown_s": 15.0}),
            );
            file.line(&mut expected, line.as_bytes());
            // While it is open, a burst of calls fails at once, all alike:
            // they land on one spot of the timeline.
            for n in 0..BURST {
                let line = call_json(
                    &stamp(day, opened + 1000 + n),
                    "get_note",
                    "upstream_unavailable",
                    0.25,
                    &json!({"bytes": 120}),
                );
                file.line(&mut expected, line.as_bytes());
                let t = expected.tools.entry("get_note".to_owned()).or_default();
                t.calls += 1;
                *t.errors
                    .entry("upstream_unavailable".to_owned())
                    .or_default() += 1;
                t.durations.push(0.25);
                t.bytes += 120;
                t.max_bytes = t.max_bytes.max(120);
                expected.failed += 1;
                *expected
                    .failed_by_code
                    .entry("upstream_unavailable".to_owned())
                    .or_default() += 1;
                expected.bursts += 1;
            }
            for (ms, message) in [
                (opened + 15_000, "circuit half-open: probing the upstream"),
                (
                    opened + 15_500,
                    "circuit closed: the upstream answered the probe",
                ),
            ] {
                let line = event(&stamp(day, ms), message, json!({"cooldown_s": 15.0}));
                file.line(&mut expected, line.as_bytes());
            }
            expected
                .openings
                .push((stamp(day, opened), stamp(day, opened + 15_500), 15.5));
        }
        // The writer was cut off mid-line in the middle file.
        if day == first_day + days / 2 {
            let cut = call_json(&stamp(day, 86_399_000), "get_note", "ok", 1.0, &json!({}));
            file.bytes
                .extend_from_slice(&cut.as_bytes()[..cut.len() / 2]);
            expected.read += 1;
            expected.skipped += 1;
        }
        std::fs::write(dir.join(name(day)), &file.bytes).unwrap();
    }
    expected
}

fn name(day: u32) -> String {
    format!("toolbridge-mcp.2026-11-{day:02}.jsonl")
}

/// A "tool call" line as `Service::run` writes it.
fn call_json(at: &str, tool: &str, outcome: &str, ms: f64, extra: &Value) -> String {
    let mut line = json!({
        "timestamp": at,
        "level": "INFO",
        "message": "tool call",
        "tool": tool,
        "correlation_id": "21ac0bd4-121d-4a33-a665-b6d7e8a6bedf",
        "attempts": 1,
        "duration_ms": ms,
        "outcome": outcome,
    });
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    line["target"] = json!("toolbridge_mcp::service");
    line.to_string()
}

fn event(at: &str, message: &str, extra: Value) -> String {
    let mut line = json!({"timestamp": at, "level": "INFO", "message": message});
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    line.to_string()
}

/// A line stats must skip, of one of five kinds; in the window when it has
/// a time at all.
fn corrupt(good: &str, kind: u64, day: u32) -> Vec<u8> {
    let late = stamp(day, 86_000_000);
    match kind {
        0 => good.as_bytes()[..good.len() / 3].to_vec(),
        1 => b"GET /healthz 200 0.3ms".to_vec(),
        2 => b"\xff\xfe{\"timestamp\": \x00".to_vec(),
        3 => format!(
            r#"{{"timestamp":"{late}","message":"tool call","tool":"get_note","outcome":"ok","duration_ms":"slow"}}"#
        )
        .into_bytes(),
        _ => format!(
            r#"{{"timestamp":"{late}","message":"tool call","tool":"get_note","outcome":"ok","duration_ms":1,"bytes":-5}}"#
        )
        .into_bytes(),
    }
}

fn stats(dir: &Path, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = Command::new(BIN)
        .arg("stats")
        .arg("--log-dir")
        .arg(dir)
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "stats {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output, took)
}

/// 100,000 calls in five daily files (and an older file outside the
/// window; 400 more in bursts while the circuit is open), with corrupt,
/// truncated, foreign and blank lines: every figure
/// of `stats --json` equals the one counted while the files were written.
/// The time stats takes is printed, not asserted.
#[test]
fn json_figures_over_100k_calls_equal_an_independent_count() {
    let dir = tempfile::tempdir().unwrap();
    let expected = generate(dir.path(), 1, 5, 20_000, 0x9E37_79B9_7F4A_7C15);
    let (output, took) = stats(dir.path(), &["--json", "--since", "2026-11-01T12:00:00Z"]);
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "stats --json over {} lines ({:.1} MB in 6 files): {:.0} ms ({} build)",
        expected.read,
        size as f64 / 1e6,
        took.as_secs_f64() * 1000.0,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let s: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(
        s["files"],
        json!((1..=5).map(name).collect::<Vec<_>>()),
        "the older file is not read"
    );
    assert_eq!(
        s["lines"],
        json!({"read": expected.read, "before_window": expected.before_window, "skipped": expected.skipped})
    );
    assert!(
        expected.skipped >= 10,
        "few corrupt lines: {}",
        expected.skipped
    );
    let tools = s["tools"].as_object().unwrap();
    assert_eq!(
        tools.keys().collect::<Vec<_>>(),
        expected.tools.keys().collect::<Vec<_>>()
    );
    let mut total = Tool::default();
    for (name, tool) in &expected.tools {
        tool.check(name, &s["tools"][name]);
        total.add(tool);
    }
    total.check("total", &s["total"]);
    assert_eq!(
        total.calls,
        90_000 + expected.bursts,
        "the first morning is before the window"
    );

    let up = &s["upstream"];
    assert_eq!(up["circuit_openings"], expected.openings.len());
    let circuit: Vec<Value> = expected
        .openings
        .iter()
        .map(|(opened, closed, open_s)| {
            json!({"opened_at": opened, "closed_at": closed, "open_s": open_s, "closed": true, "reopened": 0})
        })
        .collect();
    assert_eq!(up["circuit"], json!(circuit));
    assert_eq!(up["resessions"], expected.resessions);
    let by_status: BTreeMap<String, u64> = expected
        .statuses
        .iter()
        .map(|(status, n)| (status.to_string(), *n))
        .collect();
    assert_eq!(up["by_status"], json!(by_status));
    assert_eq!(up["status_429"], expected.statuses[&429]);
    assert_eq!(
        up["status_5xx"],
        expected
            .statuses
            .range(500..600)
            .map(|(_, n)| n)
            .sum::<u64>()
    );
    assert_eq!(
        up["replica"],
        json!({
            "refreshes": expected.refreshes,
            "fetched": expected.fetched,
            "rebuilds": expected.rebuilds,
            "stale_reads": total.stale,
        })
    );
}

/// Chromium from Debian, if installed.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Runs Chromium headless on `page`, writing a 1200×900 screenshot; kills
/// it past a minute.
fn screenshot(browser: &Path, page: &Path, png: &Path, profile: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success() && png.is_file(),
        "chromium failed: {stderr}"
    );
}

/// RGB pixels of a PNG, with its size.
fn decode(png: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0]; 3],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, pixels)
}

/// `#rrggbb` drawn at 0.9 opacity on white, as the failed calls' marks are.
fn on_white(hex: &str, opacity: f64) -> [u8; 3] {
    let channel = |i: usize| {
        let c = f64::from(u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap());
        (opacity * c + (1.0 - opacity) * 255.0).round() as u8
    };
    [channel(0), channel(1), channel(2)]
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (i16::from(*x) - i16::from(y)).abs() <= 24)
}

/// The HTML report of a generated day (its morning outside the window),
/// opened in headless Chromium: the screenshot is not blank and shows the
/// colors of the failed calls, and the timeline's SVG holds exactly one
/// mark per failed call in the window (the bursts of alike failures
/// included), none for those before it. Skipped,
/// saying so, where Chromium is not installed; CI installs it (`.ci/run`),
/// and there a missing browser fails.
#[test]
fn html_report_renders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("no chromium under CI: .ci/run installs it");
        }
        eprintln!(
            "skipped html_report_renders_in_a_headless_browser: no chromium here (apt-get install chromium, as .ci/run does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let expected = generate(&logs, 10, 1, 4_000, 42);
    assert!(expected.failed > 100, "{}", expected.failed);
    let report = dir.path().join("report.html");
    stats(
        &logs,
        &[
            "--since",
            "2026-11-10T12:00:00Z",
            "--html",
            report.to_str().unwrap(),
        ],
    );
    let page = std::fs::read_to_string(&report).unwrap();

    // One mark (`M x y`) per failed call, per code.
    let mut marks: BTreeMap<String, u64> = BTreeMap::new();
    for path in page.split("<path ").skip(1) {
        let path = &path[..path.find("/>").unwrap()];
        if !path.contains("class=\"failed\"") {
            continue;
        }
        let code = path
            .split("data-outcome=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let d = path.split(" d=\"").nth(1).unwrap();
        let d = &d[..d.find('"').unwrap()];
        *marks.entry(code.to_owned()).or_default() += d.matches('M').count() as u64;
    }
    assert_eq!(marks, expected.failed_by_code, "one mark per failed call");
    assert_eq!(marks.values().sum::<u64>(), expected.failed);

    let png = dir.path().join("report.png");
    let started = Instant::now();
    screenshot(&browser, &report, &png, &dir.path().join("profile"));
    eprintln!(
        "chromium screenshot: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (width, height, pixels) = decode(&png);
    assert_eq!((width, height), (1200, 900));
    let white = pixels.iter().filter(|p| **p == [255, 255, 255]).count();
    let mut colors: Vec<[u8; 3]> = pixels.clone();
    colors.sort_unstable();
    colors.dedup();
    assert!(
        white < pixels.len() * 99 / 100 && colors.len() > 16,
        "a blank screenshot: {white} of {} pixels white, {} colors",
        pixels.len(),
        colors.len()
    );
    // The failed calls are visible in their codes' colors.
    for (code, color) in [("timeout", "#d62728"), ("not_found", "#1f77b4")] {
        let want = on_white(color, 0.9);
        let seen = pixels.iter().filter(|p| near(**p, want)).count();
        assert!(seen >= 20, "{code}: {seen} pixels near {want:?}");
    }
}
