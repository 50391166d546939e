//! The one error shape every failed tool call reports, to a model (as a tool
//! result with `isError: true`) and to a script (on stderr, with an exit code).

use serde::Serialize;

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
/// retryable, retry_after_s?}` on the wire.
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
    pub retry_after_s: Option<u64>,
}

impl ToolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            http_status: None,
            correlation_id: None,
            retryable: matches!(
                code,
                ErrorCode::RateLimited | ErrorCode::Timeout | ErrorCode::UpstreamUnavailable
            ),
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
