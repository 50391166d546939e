//! A real HTTP/1.1 stand-in for the ToolBridge API, written on raw TCP so it
//! can misbehave in ways a mock framework cannot: hang after accepting, trickle
//! its headers, stall or reset mid-body, lie about sizes, redirect.
//!
//! Session, tenant and session-end routes always answer properly, with real
//! session and epoch checks on entity routes (`428` for an unknown session,
//! `409 epoch_mismatch` for an old epoch). Entity requests get the current
//! [`Fault`], switchable at runtime. Every request is recorded (head, body, the
//! status it was answered with), and the server tracks how many requests are
//! open at once and when a client gives up on a hanging connection.

#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::upstream::TENANT;

/// What the server does with an entity request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer properly: a page for a collection GET, `201` and the item for a
    /// create (with the uid the client sent), the item otherwise.
    None,
    /// Answer properly after this delay.
    Delay(Duration),
    /// Read the request, never answer; note when the client closes.
    Hang,
    /// A proper answer whose status line and headers trickle out one byte at
    /// a time over this long.
    SlowHeaders(Duration),
    /// Headers with a `Content-Length`, half the body, then nothing.
    StallMidBody,
    /// Headers and half the body, then a TCP reset.
    ResetMidBody,
    /// A `200` that declares (and sends) a body of this many bytes.
    OversizedLength(usize),
    /// A chunked `200` of this many bytes, with no `Content-Length`.
    OversizedChunked(usize),
    /// This status with the standard JSON error body and, if given, a
    /// `Retry-After` header.
    Status {
        status: u16,
        retry_after: Option<&'static str>,
    },
    /// This status, content type and body, byte for byte.
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// `302 Found` to this location.
    Redirect(String),
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
        }
    }

    pub fn retry_after(status: u16, after: &'static str) -> Self {
        Self::Status {
            status,
            retry_after: Some(after),
        }
    }

    pub fn plain_text(status: u16, body: &str) -> Self {
        Self::Raw {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }

    /// A JSON error body cut off mid-string (with a matching Content-Length).
    pub fn truncated_json(status: u16) -> Self {
        Self::Raw {
            status,
            content_type: "application/json",
            body: br#"{"error": "version confl"#.to_vec(),
        }
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Without the query.
    pub path: String,
    pub query: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with, once answered (`None` if it never was).
    pub status: Option<u16>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn is_entity(&self) -> bool {
        is_entity_path(&self.path)
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.header("x-correlation-id")
    }
}

fn is_entity_path(path: &str) -> bool {
    ["notes", "tasks", "comments", "chats", "chat_messages"]
        .iter()
        .any(|e| {
            let base = format!("/v1/{e}");
            path == base || path.starts_with(&format!("{base}/"))
        })
}

/// A client closing a connection the server was holding open (hang, stall).
#[derive(Debug, Clone)]
pub struct Closed {
    /// Index into [`FaultyServer::requests`].
    pub request: usize,
    pub at: Instant,
}

/// What happens to sessions once some entity requests have been answered.
#[derive(Debug, Clone, Copy)]
enum Trap {
    ExpireSessions,
    BumpEpoch,
}

struct State {
    /// Faults for the next entity requests, in order, before `fault`.
    script: VecDeque<Fault>,
    fault: Fault,
    requests: Vec<Recorded>,
    sessions_opened: u32,
    valid_sessions: HashSet<String>,
    epoch: u64,
    /// (entity requests still to let through, what then happens)
    trap: Option<(usize, Trap)>,
    closed: Vec<Closed>,
}

struct Inner {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    changed: Notify,
    /// Record request bodies and headers (off for long soaks).
    record: std::sync::atomic::AtomicBool,
    served: AtomicUsize,
}

/// The server; dropping it stops accepting (open connections end with the
/// test's runtime).
pub struct FaultyServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultyServer {
    pub async fn start() -> Self {
        Self::start_with(Fault::None).await
    }

    pub async fn start_with(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                script: VecDeque::new(),
                fault,
                requests: Vec::new(),
                sessions_opened: 0,
                valid_sessions: HashSet::new(),
                epoch: 1,
                trap: None,
                closed: Vec::new(),
            }),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
            record: std::sync::atomic::AtomicBool::new(true),
            served: AtomicUsize::new(0),
        });
        let shared = inner.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve_connection(shared.clone(), socket));
            }
        });
        Self {
            inner,
            addr,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every entity request from now on gets `fault`.
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.inner.state.lock().unwrap();
        state.script.clear();
        state.fault = fault;
    }

    /// The next `k` entity requests get `fault`, the ones after succeed.
    pub fn fail_first(&self, k: usize, fault: Fault) {
        let mut state = self.inner.state.lock().unwrap();
        state.script = std::iter::repeat_n(fault, k).collect();
        state.fault = Fault::None;
    }

    /// After `n` more entity requests every open session is forgotten, as an
    /// upstream restart does: the next requests meet `428`.
    pub fn expire_sessions_after(&self, n: usize) {
        self.inner.state.lock().unwrap().trap = Some((n, Trap::ExpireSessions));
    }

    /// After `n` more entity requests the tenant's epoch rises (a wipe): the
    /// next requests meet `409 epoch_mismatch`.
    pub fn bump_epoch_after(&self, n: usize) {
        self.inner.state.lock().unwrap().trap = Some((n, Trap::BumpEpoch));
    }

    /// Stop keeping headers and bodies (counts and statuses are still kept).
    pub fn set_recording(&self, on: bool) {
        self.inner.record.store(on, Ordering::Relaxed);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    pub fn entity_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_entity)
            .collect()
    }

    pub fn entity_count(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.is_entity())
            .count()
    }

    /// Requests answered so far (all routes).
    pub fn served(&self) -> usize {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Every request (session routes included) carrying this correlation id.
    pub fn requests_of_call(&self, correlation_id: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.correlation_id() == Some(correlation_id))
            .collect()
    }

    pub fn sessions_opened(&self) -> u32 {
        self.inner.state.lock().unwrap().sessions_opened
    }

    /// The most requests ever open at once (read, not yet answered).
    pub fn peak_in_flight(&self) -> usize {
        self.inner.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> Vec<Closed> {
        self.inner.state.lock().unwrap().closed.clone()
    }

    /// Waits until at least `n` entity requests have arrived.
    pub async fn wait_for_entity_requests(&self, n: usize, within: Duration) -> bool {
        self.wait_until(within, |s| {
            s.requests.iter().filter(|r| r.is_entity()).count() >= n
        })
        .await
    }

    /// Waits until a client has closed a connection the server held open.
    pub async fn wait_for_close(&self, within: Duration) -> Option<Closed> {
        if self.wait_until(within, |s| !s.closed.is_empty()).await {
            self.closed().into_iter().next()
        } else {
            None
        }
    }

    async fn wait_until(&self, within: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.inner.changed.notified();
            if done(&self.inner.state.lock().unwrap()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.inner.state.lock().unwrap());
            }
        }
    }
}

/// A parsed request head and its body.
struct Head {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads one request; `None` when the client closed or sent garbage.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Head> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    buf.drain(..head_end + 4);
    while buf.len() < length {
        let mut chunk = [0u8; 8192];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Vec<u8> = buf.drain(..length).collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    Some(Head {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What to send for one request.
enum Reply {
    /// A complete response; keep the connection open afterwards.
    Full(u16, Vec<u8>),
    /// A socket-level fault, with the status and body a proper answer has.
    Fault(Fault, u16, Value),
}

async fn serve_connection(inner: Arc<Inner>, mut socket: TcpStream) {
    let mut buf = Vec::new();
    while let Some(head) = read_request(&mut socket, &mut buf).await {
        let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        inner.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let (index, reply) = inner.decide(head);
        inner.changed.notify_waiters();
        let keep = match reply {
            Reply::Full(status, bytes) => {
                let ok = socket.write_all(&bytes).await.is_ok();
                inner.answered(index, status);
                ok
            }
            Reply::Fault(fault, status, body) => {
                apply(&inner, &mut socket, index, fault, status, &body).await
            }
        };
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep {
            return;
        }
    }
}

impl Inner {
    fn answered(&self, index: usize, status: u16) {
        self.state.lock().unwrap().requests[index].status = Some(status);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Records the request and decides the reply (session routes and the
    /// session/epoch checks here, entity faults in [`apply`]).
    fn decide(&self, head: Head) -> (usize, Reply) {
        let mut state = self.state.lock().unwrap();
        let record = self.record.load(Ordering::Relaxed);
        let correlation = header_of(&head.headers, "x-correlation-id").unwrap_or("");
        let mut recorded = Recorded {
            method: head.method.clone(),
            path: head.path.clone(),
            query: head.query.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            status: None,
            at: Instant::now(),
        };
        if record {
            recorded.headers = head.headers.clone();
            recorded.body = head.body.clone();
        } else if !correlation.is_empty() {
            recorded
                .headers
                .push(("x-correlation-id".into(), correlation.to_owned()));
        }
        state.requests.push(recorded);
        let index = state.requests.len() - 1;
        let cid = correlation.to_owned();

        match (head.method.as_str(), head.path.as_str()) {
            ("POST", "/v1/sync/sessions") => {
                state.sessions_opened += 1;
                let id = format!("sess-{}", state.sessions_opened);
                state.valid_sessions.insert(id.clone());
                let body = json!({
                    "id": id,
                    "userId": "u-1",
                    "createdAt": "2026-11-01T10:00:00Z",
                    "expiresAt": "2026-11-01T10:30:00Z",
                    "epoch": state.epoch,
                });
                let epoch = state.epoch.to_string();
                return (
                    index,
                    Reply::Full(201, json_response(201, &body, &[("X-Sync-Epoch", &epoch)])),
                );
            }
            ("DELETE", p) if p.starts_with("/v1/sync/sessions/") => {
                state
                    .valid_sessions
                    .remove(&p["/v1/sync/sessions/".len()..]);
                return (index, Reply::Full(204, response(204, "", &[], b"")));
            }
            ("GET", "/v1/auth/tenant") => {
                return (
                    index,
                    Reply::Full(200, json_response(200, &json!({"tenantId": TENANT}), &[])),
                );
            }
            _ if !is_entity_path(&head.path) => {
                return (
                    index,
                    Reply::Full(404, response(404, "text/plain", &[], b"404 page not found")),
                );
            }
            _ => {}
        }

        if let Some((left, trap)) = state.trap {
            if left == 0 {
                state.trap = None;
                match trap {
                    Trap::ExpireSessions => state.valid_sessions.clear(),
                    Trap::BumpEpoch => {
                        state.epoch += 1;
                        state.valid_sessions.clear();
                    }
                }
            } else {
                state.trap = Some((left - 1, trap));
            }
        }
        let session_ok = header_of(&head.headers, "x-sync-session")
            .is_some_and(|s| state.valid_sessions.contains(s));
        let epoch: u64 = header_of(&head.headers, "x-sync-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        if epoch < state.epoch {
            let body =
                json!({"error": "epoch_mismatch", "epoch": state.epoch, "correlation_id": cid});
            let current = state.epoch.to_string();
            return (
                index,
                Reply::Full(
                    409,
                    json_response(409, &body, &[("X-Sync-Epoch", &current)]),
                ),
            );
        }
        if !session_ok {
            let body = json!({"error": "invalid or expired session", "correlation_id": cid});
            return (index, Reply::Full(428, json_response(428, &body, &[])));
        }
        let fault = state
            .script
            .pop_front()
            .unwrap_or_else(|| state.fault.clone());
        drop(state);
        match fault {
            Fault::None => {
                let (status, body) = plausible(&head);
                (
                    index,
                    Reply::Full(status, json_response(status, &body, &[])),
                )
            }
            Fault::Status {
                status,
                retry_after,
            } => {
                let body =
                    json!({"error": reason(status).to_ascii_lowercase(), "correlation_id": cid});
                let headers: Vec<(&str, &str)> = retry_after
                    .map(|r| ("Retry-After", r))
                    .into_iter()
                    .collect();
                (
                    index,
                    Reply::Full(status, json_response(status, &body, &headers)),
                )
            }
            Fault::Raw {
                status,
                content_type,
                body,
            } => (
                index,
                Reply::Full(status, response(status, content_type, &[], &body)),
            ),
            Fault::Redirect(location) => (
                index,
                Reply::Full(302, response(302, "", &[("Location", &location)], b"")),
            ),
            // Whatever else needs the socket, with the proper answer at hand.
            other => {
                let (status, body) = plausible(&head);
                (index, Reply::Fault(other, status, body))
            }
        }
    }
}

/// Plays a socket-level fault; returns whether the connection may be reused.
async fn apply(
    inner: &Inner,
    socket: &mut TcpStream,
    index: usize,
    fault: Fault,
    status: u16,
    body: &Value,
) -> bool {
    match fault {
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            let ok = socket
                .write_all(&json_response(status, body, &[]))
                .await
                .is_ok();
            inner.answered(index, status);
            ok
        }
        Fault::Hang => {
            hold_until_closed(inner, socket, index).await;
            false
        }
        Fault::SlowHeaders(over) => {
            let bytes = json_response(status, body, &[]);
            let head_len = find(&bytes, b"\r\n\r\n").map_or(bytes.len(), |i| i + 4);
            let step = over / head_len as u32;
            for byte in &bytes[..head_len] {
                if socket.write_all(std::slice::from_ref(byte)).await.is_err() {
                    note_closed(inner, index);
                    return false;
                }
                tokio::time::sleep(step).await;
            }
            let ok = socket.write_all(&bytes[head_len..]).await.is_ok();
            inner.answered(index, status);
            ok
        }
        Fault::StallMidBody => {
            let bytes = json_response(status, body, &[]);
            let head_len = find(&bytes, b"\r\n\r\n").map_or(0, |i| i + 4);
            let half = head_len + (bytes.len() - head_len) / 2;
            if socket.write_all(&bytes[..half]).await.is_ok() {
                hold_until_closed(inner, socket, index).await;
            }
            false
        }
        Fault::ResetMidBody => {
            let bytes = json_response(status, body, &[]);
            let head_len = find(&bytes, b"\r\n\r\n").map_or(0, |i| i + 4);
            let half = head_len + (bytes.len() - head_len) / 2;
            let _ = socket.write_all(&bytes[..half]).await;
            let _ = socket.flush().await;
            // Let the client take the headers in before the reset.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = socket.set_zero_linger();
            false
        }
        Fault::OversizedLength(n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
            );
            let ok = socket.write_all(head.as_bytes()).await.is_ok();
            inner.answered(index, 200);
            if ok {
                let chunk = vec![b' '; 16 * 1024];
                let mut sent = 0;
                while sent < n {
                    let take = chunk.len().min(n - sent);
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        socket.write_all(&chunk[..take]),
                    )
                    .await
                    {
                        Ok(Ok(())) => sent += take,
                        _ => break,
                    }
                }
            }
            false
        }
        Fault::OversizedChunked(n) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let ok = socket.write_all(head.as_bytes()).await.is_ok();
            inner.answered(index, 200);
            if ok {
                let data = vec![b' '; 4096];
                let mut sent = 0;
                while sent < n {
                    let take = data.len().min(n - sent);
                    let mut frame = format!("{take:x}\r\n").into_bytes();
                    frame.extend_from_slice(&data[..take]);
                    frame.extend_from_slice(b"\r\n");
                    match tokio::time::timeout(Duration::from_secs(5), socket.write_all(&frame))
                        .await
                    {
                        Ok(Ok(())) => sent += take,
                        _ => return false,
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
            false
        }
        // Decided in `Inner::decide`.
        Fault::None | Fault::Status { .. } | Fault::Raw { .. } | Fault::Redirect(_) => false,
    }
}

/// Keeps a connection open without answering until the client closes it.
async fn hold_until_closed(inner: &Inner, socket: &mut TcpStream, index: usize) {
    let mut sink = [0u8; 1024];
    loop {
        match socket.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    note_closed(inner, index);
}

fn note_closed(inner: &Inner, index: usize) {
    inner.state.lock().unwrap().closed.push(Closed {
        request: index,
        at: Instant::now(),
    });
    inner.changed.notify_waiters();
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The proper answer, as every stand-in gives it.
fn plausible(head: &Head) -> (u16, Value) {
    super::upstream::plausible_answer(&head.method, &head.path, &head.body)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        422 => "Unprocessable Entity",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn response(status: u16, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn json_response(status: u16, body: &Value, headers: &[(&str, &str)]) -> Vec<u8> {
    response(
        status,
        "application/json",
        headers,
        body.to_string().as_bytes(),
    )
}
