//! A fast ToolBridge stand-in in the caller's process: axum on loopback with
//! `TCP_NODELAY`, answering from bytes built once, so what a benchmark
//! measures is the client side of the hop, not a database. It serves what a
//! `get_note` or `create_note` call needs (a session, the note, a create, and
//! a `/v1/sync/info` whose rate limit never binds) and the lists a replica's
//! feed reads: notes hold the one note, the other entities nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use serde_json::json;

use super::upstream::{UID, cursor, plausible_answer, session_body};

/// The note every read gets.
pub const NOTE_UID: &str = UID;
pub const SESSION_ID: &str = "fast-session-1";
/// The note's update time in Unix ms, as its `updatedTs`.
const NOTE_UPDATED_MS: i64 = 1_793_527_200_500;
const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

/// Requests served, by kind.
#[derive(Default)]
pub struct Counters {
    pub sessions: AtomicU64,
    /// Item reads and list pages: every request a tool's read can cost.
    pub reads: AtomicU64,
    pub creates: AtomicU64,
}

impl Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

struct Shared {
    counters: Arc<Counters>,
    session: Bytes,
    note: Bytes,
    /// The notes list: the one note and a cursor after it.
    notes_page: Bytes,
}

pub struct FastUpstream {
    pub url: String,
    pub counters: Arc<Counters>,
}

/// The note as the API returns it: `{uid, version, updatedAt, payload}`.
pub fn note() -> serde_json::Value {
    json!({
        "uid": NOTE_UID,
        "version": 3,
        "updatedAt": "2026-11-01T10:00:00.5Z",
        "payload": {
            "uid": NOTE_UID,
            "title": "Benchmark note",
            "content": "A short markdown note that a model asked for by uid.",
            "tags": ["bench", "sidecar"],
            "updatedTs": NOTE_UPDATED_MS,
            "updateTime": "2026-11-01T10:00:00.5Z",
            "sync": {"version": 3, "isDeleted": false}
        }
    })
}

/// Binds 127.0.0.1 on an ephemeral port and serves on the current runtime.
/// Accepted sockets get `TCP_NODELAY`: without it a reply written in two
/// pieces waits ~40 ms on Nagle and the client's delayed ACK.
pub async fn start() -> std::io::Result<FastUpstream> {
    let counters = Arc::new(Counters::default());
    let notes_page = json!({"items": [note()], "nextCursor": cursor(NOTE_UPDATED_MS, NOTE_UID)});
    let shared = Arc::new(Shared {
        counters: counters.clone(),
        session: Bytes::from(session_body(SESSION_ID, 1).to_string()),
        note: Bytes::from(note().to_string()),
        notes_page: Bytes::from(notes_page.to_string()),
    });
    let app = [
        "/v1/tasks",
        "/v1/comments",
        "/v1/chats",
        "/v1/chat_messages",
    ]
    .iter()
    .fold(Router::new(), |app, path| app.route(path, get(empty_list)))
    .route("/v1/sync/sessions", post(open_session))
    .route(
        "/v1/sync/sessions/{id}",
        delete(|| async { StatusCode::NO_CONTENT }),
    )
    .route("/v1/sync/info", get(sync_info))
    .route("/v1/notes", get(list_notes).post(create_note))
    .route("/v1/notes/{uid}", get(get_note))
    .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(FastUpstream { url, counters })
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

async fn open_session(State(shared): State<Arc<Shared>>) -> Response {
    count(&shared.counters.sessions);
    let headers = [JSON[0], ("x-sync-epoch", "1")];
    (StatusCode::CREATED, headers, shared.session.clone()).into_response()
}

/// A rate limit so high it never binds: the sidecar's pacing is on, as
/// against the real API, but what is measured is the path, not the policy.
async fn sync_info() -> Response {
    let info = json!({
        "apiVersion": "1.1",
        "entities": {"notes": {"maxLimit": 1000, "push": true, "pull": true}},
        "rateLimit": {"windowSeconds": 60, "maxRequests": 600_000_000u64, "burst": 1_000_000},
    });
    (JSON, info.to_string()).into_response()
}

async fn get_note(State(shared): State<Arc<Shared>>, Path(uid): Path<String>) -> Response {
    if uid != NOTE_UID {
        return StatusCode::NOT_FOUND.into_response();
    }
    count(&shared.counters.reads);
    (JSON, shared.note.clone()).into_response()
}

/// The created item, as any stand-in answers a create.
async fn create_note(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    count(&shared.counters.creates);
    let (_, item) = plausible_answer("POST", "/v1/notes", &body);
    (StatusCode::CREATED, JSON, item.to_string()).into_response()
}

/// Every page of the notes feed, whatever its cursor: the one note (a
/// replica skips what it holds by version).
async fn list_notes(State(shared): State<Arc<Shared>>) -> Response {
    count(&shared.counters.reads);
    (JSON, shared.notes_page.clone()).into_response()
}

async fn empty_list(State(shared): State<Arc<Shared>>) -> Response {
    count(&shared.counters.reads);
    (JSON, r#"{"items":[]}"#).into_response()
}
