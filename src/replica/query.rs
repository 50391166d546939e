//! Filters, listing and list cursors (formats: [`ListQuery`]).

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;
use uuid::Uuid;

use super::ReplicaError;
use super::store::item_json;
use crate::catalog::cursor::{Cursor, Position};

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
/// Its cursors are [`Cursor::After`] oldest first (the upstream's own format,
/// so a page from the upstream can be continued here and a page from here
/// upstream) and [`Cursor::Before`] newest first. Any other cursor, or one
/// of the other order, is [`ReplicaError::BadCursor`].
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

fn encode_cursor(order: Order, at: Position) -> String {
    match order {
        Order::Oldest => Cursor::After(at),
        Order::Newest => Cursor::Before(at),
    }
    .to_string()
}

/// The cursor that continues a listing in `order` right after `item` (an
/// upstream-shaped item): for a page cut short, whichever path served it.
pub fn cursor_after(order: Order, item: &Value) -> Option<String> {
    let updated_ms = super::item::rfc3339_ms(item.get("updatedAt")?.as_str()?)?;
    let uid = Uuid::parse_str(item.get("uid")?.as_str()?).ok()?;
    Some(encode_cursor(order, Position { updated_ms, uid }))
}

fn decode_cursor(order: Order, cursor: &str) -> Result<Position, ReplicaError> {
    match (order, Cursor::parse(cursor)) {
        (Order::Oldest, Some(Cursor::After(at))) | (Order::Newest, Some(Cursor::Before(at))) => {
            Ok(at)
        }
        _ => Err(ReplicaError::BadCursor),
    }
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
            [
                Sql::Integer(at.updated_ms),
                Sql::Text(at.uid.hyphenated().to_string()),
            ],
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
        last = Some((row.get::<_, i64>(5)?, uid));
    }
    let next_cursor = match last.filter(|_| items.len() == limit) {
        Some((updated_ms, uid)) => {
            let uid = Uuid::parse_str(&uid)
                .map_err(|_| ReplicaError::Corrupt(format!("stored uid {uid:?}")))?;
            Some(encode_cursor(q.order, Position { updated_ms, uid }))
        }
        None => None,
    };
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_of_their_own_order_only() {
        let at = Position {
            updated_ms: 1_700_000_000_120,
            uid: Uuid::new_v4(),
        };
        for order in [Order::Oldest, Order::Newest] {
            let cursor = encode_cursor(order, at);
            assert_eq!(decode_cursor(order, &cursor).ok(), Some(at));
            let other = match order {
                Order::Oldest => Order::Newest,
                Order::Newest => Order::Oldest,
            };
            assert!(matches!(
                decode_cursor(other, &cursor),
                Err(ReplicaError::BadCursor)
            ));
        }
        assert!(matches!(
            decode_cursor(Order::Oldest, "not a cursor!"),
            Err(ReplicaError::BadCursor)
        ));
    }
}
