//! A wiremock stand-in for the ToolBridge API.

#![allow(dead_code)]

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "test-token-7f3e9c";
pub const TENANT: &str = "tenant-1";
pub const SESSION: &str = "sess-1";
pub const EPOCH: u64 = 3;
pub const UID: &str = "6f1c2a39-0f37-4a8e-9d55-2b8a3f6c9e10";

/// An item as the upstream returns it.
pub fn item(uid: &str, version: u64) -> Value {
    json!({
        "uid": uid,
        "version": version,
        "updatedAt": "2026-11-01T10:00:00.5Z",
        "deletedAt": null,
        "payload": {"uid": uid, "title": "from upstream", "sync": {"version": version, "isDeleted": false}}
    })
}

pub fn session_body(id: &str, epoch: u64) -> Value {
    json!({
        "id": id,
        "userId": "u-1",
        "createdAt": "2026-11-01T10:00:00Z",
        "expiresAt": "2026-11-01T10:30:00Z",
        "epoch": epoch
    })
}

/// Answers session creation with `SESSION` at `EPOCH`.
pub async fn mount_session(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/v1/sync/sessions"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Sync-Epoch", EPOCH.to_string())
                .set_body_json(session_body(SESSION, EPOCH)),
        )
        .mount(server)
        .await;
}

/// Answers every entity request with a plausible success: a page for a
/// collection GET, an item otherwise (201 for a create).
pub struct Plausible;

impl Respond for Plausible {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let (status, body) =
            plausible_answer(request.method.as_str(), request.url.path(), &request.body);
        ResponseTemplate::new(status).set_body_json(body)
    }
}

/// The plausible success for an entity request, for any stand-in: a page for
/// a collection GET, the created item (uid from the body) for a create, the
/// item at the path otherwise.
pub fn plausible_answer(method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.len()) {
        ("GET", 2) => (
            200,
            json!({"items": [item(UID, 1)], "nextCursor": "c-next"}),
        ),
        ("POST", 2) => {
            let body: Value = serde_json::from_slice(body).unwrap_or_default();
            let uid = body["uid"].as_str().unwrap_or(UID).to_owned();
            (201, item(&uid, 1))
        }
        _ => (200, item(segments.get(2).copied().unwrap_or(UID), 2)),
    }
}

/// A stand-in with a session route and plausible answers for everything else.
pub async fn plausible_upstream() -> MockServer {
    let server = MockServer::start().await;
    mount_session(&server).await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Plausible)
        .mount(&server)
        .await;
    server
}

/// The requests to entity routes (not session or tenant routes), in order.
pub async fn entity_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            !r.url.path().starts_with("/v1/sync/") && !r.url.path().starts_with("/v1/auth/")
        })
        .collect()
}

pub fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn body_json(request: &Request) -> Value {
    if request.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&request.body).expect("request body is JSON")
    }
}

/// Answers the first `n` requests of `http_method` to `route` with `first`,
/// the rest with `then`.
pub async fn first_then(
    server: &MockServer,
    http_method: &str,
    route: &str,
    n: u64,
    first: ResponseTemplate,
    then: ResponseTemplate,
) {
    Mock::given(method(http_method))
        .and(path(route))
        .respond_with(first)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method(http_method))
        .and(path(route))
        .respond_with(then)
        .with_priority(2)
        .mount(server)
        .await;
}
