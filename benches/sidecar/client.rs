//! A deliberately thin MCP client over a child's stdio: blocking reads and
//! writes on the bench's main thread, one JSON-RPC line per message, replies
//! matched by id. It adds the same few microseconds to every server it drives,
//! so the sidecar, the floor and the peer are compared through one lens.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// The last protocol version with the `initialize` handshake; the sidecar,
/// rmcp and the FastMCP peer all speak it.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A reply that takes longer than this means the server is stuck (or pacing
/// itself): the bench stops rather than hang.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Milliseconds since [`START`] at the last reply, and what was being waited on.
static LAST_PROGRESS_MS: AtomicU64 = AtomicU64::new(0);
static WAITING_ON: Mutex<String> = Mutex::new(String::new());
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Notes that a reply from `waiting_on` is now awaited.
pub fn progress(waiting_on: Option<&str>) {
    let start = *START.get_or_init(Instant::now);
    LAST_PROGRESS_MS.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    if let Some(name) = waiting_on {
        let mut current = WAITING_ON.lock().unwrap_or_else(|e| e.into_inner());
        if *current != name {
            name.clone_into(&mut current);
        }
    }
}

/// Starts a thread that ends the bench when no reply has arrived for
/// [`STALL_LIMIT`] while one is awaited. Child processes see their stdin close
/// and exit.
pub fn start_watchdog() {
    progress(None);
    std::thread::spawn(|| {
        let start = *START.get_or_init(Instant::now);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let last = Duration::from_millis(LAST_PROGRESS_MS.load(Ordering::Relaxed));
            let waiting = WAITING_ON.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if !waiting.is_empty() && start.elapsed().saturating_sub(last) > STALL_LIMIT {
                eprintln!(
                    "sidecar bench: no reply from {waiting} for {}s; is it stuck, or pacing its \
                     requests (a rate limit)? Giving up.",
                    STALL_LIMIT.as_secs()
                );
                std::process::exit(2);
            }
        }
    });
}

/// Marks the end of a wait: time until the next one is not a stall.
pub fn idle() {
    progress(None);
    WAITING_ON.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Just enough of a reply to match it and tell success from failure; the rest
/// is skipped without being built.
#[derive(Deserialize)]
struct Head {
    id: Option<u64>,
    result: Option<ResultHead>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ResultHead {
    #[serde(rename = "isError")]
    is_error: Option<bool>,
}

/// A server process spoken to over its stdin and stdout.
pub struct McpProcess {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
    /// When `spawn` was called.
    pub spawned_at: Instant,
    /// When the last reply was read.
    last_reply_at: Instant,
    /// The `tools/call` line up to its id, and after it.
    call_prefix: String,
    call_suffix: String,
}

/// What a run of tool calls measured.
pub struct LoopResult {
    /// Send-to-reply time of every call after the warm-up.
    pub latencies: Vec<Duration>,
    /// Calls completed per second after the warm-up.
    pub per_sec: f64,
    /// Replies that were a JSON-RPC error or a tool result with `isError`.
    pub errors: u64,
}

impl McpProcess {
    /// Spawns `command` with piped stdin/stdout (FIFOs, as MCP hosts launch
    /// servers) and stderr sent to `stderr_file`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        stderr_file: &std::path::Path,
    ) -> io::Result<Self> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_file)?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped stdout"));
        Ok(Self {
            name: name.to_owned(),
            child,
            stdin,
            stdout,
            next_id: 1,
            line: String::with_capacity(4096),
            spawned_at,
            last_reply_at: spawned_at,
            call_prefix: String::new(),
            call_suffix: String::new(),
        })
    }

    /// When the last reply (a line with an id) was read.
    pub fn last_reply_at(&self) -> Instant {
        self.last_reply_at
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("stdin is closed"))?;
        stdin.write_all(line.as_bytes())
    }

    /// Sends a request and returns its id.
    pub fn send(&mut self, method: &str, params: Value) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        line.push('\n');
        self.write_line(&line)?;
        Ok(id)
    }

    pub fn notify(&mut self, method: &str, params: Value) -> io::Result<()> {
        let mut line = json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string();
        line.push('\n');
        self.write_line(&line)
    }

    /// Reads lines until a reply (a line with an id) arrives; notifications
    /// and server-to-client requests without an id are skipped.
    fn read_reply(&mut self) -> io::Result<(u64, bool)> {
        progress(Some(&self.name));
        loop {
            self.line.clear();
            if self.stdout.read_line(&mut self.line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} closed stdout", self.name),
                ));
            }
            let head: Head = serde_json::from_str(&self.line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: not JSON-RPC ({e}): {}",
                        self.name,
                        self.line.trim_end()
                    ),
                )
            })?;
            if let Some(id) = head.id {
                self.last_reply_at = Instant::now();
                idle();
                let ok =
                    head.error.is_none() && head.result.is_some_and(|r| r.is_error != Some(true));
                return Ok((id, ok));
            }
        }
    }

    /// Sends a request and waits for its full reply.
    pub fn request(&mut self, method: &str, params: Value) -> io::Result<Value> {
        let id = self.send(method, params)?;
        loop {
            let (got, _) = self.read_reply()?;
            if got == id {
                return serde_json::from_str(&self.line)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// The `initialize` request, then the `initialized` notification.
    pub fn initialize(&mut self) -> io::Result<Value> {
        let reply = self.request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "sidecar-bench", "version": "0"}
            }),
        )?;
        if reply.get("result").is_none() {
            return Err(io::Error::other(format!(
                "{}: initialize failed: {reply}",
                self.name
            )));
        }
        self.notify("notifications/initialized", json!({}))?;
        Ok(reply)
    }

    pub fn list_tools(&mut self) -> io::Result<Value> {
        self.request("tools/list", json!({}))
    }

    /// Sets the tool call that [`Self::call_loop`] repeats.
    pub fn set_call(&mut self, tool: &str, arguments: Value) {
        let params = json!({"name": tool, "arguments": arguments});
        self.call_prefix = r#"{"jsonrpc":"2.0","method":"tools/call","params":"#.to_owned()
            + &params.to_string()
            + r#","id":"#;
        self.call_suffix = "}\n".to_owned();
    }

    fn send_call(&mut self) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{}{id}{}", self.call_prefix, self.call_suffix);
        self.write_line(&line)?;
        Ok(id)
    }

    /// One full call, checked: the reply must be a successful tool result.
    pub fn call_checked(&mut self) -> io::Result<Value> {
        let id = self.send_call()?;
        loop {
            let (got, ok) = self.read_reply()?;
            if got == id {
                let reply: Value = serde_json::from_str(&self.line)?;
                if !ok {
                    return Err(io::Error::other(format!(
                        "{}: the tool call failed: {reply}",
                        self.name
                    )));
                }
                return Ok(reply);
            }
        }
    }

    /// A closed loop of tool calls with `concurrency` in flight (pipelined on
    /// the one stdio): every reply sends the next request. The first `warmup`
    /// replies are not measured.
    pub fn call_loop(
        &mut self,
        concurrency: usize,
        warmup: usize,
        measured: usize,
    ) -> io::Result<LoopResult> {
        let total = warmup + measured;
        let base = self.next_id;
        let mut sent_at: Vec<Instant> = Vec::with_capacity(total);
        let mut latencies = Vec::with_capacity(measured);
        let mut errors = 0;
        let mut started = Instant::now();
        let mut finished = started;
        while sent_at.len() < concurrency.min(total) {
            sent_at.push(Instant::now());
            self.send_call()?;
        }
        for done in 1..=total {
            let (id, ok) = self.read_reply()?;
            let now = Instant::now();
            let index = id
                .checked_sub(base)
                .map(|i| i as usize)
                .filter(|i| *i < sent_at.len())
                .ok_or_else(|| io::Error::other(format!("{}: unexpected id {id}", self.name)))?;
            if !ok {
                errors += 1;
            }
            if done == warmup {
                started = now;
            } else if done > warmup {
                latencies.push(now - sent_at[index]);
            }
            finished = now;
            if sent_at.len() < total {
                sent_at.push(Instant::now());
                self.send_call()?;
            }
        }
        let elapsed = (finished - started).as_secs_f64().max(1e-9);
        Ok(LoopResult {
            latencies,
            per_sec: measured as f64 / elapsed,
            errors,
        })
    }

    /// Closes stdin and waits for the process to exit; returns how long it
    /// took. A process still running after `limit` is killed.
    pub fn close(mut self, limit: Duration) -> Duration {
        let closed_at = Instant::now();
        drop(self.stdin.take());
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return closed_at.elapsed(),
                Ok(None) if closed_at.elapsed() < limit => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return closed_at.elapsed();
                }
            }
        }
    }
}

impl Drop for McpProcess {
    fn drop(&mut self) {
        // A process not closed on purpose (an error path) must not outlive
        // the bench.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Peak and current resident set of a process, in KiB, from
/// `/proc/PID/status` (`VmHWM`, `VmRSS`).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time and context switches of a process so far, summed over its
/// threads (`/proc/PID/task/*/schedstat` and `.../status`).
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub cpu: Duration,
    pub switches: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;

    fn sub(self, earlier: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            switches: self.switches.saturating_sub(earlier.switches),
        }
    }
}

pub fn usage(pid: u32) -> Usage {
    let mut total = Usage::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        if let Some(ns) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
        {
            total.cpu += Duration::from_nanos(ns);
        }
        if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
            total.switches += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    total
}
