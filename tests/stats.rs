//! `toolbridge-mcp stats`, through the real binary: synthetic rotated log
//! files with known counts (and lines that are not ours), then real calls.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const BIN: &str = env!("CARGO_BIN_EXE_toolbridge-mcp");

/// Runs the binary with a clean environment (no TOOLBRIDGE_* from the host).
fn toolbridge(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .output()
        .expect("run toolbridge-mcp")
}

fn stats(logs: &Path, args: &[&str]) -> Output {
    let mut all = vec!["stats", "--log-dir", logs.to_str().unwrap()];
    all.extend_from_slice(args);
    toolbridge(&all)
}

fn stats_json(logs: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = stats(logs, &all);
    assert!(
        output.status.success(),
        "stats {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A "tool call" line as `Service::run` writes it, plus the optional fields.
fn call(at: &str, tool: &str, outcome: &str, ms: f64, extra: Value) -> String {
    let mut line = json!({
        "timestamp": at,
        "level": "INFO",
        "message": "tool call",
        "tool": tool,
        "correlation_id": format!("cid-{at}"),
        "attempts": 1,
        "duration_ms": ms,
        "outcome": outcome,
        "target": "toolbridge_mcp::service",
    });
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    line.to_string()
}

fn event(at: &str, level: &str, message: &str, extra: Value) -> String {
    let mut line = json!({"timestamp": at, "level": level, "message": message});
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    line.to_string()
}

fn write_log(dir: &Path, date: &str, lines: &[String], tail: &[u8]) {
    let mut text = lines.join("\n").into_bytes();
    text.push(b'\n');
    text.extend_from_slice(tail);
    std::fs::write(dir.join(format!("toolbridge-mcp.{date}.jsonl")), text).unwrap();
}

/// Three rotated days (the oldest outside `--since 2026-11-28`) with known
/// counts, four corrupt or foreign lines, a truncated last line, and files
/// that are not logs. Returns the directory.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(
        d,
        "2026-11-27",
        &(0..5)
            .map(|i| {
                call(
                    &format!("2026-11-27T10:00:0{i}Z"),
                    "get_note",
                    "ok",
                    1.0,
                    json!({}),
                )
            })
            .collect::<Vec<_>>(),
        b"",
    );

    let mut day1 = Vec::new();
    // list_notes: durations 1..=100 ms in a scrambled order; a retry on
    // every tenth call, 2.5 ms waited on every 25th.
    for i in 0..100u32 {
        let at = OffsetDateTime::parse("2026-11-28T10:00:00Z", &Rfc3339).unwrap()
            + Duration::seconds(i.into());
        let mut extra = json!({"status": 200});
        if i % 10 == 0 {
            extra["retries"] = json!(1);
        }
        if i % 25 == 0 {
            extra["waited_ms"] = json!(2.5);
        }
        day1.push(call(
            &at.format(&Rfc3339).unwrap(),
            "list_notes",
            "ok",
            f64::from((i * 37) % 100 + 1),
            extra,
        ));
    }
    day1.extend([
        call(
            "2026-11-28T10:05:00Z",
            "get_note",
            "ok",
            3.0,
            json!({"bytes": 512}),
        ),
        call(
            "2026-11-28T10:05:01Z",
            "get_note",
            "ok",
            1.5,
            json!({"stale": true, "bytes": 2048}),
        ),
        call(
            "2026-11-28T10:05:02Z",
            "get_note",
            "not_found",
            4.0,
            json!({"status": 404, "error": "note 1b2c does not exist"}),
        ),
        call(
            "2026-11-28T10:05:03Z",
            "get_note",
            "timeout",
            10000.0,
            json!({"error": "the upstream did not answer within 10 s"}),
        ),
    ]);
    for status in [429, 429, 429, 503, 503, 502] {
        day1.push(event(
            "2026-11-28T10:30:00Z",
            "WARN",
            "upstream status",
            json!({"status": status, "correlation_id": "c"}),
        ));
    }
    for status in [428, 409] {
        day1.push(event(
            "2026-11-28T10:40:00Z",
            "INFO",
            "renewing the sync session",
            json!({"status": status}),
        ));
    }
    // Opened, a failed probe opens it again, the next probe closes it.
    day1.extend([
        event(
            "2026-11-28T11:00:00Z",
            "WARN",
            "circuit opened: the upstream keeps failing",
            json!({"cooldown_s": 15.0, "threshold": 5}),
        ),
        event(
            "2026-11-28T11:00:15Z",
            "INFO",
            "circuit half-open: probing the upstream",
            json!({}),
        ),
        event(
            "2026-11-28T11:00:15Z",
            "WARN",
            "circuit opened: the upstream keeps failing",
            json!({"cooldown_s": 15.0, "threshold": 5}),
        ),
        event(
            "2026-11-28T11:00:32.5Z",
            "INFO",
            "circuit closed: the upstream answered the probe",
            json!({}),
        ),
        // Ours, but not counted: neither a call nor skipped.
        event(
            "2026-11-28T12:00:00Z",
            "INFO",
            "opened a sync session",
            json!({"epoch": 1}),
        ),
        // Skipped: foreign, corrupt.
        "GET /health 200 0.3ms".to_owned(),
        r#"{"level":30,"time":1764324000000,"msg":"another program"}"#.to_owned(),
        r#"{"timestamp":"2026-11-28T12:00:01Z","level":"INFO","message":"tool call","tool":"get_note","outcome":"ok","duration_ms":"slow"}"#.to_owned(),
        String::from_utf8_lossy(b"\xff\xfe\x00\x01").into_owned(),
    ]);
    write_log(d, "2026-11-28", &day1, b"");

    let day2 = vec![
        event(
            "2026-11-29T08:00:00Z",
            "WARN",
            "circuit opened: the upstream keeps failing",
            json!({"cooldown_s": 15.0, "threshold": 5}),
        ),
        event(
            "2026-11-29T08:00:00Z",
            "WARN",
            "upstream status",
            json!({"status": 500, "correlation_id": "c"}),
        ),
        call("2026-11-29T08:30:00Z", "create_note", "ok", 5.0, json!({})),
        call("2026-11-29T08:30:01Z", "create_note", "ok", 6.0, json!({})),
        call("2026-11-29T08:30:02Z", "create_note", "ok", 7.0, json!({})),
        call(
            "2026-11-29T09:00:00Z",
            "create_note",
            "conflict",
            8.0,
            json!({"status": 412, "error": "version mismatch: expected 1, the current version is 2",
                   "uid": "6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70", "upstream_correlation_id": "up-77"}),
        ),
        event(
            "2026-11-29T09:30:00Z",
            "INFO",
            "replica refreshed",
            json!({"entity": "notes", "fetched": 40}),
        ),
        event(
            "2026-11-29T09:31:00Z",
            "INFO",
            "replica refreshed",
            json!({"entity": "tasks", "fetched": 2}),
        ),
        event(
            "2026-11-29T09:32:00Z",
            "WARN",
            "replica rebuilt: the upstream's data epoch changed",
            json!({"from": 1, "to": 2}),
        ),
    ];
    // The writer was cut off mid-line.
    let partial = call("2026-11-29T09:40:00Z", "create_note", "ok", 1.0, json!({}));
    write_log(
        d,
        "2026-11-29",
        &day2,
        &partial.as_bytes()[..partial.len() / 2],
    );
    std::fs::write(d.join("notes.txt"), "not a log\n").unwrap();
    std::fs::write(d.join("toolbridge-mcp.2026-11-29.jsonl.bak"), "junk\n").unwrap();
    dir
}

/// The JSON numbers are exactly what the files hold: per-tool calls, errors
/// by code, nearest-rank percentiles of 1..=100 ms, retries and waits, the
/// skipped lines, circuit openings with their durations, re-sessions,
/// 429/5xx by status and the replica; the day before the window is not read.
#[test]
fn json_numbers_are_exact() {
    let dir = fixture();
    let s = stats_json(dir.path(), &["--since", "2026-11-28"]);
    assert_eq!(
        s["files"],
        json!([
            "toolbridge-mcp.2026-11-28.jsonl",
            "toolbridge-mcp.2026-11-29.jsonl"
        ])
    );
    assert_eq!(s["window"]["since"], "2026-11-28T00:00:00Z");
    // 100 + 4 calls, 6 status, 2 re-sessions, 4 circuit, 1 other, 4 skipped;
    // 9 lines and the truncated one.
    assert_eq!(
        s["lines"],
        json!({"read": 131, "before_window": 0, "skipped": 5})
    );

    let list = &s["tools"]["list_notes"];
    assert_eq!(
        (&list["calls"], &list["ok"], &list["failed"]),
        (&json!(100), &json!(100), &json!(0))
    );
    assert_eq!(
        list["duration_ms"],
        json!({"p50": 50.0, "p95": 95.0, "max": 100.0})
    );
    assert_eq!(
        (&list["retries"], &list["waited_ms"]),
        (&json!(10), &json!(10.0))
    );

    let get = &s["tools"]["get_note"];
    assert_eq!(
        (&get["calls"], &get["ok"], &get["failed"]),
        (&json!(4), &json!(2), &json!(2))
    );
    assert_eq!(get["errors"], json!({"not_found": 1, "timeout": 1}));
    assert_eq!(
        get["duration_ms"],
        json!({"p50": 3.0, "p95": 10000.0, "max": 10000.0})
    );
    assert_eq!(get["stale"], 1);
    assert_eq!(
        (&get["bytes"], &get["max_bytes"]),
        (&json!(2560), &json!(2048))
    );

    let create = &s["tools"]["create_note"];
    assert_eq!((&create["calls"], &create["ok"]), (&json!(4), &json!(3)));
    assert_eq!(create["errors"], json!({"conflict": 1}));

    let total = &s["total"];
    assert_eq!(
        (&total["calls"], &total["ok"], &total["failed"]),
        (&json!(108), &json!(105), &json!(3))
    );
    assert_eq!(
        total["errors"],
        json!({"conflict": 1, "not_found": 1, "timeout": 1})
    );
    assert_eq!(total["duration_ms"]["max"], 10000.0);

    let up = &s["upstream"];
    assert_eq!(up["circuit_openings"], 2);
    assert_eq!(
        up["circuit"],
        json!([
            {"opened_at": "2026-11-28T11:00:00Z", "closed_at": "2026-11-28T11:00:32.5Z",
             "open_s": 32.5, "closed": true, "reopened": 1},
            {"opened_at": "2026-11-29T08:00:00Z", "closed_at": null,
             "open_s": 15.0, "closed": false, "reopened": 0},
        ])
    );
    assert_eq!(up["resessions"], 2);
    assert_eq!(
        (&up["status_429"], &up["status_5xx"]),
        (&json!(3), &json!(4))
    );
    assert_eq!(
        up["by_status"],
        json!({"429": 3, "500": 1, "502": 1, "503": 2})
    );
    assert_eq!(
        up["replica"],
        json!({"refreshes": 2, "fetched": 42, "rebuilds": 1, "stale_reads": 1})
    );
    assert!(s.get("errors").is_none(), "errors only with --errors");
}

/// `--since` drops older lines and the files that cannot hold any; a
/// relative window counts back from now.
#[test]
fn since_excludes_older_lines() {
    let dir = fixture();
    let s = stats_json(dir.path(), &["--since", "2026-11-29T08:45:00Z"]);
    assert_eq!(s["files"], json!(["toolbridge-mcp.2026-11-29.jsonl"]));
    assert_eq!(s["tools"]["create_note"]["calls"], 1);
    assert!(s["tools"].get("list_notes").is_none());
    assert_eq!(s["upstream"]["circuit_openings"], 0);
    assert_eq!(s["upstream"]["status_5xx"], 0);
    assert_eq!(s["lines"]["before_window"], 5);
    assert_eq!(s["lines"]["skipped"], 1);

    // Relative to now: lines 1 hour and 3 days old, each in its day's file.
    let recent = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    for (age, tool) in [
        (Duration::hours(1), "get_task"),
        (Duration::days(3), "get_note"),
    ] {
        let at = now - age;
        write_log(
            recent.path(),
            &at.date().to_string(),
            &[call(
                &at.format(&Rfc3339).unwrap(),
                tool,
                "ok",
                1.0,
                json!({}),
            )],
            b"",
        );
    }
    let day = stats_json(recent.path(), &[]);
    assert_eq!(day["tools"], json!({"get_task": day["tools"]["get_task"]}));
    assert_eq!(day["tools"]["get_task"]["calls"], 1);
    let week = stats_json(recent.path(), &["--since", "7d"]);
    assert_eq!(week["total"]["calls"], 2);
    let half_hour = stats_json(recent.path(), &["--since", "30m"]);
    assert_eq!(half_hour["total"]["calls"], 0);
}

/// `--tool` keeps only that tool's calls; the upstream stays whole.
#[test]
fn tool_filter_keeps_one_tool() {
    let dir = fixture();
    let s = stats_json(dir.path(), &["--since", "2026-11-28", "--tool", "get_note"]);
    assert_eq!(s["tool"], "get_note");
    assert_eq!(
        s["tools"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["get_note"]
    );
    assert_eq!(s["total"]["calls"], 4);
    assert_eq!(s["upstream"]["circuit_openings"], 2);

    let text =
        String::from_utf8(stats(dir.path(), &["--since", "2026-11-28", "--tool", "nope"]).stdout)
            .unwrap();
    assert!(text.contains("No calls to nope in the window."), "{text}");
}

/// `--errors` lists the failed calls newest first with their correlation
/// ids and messages, as JSON and as text.
#[test]
fn errors_are_listed_newest_first() {
    let dir = fixture();
    let s = stats_json(dir.path(), &["--since", "2026-11-28", "--errors"]);
    let errors = s["errors"].as_array().unwrap();
    let ids: Vec<&str> = errors
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "cid-2026-11-29T09:00:00Z",
            "cid-2026-11-28T10:05:03Z",
            "cid-2026-11-28T10:05:02Z"
        ]
    );
    assert_eq!(
        errors[0],
        json!({
            "timestamp": "2026-11-29T09:00:00Z",
            "tool": "create_note",
            "code": "conflict",
            "correlation_id": "cid-2026-11-29T09:00:00Z",
            "upstream_correlation_id": "up-77",
            "uid": "6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70",
            "status": 412,
            "message": "version mismatch: expected 1, the current version is 2",
        })
    );

    let output = stats(dir.path(), &["--since", "2026-11-28", "--errors"]);
    let text = String::from_utf8(output.stdout).unwrap();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"))
    };
    assert!(at("cid-2026-11-29T09:00:00Z") < at("cid-2026-11-28T10:05:03Z"));
    assert!(at("cid-2026-11-28T10:05:03Z") < at("cid-2026-11-28T10:05:02Z"));
    assert!(text.contains("note 1b2c does not exist"), "{text}");
    assert!(
        text.contains(
            "cid-2026-11-29T09:00:00Z (upstream: up-77)  6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70"
        ),
        "{text}"
    );
    assert!(text.contains("Skipped 5 lines"), "{text}");
}

/// The default output is an aligned table: each number column ends where
/// its header does.
#[test]
fn text_is_an_aligned_table() {
    let dir = fixture();
    let output = stats(dir.path(), &["--since", "2026-11-28"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("tool "))
        .expect(&text);
    for column in ["calls", "p50 ms", "max ms", "retries"] {
        let end = lines[header].find(column).unwrap() + column.len();
        for row in &lines[header + 1..header + 5] {
            let cell = &row[..end];
            assert!(
                cell.ends_with(|c: char| c.is_ascii_digit()),
                "{column} not aligned in {row:?}\n{text}"
            );
        }
    }
    for needle in [
        "list_notes",
        "total",
        "conflict 1",
        "circuit openings  2",
        "open 32.5 s, then closed",
        "5xx answers       4 (500: 1, 502: 1, 503: 2)",
        "Skipped 5 lines",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

/// `--html` writes one self-contained page: inline SVG, no script, no
/// network reference, every string from the log escaped, owner-only.
#[test]
fn html_report_is_self_contained_and_private() {
    let dir = fixture();
    write_log(
        dir.path(),
        "2026-11-30",
        &[
            call("2026-11-30T10:00:00Z", "<b>x</b>", "ok", 2.0, json!({})),
            call(
                "2026-11-30T10:00:01Z",
                "<script>alert(1)</script>",
                "\"><script>alert(3)</script>",
                2.0,
                json!({"error": "<script>alert(2)</script>"}),
            ),
        ],
        b"",
    );
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.html");
    // An existing, world-readable file is narrowed too.
    std::fs::write(&report, "old").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let output = stats(
        dir.path(),
        &["--since", "2026-11-28", "--html", report.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.matches("<svg").count() >= 2, "a timeline and the bars");
    assert!(!page.to_lowercase().contains("<script"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
    assert!(!page.contains("<b>x</b>"));
    for needle in [
        "not_found",
        "timeout",
        "conflict",
        "circuit open",
        "list_notes",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

/// Bad input exits 2, a missing log directory or an unwritable report 1,
/// each with one line on stderr and nothing on stdout; stats needs no
/// upstream configuration (settings other commands refuse are ignored).
#[test]
fn errors_are_one_line_with_exit_codes() {
    let dir = fixture();
    let one_line = |output: &Output, code: i32, mentions: &str| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert!(output.stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(mentions),
            "{stderr} should mention {mentions}"
        );
    };
    for bad in ["yesterday", "24", "-3h", "2026-02-30"] {
        one_line(
            &stats(dir.path(), &[&format!("--since={bad}")]),
            2,
            "--since",
        );
    }
    let missing = dir.path().join("no-such-dir");
    one_line(&stats(&missing, &[]), 1, "no logs yet in");
    let empty = tempfile::tempdir().unwrap();
    one_line(&stats(empty.path(), &[]), 1, "no logs yet in");
    let unwritable = dir.path().join("no-such-dir").join("r.html");
    one_line(
        &stats(dir.path(), &["--html", unwritable.to_str().unwrap()]),
        1,
        "cannot write the HTML report",
    );

    // A token without an API URL stops every other command; not this one.
    let output = Command::new(BIN)
        .args([
            "stats",
            "--since",
            "2026-11-28",
            "--json",
            "--token",
            "x",
            "--api-url",
            "ftp://x",
        ])
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(s["total"]["calls"], 108);
}

/// End to end: real `call`s write the log, and stats reads them back. This
/// guards the tool-call line against drifting from what stats parses.
#[test]
fn reads_what_real_calls_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--db-path")
            .arg(&db)
            .arg("--log-dir")
            .arg(&logs)
            .env_clear()
            .output()
            .unwrap()
    };
    for title in ["a", "b"] {
        let created = run(&["call", "create_note", "--arg", &format!("title={title}")]);
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let missing = run(&["call", "get_note", "--arg", &format!("uid={uid}")]);
    assert_eq!(missing.status.code(), Some(3));
    let failure: Value = serde_json::from_slice(&missing.stderr).unwrap();

    let s = stats_json(&logs, &["--errors"]);
    assert_eq!(s["lines"]["skipped"], 0, "every line of ours parses");
    let create = &s["tools"]["create_note"];
    assert_eq!((&create["calls"], &create["ok"]), (&json!(2), &json!(2)));
    assert!(create["duration_ms"]["max"].as_f64().unwrap() > 0.0);
    let get = &s["tools"]["get_note"];
    assert_eq!(get["errors"], json!({"not_found": 1}));
    assert_eq!(s["errors"][0]["correlation_id"], failure["correlation_id"]);
    assert_eq!(s["errors"][0]["status"], 404);
    assert_eq!(
        s["errors"][0]["uid"],
        uid.as_str(),
        "the item the call asked for"
    );
    assert!(
        s["errors"][0].get("upstream_correlation_id").is_none(),
        "the embedded API echoes our id"
    );
    let created_bytes = create["bytes"].as_u64().unwrap();
    assert!(created_bytes > 100, "{create}");
    assert_eq!(
        get["bytes"], get["max_bytes"],
        "one call: its error's bytes"
    );
}
