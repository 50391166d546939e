//! The one sync session a process keeps with the upstream.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::HEADER_EPOCH;

/// Sessions live 30 minutes upstream; renew this long before they end so a
/// request never races the expiry.
const RENEW_MARGIN: Duration = Duration::from_secs(60);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub epoch: u64,
    renew_at: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    id: Value,
    epoch: Option<u64>,
    created_at: Option<String>,
    expires_at: Option<String>,
}

impl Session {
    pub fn from_response(headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        let parsed: SessionBody = serde_json::from_slice(body).ok()?;
        let id = match parsed.id {
            Value::String(s) if !s.is_empty() => s,
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let header_epoch = headers
            .get(HEADER_EPOCH)
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
        Some(Self {
            id,
            epoch,
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
    pub async fn get_or_open<F, Fut, E>(&self, open: F) -> Result<Session, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, E>>,
    {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| Instant::now() < s.renew_at) {
            return Ok(session.clone());
        }
        let session = open().await?;
        tracing::info!(epoch = session.epoch, "opened a sync session");
        *current = Some(session.clone());
        Ok(session)
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
