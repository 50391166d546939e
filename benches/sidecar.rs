//! `cargo bench --bench sidecar`: what the sidecar costs, in one run.
//!
//! - Per-call latency of `get_note` through the sidecar against a fast
//!   in-process upstream, beside the same HTTP request made directly by a
//!   pooled reqwest client (in its own process, and on the upstream's runtime)
//!   and beside the protocol floor (a minimal rmcp stdio server whose tool does
//!   no I/O, built into this executable).
//! - Throughput with 1, 8 and 64 calls in flight, pipelined on one stdio, and
//!   the CPU time and context switches each process spends per call.
//! - Startup to `initialize` and to the first `tools/list`, remote and embedded.
//! - Peak RSS idle, after 10,000 calls and over 100,000 calls.
//! - The local replica (`replica.rs`): `get_note` from it in the latency
//!   rounds; `search` and `list_notes` over 10,000 notes; its first sync, size
//!   and the upstream requests it saves. Every other sidecar runs with
//!   `TOOLBRIDGE_REPLICA=off`, the HTTP bridge measured before it existed.
//! - The same figures for the common Python way: a FastMCP server that opens a
//!   new `httpx.AsyncClient` and a new sync session per call (installed into
//!   `target/bench/peer-venv` on first run).
//!
//! The table goes to stdout and to `target/bench/report.md` (with the figures
//! as JSON; also `target/bench/report.json`).
//!
//! Environment: `SIDECAR_BENCH_SKIP_100K=1` and `SIDECAR_BENCH_SKIP_PEER=1`
//! shorten a run; `SIDECAR_BENCH_HOT_ONLY=1` runs only latency and throughput;
//! `SIDECAR_BENCH_CANDIDATE="BIN [ARGS]"` measures another sidecar build beside
//! this one; `SIDECAR_BENCH_SIDECAR_ARGS` adds arguments to every sidecar;
//! `SIDECAR_BENCH_PROFILE=CALLS@CONCURRENCY` only drives one sidecar (the
//! candidate when set: a `perf record` or `valgrind` wrapper) for profilers,
//! with `SIDECAR_BENCH_PROFILE_HOOK` run after its warm-up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

#[path = "sidecar/client.rs"]
mod client;
#[path = "sidecar/direct.rs"]
mod direct;
#[path = "sidecar/floor.rs"]
mod floor;
#[path = "sidecar/peer.rs"]
mod peer;
#[path = "sidecar/replica.rs"]
mod replica;
#[path = "sidecar/report.rs"]
mod report;
#[path = "sidecar/upstream.rs"]
mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use client::{LoopResult, McpProcess, memory_kib, usage};
use direct::{DirectClient, DirectProcess};
use report::{
    CANDIDATE, DIRECT, FLOOR, MemorySample, PeerFigures, PeerOutcome, REPLICA, Report, SIDECAR,
    Samples, StartupRow, ThroughputRow, percentile, sorted, us,
};
use upstream::{NOTE_UID, Upstream};

const SKIP_100K_ENV: &str = "SIDECAR_BENCH_SKIP_100K";
const SKIP_PEER_ENV: &str = "SIDECAR_BENCH_SKIP_PEER";
/// `CALLS@CONCURRENCY`: only drive one sidecar (the candidate when set, so
/// it can be a `perf record` or `valgrind` wrapper) through that many calls,
/// for profilers.
const PROFILE_ENV: &str = "SIDECAR_BENCH_PROFILE";
/// A shell command run after the profile mode's warm-up, with `$PID` set to
/// the sidecar's process id (`callgrind_control -z $PID`).
const PROFILE_HOOK_ENV: &str = "SIDECAR_BENCH_PROFILE_HOOK";
/// Only the latency and throughput rounds, for experiments.
const HOT_ONLY_ENV: &str = "SIDECAR_BENCH_HOT_ONLY";
/// Extra arguments for every sidecar launch, for experiments.
const EXTRA_ARGS_ENV: &str = "SIDECAR_BENCH_SIDECAR_ARGS";
/// Another sidecar binary, optionally followed by extra arguments, to measure
/// beside the built one in the latency and throughput rounds.
const CANDIDATE_ENV: &str = "SIDECAR_BENCH_CANDIDATE";

/// Latency: interleaved rounds of direct, floor and sidecar, each this many
/// calls after its own warm-up; percentiles over the pooled samples.
const LATENCY_ROUNDS: usize = 3;
const LATENCY_WARMUP: usize = 300;
const LATENCY_CALLS: usize = 3_000;
/// Throughput: repetitions per concurrency; the median is reported.
const THROUGHPUT_REPS: usize = 3;
const CONCURRENCY: [usize; 3] = [1, 8, 64];
/// Startup: measured launches after one unmeasured warm-up launch.
const STARTUP_RUNS: usize = 5;
/// Memory: calls between two samples, and samples in the long run.
const MEMORY_BATCH: usize = 10_000;
const MEMORY_BATCHES: usize = 10;
/// The peer is two orders of magnitude slower per call: fewer calls keep the
/// run short.
const PEER_WARMUP: usize = 100;
const PEER_CALLS: usize = 2_000;

/// The MCP tool calls it: `tools/call get_note {uid}`.
fn note_arguments() -> Value {
    json!({ "uid": NOTE_UID })
}

fn main() -> ExitCode {
    if std::env::var_os(floor::ENV).is_some() {
        return floor::serve();
    }
    if let Ok(base_url) = std::env::var(direct::ENV) {
        return direct::serve(&base_url);
    }
    // `cargo test --benches` runs bench targets without `--bench`: this one
    // takes minutes, so it runs only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("sidecar bench: skipped (run it with `cargo bench --bench sidecar`)");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sidecar bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

/// Where things are: the sidecar binary cargo built for this bench, and
/// `<target dir>/bench` for the report, logs, databases and the peer's venv.
struct Paths {
    sidecar: PathBuf,
    /// Another sidecar build (and extra arguments) measured beside it
    /// (`SIDECAR_BENCH_CANDIDATE`).
    candidate: Option<(PathBuf, Vec<String>)>,
    bench_dir: PathBuf,
    log_dir: PathBuf,
    stderr: PathBuf,
}

impl Paths {
    fn new() -> Result<Self, BoxError> {
        let sidecar = PathBuf::from(env!("CARGO_BIN_EXE_toolbridge-mcp"));
        let target_dir = sidecar
            .parent()
            .and_then(Path::parent)
            .ok_or("cannot locate the target directory")?;
        let bench_dir = target_dir.join("bench");
        // Every run logs a few hundred thousand calls: start empty.
        let log_dir = bench_dir.join("logs");
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir)?;
        let stderr = log_dir.join("stderr.log");
        Ok(Self {
            sidecar,
            candidate: std::env::var(CANDIDATE_ENV).ok().and_then(|spec| {
                let mut words = spec.split_whitespace().map(str::to_owned);
                Some((PathBuf::from(words.next()?), words.collect()))
            }),
            bench_dir,
            log_dir,
            stderr,
        })
    }

    fn sidecar_command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        // Only the flags below configure it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TOOLBRIDGE_") {
                command.env_remove(key);
            }
        }
        command.arg("--log-dir").arg(&self.log_dir);
        // The HTTP bridge, as measured before the replica existed; the
        // replica's sidecars turn it on by flag (`Paths::replica_on`). By
        // environment, so an older candidate build still starts.
        command.env("TOOLBRIDGE_REPLICA", "off");
        // For experiments (`--log-level warn`, ...); named in the report.
        if let Ok(extra) = std::env::var(EXTRA_ARGS_ENV) {
            command.args(extra.split_whitespace());
        }
        command
    }

    fn sidecar_remote(&self, binary: &Path, api_url: &str) -> Command {
        let mut command = self.sidecar_command(binary);
        command.args(["--api-url", api_url, "--token", "x", "--tenant-id", "t"]);
        command
    }

    fn candidate_remote(&self, api_url: &str) -> Option<Command> {
        let (binary, args) = self.candidate.as_ref()?;
        let mut command = self.sidecar_remote(binary, api_url);
        command.args(args);
        Some(command)
    }

    fn sidecar_embedded(&self, db_path: &Path) -> Command {
        let mut command = self.sidecar_command(&self.sidecar);
        command.arg("--db-path").arg(db_path);
        command
    }

    /// The same sidecar with the replica on, in `dir`; `max_staleness` in
    /// seconds, or `None` for the default.
    fn replica_on(mut command: Command, dir: &Path, max_staleness: Option<&str>) -> Command {
        command.args(["--replica", "on", "--replica-dir"]).arg(dir);
        if let Some(seconds) = max_staleness {
            command.args(["--max-staleness", seconds]);
        }
        command
    }

    fn floor(&self) -> Result<Command, BoxError> {
        let mut command = Command::new(std::env::current_exe()?);
        command.env(floor::ENV, "1");
        Ok(command)
    }
}

fn run() -> Result<(), BoxError> {
    let paths = Paths::new()?;
    client::start_watchdog();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let upstream = runtime.block_on(upstream::start())?;
    if let Ok(spec) = std::env::var(PROFILE_ENV) {
        return profile(&paths, &upstream, &spec);
    }
    let mut report = Report::new(&paths, &upstream);
    eprintln!("{}", report.header_line());

    let url = upstream.base_url();
    let mut sidecar = hot(
        "sidecar",
        paths.sidecar_remote(&paths.sidecar, &url),
        &paths.stderr,
    )?;
    let mut floor = hot("floor", paths.floor()?, &paths.stderr)?;
    let mut candidate = match paths.candidate_remote(&url) {
        Some(command) => Some(hot("candidate", command, &paths.stderr)?),
        None => None,
    };
    let mut replica = replica::hot_sidecar(&paths, &upstream)?;
    let mut direct = Direct {
        process: DirectProcess::spawn(&upstream.base_url(), &paths.stderr)?,
        in_process: DirectClient::new(&upstream.base_url())?,
        runtime: &runtime,
    };

    eprintln!("sidecar bench: latency at concurrency 1");
    measure_latency(
        &mut report,
        &mut direct,
        &mut floor,
        &mut sidecar,
        &mut replica,
        candidate.as_mut(),
    )?;
    eprintln!("sidecar bench: throughput at concurrency {CONCURRENCY:?}");
    measure_throughput(
        &mut report,
        &mut direct,
        &mut floor,
        &mut sidecar,
        candidate.as_mut(),
    )?;
    drop(direct);
    report.loaded_hwm_kib = memory_kib(sidecar.pid()).map(|(hwm, _)| hwm);
    report.hot_sessions = upstream.counters.sessions();
    sidecar.close(Duration::from_secs(10));
    floor.close(Duration::from_secs(10));
    replica.close(Duration::from_secs(10));
    if let Some(candidate) = candidate {
        candidate.close(Duration::from_secs(10));
    }

    let hot_only = std::env::var_os(HOT_ONLY_ENV).is_some();
    if !hot_only {
        eprintln!("sidecar bench: startup");
        measure_startup(&mut report, &paths, &upstream)?;
        eprintln!("sidecar bench: memory");
        measure_memory(&mut report, &paths, &upstream)?;
        report.replica = Some(replica::measure(&paths, &upstream, &runtime)?);
    }
    if hot_only {
        report.peer = PeerOutcome::Skipped(format!("{HOT_ONLY_ENV} is set"));
    } else if std::env::var_os(SKIP_PEER_ENV).is_some() {
        report.peer = PeerOutcome::Skipped(format!("{SKIP_PEER_ENV} is set"));
    } else {
        eprintln!("sidecar bench: FastMCP peer");
        report.peer = match peer::ensure_venv(&paths.bench_dir) {
            Ok(python) => measure_peer(&paths, &upstream, &python)?,
            Err(e) => PeerOutcome::Skipped(format!("cannot install it: {e}")),
        };
    }

    report.upstream_totals = (upstream.counters.notes(), upstream.counters.sessions());
    let markdown = report.markdown();
    println!("{markdown}");
    let json = serde_json::to_string_pretty(&report.json())?;
    std::fs::write(
        paths.bench_dir.join("report.md"),
        format!(
            "{markdown}\n<details><summary>JSON</summary>\n\n```json\n{json}\n```\n</details>\n"
        ),
    )?;
    std::fs::write(paths.bench_dir.join("report.json"), json + "\n")?;
    eprintln!(
        "sidecar bench: wrote {}",
        paths.bench_dir.join("report.md").display()
    );
    Ok(())
}

/// The profile mode: one sidecar, a warm-up, the hook, then the calls.
fn profile(paths: &Paths, upstream: &Upstream, spec: &str) -> Result<(), BoxError> {
    let (calls, concurrency) = spec.split_once('@').unwrap_or((spec, "1"));
    let (calls, concurrency): (usize, usize) = (calls.trim().parse()?, concurrency.trim().parse()?);
    let url = upstream.base_url();
    let command = paths
        .candidate_remote(&url)
        .unwrap_or_else(|| paths.sidecar_remote(&paths.sidecar, &url));
    let mut sidecar = hot("profiled sidecar", command, &paths.stderr)?;
    check(sidecar.call_loop(concurrency, 0, 500)?, "warm-up")?;
    let pid = sidecar.pid();
    if let Ok(hook) = std::env::var(PROFILE_HOOK_ENV) {
        let status = Command::new("sh")
            .args(["-c", &hook])
            .env("PID", pid.to_string())
            .status()?;
        eprintln!("sidecar bench: hook `{hook}`: {status}");
    }
    let before = usage(pid);
    let result = check(
        sidecar.call_loop(concurrency, 0, calls)?,
        "profiled sidecar",
    )?;
    let spent = usage(pid) - before;
    let latencies = sorted(result.latencies);
    println!(
        "{calls} calls, {concurrency} in flight: {:.0} calls/s, median {} µs, p99 {} µs, \
         CPU {:.1} µs/call, {:.2} context switches/call",
        result.per_sec,
        us(percentile(&latencies, 0.5)),
        us(percentile(&latencies, 0.99)),
        spent.cpu.as_secs_f64() * 1e6 / calls as f64,
        spent.switches as f64 / calls as f64,
    );
    sidecar.close(Duration::from_secs(120));
    Ok(())
}

/// A process initialized and checked with one real `get_note` call.
fn hot(name: &str, command: Command, stderr: &Path) -> Result<McpProcess, BoxError> {
    let mut process = McpProcess::spawn(name, command, stderr)?;
    process.initialize()?;
    process.set_call("get_note", note_arguments());
    let reply = process.call_checked()?;
    let uid = reply
        .pointer("/result/structuredContent/uid")
        .and_then(Value::as_str);
    if uid != Some(NOTE_UID) {
        return Err(format!("{name}: unexpected get_note result: {reply}").into());
    }
    Ok(process)
}

fn check(result: LoopResult, what: &str) -> Result<LoopResult, BoxError> {
    if result.errors > 0 {
        return Err(format!("{what}: {} calls failed", result.errors).into());
    }
    Ok(result)
}

/// The two direct-HTTP clients.
struct Direct<'a> {
    /// In its own process, as the sidecar's client is.
    process: DirectProcess,
    /// On the upstream's runtime in the bench process.
    in_process: DirectClient,
    runtime: &'a tokio::runtime::Runtime,
}

impl Direct<'_> {
    fn call_loops(
        &mut self,
        concurrency: usize,
        warmup: usize,
        measured: usize,
    ) -> Result<(LoopResult, LoopResult), BoxError> {
        let process = check(
            self.process.call_loop(concurrency, warmup, measured)?,
            "direct (own process)",
        )?;
        let in_process = check(
            self.in_process
                .call_loop(self.runtime, concurrency, warmup, measured),
            "direct (in-process)",
        )?;
        Ok((process, in_process))
    }
}

fn measure_latency(
    report: &mut Report,
    direct: &mut Direct,
    floor: &mut McpProcess,
    sidecar: &mut McpProcess,
    replica: &mut McpProcess,
    mut candidate: Option<&mut McpProcess>,
) -> Result<(), BoxError> {
    let calls = LATENCY_WARMUP + LATENCY_CALLS;
    for _ in 0..LATENCY_ROUNDS {
        let (d, di) = report.costed(DIRECT, 1, direct.process.pid(), calls, || {
            direct.call_loops(1, LATENCY_WARMUP, LATENCY_CALLS)
        })?;
        let f = report.costed(FLOOR, 1, floor.pid(), calls, || {
            check(floor.call_loop(1, LATENCY_WARMUP, LATENCY_CALLS)?, "floor")
        })?;
        let s = report.costed(SIDECAR, 1, sidecar.pid(), calls, || {
            check(
                sidecar.call_loop(1, LATENCY_WARMUP, LATENCY_CALLS)?,
                "sidecar",
            )
        })?;
        report.latency.direct.push_round(d.latencies);
        report.latency.direct_in_process.push_round(di.latencies);
        report.latency.floor.push_round(f.latencies);
        let r = report.costed(REPLICA, 1, replica.pid(), calls, || {
            check(
                replica.call_loop(1, LATENCY_WARMUP, LATENCY_CALLS)?,
                "replica sidecar",
            )
        })?;
        report.latency.sidecar.push_round(s.latencies);
        report.latency.replica.push_round(r.latencies);
        if let Some(c) = candidate.as_deref_mut() {
            let c = report.costed(CANDIDATE, 1, c.pid(), calls, || {
                check(c.call_loop(1, LATENCY_WARMUP, LATENCY_CALLS)?, "candidate")
            })?;
            report.latency.candidate.push_round(c.latencies);
        }
    }
    Ok(())
}

fn throughput_counts(concurrency: usize) -> (usize, usize) {
    match concurrency {
        1 => (300, 3_000),
        2..=8 => (1_000, 10_000),
        _ => (2_000, 20_000),
    }
}

fn measure_throughput(
    report: &mut Report,
    direct: &mut Direct,
    floor: &mut McpProcess,
    sidecar: &mut McpProcess,
    mut candidate: Option<&mut McpProcess>,
) -> Result<(), BoxError> {
    for concurrency in CONCURRENCY {
        let (warmup, measured) = throughput_counts(concurrency);
        let mut row = ThroughputRow {
            concurrency,
            ..ThroughputRow::default()
        };
        let calls = warmup + measured;
        for _ in 0..THROUGHPUT_REPS {
            let (d, di) =
                report.costed(DIRECT, concurrency, direct.process.pid(), calls, || {
                    direct.call_loops(concurrency, warmup, measured)
                })?;
            let f = report.costed(FLOOR, concurrency, floor.pid(), calls, || {
                check(floor.call_loop(concurrency, warmup, measured)?, "floor")
            })?;
            let s = report.costed(SIDECAR, concurrency, sidecar.pid(), calls, || {
                check(sidecar.call_loop(concurrency, warmup, measured)?, "sidecar")
            })?;
            row.direct.push(d.per_sec);
            row.direct_in_process.push(di.per_sec);
            row.floor.push(f.per_sec);
            row.sidecar.push(s.per_sec);
            row.sidecar_p50.push(percentile(&sorted(s.latencies), 0.5));
            if let Some(c) = candidate.as_deref_mut() {
                let c = report.costed(CANDIDATE, concurrency, c.pid(), calls, || {
                    check(c.call_loop(concurrency, warmup, measured)?, "candidate")
                })?;
                row.candidate.push(c.per_sec);
            }
        }
        report.throughput.push(row);
    }
    Ok(())
}

/// Launches `make(i)` once unmeasured, then [`STARTUP_RUNS`] times: spawn →
/// `initialize` reply, spawn → first `tools/list` reply, and stdin EOF → exit.
fn startup_runs(
    name: &str,
    stderr: &Path,
    mut make: impl FnMut(usize) -> Result<Command, BoxError>,
) -> Result<StartupRow, BoxError> {
    let mut row = StartupRow {
        name: name.to_owned(),
        ..StartupRow::default()
    };
    for i in 0..=STARTUP_RUNS {
        let mut process = McpProcess::spawn(name, make(i)?, stderr)?;
        process.initialize()?;
        let initialized = process.last_reply_at() - process.spawned_at;
        let tools = process.list_tools()?;
        let listed = process.last_reply_at() - process.spawned_at;
        row.tools = tools
            .pointer("/result/tools")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if row.tools == 0 {
            return Err(format!("{name}: tools/list returned no tools: {tools}").into());
        }
        let exit = process.close(Duration::from_secs(10));
        if i > 0 {
            row.initialize.push(initialized);
            row.tools_list.push(listed);
            row.exit.push(exit);
        }
    }
    Ok(row)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

fn measure_startup(
    report: &mut Report,
    paths: &Paths,
    upstream: &Upstream,
) -> Result<(), BoxError> {
    let url = upstream.base_url();
    report.startup.push(startup_runs(
        "sidecar, remote upstream",
        &paths.stderr,
        |_| Ok(paths.sidecar_remote(&paths.sidecar, &url)),
    )?);
    // The warm-up launch creates the database; the measured ones open it, as
    // every launch after a user's first does.
    let db = paths.bench_dir.join("embedded.db");
    remove_db(&db);
    report.startup.push(startup_runs(
        "sidecar, embedded API (existing db)",
        &paths.stderr,
        |_| Ok(paths.sidecar_embedded(&db)),
    )?);
    report.startup.push(startup_runs(
        "sidecar, embedded API (new db file)",
        &paths.stderr,
        |i| {
            let db = paths.bench_dir.join(format!("embedded-new-{i}.db"));
            remove_db(&db);
            Ok(paths.sidecar_embedded(&db))
        },
    )?);
    for i in 0..=STARTUP_RUNS {
        remove_db(&paths.bench_dir.join(format!("embedded-new-{i}.db")));
    }
    report.startup.push(startup_runs(
        "floor (minimal rmcp server)",
        &paths.stderr,
        |_| paths.floor(),
    )?);
    Ok(())
}

fn measure_memory(report: &mut Report, paths: &Paths, upstream: &Upstream) -> Result<(), BoxError> {
    let mut sidecar = McpProcess::spawn(
        "sidecar",
        paths.sidecar_remote(&paths.sidecar, &upstream.base_url()),
        &paths.stderr,
    )?;
    sidecar.initialize()?;
    sidecar.list_tools()?;
    std::thread::sleep(Duration::from_millis(200));
    let pid = sidecar.pid();
    report.memory.idle = memory_kib(pid);
    sidecar.set_call("get_note", note_arguments());
    let batches = if std::env::var_os(SKIP_100K_ENV).is_some() {
        report.memory.long_run_skipped = true;
        1
    } else {
        MEMORY_BATCHES
    };
    for batch in 1..=batches {
        let started = Instant::now();
        check(sidecar.call_loop(1, 0, MEMORY_BATCH)?, "sidecar")?;
        let (hwm, rss) = memory_kib(pid).ok_or("cannot read /proc/PID/status")?;
        report.memory.samples.push(MemorySample {
            calls: batch * MEMORY_BATCH,
            hwm_kib: hwm,
            rss_kib: rss,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    sidecar.close(Duration::from_secs(10));
    Ok(())
}

fn measure_peer(
    paths: &Paths,
    upstream: &Upstream,
    python: &Path,
) -> Result<PeerOutcome, BoxError> {
    let url = upstream.base_url();
    let versions = peer::versions(python);
    let startup = startup_runs("FastMCP peer", &paths.stderr, |_| {
        Ok(peer::command(python, &url))
    })?;
    let mut process = McpProcess::spawn("peer", peer::command(python, &url), &paths.stderr)?;
    process.initialize()?;
    process.list_tools()?;
    process.set_call("get_note", note_arguments());
    let reply = process.call_checked()?;
    if !reply.to_string().contains(NOTE_UID) {
        return Err(format!("peer: unexpected get_note result: {reply}").into());
    }
    std::thread::sleep(Duration::from_millis(200));
    let idle = memory_kib(process.pid());
    let sessions_before = upstream.counters.sessions();
    let calls = check(process.call_loop(1, PEER_WARMUP, PEER_CALLS)?, "peer")?;
    let sessions = upstream.counters.sessions() - sessions_before;
    let after = memory_kib(process.pid());
    process.close(Duration::from_secs(10));
    Ok(PeerOutcome::Measured(Box::new(PeerFigures {
        versions,
        startup,
        latency: Samples::from_latencies(calls.latencies),
        calls_per_sec: calls.per_sec,
        idle,
        after,
        sessions_per_call: sessions as f64 / (PEER_WARMUP + PEER_CALLS) as f64,
    })))
}
