//! Compact tool mode (`--tool-mode compact`): three tools that reach all 40
//! operations: `read` (list or get), `write` (create, update, patch, delete,
//! archive, process), each of any entity, and `search`.
//!
//! Each takes an `operation` and an `entity` and the union of its
//! operations' parameters, then is planned exactly as the full tool of that
//! operation is: the same schema checks, the same plan, the same service
//! path. Reads and writes are split so that `readOnlyHint` stays honest
//! (hosts skip approval on reads) and a tool that can delete is marked
//! destructive. Parameter descriptions and defaults are left out: they
//! repeat what the full tools and the server instructions say, and this mode
//! exists to be small.

use std::sync::Arc;

use serde_json::{Value, json};

use super::entities::Entity;
use super::operations::{Hints, Operation};
use super::schema::{JsonObject, merge_objects, property};
use super::{Kind, ToolDef};
use crate::error::ToolError;

/// The compact tools over `entities`: `read`, and unless `read_only`
/// `write`.
pub fn tools(entities: &[&'static Entity], local: bool, read_only: bool) -> Vec<ToolDef> {
    let (reads, writes): (Vec<Operation>, Vec<Operation>) = Operation::ALL
        .into_iter()
        .partition(|op| op.hints().read_only);
    let many = entities
        .iter()
        .map(|e| e.plural.replace('_', " "))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tools = vec![tool(
        "read".into(),
        format!("Read {many}: list (a page, with filters) or get (one by uid)."),
        entities,
        &reads,
        local,
    )];
    if !read_only {
        tools.push(tool(
            "write".into(),
            format!(
                "Write {many}: create, update (clears omitted fields), patch, delete, archive, or process (an action)."
            ),
            entities,
            &writes,
            local,
        ));
    }
    tools
}

/// A tool's parameters without their descriptions, for this mode.
pub fn without_descriptions(mut def: ToolDef) -> ToolDef {
    let mut schema = (*def.input_schema).clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        strip_documentation(properties);
    }
    def.input_schema = Arc::new(schema);
    def
}

/// Drops what documents a parameter rather than constrains it: its
/// description and its `default`.
fn strip_documentation(properties: &mut JsonObject) {
    for (_, property) in properties.iter_mut() {
        if let Value::Object(p) = property {
            p.remove("description");
            p.remove("default");
        }
    }
}

fn tool(
    name: String,
    description: String,
    entities: &[&'static Entity],
    operations: &[Operation],
    local: bool,
) -> ToolDef {
    let full: Vec<Arc<ToolDef>> = entities
        .iter()
        .flat_map(|e| operations.iter().map(move |op| (*e, *op)))
        .map(|(e, op)| Arc::new(ToolDef::new(e, op, local)))
        .collect();
    let names: Vec<&str> = operations.iter().map(|op| op.name()).collect();
    let mut parts = vec![property(
        "operation",
        json!({"type": "string", "enum": names}),
        true,
    )];
    if entities.len() > 1 {
        let plurals: Vec<&str> = entities.iter().map(|e| e.plural).collect();
        parts.push(property(
            "entity",
            json!({"type": "string", "enum": plurals}),
            true,
        ));
    }
    // Enums that differ by entity (`status`, `action`) take the union of
    // theirs; the full tool checks the value for its entity.
    let mut unions: Vec<(&str, Vec<Value>)> = vec![("status", Vec::new()), ("action", Vec::new())];
    for def in &full {
        let mut schema = (*def.input_schema).clone();
        // Which parameters an operation requires is checked when it is
        // planned; the union requires only what picks the operation.
        schema.remove("required");
        if let Some(Value::Object(properties)) = schema.get_mut("properties") {
            strip_documentation(properties);
            for (key, union) in unions.iter_mut() {
                let values = properties
                    .get(*key)
                    .and_then(|s| s.get("enum"))
                    .and_then(Value::as_array);
                for value in values.into_iter().flatten() {
                    if !union.contains(value) {
                        union.push(value.clone());
                    }
                }
            }
        }
        parts.push(schema);
    }
    let mut input_schema = merge_objects(&parts);
    if let Some(Value::Object(properties)) = input_schema.get_mut("properties") {
        for (key, union) in unions {
            if let Some(property) = properties.get_mut(key) {
                property["enum"] = Value::Array(union);
            }
        }
    }
    let read_only = operations.iter().all(|op| op.hints().read_only);
    ToolDef {
        name,
        description,
        kind: Kind::Compact(full),
        input_schema: Arc::new(input_schema),
        output_schema: Arc::new(match json!({"type": "object"}) {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }),
        hints: Hints {
            read_only,
            destructive: !read_only,
            idempotent: read_only,
        },
    }
}

/// The full tool `args["operation"]` (and, for `read`, `args["entity"]`)
/// names, and the arguments left for it.
pub fn resolve(
    full: &[Arc<ToolDef>],
    mut args: JsonObject,
) -> Result<(&ToolDef, JsonObject), ToolError> {
    let choices = |pick: fn(&ToolDef) -> Option<&'static str>| {
        let mut names: Vec<&str> = full.iter().filter_map(|d| pick(d)).collect();
        names.dedup();
        names
    };
    let operation = |d: &ToolDef| d.operation().map(Operation::name);
    let entity = |d: &ToolDef| d.entity().map(|e| e.plural);
    let spans_entities = choices(entity).len() > 1;
    let wanted_operation = take_choice(&mut args, "operation", &choices(operation))?;
    let wanted_entity = if spans_entities {
        Some(take_choice(&mut args, "entity", &choices(entity))?)
    } else {
        None
    };
    full.iter()
        .find(|d| {
            operation(d) == Some(wanted_operation.as_str())
                && wanted_entity
                    .as_deref()
                    .is_none_or(|wanted| entity(d) == Some(wanted))
        })
        .map(|def| (def.as_ref(), args))
        .ok_or_else(|| {
            ToolError::invalid_input(format!("operation: `{wanted_operation}` is not available"))
        })
}

/// Removes `key` from `args`; it must be one of `choices`.
fn take_choice(args: &mut JsonObject, key: &str, choices: &[&str]) -> Result<String, ToolError> {
    match args.remove(key) {
        Some(Value::String(name)) if choices.contains(&name.as_str()) => Ok(name),
        Some(other) => Err(ToolError::invalid_input(format!(
            "{key}: {other} is not one of {}",
            choices.join(", ")
        ))),
        None => Err(ToolError::invalid_input(format!(
            "{key}: missing; one of {}",
            choices.join(", ")
        ))),
    }
}
