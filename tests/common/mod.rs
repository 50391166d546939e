//! Test harness: spawns the real binary and speaks MCP (JSON-RPC lines) over
//! its stdio. Replies are matched by id (rmcp answers concurrently), and every
//! line the server writes to stdout is checked to be JSON-RPC.

#![allow(dead_code)]

pub mod api;
pub mod fast_upstream;
pub mod faulty;
pub mod upstream;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_toolbridge-mcp");
pub const LEGACY_VERSION: &str = "2025-11-25";
pub const MODERN_VERSION: &str = "2026-07-28";

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct McpProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pending: Pending,
    next_id: AtomicU64,
    /// Lines on stdout that were not JSON-RPC messages.
    bad_lines: Arc<Mutex<Vec<String>>>,
    /// Notifications the server sent, in order.
    notifications: Arc<Mutex<Vec<Value>>>,
    /// Responses no request of the harness waited for (an id it did not
    /// send, a string id, or null), in order.
    unclaimed: Arc<Mutex<Vec<Value>>>,
    stdout_done: Option<tokio::task::JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    pub log_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// A builder for the server process's command line and environment.
pub struct Launch {
    /// The server binary, unless another program (a benchmark's floor,
    /// direct client or peer) is launched.
    program: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log_dir: Option<PathBuf>,
}

impl Launch {
    /// Against a remote upstream at `url` with a bearer token and tenant.
    /// The local replica is off: these stand-ins check the HTTP exchange
    /// request by request, and the replica's own refreshes would add to
    /// every count. [`Launch::with_replica`] turns it on.
    pub fn remote(url: &str) -> Self {
        Self {
            program: None,
            args: vec!["--api-url".into(), url.into()],
            env: vec![
                ("TOOLBRIDGE_TOKEN".into(), "test-token-7f3e9c".into()),
                ("TOOLBRIDGE_TENANT_ID".into(), "tenant-1".into()),
                ("TOOLBRIDGE_REPLICA".into(), "off".into()),
            ],
            log_dir: None,
        }
    }

    /// Keeps a local replica in `dir`, refreshed when older than
    /// `max_staleness` seconds.
    pub fn with_replica(mut self, dir: &Path, max_staleness: &str) -> Self {
        self.env.retain(|(k, _)| k != "TOOLBRIDGE_REPLICA");
        self.env
            .push(("TOOLBRIDGE_REPLICA_DIR".into(), dir.display().to_string()));
        self.env
            .push(("TOOLBRIDGE_MAX_STALENESS".into(), max_staleness.into()));
        self
    }

    /// On the embedded default, with its database at `db_path` and the
    /// local replica beside it (as a user runs it).
    pub fn embedded(db_path: &Path) -> Self {
        let replicas = db_path.with_extension("replicas");
        Self {
            program: None,
            args: vec!["--db-path".into(), db_path.display().to_string()],
            env: vec![(
                "TOOLBRIDGE_REPLICA_DIR".into(),
                replicas.display().to_string(),
            )],
            log_dir: None,
        }
    }

    /// Another program that speaks MCP on stdio, with only the environment
    /// given here.
    pub fn command(program: &Path) -> Self {
        Self {
            program: Some(program.to_owned()),
            args: Vec::new(),
            env: Vec::new(),
            log_dir: None,
        }
    }

    /// The same launch of another build of the server.
    pub fn program(mut self, program: &Path) -> Self {
        self.program = Some(program.to_owned());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn without_env(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub fn log_dir(mut self, dir: &Path) -> Self {
        self.log_dir = Some(dir.to_owned());
        self
    }

    pub async fn spawn(self) -> McpProcess {
        McpProcess::spawn(self).await
    }
}

impl McpProcess {
    async fn spawn(launch: Launch) -> Self {
        let (temp, log_dir) = match launch.log_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir().expect("tempdir");
                let dir = temp.path().join("logs");
                (Some(temp), dir)
            }
        };
        let mut command = Command::new(launch.program.as_deref().unwrap_or(Path::new(BIN)));
        command
            .args(&launch.args)
            .env_clear()
            .env("TOOLBRIDGE_LOG_DIR", &log_dir)
            .env("TOOLBRIDGE_LOG", "debug")
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn toolbridge-mcp");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let pending: Pending = Arc::default();
        let bad_lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let notifications: Arc<Mutex<Vec<Value>>> = Arc::default();
        let unclaimed: Arc<Mutex<Vec<Value>>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();

        let (p, bad, heard) = (pending.clone(), bad_lines.clone(), notifications.clone());
        let stray = unclaimed.clone();
        let stdout_done = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let message: Option<Value> = serde_json::from_str(&line).ok();
                let Some(message) = message.filter(is_json_rpc) else {
                    bad.lock().unwrap().push(line);
                    continue;
                };
                if message.get("id").is_none() && message.get("method").is_some() {
                    heard.lock().unwrap().push(message);
                    continue;
                }
                if message.get("method").is_some() {
                    continue;
                }
                let waiting = message
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| p.lock().unwrap().remove(&id));
                match waiting {
                    Some(tx) => {
                        let _ = tx.send(message);
                    }
                    None => stray.lock().unwrap().push(message),
                }
            }
            // The server is gone: fail every waiting request now.
            p.lock().unwrap().clear();
        });
        let err = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut e = err.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        Self {
            child,
            stdin,
            pending,
            next_id: AtomicU64::new(1),
            bad_lines,
            notifications,
            unclaimed,
            stdout_done: Some(stdout_done),
            stderr,
            log_dir,
            _temp: temp,
        }
    }

    pub async fn send_raw(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line).await.expect("write stdin");
        stdin.flush().await.expect("flush stdin");
    }

    async fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    /// Sends a request and returns a receiver for its response.
    pub async fn start_request(
        &mut self,
        method: &str,
        params: Value,
    ) -> (u64, oneshot::Receiver<Value>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        (id, rx)
    }

    /// A receiver for the response to a request with this id that was sent
    /// raw (with [`Self::send_raw`]).
    pub fn expect_response(&self, id: u64) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        rx
    }

    /// Starts a `tools/call` without waiting for it, as a host that
    /// pipelines calls does; the receiver yields the whole response message.
    pub async fn start_tool_call(&mut self, name: &str, args: Value) -> oneshot::Receiver<Value> {
        let params = json!({"name": name, "arguments": args});
        self.start_request("tools/call", params).await.1
    }

    /// Sends a request and waits (at most 60 s) for its response message.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let (_, rx) = self.start_request(method, params).await;
        self.wait(rx).await
    }

    pub async fn wait(&self, rx: oneshot::Receiver<Value>) -> Value {
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => panic!("the server exited; stderr:\n{}", self.stderr()),
            Err(_) => panic!("no response within 60 s; stderr:\n{}", self.stderr()),
        }
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// The `initialize` handshake (2025-11-25 era).
    pub async fn initialize(&mut self) -> Value {
        let response = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": LEGACY_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "harness", "version": "0"}
                }),
            )
            .await;
        self.notify("notifications/initialized", json!({})).await;
        response["result"].clone()
    }

    /// A tool call's result object (panics on a JSON-RPC error).
    pub async fn call_tool(&mut self, name: &str, args: Value) -> Value {
        let response = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("tools/call {name} failed: {response}"),
        }
    }

    /// Calls `name` `warmup + measured` times, keeping `in_flight` calls
    /// pipelined on the one stdio (each reply sends the next call), as a busy
    /// host does; the warm-up is not measured. Replies are awaited in the
    /// order sent, which is exact at one in flight.
    pub async fn call_loop(
        &mut self,
        name: &str,
        args: Value,
        in_flight: usize,
        warmup: usize,
        measured: usize,
    ) -> CallLoop {
        let params = json!({"name": name, "arguments": args});
        let total = warmup + measured;
        let mut waiting = VecDeque::with_capacity(in_flight);
        let (mut sent, mut failed) = (0, 0);
        let mut latencies = Vec::with_capacity(measured);
        let mut started = std::time::Instant::now();
        for done in 1..=total {
            while sent < total && waiting.len() < in_flight {
                let at = std::time::Instant::now();
                let (_, rx) = self.start_request("tools/call", params.clone()).await;
                waiting.push_back((at, rx));
                sent += 1;
            }
            let (at, rx) = waiting.pop_front().expect("a call in flight");
            let reply = self.wait(rx).await;
            if reply
                .get("result")
                .is_none_or(|r| r["isError"] == json!(true))
            {
                failed += 1;
            }
            if done == warmup {
                started = std::time::Instant::now();
            } else if done > warmup {
                latencies.push(at.elapsed());
            }
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        CallLoop {
            per_sec: measured as f64 / seconds,
            latencies,
            failed,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The notifications the server has sent so far (recorded before any
    /// response that followed them is delivered), in order.
    pub fn notifications(&self) -> Vec<Value> {
        self.notifications.lock().unwrap().clone()
    }

    /// Waits up to `within` for a notification `wanted` accepts.
    pub async fn wait_for_notification(
        &self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        first_within(within, || self.notifications(), wanted).await
    }

    /// The responses no request of the harness waited for, so far, in order.
    pub fn unclaimed(&self) -> Vec<Value> {
        self.unclaimed.lock().unwrap().clone()
    }

    /// Waits up to `within` for an unclaimed response `wanted` accepts.
    pub async fn wait_for_unclaimed(
        &self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        first_within(within, || self.unclaimed(), wanted).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// The server's peak resident set in KiB (`VmHWM`), where the system
    /// tells it (`/proc`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    /// The server's resident set now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let value = status.lines().find_map(|l| l.strip_prefix(field))?;
        value.split_whitespace().next()?.parse().ok()
    }

    /// The exit status if the server has exited, without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Closes stdin, waits for exit, and checks stdout carried only JSON-RPC.
    pub async fn shutdown(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("server exits after stdin closes")
            .expect("wait");
        if let Some(done) = self.stdout_done.take() {
            let _ = done.await;
        }
        self.assert_clean_stdout();
        status
    }

    /// Kills the server with SIGKILL (no chance to clean up) and reaps it.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
        if let Some(done) = self.stdout_done.take() {
            let _ = done.await;
        }
        self.assert_clean_stdout();
    }

    pub fn assert_clean_stdout(&self) {
        let bad = self.bad_lines.lock().unwrap();
        assert!(bad.is_empty(), "non-JSON-RPC lines on stdout: {bad:?}");
    }

    /// Every log line written so far (all files in the log directory).
    pub fn log_text(&self) -> String {
        log_text(&self.log_dir)
    }
}

/// What [`McpProcess::call_loop`] measured.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct CallLoop {
    /// Send-to-reply time of every measured call.
    pub latencies: Vec<Duration>,
    /// Measured calls completed per second.
    pub per_sec: f64,
    /// Replies that were a JSON-RPC error or a tool result with `isError`.
    pub failed: usize,
}

/// Polls `seen` until a message `wanted` accepts shows up, for at most
/// `within`.
async fn first_within(
    within: Duration,
    seen: impl Fn() -> Vec<Value>,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = seen().into_iter().find(|m| wanted(m)) {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every log line written so far to the files in `dir`.
/// A server on a fresh embedded database in `dir` (with `extra` arguments),
/// past its `initialize`.
pub async fn embedded(dir: &Path, extra: &[&str]) -> McpProcess {
    let mut mcp = Launch::embedded(&dir.join("t.db"))
        .args(extra)
        .spawn()
        .await;
    mcp.initialize().await;
    mcp
}

pub fn log_text(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

/// Waits up to 10 s for a log line containing `needle`: a line a background
/// task logs (a refresh, a retry) shows up a little after the event.
pub async fn wait_for_log_line(dir: &Path, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if log_text(dir).contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn is_json_rpc(message: &Value) -> bool {
    message.get("jsonrpc") == Some(&json!("2.0"))
        && (message.get("id").is_some()
            || message.get("method").is_some()
            || message.get("error").is_some())
}

/// The `structuredContent` of a successful tool result.
pub fn ok(result: &Value) -> &Value {
    assert_ne!(result["isError"], json!(true), "tool failed: {result}");
    &result["structuredContent"]
}

/// The error of a failed tool result: the JSON in its text content (errors
/// carry no `structuredContent`, which must match the output schema).
pub fn err(result: &Value) -> Value {
    assert_eq!(result["isError"], json!(true), "tool succeeded: {result}");
    assert!(
        result.get("structuredContent").is_none(),
        "an error with structured content: {result}"
    );
    let text = result["content"][0]["text"].as_str().expect("error text");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("error text is not JSON ({e}): {text}"))
}

/// A real embedded database at `db`, written through the binary (twenty
/// notes of 3 KB, some twenty pages), then damaged as a failing disk or a
/// bad copy would: two pages in the middle of the file overwritten, the
/// 100-byte header left valid.
pub async fn damaged_database(db: &Path) {
    let mut mcp = Launch::embedded(db)
        .env("TOOLBRIDGE_REPLICA", "off")
        .spawn()
        .await;
    mcp.initialize().await;
    let content = "x".repeat(3000);
    for i in 0..20 {
        let note = json!({"title": format!("note {i}"), "content": content});
        ok(&mcp.call_tool("create_note", note).await);
    }
    mcp.shutdown().await;
    // Fold any write-ahead log into the file, so the pages damaged below
    // are the ones SQLite reads.
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(db).unwrap();
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let pages = bytes.len() / page_size;
    assert!(pages >= 8, "{pages} pages: too few to damage the middle");
    let start = pages / 2 * page_size;
    for (i, byte) in bytes[start..start + 2 * page_size].iter_mut().enumerate() {
        *byte = [0xde, 0xad, 0xbe, 0xef][i % 4];
    }
    std::fs::write(db, bytes).unwrap();
}
