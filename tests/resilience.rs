//! Sessions, epochs, retries, deadlines and error normalization, through the
//! real binary's stdio against a wiremock stand-in that misbehaves on purpose.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::upstream::{self, TOKEN, UID, first_then, item, session_body};
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers session creation with `sess-1`, `sess-2`, ... and the epochs given
/// (the last one repeats).
struct Sessions {
    count: AtomicU32,
    epochs: Vec<u64>,
}

impl Respond for Sessions {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.count.fetch_add(1, Ordering::SeqCst) as usize;
        let epoch = self.epochs[n.min(self.epochs.len() - 1)];
        ResponseTemplate::new(201)
            .insert_header("X-Sync-Epoch", epoch.to_string())
            .set_body_json(session_body(&format!("sess-{}", n + 1), epoch))
    }
}

async fn server_with_sessions(epochs: &[u64]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/sync/sessions"))
        .respond_with(Sessions {
            count: AtomicU32::new(0),
            epochs: epochs.to_vec(),
        })
        .mount(&server)
        .await;
    server
}

fn item_path() -> String {
    format!("/v1/notes/{UID}")
}

fn error_body(message: &str) -> Value {
    json!({"error": message, "correlation_id": "x"})
}

async fn launch(server: &MockServer, extra: &[&str]) -> McpProcess {
    let mut mcp = Launch::remote(&server.uri()).args(extra).spawn().await;
    mcp.initialize().await;
    mcp
}

fn count(requests: &[Request], route: &str) -> usize {
    requests.iter().filter(|r| r.url.path() == route).count()
}

async fn all_requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

/// A `428` (session expired or lost by an upstream restart) opens a new
/// session and replays the request once, invisibly to the caller.
#[tokio::test]
async fn resession_on_428() {
    let server = server_with_sessions(&[3]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(|r: &Request| {
            if upstream::header(r, "x-sync-session") == Some("sess-1") {
                ResponseTemplate::new(428).set_body_json(error_body("invalid or expired session"))
            } else {
                ResponseTemplate::new(200).set_body_json(item(UID, 4))
            }
        })
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&result)["version"], 4);
    let requests = all_requests(&server).await;
    assert_eq!(count(&requests, "/v1/sync/sessions"), 2);
    let gets: Vec<&Request> = requests
        .iter()
        .filter(|r| r.url.path() == item_path())
        .collect();
    assert_eq!(gets.len(), 2);
    assert_eq!(upstream::header(gets[1], "x-sync-session"), Some("sess-2"));
    assert_eq!(
        upstream::header(gets[0], "x-correlation-id"),
        upstream::header(gets[1], "x-correlation-id")
    );
    mcp.shutdown().await;
}

/// `409 epoch_mismatch` adopts the new epoch through a new session and replays
/// once; a version conflict `409` is reported as a conflict instead.
#[tokio::test]
async fn resession_on_epoch_mismatch() {
    let server = server_with_sessions(&[3, 5]).await;
    Mock::given(method("PATCH"))
        .and(path(item_path()))
        .respond_with(|r: &Request| {
            let epoch: u64 = upstream::header(r, "x-sync-epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            if epoch < 5 {
                ResponseTemplate::new(409)
                    .insert_header("X-Sync-Epoch", "5")
                    .set_body_json(
                        json!({"error": "epoch_mismatch", "epoch": 5, "correlation_id": "x"}),
                    )
            } else {
                ResponseTemplate::new(409).set_body_json(error_body("version conflict"))
            }
        })
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let result = mcp
        .call_tool("patch_note", json!({"uid": UID, "title": "x"}))
        .await;
    let error = err(&result);
    assert_eq!(error["code"], "conflict", "{result}");
    assert_eq!(error["http_status"], 409);
    let requests = all_requests(&server).await;
    assert_eq!(count(&requests, "/v1/sync/sessions"), 2);
    let patches: Vec<&Request> = requests
        .iter()
        .filter(|r| r.url.path() == item_path())
        .collect();
    assert_eq!(patches.len(), 2, "replayed once, not retried");
    assert_eq!(upstream::header(patches[1], "x-sync-epoch"), Some("5"));
    mcp.shutdown().await;
}

/// A session that keeps being refused is replayed once, not in a loop.
#[tokio::test]
async fn persistent_428_is_replayed_only_once() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(428).set_body_json(error_body("missing session")))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(err(&result)["code"], "upstream_error");
    assert_eq!(count(&all_requests(&server).await, &item_path()), 2);
    mcp.shutdown().await;
}

/// 503 is retried with backoff, a bounded number of times.
#[tokio::test]
async fn retry_on_503_is_bounded() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream overloaded"))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--max-retries", "2"]).await;
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    let error = err(&result);
    assert_eq!(error["code"], "upstream_unavailable");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["http_status"], 503);
    assert_eq!(error["message"], "upstream overloaded");
    assert_eq!(
        count(&all_requests(&server).await, &item_path()),
        3,
        "1 attempt + 2 retries"
    );
    mcp.shutdown().await;
}

/// A create retried after a 503 resends the same client-made uid and the same
/// correlation id, so the upstream upserts one item.
#[tokio::test]
async fn create_retried_after_503_keeps_its_uid() {
    let server = server_with_sessions(&[1]).await;
    first_then(
        &server,
        "POST",
        "/v1/notes",
        1,
        ResponseTemplate::new(503),
        ResponseTemplate::new(201).set_body_json(item(UID, 1)),
    )
    .await;
    let mut mcp = launch(&server, &[]).await;
    ok(&mcp.call_tool("create_note", json!({"title": "once"})).await);
    let posts: Vec<Request> = all_requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/v1/notes")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        upstream::body_json(&posts[0]),
        upstream::body_json(&posts[1])
    );
    assert_eq!(
        upstream::header(&posts[0], "x-correlation-id"),
        upstream::header(&posts[1], "x-correlation-id")
    );
    mcp.shutdown().await;
}

/// A create whose response is lost (the attempt times out after the upstream
/// acted) is retried with the same uid: one item, not two.
#[tokio::test]
async fn create_retried_after_lost_response_creates_one_item() {
    let server = server_with_sessions(&[1]).await;
    first_then(
        &server,
        "POST",
        "/v1/notes",
        1,
        ResponseTemplate::new(201)
            .set_body_json(item(UID, 1))
            .set_delay(Duration::from_secs(3)),
        ResponseTemplate::new(201).set_body_json(item(UID, 2)),
    )
    .await;
    let mut mcp = launch(&server, &["--attempt-timeout", "0.5"]).await;
    let result = mcp.call_tool("create_note", json!({"title": "once"})).await;
    assert_eq!(ok(&result)["version"], 2);
    let posts: Vec<Request> = all_requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/v1/notes")
        .collect();
    assert_eq!(posts.len(), 2);
    let uid = upstream::body_json(&posts[0])["uid"].clone();
    assert!(uid.is_string());
    assert_eq!(
        upstream::body_json(&posts[1])["uid"],
        uid,
        "the retry upserts the same item"
    );
    mcp.shutdown().await;
}

/// A read that times out is retried.
#[tokio::test]
async fn read_retried_after_timeout() {
    let server = server_with_sessions(&[1]).await;
    first_then(
        &server,
        "GET",
        &item_path(),
        1,
        ResponseTemplate::new(200)
            .set_body_json(item(UID, 1))
            .set_delay(Duration::from_secs(3)),
        ResponseTemplate::new(200).set_body_json(item(UID, 9)),
    )
    .await;
    let mut mcp = launch(&server, &["--attempt-timeout", "0.5"]).await;
    assert_eq!(
        ok(&mcp.call_tool("get_note", json!({"uid": UID})).await)["version"],
        9
    );
    mcp.shutdown().await;
}

/// A write guarded by `if_version` is not retried once it may have reached the
/// upstream: a repeat would report a false conflict.
#[tokio::test]
async fn conditional_write_is_not_retried_after_a_timeout() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 3)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(item_path()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(item(UID, 4))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--attempt-timeout", "0.5"]).await;
    let result = mcp
        .call_tool(
            "update_note",
            json!({"uid": UID, "title": "t", "if_version": 3}),
        )
        .await;
    let error = err(&result);
    assert_eq!(error["code"], "timeout");
    // It may have been applied: the model must look before repeating it.
    assert_eq!(error["applied"], "unknown", "{error}");
    assert_eq!(error["retryable"], false, "{error}");
    assert_eq!(error["uid"], UID, "{error}");
    let puts = all_requests(&server)
        .await
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count();
    assert_eq!(puts, 1);
    mcp.shutdown().await;
}

/// A 500 on a write is not retried (the upstream answers 500 for a missing
/// parent), and the message says what it most likely means.
#[tokio::test]
async fn write_500_is_not_retried() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("POST"))
        .and(path("/v1/comments"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(error_body("failed to create comment")),
        )
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let result = mcp
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": UID, "content": "c"}),
        )
        .await;
    let error = err(&result);
    assert_eq!(error["code"], "upstream_error");
    assert!(
        error["message"].as_str().unwrap().contains("parent"),
        "{result}"
    );
    assert_eq!(count(&all_requests(&server).await, "/v1/comments"), 1);
    mcp.shutdown().await;
}

/// `Retry-After` on a 429 sets the wait before the next attempt.
#[tokio::test]
async fn retry_after_is_honored() {
    let server = server_with_sessions(&[1]).await;
    first_then(
        &server,
        "GET",
        &item_path(),
        1,
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(error_body("rate limit exceeded")),
        ResponseTemplate::new(200).set_body_json(item(UID, 1)),
    )
    .await;
    let mut mcp = launch(&server, &[]).await;
    let started = Instant::now();
    ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    let gets: Vec<Request> = all_requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == item_path())
        .collect();
    assert_eq!(gets.len(), 2);
    mcp.shutdown().await;
}

/// A `Retry-After` longer than the call's deadline is not waited out: the call
/// fails at once with `rate_limited` and says when to come back.
#[tokio::test]
async fn retry_after_beyond_the_deadline_fails_fast() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "120")
                .set_body_json(error_body("rate limit exceeded")),
        )
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--call-timeout", "5"]).await;
    let started = Instant::now();
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    let error = err(&result);
    assert_eq!(error["code"], "rate_limited");
    assert_eq!(error["retry_after_s"], 120);
    assert_eq!(error["retryable"], true);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(count(&all_requests(&server).await, &item_path()), 1);
    mcp.shutdown().await;
}

/// An upstream that accepts connections and never answers yields a `timeout`
/// result within the call's deadline, and the server keeps serving.
#[tokio::test]
async fn hanging_upstream_times_out_within_the_deadline() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().await.push(socket);
        }
    });
    let mut mcp = Launch::remote(&url)
        .args(&["--call-timeout", "2", "--attempt-timeout", "0.7"])
        .spawn()
        .await;
    mcp.initialize().await;
    let started = Instant::now();
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    let elapsed = started.elapsed();
    let error = err(&result);
    assert_eq!(error["code"], "timeout", "{result}");
    assert!(
        elapsed >= Duration::from_millis(700),
        "gave up before one attempt timed out: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(3500),
        "outlived its deadline: {elapsed:?}"
    );
    assert!(!held.lock().await.is_empty());
    // Still serving.
    let listed = mcp.request("tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"].as_array().unwrap().len(), 40);
    mcp.shutdown().await;
}

/// A delete whose first response was lost meets 410 on its retry: that is our
/// own delete having worked, so the call succeeds with the tombstone.
#[tokio::test]
async fn retried_delete_meeting_410_succeeds() {
    let server = server_with_sessions(&[1]).await;
    let mut tombstone = item(UID, 5);
    tombstone["deletedAt"] = json!("2026-11-01T10:00:01Z");
    first_then(
        &server,
        "DELETE",
        &item_path(),
        1,
        ResponseTemplate::new(200)
            .set_body_json(tombstone.clone())
            .set_delay(Duration::from_secs(3)),
        ResponseTemplate::new(410)
            .set_body_json(json!({"error": "note deleted", "deletedAt": "2026-11-01T10:00:01Z"})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .and(wiremock::matchers::query_param("includeDeleted", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tombstone))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--attempt-timeout", "0.5"]).await;
    let result = mcp.call_tool("delete_note", json!({"uid": UID})).await;
    assert_eq!(ok(&result)["deletedAt"], "2026-11-01T10:00:01Z");

    // A first attempt that meets 410 is a real `gone`.
    let result = mcp.call_tool("delete_note", json!({"uid": UID})).await;
    let error = err(&result);
    assert_eq!(error["code"], "gone");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("include_deleted")
    );
    mcp.shutdown().await;
}

/// Upstream errors become normalized results: plain-text and JSON bodies,
/// empty bodies, and a 412 that reports the current version.
#[tokio::test]
async fn errors_are_normalized() {
    let server = server_with_sessions(&[1]).await;
    let other = "11111111-2222-4333-8444-555555555555";
    Mock::given(method("GET"))
        .and(path(format!("/v1/tasks/{UID}")))
        .respond_with(
            ResponseTemplate::new(401).set_body_string("Unauthorized: missing tenant header"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/chats/{UID}")))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_string("Unauthorized: not authorized for requested tenant"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/notes/{other}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body("note not found")))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(412).set_body_json(error_body(
            "version mismatch: version mismatch: expected 3, actual 7",
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 7)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chats"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;

    let e = mcp.call_tool("get_task", json!({"uid": UID})).await;
    assert_eq!(err(&e)["code"], "unauthorized");
    assert!(
        err(&e)["message"]
            .as_str()
            .unwrap()
            .contains("TOOLBRIDGE_TENANT_ID"),
        "{e}"
    );
    let e = mcp.call_tool("get_chat", json!({"uid": UID})).await;
    assert_eq!(err(&e)["code"], "forbidden");
    let e = mcp.call_tool("get_note", json!({"uid": other})).await;
    assert_eq!(err(&e)["code"], "not_found");
    assert_eq!(err(&e)["message"], "note not found");
    let e = mcp
        .call_tool(
            "patch_note",
            json!({"uid": UID, "title": "x", "if_version": 3}),
        )
        .await;
    assert_eq!(err(&e)["code"], "conflict");
    assert!(
        err(&e)["message"]
            .as_str()
            .unwrap()
            .ends_with("the current version is 7"),
        "{e}"
    );
    let e = mcp.call_tool("create_chat", json!({"title": "x"})).await;
    assert_eq!(err(&e)["code"], "upstream_error");
    assert_eq!(err(&e)["http_status"], 500);
    // A delete guarded by a stale version is refused before it is sent.
    let e = mcp
        .call_tool("delete_note", json!({"uid": UID, "if_version": 3}))
        .await;
    assert_eq!(err(&e)["code"], "conflict");
    assert_eq!(
        count(
            &all_requests(&server)
                .await
                .into_iter()
                .filter(|r| r.method.as_str() == "DELETE")
                .collect::<Vec<_>>(),
            &item_path()
        ),
        0
    );
    mcp.shutdown().await;
}

/// Without a configured tenant the client asks `GET /v1/auth/tenant` once; when
/// that fails the error says what to configure.
#[tokio::test]
async fn tenant_is_resolved_once_or_explained() {
    let server = upstream::plausible_upstream().await;
    Mock::given(method("GET"))
        .and(path("/v1/auth/tenant"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"tenantId": "t-resolved"})))
        .with_priority(1)
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&server.uri())
        .without_env("TOOLBRIDGE_TENANT_ID")
        .spawn()
        .await;
    mcp.initialize().await;
    for _ in 0..3 {
        ok(&mcp.call_tool("list_notes", json!({})).await);
    }
    let requests = all_requests(&server).await;
    assert_eq!(count(&requests, "/v1/auth/tenant"), 1);
    for r in upstream::entity_requests(&server).await {
        assert_eq!(upstream::header(&r, "x-tb-tenant-id"), Some("t-resolved"));
    }
    mcp.shutdown().await;

    let failing = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path("/v1/auth/tenant"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body("no organization")))
        .mount(&failing)
        .await;
    let mut mcp = Launch::remote(&failing.uri())
        .without_env("TOOLBRIDGE_TENANT_ID")
        .spawn()
        .await;
    mcp.initialize().await;
    let e = mcp.call_tool("list_notes", json!({})).await;
    assert!(
        err(&e)["message"]
            .as_str()
            .unwrap()
            .contains("set TOOLBRIDGE_TENANT_ID"),
        "{e}"
    );
    mcp.shutdown().await;
}

/// The token never reaches a log line or stderr, even at debug level and on
/// failures.
#[tokio::test]
async fn the_token_is_never_logged() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(ResponseTemplate::new(401).set_body_string("unauthorized"))
        .mount(&server)
        .await;
    let temp = tempfile::tempdir().unwrap();
    let log_dir = temp.path().join("logs");
    let mut mcp = Launch::remote(&server.uri())
        .args(&["--log-level", "trace"])
        .log_dir(&log_dir)
        .spawn()
        .await;
    mcp.initialize().await;
    err(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    err(&mcp.call_tool("list_notes", json!({"limit": "x"})).await);
    let stderr = mcp.stderr();
    mcp.shutdown().await;
    let mut logs = String::new();
    for entry in std::fs::read_dir(&log_dir).unwrap().flatten() {
        logs.push_str(&std::fs::read_to_string(entry.path()).unwrap());
    }
    assert!(
        logs.contains("\"tool call\""),
        "the log has the call lines: {logs}"
    );
    assert!(logs.contains("\"correlation_id\""));
    assert!(!logs.contains(TOKEN), "token in the log file");
    assert!(!stderr.contains(TOKEN), "token on stderr");
}

/// A token from a credential helper (`--token-command`, no shell) is sent as
/// the bearer; on a 401 the helper runs again and the request is replayed
/// once with the fresh token.
#[tokio::test]
async fn token_command_supplies_and_refreshes_the_token() {
    let server = server_with_sessions(&[1]).await;
    Mock::given(method("GET"))
        .and(path(item_path()))
        .respond_with(|r: &Request| match upstream::header(r, "authorization") {
            Some("Bearer fresh-2") => ResponseTemplate::new(200).set_body_json(item(UID, 1)),
            _ => ResponseTemplate::new(401).set_body_string("unauthorized"),
        })
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    // Prints fresh-1, then fresh-2, ...: a helper whose token rotates.
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo fresh-$n",
        c = counter.display()
    );
    let mut mcp = Launch::remote(&server.uri())
        .without_env("TOOLBRIDGE_TOKEN")
        .env("TOOLBRIDGE_TOKEN_COMMAND", &format!("sh -c '{script}'"))
        .spawn()
        .await;
    mcp.initialize().await;
    let result = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&result)["uid"], UID);
    let gets: Vec<Request> = all_requests(&server)
        .await
        .into_iter()
        .filter(|r| r.url.path() == item_path())
        .collect();
    assert_eq!(gets.len(), 2);
    assert_eq!(
        upstream::header(&gets[0], "authorization"),
        Some("Bearer fresh-1")
    );
    assert_eq!(
        upstream::header(&gets[1], "authorization"),
        Some("Bearer fresh-2")
    );
    let stderr = mcp.stderr();
    mcp.shutdown().await;
    assert!(!stderr.contains("fresh-"), "a token reached stderr");
}

/// `--ca-bundle` must be a PEM file: a bad one stops startup with a clear
/// line; a good one is accepted.
#[test]
fn ca_bundle_is_checked_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/extra-ca.pem");
    let run = |bundle: &str| {
        std::process::Command::new(common::BIN)
            .args([
                "call",
                "list_notes",
                "--api-url",
                "https://127.0.0.1:9",
                "--tenant-id",
                "t",
            ])
            .args(["--max-retries", "0", "--ca-bundle", bundle])
            .env_clear()
            .env("TOOLBRIDGE_LOG_DIR", dir.path())
            .output()
            .unwrap()
    };
    let refused = run(bad.to_str().unwrap());
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CA bundle"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // Accepted: the call gets as far as the (absent) upstream.
    let accepted = run(good);
    assert_eq!(
        accepted.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}
