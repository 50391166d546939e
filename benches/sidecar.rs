//! `cargo bench --bench sidecar`: what the sidecar costs, in one run and one
//! table (printed, and written to `target/bench/report.md` and `.json`).
//!
//! The sidecar runs against a fast stand-in in this process
//! (`tests/common/fast_upstream.rs`) and is driven by the tests' own MCP
//! client (`tests/common/mod.rs`). Beside it: the same HTTP request made
//! directly (`sidecar/children.rs`), and the protocol floor, a minimal rmcp
//! stdio server whose tool does no I/O. It measures per-call latency, CPU and
//! context switches of `get_note` and `create_note`, throughput at 1, 8 and
//! 64 in flight, startup, memory, the local replica over 10,000 notes and
//! what typical results cost a model in tokens (`sidecar/replica.rs`), and
//! the FastMCP peer (`sidecar/peer.rs`). The README's Benchmark section
//! lists the environment variables that shorten or redirect a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::unreachable)]

#[path = "sidecar/children.rs"]
mod children;
// Formatted as a part of the tests, with their settings.
#[rustfmt::skip]
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "sidecar/peer.rs"]
mod peer;
#[path = "sidecar/replica.rs"]
mod replica;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use children::DirectProcess;
use common::fast_upstream::{self, Counters, FastUpstream, NOTE_UID};
use common::{CallLoop, Launch, McpProcess};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SKIP_100K_ENV: &str = "SIDECAR_BENCH_SKIP_100K";
const SKIP_PEER_ENV: &str = "SIDECAR_BENCH_SKIP_PEER";
const HOT_ONLY_ENV: &str = "SIDECAR_BENCH_HOT_ONLY";
const EXTRA_ARGS_ENV: &str = "SIDECAR_BENCH_SIDECAR_ARGS";
const CANDIDATE_ENV: &str = "SIDECAR_BENCH_CANDIDATE";

/// Interleaved rounds of every path, each this many calls after a warm-up.
const ROUNDS: usize = 3;
const WARMUP: usize = 300;
const CALLS: usize = 3_000;
const THROUGHPUT_REPS: usize = 3;
const IN_FLIGHT: [usize; 3] = [1, 8, 64];
const STARTUP_RUNS: usize = 5;
const MEMORY_BATCH: usize = 10_000;

fn main() -> ExitCode {
    if std::env::var_os(children::FLOOR_ENV).is_some() {
        return children::serve_child(children::serve_floor());
    }
    if let Ok(url) = std::env::var(children::DIRECT_ENV) {
        return children::serve_child(children::serve_direct(url));
    }
    // `cargo test --benches` runs bench targets without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("sidecar bench: skipped (run it with `cargo bench --bench sidecar`)");
        return ExitCode::SUCCESS;
    }
    // On a worker, so the client's reader task and the loop share a thread.
    children::serve_child(async { tokio::spawn(run()).await? })
}

fn note_args() -> Value {
    json!({ "uid": NOTE_UID })
}

fn create_args() -> Value {
    let mut body = children::create_body();
    body.as_object_mut().map(|b| b.remove("uid"));
    body
}

/// The sidecar binary, and `<target>/bench` for the report, logs and files.
pub struct Paths {
    pub sidecar: PathBuf,
    pub dir: PathBuf,
    logs: PathBuf,
}

impl Paths {
    fn new() -> Result<Self, BoxError> {
        let sidecar = PathBuf::from(common::BIN);
        let dir = sidecar.parent().and_then(Path::parent).ok_or("no target dir")?.join("bench");
        // Every run logs a few hundred thousand calls: start empty.
        let logs = dir.join("logs");
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs)?;
        Ok(Self { sidecar, dir, logs })
    }

    /// A sidecar as measured: info-level logs (one line per call) in
    /// `target/bench/logs`, and `SIDECAR_BENCH_SIDECAR_ARGS`.
    pub fn sidecar(&self, launch: Launch) -> Launch {
        let extra = std::env::var(EXTRA_ARGS_ENV).unwrap_or_default();
        let extra: Vec<&str> = extra.split_whitespace().collect();
        launch.env("TOOLBRIDGE_LOG", "info").log_dir(&self.logs).args(&extra)
    }

    /// The HTTP bridge on the stand-in (the replica off, as `Launch::remote`).
    pub fn remote(&self, url: &str) -> Launch {
        self.sidecar(Launch::remote(url))
    }

    fn candidate(&self, url: &str) -> Option<Launch> {
        let spec = std::env::var(CANDIDATE_ENV).ok()?;
        let mut words = spec.split_whitespace();
        let binary = PathBuf::from(words.next()?);
        Some(self.remote(url).program(&binary).args(&words.collect::<Vec<_>>()))
    }

    fn floor(&self) -> Result<Launch, BoxError> {
        Ok(Launch::command(&std::env::current_exe()?).env(children::FLOOR_ENV, "1"))
    }
}

/// A process initialized and checked with one `call`.
pub async fn hot(launch: Launch, call: (&str, Value)) -> McpProcess {
    let mut process = launch.spawn().await;
    process.initialize().await;
    let result = process.call_tool(call.0, call.1).await;
    assert_ne!(result["isError"], json!(true), "{}: {result}", call.0);
    process
}

/// A loop that must not fail.
pub fn checked(run: CallLoop, what: &str) -> Result<CallLoop, BoxError> {
    match run.failed {
        0 => Ok(run),
        n => Err(format!("{what}: {n} calls failed").into()),
    }
}

async fn run() -> Result<(), BoxError> {
    let paths = Paths::new()?;
    let upstream = fast_upstream::start().await?;
    let mut table = Table::new(&paths);
    eprintln!("sidecar bench: {}", table.header);
    hot_paths(&mut table, &paths, &upstream).await?;
    if std::env::var_os(HOT_ONLY_ENV).is_none() {
        eprintln!("sidecar bench: startup and memory");
        startup_and_memory(&mut table, &paths, &upstream).await?;
        replica::measure(&mut table, &paths).await?;
        if std::env::var_os(SKIP_PEER_ENV).is_none() {
            eprintln!("sidecar bench: FastMCP peer");
            peer::measure(&mut table, &paths, &upstream).await?;
        }
    }
    let markdown = table.markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&Value::Object(table.json))?;
    std::fs::write(paths.dir.join("report.md"), markdown)?;
    std::fs::write(paths.dir.join("report.json"), json + "\n")?;
    eprintln!("sidecar bench: wrote {}", paths.dir.join("report.md").display());
    Ok(())
}

/// A server measured: over MCP stdio, or the direct-HTTP process.
enum Server {
    Mcp(McpProcess),
    Direct(DirectProcess),
}

impl Server {
    fn pid(&self) -> u32 {
        match self {
            Server::Mcp(p) => p.pid(),
            Server::Direct(d) => d.pid(),
        }
    }

    /// `get_note`, or `create_note` (a `POST /v1/notes` for direct HTTP).
    async fn call_loop(
        &mut self,
        tool: &str,
        n: usize,
        warmup: usize,
        measured: usize,
    ) -> Result<CallLoop, BoxError> {
        let create = tool == "create_note";
        let run = match self {
            Server::Mcp(p) => {
                p.call_loop(
                    tool,
                    if create { create_args() } else { note_args() },
                    n,
                    warmup,
                    measured,
                )
                .await
            }
            Server::Direct(d) => d.call_loop(create, n, warmup, measured).await?,
        };
        checked(run, tool)
    }
}

/// What the hot runs measured, by who (`sidecar`, `sidecar create_note`...)
/// and calls in flight: latencies at 1 in flight, calls/s, and the CPU time
/// and context switches of the measured process.
#[derive(Default)]
struct Hot {
    latency: HashMap<String, Vec<Duration>>,
    rates: HashMap<(String, usize), Vec<f64>>,
    costs: HashMap<(String, usize), (Usage, usize)>,
}

impl Hot {
    async fn run(
        &mut self,
        name: &str,
        server: &mut Server,
        tool: &str,
        n: usize,
        counts: (usize, usize),
    ) -> Result<(), BoxError> {
        let who = if tool == "get_note" { name.to_owned() } else { format!("{name} {tool}") };
        let before = usage(server.pid());
        let run = server.call_loop(tool, n, counts.0, counts.1).await?;
        let spent = usage(server.pid()).minus(before);
        let (cost, calls) = self.costs.entry((who.clone(), n)).or_default();
        *cost = Usage(cost.0 + spent.0, cost.1 + spent.1);
        *calls += counts.0 + counts.1;
        self.rates.entry((who.clone(), n)).or_default().push(run.per_sec);
        if n == 1 {
            self.latency.entry(who).or_default().extend(run.latencies);
        }
        Ok(())
    }

    fn samples(&self, who: &str) -> Samples {
        Samples::from(self.latency.get(who).cloned().unwrap_or_default())
    }

    fn rate(&self, who: &str, n: usize) -> f64 {
        median(self.rates.get(&(who.to_owned(), n)).map_or(&[][..], Vec::as_slice))
    }

    /// CPU µs and context switches per call.
    fn cost(&self, who: &str, n: usize) -> (f64, f64) {
        let (usage, calls) = self.costs.get(&(who.to_owned(), n)).copied().unwrap_or_default();
        let calls = calls.max(1) as f64;
        (usage.0.as_secs_f64() * 1e6 / calls, usage.1 as f64 / calls)
    }
}

/// Direct HTTP, the floor, the sidecar, the sidecar on its replica and the
/// candidate: per-call latency in interleaved rounds, then throughput.
async fn hot_paths(
    table: &mut Table,
    paths: &Paths,
    upstream: &FastUpstream,
) -> Result<(), BoxError> {
    let url = &upstream.url;
    let get = ("get_note", note_args());
    let mut servers = vec![
        ("direct", Server::Direct(DirectProcess::spawn(url)?)),
        ("floor", Server::Mcp(hot(paths.floor()?, get.clone()).await)),
        ("sidecar", Server::Mcp(hot(paths.remote(url), get.clone()).await)),
        ("replica", Server::Mcp(replica::hot_sidecar(paths, upstream).await?)),
    ];
    if let Some(launch) = paths.candidate(url) {
        servers.push(("candidate", Server::Mcp(hot(launch, get).await)));
    }
    let mut hot = Hot::default();
    eprintln!("sidecar bench: latency at 1 in flight, {ROUNDS} rounds");
    for _ in 0..ROUNDS {
        for (name, server) in &mut servers {
            let writes = matches!(*name, "direct" | "sidecar" | "candidate");
            let tools: &[&str] = if writes { &["get_note", "create_note"] } else { &["get_note"] };
            for tool in tools {
                hot.run(name, server, tool, 1, (WARMUP, CALLS)).await?;
            }
        }
    }
    eprintln!("sidecar bench: throughput at {IN_FLIGHT:?} in flight");
    for n in IN_FLIGHT {
        let counts = [(300, 3_000), (1_000, 10_000), (2_000, 20_000)]
            [IN_FLIGHT.iter().position(|&i| i == n).unwrap_or(0)];
        for _ in 0..THROUGHPUT_REPS {
            for (name, server) in servers.iter_mut().filter(|(name, _)| *name != "replica") {
                hot.run(name, server, "get_note", n, counts).await?;
            }
        }
    }

    let (d, f, s) = (hot.samples("direct"), hot.samples("floor"), hot.samples("sidecar"));
    let (p50, p99) = (|s: &Samples| us(s.p(0.5)), |s: &Samples| us(s.p(0.99)));
    let ratio = |a: &Samples, b: Duration| a.p(0.5).as_secs_f64() / b.as_secs_f64();
    table.section(&format!("`get_note` at 1 in flight: median (p99) of {} calls", ROUNDS * CALLS));
    table.row(
        "direct HTTP (pooled reqwest in its own process)",
        format!("{} ({})", p50(&d), p99(&d)),
    );
    table.row(
        "protocol floor (minimal rmcp stdio server, no I/O)",
        format!("{} ({})", p50(&f), p99(&f)),
    );
    let over = ratio(&s, d.p(0.5));
    let measured = format!(
        "{} ({}): {:.2}× floor + direct, {over:.2}× direct",
        p50(&s),
        p99(&s),
        ratio(&s, f.p(0.5) + d.p(0.5))
    );
    table.goal(
        "**sidecar** (MCP stdio → HTTP)",
        measured,
        "< 1.3× direct (floor + direct alone is more)",
        Some(over < 1.3),
    );
    let r = hot.samples("replica");
    let over_floor = (r.p(0.5).as_secs_f64() - f.p(0.5).as_secs_f64()) * 1e6;
    let measured = format!(
        "{} ({}): {:.2}× direct, {over_floor:+.1} µs over the floor",
        p50(&r),
        p99(&r),
        ratio(&r, d.p(0.5))
    );
    table.goal(
        "sidecar from its local replica (→ SQLite)",
        measured,
        "below direct, within 30 µs of the floor",
        Some(r.p(0.5) < d.p(0.5) && over_floor <= 30.0),
    );

    table.section("`create_note` at 1 in flight: median (p99)");
    let (dc, sc) = (hot.samples("direct create_note"), hot.samples("sidecar create_note"));
    table.row("direct HTTP `POST /v1/notes`", format!("{} ({})", p50(&dc), p99(&dc)));
    let over = ratio(&sc, f.p(0.5) + dc.p(0.5));
    table.goal(
        "**sidecar** `create_note`",
        format!("{} ({}): {over:.2}× floor + direct", p50(&sc), p99(&sc)),
        "≤ 1.2× floor + direct",
        Some(over <= 1.2),
    );
    if let Ok(name) = std::env::var(CANDIDATE_ENV) {
        let (c, cc) = (hot.samples("candidate"), hot.samples("candidate create_note"));
        let measured = format!(
            "`get_note` {} ({:.2}× the sidecar), `create_note` {} ({:.2}×)",
            p50(&c),
            ratio(&c, s.p(0.5)),
            p50(&cc),
            ratio(&cc, sc.p(0.5))
        );
        table.row(&format!("candidate `{name}`"), measured);
    }

    table.section(
        "`get_note` throughput, calls/s (median of 3), and CPU µs (context switches) per call",
    );
    let mut who = vec!["sidecar", "direct", "floor"];
    who.extend(servers.iter().map(|(name, _)| *name).filter(|n| *n == "candidate"));
    for n in IN_FLIGHT {
        let figures: Vec<String> = who
            .iter()
            .map(|w| {
                let (cpu, switches) = hot.cost(w, n);
                format!("{w} {:.0}, {cpu:.1} µs ({switches:.2})", hot.rate(w, n))
            })
            .collect();
        let (goal, met) = match n {
            64 => (
                "sidecar ≥ 0.8× direct",
                Some(hot.rate("sidecar", n) >= 0.8 * hot.rate("direct", n)),
            ),
            _ => ("", None),
        };
        table.goal(&format!("{n} in flight"), figures.join("; "), goal, met);
    }
    let cpu = |w: &str| hot.cost(w, 1).0;
    let two_hops = cpu("floor") + cpu("direct");
    let measured = format!(
        "{:.1} µs: {:.2}× floor + direct ({:.1} µs beyond them); `create_note` {:.1} µs; from the replica {:.1} µs",
        cpu("sidecar"),
        cpu("sidecar") / two_hops,
        cpu("sidecar") - two_hops,
        cpu("sidecar create_note"),
        cpu("replica")
    );
    table.goal(
        "**sidecar CPU per `get_note`**, 1 in flight",
        measured,
        "≤ 1.5× floor + direct",
        Some(cpu("sidecar") <= 1.5 * two_hops),
    );

    let latency: Map<String, Value> =
        hot.latency.keys().map(|w| (w.clone(), hot.samples(w).json())).collect();
    table.record("latency_c1", Value::Object(latency));
    let costs = hot.costs.keys().map(|(w, n)| {
        let (cpu, switches) = hot.cost(w, *n);
        json!({"who": w, "in_flight": n, "per_sec": hot.rate(w, *n), "cpu_us": cpu, "switches": switches})
    });
    table.record("per_call", json!(costs.collect::<Vec<_>>()));
    table.record("sessions_opened", json!(Counters::get(&upstream.counters.sessions)));
    for (_, server) in servers {
        if let Server::Mcp(process) = server {
            process.shutdown().await;
        }
    }
    Ok(())
}

/// Spawn → `initialize` reply, → first `tools/list` reply, and stdin EOF →
/// exit (ms, median of [`STARTUP_RUNS`] after one unmeasured launch).
pub async fn startup(make: impl Fn(usize) -> Launch) -> [f64; 3] {
    let mut runs: [Vec<f64>; 3] = Default::default();
    for i in 0..=STARTUP_RUNS {
        let spawned = Instant::now();
        let mut process = make(i).spawn().await;
        process.initialize().await;
        let initialized = spawned.elapsed();
        let tools = process.request("tools/list", json!({})).await;
        assert!(tools.pointer("/result/tools").is_some(), "tools/list: {tools}");
        let listed = spawned.elapsed();
        let closed = Instant::now();
        process.shutdown().await;
        if i > 0 {
            for (run, took) in runs.iter_mut().zip([initialized, listed, closed.elapsed()]) {
                run.push(took.as_secs_f64() * 1e3);
            }
        }
    }
    runs.map(|r| median(&r))
}

/// The `n`th launch of a startup row.
type MakeLaunch<'a> = Box<dyn Fn(usize) -> Launch + Send + Sync + 'a>;

async fn startup_and_memory(
    table: &mut Table,
    paths: &Paths,
    upstream: &FastUpstream,
) -> Result<(), BoxError> {
    table.section(&format!("Startup, ms (median of {STARTUP_RUNS}): spawn → `initialize` reply / → first `tools/list` / stdin EOF → exit"));
    let db = |name: &str| {
        let db = paths.dir.join(name);
        replica::remove_db(&db);
        db
    };
    let existing = db("embedded.db");
    let configurations: [(&str, &str, MakeLaunch); 4] = [
        ("sidecar, remote upstream", "< 15 ms", Box::new(|_| paths.remote(&upstream.url))),
        // The warm-up launch creates the database; the others open it.
        (
            "sidecar, embedded API (existing db)",
            "< 50 ms",
            Box::new(|_| paths.sidecar(Launch::embedded(&existing))),
        ),
        (
            "sidecar, embedded API (new db file)",
            "",
            Box::new(|i| paths.sidecar(Launch::embedded(&db(&format!("embedded-new-{i}.db"))))),
        ),
        (
            "floor (minimal rmcp server)",
            "",
            Box::new(|_| paths.floor().expect("the bench executable")),
        ),
    ];
    for (name, goal, make) in configurations {
        let [init, list, exit] = startup(make).await;
        let limit: Option<f64> = goal.trim_start_matches("< ").trim_end_matches(" ms").parse().ok();
        table.goal(
            name,
            format!("{init:.2} / {list:.2} / {exit:.2}"),
            goal,
            limit.map(|l| init < l),
        );
        table.record(&format!("startup_ms {name}"), json!([init, list, exit]));
        if name.starts_with("sidecar, remote") {
            table.record("startup_remote_initialize_ms", json!(init));
        }
    }

    eprintln!("sidecar bench: memory");
    let mut sidecar = paths.remote(&upstream.url).spawn().await;
    sidecar.initialize().await;
    sidecar.request("tools/list", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = peak_rss_kib(sidecar.pid());
    let batches = if std::env::var_os(SKIP_100K_ENV).is_some() { 1 } else { 10 };
    let mut hwm = Vec::new();
    for _ in 0..batches {
        checked(sidecar.call_loop("get_note", note_args(), 1, 0, MEMORY_BATCH).await, "memory")?;
        hwm.push(peak_rss_kib(sidecar.pid()));
    }
    sidecar.shutdown().await;
    table.section("Memory, peak RSS (`VmHWM`)");
    table.row("idle, after `initialize` and `tools/list`", mib(idle));
    table.goal("after 10,000 `get_note` calls", mib(hwm[0]), "< 20 MiB", Some(hwm[0] < 20 * 1024));
    // From the 20,000-call sample: the first 10,000 include the warm-up of
    // the allocator and the pool.
    let growth = (hwm.len() > 2).then(|| hwm[hwm.len() - 1] as i64 - hwm[1] as i64);
    let measured = growth
        .map_or(format!("not run ({SKIP_100K_ENV})"), |g| format!("{g:+} KiB from 20,000 calls"));
    table.goal("over 100,000 calls", measured, "flat (≤ 1,024 KiB)", growth.map(|g| g <= 1024));
    table.record("memory_kib", json!({"idle": idle, "hwm_per_10k_calls": hwm}));
    Ok(())
}

/// The one table: a row per figure, with its goal and verdict when it has
/// one, sections as bold rows; and the figures as JSON.
pub struct Table {
    header: String,
    rows: Vec<[String; 4]>,
    pub json: Map<String, Value>,
}

impl Table {
    fn new(paths: &Paths) -> Self {
        let sh = |program: &str, args: &[&str]| {
            let out = std::process::Command::new(program).args(args).output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let dir = env!("CARGO_MANIFEST_DIR");
        let commit = sh("git", &["-C", dir, "rev-parse", "--short", "HEAD"]).unwrap_or_default();
        let dirty = sh("git", &["-C", dir, "status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let size = std::fs::metadata(&paths.sidecar).map_or(0, |m| m.len());
        let header = format!(
            "{date} · {cores} cores · load {} · commit {commit}{} · sidecar {:.1} MiB{}",
            load.join(" "),
            if dirty { " + changes" } else { "" },
            size as f64 / 1048576.0,
            std::env::var(EXTRA_ARGS_ENV).map(|a| format!(" with `{a}`")).unwrap_or_default(),
        );
        let json =
            json!({"header": header, "date": date, "cores": cores, "load": load, "commit": commit});
        let Value::Object(json) = json else { unreachable!() };
        Self { header, rows: Vec::new(), json }
    }

    pub fn section(&mut self, title: &str) {
        self.rows.push([format!("**{title}**"), String::new(), String::new(), String::new()]);
    }

    pub fn row(&mut self, figure: &str, measured: impl Into<String>) {
        self.goal(figure, measured, "", None);
    }

    pub fn goal(
        &mut self,
        figure: &str,
        measured: impl Into<String>,
        goal: &str,
        met: Option<bool>,
    ) {
        let verdict = met.map_or("", |m| if m { "met" } else { "**missed**" });
        self.rows.push([figure.to_owned(), measured.into(), goal.to_owned(), verdict.to_owned()]);
    }

    pub fn record(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_owned(), value);
    }

    fn markdown(&mut self) -> String {
        let mut out = format!(
            "## toolbridge-mcp sidecar benchmark\n\n{}\n\n| figure | measured | goal | |\n|---|---|---|---|\n",
            self.header
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let rows: Vec<Value> = self.rows.iter().map(|r| json!(r)).collect();
        self.record("table", json!(rows));
        out
    }
}

/// Latency samples, sorted.
#[derive(Default)]
pub struct Samples(Vec<Duration>);

impl From<Vec<Duration>> for Samples {
    fn from(mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self(latencies)
    }
}

impl Samples {
    /// Nearest-rank percentile.
    pub fn p(&self, q: f64) -> Duration {
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0.get(rank.clamp(1, self.0.len().max(1)) - 1).copied().unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        let us = |q| self.p(q).as_secs_f64() * 1e6;
        json!({"median_us": us(0.5), "p90_us": us(0.9), "p99_us": us(0.99), "samples": self.0.len()})
    }
}

pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time and context switches of a process so far, summed over its
/// threads (`/proc/PID/task/*/schedstat` and `status`).
#[derive(Clone, Copy, Default)]
struct Usage(Duration, u64);

impl Usage {
    fn minus(self, earlier: Usage) -> Usage {
        Usage(self.0.saturating_sub(earlier.0), self.1.saturating_sub(earlier.1))
    }
}

fn usage(pid: u32) -> Usage {
    let mut total = Usage::default();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    for task in tasks {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        let ns = read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok());
        total.0 += Duration::from_nanos(ns.unwrap_or(0));
        let status = read("status");
        let switches = status.lines().filter(|l| l.contains("ctxt_switches:"));
        total.1 +=
            switches.filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
    }
    total
}

/// Peak resident set in KiB (`VmHWM`), 0 when unknown.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    hwm.and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}
