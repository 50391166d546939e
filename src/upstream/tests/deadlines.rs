//! No call outlives its deadline: not against an upstream that never
//! answers, not while it waits for a pacing token or a slot in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::fake::{Fake, Reply, item};
use super::{UID, call, client, create_note, get_note, settings, since};
use crate::catalog::Request;
use crate::catalog::repeat::Applied;
use crate::error::ErrorCode;
use crate::upstream::Rate;

/// An upstream that never answers: with attempts allowed longer than the
/// call, the call fails `timeout` exactly at its deadline. A read may be
/// called again; a create that was on the wire may have been applied.
#[tokio::test(start_paused = true)]
async fn a_call_to_an_upstream_that_never_answers_ends_at_its_deadline() {
    let mut slow = settings();
    slow.attempt_timeout = Duration::from_secs(60);
    for (request, applied, retryable) in [
        (get_note(), None, true),
        (create_note(), Some(Applied::Unknown), false),
    ] {
        let fake = Fake::new(|_| Reply::hang());
        let client = client(&fake, slow.clone());
        let start = Instant::now();

        let error = client.send(&request, &call(5)).await.unwrap_err();

        assert_eq!(since(start), Duration::from_secs(5), "{:?}", request.class);
        assert_eq!(error.code, ErrorCode::Timeout);
        assert_eq!(error.applied, applied);
        assert_eq!(error.retryable, retryable);
        assert_eq!(fake.count(), 1);
    }
}

/// Attempts shorter than the call: each times out and is retried, and the
/// call still ends at its deadline, not after its last backoff.
#[tokio::test(start_paused = true)]
async fn retried_timeouts_still_end_at_the_deadline() {
    let mut quick = settings();
    quick.attempt_timeout = Duration::from_secs(2);
    quick.retry.max_retries = 10;
    let fake = Fake::new(|_| Reply::hang());
    let client = client(&fake, quick);
    let start = Instant::now();

    let error = client.send(&get_note(), &call(7)).await.unwrap_err();

    assert_eq!(since(start), Duration::from_secs(7));
    assert_eq!(error.code, ErrorCode::Timeout);
    assert!(fake.count() >= 3, "{} attempts in 7 s", fake.count());
}

/// Pacing at one request a minute: opening the session takes the only
/// token, and the call waiting for the next one fails `timeout` at its
/// deadline without sending. (The bucket's own clock is real time; the
/// deadline that bounds the wait is the runtime's.)
#[tokio::test(start_paused = true)]
async fn a_wait_for_a_pacing_token_is_bounded_by_the_deadline() {
    let mut paced = settings();
    paced.rate = Some(Rate {
        per_minute: 1,
        burst: 1,
    });
    let fake = Fake::new(|_| Reply::json(200, item(UID, 1)));
    let client = client(&fake, paced);
    let start = Instant::now();

    let error = client.send(&get_note(), &call(5)).await.unwrap_err();

    assert_eq!(since(start), Duration::from_secs(5));
    assert_eq!(error.code, ErrorCode::Timeout);
    assert_eq!(fake.count(), 0, "sent without a token");
    assert_eq!(fake.seen().len(), 1, "the session took the token");
}

/// One request in flight allowed and held by a hanging call: a second
/// call waits for the slot only until its own deadline.
#[tokio::test(start_paused = true)]
async fn a_wait_for_a_slot_in_flight_is_bounded_by_the_deadline() {
    let mut narrow = settings();
    narrow.max_in_flight = 1;
    let held = format!("/v1/notes/{}", uuid::Uuid::nil());
    let fake = {
        let held = held.clone();
        Fake::new(move |seen| {
            if seen.path == held {
                Reply::hang()
            } else {
                Reply::json(200, item(UID, 1))
            }
        })
    };
    let client = Arc::new(client(&fake, narrow));
    let holder = {
        let client = client.clone();
        tokio::spawn(async move { client.send(&Request::get(held), &call(60)).await })
    };
    while fake.count() == 0 {
        tokio::task::yield_now().await;
    }
    let start = Instant::now();

    let error = client.send(&get_note(), &call(3)).await.unwrap_err();

    assert_eq!(since(start), Duration::from_secs(3));
    assert_eq!(error.code, ErrorCode::Timeout);
    assert_eq!(fake.count(), 1, "a second request went out");
    holder.abort();
}
