//! What a model is shown, through the binary on the embedded default: lean
//! items (no sync bookkeeping unless `raw`), `fields` on every entity's list,
//! and arguments accepted in the sloppy forms models send, while wrong types
//! are still refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use common::{McpProcess, err, ok};
use serde_json::{Value, json};

const BOOKKEEPING: [&str; 9] = [
    "uid",
    "sync",
    "updatedTs",
    "updateTime",
    "isDirty",
    "lastSyncedAt",
    "remoteUpdatedAt",
    "version",
    "isDeleted",
];

/// Creates one item of every entity; returns (tool stem, plural, uid).
async fn one_of_each(mcp: &mut McpProcess) -> Vec<(&'static str, &'static str, String)> {
    let uid = |r: &Value| ok(r)["uid"].as_str().unwrap().to_owned();
    let note = uid(&mcp
        .call_tool(
            "create_note",
            json!({"title": "n", "content": "body", "additional_fields": {"isDirty": true, "lastSyncedAt": "x"}}),
        )
        .await);
    let task = uid(&mcp
        .call_tool(
            "create_task",
            json!({"title": "t", "due_date": "2026-12-01"}),
        )
        .await);
    let comment = uid(&mcp
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": note, "content": "c"}),
        )
        .await);
    let chat = uid(&mcp.call_tool("create_chat", json!({"title": "ch"})).await);
    let message = uid(&mcp
        .call_tool(
            "create_chat_message",
            json!({"chat_uid": chat, "content": "m"}),
        )
        .await);
    vec![
        ("note", "notes", note),
        ("task", "tasks", task),
        ("comment", "comments", comment),
        ("chat", "chats", chat),
        ("chat_message", "chat_messages", message),
    ]
}

/// Items carry no bookkeeping by default, all of it with `raw: true`, in
/// `get_*`, `list_*` and a write's answer alike.
#[tokio::test]
async fn items_are_lean_unless_raw() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let items = one_of_each(&mut mcp).await;
    let written = mcp
        .call_tool("patch_note", json!({"uid": items[0].2, "title": "n2"}))
        .await;
    let shown = [
        ok(&written).clone(),
        ok(&mcp.call_tool("get_note", json!({"uid": items[0].2})).await).clone(),
        ok(&mcp.call_tool("list_notes", json!({})).await)["items"][0].clone(),
    ];
    for item in &shown {
        let payload = item["payload"].as_object().unwrap();
        for key in BOOKKEEPING {
            assert!(!payload.contains_key(key), "{key} shown: {item}");
        }
        assert_eq!(item["uid"], items[0].2.as_str());
        assert!(item["version"].is_u64() && item["updatedAt"].is_string());
    }
    let raw = mcp
        .call_tool("get_note", json!({"uid": items[0].2, "raw": true}))
        .await;
    let payload = ok(&raw)["payload"].as_object().unwrap();
    for key in [
        "uid",
        "sync",
        "updatedTs",
        "updateTime",
        "isDirty",
        "lastSyncedAt",
    ] {
        assert!(payload.contains_key(key), "{key} missing from raw: {raw}");
    }
    let listed_raw = mcp.call_tool("list_notes", json!({"raw": true})).await;
    assert!(ok(&listed_raw)["items"][0]["payload"]["sync"].is_object());
    mcp.shutdown().await;
}

/// `fields` keeps only the named payload keys, on every entity's list; a key
/// may be named as its parameter or as results spell it.
#[tokio::test]
async fn fields_work_on_every_entity() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let items = one_of_each(&mut mcp).await;
    for (_, plural, uid) in &items {
        let listed = mcp
            .call_tool(
                &format!("list_{plural}"),
                json!({"fields": ["title", "due_date", "content"]}),
            )
            .await;
        let item = &ok(&listed)["items"][0];
        assert_eq!(item["uid"], uid.as_str());
        let keys: Vec<&String> = item["payload"].as_object().unwrap().keys().collect();
        assert!(!keys.is_empty(), "{plural}: {item}");
        assert!(
            keys.iter()
                .all(|k| ["title", "dueDate", "content"].contains(&k.as_str())),
            "{plural}: {keys:?}"
        );
    }
    let tasks = mcp
        .call_tool("list_tasks", json!({"fields": ["dueDate"]}))
        .await;
    assert_eq!(
        ok(&tasks)["items"][0]["payload"],
        json!({"dueDate": "2026-12-01"})
    );
    mcp.shutdown().await;
}

/// JSON sent as a string, numbers as strings, camelCase twins and uids in
/// upper case or braces are accepted; wrong types are still refused.
#[tokio::test]
async fn sloppy_arguments_are_accepted_and_wrong_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let created = mcp
        .call_tool(
            "create_task",
            json!({
                "title": "t", "tags": "[\"a\",\"b\"]", "dueDate": "2026-12-24",
                "additional_fields": "{\"color\": \"red\"}"
            }),
        )
        .await;
    let task = ok(&created);
    assert_eq!(task["payload"]["tags"], json!(["a", "b"]));
    assert_eq!(task["payload"]["dueDate"], "2026-12-24");
    assert_eq!(task["payload"]["color"], "red");
    let uid = task["uid"].as_str().unwrap().to_owned();
    for spelled in [
        uid.to_uppercase(),
        format!("{{{uid}}}"),
        format!("urn:uuid:{uid}"),
    ] {
        let got = mcp.call_tool("get_task", json!({"uid": spelled})).await;
        assert_eq!(ok(&got)["uid"], uid.as_str(), "{spelled}");
    }
    let page = mcp
        .call_tool(
            "list_tasks",
            json!({"limit": "1", "includeDeleted": "true"}),
        )
        .await;
    assert_eq!(ok(&page)["items"].as_array().unwrap().len(), 1);

    for (args, field) in [
        (json!({"title": "t", "tags": "a,b"}), "tags"),
        (json!({"title": "t", "tags": "{\"a\": 1}"}), "tags"),
        (json!({"title": 5}), "title"),
        (
            json!({"title": "t", "additional_fields": "[1]"}),
            "additional_fields",
        ),
        (
            json!({"title": "t", "due_date": "2026-12-24", "dueDate": "2026-12-25"}),
            "due_date",
        ),
    ] {
        let error = err(&mcp.call_tool("create_task", args.clone()).await);
        assert_eq!(error["code"], "invalid_input", "{args}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{args}: {error}"
        );
    }
    let error = err(&mcp.call_tool("list_tasks", json!({"limit": "ten"})).await);
    assert!(
        error["message"].as_str().unwrap().contains("limit"),
        "{error}"
    );
    mcp.shutdown().await;
}

/// Pages every note in `order` (both the replica's path and the upstream's,
/// `replica`) with a budget far smaller than the page: every item comes
/// exactly once, and some pages say `truncated`.
async fn walk_within_budget(replica: &str, order: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(
        dir.path(),
        &["--result-budget", "500", "--replica", replica],
    )
    .await;
    let mut created = Vec::new();
    for i in 0..20 {
        let content = format!("{i} {}", "lorem ipsum ".repeat(25));
        let note = mcp
            .call_tool(
                "create_note",
                json!({"title": format!("n{i}"), "content": content}),
            )
            .await;
        created.push(ok(&note)["uid"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut truncated_pages = 0;
    let mut cursor: Option<String> = None;
    let args = |cursor: &Option<String>| {
        let mut args = json!({"limit": 50});
        if order == "newest" {
            args["order"] = json!("newest");
        }
        if let Some(cursor) = cursor {
            args["cursor"] = json!(cursor);
        }
        args
    };
    for _ in 0..40 {
        let page = mcp.call_tool("list_notes", args(&cursor)).await;
        let body = ok(&page);
        let text = serde_json::to_string(body).unwrap();
        assert!(text.len() < 500 * 4 + 600, "a page of {} bytes", text.len());
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["uid"].as_str().unwrap().to_owned()),
        );
        if body["truncated"] == true {
            truncated_pages += 1;
        }
        cursor = body["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut expected = created.clone();
    if order == "newest" {
        expected.reverse();
    }
    assert_eq!(seen, expected, "replica {replica}, {order} first");
    assert!(truncated_pages > 1, "{truncated_pages}");
    mcp.shutdown().await;
}

#[tokio::test]
async fn a_list_past_the_budget_continues_where_it_stopped() {
    walk_within_budget("on", "oldest").await;
    walk_within_budget("on", "newest").await;
    walk_within_budget("off", "oldest").await;
}

/// A 1 MB note (about the largest item) comes back within the budget, cut,
/// with where to read on; reading on with `offset` returns the rest, and
/// together it is the note.
#[tokio::test]
async fn an_enormous_note_is_cut_and_can_be_read_on() {
    let dir = tempfile::tempdir().unwrap();
    // A budget of 40,000 tokens (160 KB): the 1 MB note takes seven reads.
    let mut mcp = common::embedded(dir.path(), &["--result-budget", "40000"]).await;
    let content: String = (0..60_000)
        .map(|i| format!("{:>15}é", i % 100_000))
        .collect::<String>();
    let created = mcp
        .call_tool("create_note", json!({"title": "huge", "content": content}))
        .await;
    // Even the write's answer is bounded.
    assert_eq!(ok(&created)["content_truncated"], true);
    let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
    let mut read = String::new();
    let mut offset = 0;
    let mut calls = 0;
    loop {
        calls += 1;
        let got = mcp
            .call_tool("get_note", json!({"uid": uid, "offset": offset}))
            .await;
        let item = ok(&got);
        let size = serde_json::to_string(item).unwrap().len();
        assert!(size <= 40_000 * 4, "{size} bytes");
        read.push_str(item["payload"]["content"].as_str().unwrap());
        match item["next_offset"].as_u64() {
            Some(next) => {
                assert_eq!(item["content_truncated"], true);
                offset = next;
            }
            None => break,
        }
        assert!(calls < 200, "never ends");
    }
    assert_eq!(read.len(), content.len());
    assert!(read == content, "the pieces are not the note");
    eprintln!("a 1 MB note in {calls} reads");
    mcp.shutdown().await;
}

/// Compact mode: three tools reach every one of the 40 operations, each
/// checked exactly as its full tool is; annotations stay honest.
#[tokio::test]
async fn compact_mode_reaches_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &["--tool-mode", "compact"]).await;
    let listed = mcp.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["search", "read", "write"]);
    let write = tools.iter().find(|t| t["name"] == "write").unwrap();
    assert_eq!(write["annotations"]["destructiveHint"], true);
    assert_eq!(write["annotations"]["readOnlyHint"], false);
    let read = tools.iter().find(|t| t["name"] == "read").unwrap();
    assert_eq!(read["annotations"]["readOnlyHint"], true);
    for tool in tools {
        let schema = &tool["inputSchema"];
        for forbidden in ["anyOf", "oneOf", "allOf", "$ref"] {
            assert!(
                schema.get(forbidden).is_none(),
                "{}: {forbidden}",
                tool["name"]
            );
        }
    }

    let write = |entity: &str, operation: &str, extra: Value| {
        let mut args = json!({"entity": entity, "operation": operation});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };
    let note = mcp
        .call_tool("write", write("notes", "create", json!({"title": "n"})))
        .await;
    let note = ok(&note)["uid"].as_str().unwrap().to_owned();
    let chat = mcp
        .call_tool("write", write("chats", "create", json!({"title": "c"})))
        .await;
    let chat = ok(&chat)["uid"].as_str().unwrap().to_owned();
    let creates = [
        ("notes", json!({"title": "n2"}), "pin"),
        ("tasks", json!({"title": "t"}), "complete"),
        (
            "comments",
            json!({"parent_type": "note", "parent_uid": note, "content": "c"}),
            "resolve",
        ),
        ("chats", json!({"title": "c2"}), "resolve"),
        (
            "chat_messages",
            json!({"chat_uid": chat, "content": "m"}),
            "mark_read",
        ),
    ];
    for (entity, fields, action) in creates {
        let created = mcp
            .call_tool("write", write(entity, "create", fields.clone()))
            .await;
        let uid = ok(&created)["uid"].as_str().unwrap().to_owned();
        let target = json!({"uid": uid});
        let mut update = fields.clone();
        update["uid"] = json!(uid);
        for (operation, extra) in [
            ("update", update),
            ("patch", json!({"uid": uid, "tags": ["x"]})),
            ("process", json!({"uid": uid, "action": action})),
            ("archive", target.clone()),
        ] {
            let result = mcp
                .call_tool("write", write(entity, operation, extra))
                .await;
            ok(&result);
        }
        let got = mcp
            .call_tool(
                "read",
                json!({"entity": entity, "operation": "get", "uid": uid}),
            )
            .await;
        assert_eq!(ok(&got)["payload"]["tags"], json!(["x"]), "{entity}");
        let listed = mcp
            .call_tool(
                "read",
                json!({"entity": entity, "operation": "list", "order": "newest"}),
            )
            .await;
        assert!(
            !ok(&listed)["items"].as_array().unwrap().is_empty(),
            "{entity}"
        );
        ok(&mcp
            .call_tool("write", write(entity, "delete", target))
            .await);
    }

    // Each operation is checked as its full tool is: a parameter another
    // operation takes is refused, an action of another entity too.
    for (tool, args, says) in [
        (
            "read",
            json!({"entity": "notes", "operation": "get"}),
            "uid",
        ),
        (
            "read",
            json!({"entity": "notes", "operation": "list", "uid": note}),
            "uid",
        ),
        (
            "write",
            json!({"entity": "notes", "operation": "process", "uid": note, "action": "complete"}),
            "action",
        ),
        (
            "write",
            json!({"entity": "notes", "operation": "archive", "uid": note, "title": "x"}),
            "title",
        ),
        (
            "write",
            json!({"entity": "widgets", "operation": "create"}),
            "entity",
        ),
        (
            "read",
            json!({"entity": "notes", "operation": "delete", "uid": note}),
            "operation",
        ),
    ] {
        let error = err(&mcp.call_tool(tool, args.clone()).await);
        assert_eq!(error["code"], "invalid_input", "{args}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{args}: {error}"
        );
    }
    mcp.shutdown().await;
}
