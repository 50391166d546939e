//! Cursors and filtered pages, through the real binary against a stand-in
//! that pages as the upstream does: a cursor the server did not hand out is
//! refused instead of silently restarting the listing, and a filtered list
//! (which the upstream cannot filter) reads on past pages without a match
//! instead of returning an empty page that looks like "none".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upstream::{self, Paged, cursor};
use common::{Launch, McpProcess, err, ok};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use toolbridge_mcp::catalog::{Catalog, Selection};
use toolbridge_mcp::service::Service;
use toolbridge_mcp::upstream::{
    Answer, Auth, Client, ClientConfig, ClientSettings, Rate, RetryPolicy, SendFuture, Transport,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

const PARENT: &str = "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2";
const OTHER: &str = "9d3e1f20-7a4b-4c6d-8e9f-0a1b2c3d4e5f";

/// A stand-in whose `collection` holds `items`, paged as the upstream pages.
async fn stand_in(collection: &str, items: Paged) -> MockServer {
    let server = MockServer::start().await;
    upstream::mount_session(&server).await;
    Mock::given(method("GET"))
        .and(path(collection))
        .respond_with(items)
        .mount(&server)
        .await;
    server
}

async fn launch(server: &MockServer, extra: &[&str]) -> McpProcess {
    let mut mcp = Launch::remote(&server.uri()).args(extra).spawn().await;
    mcp.initialize().await;
    mcp
}

fn uids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uid"].as_str().unwrap().to_owned())
        .collect()
}

/// The uid `Paged` gives its `i`th item.
fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Comments on `PARENT` at the indices given, on another note elsewhere.
fn comments(count: usize, on_parent: &'static [usize]) -> Paged {
    Paged::new(count, move |i| {
        let parent = if on_parent.contains(&i) {
            PARENT
        } else {
            OTHER
        };
        json!({"parentType": "note", "parentUid": parent, "content": format!("c{i}")})
    })
}

/// Issue 15, item 5: the upstream restarts from the first page on a cursor
/// it cannot decode, so the server refuses, before sending anything, a
/// cursor it did not hand out (made up, cut short, or of another listing),
/// naming the parameter; the cursors it hands out still page on.
#[tokio::test]
async fn a_cursor_it_did_not_hand_out_is_refused() {
    let server = stand_in(
        "/v1/notes",
        Paged::new(5, |i| json!({"title": format!("n{i}")})),
    )
    .await;
    let mut mcp = launch(&server, &[]).await;

    let first = mcp.call_tool("list_notes", json!({"limit": 2})).await;
    assert_eq!(uids(ok(&first)), [uid(0), uid(1)]);
    let next = ok(&first)["nextCursor"].as_str().unwrap().to_owned();
    let second = mcp
        .call_tool("list_notes", json!({"limit": 2, "cursor": next}))
        .await;
    assert_eq!(
        uids(ok(&second)),
        [uid(2), uid(3)],
        "its own cursor pages on"
    );

    let sent = upstream::entity_requests(&server).await.len();
    let cut_short = &next[..next.len() - 4];
    let newest_first = format!("n.{next}");
    for (bad, says) in [
        ("c-1", "not one this server handed out"),
        (cut_short, "not one this server handed out"),
        ("s.NDA", "continues a search"),
        (newest_first.as_str(), "order newest"),
    ] {
        let refused = mcp
            .call_tool("list_notes", json!({"limit": 2, "cursor": bad}))
            .await;
        let e = err(&refused);
        assert_eq!(e["code"], "invalid_input", "{bad}: {refused}");
        let message = e["message"].as_str().unwrap();
        assert!(message.starts_with("cursor: "), "{message}");
        assert!(message.contains(says), "{bad}: {message}");
        assert!(message.contains("omit it to start over"), "{message}");
    }
    assert_eq!(
        upstream::entity_requests(&server).await.len(),
        sent,
        "nothing is sent for a refused cursor"
    );

    // The protocol's cursor of resources/list: a JSON-RPC invalid-params
    // error, not an empty list that passes for the end.
    let listed = mcp
        .request("resources/list", json!({"cursor": "garbage"}))
        .await;
    assert_eq!(listed["error"]["code"], -32602, "{listed}");
    assert!(
        listed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"),
        "{listed}"
    );

    // With the replica on, what either path hands out pages on: the upstream's
    // cursor from above, the replica's newest-first one, a search's.
    let dir = tempfile::tempdir().unwrap();
    let mut local = Launch::remote(&server.uri())
        .with_replica(dir.path(), "0")
        .args(&["--toolsets", "notes"])
        .spawn()
        .await;
    local.initialize().await;
    let on = local
        .call_tool("list_notes", json!({"limit": 2, "cursor": next}))
        .await;
    assert_eq!(uids(ok(&on)), [uid(2), uid(3)], "{on}");
    let newest = json!({"limit": 2, "order": "newest"});
    let first = local.call_tool("list_notes", newest.clone()).await;
    assert_eq!(uids(ok(&first)), [uid(4), uid(3)], "{first}");
    let mut args = newest;
    args["cursor"] = ok(&first)["nextCursor"].clone();
    let second = local.call_tool("list_notes", args).await;
    assert_eq!(uids(ok(&second)), [uid(2), uid(1)], "{second}");
    let search = json!({"query": "", "limit": 2});
    let first = local.call_tool("search", search.clone()).await;
    let mut args = search;
    args["cursor"] = ok(&first)["nextCursor"].clone();
    let second = local.call_tool("search", args).await;
    assert_eq!(ok(&second)["hits"].as_array().unwrap().len(), 2, "{second}");
    local.shutdown().await;
    mcp.shutdown().await;
}

/// Issue 15, item 6: with the replica off, `list_comments parent_uid=...`
/// reads on past upstream pages that hold only other notes' comments, fills
/// the page up to `limit` (a cursor right after the last match it keeps),
/// and ends without a cursor where the listing ends.
#[tokio::test]
async fn a_filtered_list_reads_on_past_pages_without_a_match() {
    let server = stand_in("/v1/comments", comments(4000, &[1500, 1501, 1502, 3999])).await;
    let mut mcp = launch(&server, &[]).await;

    let args = |cursor: Option<&str>| {
        let mut args = json!({"parent_uid": PARENT, "limit": 2});
        if let Some(cursor) = cursor {
            args["cursor"] = json!(cursor);
        }
        args
    };
    let first = mcp.call_tool("list_comments", args(None)).await;
    let page = ok(&first);
    assert_eq!(uids(page), [uid(1500), uid(1501)], "{first}");
    let next = page["nextCursor"].as_str().unwrap();
    assert_eq!(next, cursor(1_793_527_201_501, &uid(1501)));
    assert!(page.get("incomplete").is_none(), "{first}");

    let second = mcp.call_tool("list_comments", args(Some(next))).await;
    let page = ok(&second);
    assert_eq!(uids(page), [uid(1502), uid(3999)], "{second}");
    assert!(
        page.get("nextCursor").is_none(),
        "the listing ended: {second}"
    );

    // The upstream cannot filter: it is asked for its largest pages.
    let requests = upstream::entity_requests(&server).await;
    assert!(
        requests.iter().all(|r| r
            .url
            .query_pairs()
            .any(|(k, v)| k == "limit" && v == "1000")),
        "pages of 1000"
    );
    mcp.shutdown().await;
}

/// A filtered list stops after its page bound with a cursor left, and says
/// so in `incomplete`, so an empty page is never read as "no comments"; the
/// cursor then reads on to the match.
#[tokio::test]
async fn a_filtered_list_says_when_it_stopped_early() {
    let server = stand_in("/v1/comments", comments(21_001, &[20_500])).await;
    let mut mcp = launch(&server, &[]).await;

    let first = mcp
        .call_tool("list_comments", json!({"parent_uid": PARENT}))
        .await;
    let page = ok(&first);
    assert_eq!(page["items"], json!([]), "{first}");
    assert_eq!(
        page["incomplete"],
        "scanned 20000 comments without a match; pass nextCursor to read on"
    );
    let next = page["nextCursor"].as_str().unwrap();
    assert_eq!(next, cursor(1_793_527_219_999, &uid(19_999)));

    let second = mcp
        .call_tool(
            "list_comments",
            json!({"parent_uid": PARENT, "cursor": next}),
        )
        .await;
    let page = ok(&second);
    assert_eq!(uids(page), [uid(20_500)], "{second}");
    assert!(page.get("nextCursor").is_none(), "{second}");
    assert!(page.get("incomplete").is_none(), "{second}");
    mcp.shutdown().await;
}

/// An upstream in-process: a session for the asking; a first page of 1,000
/// comments with one on `PARENT` (the 11th), and then no answer ever.
struct FirstPageThenSilence;

impl Transport for FirstPageThenSilence {
    fn send(&self, request: reqwest::Request) -> SendFuture<'_> {
        let json = |status: u16, body: Value| -> Answer {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let status = StatusCode::from_u16(status).unwrap();
            (status, headers, body.to_string().into_bytes())
        };
        if request.url().path() == "/v1/sync/sessions" {
            let session = json(201, json!({"id": "sess-1", "epoch": 1, "userId": "u-1"}));
            return Box::pin(async move { Ok(session) });
        }
        if request.url().query_pairs().any(|(k, _)| k == "cursor") {
            return Box::pin(std::future::pending());
        }
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                let parent = if i == 10 { PARENT } else { OTHER };
                json!({"uid": uid(i), "version": 1, "updatedAt": "2026-11-01T10:00:00Z",
                       "payload": {"parentType": "note", "parentUid": parent}})
            })
            .collect();
        let page = json(
            200,
            json!({"items": items, "nextCursor": cursor(1, &uid(999))}),
        );
        Box::pin(async move { Ok(page) })
    }
}

/// A filtered list whose next page does not come within the call's deadline
/// answers at the deadline with what it found, the cursor of the page that
/// did not come, and `incomplete` saying so.
#[tokio::test(start_paused = true)]
async fn a_filtered_list_answers_with_what_it_found_at_its_deadline() {
    let config = ClientConfig {
        base_url: "http://upstream.test".into(),
        auth: Auth::Bearer(SecretString::from("t")),
        tenant_id: Some("t-1".into()),
        token_command: None,
        settings: ClientSettings {
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_response_bytes: 1 << 24,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(15),
            rate: Some(Rate {
                per_minute: 0,
                burst: 0,
            }),
            max_in_flight: 8,
            ca_bundle: None,
        },
    };
    let client = Arc::new(Client::with_transport(config, Arc::new(FirstPageThenSilence)).unwrap());
    let selection = Selection {
        local: false,
        ..Selection::default()
    };
    let service = Service::new(
        Catalog::select(&selection),
        client,
        None,
        Duration::from_secs(10),
    );
    let tool = service.catalog().get("list_comments").unwrap();
    let args = json!({"parent_uid": PARENT, "limit": 5});
    let start = tokio::time::Instant::now();

    let page = service
        .run(tool, args.as_object().cloned(), CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(start.elapsed(), Duration::from_secs(10), "at the deadline");
    assert_eq!(uids(&page), [uid(10)], "{page}");
    assert_eq!(page["nextCursor"], cursor(1, &uid(999)));
    assert_eq!(
        page["incomplete"],
        "scanned 1000 comments, then the next page timed out; pass nextCursor to read on"
    );
}
