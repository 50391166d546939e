//! The circuit breaker inside the client: it opens on a run of failed
//! attempts, fails calls fast during its cooldown, lets one probe through
//! after it, and closes on the probe's success.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::fake::{Fake, Reply, item};
use super::{UID, call, client, create_note, get_note, settings, since};
use crate::error::{ErrorCode, ToolError};
use crate::upstream::{BreakerState, Client, ClientSettings};

/// Threshold 3, cooldown 10 s, no retries: each call is one attempt.
fn breaker_settings(threshold: u32) -> ClientSettings {
    let mut s = settings();
    s.breaker_threshold = threshold;
    s.breaker_cooldown = Duration::from_secs(10);
    s.retry.max_retries = 0;
    s
}

async fn get(client: &Client) -> Result<(), ToolError> {
    client.send(&get_note(), &call(30)).await.map(drop)
}

fn assert_circuit_open(result: Result<(), ToolError>, retry_after_s: u64) {
    let error = result.expect_err("the circuit is open");
    assert_eq!(error.code, ErrorCode::UpstreamUnavailable, "{error:?}");
    assert!(error.message.contains("circuit open"), "{error:?}");
    assert_eq!(error.retry_after_s, Some(retry_after_s), "{error:?}");
    assert!(error.retryable, "an open circuit is worth trying later");
}

/// Three failed attempts open the circuit; calls then fail fast, with no
/// request reaching the upstream, saying when the next probe goes; after
/// the cooldown exactly one probe goes out while the others still fail
/// fast; its success closes the circuit and traffic flows again.
#[tokio::test(start_paused = true)]
async fn failures_open_the_circuit_and_one_probe_closes_it() {
    let status = Arc::new(AtomicU16::new(503));
    let fake = {
        let status = status.clone();
        Fake::new(move |_| match status.load(Ordering::SeqCst) {
            200 => Reply::json(200, item(UID, 1)).after(Duration::from_secs(1)),
            code => Reply::error(code, "down"),
        })
    };
    let client = Arc::new(client(&fake, breaker_settings(3)));
    for _ in 0..2 {
        get(&client).await.unwrap_err();
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 2 });
    get(&client).await.unwrap_err();
    assert_eq!(fake.count(), 3);

    let start = Instant::now();
    assert_circuit_open(get(&client).await, 10);
    assert_eq!(since(start), Duration::ZERO, "failing fast took time");
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_circuit_open(get(&client).await, 6);
    assert_eq!(fake.count(), 3, "a request reached the upstream while open");

    // The cooldown is over and the upstream is back (answering in 1 s).
    status.store(200, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(6)).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client).await })
        })
        .collect();
    let mut probes = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => probes += 1,
            refused => assert_circuit_open(refused, 1),
        }
    }
    assert_eq!(probes, 1, "one probe while half-open");
    assert_eq!(fake.count(), 4);
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });

    for _ in 0..3 {
        get(&client).await.unwrap();
    }
    assert_eq!(fake.count(), 7);
}

/// A write's 500 (most often a missing parent) says nothing about the
/// upstream's health: five of them leave the circuit closed with no failure
/// counted, while two reads meeting the same 500 open it.
#[tokio::test(start_paused = true)]
async fn a_writes_500_does_not_count() {
    let fake = Fake::new(|_| Reply::error(500, "parent missing"));
    let client = client(&fake, breaker_settings(2));
    for _ in 0..5 {
        let error = client
            .send(&create_note(), &call(30))
            .await
            .expect_err("500");
        assert_eq!(error.http_status, Some(500));
    }
    assert_eq!(fake.count(), 5);
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });

    for _ in 0..2 {
        get(&client).await.unwrap_err();
    }
    assert_circuit_open(get(&client).await, 10);
    assert_eq!(fake.count(), 7);
}
