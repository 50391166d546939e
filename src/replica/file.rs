//! The replica file: where it lives, who may read it, whether it is ours,
//! rebuilding it when it is not, and its schema.
//!
//! Opening follows the embedded store (WAL, normal locking mode, busy
//! timeout, `user_version` migrations under `BEGIN IMMEDIATE`), plus what a
//! cache may do that a store of record may not: a file that is not a replica
//! of this key is deleted and started again. Only definite evidence counts
//! (SQLite says "not a database" or "malformed", the application id or the
//! stored key differ, `quick_check` fails): a busy or unreadable file is an
//! error, never a reason to delete.
//!
//! Two processes that find the same damaged file at the same moment may both
//! rebuild it; the one that rebuilt first then works on a file the other has
//! unlinked, consistent but invisible to others, until it reopens. Nothing is
//! lost upstream, and it takes a damaged file to start with.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{ReplicaError, ReplicaKey};
use crate::notices::{self, Notice, RebuildCause};

/// How long a statement waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes the -wal file is cut back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

/// `PRAGMA application_id` of a replica ("TBRP"): tells our file from any
/// other SQLite file without reading its tables.
const APPLICATION_ID: i64 = 0x5442_5250;

/// Forward migrations; step `i` takes the schema from version `i` to `i + 1`.
/// Append only: a released step must never change.
const MIGRATIONS: &[&str] = &[
    // 1: items, their indexed fields, tags, full text, feeds and meta.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;
     CREATE TABLE items (
         id         INTEGER PRIMARY KEY,
         entity     TEXT    NOT NULL,
         uid        TEXT    NOT NULL,
         version    INTEGER NOT NULL,
         updated_ms INTEGER NOT NULL,
         updated_at TEXT    NOT NULL,
         deleted_at TEXT,
         payload    TEXT    NOT NULL,
         status     TEXT,
         parent_uid TEXT,
         chat_uid   TEXT,
         due_ms     INTEGER,
         UNIQUE (entity, uid)
     );
     CREATE INDEX items_by_update ON items (entity, updated_ms, uid);
     CREATE INDEX items_by_time ON items (updated_ms, uid);
     CREATE INDEX items_by_parent ON items (entity, parent_uid, updated_ms, uid);
     CREATE INDEX items_by_chat ON items (entity, chat_uid, updated_ms, uid);
     CREATE TABLE item_tags (
         item_id INTEGER NOT NULL,
         tag     TEXT    NOT NULL,
         PRIMARY KEY (item_id, tag)
     ) WITHOUT ROWID;
     CREATE INDEX item_tags_by_tag ON item_tags (tag);
     CREATE VIRTUAL TABLE items_fts USING fts5(
         title, body, labels,
         tokenize = 'unicode61 remove_diacritics 2'
     );
     CREATE TABLE feeds (
         entity       TEXT PRIMARY KEY,
         cursor       TEXT,
         complete     INTEGER NOT NULL,
         refreshed_ms INTEGER
     ) WITHOUT ROWID;",
];

/// Opens the replica of `key` at `path`, rebuilding it when it is not one.
pub(super) fn open(path: &Path, key: &ReplicaKey) -> Result<Connection, ReplicaError> {
    prepare_dir(path)?;
    if let Some(reason) = rebuild_reason(path, key)? {
        // The reason names the kind of damage, never contents.
        tracing::warn!(path = %path.display(), reason, "replica unusable, rebuilding it empty");
        notices::publish(|| Notice::ReplicaRebuilt(RebuildCause::Unusable(reason)));
        remove_files(path)?;
    }
    prepare_file(path)?;
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    migrate(&mut conn, path, key)?;
    Ok(conn)
}

/// Why the file at `path` must be rebuilt, if it must. Reads only: the
/// header by hand, then through a read-only connection, so a file it
/// refuses (a newer schema) stays as it was.
fn rebuild_reason(path: &Path, key: &ReplicaKey) -> Result<Option<&'static str>, ReplicaError> {
    if !path.exists() {
        return Ok(None);
    }
    // Refuse a newer replica before SQLite opens it: even a read-only
    // connection creates -wal and -shm files beside a WAL database.
    if let Some(version) = header_version(path).map_err(|source| ReplicaError::Io {
        path: path.to_owned(),
        source,
    })? {
        newer_schema_check(version, path)?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // One snapshot for every read below: a process creating the file at
    // this moment must look either not started or done, never half-done.
    let found = conn
        .unchecked_transaction()
        .map_err(ReplicaError::from)
        .and_then(|snapshot| identify(&snapshot, path, key));
    match found {
        Ok(found) => Ok(found),
        Err(ReplicaError::Sqlite(e)) if is_damage(&e) => Ok(Some("not a readable SQLite file")),
        Err(e) => Err(e),
    }
}

/// The schema version in the file header, if the header is a replica's.
/// (A change still in the -wal is not seen here; [`identify`] sees it.)
fn header_version(path: &Path) -> std::io::Result<Option<i64>> {
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path)?;
    match std::io::Read::read_exact(&mut file, &mut header) {
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    // The header layout: https://sqlite.org/fileformat.html#the_database_header
    let field = |at: usize| {
        i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let ours = header.starts_with(b"SQLite format 3\0") && i64::from(field(68)) == APPLICATION_ID;
    Ok(ours.then(|| i64::from(field(60))))
}

fn identify(
    conn: &Connection,
    path: &Path,
    key: &ReplicaKey,
) -> Result<Option<&'static str>, ReplicaError> {
    let app_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if app_id == 0 && version == 0 && schema_is_empty(conn)? {
        // A new file, or one another process has just created.
        return Ok(None);
    }
    if app_id != APPLICATION_ID {
        return Ok(Some("a SQLite file of something else"));
    }
    newer_schema_check(version, path)?;
    if stored_key(conn)?.as_deref() != Some(key.canonical().as_str()) {
        return Ok(Some("the replica of another account"));
    }
    // Damaged pages inside a readable file show up here, not above.
    let check: String = conn.pragma_query_value(None, "quick_check", |r| r.get(0))?;
    Ok((check != "ok").then_some("damaged pages"))
}

fn schema_is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))
}

/// The key a replica was made for; `None` when the file has no key table
/// (then it is not a replica we made).
fn stored_key(conn: &Connection) -> Result<Option<String>, ReplicaError> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'key'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

fn newer_schema_check(version: i64, path: &Path) -> Result<usize, ReplicaError> {
    let known = MIGRATIONS.len();
    match usize::try_from(version) {
        Ok(v) if v <= known => Ok(v),
        _ => Err(ReplicaError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: known,
        }),
    }
}

/// Whether SQLite says the file itself is bad (as opposed to busy, locked or
/// out of reach).
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode = crate::sqlite::enable_wal(conn, BUSY_TIMEOUT)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "replica could not switch to WAL");
    }
    // A first sync writes the whole replica in a few large transactions;
    // without a limit the -wal keeps that size on disk for good.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    // A cache: losing the last commits to a power cut only means fetching
    // them again, so skip the fsync per commit that FULL would cost.
    conn.pragma_update(None, "synchronous", "NORMAL")
}

fn migrate(conn: &mut Connection, path: &Path, key: &ReplicaKey) -> Result<(), ReplicaError> {
    let known = MIGRATIONS.len();
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // Without the write lock first: opening an up-to-date file must not
    // contend with other processes.
    if newer_schema_check(current, path)? < known {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        // Another process may have migrated between the check and the lock.
        let from = newer_schema_check(current, path)?;
        if from < known {
            for step in &MIGRATIONS[from..] {
                tx.execute_batch(step)?;
            }
            if from == 0 {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('key', ?1)",
                    [key.canonical()],
                )?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            }
            // Header fields: they commit with the steps.
            tx.pragma_update(
                None,
                "user_version",
                i64::try_from(known).unwrap_or(i64::MAX),
            )?;
            tx.commit()?;
            tracing::info!(path = %path.display(), from, to = known, "replica migrated");
        }
    }
    check_key(conn, path, key)
}

/// Checks the key again on the file actually opened: another process may
/// have replaced it since it was inspected.
fn check_key(conn: &Connection, path: &Path, key: &ReplicaKey) -> Result<(), ReplicaError> {
    if stored_key(conn)?.as_deref() != Some(key.canonical().as_str()) {
        return Err(ReplicaError::Unusable {
            path: path.to_owned(),
            reason: "it became the replica of another account while opening".into(),
        });
    }
    Ok(())
}

/// Creates the directory (and missing parents) owner-only, and makes the
/// replica's own directory owner-only if it already existed: the directory
/// must be dedicated to this application.
fn prepare_dir(path: &Path) -> Result<(), ReplicaError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let failed = |source| ReplicaError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)?;
    owner_only(dir, 0o700).map_err(failed)
}

/// Creates the database file owner-only before SQLite opens it, and tightens
/// it and any existing `-wal`/`-shm` file. SQLite gives the `-wal` and `-shm`
/// files it creates the main file's mode (with `fchmod`, whatever the umask),
/// so new ones follow.
fn prepare_file(path: &Path) -> Result<(), ReplicaError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| ReplicaError::Io { path, source }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(failed(path))?;
    for file in [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ] {
        match owner_only(&file, 0o600) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            other => other.map_err(failed(&file))?,
        }
    }
    Ok(())
}

#[cfg(unix)]
fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Set, not just created with: the umask cannot weaken it, and a file
    // left looser by someone else is tightened.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn owner_only(path: &Path, _mode: u32) -> std::io::Result<()> {
    // Elsewhere the user's data directory is already private; only report
    // a missing file, as on unix.
    std::fs::metadata(path).map(|_| ())
}

/// Deletes the file and everything SQLite keeps beside it: a stale `-wal`
/// would otherwise be replayed into the new file.
fn remove_files(path: &Path) -> Result<(), ReplicaError> {
    for file in [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
        sibling(path, "-journal"),
    ] {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(ReplicaError::Io {
                    path: file,
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name, as SQLite names its files.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ReplicaKey {
        ReplicaKey {
            base_url: "http://127.0.0.1:8081".into(),
            tenant: "t".into(),
            user_id: "u".into(),
        }
    }

    #[test]
    fn a_new_file_is_migrated_and_recognised() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let conn = open(&path, &key()).expect("open");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).expect("fits"));
        drop(conn);
        assert_eq!(rebuild_reason(&path, &key()).expect("inspect"), None);
        let other = ReplicaKey {
            user_id: "someone else".into(),
            ..key()
        };
        assert_eq!(
            rebuild_reason(&path, &other).expect("inspect"),
            Some("the replica of another account")
        );
    }

    #[test]
    fn sibling_appends_to_the_name() {
        assert_eq!(
            sibling(Path::new("/a/r.db"), "-wal"),
            PathBuf::from("/a/r.db-wal")
        );
    }
}
