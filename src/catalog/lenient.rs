//! Models are sloppy in predictable ways. Where a tool's schema says exactly
//! what a value must be, its common misspellings are accepted before the
//! arguments are validated; everything else is still refused, one line per
//! field.
//!
//! - A parameter spelled in camelCase, as results spell payload keys
//!   (`dueDate` for `due_date`), is its snake_case twin.
//! - A string holding JSON of the parameter's declared type (`"10"` for an
//!   integer, `"[\"a\"]"` for an array, `"{...}"` for an object, `"true"`)
//!   is that value.
//!
//! Uids need nothing here: upper case, braces and `urn:uuid:` are parsed by
//! the UUID parser, and sent in canonical form.

use serde_json::Value;

use super::schema::JsonObject;
use crate::error::ToolError;

/// `args` with camelCase twins renamed and JSON strings parsed, as far as
/// `schema` (the tool's input schema) says what is meant.
pub fn normalize(schema: &JsonObject, mut args: JsonObject) -> Result<JsonObject, ToolError> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(args);
    };
    let twins: Vec<(String, String)> = args
        .keys()
        .filter(|key| !properties.contains_key(*key))
        .map(|key| (key.clone(), snake_case(key)))
        .filter(|(_, snake)| properties.contains_key(snake))
        .collect();
    for (camel, snake) in twins {
        if args.contains_key(&snake) {
            return Err(ToolError::invalid_input(format!(
                "{snake}: given twice (also as {camel})"
            )));
        }
        if let Some(value) = args.remove(&camel) {
            args.insert(snake, value);
        }
    }
    for (key, value) in args.iter_mut() {
        let Value::String(text) = value else {
            continue;
        };
        let declared = properties
            .get(key)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        let Some(declared) = declared.filter(|t| *t != "string") else {
            continue;
        };
        if let Ok(parsed) = serde_json::from_str::<Value>(text.trim())
            && is_of_type(&parsed, declared)
        {
            *value = parsed;
        }
    }
    Ok(args)
}

fn is_of_type(value: &Value, declared: &str) -> bool {
    match declared {
        "array" => value.is_array(),
        "object" => value.is_object(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    }
}

/// `dueDate` → `due_date`; a name without capitals is unchanged.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> JsonObject {
        match json!({"type": "object", "properties": {
            "tags": {"type": "array"}, "limit": {"type": "integer"}, "raw": {"type": "boolean"},
            "additional_fields": {"type": "object"}, "title": {"type": "string"},
            "due_date": {"type": "string"}
        }}) {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    fn args(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn json_strings_of_the_declared_type_are_values() {
        let out = normalize(
            &schema(),
            args(json!({
                "tags": "[\"a\",\"b\"]", "limit": " 10 ", "raw": "true",
                "additional_fields": "{\"color\":\"red\"}", "title": "[not a list]"
            })),
        )
        .unwrap();
        assert_eq!(out["tags"], json!(["a", "b"]));
        assert_eq!(out["limit"], json!(10));
        assert_eq!(out["raw"], json!(true));
        assert_eq!(out["additional_fields"], json!({"color": "red"}));
        assert_eq!(
            out["title"],
            json!("[not a list]"),
            "a string stays a string"
        );
    }

    #[test]
    fn other_strings_are_left_for_validation_to_refuse() {
        let out = normalize(
            &schema(),
            args(json!({"tags": "a,b", "limit": "ten", "raw": "yes", "additional_fields": "[1]"})),
        )
        .unwrap();
        assert_eq!(out["tags"], json!("a,b"));
        assert_eq!(out["limit"], json!("ten"));
        assert_eq!(out["raw"], json!("yes"));
        assert_eq!(out["additional_fields"], json!("[1]"));
    }

    #[test]
    fn camel_case_twins_are_their_parameters() {
        let out = normalize(&schema(), args(json!({"dueDate": "2026-12-01"}))).unwrap();
        assert_eq!(out["due_date"], json!("2026-12-01"));
        assert!(out.get("dueDate").is_none());
        let both = normalize(
            &schema(),
            args(json!({"dueDate": "2026-12-01", "due_date": "2026-12-02"})),
        );
        assert!(both.is_err());
        let unknown = normalize(&schema(), args(json!({"colorName": "red"}))).unwrap();
        assert_eq!(
            unknown["colorName"],
            json!("red"),
            "left for the unknown-key check"
        );
    }
}
