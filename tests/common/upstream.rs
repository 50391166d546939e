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

/// A cursor of the upstream's documented shape (contract §8): base64url
/// without padding of `"<updated ms>|<uid>"`, "strictly after" that place.
pub fn cursor(updated_ms: i64, uid: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{updated_ms}|{uid}"))
}

/// One collection that pages as the upstream does (contract §2, §7, §8):
/// items in `(updated ms, uid)` order, `limit` a page (default 500, at most
/// 1000), `cursor` strictly after a place, `nextCursor` on every non-empty
/// page, `items: []` at the end, and an undecodable cursor silently starting
/// over from the first page.
pub struct Paged {
    /// `(updated ms, item)`, in listing order.
    items: Vec<(i64, Value)>,
}

impl Paged {
    /// The items `payload(i)` for `i` in `0..count`, the `i`th updated `i` ms
    /// after 2026-11-01T10:00:00Z, uids in order as well.
    pub fn new(count: usize, payload: impl Fn(usize) -> Value) -> Self {
        const START_MS: i64 = 1_793_527_200_000;
        let items = (0..count)
            .map(|i| {
                let ms = START_MS + i as i64;
                let at =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                let uid = format!("00000000-0000-4000-8000-{i:012}");
                let item =
                    json!({"uid": uid, "version": 1, "updatedAt": at, "payload": payload(i)});
                (ms, item)
            })
            .collect();
        Self { items }
    }

    /// Where `cursor` points, if the upstream could decode it.
    fn after(cursor: &str) -> Option<(i64, String)> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (ms, uid) = text.split_once('|')?;
        Some((ms.parse().ok()?, uid.to_lowercase()))
    }
}

impl Respond for Paged {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query = |key: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let limit = query("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| (1..=1000).contains(l))
            .unwrap_or(500);
        let after = query("cursor").as_deref().and_then(Self::after);
        let page: Vec<&(i64, Value)> = self
            .items
            .iter()
            .filter(|(ms, item)| {
                after.as_ref().is_none_or(|(at, uid)| {
                    (*ms, item["uid"].as_str().unwrap_or_default()) > (*at, uid.as_str())
                })
            })
            .take(limit)
            .collect();
        let mut body = json!({"items": page.iter().map(|(_, item)| item).collect::<Vec<_>>()});
        if let Some((ms, last)) = page.last() {
            body["nextCursor"] = json!(cursor(*ms, last["uid"].as_str().unwrap_or_default()));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}
