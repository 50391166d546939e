//! Retries and their waits: backoff, `Retry-After`, and what is never sent
//! twice.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;

use super::fake::{Fake, Reply, item};
use super::{UID, call, client, create_note, get_note, planned, settings, since};
use crate::catalog::RetryClass;
use crate::catalog::repeat::Applied;
use crate::error::ErrorCode;

/// A read meeting 503 is retried exactly `max_retries` times, each wait
/// drawn from the exponential backoff (200 ms, 400 ms, 800 ms, each plus
/// up to as much again of jitter), and then fails retryable.
#[tokio::test(start_paused = true)]
async fn a_read_meeting_503_is_retried_max_retries_times_with_backoff() {
    let fake = Fake::new(|_| Reply::error(503, "unavailable"));
    let client = client(&fake, settings());
    let call = call(30);

    let error = client.send(&get_note(), &call).await.unwrap_err();

    assert_eq!(error.code, ErrorCode::UpstreamUnavailable);
    assert_eq!(error.http_status, Some(503));
    assert!(error.retryable);
    let gets = fake.scripted();
    assert_eq!(gets.len(), 4, "one attempt and three retries");
    assert_eq!(call.retries(), 3);
    for (i, pair) in gets.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let base = Duration::from_millis(200 << i);
        assert!(
            gap >= base && gap <= base * 2 + Duration::from_millis(2),
            "wait before retry {}: {gap:?}, expected {base:?} to twice that",
            i + 1
        );
    }
}

/// `Retry-After: 2` on a 429 is waited out (2 s of virtual time, not the
/// backoff's 200 ms), then the retry succeeds; the wait is reported.
#[tokio::test(start_paused = true)]
async fn retry_after_on_429_is_waited_then_the_retry_succeeds() {
    let fake = Fake::new(|seen| match seen.nth {
        0 => Reply::error(429, "slow down").header("retry-after", "2"),
        _ => Reply::json(200, item(UID, 3)),
    });
    let client = client(&fake, settings());
    let call = call(30);
    let start = Instant::now();

    let response = client.send(&get_note(), &call).await.unwrap();

    assert_eq!(response.body["version"], 3);
    let elapsed = since(start);
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2010),
        "{elapsed:?}"
    );
    let gets = fake.scripted();
    assert_eq!(gets.len(), 2);
    assert!(gets[1].at - gets[0].at >= Duration::from_secs(2));
    assert!(call.waited() >= Duration::from_secs(2));
}

/// A `Retry-After` beyond the call's deadline is not waited: the call fails
/// at once with `rate_limited` and the wait, and the next call fails the
/// same way without sending anything (the pause is shared).
#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_deadline_fails_at_once() {
    let fake = Fake::new(|_| Reply::error(429, "slow down").header("retry-after", "60"));
    let client = client(&fake, settings());
    let start = Instant::now();

    let error = client.send(&get_note(), &call(10)).await.unwrap_err();

    assert_eq!(since(start), Duration::ZERO);
    assert_eq!(error.code, ErrorCode::RateLimited);
    assert_eq!(error.retry_after_s, Some(60));
    assert!(error.retryable);
    assert_eq!(fake.count(), 1);

    let next = client.send(&get_note(), &call(10)).await.unwrap_err();
    assert_eq!(next.code, ErrorCode::RateLimited);
    assert_eq!(next.retry_after_s, Some(60));
    assert_eq!(fake.count(), 1, "sent during the upstream's pause");
    assert_eq!(since(start), Duration::ZERO);
}

/// A write guarded by `If-Match` whose attempt timed out may have been
/// applied: it is not sent again (a repeat would meet its own write as a
/// conflict), and the model is told `applied: unknown`, not retryable.
/// The same patch unguarded is idempotent and is sent again.
#[tokio::test(start_paused = true)]
async fn a_conditional_write_after_a_timeout_is_not_resent() {
    let mut quick = settings();
    quick.attempt_timeout = Duration::from_secs(2);
    let guarded = planned(
        "patch_note",
        json!({"uid": UID, "title": "new", "if_version": 3}),
    );
    assert_eq!(guarded.class, RetryClass::Conditional);
    let fake = Fake::new(|_| Reply::hang());
    let client = client(&fake, quick.clone());
    let start = Instant::now();

    let error = client.send(&guarded, &call(30)).await.unwrap_err();

    assert_eq!(since(start), Duration::from_secs(2), "one attempt timeout");
    assert_eq!(error.code, ErrorCode::Timeout);
    assert_eq!(error.applied, Some(Applied::Unknown));
    assert!(!error.retryable);
    let patches = fake.scripted();
    assert_eq!(patches.len(), 1, "the guarded write was sent again");
    assert_eq!(patches[0].method, Method::PATCH);
    assert_eq!(patches[0].header("if-match"), Some("\"3\""));

    let unguarded = planned("patch_note", json!({"uid": UID, "title": "new"}));
    assert_eq!(unguarded.class, RetryClass::Idempotent);
    let fake = Fake::new(|_| Reply::hang());
    let client = super::client(&fake, quick);
    let error = client.send(&unguarded, &call(30)).await.unwrap_err();
    assert_eq!(error.applied, Some(Applied::Unknown));
    assert_eq!(fake.count(), 4, "an idempotent patch is sent again");
}

/// A create that met a 502 (it may have reached the upstream) is sent again
/// with the identical body, client-made uid included, and the same
/// correlation id: the upstream upserts one item.
#[tokio::test(start_paused = true)]
async fn an_idempotent_create_after_a_502_is_resent_identically() {
    let request = create_note();
    assert_eq!(request.class, RetryClass::Idempotent);
    let fake = Fake::new(|seen| match seen.nth {
        0 => Reply::error(502, "bad gateway"),
        _ => Reply::json(201, item(UID, 1)),
    });
    let client = client(&fake, settings());

    client.send(&request, &call(30)).await.unwrap();

    let posts = fake.scripted();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, posts[1].body, "the retry changed the body");
    assert!(posts[0].json()["uid"].is_string(), "{}", posts[0].json());
    assert_eq!(
        posts[0].header("x-correlation-id"),
        posts[1].header("x-correlation-id")
    );
}

/// What the transport's failures mean, for a create (idempotent) and a
/// guarded patch (conditional): a refused connection never sent anything
/// (re-sent, `applied: no`, retryable); a reset or a timeout after sending
/// may have been applied (only the idempotent write is re-sent; neither is
/// retryable for the model).
#[tokio::test(start_paused = true)]
async fn transport_failures_decide_what_is_sent_again() {
    let guarded = planned(
        "patch_note",
        json!({"uid": UID, "title": "new", "if_version": 3}),
    );
    type Case = (&'static str, fn() -> Reply, ErrorCode, Applied, bool);
    let cases: [Case; 3] = [
        (
            "refused",
            Reply::refused,
            ErrorCode::UpstreamUnavailable,
            Applied::No,
            true,
        ),
        (
            "reset",
            Reply::reset,
            ErrorCode::UpstreamUnavailable,
            Applied::Unknown,
            false,
        ),
        (
            "timeout",
            Reply::timeout,
            ErrorCode::Timeout,
            Applied::Unknown,
            false,
        ),
    ];
    for (name, reply, code, applied, retryable) in cases {
        for (request, resent) in [(create_note(), true), (guarded.clone(), retryable)] {
            let fake = Fake::new(move |_| reply());
            let client = client(&fake, settings());
            let error = client.send(&request, &call(30)).await.unwrap_err();
            let case = format!("{name}, {:?}", request.class);
            assert_eq!(error.code, code, "{case}");
            assert_eq!(error.applied, Some(applied), "{case}");
            assert_eq!(error.retryable, retryable, "{case}");
            let expected = if resent { 4 } else { 1 };
            assert_eq!(fake.count(), expected, "attempts: {case}");
        }
    }
}

/// A call cancelled while it waits out a `Retry-After` ends at once and
/// sends nothing more, however long the pause would have been.
#[tokio::test(start_paused = true)]
async fn a_call_cancelled_in_its_retry_wait_sends_nothing_more() {
    let fake = Fake::new(|_| Reply::error(503, "unavailable").header("retry-after", "2"));
    let client = std::sync::Arc::new(client(&fake, settings()));
    let call = std::sync::Arc::new(call(30));
    let sending = {
        let (client, call) = (client.clone(), call.clone());
        tokio::spawn(async move { client.send(&get_note(), &call).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.count(), 1, "the first attempt went out");

    call.cancel.cancel();
    let error = sending.await.unwrap().unwrap_err();

    assert_eq!(error.code, ErrorCode::Cancelled);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fake.count(), 1, "a request went out after the cancellation");
}
