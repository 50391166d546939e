//! Failures and writes a model can trust: each test here is a defect found in
//! review or in use, shown through the real binary against a wiremock
//! stand-in or the embedded API. Every one of them failed on the code before
//! its fix.

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

use common::upstream::{self, TOKEN, UID, first_then, item, mount_session, session_body};
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NOTE: &str = "/v1/notes";

fn note_path() -> String {
    format!("{NOTE}/{UID}")
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    mount_session(&server).await;
    server
}

async fn launch(server: &MockServer, extra: &[&str]) -> McpProcess {
    let mut mcp = Launch::remote(&server.uri()).args(extra).spawn().await;
    mcp.initialize().await;
    mcp
}

async fn requests(server: &MockServer, http_method: &str, route: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == route)
        .collect()
}

// ---------------------------------------------------------------------------
// Defect 1: a write's 500 (most likely a missing parent) must not open the
// circuit for every tool.

#[tokio::test]
async fn a_writes_500s_do_not_open_the_circuit() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/comments"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"error": "failed to create comment"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 2)))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--breaker-threshold", "2"]).await;
    let comment = json!({"parent_type": "note", "parent_uid": UID, "content": "c"});
    for _ in 0..4 {
        let error = err(&mcp.call_tool("create_comment", comment.clone()).await);
        assert_eq!(error["code"], "upstream_error", "{error}");
        assert_eq!(error["http_status"], 500, "{error}");
    }
    let read = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&read)["version"], 2, "the circuit opened: {read}");
    assert_eq!(requests(&server, "POST", "/v1/comments").await.len(), 4);
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 2: after a write may have been applied, the error says so and is not
// retryable; the model is told how to look first.

/// A create that timed out on every attempt may have been applied: not
/// retryable, `applied: unknown`, the uid it tried, and how to check.
#[tokio::test]
async fn a_create_that_timed_out_may_have_been_applied() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path(NOTE))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(item(UID, 1))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut mcp = launch(
        &server,
        &[
            "--attempt-timeout",
            "0.3",
            "--max-retries",
            "1",
            "--call-timeout",
            "3",
        ],
    )
    .await;
    let error = err(&mcp.call_tool("create_note", json!({"title": "t"})).await);
    assert_eq!(error["code"], "timeout", "{error}");
    assert_eq!(error["retryable"], false, "{error}");
    assert_eq!(error["applied"], "unknown", "{error}");
    let posts = requests(&server, "POST", NOTE).await;
    let tried = posts[0].body_json::<Value>().unwrap()["uid"].clone();
    assert_eq!(error["uid"], tried, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("get_note {}", tried.as_str().unwrap())),
        "{message}"
    );
    mcp.shutdown().await;
}

/// A 502 after the request went out: same verdict. A 503 (refused before
/// acting) is retryable, and says it was not applied.
#[tokio::test]
async fn gateway_errors_on_a_create_say_whether_it_was_applied() {
    for (status, retryable, applied) in [(502, false, "unknown"), (503, true, "no")] {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path(NOTE))
            .respond_with(ResponseTemplate::new(status).set_body_string("gateway"))
            .mount(&server)
            .await;
        let mut mcp = launch(&server, &["--max-retries", "1"]).await;
        let error = err(&mcp.call_tool("create_note", json!({"title": "t"})).await);
        assert_eq!(error["code"], "upstream_unavailable", "{error}");
        assert_eq!(error["retryable"], retryable, "{status}: {error}");
        assert_eq!(error["applied"], applied, "{status}: {error}");
        mcp.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// Defect 3: the token command runs once, however many calls meet 401 at once.

/// The stand-in accepts only the token the command prints from its second
/// run on; eight calls meet 401 together, and the command runs once more.
#[tokio::test]
async fn token_refresh_is_single_flight() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("runs");
    let script = dir.path().join("token.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nif [ $(wc -l < '{}') -gt 1 ]; then echo fresh; else echo stale; fi\n",
            counter.display(),
            counter.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(|r: &Request| {
            if upstream::header(r, "authorization") == Some("Bearer fresh") {
                ResponseTemplate::new(200).set_body_json(item(UID, 1))
            } else {
                ResponseTemplate::new(401).set_body_string("unauthorized")
            }
        })
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&server.uri())
        .without_env("TOOLBRIDGE_TOKEN")
        .env("TOOLBRIDGE_TOKEN_COMMAND", &script.display().to_string())
        .spawn()
        .await;
    mcp.initialize().await;
    let mut pending = Vec::new();
    for _ in 0..8 {
        pending.push(mcp.start_tool_call("get_note", json!({"uid": UID})).await);
    }
    for rx in pending {
        ok(&mcp.wait(rx).await);
    }
    let runs = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(
        runs, 2,
        "one run at startup, one refresh for all eight calls"
    );
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 4: a delete reports a 410 as its own success only when its own
// earlier attempt may have reached the upstream.

/// The first attempt was refused before acting (503); the retry meets 410:
/// someone else deleted it, and the call says `gone`.
#[tokio::test]
async fn a_delete_does_not_claim_someone_elses_tombstone() {
    let server = server().await;
    first_then(
        &server,
        "DELETE",
        &note_path(),
        1,
        ResponseTemplate::new(503).set_body_string("busy"),
        ResponseTemplate::new(410)
            .set_body_json(json!({"error": "note deleted", "deletedAt": "2026-11-30T10:00:00Z"})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 5)))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let error = err(&mcp.call_tool("delete_note", json!({"uid": UID})).await);
    assert_eq!(error["code"], "gone", "{error}");
    // A retried version check (the `if_version` read) is not the delete's own.
    let server = self::server().await;
    first_then(
        &server,
        "GET",
        &note_path(),
        1,
        ResponseTemplate::new(503).set_body_string("busy"),
        ResponseTemplate::new(200).set_body_json(item(UID, 5)),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(410).set_body_json(json!({"error": "note deleted"})))
        .mount(&server)
        .await;
    let mut other = launch(&server, &[]).await;
    let error = err(&other
        .call_tool("delete_note", json!({"uid": UID, "if_version": 5}))
        .await);
    assert_eq!(error["code"], "gone", "{error}");
    mcp.shutdown().await;
    other.shutdown().await;
}

/// Its own first attempt's answer was lost (a reset after sending): the
/// retry's 410 is that attempt's success, reported as the tombstone.
#[tokio::test]
async fn a_delete_whose_answer_was_lost_reports_its_tombstone() {
    let server = server().await;
    first_then(
        &server,
        "DELETE",
        &note_path(),
        1,
        ResponseTemplate::new(504).set_body_string("gateway timeout"),
        ResponseTemplate::new(410).set_body_json(json!({"error": "note deleted"})),
    )
    .await;
    let mut tombstone = item(UID, 6);
    tombstone["deletedAt"] = json!("2026-11-30T10:00:00Z");
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(tombstone))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let result = mcp.call_tool("delete_note", json!({"uid": UID})).await;
    assert_eq!(ok(&result)["deletedAt"], "2026-11-30T10:00:00Z");
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 5: renewing the session ends the old one.

/// Sessions whose lifetime is already over are renewed at the next call;
/// each renewal deletes the session it replaces.
#[tokio::test]
async fn renewal_ends_the_old_session() {
    let server = MockServer::start().await;
    let count = Arc::new(AtomicU32::new(0));
    let opened = count.clone();
    Mock::given(method("POST"))
        .and(path("/v1/sync/sessions"))
        .respond_with(move |_: &Request| {
            let n = opened.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = session_body(&format!("sess-{n}"), 3);
            body["expiresAt"] = body["createdAt"].clone();
            ResponseTemplate::new(201).set_body_json(body)
        })
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/sync/sessions/sess-1"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 1)))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    ok(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(
        requests(&server, "DELETE", "/v1/sync/sessions/sess-1")
            .await
            .len(),
        1,
        "the renewed session was not ended"
    );
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 7: every wait is bounded, shutdown included.

/// Pacing at one request a minute: the session takes the only token and the
/// call times out waiting for the next. Ending the session at shutdown must
/// not wait for a token either: the process exits within its bound.
#[tokio::test]
async fn shutdown_does_not_wait_for_pacing() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 1)))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &["--rate-limit", "1", "--call-timeout", "2"]).await;
    let error = err(&mcp.call_tool("get_note", json!({"uid": UID})).await);
    assert_eq!(error["code"], "timeout", "{error}");
    let closing = Instant::now();
    // `shutdown` fails the test if the process outlives 10 s after EOF.
    let status = mcp.shutdown().await;
    assert!(status.success(), "{status:?}");
    assert!(closing.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------
// Defect 9: doctor reports the breaker's real state.

#[test]
fn doctor_reports_an_open_circuit() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/healthz"))
            .respond_with(ResponseTemplate::new(503).set_body_string("down"))
            .mount(&server)
            .await;
        server
    });
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "doctor",
            "--api-url",
            &server.uri(),
            "--breaker-threshold",
            "1",
        ])
        .env_clear()
        .env("TOOLBRIDGE_TOKEN", TOKEN)
        .env("TOOLBRIDGE_TENANT_ID", "t")
        .env("TOOLBRIDGE_LOG_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("circuit breaker") && l.contains("open")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Defect 10: an update keeps what no update parameter can set.

/// Pin a note, then rename it with update_note: still pinned (and its
/// content, which update clears by design, is gone).
#[tokio::test]
async fn update_keeps_state_set_by_process_and_archive() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::embedded(&dir.path().join("t.db")).spawn().await;
    mcp.initialize().await;
    let created = mcp
        .call_tool(
            "create_note",
            json!({"title": "a", "content": "body", "tags": ["x"]}),
        )
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    ok(&mcp
        .call_tool("process_note", json!({"uid": uid, "action": "pin"}))
        .await);
    let task = ok(&mcp.call_tool("create_task", json!({"title": "t"})).await)["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&mcp
        .call_tool("process_task", json!({"uid": task, "action": "complete"}))
        .await);
    ok(&mcp
        .call_tool(
            "create_chat",
            json!({"title": "c", "additional_fields": {"color": "red"}}),
        )
        .await);

    let updated = mcp
        .call_tool("update_note", json!({"uid": uid, "title": "renamed"}))
        .await;
    let payload = &ok(&updated)["payload"];
    assert_eq!(payload["title"], "renamed");
    assert_eq!(payload["pinned"], true, "{payload}");
    assert!(
        payload.get("content").is_none(),
        "update clears what it is not given"
    );
    assert!(payload.get("tags").is_none());

    let updated = mcp
        .call_tool("update_task", json!({"uid": task, "title": "t2"}))
        .await;
    let payload = &ok(&updated)["payload"];
    assert_eq!(payload["done"], true, "{payload}");
    // `status` is a task parameter: not given, so cleared.
    assert!(payload.get("status").is_none(), "{payload}");
    mcp.shutdown().await;
}

/// A write between the update's read and its write is met with one re-read
/// and a second guarded write, not an overwrite.
#[tokio::test]
async fn update_retries_once_after_a_concurrent_write() {
    let server = server().await;
    let reads = Arc::new(AtomicU32::new(0));
    let counter = reads.clone();
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut current = item(UID, 3 + u64::from(n));
            current["payload"]["pinned"] = json!(n > 0);
            ResponseTemplate::new(200).set_body_json(current)
        })
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(note_path()))
        .respond_with(|r: &Request| {
            if upstream::header(r, "if-match") == Some("\"4\"") {
                ResponseTemplate::new(200).set_body_json(item(UID, 5))
            } else {
                ResponseTemplate::new(412).set_body_json(json!({"error": "version mismatch"}))
            }
        })
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    ok(&mcp
        .call_tool("update_note", json!({"uid": UID, "title": "x"}))
        .await);
    let puts = requests(&server, "PUT", &note_path()).await;
    assert_eq!(puts.len(), 2);
    let second: Value = puts[1].body_json().unwrap();
    assert_eq!(
        second["pinned"], true,
        "the write kept the newer state: {second}"
    );
    assert_eq!(second["title"], "x");
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 11: writes that change nothing, dates that are not dates, parents
// that do not exist.

#[tokio::test]
async fn writes_that_change_nothing_or_name_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::embedded(&dir.path().join("t.db")).spawn().await;
    mcp.initialize().await;
    let created = mcp.call_tool("create_note", json!({"title": "a"})).await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();

    for args in [
        json!({"uid": uid}),
        json!({"uid": uid, "title": null, "tags": null}),
        json!({"uid": uid, "if_version": 1}),
    ] {
        let error = err(&mcp.call_tool("patch_note", args.clone()).await);
        assert_eq!(error["code"], "invalid_input", "{args}: {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("nothing to change")
        );
    }
    let note = mcp.call_tool("get_note", json!({"uid": uid})).await;
    assert_eq!(
        ok(&note)["version"],
        1,
        "a refused patch bumped the version"
    );

    let error = err(&mcp
        .call_tool(
            "create_task",
            json!({"title": "t", "due_date": "next tuesday"}),
        )
        .await);
    assert_eq!(error["code"], "invalid_input", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("due_date"),
        "{error}"
    );
    for date in ["2026-12-01", "2026-12-01T09:00:00Z", "2026-12-01T09:00"] {
        ok(&mcp
            .call_tool("create_task", json!({"title": "t", "due_date": date}))
            .await);
    }

    let missing = uuid::Uuid::new_v4().to_string();
    let error = err(&mcp
        .call_tool(
            "create_task",
            json!({"title": "sub", "parent_uid": missing}),
        )
        .await);
    assert_eq!(error["code"], "invalid_input", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{error}"
    );
    let parent = ok(&mcp.call_tool("create_task", json!({"title": "p"})).await)["uid"].clone();
    ok(&mcp
        .call_tool("create_task", json!({"title": "sub", "parent_uid": parent}))
        .await);
    ok(&mcp.call_tool("delete_task", json!({"uid": parent})).await);
    let error = err(&mcp
        .call_tool("create_task", json!({"title": "sub", "parent_uid": parent}))
        .await);
    assert!(
        error["message"].as_str().unwrap().contains("was deleted"),
        "{error}"
    );
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Defect 13: messages seen against the real service.

/// The real service doubles its conflict prefix; the error says it once.
#[tokio::test]
async fn a_conflict_says_its_prefix_once() {
    let server = server().await;
    Mock::given(method("PATCH"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(412).set_body_json(json!({
            "error": "version mismatch: version mismatch: expected 1, actual 2",
            "correlation_id": "x"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(note_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(item(UID, 2)))
        .mount(&server)
        .await;
    let mut mcp = launch(&server, &[]).await;
    let error = err(&mcp
        .call_tool(
            "patch_note",
            json!({"uid": UID, "title": "x", "if_version": 1}),
        )
        .await);
    assert_eq!(error["code"], "conflict");
    assert_eq!(
        error["message"],
        "version mismatch: expected 1, actual 2; the current version is 2"
    );
    mcp.shutdown().await;
}

/// With a dev subject configured, doctor's fix for a refused tenant check
/// speaks of the dev subject, not of tokens.
#[test]
fn doctor_fix_follows_the_configured_credentials() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/healthz"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/auth/tenant"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"error": "unauthorized"})),
            )
            .mount(&server)
            .await;
        server
    });
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "doctor",
            "--api-url",
            &server.uri(),
            "--dev-subject",
            "dev-user",
        ])
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fix = text
        .lines()
        .skip_while(|l| !(l.starts_with("FAIL") && l.contains("auth and tenant")))
        .nth(1)
        .unwrap_or_else(|| panic!("no failed tenant check:\n{text}"));
    assert!(
        fix.trim_start().starts_with("fix: TOOLBRIDGE_DEV_SUBJECT"),
        "{fix}"
    );
}
