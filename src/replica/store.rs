//! [`Replica`]: the open file, its writes and its single-item reads.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::item::{Incoming, Indexed};
use super::query::{ListQuery, Page};
use super::search::{SearchPage, SearchQuery};
use super::{ENTITIES, ReplicaError, ReplicaKey, file, known_entity, query, search};

/// An open replica. `Send + Sync`: share one per process (e.g. in an `Arc`).
/// Calls block on SQLite; run them off an async runtime's workers.
pub struct Replica {
    path: PathBuf,
    // One connection per process is plenty; the mutex serialises this
    // process's calls, SQLite serialises processes.
    conn: Mutex<Connection>,
}

/// What [`Replica::apply`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Items the replica did not have.
    pub inserted: usize,
    /// Items stored with a lower version, now replaced.
    pub updated: usize,
    /// Items whose version is not higher than the stored copy's: the stored
    /// copy is kept (an equal version is the same write upstream).
    pub skipped: usize,
    /// Items that are not valid upstream items (see the upstream contract
    /// §5): no UUID uid, no non-negative integer version, no RFC 3339
    /// `updatedAt`, or a payload that is not an object. Not stored.
    pub invalid: usize,
    /// Each item stored, as a change to what the replica held, in the
    /// batch's order (a tombstone of an item it never held is no change).
    pub changes: Vec<Change>,
}

/// One item the replica stored, relative to what it held before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub entity: &'static str,
    pub uid: Uuid,
    /// The version stored.
    pub version: i64,
    pub kind: ChangeKind,
    /// The item's parent, for a comment (`parentUid`) or a chat message
    /// (`chatUid`): what it is shown with.
    pub parent: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New, or a tombstone that came back to life.
    Created,
    /// A newer version of an item held (a tombstone's included).
    Updated,
    /// A live item became a tombstone.
    Deleted,
}

/// Where an entity's feed stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    /// The last upstream `nextCursor` taken in, opaque.
    pub cursor: Option<String>,
    /// Whether a first full sync of the entity completed: until it has, the
    /// replica cannot answer for the entity.
    pub complete: bool,
    /// When the feed last reached its end successfully (unix ms).
    pub refreshed_ms: Option<i64>,
}

/// What a replica holds, for diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaStats {
    pub epoch: Option<u64>,
    /// The database file and its write-ahead log, in bytes.
    pub size_bytes: u64,
    /// One per entity, in [`ENTITIES`] order.
    pub entities: Vec<EntityStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityStats {
    pub entity: &'static str,
    pub live: u64,
    pub deleted: u64,
    pub feed: FeedState,
}

impl Replica {
    /// Opens the replica of `key` at `path` (see [`super::replica_path`]),
    /// creating it, its directory (mode 0700) and the file (mode 0600) as
    /// needed. A file that is not a usable replica of `key` is deleted and
    /// rebuilt empty, with a `warn` log line. A replica of a newer schema is
    /// left untouched: [`ReplicaError::NewerSchema`].
    pub fn open(path: &Path, key: &ReplicaKey) -> Result<Self, ReplicaError> {
        let conn = file::open(path, key)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open:
        // rusqlite's `Transaction` rolls back when dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction: the write lock is
    /// taken before anything is read, so concurrent writers (other
    /// processes) cannot interleave between a read and the write it decides.
    fn write<T>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, ReplicaError>,
    ) -> Result<T, ReplicaError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = write(&tx)?;
        tx.commit()?;
        Ok(done)
    }

    /// Runs `read` in one read transaction: one snapshot for all it reads.
    fn read<T>(
        &self,
        read: impl FnOnce(&Transaction<'_>) -> Result<T, ReplicaError>,
    ) -> Result<T, ReplicaError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        read(&tx)
    }

    /// The upstream epoch the contents belong to; `None` on a new file.
    pub fn epoch(&self) -> Result<Option<u64>, ReplicaError> {
        read_epoch(&self.lock())
    }

    /// Discards every item and every feed state and records `epoch`: after a
    /// wipe upstream (a new epoch) the contents are void, and the wipe left
    /// no tombstones to apply.
    pub fn reset(&self, epoch: u64) -> Result<(), ReplicaError> {
        self.write(|tx| {
            tx.execute_batch(
                "DELETE FROM items; DELETE FROM item_tags; DELETE FROM items_fts; DELETE FROM feeds;",
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?1)",
                [epoch.to_string()],
            )?;
            Ok(())
        })
    }

    /// Stores `items` of `entity` as the upstream sends them (`{uid,
    /// version, updatedAt, deletedAt?, payload}`), in one transaction, with
    /// their search index. An item replaces the stored copy only when its
    /// version is strictly higher; invalid items are counted, not stored.
    pub fn apply(&self, entity: &str, items: &[Value]) -> Result<Applied, ReplicaError> {
        let entity = known_entity(entity)?;
        self.write(|tx| apply_items(tx, entity, items))
    }

    /// [`Self::apply`] and [`Self::save_feed`] in one transaction: a crash
    /// cannot record a cursor past items that were not stored.
    pub fn apply_page(
        &self,
        entity: &str,
        items: &[Value],
        feed: &FeedState,
    ) -> Result<Applied, ReplicaError> {
        let entity = known_entity(entity)?;
        self.write(|tx| {
            let applied = apply_items(tx, entity, items)?;
            write_feed(tx, entity, feed)?;
            Ok(applied)
        })
    }

    /// The feed state of `entity`; the default (no cursor, not complete,
    /// never refreshed) when none was saved.
    pub fn feed(&self, entity: &str) -> Result<FeedState, ReplicaError> {
        let entity = known_entity(entity)?;
        Ok(read_feed(&self.lock(), entity)?.unwrap_or_default())
    }

    /// Records `state` as the feed state of `entity`, replacing the last.
    /// Last writer wins: two processes refreshing at once may leave the
    /// older cursor, which only makes the next refresh read again what it
    /// already has.
    pub fn save_feed(&self, entity: &str, state: &FeedState) -> Result<(), ReplicaError> {
        let entity = known_entity(entity)?;
        self.write(|tx| write_feed(tx, entity, state))
    }

    /// Item `uid` of `entity`, tombstone or not, in the upstream's shape.
    pub fn get(&self, entity: &str, uid: Uuid) -> Result<Option<Value>, ReplicaError> {
        let entity = known_entity(entity)?;
        let conn = self.lock();
        let row = conn
            .prepare_cached(
                "SELECT uid, version, updated_at, deleted_at, payload FROM items
                 WHERE entity = ?1 AND uid = ?2",
            )?
            .query_row(params![entity, uid.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        row.map(
            |(uid, version, at, deleted, payload): (String, _, _, _, String)| {
                item_json(&uid, version, at, deleted, &payload)
            },
        )
        .transpose()
    }

    /// The version of item `uid` of `entity`, and the sum of the versions of
    /// the `children` items under it (a note's comments by `parentUid`, a
    /// chat's messages by `chatUid`; 0 without `children`). Versions only
    /// grow, so any write to the item or to one of them, a create or a
    /// delete included, changes the pair. `None` when the item is not held.
    pub fn versions_with(
        &self,
        entity: &str,
        uid: Uuid,
        children: Option<&str>,
    ) -> Result<Option<(i64, i64)>, ReplicaError> {
        let entity = known_entity(entity)?;
        let children = children.map(known_entity).transpose()?;
        let conn = self.lock();
        let row = conn
            .prepare_cached(
                "SELECT version,
                        (SELECT coalesce(sum(version), 0) FROM items
                         WHERE entity = ?3 AND parent_uid = ?2)
                      + (SELECT coalesce(sum(version), 0) FROM items
                         WHERE entity = ?3 AND chat_uid = ?2)
                 FROM items WHERE entity = ?1 AND uid = ?2",
            )?
            .query_row(params![entity, uid.to_string(), children], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row)
    }

    /// How many live items and tombstones of `entity` the replica holds: a
    /// create or a delete changes the pair, an update does not.
    pub fn counts(&self, entity: &str) -> Result<(i64, i64), ReplicaError> {
        let entity = known_entity(entity)?;
        count_items(&self.lock(), entity)
    }

    /// A page of `entity`'s items: see [`ListQuery`] for the filters and
    /// the cursor formats.
    pub fn list(&self, entity: &str, q: &ListQuery) -> Result<Page, ReplicaError> {
        let entity = known_entity(entity)?;
        query::list(&self.lock(), entity, q)
    }

    /// Full-text search across entities: see [`SearchQuery`].
    pub fn search(&self, q: &SearchQuery) -> Result<SearchPage, ReplicaError> {
        self.read(|tx| search::search(tx, q))
    }

    /// Counts per entity, feed states, epoch and size on disk.
    pub fn stats(&self) -> Result<ReplicaStats, ReplicaError> {
        let (epoch, entities) = self.read(|tx| {
            let mut entities = Vec::new();
            for entity in ENTITIES {
                let (live, deleted) = count_items(tx, entity)?;
                entities.push(EntityStats {
                    entity,
                    live: u64::try_from(live).unwrap_or(0),
                    deleted: u64::try_from(deleted).unwrap_or(0),
                    feed: read_feed(tx, entity)?.unwrap_or_default(),
                });
            }
            Ok((read_epoch(tx)?, entities))
        })?;
        let size_bytes = [self.path.clone(), file::sibling(&self.path, "-wal")]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(ReplicaStats {
            epoch,
            size_bytes,
            entities,
        })
    }
}

/// `entity`'s live items and tombstones.
fn count_items(conn: &Connection, entity: &str) -> Result<(i64, i64), ReplicaError> {
    let counts = conn
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE deleted_at IS NULL),
                    count(*) FILTER (WHERE deleted_at IS NOT NULL)
             FROM items WHERE entity = ?1",
        )?
        .query_row([entity], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(counts)
}

fn read_epoch(conn: &Connection) -> Result<Option<u64>, ReplicaError> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?;
    stored
        .map(|s| {
            s.parse()
                .map_err(|_| ReplicaError::Corrupt(format!("epoch {s:?}")))
        })
        .transpose()
}

fn read_feed(conn: &Connection, entity: &str) -> Result<Option<FeedState>, ReplicaError> {
    Ok(conn
        .prepare_cached("SELECT cursor, complete, refreshed_ms FROM feeds WHERE entity = ?1")?
        .query_row([entity], |r| {
            Ok(FeedState {
                cursor: r.get(0)?,
                complete: r.get(1)?,
                refreshed_ms: r.get(2)?,
            })
        })
        .optional()?)
}

fn write_feed(tx: &Transaction<'_>, entity: &str, state: &FeedState) -> Result<(), ReplicaError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO feeds (entity, cursor, complete, refreshed_ms)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        entity,
        state.cursor,
        state.complete,
        state.refreshed_ms
    ])?;
    Ok(())
}

fn apply_items(
    tx: &Transaction<'_>,
    entity: &'static str,
    items: &[Value],
) -> Result<Applied, ReplicaError> {
    let mut applied = Applied::default();
    for raw in items {
        let Some(item) = Incoming::parse(raw) else {
            applied.invalid += 1;
            continue;
        };
        let (counter, kind) = match store_item(tx, entity, &item)? {
            Stored::Inserted { parent } => (
                &mut applied.inserted,
                item.deleted_at
                    .is_none()
                    .then_some((ChangeKind::Created, parent)),
            ),
            Stored::Updated {
                was_deleted,
                parent,
            } => {
                let kind = match (was_deleted, item.deleted_at.is_some()) {
                    (false, true) => ChangeKind::Deleted,
                    (true, false) => ChangeKind::Created,
                    _ => ChangeKind::Updated,
                };
                (&mut applied.updated, Some((kind, parent)))
            }
            Stored::Skipped => (&mut applied.skipped, None),
        };
        *counter += 1;
        if let Some((kind, parent)) = kind {
            applied.changes.push(Change {
                entity,
                uid: item.uid,
                version: item.version,
                kind,
                parent,
            });
        }
    }
    Ok(applied)
}

/// What [`store_item`] did; `parent` is the stored item's parent (see
/// [`Change::parent`]).
enum Stored {
    Inserted {
        parent: Option<Uuid>,
    },
    Updated {
        was_deleted: bool,
        parent: Option<Uuid>,
    },
    Skipped,
}

/// Writes one item and its index entries, unless the stored copy's version
/// is the same or higher. Needs the write lock (see [`Replica::write`]).
fn store_item(tx: &Transaction<'_>, entity: &str, item: &Incoming) -> Result<Stored, ReplicaError> {
    let uid = item.uid.to_string();
    let stored: Option<(i64, i64, bool)> = tx
        .prepare_cached(
            "SELECT id, version, deleted_at IS NOT NULL FROM items WHERE entity = ?1 AND uid = ?2",
        )?
        .query_row(params![entity, uid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if stored.is_some_and(|(_, version, _)| version >= item.version) {
        return Ok(Stored::Skipped);
    }
    let payload = serde_json::to_string(&item.payload)
        .map_err(|e| ReplicaError::Corrupt(format!("payload of {uid}: {e}")))?;
    let indexed = Indexed::of(&item.payload);
    let parent = indexed
        .parent_uid
        .as_deref()
        .or(indexed.chat_uid.as_deref())
        .and_then(|p| Uuid::parse_str(p).ok());
    let (id, outcome) = match stored {
        Some((id, _, was_deleted)) => {
            unindex(tx, id)?;
            (
                Some(id),
                Stored::Updated {
                    was_deleted,
                    parent,
                },
            )
        }
        None => (None, Stored::Inserted { parent }),
    };
    // `id` NULL assigns a new rowid; the same id replaces the row in place.
    let id: i64 = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO items (id, entity, uid, version, updated_ms, updated_at,
                 deleted_at, payload, status, parent_uid, chat_uid, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        )?
        .query_row(
            params![
                id,
                entity,
                uid,
                item.version,
                item.updated_ms,
                item.updated_at,
                item.deleted_at,
                payload,
                indexed.status,
                indexed.parent_uid,
                indexed.chat_uid,
                indexed.due_ms
            ],
            |r| r.get(0),
        )?;
    index(tx, id, &indexed)?;
    Ok(outcome)
}

/// Adds the full-text and tag entries of item `id`.
fn index(tx: &Transaction<'_>, id: i64, indexed: &Indexed) -> Result<(), ReplicaError> {
    tx.prepare_cached(
        "INSERT INTO items_fts (rowid, title, body, labels) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, indexed.title, indexed.body, indexed.labels])?;
    let mut tag = tx.prepare_cached("INSERT INTO item_tags (item_id, tag) VALUES (?1, ?2)")?;
    for t in &indexed.tags {
        tag.execute(params![id, t])?;
    }
    Ok(())
}

/// Removes what [`index`] added for item `id`.
fn unindex(tx: &Transaction<'_>, id: i64) -> Result<(), ReplicaError> {
    tx.prepare_cached("DELETE FROM items_fts WHERE rowid = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM item_tags WHERE item_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// A stored row in the upstream's item shape; `deletedAt` only on a
/// tombstone, as upstream.
pub(super) fn item_json(
    uid: &str,
    version: i64,
    updated_at: String,
    deleted_at: Option<String>,
    payload: &str,
) -> Result<Value, ReplicaError> {
    let payload: Value = serde_json::from_str(payload)
        .map_err(|e| ReplicaError::Corrupt(format!("payload of {uid}: {e}")))?;
    let mut item = Map::new();
    item.insert("uid".into(), uid.into());
    item.insert("version".into(), version.into());
    item.insert("updatedAt".into(), updated_at.into());
    if let Some(at) = deleted_at {
        item.insert("deletedAt".into(), at.into());
    }
    item.insert("payload".into(), payload);
    Ok(Value::Object(item))
}
