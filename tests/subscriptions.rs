//! Live resource updates through the binary, in both protocol eras: a
//! subscribed client hears its item change, whether through a tool or on
//! another device (within the staleness bound), and nothing about items it
//! did not subscribe to; list changes reach those who asked (made by a
//! sidecar sharing the replica too); with the
//! replica off nothing is promised. (How list changes are coalesced in
//! time is proven in-process, under paused time, in `src/subscriptions.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::api::{ApiProcess, SECRET};
use common::{Launch, MODERN_VERSION, McpProcess, ok};
use serde_json::{Value, json};

/// How long a notification may take to arrive: generous for a loaded
/// machine; the tests return as soon as it does.
const WITHIN: Duration = Duration::from_secs(20);
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

fn uid(result: &Value) -> String {
    ok(result)["uid"].as_str().unwrap().to_owned()
}

fn note_uri(uid: &str) -> String {
    format!("toolbridge://notes/{uid}")
}

/// The URIs of the `resources/updated` notifications heard so far, in
/// order.
fn updated(mcp: &McpProcess) -> Vec<String> {
    mcp.notifications()
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated")
        .map(|n| n["params"]["uri"].as_str().unwrap().to_owned())
        .collect()
}

async fn heard_updated(mcp: &McpProcess, uri: &str) -> Value {
    mcp.wait_for_notification(WITHIN, |n| {
        n["method"] == "notifications/resources/updated" && n["params"]["uri"] == uri
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no resources/updated for {uri}; heard {:?}",
            mcp.notifications()
        )
    })
}

/// Waits for the replica's first sync, which a resource list makes: its
/// storing every item is a change too, and would be heard.
async fn in_step(mcp: &mut McpProcess, params: Value) {
    let listed = mcp.request("resources/list", params).await;
    assert!(listed["result"]["resources"].is_array(), "{listed}");
}

/// `initialize` era: a subscribed note changed through
/// a tool is heard, an unsubscribed one is not (its change came first, so it
/// would have been heard first); after unsubscribing, nothing more.
#[tokio::test]
async fn legacy_subscriber_hears_only_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let a = uid(&mcp.call_tool("create_note", json!({"title": "A"})).await);
    let b = uid(&mcp.call_tool("create_note", json!({"title": "B"})).await);
    in_step(&mut mcp, json!({})).await;

    let subscribed = mcp
        .request("resources/subscribe", json!({"uri": note_uri(&a)}))
        .await;
    assert!(subscribed["result"].is_object(), "{subscribed}");
    ok(&mcp
        .call_tool("patch_note", json!({"uid": b, "title": "B2"}))
        .await);
    ok(&mcp
        .call_tool("patch_note", json!({"uid": a, "title": "A2"}))
        .await);
    heard_updated(&mcp, &note_uri(&a)).await;
    assert_eq!(updated(&mcp), [note_uri(&a)]);

    // Unsubscribed from A, subscribed to B: A's next change is not heard,
    // B's (made after it) is.
    mcp.request("resources/unsubscribe", json!({"uri": note_uri(&a)}))
        .await;
    mcp.request("resources/subscribe", json!({"uri": note_uri(&b)}))
        .await;
    ok(&mcp
        .call_tool("patch_note", json!({"uid": a, "title": "A3"}))
        .await);
    ok(&mcp
        .call_tool("patch_note", json!({"uid": b, "title": "B3"}))
        .await);
    heard_updated(&mcp, &note_uri(&b)).await;
    assert_eq!(updated(&mcp), [note_uri(&a), note_uri(&b)]);

    for uri in [
        "toolbridge://widgets/1".to_owned(),
        format!("toolbridge://notes/{a}x"),
        format!("toolbridge://chat_messages/{a}"),
    ] {
        let bad = mcp
            .request("resources/subscribe", json!({"uri": uri}))
            .await;
        assert_eq!(bad["error"]["code"], -32602, "{uri}: {bad}");
    }
    mcp.shutdown().await;
}

/// `initialize` era, the upstream being another process: a note changed
/// and then deleted on another device is heard within the staleness bound,
/// with nothing reading it; a session that listed resources hears the
/// list change when a note is created there.
#[tokio::test]
async fn legacy_subscriber_hears_changes_made_on_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("api-logs")).await;
    let device = api.device().await;
    let note = device.create_note("elsewhere").await;
    let note = note["uid"].as_str().unwrap().to_owned();
    let mut mcp = Launch::remote(&api.url)
        .env("TOOLBRIDGE_TOKEN", SECRET)
        .without_env("TOOLBRIDGE_TENANT_ID")
        .with_replica(&dir.path().join("replicas"), "1")
        .spawn()
        .await;
    mcp.initialize().await;
    let listed = mcp.request("resources/list", json!({})).await;
    assert!(listed.to_string().contains(&note), "{listed}");
    mcp.request("resources/subscribe", json!({"uri": note_uri(&note)}))
        .await;

    let changed = std::time::Instant::now();
    device.patch_note(&note, json!({"title": "changed"})).await;
    heard_updated(&mcp, &note_uri(&note)).await;
    // A poll every second (`--max-staleness 1`); the rest is slack for a
    // loaded machine. Without polling it would never come.
    assert!(
        changed.elapsed() < Duration::from_secs(6),
        "heard after {:?}",
        changed.elapsed()
    );
    device.delete_note(&note).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    while updated(&mcp).len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(updated(&mcp), [note_uri(&note), note_uri(&note)]);
    mcp.wait_for_notification(WITHIN, |n| {
        n["method"] == "notifications/resources/list_changed"
    })
    .await
    .expect("the delete changed the list");
    mcp.shutdown().await;
}

/// A sidecar of the API's user whose replica lives in `dir`, refreshed when
/// older than a second: two of them share the file.
fn sharing_a_replica(api: &ApiProcess, dir: &std::path::Path) -> impl Future<Output = McpProcess> {
    Launch::remote(&api.url)
        .env("TOOLBRIDGE_TOKEN", SECRET)
        .without_env("TOOLBRIDGE_TENANT_ID")
        .with_replica(&dir.join("replicas"), "1")
        .spawn()
}

/// Two sidecars of one user share a replica file: what one stores is no
/// change to the other, yet a client of the other, subscribed to the note,
/// hears the first one's write to it, and to a comment on it (shown in the
/// note's markdown).
#[tokio::test]
async fn a_write_by_a_sidecar_sharing_the_replica_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("api-logs")).await;
    let note = api.device().await.create_note("shared").await;
    let note = note["uid"].as_str().unwrap().to_owned();
    let sidecar = || sharing_a_replica(&api, dir.path());
    let mut watching = sidecar().await;
    watching.initialize().await;
    in_step(&mut watching, json!({})).await;
    watching
        .request("resources/subscribe", json!({"uri": note_uri(&note)}))
        .await;
    let mut writing = sidecar().await;
    writing.initialize().await;
    in_step(&mut writing, json!({})).await;
    ok(&writing
        .call_tool("patch_note", json!({"uid": note, "title": "changed"}))
        .await);
    heard_updated(&watching, &note_uri(&note)).await;
    let told = updated(&watching).len();
    ok(&writing
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": note, "content": "seen?"}),
        )
        .await);
    let deadline = tokio::time::Instant::now() + WITHIN;
    while updated(&watching).len() == told {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the comment was not heard; heard {:?}",
            watching.notifications()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(updated(&watching)[told], note_uri(&note));
    writing.shutdown().await;
    watching.shutdown().await;
}

/// The same two sidecars: a `subscriptions/listen` stream of the one that
/// asked for list changes hears the other one's create, though what it
/// stored is no change to the first.
#[tokio::test]
async fn a_create_by_a_sidecar_sharing_the_replica_changes_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiProcess::start(&dir.path().join("api.db"), &dir.path().join("api-logs")).await;
    api.device().await.create_note("before").await;
    let sidecar = || sharing_a_replica(&api, dir.path());
    let mut watching = sidecar().await;
    in_step(&mut watching, json!({"_meta": modern_meta()})).await;
    let (stream, _open) = watching
        .start_request(
            "subscriptions/listen",
            json!({"_meta": modern_meta(), "notifications": {"resourcesListChanged": true}}),
        )
        .await;
    watching
        .wait_for_notification(WITHIN, |n| {
            n["method"] == "notifications/subscriptions/acknowledged"
        })
        .await
        .expect("acknowledged");
    let mut writing = sidecar().await;
    writing.initialize().await;
    in_step(&mut writing, json!({})).await;
    ok(&writing
        .call_tool("create_note", json!({"title": "after"}))
        .await);
    let heard = watching
        .wait_for_notification(WITHIN, |n| {
            n["method"] == "notifications/resources/list_changed"
        })
        .await
        .unwrap_or_else(|| panic!("no list change; heard {:?}", watching.notifications()));
    assert_eq!(heard["params"]["_meta"][SUBSCRIPTION_ID], stream, "{heard}");
    writing.shutdown().await;
    watching.shutdown().await;
}

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "harness", "version": "0"}
    })
}

async fn modern_call(mcp: &mut McpProcess, name: &str, args: Value) -> Value {
    let response = mcp
        .request(
            "tools/call",
            json!({"_meta": modern_meta(), "name": name, "arguments": args}),
        )
        .await;
    response["result"].clone()
}

/// The notifications of one `subscriptions/listen` stream, in order.
fn of_stream(mcp: &McpProcess, id: u64) -> Vec<Value> {
    mcp.notifications()
        .into_iter()
        .filter(|n| n["params"]["_meta"][SUBSCRIPTION_ID] == id)
        .collect()
}

/// The 2026-07-28 era: `subscriptions/listen` is acknowledged with what it
/// accepted (not a foreign URI); its stream hears its note updated and the
/// list changed, each tagged with its id; once cancelled it hears nothing
/// (a second stream, changed after it, is the witness); `resources/subscribe`
/// does not exist in this era.
#[tokio::test]
async fn modern_stream_hears_its_items_until_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::embedded(&dir.path().join("t.db")).spawn().await;
    let discovered = mcp
        .request("server/discover", json!({"_meta": modern_meta()}))
        .await;
    let resources = &discovered["result"]["capabilities"]["resources"];
    assert_eq!(resources["subscribe"], true, "{discovered}");
    assert_eq!(resources["listChanged"], true, "{discovered}");
    let a = uid(&modern_call(&mut mcp, "create_note", json!({"title": "A"})).await);
    let b = uid(&modern_call(&mut mcp, "create_note", json!({"title": "B"})).await);
    in_step(&mut mcp, json!({"_meta": modern_meta()})).await;

    let (first, _done) = mcp
        .start_request(
            "subscriptions/listen",
            json!({"_meta": modern_meta(), "notifications": {
                "resourceSubscriptions": [note_uri(&a), "toolbridge://widgets/1", format!("toolbridge://chat_messages/{a}")],
                "resourcesListChanged": true
            }}),
        )
        .await;
    let ack = mcp
        .wait_for_notification(WITHIN, |n| {
            n["method"] == "notifications/subscriptions/acknowledged"
        })
        .await
        .expect("acknowledged");
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], first, "{ack}");
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([note_uri(&a)]),
        "{ack}"
    );

    ok(&modern_call(&mut mcp, "patch_note", json!({"uid": b, "title": "B2"})).await);
    ok(&modern_call(&mut mcp, "patch_note", json!({"uid": a, "title": "A2"})).await);
    ok(&modern_call(&mut mcp, "create_note", json!({"title": "C"})).await);
    mcp.wait_for_notification(WITHIN, |n| {
        n["method"] == "notifications/resources/list_changed"
    })
    .await
    .expect("the create changed the list");
    let heard: Vec<Value> = of_stream(&mcp, first)
        .iter()
        .map(|n| json!([n["method"], n["params"]["uri"]]))
        .collect();
    assert_eq!(
        heard,
        [
            json!(["notifications/subscriptions/acknowledged", null]),
            json!(["notifications/resources/updated", note_uri(&a)]),
            json!(["notifications/resources/list_changed", null]),
        ]
    );
    let untagged = mcp
        .notifications()
        .into_iter()
        .filter(|n| n["params"]["_meta"][SUBSCRIPTION_ID].is_null())
        .collect::<Vec<_>>();
    assert!(
        untagged.is_empty(),
        "notifications outside a stream: {untagged:?}"
    );

    mcp.notify(
        "notifications/cancelled",
        json!({"_meta": modern_meta(), "requestId": first}),
    )
    .await;
    let (second, _open) = mcp
        .start_request(
            "subscriptions/listen",
            json!({"_meta": modern_meta(), "notifications": {"resourceSubscriptions": [note_uri(&b)]}}),
        )
        .await;
    mcp.wait_for_notification(WITHIN, |n| {
        n["method"] == "notifications/subscriptions/acknowledged"
            && n["params"]["_meta"][SUBSCRIPTION_ID] == second
    })
    .await
    .expect("second stream acknowledged");
    ok(&modern_call(&mut mcp, "patch_note", json!({"uid": a, "title": "A3"})).await);
    ok(&modern_call(&mut mcp, "patch_note", json!({"uid": b, "title": "B3"})).await);
    mcp.wait_for_notification(WITHIN, |n| {
        n["method"] == "notifications/resources/updated"
            && n["params"]["_meta"][SUBSCRIPTION_ID] == second
    })
    .await
    .expect("the second stream hears B");
    assert_eq!(
        of_stream(&mcp, first).len(),
        3,
        "{:?}",
        of_stream(&mcp, first)
    );

    let legacy = mcp
        .request(
            "resources/subscribe",
            json!({"_meta": modern_meta(), "uri": note_uri(&a)}),
        )
        .await;
    assert_eq!(legacy["error"]["code"], -32601, "{legacy}");
    mcp.shutdown().await;
}

/// Subscriptions are offered with the replica only (nothing else sees
/// changes): with it, both capabilities; with `--replica off`, neither, and
/// `resources/subscribe` does not exist.
#[tokio::test]
async fn subscriptions_are_offered_with_the_replica_only() {
    let dir = tempfile::tempdir().unwrap();
    for (replica, offered) in [("on", true), ("off", false)] {
        let mut mcp = Launch::embedded(&dir.path().join("t.db"))
            .env("TOOLBRIDGE_REPLICA", replica)
            .spawn()
            .await;
        let init = mcp.initialize().await;
        let resources = &init["capabilities"]["resources"];
        assert!(resources.is_object(), "{init}");
        assert_eq!(resources["subscribe"] == true, offered, "{init}");
        assert_eq!(resources["listChanged"] == true, offered, "{init}");
        let subscribed = mcp
            .request(
                "resources/subscribe",
                json!({"uri": "toolbridge://notes/6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70"}),
            )
            .await;
        if offered {
            assert!(subscribed["result"].is_object(), "{subscribed}");
        } else {
            assert_eq!(subscribed["error"]["code"], -32601, "{subscribed}");
        }
        mcp.shutdown().await;
    }
}
