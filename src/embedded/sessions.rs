//! Sync sessions, held in this process's memory like the real service's: a
//! restart loses them and clients start a new one on the `428`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::clock::rfc3339;

/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::minutes(30);

/// A session as the wire shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub user_id: String,
    #[serde(skip)]
    expires: OffsetDateTime,
    pub created_at: String,
    pub expires_at: String,
    /// The tenant epoch when the session began.
    pub epoch: i64,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // Every critical section is a single map operation; poison leaves it whole.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Begins a session for `user_id` at `epoch`.
    pub fn begin(&self, user_id: &str, epoch: i64) -> Session {
        let now = OffsetDateTime::now_utc();
        let expires = now + SESSION_TTL;
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            expires,
            created_at: rfc3339(now),
            expires_at: rfc3339(expires),
            epoch,
        };
        let mut live = self.lock();
        // Drop expired sessions here, so the map cannot grow without bound.
        live.retain(|_, s| !s.expired_at(now));
        live.insert(session.id.clone(), session.clone());
        session
    }

    /// The session `id` if it exists and has not expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = OffsetDateTime::now_utc();
        self.lock().get(id).filter(|s| !s.expired_at(now)).cloned()
    }

    /// Ends session `id`; false when there was no live one.
    pub fn end(&self, id: &str) -> bool {
        let now = OffsetDateTime::now_utc();
        self.lock().remove(id).is_some_and(|s| !s.expired_at(now))
    }

    /// Ends every session of this process (a wipe).
    pub fn end_all(&self) {
        self.lock().clear();
    }
}

impl Session {
    fn expired_at(&self, now: OffsetDateTime) -> bool {
        now > self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_get_end() {
        let sessions = Sessions::default();
        let s = sessions.begin("local", 3);
        assert_eq!(sessions.get(&s.id).map(|s| s.epoch), Some(3));
        assert!(sessions.end(&s.id));
        assert!(!sessions.end(&s.id));
        assert_eq!(sessions.get(&s.id), None);
    }

    #[test]
    fn expired_sessions_are_invisible() {
        let sessions = Sessions::default();
        let mut s = sessions.begin("local", 1);
        s.expires = OffsetDateTime::now_utc() - Duration::seconds(1);
        sessions.lock().insert(s.id.clone(), s.clone());
        assert_eq!(sessions.get(&s.id), None);
    }

    #[test]
    fn end_all_forgets_everything() {
        let sessions = Sessions::default();
        let s = sessions.begin("local", 1);
        sessions.end_all();
        assert_eq!(sessions.get(&s.id), None);
    }

    #[test]
    fn wire_shape_is_camel_case() {
        let s = Sessions::default().begin("local", 1);
        let json = serde_json::to_value(&s).unwrap_or_default();
        let keys: Vec<&str> = json
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 5);
        for key in ["id", "userId", "createdAt", "expiresAt", "epoch"] {
            assert!(keys.contains(&key), "{key}");
        }
    }
}
