//! Refusals, their wire format, and the correlation id every reply carries.
//!
//! Most errors are the standard body `{"error": ..., "correlation_id": ...}`.
//! The correlation id belongs to the request, not to the code that refuses
//! it, so [`ApiError`] renders a response whose JSON body is left pending in
//! a response extension; [`correlate`], the outermost middleware, adds the id
//! and writes the body. Handlers and gates therefore just return `ApiError`.
//! Auth and tenant failures and session-route misses are plain text, as on
//! the real service, and are rendered directly.
//!
//! A fault of ours (an internal error, a damaged database) is logged by
//! [`correlate`] too, with the request's correlation id, so the line joins
//! the client's own line for the call.

use axum::Json;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::clock::rfc3339_ms;
use super::store::{StoreError, recovery_steps};
use crate::contract::DATABASE_DAMAGED_CODE;

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
    /// The database file is damaged: `500` with code `database_damaged`
    /// and what to do, since retrying cannot help.
    Damaged {
        path: std::path::PathBuf,
        detail: String,
    },
    /// A plain-text refusal, as the real service sends for auth and tenant.
    Plain(StatusCode, &'static str),
}

pub const UNAUTHORIZED: ApiError = ApiError::Plain(StatusCode::UNAUTHORIZED, "unauthorized");

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EpochMismatch(current) => ApiError::EpochMismatch(current),
            StoreError::Damaged { path, detail } => ApiError::Damaged { path, detail },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A JSON error body still waiting for its correlation id.
#[derive(Clone)]
struct PendingBody(Map<String, Value>);

/// A fault of ours behind a response, for [`correlate`] to log with the
/// request's correlation id.
#[derive(Clone)]
struct Fault {
    kind: &'static str,
    detail: String,
}

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
                let mut response = pending(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    message("internal error"),
                    [],
                );
                response.extensions_mut().insert(Fault {
                    kind: "internal_error",
                    detail,
                });
                return response;
            }
            ApiError::Damaged { path, detail } => {
                let mut body = message(format!(
                    "the local database is damaged ({detail}); to recover: {}",
                    recovery_steps(&path)
                ));
                body.insert("code".into(), DATABASE_DAMAGED_CODE.into());
                let mut response = pending(StatusCode::INTERNAL_SERVER_ERROR, body, []);
                response.extensions_mut().insert(Fault {
                    kind: DATABASE_DAMAGED_CODE,
                    detail,
                });
                return response;
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
/// one), echoes it on the response, writes any pending JSON error body with
/// it, and logs a refusal with it (a fault of ours as an error, with its
/// detail; any other at debug level), never a body.
pub async fn correlate(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = request.method().clone();
    // A clone of the request line's parts shares their bytes: no copy.
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(Fault { kind, detail }) = response.extensions_mut().remove::<Fault>() {
        tracing::error!(correlation_id = %id, %method, path = uri.path(), status, kind, detail, "embedded API error");
    } else if status >= 400 {
        tracing::debug!(correlation_id = %id, %method, path = uri.path(), status, "embedded API refused a request");
    }
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
