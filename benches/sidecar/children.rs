//! The bench's own child processes, run from its executable when an
//! environment variable says so, on the sidecar's runtime shape (multi-thread,
//! one worker per core):
//!
//! - the protocol floor (`SIDECAR_BENCH_FLOOR=1`): a minimal rmcp stdio server
//!   whose one tool does no I/O and returns the stand-in's note. What the
//!   sidecar costs above it is HTTP plus the sidecar's own work.
//! - direct HTTP (`SIDECAR_BENCH_DIRECT=<base url>`): the request the sidecar
//!   makes, by a pooled reqwest client with nothing in between, in a process
//!   of its own as the sidecar's client is; driven by one order per stdin line.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::BoxError;
use crate::common::CallLoop;
use crate::common::fast_upstream::{NOTE_UID, SESSION_ID, note};

pub const FLOOR_ENV: &str = "SIDECAR_BENCH_FLOOR";
pub const DIRECT_ENV: &str = "SIDECAR_BENCH_DIRECT";

/// The body of a direct create: what the sidecar sends for the bench's
/// `create_note` (a uid it made, the title and the content).
pub fn create_body() -> Value {
    json!({"uid": "0b8a6f3e-8d0c-4d8e-9a51-5b3f9e0c7d21", "title": "Benchmark note",
           "content": "A short markdown note that a model asked for by uid."})
}

/// Runs `serve` on a fresh multi-thread runtime.
pub fn serve_child<F: Future<Output = Result<(), BoxError>>>(serve: F) -> ExitCode {
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BoxError::from)
        .and_then(|runtime| runtime.block_on(serve));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidecar bench child: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct Floor(Arc<Value>);

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
        Ok(CallToolResult::structured(self.0.as_ref().clone()).into())
    }
}

/// Serves the floor on stdin/stdout until stdin closes.
pub async fn serve_floor() -> Result<(), BoxError> {
    let floor = Floor(Arc::new(note()));
    floor.serve(rmcp::transport::stdio_pipes()).await?.waiting().await?;
    Ok(())
}

/// One run asked of the direct-client process: create (or get), calls in
/// flight, warm-up and measured calls. It answers with the [`CallLoop`].
type Order = (bool, usize, usize, usize);

/// A pooled reqwest client (`TCP_NODELAY`, as the sidecar's) sending the
/// headers the sidecar sends.
#[derive(Clone)]
pub struct DirectClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    headers: HeaderMap,
    body: Arc<str>,
}

impl DirectClient {
    pub fn new(base_url: &str) -> Result<Self, BoxError> {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer x"),
            ("x-tb-tenant-id", "t"),
            ("x-sync-session", SESSION_ID),
            ("x-sync-epoch", "1"),
            ("x-correlation-id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        Ok(Self {
            http: reqwest::Client::builder().tcp_nodelay(true).build()?,
            base_url: base_url.into(),
            headers,
            body: create_body().to_string().into(),
        })
    }

    async fn once(&self, create: bool) -> bool {
        let request = if create {
            let url = format!("{}/v1/notes", self.base_url);
            let body = self.body.to_string();
            self.http.post(url).header("content-type", "application/json").body(body)
        } else {
            self.http.get(format!("{}/v1/notes/{NOTE_UID}", self.base_url))
        };
        match request.headers(self.headers.clone()).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }

    /// The closed loop of [`crate::common::McpProcess::call_loop`]: the
    /// warm-up, then `measured` calls over `in_flight` tasks, each sending its
    /// next request when the last one's body is read.
    pub async fn call_loop(
        &self,
        create: bool,
        in_flight: usize,
        warmup: usize,
        measured: usize,
    ) -> CallLoop {
        self.calls(create, in_flight, warmup).await;
        let started = Instant::now();
        let (latencies, failed) = self.calls(create, in_flight, measured).await;
        CallLoop { per_sec: measured as f64 / started.elapsed().as_secs_f64(), latencies, failed }
    }

    async fn calls(&self, create: bool, in_flight: usize, calls: usize) -> (Vec<Duration>, usize) {
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..in_flight {
            let (client, n) =
                (self.clone(), calls / in_flight + usize::from(task < calls % in_flight));
            tasks.spawn(async move {
                let (mut latencies, mut failed) = (Vec::with_capacity(n), 0);
                for _ in 0..n {
                    let sent = Instant::now();
                    failed += usize::from(!client.once(create).await);
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

/// The direct-client process: one [`Order`] per stdin line, one [`Answer`]
/// per stdout line, until stdin closes.
pub async fn serve_direct(base_url: String) -> Result<(), BoxError> {
    let client = DirectClient::new(&base_url)?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let (create, in_flight, warmup, measured): Order = serde_json::from_str(&line)?;
        let run = client.call_loop(create, in_flight, warmup, measured).await;
        let mut line = serde_json::to_vec(&run)?;
        line.push(b'\n');
        stdout.write_all(&line).await?;
        stdout.flush().await?;
    }
    Ok(())
}

/// The bench's handle on a direct-client process.
pub struct DirectProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl DirectProcess {
    pub fn spawn(base_url: &str) -> Result<Self, BoxError> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .env(DIRECT_ENV, base_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(Self { child, stdin, stdout })
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub async fn call_loop(
        &mut self,
        create: bool,
        in_flight: usize,
        warmup: usize,
        measured: usize,
    ) -> Result<CallLoop, BoxError> {
        let order: Order = (create, in_flight, warmup, measured);
        let mut line = serde_json::to_vec(&order)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await??
            .ok_or("the direct-client process exited")?;
        Ok(serde_json::from_str(&line)?)
    }
}
