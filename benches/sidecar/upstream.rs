//! A fast stand-in for the ToolBridge API, served in the bench process: it
//! answers the routes a `get_note` call needs (session, note, and the sync
//! info the sidecar reads its rate limit from) with fixed bytes, so what is
//! measured is the client side of the hop, not a database. The lists a
//! replica's feed reads are served too: notes hold the one note, the other
//! entities nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// The one note every call reads.
pub const NOTE_UID: &str = "6f1c2a39-0f37-4a8e-9d55-2b8a3f6c9e10";
pub const SESSION_ID: &str = "bench-session-1";
pub const EPOCH: u64 = 1;
/// The note's update time in Unix ms, as its `updatedTs`.
const NOTE_UPDATED_MS: u64 = 1_793_527_200_500;
/// The list routes of the entities without items.
const EMPTY_LISTS: [&str; 4] = [
    "/v1/tasks",
    "/v1/comments",
    "/v1/chats",
    "/v1/chat_messages",
];

/// Requests served, to check who opened how many sessions.
#[derive(Default)]
pub struct Counters {
    pub sessions: AtomicU64,
    pub notes: AtomicU64,
    /// List pages (a replica's feed reads them).
    pub lists: AtomicU64,
}

impl Counters {
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    pub fn notes(&self) -> u64 {
        self.notes.load(Ordering::Relaxed)
    }

    /// Item reads and list pages: every request a tool's read can cost.
    pub fn entity_requests(&self) -> u64 {
        self.notes() + self.lists.load(Ordering::Relaxed)
    }
}

struct Shared {
    counters: Arc<Counters>,
    session: Bytes,
    note: Bytes,
    /// The notes list: the one note and a cursor after it.
    notes_page: Bytes,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    /// The note's JSON, for the report.
    pub note_bytes: usize,
}

impl Upstream {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
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
pub async fn start() -> std::io::Result<Upstream> {
    let counters = Arc::new(Counters::default());
    let note = Bytes::from(note().to_string());
    let note_bytes = note.len();
    let session = Bytes::from(
        json!({
            "id": SESSION_ID,
            "userId": "bench-user",
            "createdAt": "2026-11-01T10:00:00Z",
            "expiresAt": "2026-11-01T10:30:00Z",
            "epoch": EPOCH
        })
        .to_string(),
    );
    let cursor = URL_SAFE_NO_PAD.encode(format!("{NOTE_UPDATED_MS}|{NOTE_UID}"));
    let notes_page =
        Bytes::from(json!({"items": [self::note()], "nextCursor": cursor}).to_string());
    let shared = Arc::new(Shared {
        counters: counters.clone(),
        session,
        note,
        notes_page,
    });
    let app = EMPTY_LISTS
        .iter()
        .fold(Router::new(), |app, path| app.route(path, get(empty_list)))
        .route("/v1/sync/sessions", post(open_session))
        .route("/v1/sync/sessions/{id}", delete(end_session))
        .route("/v1/notes", get(list_notes))
        .route("/v1/notes/{uid}", get(get_note))
        .route("/v1/sync/info", get(sync_info))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Upstream {
        addr,
        counters,
        note_bytes,
    })
}

async fn open_session(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.sessions.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        [("content-type", "application/json"), ("x-sync-epoch", "1")],
        shared.session.clone(),
    )
        .into_response()
}

/// Publishes a rate limit so high it never binds: the sidecar's pacing is on,
/// as against the real API, but it measures the path, not the policy (the
/// real API's 600 requests/min would hold any loop to 10 calls/s).
async fn sync_info() -> Response {
    (
        [("content-type", "application/json")],
        json!({
            "apiVersion": "1.1",
            "entities": {"notes": {"maxLimit": 1000, "push": true, "pull": true}},
            "rateLimit": {"windowSeconds": 60, "maxRequests": 600_000_000u64, "burst": 1_000_000},
        })
        .to_string(),
    )
        .into_response()
}

async fn end_session() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn get_note(State(shared): State<Arc<Shared>>, Path(uid): Path<String>) -> Response {
    if uid != NOTE_UID {
        return StatusCode::NOT_FOUND.into_response();
    }
    shared.counters.notes.fetch_add(1, Ordering::Relaxed);
    ([("content-type", "application/json")], shared.note.clone()).into_response()
}

/// Every page of the notes feed, whatever its cursor: the one note (a
/// replica skips what it holds by version).
async fn list_notes(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.lists.fetch_add(1, Ordering::Relaxed);
    (
        [("content-type", "application/json")],
        shared.notes_page.clone(),
    )
        .into_response()
}

async fn empty_list(State(shared): State<Arc<Shared>>) -> Response {
    shared.counters.lists.fetch_add(1, Ordering::Relaxed);
    ([("content-type", "application/json")], r#"{"items":[]}"#).into_response()
}
