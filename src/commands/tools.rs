//! `toolbridge-mcp tools`: the catalog, as lines, JSON, the README's tables,
//! or the checked-in `tools/` directory.

use std::path::Path;
use std::process::ExitCode;

use crate::catalog::{Catalog, reference};
use crate::config::Config;
use crate::error::SetupError;
use crate::mcp::to_mcp_tool;

/// Dispatches `tools` and its flags.
pub fn run(config: &Config, json: bool, markdown: bool, write: Option<&Path>) -> ExitCode {
    if let Some(dir) = write {
        return match write_catalog(config, dir) {
            Ok(n) => {
                eprintln!("wrote {n} tool definitions to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(error) => super::fail(&error),
        };
    }
    let format = match (json, markdown) {
        (true, _) => ToolsFormat::Json,
        (_, true) => ToolsFormat::Markdown,
        _ => ToolsFormat::Lines,
    };
    println!("{}", tools(config, format));
    ExitCode::SUCCESS
}

/// What `toolbridge-mcp tools` prints.
pub enum ToolsFormat {
    Lines,
    Json,
    Markdown,
}

/// One line per tool, the full definitions, or the README's reference tables.
pub fn tools(config: &Config, format: ToolsFormat) -> String {
    let catalog = Catalog::select(&config.selection);
    match format {
        ToolsFormat::Json => {
            let tools: Vec<_> = catalog.tools().iter().map(to_mcp_tool).collect();
            serde_json::to_string_pretty(&tools).unwrap_or_default()
        }
        ToolsFormat::Markdown => reference::markdown(&catalog),
        ToolsFormat::Lines => {
            let width = catalog
                .tools()
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(0);
            catalog
                .tools()
                .iter()
                .map(|t| format!("{:width$}  {}", t.name, t.description))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Writes the checked-in catalog: one pretty JSON file per tool, so every
/// change to what models see shows up in review. Stale files are removed.
pub fn write_catalog(config: &Config, dir: &Path) -> Result<usize, SetupError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| SetupError::Write { path, source }
    };
    let catalog = Catalog::select(&config.selection);
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let wanted: Vec<String> = catalog
        .tools()
        .iter()
        .map(|t| format!("{}.json", t.name))
        .collect();
    for entry in std::fs::read_dir(dir).map_err(failed(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !wanted.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(failed(&entry.path()))?;
        }
    }
    for tool in catalog.tools() {
        let mut text = serde_json::to_string_pretty(&to_mcp_tool(tool)).unwrap_or_default();
        text.push('\n');
        let path = dir.join(format!("{}.json", tool.name));
        std::fs::write(&path, text).map_err(failed(&path))?;
    }
    Ok(catalog.tools().len())
}
