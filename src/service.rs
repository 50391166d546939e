//! Runs one tool call: the catalog validates and plans it, the upstream client
//! sends it, and the response becomes the tool's result. The MCP handler and
//! the `call` command both come through here, so a tool behaves the same for
//! a model and for a script.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::catalog::repeat::Applied;
use crate::catalog::schema::JsonObject;
use crate::catalog::{Catalog, Finish, Operation, Plan, Request, ToolDef};
use crate::error::{ErrorCode, ToolError};
use crate::upstream::{Call, Client};

/// Payload keys the upstream stamps on every write: an update never sends
/// them back.
const SERVER_KEYS: [&str; 4] = ["uid", "sync", "updatedTs", "updateTime"];

/// A filtered list reads at most this many upstream pages per call before it
/// returns what it found with a cursor to continue.
const MAX_FILTERED_PAGES: u32 = 10;

pub struct Service {
    catalog: Catalog,
    client: Arc<Client>,
    call_timeout: Duration,
}

impl Service {
    pub fn new(catalog: Catalog, client: Arc<Client>, call_timeout: Duration) -> Self {
        Self {
            catalog,
            client,
            call_timeout,
        }
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
        let started = Instant::now();
        let call = Call::new(self.call_timeout, cancel);
        let result = match tool.plan(args) {
            Ok(plan) => self
                .execute(tool, &plan, &call)
                .await
                .map_err(|e| explain_unknown_outcome(tool, &plan, e)),
            Err(e) => Err(e.with_correlation_id(&call.correlation_id)),
        };
        let (outcome, error) = match &result {
            Ok(_) => ("ok", None),
            Err(e) => (e.code.as_str(), Some(e.message.as_str())),
        };
        tracing::info!(
            tool = %tool.name,
            correlation_id = %call.correlation_id,
            attempts = call.attempts(),
            retries = call.retries(),
            status = call.last_status(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            waited_ms = call.waited().as_secs_f64() * 1000.0,
            outcome,
            error,
            "tool call"
        );
        result
    }

    async fn execute(&self, tool: &ToolDef, plan: &Plan, call: &Call) -> Result<Value, ToolError> {
        if let Some(expected) = plan.expect_version {
            self.check_version(&plan.request.path, expected, call)
                .await?;
        }
        if let Some(parent) = &plan.requires {
            self.check_parent(tool, parent, call).await?;
        }
        if let Some(replaced) = &plan.replaces {
            return self.update(tool, plan, replaced, call).await;
        }
        match &plan.finish {
            Finish::Item => match self.client.send(&plan.request, call).await {
                Ok(response) => Ok(tidy_item(response.body)),
                Err(e) => self.recover(tool, plan, call, e).await,
            },
            Finish::Page { limit, filter } => self.list(plan, *limit, *filter, call).await,
        }
    }

    /// A full update replaces the fields a model can set and keeps the rest
    /// (`pinned`, `status` set by process, keys from `additional_fields`):
    /// read the item, write the merge guarded by its version, and once more
    /// if someone wrote in between. A caller's own `if_version` guards the
    /// write instead, and is never retried.
    async fn update(
        &self,
        tool: &ToolDef,
        plan: &Plan,
        replaced: &[String],
        call: &Call,
    ) -> Result<Value, ToolError> {
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
            let mut request = plan.request.clone();
            request.body = Some(Value::Object(body));
            if let Some(guard) = caller_guard.or(version) {
                request.guard(guard);
            }
            match self.client.send(&request, call).await {
                Ok(response) => return Ok(tidy_item(response.body)),
                Err(e) if tries > 0 && e.http_status == Some(412) => continue,
                Err(e) => return self.recover(tool, plan, call, e).await,
            }
        }
    }

    /// A parent the upstream would not check must exist and not be deleted.
    async fn check_parent(
        &self,
        tool: &ToolDef,
        parent: &Request,
        call: &Call,
    ) -> Result<(), ToolError> {
        let param = tool
            .entity
            .checked_parent
            .as_ref()
            .map_or("parent_uid", |p| p.param);
        let uid = parent.path.rsplit('/').next().unwrap_or_default();
        match self.client.send(parent, call).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Err(ToolError::invalid_input(format!(
                "{param}: {} {uid} does not exist",
                tool.entity.noun
            ))
            .with_correlation_id(&call.correlation_id)),
            Err(e) if e.code == ErrorCode::Gone => Err(ToolError::invalid_input(format!(
                "{param}: {} {uid} was deleted",
                tool.entity.noun
            ))
            .with_correlation_id(&call.correlation_id)),
            Err(e) => Err(e),
        }
    }

    /// Turns some failures into what the caller asked for, or into a more
    /// useful failure.
    async fn recover(
        &self,
        tool: &ToolDef,
        plan: &Plan,
        call: &Call,
        error: ToolError,
    ) -> Result<Value, ToolError> {
        match error.code {
            // A delete that meets 410 after one of its own attempts may have
            // reached the upstream: that attempt deleted it, and its answer
            // was lost.
            ErrorCode::Gone
                if tool.operation == Operation::Delete
                    && error.applied == Some(Applied::Unknown) =>
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

    /// One page, or for a filtered list the matches of as many pages as it
    /// takes to find some (at most [`MAX_FILTERED_PAGES`]).
    async fn list(
        &self,
        plan: &Plan,
        limit: u32,
        filter: Option<(&'static str, Uuid)>,
        call: &Call,
    ) -> Result<Value, ToolError> {
        let mut request = plan.request.clone();
        let mut items = Vec::new();
        let mut page_number = 0;
        loop {
            page_number += 1;
            let page = self.client.send(&request, call).await?.body;
            let Some(page_items) = page.get("items").and_then(Value::as_array) else {
                return Err(ToolError::new(
                    ErrorCode::UpstreamError,
                    "the upstream's list response has no items",
                )
                .with_correlation_id(&call.correlation_id));
            };
            // The upstream sends a cursor after every non-empty page, even the
            // last; a short page is the end of the listing.
            let next_cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|_| page_items.len() as u32 >= limit)
                .map(str::to_owned);
            items.extend(
                page_items
                    .iter()
                    .filter(|item| {
                        filter.is_none_or(|(key, uid)| payload_uid(item, key) == Some(uid))
                    })
                    .cloned()
                    .map(tidy_item),
            );
            let done = filter.is_none() || !items.is_empty() || page_number >= MAX_FILTERED_PAGES;
            match next_cursor {
                Some(cursor) if !done => {
                    request.query.retain(|(k, _)| *k != "cursor");
                    request.query.push(("cursor", cursor));
                }
                cursor => {
                    let mut result = Map::new();
                    result.insert("items".into(), Value::Array(items));
                    if let Some(cursor) = cursor {
                        result.insert("nextCursor".into(), json!(cursor));
                    }
                    return Ok(Value::Object(result));
                }
            }
        }
    }
}

/// A write that may have happened says so, names the item, and tells the
/// model how to look before repeating it (a repeated create would make a
/// second item; a repeated guarded update would meet its own write).
fn explain_unknown_outcome(tool: &ToolDef, plan: &Plan, mut error: ToolError) -> ToolError {
    if error.applied != Some(Applied::Unknown) {
        return error;
    }
    error.uid = plan.target;
    let check = match plan.target {
        Some(uid) => format!("get_{} {uid}", tool.entity.singular),
        None => format!("list_{}", tool.entity.plural),
    };
    let again = if tool.operation == Operation::Create {
        "creating it again"
    } else {
        "repeating it"
    };
    error.message = format!(
        "{}; the {} may have been applied: check with {check} before {again}",
        error.message, tool.entity.noun
    );
    error
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
