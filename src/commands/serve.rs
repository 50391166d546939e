//! `toolbridge-mcp` (or `serve`): MCP on stdin/stdout.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

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
    let armed = tokio::spawn(keep_a_timer_armed(config.client.attempt_timeout));
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
    armed.abort();
    backend.shutdown().await;
    ended.map(|_| ())
}

/// tokio wakes its timer driver whenever a timer is armed earlier than every
/// armed one, and always when none is (`time::Driver::reregister`): a `write`
/// to the runtime's eventfd, even from the runtime's own thread. Each tool
/// call arms three (its deadline, the exchange's, the attempt's). A timer
/// re-armed inside the shortest of them is always the earliest, so a call's
/// timers never move the driver's next wake-up; an idle server wakes once
/// every few seconds for it. In A/B runs of the benchmark: 3 fewer system
/// calls and 4–6% less CPU per `get_note`.
async fn keep_a_timer_armed(attempt_timeout: Duration) {
    const LONGEST: Duration = Duration::from_secs(5);
    const SHORTEST: Duration = Duration::from_millis(500);
    let period = (attempt_timeout / 2).clamp(SHORTEST, LONGEST);
    loop {
        tokio::time::sleep(period).await;
    }
}
