//! Refusals, their wire format, and the correlation id every reply carries.
//!
//! Most errors are the standard body `{"error": ..., "correlation_id": ...}`.
//! The correlation id belongs to the request, not to the code that refuses
//! it, so [`ApiError`] renders a response whose JSON body is left pending in
//! a response extension; [`correlate`], the outermost middleware, adds the id
//! and writes the body. Handlers and gates therefore just return `ApiError`.
//! Auth and tenant failures and session-route misses are plain text, as on
//! the real service, and are rendered directly.

use axum::Json;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::clock::rfc3339_ms;
use super::store::StoreError;

// The contract's names under the ones this module's users know them by.
pub use crate::contract::{CORRELATION_HEADER as CORRELATION_ID, EPOCH_HEADER as SYNC_EPOCH};

/// Why a request was refused.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// The item is soft-deleted: `410` with `deletedAt`.
    Gone {
        entity: &'static str,
        deleted_ms: i64,
    },
    /// `If-Match` named another version: `412`.
    VersionMismatch {
        expected: i64,
        actual: i64,
    },
    /// The body or the item in it is over the largest item: `413`.
    TooLarge(String),
    /// Well-formed but refers to no live parent: `422` (the real one: `500`).
    Unprocessable(String),
    /// No usable sync session: `428`.
    SessionRequired(&'static str),
    /// The client's epoch is behind the tenant's: `409 epoch_mismatch`.
    EpochMismatch(i64),
    RateLimited {
        retry_after_secs: u64,
    },
    /// A fault of ours; the detail is logged, never sent.
    Internal(String),
    /// A plain-text refusal, as the real service sends for auth and tenant.
    Plain(StatusCode, &'static str),
}

pub const UNAUTHORIZED: ApiError = ApiError::Plain(StatusCode::UNAUTHORIZED, "unauthorized");

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EpochMismatch(current) => ApiError::EpochMismatch(current),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A JSON error body still waiting for its correlation id.
#[derive(Clone)]
struct PendingBody(Map<String, Value>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Plain(status, text) => return (status, text).into_response(),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, message(m)),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, message(m)),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, message(m)),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, message(m)),
            ApiError::SessionRequired(m) => (StatusCode::PRECONDITION_REQUIRED, message(m)),
            ApiError::VersionMismatch { expected, actual } => (
                StatusCode::PRECONDITION_FAILED,
                message(format!(
                    "version mismatch: expected {expected}, actual {actual}"
                )),
            ),
            ApiError::Gone { entity, deleted_ms } => (
                StatusCode::GONE,
                object(
                    json!({ "error": format!("{entity} deleted"), "deletedAt": rfc3339_ms(deleted_ms) }),
                ),
            ),
            ApiError::EpochMismatch(epoch) => {
                let body = object(json!({ "error": "epoch_mismatch", "epoch": epoch }));
                return pending(
                    StatusCode::CONFLICT,
                    body,
                    [(SYNC_EPOCH, HeaderValue::from(epoch))],
                );
            }
            ApiError::RateLimited { retry_after_secs } => {
                let body = message(format!(
                    "Rate limit exceeded. Please retry after {retry_after_secs} seconds."
                ));
                return pending(
                    StatusCode::TOO_MANY_REQUESTS,
                    body,
                    [(RETRY_AFTER, HeaderValue::from(retry_after_secs))],
                );
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "embedded API internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, message("internal error"))
            }
        };
        pending(status, body, [])
    }
}

fn message(text: impl Into<Value>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("error".into(), text.into());
    map
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn pending<const N: usize>(
    status: StatusCode,
    body: Map<String, Value>,
    headers: [(HeaderName, HeaderValue); N],
) -> Response {
    let mut response = status.into_response();
    response.headers_mut().extend(headers);
    response.extensions_mut().insert(PendingBody(body));
    response
}

/// Outermost middleware: takes the request's `X-Correlation-ID` (or makes
/// one), runs the request in a span carrying it, echoes it on the response
/// and writes any pending JSON error body with it.
pub async fn correlate(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::debug_span!("embedded_api", correlation_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Some(PendingBody(mut body)) = response.extensions_mut().remove::<PendingBody>() {
        body.insert("correlation_id".into(), id.clone().into());
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(CONTENT_TYPE);
        response = (parts, Json(Value::Object(body))).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    response
}
