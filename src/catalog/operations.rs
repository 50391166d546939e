//! The eight operations, written once over the entity table.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::cursor::{self, Listing};
use super::entities::{Entity, IsoDate};
use super::schema::{JsonObject, merge_objects, property, schema_of};
use super::size;
use super::{Filters, Finish, LocalList, Method, Order, Plan, Request, RetryClass};
use crate::error::ToolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    List,
    Get,
    Create,
    Update,
    Patch,
    Delete,
    Archive,
    Process,
}

/// Behaviour hints every tool carries explicitly (a missing `readOnlyHint`
/// makes some agents ask for approval on every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

/// Default page size: small enough for a model's context.
pub const DEFAULT_LIMIT: u32 = 50;
/// The format of the date filters, for the descriptions of the tools that
/// take them.
pub(super) const FILTER_DATES: &str = "dates ISO 8601";
/// The upstream's largest page.
pub const MAX_LIMIT: u32 = 1000;

impl Operation {
    pub const ALL: [Operation; 8] = [
        Self::List,
        Self::Get,
        Self::Create,
        Self::Update,
        Self::Patch,
        Self::Delete,
        Self::Archive,
        Self::Process,
    ];

    /// The operation's own name, as compact tools take it.
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Get => "get",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::Archive => "archive",
            Self::Process => "process",
        }
    }

    pub fn tool_name(self, e: &Entity) -> String {
        match self {
            Self::List => format!("list_{}", e.plural),
            Self::Get => format!("get_{}", e.singular),
            Self::Create => format!("create_{}", e.singular),
            Self::Update => format!("update_{}", e.singular),
            Self::Patch => format!("patch_{}", e.singular),
            Self::Delete => format!("delete_{}", e.singular),
            Self::Archive => format!("archive_{}", e.singular),
            Self::Process => format!("process_{}", e.singular),
        }
    }

    /// `local`: a replica answers reads, so lists can sort and filter.
    ///
    /// A description says what the tool's name and schema do not: the
    /// order, what an update clears, the largest item, what archive and the
    /// actions set, the date format of the filters (said once here rather
    /// than on each date parameter).
    pub fn description(self, e: &Entity, local: bool) -> String {
        let (one, many) = (e.noun, e.plural.replace('_', " "));
        let largest = size::max_item_short();
        match self {
            Self::List if local => format!("List {many} by update time; {FILTER_DATES}."),
            Self::List => format!("List {many}, oldest update first."),
            Self::Get => format!("Get a {one}."),
            Self::Create => format!("Create a {one} ({largest})."),
            Self::Update => format!("Set every field ({largest}); omitted ones are cleared."),
            Self::Patch => format!("Change only the given fields ({largest})."),
            Self::Delete => format!("Soft-delete a {one}."),
            Self::Archive => format!("Set {}.", e.archive_effect),
            Self::Process => format!("{}.", e.actions_summary),
        }
    }

    pub fn hints(self) -> Hints {
        let (read_only, destructive, idempotent) = match self {
            Self::List | Self::Get => (true, false, true),
            Self::Create => (false, false, false),
            Self::Update | Self::Patch | Self::Delete => (false, true, true),
            // Both set a fixed state: repeating one changes nothing more.
            Self::Archive | Self::Process => (false, false, true),
        };
        Hints {
            read_only,
            destructive,
            idempotent,
        }
    }

    /// `local`: the list filters only a replica can answer are offered.
    pub fn input_schema(self, e: &Entity, local: bool) -> JsonObject {
        let fields = || {
            let mut schema = (e.fields.schema)();
            schema.remove("required");
            schema
        };
        let required_fields = || {
            let mut schema = fields();
            schema.insert("required".into(), json!(e.required));
            schema
        };
        let parts = match self {
            Self::List => {
                let mut parts = vec![schema_of::<ListParams>()];
                if let Some(f) = &e.list_filter {
                    let uuid =
                        json!({"type": "string", "format": "uuid", "description": f.description});
                    parts.push(property(f.param, uuid, false));
                }
                if local {
                    parts.push(schema_of::<OrderParam>());
                    parts.push(schema_of::<FilterParams>());
                    parts.extend(status_and_due_properties(e.statuses, e.due_dates));
                }
                parts
            }
            Self::Get => vec![schema_of::<GetParams>()],
            Self::Create => vec![required_fields(), schema_of::<Extra>()],
            Self::Update => vec![
                schema_of::<Target>(),
                schema_of::<Guard>(),
                required_fields(),
                schema_of::<Extra>(),
            ],
            Self::Patch => vec![
                schema_of::<Target>(),
                schema_of::<Guard>(),
                fields(),
                schema_of::<Extra>(),
            ],
            Self::Delete => vec![schema_of::<Target>(), schema_of::<Guard>()],
            Self::Archive => vec![schema_of::<Target>()],
            Self::Process => {
                let action = json!({"type": "string", "enum": e.actions});
                vec![
                    schema_of::<Target>(),
                    property("action", action, true),
                    schema_of::<ProcessParams>(),
                ]
            }
        };
        merge_objects(&parts)
    }

    pub fn output_schema(self) -> JsonObject {
        match self {
            // What a host validates: an object with items. Every byte here
            // is sent with every tools/list.
            Self::List => as_object(json!({"type": "object", "required": ["items"]})),
            _ => as_object(item_schema()),
        }
    }

    /// How this operation's request may be repeated (see [`super::repeat`]);
    /// `guarded` is whether the call gave `if_version`. Derived here, beside
    /// the hints, from what the operation is.
    pub fn retry_class(self, guarded: bool) -> RetryClass {
        match self {
            Self::List | Self::Get => RetryClass::Read,
            // The update is always guarded: it writes what it read.
            Self::Update => RetryClass::Conditional,
            Self::Patch | Self::Delete if guarded => RetryClass::Conditional,
            // A create carries a uid made before the first attempt; the rest
            // set a fixed state.
            Self::Create | Self::Patch | Self::Delete | Self::Archive | Self::Process => {
                RetryClass::Idempotent
            }
        }
    }

    /// Turns validated arguments into what must be sent. `args` has already
    /// been checked against the tool's parameter names.
    pub fn plan(self, e: &Entity, args: &JsonObject) -> Result<Plan, ToolError> {
        let item_path = |uid: Uuid| format!("{}/{}", e.path, uid.hyphenated());
        let request = |method, path, guard: Option<u64>| {
            let mut request = Request {
                method,
                path,
                query: Vec::new(),
                body: None,
                if_match: None,
                class: self.retry_class(guard.is_some()),
            };
            if let Some(version) = guard {
                request.guard(version);
            }
            request
        };
        let plan = match self {
            Self::List => {
                let p: ListParams = parse(args)?;
                let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
                if !(1..=MAX_LIMIT).contains(&limit) {
                    return Err(ToolError::invalid_input(format!(
                        "limit: must be between 1 and {MAX_LIMIT}, got {limit}"
                    )));
                }
                let filter = match &e.list_filter {
                    Some(f) => optional_uuid(args, f.param)?.map(|uid| (f.wire, uid)),
                    None => None,
                };
                let order = parse::<OrderParam>(args)?.order.unwrap_or_default();
                let mut req = request(Method::Get, e.path.to_owned(), None);
                req.query.push(("limit", limit.to_string()));
                if let Some(cursor) = p.cursor {
                    cursor::check(Listing::List(order), &cursor)?;
                    req.query.push(("cursor", cursor));
                }
                if p.include_deleted == Some(true) {
                    req.query.push(("includeDeleted", "true".into()));
                }
                let mut plan = Plan::item(req, None);
                plan.raw = p.raw == Some(true);
                plan.fields = p.fields;
                plan.finish = Finish::Page {
                    limit,
                    filter,
                    local: LocalList {
                        order,
                        filters: filters(e.statuses, args)?,
                    },
                };
                plan
            }
            Self::Get => {
                let p: GetParams = parse(args)?;
                let mut req = request(Method::Get, item_path(p.uid), None);
                if p.include_deleted == Some(true) {
                    req.query.push(("includeDeleted", "true".into()));
                }
                let mut plan = Plan::item(req, Some(p.uid));
                plan.raw = p.raw == Some(true);
                plan.offset = p.offset.unwrap_or(0) as usize;
                plan
            }
            Self::Create => {
                check_required(e, args)?;
                let mut payload = payload(e, args)?;
                // The uid is made here, before the first attempt, so a retried
                // create upserts the same item instead of making a second one.
                let uid = Uuid::new_v4();
                payload.insert("uid".into(), json!(uid));
                let mut req = request(Method::Post, e.path.to_owned(), None);
                req.body = Some(Value::Object(payload));
                let mut plan = Plan::item(req, Some(uid));
                plan.requires = parent_check(e, args, None)?;
                plan
            }
            Self::Update | Self::Patch => {
                if self == Self::Update {
                    check_required(e, args)?;
                }
                let target: Target = parse(args)?;
                let guard: Guard = parse(args)?;
                let method = if self == Self::Update {
                    Method::Put
                } else {
                    Method::Patch
                };
                let payload = payload(e, args)?;
                if self == Self::Patch && payload.is_empty() {
                    return Err(ToolError::invalid_input(
                        "nothing to change: give at least one field to set",
                    ));
                }
                let mut req = request(method, item_path(target.uid), guard.if_version);
                req.body = Some(Value::Object(payload));
                let mut plan = Plan::item(req, Some(target.uid));
                if self == Self::Update {
                    plan.replaces = Some((e.fields.wire_keys)());
                }
                plan.requires = parent_check(e, args, Some(target.uid))?;
                plan
            }
            Self::Delete => {
                let target: Target = parse(args)?;
                let guard: Guard = parse(args)?;
                let req = request(Method::Delete, item_path(target.uid), guard.if_version);
                let mut plan = Plan::item(req, Some(target.uid));
                plan.expect_version = guard.if_version;
                plan
            }
            Self::Archive => {
                let target: Target = parse(args)?;
                let path = format!("{}/archive", item_path(target.uid));
                Plan::item(request(Method::Post, path, None), Some(target.uid))
            }
            Self::Process => {
                let target: Target = parse(args)?;
                let p: ProcessParams = parse(args)?;
                let action = match args.get("action") {
                    Some(Value::String(a)) if e.actions.contains(&a.as_str()) => a.clone(),
                    Some(other) => {
                        return Err(ToolError::invalid_input(format!(
                            "action: {other} is not one of {}",
                            e.actions.join(", ")
                        )));
                    }
                    None => return Err(ToolError::invalid_input("action: missing")),
                };
                let mut body = json!({ "action": action });
                if let Some(metadata) = p.metadata {
                    body["metadata"] = Value::Object(metadata);
                }
                let path = format!("{}/process", item_path(target.uid));
                let mut req = request(Method::Post, path, None);
                req.body = Some(body);
                Plan::item(req, Some(target.uid))
            }
        };
        // Before anything is sent: the limit is the embedded API's too.
        if let Some(body) = &plan.request.body {
            size::check_item(e.noun, body)?;
        }
        Ok(plan)
    }
}

/// The read that proves an entity's parent exists, when the entity names one
/// the upstream does not check (a task's `parent_uid`).
fn parent_check(
    e: &Entity,
    args: &JsonObject,
    own_uid: Option<Uuid>,
) -> Result<Option<Request>, ToolError> {
    let Some(parent) = &e.checked_parent else {
        return Ok(None);
    };
    let Some(uid) = optional_uuid(args, parent.param)? else {
        return Ok(None);
    };
    if Some(uid) == own_uid {
        return Err(ToolError::invalid_input(format!(
            "{}: a {} cannot be its own parent",
            parent.param, e.noun
        )));
    }
    Ok(Some(Request::get(format!(
        "{}/{}",
        parent.path,
        uid.hyphenated()
    ))))
}

/// The filters beyond the common ones: `status` (the values given, as an
/// enum) and due dates.
pub(super) fn status_and_due_properties(statuses: &[&str], due_dates: bool) -> Vec<JsonObject> {
    let mut parts = Vec::new();
    if !statuses.is_empty() {
        parts.push(property(
            "status",
            json!({"type": "string", "enum": statuses}),
            false,
        ));
    }
    if due_dates {
        let date = json!({"type": "string"});
        parts.push(property("due_after", date.clone(), false));
        parts.push(property("due_before", date, false));
    }
    parts
}

/// The local filters of a list or search, from its arguments; `statuses` are
/// the values `status` may take.
pub(super) fn filters(statuses: &[&str], args: &JsonObject) -> Result<Filters, ToolError> {
    let common: FilterParams = parse(args)?;
    let p: StatusAndDueParams = parse(args)?;
    if let Some(status) = &p.status
        && !statuses.contains(&status.as_str())
    {
        return Err(ToolError::invalid_input(format!(
            "status: `{status}` is not one of {}",
            statuses.join(", ")
        )));
    }
    Ok(Filters {
        tags: common.tags.unwrap_or_default(),
        status: p.status,
        updated_after: common.updated_after.map(|d| d.unix_ms()),
        updated_before: common.updated_before.map(|d| d.unix_ms()),
        due_after: p.due_after.map(|d| d.unix_ms()),
        due_before: p.due_before.map(|d| d.unix_ms()),
    })
}

// The operations' own parameters. Doc comments are the schema descriptions:
// a few words, no closing period, and none where the name and type say it.
// A default is the `default` keyword, not prose.

#[derive(Deserialize, JsonSchema)]
struct OrderParam {
    // By update time: the list's description says so.
    #[schemars(extend("default" = Order::default()))]
    order: Option<Order>,
}

/// What every local list and search can filter by.
#[derive(Deserialize, JsonSchema)]
pub(super) struct FilterParams {
    /// Has all of these
    tags: Option<Vec<String>>,
    // The dates' format is in the tool's description (`FILTER_DATES`).
    #[schemars(with = "Option<String>")]
    updated_after: Option<IsoDate>,
    #[schemars(with = "Option<String>")]
    updated_before: Option<IsoDate>,
}

/// Filters whose schema is built from the entity rows.
#[derive(Deserialize)]
struct StatusAndDueParams {
    status: Option<String>,
    due_after: Option<IsoDate>,
    due_before: Option<IsoDate>,
}

#[derive(Deserialize, JsonSchema)]
struct ListParams {
    #[schemars(range(min = 1, max = 1000), extend("default" = DEFAULT_LIMIT))]
    limit: Option<u32>,
    /// Previous page's nextCursor
    cursor: Option<String>,
    // Explained once, in the server instructions.
    include_deleted: Option<bool>,
    /// Payload keys
    fields: Option<Vec<String>>,
    // Explained once, in the server instructions.
    raw: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct GetParams {
    uid: Uuid,
    include_deleted: Option<bool>,
    raw: Option<bool>,
    // Explained once, in the server instructions.
    offset: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct Target {
    uid: Uuid,
}

#[derive(Deserialize, JsonSchema)]
struct Guard {
    // Explained once, in the server instructions.
    #[schemars(range(min = 1))]
    if_version: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct Extra {
    // Explained once, in the server instructions.
    additional_fields: Option<JsonObject>,
}

#[derive(Deserialize, JsonSchema)]
struct ProcessParams {
    /// Not stored
    metadata: Option<JsonObject>,
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(args: &JsonObject) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(&Value::Object(args.clone()))
        .map_err(|e| ToolError::invalid_input(format!("{}: {}", e.path(), e.inner())))
}

pub(super) fn optional_uuid(args: &JsonObject, key: &str) -> Result<Option<Uuid>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|e| ToolError::invalid_input(format!("{key}: not a UUID ({e})"))),
        Some(other) => Err(ToolError::invalid_input(format!(
            "{key}: expected a UUID string, got {other}"
        ))),
    }
}

fn check_required(e: &Entity, args: &JsonObject) -> Result<(), ToolError> {
    let missing: Vec<&str> = e
        .required
        .iter()
        .copied()
        .filter(|k| args.get(*k).is_none_or(Value::is_null))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ToolError::invalid_input(format!(
            "missing required parameter(s): {}",
            missing.join(", ")
        )))
    }
}

/// The upstream payload: `additional_fields` first, the typed fields over them.
fn payload(e: &Entity, args: &JsonObject) -> Result<JsonObject, ToolError> {
    let typed = (e.fields.to_wire)(args).map_err(ToolError::invalid_input)?;
    let mut payload = JsonObject::new();
    let extra: Extra = parse(args)?;
    if let Some(extra) = extra.additional_fields {
        let typed_wire = (e.fields.wire_keys)();
        for (key, value) in extra {
            if key == "uid" || key == "sync" {
                return Err(ToolError::invalid_input(format!(
                    "additional_fields: `{key}` is maintained by the server"
                )));
            }
            if typed_wire.contains(&key) {
                return Err(ToolError::invalid_input(format!(
                    "additional_fields: set `{key}` through its own parameter"
                )));
            }
            payload.insert(key, value);
        }
    }
    payload.extend(typed);
    Ok(payload)
}

/// An item's shape, kept to what a host validates: every tool repeats it, and
/// every byte of it is spent from the model's context on every conversation.
fn item_schema() -> Value {
    json!({"type": "object", "required": ["uid", "version", "payload"]})
}

fn as_object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}
