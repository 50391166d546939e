//! An upstream item, parsed, and what the replica indexes from its payload.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use uuid::Uuid;

/// Which payload keys feed which full-text column. The same for every
/// entity: a key an entity does not have is simply absent (comments and
/// messages have no title; only chats have participants), and a pass-through
/// key with one of these names is searchable wherever it appears.
struct TextKeys {
    /// Ranked above the others; also the hit's title.
    title: &'static [&'static str],
    /// Notes' and comments' and messages' `content`; tasks' and chats'
    /// `description`.
    body: &'static [&'static str],
    /// Short words that describe the item: its tags and the people on it.
    labels: &'static [&'static str],
}

const TEXT: TextKeys = TextKeys {
    title: &["title"],
    body: &["content", "description"],
    labels: &["tags", "author", "sender", "participants"],
};

/// An item as the upstream sends it, checked.
#[derive(Debug)]
pub(super) struct Incoming {
    pub uid: Uuid,
    pub version: i64,
    pub updated_ms: i64,
    /// As received, returned unchanged.
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub payload: Map<String, Value>,
}

impl Incoming {
    /// `None` for an item the replica cannot keep: a uid that is not a UUID,
    /// a version that is not a non-negative integer, an `updatedAt` that is
    /// not RFC 3339 (it orders every listing), a `deletedAt` that is neither
    /// absent, null nor a string, or a payload that is not an object.
    pub fn parse(item: &Value) -> Option<Self> {
        let uid = Uuid::parse_str(item.get("uid")?.as_str()?).ok()?;
        let version = i64::try_from(item.get("version")?.as_u64()?).ok()?;
        let updated_at = item.get("updatedAt")?.as_str()?.to_owned();
        let updated_ms = rfc3339_ms(&updated_at)?;
        let deleted_at = match item.get("deletedAt") {
            None | Some(Value::Null) => None,
            Some(Value::String(at)) => Some(at.clone()),
            Some(_) => return None,
        };
        let payload = item.get("payload")?.as_object()?.clone();
        Some(Self {
            uid,
            version,
            updated_ms,
            updated_at,
            deleted_at,
            payload,
        })
    }
}

/// What the replica indexes of one payload.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Indexed {
    pub title: String,
    pub body: String,
    pub labels: String,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub parent_uid: Option<String>,
    pub chat_uid: Option<String>,
    pub due_ms: Option<i64>,
}

impl Indexed {
    pub fn of(payload: &Map<String, Value>) -> Self {
        let text = |keys: &[&str]| {
            keys.iter()
                .flat_map(|k| strings(payload.get(*k)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut tags: Vec<String> = strings(payload.get("tags")).map(str::to_owned).collect();
        tags.sort();
        tags.dedup();
        let str_of = |k: &str| payload.get(k).and_then(Value::as_str);
        // Parents are compared as canonical uids, whatever case was sent.
        let uid_of = |k: &str| {
            str_of(k)
                .and_then(|s| Uuid::parse_str(s).ok())
                .map(|u| u.to_string())
        };
        Self {
            title: text(TEXT.title),
            body: text(TEXT.body),
            labels: text(TEXT.labels),
            tags,
            status: str_of("status").map(str::to_owned),
            parent_uid: uid_of("parentUid"),
            chat_uid: uid_of("chatUid"),
            due_ms: str_of("dueDate").and_then(date_ms),
        }
    }
}

/// The strings of a value: itself if a string, its string elements if an
/// array, nothing otherwise.
fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match value {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(items)) => (None, Some(items.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// Unix milliseconds of an RFC 3339 timestamp, any offset, any precision.
pub(super) fn rfc3339_ms(at: &str) -> Option<i64> {
    let nanos = OffsetDateTime::parse(at, &Rfc3339)
        .ok()?
        .unix_timestamp_nanos();
    // Floor, so a pre-1970 stamp still orders correctly.
    i64::try_from(nanos.div_euclid(1_000_000)).ok()
}

/// A due date: RFC 3339, or a plain `YYYY-MM-DD` taken as 00:00 UTC.
pub(super) fn date_ms(due: &str) -> Option<i64> {
    rfc3339_ms(due).or_else(|| {
        let date = time::Date::parse(due, format_description!("[year]-[month]-[day]")).ok()?;
        i64::try_from(date.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_keep_their_milliseconds() {
        assert_eq!(
            rfc3339_ms("2023-11-14T22:13:20.12Z"),
            Some(1_700_000_000_120)
        );
        assert_eq!(rfc3339_ms("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(
            rfc3339_ms("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000_500)
        );
        assert_eq!(rfc3339_ms("yesterday"), None);
        assert_eq!(date_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(date_ms("2023-11-14T00:00:00Z"), Some(1_699_920_000_000));
        assert_eq!(date_ms("14/11/2023"), None);
    }

    #[test]
    fn invalid_items_are_refused() {
        let good = json!({
            "uid": "6f1c0c56-1b7e-4a53-9b1e-6f5d7f0e3c11", "version": 3,
            "updatedAt": "2026-11-30T10:28:45.12Z", "payload": {}
        });
        assert!(Incoming::parse(&good).is_some());
        for (key, bad) in [
            ("uid", json!("not-a-uuid")),
            ("uid", Value::Null),
            ("version", json!("3")),
            ("version", json!(-1)),
            ("version", json!(1.5)),
            ("updatedAt", json!("soon")),
            ("deletedAt", json!(12)),
            ("payload", json!([])),
        ] {
            let mut item = good.clone();
            item[key] = bad.clone();
            assert!(Incoming::parse(&item).is_none(), "{key}: {bad}");
        }
        let mut without = good.clone();
        if let Some(map) = without.as_object_mut() {
            map.remove("version");
        }
        assert!(Incoming::parse(&without).is_none());
    }

    #[test]
    fn indexing_reads_the_known_keys_of_any_entity() {
        let parent = "6F1C0C56-1B7E-4A53-9B1E-6F5D7F0E3C11";
        let payload = json!({
            "title": "Budget", "content": "Q3 numbers", "description": "and more",
            "tags": ["b", "a", "b", 7], "author": "Ana", "status": "open",
            "parentUid": parent, "chatUid": "not a uid", "dueDate": "2026-12-01"
        });
        let indexed = Indexed::of(payload.as_object().expect("object"));
        assert_eq!(indexed.title, "Budget");
        assert_eq!(indexed.body, "Q3 numbers\nand more");
        assert_eq!(indexed.labels, "b\na\nb\nAna");
        assert_eq!(indexed.tags, vec!["a", "b"]);
        assert_eq!(indexed.status.as_deref(), Some("open"));
        assert_eq!(
            indexed.parent_uid,
            Some(parent.to_lowercase()),
            "canonical case"
        );
        assert_eq!(indexed.chat_uid, None);
        assert_eq!(indexed.due_ms, date_ms("2026-12-01"));
    }
}
