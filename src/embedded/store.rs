//! The SQLite store behind the embedded API.
//!
//! One database file may be shared by several processes (several sidecars
//! started by different MCP clients), so:
//! - the journal is WAL, and `locking_mode` stays NORMAL: no process holds a
//!   lock while idle, and readers never block the writer;
//! - every write is one `BEGIN IMMEDIATE` transaction that reads the current
//!   item, decides, stamps and writes it: the write lock is taken before the
//!   read, so two processes can neither lose nor duplicate an update;
//! - `busy_timeout` makes a process wait for another's short write instead of
//!   failing with `SQLITE_BUSY`, and the switch of a new file to WAL, which
//!   SQLite fails without waiting when two processes make it at once, is
//!   retried as long ([`crate::sqlite::enable_wal`]);
//! - the epoch and the write clock live in the database, so every process
//!   agrees on them;
//! - every entity operation is given the epoch its client claims and checks
//!   it in the same transaction as the operation: a wipe by any process
//!   either commits before (and the operation is refused) or after it.
//!
//! The file holds the user's notes, so it is owner-only: directories made
//! for it are 0700, the file 0600 (see [`make_private`]).
//!
//! rusqlite is blocking; async callers go through [`blocking`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Error;
use super::clock::{now_ms, rfc3339_ms};
use super::entities::Payload;
use crate::fsmode;

/// How long a write waits for another process's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Forward migrations; step `i` takes the schema from version `i` to `i + 1`.
/// Append only: a released step must never change.
const MIGRATIONS: &[&str] = &[
    // 1: items of every entity in one table, plus the shared counters.
    "CREATE TABLE items (
         entity     TEXT    NOT NULL,
         uid        TEXT    NOT NULL,
         version    INTEGER NOT NULL,
         updated_ms INTEGER NOT NULL,
         deleted_ms INTEGER,
         payload    TEXT    NOT NULL,
         PRIMARY KEY (entity, uid)
     ) WITHOUT ROWID;
     CREATE INDEX items_by_update ON items (entity, updated_ms, uid);
     CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO meta (key, value) VALUES ('epoch', 1), ('clock_ms', 0);",
];

/// A failure while using an open store, or a stale claimed epoch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The client's epoch is behind the tenant's, which is this one.
    #[error("the claimed epoch is behind the current epoch {0}")]
    EpochMismatch(i64),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row this code cannot have written (a uid or payload that
    /// does not parse): made [`StoreError::Damaged`] by the store.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
    /// The file itself is damaged: repeating the request cannot help, and
    /// the user must act (see [`recovery_steps`]).
    #[error("the database {} is damaged: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("store worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

impl StoreError {
    /// This error, or [`StoreError::Damaged`] when it means that the file at
    /// `path` is damaged rather than that a statement or a lock failed.
    fn or_damaged(self, path: &Path) -> Self {
        let detail = match &self {
            Self::Corrupt(detail) => detail.clone(),
            Self::Sqlite(e) if means_damage(e) => e.to_string(),
            _ => return self,
        };
        Self::Damaged {
            path: path.to_owned(),
            detail,
        }
    }
}

/// Whether SQLite's error means a damaged file: a malformed page or header,
/// a read the operating system could not do, or a stored value of a type or
/// encoding this code never writes (bytes overwritten inside a row). A
/// failed write or sync is not damage: the file may be intact.
pub(super) fn means_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    use rusqlite::ffi::{SQLITE_IOERR_CORRUPTFS, SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ};
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => {
            matches!(failure.code, DatabaseCorrupt | NotADatabase)
                || matches!(
                    failure.extended_code,
                    SQLITE_IOERR_READ | SQLITE_IOERR_SHORT_READ | SQLITE_IOERR_CORRUPTFS
                )
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => true,
        _ => false,
    }
}

/// What to do about a damaged database file, as the API's error, a failed
/// start and `doctor` all say it. The file is the user's only copy of their
/// items (unlike a replica, nothing upstream holds them), so it is kept.
pub fn recovery_steps(path: &Path) -> String {
    let path = path.display();
    format!(
        "stop every toolbridge-mcp that uses it; rename {path} to {path}.damaged (and {path}-wal, \
         if present, to {path}.damaged-wal) and keep it, since it is the only copy of your items; \
         then `sqlite3 '{path}.damaged' .recover | sqlite3 '{path}'` rebuilds what can still be \
         read (without it, the next start makes an empty database)"
    )
}

/// One stored item, with its payload already stamped with the server keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub uid: Uuid,
    pub version: i64,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
    pub payload: Payload,
}

/// What a write decided: the next payload, and whether the item is deleted.
#[derive(Debug)]
pub struct NewState {
    pub payload: Payload,
    pub deleted: bool,
}

/// A position in an entity's listing order `(updated_ms, uid)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub updated_ms: i64,
    pub uid: Uuid,
}

/// Read access to other items from inside a write transaction.
pub struct ParentLookup<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl ParentLookup<'_> {
    /// Whether `entity` has an item `uid` that is not soft-deleted.
    pub fn is_live(&self, entity: &str, uid: Uuid) -> Result<bool, StoreError> {
        let found = self
            .conn
            .query_row(
                "SELECT 1 FROM items WHERE entity = ?1 AND uid = ?2 AND deleted_ms IS NULL",
                params![entity, uid.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| StoreError::from(e).or_damaged(self.path))?;
        Ok(found.is_some())
    }
}

pub struct Store {
    // One connection per process is plenty for a local sidecar; the mutex
    // serialises this process's calls, SQLite serialises processes.
    conn: Mutex<Connection>,
    /// Named by [`StoreError::Damaged`].
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        create_parent_dir(path)?;
        make_private(path);
        let open_failed = |source| open_error(path, source);
        let mut conn = Connection::open(path).map_err(open_failed)?;
        configure(&conn).map_err(open_failed)?;
        migrate(&mut conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    /// Runs `op` on the connection; an error meaning a damaged file becomes
    /// [`StoreError::Damaged`].
    fn with_conn<T>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        op(&mut self.lock()).map_err(|e| e.or_damaged(&self.path))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open:
        // rusqlite's `Transaction` rolls back when dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tenant's current epoch.
    pub fn epoch(&self) -> Result<i64, StoreError> {
        self.with_conn(|conn| Ok(read_meta(conn, "epoch")?))
    }

    /// Refuses a claimed epoch behind the tenant's, for a request refused
    /// before it reaches the store: it still learns of a wipe first.
    pub fn check_epoch(&self, claimed_epoch: i64) -> Result<(), StoreError> {
        self.with_conn(|conn| check_epoch(conn, claimed_epoch))
    }

    /// Raises the epoch by one and returns the new value.
    pub fn bump_epoch(&self) -> Result<i64, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let epoch = read_meta(&tx, "epoch")? + 1;
            write_meta(&tx, "epoch", epoch)?;
            tx.commit()?;
            Ok(epoch)
        })
    }

    /// The item `uid` of `entity`, deleted or not, read in the same snapshot
    /// as the epoch `claimed_epoch` is checked against.
    pub fn get(
        &self,
        entity: &str,
        uid: Uuid,
        claimed_epoch: i64,
    ) -> Result<Option<Record>, StoreError> {
        self.with_conn(|conn| {
            // A read transaction: one snapshot for both statements.
            let tx = conn.transaction()?;
            check_epoch(&tx, claimed_epoch)?;
            select(&tx, entity, uid)
        })
    }

    /// Up to `limit` items after `after` in `(updated_ms, uid)` order: one
    /// statement, in the snapshot `claimed_epoch` was checked in.
    pub fn list(
        &self,
        entity: &str,
        after: Option<Position>,
        limit: usize,
        include_deleted: bool,
        claimed_epoch: i64,
    ) -> Result<Vec<Record>, StoreError> {
        // The empty string sorts before every uid, so (MIN, "") is "from the start".
        let (after_ms, after_uid) = after.map_or((i64::MIN, String::new()), |p| {
            (p.updated_ms, p.uid.to_string())
        });
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            check_epoch(&tx, claimed_epoch)?;
            let mut stmt = tx.prepare_cached(
                "SELECT uid, version, updated_ms, deleted_ms, payload FROM items
                 WHERE entity = ?1 AND (updated_ms, uid) > (?2, ?3) AND (?4 OR deleted_ms IS NULL)
                 ORDER BY updated_ms, uid LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![entity, after_ms, after_uid, include_deleted, limit],
                RawRecord::read,
            )?;
            rows.map(|row| row?.parse()).collect()
        })
    }

    /// Checks `claimed_epoch`, reads item `uid`, lets `decide` choose its
    /// next state, then stamps and stores it, all in one `BEGIN IMMEDIATE`
    /// transaction: a wipe commits either before the check or after the
    /// write. Nothing is written when the epoch is stale or `decide` fails.
    pub fn write<E>(
        &self,
        entity: &str,
        uid: Uuid,
        claimed_epoch: i64,
        decide: impl FnOnce(Option<&Record>, &ParentLookup<'_>) -> Result<NewState, E>,
    ) -> Result<Record, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.lock();
        let failed = |e: StoreError| E::from(e.or_damaged(&self.path));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| failed(e.into()))?;
        check_epoch(&tx, claimed_epoch).map_err(failed)?;
        let current = select(&tx, entity, uid).map_err(failed)?;
        let parents = ParentLookup {
            conn: &tx,
            path: &self.path,
        };
        let next = decide(current.as_ref(), &parents)?;
        let version = current.map_or(1, |c| c.version + 1);
        let record = stamp(uid, version, next_timestamp(&tx).map_err(failed)?, next);
        upsert(&tx, entity, &record).map_err(failed)?;
        tx.commit().map_err(|e| failed(e.into()))?;
        Ok(record)
    }
}

/// Runs `call` against the store on the blocking pool, off the async runtime.
pub async fn blocking<T, E>(
    store: &Arc<Store>,
    call: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| E::from(StoreError::from(e)))?
}

/// What [`check_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// No file yet: the first start creates it.
    Missing,
    Intact,
    /// The check ran out of its time budget before it finished.
    Unfinished,
    /// What SQLite reported, its first problems joined.
    Damaged(String),
    /// The file could not be opened or read for another reason (its
    /// permissions, a lock held past the busy timeout).
    Unreadable(String),
}

/// The most problems a check reports: the first few say enough.
const CHECK_MAX_PROBLEMS: u32 = 5;

/// Checks the database file at `path` with SQLite's `PRAGMA quick_check`,
/// read-only, stopping after `budget`.
///
/// `quick_check`, not `integrity_check`: it reads every page and verifies
/// the b-trees, their records and the free list (the damage a disk or a bad
/// copy does) in time linear in the file's size; what it leaves out is
/// whether each index entry matches its row, which only a bug can break
/// and which costs a lookup per row. The budget bounds it on a huge file.
pub fn check_file(path: &Path, budget: Duration) -> Integrity {
    if !path.exists() {
        return Integrity::Missing;
    }
    let failed = |e: rusqlite::Error| {
        if means_damage(&e) {
            Integrity::Damaged(e.to_string())
        } else if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) {
            Integrity::Unfinished
        } else {
            Integrity::Unreadable(e.to_string())
        }
    };
    let conn = match Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(conn) => conn,
        Err(e) => return failed(e),
    };
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        return failed(e);
    }
    let interrupt = conn.get_interrupt_handle();
    let (finished, stop) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        // Dropping `finished` ends the wait early; only a timeout interrupts.
        if stop.recv_timeout(budget) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
        }
    });
    let problems = conn
        .prepare(&format!("PRAGMA quick_check({CHECK_MAX_PROBLEMS})"))
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
    drop(finished);
    let _ = watchdog.join();
    match problems {
        Ok(rows) if rows.iter().all(|r| r == "ok") => Integrity::Intact,
        // One problem a line, under a "*** in database main ***" heading.
        Ok(rows) => Integrity::Damaged(
            rows.iter()
                .flat_map(|row| row.lines())
                .filter(|line| !line.starts_with("***"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => failed(e),
    }
}

/// Creates the missing directories above the file, each 0700.
fn create_parent_dir(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fsmode::create_private_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_owned(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Makes the database owner-only before SQLite opens it. A missing file is
/// created 0600, so it is never open to others even before its first write
/// (SQLite would create it 0644 less the umask). One found readable by
/// others (an older version created it 0644) is tightened, with its `-wal`
/// and `-shm` if present: they hold recent writes, and SQLite gives new ones
/// the database's mode. Failures are logged, not fatal: the next step,
/// SQLite's open, reports a file it cannot create, and a file we may not
/// chmod (someone else's) is still usable.
fn make_private(path: &Path) {
    if let Err(error) = fsmode::create_private_file(path) {
        tracing::debug!(%error, path = %path.display(), "cannot create the embedded store file");
    }
    let with_suffix = |suffix: &str| {
        let mut name = OsString::from(path.as_os_str());
        name.push(suffix);
        PathBuf::from(name)
    };
    for file in [path.to_owned(), with_suffix("-wal"), with_suffix("-shm")] {
        match fsmode::restrict_file(&file) {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(path = %file.display(), "embedded store file made owner-only")
            }
            Err(error) => tracing::warn!(
                %error,
                path = %file.display(),
                "cannot make the embedded store file owner-only"
            ),
        }
    }
}

/// Why the store at `path` could not be opened: a damaged file is said so,
/// with what to do.
fn open_error(path: &Path, source: rusqlite::Error) -> Error {
    if means_damage(&source) {
        Error::Damaged {
            path: path.to_owned(),
            source,
        }
    } else {
        Error::OpenStore {
            path: path.to_owned(),
            source,
        }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Set first, so the pragmas below also wait for a concurrent opener.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Persistent in the file; readers and the one writer proceed in parallel.
    let mode = crate::sqlite::enable_wal(conn, BUSY_TIMEOUT)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "embedded store could not switch to WAL");
    }
    // Under WAL, NORMAL already survives a killed process (a commit is in
    // the OS page cache before we answer), but can lose the last commits on
    // power loss or an OS crash. A 201 is a promise the note exists, and a
    // local sidecar writes rarely, so pay one fsync per commit: FULL.
    conn.pragma_update(None, "synchronous", "FULL")
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let failed = |source| open_error(path, source);
    let known = MIGRATIONS.len();
    // Check without the write lock first: opening an up-to-date database
    // must not contend with other processes.
    if check_version(conn, known, path)? == known {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    // Another process may have migrated between the check and the lock.
    let from = check_version(&tx, known, path)?;
    for step in &MIGRATIONS[from..] {
        tx.execute_batch(step).map_err(failed)?;
    }
    // user_version lives in the file header, so it commits with the steps.
    tx.pragma_update(
        None,
        "user_version",
        i64::try_from(known).unwrap_or(i64::MAX),
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)?;
    tracing::info!(path = %path.display(), from, to = known, "embedded store migrated");
    Ok(())
}

/// The schema version, refusing one newer than this binary knows.
fn check_version(conn: &Connection, known: usize, path: &Path) -> Result<usize, Error> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| open_error(path, source))?;
    match usize::try_from(version) {
        Ok(v) if v <= known => Ok(v),
        _ => Err(Error::NewerSchema {
            path: PathBuf::from(path),
            found: version,
            supported: known,
        }),
    }
}

/// Refuses a claimed epoch behind the tenant's. A request without
/// `X-Sync-Epoch` claims 0, always behind (epochs start at 1), as on the
/// real service.
fn check_epoch(conn: &Connection, claimed_epoch: i64) -> Result<(), StoreError> {
    let current = read_meta(conn, "epoch")?;
    if claimed_epoch < current {
        Err(StoreError::EpochMismatch(current))
    } else {
        Ok(())
    }
}

fn read_meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
}

fn write_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE meta SET value = ?2 WHERE key = ?1",
        params![key, value],
    )?;
    Ok(())
}

/// The write's timestamp: now, but always after the previous write's, so
/// `(updated_ms, uid)` strictly grows with every write across processes and
/// a listing cursor never skips an item updated behind it (the clock may
/// step back, two writes may share a millisecond). Needs the write lock.
fn next_timestamp(conn: &Connection) -> Result<i64, StoreError> {
    let last = read_meta(conn, "clock_ms")?;
    let ts = now_ms().max(last.saturating_add(1));
    write_meta(conn, "clock_ms", ts)?;
    Ok(ts)
}

/// Writes the server-maintained payload keys and builds the record.
fn stamp(uid: Uuid, version: i64, updated_ms: i64, next: NewState) -> Record {
    let NewState {
        mut payload,
        deleted,
    } = next;
    let deleted_ms = deleted.then_some(updated_ms);
    let mut sync = json!({ "version": version, "isDeleted": deleted });
    if let (Some(ms), Value::Object(map)) = (deleted_ms, &mut sync) {
        map.insert("deletedAt".into(), rfc3339_ms(ms).into());
    }
    payload.insert("uid".into(), uid.to_string().into());
    payload.insert("updatedTs".into(), updated_ms.into());
    payload.insert("updateTime".into(), rfc3339_ms(updated_ms).into());
    payload.insert("sync".into(), sync);
    Record {
        uid,
        version,
        updated_ms,
        deleted_ms,
        payload,
    }
}

fn select(conn: &Connection, entity: &str, uid: Uuid) -> Result<Option<Record>, StoreError> {
    let raw = conn
        .prepare_cached(
            "SELECT uid, version, updated_ms, deleted_ms, payload FROM items WHERE entity = ?1 AND uid = ?2",
        )?
        .query_row(params![entity, uid.to_string()], RawRecord::read)
        .optional()?;
    raw.map(RawRecord::parse).transpose()
}

fn upsert(conn: &Connection, entity: &str, record: &Record) -> Result<(), StoreError> {
    let payload = serde_json::to_string(&record.payload)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "INSERT INTO items (entity, uid, version, updated_ms, deleted_ms, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (entity, uid) DO UPDATE SET
             version = excluded.version, updated_ms = excluded.updated_ms,
             deleted_ms = excluded.deleted_ms, payload = excluded.payload",
    )?
    .execute(params![
        entity,
        record.uid.to_string(),
        record.version,
        record.updated_ms,
        record.deleted_ms,
        payload
    ])?;
    Ok(())
}

/// A row as SQLite returns it, before the uid and payload are parsed.
struct RawRecord {
    uid: String,
    version: i64,
    updated_ms: i64,
    deleted_ms: Option<i64>,
    payload: String,
}

impl RawRecord {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            uid: row.get(0)?,
            version: row.get(1)?,
            updated_ms: row.get(2)?,
            deleted_ms: row.get(3)?,
            payload: row.get(4)?,
        })
    }

    fn parse(self) -> Result<Record, StoreError> {
        let uid = Uuid::parse_str(&self.uid)
            .map_err(|e| StoreError::Corrupt(format!("uid {:?}: {e}", self.uid)))?;
        let payload = match serde_json::from_str(&self.payload) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(StoreError::Corrupt(format!(
                    "payload of {uid} is not an object"
                )));
            }
            Err(e) => return Err(StoreError::Corrupt(format!("payload of {uid}: {e}"))),
        };
        Ok(Record {
            uid,
            version: self.version,
            updated_ms: self.updated_ms,
            deleted_ms: self.deleted_ms,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database's epoch.
    const FIRST_EPOCH: i64 = 1;

    fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("nested/dir/api.db")).expect("open");
        (dir, store)
    }

    fn put(store: &Store, uid: Uuid, title: &str) -> Record {
        let payload = json!({ "title": title })
            .as_object()
            .cloned()
            .unwrap_or_default();
        store
            .write::<StoreError>("notes", uid, FIRST_EPOCH, |_, _| {
                Ok(NewState {
                    payload,
                    deleted: false,
                })
            })
            .expect("write")
    }

    #[test]
    fn opening_creates_parent_dirs_and_starts_at_epoch_one() {
        let (_dir, store) = open_temp();
        assert_eq!(store.epoch().ok(), Some(1));
        assert_eq!(store.bump_epoch().ok(), Some(2));
        assert_eq!(store.epoch().ok(), Some(2));
    }

    /// Two processes starting on a database that does not exist yet (a
    /// sidecar and `serve-api`, two sidecars): both open it. SQLite fails one
    /// of two simultaneous switches to WAL without waiting, so one round in
    /// three failed before the switch was retried; twenty rounds find that.
    #[test]
    fn simultaneous_opens_of_a_new_file_both_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("api.db");
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                let openers: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            Store::open(&path).map(|store| store.epoch().ok())
                        })
                    })
                    .collect();
                for opener in openers {
                    match opener.join().expect("opener") {
                        Ok(epoch) => assert_eq!(epoch, Some(FIRST_EPOCH)),
                        Err(e) => panic!("a simultaneous open failed: {e}"),
                    }
                }
            });
        }
    }

    #[test]
    fn writes_stamp_server_keys_and_raise_versions() {
        let (_dir, store) = open_temp();
        let uid = Uuid::new_v4();
        let first = put(&store, uid, "a");
        let second = put(&store, uid, "b");
        assert_eq!((first.version, second.version), (1, 2));
        assert!(second.updated_ms > first.updated_ms);
        assert_eq!(second.payload["uid"], json!(uid.to_string()));
        assert_eq!(
            second.payload["sync"],
            json!({ "version": 2, "isDeleted": false })
        );
        assert_eq!(
            store.get("notes", uid, FIRST_EPOCH).ok().flatten(),
            Some(second)
        );
    }

    #[test]
    fn a_refused_write_changes_nothing() {
        let (_dir, store) = open_temp();
        let uid = Uuid::new_v4();
        put(&store, uid, "a");
        let refused = store.write("notes", uid, FIRST_EPOCH, |_, _| {
            Err(StoreError::Corrupt("no".into()))
        });
        assert!(refused.is_err());
        assert_eq!(
            store
                .get("notes", uid, FIRST_EPOCH)
                .ok()
                .flatten()
                .map(|r| r.version),
            Some(1)
        );
    }

    /// Every operation checks the claimed epoch itself: after a wipe, a
    /// stale one is refused with the current epoch and writes nothing.
    #[test]
    fn operations_refuse_a_stale_claimed_epoch() {
        let (_dir, store) = open_temp();
        let uid = Uuid::new_v4();
        put(&store, uid, "a");
        let current = store.bump_epoch().expect("wipe");
        let stale = current - 1;
        let refused = store.write::<StoreError>("notes", uid, stale, |_, _| {
            panic!("a stale write must not reach its decision")
        });
        assert!(matches!(refused, Err(StoreError::EpochMismatch(e)) if e == current));
        assert!(matches!(
            store.get("notes", uid, stale),
            Err(StoreError::EpochMismatch(e)) if e == current
        ));
        assert!(matches!(
            store.list("notes", None, 10, true, stale),
            Err(StoreError::EpochMismatch(e)) if e == current
        ));
        assert!(matches!(
            store.check_epoch(stale),
            Err(StoreError::EpochMismatch(e)) if e == current
        ));
        let kept = store.get("notes", uid, current).expect("get");
        assert_eq!(kept.map(|r| r.version), Some(1));
        assert!(store.check_epoch(current).is_ok());
    }

    #[test]
    fn list_pages_in_update_order_and_hides_deleted() {
        let (_dir, store) = open_temp();
        let uids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for uid in &uids {
            put(&store, *uid, "x");
        }
        store
            .write::<StoreError>("notes", uids[1], FIRST_EPOCH, |cur, _| {
                let payload = cur.map(|c| c.payload.clone()).unwrap_or_default();
                Ok(NewState {
                    payload,
                    deleted: true,
                })
            })
            .expect("delete");
        let live: Vec<Uuid> = store
            .list("notes", None, 10, false, FIRST_EPOCH)
            .expect("list")
            .iter()
            .map(|r| r.uid)
            .collect();
        assert_eq!(live, vec![uids[0], uids[2]]);
        let all = store
            .list("notes", None, 10, true, FIRST_EPOCH)
            .expect("list");
        let after = Position {
            updated_ms: all[0].updated_ms,
            uid: all[0].uid,
        };
        let rest: Vec<Uuid> = store
            .list("notes", Some(after), 10, true, FIRST_EPOCH)
            .expect("list")
            .iter()
            .map(|r| r.uid)
            .collect();
        assert_eq!(rest, vec![uids[2], uids[1]]);
    }

    #[test]
    fn parent_lookup_sees_only_live_items() {
        let (_dir, store) = open_temp();
        let parent = Uuid::new_v4();
        put(&store, parent, "p");
        let seen =
            store.write::<StoreError>("comments", Uuid::new_v4(), FIRST_EPOCH, |_, parents| {
                assert!(parents.is_live("notes", parent)?);
                assert!(!parents.is_live("tasks", parent)?);
                Ok(NewState {
                    payload: Payload::new(),
                    deleted: false,
                })
            });
        assert!(seen.is_ok());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.db");
        drop(Store::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        match Store::open(&path) {
            Err(Error::NewerSchema {
                found: 99,
                supported,
                ..
            }) => assert_eq!(supported, MIGRATIONS.len()),
            other => panic!("expected NewerSchema, got {:?}", other.err()),
        }
    }

    /// A row whose bytes were overwritten reads as damage naming the file,
    /// not as an internal error; `check_file` finds it, and tells a missing
    /// file and an intact one apart.
    #[test]
    fn damage_is_named_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.db");
        assert_eq!(
            check_file(&path, Duration::from_secs(5)),
            Integrity::Missing
        );
        let store = Store::open(&path).expect("open");
        let uid = Uuid::new_v4();
        put(&store, uid, "a");
        assert_eq!(check_file(&path, Duration::from_secs(5)), Integrity::Intact);
        store
            .lock()
            .execute("UPDATE items SET payload = X'DEADBEEF'", [])
            .expect("overwrite");
        match store.get("notes", uid, FIRST_EPOCH) {
            Err(StoreError::Damaged { path: named, .. }) => assert_eq!(named, path),
            other => panic!("expected Damaged, got {other:?}"),
        }
        drop(store);
        std::fs::write(&path, vec![0xde; 8192]).expect("overwrite the file");
        assert!(matches!(
            check_file(&path, Duration::from_secs(5)),
            Integrity::Damaged(_)
        ));
    }

    #[test]
    fn reopening_keeps_data_and_does_not_remigrate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.db");
        let uid = Uuid::new_v4();
        put(&Store::open(&path).expect("open"), uid, "kept");
        let again = Store::open(&path).expect("reopen");
        assert_eq!(
            again
                .get("notes", uid, FIRST_EPOCH)
                .ok()
                .flatten()
                .map(|r| r.payload["title"].clone()),
            Some(json!("kept"))
        );
    }
}
