//! The figures a run collects, and the report made of them: the markdown
//! table printed and written to `target/bench/report.md`, and its JSON.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Usage, usage};
use crate::upstream::Upstream;
use crate::{
    BoxError, CANDIDATE_ENV, CONCURRENCY, EXTRA_ARGS_ENV, LATENCY_CALLS, LATENCY_ROUNDS,
    LATENCY_WARMUP, MEMORY_BATCH, PEER_CALLS, PEER_WARMUP, Paths, SKIP_100K_ENV, STARTUP_RUNS,
    THROUGHPUT_REPS,
};

/// Who a [`Cost`] is of.
pub const DIRECT: &str = "direct";
pub const FLOOR: &str = "floor";
pub const SIDECAR: &str = "sidecar";
pub const CANDIDATE: &str = "candidate";
/// The sidecar answering `get_note` from its local replica.
pub const REPLICA: &str = "replica";

/// CPU time and context switches one process spent over some calls.
#[derive(Default, Clone, Copy)]
pub struct Cost {
    pub usage: Usage,
    pub calls: u64,
}

impl Cost {
    pub fn cpu_us(&self) -> f64 {
        self.usage.cpu.as_secs_f64() * 1e6 / self.calls.max(1) as f64
    }

    pub fn switches(&self) -> f64 {
        self.usage.switches as f64 / self.calls.max(1) as f64
    }
}

/// Latency samples, pooled over rounds, with each round's median kept.
#[derive(Default)]
pub struct Samples {
    pub all: Vec<Duration>,
    pub round_medians: Vec<Duration>,
}

impl Samples {
    pub fn push_round(&mut self, latencies: Vec<Duration>) {
        let round = sorted(latencies);
        self.round_medians.push(percentile(&round, 0.5));
        self.all.extend(round);
        self.all.sort_unstable();
    }

    pub fn from_latencies(latencies: Vec<Duration>) -> Self {
        let mut samples = Self::default();
        samples.push_round(latencies);
        samples
    }

    pub fn p(&self, q: f64) -> Duration {
        percentile(&self.all, q)
    }

    pub fn mean(&self) -> Duration {
        let total: Duration = self.all.iter().sum();
        total / self.all.len().max(1) as u32
    }
}

pub fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort_unstable();
    v
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// When the machine is saturated, CPU per call adds up: a bridge that did
/// both hops and nothing else would reach about 1 / (1/direct + 1/floor).
pub fn two_hops_throughput(row: &ThroughputRow) -> f64 {
    1.0 / (1.0 / median_f64(&row.direct) + 1.0 / median_f64(&row.floor))
}

pub fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn median_duration(values: &[Duration]) -> Duration {
    let v = sorted(values.to_vec());
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

#[derive(Default)]
pub struct Latency {
    pub direct: Samples,
    pub direct_in_process: Samples,
    pub floor: Samples,
    pub sidecar: Samples,
    /// `get_note` answered from the local replica.
    pub replica: Samples,
    pub candidate: Samples,
}

#[derive(Default)]
pub struct ThroughputRow {
    pub concurrency: usize,
    pub direct: Vec<f64>,
    pub direct_in_process: Vec<f64>,
    pub floor: Vec<f64>,
    pub sidecar: Vec<f64>,
    pub sidecar_p50: Vec<Duration>,
    pub candidate: Vec<f64>,
}

#[derive(Default)]
pub struct StartupRow {
    pub name: String,
    pub tools: usize,
    pub initialize: Vec<Duration>,
    pub tools_list: Vec<Duration>,
    pub exit: Vec<Duration>,
}

pub struct MemorySample {
    pub calls: usize,
    pub hwm_kib: u64,
    pub rss_kib: u64,
    pub seconds: f64,
}

#[derive(Default)]
pub struct Memory {
    pub idle: Option<(u64, u64)>,
    pub samples: Vec<MemorySample>,
    pub long_run_skipped: bool,
}

impl Memory {
    pub fn at(&self, calls: usize) -> Option<&MemorySample> {
        self.samples.iter().find(|s| s.calls == calls)
    }

    /// Peak RSS growth from the 20,000-call sample to the last one (the first
    /// 10,000 calls include allocator and pool warm-up).
    pub fn growth_kib(&self) -> Option<i64> {
        let first = self.at(2 * MEMORY_BATCH)?;
        let last = self.samples.last()?;
        (last.calls > first.calls).then(|| last.hwm_kib as i64 - first.hwm_kib as i64)
    }
}

/// Growth of peak RSS over the long run that still counts as flat.
pub const FLAT_KIB: i64 = 1024;

pub struct PeerFigures {
    pub versions: String,
    pub startup: StartupRow,
    pub latency: Samples,
    pub calls_per_sec: f64,
    pub idle: Option<(u64, u64)>,
    pub after: Option<(u64, u64)>,
    pub sessions_per_call: f64,
}

pub enum PeerOutcome {
    Measured(Box<PeerFigures>),
    Skipped(String),
}

pub struct Report {
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub load: String,
    pub commit: String,
    pub binary: String,
    pub binary_bytes: u64,
    pub candidate: Option<String>,
    pub note_bytes: usize,
    pub latency: Latency,
    pub throughput: Vec<ThroughputRow>,
    /// (who, concurrency, cost) from the latency and throughput runs.
    pub costs: Vec<(&'static str, usize, Cost)>,
    pub loaded_hwm_kib: Option<u64>,
    pub hot_sessions: u64,
    /// Note reads and session opens the upstream served in the whole run.
    pub upstream_totals: (u64, u64),
    pub startup: Vec<StartupRow>,
    pub memory: Memory,
    /// The local replica's figures, but its `get_note` latency (`None`: not run).
    pub replica: Option<crate::replica::Figures>,
    pub peer: PeerOutcome,
}

pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// `100000` as `100,000`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**MISSED**" }
}

pub fn sh(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Report {
    pub fn new(paths: &Paths, upstream: &Upstream) -> Self {
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        let date = time::OffsetDateTime::now_utc()
            .format(&format)
            .unwrap_or_default();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let dir = env!("CARGO_MANIFEST_DIR");
        let commit = match sh("git", &["-C", dir, "rev-parse", "--short", "HEAD"]) {
            Some(hash) => {
                let dirty =
                    sh("git", &["-C", dir, "status", "--porcelain"]).is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{hash} + uncommitted changes")
                } else {
                    hash
                }
            }
            None => "unknown".into(),
        };
        Self {
            date,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            load,
            commit,
            binary: paths.sidecar.display().to_string(),
            binary_bytes: std::fs::metadata(&paths.sidecar).map_or(0, |m| m.len()),
            candidate: std::env::var(CANDIDATE_ENV).ok(),
            note_bytes: upstream.note_bytes,
            latency: Latency::default(),
            throughput: Vec::new(),
            costs: Vec::new(),
            loaded_hwm_kib: None,
            hot_sessions: 0,
            upstream_totals: (0, 0),
            startup: Vec::new(),
            memory: Memory::default(),
            replica: None,
            peer: PeerOutcome::Skipped("not run".into()),
        }
    }

    /// Runs `f`, which makes `calls` calls, and adds what process `pid` spent
    /// meanwhile to `who`'s cost at `concurrency`.
    pub fn costed<T>(
        &mut self,
        who: &'static str,
        concurrency: usize,
        pid: u32,
        calls: usize,
        f: impl FnOnce() -> Result<T, BoxError>,
    ) -> Result<T, BoxError> {
        let before = usage(pid);
        let result = f()?;
        let spent = usage(pid) - before;
        let index = match self
            .costs
            .iter()
            .position(|(w, c, _)| *w == who && *c == concurrency)
        {
            Some(i) => i,
            None => {
                self.costs.push((who, concurrency, Cost::default()));
                self.costs.len() - 1
            }
        };
        let cost = &mut self.costs[index].2;
        cost.usage.cpu += spent.cpu;
        cost.usage.switches += spent.switches;
        cost.calls += calls as u64;
        Ok(result)
    }

    pub fn cost(&self, who: &str, concurrency: usize) -> Option<Cost> {
        self.costs
            .iter()
            .find(|(w, c, _)| *w == who && *c == concurrency)
            .map(|(_, _, cost)| *cost)
    }

    /// The candidate's row name, when one was measured.
    pub fn candidate_name(&self) -> Option<String> {
        self.candidate
            .as_ref()
            .map(|path| format!("**candidate** `{path}` (`{CANDIDATE_ENV}`)"))
    }

    pub fn header_line(&self) -> String {
        format!(
            "sidecar bench: {} · {} cores ({}) · load {} · {}",
            self.date, self.cores, self.cpu, self.load, self.commit
        )
    }

    pub fn sidecar_over_direct(&self) -> f64 {
        let l = &self.latency;
        l.sidecar.p(0.5).as_secs_f64() / l.direct.p(0.5).as_secs_f64()
    }

    /// (floor + direct) / direct at the median: what a bridge that added
    /// nothing to its two hops would score against the first target.
    pub fn two_hops_over_direct(&self) -> f64 {
        let l = &self.latency;
        (l.floor.p(0.5) + l.direct.p(0.5)).as_secs_f64() / l.direct.p(0.5).as_secs_f64()
    }

    pub fn throughput_at(&self, concurrency: usize) -> Option<&ThroughputRow> {
        self.throughput
            .iter()
            .find(|r| r.concurrency == concurrency)
    }

    pub fn startup_row(&self, prefix: &str) -> Option<&StartupRow> {
        self.startup.iter().find(|r| r.name.starts_with(prefix))
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.write_markdown(&mut out)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn write_markdown(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "## toolbridge-mcp sidecar benchmark\n")?;
        writeln!(
            out,
            "{} · {} cores (`available_parallelism`) · {} · load average at start {} · commit {}  ",
            self.date, self.cores, self.cpu, self.load, self.commit
        )?;
        writeln!(
            out,
            "Sidecar: `{}` ({:.1} MiB), run with `--api-url http://127.0.0.1:PORT --token x --tenant-id t --log-dir target/bench/logs` \
             and `TOOLBRIDGE_REPLICA=off`, the HTTP bridge (one JSON log line per call){}; the local replica's sidecars are in their own section. Upstream: axum in the bench process on loopback, `TCP_NODELAY`, \
             `GET /v1/notes/{{uid}}` → a fixed {}-byte item. Tool call: `get_note {{uid}}`.\n",
            self.binary,
            self.binary_bytes as f64 / (1024.0 * 1024.0),
            std::env::var(EXTRA_ARGS_ENV)
                .map(|a| format!(" plus `{a}` ({EXTRA_ARGS_ENV})"))
                .unwrap_or_default(),
            self.note_bytes
        )?;

        let l = &self.latency;
        writeln!(
            out,
            "### Per-call latency, concurrency 1\n\n{LATENCY_ROUNDS} interleaved rounds × {LATENCY_CALLS} calls each after {LATENCY_WARMUP} warm-up calls; \
             median and p99 over all {} samples, and the spread of the round medians.\n",
            LATENCY_ROUNDS * LATENCY_CALLS
        )?;
        writeln!(
            out,
            "| path | median µs | p90 µs | p99 µs | mean µs | round medians µs |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---|")?;
        let rows = [
            ("direct HTTP, pooled reqwest in its own process", &l.direct),
            (
                "direct HTTP, pooled reqwest on the upstream's runtime",
                &l.direct_in_process,
            ),
            ("floor (minimal rmcp stdio server, no I/O)", &l.floor),
            ("**sidecar** (`get_note` via MCP stdio → HTTP)", &l.sidecar),
            (
                "**sidecar, from the local replica** (`get_note` via MCP stdio → SQLite)",
                &l.replica,
            ),
        ];
        let candidate = self
            .candidate_name()
            .map(|name| (name, &l.candidate))
            .into_iter();
        for (name, s) in rows
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s))
            .chain(candidate)
        {
            let rounds: Vec<String> = s.round_medians.iter().map(|d| us(*d)).collect();
            writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} |",
                us(s.p(0.5)),
                us(s.p(0.9)),
                us(s.p(0.99)),
                us(s.mean()),
                rounds.join(" / ")
            )?;
        }
        let (s50, d50, f50) = (
            l.sidecar.p(0.5).as_secs_f64(),
            l.direct.p(0.5).as_secs_f64(),
            l.floor.p(0.5).as_secs_f64(),
        );
        writeln!(
            out,
            "\nsidecar/direct **{}** (median, direct in its own process; p99 {}; against the in-process client {}), \
             sidecar/floor **{}** (median; p99 {}). \
             Added per call over direct HTTP: {:.1} µs; over the floor: {:.1} µs. \
             A stdio hop plus an HTTP hop (floor + direct) is {:.1} µs, {} of direct: \
             the least any stdio-to-HTTP bridge can cost.\n",
            ratio(s50, d50),
            ratio(
                l.sidecar.p(0.99).as_secs_f64(),
                l.direct.p(0.99).as_secs_f64()
            ),
            ratio(s50, l.direct_in_process.p(0.5).as_secs_f64()),
            ratio(s50, f50),
            ratio(
                l.sidecar.p(0.99).as_secs_f64(),
                l.floor.p(0.99).as_secs_f64()
            ),
            (s50 - d50) * 1e6,
            (s50 - f50) * 1e6,
            (f50 + d50) * 1e6,
            ratio(f50 + d50, d50),
        )?;

        writeln!(
            out,
            "### Throughput (calls/s; median of {THROUGHPUT_REPS} runs)\n\nA closed loop keeping N calls in flight: \
             pipelined on the one stdio for the floor and the sidecar, N tasks on one pooled client for direct HTTP.\n"
        )?;
        writeln!(
            out,
            "| in flight | direct HTTP (own process) | direct HTTP (in-process) | floor | **sidecar** | sidecar/direct | sidecar/floor | sidecar median latency µs |"
        )?;
        writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for row in &self.throughput {
            let (d, f, s) = (
                median_f64(&row.direct),
                median_f64(&row.floor),
                median_f64(&row.sidecar),
            );
            writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
                row.concurrency,
                d,
                median_f64(&row.direct_in_process),
                f,
                s,
                ratio(s, d),
                ratio(s, f),
                us(median_duration(&row.sidecar_p50))
            )?;
        }
        if let Some(row) = self.throughput_at(64) {
            let bound = two_hops_throughput(row);
            writeln!(
                out,
                "\nOn a saturated machine CPU per call adds up, so a bridge that only made the two hops \
                 would reach about 1 / (1/direct + 1/floor) = {bound:.0} calls/s at 64 in flight ({} of direct).",
                ratio(bound, median_f64(&row.direct))
            )?;
        }
        if let Some(name) = self.candidate_name() {
            writeln!(
                out,
                "\n{name} vs sidecar: latency median {}, calls/s at 1 / 8 / 64 in flight: {}.",
                ratio(
                    l.candidate.p(0.5).as_secs_f64(),
                    l.sidecar.p(0.5).as_secs_f64()
                ),
                self.throughput
                    .iter()
                    .map(|r| format!(
                        "{:.0} ({})",
                        median_f64(&r.candidate),
                        ratio(median_f64(&r.candidate), median_f64(&r.sidecar))
                    ))
                    .collect::<Vec<_>>()
                    .join(" / ")
            )?;
        }
        writeln!(
            out,
            "\nSync sessions the hot sidecar(s) opened over all of the above: {}.\n",
            self.hot_sessions
        )?;
        self.write_costs(out)?;

        writeln!(
            out,
            "### Startup (ms; median of {STARTUP_RUNS} launches after 1 warm-up launch, min–max)\n"
        )?;
        writeln!(
            out,
            "| configuration | spawn → `initialize` reply | spawn → first `tools/list` reply | stdin EOF → exit | tools |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|")?;
        let mut startup: Vec<&StartupRow> = self.startup.iter().collect();
        if let PeerOutcome::Measured(peer) = &self.peer {
            startup.push(&peer.startup);
        }
        for row in startup {
            let cell = |v: &[Duration]| {
                let s = sorted(v.to_vec());
                format!(
                    "{} ({}–{})",
                    ms(median_duration(&s)),
                    ms(s.first().copied().unwrap_or_default()),
                    ms(s.last().copied().unwrap_or_default())
                )
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.name,
                cell(&row.initialize),
                cell(&row.tools_list),
                cell(&row.exit),
                row.tools
            )?;
        }

        writeln!(
            out,
            "\n### Memory (MiB; `VmHWM` = peak RSS, `VmRSS` = current, from `/proc/PID/status`)\n"
        )?;
        writeln!(
            out,
            "A fresh sidecar (remote upstream), calls at concurrency 1.\n"
        )?;
        writeln!(out, "| after | VmHWM | VmRSS | seconds for the batch |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        if let Some((hwm, rss)) = self.memory.idle {
            writeln!(
                out,
                "| `initialize` + `tools/list`, idle | {} | {} | |",
                mib(hwm),
                mib(rss)
            )?;
        }
        for s in &self.memory.samples {
            writeln!(
                out,
                "| {} calls | {} | {} | {:.1} |",
                thousands(s.calls),
                mib(s.hwm_kib),
                mib(s.rss_kib),
                s.seconds
            )?;
        }
        match self.memory.growth_kib() {
            Some(growth) => writeln!(
                out,
                "\nPeak RSS from 20,000 to {} calls: {:+} KiB: **{}**.",
                thousands(self.memory.samples.last().map_or(0, |s| s.calls)),
                growth,
                if growth <= FLAT_KIB { "flat" } else { "grows" }
            )?,
            None if self.memory.long_run_skipped => writeln!(
                out,
                "\nThe 100,000-call run was skipped ({SKIP_100K_ENV} is set)."
            )?,
            None => {}
        }
        if let Some(hwm) = self.loaded_hwm_kib {
            writeln!(
                out,
                "Peak RSS of the hot sidecar after the latency and throughput runs (up to 64 in flight): {} MiB.",
                mib(hwm)
            )?;
        }

        crate::replica::write_markdown(self, out)?;

        writeln!(out, "\n### Sidecar vs the FastMCP peer\n")?;
        match &self.peer {
            PeerOutcome::Skipped(why) => writeln!(out, "The peer was not measured: {why}.")?,
            PeerOutcome::Measured(peer) => self.write_peer(out, peer)?,
        }

        writeln!(
            out,
            "\nThe upstream served {} note reads and opened {} sync sessions in the whole run.",
            self.upstream_totals.0, self.upstream_totals.1
        )?;
        writeln!(out, "\n### Targets\n")?;
        writeln!(out, "| target | measured | |")?;
        writeln!(out, "|---|---|---|")?;
        for (target, measured, met) in self.targets() {
            writeln!(out, "| {target} | {measured} | {} |", verdict(met))?;
        }
        Ok(())
    }

    /// CPU and context switches per call, which explain the latencies on a
    /// VM where waking an idle thread is the dearest thing a call does.
    pub fn write_costs(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "### CPU time and context switches per call\n\nOf each process alone, summed over its threads \
             (`/proc/PID/task/*/schedstat`, `ctxt_switches`), over all latency and throughput runs; \
             the upstream's share (in the bench process) is not included.\n"
        )?;
        let mut who = vec![
            (DIRECT, "direct HTTP client process"),
            (FLOOR, "floor"),
            (SIDECAR, "**sidecar**"),
            (REPLICA, "sidecar from the replica"),
        ];
        if self.candidate.is_some() {
            who.push((CANDIDATE, "candidate"));
        }
        write!(out, "| in flight |")?;
        for (_, name) in &who {
            write!(out, " {name}: CPU µs | switches |")?;
        }
        writeln!(out, " sidecar − floor − direct: CPU µs |")?;
        write!(out, "|---:|")?;
        for _ in &who {
            write!(out, "---:|---:|")?;
        }
        writeln!(out, "---:|")?;
        for concurrency in CONCURRENCY {
            write!(out, "| {concurrency} |")?;
            for (key, _) in &who {
                match self.cost(key, concurrency) {
                    Some(c) => write!(out, " {:.1} | {:.2} |", c.cpu_us(), c.switches())?,
                    None => write!(out, " | |")?,
                }
            }
            let own = match (
                self.cost(SIDECAR, concurrency),
                self.cost(FLOOR, concurrency),
                self.cost(DIRECT, concurrency),
            ) {
                (Some(s), Some(f), Some(d)) => {
                    format!("{:.1}", s.cpu_us() - f.cpu_us() - d.cpu_us())
                }
                _ => String::new(),
            };
            writeln!(out, " {own} |")?;
        }
        writeln!(out)
    }

    pub fn write_peer(&self, out: &mut String, peer: &PeerFigures) -> std::fmt::Result {
        writeln!(
            out,
            "Peer: `benches/sidecar/peer/server.py`, FastMCP with a new `httpx.AsyncClient` and a new sync session per call \
             ({:.2} sessions opened per call); {}. Per-call figures from {PEER_CALLS} calls after {PEER_WARMUP} warm-up calls.\n",
            peer.sessions_per_call, peer.versions
        )?;
        writeln!(out, "| | sidecar | FastMCP peer | sidecar better by |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        let remote = self.startup_row("sidecar, remote");
        // Times and sizes: peer/sidecar; a rate: sidecar/peer. Either way
        // the last column is how many times better the sidecar does.
        let row = |out: &mut String, name: &str, s: f64, p: f64, unit: &str| {
            let better = if unit == "calls/s" { s / p } else { p / s };
            writeln!(
                out,
                "| {name} | {s:.2} {unit} | {p:.2} {unit} | {better:.1}× |"
            )
        };
        if let Some(remote) = remote {
            row(
                out,
                "spawn → `initialize`",
                median_duration(&remote.initialize).as_secs_f64() * 1e3,
                median_duration(&peer.startup.initialize).as_secs_f64() * 1e3,
                "ms",
            )?;
            row(
                out,
                "spawn → first `tools/list`",
                median_duration(&remote.tools_list).as_secs_f64() * 1e3,
                median_duration(&peer.startup.tools_list).as_secs_f64() * 1e3,
                "ms",
            )?;
        }
        let l = &self.latency.sidecar;
        row(
            out,
            "per-call median",
            l.p(0.5).as_secs_f64() * 1e6,
            peer.latency.p(0.5).as_secs_f64() * 1e6,
            "µs",
        )?;
        row(
            out,
            "per-call p99",
            l.p(0.99).as_secs_f64() * 1e6,
            peer.latency.p(0.99).as_secs_f64() * 1e6,
            "µs",
        )?;
        if let Some(c1) = self.throughput_at(1) {
            row(
                out,
                "throughput, 1 in flight",
                median_f64(&c1.sidecar),
                peer.calls_per_sec,
                "calls/s",
            )?;
        }
        if let (Some((idle, _)), Some((peer_idle, _))) = (self.memory.idle, peer.idle) {
            row(
                out,
                "peak RSS idle",
                idle as f64 / 1024.0,
                peer_idle as f64 / 1024.0,
                "MiB",
            )?;
        }
        if let (Some(s), Some((peer_hwm, _))) = (self.memory.at(MEMORY_BATCH), peer.after) {
            row(
                out,
                &format!(
                    "peak RSS after calls (sidecar {}, peer {})",
                    thousands(MEMORY_BATCH),
                    thousands(PEER_WARMUP + PEER_CALLS)
                ),
                s.hwm_kib as f64 / 1024.0,
                peer_hwm as f64 / 1024.0,
                "MiB",
            )?;
        }
        Ok(())
    }

    /// Each target: what it asks, what was measured, whether it is met.
    pub fn targets(&self) -> Vec<(String, String, bool)> {
        let mut targets = Vec::new();
        let over = self.sidecar_over_direct();
        targets.push((
            "per-call overhead over direct HTTP < 1.3× (median, concurrency 1)".into(),
            format!(
                "{over:.2}× (the two hops alone, floor + direct: {:.2}×)",
                self.two_hops_over_direct()
            ),
            over < 1.3,
        ));
        if let Some(row) = self.throughput_at(64) {
            let r = median_f64(&row.sidecar) / median_f64(&row.direct);
            targets.push((
                "throughput at concurrency 64 ≥ 0.8× direct".into(),
                format!(
                    "{r:.2}× (the two hops alone: ≤ {:.2}×)",
                    two_hops_throughput(row) / median_f64(&row.direct)
                ),
                r >= 0.8,
            ));
        }
        let startup = |prefix: &str| {
            self.startup_row(prefix)
                .map(|r| median_duration(&r.initialize).as_secs_f64() * 1e3)
        };
        if let Some(t) = startup("sidecar, remote") {
            targets.push((
                "startup to `initialize` < 15 ms, remote".into(),
                format!("{t:.2} ms"),
                t < 15.0,
            ));
        }
        if let Some(t) = startup("sidecar, embedded API (existing") {
            let fresh = startup("sidecar, embedded API (new").unwrap_or(f64::NAN);
            targets.push((
                "startup to `initialize` < 50 ms, embedded".into(),
                format!("{t:.2} ms (new db file: {fresh:.2} ms)"),
                t < 50.0,
            ));
        }
        if let Some(s) = self.memory.at(MEMORY_BATCH) {
            let m = s.hwm_kib as f64 / 1024.0;
            targets.push((
                "peak RSS < 20 MiB after 10,000 calls".into(),
                format!("{m:.1} MiB"),
                m < 20.0,
            ));
        }
        match self.memory.growth_kib() {
            Some(g) => targets.push((
                format!("peak RSS flat over 100,000 calls (growth from 20k ≤ {FLAT_KIB} KiB)"),
                format!("{g:+} KiB"),
                g <= FLAT_KIB,
            )),
            None => targets.push((
                "peak RSS flat over 100,000 calls".into(),
                "not run".into(),
                false,
            )),
        }
        match &self.peer {
            PeerOutcome::Measured(peer) => {
                let r =
                    peer.latency.p(0.5).as_secs_f64() / self.latency.sidecar.p(0.5).as_secs_f64();
                targets.push((
                    "≥ 10× faster per call than the FastMCP peer (median)".into(),
                    format!("{r:.1}×"),
                    r >= 10.0,
                ));
                if let Some(t) = startup("sidecar, remote") {
                    let r = median_duration(&peer.startup.initialize).as_secs_f64() * 1e3 / t;
                    targets.push((
                        "≥ 20× faster to start than the FastMCP peer (to `initialize`)".into(),
                        format!("{r:.1}×"),
                        r >= 20.0,
                    ));
                }
            }
            PeerOutcome::Skipped(_) => targets.push((
                "≥ 10× faster per call and ≥ 20× faster to start than the FastMCP peer".into(),
                "not run".into(),
                false,
            )),
        }
        targets
    }

    pub fn json(&self) -> Value {
        let lat = |s: &Samples| {
            json!({
                "median_us": s.p(0.5).as_secs_f64() * 1e6,
                "p90_us": s.p(0.9).as_secs_f64() * 1e6,
                "p99_us": s.p(0.99).as_secs_f64() * 1e6,
                "mean_us": s.mean().as_secs_f64() * 1e6,
                "samples": s.all.len(),
                "round_medians_us": s.round_medians.iter().map(|d| d.as_secs_f64() * 1e6).collect::<Vec<_>>(),
            })
        };
        let startup = |r: &StartupRow| {
            let ms = |v: &[Duration]| v.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>();
            json!({
                "name": r.name,
                "initialize_ms_median": median_duration(&r.initialize).as_secs_f64() * 1e3,
                "tools_list_ms_median": median_duration(&r.tools_list).as_secs_f64() * 1e3,
                "exit_ms_median": median_duration(&r.exit).as_secs_f64() * 1e3,
                "initialize_ms": ms(&r.initialize),
                "tools_list_ms": ms(&r.tools_list),
                "exit_ms": ms(&r.exit),
                "tools": r.tools,
            })
        };
        let peer = match &self.peer {
            PeerOutcome::Skipped(why) => json!({ "skipped": why }),
            PeerOutcome::Measured(p) => json!({
                "versions": p.versions,
                "startup": startup(&p.startup),
                "latency": lat(&p.latency),
                "calls_per_sec": p.calls_per_sec,
                "idle_kib": p.idle.map(|(hwm, rss)| json!({"hwm": hwm, "rss": rss})),
                "after_calls_kib": p.after.map(|(hwm, rss)| json!({"hwm": hwm, "rss": rss})),
                "calls": PEER_WARMUP + PEER_CALLS,
                "sessions_per_call": p.sessions_per_call,
            }),
        };
        json!({
            "date": self.date,
            "cores": self.cores,
            "cpu": self.cpu,
            "load_average": self.load,
            "commit": self.commit,
            "binary": self.binary,
            "binary_bytes": self.binary_bytes,
            "note_bytes": self.note_bytes,
            "latency_c1": {
                "direct": lat(&self.latency.direct),
                "direct_in_process": lat(&self.latency.direct_in_process),
                "floor": lat(&self.latency.floor),
                "sidecar": lat(&self.latency.sidecar),
                "sidecar_from_replica": lat(&self.latency.replica),
            },
            "throughput": self.throughput.iter().map(|r| json!({
                "concurrency": r.concurrency,
                "direct_per_sec": median_f64(&r.direct),
                "floor_per_sec": median_f64(&r.floor),
                "sidecar_per_sec": median_f64(&r.sidecar),
                "direct_in_process_per_sec": median_f64(&r.direct_in_process),
                "direct_runs": r.direct,
                "direct_in_process_runs": r.direct_in_process,
                "floor_runs": r.floor,
                "sidecar_runs": r.sidecar,
            })).collect::<Vec<_>>(),
            "cost_per_call": self.costs.iter().map(|(who, c, cost)| json!({
                "who": who,
                "concurrency": c,
                "cpu_us": cost.cpu_us(),
                "context_switches": cost.switches(),
                "calls": cost.calls,
            })).collect::<Vec<_>>(),
            "hot_sidecar_sessions_opened": self.hot_sessions,
            "upstream_note_reads": self.upstream_totals.0,
            "upstream_sessions_opened": self.upstream_totals.1,
            "hot_sidecar_peak_rss_kib": self.loaded_hwm_kib,
            "startup": self.startup.iter().map(startup).collect::<Vec<_>>(),
            "memory": {
                "idle_kib": self.memory.idle.map(|(hwm, rss)| json!({"hwm": hwm, "rss": rss})),
                "samples": self.memory.samples.iter().map(|s| json!({
                    "calls": s.calls, "hwm_kib": s.hwm_kib, "rss_kib": s.rss_kib, "seconds": s.seconds,
                })).collect::<Vec<_>>(),
                "growth_from_20k_kib": self.memory.growth_kib(),
                "long_run_skipped": self.memory.long_run_skipped,
            },
            "replica": crate::replica::json(self),
            "peer": peer,
            "targets": self.targets().into_iter().map(|(t, m, met)| json!({
                "target": t, "measured": m, "met": met,
            })).collect::<Vec<_>>(),
        })
    }
}
