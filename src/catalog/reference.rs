//! The tool reference in the README and in `call TOOL --help`, rendered from
//! the catalog itself so the documentation cannot drift from what models see.

use serde_json::Value;

use super::{Catalog, ENTITIES, ToolDef};

/// One table for `search` and one per entity: tool, description, parameters
/// (required in bold).
pub fn markdown(catalog: &Catalog) -> String {
    let mut out = String::new();
    let search = (
        "search",
        catalog
            .tools()
            .iter()
            .filter(|t| t.entity().is_none())
            .collect(),
    );
    let per_entity = ENTITIES.iter().map(|entity| {
        let tools: Vec<&ToolDef> = catalog
            .tools()
            .iter()
            .filter(|t| t.entity().is_some_and(|e| std::ptr::eq(e, entity)))
            .collect();
        (entity.plural, tools)
    });
    for (heading, tools) in std::iter::once(search).chain(per_entity) {
        if tools.is_empty() {
            continue;
        }
        out.push_str(&format!("\n#### {}\n\n", heading.replace('_', " ")));
        out.push_str("| tool | what it does | parameters (**required**) |\n|---|---|---|\n");
        for tool in tools {
            let params: Vec<String> = parameters(tool)
                .iter()
                .map(|p| {
                    let shown = if p.values.is_empty() {
                        format!("`{}`", p.name)
                    } else {
                        format!("`{}` ({})", p.name, p.values.join(", "))
                    };
                    if p.required {
                        format!("**{shown}**")
                    } else {
                        shown
                    }
                })
                .collect();
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                tool.name,
                tool.description,
                params.join(", ")
            ));
        }
    }
    out
}

/// One parameter of a tool, as its input schema declares it.
pub struct Parameter<'a> {
    pub name: &'a str,
    /// `string`, `integer`, `array of string`, … with the format when there
    /// is one (`string (uuid)`).
    pub kind: String,
    pub required: bool,
    /// The values an enum allows.
    pub values: Vec<&'a str>,
    pub description: Option<&'a str>,
    /// The value an omitted parameter takes, as its schema says it.
    pub default: Option<&'a Value>,
}

/// The tool's parameters in schema order.
pub fn parameters(tool: &ToolDef) -> Vec<Parameter<'_>> {
    let schema = &tool.input_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let type_of = |p: &Value| {
                p.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("any")
                    .to_owned()
            };
            let mut kind = type_of(property);
            if let Some(items) = property.get("items") {
                kind = format!("{kind} of {}", type_of(items));
            }
            if let Some(format) = property.get("format").and_then(Value::as_str) {
                kind = format!("{kind} ({format})");
            }
            Parameter {
                name,
                kind,
                required: required.contains(&name.as_str()),
                values: property
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
                description: property.get("description").and_then(Value::as_str),
                default: property.get("default"),
            }
        })
        .collect()
}

/// What `call TOOL --help` prints: the description, then one line per
/// parameter (required first), e.g.
/// `  status          string: open | in_progress | completed | archived`
/// or `  limit           integer  (default 50)`.
pub fn text(tool: &ToolDef) -> String {
    let mut params = parameters(tool);
    // Stable: schema order within required and optional.
    params.sort_by_key(|p| !p.required);
    let mut out = format!(
        "{}: {}\n\nUsage: toolbridge-mcp call {} [--arg KEY=VALUE ...] [--json OBJECT]\n",
        tool.name, tool.description, tool.name
    );
    if params.is_empty() {
        out.push_str("\nNo parameters.\n");
        return out;
    }
    out.push_str("\nParameters (* required):\n");
    let width = params.iter().map(|p| p.name.len()).max().unwrap_or(0) + 2;
    for p in &params {
        let name = format!("{}{}", p.name, if p.required { " *" } else { "" });
        let mut line = format!("  {name:width$}  {}", p.kind);
        if !p.values.is_empty() {
            line.push_str(&format!(": {}", p.values.join(" | ")));
        }
        if let Some(description) = p.description {
            line.push_str(&format!("  {description}"));
        }
        if let Some(default) = p.default {
            let shown = default
                .as_str()
                .map_or_else(|| default.to_string(), str::to_owned);
            line.push_str(&format!("  (default {shown})"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
