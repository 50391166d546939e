//! The tool catalog: the entity table × the eight operations.
//!
//! From it come every tool's definition (name, description, schemas, hints)
//! and, for a call, the [`Plan`] of what to send. It knows nothing of HTTP
//! clients, sessions or MCP: [`crate::service`] runs plans, [`crate::mcp`]
//! serves definitions.

pub mod entities;
pub mod operations;
pub mod reference;
pub mod repeat;
pub mod schema;

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

pub use entities::{ENTITIES, Entity};
pub use operations::{Hints, Operation};
pub use repeat::RetryClass;
use schema::JsonObject;

use crate::error::ToolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// One upstream request, described without a transport.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path below the base URL; every uid in it was parsed as a UUID first.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// Sent as `If-Match: "<n>"`.
    pub if_match: Option<u64>,
    /// Whether and how it may be sent again: see [`repeat`].
    pub class: RetryClass,
}

impl Request {
    pub fn get(path: String) -> Self {
        Self {
            method: Method::Get,
            path,
            query: Vec::new(),
            body: None,
            if_match: None,
            class: RetryClass::Read,
        }
    }

    /// Guards the request with `If-Match`, which makes it conditional.
    pub fn guard(&mut self, version: u64) {
        self.if_match = Some(version);
        self.class = RetryClass::Conditional;
    }
}

/// What a successful response becomes.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The response is one item.
    Item,
    /// The response is a page; `filter` keeps items whose payload key holds
    /// the uid (the upstream cannot filter, so pages are filtered here).
    Page {
        limit: u32,
        filter: Option<(&'static str, Uuid)>,
    },
}

/// Everything needed to run one tool call.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: Request,
    pub finish: Finish,
    /// A delete guarded by `if_version`: the upstream does not check
    /// `If-Match` on delete, so the version is compared before deleting.
    pub expect_version: Option<u64>,
    /// The item the call acts on (for a create, the uid made for it).
    pub target: Option<Uuid>,
    /// An update sets these payload keys (the typed fields) and must keep
    /// every other stored key: the service reads the item and writes the
    /// merge with `If-Match`.
    pub replaces: Option<Vec<String>>,
    /// An item that must exist and not be deleted before the write is sent
    /// (a task's parent: the upstream does not check it).
    pub requires: Option<Request>,
}

impl Plan {
    fn item(request: Request, target: Option<Uuid>) -> Self {
        Self {
            request,
            finish: Finish::Item,
            expect_version: None,
            target,
            replaces: None,
            requires: None,
        }
    }
}

/// One tool as the catalog defines it.
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub entity: &'static Entity,
    pub operation: Operation,
    pub input_schema: Arc<JsonObject>,
    pub output_schema: Arc<JsonObject>,
    pub hints: Hints,
}

impl ToolDef {
    fn new(entity: &'static Entity, operation: Operation) -> Self {
        Self {
            name: operation.tool_name(entity),
            description: operation.description(entity),
            entity,
            operation,
            input_schema: Arc::new(operation.input_schema(entity)),
            output_schema: Arc::new(operation.output_schema()),
            hints: operation.hints(),
        }
    }

    /// Validates the arguments and plans the request. Nothing is sent for
    /// arguments the schema would refuse.
    pub fn plan(&self, args: Option<JsonObject>) -> Result<Plan, ToolError> {
        let args = args.unwrap_or_default();
        let known = self
            .input_schema
            .get("properties")
            .and_then(Value::as_object);
        if let Some(unknown) = args
            .keys()
            .find(|k| !known.is_some_and(|p| p.contains_key(*k)))
        {
            let expected: Vec<&str> = known
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(ToolError::invalid_input(format!(
                "unknown parameter `{unknown}`; {} takes: {}",
                self.name,
                expected.join(", ")
            )));
        }
        self.operation.plan(self.entity, &args)
    }
}

/// The tools a server offers, in a stable order.
pub struct Catalog {
    tools: Vec<ToolDef>,
}

/// Which tools to offer.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Entity plural names (`notes`, `chat_messages`); empty means all.
    pub toolsets: Vec<String>,
    /// Only tools that change nothing.
    pub read_only: bool,
}

impl Catalog {
    pub fn all() -> Self {
        Self::select(&Selection::default())
    }

    pub fn select(selection: &Selection) -> Self {
        let tools = ENTITIES
            .iter()
            .filter(|e| {
                selection.toolsets.is_empty() || selection.toolsets.iter().any(|t| t == e.plural)
            })
            .flat_map(|e| {
                Operation::ALL
                    .into_iter()
                    .map(move |op| ToolDef::new(e, op))
            })
            .filter(|t| !selection.read_only || t.hints.read_only)
            .collect();
        Self { tools }
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Why `name` cannot be called: unknown, or known but not enabled.
    pub fn refusal(&self, name: &str) -> String {
        if Catalog::all().get(name).is_some() {
            format!("tool `{name}` is not enabled on this server (--read-only or --toolsets)")
        } else {
            format!("unknown tool: {name}")
        }
    }
}

/// Toolset names accepted by `--toolsets`.
pub fn toolset_names() -> Vec<&'static str> {
    ENTITIES.iter().map(|e| e.plural).collect()
}
