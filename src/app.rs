//! The commands `main` dispatches to, each a few lines over the library.

use std::io::IsTerminal;
use std::sync::Arc;

use rmcp::ServiceExt;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, ToolDef, reference};
use crate::config::{Config, Upstream};
use crate::embedded::{self, ApiConfig, RateLimits, RunningApi};
use crate::error::ToolError;
use crate::mcp::{McpServer, to_mcp_tool};
use crate::service::Service;
use crate::stdio;
use crate::upstream::{Auth, Client, run_token_command};

/// The service and, on the embedded default, the API it talks to.
pub struct Backend {
    pub service: Arc<Service>,
    embedded: Option<RunningApi>,
}

impl Backend {
    pub async fn start(config: &mut Config) -> Result<Self, String> {
        let mut auth = std::mem::replace(&mut config.auth, Auth::None);
        if let Some(argv) = &config.token_command {
            let token = run_token_command(argv).await.map_err(|e| e.message)?;
            auth = Auth::Bearer(token);
        }
        let (client_config, embedded) = match &config.upstream {
            Upstream::Remote { base_url } => {
                tracing::info!(upstream = %base_url, "using a remote ToolBridge API");
                (
                    config.client_config(base_url.clone(), auth, config.tenant_id.clone()),
                    None,
                )
            }
            Upstream::Embedded { db_path } => {
                let secret = embedded::new_secret();
                let api = embedded::spawn(ApiConfig {
                    db_path: db_path.clone(),
                    secret: secret.clone(),
                    limits: RateLimits::in_process(),
                })
                .await
                .map_err(|e| format!("cannot start the embedded API: {e}"))?;
                tracing::info!(db_path = %db_path.display(), url = %api.base_url(), "started the embedded API");
                let client_config = config.client_config(
                    api.base_url(),
                    Auth::Bearer(secret),
                    Some(embedded::TENANT_ID.to_owned()),
                );
                (client_config, Some(api))
            }
        };
        let client = Arc::new(Client::new(client_config).map_err(|e| e.message)?);
        // Pace requests by the upstream's published limits, once it says them.
        tokio::spawn({
            let client = client.clone();
            async move { client.discover_limits().await }
        });
        let catalog = Catalog::select(&config.selection);
        let service = Service::new(catalog, client, config.call_timeout);
        Ok(Self {
            service: Arc::new(service),
            embedded,
        })
    }

    /// Ends the upstream session and stops the embedded API.
    pub async fn shutdown(self) {
        self.service.client().close().await;
        if let Some(api) = self.embedded {
            api.shutdown().await;
        }
    }
}

/// Serves MCP on stdin/stdout until stdin closes or a signal arrives.
pub async fn serve(
    mut config: Config,
    channel: (stdio::Reader, stdio::Writer),
) -> Result<(), String> {
    // Installed before anything else: a host may terminate a spare launch at
    // any moment, and a SIGTERM that lands before the handler exists kills
    // the process without ending its upstream session or flushing the log.
    let mut signals = ShutdownSignals::install();
    if std::io::stdin().is_terminal() {
        eprintln!(
            "toolbridge-mcp speaks MCP (JSON-RPC) on stdin/stdout and is meant to be launched by an MCP client.\n\
             Try `toolbridge-mcp tools`, `toolbridge-mcp call list_notes` or `toolbridge-mcp --help`. Waiting for JSON-RPC; Ctrl-D ends."
        );
    }
    let backend = Backend::start(&mut config).await?;
    let (reader, writer) = channel;
    let first = tokio::select! {
        first = stdio::skip_to_first_request(reader) => first,
        signal = signals.recv() => {
            tracing::info!(signal, "signal before the first request");
            backend.shutdown().await;
            return Ok(());
        }
    };
    let reader = first.map_err(|e| format!("cannot read stdin: {e}"))?;
    let Some(reader) = reader else {
        tracing::info!("stdin closed before the first request");
        backend.shutdown().await;
        return Ok(());
    };
    let channel = (reader, writer);
    let server = McpServer::new(backend.service.clone());
    tracing::info!(
        tools = server.tools().len(),
        version = env!("CARGO_PKG_VERSION"),
        "serving MCP on stdio"
    );
    let reason = tokio::select! {
        started = server.serve(channel) => {
            let running = started.map_err(|e| format!("MCP session failed to start: {e}"))?;
            let stop = running.cancellation_token();
            tokio::select! {
                reason = running.waiting() => format!("{reason:?}"),
                signal = signals.recv() => {
                    stop.cancel();
                    format!("signal {signal}")
                }
            }
        }
        signal = signals.recv() => format!("signal {signal} during the handshake"),
    };
    tracing::info!(%reason, "MCP session ended");
    backend.shutdown().await;
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment of `install`.
struct ShutdownSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves with the signal's name when one arrives.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => "SIGTERM",
                _ = next(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// `toolbridge-mcp call`: one tool through the same path as MCP.
pub async fn call(
    mut config: Config,
    tool: &str,
    args: &[String],
    json: Option<&str>,
) -> Result<Value, CallFailure> {
    let backend = Backend::start(&mut config)
        .await
        .map_err(CallFailure::Setup)?;
    let result = match backend.service.catalog().get(tool) {
        None => Err(CallFailure::Setup(format!(
            "{}; run `toolbridge-mcp tools` to list them",
            backend.service.catalog().refusal(tool)
        ))),
        Some(def) => match parse_call_args(def, args, json) {
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
    /// The call could not be made (configuration, unknown tool).
    Setup(String),
    /// The tool ran and failed.
    Tool(ToolError),
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

/// What `toolbridge-mcp tools` prints.
pub enum ToolsFormat {
    Lines,
    Json,
    Markdown,
}

/// `toolbridge-mcp tools`: one line per tool, the full definitions, or the
/// README's reference tables.
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
pub fn write_catalog(config: &Config, dir: &std::path::Path) -> Result<usize, String> {
    let catalog = Catalog::select(&config.selection);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let wanted: Vec<String> = catalog
        .tools()
        .iter()
        .map(|t| format!("{}.json", t.name))
        .collect();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !wanted.contains(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
        }
    }
    for tool in catalog.tools() {
        let mut text =
            serde_json::to_string_pretty(&to_mcp_tool(tool)).map_err(|e| e.to_string())?;
        text.push('\n');
        let path = dir.join(format!("{}.json", tool.name));
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(catalog.tools().len())
}

/// `toolbridge-mcp serve-api`: the embedded API on a fixed address.
pub async fn serve_api(
    config: &Config,
    listen: std::net::SocketAddr,
    secret: Option<String>,
) -> Result<(), String> {
    let Upstream::Embedded { db_path } = &config.upstream else {
        return Err("serve-api serves the embedded API; unset TOOLBRIDGE_API_URL".into());
    };
    let mut signals = ShutdownSignals::install();
    let secret = match secret {
        Some(s) if !s.trim().is_empty() => secrecy::SecretString::from(s.trim().to_owned()),
        _ => {
            let secret = embedded::new_secret();
            use secrecy::ExposeSecret;
            eprintln!(
                "toolbridge-mcp: generated API secret (send as `Authorization: Bearer <secret>`): {}",
                secret.expose_secret()
            );
            secret
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "toolbridge-mcp: embedded API on http://{bound} (database {}; tenant `{}`)",
        db_path.display(),
        embedded::TENANT_ID
    );
    tracing::info!(%bound, db_path = %db_path.display(), "serving the embedded API");
    let config = ApiConfig {
        db_path: db_path.clone(),
        secret,
        limits: Default::default(),
    };
    embedded::serve(listener, config, async move {
        signals.recv().await;
    })
    .await
    .map_err(|e| e.to_string())
}
