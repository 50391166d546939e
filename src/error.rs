//! The one error shape every failed tool call reports, to a model (as a tool
//! result with `isError: true`) and to a script (on stderr, with an exit code).

use serde::Serialize;

use crate::catalog::repeat::{Applied, Verdict};

/// What went wrong, in words a model can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidInput,
    NotFound,
    Gone,
    Conflict,
    Unauthorized,
    Forbidden,
    RateLimited,
    Timeout,
    Cancelled,
    UpstreamUnavailable,
    UpstreamError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Gone => "gone",
            Self::Conflict => "conflict",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamError => "upstream_error",
        }
    }

    /// Process exit code for `toolbridge-mcp call`: scripts can tell bad input,
    /// a missing item, a conflict and an upstream failure apart.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::InvalidInput => 2,
            Self::NotFound | Self::Gone => 3,
            Self::Conflict => 4,
            Self::Unauthorized | Self::Forbidden => 5,
            Self::RateLimited
            | Self::Timeout
            | Self::Cancelled
            | Self::UpstreamUnavailable
            | Self::UpstreamError => 6,
        }
    }
}

/// On the wire as [`ErrorCode::as_str`]: one spelling of each code.
impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A normalized tool failure: `{code, message, http_status?, correlation_id,
/// retryable, applied?, uid?, retry_after_s?}` on the wire.
///
/// `retryable`: calling the tool again with the same arguments may succeed
/// (after `retry_after_s`, when given) and cannot duplicate anything.
/// `applied` (writes only): `no` when no attempt can have reached the
/// upstream, `unknown` when one may have: then the model must read the item
/// before doing it again, and `retryable` is false.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ToolError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// The item a write that may have been applied was about (for a create,
    /// the uid it tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

impl ToolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            http_status: None,
            correlation_id: None,
            // Only a failure of a request sent upstream can be worth repeating;
            // the client sets it from the request's class (`with_verdict`).
            retryable: false,
            applied: None,
            uid: None,
            retry_after_s: None,
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.retryable = verdict.retryable;
        self.applied = verdict.applied;
        self
    }

    pub fn with_correlation_id(mut self, id: &str) -> Self {
        self.correlation_id = Some(id.to_owned());
        self
    }

    /// The single line a person reads: `not_found: note 1b2c… does not exist`.
    pub fn summary(&self) -> String {
        let mut line = format!("{}: {}", self.code.as_str(), self.message);
        if let Some(secs) = self.retry_after_s {
            line.push_str(&format!(" (retry after {secs} s)"));
        }
        line
    }
}

/// Why a command could not start or run: configuration, credentials, the
/// embedded API, the terminal. Printed once, as one line, by `main`; never
/// shown to a model (that is [`ToolError`]).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A flag or environment variable is wrong; the message names it.
    #[error("{0}")]
    Config(String),
    /// The token command, a token or a header value is unusable.
    #[error("{0}")]
    Credentials(String),
    #[error(transparent)]
    Embedded(#[from] crate::embedded::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot set up stdio: {0}")]
    Stdio(#[source] std::io::Error),
    #[error("MCP session failed to start: {0}")]
    Handshake(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
