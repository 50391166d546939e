//! The embedded API through its real HTTP interface: spawned on 127.0.0.1:0
//! over a temporary database, driven with reqwest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use toolbridge_mcp::embedded::{self, ApiConfig, RateLimits, RunningApi, TENANT_ID};
use uuid::Uuid;

/// One running API plus a client that holds a session for it.
struct Api {
    running: RunningApi,
    client: Client,
}

/// Talks to one API instance with all the headers the contract asks for.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    secret: String,
    session: String,
    epoch: i64,
}

async fn start_at(db: &Path, limits: RateLimits) -> Api {
    let secret = embedded::new_secret();
    let token = secret.expose_secret().to_owned();
    let config = ApiConfig {
        db_path: db.to_owned(),
        secret,
        limits,
    };
    let running = embedded::spawn(config).await.expect("spawn embedded API");
    let mut client = Client {
        http: reqwest::Client::new(),
        base: running.base_url(),
        secret: token,
        session: String::new(),
        epoch: 0,
    };
    client.begin_session().await;
    Api { running, client }
}

async fn start() -> (tempfile::TempDir, Api) {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    (dir, api)
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with only the bearer secret.
    fn authed(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.secret)
    }

    /// A request with every header an entity route needs.
    fn entity(&self, method: Method, path: &str) -> RequestBuilder {
        self.authed(method, path)
            .header("X-TB-Tenant-ID", TENANT_ID)
            .header("X-Sync-Session", &self.session)
            .header("X-Sync-Epoch", self.epoch.to_string())
    }

    async fn begin_session(&mut self) {
        let response = send(self.authed(Method::POST, "/v1/sync/sessions")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("session json");
        self.session = body["id"].as_str().expect("session id").to_owned();
        self.epoch = body["epoch"].as_i64().expect("epoch");
    }

    /// Sends an entity request; returns the status and the JSON body (or Null).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.entity(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// `POST {item}/process` with `action`.
    async fn process(&self, item: &str, action: &str) -> (StatusCode, Value) {
        let body = json!({"action": action, "metadata": {"why": "test"}});
        self.call(Method::POST, &format!("{item}/process"), Some(body))
            .await
    }

    async fn archive(&self, item: &str) -> Value {
        let (status, body) = self
            .call(Method::POST, &format!("{item}/archive"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn create(&self, collection: &str, body: Value) -> Value {
        let (status, item) = self.call(Method::POST, collection, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        item
    }

    /// Creates an item and returns its path.
    async fn create_at(&self, collection: &str, body: Value) -> String {
        format!(
            "{collection}/{}",
            uid_of(&self.create(collection, body).await)
        )
    }
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("send")
}

async fn status_of(request: RequestBuilder) -> StatusCode {
    send(request).await.status()
}

async fn json_of(request: RequestBuilder) -> (StatusCode, Value) {
    let response = send(request).await;
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn text(request: RequestBuilder) -> (StatusCode, String) {
    let response = send(request).await;
    (response.status(), response.text().await.unwrap_or_default())
}

fn plain(status: StatusCode, body: &str) -> (StatusCode, String) {
    (status, body.to_owned())
}

fn uid_of(item: &Value) -> String {
    item["uid"].as_str().expect("item uid").to_owned()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `/healthz` and `/v1/sync/info` answer without credentials.
#[tokio::test]
async fn health_and_info_are_public() {
    let (_dir, api) = start().await;
    let c = &api.client;
    assert_eq!(
        text(c.http.get(c.url("/healthz"))).await,
        plain(StatusCode::OK, "ok")
    );
    let (_, info) = json_of(c.http.get(c.url("/v1/sync/info"))).await;
    assert_eq!(info["apiVersion"], "1.1");
    assert_eq!(info["entities"]["chat_messages"]["maxLimit"], 1000);
    let rate = json!({"windowSeconds": 60, "maxRequests": 600, "burst": 120});
    assert_eq!(info["rateLimit"], rate);
    let hints = json!({"recommendedBatch": 500, "backoffMsOn429": 1500});
    assert_eq!(info["hints"], hints);
}

/// A missing or wrong bearer secret is a plain-text 401 on every guarded route.
#[tokio::test]
async fn auth_requires_the_secret() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let refused = plain(StatusCode::UNAUTHORIZED, "unauthorized");
    let guarded = [
        (Method::GET, "/v1/notes"),
        (Method::POST, "/v1/sync/sessions"),
        (Method::GET, "/v1/auth/tenant"),
        (Method::POST, "/v1/sync/wipe"),
    ];
    for (method, path) in guarded {
        let none = c.http.request(method.clone(), c.url(path));
        assert_eq!(text(none).await, refused, "{path}");
        let wrong = c
            .http
            .request(method, c.url(path))
            .bearer_auth("not-the-secret");
        assert_eq!(text(wrong).await, refused, "{path}");
    }
}

/// Entity routes need our tenant: missing is 401, another is 403, both plain text.
#[tokio::test]
async fn tenant_header_is_enforced() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let missing = text(c.authed(Method::GET, "/v1/notes")).await;
    let expected = plain(
        StatusCode::UNAUTHORIZED,
        "Unauthorized: missing tenant header",
    );
    assert_eq!(missing, expected);
    let other = c
        .authed(Method::GET, "/v1/notes")
        .header("X-TB-Tenant-ID", "someone-else");
    let expected = plain(
        StatusCode::FORBIDDEN,
        "Unauthorized: not authorized for requested tenant",
    );
    assert_eq!(text(other).await, expected);
    let tenant = json_of(c.authed(Method::GET, "/v1/auth/tenant")).await;
    assert_eq!(tenant, (StatusCode::OK, json!({"tenantId": "local"})));
}

/// Without a session, or with an unknown one, entity routes are 428 with distinct messages.
#[tokio::test]
async fn entity_routes_require_a_session() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let without_session = || {
        c.authed(Method::GET, "/v1/notes")
            .header("X-TB-Tenant-ID", TENANT_ID)
            .header("X-Sync-Epoch", "1")
    };
    let response = send(without_session()).await;
    assert!(response.headers().get("x-ratelimit-limit").is_none());
    let missing = (
        response.status(),
        response.json::<Value>().await.expect("json"),
    );
    let unknown = without_session().header("X-Sync-Session", Uuid::new_v4().to_string());
    let unknown = json_of(unknown).await;
    assert_eq!(
        (missing.0, unknown.0),
        (
            StatusCode::PRECONDITION_REQUIRED,
            StatusCode::PRECONDITION_REQUIRED
        )
    );
    assert!(error_of(&missing.1).starts_with("X-Sync-Session header required"));
    assert!(error_of(&unknown.1).starts_with("Invalid or expired sync session"));
    assert!(missing.1["correlation_id"].is_string());
}

/// Session routes: 201 with X-Sync-Epoch, get 200, delete 204, then 404 plain text.
#[tokio::test]
async fn session_lifecycle() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let begun = send(c.authed(Method::POST, "/v1/sync/sessions")).await;
    assert_eq!(header(&begun, "x-sync-epoch"), "1");
    let session: Value = begun.json().await.expect("json");
    assert_eq!(session["userId"], "local");
    assert!(session["createdAt"].is_string() && session["expiresAt"].is_string());
    let path = format!("/v1/sync/sessions/{}", session["id"].as_str().expect("id"));
    assert_eq!(
        status_of(c.authed(Method::GET, &path)).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(c.authed(Method::DELETE, &path)).await,
        StatusCode::NO_CONTENT
    );
    let gone = text(c.authed(Method::GET, &path)).await;
    assert_eq!(
        gone,
        plain(StatusCode::NOT_FOUND, "session not found or expired")
    );
}

/// A missing epoch is 409; after a wipe the old session is gone and the old
/// epoch is refused until the client adopts the new one; data is kept.
#[tokio::test]
async fn wipe_forces_re_sessioning() {
    let (_dir, mut api) = start().await;
    let note = api
        .client
        .create_at("/v1/notes", json!({"title": "kept"}))
        .await;
    let no_epoch = api
        .client
        .authed(Method::GET, "/v1/notes")
        .header("X-TB-Tenant-ID", TENANT_ID)
        .header("X-Sync-Session", &api.client.session);
    assert_eq!(status_of(no_epoch).await, StatusCode::CONFLICT);

    let wiped = send(api.client.entity(Method::POST, "/v1/sync/wipe")).await;
    assert_eq!(
        (wiped.status(), header(&wiped, "x-sync-epoch")),
        (StatusCode::OK, "2")
    );
    let (status, _) = api.client.get("/v1/notes").await;
    assert_eq!(status, StatusCode::PRECONDITION_REQUIRED);

    let old_epoch = api.client.epoch;
    api.client.begin_session().await;
    assert_eq!(api.client.epoch, 2);
    let stale = Client {
        epoch: old_epoch,
        ..api.client.clone()
    };
    let refused = send(
        stale
            .entity(Method::GET, "/v1/notes")
            .header("X-Correlation-ID", "c-1"),
    )
    .await;
    assert_eq!(
        (refused.status(), header(&refused, "x-sync-epoch")),
        (StatusCode::CONFLICT, "2")
    );
    // The epoch is checked behind the rate limiter, which counted it.
    assert!(
        header(&refused, "x-ratelimit-remaining")
            .parse::<u32>()
            .is_ok()
    );
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body,
        json!({"error": "epoch_mismatch", "epoch": 2, "correlation_id": "c-1"})
    );
    // ... and before the request's own checks (uid, body).
    let bad_uid = stale
        .call(Method::DELETE, "/v1/notes/not-a-uid", None)
        .await;
    assert_eq!(error_of(&bad_uid.1), "epoch_mismatch");
    let bad_body = stale.entity(Method::POST, "/v1/notes").body("{bad");
    assert_eq!(error_of(&json_of(bad_body).await.1), "epoch_mismatch");
    assert_eq!(api.client.get(&note).await.0, StatusCode::OK);
}

/// Items carry the server keys, and every accepted write raises the version by one.
#[tokio::test]
async fn item_shape_and_versions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let created = c
        .create("/v1/tasks", json!({"title": "t", "updatedAt": "data"}))
        .await;
    assert_eq!(created["version"], 1);
    assert!(created["updatedAt"].is_string() && created.get("deletedAt").is_none());
    let payload = &created["payload"];
    assert_eq!(
        (&payload["uid"], &payload["updatedAt"]),
        (&created["uid"], &json!("data"))
    );
    assert!(payload["updatedTs"].is_i64() && payload["updateTime"].is_string());
    assert_eq!(payload["sync"], json!({"version": 1, "isDeleted": false}));

    let path = format!("/v1/tasks/{}", uid_of(&created));
    let writes = [
        (Method::PUT, "", Some(json!({"title": "u"}))),
        (Method::PATCH, "", Some(json!({"priority": "high"}))),
        (Method::POST, "/archive", None),
        (Method::POST, "/process", Some(json!({"action": "reopen"}))),
        (Method::POST, "/process", Some(json!({"action": "reopen"}))),
    ];
    for (expected, (method, suffix, body)) in (2..).zip(writes) {
        let (status, item) = c.call(method, &format!("{path}{suffix}"), body).await;
        assert_eq!(
            (status, item["version"].as_i64()),
            (StatusCode::OK, Some(expected))
        );
    }
}

/// A stale If-Match is 412; a matching one (bare or quoted) writes; a garbled one is 400.
#[tokio::test]
async fn if_match_guards_updates() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = c.create_at("/v1/notes", json!({"title": "a"})).await;
    let put = |version: &str| {
        c.entity(Method::PUT, &path)
            .header("If-Match", version)
            .json(&json!({"title": "b"}))
    };
    let (code, body) = json_of(put("7")).await;
    assert_eq!(code, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_of(&body), "version mismatch: expected 7, actual 1");
    assert_eq!(status_of(put("1")).await, StatusCode::OK);
    assert_eq!(status_of(put("\"2\"")).await, StatusCode::OK);
    assert_eq!(status_of(put("*")).await, StatusCode::BAD_REQUEST);
    let patch = c
        .entity(Method::PATCH, &path)
        .header("If-Match", "1")
        .json(&json!({"x": 1}));
    assert_eq!(status_of(patch).await, StatusCode::PRECONDITION_FAILED);
}

/// Patch merges top-level keys and cannot touch `uid` or `sync`.
#[tokio::test]
async fn patch_merges_but_keeps_server_keys() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let note = c
        .create("/v1/notes", json!({"title": "a", "tags": ["x"]}))
        .await;
    let path = format!("/v1/notes/{}", uid_of(&note));
    let patch = json!({"title": "b", "uid": Uuid::new_v4().to_string(), "sync": {"version": 9}});
    let (status, item) = c.call(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    let payload = &item["payload"];
    assert_eq!(
        (&payload["title"], &payload["tags"]),
        (&json!("b"), &json!(["x"]))
    );
    assert_eq!(
        (&payload["uid"], &payload["sync"]["version"]),
        (&note["uid"], &json!(2))
    );
}

/// Create with an existing uid replaces the whole payload, adds one, and undeletes.
#[tokio::test]
async fn create_on_existing_uid_replaces_and_undeletes() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let uid = Uuid::new_v4().to_string();
    let path = c
        .create_at(
            "/v1/notes",
            json!({"uid": uid, "title": "a", "content": "c"}),
        )
        .await;
    assert_eq!(c.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
    let again = c
        .create("/v1/notes", json!({"uid": uid, "title": "b"}))
        .await;
    assert_eq!(
        (&again["version"], &again["payload"]["title"]),
        (&json!(3), &json!("b"))
    );
    assert!(again["payload"].get("content").is_none() && again.get("deletedAt").is_none());
    assert_eq!(c.get(&path).await.0, StatusCode::OK);
}

/// Soft delete: 410 on get and on every write, 200 with includeDeleted.
#[tokio::test]
async fn soft_delete_is_gone_but_listable() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = c.create_at("/v1/chats", json!({"title": "c"})).await;
    let (status, tombstone) = c.call(Method::DELETE, &path, None).await;
    assert_eq!((status, &tombstone["version"]), (StatusCode::OK, &json!(2)));
    assert!(tombstone["deletedAt"].is_string());
    assert_eq!(tombstone["payload"]["sync"]["isDeleted"], true);
    let (status, gone) = c.get(&path).await;
    assert_eq!(
        (status, error_of(&gone)),
        (StatusCode::GONE, "chat deleted")
    );
    assert_eq!(gone["deletedAt"], tombstone["deletedAt"]);
    assert_eq!(
        c.get(&format!("{path}?includeDeleted=true")).await.0,
        StatusCode::OK
    );
    let writes = [
        (Method::DELETE, "", None),
        (Method::PUT, "", Some(json!({}))),
        (Method::PATCH, "", Some(json!({}))),
        (Method::POST, "/archive", None),
        (
            Method::POST,
            "/process",
            Some(json!({"action": "no-such-action"})),
        ),
    ];
    for (method, suffix, body) in writes {
        let (status, _) = c.call(method, &format!("{path}{suffix}"), body).await;
        assert_eq!(status, StatusCode::GONE, "{suffix}");
    }
    assert_eq!(c.get("/v1/chats").await.1["items"], json!([]));
    let (_, listed) = c.get("/v1/chats?includeDeleted=true").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

/// Malformed requests: invalid UID, unknown uid, invalid JSON, null body, bad create uid.
#[tokio::test]
async fn malformed_requests_are_refused() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let (status, body) = c.get("/v1/tasks/not-a-uuid").await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid UID")
    );
    let unknown = format!("/v1/tasks/{}", Uuid::new_v4());
    assert_eq!(c.get(&unknown).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        c.call(Method::PUT, &unknown, Some(json!({}))).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = json_of(c.entity(Method::POST, "/v1/tasks").body("{bad")).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid JSON")
    );
    for bad in [
        Value::Null,
        json!([1]),
        json!({"uid": "nope"}),
        json!({"uid": 7}),
    ] {
        let (status, _) = c.call(Method::POST, "/v1/tasks", Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Process reads the body before looking the item up.
    let process = c
        .entity(Method::POST, &format!("{unknown}/process"))
        .body("{bad");
    assert_eq!(status_of(process).await, StatusCode::BAD_REQUEST);
    // Upper-case and braced uids name the same item.
    let uid = uid_of(&c.create("/v1/tasks", json!({})).await);
    let braced = format!("/v1/tasks/{{{}}}", uid.to_uppercase());
    assert_eq!(c.get(&braced).await.0, StatusCode::OK);
}

/// Notes: archive sets status; pin/unpin/unarchive; unknown action is 400.
#[tokio::test]
async fn note_archive_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = c.create_at("/v1/notes", json!({"title": "n"})).await;
    assert_eq!(c.archive(&path).await["payload"]["status"], "archived");
    assert_eq!(c.process(&path, "pin").await.1["payload"]["pinned"], true);
    assert_eq!(
        c.process(&path, "unpin").await.1["payload"]["pinned"],
        false
    );
    assert_eq!(
        c.process(&path, "archive").await.1["payload"]["status"],
        "archived"
    );
    assert_eq!(
        c.process(&path, "unarchive").await.1["payload"]["status"],
        "active"
    );
    let (status, body) = c.process(&path, "explode").await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid action: explode")
    );
}

/// Tasks: archive sets status and done; start/complete/reopen move both.
#[tokio::test]
async fn task_archive_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = c.create_at("/v1/tasks", json!({"title": "t"})).await;
    let archived = c.archive(&path).await;
    let state = |item: &Value| {
        (
            item["payload"]["status"].clone(),
            item["payload"]["done"].clone(),
        )
    };
    assert_eq!(state(&archived), (json!("archived"), json!(true)));
    let moves = [
        ("start", "in_progress", false),
        ("complete", "completed", true),
        ("reopen", "open", false),
    ];
    for (action, status, done) in moves {
        let (_, item) = c.process(&path, action).await;
        assert_eq!(state(&item), (json!(status), json!(done)), "{action}");
    }
}

/// Chat messages need a live chat; archive and mark_read/mark_delivered set flags.
#[tokio::test]
async fn chat_message_parent_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let chat = uid_of(&c.create("/v1/chats", json!({"title": "c"})).await);
    let orphan = json!({"chatUid": Uuid::new_v4().to_string()});
    let (status, body) = c
        .call(Method::POST, "/v1/chat_messages", Some(orphan))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(&body).starts_with("parent chat "));
    let no_chat = c
        .call(
            Method::POST,
            "/v1/chat_messages",
            Some(json!({"content": "hi"})),
        )
        .await;
    assert_eq!(no_chat.0, StatusCode::BAD_REQUEST);
    let path = c
        .create_at(
            "/v1/chat_messages",
            json!({"chatUid": chat, "content": "hi"}),
        )
        .await;
    assert_eq!(c.archive(&path).await["payload"]["archived"], true);
    assert_eq!(
        c.process(&path, "mark_read").await.1["payload"]["read"],
        true
    );
    assert_eq!(
        c.process(&path, "mark_delivered").await.1["payload"]["delivered"],
        true
    );
    assert_eq!(c.process(&path, "resolve").await.0, StatusCode::BAD_REQUEST);
}

/// Chats and comments: archive flag/status and their resolve/reopen actions.
#[tokio::test]
async fn chat_and_comment_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let chat = c.create_at("/v1/chats", json!({})).await;
    assert_eq!(c.archive(&chat).await["payload"]["archived"], true);
    assert_eq!(
        c.process(&chat, "resolve").await.1["payload"]["status"],
        "resolved"
    );
    assert_eq!(
        c.process(&chat, "reopen").await.1["payload"]["status"],
        "active"
    );

    let note = uid_of(&c.create("/v1/notes", json!({})).await);
    let path = c
        .create_at(
            "/v1/comments",
            json!({"parentType": "note", "parentUid": note}),
        )
        .await;
    assert_eq!(c.archive(&path).await["payload"]["status"], "archived");
    assert_eq!(
        c.process(&path, "resolve").await.1["payload"]["status"],
        "resolved"
    );
    assert_eq!(
        c.process(&path, "reopen").await.1["payload"]["status"],
        "open"
    );
}

/// Comments need a live note/task parent, re-checked on writes but not on delete.
#[tokio::test]
async fn comment_parents_are_checked_on_every_write_but_delete() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let missing = json!({"parentType": "task", "parentUid": Uuid::new_v4().to_string()});
    let (status, body) = c.call(Method::POST, "/v1/comments", Some(missing)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_of(&body).ends_with("does not exist or is deleted"));
    let chat_parent = json!({"parentType": "chat", "parentUid": Uuid::new_v4().to_string()});
    let (status, _) = c
        .call(Method::POST, "/v1/comments", Some(chat_parent))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let note_uid = uid_of(&c.create("/v1/notes", json!({})).await);
    let note = format!("/v1/notes/{note_uid}");
    let comment = json!({"parentType": "note", "parentUid": note_uid});
    let path = c.create_at("/v1/comments", comment.clone()).await;
    let no_parent = c
        .call(Method::PUT, &path, Some(json!({"content": "orphan"})))
        .await;
    assert_eq!(no_parent.0, StatusCode::BAD_REQUEST);
    let to_chat = c
        .call(Method::PATCH, &path, Some(json!({"parentType": "chat"})))
        .await;
    assert_eq!(to_chat.0, StatusCode::BAD_REQUEST);

    assert_eq!(c.call(Method::DELETE, &note, None).await.0, StatusCode::OK);
    let writes = [
        (Method::PATCH, "", Some(json!({"content": "y"}))),
        (Method::POST, "/archive", None),
        (Method::POST, "/process", Some(json!({"action": "resolve"}))),
    ];
    for (method, suffix, body) in writes {
        let (status, _) = c.call(method, &format!("{path}{suffix}"), body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{suffix}");
    }
    let (status, _) = c.call(Method::POST, "/v1/comments", Some(comment)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(c.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
}

/// Reads every page of `collection`, checking each page's cursor; `between`
/// runs after each non-empty page.
async fn read_all_pages(
    c: &Client,
    collection: &str,
    limit: usize,
    mut between: impl AsyncFnMut(usize),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        let (status, body) = c
            .get(&format!("{collection}?limit={limit}&cursor={cursor}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let items = body["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= limit);
        if items.is_empty() {
            assert!(
                body.get("nextCursor").is_none(),
                "an empty page carries no cursor"
            );
            break;
        }
        seen.extend(items.iter().map(uid_of));
        cursor = body["nextCursor"]
            .as_str()
            .expect("a non-empty page has a cursor")
            .to_owned();
        between(page).await;
    }
    seen
}

/// 25 items with limit 10: every item exactly once, three pages, then an empty one.
#[tokio::test]
async fn pagination_yields_each_item_once() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let mut created = HashSet::new();
    for i in 0..25 {
        created.insert(uid_of(&c.create("/v1/notes", json!({"n": i})).await));
    }
    let mut pages = 0;
    let seen = read_all_pages(c, "/v1/notes", 10, async |_| pages += 1).await;
    assert_eq!((pages, seen.len()), (3, 25));
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
    // An undecodable cursor restarts from the beginning.
    let (_, restarted) = c.get("/v1/notes?limit=1&cursor=garbage").await;
    assert_eq!(restarted["items"].as_array().map(Vec::len), Some(1));
}

/// Items updated between pages move to the end; none from before is skipped.
#[tokio::test]
async fn pagination_survives_concurrent_updates() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(uid_of(&c.create("/v1/tasks", json!({"n": i})).await));
    }
    // Touch an item already read, one not yet read, and one on the next page.
    let touched = [created[2].clone(), created[24].clone(), created[12].clone()];
    let seen = read_all_pages(c, "/v1/tasks", 10, async |page| {
        if let Some(uid) = touched.get(page) {
            let path = format!("/v1/tasks/{uid}");
            let (status, _) = c
                .call(Method::PATCH, &path, Some(json!({"page": page})))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    })
    .await;
    let seen: HashSet<String> = seen.into_iter().collect();
    for uid in &created {
        assert!(seen.contains(uid), "{uid} was skipped");
    }
}

/// A tiny bucket answers 429 with Retry-After; rate-limited replies carry X-RateLimit-*.
#[tokio::test]
async fn rate_limits_apply_per_route_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = RateLimits {
        entity_per_minute: 1,
        entity_burst: 2,
        bootstrap_per_minute: 1,
        bootstrap_burst: 2,
    };
    let api = start_at(&dir.path().join("api.db"), limits).await; // spends a bootstrap token
    let c = &api.client;
    let first = send(c.entity(Method::GET, "/v1/notes")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let limit = [
        "x-ratelimit-limit",
        "x-ratelimit-burst",
        "x-ratelimit-remaining",
    ];
    assert_eq!(limit.map(|name| header(&first, name)), ["1", "2", "1"]);
    assert!(header(&first, "x-ratelimit-reset").parse::<u64>().is_ok());
    assert_eq!(
        status_of(c.entity(Method::GET, "/v1/notes")).await,
        StatusCode::OK
    );

    let limited = send(c.entity(Method::GET, "/v1/notes")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        header(&limited, "retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    assert_eq!(header(&limited, "x-ratelimit-remaining"), "0");
    assert!(limited.json::<Value>().await.expect("json")["correlation_id"].is_string());

    assert_eq!(
        status_of(c.authed(Method::GET, "/v1/auth/tenant")).await,
        StatusCode::OK
    );
    let tenant = status_of(c.authed(Method::GET, "/v1/auth/tenant")).await;
    assert_eq!(tenant, StatusCode::TOO_MANY_REQUESTS);
}

/// X-Correlation-ID is echoed on success and error; one is generated when absent.
#[tokio::test]
async fn correlation_ids_are_echoed_or_generated() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let ok = send(
        c.entity(Method::GET, "/v1/notes")
            .header("X-Correlation-ID", "abc-1"),
    )
    .await;
    assert_eq!(header(&ok, "x-correlation-id"), "abc-1");
    let failed = c
        .entity(Method::GET, "/v1/notes/nope")
        .header("X-Correlation-ID", "abc-2");
    let failed = send(failed).await;
    assert_eq!(header(&failed, "x-correlation-id"), "abc-2");
    assert_eq!(
        failed.json::<Value>().await.expect("json")["correlation_id"],
        "abc-2"
    );
    let generated = send(c.http.get(c.url("/healthz"))).await;
    assert!(Uuid::parse_str(header(&generated, "x-correlation-id")).is_ok());
}

/// Unknown routes are a plain-text 404; a wrong method is an empty 405, both before auth.
#[tokio::test]
async fn unknown_routes_and_methods() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let not_found = plain(StatusCode::NOT_FOUND, "404 page not found");
    assert_eq!(text(c.authed(Method::GET, "/v1/widgets")).await, not_found);
    assert_eq!(text(c.http.get(c.url("/v1/widgets"))).await, not_found);
    let not_allowed = plain(StatusCode::METHOD_NOT_ALLOWED, "");
    assert_eq!(text(c.entity(Method::PUT, "/v1/notes")).await, not_allowed);
    assert_eq!(
        text(c.http.put(c.url("/v1/sync/sessions"))).await,
        not_allowed
    );
}

/// A second instance on the same database sees the first's writes and epoch bump.
#[tokio::test]
async fn instances_sharing_a_database_agree() {
    let (dir, first) = start().await;
    let second = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let note = first
        .client
        .create_at("/v1/notes", json!({"title": "shared"}))
        .await;
    let (code, seen) = second.client.get(&note).await;
    assert_eq!(
        (code, &seen["payload"]["title"]),
        (StatusCode::OK, &json!("shared"))
    );
    // Sessions are per process: the second's is unknown to the first.
    let foreign = Client {
        session: second.client.session.clone(),
        ..first.client.clone()
    };
    assert_eq!(
        foreign.get("/v1/notes").await.0,
        StatusCode::PRECONDITION_REQUIRED
    );

    let wipe = first.client.entity(Method::POST, "/v1/sync/wipe");
    assert_eq!(status_of(wipe).await, StatusCode::OK);
    let (code, body) = second.client.get("/v1/notes").await;
    assert_eq!((code, &body["epoch"]), (StatusCode::CONFLICT, &json!(2)));
}

/// A wipe that commits while a write is in flight is seen by that write: the
/// epoch is checked inside the write's own transaction, so a stale-epoch write
/// can never commit after the wipe. The test plays another process sharing the
/// file, caught in the middle of its wipe: the epoch raised in an open
/// `BEGIN IMMEDIATE` transaction. The request is admitted while the wipe is
/// uncommitted (WAL readers see epoch 1), queues on the write lock, and the
/// wipe commits before it can write. (A check made before the write's
/// transaction, as the gate once did, let this write through with `201`.)
#[tokio::test]
async fn a_wipe_landing_before_a_write_refuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("api.db");
    let api = start_at(&db, RateLimits::default()).await;
    let wiper = rusqlite::Connection::open(&db).expect("open the database");
    wiper
        .execute_batch("BEGIN IMMEDIATE; UPDATE meta SET value = value + 1 WHERE key = 'epoch';")
        .expect("begin the wipe");

    let stale = api.client.clone();
    let write = tokio::spawn(async move {
        let body = json!({"title": "written under epoch 1"});
        stale.call(Method::POST, "/v1/notes", Some(body)).await
    });
    // Time to be admitted and queue on the lock, well within the store's
    // 5 s busy timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write must wait for the wipe");
    wiper.execute_batch("COMMIT").expect("commit the wipe");

    let (status, body) = write.await.expect("writer");
    assert_eq!(
        (status, error_of(&body), &body["epoch"]),
        (StatusCode::CONFLICT, "epoch_mismatch", &json!(2)),
        "{body}"
    );
    let current = Client {
        epoch: 2,
        ..api.client.clone()
    };
    let (status, page) = current.get("/v1/notes").await;
    assert_eq!((status, &page["items"]), (StatusCode::OK, &json!([])));
}

/// Concurrent writes through two instances lose and duplicate nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let (dir, first) = start().await;
    let second = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let target = first.client.create_at("/v1/tasks", json!({})).await;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let c = if i % 2 == 0 {
            &first.client
        } else {
            &second.client
        }
        .clone();
        let target = target.clone();
        writers.spawn(async move {
            let created = c
                .call(Method::POST, "/v1/tasks", Some(json!({"i": i})))
                .await
                .0;
            let archived = c
                .call(Method::POST, &format!("{target}/archive"), None)
                .await
                .0;
            (created, archived)
        });
    }
    while let Some(result) = writers.join_next().await {
        assert_eq!(
            result.expect("writer"),
            (StatusCode::CREATED, StatusCode::OK)
        );
    }
    assert_eq!(first.client.get(&target).await.1["version"], 21);
    let (_, page) = second.client.get("/v1/tasks?limit=1000").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(21));
}

/// Data written before a shutdown is there after reopening the same file.
#[tokio::test]
async fn writes_survive_a_restart() {
    let (dir, api) = start().await;
    let note = api
        .client
        .create_at("/v1/notes", json!({"title": "durable"}))
        .await;
    api.running.shutdown().await;
    let reopened = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let (status, item) = reopened.client.get(&note).await;
    assert_eq!(
        (status, &item["payload"]["title"]),
        (StatusCode::OK, &json!("durable"))
    );
}

/// The database's parent directories are created; an impossible path is a clear error.
#[tokio::test]
async fn store_paths_are_created_or_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = start_at(&dir.path().join("a/b/c/api.db"), RateLimits::default()).await;
    api.running.shutdown().await;
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").expect("write");
    let config = ApiConfig {
        db_path: blocker.join("api.db"),
        secret: SecretString::from("s"),
        limits: RateLimits::default(),
    };
    let error = embedded::spawn(config)
        .await
        .expect_err("a file is not a directory");
    assert!(
        error.to_string().contains("cannot create directory"),
        "{error}"
    );
}

/// The router works without a socket too (tower `oneshot`).
#[tokio::test]
async fn router_serves_in_memory() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ApiConfig {
        db_path: dir.path().join("api.db"),
        secret: embedded::new_secret(),
        limits: RateLimits::default(),
    };
    let router = embedded::router(embedded::AppState::open(config).await.expect("open"));
    let request = axum::http::Request::get("/healthz").body(axum::body::Body::empty());
    let response = router
        .oneshot(request.expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}
