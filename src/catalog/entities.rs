//! The entity table: the five ToolBridge entities as data.
//!
//! Each entity is a row: its names, its collection path, the payload fields a
//! model may set (a Rust type, so the schema and the wire mapping come from one
//! place), the fields a write must carry, its process actions and the filter
//! its list offers. Operations are written once, in `operations.rs`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{JsonObject, schema_of};

/// One row of the entity table.
pub struct Entity {
    /// `note`, `chat_message`: tool names are built from it.
    pub singular: &'static str,
    /// `notes`, `chat_messages`.
    pub plural: &'static str,
    /// How descriptions name one item: `note`, `chat message`.
    pub noun: &'static str,
    /// Collection path on the upstream.
    pub path: &'static str,
    /// The typed payload fields (parameter names snake_case, wire camelCase).
    pub fields: Fields,
    /// Parameters every create and full update must carry: the upstream
    /// re-checks parents on every write but delete.
    pub required: &'static [&'static str],
    /// `process_*` actions, in the order the schema lists them.
    pub actions: &'static [&'static str],
    /// What `process_*` actions do, for the tool description.
    pub actions_summary: &'static str,
    /// What `archive_*` sets, for the tool description.
    pub archive_effect: &'static str,
    /// A filter `list_*` applies page by page (the upstream lists cannot filter).
    pub list_filter: Option<ListFilter>,
    /// A parent the upstream does not check: the sidecar reads it before a
    /// write names it, so a typo'd uid is refused instead of stored.
    pub checked_parent: Option<CheckedParent>,
    /// The payload `status` values its actions and archive set, for the
    /// local list and search filter (empty: it has none).
    pub statuses: &'static [&'static str],
    /// Whether its items have a due date to filter by.
    pub due_dates: bool,
}

/// A payload field naming another item of a known collection.
pub struct CheckedParent {
    pub param: &'static str,
    pub path: &'static str,
}

impl std::fmt::Debug for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entity({})", self.plural)
    }
}

/// A list filter on a payload key holding a parent's uid.
pub struct ListFilter {
    pub param: &'static str,
    pub wire: &'static str,
    pub description: &'static str,
}

/// The payload codec of an entity: its schema, and the conversion of a tool's
/// arguments into the upstream's camelCase payload.
pub struct Fields {
    pub schema: fn() -> JsonObject,
    pub to_wire: fn(&JsonObject) -> Result<JsonObject, String>,
    /// The payload keys the typed fields are sent as.
    pub wire_keys: fn() -> Vec<String>,
}

impl Fields {
    const fn of<T: JsonSchema + Serialize + for<'de> Deserialize<'de>>() -> Self {
        Self {
            schema: schema_of::<T>,
            to_wire: to_wire::<T>,
            wire_keys: wire_keys::<T>,
        }
    }
}

/// Deserializes the typed fields out of the tool arguments (the operation's own
/// parameters are ignored here) and serializes them under their wire names.
fn to_wire<T: Serialize + for<'de> Deserialize<'de>>(
    args: &JsonObject,
) -> Result<JsonObject, String> {
    let typed: T = serde_path_to_error::deserialize(&serde_json::Value::Object(args.clone()))
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    match serde_json::to_value(typed).map_err(|e| e.to_string())? {
        serde_json::Value::Object(mut map) => {
            map.retain(|_, v| !v.is_null());
            Ok(map)
        }
        _ => Ok(JsonObject::new()),
    }
}

/// Every field is an `Option`, so the empty object parses, and serializing it
/// names each field by its wire key.
fn wire_keys<T: Serialize + for<'de> Deserialize<'de>>() -> Vec<String> {
    serde_json::from_value::<T>(serde_json::json!({}))
        .ok()
        .and_then(|empty| serde_json::to_value(empty).ok())
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

pub static ENTITIES: [Entity; 5] = [
    Entity {
        singular: "note",
        plural: "notes",
        noun: "note",
        path: "/v1/notes",
        fields: Fields::of::<NoteFields>(),
        required: &[],
        actions: &["pin", "unpin", "archive", "unarchive"],
        actions_summary: "pin/unpin set pinned; archive/unarchive set status",
        archive_effect: "status archived",
        list_filter: None,
        checked_parent: None,
        statuses: &["active", "archived"],
        due_dates: false,
    },
    Entity {
        singular: "task",
        plural: "tasks",
        noun: "task",
        path: "/v1/tasks",
        fields: Fields::of::<TaskFields>(),
        required: &[],
        actions: &["start", "complete", "reopen"],
        actions_summary: "start: in_progress; complete: completed, done; reopen: open",
        archive_effect: "status archived, done true",
        list_filter: None,
        checked_parent: Some(CheckedParent {
            param: "parent_uid",
            path: "/v1/tasks",
        }),
        statuses: &["open", "in_progress", "completed", "archived"],
        due_dates: true,
    },
    Entity {
        singular: "comment",
        plural: "comments",
        noun: "comment",
        path: "/v1/comments",
        fields: Fields::of::<CommentFields>(),
        required: &["parent_type", "parent_uid"],
        actions: &["resolve", "reopen"],
        actions_summary: "resolve: status resolved; reopen: status open",
        archive_effect: "status archived",
        list_filter: Some(ListFilter {
            param: "parent_uid",
            wire: "parentUid",
            description: "On this note or task",
        }),
        checked_parent: None,
        statuses: &["open", "resolved", "archived"],
        due_dates: false,
    },
    Entity {
        singular: "chat",
        plural: "chats",
        noun: "chat",
        path: "/v1/chats",
        fields: Fields::of::<ChatFields>(),
        required: &[],
        actions: &["resolve", "reopen"],
        actions_summary: "resolve: status resolved; reopen: status active",
        archive_effect: "archived true",
        list_filter: None,
        checked_parent: None,
        statuses: &["active", "resolved"],
        due_dates: false,
    },
    Entity {
        singular: "chat_message",
        plural: "chat_messages",
        noun: "chat message",
        path: "/v1/chat_messages",
        fields: Fields::of::<ChatMessageFields>(),
        required: &["chat_uid"],
        actions: &["mark_read", "mark_delivered"],
        actions_summary: "mark_read sets read; mark_delivered sets delivered",
        archive_effect: "archived true",
        list_filter: Some(ListFilter {
            param: "chat_uid",
            wire: "chatUid",
            description: "In this chat",
        }),
        checked_parent: None,
        statuses: &[],
        due_dates: false,
    },
];

// Payload fields. Every field is optional in the type; `Entity::required`
// says which a write must carry, so create and patch share one definition.
// Doc comments become the schema's descriptions: a few words, no closing
// period, and none where the name and type say it. The largest item
// (`size::MAX_ITEM_BYTES`) is said once, in the write tools' descriptions.

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct NoteFields {
    pub title: Option<String>,
    /// Markdown
    pub content: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct TaskFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    /// e.g. low, medium, high
    pub priority: Option<String>,
    /// ISO 8601
    #[schemars(with = "String")]
    pub due_date: Option<IsoDate>,
    pub tags: Option<Vec<String>>,
    /// Parent task
    pub parent_uid: Option<Uuid>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Open,
    InProgress,
    Completed,
    Archived,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct CommentFields {
    pub parent_type: Option<ParentType>,
    // The note or task commented on: `parent_type` beside it says so.
    pub parent_uid: Option<Uuid>,
    /// Markdown
    pub content: Option<String>,
    pub author: Option<String>,
    pub tags: Option<Vec<String>>,
}

// The upstream accepts comments on notes and tasks only (not as a doc
// comment: schemars would make it every `parent_type` description).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParentType {
    Note,
    Task,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct ChatFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub participants: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(serialize = "camelCase"))]
pub struct ChatMessageFields {
    pub chat_uid: Option<Uuid>,
    pub content: Option<String>,
    pub sender: Option<String>,
    /// e.g. text
    pub message_type: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// An ISO 8601 date (`2026-12-01`) or date-time (`2026-12-01T09:00`, with
/// seconds, fraction and offset optional), kept as given. Anything else
/// ("next tuesday") is refused before it is stored as a due date no client
/// can read.
#[derive(Serialize)]
#[serde(transparent)]
pub struct IsoDate(String);

impl IsoDate {
    /// The instant as unix milliseconds: a date is its midnight, a date-time
    /// without an offset is taken as UTC.
    pub fn unix_ms(&self) -> i64 {
        parse_instant(&self.0).map_or(0, |at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
    }
}

/// The three ISO 8601 forms [`IsoDate`] accepts, as an instant.
fn parse_instant(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            time::PrimitiveDateTime::parse(text, local)
                .ok()
                .map(|t| t.assume_utc())
        })
        .or_else(|| {
            time::Date::parse(text, format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight().assume_utc())
        })
}

impl<'de> Deserialize<'de> for IsoDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let trimmed = text.trim();
        if parse_instant(trimmed).is_some() {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(serde::de::Error::custom(format!(
                "`{text}` is not an ISO 8601 date (2026-12-01) or date-time (2026-12-01T09:00:00Z)"
            )))
        }
    }
}
