//! The MCP handler in-process: rmcp's client talks to
//! [`toolbridge_mcp::mcp::McpServer`] over `tokio::io::duplex`, and the
//! upstream is a scripted [`Transport`] instead of the network. No binary is
//! spawned and no port is opened: this is the handler, the service and the
//! upstream client as one library, at unit-test speed. (The end-to-end
//! suites still spawn the binary.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use secrecy::SecretString;
use serde_json::{Value, json};
use toolbridge_mcp::catalog::{Catalog, Selection};
use toolbridge_mcp::mcp::McpServer;
use toolbridge_mcp::service::Service;
use toolbridge_mcp::upstream::{
    Answer, Auth, Client, ClientConfig, ClientSettings, Rate, RetryPolicy, SendFuture, Transport,
};

const UID: &str = "6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70";
const MISSING: &str = "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2";

/// The upstream in miniature: a session for the asking, the note `UID`,
/// `404` for anything else; or, when `busy`, `503` with `Retry-After: 2`
/// for every entity request. Counts entity requests.
#[derive(Default)]
struct Upstream {
    busy: bool,
    entity_requests: AtomicUsize,
    paths: Mutex<Vec<String>>,
}

impl Upstream {
    fn answer(&self, request: &reqwest::Request) -> Answer {
        let path = request.url().path().to_owned();
        let json = |status: u16, body: Value| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let status = StatusCode::from_u16(status).unwrap();
            (status, headers, body.to_string().into_bytes())
        };
        if path == "/v1/sync/sessions" {
            return json(201, json!({"id": "sess-1", "epoch": 1, "userId": "u-1"}));
        }
        self.entity_requests.fetch_add(1, Ordering::SeqCst);
        self.paths.lock().unwrap().push(path.clone());
        if self.busy {
            let mut answer = json(503, json!({"error": "busy"}));
            answer.1.insert(RETRY_AFTER, HeaderValue::from_static("2"));
            return answer;
        }
        if path == format!("/v1/notes/{UID}") {
            let item = json!({"uid": UID, "version": 4, "updatedAt": "2026-01-01T00:00:00Z",
                              "payload": {"title": "in-process"}});
            return json(200, item);
        }
        json(404, json!({"error": "note not found"}))
    }
}

impl Transport for Upstream {
    fn send(&self, request: reqwest::Request) -> SendFuture<'_> {
        let answer = self.answer(&request);
        Box::pin(async move { Ok(answer) })
    }
}

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(5),
        retry: RetryPolicy::default(),
        max_response_bytes: 1 << 20,
        breaker_threshold: 5,
        breaker_cooldown: Duration::from_secs(15),
        rate: Some(Rate {
            per_minute: 0,
            burst: 0,
        }),
        max_in_flight: 8,
        ca_bundle: None,
    }
}

/// The MCP server over `upstream`, and an rmcp client connected to it
/// (already initialized).
async fn connect(upstream: Arc<Upstream>) -> RunningService<RoleClient, ()> {
    let config = ClientConfig {
        base_url: "http://upstream.test".into(),
        auth: Auth::Bearer(SecretString::from("t")),
        tenant_id: Some("t-1".into()),
        token_command: None,
        settings: settings(),
    };
    let client = Arc::new(Client::with_transport(config, upstream).unwrap());
    // No local replica here: every read goes to the fake upstream.
    let selection = Selection {
        local: false,
        ..Selection::default()
    };
    let service = Arc::new(Service::new(
        Catalog::select(&selection),
        client,
        None,
        Duration::from_secs(30),
    ));
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let running = McpServer::new(service).serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    ().serve(client_io).await.expect("initialize")
}

fn call(tool: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(tool.to_owned()).with_arguments(args)
}

/// Initialize, `tools/list` (all 40 tools), one `tools/call` that succeeds
/// (structured content from the upstream's item) and one that fails (an
/// `isError` result whose text is the JSON error, with no structured
/// content).
#[tokio::test]
async fn the_handler_serves_tools_in_process() {
    let upstream = Arc::new(Upstream::default());
    let client = connect(upstream.clone()).await;
    let info = client.peer_info().expect("server info");
    let name = info.server_info.as_ref().map(|s| s.name.as_str());
    assert_eq!(name, Some("toolbridge-mcp"));

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 40);
    assert!(tools.iter().any(|t| t.name == "get_note"));

    let found = client
        .call_tool(call("get_note", json!({"uid": UID})))
        .await
        .unwrap();
    assert_ne!(found.is_error, Some(true), "{found:?}");
    let item = found.structured_content.expect("structured content");
    assert_eq!(item["uid"], UID);
    assert_eq!(item["version"], 4);
    assert_eq!(item["payload"]["title"], "in-process");

    let missing = client
        .call_tool(call("get_note", json!({"uid": MISSING})))
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true), "{missing:?}");
    assert!(missing.structured_content.is_none());
    let text = &missing.content[0].as_text().expect("text content").text;
    let error: Value = serde_json::from_str(text).expect("the error is JSON");
    assert_eq!(error["code"], "not_found");
    assert_eq!(error["http_status"], 404);
    assert_eq!(error["retryable"], false);
    assert!(error["correlation_id"].is_string());

    assert_eq!(
        *upstream.paths.lock().unwrap(),
        [format!("/v1/notes/{UID}"), format!("/v1/notes/{MISSING}")]
    );
    client.cancel().await.unwrap();
}

/// A call the client abandons while it waits out a `Retry-After` (rmcp's
/// client sends `notifications/cancelled` when the call's future is
/// dropped) ends on the server, and nothing more is sent upstream however
/// long the pause would have lasted. Virtual time: nothing is slept.
#[tokio::test(start_paused = true)]
async fn a_call_cancelled_by_the_client_sends_nothing_more() {
    let upstream = Arc::new(Upstream {
        busy: true,
        ..Upstream::default()
    });
    let client = connect(upstream.clone()).await;

    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        client.call_tool(call("get_note", json!({"uid": UID}))),
    )
    .await;
    assert!(abandoned.is_err(), "the call ended before the retry");
    assert_eq!(upstream.entity_requests.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        upstream.entity_requests.load(Ordering::SeqCst),
        1,
        "a request went out after the cancellation"
    );
    // The server is still there.
    assert_eq!(client.list_all_tools().await.unwrap().len(), 40);
    client.cancel().await.unwrap();
}
