//! Keeping the replica in step with the upstream, and deciding when it may
//! answer a read.
//!
//! The replica follows each entity through the REST list with
//! `includeDeleted=true` from its saved cursor (upstream contract §8). Each
//! refresh starts [`REREAD_WINDOW`] behind that cursor, because the upstream
//! stamps a write before it commits: a write committed late, stamped before
//! the cursor, is still picked up; what is read twice is skipped by version.
//! A read refreshes its entity only when the last refresh is older than
//! `max_staleness`, so a model's burst of reads costs at most one small
//! request. When the upstream cannot be reached, a read is answered from the
//! replica and marked stale, never silently.
//!
//! Whatever it stores, from the feed or from a write's answer, it reports
//! as [`Change`]s on one broadcast ([`Follower::changes`]): who listens
//! (live resource updates) is not its concern.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{Mutex, OnceCell, broadcast};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    Applied, Change, ENTITIES, FeedState, Replica, ReplicaError, ReplicaKey, replica_path,
};
use crate::catalog::cursor::{Cursor, Position};
use crate::catalog::{Entity, Request};
use crate::error::{ErrorCode, ToolError};
use crate::notices::{self, Notice, RebuildCause};
use crate::upstream::{Call, Client};

/// How far behind its saved cursor a refresh starts reading again: longer
/// than any write takes from its stamp to its commit.
pub const REREAD_WINDOW: Duration = Duration::from_secs(5);
/// Items per feed page: the upstream's largest.
const FEED_PAGE: u32 = 1000;
/// Changes held for a listener that has not caught up. Past this it hears
/// that it lagged (and must assume anything changed): a first sync stores
/// thousands at once.
const CHANGES_CAPACITY: usize = 1024;

/// When a refresh writes its `replica refreshed` log line at `info` (what
/// `stats` counts): a read's or a sync's always; the polling for
/// subscriptions', every second or two for hours, only when it stored a
/// change (otherwise at `debug`), so it does not crowd the log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    Always,
    IfChanged,
}

/// Whether what a read returns is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Refreshed within the staleness bound.
    Fresh,
    /// The upstream could not be reached: the replica as of its last
    /// successful refresh (RFC 3339), if there was one.
    Stale { as_of: Option<String> },
}

impl Freshness {
    /// The staler of two: a search over several entities is as fresh as its
    /// stalest part.
    pub fn and(self, other: Freshness) -> Freshness {
        match (self, other) {
            (Self::Fresh, other) | (other, Self::Fresh) => other,
            (Self::Stale { as_of: a }, Self::Stale { as_of: b }) => Self::Stale {
                as_of: match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                },
            },
        }
    }
}

/// A replica ready to answer for an entity.
pub struct Ready {
    pub replica: Arc<Replica>,
    pub freshness: Freshness,
}

/// One entity's refresh state in this process.
#[derive(Default)]
struct Feed {
    /// Held while refreshing: one refresh at a time, its result shared.
    refreshing: Mutex<()>,
    /// When this process last refreshed it successfully.
    fresh_at: std::sync::Mutex<Option<Instant>>,
}

/// The replica of the current user, opened on first use, and its feeds.
pub struct Follower {
    client: Arc<Client>,
    /// Where the data lives, for the replica's key: the API's base URL, or
    /// for the embedded API its database (its loopback port changes with
    /// every start).
    origin: String,
    dir: PathBuf,
    max_staleness: Duration,
    /// `None` inside: the replica cannot be used (a newer schema, an
    /// unusable file); the sidecar then reads from the upstream only.
    replica: OnceCell<Option<Arc<Replica>>>,
    feeds: [Feed; 5],
    changes: broadcast::Sender<Change>,
}

impl Follower {
    pub fn new(client: Arc<Client>, origin: String, dir: PathBuf, max_staleness: Duration) -> Self {
        Self {
            client,
            origin,
            dir,
            max_staleness,
            replica: OnceCell::new(),
            feeds: Default::default(),
            changes: broadcast::Sender::new(CHANGES_CAPACITY),
        }
    }

    /// Every change stored in the replica from now on, in order.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// How long a refresh is trusted.
    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    fn report(&self, applied: Applied) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        for change in applied.changes {
            // Only fails when the last listener left meanwhile.
            let _ = self.changes.send(change);
        }
    }

    /// Whether this process refreshed the feed within the staleness bound.
    fn fresh(&self, feed: &Feed) -> bool {
        feed.fresh_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < self.max_staleness)
    }

    /// Whether another process sharing the replica refreshed the feed
    /// within the staleness bound.
    fn shared_fresh(&self, state: &FeedState) -> bool {
        state.complete
            && state.refreshed_ms.is_some_and(|ms| {
                now_ms().saturating_sub(ms) < self.max_staleness.as_millis() as i64
            })
    }

    fn mark_fresh(feed: &Feed) {
        *feed.fresh_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Refreshes `entity` when its last refresh is older than the staleness
    /// bound, as a read would (its first sync included), but quietly: this
    /// keeps subscribed items current between reads, so a failure is the
    /// caller's to log, not a stale read to announce.
    pub async fn keep_fresh(&self, entity: &'static Entity, call: &Call) -> Result<(), ToolError> {
        let Some(replica) = self.replica(call).await? else {
            return Ok(());
        };
        let feed = self.feed(entity);
        if self.fresh(feed) {
            return Ok(());
        }
        let _one_refresh = feed.refreshing.lock().await;
        if self.fresh(feed) {
            return Ok(());
        }
        let state = replica.feed(entity.plural).map_err(internal)?;
        if !self.shared_fresh(&state) {
            self.refresh(entity, &replica, call, Logged::IfChanged, |_| {})
                .await?;
        }
        Self::mark_fresh(feed);
        Ok(())
    }

    /// The replica, opened (and its epoch checked) on first use. Keyed by
    /// the session's user: opening needs the upstream once.
    pub async fn replica(&self, call: &Call) -> Result<Option<Arc<Replica>>, ToolError> {
        self.replica
            .get_or_try_init(|| async {
                let scope = self.client.scope(call).await?;
                let key = ReplicaKey {
                    base_url: self.origin.clone(),
                    tenant: scope.tenant,
                    user_id: scope.user_id,
                };
                let path = replica_path(&self.dir, &key);
                let opened = tokio::task::spawn_blocking(move || Replica::open(&path, &key)).await;
                let replica = match opened {
                    Ok(Ok(replica)) => Arc::new(replica),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "running without the local replica");
                        return Ok(None);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "running without the local replica");
                        return Ok(None);
                    }
                };
                tracing::info!(path = %replica.path().display(), "opened the local replica");
                adopt_epoch(&replica, scope.epoch).map_err(internal)?;
                Ok(Some(replica))
            })
            .await
            .cloned()
    }

    /// The replica, if it is already open (a write does not open it).
    pub fn opened(&self) -> Option<Arc<Replica>> {
        self.replica.get().cloned().flatten()
    }

    /// The replica ready to answer for `entity`, refreshed first when its
    /// last refresh is older than the staleness bound. `None` when it cannot
    /// answer: no replica, or the entity's first sync has not completed and
    /// `first_sync` is false (then the read goes to the upstream as without a
    /// replica). With `first_sync`, a missing first sync is made now.
    pub async fn ready(
        &self,
        entity: &'static Entity,
        call: &Call,
        first_sync: bool,
    ) -> Result<Option<Ready>, ToolError> {
        let Some(replica) = self.replica(call).await? else {
            return Ok(None);
        };
        let feed = self.feed(entity);
        if self.fresh(feed) {
            return Ok(Some(Ready {
                replica,
                freshness: Freshness::Fresh,
            }));
        }
        let _one_refresh = match feed.refreshing.try_lock() {
            Ok(held) => held,
            // A refresh is under way (at startup, the first sync, which can
            // take minutes): a read the upstream can answer does not wait for
            // a first sync, and no read waits past its call's deadline.
            Err(_) => {
                let state = replica.feed(entity.plural).map_err(internal)?;
                if !state.complete && !first_sync {
                    return Ok(None);
                }
                match tokio::time::timeout_at(call.deadline, feed.refreshing.lock()).await {
                    Ok(held) => held,
                    Err(_) if state.complete => {
                        return Ok(Some(stale(
                            entity,
                            replica,
                            &state,
                            "a refresh still running",
                        )));
                    }
                    Err(_) => {
                        return Err(ToolError::new(
                            ErrorCode::Timeout,
                            format!(
                                "the local replica's first sync of {} did not finish within the call's deadline",
                                entity.plural.replace('_', " ")
                            ),
                        ));
                    }
                }
            }
        };
        if self.fresh(feed) {
            return Ok(Some(Ready {
                replica,
                freshness: Freshness::Fresh,
            }));
        }
        let state = replica.feed(entity.plural).map_err(internal)?;
        if !state.complete && !first_sync {
            return Ok(None);
        }
        // Another process sharing the replica may have just refreshed it.
        let freshness = if self.shared_fresh(&state) {
            Freshness::Fresh
        } else {
            match self
                .refresh(entity, &replica, call, Logged::Always, |_| {})
                .await
            {
                Ok(_) => Freshness::Fresh,
                // Offline: what the replica has, said to be stale; even a
                // first sync cut short is better than nothing to a search.
                Err(error) if cannot_reach(&error) && (state.complete || first_sync) => {
                    return Ok(Some(stale(entity, replica, &state, &error.summary())));
                }
                Err(error) => return Err(error),
            }
        };
        Self::mark_fresh(feed);
        Ok(Some(Ready { replica, freshness }))
    }

    /// Refreshes `entities` now, whatever their staleness, one after the
    /// other; `progress` hears each entity's running count of items fetched.
    /// With `first_only`, an entity whose first sync already completed is
    /// left to its reads' refreshes (at startup: no re-read of every
    /// entity's window on every launch). For `toolbridge-mcp sync` and the
    /// first sync at startup.
    pub async fn sync(
        &self,
        entities: &[&'static Entity],
        call: &Call,
        first_only: bool,
        progress: impl Fn(&'static Entity, usize),
    ) -> Result<Vec<(&'static Entity, usize)>, ToolError> {
        let Some(replica) = self.replica(call).await? else {
            return Err(ToolError::new(
                ErrorCode::UpstreamError,
                "the local replica cannot be used (see the log)",
            ));
        };
        let mut fetched = Vec::new();
        for entity in entities {
            let feed = self.feed(entity);
            let _one_refresh = feed.refreshing.lock().await;
            if first_only && replica.feed(entity.plural).map_err(internal)?.complete {
                continue;
            }
            let count = self
                .refresh(entity, &replica, call, Logged::Always, |n| {
                    progress(entity, n)
                })
                .await?;
            Self::mark_fresh(feed);
            fetched.push((*entity, count));
        }
        Ok(fetched)
    }

    /// Stores what a write through this sidecar returned, before the tool
    /// answers: a model always reads its own writes.
    pub async fn record(&self, entity: &'static Entity, item: &Value) {
        let Some(replica) = self.opened() else {
            return;
        };
        let items = vec![item.clone()];
        let stored =
            tokio::task::spawn_blocking(move || replica.apply(entity.plural, &items)).await;
        match stored {
            Ok(Ok(applied)) => self.report(applied),
            Ok(Err(error)) => {
                tracing::warn!(%error, entity = entity.plural, "could not store a write in the replica")
            }
            Err(_) => {}
        }
    }

    fn feed(&self, entity: &Entity) -> &Feed {
        let index = ENTITIES
            .iter()
            .position(|e| *e == entity.plural)
            .unwrap_or_default();
        &self.feeds[index]
    }

    /// Reads the entity's feed from just behind its saved cursor to its end
    /// and stores it; returns how many items came. The caller holds the
    /// entity's refresh lock.
    async fn refresh(
        &self,
        entity: &'static Entity,
        replica: &Arc<Replica>,
        call: &Call,
        logged: Logged,
        progress: impl Fn(usize),
    ) -> Result<usize, ToolError> {
        // A wipe elsewhere raised the epoch: what the replica holds is void.
        let scope = self.client.scope(call).await?;
        adopt_epoch(replica, scope.epoch).map_err(internal)?;
        let state = replica.feed(entity.plural).map_err(internal)?;
        let mut saved = state.cursor.clone();
        let mut cursor = state.cursor.as_deref().and_then(rewind);
        let mut fetched = 0;
        // Smaller after a page had to shrink to fit the response cap.
        let mut page_size = FEED_PAGE;
        let mut changed = 0;
        loop {
            let mut request = Request::get(entity.path.to_owned());
            request.query.push(("limit", page_size.to_string()));
            request.query.push(("includeDeleted", "true".into()));
            if let Some(cursor) = &cursor {
                request.query.push(("cursor", cursor.clone()));
            }
            let sent = self.client.send_page(&request, call).await?;
            page_size = sent.limit;
            let mut page = sent.body;
            let items = match page.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(ToolError::new(
                        ErrorCode::UpstreamError,
                        "the upstream's list response has no items",
                    ));
                }
            };
            if items.is_empty() {
                break;
            }
            let next = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            saved = later(saved, next.clone());
            fetched += items.len();
            let full = items.len() >= page_size as usize;
            let page_state = FeedState {
                cursor: saved.clone(),
                ..state.clone()
            };
            let store = replica.clone();
            let plural = entity.plural;
            let applied =
                tokio::task::spawn_blocking(move || store.apply_page(plural, &items, &page_state))
                    .await
                    .map_err(|e| internal(e.to_string()))?
                    .map_err(internal)?;
            changed += applied.changes.len();
            self.report(applied);
            progress(fetched);
            if !state.complete {
                tracing::info!(entity = entity.plural, fetched, "first sync of the replica");
            }
            match next {
                Some(next) if full => cursor = Some(next),
                _ => break,
            }
        }
        let done = FeedState {
            cursor: saved,
            complete: true,
            refreshed_ms: Some(now_ms()),
        };
        replica.save_feed(entity.plural, &done).map_err(internal)?;
        if changed == 0 && logged == Logged::IfChanged {
            tracing::debug!(entity = entity.plural, fetched, "replica refreshed");
        } else {
            tracing::info!(entity = entity.plural, fetched, "replica refreshed");
        }
        Ok(fetched)
    }
}

/// Discards the replica when the upstream's epoch is newer than the one its
/// contents belong to (a wipe leaves no tombstones). An older session epoch
/// is ours to renew, not a reason to discard.
fn adopt_epoch(replica: &Replica, epoch: u64) -> Result<(), ReplicaError> {
    match replica.epoch()? {
        Some(held) if held >= epoch => Ok(()),
        held => {
            if let Some(from) = held {
                tracing::warn!(
                    from,
                    to = epoch,
                    "replica rebuilt: the upstream's data epoch changed"
                );
                notices::publish(|| {
                    Notice::ReplicaRebuilt(RebuildCause::EpochChanged { from, to: epoch })
                });
            }
            replica.reset(epoch)
        }
    }
}

/// What the replica has for `entity`, said to be as of its last refresh,
/// when a fresh one cannot be had (`why`).
fn stale(entity: &Entity, replica: Arc<Replica>, state: &FeedState, why: &str) -> Ready {
    tracing::warn!(
        entity = entity.plural,
        error = why,
        "serving a stale read from the local replica"
    );
    let as_of = state.refreshed_ms.map(rfc3339_ms);
    notices::publish(|| Notice::StaleRead {
        entity: entity.plural,
        as_of: as_of.clone(),
    });
    Ready {
        replica,
        freshness: Freshness::Stale { as_of },
    }
}

/// A failure that means the upstream cannot be reached now (refused, DNS,
/// timeout, open circuit), as opposed to one it answered.
fn cannot_reach(error: &ToolError) -> bool {
    matches!(
        error.code,
        ErrorCode::UpstreamUnavailable | ErrorCode::Timeout
    )
}

fn internal(error: impl std::fmt::Display) -> ToolError {
    ToolError::new(
        ErrorCode::UpstreamError,
        format!("the local replica failed: {error}"),
    )
}

/// An upstream cursor's position, when it has the documented shape.
fn position(cursor: &str) -> Option<Position> {
    match Cursor::parse(cursor)? {
        Cursor::After(at) => Some(at),
        _ => None,
    }
}

/// The cursor [`REREAD_WINDOW`] before `cursor`; `None` (from the start)
/// when it cannot be read.
fn rewind(cursor: &str) -> Option<String> {
    let at = position(cursor)?;
    let earlier = Position {
        updated_ms: at
            .updated_ms
            .saturating_sub(REREAD_WINDOW.as_millis() as i64),
        uid: Uuid::nil(),
    };
    Some(Cursor::After(earlier).to_string())
}

/// The later of two cursors: re-reading the window must not move the saved
/// cursor back.
fn later(saved: Option<String>, next: Option<String>) -> Option<String> {
    match (saved, next) {
        (Some(saved), Some(next)) => match (position(&saved), position(&next)) {
            (Some(a), Some(b)) if a >= b => Some(saved),
            _ => Some(next),
        },
        (saved, None) => saved,
        (None, next) => next,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn rfc3339_ms(ms: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const UID: &str = "6f1c2a39-0f37-4a8e-9d55-2b8a3f6c9e10";

    fn cursor(ms: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("{ms}|{UID}"))
    }

    #[test]
    fn rewinding_goes_back_the_window_to_the_first_uid() {
        let back = rewind(&cursor(10_000));
        assert_eq!(
            back.as_deref().and_then(position),
            Some(Position {
                updated_ms: 5_000,
                uid: Uuid::nil()
            })
        );
        assert_eq!(rewind("not a cursor!"), None);
    }

    #[test]
    fn the_saved_cursor_never_moves_back() {
        let (early, late) = (cursor(1), cursor(2));
        assert_eq!(
            later(Some(late.clone()), Some(early.clone())),
            Some(late.clone())
        );
        assert_eq!(
            later(Some(early.clone()), Some(late.clone())),
            Some(late.clone())
        );
        assert_eq!(later(Some(early.clone()), None), Some(early.clone()));
        assert_eq!(later(None, Some(early.clone())), Some(early));
    }

    #[test]
    fn a_search_is_as_fresh_as_its_stalest_part() {
        let stale = |s: &str| Freshness::Stale {
            as_of: Some(s.into()),
        };
        assert_eq!(Freshness::Fresh.and(Freshness::Fresh), Freshness::Fresh);
        assert_eq!(Freshness::Fresh.and(stale("b")), stale("b"));
        assert_eq!(stale("b").and(stale("a")), stale("a"));
    }
}
