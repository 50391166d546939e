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

use common::upstream::{self, Paged, cursor};
use common::{Launch, McpProcess, err, ok};
use serde_json::{Value, json};
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
