//! `toolbridge-mcp` (or `serve`): MCP on stdin/stdout.

use std::future::Future;
use std::io::IsTerminal;

use rmcp::ServiceExt;

use super::Backend;
use crate::config::Config;
use crate::error::SetupError;
use crate::mcp::McpServer;
use crate::stdio;

/// Serves MCP on `channel` until stdin closes or `shutdown` resolves (with
/// the reason, e.g. the signal's name). Ends the upstream session either way.
pub async fn serve(
    mut config: Config,
    channel: (stdio::Reader, stdio::Writer),
    shutdown: impl Future<Output = &'static str>,
) -> Result<(), SetupError> {
    let mut shutdown = std::pin::pin!(shutdown);
    if std::io::stdin().is_terminal() {
        eprintln!(
            "toolbridge-mcp speaks MCP (JSON-RPC) on stdin/stdout and is meant to be launched by an MCP client.\n\
             Try `toolbridge-mcp tools`, `toolbridge-mcp call list_notes` or `toolbridge-mcp --help`. Waiting for JSON-RPC; Ctrl-D ends."
        );
    }
    let backend = Backend::start(&mut config).await?;
    backend.start_first_sync();
    let (reader, writer) = channel;
    let mut transport = stdio::StdioTransport::new(reader, writer);
    let first = tokio::select! {
        first = transport.first_request() => first,
        signal = &mut shutdown => {
            tracing::info!(signal, "signal before the first request");
            backend.shutdown().await;
            return Ok(());
        }
    };
    match first {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("stdin closed before the first request");
            backend.shutdown().await;
            return Ok(());
        }
        Err(e) => {
            backend.shutdown().await;
            return Err(SetupError::Stdio(e));
        }
    }
    let server = McpServer::new(backend.service.clone());
    // What every conversation pays for the tool list, as apollo-mcp-server
    // logs it: bytes, and tokens estimated at four bytes each (the catalog
    // test counts them with a real tokenizer).
    let catalog_bytes = serde_json::to_string(server.tools()).map_or(0, |s| s.len());
    tracing::info!(
        tools = server.tools().len(),
        catalog_bytes,
        catalog_tokens_estimate = catalog_bytes / 4,
        version = env!("CARGO_PKG_VERSION"),
        "serving MCP on stdio"
    );
    let ended = tokio::select! {
        started = server.serve(transport) => match started {
            Ok(running) => {
                let stop = running.cancellation_token();
                tokio::select! {
                    reason = running.waiting() => Ok(format!("{reason:?}")),
                    signal = &mut shutdown => {
                        stop.cancel();
                        Ok(format!("signal {signal}"))
                    }
                }
            }
            Err(e) => Err(SetupError::Handshake(e.to_string())),
        },
        signal = &mut shutdown => Ok(format!("signal {signal} during the handshake")),
    };
    if let Ok(reason) = &ended {
        tracing::info!(%reason, "MCP session ended");
    }
    backend.shutdown().await;
    ended.map(|_| ())
}
