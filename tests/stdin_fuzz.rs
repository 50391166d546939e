//! Hostile input on stdin: truncated and oversized lines, wrong types, deep
//! nesting, invalid UTF-8, NUL bytes, blank lines, duplicate ids, and a few
//! hundred generated malformed messages. After every batch the server must
//! still be running and answer a valid `tools/call` correctly; at shutdown
//! stdout must have carried only JSON-RPC lines.
//!
//! The generated batch uses a small deterministic PRNG; the seed is printed
//! and can be fixed with `FUZZ_SEED` (and the case count with `FUZZ_CASES`).
//! When a batch breaks the server, the lines are replayed one by one against
//! fresh servers to name the one that does it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::upstream::{self, UID, item};
use common::{Launch, McpProcess};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long a healthy server may take to answer the check call.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

async fn start() -> (MockServer, McpProcess) {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    (server, mcp)
}

/// Writes `bytes` to the server's stdin (bounded: a server that stopped
/// reading would otherwise block the write forever).
async fn feed(mcp: &mut McpProcess, bytes: &[u8], label: &str) -> Result<(), String> {
    if let Some(status) = mcp.exited() {
        return Err(format!("the server had exited ({status}) before {label}"));
    }
    match tokio::time::timeout(Duration::from_secs(30), mcp.send_raw(bytes)).await {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("the server stopped reading stdin during {label}")),
    }
}

/// The server is running, answers a valid `tools/call` correctly, has not
/// panicked anywhere (a panicking task would not stop it) and has written
/// nothing but JSON-RPC to stdout.
async fn check_alive(mcp: &mut McpProcess) -> Result<(), String> {
    if let Some(status) = mcp.exited() {
        return Err(format!("the server exited ({status})"));
    }
    let (_, rx) = mcp
        .start_request(
            "tools/call",
            json!({"name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    let response = match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => return Err("the server closed stdout (exited)".into()),
        Err(_) => return Err(format!("no answer within {ANSWER_WITHIN:?} (wedged)")),
    };
    let result = &response["result"];
    if result["isError"] == json!(true) || result["structuredContent"]["uid"] != UID {
        return Err(format!("wrong answer to a valid call: {response}"));
    }
    if let Some(status) = mcp.exited() {
        return Err(format!("the server exited ({status})"));
    }
    if mcp.stderr().contains("panicked") {
        return Err("a task panicked (see stderr)".into());
    }
    mcp.assert_clean_stdout();
    Ok(())
}

/// Feeds one batch and checks the server afterwards; panics with the input
/// and the symptom (and the stderr tail) if it broke.
async fn batch(mcp: &mut McpProcess, label: &str, bytes: &[u8]) {
    let outcome = match feed(mcp, bytes, label).await {
        Ok(()) => check_alive(mcp).await,
        Err(e) => Err(e),
    };
    if let Err(symptom) = outcome {
        panic!(
            "after {label} ({} bytes, starting {:?}): {symptom}\nstderr tail:\n{}",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]),
            tail(&mcp.stderr())
        );
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn line(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap();
    bytes.push(b'\n');
    bytes
}

fn lines(values: &[Value]) -> Vec<u8> {
    values.iter().flat_map(line).collect()
}

/// Ids far from the harness's own (which count up from 1).
const FUZZ_ID: u64 = 7_000_000;

fn call(id: Value, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

/// Lines cut off at every interesting point of a valid request.
#[tokio::test]
async fn truncated_json_lines() {
    let (_server, mut mcp) = start().await;
    let full = serde_json::to_string(&call(
        json!(FUZZ_ID),
        json!({"name": "get_note", "arguments": {"uid": UID}}),
    ))
    .unwrap();
    let mut cut = Vec::new();
    for end in (1..full.len()).step_by(7) {
        cut.extend_from_slice(&full.as_bytes()[..end]);
        cut.push(b'\n');
    }
    batch(&mut mcp, "every prefix of a request", &cut).await;
    batch(
        &mut mcp,
        "unbalanced brackets and strings",
        b"{\n}\n{{\n]]\n\"\n\"unterminated\n{\"jsonrpc\":\"2.0\",\"id\":7000001,\"method\":\"tools/list\"\n[\n{\"a\":}\n{\"jsonrpc\":\"2.0\",\"id\":7000002,\"method\":\"tools/call\",\"params\":{\"name\":\"get_note\",\"arguments\":{\"uid\":\"6f1c2a39\n",
    )
    .await;
    // A request with no newline yet, a pause, then the rest: one line.
    let answer = mcp.expect_response(FUZZ_ID + 3);
    feed(
        &mut mcp,
        b"{\"jsonrpc\":\"2.0\",\"id\":7000003,\"meth",
        "a head",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    batch(
        &mut mcp,
        "a request split across writes",
        b"od\":\"tools/list\"}\n",
    )
    .await;
    let listed = tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .expect("an answer to the split request")
        .unwrap();
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(40));
    mcp.shutdown().await;
}

/// 4 MiB lines (garbage, and a valid create with a 4 MiB content), and a
/// 20 MiB line past the transport's 16 MiB cap, which is answered with an
/// error (tests/jsonrpc_errors.rs checks the answers).
#[tokio::test]
async fn oversized_lines() {
    let (server, mut mcp) = start().await;
    let mut garbage = vec![b'x'; 4 << 20];
    garbage.push(b'\n');
    batch(&mut mcp, "a 4 MiB line of garbage", &garbage).await;

    let mut json_garbage =
        b"{\"jsonrpc\":\"2.0\",\"id\":7000010,\"method\":\"tools/list\",\"params\":{\"pad\":\""
            .to_vec();
    json_garbage.extend(std::iter::repeat_n(b'a', 4 << 20));
    json_garbage.extend_from_slice(b"\"}}\n");
    batch(
        &mut mcp,
        "a 4 MiB tools/list with a padding param",
        &json_garbage,
    )
    .await;

    let big = "x".repeat(4 << 20);
    let response = tokio::time::timeout(
        ANSWER_WITHIN,
        mcp.request(
            "tools/call",
            json!({"name": "create_note", "arguments": {"title": "big", "content": big}}),
        ),
    )
    .await
    .expect("an answer to a 4 MiB create");
    let result = &response["result"];
    eprintln!(
        "4 MiB create: isError={} {}",
        result["isError"], result["content"][0]["text"]
    );
    assert!(result.is_object(), "{}", &response.to_string()[..300]);
    if result["isError"] != json!(true) {
        let posts = upstream::entity_requests(&server).await;
        let sent = posts.iter().find(|r| r.method.as_str() == "POST").unwrap();
        assert_eq!(
            upstream::body_json(sent)["content"].as_str().unwrap().len(),
            4 << 20
        );
    }
    check_alive(&mut mcp).await.unwrap();

    let mut huge =
        b"{\"jsonrpc\":\"2.0\",\"id\":7000011,\"method\":\"tools/list\",\"params\":{\"pad\":\""
            .to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20 << 20));
    huge.extend_from_slice(b"\"}}\n");
    batch(&mut mcp, "a 20 MiB line", &huge).await;
    mcp.shutdown().await;
}

/// Every field of a `tools/call` with the wrong type.
#[tokio::test]
async fn wrong_types_in_tools_call() {
    let (_server, mut mcp) = start().await;
    let id = json!(FUZZ_ID + 20);
    let good_args = json!({"uid": UID});
    let messages = vec![
        call(id.clone(), json!("get_note")),
        call(id.clone(), json!(42)),
        call(id.clone(), json!(["get_note", good_args.clone()])),
        call(id.clone(), json!(null)),
        call(id.clone(), json!(true)),
        call(id.clone(), json!({"name": "get_note", "arguments": [UID]})),
        call(
            id.clone(),
            json!({"name": "get_note", "arguments": "uid=x"}),
        ),
        call(id.clone(), json!({"name": "get_note", "arguments": 7})),
        call(id.clone(), json!({"name": "get_note", "arguments": null})),
        call(
            id.clone(),
            json!({"name": 42, "arguments": good_args.clone()}),
        ),
        call(
            id.clone(),
            json!({"name": null, "arguments": good_args.clone()}),
        ),
        call(
            id.clone(),
            json!({"name": ["get_note"], "arguments": good_args.clone()}),
        ),
        call(
            id.clone(),
            json!({"name": {"n": 1}, "arguments": good_args.clone()}),
        ),
        call(id.clone(), json!({"arguments": good_args.clone()})),
        call(
            id.clone(),
            json!({"name": "get_note", "arguments": {"uid": 12}}),
        ),
        call(
            id.clone(),
            json!({"name": "get_note", "arguments": {"uid": [UID]}}),
        ),
        call(
            id.clone(),
            json!({"name": "get_note", "arguments": {"uid": {"$ne": 1}}}),
        ),
        call(
            id.clone(),
            json!({"name": "list_notes", "arguments": {"limit": "10"}}),
        ),
        call(
            id.clone(),
            json!({"name": "list_notes", "arguments": {"limit": 1e300}}),
        ),
        call(
            id.clone(),
            json!({"name": "list_notes", "arguments": {"limit": -1}}),
        ),
        call(
            id.clone(),
            json!({"name": "list_notes", "arguments": {"limit": 18446744073709551615u64}}),
        ),
        call(
            id.clone(),
            json!({"name": "update_note", "arguments": {"uid": UID, "if_version": -3}}),
        ),
        call(
            id.clone(),
            json!({"name": "update_note", "arguments": {"uid": UID, "if_version": 1.5}}),
        ),
        call(
            id.clone(),
            json!({"name": "create_note", "arguments": {"tags": "not-a-list"}}),
        ),
        call(
            id.clone(),
            json!({"name": "create_note", "arguments": {"tags": [1, null, {}]}}),
        ),
        call(
            id.clone(),
            json!({"name": "create_note", "arguments": {"additional_fields": []}}),
        ),
        call(
            id.clone(),
            json!({"name": "process_note", "arguments": {"uid": UID, "action": 3}}),
        ),
        call(
            id.clone(),
            json!({"name": "get_note", "arguments": good_args.clone(), "_meta": "x"}),
        ),
        call(
            json!({"id": 1}),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!([1]),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!(1.5),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!(true),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!(null),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!(-1),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        call(
            json!(""),
            json!({"name": "get_note", "arguments": good_args.clone()}),
        ),
        json!({"jsonrpc": "1.0", "id": FUZZ_ID + 21, "method": "tools/call", "params": {"name": "get_note", "arguments": good_args.clone()}}),
        json!({"id": FUZZ_ID + 22, "method": "tools/call", "params": {"name": "get_note", "arguments": good_args.clone()}}),
        json!({"jsonrpc": 2, "id": FUZZ_ID + 23, "method": "tools/call"}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 24, "method": 7}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 25, "method": null}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 26}),
        json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "get_note", "arguments": good_args.clone()}}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 27, "result": {}}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 28, "error": {"code": "x"}}),
        json!({"jsonrpc": "2.0", "id": FUZZ_ID + 29, "method": "notifications/cancelled", "params": {"requestId": "nope"}}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": {"x": 1}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "x"}),
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": "lots"}}),
        json!([]),
        json!([call(
            json!(FUZZ_ID + 30),
            json!({"name": "get_note", "arguments": good_args.clone()})
        )]),
        json!(null),
        json!(0),
        json!("tools/call"),
        json!({}),
    ];
    for (n, message) in messages.iter().enumerate() {
        let text = message.to_string();
        batch(
            &mut mcp,
            &format!("wrong types #{n}: {text}"),
            &line(message),
        )
        .await;
    }
    mcp.shutdown().await;
}

/// 10,000 nested arrays (and objects) must not overflow a stack; nesting a
/// parser accepts reaches the upstream intact.
#[tokio::test]
async fn deeply_nested_json() {
    let (server, mut mcp) = start().await;
    let depth = 10_000;
    let arrays = format!("{}{}\n", "[".repeat(depth), "]".repeat(depth));
    batch(&mut mcp, "10,000 nested arrays", arrays.as_bytes()).await;
    let objects = format!("{}1{}\n", "{\"a\":".repeat(depth), "}".repeat(depth));
    batch(&mut mcp, "10,000 nested objects", objects.as_bytes()).await;
    let unclosed = format!("{}\n", "[".repeat(100_000));
    batch(&mut mcp, "100,000 unclosed arrays", unclosed.as_bytes()).await;
    let inside = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/call\",\"params\":{{\"name\":\"create_note\",\"arguments\":{{\"title\":\"deep\",\"additional_fields\":{{\"deep\":{}{}}}}}}}}}\n",
        FUZZ_ID + 40,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    batch(
        &mut mcp,
        "10,000 nested arrays in a tool argument",
        inside.as_bytes(),
    )
    .await;

    // Within the parser's limit: accepted and passed through.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let response = mcp
        .request(
            "tools/call",
            json!({"name": "create_note", "arguments": {"title": "deep", "additional_fields": {"deep": deep.clone()}}}),
        )
        .await;
    let result = &response["result"];
    eprintln!(
        "100-deep argument: isError={} {}",
        result["isError"], result["content"][0]["text"]
    );
    if result["isError"] != json!(true) {
        let posts = upstream::entity_requests(&server).await;
        let sent = posts
            .iter()
            .rev()
            .find(|r| r.method.as_str() == "POST")
            .unwrap();
        assert_eq!(upstream::body_json(sent)["deep"], deep);
    }
    check_alive(&mut mcp).await.unwrap();
    mcp.shutdown().await;
}

/// Invalid UTF-8, NUL bytes, a BOM, CRLF endings, control characters.
#[tokio::test]
async fn invalid_utf8_and_nul_bytes() {
    let (_server, mut mcp) = start().await;
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("bare invalid UTF-8", b"\xff\xfe\xfd\x80\n".to_vec()),
        (
            "invalid UTF-8 inside a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000050,\"method\":\"tools/call\",\"params\":{\"name\":\"get_note\",\"arguments\":{\"uid\":\"\xc3\x28\"}}}\n".to_vec(),
        ),
        (
            "invalid UTF-8 in a title",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000051,\"method\":\"tools/call\",\"params\":{\"name\":\"create_note\",\"arguments\":{\"title\":\"a\xed\xa0\x80b\"}}}\n".to_vec(),
        ),
        (
            "overlong UTF-8 slash",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000052,\"method\":\"tools\xc0\xaflist\"}\n".to_vec(),
        ),
        ("NUL bytes", b"\0\0\0\0\n".to_vec()),
        (
            "a NUL byte between tokens",
            b"{\"jsonrpc\":\"2.0\",\0\"id\":7000053,\"method\":\"tools/list\"}\n".to_vec(),
        ),
        (
            "a raw NUL inside a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000054,\"method\":\"tools/call\",\"params\":{\"name\":\"get\0note\",\"arguments\":{}}}\n".to_vec(),
        ),
        (
            "an escaped NUL in a title (valid JSON)",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000055,\"method\":\"tools/call\",\"params\":{\"name\":\"create_note\",\"arguments\":{\"title\":\"a\\u0000b\"}}}\n".to_vec(),
        ),
        (
            "a lone surrogate escape",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000056,\"method\":\"tools/call\",\"params\":{\"name\":\"create_note\",\"arguments\":{\"title\":\"\\ud800\"}}}\n".to_vec(),
        ),
        (
            "a BOM before a request",
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":7000057,\"method\":\"tools/list\"}\n".to_vec(),
        ),
        (
            "CRLF endings",
            b"{\"jsonrpc\":\"2.0\",\"id\":7000058,\"method\":\"tools/list\"}\r\n\r\n".to_vec(),
        ),
        ("a lone CR", b"\r".to_vec()),
        ("control characters", (0u8..32).filter(|b| *b != b'\n').chain([b'\n']).collect()),
        ("DEL and C1 controls", "\u{7f}\u{85}\u{9b}\n".as_bytes().to_vec()),
    ];
    for (label, bytes) in inputs {
        batch(&mut mcp, label, &bytes).await;
    }
    mcp.shutdown().await;
}

/// Blank lines of every kind are skipped.
#[tokio::test]
async fn whitespace_only_lines() {
    let (_server, mut mcp) = start().await;
    for (label, bytes) in [
        ("spaces and tabs", &b"   \t  \t\n"[..]),
        ("empty lines", b"\n\n\n\n"),
        ("CRLF only", b"\r\n\r\n"),
        ("vertical tab and form feed", b" \x0b\x0c \n"),
        ("non-breaking spaces", "\u{a0}\u{2003}\u{3000}\n".as_bytes()),
        ("a megabyte of spaces", &[b' '; 1 << 20]),
        ("its newline", b"\n"),
    ] {
        batch(&mut mcp, label, bytes).await;
    }
    mcp.shutdown().await;
}

/// Two requests with one id in flight at once, and ids reused later: the
/// server answers (once per id at least) and keeps serving.
#[tokio::test]
async fn duplicate_ids() {
    let server = upstream::plausible_upstream().await;
    let slow = "0b6c54a8-3f0e-4f4e-9a57-5d6f21c0a7b2";
    Mock::given(method("GET"))
        .and(path(format!("/v1/notes/{slow}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(item(slow, 1))
                .set_delay(Duration::from_millis(500)),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;

    let id = FUZZ_ID + 60;
    let answer = mcp.expect_response(id);
    let both = lines(&[
        call(
            json!(id),
            json!({"name": "get_note", "arguments": {"uid": slow}}),
        ),
        call(
            json!(id),
            json!({"name": "get_note", "arguments": {"uid": UID}}),
        ),
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
    ]);
    batch(&mut mcp, "three requests sharing one id", &both).await;
    let response = tokio::time::timeout(ANSWER_WITHIN, answer)
        .await
        .expect("an answer for the shared id")
        .expect("server running");
    eprintln!(
        "first answer for the shared id: {}",
        &response.to_string()[..response.to_string().len().min(200)]
    );

    // The harness's own first id (initialize's) used again, after the fact.
    let again = lines(&[
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": "1", "method": "ping"}),
    ]);
    batch(&mut mcp, "a used id again", &again).await;
    // Both calls sharing the id have ended (the slow one after 500 ms) once
    // each has its log line: the server is alive after answering them all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ended = |mcp: &McpProcess| {
        mcp.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "tool call")
            .count()
    };
    while ended(&mcp) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls sharing an id did not end:\n{}",
            mcp.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check_alive(&mut mcp).await.unwrap();
    mcp.shutdown().await;
}

// ---------------------------------------------------------------------------
// Generated messages

/// SplitMix64: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TOOLS: &[&str] = &[
    "get_note",
    "list_notes",
    "create_note",
    "update_note",
    "patch_note",
    "delete_note",
    "archive_note",
    "process_note",
    "list_comments",
    "create_comment",
    "get_chat_message",
    "process_task",
    "no_such_tool",
    "",
];

const METHODS: &[&str] = &[
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/call",
    "tools/list",
    "ping",
    "initialize",
    "resources/list",
    "prompts/list",
    "logging/setLevel",
    "completion/complete",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/unknown",
    "rpc.discover",
    "$/cancelRequest",
    "",
];

/// A random JSON value, up to `depth` levels deep.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 7 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(*rng.pick(&[0.5, -1.0, 1e308, -0.0, 3.25])),
        4 => json!(*rng.pick(&["", "x", UID, "not-a-uuid", "💥", "a\u{0}b", "\u{202e}"])),
        5 => json!("y".repeat(rng.below(5000))),
        6 => json!(rng.below(2000)),
        7 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "uid",
                "title",
                "limit",
                "cursor",
                "if_version",
                "action",
                "tags",
                "name",
                "x",
            ];
            Value::Object(
                (0..rng.below(4))
                    .map(|_| (rng.pick(&keys).to_string(), random_value(rng, depth - 1)))
                    .collect(),
            )
        }
    }
}

/// An id that cannot collide with the harness's (small positive integers);
/// mostly valid, sometimes not.
fn random_id(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0..=5 => json!(FUZZ_ID + 1000 + rng.below(50) as u64),
        6 | 7 => json!(format!("f-{}", rng.below(50))),
        8 => json!(-(rng.below(1000) as i64) - 1),
        _ => rng
            .pick(&[json!(u64::MAX), json!(0.5), Value::Null])
            .clone(),
    }
}

fn random_arguments(rng: &mut Rng) -> Value {
    let mut args = serde_json::Map::new();
    if rng.chance(80) {
        args.insert("uid".into(), json!(UID));
    }
    for _ in 0..rng.below(4) {
        let key = *rng.pick(&[
            "title",
            "limit",
            "cursor",
            "if_version",
            "action",
            "tags",
            "include_deleted",
            "additional_fields",
            "parent_type",
            "parent_uid",
            "bogus",
        ]);
        args.insert(key.into(), random_value(rng, 2));
    }
    Value::Object(args)
}

/// A plausible message, then mangled.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    let method = *rng.pick(METHODS);
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if !method.starts_with("notifications/") || rng.chance(10) {
        message["id"] = random_id(rng);
    }
    message["params"] = match method {
        "tools/call" => json!({"name": rng.pick(TOOLS), "arguments": random_arguments(rng)}),
        "initialize" => json!({
            "protocolVersion": rng.pick(&["2025-11-25", "1999-01-01", ""]),
            "capabilities": {},
            "clientInfo": {"name": "fuzz", "version": "0"}
        }),
        "notifications/cancelled" => json!({"requestId": random_id(rng), "reason": "fuzz"}),
        _ => random_value(rng, 2),
    };
    // Structural mutations: none for half the messages.
    let structural = *rng.pick(&[0, 0, 0, 0, 0, 1, 1, 1, 2, 2]);
    for _ in 0..structural {
        match rng.below(5) {
            0 => {
                let key = *rng.pick(&["jsonrpc", "method", "params", "id"]);
                message.as_object_mut().unwrap().remove(key);
            }
            1 => {
                let key = *rng.pick(&["jsonrpc", "method", "params"]);
                message[key] = random_value(rng, 2);
            }
            2 => message["id"] = random_id(rng),
            3 => {
                if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                    let key = *rng.pick(&["name", "arguments", "_meta", "cursor"]);
                    params.insert(key.into(), random_value(rng, 2));
                }
            }
            _ => {
                message[*rng.pick(&["result", "error", "extra"])] = random_value(rng, 1);
            }
        }
    }
    let mut bytes = serde_json::to_vec(&message).unwrap();
    // Byte-level mutations, for a third of the messages.
    match rng.below(15) {
        0 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes.truncate(at);
        }
        1 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        2 => {
            let at = rng.below(bytes.len() + 1);
            let junk: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, junk);
        }
        3 => {
            // Two messages on one line.
            let copy = bytes.clone();
            bytes.extend_from_slice(&copy);
        }
        4 => bytes = format!("[{}]", String::from_utf8_lossy(&bytes)).into_bytes(),
        _ => {}
    }
    // A stray newline inside would split the message: keep one line.
    bytes.retain(|b| *b != b'\n');
    bytes.push(b'\n');
    bytes
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Replays a failing batch line by line, each against a fresh server, and
/// returns the first line that breaks one on its own.
async fn culprit(batch_lines: &[Vec<u8>]) -> Option<(usize, String)> {
    for (n, bytes) in batch_lines.iter().enumerate() {
        let (_server, mut mcp) = start().await;
        let broke = match feed(&mut mcp, bytes, "replay").await {
            Ok(()) => check_alive(&mut mcp).await.err(),
            Err(e) => Some(e),
        };
        if let Some(symptom) = broke {
            return Some((
                n,
                format!("{:?} -> {symptom}", String::from_utf8_lossy(bytes)),
            ));
        }
        let _ = mcp.exited();
    }
    None
}

/// A few hundred generated messages, in batches of 50, each followed by a
/// check that the server still answers correctly.
#[tokio::test]
async fn generated_malformed_messages() {
    let seed = seed();
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    eprintln!("stdin fuzz: FUZZ_SEED={seed} FUZZ_CASES={cases}");
    let mut rng = Rng(seed);
    let (server, mut mcp) = start().await;
    let mut sent = 0;
    while sent < cases {
        let batch_lines: Vec<Vec<u8>> = (0..50.min(cases - sent))
            .map(|_| random_message(&mut rng))
            .collect();
        let bytes: Vec<u8> = batch_lines.concat();
        if let Ok(dump) = std::env::var("FUZZ_DUMP") {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump)
                .expect("FUZZ_DUMP file");
            file.write_all(&bytes).unwrap();
        }
        let label = format!("generated messages {sent}..{}", sent + batch_lines.len());
        let outcome = match feed(&mut mcp, &bytes, &label).await {
            Ok(()) => check_alive(&mut mcp).await,
            Err(e) => Err(e),
        };
        if let Err(symptom) = outcome {
            let dump = std::env::temp_dir().join(format!("stdin_fuzz-{seed}-{sent}.jsonl"));
            let _ = std::fs::write(&dump, &bytes);
            let alone = culprit(&batch_lines).await;
            panic!(
                "FUZZ_SEED={seed}: after {label}: {symptom}\nbatch written to {}\nline that breaks a fresh server alone: {alone:?}\nstderr tail:\n{}",
                dump.display(),
                tail(&mcp.stderr())
            );
        }
        sent += batch_lines.len();
    }
    let tool_calls = mcp
        .log_text()
        .lines()
        .filter(|l| l.contains("\"tool call\""))
        .count();
    let upstream_requests = upstream::entity_requests(&server).await.len();
    eprintln!(
        "stdin fuzz: {cases} generated messages; {tool_calls} tool calls ran, {upstream_requests} upstream requests"
    );
    // The generator is not all noise: some messages were valid enough to run.
    assert!(tool_calls > cases / 25, "only {tool_calls} tool calls ran");
    let status = mcp.shutdown().await;
    assert!(status.success(), "exit status {status}");
}

/// A notification (or a stray response) before `initialize` must not end the
/// server: garbage and requests before it do not.
#[tokio::test]
async fn notification_before_initialize() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    let early = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1,\"reason\":\"early\"}}\n";
    feed(&mut mcp, early, "a notification before initialize")
        .await
        .unwrap();
    // stdin is read in order: an answer to `initialize` proves the server read
    // the notification and went on (had it exited, the harness would fail
    // with "the server exited" and its stderr).
    mcp.initialize().await;
    check_alive(&mut mcp).await.unwrap();
    mcp.shutdown().await;
}
