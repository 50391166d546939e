//! Pages of a list that must fit the response cap: asked again with half
//! their `limit` until they do, without counting against the breaker.

use serde_json::{Value, json};

use super::fake::{Fake, Reply, item};
use super::{UID, call, client, settings};
use crate::catalog::Request;
use crate::error::ErrorCode;
use crate::upstream::BreakerState;

/// A list of `/v1/notes` asking for `limit` items.
fn list_notes(limit: &str) -> Request {
    let mut request = Request::get("/v1/notes".into());
    request.query.push(("limit", limit.into()));
    request
}

fn limit_of(query: &str) -> usize {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

/// A page of `n` items with a cursor after it.
fn page(n: usize) -> Value {
    json!({"items": vec![item(UID, 1); n], "nextCursor": "c-1"})
}

/// An upstream whose pages fit the cap up to `fits` items.
fn upstream_fitting(fits: usize) -> std::sync::Arc<Fake> {
    Fake::new(move |seen| match limit_of(&seen.query) {
        n if n > fits => Reply::too_large(1 << 20),
        n => Reply::json(200, page(n)),
    })
}

/// From 1000 down by halves to the first page that fits (7 items): eight
/// requests, the page says the limit it was asked with, and the seven
/// refused answers do not open a circuit whose threshold is three.
#[tokio::test(start_paused = true)]
async fn a_page_over_the_cap_is_asked_again_with_half_the_limit() {
    let fake = upstream_fitting(7);
    let mut settings = settings();
    settings.breaker_threshold = 3;
    let client = client(&fake, settings);
    let page = client
        .send_page(&list_notes("1000"), &call(30))
        .await
        .unwrap();
    assert_eq!((page.limit, page.shrunk), (7, true));
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(7));
    let asked: Vec<usize> = fake.scripted().iter().map(|s| limit_of(&s.query)).collect();
    assert_eq!(asked, [1000, 500, 250, 125, 62, 31, 15, 7]);
    assert_eq!(client.breaker_state(), BreakerState::Closed { failures: 0 });

    // A page that fits is not asked twice.
    let whole = client.send_page(&list_notes("5"), &call(30)).await.unwrap();
    assert_eq!((whole.limit, whole.shrunk), (5, false));
}

/// One item alone over the cap fails, naming the entity's get tool with
/// offset and the cap.
#[tokio::test(start_paused = true)]
async fn an_item_alone_over_the_cap_fails_saying_how_to_read_it() {
    let fake = upstream_fitting(0);
    let client = client(&fake, settings());
    let error = client
        .send_page(&list_notes("4"), &call(30))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::UpstreamError);
    assert_eq!(
        error.message,
        "the next note of this list alone is larger than the upstream response cap of 1048576 bytes \
         (--max-response-bytes): raise the cap to list past it; get_note with offset then reads it in pieces"
    );
    let asked: Vec<usize> = fake.scripted().iter().map(|s| limit_of(&s.query)).collect();
    assert_eq!(asked, [4, 2, 1]);
}
