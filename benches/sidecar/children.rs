//! The bench's own child processes, run from its executable when an
//! environment variable says so, on the sidecar's runtime shape (one thread):
//!
//! - the protocol floor (`SIDECAR_BENCH_FLOOR=1`): a minimal rmcp stdio server
//!   whose one tool does no I/O and returns the stand-in's note. What the
//!   sidecar costs above it is HTTP plus the sidecar's own work.
//! - the minimal bridge (`SIDECAR_BENCH_BRIDGE=<base url>`): the floor whose
//!   tool makes the sidecar's `GET` with a pooled reqwest client and returns
//!   its body: a stdio-to-HTTP bridge with none of the sidecar's own work, so
//!   what the sidecar costs above it is ours.
//! - direct HTTP (`SIDECAR_BENCH_DIRECT=<base url>`): the request the sidecar
//!   makes, by a pooled reqwest client with nothing in between, in a process
//!   of its own as the sidecar's client is. It runs whole loops, each asked
//!   for by one JSON-RPC request line and answered with its [`CallLoop`], so
//!   the tests' client drives it as it drives the MCP servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::fast_upstream::{NOTE_UID, SESSION_ID, note};
use crate::common::{CallLoop, McpProcess};
use crate::{BoxError, Load};

pub const FLOOR_ENV: &str = "SIDECAR_BENCH_FLOOR";
pub const BRIDGE_ENV: &str = "SIDECAR_BENCH_BRIDGE";
pub const DIRECT_ENV: &str = "SIDECAR_BENCH_DIRECT";

/// Runs `serve` on a fresh runtime of the sidecar's shape.
pub fn serve_child(serve: impl Future<Output = Result<(), BoxError>>) -> Result<(), BoxError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve)
}

/// The floor's one tool: the stand-in's note, or with a request to make, the
/// body it answers (the minimal bridge).
struct Floor(Value, Option<Direct>);

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sidecar-bench-floor", "0"))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(direct) = &self.1 else {
            return Ok(CallToolResult::structured(self.0.clone()).into());
        };
        let failed = |e: &dyn std::fmt::Display| McpError::internal_error(e.to_string(), None);
        let request = direct.request.try_clone().ok_or_else(|| failed(&"a streamed body"))?;
        let response = direct.http.execute(request).await.map_err(|e| failed(&e))?;
        let body = response.bytes().await.map_err(|e| failed(&e))?;
        let note: Value = serde_json::from_slice(&body).map_err(|e| failed(&e))?;
        Ok(CallToolResult::structured(note).into())
    }
}

/// Serves the floor on stdin/stdout until stdin closes; with `bridge_to` (a
/// base URL), the minimal bridge.
pub async fn serve_floor(bridge_to: Option<String>) -> Result<(), BoxError> {
    let get = match bridge_to {
        Some(base_url) => Some(Direct::get(&reqwest::Client::new(), &base_url)?),
        None => None,
    };
    Floor(note(), get).serve(rmcp::transport::stdio_pipes()).await?.waiting().await?;
    Ok(())
}

/// A loop asked of the direct-client process, as the params of its request:
/// create (or get), and its load.
type Order = (bool, Load);

/// Asks the direct-client process for a loop of `tool` (`create_note` is a
/// `POST /v1/notes`, anything else the `get_note` request).
pub async fn direct_loop(
    process: &mut McpProcess,
    tool: &str,
    load: Load,
) -> Result<CallLoop, BoxError> {
    let order: Order = (tool == "create_note", load);
    let reply = process.request("call_loop", json!(order)).await;
    Ok(serde_json::from_value(reply["result"].clone())?)
}

/// The direct-client process: one loop per request line on stdin, answered
/// with its [`CallLoop`], until stdin closes.
pub async fn serve_direct(base_url: String) -> Result<(), BoxError> {
    let http = reqwest::Client::new();
    let get = Direct::get(&http, &base_url)?;
    // What the sidecar sends for the bench's `create_note`: a uid it made too.
    let mut body = crate::create_args();
    body["uid"] = json!("0b8a6f3e-8d0c-4d8e-9a51-5b3f9e0c7d21");
    let create = http.post(format!("{base_url}/v1/notes")).json(&body);
    let create = Direct::new(&http, create)?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let request: Value = serde_json::from_str(&line)?;
        let (create_note, load): Order = serde_json::from_value(request["params"].clone())?;
        let direct = if create_note { &create } else { &get };
        let run = direct.call_loop(load).await;
        let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": run});
        stdout.write_all(format!("{reply}\n").as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}

/// One request the sidecar sends, with its headers, built once, and the
/// pooled client (`TCP_NODELAY` by default, as the sidecar's) that sends it.
#[derive(Clone)]
struct Direct {
    http: reqwest::Client,
    request: Arc<reqwest::Request>,
}

impl Direct {
    fn new(http: &reqwest::Client, request: reqwest::RequestBuilder) -> Result<Self, BoxError> {
        let request = request
            .header("authorization", "Bearer x")
            .header("x-tb-tenant-id", "t")
            .header("x-sync-session", SESSION_ID)
            .header("x-sync-epoch", "1")
            .header("x-correlation-id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
            .build()?;
        Ok(Self { http: http.clone(), request: Arc::new(request) })
    }

    /// The sidecar's `get_note` request.
    fn get(http: &reqwest::Client, base_url: &str) -> Result<Self, BoxError> {
        Self::new(http, http.get(format!("{base_url}/v1/notes/{NOTE_UID}")))
    }

    /// Sends the request and reads the whole body: whether it succeeded.
    async fn once(&self) -> bool {
        let Some(request) = self.request.try_clone() else { return false };
        match self.http.execute(request).await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }

    /// The closed loop of [`McpProcess::call_loop`]: the warm-up, then
    /// `measured` calls over `in_flight` tasks, each sending its next request
    /// when the last one's body is read.
    async fn call_loop(&self, (in_flight, warmup, measured): Load) -> CallLoop {
        self.calls(in_flight, warmup).await;
        let started = Instant::now();
        let (latencies, failed) = self.calls(in_flight, measured).await;
        CallLoop { per_sec: measured as f64 / started.elapsed().as_secs_f64(), latencies, failed }
    }

    async fn calls(&self, in_flight: usize, calls: usize) -> (Vec<Duration>, usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..in_flight {
            let (direct, n) =
                (self.clone(), calls / in_flight + usize::from(task < calls % in_flight));
            tasks.spawn(async move {
                let (mut latencies, mut failed) = (Vec::with_capacity(n), 0);
                for _ in 0..n {
                    let sent = Instant::now();
                    failed += usize::from(!direct.once().await);
                    latencies.push(sent.elapsed());
                }
                (latencies, failed)
            });
        }
        let (mut latencies, mut failed) = (Vec::with_capacity(calls), 0);
        while let Some(Ok((l, f))) = tasks.join_next().await {
            latencies.extend(l);
            failed += f;
        }
        (latencies, failed)
    }
}
