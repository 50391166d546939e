//! The local replica and what results cost a model:
//!
//! - `get_note` answered from a fresh replica of the stand-in
//!   ([`hot_sidecar`], measured in the latency rounds);
//! - over 10,000 notes created through the embedded API (served here, its
//!   entity rate limits lifted): `search` and a newest-first `list_notes` page, the
//!   first sync, the replica's size, and peak RSS after 10,000 searches;
//! - tokens (o200k_base) and bytes of typical results: a page of 50 notes,
//!   one task, a search of 20 hits, as the upstream's raw items (`raw: true`),
//!   as the lean default, and as short markdown, the alternative rendition.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use toolbridge_mcp::embedded::{self, ApiConfig, RateLimits};

use crate::common::api::Device;
use crate::common::fast_upstream::Counters;
use crate::common::{Launch, McpProcess};
use crate::{BoxError, Samples, Setup, Table, checked, hot, mib, ms, note_args};

const ITEMS: usize = 10_000;
/// `--max-staleness` of the measuring sidecars: no refresh inside a loop.
const NO_REFRESH: &str = "3600";
const SEARCHES: usize = 10_000;
const SECRET: &str = "sidecar-bench-secret";
/// Longer than the replica's re-read window (5 s, `src/replica/follow.rs`):
/// notes created in a burst would all be re-read by every refresh, real ones
/// are spread over months; the last note is created alone after this pause.
const REREAD_PAUSE: Duration = Duration::from_millis(5_500);
/// Each note has three topics (each in about 30% of notes), sixty filler
/// words, and one rare word of three syllables (each in exactly 5 notes).
const TOPICS: [&str; 10] = [
    "meeting", "project", "budget", "travel", "recipe", "garden", "invoice", "design", "release",
    "family",
];
const FILLER: &str = "lorem ipsum dolor amet consectetur adipiscing tempor incididunt labore magna aliqua veniam \
    nostrud exercitation ullamco laboris commodo consequat aute irure voluptate velit cillum deserunt";
const SYLLABLES: [&str; 16] = [
    "ba", "ke", "mi", "no", "pu", "ra", "se", "ti", "vo", "zu", "ga", "fe", "hi", "jo", "wu", "xy",
];
const RARE_WORDS: usize = 2_000;
/// Queries matching a handful of notes, and thousands.
const FEW: [usize; 4] = [17, 503, 1_250, 1_999];
const MANY: [&str; 4] = ["meeting", "project", "lorem", "des"];

/// `path`, with no database there (nor its journal files) any more.
pub fn fresh_db(path: PathBuf) -> PathBuf {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// A sidecar on the stand-in with a fresh replica, after its first sync,
/// checked to answer `get_note` from it: the upstream sees no request for
/// 200 calls.
pub async fn hot_sidecar(setup: &Setup) -> Result<McpProcess, BoxError> {
    let dir = setup.dir.join("replica-hot");
    let reads = &setup.upstream.counters.reads;
    let _ = std::fs::remove_dir_all(&dir);
    let launch = setup.remote().with_replica(&dir, NO_REFRESH);
    let mut process = hot(launch, ("search", json!({"query": "benchmark"}))).await;
    let before = Counters::get(reads);
    checked(process.call_loop("get_note", note_args(), 1, 0, 200).await, "replica get_note")?;
    if Counters::get(reads) != before {
        return Err("the replica sidecar asked the upstream for get_note".into());
    }
    Ok(process)
}

fn rare_word(n: usize) -> String {
    (0..3).map(|k| SYLLABLES[(n >> (4 * k)) & 15]).collect()
}

/// Note `i`'s create body (splitmix64: the same corpus every run).
fn note(i: usize) -> Value {
    let mut state = i as u64;
    let mut next = |n: usize| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
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
    json!({
        "title": format!("{} {} {i}", topics[0], rare_word(i * 7 % RARE_WORDS)),
        "content": format!("{} and {}: {}.", topics[1], topics[2], filler.join(" ")),
        "tags": [topics[0], if i.is_multiple_of(2) { "work" } else { "home" }],
    })
}

/// Notes with a word starting with `query`, as the prefix search matches.
fn matches(notes: &[Value], query: &str) -> usize {
    let text = |n: &Value| format!("{} {} {}", n["title"], n["content"], n["tags"]).to_lowercase();
    let words_match =
        |t: String| t.split(|c: char| !c.is_alphanumeric()).any(|w| w.starts_with(query));
    notes.iter().filter(|n| words_match(text(n))).count()
}

/// Creates the notes (8 in flight) and one task through the embedded API at
/// `db`, the last note [`REREAD_PAUSE`] after the others; returns how long
/// the others took.
async fn seed(db: &Path, notes: Arc<Vec<Value>>) -> Result<Duration, BoxError> {
    // The creates unpaced; the one session within the default limits.
    let limits =
        RateLimits { entity_per_minute: u32::MAX, entity_burst: u32::MAX, ..Default::default() };
    let secret = SecretString::from(SECRET.to_owned());
    let api = embedded::spawn(ApiConfig { db_path: db.to_owned(), secret, limits }).await?;
    let device = Arc::new(Device::open(&api.base_url(), SECRET).await);
    let task = json!({"title": "Prepare the 2.4 release notes", "description": "Collect the merged changes since 2.3, group them by area and draft the notes for review.",
        "status": "in_progress", "priority": "high", "dueDate": "2026-12-15", "tags": ["release", "work"]});
    device.send(Method::POST, "/v1/tasks", Some(task)).await;
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for first in 0..8 {
        let (device, notes) = (device.clone(), notes.clone());
        writers.spawn(async move {
            let mut newest = 0;
            // Every eighth note, all but the last.
            for note in notes[..notes.len() - 1].iter().skip(first).step_by(8) {
                let item = device.send(Method::POST, "/v1/notes", Some(note.clone())).await;
                newest = newest.max(item["payload"]["updatedTs"].as_u64().unwrap_or(0));
            }
            newest
        });
    }
    let newest = writers.join_all().await.into_iter().max().unwrap_or(0);
    let took = started.elapsed();
    // The API stamps each write at least 1 ms after the last: a burst runs
    // ahead of the clock, so the pause starts at the newest stamp.
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(newest.saturating_sub(now_ms)) + REREAD_PAUSE).await;
    device.send(Method::POST, "/v1/notes", notes.last().cloned()).await;
    api.shutdown().await;
    Ok(took)
}

pub async fn measure(table: &mut Table, setup: &Setup) -> Result<(), BoxError> {
    let db = fresh_db(setup.dir.join("replica-source.db"));
    eprintln!("sidecar bench: replica: creating {ITEMS} notes");
    let notes: Arc<Vec<Value>> = Arc::new((0..ITEMS).map(note).collect());
    let seeded = seed(&db, notes.clone()).await?;
    table.section(&format!(
        "Local replica, {ITEMS} notes of about {} bytes (created in {:.1} s)",
        notes[0].to_string().len(),
        seeded.as_secs_f64()
    ));

    eprintln!("sidecar bench: replica: first sync");
    let mut syncs = Vec::new();
    let dir = setup.dir.join("replica-10k");
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&dir);
        let started = Instant::now();
        let mut sync = std::process::Command::new(&setup.sidecar);
        sync.env_clear().arg("--db-path").arg(&db).arg("--replica-dir").arg(&dir).arg("sync");
        let output = sync.output()?;
        syncs.push(started.elapsed().as_secs_f64());
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.contains(&format!(" {ITEMS} items fetched")) {
            return Err(format!("sync: {}: {stdout}", output.status).into());
        }
    }
    let sync = Samples::from(syncs.clone()).median();
    let first_dir = setup.dir.join("replica-first-search");
    let _ = std::fs::remove_dir_all(&first_dir);
    let spawned = Instant::now();
    let launch = setup.sidecar(Launch::embedded(&db)).with_replica(&first_dir, NO_REFRESH);
    let first = hot(launch, ("search", json!({"query": rare_word(FEW[0])}))).await;
    let first_search = spawned.elapsed().as_secs_f64();
    let first_hwm = first.peak_rss_kib().unwrap_or(0);
    first.shutdown().await;
    let figure = "first sync from the embedded API (`toolbridge-mcp sync`, median of 3)";
    let measured = format!("{sync:.2} s; a new sidecar's first `search`: {first_search:.2} s");
    table.goal(figure, measured, "< 3 s", Some(sync < 3.0 && first_search < 3.0));
    let size: u64 = std::fs::read_dir(&dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("replica-"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    table.row("replica on disk", mib(size / 1024));

    eprintln!("sidecar bench: replica: search and list");
    let launch = setup.sidecar(Launch::embedded(&db)).with_replica(&dir, NO_REFRESH);
    let mut sidecar = hot(launch, ("list_notes", json!({"limit": 1}))).await;
    let open_hwm = sidecar.peak_rss_kib().unwrap_or(0);
    let classes = [
        ("a handful", "few", FEW.map(rare_word).to_vec()),
        ("thousands", "many", MANY.map(str::to_owned).to_vec()),
    ];
    for (name, key, queries) in classes {
        let (mut latencies, mut counts) = (Vec::new(), Vec::new());
        for query in queries {
            let expected = matches(&notes, &query);
            let reply = sidecar.call_tool("search", json!({"query": query})).await;
            let hits = reply["structuredContent"]["hits"].as_array().map_or(0, Vec::len);
            if hits != expected.min(20) {
                return Err(format!("search {query}: {hits} hits, {expected} expected").into());
            }
            let run = sidecar.call_loop("search", json!({"query": query}), 1, 0, SEARCHES / 8);
            latencies.extend(checked(run.await, "search")?.latencies);
            counts.push(expected);
        }
        let s = Samples::from(latencies);
        let (min, max) = (counts.iter().min().unwrap_or(&0), counts.iter().max().unwrap_or(&0));
        let figure = format!("`search` matching {name} ({min}–{max} notes), p50 (p99)");
        table.goal(&figure, s.median_p99(ms), "p50 < 2 ms", Some(s.median() < 2_000.0));
        table.record(&format!("search_{key}"), s.json());
    }
    let search_hwm = sidecar.peak_rss_kib().unwrap_or(0);
    let page = json!({"order": "newest", "limit": 50});
    let list = checked(sidecar.call_loop("list_notes", page, 1, 100, 2_000).await, "list")?;
    let list = Samples::from(list.latencies);
    table.row("`list_notes` newest first, a page of 50, p50 (p99)", list.median_p99(ms));
    let measured = format!(
        "{} ({} before them; {} in the new sidecar after its first sync)",
        mib(search_hwm),
        mib(open_hwm),
        mib(first_hwm)
    );
    let figure = format!("sidecar peak RSS after {SEARCHES} searches");
    table.goal(&figure, measured, "< 30 MB (28.6 MiB)", Some(search_hwm * 1024 < 30_000_000));
    table.record("replica", json!({"sync_s": syncs, "first_search_s": first_search, "bytes": size, "list_50": list.json(), "hwm_kib": [open_hwm, search_hwm, first_hwm]}));
    tokens(table, &mut sidecar).await?;
    sidecar.shutdown().await;
    Ok(())
}

/// Bytes and o200k_base tokens of typical results, before (the upstream's
/// raw items) and after (the lean default, as `content[0].text` carries it),
/// and the same lean result as short markdown.
async fn tokens(table: &mut Table, sidecar: &mut McpProcess) -> Result<(), BoxError> {
    let bpe = tiktoken_rs::o200k_base()?;
    let count = |text: &str| format!("{} B / {} tok", text.len(), bpe.encode_ordinary(text).len());
    let text =
        |result: &Value| result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
    let mut call = async |tool: &str, args: Value| sidecar.call_tool(tool, args).await;
    let lean_page = call("list_notes", json!({"order": "newest", "limit": 50})).await;
    let raw_page = call("list_notes", json!({"order": "newest", "limit": 50, "raw": true})).await;
    let tasks = call("list_tasks", json!({})).await;
    let task_uid = &tasks["structuredContent"]["items"][0]["uid"];
    let lean_task = call("get_task", json!({"uid": task_uid})).await;
    let raw_task = call("get_task", json!({"uid": task_uid, "raw": true})).await;
    let search = call("search", json!({"query": "meeting"})).await;
    let mut raw_hits = Vec::new();
    for hit in search["structuredContent"]["hits"].as_array().into_iter().flatten() {
        let raw = call("get_note", json!({"uid": hit["uid"], "raw": true})).await;
        raw_hits.push(raw["structuredContent"].clone());
    }
    table.section("What a model reads (o200k_base): before (raw items) → after (lean JSON text) · short markdown");
    let mut figures = Vec::new();
    for (name, raw, lean) in [
        ("a page of 50 notes", text(&raw_page), &lean_page),
        ("one task", text(&raw_task), &lean_task),
        ("a search of 20 hits", json!({"items": raw_hits}).to_string(), &search),
    ] {
        let (lean_text, structured) = (text(lean), &lean["structuredContent"]);
        if lean_text != serde_json::to_string(structured)? {
            return Err(format!("{name}: the text is not structuredContent's JSON").into());
        }
        let markdown = markdown(structured);
        table.row(name, format!("{} → {} · {}", count(&raw), count(&lean_text), count(&markdown)));
        figures.push(json!({"result": name, "raw": count(&raw), "lean_json": count(&lean_text), "markdown": count(&markdown)}));
    }
    table.record("tokens_o200k", json!(figures));
    Ok(())
}

/// A short markdown rendition of a result that keeps every value: the
/// scalars of the top level as `key: value` lines, then one bullet per item
/// or hit with its fields in one line (`key: value; ...`, arrays joined).
fn markdown(result: &Value) -> String {
    let mut out = String::new();
    for (key, value) in result.as_object().into_iter().flatten() {
        match value {
            Value::Array(items) if items.iter().all(Value::is_object) => {
                out += &format!("{key}:\n");
                for item in items {
                    out += &format!("- {}\n", inline(item));
                }
            }
            _ => out += &format!("{key}: {}\n", inline(value)),
        }
    }
    out
}

/// A value in one line: strings bare, arrays joined by commas, objects as
/// `key: value` pairs joined by semicolons.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(inline).collect::<Vec<_>>().join(", "),
        Value::Object(o) => {
            o.iter().map(|(k, v)| format!("{k}: {}", inline(v))).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}
