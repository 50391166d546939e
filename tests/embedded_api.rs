//! The embedded API through its real HTTP interface: spawned on 127.0.0.1:0
//! over a temporary database, driven with reqwest.

use std::collections::HashSet;
use std::path::Path;

use reqwest::{Method, RequestBuilder, StatusCode};
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
        let response = self
            .authed(Method::POST, "/v1/sync/sessions")
            .send()
            .await
            .expect("send");
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
        let response = request.send().await.expect("send");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST {item}/process` with `action`.
    async fn process(&self, item: &str, action: &str) -> (StatusCode, Value) {
        let body = json!({"action": action, "metadata": {"why": "test"}});
        self.call(Method::POST, &format!("{item}/process"), Some(body))
            .await
    }

    async fn create(&self, collection: &str, body: Value) -> Value {
        let (status, item) = self.call(Method::POST, collection, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        item
    }
}

fn uid_of(item: &Value) -> String {
    item["uid"].as_str().expect("item uid").to_owned()
}

async fn text(request: RequestBuilder) -> (StatusCode, String) {
    let response = request.send().await.expect("send");
    (response.status(), response.text().await.unwrap_or_default())
}

/// `/healthz` and `/v1/sync/info` answer without credentials.
#[tokio::test]
async fn health_and_info_are_public() {
    let (_dir, api) = start().await;
    let http = reqwest::Client::new();
    let health = text(http.get(api.client.url("/healthz"))).await;
    assert_eq!(health, (StatusCode::OK, "ok".to_owned()));
    let info: Value = http
        .get(api.client.url("/v1/sync/info"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(info["apiVersion"], "1.1");
    assert_eq!(info["entities"]["chat_messages"]["maxLimit"], 1000);
    assert_eq!(
        info["rateLimit"],
        json!({"windowSeconds": 60, "maxRequests": 600, "burst": 120})
    );
    assert_eq!(
        info["hints"],
        json!({"recommendedBatch": 500, "backoffMsOn429": 1500})
    );
}

/// A missing or wrong bearer secret is a plain-text 401 on every guarded route.
#[tokio::test]
async fn auth_requires_the_secret() {
    let (_dir, api) = start().await;
    let c = &api.client;
    for path in ["/v1/notes", "/v1/sync/sessions", "/v1/auth/tenant"] {
        let none = text(c.http.get(c.url(path))).await;
        assert_eq!(
            none,
            (StatusCode::UNAUTHORIZED, "unauthorized".to_owned()),
            "{path}"
        );
        let wrong = text(c.http.get(c.url(path)).bearer_auth("not-the-secret")).await;
        assert_eq!(
            wrong,
            (StatusCode::UNAUTHORIZED, "unauthorized".to_owned()),
            "{path}"
        );
    }
}

/// Entity routes need our tenant: missing is 401, another is 403, both plain text.
#[tokio::test]
async fn tenant_header_is_enforced() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let missing = text(c.authed(Method::GET, "/v1/notes")).await;
    assert_eq!(
        missing,
        (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing tenant header".to_owned()
        )
    );
    let other = text(
        c.authed(Method::GET, "/v1/notes")
            .header("X-TB-Tenant-ID", "someone-else"),
    )
    .await;
    assert_eq!(
        other,
        (
            StatusCode::FORBIDDEN,
            "Unauthorized: not authorized for requested tenant".to_owned()
        )
    );
    let tenant: Value = c
        .authed(Method::GET, "/v1/auth/tenant")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(tenant, json!({"tenantId": "local"}));
}

/// Without a session, or with an unknown one, entity routes are 428 with distinct messages.
#[tokio::test]
async fn entity_routes_require_a_session() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let tenant_only = || {
        c.authed(Method::GET, "/v1/notes")
            .header("X-TB-Tenant-ID", TENANT_ID)
            .header("X-Sync-Epoch", "1")
    };
    let missing = tenant_only().send().await.expect("send");
    assert_eq!(missing.status(), StatusCode::PRECONDITION_REQUIRED);
    assert!(missing.headers().get("x-ratelimit-limit").is_none());
    let missing: Value = missing.json().await.expect("json");
    let unknown = tenant_only()
        .header("X-Sync-Session", Uuid::new_v4().to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), StatusCode::PRECONDITION_REQUIRED);
    let unknown: Value = unknown.json().await.expect("json");
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|m| m.contains("required"))
    );
    assert!(
        unknown["error"]
            .as_str()
            .is_some_and(|m| m.contains("Invalid or expired"))
    );
    assert!(missing["correlation_id"].is_string());
}

/// Session routes: 201 with X-Sync-Epoch, get 200, delete 204, then 404 plain text.
#[tokio::test]
async fn session_lifecycle() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let begun = c
        .authed(Method::POST, "/v1/sync/sessions")
        .send()
        .await
        .expect("send");
    assert_eq!(begun.headers()["x-sync-epoch"], "1");
    let session: Value = begun.json().await.expect("json");
    assert_eq!(session["userId"], "local");
    assert!(session["createdAt"].is_string() && session["expiresAt"].is_string());
    let path = format!("/v1/sync/sessions/{}", session["id"].as_str().expect("id"));
    assert_eq!(
        c.authed(Method::GET, &path)
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        c.authed(Method::DELETE, &path)
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::NO_CONTENT
    );
    let gone = text(c.authed(Method::GET, &path)).await;
    assert_eq!(
        gone,
        (
            StatusCode::NOT_FOUND,
            "session not found or expired".to_owned()
        )
    );
}

/// A missing epoch is 409; after a wipe the old session is gone and the old
/// epoch is refused until the client adopts the new one.
#[tokio::test]
async fn wipe_forces_re_sessioning() {
    let (_dir, mut api) = start().await;
    let note = api
        .client
        .create("/v1/notes", json!({"title": "kept"}))
        .await;
    let no_epoch = api
        .client
        .authed(Method::GET, "/v1/notes")
        .header("X-TB-Tenant-ID", TENANT_ID)
        .header("X-Sync-Session", &api.client.session);
    assert_eq!(
        no_epoch.send().await.expect("send").status(),
        StatusCode::CONFLICT
    );

    let wiped = api
        .client
        .entity(Method::POST, "/v1/sync/wipe")
        .send()
        .await
        .expect("send");
    assert_eq!(wiped.status(), StatusCode::OK);
    assert_eq!(wiped.headers()["x-sync-epoch"], "2");
    assert_eq!(
        api.client.call(Method::GET, "/v1/notes", None).await.0,
        StatusCode::PRECONDITION_REQUIRED
    );

    let old_epoch = api.client.epoch;
    api.client.begin_session().await;
    assert_eq!(api.client.epoch, 2);
    let stale = Client {
        epoch: old_epoch,
        ..api.client.clone()
    };
    let refused = stale
        .entity(Method::GET, "/v1/notes")
        .header("X-Correlation-ID", "c-1")
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(refused.headers()["x-sync-epoch"], "2");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body,
        json!({"error": "epoch_mismatch", "epoch": 2, "correlation_id": "c-1"})
    );
    // The embedded wipe keeps data.
    let (status, _) = api
        .client
        .call(Method::GET, &format!("/v1/notes/{}", uid_of(&note)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Items carry the server keys, and every accepted write raises the version by one.
#[tokio::test]
async fn item_shape_and_versions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let created = c
        .create(
            "/v1/tasks",
            json!({"title": "t", "updatedAt": "client data"}),
        )
        .await;
    let path = format!("/v1/tasks/{}", uid_of(&created));
    assert_eq!(created["version"], 1);
    assert!(created["updatedAt"].is_string() && created.get("deletedAt").is_none());
    let payload = &created["payload"];
    assert_eq!(payload["uid"], created["uid"]);
    assert_eq!(payload["updatedAt"], "client data");
    assert!(payload["updatedTs"].is_i64() && payload["updateTime"].is_string());
    assert_eq!(payload["sync"], json!({"version": 1, "isDeleted": false}));

    let mut expected = 1;
    for (method, suffix, body) in [
        (Method::PUT, "", Some(json!({"title": "u"}))),
        (Method::PATCH, "", Some(json!({"priority": "high"}))),
        (Method::POST, "/archive", None),
        (Method::POST, "/process", Some(json!({"action": "reopen"}))),
        (Method::POST, "/process", Some(json!({"action": "reopen"}))),
    ] {
        let (status, item) = c.call(method, &format!("{path}{suffix}"), body).await;
        expected += 1;
        assert_eq!(
            (status, item["version"].as_i64()),
            (StatusCode::OK, Some(expected)),
            "{item}"
        );
    }
}

/// A stale If-Match is 412; a matching one (bare or quoted) writes; a garbled one is 400.
#[tokio::test]
async fn if_match_guards_updates() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = format!(
        "/v1/notes/{}",
        uid_of(&c.create("/v1/notes", json!({"title": "a"})).await)
    );
    let put = |if_match: &str| {
        c.entity(Method::PUT, &path)
            .header("If-Match", if_match)
            .json(&json!({"title": "b"}))
    };
    let stale = put("7").send().await.expect("send");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = stale.json().await.expect("json");
    assert_eq!(body["error"], "version mismatch: expected 7, actual 1");
    assert_eq!(
        put("1").send().await.expect("send").status(),
        StatusCode::OK
    );
    assert_eq!(
        put("\"2\"").send().await.expect("send").status(),
        StatusCode::OK
    );
    assert_eq!(
        put("*").send().await.expect("send").status(),
        StatusCode::BAD_REQUEST
    );
    let patch = c
        .entity(Method::PATCH, &path)
        .header("If-Match", "1")
        .json(&json!({"x": 1}));
    assert_eq!(
        patch.send().await.expect("send").status(),
        StatusCode::PRECONDITION_FAILED
    );
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
    let patch = json!({"title": "b", "uid": Uuid::new_v4().to_string(), "sync": {"version": 99}});
    let (status, item) = c.call(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&item["payload"]["title"], &item["payload"]["tags"]),
        (&json!("b"), &json!(["x"]))
    );
    assert_eq!(item["payload"]["uid"], note["uid"]);
    assert_eq!(item["payload"]["sync"]["version"], 2);
}

/// Create with an existing uid replaces the whole payload, adds one, and undeletes.
#[tokio::test]
async fn create_on_existing_uid_replaces_and_undeletes() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let uid = Uuid::new_v4().to_string();
    c.create(
        "/v1/notes",
        json!({"uid": uid, "title": "a", "content": "gone soon"}),
    )
    .await;
    let (status, _) = c
        .call(Method::DELETE, &format!("/v1/notes/{uid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = c
        .create("/v1/notes", json!({"uid": uid, "title": "b"}))
        .await;
    assert_eq!(again["version"], 3);
    assert_eq!(again["payload"]["title"], "b");
    assert!(again["payload"].get("content").is_none() && again.get("deletedAt").is_none());
    assert_eq!(
        c.call(Method::GET, &format!("/v1/notes/{uid}"), None)
            .await
            .0,
        StatusCode::OK
    );
}

/// Soft delete: 410 on get and on every write, 200 with includeDeleted.
#[tokio::test]
async fn soft_delete_is_gone_but_listable() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = format!(
        "/v1/chats/{}",
        uid_of(&c.create("/v1/chats", json!({"title": "c"})).await)
    );
    let (status, tombstone) = c.call(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, tombstone["version"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    assert!(
        tombstone["deletedAt"].is_string() && tombstone["payload"]["sync"]["isDeleted"] == true
    );
    let (status, gone) = c.call(Method::GET, &path, None).await;
    assert_eq!(
        (status, &gone["error"]),
        (StatusCode::GONE, &json!("chat deleted"))
    );
    assert_eq!(gone["deletedAt"], tombstone["deletedAt"]);
    assert_eq!(
        c.call(Method::GET, &format!("{path}?includeDeleted=true"), None)
            .await
            .0,
        StatusCode::OK
    );
    for (method, suffix, body) in [
        (Method::DELETE, "", None),
        (Method::PUT, "", Some(json!({}))),
        (Method::PATCH, "", Some(json!({}))),
        (Method::POST, "/archive", None),
        (
            Method::POST,
            "/process",
            Some(json!({"action": "no-such-action"})),
        ),
    ] {
        assert_eq!(
            c.call(method, &format!("{path}{suffix}"), body).await.0,
            StatusCode::GONE,
            "{suffix}"
        );
    }
    let (_, listed) = c.call(Method::GET, "/v1/chats", None).await;
    assert_eq!(listed["items"], json!([]));
    let (_, listed) = c
        .call(Method::GET, "/v1/chats?includeDeleted=true", None)
        .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

/// Malformed requests: invalid UID, unknown uid, invalid JSON, null body, bad create uid.
#[tokio::test]
async fn malformed_requests_are_refused() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let unknown = format!("/v1/tasks/{}", Uuid::new_v4());
    let (status, body) = c.call(Method::GET, "/v1/tasks/not-a-uuid", None).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid UID"))
    );
    assert_eq!(
        c.call(Method::GET, &unknown, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.call(Method::PUT, &unknown, Some(json!({}))).await.0,
        StatusCode::NOT_FOUND
    );
    let bad_json = c
        .entity(Method::POST, "/v1/tasks")
        .body("{bad")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        bad_json.json::<Value>().await.expect("json")["error"],
        "invalid JSON"
    );
    assert_eq!(
        c.call(Method::POST, "/v1/tasks", Some(Value::Null)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.call(Method::POST, "/v1/tasks", Some(json!({"uid": "nope"})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Process reads the body before looking the item up.
    let bad_process = c
        .entity(Method::POST, &format!("{unknown}/process"))
        .body("{bad")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_process.status(), StatusCode::BAD_REQUEST);
    // Upper-case and braced uids name the same item.
    let uid = uid_of(&c.create("/v1/tasks", json!({})).await);
    let braced = format!("/v1/tasks/{{{}}}", uid.to_uppercase());
    assert_eq!(c.call(Method::GET, &braced, None).await.0, StatusCode::OK);
}

/// Notes: archive sets status; pin/unpin/unarchive; unknown action is 400.
#[tokio::test]
async fn note_archive_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = format!(
        "/v1/notes/{}",
        uid_of(&c.create("/v1/notes", json!({"title": "n"})).await)
    );
    let (_, archived) = c.call(Method::POST, &format!("{path}/archive"), None).await;
    assert_eq!(archived["payload"]["status"], "archived");
    assert_eq!(c.process(&path, "pin").await.1["payload"]["pinned"], true);
    assert_eq!(
        c.process(&path, "unpin").await.1["payload"]["pinned"],
        false
    );
    assert_eq!(
        c.process(&path, "unarchive").await.1["payload"]["status"],
        "active"
    );
    let (status, body) = c.process(&path, "explode").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid action: explode"))
    );
}

/// Tasks: archive sets status and done; start/complete/reopen move both.
#[tokio::test]
async fn task_archive_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let path = format!(
        "/v1/tasks/{}",
        uid_of(&c.create("/v1/tasks", json!({"title": "t"})).await)
    );
    let (_, archived) = c.call(Method::POST, &format!("{path}/archive"), None).await;
    assert_eq!(
        (&archived["payload"]["status"], &archived["payload"]["done"]),
        (&json!("archived"), &json!(true))
    );
    for (action, status, done) in [
        ("start", "in_progress", false),
        ("complete", "completed", true),
        ("reopen", "open", false),
    ] {
        let (_, item) = c
            .call(
                Method::POST,
                &format!("{path}/process"),
                Some(json!({"action": action})),
            )
            .await;
        assert_eq!(
            (&item["payload"]["status"], &item["payload"]["done"]),
            (&json!(status), &json!(done)),
            "{action}"
        );
    }
}

/// Chat messages need a live chat; archive and mark_read/mark_delivered set flags.
#[tokio::test]
async fn chat_message_parent_and_actions() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let chat = uid_of(&c.create("/v1/chats", json!({"title": "c"})).await);
    let orphan = c
        .call(
            Method::POST,
            "/v1/chat_messages",
            Some(json!({"chatUid": Uuid::new_v4().to_string()})),
        )
        .await;
    assert_eq!(orphan.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        c.call(
            Method::POST,
            "/v1/chat_messages",
            Some(json!({"content": "hi"}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let message = c
        .create(
            "/v1/chat_messages",
            json!({"chatUid": chat, "content": "hi"}),
        )
        .await;
    let path = format!("/v1/chat_messages/{}", uid_of(&message));
    assert_eq!(
        c.call(Method::POST, &format!("{path}/archive"), None)
            .await
            .1["payload"]["archived"],
        true
    );
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
    let chat = format!(
        "/v1/chats/{}",
        uid_of(&c.create("/v1/chats", json!({})).await)
    );
    assert_eq!(
        c.call(Method::POST, &format!("{chat}/archive"), None)
            .await
            .1["payload"]["archived"],
        true
    );
    let resolved = c
        .call(
            Method::POST,
            &format!("{chat}/process"),
            Some(json!({"action": "resolve"})),
        )
        .await;
    assert_eq!(resolved.1["payload"]["status"], "resolved");
    let reopened = c
        .call(
            Method::POST,
            &format!("{chat}/process"),
            Some(json!({"action": "reopen"})),
        )
        .await;
    assert_eq!(reopened.1["payload"]["status"], "active");

    let note = uid_of(&c.create("/v1/notes", json!({})).await);
    let comment = c
        .create(
            "/v1/comments",
            json!({"parentType": "note", "parentUid": note}),
        )
        .await;
    let path = format!("/v1/comments/{}", uid_of(&comment));
    assert_eq!(
        c.call(Method::POST, &format!("{path}/archive"), None)
            .await
            .1["payload"]["status"],
        "archived"
    );
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
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist or is deleted"))
    );
    let chat_parent = json!({"parentType": "chat", "parentUid": Uuid::new_v4().to_string()});
    assert_eq!(
        c.call(Method::POST, "/v1/comments", Some(chat_parent))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let note = uid_of(&c.create("/v1/notes", json!({})).await);
    let comment = c
        .create(
            "/v1/comments",
            json!({"parentType": "note", "parentUid": note, "content": "x"}),
        )
        .await;
    let path = format!("/v1/comments/{}", uid_of(&comment));
    assert_eq!(
        c.call(Method::PUT, &path, Some(json!({"content": "no parent"})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.call(Method::PATCH, &path, Some(json!({"parentType": "chat"})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        c.call(Method::DELETE, &format!("/v1/notes/{note}"), None)
            .await
            .0,
        StatusCode::OK
    );
    for (method, suffix, body) in [
        (Method::PATCH, "", Some(json!({"content": "y"}))),
        (Method::POST, "/archive", None),
        (Method::POST, "/process", Some(json!({"action": "resolve"}))),
    ] {
        assert_eq!(
            c.call(method, &format!("{path}{suffix}"), body).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{suffix}"
        );
    }
    let revived = json!({"parentType": "note", "parentUid": note, "content": "x"});
    assert_eq!(
        c.call(Method::POST, "/v1/comments", Some(revived)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(c.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
}

/// Reads every page of `collection`, checking each page's cursor; `between`
/// runs after each page.
async fn read_all_pages(
    c: &Client,
    collection: &str,
    limit: usize,
    mut between: impl AsyncFnMut(usize),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |cur| format!("&cursor={cur}"));
        let (status, body) = c
            .call(
                Method::GET,
                &format!("{collection}?limit={limit}{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let items = body["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= limit);
        if items.is_empty() {
            assert!(
                body.get("nextCursor").is_none(),
                "empty page carries no cursor"
            );
            break;
        }
        seen.extend(items.iter().map(uid_of));
        cursor = Some(
            body["nextCursor"]
                .as_str()
                .expect("non-empty page has a cursor")
                .to_owned(),
        );
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
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
    // An undecodable cursor restarts from the beginning.
    let (_, restarted) = c
        .call(Method::GET, "/v1/notes?limit=1&cursor=garbage", None)
        .await;
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
    let touched = [created[2].clone(), created[24].clone(), created[12].clone()];
    let seen = read_all_pages(c, "/v1/tasks", 10, async |page| {
        if let Some(uid) = touched.get(page) {
            let (status, _) = c
                .call(
                    Method::PATCH,
                    &format!("/v1/tasks/{uid}"),
                    Some(json!({"touched": page})),
                )
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
    let api = start_at(&dir.path().join("api.db"), limits).await; // spends one bootstrap token
    let c = &api.client;
    let first = c
        .entity(Method::GET, "/v1/notes")
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), StatusCode::OK);
    let headers = first.headers();
    assert_eq!(
        (&headers["x-ratelimit-limit"], &headers["x-ratelimit-burst"]),
        (&"1".parse().expect("hv"), &"2".parse().expect("hv"))
    );
    assert_eq!(headers["x-ratelimit-remaining"], "1");
    assert!(
        headers["x-ratelimit-reset"]
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some()
    );
    assert_eq!(
        c.entity(Method::GET, "/v1/notes")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    let limited = c
        .entity(Method::GET, "/v1/notes")
        .send()
        .await
        .expect("send");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert!(limited.json::<Value>().await.expect("json")["correlation_id"].is_string());

    assert_eq!(
        c.authed(Method::GET, "/v1/auth/tenant")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    let tenant = c
        .authed(Method::GET, "/v1/auth/tenant")
        .send()
        .await
        .expect("send");
    assert_eq!(tenant.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// X-Correlation-ID is echoed on success and error; one is generated when absent.
#[tokio::test]
async fn correlation_ids_are_echoed_or_generated() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let ok = c
        .entity(Method::GET, "/v1/notes")
        .header("X-Correlation-ID", "abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(ok.headers()["x-correlation-id"], "abc-123");
    let error = c
        .entity(Method::GET, "/v1/notes/nope")
        .header("X-Correlation-ID", "abc-456")
        .send()
        .await
        .expect("send");
    assert_eq!(error.headers()["x-correlation-id"], "abc-456");
    assert_eq!(
        error.json::<Value>().await.expect("json")["correlation_id"],
        "abc-456"
    );
    let generated = c.http.get(c.url("/healthz")).send().await.expect("send");
    let id = generated.headers()["x-correlation-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(Uuid::parse_str(&id).is_ok());
}

/// Unknown routes are a plain-text 404; a wrong method is an empty 405.
#[tokio::test]
async fn unknown_routes_and_methods() {
    let (_dir, api) = start().await;
    let c = &api.client;
    let (status, body) = text(c.authed(Method::GET, "/v1/widgets")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found")
    );
    let (status, body) = text(c.entity(Method::PUT, "/v1/notes")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "")
    );
}

/// A second instance on the same database sees the first's writes and epoch bump.
#[tokio::test]
async fn instances_sharing_a_database_agree() {
    let (dir, first) = start().await;
    let second = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let note = first
        .client
        .create("/v1/notes", json!({"title": "shared"}))
        .await;
    let (status, seen) = second
        .client
        .call(Method::GET, &format!("/v1/notes/{}", uid_of(&note)), None)
        .await;
    assert_eq!(
        (status, &seen["payload"]["title"]),
        (StatusCode::OK, &json!("shared"))
    );
    // The second process's session is unknown to the first.
    let foreign = Client {
        session: second.client.session.clone(),
        ..first.client.clone()
    };
    assert_eq!(
        foreign.call(Method::GET, "/v1/notes", None).await.0,
        StatusCode::PRECONDITION_REQUIRED
    );

    assert_eq!(
        first
            .client
            .entity(Method::POST, "/v1/sync/wipe")
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::OK
    );
    let (status, body) = second.client.call(Method::GET, "/v1/notes", None).await;
    assert_eq!((status, &body["epoch"]), (StatusCode::CONFLICT, &json!(2)));
}

/// Concurrent writes through two instances lose and duplicate nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let (dir, first) = start().await;
    let second = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let target = format!(
        "/v1/tasks/{}",
        uid_of(&first.client.create("/v1/tasks", json!({})).await)
    );
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let c = if i % 2 == 0 {
            first.client.clone()
        } else {
            second.client.clone()
        };
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
    let (_, item) = first.client.call(Method::GET, &target, None).await;
    assert_eq!(item["version"], 21);
    let (_, page) = second
        .client
        .call(Method::GET, "/v1/tasks?limit=1000", None)
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(21));
}

/// Data written before a shutdown is there after reopening the same file.
#[tokio::test]
async fn writes_survive_a_restart() {
    let (dir, api) = start().await;
    let note = api
        .client
        .create("/v1/notes", json!({"title": "durable"}))
        .await;
    api.running.shutdown().await;
    let reopened = start_at(&dir.path().join("api.db"), RateLimits::default()).await;
    let (status, item) = reopened
        .client
        .call(Method::GET, &format!("/v1/notes/{}", uid_of(&note)), None)
        .await;
    assert_eq!(
        (status, &item["payload"]["title"]),
        (StatusCode::OK, &json!("durable"))
    );
}

/// The database's parent directories are created; a bad path is a clear error.
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
        .err()
        .expect("a file cannot be a directory");
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
    let request = axum::http::Request::get("/healthz")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), axum::http::StatusCode::OK);
}
