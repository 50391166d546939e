//! The 40 tools doing real work, through the binary's stdio, against two
//! backends with real semantics: the embedded default (in-process) and a
//! separate `serve-api` process used as a remote upstream (token, tenant
//! resolution, a real HTTP hop). The same suite runs on both.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::api::{ApiProcess, SECRET};
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};

enum Backend {
    Embedded,
    Remote,
}

struct Setup {
    mcp: McpProcess,
    api: ApiProcess,
    _dir: tempfile::TempDir,
}

/// Starts a sidecar on `backend`. A `serve-api` process on the same database
/// file is started either way: for `Remote` it is the upstream; for
/// `Embedded` it shares the file, so its wipe reaches the sidecar's epoch.
/// Whether the sidecar keeps a local replica: the suite passes alike with
/// and without it.
#[derive(Clone, Copy)]
enum Replica {
    On,
    Off,
}

async fn setup(backend: Backend, replica: Replica) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("toolbridge.db");
    let api = ApiProcess::start(&db, &dir.path().join("api-logs")).await;
    let launch = match backend {
        Backend::Embedded => Launch::embedded(&db),
        Backend::Remote => Launch::remote(&api.url)
            .env("TOOLBRIDGE_TOKEN", SECRET)
            .without_env("TOOLBRIDGE_TENANT_ID"),
    };
    let launch = match replica {
        Replica::On => launch.with_replica(&dir.path().join("replicas"), "2"),
        Replica::Off => launch.env("TOOLBRIDGE_REPLICA", "off"),
    };
    let mut mcp = launch.spawn().await;
    mcp.initialize().await;
    Setup {
        mcp,
        api,
        _dir: dir,
    }
}

fn uid_of(result: &Value) -> String {
    ok(result)["uid"].as_str().expect("uid").to_owned()
}

/// Each entity's create arguments, given the parents it may need.
fn create_args(entity: &str, note: &str, chat: &str) -> Value {
    match entity {
        "note" => json!({"title": "Groceries", "content": "- milk", "tags": ["home"]}),
        "task" => {
            json!({"title": "Ship it", "status": "open", "priority": "high", "due_date": "2026-12-24"})
        }
        "comment" => {
            json!({"parent_type": "note", "parent_uid": note, "content": "nice", "author": "ann"})
        }
        "chat" => json!({"title": "Standup", "participants": ["ann", "bob"]}),
        "chat_message" => {
            json!({"chat_uid": chat, "content": "hello", "sender": "ann", "message_type": "text"})
        }
        _ => unreachable!(),
    }
}

/// What `update_*` must keep sending: the parent of comments and messages.
fn update_args(entity: &str, note: &str, chat: &str) -> Value {
    let mut args = create_args(entity, note, chat);
    args["tags"] = json!(["updated"]);
    args
}

fn plural(entity: &str) -> String {
    format!("{entity}s")
}

/// Create, get, update (guarded), a stale update, patch, process, archive,
/// list, delete, and the deleted item's afterlife, for all five entities.
async fn full_lifecycle(backend: Backend, replica: Replica) {
    let Setup {
        mut mcp,
        api: _api,
        _dir,
    } = setup(backend, replica).await;
    let note = uid_of(
        &mcp.call_tool("create_note", json!({"title": "parent"}))
            .await,
    );
    let chat = uid_of(&mcp.call_tool("create_chat", json!({"title": "room"})).await);
    let actions = [
        ("note", "pin", "pinned", json!(true)),
        ("task", "complete", "status", json!("completed")),
        ("comment", "resolve", "status", json!("resolved")),
        ("chat", "resolve", "status", json!("resolved")),
        ("chat_message", "mark_read", "read", json!(true)),
    ];

    for (entity, action, key, value) in actions {
        let created = mcp
            .call_tool(
                &format!("create_{entity}"),
                create_args(entity, &note, &chat),
            )
            .await;
        let uid = uid_of(&created);
        assert_eq!(ok(&created)["version"], 1, "{entity}: {created}");

        let got = mcp
            .call_tool(&format!("get_{entity}"), json!({"uid": uid}))
            .await;
        assert_eq!(ok(&got)["uid"], uid.as_str());
        // The model sees the payload without the server's bookkeeping;
        // `raw` returns it as the upstream sent it.
        assert!(ok(&got)["payload"].get("sync").is_none(), "{got}");
        let raw = mcp
            .call_tool(&format!("get_{entity}"), json!({"uid": uid, "raw": true}))
            .await;
        assert_eq!(ok(&raw)["payload"]["uid"], uid.as_str());
        assert_eq!(ok(&raw)["payload"]["sync"]["version"], 1);

        let mut update = update_args(entity, &note, &chat);
        update["uid"] = json!(uid);
        update["if_version"] = json!(1);
        let updated = mcp
            .call_tool(&format!("update_{entity}"), update.clone())
            .await;
        assert_eq!(ok(&updated)["version"], 2, "{entity}: {updated}");
        assert_eq!(ok(&updated)["payload"]["tags"], json!(["updated"]));

        // The same guarded update again is stale now.
        let stale = mcp.call_tool(&format!("update_{entity}"), update).await;
        assert_eq!(err(&stale)["code"], "conflict", "{entity}: {stale}");
        assert_eq!(err(&stale)["http_status"], 412);
        assert!(
            err(&stale)["message"]
                .as_str()
                .unwrap()
                .contains("current version is 2"),
            "{stale}"
        );

        let patched = mcp
            .call_tool(
                &format!("patch_{entity}"),
                json!({"uid": uid, "tags": ["patched"], "if_version": 2}),
            )
            .await;
        assert_eq!(ok(&patched)["version"], 3);
        assert_eq!(ok(&patched)["payload"]["tags"], json!(["patched"]));

        let processed = mcp
            .call_tool(
                &format!("process_{entity}"),
                json!({"uid": uid, "action": action}),
            )
            .await;
        assert_eq!(
            ok(&processed)["payload"][key],
            value,
            "{entity} {action}: {processed}"
        );
        let archived = mcp
            .call_tool(&format!("archive_{entity}"), json!({"uid": uid}))
            .await;
        assert_eq!(ok(&archived)["version"], 5);

        let listed = mcp
            .call_tool(&format!("list_{}", plural(entity)), json!({"limit": 1000}))
            .await;
        assert!(
            ok(&listed)["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["uid"] == uid.as_str())
        );

        let deleted = mcp
            .call_tool(&format!("delete_{entity}"), json!({"uid": uid}))
            .await;
        assert!(ok(&deleted)["deletedAt"].is_string(), "{deleted}");
        let gone = mcp
            .call_tool(&format!("get_{entity}"), json!({"uid": uid}))
            .await;
        assert_eq!(err(&gone)["code"], "gone");
        let kept = mcp
            .call_tool(
                &format!("get_{entity}"),
                json!({"uid": uid, "include_deleted": true}),
            )
            .await;
        assert!(ok(&kept)["deletedAt"].is_string());
        let again = mcp
            .call_tool(&format!("delete_{entity}"), json!({"uid": uid}))
            .await;
        assert_eq!(err(&again)["code"], "gone");
        let listed = mcp
            .call_tool(&format!("list_{}", plural(entity)), json!({"limit": 1000}))
            .await;
        assert!(
            !ok(&listed)["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["uid"] == uid.as_str())
        );
        let listed = mcp
            .call_tool(
                &format!("list_{}", plural(entity)),
                json!({"limit": 1000, "include_deleted": true}),
            )
            .await;
        assert!(
            ok(&listed)["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["uid"] == uid.as_str())
        );
    }
    mcp.shutdown().await;
}

#[tokio::test]
async fn full_lifecycle_on_the_embedded_default() {
    full_lifecycle(Backend::Embedded, Replica::On).await;
}

#[tokio::test]
async fn full_lifecycle_on_the_embedded_default_without_replica() {
    full_lifecycle(Backend::Embedded, Replica::Off).await;
}

#[tokio::test]
async fn full_lifecycle_on_a_remote_upstream() {
    full_lifecycle(Backend::Remote, Replica::On).await;
}

#[tokio::test]
async fn full_lifecycle_on_a_remote_upstream_without_replica() {
    full_lifecycle(Backend::Remote, Replica::Off).await;
}

/// Parents are enforced, filters find children, pagination walks everything.
async fn parents_filters_and_pages(backend: Backend, replica: Replica) {
    let Setup {
        mut mcp,
        api: _api,
        _dir,
    } = setup(backend, replica).await;
    let a = uid_of(&mcp.call_tool("create_note", json!({"title": "a"})).await);
    let b = uid_of(&mcp.call_tool("create_task", json!({"title": "b"})).await);
    for i in 0..3 {
        ok(&mcp
            .call_tool(
                "create_comment",
                json!({"parent_type": "note", "parent_uid": a, "content": format!("a{i}")}),
            )
            .await);
        ok(&mcp
            .call_tool(
                "create_comment",
                json!({"parent_type": "task", "parent_uid": b, "content": format!("b{i}")}),
            )
            .await);
    }
    let on_a = mcp
        .call_tool("list_comments", json!({"parent_uid": a}))
        .await;
    let items = ok(&on_a)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| i["payload"]["parentUid"] == a.as_str())
    );

    let missing = "00000000-0000-4000-8000-000000000000";
    let orphan = mcp
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": missing}),
        )
        .await;
    assert!(
        ["invalid_input", "upstream_error"].contains(&err(&orphan)["code"].as_str().unwrap()),
        "{orphan}"
    );
    let orphan = mcp
        .call_tool(
            "create_chat_message",
            json!({"chat_uid": missing, "content": "x"}),
        )
        .await;
    assert!(
        err(&orphan)["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{orphan}"
    );

    // Walk all notes two at a time: each exactly once.
    for i in 0..5 {
        ok(&mcp
            .call_tool("create_note", json!({"title": format!("n{i}")}))
            .await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut args = json!({"limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = mcp.call_tool("list_notes", args).await;
        for item in ok(&page)["items"].as_array().unwrap() {
            seen.push(item["uid"].as_str().unwrap().to_owned());
        }
        cursor = ok(&page)["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(unique.len(), 6);
    mcp.shutdown().await;
}

#[tokio::test]
async fn parents_filters_and_pages_on_the_embedded_default() {
    parents_filters_and_pages(Backend::Embedded, Replica::On).await;
}

#[tokio::test]
async fn parents_filters_and_pages_on_the_embedded_default_without_replica() {
    parents_filters_and_pages(Backend::Embedded, Replica::Off).await;
}

#[tokio::test]
async fn parents_filters_and_pages_on_a_remote_upstream() {
    parents_filters_and_pages(Backend::Remote, Replica::On).await;
}

#[tokio::test]
async fn parents_filters_and_pages_on_a_remote_upstream_without_replica() {
    parents_filters_and_pages(Backend::Remote, Replica::Off).await;
}

/// After the tenant's epoch is raised, the next call that reaches the upstream
/// re-sessions and succeeds without the caller noticing.
async fn epoch_bump_is_invisible(backend: Backend, replica: Replica) {
    let Setup { mut mcp, api, _dir } = setup(backend, replica).await;
    let uid = uid_of(
        &mcp.call_tool("create_note", json!({"title": "before"}))
            .await,
    );
    api.wipe().await;
    // A write always goes to the upstream (a read may be answered by the
    // replica), so it meets the new epoch.
    ok(&mcp
        .call_tool("patch_note", json!({"uid": uid, "content": "after"}))
        .await);
    let got = mcp.call_tool("get_note", json!({"uid": uid})).await;
    assert_eq!(ok(&got)["payload"]["title"], "before");
    assert_eq!(ok(&got)["payload"]["content"], "after");
    assert!(
        common::wait_for_log_line(&mcp.log_dir, "renewing the sync session").await,
        "no re-session in the log"
    );
    mcp.shutdown().await;
    drop(api);
}

#[tokio::test]
async fn epoch_bump_is_invisible_on_the_embedded_default() {
    epoch_bump_is_invisible(Backend::Embedded, Replica::On).await;
}

#[tokio::test]
async fn epoch_bump_is_invisible_on_the_embedded_default_without_replica() {
    epoch_bump_is_invisible(Backend::Embedded, Replica::Off).await;
}

#[tokio::test]
async fn epoch_bump_is_invisible_on_a_remote_upstream() {
    epoch_bump_is_invisible(Backend::Remote, Replica::On).await;
}

#[tokio::test]
async fn epoch_bump_is_invisible_on_a_remote_upstream_without_replica() {
    epoch_bump_is_invisible(Backend::Remote, Replica::Off).await;
}
