//! Several sidecars on one embedded database file, and a crash mid-write: no
//! acknowledged write is lost or duplicated.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Launch, McpProcess, ok};
use serde_json::{Value, json};
use tokio::sync::oneshot;

async fn sidecar(db: &Path) -> McpProcess {
    let mut mcp = Launch::embedded(db).spawn().await;
    mcp.initialize().await;
    mcp
}

/// Sends `n` create_note calls without waiting between them (as a host that
/// pipelines would) and returns their pending replies.
async fn burst(mcp: &mut McpProcess, prefix: &str, n: usize) -> Vec<oneshot::Receiver<Value>> {
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let args = json!({"title": format!("{prefix}-{i}")});
        pending.push(mcp.start_tool_call("create_note", args).await);
    }
    pending
}

/// Every note in the database, following cursors to the end.
async fn all_notes(mcp: &mut McpProcess) -> Vec<Value> {
    let mut notes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = json!({"limit": 1000});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = mcp.call_tool("list_notes", args).await;
        notes.extend(ok(&page)["items"].as_array().unwrap().iter().cloned());
        cursor = ok(&page)["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return notes;
        }
    }
}

fn acknowledged_uid(reply: &Value) -> Option<String> {
    let result = reply.get("result")?;
    if result["isError"] == json!(true) {
        return None;
    }
    result["structuredContent"]["uid"]
        .as_str()
        .map(str::to_owned)
}

/// Two sidecars (a desktop client and an editor) create notes concurrently in
/// one database file: every acknowledged note is there afterwards, once.
#[tokio::test]
async fn two_sidecars_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut first = sidecar(&db).await;
    let mut second = sidecar(&db).await;
    let first_pending = burst(&mut first, "first", 60).await;
    let second_pending = burst(&mut second, "second", 60).await;
    let mut acknowledged = BTreeSet::new();
    for rx in first_pending {
        let reply = first.wait(rx).await;
        acknowledged
            .insert(acknowledged_uid(&reply).unwrap_or_else(|| panic!("create failed: {reply}")));
    }
    for rx in second_pending {
        let reply = second.wait(rx).await;
        acknowledged
            .insert(acknowledged_uid(&reply).unwrap_or_else(|| panic!("create failed: {reply}")));
    }
    assert_eq!(acknowledged.len(), 120);

    // Each sidecar sees the other's writes.
    for mcp in [&mut first, &mut second] {
        let notes = all_notes(mcp).await;
        let uids: Vec<&str> = notes.iter().map(|n| n["uid"].as_str().unwrap()).collect();
        let unique: BTreeSet<String> = uids.iter().map(|u| u.to_string()).collect();
        assert_eq!(uids.len(), unique.len(), "a note listed twice");
        assert_eq!(unique, acknowledged);
    }
    first.shutdown().await;
    second.shutdown().await;
}

/// A sidecar killed with SIGKILL in the middle of a burst of writes loses none
/// it acknowledged, and the database opens cleanly afterwards.
#[tokio::test]
async fn sigkill_mid_burst_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut victim = sidecar(&db).await;
    let mut pending = burst(&mut victim, "burst", 300).await.into_iter();
    let mut acknowledged = BTreeSet::new();
    // Wait for a first batch of acknowledgements, then pull the plug while the
    // rest are in flight.
    for rx in pending.by_ref().take(40) {
        if let Some(uid) = acknowledged_uid(&victim.wait(rx).await) {
            acknowledged.insert(uid);
        }
    }
    victim.kill().await;
    for mut rx in pending {
        if let Ok(reply) = rx.try_recv()
            && let Some(uid) = acknowledged_uid(&reply)
        {
            acknowledged.insert(uid);
        }
    }
    assert!(acknowledged.len() >= 40);

    let mut survivor = sidecar(&db).await;
    let present: BTreeSet<String> = all_notes(&mut survivor)
        .await
        .iter()
        .map(|n| n["uid"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "{} acknowledged before the kill, {} present after",
        acknowledged.len(),
        present.len()
    );
    // And the reopened database takes writes.
    ok(&survivor
        .call_tool("create_note", json!({"title": "after the crash"}))
        .await);
    survivor.shutdown().await;
}
