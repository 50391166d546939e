//! Filters, listing and list cursors (formats: [`ListQuery`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;
use uuid::Uuid;

use super::ReplicaError;
use super::store::item_json;

/// The most items one list page holds, as upstream.
pub const MAX_LIST_LIMIT: usize = 1000;

/// What every listing and search can narrow by. All given filters must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Also return tombstones (items carrying `deletedAt`). Default: not.
    pub include_deleted: bool,
    /// Items whose payload `tags` array holds every one of these (exact,
    /// case-sensitive comparison).
    pub tags: Vec<String>,
    /// Items whose payload `status` equals this.
    pub status: Option<String>,
    /// Updated strictly after this instant (unix ms).
    pub updated_after: Option<i64>,
    /// Updated at or before this instant (unix ms).
    pub updated_before: Option<i64>,
    /// Due strictly after this instant (unix ms): payload `dueDate`, RFC 3339
    /// or a plain date taken as 00:00 UTC. Items without one are excluded.
    pub due_after: Option<i64>,
    /// Due at or before this instant (unix ms).
    pub due_before: Option<i64>,
    /// Items whose payload `parentUid` is this: comments on a note or task,
    /// subtasks of a task.
    pub parent_uid: Option<Uuid>,
    /// Items whose payload `chatUid` is this: messages of a chat.
    pub chat_uid: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By `(updated ms, uid)` ascending, as the upstream lists.
    #[default]
    Oldest,
    /// By `(updated ms, uid)` descending.
    Newest,
}

/// One page of one entity's items, in `(updated ms, uid)` order.
///
/// Cursors name a position `(updated ms, uid)` in that order:
/// - oldest first: exactly the upstream's format, base64url without padding
///   of `"<updated ms>|<uid>"`, meaning "strictly after". A page from the
///   upstream can be continued here and a page from here upstream;
/// - newest first: `n.` and the same, meaning "strictly before". A `.` never
///   appears in base64url, so the two cannot be confused.
///
/// An undecodable cursor, or one of the other order than the query's, is
/// [`ReplicaError::BadCursor`].
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub order: Order,
    /// Items per page, clamped to `1..=1000`.
    pub limit: usize,
    /// From [`Page::next_cursor`] (or, oldest first, an upstream cursor).
    pub cursor: Option<String>,
    pub filters: Filters,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            order: Order::Oldest,
            limit: 50,
            cursor: None,
            filters: Filters::default(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Items in the upstream's shape `{uid, version, updatedAt, deletedAt?,
    /// payload}`.
    pub items: Vec<Value>,
    /// Present only when the page is full: there may be more.
    pub next_cursor: Option<String>,
}

/// A place in the listing order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    updated_ms: i64,
    /// Canonical (lower-case) form, as stored and as the upstream orders.
    uid: String,
}

const NEWEST_PREFIX: &str = "n.";

fn encode_cursor(order: Order, at: &Position) -> String {
    let raw = URL_SAFE_NO_PAD.encode(format!("{}|{}", at.updated_ms, at.uid));
    match order {
        Order::Oldest => raw,
        Order::Newest => format!("{NEWEST_PREFIX}{raw}"),
    }
}

/// The cursor that continues a listing in `order` right after `item` (an
/// upstream-shaped item): for a page cut short, whichever path served it.
pub fn cursor_after(order: Order, item: &Value) -> Option<String> {
    let updated_ms = super::item::rfc3339_ms(item.get("updatedAt")?.as_str()?)?;
    let uid = Uuid::parse_str(item.get("uid")?.as_str()?).ok()?;
    Some(encode_cursor(
        order,
        &Position {
            updated_ms,
            uid: uid.hyphenated().to_string(),
        },
    ))
}

fn decode_cursor(order: Order, cursor: &str) -> Result<Position, ReplicaError> {
    let raw = match (order, cursor.strip_prefix(NEWEST_PREFIX)) {
        (Order::Oldest, None) => cursor,
        (Order::Newest, Some(raw)) => raw,
        _ => return Err(ReplicaError::BadCursor),
    };
    let decoded = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| ReplicaError::BadCursor)?;
    let text = std::str::from_utf8(&decoded).map_err(|_| ReplicaError::BadCursor)?;
    let (ms, uid) = text.split_once('|').ok_or(ReplicaError::BadCursor)?;
    Ok(Position {
        updated_ms: ms.parse().map_err(|_| ReplicaError::BadCursor)?,
        uid: Uuid::parse_str(uid)
            .map_err(|_| ReplicaError::BadCursor)?
            .to_string(),
    })
}

/// A `WHERE` clause being built, with its parameters in order.
#[derive(Default)]
pub(super) struct Where {
    clauses: Vec<String>,
    pub params: Vec<Sql>,
}

impl Where {
    /// Adds `clause`, whose `?` placeholders take `params` in order.
    pub fn and(&mut self, clause: &str, params: impl IntoIterator<Item = Sql>) {
        self.clauses.push(clause.to_owned());
        self.params.extend(params);
    }

    /// Adds the filters, on the items table aliased `i`.
    pub fn filters(&mut self, f: &Filters) {
        if !f.include_deleted {
            self.and("i.deleted_at IS NULL", []);
        }
        for tag in &f.tags {
            self.and(
                // Not correlated: SQLite may start from the tag's index.
                "i.id IN (SELECT item_id FROM item_tags WHERE tag = ?)",
                [Sql::Text(tag.clone())],
            );
        }
        let text = |s: &String| Sql::Text(s.clone());
        let uid = |u: &Uuid| Sql::Text(u.to_string());
        let bounds: [(&str, Option<Sql>); 7] = [
            ("i.status = ?", f.status.as_ref().map(text)),
            ("i.updated_ms > ?", f.updated_after.map(Sql::Integer)),
            ("i.updated_ms <= ?", f.updated_before.map(Sql::Integer)),
            ("i.due_ms > ?", f.due_after.map(Sql::Integer)),
            ("i.due_ms <= ?", f.due_before.map(Sql::Integer)),
            ("i.parent_uid = ?", f.parent_uid.as_ref().map(uid)),
            ("i.chat_uid = ?", f.chat_uid.as_ref().map(uid)),
        ];
        for (clause, value) in bounds {
            if let Some(value) = value {
                self.and(clause, [value]);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The clauses joined by `op` (`AND`, `OR`); `1` (true) when none.
    pub fn joined(&self, op: &str) -> String {
        if self.clauses.is_empty() {
            "1".to_owned()
        } else {
            let clauses: Vec<String> = self.clauses.iter().map(|c| format!("({c})")).collect();
            clauses.join(&format!(" {op} "))
        }
    }
}

/// The page of `entity` that `q` asks for, in one statement (a consistent
/// snapshot).
pub(super) fn list(conn: &Connection, entity: &str, q: &ListQuery) -> Result<Page, ReplicaError> {
    let limit = q.limit.clamp(1, MAX_LIST_LIMIT);
    let mut filter = Where::default();
    filter.and("i.entity = ?", [Sql::Text(entity.to_owned())]);
    let (cmp, dir) = match q.order {
        Order::Oldest => (">", "ASC"),
        Order::Newest => ("<", "DESC"),
    };
    if let Some(cursor) = &q.cursor {
        let at = decode_cursor(q.order, cursor)?;
        filter.and(
            &format!("(i.updated_ms, i.uid) {cmp} (?, ?)"),
            [Sql::Integer(at.updated_ms), Sql::Text(at.uid)],
        );
    }
    filter.filters(&q.filters);
    let sql = format!(
        "SELECT i.uid, i.version, i.updated_at, i.deleted_at, i.payload, i.updated_ms
         FROM items i WHERE {} ORDER BY i.updated_ms {dir}, i.uid {dir} LIMIT {limit}",
        filter.joined("AND")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(filter.params))?;
    let mut items = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next()? {
        let uid: String = row.get(0)?;
        items.push(item_json(
            &uid,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            &row.get::<_, String>(4)?,
        )?);
        last = Some(Position {
            updated_ms: row.get(5)?,
            uid,
        });
    }
    let next_cursor = last
        .filter(|_| items.len() == limit)
        .map(|at| encode_cursor(q.order, &at));
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_in_their_own_order_only() {
        let at = Position {
            updated_ms: 1_700_000_000_120,
            uid: Uuid::new_v4().to_string(),
        };
        for order in [Order::Oldest, Order::Newest] {
            let cursor = encode_cursor(order, &at);
            assert_eq!(decode_cursor(order, &cursor).ok(), Some(at.clone()));
            let other = match order {
                Order::Oldest => Order::Newest,
                Order::Newest => Order::Oldest,
            };
            assert!(matches!(
                decode_cursor(other, &cursor),
                Err(ReplicaError::BadCursor)
            ));
        }
    }

    #[test]
    fn the_oldest_first_cursor_is_the_upstreams() {
        let uid = "6f1c0c56-1b7e-4a53-9b1e-6f5d7f0e3c11";
        let at = Position {
            updated_ms: 1_764_498_525_120,
            uid: uid.into(),
        };
        let upstream = URL_SAFE_NO_PAD.encode(format!("1764498525120|{uid}"));
        assert_eq!(encode_cursor(Order::Oldest, &at), upstream);
        // An upper-case uid is still the same position.
        let shouting = URL_SAFE_NO_PAD.encode(format!("1764498525120|{}", uid.to_uppercase()));
        assert_eq!(decode_cursor(Order::Oldest, &shouting).ok(), Some(at));
    }

    #[test]
    fn garbage_cursors_are_refused() {
        for bad in [
            "",
            "not a cursor!",
            "n.",
            "n.n.abc",
            &URL_SAFE_NO_PAD.encode("12|nope"),
            &URL_SAFE_NO_PAD.encode("soon|6f1c0c56-1b7e-4a53-9b1e-6f5d7f0e3c11"),
            &URL_SAFE_NO_PAD.encode("12"),
            &URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert!(
                matches!(
                    decode_cursor(Order::Oldest, bad),
                    Err(ReplicaError::BadCursor)
                ),
                "{bad:?}"
            );
        }
    }
}
