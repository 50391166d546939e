//! 10,000 tool calls through one sidecar process, pipelined in windows of
//! 32, against a fast raw-TCP upstream: all succeed, and memory stays flat
//! (peak RSS after 1,000 and after 10,000 calls is reported and bounded
//! generously).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::{Duration, Instant};

use common::faulty::FaultyServer;
use common::upstream::UID;
use common::{Launch, McpProcess};
use serde_json::{Value, json};

const CALLS: usize = 10_000;
const WINDOW: usize = 32;

/// Runs `count` `get_note` calls, `WINDOW` at a time: all are sent, then all
/// awaited.
async fn run_calls(mcp: &mut McpProcess, count: usize) {
    let mut done = 0;
    while done < count {
        let n = WINDOW.min(count - done);
        let mut pending = Vec::with_capacity(n);
        for _ in 0..n {
            pending.push(mcp.start_tool_call("get_note", json!({"uid": UID})).await);
        }
        for rx in pending {
            let response = mcp.wait(rx).await;
            let result = &response["result"];
            assert!(
                result["isError"] != json!(true) && result["structuredContent"]["uid"] == UID,
                "call {done} failed: {response}"
            );
            done += 1;
        }
    }
}

/// 10,000 calls through one process: all succeed, one upstream request each,
/// one session, and peak RSS stays under 100 MB without growing with the
/// number of calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_through_one_process() {
    let server = FaultyServer::start().await;
    server.set_recording(false);
    // Pacing off: this measures the sidecar, not the contract's 600/min.
    let mut mcp = Launch::remote(&server.url())
        .env("TOOLBRIDGE_LOG", "info")
        .args(&["--rate-limit", "0"])
        .spawn()
        .await;
    mcp.initialize().await;
    let started = Instant::now();

    run_calls(&mut mcp, 1_000).await;
    let at_1k = (
        mcp.peak_rss_kib().unwrap(),
        mcp.rss_kib().unwrap(),
        started.elapsed(),
    );
    run_calls(&mut mcp, CALLS - 1_000).await;
    let at_10k = (
        mcp.peak_rss_kib().unwrap(),
        mcp.rss_kib().unwrap(),
        started.elapsed(),
    );

    let listed: Value = mcp.request("tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(40));
    eprintln!(
        "soak: after 1,000 calls VmHWM {} kB, VmRSS {} kB, {:.1?}; after {CALLS} calls VmHWM {} kB, VmRSS {} kB, {:.1?} ({:.0} calls/s)",
        at_1k.0,
        at_1k.1,
        at_1k.2,
        at_10k.0,
        at_10k.1,
        at_10k.2,
        CALLS as f64 / at_10k.2.as_secs_f64()
    );
    assert_eq!(
        server.entity_count(),
        CALLS,
        "one upstream request per call"
    );
    assert_eq!(server.sessions_opened(), 1);
    assert!(at_10k.0 < 100 * 1024, "peak RSS {} kB", at_10k.0);
    assert!(
        at_10k.0 < 2 * at_1k.0 + 10 * 1024,
        "peak RSS grew from {} kB to {} kB",
        at_1k.0,
        at_10k.0
    );
    assert!(at_10k.2 < Duration::from_secs(180), "took {:?}", at_10k.2);
    let status = mcp.shutdown().await;
    assert!(status.success(), "exit status {status}");
}
