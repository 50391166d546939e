//! Log lines that answer questions, through the real binary: each tool
//! call's line names the item it acted on, the bytes it returned and the
//! upstream's own correlation id when that differs from ours; one startup
//! line says what is running against what and where it writes; the log
//! directory stays under its size cap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::upstream::{self, UID};
use common::{Launch, McpProcess, ok};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Log lines with this `message`, waiting (5 s at most) until `done` holds
/// for them: lines of background work land at their own time.
async fn lines(dir: &Path, message: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<Value> = common::log_text(dir)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == message)
            .collect();
        if done(&found) || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call_line(mcp: &McpProcess, tool: &str) -> Value {
    let found = lines(&mcp.log_dir, "tool call", |l| {
        l.iter().any(|line| line["tool"] == tool)
    })
    .await;
    found
        .into_iter()
        .find(|line| line["tool"] == tool)
        .unwrap_or_else(|| panic!("no `tool call` line for {tool}:\n{}", mcp.log_text()))
}

/// The text a host shows for a result: its first content block.
fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}

/// `uid` is the item acted on (the one a create made, too), never the
/// payload; `bytes` is exactly the length of the JSON the result carries;
/// a list has no uid. Our correlation id echoed back adds nothing.
#[tokio::test]
async fn call_lines_name_the_item_and_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::embedded(&dir.path().join("t.db")).spawn().await;
    mcp.initialize().await;
    let created = mcp
        .call_tool("create_note", json!({"title": "quarterly secret plan"}))
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    let got = mcp.call_tool("get_note", json!({"uid": uid})).await;
    let listed = mcp.call_tool("list_notes", json!({})).await;
    let missing = mcp
        .call_tool(
            "get_task",
            json!({"uid": "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2"}),
        )
        .await;

    for (tool, result) in [
        ("create_note", &created),
        ("get_note", &got),
        ("list_notes", &listed),
        ("get_task", &missing),
    ] {
        let line = call_line(&mcp, tool).await;
        assert_eq!(
            line["bytes"].as_u64(),
            Some(text(result).len() as u64),
            "{tool}: {line}"
        );
        assert!(line.get("upstream_correlation_id").is_none(), "{line}");
        assert!(!line.to_string().contains("quarterly"), "a payload: {line}");
    }
    assert_eq!(call_line(&mcp, "create_note").await["uid"], uid.as_str());
    assert_eq!(call_line(&mcp, "get_note").await["uid"], uid.as_str());
    assert!(call_line(&mcp, "list_notes").await.get("uid").is_none());
    assert_eq!(
        call_line(&mcp, "get_task").await["uid"],
        "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2"
    );
    mcp.shutdown().await;
}

/// An upstream (or a proxy before it) that answers with a correlation id of
/// its own: the line carries it beside ours, so either side can be searched.
#[tokio::test]
async fn an_upstreams_own_correlation_id_is_logged() {
    let server = MockServer::start().await;
    upstream::mount_session(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/notes/{UID}")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Correlation-Id", "edge-7f00")
                .set_body_json(upstream::item(UID, 2)),
        )
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    let line = call_line(&mcp, "get_note").await;
    assert_eq!(line["upstream_correlation_id"], "edge-7f00", "{line}");
    assert_ne!(line["correlation_id"], "edge-7f00");
    mcp.shutdown().await;
}

/// A failed call's line says why: `error_code` and `error_message`, the
/// message the model saw, cut at 1,000 characters when an upstream's text
/// runs longer.
#[tokio::test]
async fn a_failed_calls_line_has_its_error_code_and_message() {
    let server = MockServer::start().await;
    upstream::mount_session(&server).await;
    let long = format!("bad note: {}", "all work and no play ".repeat(100));
    Mock::given(method("GET"))
        .and(path(format!("/v1/notes/{UID}")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": long})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tasks/{UID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "task not found"})))
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let missing = common::err(&mcp.call_tool("get_task", json!({"uid": UID})).await);
    let refused = common::err(&mcp.call_tool("get_note", json!({"uid": UID})).await);

    let line = call_line(&mcp, "get_task").await;
    assert_eq!(line["error_code"], "not_found", "{line}");
    assert_eq!(line["error_message"], missing["message"], "{line}");
    let line = call_line(&mcp, "get_note").await;
    assert_eq!(line["error_code"], "invalid_input", "{line}");
    let logged = line["error_message"].as_str().unwrap();
    let seen = refused["message"].as_str().unwrap();
    assert!(seen.chars().count() > 1000, "{seen}");
    assert_eq!(logged.chars().count(), 1000, "{logged}");
    let kept = logged.strip_suffix('…').unwrap();
    assert!(seen.starts_with(kept), "{logged}");
    assert!(call_line(&mcp, "get_task").await.get("error").is_none());
    mcp.shutdown().await;
}

/// `attempts` counts the call's own requests, so a clean call reads 1; the
/// session the first call opens is `setup_requests`, and later calls have
/// none.
#[tokio::test]
async fn attempts_count_only_the_calls_own_requests() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    ok(&mcp.call_tool("get_task", json!({"uid": UID})).await);
    let first = call_line(&mcp, "get_note").await;
    assert_eq!(first["attempts"], 1, "{first}");
    assert_eq!(first["setup_requests"], 1, "the session: {first}");
    let second = call_line(&mcp, "get_task").await;
    assert_eq!(second["attempts"], 1, "{second}");
    assert_eq!(second["setup_requests"], 0, "{second}");
    mcp.shutdown().await;
}

/// The embedded API's line for a failed request carries the correlation id
/// of the call that sent it, so the two lines join: a damaged database (an
/// error line, and the call not retried) and a missing item (a refusal, at
/// debug level).
#[tokio::test]
async fn the_embedded_apis_error_line_joins_the_calls_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    common::damaged_database(&db).await;
    let mut mcp = Launch::embedded(&db)
        .env("TOOLBRIDGE_REPLICA", "off")
        .spawn()
        .await;
    mcp.initialize().await;
    let error = common::err(&mcp.call_tool("list_notes", json!({})).await);
    let call = call_line(&mcp, "list_notes").await;
    assert_eq!(call["correlation_id"], error["correlation_id"]);
    assert_eq!(call["attempts"], 1, "not retried: {call}");
    let api = lines(&mcp.log_dir, "embedded API error", |l| !l.is_empty()).await;
    assert_eq!(api.len(), 1, "{api:?}");
    assert_eq!(api[0]["correlation_id"], error["correlation_id"], "{api:?}");
    assert_eq!(api[0]["kind"], "database_damaged", "{api:?}");
    assert_eq!(api[0]["path"], "/v1/notes", "{api:?}");

    let missing = common::err(&mcp.call_tool("get_task", json!({"uid": UID})).await);
    let refused = lines(&mcp.log_dir, "embedded API refused a request", |l| {
        l.iter().any(|line| line["status"] == 404)
    })
    .await;
    let line = refused.iter().find(|line| line["status"] == 404);
    let line = line.unwrap_or_else(|| panic!("no refusal line: {refused:?}"));
    assert_eq!(line["correlation_id"], missing["correlation_id"], "{line}");
    assert_eq!(line["path"], format!("/v1/tasks/{UID}"), "{line}");
    mcp.shutdown().await;
}

/// One line at startup: version, upstream, tenant, replica and log
/// directories, the log cap. No token.
#[tokio::test]
async fn a_startup_line_says_what_runs_where() {
    let server = upstream::plausible_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::remote(&server.uri())
        .with_replica(&dir.path().join("replicas"), "2")
        .arg("--max-log-mb")
        .arg("7")
        .spawn()
        .await;
    mcp.initialize().await;
    let found = lines(&mcp.log_dir, "starting", |l| !l.is_empty()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let line = &found[0];
    assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(line["upstream"], server.uri().as_str());
    assert_eq!(line["tenant"], upstream::TENANT);
    assert_eq!(
        line["replica_dir"],
        dir.path().join("replicas").display().to_string()
    );
    assert_eq!(line["log_dir"], mcp.log_dir.display().to_string());
    assert_eq!(line["max_log_mb"], 7);
    assert!(!mcp.log_text().contains(upstream::TOKEN));
    mcp.shutdown().await;
}

/// Old log files past `--max-log-mb` are removed at startup, oldest first,
/// until the rest fit; files that are not logs are left alone.
#[test]
fn the_log_directory_stays_under_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let old = |day: u32| logs.join(format!("toolbridge-mcp.2026-01-{day:02}.jsonl"));
    for day in 1..=3 {
        std::fs::write(old(day), vec![b'\n'; 600 * 1024]).unwrap();
    }
    std::fs::write(logs.join("keep.txt"), vec![b'x'; 2 * 1024 * 1024]).unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["call", "list_notes", "--max-log-mb", "1", "--db-path"])
        .arg(dir.path().join("t.db"))
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", &logs)
        .env("TOOLBRIDGE_REPLICA", "off")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!old(1).exists() && !old(2).exists(), "the oldest go first");
    assert!(old(3).exists(), "what fits stays");
    assert!(logs.join("keep.txt").exists());
    let total: u64 = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(total <= 1024 * 1024, "{total} bytes of logs");
    assert!(
        common::log_text(&logs).contains("removed the oldest log files"),
        "the removal is logged"
    );
}

/// A call's line is in the log file by the time its answer arrives, so the
/// audit holds every answered call even when the process is killed right
/// after (the line is written by the call, not handed to a writer thread).
#[tokio::test]
async fn each_line_is_written_before_its_answer() {
    let server = upstream::plausible_upstream().await;
    // A directory of the test's own: the harness's goes with the process.
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("logs");
    let mut mcp = Launch::remote(&server.uri())
        .env("TOOLBRIDGE_LOG", "info")
        .log_dir(&dir)
        .spawn()
        .await;
    mcp.initialize().await;
    let count = |mcp: &McpProcess| {
        mcp.log_text()
            .lines()
            .filter(|l| l.contains(r#""message":"tool call""#))
            .count()
    };
    for answered in 1..=1000 {
        ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
        assert_eq!(
            count(&mcp),
            answered,
            "the line of answered call {answered} is missing"
        );
    }
    mcp.kill().await;
    let lines = common::log_text(&dir);
    assert_eq!(lines.matches(r#""message":"tool call""#).count(), 1000);
}
