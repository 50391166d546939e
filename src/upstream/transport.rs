//! The seam under every HTTP exchange: a [`Transport`] sends one request and
//! reads its whole answer. The client holds one as a trait object: reqwest in
//! production ([`Reqwest`]), a scripted fake in tests, so the client's timing
//! (retries and their backoff, `Retry-After`, the breaker's cooldown, the
//! call's deadline, session renewal) is proven in-process under
//! `tokio::time::pause()` instead of by sleeping.
//!
//! A transport does not bound its own time: the client wraps each send in
//! `tokio::time::timeout` (the attempt's timeout, never past the call's
//! deadline), which paused time controls like any other timer.

use std::future::Future;
use std::pin::Pin;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A complete answer: its status, headers and whole body.
pub type Answer = (StatusCode, HeaderMap, Vec<u8>);

/// What [`Transport::send`] returns: one boxed future per exchange, the only
/// cost of the seam.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, TransportError>> + Send + 'a>>;

/// Sends one request and reads its whole answer.
pub trait Transport: Send + Sync {
    fn send(&self, request: reqwest::Request) -> SendFuture<'_>;
}

/// Why no complete answer came back, in the terms that decide whether the
/// request may be sent again (`Failure::transport` turns each into a tool
/// error and a retry decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No connection was made (refused, unresolvable, TLS handshake): the
    /// request never left.
    Connect(String),
    /// No answer in time: the request may have reached the upstream.
    Timeout,
    /// The connection broke after the request may have gone out (a reset, a
    /// body cut short); `status` when the head had arrived.
    Broken {
        status: Option<StatusCode>,
        cause: String,
    },
    /// The body is larger than the client accepts.
    TooLarge { status: StatusCode, limit: usize },
}

impl TransportError {
    /// The status, when the answer's head had arrived.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Broken { status, .. } => *status,
            Self::TooLarge { status, .. } => Some(*status),
            Self::Connect(_) | Self::Timeout => None,
        }
    }

    /// reqwest's error classes: connect, timeout, everything else.
    pub fn from_reqwest(err: &reqwest::Error, status: Option<StatusCode>) -> Self {
        if err.is_connect() {
            Self::Connect(root_cause(err))
        } else if err.is_timeout() {
            Self::Timeout
        } else {
            Self::Broken {
                status,
                cause: root_cause(err),
            }
        }
    }
}

/// The production transport: reqwest, reading at most `max_response_bytes`.
pub struct Reqwest {
    pub http: reqwest::Client,
    pub max_response_bytes: usize,
}

impl Transport for Reqwest {
    fn send(&self, request: reqwest::Request) -> SendFuture<'_> {
        Box::pin(async move {
            let mut response = self
                .http
                .execute(request)
                .await
                .map_err(|e| TransportError::from_reqwest(&e, None))?;
            let status = response.status();
            let limit = self.max_response_bytes;
            let too_large = TransportError::TooLarge { status, limit };
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(too_large);
            }
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| TransportError::from_reqwest(&e, Some(status)))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        })
    }
}

/// The innermost cause: reqwest's own message ("error sending request") says
/// nothing a person can act on.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
