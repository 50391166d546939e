//! `toolbridge-mcp call`: one tool through the same path as MCP.

use std::process::ExitCode;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::Backend;
use crate::catalog::{Catalog, ToolDef, reference};
use crate::config::Config;
use crate::error::{ErrorCode, SetupError, ToolError};

/// Runs the call and prints its result (stdout) or error (stderr, with an
/// exit code a script can branch on).
pub async fn run(config: Config, tool: &str, args: &[String], json: Option<&str>) -> ExitCode {
    match call(config, tool, args, json).await {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(CallFailure::Setup(error)) => super::fail(&error),
        Err(CallFailure::UnknownTool(line)) => unknown_tool(&line),
        Err(CallFailure::Tool(error)) => {
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&error).unwrap_or_default()
            );
            ExitCode::from(error.code.exit_code())
        }
    }
}

/// What `call` answers before anything starts: a tool these settings do not
/// enable is refused (no embedded API, credential helper or log for a typo),
/// and `call TOOL --help` prints the tool's description and parameters.
/// `None`: go on and call it.
pub fn answer_early(config: &Config, tool: &str, help: bool) -> Option<ExitCode> {
    let catalog = Catalog::select(&config.selection);
    match catalog.get(tool) {
        None => Some(unknown_tool(&catalog.refusal(tool))),
        Some(def) if help => {
            print!("{}", reference::text(def));
            Some(ExitCode::SUCCESS)
        }
        Some(_) => None,
    }
}

/// A tool name that is not callable is invalid input (exit 2), reported in
/// one line like any other command-line mistake.
fn unknown_tool(refusal: &str) -> ExitCode {
    eprintln!("toolbridge-mcp: {refusal}; `toolbridge-mcp tools` lists them");
    ExitCode::from(ErrorCode::InvalidInput.exit_code())
}

/// One tool call, as `call` runs it.
pub async fn call(
    mut config: Config,
    tool: &str,
    args: &[String],
    json: Option<&str>,
) -> Result<Value, CallFailure> {
    // Read before anything starts: an unreadable file fails at once.
    let json = match json {
        Some(source) => Some(json_text(source).await.map_err(CallFailure::Tool)?),
        None => None,
    };
    let backend = Backend::start(&mut config)
        .await
        .map_err(CallFailure::Setup)?;
    let result = match backend.service.catalog().get(tool) {
        None => Err(CallFailure::UnknownTool(
            backend.service.catalog().refusal(tool),
        )),
        Some(def) => match parse_call_args(def, args, json.as_deref()) {
            Ok(arguments) => backend
                .service
                .run(def, Some(arguments), CancellationToken::new())
                .await
                .map_err(CallFailure::Tool),
            Err(e) => Err(CallFailure::Tool(e)),
        },
    };
    backend.shutdown().await;
    result
}

pub enum CallFailure {
    /// The call could not be made (configuration, credentials).
    Setup(SetupError),
    /// No enabled tool has this name: the refusal, naming the closest.
    UnknownTool(String),
    /// The tool ran and failed.
    Tool(ToolError),
}

/// The most `--json @FILE` or `--json -` reads: far above the largest item
/// (which the tool itself then refuses with its own clear error), and a
/// bound on what a wrong file or an endless pipe can make this read.
const MAX_JSON_INPUT_BYTES: u64 = 16 << 20;

/// The `--json` text: given inline, read from a file (`@FILE`), or from stdin
/// (`-`). Neither form is valid JSON, so an inline object is never mistaken
/// for one (and arguments too long for a command line fit in a file).
async fn json_text(source: &str) -> Result<String, ToolError> {
    use tokio::io::AsyncReadExt;
    let (name, reader): (String, Box<dyn tokio::io::AsyncRead + Unpin + Send>) =
        match source.strip_prefix('@') {
            _ if source == "-" => ("--json - (stdin)".into(), Box::new(tokio::io::stdin())),
            Some(path) => {
                let name = format!("--json @{path}");
                let file = tokio::fs::File::open(path).await.map_err(|e| {
                    ToolError::invalid_input(format!("{name}: cannot open it: {e}"))
                })?;
                (name, Box::new(file))
            }
            None => return Ok(source.to_owned()),
        };
    let mut bytes = Vec::new();
    reader
        .take(MAX_JSON_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| ToolError::invalid_input(format!("{name}: cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_JSON_INPUT_BYTES {
        return Err(ToolError::invalid_input(format!(
            "{name}: more than {} bytes (16 MiB); arguments that large are not read",
            crate::catalog::size::grouped(MAX_JSON_INPUT_BYTES as usize)
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| ToolError::invalid_input(format!("{name}: not UTF-8 text")))
}

/// `--json` first, then each `--arg key=value` over it. A value is parsed as
/// JSON unless the parameter is a string, so `title=123` stays a string and
/// `limit=5` becomes a number.
fn parse_call_args(
    def: &ToolDef,
    args: &[String],
    json: Option<&str>,
) -> Result<Map<String, Value>, ToolError> {
    let mut map = match json {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ToolError::invalid_input("--json must be a JSON object")),
            Err(e) => {
                return Err(ToolError::invalid_input(format!(
                    "--json is not valid JSON: {e}"
                )));
            }
        },
        None => Map::new(),
    };
    let properties = def
        .input_schema
        .get("properties")
        .and_then(Value::as_object);
    for arg in args {
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(ToolError::invalid_input(format!(
                "--arg `{arg}` is not key=value"
            )));
        };
        let is_string = properties
            .and_then(|p| p.get(key))
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            == Some("string");
        let value = if is_string {
            Value::String(raw.to_owned())
        } else {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
        };
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}
