//! The MCP surface through the real binary: both protocol eras, server
//! identity, protocol misuse, and shutdown.

// Test code: a failed assumption is a failed test; the signals and the pty need libc.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    unsafe_code
)]

mod common;

use common::upstream::{self, SESSION, UID};
use common::{Launch, MODERN_VERSION, ok};
use serde_json::{Value, json};

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "harness", "version": "0"}
    })
}

/// `initialize` reports the product's own name and version and instructions
/// that explain how the tools fit together.
#[tokio::test]
async fn initialize_reports_the_product() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    let result = mcp.initialize().await;
    assert_eq!(result["protocolVersion"], common::LEGACY_VERSION);
    assert_eq!(result["serverInfo"]["name"], "toolbridge-mcp");
    assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(result["capabilities"]["tools"].is_object());
    let instructions = result["instructions"].as_str().unwrap();
    for needle in ["uid", "nextCursor", "if_version", "parent_type", "chat_uid"] {
        assert!(instructions.contains(needle), "instructions lack {needle}");
    }
    mcp.shutdown().await;
}

/// The 2026-07-28 era: `server/discover`, then requests carrying the version
/// in their `_meta`, with no `initialize` at all.
#[tokio::test]
async fn modern_era_discover_then_call() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    let discovered = mcp
        .request("server/discover", json!({"_meta": modern_meta()}))
        .await;
    let result = &discovered["result"];
    assert!(
        result["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.contains(&json!(MODERN_VERSION))),
        "{discovered}"
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "toolbridge-mcp",
        "{discovered}"
    );
    assert!(result["instructions"].is_string());

    let listed = mcp
        .request("tools/list", json!({"_meta": modern_meta()}))
        .await;
    assert_eq!(
        listed["result"]["tools"].as_array().map(Vec::len),
        Some(40),
        "{listed}"
    );
    let called = mcp
        .request(
            "tools/call",
            json!({"_meta": modern_meta(), "name": "get_note", "arguments": {"uid": UID}}),
        )
        .await;
    assert_eq!(ok(&called["result"])["uid"], UID, "{called}");
    mcp.shutdown().await;
}

/// Malformed JSON, unknown methods and unknown tools get JSON-RPC errors (or
/// are dropped), and the server keeps serving.
#[tokio::test]
async fn protocol_misuse_does_not_stop_the_server() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;

    let unknown_tool = mcp
        .request(
            "tools/call",
            json!({"name": "drop_database", "arguments": {}}),
        )
        .await;
    assert_eq!(unknown_tool["error"]["code"], -32602, "{unknown_tool}");
    assert!(
        unknown_tool["error"]["message"]
            .as_str()
            .unwrap()
            .contains("drop_database")
    );

    let unknown_method = mcp.request("notes/frobnicate", json!({})).await;
    assert!(unknown_method.get("error").is_some(), "{unknown_method}");

    mcp.send_raw(b"{this is not json\n").await;
    mcp.send_raw(b"[1, 2, 3]\n").await;
    mcp.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/call\",\"params\":42}\n")
        .await;

    let still = mcp.call_tool("get_note", json!({"uid": UID})).await;
    assert_eq!(ok(&still)["uid"], UID);
    mcp.shutdown().await;
}

/// On stdin EOF the server ends its upstream session and exits 0.
#[tokio::test]
async fn eof_ends_the_session_and_exits_cleanly() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    ok(&mcp.call_tool("list_notes", json!({})).await);
    let status = mcp.shutdown().await;
    assert!(status.success(), "{status:?}");
    let requests = server.received_requests().await.unwrap();
    let ended = requests.iter().any(|r| {
        r.method.as_str() == "DELETE" && r.url.path() == format!("/v1/sync/sessions/{SESSION}")
    });
    assert!(ended, "DELETE /v1/sync/sessions/{SESSION} was not sent");
}

/// On SIGTERM the server ends its upstream session and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_ends_the_session_and_exits_cleanly() {
    let server = upstream::plausible_upstream().await;
    let mut mcp = Launch::remote(&server.uri()).spawn().await;
    mcp.initialize().await;
    ok(&mcp.call_tool("list_notes", json!({})).await);
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(mcp.pid() as i32, libc::SIGTERM) };
    let status = mcp.shutdown().await;
    assert!(status.success(), "{status:?}");
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().any(
            |r| r.method.as_str() == "DELETE" && r.url.path().starts_with("/v1/sync/sessions/")
        )
    );
}

/// A host that launches the server twice closes the spare before any request:
/// that process exits 0 at once, having written nothing.
#[tokio::test]
async fn stdin_closed_before_the_handshake_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(common::BIN)
        .arg("--db-path")
        .arg(dir.path().join("t.db"))
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", dir.path().join("logs"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
}

/// Started by hand in a terminal, the server says on stderr what it is and
/// how to use it instead of waiting in silence; Ctrl-D ends it, and nothing
/// reaches stdout.
#[cfg(unix)]
#[test]
fn a_terminal_on_stdin_gets_a_hint_and_ctrl_d_ends_it() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Command, Stdio};

    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors, owned just below.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        // A container without /dev/pts has no terminal to offer.
        eprintln!(
            "skipped: no pseudo-terminal here ({})",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: both are open and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .arg("--db-path")
        .arg(dir.path().join("t.db"))
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", dir.path().join("logs"))
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // A server that never prints the hint would leave the read below waiting;
    // the watchdog stands down when `_test_done` is dropped, before the pid
    // could belong to anyone else.
    let (_test_done, watch) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let timeout = std::time::Duration::from_secs(30);
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(timeout) {
            // SAFETY: signalling our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });

    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains("Ctrl-D ends") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "stderr closed before the hint: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("meant to be launched by an MCP client"),
        "{seen}"
    );
    assert!(seen.contains("toolbridge-mcp call list_notes"), "{seen}");

    // Ctrl-D at the start of a line is end-of-file for a terminal reader.
    let mut terminal = std::fs::File::from(master);
    terminal.write_all(b"\x04").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}

/// A host that terminates a spare launch before sending anything gets a clean
/// exit, not death by signal, and the log says why it ended.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_before_the_first_request_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let mut child = tokio::process::Command::new(common::BIN)
        .arg("--db-path")
        .arg(dir.path().join("t.db"))
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", &logs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Held open: `Child::wait` would close it, and EOF is another way to end.
    let _stdin = child.stdin.take();
    // The embedded API starts after the handlers are installed.
    let started = common::wait_for_log_line(&logs, "started the embedded API").await;
    assert!(started, "the server never started its embedded API");
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the server ignored SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(common::wait_for_log_line(&logs, "signal before the first request").await);
}
