//! Runs one tool call: the catalog validates and plans it, the local replica
//! answers the reads it can, the upstream client sends the rest, and the
//! response becomes the tool's result. The MCP handler and the `call` command
//! both come through here, so a tool behaves the same for a model and for a
//! script.

mod resources;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::cursor;
use crate::catalog::lenient;
use crate::catalog::operations::MAX_LIMIT;
use crate::catalog::repeat::Applied;
use crate::catalog::schema::JsonObject;
use crate::catalog::search::SearchPlan;
use crate::catalog::size;
use crate::catalog::{
    Catalog, Entity, Filters, Finish, Kind, LocalList, Operation, Order, Plan, Planned, Request,
    ToolDef,
};
use crate::error::{ErrorCode, ToolError};
use crate::replica::{self, Follower, Freshness, ReplicaError};
use crate::upstream::{Call, Client};

/// Payload keys the upstream stamps on every write: an update never sends
/// them back.
const SERVER_KEYS: [&str; 4] = ["uid", "sync", "updatedTs", "updateTime"];

/// The upstream's bookkeeping in a payload: [`SERVER_KEYS`], and the flat
/// sync keys notes carry. A model is shown items without them (they stay in
/// the replica and the log; `raw` returns them).
const BOOKKEEPING: [&str; 9] = [
    "uid",
    "sync",
    "updatedTs",
    "updateTime",
    "isDirty",
    "lastSyncedAt",
    "remoteUpdatedAt",
    "version",
    "isDeleted",
];

/// A filtered list reads at most this many upstream pages (of
/// [`MAX_LIMIT`] items) per call before it returns what it found, with a
/// cursor to continue and `incomplete` saying why.
const MAX_FILTERED_PAGES: u32 = 20;

pub struct Service {
    catalog: Catalog,
    client: Arc<Client>,
    /// The local replica, unless turned off (`--replica off`).
    follower: Option<Arc<Follower>>,
    call_timeout: Duration,
    /// The most a result may spend of a model's context, in bytes.
    budget_bytes: usize,
}

/// What a result may cost a model unless configured otherwise, in tokens:
/// well under the 25,000 at which Claude Code refuses a tool result.
pub const DEFAULT_RESULT_BUDGET: usize = 20_000;
/// Bytes per token, for budgets: JSON of English text runs at about four.
const BYTES_PER_TOKEN: usize = 4;
/// Payload keys holding an item's long text: what a cut shortens.
const BODY_KEYS: [&str; 2] = ["content", "description"];
/// The most of an error's message a call's log line keeps, in characters:
/// a message is a sentence or two, but an upstream's error text is not ours
/// to trust.
const LOGGED_MESSAGE_CHARS: usize = 1000;

impl Service {
    pub fn new(
        catalog: Catalog,
        client: Arc<Client>,
        follower: Option<Arc<Follower>>,
        call_timeout: Duration,
    ) -> Self {
        Self {
            catalog,
            client,
            follower,
            call_timeout,
            budget_bytes: DEFAULT_RESULT_BUDGET * BYTES_PER_TOKEN,
        }
    }

    /// Bounds every result at `tokens` (estimated at four bytes each).
    pub fn with_result_budget(mut self, tokens: usize) -> Self {
        self.budget_bytes = tokens.saturating_mul(BYTES_PER_TOKEN);
        self
    }

    pub fn follower(&self) -> Option<&Arc<Follower>> {
        self.follower.as_ref()
    }

    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `tool` to completion, failure, its deadline or cancellation, and
    /// writes the call's one log line.
    pub async fn run(
        &self,
        tool: &ToolDef,
        args: Option<JsonObject>,
        cancel: CancellationToken,
    ) -> Result<Value, ToolError> {
        self.answer(tool, args, cancel)
            .await
            .map(|answer| answer.value)
    }

    /// [`Service::run`], with the result's text made once for both the log
    /// line's byte count and the MCP result.
    pub async fn answer(
        &self,
        tool: &ToolDef,
        args: Option<JsonObject>,
        cancel: CancellationToken,
    ) -> Result<Answer, ToolError> {
        let started = Instant::now();
        let call = Call::new(self.call_timeout, cancel);
        // A compact tool runs as the full tool its `operation` names, and
        // its call is logged under that name.
        let (tool, planned) = match tool.resolve(args) {
            Ok((full, args)) => (full, full.plan(args)),
            Err(e) => (tool, Err(e)),
        };
        // The item acted on, for the log line (a create's uid is made here).
        let uid = match &planned {
            Ok(Planned::Request(plan)) => plan.target,
            _ => None,
        };
        let result = match (planned, &tool.kind) {
            (Ok(Planned::Request(plan)), Kind::Entity(entity, operation)) => self
                .execute(entity, *operation, &plan, &call)
                .await
                .map(|value| present(value, &plan, self.budget_bytes))
                .map_err(|e| explain_unknown_outcome(entity, *operation, &plan, e)),
            (Ok(Planned::Search(plan)), _) => self.search(&plan, &call).await,
            (Ok(_), _) => Err(ToolError::new(
                ErrorCode::UpstreamError,
                "the tool's plan does not fit it",
            )),
            (Err(e), _) => Err(e),
        }
        .map_err(|e| e.with_correlation_id(&call.correlation_id))
        .map(Answer::new);
        let (outcome, error_code, error_message) = match &result {
            Ok(_) => ("ok", None, None),
            Err(e) => (
                e.code.as_str(),
                Some(e.code.as_str()),
                Some(crate::logging::shorten(&e.message, LOGGED_MESSAGE_CHARS)),
            ),
        };
        let stale = result
            .as_ref()
            .is_ok_and(|a| a.value.get("stale") == Some(&Value::Bool(true)));
        // What the caller gets back, as compact JSON.
        let bytes = match &result {
            Ok(answer) => answer.text.len() as u64,
            Err(error) => size::json_len(error) as u64,
        };
        tracing::info!(
            tool = %tool.name,
            correlation_id = %call.correlation_id,
            upstream_correlation_id = call.upstream_correlation_id(),
            uid = uid.map(tracing::field::display),
            attempts = call.attempts(),
            setup_requests = call.setup_requests(),
            retries = call.retries(),
            status = call.last_status(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            waited_ms = call.waited().as_secs_f64() * 1000.0,
            outcome,
            error_code,
            error_message = error_message.as_deref(),
            stale,
            bytes,
            "tool call"
        );
        result
    }

    async fn execute(
        &self,
        entity: &'static Entity,
        operation: Operation,
        plan: &Plan,
        call: &Call,
    ) -> Result<Value, ToolError> {
        if let Some(expected) = plan.expect_version {
            self.check_version(&plan.request.path, expected, call)
                .await?;
        }
        if let Some(parent) = &plan.requires {
            self.check_parent(entity, parent, call).await?;
        }
        let result = match &plan.finish {
            _ if plan.replaces.is_some() => self.update(entity, operation, plan, call).await,
            Finish::Page {
                limit,
                filter,
                local,
            } => return self.list(entity, plan, *limit, *filter, local, call).await,
            Finish::Item if operation == Operation::Get => {
                return match self.get_local(entity, plan, call).await? {
                    Some(item) => Ok(item),
                    None => self.send_item(operation, plan, call).await,
                };
            }
            Finish::Item => self.send_item(operation, plan, call).await,
        };
        // A write through this sidecar is in the replica before the tool
        // answers: the model reads its own writes.
        if let (Ok(item), Some(follower)) = (&result, &self.follower) {
            follower.record(entity, item).await;
        }
        result
    }

    async fn send_item(
        &self,
        operation: Operation,
        plan: &Plan,
        call: &Call,
    ) -> Result<Value, ToolError> {
        match self.client.send(&plan.request, call).await {
            Ok(response) => Ok(tidy_item(response.body)),
            Err(e) => self.recover(operation, plan, call, e).await,
        }
    }

    /// `get_*` from the replica: `None` when it cannot answer (no replica,
    /// the entity not synced yet, a uid it does not hold, which may be newer
    /// than its last refresh, or a tombstone, which the upstream explains).
    async fn get_local(
        &self,
        entity: &'static Entity,
        plan: &Plan,
        call: &Call,
    ) -> Result<Option<Value>, ToolError> {
        let (Some(follower), Some(uid)) = (&self.follower, plan.target) else {
            return Ok(None);
        };
        let Some(ready) = follower.ready(entity, call, false).await? else {
            return Ok(None);
        };
        let include_deleted = plan
            .request
            .query
            .iter()
            .any(|(k, _)| *k == "includeDeleted");
        match ready.replica.get(entity.plural, uid) {
            Ok(Some(item))
                if include_deleted || item.get("deletedAt").is_none_or(Value::is_null) =>
            {
                Ok(Some(marked(tidy_item(item), &ready.freshness)))
            }
            Ok(_) => Ok(None),
            Err(error) => {
                tracing::warn!(%error, "reading the local replica failed; asking the upstream");
                Ok(None)
            }
        }
    }

    /// A list: from the replica when it can answer (always, for what only
    /// it can: an order or a filter), else from the upstream as it is.
    async fn list(
        &self,
        entity: &'static Entity,
        plan: &Plan,
        limit: u32,
        filter: Option<(&'static str, Uuid)>,
        local: &LocalList,
        call: &Call,
    ) -> Result<Value, ToolError> {
        if let Some(follower) = &self.follower {
            match follower.ready(entity, call, local.needs_replica()).await? {
                Some(ready) => {
                    let query = replica::ListQuery {
                        order: match local.order {
                            Order::Oldest => replica::Order::Oldest,
                            Order::Newest => replica::Order::Newest,
                        },
                        limit: limit as usize,
                        cursor: query_value(&plan.request, "cursor"),
                        filters: replica_filters(
                            &local.filters,
                            query_value(&plan.request, "includeDeleted").is_some(),
                            filter,
                        ),
                    };
                    let store = ready.replica.clone();
                    let page = off_the_runtime(move || store.list(entity.plural, &query)).await?;
                    let mut result = Map::new();
                    let items = page.items.into_iter().map(tidy_item).collect();
                    result.insert("items".into(), Value::Array(items));
                    if let Some(cursor) = page.next_cursor {
                        result.insert("nextCursor".into(), json!(cursor));
                    }
                    return Ok(marked(Value::Object(result), &ready.freshness));
                }
                None if local.needs_replica() => return Err(replica_unusable()),
                None => {}
            }
        }
        self.list_upstream(entity, plan, limit, filter, call).await
    }

    /// `search`: the replica, refreshed as every read is, for each entity
    /// searched.
    async fn search(&self, plan: &SearchPlan, call: &Call) -> Result<Value, ToolError> {
        let Some(follower) = &self.follower else {
            return Err(replica_unusable());
        };
        let mut freshness = Freshness::Fresh;
        let mut store = None;
        for entity in &plan.entities {
            let ready = follower
                .ready(entity, call, true)
                .await?
                .ok_or_else(replica_unusable)?;
            freshness = freshness.and(ready.freshness);
            store = Some(ready.replica);
        }
        let Some(store) = store else {
            return Err(ToolError::invalid_input("no entity to search"));
        };
        let mut filters = replica_filters(&plan.filters, plan.include_deleted, None);
        filters.parent_uid = plan.parent_uid;
        filters.chat_uid = plan.chat_uid;
        let query = replica::SearchQuery {
            text: plan.text.clone(),
            entities: plan.entities.iter().map(|e| e.plural.to_owned()).collect(),
            filters,
            limit: plan.limit as usize,
            cursor: plan.cursor.clone(),
        };
        // A search matching thousands of items ranks them all: milliseconds
        // of SQLite work, kept off the runtime's few worker threads.
        let page = off_the_runtime(move || store.search(&query)).await?;
        let hits: Vec<Value> = page
            .hits
            .into_iter()
            .map(|hit| {
                let singular = crate::catalog::ENTITIES
                    .iter()
                    .find(|e| e.plural == hit.entity)
                    .map_or(hit.entity, |e| e.singular);
                let mut out = json!({
                    "uid": hit.uid,
                    "entity": singular,
                    "title": hit.title,
                    "snippet": hit.snippet,
                    "updatedAt": hit.updated_at,
                    "version": hit.version,
                });
                if hit.deleted {
                    out["deleted"] = json!(true);
                }
                out
            })
            .collect();
        let mut result = json!({ "hits": hits });
        if let Some(cursor) = page.next_cursor {
            result["nextCursor"] = json!(cursor);
        }
        Ok(marked(result, &freshness))
    }

    /// A full update replaces the fields a model can set and keeps the rest
    /// (`pinned`, `status` set by process, keys from `additional_fields`):
    /// read the item, write the merge guarded by its version, and once more
    /// if someone wrote in between. A caller's own `if_version` guards the
    /// write instead, and is never retried.
    async fn update(
        &self,
        entity: &Entity,
        operation: Operation,
        plan: &Plan,
        call: &Call,
    ) -> Result<Value, ToolError> {
        let replaced = plan.replaces.as_deref().unwrap_or_default();
        let caller_guard = plan.request.if_match;
        let mut tries = if caller_guard.is_some() { 1 } else { 2 };
        loop {
            tries -= 1;
            let current = self
                .client
                .send(&Request::get(plan.request.path.clone()), call)
                .await?
                .body;
            let version = current.get("version").and_then(Value::as_u64);
            let mut body: JsonObject = current
                .get("payload")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            body.retain(|key, _| {
                !replaced.iter().any(|r| r == key) && !SERVER_KEYS.contains(&key.as_str())
            });
            if let Some(Value::Object(given)) = &plan.request.body {
                body.extend(given.clone());
            }
            let body = Value::Object(body);
            // What is written is the merge, which may outgrow what was given.
            size::check_item(entity.noun, &body)?;
            let mut request = plan.request.clone();
            request.body = Some(body);
            if let Some(guard) = caller_guard.or(version) {
                request.guard(guard);
            }
            match self.client.send(&request, call).await {
                Ok(response) => return Ok(tidy_item(response.body)),
                Err(e) if tries > 0 && e.http_status == Some(412) => continue,
                Err(e) => return self.recover(operation, plan, call, e).await,
            }
        }
    }

    /// A parent the upstream would not check must exist and not be deleted.
    async fn check_parent(
        &self,
        entity: &'static Entity,
        parent: &Request,
        call: &Call,
    ) -> Result<(), ToolError> {
        let param = entity
            .checked_parent
            .as_ref()
            .map_or("parent_uid", |p| p.param);
        let uid = parent.path.rsplit('/').next().unwrap_or_default();
        match self.client.send(parent, call).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Err(ToolError::invalid_input(format!(
                "{param}: {} {uid} does not exist",
                entity.noun
            ))
            .with_correlation_id(&call.correlation_id)),
            Err(e) if e.code == ErrorCode::Gone => Err(ToolError::invalid_input(format!(
                "{param}: {} {uid} was deleted",
                entity.noun
            ))
            .with_correlation_id(&call.correlation_id)),
            Err(e) => Err(e),
        }
    }

    /// Turns some failures into what the caller asked for, or into a more
    /// useful failure.
    async fn recover(
        &self,
        operation: Operation,
        plan: &Plan,
        call: &Call,
        error: ToolError,
    ) -> Result<Value, ToolError> {
        match error.code {
            // A delete that meets 410 after one of its own attempts may have
            // reached the upstream: that attempt deleted it, and its answer
            // was lost.
            ErrorCode::Gone
                if operation == Operation::Delete && error.applied == Some(Applied::Unknown) =>
            {
                let mut get = Request::get(plan.request.path.clone());
                get.query.push(("includeDeleted", "true".into()));
                self.client
                    .send(&get, call)
                    .await
                    .map(|r| tidy_item(r.body))
            }
            ErrorCode::Conflict if error.http_status == Some(412) => {
                let current = self.current_version(&plan.request.path, call).await;
                let mut error = error;
                if let Ok(Some(version)) = current {
                    error.message = format!("{}; the current version is {version}", error.message);
                }
                Err(error)
            }
            _ => Err(error),
        }
    }

    /// The item's version now, as the upstream reports it.
    async fn current_version(&self, path: &str, call: &Call) -> Result<Option<u64>, ToolError> {
        let response = self
            .client
            .send(&Request::get(path.to_owned()), call)
            .await?;
        Ok(response.body.get("version").and_then(Value::as_u64))
    }

    /// The upstream does not check `If-Match` on delete: compare first.
    async fn check_version(&self, path: &str, expected: u64, call: &Call) -> Result<(), ToolError> {
        match self.current_version(path, call).await? {
            Some(actual) if actual == expected => Ok(()),
            actual => Err(ToolError::new(
                ErrorCode::Conflict,
                format!(
                    "version mismatch: expected {expected}, the current version is {}",
                    actual.map_or("unknown".into(), |v| v.to_string())
                ),
            )
            .with_correlation_id(&call.correlation_id)),
        }
    }

    /// One upstream page as it is, with fewer items when they would not fit
    /// the response cap; for a filtered list, see [`Self::scan_upstream`].
    async fn list_upstream(
        &self,
        entity: &'static Entity,
        plan: &Plan,
        limit: u32,
        filter: Option<(&'static str, Uuid)>,
        call: &Call,
    ) -> Result<Value, ToolError> {
        if let Some(filter) = filter {
            return self.scan_upstream(entity, plan, limit, filter, call).await;
        }
        let sent = self.client.send_page(&plan.request, call).await?;
        let (items, next_cursor) = page_parts(&sent.body, sent.limit, call)?;
        let items = items.iter().cloned().map(tidy_item).collect();
        let mut result = list_result(items, next_cursor, None);
        // Fewer items than asked, to fit the response cap: the page says so.
        if sent.shrunk && result.get("nextCursor").is_some() {
            result["truncated"] = json!(true);
        }
        Ok(result)
    }

    /// A filtered list the upstream cannot filter: reads its largest pages
    /// and keeps the matches until it has `limit` of them or the listing
    /// ends, so an empty page with a cursor never passes for "none". It
    /// stops early, saying so in `incomplete`, after [`MAX_FILTERED_PAGES`]
    /// pages or when a later page meets the call's deadline.
    async fn scan_upstream(
        &self,
        entity: &'static Entity,
        plan: &Plan,
        limit: u32,
        (key, uid): (&'static str, Uuid),
        call: &Call,
    ) -> Result<Value, ToolError> {
        let mut request = plan.request.clone();
        set_query(&mut request, "limit", MAX_LIMIT.to_string());
        let wanted = limit as usize;
        let mut items: Vec<Value> = Vec::new();
        let (mut pages, mut scanned) = (0u32, 0usize);
        // Why a scan stopped with a cursor left: what it read, and how.
        let note = |scanned: usize, why: &str| {
            let plural = entity.plural.replace('_', " ");
            format!("scanned {scanned} {plural}{why}; pass nextCursor to read on")
        };
        loop {
            let sent = match self.client.send_page(&request, call).await {
                Ok(sent) => sent,
                // The pages read so far are an answer: the model reads on
                // from the page that did not come.
                Err(e) if pages > 0 && e.code == ErrorCode::Timeout => {
                    let cursor = query_value(&request, "cursor");
                    let why = note(scanned, ", then the next page timed out");
                    return Ok(list_result(items, cursor, Some(why)));
                }
                Err(e) => return Err(e),
            };
            pages += 1;
            // A page shrunk to fit the response cap: the next ones as small.
            set_query(&mut request, "limit", sent.limit.to_string());
            let (page_items, next_cursor) = page_parts(&sent.body, sent.limit, call)?;
            scanned += page_items.len();
            let matches = page_items
                .iter()
                .filter(|item| payload_uid(item, key) == Some(uid));
            for item in matches {
                if items.len() == wanted {
                    // More matches on this page than asked for: continue
                    // right after the last one kept (a cursor of the
                    // upstream's own shape), or, if that cannot be made,
                    // return them all rather than skip any.
                    if let Some(after) = items
                        .last()
                        .and_then(|last| replica::cursor_after(replica::Order::Oldest, last))
                    {
                        return Ok(list_result(items, Some(after), None));
                    }
                }
                items.push(tidy_item(item.clone()));
            }
            let stopped = match next_cursor {
                Some(_) if items.len() >= wanted => None,
                Some(_) if pages >= MAX_FILTERED_PAGES => Some(if items.is_empty() {
                    note(scanned, " without a match")
                } else {
                    note(scanned, "; more may match")
                }),
                Some(cursor) => {
                    set_query(&mut request, "cursor", cursor);
                    continue;
                }
                None => None,
            };
            return Ok(list_result(items, next_cursor, stopped));
        }
    }
}

/// A list response's items and, when the page is full (a short page is the
/// end of the listing), the upstream's cursor to the next.
fn page_parts<'a>(
    page: &'a Value,
    page_size: u32,
    call: &Call,
) -> Result<(&'a [Value], Option<String>), ToolError> {
    let Some(items) = page.get("items").and_then(Value::as_array) else {
        return Err(ToolError::new(
            ErrorCode::UpstreamError,
            "the upstream's list response has no items",
        )
        .with_correlation_id(&call.correlation_id));
    };
    // The upstream sends a cursor after every non-empty page, even the last.
    let next_cursor = page
        .get("nextCursor")
        .and_then(Value::as_str)
        .filter(|_| items.len() as u32 >= page_size)
        .map(str::to_owned);
    Ok((items, next_cursor))
}

/// A list's result: its items, the cursor to the next page, and why it
/// stopped short of a full page when it did.
fn list_result(
    items: Vec<Value>,
    next_cursor: Option<String>,
    incomplete: Option<String>,
) -> Value {
    let mut result = Map::new();
    result.insert("items".into(), Value::Array(items));
    if let Some(cursor) = next_cursor {
        result.insert("nextCursor".into(), json!(cursor));
    }
    if let Some(note) = incomplete.filter(|_| result.contains_key("nextCursor")) {
        result.insert("incomplete".into(), json!(note));
    }
    Value::Object(result)
}

fn set_query(request: &mut Request, key: &'static str, value: String) {
    request.query.retain(|(k, _)| *k != key);
    request.query.push((key, value));
}

/// A write that may have happened says so, names the item, and tells the
/// model how to look before repeating it (a repeated create would make a
/// second item; a repeated guarded update would meet its own write).
fn explain_unknown_outcome(
    entity: &Entity,
    operation: Operation,
    plan: &Plan,
    mut error: ToolError,
) -> ToolError {
    if error.applied != Some(Applied::Unknown) {
        return error;
    }
    error.uid = plan.target;
    let check = match plan.target {
        Some(uid) => format!("get_{} {uid}", entity.singular),
        None => format!("list_{}", entity.plural),
    };
    let again = if operation == Operation::Create {
        "creating it again"
    } else {
        "repeating it"
    };
    error.message = format!(
        "{}; the {} may have been applied: check with {check} before {again}",
        error.message, entity.noun
    );
    error
}

/// What the model is shown of a result: items without the upstream's
/// bookkeeping (unless `raw`), a list's items cut to `fields`, and all of it
/// within `budget` bytes: a list stops adding items there (`truncated`, and a
/// cursor that continues right after the last one shown), an item's long
/// text is cut there (`content_truncated`, and the `offset` to read on).
fn present(mut value: Value, plan: &Plan, budget: usize) -> Value {
    let lean = |item: &mut Value| {
        if let Some(Value::Object(payload)) = item.get_mut("payload") {
            if !plan.raw {
                payload.retain(|key, _| !BOOKKEEPING.contains(&key.as_str()));
            }
            if let Some(fields) = &plan.fields {
                // A model may name a key as its parameter (`due_date`) or as
                // results spell it (`dueDate`).
                payload.retain(|key, _| {
                    fields
                        .iter()
                        .any(|f| *f == *key || *f == lenient::snake_case(key))
                });
            }
        }
    };
    match (&plan.finish, value.get_mut("items")) {
        (Finish::Page { local, .. }, Some(Value::Array(items))) => {
            items.iter_mut().for_each(lean);
            let order = match local.order {
                Order::Oldest => replica::Order::Oldest,
                Order::Newest => replica::Order::Newest,
            };
            if let Some(cursor) = keep_within(items, budget, order) {
                value["nextCursor"] = json!(cursor);
                value["truncated"] = json!(true);
            }
        }
        (Finish::Item, _) => {
            lean(&mut value);
            if !plan.raw {
                cut_long_text(&mut value, plan.offset, budget);
            }
        }
        _ => {}
    }
    value
}

/// Keeps the items that fit in `budget` bytes (at least one, its long text
/// cut to fit); when some were left out, the cursor after the last kept.
fn keep_within(items: &mut Vec<Value>, budget: usize, order: replica::Order) -> Option<String> {
    let mut used = 0;
    let mut keep = items.len();
    for (index, item) in items.iter_mut().enumerate() {
        let size = size::json_len(item);
        if used + size > budget {
            if index == 0 {
                cut_long_text(item, 0, budget);
                keep = 1;
            } else {
                keep = index;
            }
            break;
        }
        used += size;
    }
    if keep == items.len() {
        return None;
    }
    items.truncate(keep);
    items
        .last()
        .and_then(|last| replica::cursor_after(order, last))
}

/// Shows an item's long text from character `offset`, cut so the item fits
/// in `budget` bytes; says where to read on when it was cut.
fn cut_long_text(item: &mut Value, offset: usize, budget: usize) {
    if offset > 0
        && let Some(Value::Object(payload)) = item.get_mut("payload")
    {
        for key in BODY_KEYS {
            if let Some(Value::String(text)) = payload.get_mut(key) {
                *text = text.chars().skip(offset).collect();
            }
        }
    }
    let size = size::json_len(&*item);
    // Room for the two keys that say it was cut.
    let mut over = size.saturating_sub(budget.saturating_sub(64));
    let Some(Value::Object(payload)) = item.get_mut("payload") else {
        return;
    };
    let mut next: Option<usize> = None;
    for key in BODY_KEYS {
        let Some(Value::String(text)) = payload.get_mut(key) else {
            continue;
        };
        if over == 0 {
            break;
        }
        let mut end = text.len().saturating_sub(over);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        over = over.saturating_sub(text.len() - end);
        text.truncate(end);
        let shown = offset + text.chars().count();
        next = Some(next.map_or(shown, |n| n.min(shown)));
    }
    if let (Some(next), Value::Object(map)) = (next, item) {
        map.insert("content_truncated".into(), json!(true));
        map.insert("next_offset".into(), json!(next));
    }
}

/// A stale answer says so in its structure: `stale` and `as_of`.
fn marked(mut value: Value, freshness: &Freshness) -> Value {
    if let (Freshness::Stale { as_of }, Value::Object(map)) = (freshness, &mut value) {
        map.insert("stale".into(), Value::Bool(true));
        if let Some(as_of) = as_of {
            map.insert("as_of".into(), json!(as_of));
        }
    }
    value
}

/// The plain sentence a stale result carries for a person (and for hosts
/// that show the model only text).
pub use resources::{
    SCHEME as RESOURCE_SCHEME, is_resource, parse_uri, resource_entities, resource_uri, shown_with,
};

/// A tool's result and its text: the compact JSON hosts hand the model
/// beside `structuredContent`, serialized once.
pub struct Answer {
    pub value: Value,
    pub text: String,
}

impl Answer {
    fn new(value: Value) -> Self {
        let text = value.to_string();
        Self { value, text }
    }
}

pub fn stale_notice(value: &Value) -> Option<String> {
    if value.get("stale") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(match value.get("as_of").and_then(Value::as_str) {
        Some(as_of) => format!(
            "The ToolBridge API could not be reached: this is the local copy as of {as_of}, and may be out of date."
        ),
        None => "The ToolBridge API could not be reached: this is the local copy, and may be out of date.".into(),
    })
}

fn query_value(request: &Request, key: &str) -> Option<String> {
    request
        .query
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
}

/// The catalog's filters in the replica's terms; `parent` is a list's filter
/// on a parent's uid (`parentUid` of comments, `chatUid` of messages).
fn replica_filters(
    filters: &Filters,
    include_deleted: bool,
    parent: Option<(&'static str, Uuid)>,
) -> replica::Filters {
    replica::Filters {
        include_deleted,
        tags: filters.tags.clone(),
        status: filters.status.clone(),
        updated_after: filters.updated_after,
        updated_before: filters.updated_before,
        due_after: filters.due_after,
        due_before: filters.due_before,
        parent_uid: parent
            .filter(|(key, _)| *key == "parentUid")
            .map(|(_, uid)| uid),
        chat_uid: parent
            .filter(|(key, _)| *key == "chatUid")
            .map(|(_, uid)| uid),
    }
}

/// Runs a replica query on the blocking pool (a `get` is microseconds and
/// stays inline; a page or a search may take milliseconds).
async fn off_the_runtime<T: Send + 'static>(
    query: impl FnOnce() -> Result<T, ReplicaError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(query)
        .await
        .map_err(|e| {
            ToolError::new(
                ErrorCode::UpstreamError,
                format!("the local replica failed: {e}"),
            )
        })?
        .map_err(replica_failure)
}

fn replica_failure(error: ReplicaError) -> ToolError {
    match error {
        ReplicaError::BadCursor => cursor::refusal("it does not continue this listing"),
        other => ToolError::new(
            ErrorCode::UpstreamError,
            format!("the local replica failed: {other}"),
        ),
    }
}

fn replica_unusable() -> ToolError {
    ToolError::new(
        ErrorCode::UpstreamError,
        "the local replica cannot be used (see the log); search, order and filters need it",
    )
}

fn payload_uid(item: &Value, key: &str) -> Option<Uuid> {
    item.get("payload")?.get(key)?.as_str()?.parse().ok()
}

/// Drops top-level nulls (`"deletedAt": null`) so the item matches the output
/// schema exactly; hosts such as Cursor validate results against it.
fn tidy_item(item: Value) -> Value {
    match item {
        Value::Object(mut map) => {
            map.retain(|_, v| !v.is_null());
            Value::Object(map)
        }
        other => other,
    }
}
