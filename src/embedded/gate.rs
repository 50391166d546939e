//! The checks in front of each route group, in the real service's order:
//! auth → tenant → session → rate limit → epoch. Refusals made before the
//! rate limiter (401, 403, 428) carry no `X-RateLimit-*` headers, as there.
//!
//! The epoch, last, is only read here ([`ClaimedEpoch`]); the store checks it
//! inside the transaction of the operation it guards. Checked here, it would
//! cost a second trip to the database, and a wipe (by any process sharing the
//! file) could land between the check and the write, letting a stale-epoch
//! write commit. Since the handler runs behind the rate limiter, a request
//! refused for its epoch is still counted and still carries `X-RateLimit-*`.

use std::future::Future;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::TENANT_ID;
use super::error::{ApiError, UNAUTHORIZED};
use super::rate_limit::TokenBucket;
use super::routes::AppState;
use crate::contract::{EPOCH_HEADER, SESSION_HEADER, TENANT_HEADER};

const SESSION_MISSING: &str =
    "X-Sync-Session header required. Please call POST /v1/sync/sessions to begin a session.";
const SESSION_INVALID: &str =
    "Invalid or expired sync session. Please call POST /v1/sync/sessions to begin a new session.";

/// Tenant and session routes: auth, then the small bootstrap bucket.
pub async fn bootstrap(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if let Err(refusal) = authenticate(&app, request.headers()) {
        return refusal.into_response();
    }
    rate_limited(&app.bootstrap_bucket, next.run(request)).await
}

/// `POST /v1/sync/wipe`: auth and a session, but no epoch check (a client
/// must be able to wipe whatever epoch it holds) and no rate limit.
pub async fn wipe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    match authenticate(&app, headers).and_then(|()| require_session(&app, headers)) {
        Err(refusal) => refusal.into_response(),
        Ok(()) => next.run(request).await,
    }
}

/// The epoch an entity request claims, left in its extensions by [`entity`]
/// for the handler to hand to the store.
#[derive(Debug, Clone, Copy)]
pub struct ClaimedEpoch(pub i64);

/// The 40 entity routes: every check, the epoch by the handler.
pub async fn entity(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let admitted = authenticate(&app, headers)
        .and_then(|()| check_tenant(headers))
        .and_then(|()| require_session(&app, headers));
    if let Err(refusal) = admitted {
        return refusal.into_response();
    }
    let claimed = claimed_epoch(request.headers());
    request.extensions_mut().insert(claimed);
    rate_limited(&app.entity_bucket, next.run(request)).await
}

/// Takes a token; runs `admitted` only if there was one. Either way the
/// reply describes the bucket.
async fn rate_limited(bucket: &TokenBucket, admitted: impl Future<Output = Response>) -> Response {
    let quota = bucket.take();
    let mut response = if quota.allowed {
        admitted.await
    } else {
        ApiError::RateLimited {
            retry_after_secs: TokenBucket::retry_after_secs(&quota),
        }
        .into_response()
    };
    bucket.write_headers(&quota, response.headers_mut());
    response
}

fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if secrets_match(token, app.secret.expose_secret()) => Ok(()),
        _ => Err(UNAUTHORIZED),
    }
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Constant time in the content, so response timing does not reveal how
/// much of a guess was right. An empty configured secret matches nothing.
fn secrets_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

fn check_tenant(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(TENANT_HEADER).filter(|v| !v.is_empty()) {
        None => Err(ApiError::Plain(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing tenant header",
        )),
        Some(tenant) if tenant == TENANT_ID => Ok(()),
        Some(_) => Err(ApiError::Plain(
            StatusCode::FORBIDDEN,
            "Unauthorized: not authorized for requested tenant",
        )),
    }
}

fn require_session(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(id) = headers.get(SESSION_HEADER).filter(|v| !v.is_empty()) else {
        return Err(ApiError::SessionRequired(SESSION_MISSING));
    };
    match id.to_str().ok().and_then(|id| app.sessions.get(id)) {
        Some(_) => Ok(()),
        None => Err(ApiError::SessionRequired(SESSION_INVALID)),
    }
}

/// A missing or unreadable header counts as epoch 0, as on the real service.
fn claimed_epoch(headers: &HeaderMap) -> ClaimedEpoch {
    let claimed = headers
        .get(EPOCH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    ClaimedEpoch(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_match("s3cret", "s3cret"));
        assert!(!secrets_match("s3cre", "s3cret"));
        assert!(!secrets_match("s3creT", "s3cret"));
        assert!(!secrets_match("", ""));
    }
}
