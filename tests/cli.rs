//! The command line: `call`, `tools`, `doctor`, tool selection, and
//! configuration errors, through the real binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Launch, ok};
use serde_json::{Value, json};

fn toolbridge(args: &[&str], db: &Path, logs: &Path) -> Output {
    Command::new(common::BIN)
        .args(args)
        .arg("--db-path")
        .arg(db)
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", logs)
        .env("TOOLBRIDGE_REPLICA_DIR", db.with_extension("replicas"))
        .output()
        .expect("run toolbridge-mcp")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn stderr_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stderr).unwrap_or_else(|e| {
        panic!(
            "stderr is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `call` runs a tool through the same path as MCP: the result JSON on
/// stdout; failures as JSON on stderr with an exit code per kind.
#[test]
fn call_runs_one_tool() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let created = toolbridge(
        &[
            "call",
            "create_note",
            "--arg",
            "title=123",
            "--arg",
            r#"tags=["a","b"]"#,
        ],
        &db,
        &logs,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let note = stdout_json(&created);
    assert_eq!(
        note["payload"]["title"], "123",
        "a string parameter stays a string"
    );
    assert_eq!(note["payload"]["tags"], json!(["a", "b"]));
    let uid = note["uid"].as_str().unwrap();

    let got = toolbridge(
        &[
            "call",
            "get_note",
            "--json",
            &json!({"uid": uid}).to_string(),
        ],
        &db,
        &logs,
    );
    assert_eq!(stdout_json(&got)["uid"], uid);
    let listed = toolbridge(&["call", "list_notes", "--arg", "limit=5"], &db, &logs);
    assert_eq!(stdout_json(&listed)["items"].as_array().unwrap().len(), 1);

    let bad = toolbridge(&["call", "get_note", "--arg", "uid=nope"], &db, &logs);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(stderr_json(&bad)["code"], "invalid_input");
    assert!(bad.stdout.is_empty());

    let missing = toolbridge(
        &[
            "call",
            "get_note",
            "--arg",
            "uid=00000000-0000-4000-8000-000000000000",
        ],
        &db,
        &logs,
    );
    assert_eq!(missing.status.code(), Some(3));
    assert_eq!(stderr_json(&missing)["code"], "not_found");

    let stale = toolbridge(
        &[
            "call",
            "patch_note",
            "--arg",
            &format!("uid={uid}"),
            "--arg",
            "if_version=7",
            "--arg",
            "title=x",
        ],
        &db,
        &logs,
    );
    assert_eq!(stale.status.code(), Some(4));
    assert_eq!(stderr_json(&stale)["code"], "conflict");

    let unknown = toolbridge(&["call", "drop_everything"], &db, &logs);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown tool"));

    // The call left its line in the log.
    let log: String = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(log.contains("\"tool\":\"create_note\""), "{log}");
}

/// `call --json @FILE` and `--json -` read arguments too long for a command
/// line (a 900 KB note) from a file or stdin; an unreadable file, or more
/// than 16 MiB on stdin, is one line of invalid input (exit 2), and an item
/// over 1 MiB is refused naming the limit.
#[test]
fn call_reads_its_json_from_a_file_or_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let content = "x".repeat(900_000);
    let file = dir.path().join("args.json");
    std::fs::write(
        &file,
        json!({"title": "from a file", "content": content}).to_string(),
    )
    .unwrap();
    let from_file = toolbridge(
        &[
            "call",
            "create_note",
            "--json",
            &format!("@{}", file.display()),
        ],
        &db,
        &logs,
    );
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert_eq!(stdout_json(&from_file)["payload"]["title"], "from a file");

    let with_stdin = |input: Vec<u8>, args: &[&str]| {
        let mut child = Command::new(common::BIN)
            .args(args)
            .arg("--db-path")
            .arg(&db)
            .env_clear()
            .env("TOOLBRIDGE_LOG_DIR", &logs)
            .env("TOOLBRIDGE_REPLICA_DIR", db.with_extension("replicas"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The binary may stop reading at its cap: a broken pipe is expected.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        output
    };
    let piped = with_stdin(
        json!({"title": "from stdin", "content": content})
            .to_string()
            .into_bytes(),
        &[
            "call",
            "create_note",
            "--json",
            "-",
            "--arg",
            "tags=[\"p\"]",
            // The whole note in the answer.
            "--result-budget",
            "300000",
        ],
    );
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let note = stdout_json(&piped);
    assert_eq!(note["payload"]["title"], "from stdin");
    assert_eq!(
        note["payload"]["tags"],
        json!(["p"]),
        "--arg still applies over it"
    );
    assert_eq!(note["payload"]["content"].as_str().unwrap().len(), 900_000);

    let refusals = [
        (
            toolbridge(
                &["call", "create_note", "--json", "@/no/such/file.json"],
                &db,
                &logs,
            ),
            "--json @/no/such/file.json: cannot open it",
        ),
        (
            with_stdin(
                vec![b' '; (16 << 20) + 1],
                &["call", "create_note", "--json", "-"],
            ),
            "--json - (stdin): more than 16,777,216 bytes (16 MiB)",
        ),
        (
            with_stdin(
                json!({"content": "x".repeat(2 << 20)})
                    .to_string()
                    .into_bytes(),
                &["call", "create_note", "--json", "-"],
            ),
            "content is too large: the note would be 2,097,",
        ),
    ];
    for (output, says) in refusals {
        assert_eq!(output.status.code(), Some(2), "{says}");
        let error = stderr_json(&output);
        assert_eq!(error["code"], "invalid_input");
        let message = error["message"].as_str().unwrap();
        assert!(message.starts_with(says), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(output.stdout.is_empty());
    }
    let listed = toolbridge(
        &["call", "list_notes", "--arg", "fields=[\"title\"]"],
        &db,
        &logs,
    );
    assert_eq!(stdout_json(&listed)["items"].as_array().unwrap().len(), 2);
}

/// `call` against an unreachable upstream fails with the upstream exit code.
#[test]
fn call_reports_an_unreachable_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(common::BIN)
        .args([
            "call",
            "list_notes",
            "--api-url",
            "http://127.0.0.1:9",
            "--tenant-id",
            "t",
            "--max-retries",
            "0",
        ])
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    assert_eq!(stderr_json(&output)["code"], "upstream_unavailable");
}

/// `tools` lists every tool with its description; `--json` gives full
/// definitions; selection flags narrow both.
#[test]
fn tools_lists_and_selects() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let lines = String::from_utf8(toolbridge(&["tools"], &db, &logs).stdout).unwrap();
    assert_eq!(lines.lines().count(), 41, "40 entity tools and search");
    let without_replica =
        String::from_utf8(toolbridge(&["tools", "--replica", "off"], &db, &logs).stdout).unwrap();
    assert_eq!(without_replica.lines().count(), 40);
    assert!(!without_replica.contains("search"));
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("process_chat_message") && l.contains("mark_read"))
    );
    let read_only: Vec<Value> =
        serde_json::from_slice(&toolbridge(&["tools", "--json", "--read-only"], &db, &logs).stdout)
            .unwrap();
    assert_eq!(read_only.len(), 11, "list, get and search");
    assert!(
        read_only
            .iter()
            .all(|t| t["annotations"]["readOnlyHint"] == true)
    );
    let notes: Vec<Value> = serde_json::from_slice(
        &toolbridge(
            &["tools", "--json", "--toolsets", "notes,tasks"],
            &db,
            &logs,
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(notes.len(), 17);
    let search = notes.iter().find(|t| t["name"] == "search").unwrap();
    assert_eq!(
        search["inputSchema"]["properties"]["entity"]["enum"],
        json!(["notes", "tasks"]),
        "a disabled entity is not searched"
    );
    let bad = toolbridge(&["tools", "--toolsets", "notes,widgets"], &db, &logs);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown toolset `widgets`"));
}

/// A server in read-only mode advertises only reads and refuses a write
/// called anyway, saying why.
#[tokio::test]
async fn read_only_server_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcp = Launch::embedded(&dir.path().join("t.db"))
        .args(&["--read-only", "--toolsets", "notes"])
        .spawn()
        .await;
    mcp.initialize().await;
    let listed = mcp.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["search", "list_notes", "get_note"]);
    let refused = mcp
        .request(
            "tools/call",
            json!({"name": "create_note", "arguments": {"title": "x"}}),
        )
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not enabled"),
        "{refused}"
    );
    ok(&mcp.call_tool("list_notes", json!({})).await);
    mcp.shutdown().await;
}

/// `doctor` passes every check on the embedded default, and on a dead
/// upstream fails reachability with a fix and a non-zero exit.
#[test]
fn doctor_reports_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let healthy = toolbridge(&["doctor"], &db, &logs);
    let text = String::from_utf8(healthy.stdout).unwrap();
    assert!(healthy.status.success(), "{text}");
    for check in [
        "configuration",
        "log directory",
        "reachability",
        "auth and tenant",
        "session",
        "read",
        "circuit breaker",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "no PASS for {check}:\n{text}"
        );
    }

    let dead = Command::new(common::BIN)
        .args([
            "doctor",
            "--api-url",
            "http://127.0.0.1:9",
            "--tenant-id",
            "t",
            "--call-timeout",
            "2",
        ])
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", &logs)
        .output()
        .unwrap();
    let text = String::from_utf8(dead.stdout).unwrap();
    assert!(!dead.status.success());
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("reachability")),
        "{text}"
    );
    assert!(text.contains("fix: check TOOLBRIDGE_API_URL"), "{text}");

    let misconfigured = Command::new(common::BIN)
        .args(["doctor", "--api-url", "ftp://x"])
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8(misconfigured.stdout).unwrap();
    assert!(!misconfigured.status.success());
    assert!(text.starts_with("FAIL  configuration"), "{text}");
}

/// Invalid configuration fails fast: one line on stderr, non-zero exit, and
/// nothing on stdout.
#[test]
fn bad_configuration_fails_fast() {
    let cases: &[(&[&str], &str)] = &[
        (&["--api-url", "not a url"], "TOOLBRIDGE_API_URL"),
        (&["--api-url", "ftp://example.com"], "http or https"),
        (&["--token", "x"], "TOOLBRIDGE_API_URL"),
        (
            &[
                "--api-url",
                "http://h",
                "--token",
                "x",
                "--dev-subject",
                "u",
            ],
            "only one of",
        ),
        (&["--call-timeout", "0"], "out of range"),
        (&["--max-retries", "99"], "99"),
        (
            &[
                "--token-file",
                "/nonexistent/token",
                "--api-url",
                "http://h",
            ],
            "cannot read the token file",
        ),
    ];
    for (args, mentions) in cases {
        let output = Command::new(common::BIN)
            .args(*args)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(output.stdout.is_empty(), "{args:?} wrote to stdout");
        assert!(
            stderr.contains(mentions),
            "{args:?}: `{stderr}` should mention {mentions}"
        );
    }
    let help = Command::new(common::BIN)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("TOOLBRIDGE_DB_PATH") && help.contains("toolbridge.db"),
        "--help shows the database path"
    );
    let version = Command::new(common::BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}
