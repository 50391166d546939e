//! The sync session across virtual minutes: renewed before it expires (the
//! old one ended), re-established once when the upstream refuses it.

use std::time::Duration;

use reqwest::Method;

use super::fake::{Fake, Reply, item};
use super::{UID, call, client, get_note, settings};
use crate::error::ErrorCode;

const MINUTE: Duration = Duration::from_secs(60);

/// A session living 30 minutes is used for 28 of them; past its renewal
/// point (one minute before it ends) the next call opens a new one, ends
/// the old one with `DELETE /v1/sync/sessions/{id}`, and then sends.
#[tokio::test(start_paused = true)]
async fn a_session_is_renewed_before_it_expires_and_the_old_one_ended() {
    let fake = Fake::new(|_| Reply::json(200, item(UID, 1)));
    let client = client(&fake, settings());

    client.send(&get_note(), &call(30)).await.unwrap();
    tokio::time::advance(28 * MINUTE).await;
    client.send(&get_note(), &call(30)).await.unwrap();
    assert_eq!(
        fake.log(),
        [
            "POST /v1/sync/sessions".to_owned(),
            format!("GET /v1/notes/{UID}"),
            format!("GET /v1/notes/{UID}"),
        ],
        "renewed too early"
    );

    tokio::time::advance(MINUTE + MINUTE / 2).await;
    client.send(&get_note(), &call(30)).await.unwrap();

    let seen = fake.seen();
    assert_eq!(
        fake.log()[3..],
        [
            "POST /v1/sync/sessions".to_owned(),
            "DELETE /v1/sync/sessions/sess-1".to_owned(),
            format!("GET /v1/notes/{UID}"),
        ]
    );
    assert_eq!(seen[1].header("x-sync-session"), Some("sess-1"));
    assert_eq!(seen[5].header("x-sync-session"), Some("sess-2"));
    assert_eq!(seen[4].method, Method::DELETE);
}

/// A `428` (the upstream lost the session) opens a new session and replays
/// the request once, at once and without spending a retry; the refused
/// session is not ended (the upstream no longer has it).
#[tokio::test(start_paused = true)]
async fn a_428_resessions_once_and_replays() {
    let fake = Fake::new(|seen| match seen.header("x-sync-session") {
        Some("sess-1") => Reply::error(428, "Invalid or expired sync session."),
        _ => Reply::json(200, item(UID, 2)),
    });
    let client = client(&fake, settings());
    let call = call(30);
    let start = tokio::time::Instant::now();

    let response = client.send(&get_note(), &call).await.unwrap();

    assert_eq!(response.body["version"], 2);
    assert_eq!(tokio::time::Instant::now(), start, "the replay waited");
    assert_eq!(call.retries(), 0, "the replay spent a retry");
    assert_eq!(
        fake.log(),
        [
            "POST /v1/sync/sessions".to_owned(),
            format!("GET /v1/notes/{UID}"),
            "POST /v1/sync/sessions".to_owned(),
            format!("GET /v1/notes/{UID}"),
        ]
    );
    let gets = fake.scripted();
    assert_eq!(gets[1].header("x-sync-session"), Some("sess-2"));
}

/// A session the upstream keeps refusing is re-established once per call,
/// not in a loop, even when a retry comes between the refusals: the call
/// then fails with the `428`.
#[tokio::test(start_paused = true)]
async fn a_persistent_428_is_resessioned_only_once_per_call() {
    let fake = Fake::new(|seen| match seen.nth {
        1 => Reply::error(503, "unavailable"),
        _ => Reply::error(428, "Invalid or expired sync session."),
    });
    let client = client(&fake, settings());

    let error = client.send(&get_note(), &call(30)).await.unwrap_err();

    assert_eq!(error.code, ErrorCode::UpstreamError);
    assert_eq!(error.http_status, Some(428));
    let sessions: Vec<_> = fake
        .scripted()
        .iter()
        .map(|s| s.header("x-sync-session").map(str::to_owned))
        .collect();
    assert_eq!(
        sessions,
        [Some("sess-1"), Some("sess-2"), Some("sess-2")].map(|s| s.map(str::to_owned)),
        "428, re-session, 503, retry, 428: no second re-session"
    );
}
