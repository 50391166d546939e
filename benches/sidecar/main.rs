//! `cargo bench --bench sidecar`: what the sidecar costs, in one run and one
//! table (printed, and written to `target/bench/report.md` and `.json`).
//!
//! The sidecar runs against a fast stand-in in this process
//! (`tests/common/fast_upstream.rs`) and is driven by the tests' own MCP
//! client (`tests/common/mod.rs`). Beside it: the same HTTP request made
//! directly, the protocol floor, a minimal rmcp stdio server whose tool does
//! no I/O, and the minimal bridge, the floor whose tool makes the sidecar's
//! request and nothing else (`children.rs`). It measures per-call latency,
//! CPU and context switches of `get_note` and `create_note`, throughput at 1,
//! 8 and 64 in flight, startup, memory, the local replica over 10,000 notes
//! and what typical results cost a model in tokens (`replica.rs`), and the
//! FastMCP peer (`peer.rs`). The README's Benchmark section lists the
//! environment variables that shorten or redirect a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::unreachable)]

mod children;
// Formatted as a part of the tests, with their settings.
#[rustfmt::skip]
#[path = "../../tests/common/mod.rs"]
mod common;
mod peer;
mod replica;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::fast_upstream::{self, Counters, FastUpstream, NOTE_UID};
use common::{CallLoop, Launch, McpProcess};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SKIP_100K_ENV: &str = "SIDECAR_BENCH_SKIP_100K";
const SKIP_PEER_ENV: &str = "SIDECAR_BENCH_SKIP_PEER";
const HOT_ONLY_ENV: &str = "SIDECAR_BENCH_HOT_ONLY";
const EXTRA_ARGS_ENV: &str = "SIDECAR_BENCH_SIDECAR_ARGS";
const CANDIDATE_ENV: &str = "SIDECAR_BENCH_CANDIDATE";
const UPSTREAM_ENV: &str = "SIDECAR_BENCH_UPSTREAM";

/// A loop's calls in flight, warm-up calls and measured calls.
pub type Load = (usize, usize, usize);

/// Interleaved rounds of every path, each this many calls after a warm-up.
const ROUNDS: usize = 3;
const WARMUP: usize = 300;
const CALLS: usize = 3_000;
const THROUGHPUT_REPS: usize = 3;
/// Throughput beyond the rounds (which measure it at 1 in flight).
const IN_FLIGHT: [Load; 2] = [(8, 1_000, 10_000), (64, 2_000, 20_000)];
const STARTUP_RUNS: usize = 5;
const MEMORY_BATCH: usize = 10_000;

fn main() -> Result<(), BoxError> {
    if std::env::var_os(children::FLOOR_ENV).is_some() {
        return children::serve_child(children::serve_floor(None));
    }
    if let Ok(url) = std::env::var(children::BRIDGE_ENV) {
        return children::serve_child(children::serve_floor(Some(url)));
    }
    if let Ok(url) = std::env::var(children::DIRECT_ENV) {
        return children::serve_child(children::serve_direct(url));
    }
    if std::env::var_os(UPSTREAM_ENV).is_some() {
        return children::serve_child(serve_upstream());
    }
    // `cargo test --benches` runs bench targets without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("sidecar bench: skipped (run it with `cargo bench --bench sidecar`)");
        return Ok(());
    }
    // On a worker, so the client's reader task and the loop share a thread.
    children::serve_child(async { tokio::spawn(run()).await? })
}

/// The stand-in alone, for profiling a sidecar by hand: prints its URL and
/// serves until stdin closes.
async fn serve_upstream() -> Result<(), BoxError> {
    let upstream = fast_upstream::start().await?;
    println!("{}", upstream.url);
    tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink()).await?;
    Ok(())
}

fn note_args() -> Value {
    json!({ "uid": NOTE_UID })
}

fn create_args() -> Value {
    json!({"title": "Benchmark note",
           "content": "A short markdown note that a model asked for by uid."})
}

/// What every measurement starts from: the sidecar binary, the bench's own
/// executable (for its children), `<target>/bench` for the report, logs and
/// files, and the stand-in upstream.
pub struct Setup {
    pub sidecar: PathBuf,
    bench: PathBuf,
    pub dir: PathBuf,
    logs: PathBuf,
    pub upstream: FastUpstream,
}

impl Setup {
    async fn new() -> Result<Self, BoxError> {
        let sidecar = PathBuf::from(common::BIN);
        let dir = sidecar.parent().and_then(Path::parent).ok_or("no target dir")?.join("bench");
        // Every run logs a few hundred thousand calls: start empty.
        let logs = dir.join("logs");
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs)?;
        let upstream = fast_upstream::start().await?;
        Ok(Self { sidecar, bench: std::env::current_exe()?, dir, logs, upstream })
    }

    /// A sidecar as measured: info-level logs (one line per call) in
    /// `target/bench/logs`, and `SIDECAR_BENCH_SIDECAR_ARGS`.
    pub fn sidecar(&self, launch: Launch) -> Launch {
        let extra = std::env::var(EXTRA_ARGS_ENV).unwrap_or_default();
        let extra: Vec<&str> = extra.split_whitespace().collect();
        launch.env("TOOLBRIDGE_LOG", "info").log_dir(&self.logs).args(&extra)
    }

    /// The HTTP bridge on the stand-in (the replica off, as `Launch::remote`).
    pub fn remote(&self) -> Launch {
        self.sidecar(Launch::remote(&self.upstream.url))
    }

    fn candidate(&self) -> Option<Launch> {
        let spec = std::env::var(CANDIDATE_ENV).ok()?;
        let mut words = spec.split_whitespace();
        let binary = PathBuf::from(words.next()?);
        Some(self.remote().program(&binary).args(&words.collect::<Vec<_>>()))
    }

    fn floor(&self) -> Launch {
        Launch::command(&self.bench).env(children::FLOOR_ENV, "1")
    }

    fn bridge(&self) -> Launch {
        Launch::command(&self.bench).env(children::BRIDGE_ENV, &self.upstream.url)
    }

    fn direct(&self) -> Launch {
        Launch::command(&self.bench).env(children::DIRECT_ENV, &self.upstream.url)
    }
}

/// A process initialized and checked with one `call`.
pub async fn hot(launch: Launch, call: (&str, Value)) -> McpProcess {
    let mut process = launch.spawn().await;
    process.initialize().await;
    common::ok(&process.call_tool(call.0, call.1).await);
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
    let setup = Setup::new().await?;
    let mut table = Table::new(&setup);
    eprintln!("sidecar bench: {}", table.header);
    hot_paths(&mut table, &setup).await?;
    if std::env::var_os(HOT_ONLY_ENV).is_none() {
        eprintln!("sidecar bench: startup and memory");
        startup_and_memory(&mut table, &setup).await?;
        replica::measure(&mut table, &setup).await?;
        if std::env::var_os(SKIP_PEER_ENV).is_none() {
            eprintln!("sidecar bench: FastMCP peer");
            peer::measure(&mut table, &setup).await?;
        }
    }
    let markdown = table.markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&table.json)?;
    std::fs::write(setup.dir.join("report.md"), markdown)?;
    std::fs::write(setup.dir.join("report.json"), json + "\n")?;
    eprintln!("sidecar bench: wrote {}", setup.dir.join("report.md").display());
    Ok(())
}

/// A server measured, by name: an MCP server on stdio, or the direct-HTTP
/// process, which runs each loop itself.
struct Server {
    name: &'static str,
    process: McpProcess,
}

/// What one server's tool measured at one number of calls in flight: the
/// latencies, the calls/s of each run, and the CPU time and context switches
/// the server spent on its calls.
#[derive(Default)]
struct Runs {
    latencies: Vec<Duration>,
    per_sec: Vec<f64>,
    cpu: Duration,
    switches: u64,
    calls: usize,
}

impl Runs {
    fn samples(&self) -> Samples {
        Samples::from(self.latencies.clone())
    }

    fn rate(&self) -> f64 {
        Samples::from(self.per_sec.clone()).median()
    }

    /// CPU µs and context switches per call.
    fn cost(&self) -> (f64, f64) {
        let calls = self.calls.max(1) as f64;
        (self.cpu.as_secs_f64() * 1e6 / calls, self.switches as f64 / calls)
    }
}

/// The hot runs, by who (`sidecar`, `sidecar create_note`...) and calls in
/// flight.
#[derive(Default)]
struct Hot(BTreeMap<(String, usize), Runs>);

impl Hot {
    /// A loop of `tool` on `server`.
    async fn run(&mut self, server: &mut Server, tool: &str, load: Load) -> Result<(), BoxError> {
        let (n, warmup, measured) = load;
        let pid = server.process.pid();
        let before = usage(pid);
        let run = match server.name {
            "direct" => children::direct_loop(&mut server.process, tool, load).await?,
            _ => {
                let args = if tool == "create_note" { create_args() } else { note_args() };
                server.process.call_loop(tool, args, n, warmup, measured).await
            }
        };
        let run = checked(run, tool)?;
        let after = usage(pid);
        let name = server.name;
        let who = if tool == "get_note" { name.to_owned() } else { format!("{name} {tool}") };
        let runs = self.0.entry((who, n)).or_default();
        runs.cpu += after.0.saturating_sub(before.0);
        runs.switches += after.1.saturating_sub(before.1);
        runs.calls += warmup + measured;
        runs.per_sec.push(run.per_sec);
        runs.latencies.extend(run.latencies);
        Ok(())
    }

    fn at(&self, who: &str, n: usize) -> &Runs {
        &self.0[&(who.to_owned(), n)]
    }
}

/// Direct HTTP, the floor, the minimal bridge, the sidecar, the sidecar on
/// its replica and the candidate: per-call latency in interleaved rounds,
/// then throughput.
async fn hot_paths(table: &mut Table, setup: &Setup) -> Result<(), BoxError> {
    let get = ("get_note", note_args());
    let mut servers = vec![
        Server { name: "direct", process: setup.direct().spawn().await },
        Server { name: "floor", process: hot(setup.floor(), get.clone()).await },
        Server { name: "bridge", process: hot(setup.bridge(), get.clone()).await },
        Server { name: "sidecar", process: hot(setup.remote(), get.clone()).await },
        Server { name: "replica", process: replica::hot_sidecar(setup).await? },
    ];
    if let Some(launch) = setup.candidate() {
        servers.push(Server { name: "candidate", process: hot(launch, get).await });
    }
    let mut hot = Hot::default();
    eprintln!("sidecar bench: latency at 1 in flight, {ROUNDS} rounds");
    for _ in 0..ROUNDS {
        for server in &mut servers {
            hot.run(server, "get_note", (1, WARMUP, CALLS)).await?;
            if matches!(server.name, "direct" | "sidecar" | "candidate") {
                hot.run(server, "create_note", (1, WARMUP, CALLS)).await?;
            }
        }
    }
    eprintln!("sidecar bench: throughput at 8 and 64 in flight");
    for load in IN_FLIGHT {
        for _ in 0..THROUGHPUT_REPS {
            for server in servers.iter_mut().filter(|s| s.name != "replica") {
                hot.run(server, "get_note", load).await?;
            }
        }
    }

    let samples = |who: &str| hot.at(who, 1).samples();
    let (d, f, b, s, r) = (
        samples("direct"),
        samples("floor"),
        samples("bridge"),
        samples("sidecar"),
        samples("replica"),
    );
    let (direct, floor) = (d.median(), f.median());
    table.section(&format!("`get_note` at 1 in flight: median (p99) of {} calls", ROUNDS * CALLS));
    table.row("direct HTTP (pooled reqwest in its own process)", d.median_p99(us));
    table.row("protocol floor (minimal rmcp stdio server, no I/O)", f.median_p99(us));
    let measured =
        format!("{}: {:.2}× floor + direct", b.median_p99(us), b.median() / (floor + direct));
    table.row("minimal bridge (the floor's tool makes the sidecar's GET, nothing else)", measured);
    let over = s.median() / direct;
    let over_both = s.median() / (floor + direct);
    let measured =
        format!("{}: {over_both:.2}× floor + direct, {over:.2}× direct", s.median_p99(us));
    let goal = "< 1.3× direct (floor + direct alone is more)";
    table.goal("**sidecar** (MCP stdio → HTTP)", measured, goal, Some(over < 1.3));
    let over_floor = r.median() - floor;
    let measured = format!(
        "{}: {:.2}× direct, {over_floor:+.1} µs over the floor",
        r.median_p99(us),
        r.median() / direct
    );
    let goal = "below direct, within 30 µs of the floor";
    let met = r.median() < direct && over_floor <= 30.0;
    table.goal("sidecar from its local replica (→ SQLite)", measured, goal, Some(met));

    table.section("`create_note` at 1 in flight: median (p99)");
    let (dc, sc) = (samples("direct create_note"), samples("sidecar create_note"));
    table.row("direct HTTP `POST /v1/notes`", dc.median_p99(us));
    let over = sc.median() / (floor + dc.median());
    let measured = format!("{}: {over:.2}× floor + direct", sc.median_p99(us));
    table.goal("**sidecar** `create_note`", measured, "≤ 1.2× floor + direct", Some(over <= 1.2));
    if let Ok(name) = std::env::var(CANDIDATE_ENV) {
        let (c, cc) = (samples("candidate"), samples("candidate create_note"));
        let measured = format!(
            "`get_note` {} ({:.2}× the sidecar), `create_note` {} ({:.2}×)",
            us(c.median()),
            c.median() / s.median(),
            us(cc.median()),
            cc.median() / sc.median()
        );
        table.row(&format!("candidate `{name}`"), measured);
    }

    table.section(
        "`get_note` throughput, calls/s (median of 3), and CPU µs (context switches) per call",
    );
    let mut who = vec!["sidecar", "direct", "floor", "bridge"];
    who.extend(servers.iter().map(|s| s.name).filter(|n| *n == "candidate"));
    for n in [1, 8, 64] {
        let figures: Vec<String> = who
            .iter()
            .map(|w| {
                let runs = hot.at(w, n);
                let (cpu, switches) = runs.cost();
                format!("{w} {:.0}, {cpu:.1} µs ({switches:.2})", runs.rate())
            })
            .collect();
        let met =
            (n == 64).then(|| hot.at("sidecar", n).rate() >= 0.8 * hot.at("direct", n).rate());
        let goal = if met.is_some() { "sidecar ≥ 0.8× direct" } else { "" };
        table.goal(&format!("{n} in flight"), figures.join("; "), goal, met);
    }
    let cpu = |w: &str| hot.at(w, 1).cost().0;
    let two_hops = cpu("floor") + cpu("direct");
    let measured = format!(
        "{:.1} µs: {:.2}× floor + direct ({:.1} µs beyond them, {:.1} µs beyond the minimal bridge); `create_note` {:.1} µs; from the replica {:.1} µs",
        cpu("sidecar"),
        cpu("sidecar") / two_hops,
        cpu("sidecar") - two_hops,
        cpu("sidecar") - cpu("bridge"),
        cpu("sidecar create_note"),
        cpu("replica")
    );
    let met = cpu("sidecar") <= 1.5 * two_hops;
    let figure = "**sidecar CPU per `get_note`**, 1 in flight";
    table.goal(figure, measured, "≤ 1.5× floor + direct", Some(met));

    let mut latency = json!({});
    for ((w, _), runs) in hot.0.iter().filter(|((_, n), _)| *n == 1) {
        latency[w] = runs.samples().json();
    }
    table.record("latency_c1", latency);
    let costs = hot.0.iter().map(|((w, n), runs)| {
        let (cpu, switches) = runs.cost();
        json!({"who": w, "in_flight": n, "per_sec": runs.rate(), "cpu_us": cpu, "switches": switches})
    });
    table.record("per_call", json!(costs.collect::<Vec<_>>()));
    table.record("sessions_opened", json!(Counters::get(&setup.upstream.counters.sessions)));
    for server in servers {
        server.process.shutdown().await;
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
    runs.map(|r| Samples::from(r).median())
}

/// A row of the startup section, with its goal on `initialize` when it has
/// one; returns the `initialize` time.
async fn startup_row(
    table: &mut Table,
    name: &str,
    under_ms: Option<f64>,
    make: impl Fn(usize) -> Launch,
) -> f64 {
    let [init, list, exit] = startup(make).await;
    let goal = under_ms.map_or(String::new(), |limit| format!("< {limit} ms"));
    let measured = format!("{init:.2} / {list:.2} / {exit:.2}");
    table.goal(name, measured, &goal, under_ms.map(|limit| init < limit));
    table.record(&format!("startup_ms {name}"), json!([init, list, exit]));
    init
}

async fn startup_and_memory(table: &mut Table, setup: &Setup) -> Result<(), BoxError> {
    table.section(&format!("Startup, ms (median of {STARTUP_RUNS}): spawn → `initialize` reply / → first `tools/list` / stdin EOF → exit"));
    let db = |name: &str| replica::fresh_db(setup.dir.join(name));
    let init = startup_row(table, "sidecar, remote upstream", Some(15.0), |_| setup.remote()).await;
    table.record("startup_remote_initialize_ms", json!(init));
    // The warm-up launch creates the database; the others open it.
    let existing = db("embedded.db");
    let embedded = |_| setup.sidecar(Launch::embedded(&existing));
    startup_row(table, "sidecar, embedded API (existing db)", Some(50.0), embedded).await;
    let new = |i| setup.sidecar(Launch::embedded(&db(&format!("embedded-new-{i}.db"))));
    startup_row(table, "sidecar, embedded API (new db file)", None, new).await;
    startup_row(table, "floor (minimal rmcp server)", None, |_| setup.floor()).await;

    eprintln!("sidecar bench: memory");
    let mut sidecar = setup.remote().spawn().await;
    sidecar.initialize().await;
    sidecar.request("tools/list", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = sidecar.peak_rss_kib().unwrap_or(0);
    let batches = if std::env::var_os(SKIP_100K_ENV).is_some() { 1 } else { 10 };
    let mut hwm = Vec::new();
    for _ in 0..batches {
        checked(sidecar.call_loop("get_note", note_args(), 1, 0, MEMORY_BATCH).await, "memory")?;
        hwm.push(sidecar.peak_rss_kib().unwrap_or(0));
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
    /// An object, a key per figure.
    pub json: Value,
}

impl Table {
    fn new(setup: &Setup) -> Self {
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
        let size = std::fs::metadata(&setup.sidecar).map_or(0, |m| m.len());
        // In a VM without guest halt polling every wake-up of a sleeping
        // thread costs tens of µs (README, Benchmark): say which kind ran.
        let polling = std::fs::read_to_string("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
            .map(|ns| format!(" · guest halt polling {} ns", ns.trim()))
            .unwrap_or_default();
        let header = format!(
            "{date} · {cores} cores · load {}{polling} · commit {commit}{} · sidecar {:.1} MiB{}",
            load.join(" "),
            if dirty { " + changes" } else { "" },
            size as f64 / 1048576.0,
            std::env::var(EXTRA_ARGS_ENV).map(|a| format!(" with `{a}`")).unwrap_or_default(),
        );
        let json =
            json!({"header": header, "date": date, "cores": cores, "load": load, "commit": commit});
        Self { header, rows: Vec::new(), json }
    }

    pub fn section(&mut self, title: &str) {
        self.rows.push([format!("**{title}**"), String::new(), String::new(), String::new()]);
    }

    pub fn row(&mut self, figure: &str, measured: String) {
        self.goal(figure, measured, "", None);
    }

    pub fn goal(&mut self, figure: &str, measured: String, goal: &str, met: Option<bool>) {
        let verdict = met.map_or("", |m| if m { "met" } else { "**missed**" });
        self.rows.push([figure.to_owned(), measured, goal.to_owned(), verdict.to_owned()]);
    }

    pub fn record(&mut self, key: &str, value: Value) {
        self.json[key] = value;
    }

    fn markdown(&mut self) -> String {
        let mut out = format!(
            "## toolbridge-mcp sidecar benchmark\n\n{}\n\n| figure | measured | goal | |\n|---|---|---|---|\n",
            self.header
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        self.json["table"] = json!(self.rows);
        out
    }
}

/// Values sorted, for their median and percentiles: latencies in µs, or a
/// figure of repeated runs.
pub struct Samples(Vec<f64>);

impl From<Vec<f64>> for Samples {
    fn from(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self(values)
    }
}

impl From<Vec<Duration>> for Samples {
    fn from(latencies: Vec<Duration>) -> Self {
        Self::from(latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect::<Vec<_>>())
    }
}

impl Samples {
    /// Nearest-rank percentile (of an odd count, `p(0.5)` is the middle one).
    pub fn p(&self, q: f64) -> f64 {
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0.get(rank.clamp(1, self.0.len().max(1)) - 1).copied().unwrap_or(f64::NAN)
    }

    pub fn median(&self) -> f64 {
        self.p(0.5)
    }

    /// `median (p99)`, in `unit`.
    pub fn median_p99(&self, unit: fn(f64) -> String) -> String {
        format!("{} ({})", unit(self.median()), unit(self.p(0.99)))
    }

    pub fn json(&self) -> Value {
        json!({"median_us": self.p(0.5), "p90_us": self.p(0.9), "p99_us": self.p(0.99), "samples": self.0.len()})
    }
}

/// A latency in µs, shown in µs.
pub fn us(micros: f64) -> String {
    format!("{micros:.1} µs")
}

/// A latency in µs, shown in ms.
pub fn ms(micros: f64) -> String {
    format!("{:.2} ms", micros / 1e3)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// CPU time and context switches of a process so far, summed over its
/// threads (`/proc/PID/task/*/schedstat` and `status`).
fn usage(pid: u32) -> (Duration, u64) {
    let (mut cpu, mut switches) = (Duration::ZERO, 0);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    for task in tasks {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        let ns = read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok());
        cpu += Duration::from_nanos(ns.unwrap_or(0));
        let status = read("status");
        let counts = status.lines().filter(|l| l.contains("ctxt_switches:"));
        switches +=
            counts.filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
    }
    (cpu, switches)
}
