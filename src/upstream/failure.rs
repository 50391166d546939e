//! Normalizing what went wrong on the wire into a [`ToolError`], with what
//! [`crate::catalog::repeat`] needs to decide whether another attempt is safe:
//! the kind of failure and whether the request may have reached the upstream.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use super::transport::TransportError;
use crate::catalog::repeat::{Reached, Transience};
use crate::contract::DATABASE_DAMAGED_CODE;
use crate::error::{ErrorCode, ToolError};

/// One failed attempt.
#[derive(Debug)]
pub struct Failure {
    pub error: ToolError,
    pub reached: Reached,
    pub transience: Transience,
    pub retry_after: Option<Duration>,
    /// A session or epoch rejection, fixed by a new session.
    pub resession: bool,
    /// The answer was larger than the response cap: a list may ask for
    /// fewer items.
    pub over_cap: bool,
}

impl Failure {
    pub fn new(error: ToolError, reached: Reached, transience: Transience) -> Self {
        Self {
            error,
            reached,
            transience,
            retry_after: None,
            resession: false,
            over_cap: false,
        }
    }

    /// A failure of what an entity request needs first (its session or
    /// tenant): the entity request itself never went out.
    pub fn before_sending(mut self) -> Self {
        self.reached = Reached::No;
        self
    }

    /// The breaker is open: fail fast, and say when the next probe goes out.
    pub fn circuit_open(wait: Duration) -> Self {
        Self::wait_before_retrying(ErrorCode::UpstreamUnavailable, wait, |secs| {
            format!("circuit open: the upstream kept failing; next probe in {secs} s")
        })
    }

    /// The upstream asked for a pause that outlasts this call's deadline.
    pub fn paused(wait: Duration) -> Self {
        Self::wait_before_retrying(ErrorCode::RateLimited, wait, |secs| {
            format!("the upstream asked to wait {secs} s, longer than this call may take")
        })
    }

    /// A failure decided before anything was sent, telling the caller to wait
    /// `wait` (in whole seconds, at least one). Not retried inside this call
    /// (a retry would only meet the same open circuit or pause), but the
    /// caller may try again then.
    fn wait_before_retrying(
        code: ErrorCode,
        wait: Duration,
        message: impl FnOnce(u64) -> String,
    ) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut error = ToolError::new(code, message(secs));
        error.retry_after_s = Some(secs);
        Self::new(error, Reached::No, Transience::Later)
    }

    /// No complete answer: whether the request may have gone out decides
    /// what may follow.
    pub fn transport(err: &TransportError, base_url: &str) -> Self {
        match err {
            TransportError::Connect(cause) => {
                let error = ToolError::new(
                    ErrorCode::UpstreamUnavailable,
                    format!("cannot connect to {base_url}: {cause}"),
                );
                Self::new(error, Reached::No, Transience::Now)
            }
            TransportError::Timeout => {
                let error =
                    ToolError::new(ErrorCode::Timeout, "the upstream did not answer in time");
                Self::new(error, Reached::Maybe, Transience::Now)
            }
            TransportError::Broken { cause, .. } => {
                let error = ToolError::new(
                    ErrorCode::UpstreamUnavailable,
                    format!("the connection to the upstream failed: {cause}"),
                );
                Self::new(error, Reached::Maybe, Transience::Now)
            }
            TransportError::TooLarge { status, limit } => {
                let error = ToolError::new(
                    ErrorCode::UpstreamError,
                    format!("the upstream's response is larger than {limit} bytes"),
                )
                .with_status(status.as_u16());
                let mut failure = Self::new(error, Reached::Maybe, Transience::Permanent);
                failure.over_cap = true;
                failure
            }
        }
    }

    /// A response the upstream sent with a status other than 2xx.
    pub fn status(status: StatusCode, headers: &HeaderMap, body: &[u8], write: bool) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let message = error_message(status, parsed.as_ref(), body);
        let code = status.as_u16();
        let is_epoch_mismatch = code == 409
            && parsed
                .as_ref()
                .and_then(|b| b.get("error"))
                .and_then(Value::as_str)
                == Some("epoch_mismatch");
        let database_damaged = code == 500 && names_damaged_database(parsed.as_ref());
        let retry_after = parse_retry_after(headers);
        use Transience::{Now, Permanent};
        let (error_code, reached, transience, text) = match code {
            400 | 422 => (ErrorCode::InvalidInput, Reached::No, Permanent, message),
            401 => (
                ErrorCode::Unauthorized,
                Reached::No,
                Permanent,
                unauthorized_hint(&message),
            ),
            403 => (
                ErrorCode::Forbidden,
                Reached::No,
                Permanent,
                forbidden_hint(&message),
            ),
            404 => (ErrorCode::NotFound, Reached::No, Permanent, message),
            // Refused before it was handled: shortening it is what may help.
            413 => (
                ErrorCode::InvalidInput,
                Reached::No,
                Permanent,
                format!("the upstream refused the request as too large: {message}"),
            ),
            410 => (
                ErrorCode::Gone,
                Reached::No,
                Permanent,
                gone_message(&message, parsed.as_ref()),
            ),
            409 if is_epoch_mismatch => (
                ErrorCode::UpstreamError,
                Reached::No,
                Permanent,
                "the upstream's data epoch changed twice during one call".to_owned(),
            ),
            409 | 412 => (
                ErrorCode::Conflict,
                Reached::No,
                Permanent,
                undouble_prefix(&message).to_owned(),
            ),
            428 => (
                ErrorCode::UpstreamError,
                Reached::No,
                Permanent,
                format!("the upstream refused a fresh session: {message}"),
            ),
            429 => (ErrorCode::RateLimited, Reached::No, Now, message),
            // The embedded API's file is damaged: its message says what to
            // do, and no repeat can help. It answers so only when the
            // transaction did not commit.
            500 if database_damaged => (ErrorCode::UpstreamError, Reached::No, Permanent, message),
            // The upstream answers 500 for a write whose parent is missing or
            // deleted as well as for real faults: never retry a write on it.
            500 if write => (
                ErrorCode::UpstreamError,
                Reached::Maybe,
                Permanent,
                format!(
                    "{message} (for a comment or chat message this most likely means its parent note, task or chat does not exist or was deleted)"
                ),
            ),
            500 => (ErrorCode::UpstreamError, Reached::Maybe, Now, message),
            503 => (ErrorCode::UpstreamUnavailable, Reached::No, Now, message),
            502 | 504 => (ErrorCode::UpstreamUnavailable, Reached::Maybe, Now, message),
            300..=399 => {
                let to = headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("another address");
                (
                    ErrorCode::UpstreamError,
                    Reached::No,
                    Permanent,
                    format!(
                        "the upstream redirected to {to}; redirects are not followed with credentials, so configure the final URL"
                    ),
                )
            }
            _ => (ErrorCode::UpstreamError, Reached::Maybe, Permanent, message),
        };
        let mut error = ToolError::new(error_code, text).with_status(code);
        if let Some(after) = retry_after {
            error.retry_after_s = Some(after.as_secs_f64().ceil() as u64);
        }
        let mut failure = Self::new(error, reached, transience);
        failure.retry_after = retry_after;
        failure.resession = code == 428 || is_epoch_mismatch;
        failure
    }
}

/// Whether a `500`'s body is the embedded API's answer for a damaged
/// database file: not an outage, so it must not open the circuit.
pub fn reports_damaged_database(body: &[u8]) -> bool {
    names_damaged_database(serde_json::from_slice::<Value>(body).ok().as_ref())
}

fn names_damaged_database(parsed: Option<&Value>) -> bool {
    parsed.and_then(|b| b.get("code")).and_then(Value::as_str) == Some(DATABASE_DAMAGED_CODE)
}

/// The error text of a body that may be the standard JSON, plain text, or
/// nothing at all.
fn error_message(status: StatusCode, parsed: Option<&Value>, body: &[u8]) -> String {
    if let Some(msg) = parsed.and_then(|b| b.get("error")).and_then(Value::as_str) {
        return msg.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!(
            "the upstream answered {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_owned();
    }
    // An HTML error page or a huge body is no message: keep a short prefix.
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// The real service doubles its conflict prefix ("version mismatch: version
/// mismatch: expected 1, actual 2"); say it once.
fn undouble_prefix(message: &str) -> &str {
    let mut message = message;
    while let Some((head, rest)) = message.split_once(": ") {
        match rest.strip_prefix(head).and_then(|r| r.strip_prefix(": ")) {
            Some(_) => message = rest,
            None => break,
        }
    }
    message
}

/// Where the credentials come from, as a refused one is told to check.
pub const CREDENTIALS_HINT: &str = "check TOOLBRIDGE_TOKEN, TOOLBRIDGE_TOKEN_FILE, \
     TOOLBRIDGE_TOKEN_COMMAND or TOOLBRIDGE_DEV_SUBJECT; against `toolbridge-mcp serve-api` the \
     token is its TOOLBRIDGE_API_SECRET, or the secret it printed when it started";

fn unauthorized_hint(message: &str) -> String {
    if message.to_ascii_lowercase().contains("tenant") {
        format!("{message} (set TOOLBRIDGE_TENANT_ID)")
    } else {
        format!("the API did not accept the credentials ({message}): {CREDENTIALS_HINT}")
    }
}

fn forbidden_hint(message: &str) -> String {
    if message.to_ascii_lowercase().contains("tenant") {
        format!("{message} (check TOOLBRIDGE_TENANT_ID)")
    } else {
        message.to_owned()
    }
}

fn gone_message(message: &str, parsed: Option<&Value>) -> String {
    match parsed
        .and_then(|b| b.get("deletedAt"))
        .and_then(Value::as_str)
    {
        Some(at) => format!("{message} at {at}; get it with include_deleted"),
        None => message.to_owned(),
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded API's damaged database is shown as it says, and neither
    /// re-sent nor retryable; any other 500 of a read still is.
    #[test]
    fn a_damaged_database_is_permanent() {
        let damaged = br#"{"error":"the local database is damaged (x); to recover: y","code":"database_damaged"}"#;
        let failure = Failure::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            damaged,
            false,
        );
        assert_eq!(failure.transience, Transience::Permanent);
        assert_eq!(failure.reached, Reached::No);
        assert!(
            failure
                .error
                .message
                .starts_with("the local database is damaged")
        );
        assert!(reports_damaged_database(damaged));
        let other = br#"{"error":"internal error"}"#;
        let failure = Failure::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            other,
            false,
        );
        assert_eq!(failure.transience, Transience::Now);
        assert!(!reports_damaged_database(other));
    }

    #[test]
    fn a_doubled_prefix_is_said_once() {
        assert_eq!(
            undouble_prefix("version mismatch: version mismatch: expected 1, actual 2"),
            "version mismatch: expected 1, actual 2"
        );
        assert_eq!(
            undouble_prefix("version mismatch: expected 1, actual 2"),
            "version mismatch: expected 1, actual 2"
        );
        assert_eq!(undouble_prefix("a: b: c"), "a: b: c");
        assert_eq!(undouble_prefix("plain"), "plain");
    }
}
