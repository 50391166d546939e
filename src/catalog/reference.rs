//! The tool reference in the README, rendered from the catalog itself so the
//! documentation cannot drift from what models see.

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
            let required: Vec<&str> = tool
                .input_schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let params: Vec<String> = tool
                .input_schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(name, schema)| {
                            let shown = match schema.get("enum").and_then(Value::as_array) {
                                Some(values) => {
                                    let values: Vec<&str> =
                                        values.iter().filter_map(Value::as_str).collect();
                                    format!("`{name}` ({})", values.join(", "))
                                }
                                None => format!("`{name}`"),
                            };
                            if required.contains(&name.as_str()) {
                                format!("**{shown}**")
                            } else {
                                shown
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
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
