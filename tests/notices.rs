//! Warnings a host can show, through the real binary: a client that asked
//! for log messages hears the circuit open and close, a rate limit, a
//! session renewed after a wipe, the replica rebuilt and a stale read, as
//! `notifications/message`; a client that did not ask hears nothing. Both
//! protocol eras: `logging/setLevel` after `initialize`, and the level in
//! each request's `_meta` in the 2026-07-28 era. The harness fails any test
//! whose stdout carries a line that is not JSON-RPC.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::api::{ApiProcess, SECRET};
use common::faulty::{Fault, FaultyServer};
use common::upstream::UID;
use common::{Launch, MODERN_VERSION, McpProcess, err, ok};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Each fault shows at once: no retries, and the first failure opens the
/// circuit for a second.
const FLAGS: &[&str] = &[
    "--breaker-threshold",
    "1",
    "--breaker-cooldown",
    "1",
    "--max-retries",
    "0",
];

/// What a notice must never carry: the token, the tenant, a payload.
const SECRETS: &[&str] = &["test-token-7f3e9c", SECRET, "budget plan"];

/// The `data.event` of each `notifications/message`, in order.
fn events(mcp: &McpProcess) -> Vec<String> {
    messages(mcp)
        .iter()
        .map(|m| m["params"]["data"]["event"].as_str().unwrap().to_owned())
        .collect()
}

fn messages(mcp: &McpProcess) -> Vec<Value> {
    mcp.notifications()
        .into_iter()
        .filter(|n| n["method"] == "notifications/message")
        .collect()
}

/// Every message is well formed, from our logger, with a sentence, and
/// carries nothing secret.
fn check_messages(mcp: &McpProcess) {
    for message in messages(mcp) {
        let params = &message["params"];
        assert_eq!(params["logger"], "toolbridge-mcp", "{message}");
        assert!(params["level"].is_string(), "{message}");
        assert!(params["data"]["message"].is_string(), "{message}");
        let text = message.to_string();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {message}");
        }
    }
}

/// Waits for the message of `event`, at most 10 s.
async fn heard(mcp: &McpProcess, event: &str) -> Value {
    mcp.wait_for_notification(Duration::from_secs(10), |n| {
        n["method"] == "notifications/message" && n["params"]["data"]["event"] == event
    })
    .await
    .unwrap_or_else(|| panic!("no `{event}` message; heard {:?}", events(mcp)))
}

/// Calls `get_note` until it succeeds (the circuit's cooldown is a second).
async fn until_ok(mcp: &mut McpProcess, call: impl AsyncFn(&mut McpProcess) -> Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let result = call(mcp).await;
        if result["isError"] != json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "never succeeded: {result}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The same faults for every client: a 429 with `Retry-After: 1`, then a
/// 503 that opens the circuit, then the upstream recovers and a probe closes
/// it. `call` makes one `get_note` call the client's way.
async fn drive_faults(
    server: &FaultyServer,
    mcp: &mut McpProcess,
    call: impl AsyncFn(&mut McpProcess) -> Value,
) {
    server.set_fault(Fault::retry_after(429, "1"));
    assert_eq!(err(&call(mcp).await)["code"], "rate_limited");
    server.set_fault(Fault::status(503));
    assert_eq!(err(&call(mcp).await)["http_status"], 503);
    assert!(
        err(&call(mcp).await)["message"]
            .as_str()
            .unwrap()
            .starts_with("circuit open")
    );
    server.set_fault(Fault::None);
    until_ok(mcp, call).await;
}

async fn legacy_get(mcp: &mut McpProcess) -> Value {
    mcp.call_tool("get_note", json!({"uid": UID})).await
}

/// `initialize` era: a client that set `logging/setLevel` hears the rate
/// limit, the circuit opening and its closing, in that order, with their
/// numbers; a client that did not hears nothing, though the same faults
/// happened to it (its log says so).
#[tokio::test]
async fn legacy_clients_hear_faults_only_after_setting_a_level() {
    let server = FaultyServer::start().await;
    let mut asked = Launch::remote(&server.url()).args(FLAGS).spawn().await;
    asked.initialize().await;
    let set = asked
        .request("logging/setLevel", json!({"level": "info"}))
        .await;
    assert!(set.get("result").is_some(), "{set}");
    drive_faults(&server, &mut asked, legacy_get).await;
    let limited = heard(&asked, "rate_limited").await;
    assert_eq!(limited["params"]["level"], "warning");
    assert_eq!(limited["params"]["data"]["pause_s"], 1);
    assert_eq!(limited["params"]["data"]["status"], 429);
    let opened = heard(&asked, "circuit_opened").await;
    assert_eq!(opened["params"]["level"], "warning");
    assert_eq!(opened["params"]["data"]["cooldown_s"], 1);
    let closed = heard(&asked, "circuit_closed").await;
    assert_eq!(closed["params"]["level"], "notice");
    assert_eq!(
        events(&asked),
        ["rate_limited", "circuit_opened", "circuit_closed"]
    );
    check_messages(&asked);
    asked.shutdown().await;

    let server = FaultyServer::start().await;
    let mut silent = Launch::remote(&server.url()).args(FLAGS).spawn().await;
    silent.initialize().await;
    drive_faults(&server, &mut silent, legacy_get).await;
    // The circuit has closed (the last call went through, and the log says
    // so): every earlier notice would have been sent long before.
    assert!(common::wait_for_log_line(&silent.log_dir, "circuit closed").await);
    assert!(messages(&silent).is_empty(), "{:?}", messages(&silent));
    silent.shutdown().await;
}

/// A level filters: at `error`, the warnings of a rate limit and an open
/// circuit are not sent (the close, a notice, neither).
#[tokio::test]
async fn legacy_level_filters_by_severity() {
    let server = FaultyServer::start().await;
    let mut mcp = Launch::remote(&server.url()).args(FLAGS).spawn().await;
    mcp.initialize().await;
    mcp.request("logging/setLevel", json!({"level": "error"}))
        .await;
    drive_faults(&server, &mut mcp, legacy_get).await;
    assert!(common::wait_for_log_line(&mcp.log_dir, "circuit closed").await);
    // Raising the bar to warning afterwards lets the next fault through,
    // and proves the channel was live all along.
    mcp.request("logging/setLevel", json!({"level": "warning"}))
        .await;
    server.set_fault(Fault::retry_after(429, "1"));
    err(&legacy_get(&mut mcp).await);
    heard(&mcp, "rate_limited").await;
    assert_eq!(events(&mcp), ["rate_limited"]);
    mcp.shutdown().await;
}

fn modern_meta(level: Option<&str>) -> Value {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "harness", "version": "0"}
    });
    if let Some(level) = level {
        meta["io.modelcontextprotocol/logLevel"] = json!(level);
    }
    meta
}

async fn modern_get(mcp: &mut McpProcess, level: Option<&str>) -> Value {
    let response = mcp
        .request(
            "tools/call",
            json!({"_meta": modern_meta(level), "name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    response["result"].clone()
}

async fn modern(server: &FaultyServer) -> McpProcess {
    let mut mcp = Launch::remote(&server.url()).args(FLAGS).spawn().await;
    let discovered = mcp
        .request("server/discover", json!({"_meta": modern_meta(None)}))
        .await;
    assert!(
        discovered["result"]["capabilities"]["logging"].is_object(),
        "{discovered}"
    );
    mcp
}

/// 2026-07-28 era: a request whose `_meta` asks for `info` hears, before
/// its response, the notices raised while it ran; a request that does not
/// ask hears nothing (checked once its response is in: nothing of it can
/// come later). `logging/setLevel` is not of this era, and a level that is
/// not one is refused.
#[tokio::test]
async fn modern_requests_hear_what_happened_while_they_ran() {
    let server = FaultyServer::start().await;
    let mut mcp = modern(&server).await;
    let asking = async |mcp: &mut McpProcess| modern_get(mcp, Some("info")).await;
    drive_faults(&server, &mut mcp, asking).await;
    // Each notice came before the response of the request that raised it:
    // nothing to wait for.
    assert_eq!(
        events(&mcp),
        ["rate_limited", "circuit_opened", "circuit_closed"]
    );
    check_messages(&mcp);
    mcp.shutdown().await;

    let server = FaultyServer::start().await;
    let mut mcp = modern(&server).await;
    let silent = async |mcp: &mut McpProcess| modern_get(mcp, None).await;
    drive_faults(&server, &mut mcp, silent).await;
    let filtered = async |mcp: &mut McpProcess| modern_get(mcp, Some("error")).await;
    server.set_fault(Fault::retry_after(429, "1"));
    err(&filtered(&mut mcp).await);
    assert!(messages(&mcp).is_empty(), "{:?}", messages(&mcp));

    let set = mcp
        .request(
            "logging/setLevel",
            json!({"_meta": modern_meta(None), "level": "info"}),
        )
        .await;
    assert_eq!(set["error"]["code"], -32601, "{set}");
    let bad = mcp
        .request(
            "tools/call",
            json!({"_meta": modern_meta(Some("loud")), "name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    mcp.shutdown().await;
}

/// With a local replica, against an upstream with real semantics: a wipe
/// elsewhere renews the session (a warning with both epochs) and rebuilds
/// the replica; with the upstream gone, a read is answered from the replica
/// and the client hears it was stale. No message carries the token or a
/// payload.
#[tokio::test]
async fn replica_events_reach_a_client_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("api-logs")).await;
    let mut mcp = Launch::remote(&api.url)
        .env("TOOLBRIDGE_TOKEN", SECRET)
        .without_env("TOOLBRIDGE_TENANT_ID")
        .with_replica(&dir.path().join("replicas"), "0")
        .args(&["--max-retries", "0", "--call-timeout", "5"])
        .spawn()
        .await;
    mcp.initialize().await;
    mcp.request("logging/setLevel", json!({"level": "warning"}))
        .await;
    ok(&mcp
        .call_tool("create_note", json!({"title": "budget plan"}))
        .await);
    assert!(common::wait_for_log_line(&mcp.log_dir, "in step with the upstream").await);
    ok(&mcp.call_tool("list_notes", json!({})).await);

    api.wipe().await;
    // The first read meets `409 epoch_mismatch` and renews the session; the
    // refresh after it finds the new epoch and rebuilds.
    for _ in 0..2 {
        ok(&mcp.call_tool("list_notes", json!({})).await);
    }
    let renewed = heard(&mcp, "session_renewed").await;
    assert_eq!(renewed["params"]["level"], "warning");
    let (from, to) = (
        renewed["params"]["data"]["from_epoch"].as_u64().unwrap(),
        renewed["params"]["data"]["to_epoch"].as_u64().unwrap(),
    );
    assert!(to > from, "{renewed}");
    let rebuilt = heard(&mcp, "replica_rebuilt").await;
    assert_eq!(rebuilt["params"]["data"]["cause"], "epoch_changed");
    assert_eq!(rebuilt["params"]["data"]["to_epoch"], to);

    api.stop().await;
    let result = mcp.call_tool("list_notes", json!({})).await;
    assert_eq!(ok(&result)["stale"], true, "{result}");
    let stale = heard(&mcp, "stale_read").await;
    assert_eq!(stale["params"]["data"]["entity"], "notes");
    assert!(
        stale["params"]["data"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached")
    );
    check_messages(&mcp);
    mcp.shutdown().await;
}
