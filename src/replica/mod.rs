//! The local replica: a SQLite copy of one user's items, for fast local
//! listing and full-text search.
//!
//! One file per [`ReplicaKey`] (API base URL, tenant, user id), at
//! [`replica_path`] under a directory of its own. It holds every item of the
//! five entities as the upstream sends them (`{uid, version, updatedAt,
//! deletedAt?, payload}`), the upstream epoch the items belong to, and per
//! entity the feed state (saved cursor, first full sync done, last refresh).
//! Keeping it in step with the upstream is the caller's job: this module
//! stores, indexes and queries.
//!
//! It is a cache: deleting the file loses nothing. So [`Replica::open`]
//! rebuilds it empty, with a `warn` log line, when it is not a SQLite file,
//! is damaged, belongs to another application, or is the replica of another
//! key. The one file it never touches is a replica whose schema is newer than
//! this binary knows: [`ReplicaError::NewerSchema`], and the caller runs
//! without a replica.
//!
//! Several processes may share the file: WAL journal, normal locking mode,
//! a busy timeout, and every write one `BEGIN IMMEDIATE` transaction that
//! reads the stored version before it writes, so none loses or duplicates a
//! row. For one item a higher version always wins (upstream contract §8):
//! an item is written only when its version is strictly greater than the
//! stored one, so an equal version keeps the stored copy.
//!
//! The parts:
//! - `file`: the file itself: path, permissions, recognising ours, rebuilding,
//!   schema migrations;
//! - `item`: an upstream item parsed and what is indexed from its payload;
//! - `store`: [`Replica`], its writes (each reporting what it changed, as
//!   [`Change`]s) and single-item reads;
//! - `query`: filters, listing and cursors;
//! - `search`: full-text search;
//! - `follow`: [`Follower`], which keeps the replica in step with the
//!   upstream and decides when it may answer a read.

mod file;
mod follow;
mod item;
mod query;
mod search;
mod store;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use follow::{Follower, Freshness, Ready};
pub use query::{Filters, ListQuery, MAX_LIST_LIMIT, Order, Page, cursor_after};
pub use search::{
    DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, MAX_TERMS, SearchHit, SearchPage, SearchQuery,
};
pub use store::{Applied, Change, ChangeKind, EntityStats, FeedState, Replica, ReplicaStats};

/// The entities a replica holds, by their collection names (the last segment
/// of their upstream path, and the catalog's `plural`).
pub const ENTITIES: [&str; 5] = ["notes", "tasks", "comments", "chats", "chat_messages"];

/// Whose items a replica holds. Compared exactly: give the base URL in one
/// canonical form (as the upstream client displays it), and the `userId` the
/// upstream's session returned, never anything derived from a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaKey {
    pub base_url: String,
    pub tenant: String,
    pub user_id: String,
}

impl ReplicaKey {
    /// An unambiguous text form: stored in the file and hashed for its name.
    fn canonical(&self) -> String {
        // A JSON array cannot confuse fields, whatever they contain.
        serde_json::json!([self.base_url, self.tenant, self.user_id]).to_string()
    }
}

/// The replica file of `key` under `dir`: `<dir>/replica-<16 hex>.db`, the
/// hex being the start of the SHA-256 of the key. The name only spreads keys
/// over files; the key itself is stored inside and checked at open.
pub fn replica_path(dir: &Path, key: &ReplicaKey) -> PathBuf {
    let digest = Sha256::digest(key.canonical().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("replica-{hex}.db"))
}

/// Why a replica call failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The file is a replica of a newer schema; it was left untouched.
    #[error(
        "replica {path} has schema version {found}, newer than the {supported} this binary knows"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: usize,
    },
    /// Preparing the directory or the file failed.
    #[error("replica {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file could not be made usable, even after a rebuild.
    #[error("replica {path} is unusable: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Not one of [`ENTITIES`].
    #[error("unknown entity {0:?}")]
    UnknownEntity(String),
    /// A list or search cursor that this module did not make (or, for the
    /// oldest-first order, that is not in the upstream's format), or one of
    /// the other order. The caller reports it as invalid input.
    #[error("invalid cursor")]
    BadCursor,
    /// A stored row no longer parses.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The entity's name as stored, or [`ReplicaError::UnknownEntity`].
fn known_entity(name: &str) -> Result<&'static str, ReplicaError> {
    ENTITIES
        .iter()
        .copied()
        .find(|e| *e == name)
        .ok_or_else(|| ReplicaError::UnknownEntity(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_the_catalogs() {
        let catalog: Vec<&str> = crate::catalog::entities::ENTITIES
            .iter()
            .map(|e| e.plural)
            .collect();
        assert_eq!(catalog, ENTITIES);
    }

    #[test]
    fn the_path_depends_on_every_part_of_the_key() {
        let dir = Path::new("/data");
        let key = ReplicaKey {
            base_url: "https://api.example.com".into(),
            tenant: "t".into(),
            user_id: "u".into(),
        };
        let path = replica_path(dir, &key);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            name.starts_with("replica-") && name.ends_with(".db"),
            "{name}"
        );
        assert_eq!(name.len(), "replica-".len() + 16 + ".db".len());
        assert_eq!(replica_path(dir, &key.clone()), path, "stable");
        for other in [
            ReplicaKey {
                base_url: "https://api.example.org".into(),
                ..key.clone()
            },
            ReplicaKey {
                tenant: "t2".into(),
                ..key.clone()
            },
            ReplicaKey {
                user_id: "u2".into(),
                ..key.clone()
            },
            // Moving a character between fields is another key.
            ReplicaKey {
                tenant: "tu".into(),
                user_id: "".into(),
                ..key.clone()
            },
        ] {
            assert_ne!(replica_path(dir, &other), path, "{other:?}");
        }
    }
}
