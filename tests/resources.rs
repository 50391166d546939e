//! Items as MCP resources, through the binary on the embedded default: listed
//! newest first and paginated (every item once), one template per entity,
//! read back as markdown with their comments or messages, deleted items an
//! error, disabled entities absent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{McpProcess, ok};
use serde_json::{Value, json};

/// Field `field` of each object in the array at `result[list]` of a
/// JSON-RPC response.
fn each<'a>(response: &'a Value, list: &str, field: &str) -> Vec<&'a str> {
    response["result"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {response}"))
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

fn uid(result: &Value) -> String {
    ok(result)["uid"].as_str().unwrap().to_owned()
}

/// Every resource once across pages, newest first; messages are not
/// resources of their own.
#[tokio::test]
async fn resources_list_newest_first_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let mut created = Vec::new();
    for i in 0..120 {
        let note = mcp
            .call_tool("create_note", json!({"title": format!("note {i}")}))
            .await;
        created.push(format!("toolbridge://notes/{}", uid(&note)));
    }
    let chat = uid(&mcp.call_tool("create_chat", json!({"title": "chat"})).await);
    ok(&mcp
        .call_tool(
            "create_chat_message",
            json!({"chat_uid": chat, "content": "m"}),
        )
        .await);
    created.push(format!("toolbridge://chats/{chat}"));
    created.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = mcp.request("resources/list", params).await;
        let result = &page["result"];
        let resources = result["resources"].as_array().unwrap();
        assert!(resources.len() <= 50);
        for r in resources {
            assert_eq!(r["mimeType"], "text/markdown");
            assert!(r["name"].as_str().is_some_and(|n| !n.is_empty()));
            seen.push(r["uri"].as_str().unwrap().to_owned());
        }
        cursor = result["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, created, "newest first, every item once, no message");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    mcp.shutdown().await;
}

async fn read(mcp: &mut McpProcess, uri: String) -> String {
    let response = mcp.request("resources/read", json!({"uri": uri})).await;
    let contents = &response["result"]["contents"][0];
    assert_eq!(contents["mimeType"], "text/markdown", "{response}");
    assert_eq!(contents["uri"], uri.as_str());
    contents["text"].as_str().unwrap().to_owned()
}

/// One template per entity that is a resource; each entity's resource reads
/// back as markdown with its uid, its fields, and its comments or messages.
#[tokio::test]
async fn every_entity_reads_back_as_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let templates = mcp.request("resources/templates/list", json!({})).await;
    let uris = each(&templates, "resourceTemplates", "uriTemplate");
    assert_eq!(
        uris,
        [
            "toolbridge://notes/{uid}",
            "toolbridge://tasks/{uid}",
            "toolbridge://comments/{uid}",
            "toolbridge://chats/{uid}"
        ]
    );

    let note = uid(&mcp
        .call_tool(
            "create_note",
            json!({"title": "Budget", "content": "Q4 plan", "tags": ["fin"]}),
        )
        .await);
    let comment = uid(&mcp
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": note, "content": "looks good", "author": "ann"}),
        )
        .await);
    let task = uid(&mcp
        .call_tool(
            "create_task",
            json!({"title": "Ship", "status": "open", "due_date": "2026-12-01"}),
        )
        .await);
    let chat = uid(&mcp
        .call_tool("create_chat", json!({"title": "Standup"}))
        .await);
    let message = uid(&mcp
        .call_tool(
            "create_chat_message",
            json!({"chat_uid": chat, "content": "hi", "sender": "bob"}),
        )
        .await);

    let text = read(&mut mcp, format!("toolbridge://notes/{note}")).await;
    for part in [
        "# Budget",
        &note,
        "tags: fin",
        "Q4 plan",
        "## Comments (1)",
        &comment,
        "looks good",
    ] {
        assert!(text.contains(part), "{part}:\n{text}");
    }
    let text = read(&mut mcp, format!("toolbridge://tasks/{task}")).await;
    for part in [
        "# Ship",
        "status: open",
        "due: 2026-12-01",
        "## Comments (0)",
    ] {
        assert!(text.contains(part), "{part}:\n{text}");
    }
    let text = read(&mut mcp, format!("toolbridge://comments/{comment}")).await;
    for part in ["# looks good", "author: ann", &note] {
        assert!(text.contains(part), "{part}:\n{text}");
    }
    let text = read(&mut mcp, format!("toolbridge://chats/{chat}")).await;
    for part in ["# Standup", "## Latest messages (1)", &message, "bob", "hi"] {
        assert!(text.contains(part), "{part}:\n{text}");
    }

    ok(&mcp.call_tool("delete_note", json!({"uid": note})).await);
    for uri in [
        format!("toolbridge://notes/{note}"),
        "toolbridge://notes/not-a-uid".to_owned(),
        format!("toolbridge://widgets/{note}"),
        format!("toolbridge://chat_messages/{message}"),
    ] {
        let response = mcp.request("resources/read", json!({"uri": uri})).await;
        assert_eq!(response["error"]["code"], -32002, "{uri}: {response}");
    }
    let listed = mcp.request("resources/list", json!({})).await;
    let listed = listed["result"]["resources"].to_string();
    assert!(
        !listed.contains(&note),
        "a deleted note is listed: {listed}"
    );
    mcp.shutdown().await;
}

/// `--toolsets` applies: a disabled entity exposes no resources.
#[tokio::test]
async fn disabled_entities_expose_no_resources() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = common::embedded(dir.path(), &[]).await;
    let note = uid(&all.call_tool("create_note", json!({"title": "n"})).await);
    ok(&all.call_tool("create_task", json!({"title": "t"})).await);
    all.shutdown().await;

    let mut tasks_only = common::embedded(dir.path(), &["--toolsets", "tasks"]).await;
    let listed = tasks_only.request("resources/list", json!({})).await;
    let uris = each(&listed, "resources", "uri");
    assert_eq!(uris.len(), 1, "{uris:?}");
    assert!(uris[0].starts_with("toolbridge://tasks/"));
    let read = tasks_only
        .request(
            "resources/read",
            json!({"uri": format!("toolbridge://notes/{note}")}),
        )
        .await;
    assert_eq!(read["error"]["code"], -32002, "{read}");
    tasks_only.shutdown().await;
}

/// `completion/complete` fills a template's `uid` from titles: what was
/// typed matches title words by prefix, best match first, at most 20; other
/// arguments and templates complete to nothing.
#[tokio::test]
async fn uids_complete_from_titles() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let budget = uid(&mcp
        .call_tool("create_note", json!({"title": "Budget review"}))
        .await);
    let other = uid(&mcp
        .call_tool(
            "create_note",
            json!({"title": "Groceries", "content": "budget bread"}),
        )
        .await);
    for i in 0..30 {
        ok(&mcp
            .call_tool("create_note", json!({"title": format!("filler {i}")}))
            .await);
    }
    let complete = |uri: &str, name: &str, value: &str| {
        json!({
            "ref": {"type": "ref/resource", "uri": uri},
            "argument": {"name": name, "value": value}
        })
    };
    let values = |response: &Value| -> Vec<String> {
        response["result"]["completion"]["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{response}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let typed = mcp
        .request(
            "completion/complete",
            complete("toolbridge://notes/{uid}", "uid", "bud"),
        )
        .await;
    assert_eq!(values(&typed), [budget.clone(), other], "title match first");
    let nothing_typed = mcp
        .request(
            "completion/complete",
            complete("toolbridge://notes/{uid}", "uid", ""),
        )
        .await;
    assert_eq!(values(&nothing_typed).len(), 20, "at most 20");
    for (uri, name) in [
        ("toolbridge://tasks/{uid}", "uid"),
        ("toolbridge://notes/{uid}", "title"),
        ("toolbridge://widgets/{uid}", "uid"),
    ] {
        let response = mcp
            .request("completion/complete", complete(uri, name, "bud"))
            .await;
        assert!(values(&response).is_empty(), "{uri} {name}: {response}");
    }
    mcp.shutdown().await;
}

/// The prompts: listed by what is enabled (no `note_to_tasks` without write
/// access), each returning well-formed messages that embed the right
/// resources; their arguments complete from titles.
#[tokio::test]
async fn prompts_embed_the_items_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let listed = mcp.request("prompts/list", json!({})).await;
    let names = each(&listed, "prompts", "name");
    assert_eq!(names, ["daily_review", "summarize", "note_to_tasks"]);

    let note = uid(&mcp
        .call_tool(
            "create_note",
            json!({"title": "Offsite plan", "content": "book venue by friday"}),
        )
        .await);
    let soon = uid(&mcp
        .call_tool(
            "create_task",
            json!({"title": "Pay invoice", "status": "open", "due_date": "2020-01-01"}),
        )
        .await);
    let later = uid(&mcp
        .call_tool(
            "create_task",
            json!({"title": "Plan 2030", "status": "open", "due_date": "2030-01-01"}),
        )
        .await);

    let embedded_uris = |response: &Value| -> Vec<String> {
        let messages = response["result"]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{response}"));
        assert!(messages[0]["content"]["text"].is_string(), "{response}");
        for m in messages {
            assert_eq!(m["role"], "user");
        }
        messages
            .iter()
            .filter_map(|m| m["content"]["resource"]["uri"].as_str())
            .map(str::to_owned)
            .collect()
    };
    let review = mcp
        .request("prompts/get", json!({"name": "daily_review"}))
        .await;
    let uris = embedded_uris(&review);
    assert!(
        uris.contains(&format!("toolbridge://tasks/{soon}")),
        "{uris:?}"
    );
    assert!(
        !uris.contains(&format!("toolbridge://tasks/{later}")),
        "{uris:?}"
    );
    assert!(
        uris.contains(&format!("toolbridge://notes/{note}")),
        "{uris:?}"
    );

    let note_uri = format!("toolbridge://notes/{note}");
    let summary = mcp
        .request(
            "prompts/get",
            json!({"name": "summarize", "arguments": {"uri": note_uri}}),
        )
        .await;
    assert_eq!(embedded_uris(&summary), std::slice::from_ref(&note_uri));
    let text = summary["result"]["messages"][1]["content"]["resource"]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("# Offsite plan"), "{text}");

    let tasks = mcp
        .request(
            "prompts/get",
            json!({"name": "note_to_tasks", "arguments": {"note": note}}),
        )
        .await;
    assert_eq!(embedded_uris(&tasks), std::slice::from_ref(&note_uri));
    let asked = tasks["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(asked.contains("only after I agree"), "{asked}");

    let missing = mcp
        .request("prompts/get", json!({"name": "summarize", "arguments": {}}))
        .await;
    assert!(missing["error"].is_object(), "{missing}");

    let completed = mcp
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "note_to_tasks"}, "argument": {"name": "note", "value": "offs"}}),
        )
        .await;
    assert_eq!(completed["result"]["completion"]["values"], json!([note]));
    let completed = mcp
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "summarize"}, "argument": {"name": "uri", "value": "offs"}}),
        )
        .await;
    assert_eq!(
        completed["result"]["completion"]["values"],
        json!([note_uri])
    );
    mcp.shutdown().await;

    let mut read_only = common::embedded(dir.path(), &["--read-only"]).await;
    let listed = read_only.request("prompts/list", json!({})).await;
    let names = each(&listed, "prompts", "name");
    assert_eq!(names, ["daily_review", "summarize"], "note_to_tasks writes");
    read_only.shutdown().await;
}

/// Each listed resource's `size` is the byte length of what
/// `resources/read` returns for it, with its comments or messages.
#[tokio::test]
async fn listed_sizes_are_what_a_read_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = common::embedded(dir.path(), &[]).await;
    let note = uid(&mcp
        .call_tool(
            "create_note",
            json!({"title": "Plan", "content": "déjà vu, in UTF-8"}),
        )
        .await);
    ok(&mcp
        .call_tool(
            "create_comment",
            json!({"parent_type": "note", "parent_uid": note, "content": "agreed", "author": "ann"}),
        )
        .await);
    ok(&mcp
        .call_tool(
            "create_task",
            json!({"title": "Ship", "due_date": "2026-12-01"}),
        )
        .await);
    let chat = uid(&mcp
        .call_tool("create_chat", json!({"title": "Standup"}))
        .await);
    for content in ["one", "two"] {
        ok(&mcp
            .call_tool(
                "create_chat_message",
                json!({"chat_uid": chat, "content": content}),
            )
            .await);
    }
    // A size is left out until the replica's first sync of what is shown
    // with the item (comments, messages) is through: wait for that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let resources = loop {
        let listed = mcp.request("resources/list", json!({})).await;
        let resources = listed["result"]["resources"].as_array().unwrap().clone();
        assert_eq!(resources.len(), 4, "{listed}");
        if resources.iter().all(|r| r["size"].is_u64()) {
            break resources;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sizes still missing after 20 s: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for resource in resources {
        let uri = resource["uri"].as_str().unwrap().to_owned();
        let text = read(&mut mcp, uri).await;
        assert_eq!(resource["size"], json!(text.len()), "{resource}:\n{text}");
    }
    mcp.shutdown().await;
}
