//! The fault-injection matrix: one test per way the upstream can fail, through
//! the real binary's stdio against a raw-TCP upstream that misbehaves on
//! command ([`common::faulty`]). Each row checks the result's `code`, the
//! upstream attempts (counted at the server, and in the call's log line), an
//! upper bound on the elapsed time, and for writes that nothing was lost or
//! duplicated (a retried create resends its client-made uid).
//!
//! Bounds are generous on purpose: the suite runs on small, shared machines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::faulty::{Fault, FaultyServer, Recorded};
use common::upstream::UID;
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Short attempts and a deadline that always leaves room for all three
/// attempts (3 × 0.3 s plus at most 0.4 + 0.8 s of jittered backoff).
const QUICK: &[&str] = &[
    "--attempt-timeout",
    "0.3",
    "--call-timeout",
    "4",
    "--max-retries",
    "2",
];

async fn launch(url: &str, extra: &[&str]) -> McpProcess {
    let mut mcp = Launch::remote(url).args(extra).spawn().await;
    mcp.initialize().await;
    mcp
}

async fn timed(mcp: &mut McpProcess, tool: &str, args: Value) -> (Value, Duration) {
    let started = Instant::now();
    let result = mcp.call_tool(tool, args).await;
    (result, started.elapsed())
}

/// The call's log line, found by correlation id (waiting a little, as for
/// any line).
async fn log_line(mcp: &McpProcess, correlation_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = mcp
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "tool call" && l["correlation_id"] == correlation_id);
        if let Some(line) = found {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line for call {correlation_id}:\n{}",
            mcp.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// HTTP requests the call's log line reports: its own attempts and the
/// setup (tenant, session) it made first.
async fn logged_requests(mcp: &McpProcess, correlation_id: &str) -> u64 {
    let line = log_line(mcp, correlation_id).await;
    let count = |field: &str| {
        line[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in the log line: {line}"))
    };
    count("attempts") + count("setup_requests")
}

fn correlation_id(error: &Value) -> String {
    error["correlation_id"]
        .as_str()
        .expect("the error has a correlation id")
        .to_owned()
}

/// Runs one failing call against `fault` and checks code, attempts (at the
/// server and in the log) and elapsed time. Returns the error and the entity
/// requests for further checks.
async fn failing_row(
    fault: Fault,
    flags: &[&str],
    tool: &str,
    args: Value,
    code: &str,
    attempts: usize,
    within: Duration,
) -> (Value, Vec<Recorded>) {
    let server = FaultyServer::start_with(fault).await;
    let mut mcp = launch(&server.url(), flags).await;
    let (result, elapsed) = timed(&mut mcp, tool, args).await;
    let error = err(&result);
    let entity = server.entity_requests();
    eprintln!(
        "row {tool}: code={} attempts={} elapsed={elapsed:?} message={}",
        error["code"],
        entity.len(),
        error["message"]
    );
    assert_eq!(error["code"], code, "{result}");
    assert_eq!(entity.len(), attempts, "upstream attempts: {result}");
    assert!(elapsed < within, "took {elapsed:?}, bound {within:?}");
    let cid = correlation_id(&error);
    assert_eq!(
        logged_requests(&mcp, &cid).await as usize,
        server.requests_of_call(&cid).len(),
        "the log line counts every request of the call (session setup included)"
    );
    assert!(entity.iter().all(|r| r.correlation_id() == Some(&cid)));
    mcp.shutdown().await;
    (error, entity)
}

/// Every attempt of one write carried the same body (so a create the same
/// uid), and at most one was accepted.
fn assert_one_write(writes: &[Recorded]) {
    assert!(!writes.is_empty());
    let first = writes[0].json();
    for w in writes {
        assert_eq!(w.json(), first, "every attempt sends the same write");
    }
    let accepted = writes
        .iter()
        .filter(|w| w.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    assert!(accepted <= 1, "{accepted} attempts were accepted");
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// ---------------------------------------------------------------------------
// Transport failures

/// A refused connection is `upstream_unavailable`, retried with backoff a
/// bounded number of times (the session open is what fails).
#[tokio::test]
async fn connection_refused() {
    // A bound socket that does not listen: connections to it are refused,
    // and nobody else can take the port meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    let mut mcp = launch(&url, QUICK).await;
    let (result, elapsed) = timed(&mut mcp, "get_note", json!({"uid": UID})).await;
    let error = err(&result);
    eprintln!("row refused: {error} {elapsed:?}");
    assert_eq!(error["code"], "upstream_unavailable", "{result}");
    assert_eq!(error["retryable"], true);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect to"),
        "{result}"
    );
    assert_eq!(logged_requests(&mcp, &correlation_id(&error)).await, 3);
    assert!(elapsed < secs(4.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// A name that does not resolve is `upstream_unavailable` naming the host,
/// retried like any connection failure, within the deadline.
#[tokio::test]
async fn dns_failure() {
    let mut mcp = launch(
        "http://nonexistent.invalid",
        &[QUICK, &["--connect-timeout", "1"]].concat(),
    )
    .await;
    let (result, elapsed) = timed(&mut mcp, "get_note", json!({"uid": UID})).await;
    let error = err(&result);
    eprintln!("row dns: {error} {elapsed:?}");
    assert_eq!(error["code"], "upstream_unavailable", "{result}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("nonexistent.invalid"),
        "{result}"
    );
    assert_eq!(logged_requests(&mcp, &correlation_id(&error)).await, 3);
    assert!(elapsed < secs(6.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// An upstream that accepts and reads but never answers: every attempt times
/// out, a read is retried, and the call ends as `timeout`.
#[tokio::test]
async fn accept_then_hang() {
    failing_row(
        Fault::Hang,
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "timeout",
        3,
        secs(6.0),
    )
    .await;
}

/// Headers trickled one byte at a time over seconds: the attempt timeout
/// covers the headers too.
#[tokio::test]
async fn slow_headers() {
    failing_row(
        Fault::SlowHeaders(secs(3.0)),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "timeout",
        3,
        secs(6.0),
    )
    .await;
}

/// A body that stops halfway (Content-Length promised more): the attempt
/// timeout covers the body too.
#[tokio::test]
async fn body_stalls_mid_stream() {
    failing_row(
        Fault::StallMidBody,
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "timeout",
        3,
        secs(6.0),
    )
    .await;
}

/// A connection reset halfway through the body is a transient failure: a
/// read is retried, and ends `upstream_unavailable`.
#[tokio::test]
async fn reset_mid_body_on_a_read() {
    let (error, _) = failing_row(
        Fault::ResetMidBody,
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "upstream_unavailable",
        3,
        secs(4.0),
    )
    .await;
    assert_eq!(error["retryable"], true);
}

/// A create whose response is reset mid-body is retried with the same uid:
/// one item, not two.
#[tokio::test]
async fn reset_mid_body_on_a_create() {
    let server = FaultyServer::start().await;
    server.fail_first(1, Fault::ResetMidBody);
    let mut mcp = launch(&server.url(), QUICK).await;
    let (result, elapsed) = timed(&mut mcp, "create_note", json!({"title": "once"})).await;
    let created = ok(&result);
    let posts = server.entity_requests();
    eprintln!("row reset create: attempts={} {elapsed:?}", posts.len());
    assert_eq!(posts.len(), 2);
    assert_one_write(&posts);
    assert_eq!(created["uid"], posts[0].json()["uid"]);
    assert!(elapsed < secs(4.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// A create whose response stalls mid-body (it was applied, the answer was
/// lost) is retried with the same uid: one item, not two.
#[tokio::test]
async fn stall_mid_body_on_a_create() {
    let server = FaultyServer::start().await;
    server.fail_first(1, Fault::StallMidBody);
    let mut mcp = launch(&server.url(), QUICK).await;
    let (result, elapsed) = timed(&mut mcp, "create_note", json!({"title": "once"})).await;
    let created = ok(&result);
    let posts = server.entity_requests();
    assert_eq!(posts.len(), 2);
    assert_one_write(&posts);
    assert_eq!(created["uid"], posts[0].json()["uid"]);
    assert!(elapsed < secs(4.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5xx on a read: always retried, a bounded number of times

async fn read_5xx(status: u16, code: &str) {
    let (error, _) = failing_row(
        Fault::status(status),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        code,
        3,
        secs(4.0),
    )
    .await;
    assert_eq!(error["http_status"], status);
    assert_eq!(error["retryable"], true);
}

/// A read meeting 500 is retried (1 + 2 attempts), then `upstream_error`.
#[tokio::test]
async fn read_500() {
    read_5xx(500, "upstream_error").await;
}

/// A read meeting 502 is retried, then `upstream_unavailable`.
#[tokio::test]
async fn read_502() {
    read_5xx(502, "upstream_unavailable").await;
}

/// A read meeting 503 is retried, then `upstream_unavailable`.
#[tokio::test]
async fn read_503() {
    read_5xx(503, "upstream_unavailable").await;
}

/// A read meeting 504 is retried, then `upstream_unavailable`.
#[tokio::test]
async fn read_504() {
    read_5xx(504, "upstream_unavailable").await;
}

// ---------------------------------------------------------------------------
// 5xx on writes: per policy

async fn write_5xx(tool: &str, args: Value, status: u16, code: &str, attempts: usize) {
    let (error, writes) = failing_row(
        Fault::status(status),
        QUICK,
        tool,
        args,
        code,
        attempts,
        secs(4.0),
    )
    .await;
    assert_eq!(error["http_status"], status);
    assert_one_write(&writes);
    if tool.starts_with("create_") {
        assert!(
            writes[0].json()["uid"].is_string(),
            "the sidecar made the uid"
        );
    }
}

fn create() -> Value {
    json!({"title": "once", "content": "body"})
}

fn patch() -> Value {
    json!({"uid": UID, "title": "patched"})
}

fn guarded_patch() -> Value {
    json!({"uid": UID, "title": "changed", "if_version": 3})
}

/// A create meeting 500 is not retried (the upstream's 500 may mean a missing
/// parent); the message says so.
#[tokio::test]
async fn create_500_not_retried() {
    write_5xx("create_note", create(), 500, "upstream_error", 1).await;
}

/// A create meeting 502 is retried with the same uid every time.
#[tokio::test]
async fn create_502_retried_same_uid() {
    write_5xx("create_note", create(), 502, "upstream_unavailable", 3).await;
}

/// A create meeting 503 is retried with the same uid every time.
#[tokio::test]
async fn create_503_retried_same_uid() {
    write_5xx("create_note", create(), 503, "upstream_unavailable", 3).await;
}

/// A create meeting 504 is retried with the same uid every time.
#[tokio::test]
async fn create_504_retried_same_uid() {
    write_5xx("create_note", create(), 504, "upstream_unavailable", 3).await;
}

/// A patch without `if_version` meeting 500 is not retried.
#[tokio::test]
async fn patch_500_not_retried() {
    write_5xx("patch_note", patch(), 500, "upstream_error", 1).await;
}

/// A patch without `if_version` meeting 502 is retried (a repeat merges the
/// same fields).
#[tokio::test]
async fn patch_502_retried() {
    write_5xx("patch_note", patch(), 502, "upstream_unavailable", 3).await;
}

/// A patch without `if_version` meeting 503 is retried.
#[tokio::test]
async fn patch_503_retried() {
    write_5xx("patch_note", patch(), 503, "upstream_unavailable", 3).await;
}

/// A patch without `if_version` meeting 504 is retried.
#[tokio::test]
async fn patch_504_retried() {
    write_5xx("patch_note", patch(), 504, "upstream_unavailable", 3).await;
}

/// A patch with `if_version` meeting 500 is not retried.
#[tokio::test]
async fn guarded_patch_500_not_retried() {
    write_5xx("patch_note", guarded_patch(), 500, "upstream_error", 1).await;
}

/// A patch with `if_version` meeting 502 is not retried: it may have been
/// applied, and a repeat would report a false conflict.
#[tokio::test]
async fn guarded_patch_502_not_retried() {
    write_5xx(
        "patch_note",
        guarded_patch(),
        502,
        "upstream_unavailable",
        1,
    )
    .await;
}

/// A patch with `if_version` meeting 504 is not retried.
#[tokio::test]
async fn guarded_patch_504_not_retried() {
    write_5xx(
        "patch_note",
        guarded_patch(),
        504,
        "upstream_unavailable",
        1,
    )
    .await;
}

/// A patch with `if_version` meeting 503 is retried: the upstream refused
/// before acting. Every attempt carries the same `If-Match`.
#[tokio::test]
async fn guarded_patch_503_retried() {
    let (_, writes) = failing_row(
        Fault::status(503),
        QUICK,
        "patch_note",
        guarded_patch(),
        "upstream_unavailable",
        3,
        secs(4.0),
    )
    .await;
    assert_one_write(&writes);
    assert!(writes.iter().all(|w| w.header("if-match") == Some("\"3\"")));
}

/// A patch with `if_version` whose attempt times out is not retried.
#[tokio::test]
async fn guarded_patch_timeout_not_retried() {
    let (_, writes) = failing_row(
        Fault::Hang,
        QUICK,
        "patch_note",
        guarded_patch(),
        "timeout",
        1,
        secs(3.0),
    )
    .await;
    assert_one_write(&writes);
}

// ---------------------------------------------------------------------------
// Rate limiting

/// `429` with `Retry-After: 1` is waited out, then the call succeeds.
#[tokio::test]
async fn rate_limited_with_retry_after_then_success() {
    let server = FaultyServer::start().await;
    server.fail_first(1, Fault::retry_after(429, "1"));
    let mut mcp = launch(&server.url(), QUICK).await;
    let (result, elapsed) = timed(&mut mcp, "get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&result)["uid"], UID);
    let gets = server.entity_requests();
    eprintln!("row 429 RA 1: attempts={} {elapsed:?}", gets.len());
    assert_eq!(gets.len(), 2);
    let gap = gets[1].at - gets[0].at;
    assert!(gap >= secs(0.95), "waited only {gap:?}");
    assert!(elapsed < secs(3.5), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// `429` without `Retry-After` backs off exponentially, a bounded number of
/// times, then fails `rate_limited` (retryable, no `retry_after_s`).
#[tokio::test]
async fn rate_limited_without_retry_after_is_bounded() {
    let (error, _) = failing_row(
        Fault::status(429),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "rate_limited",
        3,
        secs(4.0),
    )
    .await;
    assert_eq!(error["retryable"], true);
    assert!(error.get("retry_after_s").is_none(), "{error}");
}

/// `429` with a `Retry-After` beyond the call's deadline fails at once with
/// `rate_limited` and says when to come back.
#[tokio::test]
async fn rate_limited_beyond_the_deadline_fails_fast() {
    let (error, _) = failing_row(
        Fault::retry_after(429, "120"),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "rate_limited",
        1,
        secs(2.0),
    )
    .await;
    assert_eq!(error["retry_after_s"], 120);
    assert_eq!(error["retryable"], true);
}

// ---------------------------------------------------------------------------
// Sessions lost in the middle of a burst

/// 20 pipelined reads; after the 5th request the upstream forgets every
/// session (`428`). All succeed, with one or two new sessions, not twenty.
#[tokio::test]
async fn session_lost_mid_burst() {
    let server = FaultyServer::start_with(Fault::Delay(secs(0.05))).await;
    server.expire_sessions_after(5);
    let mut mcp = launch(&server.url(), &[]).await;
    let started = Instant::now();
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(mcp.start_tool_call("get_note", json!({"uid": UID})).await);
    }
    for rx in pending {
        let response = mcp.wait(rx).await;
        assert_eq!(ok(&response["result"])["uid"], UID, "{response}");
    }
    let elapsed = started.elapsed();
    let gets = server.entity_requests();
    let refused = gets.iter().filter(|r| r.status == Some(428)).count();
    eprintln!(
        "row 428 burst: sessions={} requests={} refused={refused} {elapsed:?}",
        server.sessions_opened(),
        gets.len()
    );
    assert!(refused >= 1, "the trap fired");
    assert!(
        (2..=4).contains(&server.sessions_opened()),
        "sessions opened: {}",
        server.sessions_opened()
    );
    assert_eq!(
        gets.len(),
        20 + refused,
        "each refused request replayed once"
    );
    assert!(elapsed < secs(15.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// 20 pipelined creates; after the 5th the tenant's epoch rises (`409
/// epoch_mismatch`). All succeed, each uid accepted exactly once, one or two
/// new sessions.
#[tokio::test]
async fn epoch_bump_mid_burst() {
    let server = FaultyServer::start_with(Fault::Delay(secs(0.05))).await;
    server.bump_epoch_after(5);
    let mut mcp = launch(&server.url(), &[]).await;
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..20 {
        pending.push(
            mcp.start_tool_call("create_note", json!({"title": format!("n{i}")}))
                .await,
        );
    }
    let mut uids = std::collections::HashSet::new();
    for rx in pending {
        let response = mcp.wait(rx).await;
        let uid = ok(&response["result"])["uid"].as_str().unwrap().to_owned();
        uids.insert(uid);
    }
    let elapsed = started.elapsed();
    assert_eq!(uids.len(), 20, "twenty distinct items");
    let posts = server.entity_requests();
    let mismatched = posts.iter().filter(|r| r.status == Some(409)).count();
    eprintln!(
        "row 409 burst: sessions={} requests={} mismatched={mismatched} {elapsed:?}",
        server.sessions_opened(),
        posts.len()
    );
    assert!(mismatched >= 1, "the trap fired");
    for uid in &uids {
        let mine: Vec<Recorded> = posts
            .iter()
            .filter(|p| p.json()["uid"] == uid.as_str())
            .cloned()
            .collect();
        assert_one_write(&mine);
        assert_eq!(
            mine.iter().filter(|p| p.status == Some(201)).count(),
            1,
            "{uid} accepted exactly once"
        );
    }
    assert!(
        (2..=4).contains(&server.sessions_opened()),
        "sessions opened: {}",
        server.sessions_opened()
    );
    assert!(elapsed < secs(15.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Odd bodies

/// A plain-text error body becomes the message as is.
#[tokio::test]
async fn plain_text_error_body() {
    let (error, _) = failing_row(
        Fault::plain_text(400, "invalid UID\n"),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "invalid_input",
        1,
        secs(2.0),
    )
    .await;
    assert_eq!(error["message"], "invalid UID");
    assert_eq!(error["http_status"], 400);
}

/// An HTML error page from a proxy is cut to a short message; the 502 is
/// retried as usual.
#[tokio::test]
async fn html_error_page_is_shortened() {
    let page = format!(
        "<html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "<p>upstream connect error</p>".repeat(80)
    );
    let (error, _) = failing_row(
        Fault::Raw {
            status: 502,
            content_type: "text/html",
            body: page.into_bytes(),
        },
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "upstream_unavailable",
        3,
        secs(4.0),
    )
    .await;
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("<html>"), "{message}");
    assert!(message.chars().count() <= 301, "{}", message.len());
    assert!(message.ends_with('…'));
}

/// A JSON error body cut off mid-string: the raw text is the message, and an
/// unparsable `409` is a conflict, not an epoch change (no new session).
#[tokio::test]
async fn truncated_json_error_body() {
    let server = FaultyServer::start_with(Fault::truncated_json(409)).await;
    let mut mcp = launch(&server.url(), QUICK).await;
    let (result, elapsed) = timed(&mut mcp, "patch_note", patch()).await;
    let error = err(&result);
    assert_eq!(error["code"], "conflict", "{result}");
    assert_eq!(error["message"], r#"{"error": "version confl"#);
    assert_eq!(server.entity_count(), 1);
    assert_eq!(server.sessions_opened(), 1);
    assert!(elapsed < secs(2.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// A `200` whose JSON is cut off is `upstream_error`, not a panic, and is not
/// retried (the write may have been applied; its answer is unreadable).
#[tokio::test]
async fn truncated_json_success_body() {
    let (error, _) = failing_row(
        Fault::Raw {
            status: 200,
            content_type: "application/json",
            body: br#"{"uid": "6f1c2a39-0f37"#.to_vec(),
        },
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "upstream_error",
        1,
        secs(2.0),
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("not JSON"),
        "{error}"
    );
}

/// A body declared larger than `--max-response-bytes` is refused at once,
/// naming the cap.
#[tokio::test]
async fn oversized_content_length() {
    let flags = [QUICK, &["--max-response-bytes", "4096"]].concat();
    let (error, _) = failing_row(
        Fault::OversizedLength(1 << 20),
        &flags,
        "get_note",
        json!({"uid": UID}),
        "upstream_error",
        1,
        secs(2.0),
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("4096 bytes"),
        "{error}"
    );
}

/// A chunked body (no Content-Length) that grows past the cap is cut off and
/// refused, naming the cap.
#[tokio::test]
async fn oversized_chunked_body() {
    let flags = [QUICK, &["--max-response-bytes", "4096"]].concat();
    let (error, _) = failing_row(
        Fault::OversizedChunked(64 * 1024),
        &flags,
        "get_note",
        json!({"uid": UID}),
        "upstream_error",
        1,
        secs(2.0),
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("4096 bytes"),
        "{error}"
    );
}

/// A redirect to another host is not followed: that host sees nothing (so
/// no token), and the error says to configure the final URL.
#[tokio::test]
async fn redirect_to_another_host() {
    let elsewhere = FaultyServer::start().await;
    let location = format!("{}/v1/notes/{UID}", elsewhere.url());
    let (error, requests) = failing_row(
        Fault::Redirect(location.clone()),
        QUICK,
        "get_note",
        json!({"uid": UID}),
        "upstream_error",
        1,
        secs(2.0),
    )
    .await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("configure the final URL"), "{message}");
    assert!(message.contains(&location), "{message}");
    assert_eq!(error["http_status"], 302);
    assert!(requests[0].header("authorization").is_some());
    assert!(
        elsewhere.requests().is_empty(),
        "the other host was contacted: {:?}",
        elsewhere.requests()
    );
}

// ---------------------------------------------------------------------------
// Circuit breaker (`--breaker-threshold`, `--breaker-cooldown`)

/// The answer to a call that failed fast on an open circuit.
fn assert_circuit_open(result: &Value, cooldown: u64) {
    let error = err(result);
    assert_eq!(error["code"], "upstream_unavailable", "{result}");
    assert_eq!(error["retryable"], true, "{result}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("circuit open"),
        "{result}"
    );
    let after = error["retry_after_s"].as_u64().expect("retry_after_s");
    assert!(after <= cooldown, "retry_after_s {after} > cooldown");
}

/// Three consecutive 503s open the circuit; calls then fail fast without a
/// request; after the cooldown one probe goes through (a failing probe
/// re-opens, concurrent calls meanwhile still fail fast); a good probe closes
/// the circuit and traffic flows again. The log says so.
#[tokio::test]
async fn breaker_opens_fails_fast_half_opens_and_closes() {
    let server = FaultyServer::start_with(Fault::status(503)).await;
    let flags = [
        "--breaker-threshold",
        "3",
        "--breaker-cooldown",
        "1",
        "--max-retries",
        "0",
    ];
    let mut mcp = launch(&server.url(), &flags).await;
    let get = || json!({"uid": UID});
    for _ in 0..3 {
        let (result, _) = timed(&mut mcp, "get_note", get()).await;
        assert_eq!(err(&result)["http_status"], 503, "{result}");
    }
    let opened = Instant::now();
    assert_eq!(server.entity_count(), 3);

    // Open: fail fast, no request.
    let (result, elapsed) = timed(&mut mcp, "get_note", get()).await;
    assert_circuit_open(&result, 1);
    assert_eq!(server.entity_count(), 3, "no request while open");
    assert!(elapsed < secs(0.9), "fail fast took {elapsed:?}");

    // Half-open, the probe fails: open again for another cooldown.
    tokio::time::sleep_until(opened + secs(1.2)).await;
    let (result, _) = timed(&mut mcp, "get_note", get()).await;
    assert_eq!(err(&result)["http_status"], 503, "the probe went through");
    assert_eq!(server.entity_count(), 4);
    let reopened = Instant::now();
    let (result, _) = timed(&mut mcp, "get_note", get()).await;
    assert_circuit_open(&result, 1);
    assert_eq!(server.entity_count(), 4);

    // The upstream recovers (slowly). Half-open: one probe, the concurrent
    // calls fail fast; the probe's success closes the circuit.
    server.set_fault(Fault::Delay(secs(0.6)));
    tokio::time::sleep_until(reopened + secs(1.2)).await;
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(mcp.start_tool_call("get_note", get()).await);
    }
    let mut succeeded = 0;
    for rx in pending {
        let response = mcp.wait(rx).await;
        let result = &response["result"];
        if result["isError"] == json!(true) {
            assert_circuit_open(result, 1);
        } else {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 1, "one probe while half-open");
    assert_eq!(server.entity_count(), 5);

    // Closed: every call reaches the upstream.
    server.set_fault(Fault::None);
    for _ in 0..3 {
        ok(&mcp.call_tool("get_note", get()).await);
    }
    assert_eq!(server.entity_count(), 8);
    let log = log_text_eventually(&mcp, "circuit closed").await;
    assert!(log.contains("circuit opened"), "{log}");
    mcp.shutdown().await;
}

async fn log_text_eventually(mcp: &McpProcess, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = mcp.log_text();
        if text.contains(needle) || Instant::now() > deadline {
            assert!(text.contains(needle), "no `{needle}` in the log:\n{text}");
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 4xx and 429 never count toward the threshold, and a success resets the
/// count: only consecutive failures open the circuit.
#[tokio::test]
async fn breaker_counts_only_consecutive_transient_failures() {
    let server = FaultyServer::start_with(Fault::status(404)).await;
    let flags = [
        "--breaker-threshold",
        "2",
        "--breaker-cooldown",
        "30",
        "--max-retries",
        "0",
    ];
    let mut mcp = launch(&server.url(), &flags).await;
    let get = || json!({"uid": UID});
    for _ in 0..4 {
        assert_eq!(
            err(&mcp.call_tool("get_note", get()).await)["code"],
            "not_found"
        );
    }
    server.set_fault(Fault::status(429));
    for _ in 0..4 {
        assert_eq!(
            err(&mcp.call_tool("get_note", get()).await)["code"],
            "rate_limited"
        );
    }
    assert_eq!(server.entity_count(), 8);
    // 503, success, 503: never two in a row.
    server.fail_first(1, Fault::status(503));
    err(&mcp.call_tool("get_note", get()).await);
    ok(&mcp.call_tool("get_note", get()).await);
    server.set_fault(Fault::status(503));
    err(&mcp.call_tool("get_note", get()).await);
    assert_eq!(server.entity_count(), 11);
    // The second consecutive one opens it.
    err(&mcp.call_tool("get_note", get()).await);
    assert_eq!(server.entity_count(), 12);
    let result = mcp.call_tool("get_note", get()).await;
    assert_circuit_open(&result, 30);
    assert_eq!(server.entity_count(), 12);
    mcp.shutdown().await;
}

const BREAKER_2_1S: &[&str] = &[
    "--breaker-threshold",
    "2",
    "--breaker-cooldown",
    "1",
    "--max-retries",
    "0",
];

/// Opens the circuit with two 503s and waits out its 1 s cooldown.
async fn open_the_circuit(server: &FaultyServer, mcp: &mut McpProcess) {
    server.set_fault(Fault::status(503));
    for _ in 0..2 {
        let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
        assert_eq!(err(&result)["http_status"], 503, "{result}");
    }
    let opened = Instant::now();
    assert_circuit_open(&mcp.call_tool("get_note", json!({"uid": UID})).await, 1);
    tokio::time::sleep_until(opened + secs(1.2)).await;
}

/// Calls `get_note` until one succeeds, for at most `within`; the breaker
/// must not stay shut against a healthy upstream.
async fn eventually_succeeds(mcp: &mut McpProcess, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
        if result["isError"] != json!(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still failing {within:?} later against a healthy upstream: {result}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A half-open probe answered `429` (the upstream is there, only busy) does
/// not leave the circuit half-open for good: once the upstream is healthy,
/// calls go through again.
#[tokio::test]
async fn breaker_probe_answered_429_does_not_wedge() {
    let server = FaultyServer::start().await;
    let mut mcp = launch(&server.url(), BREAKER_2_1S).await;
    open_the_circuit(&server, &mut mcp).await;
    server.set_fault(Fault::status(429));
    let probe = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(err(&probe)["code"], "rate_limited", "the probe went out");
    server.set_fault(Fault::None);
    eventually_succeeds(&mut mcp, secs(4.0)).await;
    mcp.shutdown().await;
}

/// A half-open probe that is cancelled mid-request does not leave the
/// circuit half-open for good.
#[tokio::test]
async fn breaker_probe_cancelled_does_not_wedge() {
    let server = FaultyServer::start().await;
    let mut mcp = launch(&server.url(), BREAKER_2_1S).await;
    open_the_circuit(&server, &mut mcp).await;
    server.set_fault(Fault::Hang);
    let before = server.entity_count();
    let (id, _rx) = mcp
        .start_request(
            "tools/call",
            json!({"name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    assert!(
        server
            .wait_for_entity_requests(before + 1, Duration::from_secs(10))
            .await,
        "the probe went out"
    );
    mcp.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "test"}),
    )
    .await;
    server.set_fault(Fault::None);
    eventually_succeeds(&mut mcp, secs(4.0)).await;
    mcp.shutdown().await;
}

/// `--breaker-threshold 0` disables the breaker: every call reaches the
/// upstream however many fail.
#[tokio::test]
async fn breaker_disabled_with_threshold_0() {
    let server = FaultyServer::start_with(Fault::status(503)).await;
    let flags = ["--breaker-threshold", "0", "--max-retries", "0"];
    let mut mcp = launch(&server.url(), &flags).await;
    for _ in 0..8 {
        let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
        assert_eq!(err(&result)["http_status"], 503, "{result}");
    }
    assert_eq!(server.entity_count(), 8);
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Cancellation

/// `notifications/cancelled` for a call waiting on a hanging upstream closes
/// the upstream connection promptly, and the server keeps serving.
#[tokio::test]
async fn cancelled_call_closes_the_upstream_connection() {
    let server = FaultyServer::start_with(Fault::Hang).await;
    let mut mcp = launch(&server.url(), &[]).await;
    let (id, _rx) = mcp
        .start_request(
            "tools/call",
            json!({"name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    assert!(
        server
            .wait_for_entity_requests(1, Duration::from_secs(10))
            .await,
        "the call reached the upstream"
    );
    let cancelled = Instant::now();
    mcp.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "test"}),
    )
    .await;
    let closed = server
        .wait_for_close(Duration::from_secs(5))
        .await
        .expect("the sidecar closed the upstream connection");
    let after = closed.at.saturating_duration_since(cancelled);
    eprintln!("row cancel: connection closed {after:?} after the cancellation");
    assert!(after < secs(2.0), "closed {after:?} after the cancellation");
    let listed = mcp.request("tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(40));
    assert_eq!(server.entity_count(), 1);
    mcp.shutdown().await;
}

/// A call cancelled while it waits out a `Retry-After` sends no further
/// request (without the cancellation the retry would come after 2 s). Its log
/// line is written once the call has ended, and only the call itself could
/// send the retry: once the line says `cancelled`, nothing more can go out,
/// so no fixed wait is needed. (`tests/mcp_in_process.rs` proves the same in
/// virtual time, ten seconds past the cancellation.)
#[tokio::test]
async fn cancelled_call_in_retry_sleep_sends_nothing_more() {
    let server = FaultyServer::start_with(Fault::retry_after(503, "2")).await;
    let mut mcp = launch(&server.url(), &["--call-timeout", "30"]).await;
    let (id, _rx) = mcp
        .start_request(
            "tools/call",
            json!({"name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    assert!(
        server
            .wait_for_entity_requests(1, Duration::from_secs(10))
            .await
    );
    // Let the 503 reach the sidecar before cancelling.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.entity_requests()[0].status.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mcp.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "test"}),
    )
    .await;
    let log = log_text_eventually(&mcp, "\"outcome\":\"cancelled\"").await;
    assert_eq!(
        server.entity_count(),
        1,
        "a request was sent after the cancellation"
    );
    assert!(log.contains("\"attempts\":"));
    let listed = mcp.request("tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(40));
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Concurrency bound (`--max-in-flight`)

/// With `--max-in-flight 2`, ten pipelined calls against a slow upstream
/// never have more than two requests open there at once, and all succeed.
#[tokio::test]
async fn max_in_flight_bounds_upstream_concurrency() {
    let server = FaultyServer::start_with(Fault::Delay(secs(0.3))).await;
    let mut mcp = launch(&server.url(), &["--max-in-flight", "2"]).await;
    let started = Instant::now();
    let mut pending = Vec::new();
    for _ in 0..10 {
        pending.push(mcp.start_tool_call("get_note", json!({"uid": UID})).await);
    }
    for rx in pending {
        let response = mcp.wait(rx).await;
        assert_eq!(ok(&response["result"])["uid"], UID, "{response}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "row max-in-flight: peak={} requests={} {elapsed:?}",
        server.peak_in_flight(),
        server.entity_count()
    );
    assert_eq!(server.entity_count(), 10);
    assert!(
        server.peak_in_flight() <= 2,
        "peak {} requests in flight",
        server.peak_in_flight()
    );
    assert!(elapsed < secs(20.0), "took {elapsed:?}");
    mcp.shutdown().await;
}

/// A half-open probe that never goes out because the upstream's
/// `Retry-After` pause outlasts the call (it fails `rate_limited` before
/// sending) does not leave the circuit half-open for good.
#[tokio::test]
async fn breaker_probe_refused_by_a_pause_does_not_wedge() {
    let server = FaultyServer::start_with(Fault::retry_after(503, "5")).await;
    let flags = [
        "--breaker-threshold",
        "1",
        "--breaker-cooldown",
        "1",
        "--max-retries",
        "0",
        "--call-timeout",
        "2",
    ];
    let mut mcp = launch(&server.url(), &flags).await;
    let first = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(err(&first)["http_status"], 503, "{first}");
    let opened = Instant::now();
    tokio::time::sleep_until(opened + secs(1.2)).await;
    // The probe is admitted, then meets the 5 s pause, past its 2 s deadline.
    let probe = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(err(&probe)["code"], "rate_limited", "{probe}");
    assert_eq!(server.entity_count(), 1);
    server.set_fault(Fault::None);
    tokio::time::sleep_until(opened + secs(5.2)).await;
    // The pause is over and the upstream healthy.
    eventually_succeeds(&mut mcp, secs(4.0)).await;
    mcp.shutdown().await;
}
