//! The replica file and its store: permissions, recognising and rebuilding
//! files, the version rule, tombstones, resets, feeds, sharing between
//! handles, threads and processes, listing cursors and filters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::Connection;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use toolbridge_mcp::replica::{
    FeedState, Filters, ListQuery, Order, Replica, ReplicaError, ReplicaKey, SearchQuery,
    replica_path,
};
use uuid::Uuid;

/// 2025-11-30T10:28:45Z, a base for test timestamps.
const T0: i64 = 1_764_498_525_000;

fn key() -> ReplicaKey {
    ReplicaKey {
        base_url: "https://api.example.com".into(),
        tenant: "tenant_a".into(),
        user_id: "user-1".into(),
    }
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("in range")
        .format(&Rfc3339)
        .expect("formats")
}

/// An item as the upstream sends it.
fn item(uid: Uuid, version: u64, updated_ms: i64, payload: Value) -> Value {
    json!({"uid": uid, "version": version, "updatedAt": rfc3339(updated_ms), "payload": payload})
}

fn tombstone(uid: Uuid, version: u64, updated_ms: i64, payload: Value) -> Value {
    let mut it = item(uid, version, updated_ms, payload);
    it["deletedAt"] = json!(rfc3339(updated_ms));
    it
}

/// A fresh replica in a new directory (kept alive by the returned guard).
fn fresh() -> (tempfile::TempDir, PathBuf, Replica) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = replica_path(&dir.path().join("replicas"), &key());
    let replica = Replica::open(&path, &key()).expect("open");
    (dir, path, replica)
}

/// `n` uids in ascending order, so tests can state orders.
fn sorted_uids(n: usize) -> Vec<Uuid> {
    let mut uids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    uids.sort_by_key(|u| u.to_string());
    uids
}

fn uids_of(items: &[Value]) -> Vec<Uuid> {
    items
        .iter()
        .map(|i| Uuid::parse_str(i["uid"].as_str().expect("uid")).expect("uuid"))
        .collect()
}

fn version_of(replica: &Replica, entity: &str, uid: Uuid) -> Option<i64> {
    replica
        .get(entity, uid)
        .expect("get")
        .and_then(|i| i["version"].as_i64())
}

fn count(replica: &Replica, entity: &str, include_deleted: bool) -> usize {
    let q = ListQuery {
        limit: 1000,
        filters: Filters {
            include_deleted,
            ..Filters::default()
        },
        ..ListQuery::default()
    };
    replica.list(entity, &q).expect("list").items.len()
}

/// Runs `f` with log lines captured as text.
fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buffer.0.lock().expect("lock")).into_owned();
    (out, text)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

// ---------------------------------------------------------------- the file

/// A new replica is a 0600 file in a 0700 directory, and so are SQLite's
/// -wal and -shm files beside it.
#[cfg(unix)]
#[test]
fn open_creates_an_owner_only_file_in_an_owner_only_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replicas = dir.path().join("deep/replicas");
    let path = replica_path(&replicas, &key());
    let replica = Replica::open(&path, &key()).expect("open");
    replica
        .apply(
            "notes",
            &[item(Uuid::new_v4(), 1, T0, json!({"title": "x"}))],
        )
        .expect("apply");
    assert_eq!(replica.path(), path);
    assert_eq!(mode(&replicas), 0o700);
    assert_eq!(mode(&dir.path().join("deep")), 0o700);
    assert_eq!(mode(&path), 0o600);
    for suffix in ["-wal", "-shm"] {
        let file = sibling(&path, suffix);
        assert!(file.exists(), "{suffix} exists while open");
        assert_eq!(mode(&file), 0o600, "{suffix}");
    }
}

/// Files and a directory left readable by others are tightened at open.
#[cfg(unix)]
#[test]
fn open_tightens_loose_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, replica) = fresh();
    replica
        .apply("notes", &[item(Uuid::new_v4(), 1, T0, json!({}))])
        .expect("apply");
    let loose = std::fs::Permissions::from_mode(0o644);
    for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
        std::fs::set_permissions(&file, loose.clone()).expect("loosen");
    }
    let parent = path.parent().expect("parent");
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).expect("loosen");
    let again = Replica::open(&path, &key()).expect("reopen");
    for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(parent), 0o700);
    drop((replica, again));
}

/// Closing and opening again keeps items, feeds and the epoch.
#[test]
fn reopening_keeps_everything() {
    let (_dir, path, replica) = fresh();
    let uid = Uuid::new_v4();
    replica.reset(7).expect("reset");
    replica
        .apply_page(
            "notes",
            &[item(uid, 2, T0, json!({"title": "kept"}))],
            &FeedState {
                cursor: Some("abc".into()),
                complete: true,
                refreshed_ms: Some(T0),
            },
        )
        .expect("apply");
    drop(replica);
    let again = Replica::open(&path, &key()).expect("reopen");
    assert_eq!(again.epoch().expect("epoch"), Some(7));
    assert_eq!(version_of(&again, "notes", uid), Some(2));
    assert_eq!(
        again.feed("notes").expect("feed").cursor.as_deref(),
        Some("abc")
    );
}

/// Garbage bytes where the replica should be (and a stale -wal beside them)
/// are replaced by an empty replica, with a warning and no panic.
#[test]
fn a_garbage_file_is_rebuilt_with_a_warning() {
    for garbage in [
        b"hello".to_vec(),
        (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = replica_path(dir.path(), &key());
        std::fs::write(&path, &garbage).expect("write garbage");
        std::fs::write(sibling(&path, "-wal"), &garbage).expect("write garbage wal");
        let (opened, logs) = with_logs(|| Replica::open(&path, &key()));
        let replica = opened.expect("rebuilt, not an error");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("rebuilding"), "{logs}");
        assert_eq!(replica.epoch().expect("epoch"), None);
        assert_eq!(count(&replica, "notes", true), 0);
        let uid = Uuid::new_v4();
        replica
            .apply("notes", &[item(uid, 1, T0, json!({}))])
            .expect("usable");
        assert_eq!(version_of(&replica, "notes", uid), Some(1));
    }
}

/// A replica whose pages were overwritten in the middle is found by the
/// integrity check at open and rebuilt.
#[test]
fn a_damaged_replica_is_rebuilt() {
    let (_dir, path, replica) = fresh();
    let items: Vec<Value> = (0..400)
        .map(|i| {
            let body = format!("content {i} {}", "lorem ipsum ".repeat(20));
            item(
                Uuid::new_v4(),
                1,
                T0 + i,
                json!({"title": "t", "content": body}),
            )
        })
        .collect();
    replica.apply("notes", &items).expect("apply");
    drop(replica);
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 64 * 1024, "several pages: {}", bytes.len());
    let len = bytes.len();
    for b in &mut bytes[len / 3..len / 3 + 16 * 1024] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("damage");
    let (opened, logs) = with_logs(|| Replica::open(&path, &key()));
    let replica = opened.expect("rebuilt");
    assert!(logs.contains("rebuilding"), "{logs}");
    assert_eq!(count(&replica, "notes", true), 0);
}

/// A SQLite file of something else at the replica's path is rebuilt, and
/// its tables are gone.
#[test]
fn a_foreign_sqlite_file_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = replica_path(dir.path(), &key());
    let other = Connection::open(&path).expect("create");
    other
        .execute_batch(
            "CREATE TABLE items (entity TEXT, uid TEXT, payload TEXT);
             INSERT INTO items VALUES ('notes', 'x', '{}');",
        )
        .expect("foreign schema");
    drop(other);
    let (opened, logs) = with_logs(|| Replica::open(&path, &key()));
    let replica = opened.expect("rebuilt");
    assert!(logs.contains("something else"), "{logs}");
    assert_eq!(count(&replica, "notes", true), 0);
    drop(replica);
    let raw = Connection::open(&path).expect("raw");
    let ours: bool = raw
        .query_row(
            "SELECT count(*) = 1 FROM pragma_table_info('items') WHERE name = 'version'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert!(ours, "the foreign table was replaced by ours");
}

/// A replica of another account at this path is rebuilt before anything of
/// it is read: its items never show.
#[test]
fn another_accounts_replica_is_rebuilt_never_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replica.db");
    let theirs = ReplicaKey {
        user_id: "user-2".into(),
        ..key()
    };
    let uid = Uuid::new_v4();
    let replica = Replica::open(&path, &theirs).expect("open theirs");
    replica
        .apply("notes", &[item(uid, 1, T0, json!({"title": "secret"}))])
        .expect("apply");
    replica.reset(3).expect("epoch");
    replica
        .apply("notes", &[item(uid, 1, T0, json!({"title": "secret"}))])
        .expect("apply");
    drop(replica);
    let (opened, logs) = with_logs(|| Replica::open(&path, &key()));
    let mine = opened.expect("rebuilt");
    assert!(logs.contains("another account"), "{logs}");
    assert_eq!(mine.get("notes", uid).expect("get"), None);
    assert_eq!(mine.epoch().expect("epoch"), None);
    let found = mine
        .search(&SearchQuery {
            text: "secret".into(),
            ..SearchQuery::default()
        })
        .expect("search");
    assert!(found.hits.is_empty());
}

/// A replica made by a newer binary is refused and left byte-for-byte as
/// it was, its side files included.
#[test]
fn a_newer_schema_is_refused_and_untouched() {
    let (_dir, path, replica) = fresh();
    replica
        .apply("notes", &[item(Uuid::new_v4(), 1, T0, json!({}))])
        .expect("apply");
    drop(replica);
    let raw = Connection::open(&path).expect("raw");
    raw.pragma_update(None, "user_version", 99).expect("bump");
    drop(raw);
    let before = std::fs::read(&path).expect("read");
    let side_before: Vec<bool> = ["-wal", "-shm"]
        .iter()
        .map(|s| sibling(&path, s).exists())
        .collect();
    match Replica::open(&path, &key()) {
        Err(ReplicaError::NewerSchema {
            found: 99,
            supported,
            ..
        }) => assert!(supported < 99),
        Err(e) => panic!("expected NewerSchema, got {e}"),
        Ok(_) => panic!("expected NewerSchema, got a replica"),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before);
    let side_after: Vec<bool> = ["-wal", "-shm"]
        .iter()
        .map(|s| sibling(&path, s).exists())
        .collect();
    assert_eq!(side_after, side_before);
}

// ------------------------------------------------------- writes and reads

/// For one item, a higher version always wins, whatever the arrival order;
/// an equal version keeps the stored copy.
#[test]
fn a_higher_version_is_never_replaced_by_a_lower_one() {
    let (_dir, _path, replica) = fresh();
    let uid = Uuid::new_v4();
    let v3 = item(uid, 3, T0 + 3, json!({"title": "three"}));
    let applied = replica
        .apply("tasks", std::slice::from_ref(&v3))
        .expect("apply");
    assert_eq!(
        (applied.inserted, applied.updated, applied.skipped),
        (1, 0, 0)
    );
    let applied = replica
        .apply("tasks", &[item(uid, 2, T0 + 2, json!({"title": "two"}))])
        .expect("apply");
    assert_eq!(
        (applied.inserted, applied.updated, applied.skipped),
        (0, 0, 1)
    );
    assert_eq!(replica.get("tasks", uid).expect("get"), Some(v3.clone()));
    // Same version, other content: the stored copy stays.
    replica
        .apply(
            "tasks",
            &[item(uid, 3, T0 + 9, json!({"title": "other three"}))],
        )
        .expect("apply");
    assert_eq!(replica.get("tasks", uid).expect("get"), Some(v3));
    // Within one batch too: the higher of the two wins, in either order.
    let applied = replica
        .apply(
            "tasks",
            &[
                item(uid, 5, T0 + 5, json!({"title": "five"})),
                item(uid, 4, T0 + 4, json!({"title": "four"})),
            ],
        )
        .expect("apply");
    assert_eq!((applied.updated, applied.skipped), (1, 1));
    let stored = replica.get("tasks", uid).expect("get").expect("present");
    assert_eq!(stored["payload"]["title"], "five");
    // The index followed: the old title is no longer found.
    let found = |text: &str| {
        replica
            .search(&SearchQuery {
                text: text.into(),
                ..SearchQuery::default()
            })
            .expect("search")
            .hits
            .len()
    };
    assert_eq!((found("five"), found("three")), (1, 0));
}

/// Items the upstream could not have sent are counted, not stored, and do
/// not stop the rest of the batch.
#[test]
fn invalid_items_are_counted_and_skipped() {
    let (_dir, _path, replica) = fresh();
    let good = Uuid::new_v4();
    let applied = replica
        .apply(
            "notes",
            &[
                json!({"uid": "nope", "version": 1, "updatedAt": rfc3339(T0), "payload": {}}),
                json!({"uid": Uuid::new_v4(), "updatedAt": rfc3339(T0), "payload": {}}),
                json!({"uid": Uuid::new_v4(), "version": 1, "payload": {}}),
                json!("not an object"),
                item(good, 1, T0, json!({})),
            ],
        )
        .expect("apply");
    assert_eq!((applied.inserted, applied.invalid), (1, 4));
    assert_eq!(count(&replica, "notes", true), 1);
    assert!(matches!(
        replica.apply("widgets", &[]),
        Err(ReplicaError::UnknownEntity(_))
    ));
}

/// `get` returns the upstream's shape with the strings as received: the
/// timestamp's precision, emoji, accents and other scripts.
#[test]
fn items_round_trip_in_the_upstream_shape() {
    let (_dir, _path, replica) = fresh();
    let uid = Uuid::new_v4();
    let sent = json!({
        "uid": uid, "version": 4, "updatedAt": "2026-11-30T10:28:45.12Z",
        "deletedAt": "2026-11-30T10:28:45.12Z",
        "payload": {"title": "Café ☕ 🎉", "content": "Привет, 世界", "tags": ["ελληνικά"],
                    "nested": {"n": 1.5, "list": [null, true]}, "uid": uid}
    });
    replica
        .apply("notes", std::slice::from_ref(&sent))
        .expect("apply");
    assert_eq!(replica.get("notes", uid).expect("get"), Some(sent));
    let live = item(Uuid::new_v4(), 1, T0, json!({}));
    replica
        .apply("notes", std::slice::from_ref(&live))
        .expect("apply");
    let got = replica
        .get(
            "notes",
            Uuid::parse_str(live["uid"].as_str().expect("uid")).expect("uuid"),
        )
        .expect("get")
        .expect("present");
    assert!(
        got.get("deletedAt").is_none(),
        "no deletedAt on a live item"
    );
    assert_eq!(got, live);
    assert_eq!(replica.get("tasks", uid).expect("get"), None, "per entity");
}

/// Tombstones stay out of listings and searches unless asked for; `get`
/// returns them, as the upstream does with `includeDeleted`.
#[test]
fn tombstones_are_hidden_unless_asked_for() {
    let (_dir, _path, replica) = fresh();
    let (live, dead) = (Uuid::new_v4(), Uuid::new_v4());
    replica
        .apply(
            "notes",
            &[
                item(live, 1, T0, json!({"title": "zebra live"})),
                tombstone(dead, 2, T0 + 1, json!({"title": "zebra dead"})),
            ],
        )
        .expect("apply");
    assert_eq!(count(&replica, "notes", false), 1);
    assert_eq!(count(&replica, "notes", true), 2);
    let search = |include_deleted| {
        replica
            .search(&SearchQuery {
                text: "zebra".into(),
                filters: Filters {
                    include_deleted,
                    ..Filters::default()
                },
                ..SearchQuery::default()
            })
            .expect("search")
            .hits
    };
    let hits = search(false);
    assert_eq!(hits.iter().map(|h| h.uid).collect::<Vec<_>>(), vec![live]);
    let hits = search(true);
    let deleted: BTreeMap<Uuid, bool> = hits.iter().map(|h| (h.uid, h.deleted)).collect();
    assert_eq!(deleted, BTreeMap::from([(live, false), (dead, true)]));
    assert!(replica.get("notes", dead).expect("get").is_some());
    // A later undelete (a higher version without deletedAt) brings it back.
    replica
        .apply(
            "notes",
            &[item(dead, 3, T0 + 2, json!({"title": "zebra back"}))],
        )
        .expect("apply");
    assert_eq!(search(false).len(), 2);
}

/// `reset` empties items, index and feeds, and records the epoch.
#[test]
fn reset_empties_and_records_the_epoch() {
    let (_dir, _path, replica) = fresh();
    assert_eq!(replica.epoch().expect("epoch"), None);
    replica.reset(1).expect("reset");
    replica
        .apply_page(
            "chats",
            &[item(Uuid::new_v4(), 1, T0, json!({"title": "gone soon"}))],
            &FeedState {
                cursor: Some("c".into()),
                complete: true,
                refreshed_ms: Some(T0),
            },
        )
        .expect("apply");
    replica.reset(2).expect("reset");
    assert_eq!(replica.epoch().expect("epoch"), Some(2));
    assert_eq!(count(&replica, "chats", true), 0);
    assert_eq!(replica.feed("chats").expect("feed"), FeedState::default());
    let hits = replica
        .search(&SearchQuery {
            text: "gone".into(),
            ..SearchQuery::default()
        })
        .expect("search")
        .hits;
    assert!(hits.is_empty());
    let stats = replica.stats().expect("stats");
    assert!(stats.entities.iter().all(|e| e.live + e.deleted == 0));
    assert_eq!(stats.epoch, Some(2));
}

/// Feed states are per entity; `apply_page` stores items and state together.
#[test]
fn feed_states_are_saved_per_entity() {
    let (_dir, _path, replica) = fresh();
    assert_eq!(replica.feed("notes").expect("feed"), FeedState::default());
    let state = FeedState {
        cursor: Some(URL_SAFE_NO_PAD.encode(format!("{T0}|{}", Uuid::nil()))),
        complete: false,
        refreshed_ms: None,
    };
    let applied = replica
        .apply_page(
            "comments",
            &[item(Uuid::new_v4(), 1, T0, json!({"content": "c"}))],
            &state,
        )
        .expect("apply");
    assert_eq!(applied.inserted, 1);
    assert_eq!(replica.feed("comments").expect("feed"), state);
    assert_eq!(replica.feed("notes").expect("feed"), FeedState::default());
    let done = FeedState {
        complete: true,
        refreshed_ms: Some(T0 + 5),
        ..state
    };
    replica.save_feed("comments", &done).expect("save");
    assert_eq!(replica.feed("comments").expect("feed"), done);
    let stats = replica.stats().expect("stats");
    let comments = stats
        .entities
        .iter()
        .find(|e| e.entity == "comments")
        .expect("comments");
    assert_eq!((comments.live, comments.deleted), (1, 0));
    assert_eq!(comments.feed, done);
    assert!(stats.size_bytes > 0);
}

// ------------------------------------------------------------- sharing

/// The replica can be shared across threads as is.
#[test]
fn a_replica_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Replica>();
}

/// Writes `versions` of every uid through `replica`, in batches, listing
/// and searching between batches.
fn hammer(replica: &Replica, uids: &[Uuid], versions: std::ops::RangeInclusive<u64>, tag: &str) {
    for version in versions {
        let batch: Vec<Value> = uids
            .iter()
            .map(|u| {
                let ms = T0 + i64::try_from(version).expect("small");
                item(
                    *u,
                    version,
                    ms,
                    json!({"title": format!("{tag} v{version}"), "tags": [tag]}),
                )
            })
            .collect();
        replica.apply("notes", &batch).expect("apply never fails");
        let page = replica
            .list(
                "notes",
                &ListQuery {
                    limit: 1000,
                    ..ListQuery::default()
                },
            )
            .expect("list never fails");
        let seen: BTreeSet<Uuid> = uids_of(&page.items).into_iter().collect();
        assert_eq!(seen.len(), page.items.len(), "no duplicate rows");
        replica
            .search(&SearchQuery {
                text: tag.into(),
                ..SearchQuery::default()
            })
            .expect("search never fails");
    }
}

/// After concurrent writers: every uid once, at the highest version any of
/// them wrote, with a search index that agrees.
fn assert_converged(replica: &Replica, uids: &[Uuid], version: i64) {
    let page = replica
        .list(
            "notes",
            &ListQuery {
                limit: 1000,
                ..ListQuery::default()
            },
        )
        .expect("list");
    let got: Vec<Uuid> = uids_of(&page.items);
    let expected: BTreeSet<Uuid> = uids.iter().copied().collect();
    assert_eq!(got.len(), expected.len(), "no lost or duplicated rows");
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), expected);
    for item in &page.items {
        assert_eq!(item["version"].as_i64(), Some(version), "{item}");
    }
    let hits = replica
        .search(&SearchQuery {
            text: format!("v{version}"),
            limit: 100,
            ..SearchQuery::default()
        })
        .expect("search");
    let mut cursor = hits.next_cursor.clone();
    let mut found = hits.hits.len();
    while let Some(c) = cursor {
        let more = replica
            .search(&SearchQuery {
                text: format!("v{version}"),
                limit: 100,
                cursor: Some(c),
                ..SearchQuery::default()
            })
            .expect("search");
        found += more.hits.len();
        cursor = more.next_cursor;
    }
    assert_eq!(found, uids.len(), "one index entry per item");
}

/// Two handles on one file (two connections, locking as two processes do),
/// each on its own thread, writing overlapping items and reading between
/// writes: no error, nothing lost or duplicated, the highest version wins.
#[test]
fn handles_on_threads_share_one_file() {
    let (_dir, path, first) = fresh();
    let uids: Vec<Uuid> = (0..150).map(|_| Uuid::new_v4()).collect();
    let handles: Vec<Replica> = (0..3)
        .map(|_| Replica::open(&path, &key()).expect("open"))
        .chain([first])
        .collect();
    std::thread::scope(|s| {
        for (n, replica) in handles.iter().enumerate() {
            let uids = &uids;
            // Interleaved version ranges: each writer both wins and loses.
            let lo = 1 + u64::try_from(n).expect("small");
            s.spawn(move || hammer(replica, uids, lo..=lo + 8, &format!("w{n}")));
        }
    });
    assert_converged(&handles[0], &uids, 12);
    assert_converged(&handles[2], &uids, 12);
}

/// Several openers of a file that does not exist yet, all at once: each
/// gets a working replica of the same file, and none rebuilds another's.
#[test]
fn simultaneous_opens_of_a_new_file_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = replica_path(dir.path(), &key());
    let start = std::sync::Barrier::new(4);
    let uids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    // Log capture is per thread: each opener captures its own.
    let logs: Vec<String> = std::thread::scope(|s| {
        let openers: Vec<_> = uids
            .iter()
            .map(|uid| {
                let (path, start) = (&path, &start);
                s.spawn(move || {
                    start.wait();
                    let (replica, logs) = with_logs(|| Replica::open(path, &key()));
                    replica
                        .expect("open")
                        .apply("notes", &[item(*uid, 1, T0, json!({}))])
                        .expect("apply");
                    logs
                })
            })
            .collect();
        openers
            .into_iter()
            .map(|o| o.join().expect("opener"))
            .collect()
    });
    let logs = logs.concat();
    assert!(!logs.contains("rebuilding"), "{logs}");
    assert_eq!(logs.matches("replica migrated").count(), 1, "{logs}");
    let replica = Replica::open(&path, &key()).expect("open");
    assert_eq!(count(&replica, "notes", true), uids.len());
}

/// One `Replica` shared by threads through an `Arc`.
#[test]
fn one_handle_shared_by_threads() {
    let (_dir, _path, replica) = fresh();
    let replica = Arc::new(replica);
    let uids: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    std::thread::scope(|s| {
        for n in 0..3u64 {
            let (replica, uids) = (Arc::clone(&replica), &uids);
            s.spawn(move || hammer(&replica, uids, n + 1..=n + 5, "shared"));
        }
    });
    assert_converged(&replica, &uids, 7);
}

const CHILD_PATH: &str = "REPLICA_TEST_CHILD_PATH";
const CHILD_ROLE: &str = "REPLICA_TEST_CHILD_ROLE";
const SHARED_UIDS: &str = "REPLICA_TEST_SHARED_UIDS";

/// Not a test on its own: the body of the processes that
/// `processes_share_one_file` starts.
#[test]
#[ignore = "run as a child process by processes_share_one_file"]
fn child_process_writer() {
    let (Ok(path), Ok(role), Ok(uids)) = (
        std::env::var(CHILD_PATH),
        std::env::var(CHILD_ROLE),
        std::env::var(SHARED_UIDS),
    ) else {
        return;
    };
    let uids: Vec<Uuid> = uids
        .split(',')
        .map(|u| Uuid::parse_str(u).expect("uid"))
        .collect();
    let n: u64 = role.parse().expect("role");
    let replica = Replica::open(Path::new(&path), &key()).expect("child open");
    hammer(&replica, &uids, n + 1..=n + 10, &format!("p{n}"));
}

/// Real processes (this test binary, run again) writing the same file at
/// once: both succeed, and the file holds each item once at its highest
/// version.
#[test]
fn processes_share_one_file() {
    let (_dir, path, replica) = fresh();
    let uids: Vec<Uuid> = (0..120).map(|_| Uuid::new_v4()).collect();
    let list = uids
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().expect("test binary");
    let mut children: Vec<std::process::Child> = (0..2)
        .map(|n| {
            std::process::Command::new(&exe)
                .args([
                    "child_process_writer",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_PATH, &path)
                .env(CHILD_ROLE, n.to_string())
                .env(SHARED_UIDS, &list)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    // This process writes and reads too, until both children are done.
    while children
        .iter_mut()
        .any(|c| c.try_wait().expect("child status").is_none())
    {
        hammer(&replica, &uids, 1..=4, "parent");
    }
    for child in children {
        let out = child.wait_with_output().expect("child ran");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_converged(&replica, &uids, 11);
}

// ------------------------------------------------------------- listing

/// Pages every item of `entity` with `q`, returning them and the cursors.
fn all_pages(replica: &Replica, entity: &str, q: &ListQuery) -> (Vec<Uuid>, Vec<String>) {
    let mut q = q.clone();
    let (mut seen, mut cursors) = (Vec::new(), Vec::new());
    loop {
        // A cursor that fails to advance must fail the test, not hang it.
        assert!(seen.len() <= 10_000, "paging does not end");
        let page = replica.list(entity, &q).expect("list");
        assert!(page.items.len() <= q.limit);
        seen.extend(uids_of(&page.items));
        match page.next_cursor {
            Some(c) => {
                assert_eq!(page.items.len(), q.limit, "a cursor only on a full page");
                cursors.push(c.clone());
                q.cursor = Some(c);
            }
            None => {
                assert!(page.items.len() < q.limit || page.items.is_empty());
                return (seen, cursors);
            }
        }
    }
}

/// 40 items over 8 timestamps (five share each): pages of every size cover
/// all items exactly once, in (updated, uid) order both ways.
#[test]
fn pages_cover_every_item_once_in_both_orders() {
    let (_dir, _path, replica) = fresh();
    let uids = sorted_uids(40);
    // Timestamps grouped, and not in uid order, so both keys matter.
    let ms_of = |i: usize| T0 + i64::try_from((i * 3) % 8).expect("small");
    let items: Vec<Value> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| item(*u, 1, ms_of(i), json!({})))
        .collect();
    replica.apply("notes", &items).expect("apply");
    let mut expected: Vec<(i64, String, Uuid)> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| (ms_of(i), u.to_string(), *u))
        .collect();
    expected.sort();
    let oldest: Vec<Uuid> = expected.iter().map(|e| e.2).collect();
    let newest: Vec<Uuid> = oldest.iter().rev().copied().collect();
    for limit in [1, 3, 5, 7, 40, 41, 1000] {
        for (order, want) in [(Order::Oldest, &oldest), (Order::Newest, &newest)] {
            let q = ListQuery {
                order,
                limit,
                ..ListQuery::default()
            };
            let (seen, cursors) = all_pages(&replica, "notes", &q);
            assert_eq!(&seen, want, "{order:?} by {limit}");
            for c in &cursors {
                assert_eq!(c.starts_with("n."), order == Order::Newest, "{c}");
            }
        }
    }
}

/// The oldest-first cursor is the upstream's: one built by hand in the
/// upstream format continues here, and ours decodes as the upstream's.
#[test]
fn oldest_first_cursors_interoperate_with_the_upstream() {
    let (_dir, _path, replica) = fresh();
    let uids = sorted_uids(6);
    // Two items per millisecond: T0, T0+1, T0+2.
    let items: Vec<Value> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| item(*u, 1, T0 + i64::try_from(i / 2).expect("small"), json!({})))
        .collect();
    replica.apply("tasks", &items).expect("apply");
    let upstream = |ms: i64, uid: &str| URL_SAFE_NO_PAD.encode(format!("{ms}|{uid}"));
    let after = |cursor: String| {
        let q = ListQuery {
            cursor: Some(cursor),
            ..ListQuery::default()
        };
        uids_of(&replica.list("tasks", &q).expect("list").items)
    };
    // "From this millisecond on", as the contract suggests re-reading.
    assert_eq!(after(upstream(T0 + 1, &Uuid::nil().to_string())), uids[2..]);
    // Strictly after an item: its twin with the same stamp comes next.
    assert_eq!(after(upstream(T0 + 1, &uids[2].to_string())), uids[3..]);
    assert_eq!(
        after(upstream(T0 + 2, &uids[5].to_string())),
        Vec::<Uuid>::new()
    );
    // Our cursor is exactly what the upstream would have sent.
    let page = replica
        .list(
            "tasks",
            &ListQuery {
                limit: 3,
                ..ListQuery::default()
            },
        )
        .expect("list");
    assert_eq!(
        page.next_cursor,
        Some(upstream(T0 + 1, &uids[2].to_string()))
    );
    // A newest-first cursor is not an oldest-first one, nor the reverse.
    let newest = replica
        .list(
            "tasks",
            &ListQuery {
                order: Order::Newest,
                limit: 2,
                ..ListQuery::default()
            },
        )
        .expect("list");
    let newest_cursor = newest.next_cursor.expect("full page");
    for (order, cursor) in [
        (Order::Oldest, newest_cursor),
        (Order::Newest, upstream(T0, &uids[0].to_string())),
        (Order::Oldest, "garbage!".to_owned()),
    ] {
        let q = ListQuery {
            order,
            cursor: Some(cursor),
            ..ListQuery::default()
        };
        assert!(matches!(
            replica.list("tasks", &q),
            Err(ReplicaError::BadCursor)
        ));
    }
}

/// Every list filter, alone and combined, against items built to match or
/// miss each one.
#[test]
fn every_filter_selects_what_it_says() {
    let (_dir, _path, replica) = fresh();
    let (note, task) = (Uuid::new_v4(), Uuid::new_v4());
    let (chat_a, chat_b) = (Uuid::new_v4(), Uuid::new_v4());
    let u = sorted_uids(8);
    let day = 86_400_000;
    replica
        .apply(
            "tasks",
            &[
                item(u[0], 1, T0, json!({"tags": ["a", "b"], "status": "open", "dueDate": "2026-12-01"})),
                item(u[1], 1, T0 + 10, json!({"tags": ["a"], "status": "completed", "dueDate": "2026-12-03T12:00:00Z"})),
                item(u[2], 1, T0 + 20, json!({"tags": ["b", "a", "c"], "status": "open", "parentUid": task.to_string().to_uppercase()})),
                tombstone(u[3], 2, T0 + 30, json!({"tags": ["a", "b"], "status": "open"})),
            ],
        )
        .expect("apply");
    replica
        .apply(
            "comments",
            &[
                item(
                    u[4],
                    1,
                    T0,
                    json!({"parentType": "note", "parentUid": note, "content": "x"}),
                ),
                item(
                    u[5],
                    1,
                    T0 + 1,
                    json!({"parentType": "task", "parentUid": task, "content": "y"}),
                ),
            ],
        )
        .expect("apply");
    replica
        .apply(
            "chat_messages",
            &[
                item(u[6], 1, T0, json!({"chatUid": chat_a, "content": "hi"})),
                item(u[7], 1, T0 + 1, json!({"chatUid": chat_b, "content": "yo"})),
            ],
        )
        .expect("apply");
    let due = |date: &str| {
        OffsetDateTime::parse(date, &Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("fits"))
            .expect("date")
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Filters, Vec<Uuid>)> = vec![
        ("tasks", Filters::default(), vec![u[0], u[1], u[2]]),
        ("tasks", Filters { include_deleted: true, ..Filters::default() }, vec![u[0], u[1], u[2], u[3]]),
        ("tasks", Filters { tags: vec!["a".into()], ..Filters::default() }, vec![u[0], u[1], u[2]]),
        ("tasks", Filters { tags: vec!["a".into(), "b".into()], ..Filters::default() }, vec![u[0], u[2]]),
        ("tasks", Filters { tags: vec!["a".into(), "b".into(), "c".into()], ..Filters::default() }, vec![u[2]]),
        ("tasks", Filters { tags: vec!["A".into()], ..Filters::default() }, vec![]),
        ("tasks", Filters { tags: vec!["a".into(), "b".into()], include_deleted: true, ..Filters::default() }, vec![u[0], u[2], u[3]]),
        ("tasks", Filters { status: Some("open".into()), ..Filters::default() }, vec![u[0], u[2]]),
        ("tasks", Filters { status: Some("completed".into()), ..Filters::default() }, vec![u[1]]),
        // After is exclusive, before inclusive.
        ("tasks", Filters { updated_after: Some(T0), ..Filters::default() }, vec![u[1], u[2]]),
        ("tasks", Filters { updated_before: Some(T0 + 10), ..Filters::default() }, vec![u[0], u[1]]),
        ("tasks", Filters { updated_after: Some(T0), updated_before: Some(T0 + 10), ..Filters::default() }, vec![u[1]]),
        // A plain date is 00:00 UTC; items without a due date never match.
        ("tasks", Filters { due_before: Some(due("2026-12-01T00:00:00Z")), ..Filters::default() }, vec![u[0]]),
        ("tasks", Filters { due_after: Some(due("2026-12-01T00:00:00Z")), ..Filters::default() }, vec![u[1]]),
        ("tasks", Filters { due_after: Some(due("2026-11-01T00:00:00Z")), due_before: Some(due("2026-12-03T12:00:00Z")), ..Filters::default() }, vec![u[0], u[1]]),
        ("tasks", Filters { due_before: Some(due("2026-12-03T12:00:00Z") - 1), due_after: Some(due("2026-12-01T00:00:00Z") - day), ..Filters::default() }, vec![u[0]]),
        // Parents compare as uids, whatever case the payload used.
        ("tasks", Filters { parent_uid: Some(task), ..Filters::default() }, vec![u[2]]),
        ("comments", Filters { parent_uid: Some(task), ..Filters::default() }, vec![u[5]]),
        ("comments", Filters { parent_uid: Some(note), ..Filters::default() }, vec![u[4]]),
        ("comments", Filters { parent_uid: Some(chat_a), ..Filters::default() }, vec![]),
        ("chat_messages", Filters { chat_uid: Some(chat_a), ..Filters::default() }, vec![u[6]]),
        ("chat_messages", Filters { chat_uid: Some(chat_b), ..Filters::default() }, vec![u[7]]),
        ("tasks", Filters { status: Some("open".into()), tags: vec!["c".into()], parent_uid: Some(task), ..Filters::default() }, vec![u[2]]),
    ];
    for (entity, filters, want) in cases {
        let q = ListQuery {
            limit: 100,
            filters: filters.clone(),
            ..ListQuery::default()
        };
        let got = uids_of(&replica.list(entity, &q).expect("list").items);
        assert_eq!(got, want, "{entity} {filters:?}");
    }
}

/// Limits outside 1..=1000 are clamped, not errors.
#[test]
fn limits_are_clamped() {
    let (_dir, _path, replica) = fresh();
    let items: Vec<Value> = (0..1005)
        .map(|i| item(Uuid::new_v4(), 1, T0 + i, json!({})))
        .collect();
    replica.apply("notes", &items).expect("apply");
    let page = |limit| {
        replica
            .list(
                "notes",
                &ListQuery {
                    limit,
                    ..ListQuery::default()
                },
            )
            .expect("list")
            .items
            .len()
    };
    assert_eq!((page(0), page(1), page(5000)), (1, 1, 1000));
}

/// What a subscription compares: an item's version and the sum of its
/// children's (a note's comments by `parentUid`, a chat's messages by
/// `chatUid`), which any create, update or delete of one of them changes;
/// another item's children do not count.
#[test]
fn versions_with_sums_the_children_under_an_item() {
    let (_dir, _path, replica) = fresh();
    let u = sorted_uids(6);
    let (note, chat, other) = (u[0], u[1], u[2]);
    replica
        .apply("notes", &[item(note, 3, T0, json!({"title": "n"}))])
        .expect("apply");
    replica
        .apply("chats", &[item(chat, 1, T0, json!({"title": "c"}))])
        .expect("apply");
    let seen = |entity, uid, children| replica.versions_with(entity, uid, children).expect("read");
    assert_eq!(seen("notes", note, Some("comments")), Some((3, 0)));
    assert_eq!(seen("notes", other, Some("comments")), None);
    replica
        .apply(
            "comments",
            &[
                item(u[3], 2, T0, json!({"parentUid": note, "content": "a"})),
                item(u[4], 5, T0, json!({"parentUid": other, "content": "b"})),
            ],
        )
        .expect("apply");
    assert_eq!(seen("notes", note, Some("comments")), Some((3, 2)));
    assert_eq!(seen("notes", note, None), Some((3, 0)));
    replica
        .apply(
            "comments",
            &[tombstone(u[3], 3, T0 + 1, json!({"parentUid": note}))],
        )
        .expect("apply");
    assert_eq!(seen("notes", note, Some("comments")), Some((3, 3)));
    replica
        .apply(
            "chat_messages",
            &[item(u[5], 1, T0, json!({"chatUid": chat, "content": "hi"}))],
        )
        .expect("apply");
    assert_eq!(seen("chats", chat, Some("chat_messages")), Some((1, 1)));
}
