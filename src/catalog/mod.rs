//! The tool catalog: the entity table × the eight operations.
//!
//! From it come every tool's definition (name, description, schemas, hints)
//! and, for a call, the [`Plan`] of what to send. It knows nothing of HTTP
//! clients, sessions or MCP: [`crate::service`] runs plans, [`crate::mcp`]
//! serves definitions.

pub mod compact;
pub mod cursor;
pub mod entities;
pub mod lenient;
pub mod operations;
pub mod reference;
pub mod repeat;
pub mod schema;
pub mod search;
pub mod size;

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
    /// `local` holds what only the local replica can answer.
    Page {
        limit: u32,
        filter: Option<(&'static str, Uuid)>,
        local: LocalList,
    },
}

// List order by update time (not as a doc comment: schemars would make it
// the `order` parameter's description, which the list's description says).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Oldest,
    Newest,
}

/// Filters the local replica applies to a list or a search (the upstream
/// can apply none of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Items carrying every one of these tags.
    pub tags: Vec<String>,
    pub status: Option<String>,
    /// Unix ms, exclusive.
    pub updated_after: Option<i64>,
    /// Unix ms, inclusive.
    pub updated_before: Option<i64>,
    pub due_after: Option<i64>,
    pub due_before: Option<i64>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a list asks that only the local replica can answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalList {
    pub order: Order,
    pub filters: Filters,
}

impl LocalList {
    /// Whether the upstream could serve this list as asked.
    pub fn needs_replica(&self) -> bool {
        self.order != Order::Oldest || !self.filters.is_empty()
    }
}

/// What a tool call amounts to once its arguments are validated.
#[derive(Debug)]
pub enum Planned {
    /// One upstream request (or a read the replica may answer instead).
    Request(Box<Plan>),
    /// A full-text search of the local replica.
    Search(Box<search::SearchPlan>),
}

/// What a tool acts on.
#[derive(Debug, Clone)]
pub enum Kind {
    /// One of the eight operations on one entity.
    Entity(&'static Entity, Operation),
    /// `search`, over these entities.
    Search(Vec<&'static Entity>),
    /// A compact tool: one of these full tools, named by `operation`.
    Compact(Vec<Arc<ToolDef>>),
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
    /// Return items as the upstream sent them, bookkeeping keys included.
    pub raw: bool,
    /// Only these payload keys of each listed item.
    pub fields: Option<Vec<String>>,
    /// Where a `get_*` starts an item's long text, after a cut.
    pub offset: usize,
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
            raw: false,
            fields: None,
            offset: 0,
        }
    }
}

/// One tool as the catalog defines it.
#[derive(Debug)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub input_schema: Arc<JsonObject>,
    pub output_schema: Arc<JsonObject>,
    pub hints: Hints,
}

impl ToolDef {
    pub(crate) fn new(entity: &'static Entity, operation: Operation, local: bool) -> Self {
        Self {
            name: operation.tool_name(entity),
            description: operation.description(entity, local),
            kind: Kind::Entity(entity, operation),
            input_schema: Arc::new(operation.input_schema(entity, local)),
            output_schema: Arc::new(operation.output_schema()),
            hints: operation.hints(),
        }
    }

    /// The entity an entity tool (or a compact tool) acts on; `None` for
    /// `search`.
    pub fn entity(&self) -> Option<&'static Entity> {
        match &self.kind {
            Kind::Entity(entity, _) => Some(entity),
            Kind::Compact(full) => full.first().and_then(|d| d.entity()),
            Kind::Search(_) => None,
        }
    }

    /// The operation of an entity tool; `None` for the others.
    pub fn operation(&self) -> Option<Operation> {
        match self.kind {
            Kind::Entity(_, operation) => Some(operation),
            Kind::Search(_) | Kind::Compact(_) => None,
        }
    }

    /// The tool that runs a call: this one, or for a compact tool the full
    /// tool its `operation` names (with the arguments left for it).
    pub fn resolve(
        &self,
        args: Option<JsonObject>,
    ) -> Result<(&ToolDef, Option<JsonObject>), ToolError> {
        match &self.kind {
            Kind::Compact(full) => {
                let args = lenient::normalize(&self.input_schema, args.unwrap_or_default())?;
                compact::resolve(full, args).map(|(def, args)| (def, Some(args)))
            }
            _ => Ok((self, args)),
        }
    }

    /// Validates the arguments and plans the call. Nothing is sent for
    /// arguments the schema would refuse.
    pub fn plan(&self, args: Option<JsonObject>) -> Result<Planned, ToolError> {
        let args = lenient::normalize(&self.input_schema, args.unwrap_or_default())?;
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
        match &self.kind {
            Kind::Entity(entity, operation) => operation
                .plan(entity, &args)
                .map(|p| Planned::Request(Box::new(p))),
            Kind::Search(entities) => {
                search::plan(entities, &args).map(|p| Planned::Search(Box::new(p)))
            }
            Kind::Compact(full) => {
                let (def, args) = compact::resolve(full, args)?;
                def.plan(Some(args))
            }
        }
    }
}

/// The tools a server offers, in a stable order, and the entities they
/// reach.
pub struct Catalog {
    tools: Vec<ToolDef>,
    entities: Vec<&'static Entity>,
}

/// Which tools to offer.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Entity plural names (`notes`, `chat_messages`); empty means all.
    pub toolsets: Vec<String>,
    /// Only tools that change nothing.
    pub read_only: bool,
    /// A local replica answers reads: `search` and the list filters exist.
    pub local: bool,
    /// Two tools per entity (`note_read`, `note_write`) instead of eight.
    pub compact: bool,
}

impl Selection {
    /// The entities it enables, in table order.
    pub fn entities(&self) -> Vec<&'static Entity> {
        ENTITIES
            .iter()
            .filter(|e| self.toolsets.is_empty() || self.toolsets.iter().any(|t| t == e.plural))
            .collect()
    }
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            toolsets: Vec::new(),
            read_only: false,
            local: true,
            compact: false,
        }
    }
}

impl Catalog {
    /// Every tool any configuration can offer.
    pub fn all() -> Self {
        Self::select(&Selection::default())
    }

    pub fn select(selection: &Selection) -> Self {
        let entities = selection.entities();
        let mut tools: Vec<ToolDef> = Vec::new();
        if selection.local && !entities.is_empty() {
            let search = search::tool(entities.clone());
            tools.push(if selection.compact {
                compact::without_descriptions(search)
            } else {
                search
            });
        }
        if selection.compact {
            tools.extend(compact::tools(
                &entities,
                selection.local,
                selection.read_only,
            ));
            return Self { tools, entities };
        }
        tools.extend(
            entities
                .iter()
                .flat_map(|e| {
                    Operation::ALL
                        .into_iter()
                        .map(move |op| ToolDef::new(e, op, selection.local))
                })
                .filter(|t| !selection.read_only || t.hints.read_only),
        );
        Self { tools, entities }
    }

    /// The entities `--toolsets` enables.
    pub fn entities(&self) -> &[&'static Entity] {
        &self.entities
    }

    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Why `name` cannot be called: unknown (with the closest enabled names),
    /// or known but not enabled.
    pub fn refusal(&self, name: &str) -> String {
        if Catalog::all().get(name).is_some() {
            return format!(
                "tool `{name}` is not enabled on this server (--read-only, --toolsets or --replica off)"
            );
        }
        match self.closest(name).as_slice() {
            [] => format!("unknown tool: {name}"),
            names => format!("unknown tool: {name} (did you mean {}?)", names.join(", ")),
        }
    }

    /// Up to three enabled tool names like `name`, the likeliest first: a
    /// typo (`get_notes`) or a part of the name (`note`).
    fn closest(&self, name: &str) -> Vec<&str> {
        let mut scored: Vec<(f64, &str)> = self
            .tools
            .iter()
            .map(|t| (strsim::jaro_winkler(name, &t.name), t.name.as_str()))
            .filter(|(score, tool)| *score >= 0.9 || (name.len() >= 3 && tool.contains(name)))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(3).map(|(_, tool)| tool).collect()
    }
}

/// Toolset names accepted by `--toolsets`.
pub fn toolset_names() -> Vec<&'static str> {
    ENTITIES.iter().map(|e| e.plural).collect()
}
