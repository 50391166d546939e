//! `search`: full text over the local replica, the one tool that is not an
//! entity × operation. Its definition and its plan live here; the service
//! runs the plan against the replica.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::cursor::{self, Listing};
use super::entities::Entity;
use super::operations::{
    FILTER_DATES, FilterParams, Hints, filters, optional_uuid, parse, status_and_due_properties,
};
use super::schema::{JsonObject, merge_objects, property, schema_of};
use super::{Filters, Kind, ToolDef};
use crate::error::ToolError;

/// Hits per page unless the caller asks otherwise; the most it may ask.
pub const DEFAULT_HITS: u32 = 20;
pub const MAX_HITS: u32 = 100;

/// A validated search.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    pub text: String,
    /// The entities to search: the one asked for, or every enabled one.
    pub entities: Vec<&'static Entity>,
    pub filters: Filters,
    pub parent_uid: Option<Uuid>,
    pub chat_uid: Option<Uuid>,
    pub include_deleted: bool,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct SearchParams {
    /// Words (prefixes match), "a phrase"; empty: latest items
    query: String,
    #[schemars(range(min = 1, max = 100), extend("default" = DEFAULT_HITS))]
    limit: Option<u32>,
    /// Previous page's nextCursor
    cursor: Option<String>,
    include_deleted: Option<bool>,
}

/// The `search` tool over `entities` (the enabled ones).
pub fn tool(entities: Vec<&'static Entity>) -> ToolDef {
    let names: Vec<&str> = entities.iter().map(|e| e.plural).collect();
    let mut statuses: Vec<&'static str> = Vec::new();
    for status in entities.iter().flat_map(|e| e.statuses.iter().copied()) {
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    let due = entities.iter().any(|e| e.due_dates);
    let uuid =
        |description: &str| json!({"type": "string", "format": "uuid", "description": description});
    let mut parts = vec![
        schema_of::<SearchParams>(),
        property("entity", json!({"type": "string", "enum": names}), false),
        schema_of::<FilterParams>(),
    ];
    parts.extend(status_and_due_properties(&statuses, due));
    if names.contains(&"comments") {
        parts.push(property(
            "parent_uid",
            uuid("Comments on, or subtasks of, this item"),
            false,
        ));
    }
    if names.contains(&"chat_messages") {
        parts.push(property("chat_uid", uuid("Messages of this chat"), false));
    }
    let output = json!({
        "type": "object",
        "properties": {
            "hits": {"type": "array", "items": {"type": "object"}},
            "nextCursor": {"type": "string"}
        },
        "required": ["hits"]
    });
    ToolDef {
        name: "search".into(),
        description: format!(
            "Search {} by words, best match first; {FILTER_DATES}.",
            names.join(", ").replace('_', " ")
        ),
        kind: Kind::Search(entities),
        input_schema: Arc::new(merge_objects(&parts)),
        output_schema: Arc::new(match output {
            serde_json::Value::Object(map) => map,
            _ => JsonObject::new(),
        }),
        hints: Hints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
    }
}

/// Validates a search's arguments (already checked against its parameter
/// names).
pub fn plan(enabled: &[&'static Entity], args: &JsonObject) -> Result<SearchPlan, ToolError> {
    let p: SearchParams = parse(args)?;
    let limit = p.limit.unwrap_or(DEFAULT_HITS);
    if !(1..=MAX_HITS).contains(&limit) {
        return Err(ToolError::invalid_input(format!(
            "limit: must be between 1 and {MAX_HITS}, got {limit}"
        )));
    }
    let entities: Vec<&'static Entity> = match args.get("entity").and_then(|v| v.as_str()) {
        Some(name) => match enabled.iter().find(|e| e.plural == name) {
            Some(entity) => vec![*entity],
            None => {
                return Err(ToolError::invalid_input(format!(
                    "entity: `{name}` is not one of {}",
                    enabled
                        .iter()
                        .map(|e| e.plural)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        },
        None if args.get("entity").is_some_and(|v| !v.is_null()) => {
            return Err(ToolError::invalid_input("entity: expected a string"));
        }
        None => enabled.to_vec(),
    };
    if let Some(cursor) = &p.cursor {
        cursor::check(Listing::Search, cursor)?;
    }
    let statuses: Vec<&str> = entities
        .iter()
        .flat_map(|e| e.statuses.iter().copied())
        .collect();
    Ok(SearchPlan {
        text: p.query,
        filters: filters(&statuses, args)?,
        parent_uid: optional_uuid(args, "parent_uid")?,
        chat_uid: optional_uuid(args, "chat_uid")?,
        include_deleted: p.include_deleted == Some(true),
        limit,
        cursor: p.cursor,
        entities,
    })
}
