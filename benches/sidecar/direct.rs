//! Direct HTTP: the request the sidecar makes for `get_note`, made by a pooled
//! reqwest client with nothing in between.
//!
//! It is measured twice. In a separate process (this bench's executable with
//! `SIDECAR_BENCH_DIRECT=<base url>`, driven over stdin/stdout), which is where
//! the sidecar's client stands too: every request wakes another process and
//! its runtime. And in the bench process, on the upstream's own runtime, which
//! is the floor of the hop: client and server tasks can run on one thread
//! without waking anyone.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::client::LoopResult;
use crate::upstream::{NOTE_UID, SESSION_ID};

pub const ENV: &str = "SIDECAR_BENCH_DIRECT";

/// A pooled reqwest client sending the headers the sidecar sends.
pub struct DirectClient {
    http: reqwest::Client,
    url: Arc<str>,
    headers: HeaderMap,
}

impl DirectClient {
    pub fn new(base_url: &str) -> reqwest::Result<Self> {
        // As the sidecar's client: pooled, TCP_NODELAY.
        let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        let fixed = [
            ("x-tb-tenant-id", "t"),
            ("x-sync-session", SESSION_ID),
            ("x-sync-epoch", "1"),
            ("x-correlation-id", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"),
        ];
        for (name, value) in fixed {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Ok(Self {
            http,
            url: format!("{base_url}/v1/notes/{NOTE_UID}").into(),
            headers,
        })
    }

    /// The same closed loop as [`crate::client::McpProcess::call_loop`]:
    /// `concurrency` tasks on `runtime`, each sending its next request when
    /// the last one's body is read.
    pub fn call_loop(
        &self,
        runtime: &tokio::runtime::Runtime,
        concurrency: usize,
        warmup: usize,
        measured: usize,
    ) -> LoopResult {
        let total = warmup + measured;
        let issued = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        runtime.block_on(async {
            let begun = Instant::now();
            let tasks: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (http, url, headers) =
                        (self.http.clone(), self.url.clone(), self.headers.clone());
                    let (issued, done) = (issued.clone(), done.clone());
                    tokio::spawn(async move {
                        let mut run = TaskRun::default();
                        while issued.fetch_add(1, Ordering::Relaxed) < total {
                            let sent = Instant::now();
                            let ok = match http.get(&*url).headers(headers.clone()).send().await {
                                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                                Err(_) => false,
                            };
                            let now = Instant::now();
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            run.errors += u64::from(!ok);
                            if n == warmup {
                                run.started = Some(now);
                            } else if n > warmup {
                                run.latencies.push(now - sent);
                            }
                            if n == total {
                                run.finished = Some(now);
                            }
                        }
                        run
                    })
                })
                .collect();
            let mut all = TaskRun {
                started: (warmup == 0).then_some(begun),
                ..TaskRun::default()
            };
            for task in tasks {
                let run = task.await.unwrap_or_default();
                all.latencies.extend(run.latencies);
                all.errors += run.errors;
                all.started = all.started.or(run.started);
                all.finished = all.finished.or(run.finished);
            }
            let elapsed = match (all.started, all.finished) {
                (Some(s), Some(f)) => (f - s).as_secs_f64().max(1e-9),
                _ => f64::NAN,
            };
            LoopResult {
                per_sec: measured as f64 / elapsed,
                latencies: all.latencies,
                errors: all.errors,
            }
        })
    }
}

#[derive(Default)]
struct TaskRun {
    latencies: Vec<Duration>,
    started: Option<Instant>,
    finished: Option<Instant>,
    errors: u64,
}

/// One run asked of the direct-client process.
#[derive(Serialize, Deserialize)]
struct Order {
    concurrency: usize,
    warmup: usize,
    measured: usize,
}

/// Its answer.
#[derive(Serialize, Deserialize)]
struct Answer {
    per_sec: f64,
    latencies_ns: Vec<u64>,
    errors: u64,
}

/// The direct-client process: one [`Order`] per stdin line, one [`Answer`]
/// per stdout line, on a runtime shaped like the sidecar's (multi-thread, one
/// worker per core), until stdin closes.
pub fn serve(base_url: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("direct: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match DirectClient::new(base_url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("direct: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let Ok(order) = line.map_err(|_| ()).and_then(|l| {
            serde_json::from_str::<Order>(&l).map_err(|e| eprintln!("direct: bad order: {e}"))
        }) else {
            return ExitCode::FAILURE;
        };
        let result = client.call_loop(&runtime, order.concurrency, order.warmup, order.measured);
        let answer = Answer {
            per_sec: result.per_sec,
            latencies_ns: result
                .latencies
                .iter()
                .map(|d| d.as_nanos() as u64)
                .collect(),
            errors: result.errors,
        };
        let written = serde_json::to_writer(&mut stdout, &answer)
            .map_err(io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// The bench's handle on a direct-client process.
pub struct DirectProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DirectProcess {
    pub fn spawn(base_url: &str, stderr_file: &Path) -> io::Result<Self> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_file)?;
        let mut child = Command::new(std::env::current_exe()?)
            .env(ENV, base_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn call_loop(
        &mut self,
        concurrency: usize,
        warmup: usize,
        measured: usize,
    ) -> io::Result<LoopResult> {
        let order = Order {
            concurrency,
            warmup,
            measured,
        };
        let mut line = serde_json::to_string(&order)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes())?;
        line.clear();
        crate::client::progress(Some("the direct-client process"));
        let read = self.stdout.read_line(&mut line);
        crate::client::idle();
        if read? == 0 {
            return Err(io::Error::other("the direct-client process exited"));
        }
        let answer: Answer = serde_json::from_str(&line)?;
        Ok(LoopResult {
            per_sec: answer.per_sec,
            latencies: answer
                .latencies_ns
                .into_iter()
                .map(Duration::from_nanos)
                .collect(),
            errors: answer.errors,
        })
    }
}

impl Drop for DirectProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
