//! JSON Schemas that every MCP host accepts.
//!
//! schemars emits draft 2020-12 with `$schema`, `$ref`s, `type: [X, "null"]`
//! for every `Option` and non-standard formats such as `uint32`. Cursor refuses
//! nullable unions, Gemini trips on the dialect, Ajv's strict mode rejects
//! unknown formats, and every `$ref` costs a model bytes. So schemas are
//! generated inline and then made portable: optionality is expressed only by
//! absence from `required`. What costs bytes and says nothing
//! (`additionalProperties: true`, a null `default`) is dropped; bounds stay,
//! since a schema is exact.

use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::{Map, Value, json};

pub type JsonObject = Map<String, Value>;

/// Formats a host's validator is expected to know; others are dropped.
const STANDARD_FORMATS: &[&str] = &["uuid", "date-time", "date", "email", "uri"];

/// The portable schema of `T` as a JSON object.
pub fn schema_of<T: JsonSchema>() -> JsonObject {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    make_portable(&mut value);
    match value {
        Value::Object(mut map) => {
            // The root title is the Rust type's name: noise to a model.
            map.remove("title");
            map
        }
        _ => JsonObject::new(),
    }
}

fn make_portable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type") {
                let non_null: Vec<Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1 {
                    map.insert("type".into(), non_null[0].clone());
                }
            }
            if let Some(Value::Array(variants)) = map.get_mut("enum") {
                variants.retain(|v| !v.is_null());
            }
            if let Some(Value::Array(any_of)) = map.get("anyOf") {
                let non_null: Vec<Value> = any_of
                    .iter()
                    .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1
                    && let Value::Object(inner) = &non_null[0]
                {
                    map.remove("anyOf");
                    for (k, v) in inner {
                        map.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            // `true` is the default: spelling it out only costs bytes.
            if map.get("additionalProperties") == Some(&Value::Bool(true)) {
                map.remove("additionalProperties");
            }
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            if let Some(Value::String(format)) = map.get("format")
                && !STANDARD_FORMATS.contains(&format.as_str())
            {
                map.remove("format");
            }
            for v in map.values_mut() {
                make_portable(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_portable),
        _ => {}
    }
}

/// Merges the `properties` and `required` of several object schemas into one
/// closed object schema (unknown parameters are refused, not ignored).
pub fn merge_objects(parts: &[JsonObject]) -> JsonObject {
    let mut properties = JsonObject::new();
    let mut required: Vec<Value> = Vec::new();
    for part in parts {
        if let Some(Value::Object(props)) = part.get("properties") {
            properties.extend(props.clone());
        }
        if let Some(Value::Array(req)) = part.get("required") {
            for r in req {
                if !required.contains(r) {
                    required.push(r.clone());
                }
            }
        }
    }
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    schema
}

/// A one-property object schema, for parameters whose shape comes from the
/// entity table rather than from a Rust type (an action enum, a list filter).
pub fn property(name: &str, schema: Value, required: bool) -> JsonObject {
    let mut object = JsonObject::new();
    object.insert("properties".into(), json!({ name: schema }));
    if required {
        object.insert("required".into(), json!([name]));
    }
    object
}
