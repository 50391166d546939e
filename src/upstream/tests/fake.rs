//! A scripted upstream behind the [`Transport`] seam: it records every
//! request and answers from a closure, at once or after a (virtual) delay,
//! or never. Sessions are its own business, so a script only answers the
//! requests a test is about.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::upstream::{Answer, SendFuture, Transport, TransportError};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    /// The query string, `""` when there is none.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When it was sent: virtual time under `start_paused`.
    pub at: Instant,
    /// Its place among the requests the script answered, from 0.
    pub nth: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn is_session_route(&self) -> bool {
        self.path.starts_with("/v1/sync/sessions")
    }
}

enum Outcome {
    Answer(Answer),
    Fail(TransportError),
    Hang,
}

/// What the fake does with one request.
pub struct Reply {
    delay: Duration,
    outcome: Outcome,
}

impl Reply {
    pub fn status(code: u16) -> Self {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
        Self {
            delay: Duration::ZERO,
            outcome: Outcome::Answer((status, HeaderMap::new(), Vec::new())),
        }
    }

    pub fn json(code: u16, body: Value) -> Self {
        let mut reply = Self::status(code).header("content-type", "application/json");
        if let Outcome::Answer((_, _, bytes)) = &mut reply.outcome {
            *bytes = body.to_string().into_bytes();
        }
        reply
    }

    /// `error` as the upstream's standard error body.
    pub fn error(code: u16, error: &str) -> Self {
        Self::json(code, json!({ "error": error }))
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let (Outcome::Answer((_, headers, _)), Ok(value)) =
            (&mut self.outcome, HeaderValue::from_str(value))
        {
            headers.insert(HeaderName::from_static(name), value);
        }
        self
    }

    /// Nothing listens: the request never leaves.
    pub fn refused() -> Self {
        Self::fail(TransportError::Connect(
            "Connection refused (os error 111)".into(),
        ))
    }

    /// The connection drops after the request went out.
    pub fn reset() -> Self {
        Self::fail(TransportError::Broken {
            status: None,
            cause: "connection reset by peer".into(),
        })
    }

    /// The transport gives up waiting (as reqwest's own timeout would).
    pub fn timeout() -> Self {
        Self::fail(TransportError::Timeout)
    }

    /// A body larger than the client's response cap (`limit`).
    pub fn too_large(limit: usize) -> Self {
        Self::fail(TransportError::TooLarge {
            status: StatusCode::OK,
            limit,
        })
    }

    /// Never answers: only the client's own timeouts end the wait.
    pub fn hang() -> Self {
        Self {
            delay: Duration::ZERO,
            outcome: Outcome::Hang,
        }
    }

    fn fail(error: TransportError) -> Self {
        Self {
            delay: Duration::ZERO,
            outcome: Outcome::Fail(error),
        }
    }

    /// The same outcome, `delay` later.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// An item as the upstream answers it.
pub fn item(uid: &str, version: u64) -> Value {
    json!({
        "uid": uid,
        "version": version,
        "updatedAt": "2026-01-01T00:00:00Z",
        "deletedAt": null,
        "payload": { "title": "t" },
    })
}

type Script = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Fake {
    script: Script,
    seen: Mutex<Vec<Seen>>,
    scripted: AtomicUsize,
    sessions: AtomicUsize,
}

impl Fake {
    /// Opens sessions (`sess-1`, `sess-2`, … at epoch 1, each living 30
    /// minutes by the server's timestamps) and ends them with `204`; every
    /// other request is answered by `script`.
    pub fn new(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            scripted: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        })
    }

    /// Every request so far, in the order sent.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The requests the script answered.
    pub fn scripted(&self) -> Vec<Seen> {
        let mut seen = self.seen();
        seen.retain(|s| !s.is_session_route());
        seen
    }

    pub fn count(&self) -> usize {
        self.scripted.load(Ordering::SeqCst)
    }

    /// `METHOD path` of every request, sessions included.
    pub fn log(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    fn session_reply(&self, seen: &Seen) -> Reply {
        if seen.method == Method::POST {
            let n = self.sessions.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(
                201,
                json!({
                    "id": format!("sess-{n}"),
                    "epoch": 1,
                    "userId": "u-1",
                    "createdAt": "2026-01-01T00:00:00Z",
                    "expiresAt": "2026-01-01T00:30:00Z",
                }),
            )
        } else {
            Reply::status(204)
        }
    }
}

impl Transport for Fake {
    fn send(&self, request: reqwest::Request) -> SendFuture<'_> {
        let mut seen = Seen {
            method: request.method().clone(),
            path: request.url().path().to_owned(),
            query: request.url().query().unwrap_or_default().to_owned(),
            headers: request.headers().clone(),
            body: request
                .body()
                .and_then(|b| b.as_bytes())
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            at: Instant::now(),
            nth: 0,
        };
        // Recorded now, when it is sent: the client may drop the exchange
        // before it is answered.
        let reply = if seen.is_session_route() {
            self.session_reply(&seen)
        } else {
            seen.nth = self.scripted.fetch_add(1, Ordering::SeqCst);
            (self.script)(&seen)
        };
        if let Ok(mut log) = self.seen.lock() {
            log.push(seen);
        }
        Box::pin(async move {
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            match reply.outcome {
                Outcome::Answer(answer) => Ok(answer),
                Outcome::Fail(error) => Err(error),
                Outcome::Hang => std::future::pending().await,
            }
        })
    }
}
