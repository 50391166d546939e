//! The local replica through the binary, against a `serve-api` process as
//! the remote upstream (real HTTP, real semantics) and, where the upstream
//! must misbehave or be someone else, a wiremock stand-in: other devices'
//! writes are seen within the staleness bound, a late commit stamped behind
//! the cursor is still picked up, deletes and wipes propagate, reads go on
//! (marked stale) when the upstream is gone, a damaged file is rebuilt, two
//! sidecars share one replica, and a replica is never read for someone else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::{ApiProcess, SECRET};
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};

struct Setup {
    api: ApiProcess,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("api-logs")).await;
        Self { api, dir }
    }

    fn replicas(&self) -> PathBuf {
        self.dir.path().join("replicas")
    }

    /// A sidecar on the API with the replica in this setup's directory.
    async fn sidecar(&self, max_staleness: &str, extra: &[&str]) -> McpProcess {
        let mut mcp = Launch::remote(&self.api.url)
            .env("TOOLBRIDGE_TOKEN", SECRET)
            .without_env("TOOLBRIDGE_TENANT_ID")
            .with_replica(&self.replicas(), max_staleness)
            .args(extra)
            .spawn()
            .await;
        mcp.initialize().await;
        mcp
    }
}

fn titles(list: &Value) -> Vec<String> {
    ok(list)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["payload"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn hit_titles(result: &Value) -> Vec<String> {
    ok(result)["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_owned())
        .collect()
}

/// Calls `tool` until `done` holds for its result, for at most 15 s.
async fn poll(
    mcp: &mut McpProcess,
    tool: &str,
    args: Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let result = mcp.call_tool(tool, args.clone()).await;
        if done(&result) {
            return result;
        }
        assert!(Instant::now() < deadline, "never happened; last: {result}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A note created on another device shows in `list_notes` and `search`
/// once the replica's staleness bound has passed, with no other prompt.
#[tokio::test]
async fn another_devices_write_is_seen_within_the_staleness_bound() {
    let setup = Setup::new().await;
    let mut mcp = setup.sidecar("0.5", &[]).await;
    let list = json!({"order": "newest"});
    assert!(titles(&mcp.call_tool("list_notes", list.clone()).await).is_empty());
    setup.api.device().await.create_note("from the phone").await;
    let seen = Instant::now();
    let result = poll(&mut mcp, "list_notes", list, |r| {
        titles(r) == ["from the phone"]
    })
    .await;
    eprintln!("seen after {:?}", seen.elapsed());
    assert!(ok(&result).get("stale").is_none());
    let found = mcp.call_tool("search", json!({"query": "phone"})).await;
    assert_eq!(hit_titles(&found), ["from the phone"]);
    mcp.shutdown().await;
}

/// The upstream stamps a write before it commits: a write committed after
/// the replica's cursor passed its stamp must still be picked up. It is put
/// straight into the API's database, stamped a second before the newest
/// item the replica has read.
#[tokio::test]
async fn a_late_commit_stamped_behind_the_cursor_is_picked_up() {
    let setup = Setup::new().await;
    let mut mcp = setup.sidecar("0", &[]).await;
    let newest = setup.api.device().await.create_note("newest").await;
    poll(&mut mcp, "list_notes", json!({}), |r| {
        titles(r) == ["newest"]
    })
    .await;

    let newest_ms = newest["payload"]["updatedTs"].as_i64().unwrap();
    let late_ms = newest_ms - 1000;
    let uid = uuid::Uuid::new_v4().to_string();
    let payload = json!({
        "title": "late commit", "uid": uid, "updatedTs": late_ms,
        "updateTime": "2026-11-30T00:00:00Z", "sync": {"version": 1, "isDeleted": false}
    });
    let db = rusqlite::Connection::open(&setup.api.db_path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO items (entity, uid, version, updated_ms, deleted_ms, payload) VALUES ('notes', ?1, 1, ?2, NULL, ?3)",
        rusqlite::params![uid, late_ms, payload.to_string()],
    )
    .unwrap();

    let result = poll(&mut mcp, "list_notes", json!({}), |r| titles(r).len() == 2).await;
    assert_eq!(titles(&result), ["late commit", "newest"]);
    mcp.shutdown().await;
}

/// An item deleted on another device leaves `list_*` and `search`.
#[tokio::test]
async fn an_item_deleted_elsewhere_disappears() {
    let setup = Setup::new().await;
    let mut mcp = setup.sidecar("0.5", &[]).await;
    let created = mcp
        .call_tool("create_note", json!({"title": "zebra crossing"}))
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    assert_eq!(
        hit_titles(&mcp.call_tool("search", json!({"query": "zebra"})).await),
        ["zebra crossing"]
    );
    setup.api.device().await.delete_note(&uid).await;
    poll(&mut mcp, "search", json!({"query": "zebra"}), |r| {
        hit_titles(r).is_empty()
    })
    .await;
    assert!(titles(&mcp.call_tool("list_notes", json!({})).await).is_empty());
    let with_deleted = mcp
        .call_tool("list_notes", json!({"include_deleted": true}))
        .await;
    assert_eq!(titles(&with_deleted), ["zebra crossing"]);
    mcp.shutdown().await;
}

/// A wipe deletes rows outright and leaves no tombstones; it raises the
/// epoch. The replica must be discarded and rebuilt: what the wipe removed
/// is gone from it.
#[tokio::test]
async fn a_wipe_rebuilds_the_replica() {
    let setup = Setup::new().await;
    let mut mcp = setup.sidecar("0", &[]).await;
    ok(&mcp
        .call_tool("create_note", json!({"title": "doomed"}))
        .await);
    ok(&mcp.call_tool("create_note", json!({"title": "kept"})).await);
    assert_eq!(
        titles(&mcp.call_tool("list_notes", json!({})).await).len(),
        2
    );
    // What the real service's wipe does to the rows (the embedded API's own
    // wipe only raises the epoch).
    let db = rusqlite::Connection::open(&setup.api.db_path).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute("DELETE FROM items WHERE payload LIKE '%\"doomed\"%'", [])
        .unwrap();
    setup.api.wipe().await;
    let result = poll(&mut mcp, "list_notes", json!({}), |r| titles(r).len() == 1).await;
    assert_eq!(titles(&result), ["kept"]);
    assert!(
        common::wait_for_log_line(&mcp.log_dir, "replica rebuilt").await,
        "no rebuild in the log"
    );
    mcp.shutdown().await;
}

/// With the upstream gone, `get_*`, `list_*` and `search` answer from the
/// replica marked `stale` with `as_of` and a sentence; a write fails.
#[tokio::test]
async fn offline_reads_are_stale_and_say_so() {
    let mut setup = Setup::new().await;
    let mut mcp = setup
        .sidecar("0", &["--max-retries", "0", "--call-timeout", "5"])
        .await;
    let created = mcp
        .call_tool("create_note", json!({"title": "budget plan"}))
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    // Online long enough for the first sync of every entity to complete.
    assert!(common::wait_for_log_line(&mcp.log_dir, "in step with the upstream").await);
    setup.api.stop().await;

    let got = mcp.call_tool("get_note", json!({"uid": uid})).await;
    assert_eq!(ok(&got)["payload"]["title"], "budget plan");
    for result in [
        got,
        mcp.call_tool("list_notes", json!({})).await,
        mcp.call_tool("search", json!({"query": "budget"})).await,
    ] {
        assert_eq!(ok(&result)["stale"], true, "{result}");
        let as_of = ok(&result)["as_of"].as_str().unwrap();
        assert!(as_of.starts_with("20"), "{as_of}");
        let texts: Vec<&str> = result["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["text"].as_str())
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t.contains("could not be reached") && t.contains(as_of)),
            "{texts:?}"
        );
    }
    let write = mcp
        .call_tool("create_note", json!({"title": "while offline"}))
        .await;
    assert_eq!(err(&write)["code"], "upstream_unavailable");
    mcp.shutdown().await;
}

/// A replica file that is not a database is rebuilt, with a log line; the
/// sidecar never fails on it.
#[tokio::test]
async fn a_corrupt_replica_is_rebuilt() {
    let setup = Setup::new().await;
    let mut mcp = setup.sidecar("0", &[]).await;
    ok(&mcp
        .call_tool("create_note", json!({"title": "survivor"}))
        .await);
    ok(&mcp.call_tool("list_notes", json!({})).await);
    mcp.shutdown().await;
    let files: Vec<PathBuf> = std::fs::read_dir(setup.replicas())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    for entry in std::fs::read_dir(setup.replicas()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("-wal") || path.to_string_lossy().contains("-shm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::write(&files[0], vec![0x5a; 8192]).unwrap();

    let mut mcp = setup.sidecar("0", &[]).await;
    let result = mcp.call_tool("search", json!({"query": "survivor"})).await;
    assert_eq!(hit_titles(&result), ["survivor"]);
    assert!(
        common::wait_for_log_line(&mcp.log_dir, "rebuil").await,
        "no rebuild in the log:\n{}",
        mcp.log_text()
    );
    mcp.shutdown().await;
}

/// Two sidecars (a desktop client and an editor) on one replica file, both
/// writing: every write is in, once, and both read all of them.
#[tokio::test]
async fn two_sidecars_share_one_replica_while_both_write() {
    let setup = Setup::new().await;
    let mut a = setup.sidecar("0", &[]).await;
    let mut b = setup.sidecar("0", &[]).await;
    let mut pending = Vec::new();
    for i in 0..20 {
        pending.push((
            "a",
            a.start_tool_call("create_note", json!({"title": format!("a{i}")}))
                .await,
        ));
        pending.push((
            "b",
            b.start_tool_call("create_note", json!({"title": format!("b{i}")}))
                .await,
        ));
    }
    for (who, rx) in pending {
        let result = if who == "a" {
            a.wait(rx).await
        } else {
            b.wait(rx).await
        };
        ok(&result);
    }
    for mcp in [&mut a, &mut b] {
        let list = mcp.call_tool("list_notes", json!({"limit": 1000})).await;
        let all = titles(&list);
        let unique: HashSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 40, "{all:?}");
        assert_eq!(unique.len(), 40);
    }
    let replicas = std::fs::read_dir(setup.replicas())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "db")
        })
        .count();
    assert_eq!(replicas, 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// A wiremock upstream whose sessions say which user they belong to (from
/// the token) and whose notes list answers only that user's items.
/// A read the upstream can answer does not wait for the replica's first
/// sync, which on a large account can take minutes: with the upstream
/// holding back the first page of notes, `get_note` is answered from the
/// upstream at once.
#[tokio::test]
async fn a_read_does_not_wait_for_the_first_sync() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    common::upstream::mount_session(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/notes"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": []}))
                .set_delay(Duration::from_secs(120)),
        )
        .mount(&server)
        .await;
    let uid = common::upstream::UID;
    Mock::given(method("GET"))
        .and(path(format!("/v1/notes/{uid}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(common::upstream::item(uid, 4)))
        .mount(&server)
        .await;
    no_other_items(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::remote(&server.uri())
        .with_replica(dir.path(), "0")
        .spawn()
        .await;
    mcp.initialize().await;
    // The first sync of notes is under way once its first page is asked for.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let requests = server.received_requests().await.unwrap_or_default();
        if requests.iter().any(|r| r.url.path() == "/v1/notes") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first sync never asked for notes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        mcp.call_tool("get_note", json!({ "uid": uid })),
    )
    .await
    .expect("get_note waited for the replica's first sync");
    let item = ok(&answered);
    assert_eq!(item["uid"], uid, "{item}");
    assert_eq!(item["version"], 4, "{item}");
}

/// A stand-in's tasks, comments, chats and chat messages: none.
async fn no_other_items(server: &wiremock::MockServer) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    for entity in ["tasks", "comments", "chats", "chat_messages"] {
        Mock::given(method("GET"))
            .and(path(format!("/v1/{entity}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
            .mount(server)
            .await;
    }
}

async fn per_user_upstream() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/sync/sessions"))
        .respond_with(|r: &Request| {
            let user = common::upstream::header(r, "authorization")
                .unwrap_or_default()
                .trim_start_matches("Bearer ")
                .to_owned();
            let tenant = common::upstream::header(r, "x-tb-tenant-id").unwrap_or_default();
            let mut body = common::upstream::session_body(&format!("s-{user}-{tenant}"), 1);
            body["userId"] = json!(user);
            ResponseTemplate::new(201).set_body_json(body)
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/notes"))
        .respond_with(|r: &Request| {
            let owner = common::upstream::header(r, "x-sync-session") == Some("s-alice-tenant-1");
            let after_cursor = r.url.query_pairs().any(|(k, _)| k == "cursor");
            let items = if owner && !after_cursor {
                let mut item = common::upstream::item(common::upstream::UID, 1);
                item["payload"]["title"] = json!("alice's secret");
                vec![item]
            } else {
                vec![]
            };
            ResponseTemplate::new(200).set_body_json(json!({"items": items, "nextCursor": "Yw"}))
        })
        .mount(&server)
        .await;
    no_other_items(&server).await;
    server
}

async fn as_user(
    server: &wiremock::MockServer,
    replicas: &Path,
    user: &str,
    tenant: &str,
) -> McpProcess {
    let mut mcp = Launch::remote(&server.uri())
        .env("TOOLBRIDGE_TOKEN", user)
        .env("TOOLBRIDGE_TENANT_ID", tenant)
        .with_replica(replicas, "0")
        .spawn()
        .await;
    mcp.initialize().await;
    mcp
}

/// The replica is keyed by the session's user id and the tenant: the same
/// API and the same replica directory never hand one user's items to
/// another user, or to the same user in another tenant.
#[tokio::test]
async fn a_replica_is_never_read_for_another_user_or_tenant() {
    let server = per_user_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = as_user(&server, dir.path(), "alice", "tenant-1").await;
    let mine = alice.call_tool("search", json!({"query": "secret"})).await;
    assert_eq!(hit_titles(&mine), ["alice's secret"]);
    alice.shutdown().await;

    for (user, tenant) in [("bob", "tenant-1"), ("alice", "tenant-2")] {
        let mut other = as_user(&server, dir.path(), user, tenant).await;
        let theirs = other.call_tool("search", json!({"query": "secret"})).await;
        assert!(hit_titles(&theirs).is_empty(), "{user}@{tenant}: {theirs}");
        let listed = other
            .call_tool("list_notes", json!({"order": "newest"}))
            .await;
        assert!(titles(&listed).is_empty(), "{user}@{tenant}: {listed}");
        other.shutdown().await;
    }
}
