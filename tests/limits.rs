//! Big inputs and big listings, through the binary: the largest item (1 MiB
//! of payload as JSON) is the same for both backends and refused before
//! anything is sent; a listing larger than `--max-response-bytes` shrinks
//! its page instead of failing, with and without the local replica.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::api::{ApiProcess, SECRET};
use common::upstream;
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The largest item, in bytes of compact JSON.
const MAX_ITEM: usize = 1 << 20;
/// What the refusals name.
const LIMIT_TEXT: &str = "the largest item is 1,048,576 bytes (1 MiB)";

/// `{"content":"…","uid":"<36>"}`, as `create_note` sends a note with only
/// content: 59 bytes around the content.
fn content_of_a_note_of(bytes: usize) -> String {
    "x".repeat(bytes - 59)
}

fn assert_too_large(result: &Value, field: &str, noun: &str) {
    let error = err(result);
    assert_eq!(error["code"], "invalid_input", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{field} is too large: the {noun} would be ")),
        "{message}"
    );
    assert!(message.contains(LIMIT_TEXT), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

/// On the embedded API: a note of exactly 1 MiB is stored whole; one byte
/// more is refused naming its size and the limit, and nothing is stored.
/// Every write is measured: patch, process's metadata, a task's
/// description, and an update as the merge it would write.
#[tokio::test]
async fn the_embedded_api_takes_an_item_up_to_one_mib_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &["--result-budget", "300000"]).await;

    let at_limit = content_of_a_note_of(MAX_ITEM);
    let created = mcp
        .call_tool("create_note", json!({"content": at_limit}))
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    let mut read = String::new();
    let mut offset = 0;
    loop {
        let got = mcp
            .call_tool("get_note", json!({"uid": uid, "offset": offset}))
            .await;
        read.push_str(ok(&got)["payload"]["content"].as_str().unwrap());
        match ok(&got)["next_offset"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(read, at_limit);

    let over = mcp
        .call_tool(
            "create_note",
            json!({"content": content_of_a_note_of(MAX_ITEM + 1)}),
        )
        .await;
    assert_too_large(&over, "content", "note");
    assert!(
        err(&over)["message"]
            .as_str()
            .unwrap()
            .contains("would be 1,048,577 bytes"),
        "{over}"
    );
    let listed = mcp
        .call_tool("list_notes", json!({"fields": ["title"]}))
        .await;
    assert_eq!(ok(&listed)["items"].as_array().unwrap().len(), 1);

    let big = "y".repeat(MAX_ITEM);
    let patched = mcp
        .call_tool("patch_note", json!({"uid": uid, "content": big}))
        .await;
    assert_too_large(&patched, "content", "note");
    let processed = mcp
        .call_tool(
            "process_note",
            json!({"uid": uid, "action": "pin", "metadata": {"why": big}}),
        )
        .await;
    assert_too_large(&processed, "metadata", "note");
    let task = mcp
        .call_tool("create_task", json!({"title": "t", "description": big}))
        .await;
    assert_too_large(&task, "description", "task");

    // The update keeps `extra` (not a typed field): the merge it would
    // write is over the limit although what was given is not.
    let kept = mcp
        .call_tool(
            "create_note",
            json!({"title": "small", "additional_fields": {"extra": "e".repeat(1000)}}),
        )
        .await;
    let kept_uid = ok(&kept)["uid"].as_str().unwrap().to_owned();
    let updated = mcp
        .call_tool(
            "update_note",
            json!({"uid": kept_uid, "content": "z".repeat(MAX_ITEM - 500)}),
        )
        .await;
    assert_too_large(&updated, "content", "note");
    let unchanged = mcp.call_tool("get_note", json!({"uid": kept_uid})).await;
    assert_eq!(ok(&unchanged)["version"], 1);
    assert_eq!(ok(&unchanged)["payload"]["title"], "small");
    mcp.shutdown().await;
}

/// A patch sends only what changes, so only the API can see the item it
/// would make: on the embedded API a patch that would grow a note past
/// 1 MiB is refused naming the limit, and the note is left as it was.
#[tokio::test]
async fn a_patch_cannot_grow_an_item_past_one_mib() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let created = mcp
        .call_tool(
            "create_note",
            json!({"content": "x".repeat(MAX_ITEM / 2 + 1000)}),
        )
        .await;
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();

    let grown = mcp
        .call_tool(
            "patch_note",
            json!({"uid": uid, "title": "t".repeat(MAX_ITEM / 2)}),
        )
        .await;
    let error = err(&grown);
    assert_eq!(error["code"], "invalid_input", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("after this patch"), "{message}");
    assert!(message.contains(LIMIT_TEXT), "{message}");

    let fits = mcp
        .call_tool("patch_note", json!({"uid": uid, "title": "fits"}))
        .await;
    assert_eq!(ok(&fits)["version"], 2, "{fits}");
    let read = mcp.call_tool("get_note", json!({"uid": uid})).await;
    assert_eq!(ok(&read)["payload"]["title"], "fits", "{read}");
    mcp.shutdown().await;
}

/// On a remote API the same limit holds, and a refused write sends nothing;
/// the upstream's own `413` is invalid input too.
#[tokio::test]
async fn a_remote_api_is_never_sent_an_item_over_one_mib() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let over = mcp
        .call_tool(
            "create_note",
            json!({"content": content_of_a_note_of(MAX_ITEM + 1)}),
        )
        .await;
    assert_too_large(&over, "content", "note");
    assert!(upstream::entity_requests(&server).await.is_empty());

    let at_limit = mcp
        .call_tool(
            "create_note",
            json!({"content": content_of_a_note_of(MAX_ITEM)}),
        )
        .await;
    ok(&at_limit);
    let sent = upstream::entity_requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body.len(), MAX_ITEM);
    mcp.shutdown().await;

    // An upstream (or a proxy before it) with a smaller limit of its own:
    // its 413 is the caller's input to shorten, not an upstream fault.
    let strict = MockServer::start().await;
    upstream::mount_session(&strict).await;
    Mock::given(method("POST"))
        .and(path("/v1/notes"))
        .respond_with(ResponseTemplate::new(413).set_body_string("Request Entity Too Large"))
        .mount(&strict)
        .await;
    let mut mcp = Launch::remote(&strict.uri()).spawn().await;
    mcp.initialize().await;
    let refused = mcp
        .call_tool("create_note", json!({"content": "x".repeat(300_000)}))
        .await;
    let error = err(&refused);
    assert_eq!(error["code"], "invalid_input", "{error}");
    assert_eq!(error["http_status"], 413, "{error}");
    assert_eq!(
        error["message"],
        "the upstream refused the request as too large: Request Entity Too Large"
    );
    mcp.shutdown().await;
}

/// The embedded API, served for other clients, refuses an item over 1 MiB
/// (measured as compact JSON, so indentation does not count) and a body
/// over 2 MiB with `413` in the contract's error shape.
#[tokio::test]
async fn serve_api_refuses_bigger_bodies_with_a_clear_413() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("logs")).await;
    let device = api.device().await;
    let post = |body: Vec<u8>| {
        device
            .http()
            .post(format!("{}/v1/notes", api.url))
            .header("Authorization", format!("Bearer {SECRET}"))
            .header("X-TB-Tenant-ID", "local")
            .header("X-Sync-Session", device.session())
            .header("X-Sync-Epoch", device.epoch().to_string())
            .header("X-Correlation-ID", "limits-1")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    // `{"content":"…"}`: 14 bytes around the content.
    let at_limit = json!({"content": "x".repeat(MAX_ITEM - 14)});
    let indented = serde_json::to_vec_pretty(&at_limit).unwrap();
    assert!(indented.len() > MAX_ITEM);
    let response = post(indented).await.unwrap();
    assert_eq!(response.status(), 201);

    for (body, says) in [
        (
            serde_json::to_vec(&json!({"content": "x".repeat(MAX_ITEM - 13)})).unwrap(),
            "the item is 1,048,577 bytes as JSON; the largest item is 1,048,576 bytes (1 MiB)",
        ),
        (
            serde_json::to_vec(&json!({"content": "x".repeat(3 << 20)})).unwrap(),
            "the request body is larger than 2,097,152 bytes; the largest item is 1,048,576 bytes (1 MiB)",
        ),
    ] {
        let response = post(body).await.unwrap();
        assert_eq!(response.status(), 413);
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            error,
            json!({"error": says, "correlation_id": "limits-1"}),
            "{error}"
        );
    }
}

/// The response cap the listing tests run with: three ~2.7 KB notes fit in
/// a page, ten do not (the cheap stand-in for ten 2 MB notes under 16 MiB).
const SMALL_CAP: &str = "16384";

/// Walks `list_notes` from the start with `limit`, following cursors; the
/// titles in order, how many pages said `truncated`, and the error that
/// stopped the walk, if one did.
async fn walk_notes(mcp: &mut McpProcess, limit: u32) -> (Vec<String>, usize, Option<Value>) {
    let (mut titles, mut truncated) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut args = json!({"limit": limit, "fields": ["title"]});
        if let Some(cursor) = &cursor {
            args["cursor"] = json!(cursor);
        }
        let page = mcp.call_tool("list_notes", args).await;
        if page["isError"] == json!(true) {
            return (titles, truncated, Some(err(&page)));
        }
        let page = ok(&page);
        let items = page["items"].as_array().unwrap();
        titles.extend(
            items
                .iter()
                .map(|i| i["payload"]["title"].as_str().unwrap().to_owned()),
        );
        if page["truncated"] == json!(true) {
            truncated += 1;
            assert!(items.len() < limit as usize, "{page}");
        }
        match page["nextCursor"].as_str() {
            Some(next) if !items.is_empty() => cursor = Some(next.to_owned()),
            _ => return (titles, truncated, None),
        }
    }
    panic!("the listing never ends");
}

/// Ten ~2.7 KB notes stored in `db` through a sidecar with the default cap,
/// which stays open to write more; their titles, oldest first.
async fn ten_notes(db: &std::path::Path) -> (McpProcess, Vec<String>) {
    let mut writer = Launch::embedded(db)
        .args(&["--replica", "off"])
        .spawn()
        .await;
    writer.initialize().await;
    let titles: Vec<String> = (0..10).map(|i| format!("note {i}")).collect();
    for title in &titles {
        let note = json!({"title": title, "content": "c".repeat(2500)});
        ok(&writer.call_tool("create_note", note).await);
    }
    (writer, titles)
}

/// Ten notes that together are over `--max-response-bytes`, replica off:
/// `list_notes` shrinks its page instead of failing, says it was cut
/// (`truncated`) and goes on from its cursor. Only an item alone over the
/// cap stops the listing, naming `get_note` with offset.
#[tokio::test]
async fn a_listing_over_the_response_cap_shrinks_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (mut writer, expected) = ten_notes(&db).await;
    let mut direct = Launch::embedded(&db)
        .args(&["--replica", "off", "--max-response-bytes", SMALL_CAP])
        .spawn()
        .await;
    direct.initialize().await;
    let (titles, truncated, error) = walk_notes(&mut direct, 10).await;
    assert_eq!(error, None);
    assert_eq!(titles, expected);
    assert!(truncated > 0, "no page said it was cut");

    // One note alone over the cap: the walk gets every note before it.
    ok(&writer
        .call_tool(
            "create_note",
            json!({"title": "huge", "content": "h".repeat(20_000)}),
        )
        .await);
    let (titles, _, error) = walk_notes(&mut direct, 10).await;
    assert_eq!(titles, expected);
    let error = error.expect("the walk stops at the huge note");
    assert_eq!(error["code"], "upstream_error", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(
            "the next note of this list alone is larger than the upstream response cap of 16384 bytes"
        ),
        "{message}"
    );
    assert!(message.contains("get_note with offset"), "{message}");
    direct.shutdown().await;
    writer.shutdown().await;
}

/// The same ten notes, replica on: its first sync pages through them with
/// smaller pages, so a list only the replica can answer (newest first)
/// gets them all, and `toolbridge-mcp sync` completes.
#[tokio::test]
async fn the_replica_syncs_a_store_over_the_response_cap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (writer, expected) = ten_notes(&db).await;
    writer.shutdown().await;
    let replicas = dir.path().join("fresh-replicas").display().to_string();
    let mut replicated = Launch::embedded(&db)
        .env("TOOLBRIDGE_REPLICA_DIR", &replicas)
        .args(&["--max-response-bytes", SMALL_CAP])
        .spawn()
        .await;
    replicated.initialize().await;
    // Newest first needs the replica: its first sync completes in this call.
    let newest = replicated
        .call_tool(
            "list_notes",
            json!({"order": "newest", "limit": 10, "fields": ["title"]}),
        )
        .await;
    let newest = ok(&newest);
    assert_eq!(newest.get("stale"), None, "{newest}");
    let titles: Vec<&str> = newest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["payload"]["title"].as_str().unwrap())
        .collect();
    let mut reversed: Vec<&str> = expected.iter().map(String::as_str).collect();
    reversed.reverse();
    assert_eq!(titles, reversed);
    replicated.shutdown().await;

    let synced = std::process::Command::new(common::BIN)
        .args(["sync", "--max-response-bytes", SMALL_CAP, "--db-path"])
        .arg(&db)
        .env_clear()
        .env("TOOLBRIDGE_REPLICA_DIR", dir.path().join("other-replicas"))
        .env("TOOLBRIDGE_LOG_DIR", dir.path().join("logs"))
        .output()
        .unwrap();
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let report = String::from_utf8_lossy(&synced.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("notes") && l.contains(" 10 items")),
        "{report}"
    );
}
