//! The one sync session a process keeps with the upstream: opened once,
//! renewed shortly before it expires (ending the old one), dropped when the
//! upstream refuses it.

use std::time::Duration;

use reqwest::Method as HttpMethod;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::failure::Failure;
use super::{Call, Client};
use crate::catalog::repeat::{Reached, Transience};
use crate::contract::EPOCH_HEADER;
use crate::error::{ErrorCode, ToolError};

/// How long ending a session may take: it must never hold up a call or a
/// shutdown for long.
const END_SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions live 30 minutes upstream; renew this long before they end so a
/// request never races the expiry.
const RENEW_MARGIN: Duration = Duration::from_secs(60);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub epoch: u64,
    /// Who the upstream says we are (`userId`): what a local replica is
    /// keyed by, never the token (a new token can be another user).
    pub user_id: Option<String>,
    renew_at: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    id: Value,
    epoch: Option<u64>,
    user_id: Option<Value>,
    created_at: Option<String>,
    expires_at: Option<String>,
}

impl Session {
    pub fn from_response(headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        let parsed: SessionBody = serde_json::from_slice(body).ok()?;
        let id = match parsed.id {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        // The id goes into a URL path when the session is ended.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if id.is_empty() || id.len() > 200 || !id.chars().all(plain) || id.starts_with('.') {
            return None;
        }
        let header_epoch = headers
            .get(EPOCH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let epoch = parsed.epoch.or(header_epoch).unwrap_or(0);
        // Lifetime from the server's own two timestamps, so a skewed local
        // clock does not matter.
        let lifetime = match (parsed.created_at, parsed.expires_at) {
            (Some(created), Some(expires)) => {
                lifetime(&created, &expires).unwrap_or(DEFAULT_LIFETIME)
            }
            _ => DEFAULT_LIFETIME,
        };
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_MARGIN.min(lifetime / 2));
        let user_id = match parsed.user_id {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some(Self {
            id,
            epoch,
            user_id,
            renew_at,
        })
    }
}

fn lifetime(created: &str, expires: &str) -> Option<Duration> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let created = OffsetDateTime::parse(created, &Rfc3339).ok()?;
    let expires = OffsetDateTime::parse(expires, &Rfc3339).ok()?;
    (expires - created).try_into().ok()
}

/// Holds the current session; opening one is single-flight, so a burst of
/// calls on a cold start opens one session, not one each.
#[derive(Default)]
pub struct SessionSlot {
    current: Mutex<Option<Session>>,
}

impl SessionSlot {
    /// The current session, or a new one; with the session it replaced when
    /// that one was due for renewal (still valid upstream: end it).
    pub async fn get_or_open<F, Fut, E>(&self, open: F) -> Result<(Session, Option<Session>), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| Instant::now() < s.renew_at) {
            return Ok((session.clone(), None));
        }
        let session = open().await?;
        tracing::info!(epoch = session.epoch, "opened a sync session");
        let retired = current.replace(session.clone());
        Ok((session, retired))
    }

    /// Drops `stale` unless another call already replaced it.
    pub async fn invalidate(&self, stale: &Session) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|s| s.id == stale.id) {
            *current = None;
        }
    }

    pub async fn take(&self) -> Option<Session> {
        self.current.lock().await.take()
    }
}

impl Client {
    pub(super) async fn session(&self, call: &Call) -> Result<Session, Failure> {
        let (session, retired) = self.session.get_or_open(|| self.open_session(call)).await?;
        if let Some(retired) = retired {
            // Renewed before it expired: the old one still counts upstream.
            self.end_session(&retired).await;
        }
        Ok(session)
    }

    async fn open_session(&self, call: &Call) -> Result<Session, Failure> {
        let builder = self
            .request(HttpMethod::POST, "/v1/sync/sessions", call)
            .await?;
        let (status, headers, body) = self.exchange(builder, call, None).await?;
        if !status.is_success() {
            let mut failure = Failure::status(status, &headers, &body, false);
            // A session that cannot be opened is never fixed by another session.
            failure.resession = false;
            failure.error.message =
                format!("could not open a sync session: {}", failure.error.message);
            return Err(failure);
        }
        Session::from_response(&headers, &body).ok_or_else(|| {
            let error = ToolError::new(
                ErrorCode::UpstreamError,
                "the upstream's session response has no id",
            )
            .with_status(status.as_u16());
            Failure::new(error, Reached::No, Transience::Permanent)
        })
    }

    /// `DELETE /v1/sync/sessions/{id}`, within [`END_SESSION_TIMEOUT`]; a
    /// failure is logged, never reported to a call.
    pub(super) async fn end_session(&self, session: &Session) {
        let call = Call::new(
            END_SESSION_TIMEOUT,
            tokio_util::sync::CancellationToken::new(),
        );
        let path = format!("/v1/sync/sessions/{}", session.id);
        let ended = match self.request(HttpMethod::DELETE, &path, &call).await {
            Ok(builder) => self.exchange(builder, &call, None).await,
            Err(failure) => Err(failure),
        };
        match ended {
            Ok((status, _, _)) => {
                tracing::info!(status = status.as_u16(), "ended the sync session")
            }
            Err(f) => {
                tracing::warn!(error = %f.error.summary(), "could not end the sync session")
            }
        }
    }

    /// Ends the sync session, if any; bounded so shutdown never hangs on it.
    pub async fn close(&self) {
        if let Some(session) = self.session.take().await {
            self.end_session(&session).await;
        }
    }
}
