//! The local replica's figures, printed as `### Local replica`:
//!
//! - `get_note` answered from a fresh replica: a sidecar on the stand-in (the
//!   same note as direct HTTP and the floor) after its first sync, with
//!   `--max-staleness 3600` so that no refresh falls inside a loop, measured
//!   in the latency rounds beside them.
//! - `search` and a newest-first `list_notes` page over 10,000 notes, and the
//!   sidecar's peak RSS after 10,000 searches.
//! - The first sync of those notes from the embedded API (`toolbridge-mcp
//!   sync` into an empty directory, and a new sidecar until its first
//!   `search` answers), and the replica's size on disk.
//! - Upstream requests for 100 reads made within 3 s at the default
//!   staleness, with the replica on and off.
//!
//! The notes are created through the embedded API's REST routes, served in
//! the bench process with its rate limits lifted; the sidecars then run on
//! that database, as a user of the embedded API does.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use toolbridge_mcp::embedded::{self, ApiConfig, RateLimits};

use crate::client::{McpProcess, memory_kib};
use crate::report::{Report, Samples, median_duration, mib, ms, ratio, thousands, us, verdict};
use crate::upstream::Upstream;
use crate::{BoxError, HOT_ONLY_ENV, Paths, check, hot, note_arguments, remove_db};

/// Notes in the seeded database.
pub const ITEMS: usize = 10_000;
/// `--max-staleness` of the measuring sidecars: no refresh inside a loop.
const NO_REFRESH: &str = "3600";
const SEED_IN_FLIGHT: usize = 8;
const SYNC_RUNS: usize = 3;
/// Searches in all, shared by the queries.
const SEARCHES: usize = 10_000;
const PER_QUERY: usize = SEARCHES / (FEW.len() + MANY.len());
const LIST_WARMUP: usize = 100;
const LIST_CALLS: usize = 2_000;
/// Reads whose upstream requests are counted, one every [`READ_SPACING`].
const READS: usize = 100;
const READ_SPACING: Duration = Duration::from_millis(30);
const SECRET: &str = "sidecar-bench-secret";
/// Longer than the replica's re-read window (`REREAD_WINDOW`, 5 s, in
/// `src/replica/follow.rs`). Every refresh re-reads the items stamped in
/// that window behind its cursor, and notes created in a burst would all be
/// in it; real items are spread over months, so the last note is created
/// alone after this pause.
const REREAD_PAUSE: Duration = Duration::from_millis(5_500);

/// Each note has three of these (each word is in about 30% of notes).
const TOPICS: [&str; 10] = [
    "meeting", "project", "budget", "travel", "recipe", "garden", "invoice", "design", "release",
    "family",
];
/// Sixty of these fill each note's content.
const FILLER: &str = "lorem ipsum dolor amet consectetur adipiscing tempor incididunt labore magna aliqua veniam \
    nostrud exercitation ullamco laboris commodo consequat aute irure voluptate velit cillum deserunt";
/// Rare words are three of these: 2,000 of them, each in exactly 5 notes.
const SYLLABLES: [&str; 16] = [
    "ba", "ke", "mi", "no", "pu", "ra", "se", "ti", "vo", "zu", "ga", "fe", "hi", "jo", "wu", "xy",
];
const RARE_WORDS: usize = 2_000;
/// Queries that match a handful of notes, and thousands.
const FEW: [usize; 4] = [17, 503, 1_250, 1_999];
const MANY: [&str; 4] = ["meeting", "project", "lorem", "des"];

/// What this part of the run measured (the `get_note` latency is in
/// [`crate::report::Latency::replica`]).
#[derive(Default)]
pub struct Figures {
    pub seed: Duration,
    pub note_bytes: usize,
    pub sync: Vec<Duration>,
    /// What `sync` printed last: `total N items in S s`.
    pub sync_printed: String,
    /// A new sidecar with an empty replica directory: spawn → its first
    /// `search` answered (after the first sync), and its peak RSS then.
    pub first_search: Duration,
    pub first_sync_hwm_kib: Option<u64>,
    /// The replica file and its `-wal`, after the first sync.
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Searches by class; each round is one query, with its matches.
    pub few: Samples,
    pub many: Samples,
    pub matches: Vec<(String, usize)>,
    pub list: Samples,
    /// Peak RSS with the replica open (after the startup refresh), and after
    /// the searches.
    pub open_hwm_kib: Option<u64>,
    pub search_hwm_kib: Option<u64>,
    /// Upstream entity requests for [`READS`] reads: replica on, off.
    pub requests: (u64, u64),
}

/// A sidecar on the stand-in with a fresh replica, after its first sync,
/// checked to answer `get_note` from it: the upstream sees no request for
/// 200 calls.
pub fn hot_sidecar(paths: &Paths, upstream: &Upstream) -> Result<McpProcess, BoxError> {
    let dir = paths.bench_dir.join("replica-hot");
    let _ = std::fs::remove_dir_all(&dir);
    let remote = paths.sidecar_remote(&paths.sidecar, &upstream.base_url());
    let command = Paths::replica_on(remote, &dir, Some(NO_REFRESH));
    let mut process = hot("replica sidecar", command, &paths.stderr)?;
    first_sync_done(&mut process)?;
    let before = upstream.counters.entity_requests();
    check(process.call_loop(1, 0, 200)?, "replica sidecar")?;
    if upstream.counters.entity_requests() != before {
        return Err("the replica sidecar asked the upstream for get_note".into());
    }
    Ok(process)
}

/// Waits for the first sync (a search waits for it) and checks that the
/// search finds the stand-in's note.
fn first_sync_done(process: &mut McpProcess) -> Result<(), BoxError> {
    let reply = process.request(
        "tools/call",
        json!({"name": "search", "arguments": {"query": "benchmark"}}),
    )?;
    let found = reply
        .pointer("/result/structuredContent/hits")
        .and_then(Value::as_array)
        .map(Vec::len);
    if found != Some(1) {
        return Err(format!("{}: unexpected search result: {reply}", process.name).into());
    }
    Ok(())
}

/// Everything but the `get_note` latency.
pub fn measure(
    paths: &Paths,
    upstream: &Upstream,
    runtime: &tokio::runtime::Runtime,
) -> Result<Figures, BoxError> {
    let notes: Arc<Vec<Value>> = Arc::new((0..ITEMS).map(note).collect());
    let db = paths.bench_dir.join("replica-source.db");
    remove_db(&db);
    eprintln!("sidecar bench: replica: creating {ITEMS} notes");
    let mut figures = Figures {
        seed: runtime.block_on(seed(&db, notes.clone()))?,
        note_bytes: notes.iter().map(|n| n.to_string().len()).sum::<usize>() / ITEMS,
        ..Figures::default()
    };
    eprintln!("sidecar bench: replica: first sync ×{SYNC_RUNS}");
    let dir = paths.bench_dir.join("replica-10k");
    for _ in 0..SYNC_RUNS {
        let (took, printed) = first_sync(paths, &db, &dir)?;
        figures.sync.push(took);
        figures.sync_printed = printed;
    }
    (figures.db_bytes, figures.wal_bytes) = replica_bytes(&dir);
    (figures.first_search, figures.first_sync_hwm_kib) = first_search(paths, &db)?;
    eprintln!("sidecar bench: replica: search and list");
    measure_reads(paths, &db, &dir, &notes, &mut figures)?;
    eprintln!("sidecar bench: replica: upstream requests per {READS} reads");
    figures.requests = (
        upstream_requests(paths, upstream, true)?,
        upstream_requests(paths, upstream, false)?,
    );
    Ok(figures)
}

/// splitmix64: the same corpus every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rare_word(n: usize) -> String {
    (0..3).map(|k| SYLLABLES[(n >> (4 * k)) & 15]).collect()
}

/// Note `i`'s create body: a title with one topic and a rare word, content
/// with two more topics among filler, and two tags.
fn note(i: usize) -> Value {
    let mut state = i as u64;
    let mut next = |n: usize| {
        state = mix(state);
        (state % n as u64) as usize
    };
    let mut topics: Vec<&str> = Vec::new();
    while topics.len() < 3 {
        let topic = TOPICS[next(TOPICS.len())];
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    let words: Vec<&str> = FILLER.split_whitespace().collect();
    let filler: Vec<&str> = (0..60).map(|_| words[next(words.len())]).collect();
    let rare = rare_word(i * 7 % RARE_WORDS);
    let place = ["work", "home"][i % 2];
    json!({
        "title": format!("{} {rare} {i}", topics[0]),
        "content": format!("{} and {}: {}.", topics[1], topics[2], filler.join(" ")),
        "tags": [topics[0], place],
    })
}

/// Notes with a word starting with `query`, as the replica's prefix search
/// matches them.
fn matches(notes: &[Value], query: &str) -> usize {
    notes
        .iter()
        .filter(|n| {
            let text = format!("{} {} {}", n["title"], n["content"], n["tags"]).to_lowercase();
            text.split(|c: char| !c.is_alphanumeric())
                .any(|word| word.starts_with(query))
        })
        .count()
}

/// A client of the embedded API with its own session, as another device.
struct Device {
    http: reqwest::Client,
    url: String,
    session: String,
    epoch: String,
}

impl Device {
    /// Creates a note; returns its update time (Unix ms).
    async fn create(&self, note: &Value) -> reqwest::Result<u64> {
        let item: Value = self
            .http
            .post(format!("{}/v1/notes", self.url))
            .bearer_auth(SECRET)
            .header("x-tb-tenant-id", embedded::TENANT_ID)
            .header("x-sync-session", &self.session)
            .header("x-sync-epoch", &self.epoch)
            .json(note)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(item["payload"]["updatedTs"].as_u64().unwrap_or(0))
    }
}

/// Creates the notes with a pooled client, [`SEED_IN_FLIGHT`] at a time,
/// through the embedded API served here with its rate limits lifted; the
/// last one stamped [`REREAD_PAUSE`] after the others. Returns how long the
/// others took.
async fn seed(db: &Path, notes: Arc<Vec<Value>>) -> Result<Duration, BoxError> {
    let api = embedded::spawn(ApiConfig {
        db_path: db.to_owned(),
        secret: SecretString::from(SECRET.to_owned()),
        limits: RateLimits {
            entity_per_minute: u32::MAX,
            entity_burst: u32::MAX,
            bootstrap_per_minute: u32::MAX,
            bootstrap_burst: u32::MAX,
        },
    })
    .await?;
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let session: Value = http
        .post(format!("{}/v1/sync/sessions", api.base_url()))
        .bearer_auth(SECRET)
        .header("x-tb-tenant-id", embedded::TENANT_ID)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let device = Arc::new(Device {
        http,
        url: api.base_url(),
        session: session["id"].as_str().ok_or("no session id")?.to_owned(),
        epoch: session["epoch"].as_u64().unwrap_or(1).to_string(),
    });
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..SEED_IN_FLIGHT)
        .map(|_| {
            let (device, notes, next) = (device.clone(), notes.clone(), next.clone());
            tokio::spawn(async move {
                let mut newest = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i + 1 >= notes.len() {
                        return Ok::<u64, reqwest::Error>(newest);
                    }
                    newest = newest.max(device.create(&notes[i]).await?);
                }
            })
        })
        .collect();
    let mut newest = 0;
    for task in tasks {
        newest = newest.max(task.await??);
    }
    let took = started.elapsed();
    // The API stamps each write at least 1 ms after the last, so a burst's
    // stamps run ahead of the clock: pause from the newest stamp.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let ahead = Duration::from_millis(newest.saturating_sub(now_ms()));
    tokio::time::sleep(ahead + REREAD_PAUSE).await;
    device.create(notes.last().ok_or("no notes")?).await?;
    api.shutdown().await;
    Ok(took)
}

/// `toolbridge-mcp sync` into an empty replica directory: spawn to exit,
/// and the line it printed last.
fn first_sync(paths: &Paths, db: &Path, dir: &Path) -> Result<(Duration, String), BoxError> {
    let _ = std::fs::remove_dir_all(dir);
    let mut command = Paths::replica_on(paths.sidecar_embedded(db), dir, None);
    command.arg("sync");
    let started = Instant::now();
    let output = command.output()?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fetched = stdout
        .lines()
        .find_map(|l| l.strip_prefix("notes "))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok());
    if !output.status.success() || fetched != Some(ITEMS) {
        return Err(format!(
            "sync: {}: {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or("");
    Ok((took, total.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// A sidecar on the embedded API with an empty replica directory: spawn
/// until a `search` answers (it waits for the first sync), and the peak RSS
/// then.
fn first_search(paths: &Paths, db: &Path) -> Result<(Duration, Option<u64>), BoxError> {
    let dir = paths.bench_dir.join("replica-first-search");
    let _ = std::fs::remove_dir_all(&dir);
    let command = Paths::replica_on(paths.sidecar_embedded(db), &dir, Some(NO_REFRESH));
    let mut sidecar = McpProcess::spawn("replica sidecar, first sync", command, &paths.stderr)?;
    sidecar.initialize()?;
    sidecar.set_call("search", json!({ "query": rare_word(FEW[0]) }));
    let reply = sidecar.call_checked()?;
    let took = sidecar.last_reply_at() - sidecar.spawned_at;
    let hits = reply
        .pointer("/result/structuredContent/hits")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if hits != ITEMS / RARE_WORDS {
        return Err(format!("first search: {hits} hits: {reply}").into());
    }
    let hwm = memory_kib(sidecar.pid()).map(|(hwm, _)| hwm);
    sidecar.close(Duration::from_secs(10));
    Ok((took, hwm))
}

/// The sizes of `replica-*.db` and its `-wal` in `dir`.
fn replica_bytes(dir: &Path) -> (u64, u64) {
    let (mut db, mut wal) = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata().map_or(0, |m| m.len());
        if !name.starts_with("replica-") {
            continue;
        }
        if name.ends_with(".db") {
            db += size;
        } else if name.ends_with(".db-wal") {
            wal += size;
        }
    }
    (db, wal)
}

/// `search` (each query checked against the corpus first) and a newest-first
/// `list_notes` page, through a sidecar on the embedded API whose replica
/// `dir` holds the 10,000 notes.
fn measure_reads(
    paths: &Paths,
    db: &Path,
    dir: &Path,
    notes: &[Value],
    figures: &mut Figures,
) -> Result<(), BoxError> {
    let command = Paths::replica_on(paths.sidecar_embedded(db), dir, Some(NO_REFRESH));
    let mut sidecar = McpProcess::spawn("replica sidecar, 10,000 notes", command, &paths.stderr)?;
    sidecar.initialize()?;
    // A read waits for the refresh the sidecar starts with.
    sidecar.set_call("list_notes", json!({"limit": 1}));
    sidecar.call_checked()?;
    figures.open_hwm_kib = memory_kib(sidecar.pid()).map(|(hwm, _)| hwm);
    let queries = FEW
        .map(rare_word)
        .into_iter()
        .chain(MANY.map(str::to_owned));
    for (i, query) in queries.enumerate() {
        let expected = matches(notes, &query);
        sidecar.set_call("search", json!({ "query": query }));
        let reply = sidecar.call_checked()?;
        let content = reply.pointer("/result/structuredContent");
        let hits = content
            .and_then(|c| c.get("hits"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if hits != expected.min(20) || content.is_some_and(|c| c.get("stale").is_some()) {
            return Err(
                format!("search {query}: {hits} hits, {expected} expected: {reply}").into(),
            );
        }
        let result = check(sidecar.call_loop(1, 0, PER_QUERY)?, "search")?;
        let class = if i < FEW.len() {
            &mut figures.few
        } else {
            &mut figures.many
        };
        class.push_round(result.latencies);
        figures.matches.push((query, expected));
    }
    figures.search_hwm_kib = memory_kib(sidecar.pid()).map(|(hwm, _)| hwm);
    sidecar.set_call("list_notes", json!({"order": "newest", "limit": 50}));
    let reply = sidecar.call_checked()?;
    let items = reply
        .pointer("/result/structuredContent/items")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if items != 50 {
        return Err(format!("list_notes: {items} items: {reply}").into());
    }
    let result = check(sidecar.call_loop(1, LIST_WARMUP, LIST_CALLS)?, "list")?;
    figures.list = Samples::from_latencies(result.latencies);
    sidecar.close(Duration::from_secs(10));
    Ok(())
}

/// Upstream entity requests (item reads and list pages) for [`READS`] reads,
/// `get_note` and `list_notes` in turn, one every [`READ_SPACING`], at the
/// default staleness; with the replica on, after its first sync.
fn upstream_requests(paths: &Paths, upstream: &Upstream, replica: bool) -> Result<u64, BoxError> {
    let mut command = paths.sidecar_remote(&paths.sidecar, &upstream.base_url());
    if replica {
        let dir = paths.bench_dir.join("replica-reads");
        let _ = std::fs::remove_dir_all(&dir);
        command = Paths::replica_on(command, &dir, None);
    }
    let mut sidecar = McpProcess::spawn("reads sidecar", command, &paths.stderr)?;
    sidecar.initialize()?;
    if replica {
        first_sync_done(&mut sidecar)?;
    }
    let before = upstream.counters.entity_requests();
    let started = Instant::now();
    for i in 0..READS {
        if i % 2 == 0 {
            sidecar.set_call("get_note", note_arguments());
        } else {
            sidecar.set_call("list_notes", json!({}));
        }
        sidecar.call_checked()?;
        let due = READ_SPACING * (i as u32 + 1);
        std::thread::sleep(due.saturating_sub(started.elapsed()));
    }
    let requests = upstream.counters.entity_requests() - before;
    sidecar.close(Duration::from_secs(10));
    Ok(requests)
}

/// The `### Local replica` section.
pub fn write_markdown(report: &Report, out: &mut String) -> std::fmt::Result {
    writeln!(out, "\n### Local replica\n")?;
    writeln!(
        out,
        "The sidecars above run with `TOOLBRIDGE_REPLICA=off` (the HTTP bridge, comparable with runs before the \
         replica). Here: `get_note` through a sidecar with `--replica on --max-staleness {NO_REFRESH}` on the stand-in, \
         after its first sync, in the latency rounds above (the same note, read from the replica: the upstream saw \
         no request); the rest on {} notes created through the embedded API.\n",
        thousands(ITEMS)
    )?;
    writeln!(out, "| figure | measured | goal | |")?;
    writeln!(out, "|---|---|---|---|")?;
    let l = &report.latency;
    if !l.replica.all.is_empty() {
        let (r, d, f) = (l.replica.p(0.5), l.direct.p(0.5), l.floor.p(0.5));
        let over_floor = r.as_secs_f64() * 1e6 - f.as_secs_f64() * 1e6;
        writeln!(
            out,
            "| `get_note` from the replica, concurrency 1 | median {} µs, p99 {} µs; {} direct HTTP, {over_floor:+.1} µs over the floor | below direct HTTP, within 30 µs of the floor | {} |",
            us(r),
            us(l.replica.p(0.99)),
            ratio(r.as_secs_f64(), d.as_secs_f64()),
            verdict(r < d && over_floor <= 30.0)
        )?;
    }
    let Some(fig) = &report.replica else {
        writeln!(out, "\nThe rest was not run ({HOT_ONLY_ENV} is set).")?;
        return Ok(());
    };
    let matched = |range: std::ops::Range<usize>| {
        let counts: Vec<usize> = fig.matches[range].iter().map(|(_, n)| *n).collect();
        let (lo, hi) = (counts.iter().min(), counts.iter().max());
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo == hi => thousands(*lo),
            (Some(lo), Some(hi)) => format!("{}–{}", thousands(*lo), thousands(*hi)),
            _ => String::new(),
        }
    };
    for (name, samples, range) in [
        ("a handful", &fig.few, 0..FEW.len()),
        ("thousands", &fig.many, FEW.len()..fig.matches.len()),
    ] {
        let p50 = samples.p(0.5);
        writeln!(
            out,
            "| `search`, {} notes, queries matching {name} ({} each; 20 hits returned) | p50 {} ms, p99 {} ms | p50 < 2 ms | {} |",
            thousands(ITEMS),
            matched(range),
            ms(p50),
            ms(samples.p(0.99)),
            verdict(p50 < Duration::from_millis(2))
        )?;
    }
    writeln!(
        out,
        "| `list_notes` newest first, a page of 50 of {} | p50 {} ms, p99 {} ms | | |",
        thousands(ITEMS),
        ms(fig.list.p(0.5)),
        ms(fig.list.p(0.99))
    )?;
    let sync = median_duration(&fig.sync);
    let (lo, hi) = (fig.sync.iter().min(), fig.sync.iter().max());
    writeln!(
        out,
        "| first sync of {} notes from the embedded API (`toolbridge-mcp sync`, spawn → exit; median of {SYNC_RUNS}) | {:.2} s ({:.2}–{:.2}); it printed `{}` | < 3 s | {} |",
        thousands(ITEMS),
        sync.as_secs_f64(),
        lo.map_or(0.0, Duration::as_secs_f64),
        hi.map_or(0.0, Duration::as_secs_f64),
        fig.sync_printed,
        verdict(sync < Duration::from_secs(3))
    )?;
    writeln!(
        out,
        "| the same in a new sidecar: spawn → its first `search` answered, empty replica directory | {:.2} s | < 3 s | {} |",
        fig.first_search.as_secs_f64(),
        verdict(fig.first_search < Duration::from_secs(3))
    )?;
    let (on, off) = fig.requests;
    writeln!(
        out,
        "| upstream requests per {READS} reads (`get_note`, `list_notes` in turn) within {:.0} s, default staleness | {on} with the replica, {off} without | ≤ 5 | {} |",
        (READ_SPACING * READS as u32).as_secs_f64(),
        verdict(on <= 5)
    )?;
    writeln!(
        out,
        "| replica on disk, {} notes | {} MiB (`replica-*.db` {} MiB + `-wal` {} MiB) | | |",
        thousands(ITEMS),
        mib((fig.db_bytes + fig.wal_bytes) / 1024),
        mib(fig.db_bytes / 1024),
        mib(fig.wal_bytes / 1024)
    )?;
    let kib = |v: Option<u64>| v.map_or("?".into(), mib);
    if let Some(hwm) = fig.search_hwm_kib {
        writeln!(
            out,
            "| sidecar peak RSS (`VmHWM`, embedded API in-process) after {} searches | {} MiB ({} MiB with the replica open, before them; {} MiB in the new sidecar above, after its first sync) | < 30 MB (28.6 MiB) | {} |",
            thousands(SEARCHES),
            mib(hwm),
            kib(fig.open_hwm_kib),
            kib(fig.first_sync_hwm_kib),
            verdict(hwm * 1024 < 30_000_000)
        )?;
    }
    let queries: Vec<String> = fig
        .matches
        .iter()
        .zip(fig.few.round_medians.iter().chain(&fig.many.round_medians))
        .map(|((q, n), median)| format!("`{q}` {} ({} ms)", thousands(*n), ms(*median)))
        .collect();
    writeln!(
        out,
        "\nThe notes: about {} bytes of JSON each (a title with one of three topic words and one of 2,000 rare words, \
         each rare word in 5 notes; two more topic words and 60 filler words in the content; two tags), created in {:.1} s \
         with {SEED_IN_FLIGHT} in flight (the last one stamped {:.1} s after them, alone in the window a refresh re-reads). Queries, notes matched and median: {}; {} calls each.",
        fig.note_bytes,
        fig.seed.as_secs_f64(),
        REREAD_PAUSE.as_secs_f64(),
        queries.join(", "),
        thousands(PER_QUERY)
    )
}

pub fn json(report: &Report) -> Value {
    let latency = |s: &Samples| {
        json!({
            "p50_ms": s.p(0.5).as_secs_f64() * 1e3,
            "p99_ms": s.p(0.99).as_secs_f64() * 1e3,
            "samples": s.all.len(),
        })
    };
    let Some(fig) = &report.replica else {
        return json!({ "skipped": format!("{HOT_ONLY_ENV} is set") });
    };
    json!({
        "items": ITEMS,
        "note_bytes": fig.note_bytes,
        "seed_s": fig.seed.as_secs_f64(),
        "first_sync_s": fig.sync.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "first_sync_s_median": median_duration(&fig.sync).as_secs_f64(),
        "first_sync_printed": fig.sync_printed,
        "first_search_in_new_sidecar_s": fig.first_search.as_secs_f64(),
        "peak_rss_kib_after_first_sync_in_sidecar": fig.first_sync_hwm_kib,
        "search_few": latency(&fig.few),
        "search_many": latency(&fig.many),
        "search_queries": fig.matches.iter().map(|(q, n)| json!({"query": q, "matches": n})).collect::<Vec<_>>(),
        "list_newest_50": latency(&fig.list),
        "upstream_requests_per_100_reads": {"replica_on": fig.requests.0, "replica_off": fig.requests.1},
        "replica_db_bytes": fig.db_bytes,
        "replica_wal_bytes": fig.wal_bytes,
        "peak_rss_kib_replica_open": fig.open_hwm_kib,
        "peak_rss_kib_after_searches": fig.search_hwm_kib,
    })
}
