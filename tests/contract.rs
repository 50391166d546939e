//! The 40 tools against a wiremock stand-in, through the real binary's stdio:
//! each sends exactly the request of the upstream contract and maps the reply.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::BTreeSet;

use common::upstream::{self, EPOCH, SESSION, TENANT, TOKEN, UID};
use common::{Launch, err, ok};
use serde_json::{Value, json};
use wiremock::Request;

const PARENT: &str = "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2";

/// One entity as the contract describes it: written out here, independently
/// of the catalog, so the test checks the mapping instead of restating it.
struct Case {
    singular: &'static str,
    plural: &'static str,
    path: &'static str,
    /// Tool arguments for a full payload, snake_case.
    args: Value,
    /// The same payload as the upstream must receive it, camelCase.
    wire: Value,
    action: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            singular: "note",
            plural: "notes",
            path: "/v1/notes",
            args: json!({"title": "T", "content": "# C", "tags": ["a", "b"]}),
            wire: json!({"title": "T", "content": "# C", "tags": ["a", "b"]}),
            action: "pin",
        },
        Case {
            singular: "task",
            plural: "tasks",
            path: "/v1/tasks",
            args: json!({"title": "T", "description": "D", "status": "in_progress", "priority": "high", "due_date": "2026-12-01T09:00:00Z", "tags": ["x"], "parent_uid": PARENT}),
            wire: json!({"title": "T", "description": "D", "status": "in_progress", "priority": "high", "dueDate": "2026-12-01T09:00:00Z", "tags": ["x"], "parentUid": PARENT}),
            action: "complete",
        },
        Case {
            singular: "comment",
            plural: "comments",
            path: "/v1/comments",
            args: json!({"parent_type": "task", "parent_uid": PARENT, "content": "C", "author": "ann", "tags": []}),
            wire: json!({"parentType": "task", "parentUid": PARENT, "content": "C", "author": "ann", "tags": []}),
            action: "resolve",
        },
        Case {
            singular: "chat",
            plural: "chats",
            path: "/v1/chats",
            args: json!({"title": "T", "description": "D", "participants": ["a", "b"], "tags": ["t"]}),
            wire: json!({"title": "T", "description": "D", "participants": ["a", "b"], "tags": ["t"]}),
            action: "reopen",
        },
        Case {
            singular: "chat_message",
            plural: "chat_messages",
            path: "/v1/chat_messages",
            args: json!({"chat_uid": PARENT, "content": "hi", "sender": "bob", "message_type": "text", "tags": []}),
            wire: json!({"chatUid": PARENT, "content": "hi", "sender": "bob", "messageType": "text", "tags": []}),
            action: "mark_read",
        },
    ]
}

fn with(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        merged[k] = v.clone();
    }
    merged
}

fn query(request: &Request) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// Checks the headers every entity request must carry.
fn assert_contract_headers(request: &Request) {
    use upstream::header;
    assert_eq!(
        header(request, "authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(header(request, "x-tb-tenant-id"), Some(TENANT));
    assert_eq!(header(request, "x-sync-session"), Some(SESSION));
    assert_eq!(
        header(request, "x-sync-epoch"),
        Some(EPOCH.to_string().as_str())
    );
    let correlation = header(request, "x-correlation-id").expect("correlation id");
    assert!(
        uuid::Uuid::parse_str(correlation).is_ok(),
        "correlation id {correlation}"
    );
    if !request.body.is_empty() {
        assert_eq!(header(request, "content-type"), Some("application/json"));
    }
}

/// Every one of the 40 tools sends the contract's method, path, query, headers
/// and body, and returns the upstream's item or page as structured content.
#[tokio::test]
async fn every_tool_sends_the_contract_request() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let upper_uid = UID.to_uppercase();
    let page_cursor = upstream::cursor(1_793_527_200_000, UID);
    let mut seen = 0;

    for case in cases() {
        let item_path = format!("{}/{UID}", case.path);

        // list: defaults, then every parameter.
        let page = mcp
            .call_tool(&format!("list_{}", case.plural), json!({}))
            .await;
        assert_eq!(ok(&page)["items"][0]["uid"], UID);
        assert!(
            ok(&page).get("nextCursor").is_none(),
            "a short page is the last: {page}"
        );
        let page = mcp
            .call_tool(
                &format!("list_{}", case.plural),
                json!({"limit": 1, "cursor": page_cursor, "include_deleted": true}),
            )
            .await;
        assert_eq!(
            ok(&page)["nextCursor"],
            "c-next",
            "a full page keeps the cursor"
        );
        assert!(
            ok(&page)["items"][0].get("deletedAt").is_none(),
            "null keys are dropped"
        );

        let get = mcp
            .call_tool(&format!("get_{}", case.singular), json!({"uid": upper_uid}))
            .await;
        assert_eq!(ok(&get)["version"], 2);
        let get_deleted = mcp
            .call_tool(
                &format!("get_{}", case.singular),
                json!({"uid": UID, "include_deleted": true}),
            )
            .await;
        ok(&get_deleted);

        let create = mcp
            .call_tool(&format!("create_{}", case.singular), case.args.clone())
            .await;
        let created_uid = ok(&create)["uid"].as_str().unwrap().to_owned();

        let update_args = with(&case.args, json!({"uid": UID, "if_version": 3}));
        ok(&mcp
            .call_tool(&format!("update_{}", case.singular), update_args)
            .await);
        ok(&mcp
            .call_tool(
                &format!("patch_{}", case.singular),
                json!({"uid": UID, "tags": ["p"]}),
            )
            .await);
        ok(&mcp
            .call_tool(&format!("delete_{}", case.singular), json!({"uid": UID}))
            .await);
        ok(&mcp
            .call_tool(&format!("archive_{}", case.singular), json!({"uid": UID}))
            .await);
        let process_args = json!({"uid": UID, "action": case.action, "metadata": {"why": "test"}});
        ok(&mcp
            .call_tool(&format!("process_{}", case.singular), process_args)
            .await);

        let requests = upstream::entity_requests(&server).await;
        // A task names a parent the upstream does not check: its create and
        // update read the parent first.
        let parent_path = format!("/v1/tasks/{PARENT}");
        let (parent_reads, mine): (Vec<&Request>, Vec<&Request>) =
            requests[seen..].iter().partition(|r| {
                case.singular == "task" && r.method.as_str() == "GET" && r.url.path() == parent_path
            });
        assert_eq!(
            parent_reads.len(),
            if case.singular == "task" { 2 } else { 0 },
            "{}: parent reads",
            case.singular
        );
        seen = requests.len();
        assert_eq!(
            mine.len(),
            11,
            "{}: one request per call, two for the update (read, then write)",
            case.singular
        );
        for r in mine.iter().chain(&parent_reads) {
            assert_contract_headers(r);
        }
        let expect =
            |r: &Request, method: &str, path: &str, query_pairs: &[(&str, &str)], body: Value| {
                assert_eq!(r.method.as_str(), method, "{} {path}", case.singular);
                assert_eq!(r.url.path(), path);
                assert_eq!(query(r), pairs(query_pairs), "{method} {path}");
                assert_eq!(upstream::body_json(r), body, "{method} {path}");
            };
        expect(mine[0], "GET", case.path, &[("limit", "50")], Value::Null);
        expect(
            mine[1],
            "GET",
            case.path,
            &[
                ("limit", "1"),
                ("cursor", page_cursor.as_str()),
                ("includeDeleted", "true"),
            ],
            Value::Null,
        );
        expect(mine[2], "GET", &item_path, &[], Value::Null);
        expect(
            mine[3],
            "GET",
            &item_path,
            &[("includeDeleted", "true")],
            Value::Null,
        );
        // The create carries a uid made by the sidecar, and is returned as is.
        let create_body = upstream::body_json(mine[4]);
        assert_eq!(create_body["uid"], created_uid.as_str());
        assert!(uuid::Uuid::parse_str(&created_uid).is_ok());
        expect(
            mine[4],
            "POST",
            case.path,
            &[],
            with(&case.wire, json!({"uid": created_uid})),
        );
        // The update reads the item, keeps what no parameter can set (here the
        // stand-in's `title` on entities without a title field), drops the
        // server's own keys, and writes with the caller's guard.
        expect(mine[5], "GET", &item_path, &[], Value::Null);
        let kept = if ["comment", "chat_message"].contains(&case.singular) {
            json!({"title": "from upstream"})
        } else {
            json!({})
        };
        expect(
            mine[6],
            "PUT",
            &item_path,
            &[],
            with(&kept, case.wire.clone()),
        );
        assert_eq!(upstream::header(mine[6], "if-match"), Some("\"3\""));
        expect(mine[7], "PATCH", &item_path, &[], json!({"tags": ["p"]}));
        assert_eq!(upstream::header(mine[7], "if-match"), None);
        expect(mine[8], "DELETE", &item_path, &[], Value::Null);
        expect(
            mine[9],
            "POST",
            &format!("{item_path}/archive"),
            &[],
            Value::Null,
        );
        expect(
            mine[10],
            "POST",
            &format!("{item_path}/process"),
            &[],
            json!({"action": case.action, "metadata": {"why": "test"}}),
        );
    }
    assert_eq!(
        seen,
        5 * 11 + 2,
        "11 requests per entity, and two reads of the task parent"
    );
    // One session served every call.
    let sessions = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/sync/sessions")
        .count();
    assert_eq!(sessions, 1, "the session is reused across calls");
    mcp.shutdown().await;
}

/// `additional_fields` are merged into the payload; the typed fields and the
/// server-maintained keys cannot be set through it.
#[tokio::test]
async fn additional_fields_merge_into_the_payload() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let result = mcp
        .call_tool(
            "create_note",
            json!({"title": "T", "additional_fields": {"color": "red", "isPinned": true}}),
        )
        .await;
    ok(&result);
    let sent = upstream::body_json(&upstream::entity_requests(&server).await[0]);
    assert_eq!(sent["color"], "red");
    assert_eq!(sent["isPinned"], true);
    assert_eq!(sent["title"], "T");

    for extra in [
        json!({"uid": UID}),
        json!({"sync": {}}),
        json!({"title": "shadow"}),
    ] {
        let result = mcp
            .call_tool("create_note", json!({"additional_fields": extra}))
            .await;
        assert_eq!(err(&result)["code"], "invalid_input", "{result}");
    }
    assert_eq!(upstream::entity_requests(&server).await.len(), 1);
    mcp.shutdown().await;
}

/// Bad arguments are refused with `invalid_input` before any request is sent.
#[tokio::test]
async fn bad_arguments_are_refused_before_sending() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let refused = [
        ("get_note", json!({"uid": "not-a-uuid"}), "uid"),
        ("get_note", json!({}), "uid"),
        (
            "process_note",
            json!({"uid": UID, "action": "explode"}),
            "action",
        ),
        (
            "process_task",
            json!({"uid": UID, "action": "pin"}),
            "action",
        ),
        (
            "create_comment",
            json!({"parent_type": "chat", "parent_uid": UID}),
            "parent_type",
        ),
        (
            "create_comment",
            json!({"content": "orphan"}),
            "parent_type",
        ),
        (
            "create_chat_message",
            json!({"content": "no chat"}),
            "chat_uid",
        ),
        (
            "update_comment",
            json!({"uid": UID, "parent_type": "note"}),
            "parent_uid",
        ),
        ("list_notes", json!({"limit": 0}), "limit"),
        ("list_notes", json!({"limit": 1001}), "limit"),
        ("list_notes", json!({"limit": "ten"}), "limit"),
        ("list_comments", json!({"parent_uid": "nope"}), "parent_uid"),
        ("create_note", json!({"title": 5}), "title"),
        ("create_note", json!({"titel": "typo"}), "titel"),
        ("create_task", json!({"status": "doing"}), "status"),
        (
            "patch_note",
            json!({"uid": UID, "if_version": -1}),
            "if_version",
        ),
        (
            "create_note",
            json!({"additional_fields": "x"}),
            "additional_fields",
        ),
    ];
    for (tool, args, mentions) in refused {
        let result = mcp.call_tool(tool, args.clone()).await;
        let error = err(&result);
        assert_eq!(error["code"], "invalid_input", "{tool} {args}: {result}");
        assert_eq!(error["retryable"], false);
        assert!(error["correlation_id"].is_string());
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{tool} {args}: `{message}` should name {mentions}"
        );
    }
    assert!(
        upstream::entity_requests(&server).await.is_empty(),
        "nothing was sent"
    );
    mcp.shutdown().await;
}

/// `tools/list` returns exactly the 40 tools, each with a portable input
/// schema, an output schema and explicit annotations; the whole list stays
/// small enough for a model's context.
#[tokio::test]
async fn tools_list_is_exactly_the_40_tools() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    let response = mcp.request("tools/list", json!({})).await;
    let tools = response["result"]["tools"]
        .as_array()
        .expect("tools")
        .clone();

    let mut expected = BTreeSet::new();
    for (one, many) in [
        ("note", "notes"),
        ("task", "tasks"),
        ("comment", "comments"),
        ("chat", "chats"),
        ("chat_message", "chat_messages"),
    ] {
        expected.insert(format!("list_{many}"));
        for op in [
            "get", "create", "update", "patch", "delete", "archive", "process",
        ] {
            expected.insert(format!("{op}_{one}"));
        }
    }
    let names: BTreeSet<String> = tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, expected);
    assert_eq!(tools.len(), 40);

    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}");
        assert_eq!(input["additionalProperties"], false, "{name}");
        let properties = input["properties"].as_object().expect("properties");
        for required in input["required"].as_array().into_iter().flatten() {
            assert!(
                properties.contains_key(required.as_str().unwrap()),
                "{name}: {required} is required but not a property"
            );
        }
        for forbidden in [
            "$schema", "$ref", "$defs", "anyOf", "oneOf", "allOf", "\"null\"", "uint",
        ] {
            assert!(
                !input.to_string().contains(forbidden),
                "{name} input schema has {forbidden}: {input}"
            );
        }
        for (param, schema) in properties {
            assert!(schema.get("type").is_some(), "{name}.{param} has no type");
            if param == "uid" || param.ends_with("_uid") {
                assert_eq!(schema["format"], "uuid", "{name}.{param}");
            }
        }
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        let hints = &tool["annotations"];
        for hint in [
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(hints[hint].is_boolean(), "{name} lacks {hint}");
        }
        let read_only = name.starts_with("list_") || name.starts_with("get_");
        assert_eq!(hints["readOnlyHint"], read_only, "{name}");
        assert_eq!(
            hints["destructiveHint"],
            name.starts_with("delete_")
                || name.starts_with("update_")
                || name.starts_with("patch_"),
            "{name}"
        );
    }
    let process_comment = tools
        .iter()
        .find(|t| t["name"] == "process_comment")
        .unwrap();
    assert_eq!(
        process_comment["inputSchema"]["properties"]["action"]["enum"],
        json!(["resolve", "reopen"])
    );
    let create_comment = tools
        .iter()
        .find(|t| t["name"] == "create_comment")
        .unwrap();
    assert_eq!(
        create_comment["inputSchema"]["properties"]["parent_type"]["enum"],
        json!(["note", "task"])
    );
    assert_eq!(
        create_comment["inputSchema"]["required"],
        json!(["parent_type", "parent_uid"])
    );
    let list_messages = tools
        .iter()
        .find(|t| t["name"] == "list_chat_messages")
        .unwrap();
    assert_eq!(
        list_messages["inputSchema"]["properties"]["chat_uid"]["format"],
        "uuid"
    );
    assert_eq!(
        list_messages["inputSchema"]["properties"]["limit"]["maximum"],
        1000
    );

    let size = serde_json::to_string(&tools).unwrap().len();
    // Hosts hand a model each tool's name, description and input schema;
    // annotations and output schemas stay with the host. That part is what
    // every conversation pays for, and it stays under the brief's 20 KB.
    let model_facing: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["inputSchema"]}))
        .collect();
    let model_size = serde_json::to_string(&model_facing).unwrap().len();
    eprintln!(
        "tools/list: {size} bytes for {} tools, {model_size} of them model-facing",
        tools.len()
    );
    assert!(size < 24 * 1024, "the catalog grew to {size} bytes");
    assert!(
        model_size < 20 * 1024,
        "the model-facing catalog grew to {model_size} bytes"
    );
    mcp.shutdown().await;
}

/// An upstream served under a path (`https://host/toolbridge`): every request,
/// session routes included, goes below that path.
#[tokio::test]
async fn a_base_url_with_a_path_prefixes_every_route() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/toolbridge/v1/sync/sessions"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(upstream::session_body(SESSION, EPOCH)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/toolbridge/v1/notes/{UID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(upstream::item(UID, 4)))
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&format!("{}/toolbridge/", server.uri()))
        .spawn()
        .await;
    mcp.initialize().await;
    let got = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&got)["version"], 4);
    mcp.shutdown().await;
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert!(
        paths.iter().all(|p| p.starts_with("/toolbridge/v1/")),
        "{paths:?}"
    );
}
