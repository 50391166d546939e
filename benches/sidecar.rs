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

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

#[path = "sidecar/children.rs"]
mod children;
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

use children::{DirectClient, DirectProcess};
use common::fast_upstream::{self, FastUpstream, NOTE_UID};
use common::{CallLoop, Launch, McpProcess};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SKIP_100K_ENV: &str = "SIDECAR_BENCH_SKIP_100K";
const SKIP_PEER_ENV: &str = "SIDECAR_BENCH_SKIP_PEER";
const HOT_ONLY_ENV: &str = "SIDECAR_BENCH_HOT_ONLY";
const EXTRA_ARGS_ENV: &str = "SIDECAR_BENCH_SIDECAR_ARGS";
const CANDIDATE_ENV: &str = "SIDECAR_BENCH_CANDIDATE";
const PROFILE_ENV: &str = "SIDECAR_BENCH_PROFILE";
const PROFILE_HOOK_ENV: &str = "SIDECAR_BENCH_PROFILE_HOOK";

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
        let dir = sidecar
            .parent()
            .and_then(Path::parent)
            .ok_or("no target dir")?
            .join("bench");
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
        launch
            .env("TOOLBRIDGE_LOG", "info")
            .log_dir(&self.logs)
            .args(&extra)
    }

    /// The HTTP bridge on the stand-in (the replica off, as `Launch::remote`).
    pub fn remote(&self, url: &str) -> Launch {
        self.sidecar(Launch::remote(url))
    }

    fn candidate(&self, url: &str) -> Option<Launch> {
        let spec = std::env::var(CANDIDATE_ENV).ok()?;
        let mut words = spec.split_whitespace();
        let binary = PathBuf::from(words.next()?);
        Some(
            self.remote(url)
                .program(&binary)
                .args(&words.collect::<Vec<_>>()),
        )
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
    if let Ok(spec) = std::env::var(PROFILE_ENV) {
        return profile(&paths, &upstream, &spec).await;
    }
    let mut table = Table::new(&paths);
    eprintln!("sidecar bench: {}", table.header);
    let hot_only = std::env::var_os(HOT_ONLY_ENV).is_some();
    hot_paths(&mut table, &paths, &upstream).await?;
    if !hot_only {
        eprintln!("sidecar bench: startup and memory");
        startup_and_memory(&mut table, &paths, &upstream).await?;
        replica::measure(&mut table, &paths, &upstream).await?;
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
    eprintln!(
        "sidecar bench: wrote {}",
        paths.dir.join("report.md").display()
    );
    Ok(())
}

/// The profile mode: one sidecar (the candidate when set: a `perf record`
/// wrapper), a warm-up, the hook, then `CALLS@IN_FLIGHT` calls.
async fn profile(paths: &Paths, upstream: &FastUpstream, spec: &str) -> Result<(), BoxError> {
    let (calls, in_flight) = spec.split_once('@').unwrap_or((spec, "1"));
    let (calls, in_flight): (usize, usize) = (calls.trim().parse()?, in_flight.trim().parse()?);
    let launch = paths
        .candidate(&upstream.url)
        .unwrap_or_else(|| paths.remote(&upstream.url));
    let mut sidecar = hot(launch, ("get_note", note_args())).await;
    checked(
        sidecar
            .call_loop("get_note", note_args(), in_flight, 500, 0)
            .await,
        "warm-up",
    )?;
    if let Ok(hook) = std::env::var(PROFILE_HOOK_ENV) {
        let pid = sidecar.pid().to_string();
        let status = std::process::Command::new("sh")
            .args(["-c", &hook])
            .env("PID", pid)
            .status()?;
        eprintln!("sidecar bench: hook `{hook}`: {status}");
    }
    let before = usage(sidecar.pid());
    let run = checked(
        sidecar
            .call_loop("get_note", note_args(), in_flight, 0, calls)
            .await,
        "profile",
    )?;
    let Usage(cpu, switches) = usage(sidecar.pid()).minus(before);
    let s = Samples::from(run.latencies);
    println!(
        "{calls} calls, {in_flight} in flight: {:.0} calls/s, median {}, p99 {}, CPU {:.1} µs/call, {:.2} switches/call",
        run.per_sec,
        us(s.p(0.5)),
        us(s.p(0.99)),
        cpu.as_secs_f64() * 1e6 / calls as f64,
        switches as f64 / calls as f64
    );
    sidecar.shutdown().await;
    Ok(())
}

/// Who a cost or a latency is of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Who {
    Direct,
    Floor,
    Sidecar,
    Replica,
    Candidate,
    DirectCreate,
    SidecarCreate,
    CandidateCreate,
}

/// The sidecar, the floor, the replica sidecar, the candidate and direct
/// HTTP: per-call latency in interleaved rounds, then throughput, with the
/// CPU each process spends per call.
async fn hot_paths(
    table: &mut Table,
    paths: &Paths,
    upstream: &FastUpstream,
) -> Result<(), BoxError> {
    let url = &upstream.url;
    let mut sidecar = hot(paths.remote(url), ("get_note", note_args())).await;
    let mut floor = hot(paths.floor()?, ("get_note", note_args())).await;
    let mut replica = replica::hot_sidecar(paths, upstream).await?;
    let mut candidate = match paths.candidate(url) {
        Some(launch) => Some(hot(launch, ("get_note", note_args())).await),
        None => None,
    };
    let mut direct = DirectProcess::spawn(url)?;
    let in_process = DirectClient::new(url)?;
    let mut latency: HashMap<Who, Vec<Duration>> = HashMap::new();
    let mut in_process_latency = Vec::new();
    let mut costs = Costs::default();
    eprintln!("sidecar bench: latency at 1 in flight, {ROUNDS} rounds");
    for _ in 0..ROUNDS {
        for (who, create) in [(Who::Direct, false), (Who::DirectCreate, true)] {
            let before = usage(direct.pid());
            let run = checked(direct.call_loop(create, 1, WARMUP, CALLS).await?, "direct")?;
            costs.add(who, 1, usage(direct.pid()).minus(before), WARMUP + CALLS);
            latency.entry(who).or_default().extend(run.latencies);
        }
        in_process_latency.extend(
            in_process
                .call_loop(false, 1, WARMUP, CALLS)
                .await
                .latencies,
        );
        let mut mcp: Vec<(&mut McpProcess, Vec<(Who, &str, Value)>)> = vec![
            (&mut floor, vec![(Who::Floor, "get_note", note_args())]),
            (
                &mut sidecar,
                vec![
                    (Who::Sidecar, "get_note", note_args()),
                    (Who::SidecarCreate, "create_note", create_args()),
                ],
            ),
            (&mut replica, vec![(Who::Replica, "get_note", note_args())]),
        ];
        if let Some(c) = candidate.as_mut() {
            let calls = vec![
                (Who::Candidate, "get_note", note_args()),
                (Who::CandidateCreate, "create_note", create_args()),
            ];
            mcp.push((c, calls));
        }
        for (process, calls) in mcp {
            for (who, tool, args) in calls {
                let before = usage(process.pid());
                let run = checked(process.call_loop(tool, args, 1, WARMUP, CALLS).await, tool)?;
                costs.add(who, 1, usage(process.pid()).minus(before), WARMUP + CALLS);
                latency.entry(who).or_default().extend(run.latencies);
            }
        }
    }
    let p50 = |who: Who| {
        latency
            .get(&who)
            .map(|l| Samples::from(l.clone()))
            .unwrap_or_default()
    };
    let (d, f, s) = (p50(Who::Direct), p50(Who::Floor), p50(Who::Sidecar));
    table.section(&format!(
        "`get_note` at 1 in flight: median (p99) of {} calls",
        ROUNDS * CALLS
    ));
    let in_process = Samples::from(in_process_latency);
    table.latency("direct HTTP (pooled reqwest in its own process)", &d, "");
    table.row(
        "direct HTTP on the stand-in's runtime (in-process)",
        us(in_process.p(0.5)),
        "",
        None,
    );
    table.latency("protocol floor (minimal rmcp stdio server, no I/O)", &f, "");
    let two_hops = f.p(0.5) + d.p(0.5);
    let over = ratio(s.p(0.5), two_hops);
    table.row(
        "**sidecar** (MCP stdio → HTTP)",
        format!(
            "{} ({}); {over:.2}× floor + direct, {:.2}× direct",
            us(s.p(0.5)),
            us(s.p(0.99)),
            ratio(s.p(0.5), d.p(0.5))
        ),
        "< 1.3× direct (out of reach: floor + direct alone is more)",
        Some(ratio(s.p(0.5), d.p(0.5)) < 1.3),
    );
    table.record("get_note_c1", json!({"direct": d.json(), "direct_in_process": in_process.json(), "floor": f.json(), "sidecar": s.json()}));
    let r = p50(Who::Replica);
    let over_floor = (r.p(0.5).as_secs_f64() - f.p(0.5).as_secs_f64()) * 1e6;
    table.row(
        "sidecar from its local replica (MCP stdio → SQLite)",
        format!(
            "{} ({}); {:.2}× direct, {over_floor:+.1} µs over the floor",
            us(r.p(0.5)),
            us(r.p(0.99)),
            ratio(r.p(0.5), d.p(0.5))
        ),
        "below direct, within 30 µs of the floor",
        Some(r.p(0.5) < d.p(0.5) && over_floor <= 30.0),
    );
    table.record("get_note_c1_replica", r.json());
    let (dc, sc) = (p50(Who::DirectCreate), p50(Who::SidecarCreate));
    let write_two_hops = f.p(0.5) + dc.p(0.5);
    table.section("`create_note` at 1 in flight: median (p99)");
    table.latency("direct HTTP `POST /v1/notes`", &dc, "");
    let write_over = ratio(sc.p(0.5), write_two_hops);
    table.row(
        "**sidecar** `create_note`",
        format!(
            "{} ({}); {write_over:.2}× floor + direct",
            us(sc.p(0.5)),
            us(sc.p(0.99))
        ),
        "≤ 1.2× floor + direct",
        Some(write_over <= 1.2),
    );
    table.record(
        "create_note_c1",
        json!({"direct": dc.json(), "sidecar": sc.json()}),
    );
    if candidate.is_some() {
        let (c, cc) = (p50(Who::Candidate), p50(Who::CandidateCreate));
        let name = std::env::var(CANDIDATE_ENV).unwrap_or_default();
        let measured = format!(
            "`get_note` {} ({:.2}× the sidecar), `create_note` {} ({:.2}×)",
            us(c.p(0.5)),
            ratio(c.p(0.5), s.p(0.5)),
            us(cc.p(0.5)),
            ratio(cc.p(0.5), sc.p(0.5))
        );
        table.row(&format!("candidate `{name}`"), measured, "", None);
        table.record(
            "candidate_c1",
            json!({"get_note": c.json(), "create_note": cc.json()}),
        );
    }

    eprintln!("sidecar bench: throughput at {IN_FLIGHT:?} in flight");
    let mut rates: HashMap<(Who, usize), Vec<f64>> = HashMap::new();
    for in_flight in IN_FLIGHT {
        let (warmup, measured) = match in_flight {
            1 => (300, 3_000),
            8 => (1_000, 10_000),
            _ => (2_000, 20_000),
        };
        for _ in 0..THROUGHPUT_REPS {
            let before = usage(direct.pid());
            let run = checked(
                direct.call_loop(false, in_flight, warmup, measured).await?,
                "direct",
            )?;
            costs.add(
                Who::Direct,
                in_flight,
                usage(direct.pid()).minus(before),
                warmup + measured,
            );
            rates
                .entry((Who::Direct, in_flight))
                .or_default()
                .push(run.per_sec);
            let mut mcp = vec![(Who::Floor, &mut floor), (Who::Sidecar, &mut sidecar)];
            if let Some(c) = candidate.as_mut() {
                mcp.push((Who::Candidate, c));
            }
            for (who, process) in mcp {
                let before = usage(process.pid());
                let run = checked(
                    process
                        .call_loop("get_note", note_args(), in_flight, warmup, measured)
                        .await,
                    "get_note",
                )?;
                costs.add(
                    who,
                    in_flight,
                    usage(process.pid()).minus(before),
                    warmup + measured,
                );
                rates.entry((who, in_flight)).or_default().push(run.per_sec);
            }
        }
    }
    let rate = |who: Who, n: usize| rates.get(&(who, n)).map_or(f64::NAN, |r| median(r));
    table.section(
        "`get_note` throughput, calls/s (median of 3), and CPU µs (context switches) per call",
    );
    for in_flight in IN_FLIGHT {
        let cost = |who: Who| {
            costs
                .per_call(who, in_flight)
                .map_or("–".into(), |(cpu, sw)| format!("{cpu:.1} µs ({sw:.2})"))
        };
        let (s_rate, d_rate) = (rate(Who::Sidecar, in_flight), rate(Who::Direct, in_flight));
        let mut measured = format!(
            "sidecar {s_rate:.0}, direct {d_rate:.0}, floor {:.0}; CPU: sidecar {}, direct {}, floor {}",
            rate(Who::Floor, in_flight),
            cost(Who::Sidecar),
            cost(Who::Direct),
            cost(Who::Floor)
        );
        if candidate.is_some() {
            write!(
                measured,
                "; candidate {:.0}, {}",
                rate(Who::Candidate, in_flight),
                cost(Who::Candidate)
            )?;
        }
        let (goal, met) = match in_flight {
            64 => ("≥ 0.8× direct", Some(s_rate >= 0.8 * d_rate)),
            _ => ("", None),
        };
        table.row(&format!("{in_flight} in flight"), measured, goal, met);
    }
    if let (Some((s, _)), Some((f, _)), Some((d, _))) = (
        costs.per_call(Who::Sidecar, 1),
        costs.per_call(Who::Floor, 1),
        costs.per_call(Who::Direct, 1),
    ) {
        let (sc, _) = costs.per_call(Who::SidecarCreate, 1).unwrap_or_default();
        let (rc, _) = costs.per_call(Who::Replica, 1).unwrap_or_default();
        table.row(
            "**sidecar CPU per `get_note`** at 1 in flight",
            format!("{s:.1} µs: {:.2}× floor + direct ({:.1} µs beyond them); `create_note` {sc:.1} µs; from the replica {rc:.1} µs", s / (f + d), s - f - d),
            "≤ 1.5× floor + direct",
            Some(s <= 1.5 * (f + d)),
        );
    }
    table.record(
        "throughput",
        json!(
            rates
                .iter()
                .map(|((w, n), r)| json!({"who": format!("{w:?}"), "in_flight": n, "per_sec": r}))
                .collect::<Vec<_>>()
        ),
    );
    table.record("cpu_per_call", costs.json());
    table.record(
        "sessions_opened",
        json!(fast_upstream::Counters::get(&upstream.counters.sessions)),
    );
    if let Some((hwm, _)) = memory_kib(sidecar.pid()) {
        table.record("hot_sidecar_peak_rss_kib", json!(hwm));
    }
    drop(direct);
    for process in [Some(sidecar), Some(floor), Some(replica), candidate]
        .into_iter()
        .flatten()
    {
        process.shutdown().await;
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
        assert!(
            tools.pointer("/result/tools/0").is_some(),
            "tools/list: {tools}"
        );
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
    let configurations: [(&str, &str, Box<dyn Fn(usize) -> Launch + Send + Sync>); 4] = [
        (
            "sidecar, remote upstream",
            "< 15 ms",
            Box::new(|_| paths.remote(&upstream.url)),
        ),
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
        let limit: Option<f64> = goal
            .trim_start_matches("< ")
            .trim_end_matches(" ms")
            .parse()
            .ok();
        table.row(
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
    let idle = memory_kib(sidecar.pid()).ok_or("no /proc/PID/status")?;
    let batches = if std::env::var_os(SKIP_100K_ENV).is_some() {
        1
    } else {
        10
    };
    let mut hwm = Vec::new();
    for _ in 0..batches {
        checked(
            sidecar
                .call_loop("get_note", note_args(), 1, 0, MEMORY_BATCH)
                .await,
            "memory",
        )?;
        hwm.push(memory_kib(sidecar.pid()).ok_or("no /proc/PID/status")?.0);
    }
    sidecar.shutdown().await;
    table.section("Memory, peak RSS (`VmHWM`)");
    table.row(
        "idle, after `initialize` and `tools/list`",
        mib(idle.0),
        "",
        None,
    );
    table.row(
        "after 10,000 `get_note` calls",
        mib(hwm[0]),
        "< 20 MiB",
        Some(hwm[0] < 20 * 1024),
    );
    // From the 20,000-call sample: the first 10,000 include the warm-up of
    // the allocator and the pool.
    let growth = (hwm.len() > 2).then(|| hwm[hwm.len() - 1] as i64 - hwm[1] as i64);
    let measured = growth.map_or(format!("not run ({SKIP_100K_ENV})"), |g| {
        format!("{g:+} KiB from 20,000 calls")
    });
    table.row(
        "over 100,000 calls",
        measured,
        "flat (≤ 1,024 KiB)",
        Some(growth.is_some_and(|g| g <= 1024)),
    );
    table.record(
        "memory_kib",
        json!({"idle": idle.0, "hwm_per_10k_calls": hwm}),
    );
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
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .ok()?;
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
            std::env::var(EXTRA_ARGS_ENV)
                .map(|a| format!(" with `{a}`"))
                .unwrap_or_default(),
        );
        let json =
            json!({"header": header, "date": date, "cores": cores, "load": load, "commit": commit});
        let Value::Object(json) = json else {
            unreachable!()
        };
        Self {
            header,
            rows: Vec::new(),
            json,
        }
    }

    pub fn section(&mut self, title: &str) {
        self.rows.push([
            format!("**{title}**"),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    pub fn row(
        &mut self,
        figure: &str,
        measured: impl Into<String>,
        goal: &str,
        met: Option<bool>,
    ) {
        let verdict = met.map_or("", |m| if m { "met" } else { "**missed**" });
        self.rows.push([
            figure.to_owned(),
            measured.into(),
            goal.to_owned(),
            verdict.to_owned(),
        ]);
    }

    fn latency(&mut self, figure: &str, s: &Samples, goal: &str) {
        self.row(
            figure,
            format!("{} ({})", us(s.p(0.5)), us(s.p(0.99))),
            goal,
            None,
        );
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
        self.0
            .get(rank.clamp(1, self.0.len().max(1)) - 1)
            .copied()
            .unwrap_or_default()
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

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
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
        Usage(
            self.0.saturating_sub(earlier.0),
            self.1.saturating_sub(earlier.1),
        )
    }
}

fn usage(pid: u32) -> Usage {
    let mut total = Usage::default();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok());
        total.0 += Duration::from_nanos(ns.unwrap_or(0));
        let status = read("status");
        let switches = status.lines().filter(|l| l.contains("ctxt_switches:"));
        total.1 += switches
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// What each process spent, by who and calls in flight.
#[derive(Default)]
struct Costs(HashMap<(Who, usize), (Usage, usize)>);

impl Costs {
    fn add(&mut self, who: Who, in_flight: usize, spent: Usage, calls: usize) {
        let (usage, n) = self.0.entry((who, in_flight)).or_default();
        *usage = Usage(usage.0 + spent.0, usage.1 + spent.1);
        *n += calls;
    }

    /// CPU µs and context switches per call.
    fn per_call(&self, who: Who, in_flight: usize) -> Option<(f64, f64)> {
        let (usage, n) = self.0.get(&(who, in_flight))?;
        let n = *n as f64;
        Some((usage.0.as_secs_f64() * 1e6 / n, usage.1 as f64 / n))
    }

    fn json(&self) -> Value {
        let rows = self.0.keys().map(|&(who, n)| {
            let (cpu, switches) = self.per_call(who, n).unwrap_or_default();
            json!({"who": format!("{who:?}"), "in_flight": n, "cpu_us": cpu, "switches": switches})
        });
        json!(rows.collect::<Vec<_>>())
    }
}

/// Peak and current resident set in KiB (`VmHWM`, `VmRSS`).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
