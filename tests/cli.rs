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

use common::{Launch, err, ok};
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

/// The binary with `env` as its whole environment, for what parsing and
/// validating the settings decide before anything starts.
fn with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run toolbridge-mcp")
}

/// The one line a refusal prints on stderr (and nothing on stdout).
fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
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
    assert_eq!(unknown.status.code(), Some(2));
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

/// A damaged embedded database (valid header, damaged pages) is said to be
/// damaged, with how to recover and keep the file: a read fails at once and
/// is not retryable (no four attempts at an "internal error"), and `doctor`
/// runs SQLite's check on the file and fails it with the same steps.
#[tokio::test]
async fn a_damaged_database_says_so_and_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    common::damaged_database(&db).await;
    let mut mcp = Launch::embedded(&db).spawn().await;
    mcp.initialize().await;
    let error = err(&mcp.call_tool("list_notes", json!({})).await);
    mcp.shutdown().await;
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["retryable"], false, "{error}");
    assert!(
        message.starts_with("the local database is damaged"),
        "{message}"
    );
    let recover = format!("sqlite3 '{}.damaged' .recover", db.display());
    assert!(message.contains(&recover), "{message}");

    let doctor = toolbridge(&["doctor"], &db, &logs);
    let text = String::from_utf8(doctor.stdout).unwrap();
    assert!(!doctor.status.success(), "{text}");
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("FAIL  database"));
    let failed = lines
        .next()
        .unwrap_or_else(|| panic!("no failed database check:\n{text}"));
    assert!(failed.contains("is damaged"), "{text}");
    let fix = lines.next().unwrap();
    assert!(fix.contains(&recover) && fix.contains("keep it"), "{text}");
}

/// A wrong token against `serve-api` (whose tenant the sidecar asks for) is
/// said to be the token, with where tokens come from and serve-api's secret,
/// never "set TOOLBRIDGE_TENANT_ID", which would not fix it: in a tool's
/// error and in `doctor`.
#[tokio::test]
async fn a_wrong_token_against_serve_api_names_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let api = common::api::ApiProcess::start(&dir.path().join("api.db"), &logs).await;
    let mut mcp = Launch::remote(&api.url)
        .env("TOOLBRIDGE_TOKEN", "not-the-secret")
        .without_env("TOOLBRIDGE_TENANT_ID")
        .spawn()
        .await;
    mcp.initialize().await;
    let error = err(&mcp.call_tool("list_notes", json!({})).await);
    mcp.shutdown().await;
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["code"], "unauthorized", "{error}");
    assert!(
        message.contains("did not accept the credentials"),
        "{message}"
    );
    assert!(message.contains("TOOLBRIDGE_API_SECRET"), "{message}");
    assert!(!message.contains("TOOLBRIDGE_TENANT_ID"), "{message}");

    let doctor = Command::new(common::BIN)
        .args(["doctor", "--api-url", &api.url, "--replica", "off"])
        .env_clear()
        .env("TOOLBRIDGE_LOG_DIR", &logs)
        .env("TOOLBRIDGE_TOKEN", "not-the-secret")
        .output()
        .unwrap();
    let text = String::from_utf8(doctor.stdout).unwrap();
    assert!(!doctor.status.success(), "{text}");
    assert!(text.contains("FAIL  auth and tenant"), "{text}");
    assert!(text.contains("fix: check TOOLBRIDGE_TOKEN"), "{text}");
    assert!(!text.contains("TOOLBRIDGE_TENANT_ID"), "{text}");
}

/// Invalid configuration fails fast: one line on stderr, non-zero exit, and
/// nothing on stdout.
#[test]
fn bad_configuration_fails_fast() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--api-url", "not a url"],
            "--api-url `not a url` is not a URL",
        ),
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
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
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

/// A tool name that cannot be called is invalid input (exit 2, as the README
/// says), in one line naming the closest tools and how to list them all.
#[test]
fn an_unknown_tool_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let (db, logs) = (dir.path().join("t.db"), dir.path().join("logs"));
    let typo = toolbridge(&["call", "get_notes", "--arg", "uid=x"], &db, &logs);
    assert_eq!(typo.status.code(), Some(2));
    let line = one_line(&typo);
    assert!(line.contains("unknown tool: get_notes"), "{line}");
    assert!(line.contains("did you mean get_note"), "{line}");
    assert!(line.contains("`toolbridge-mcp tools`"), "{line}");
    assert!(!db.exists(), "a typo starts no embedded API");

    let disabled = toolbridge(&["call", "create_note", "--read-only"], &db, &logs);
    assert_eq!(disabled.status.code(), Some(2));
    assert!(one_line(&disabled).contains("not enabled"));
}

/// A bad setting exits 1 with one line naming where the value came from: the
/// environment variable when it was not on the command line, else the flag.
#[test]
fn a_bad_setting_names_its_variable_or_flag() {
    /// Arguments, environment, what the line says, what it must not name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &["tools", "--call-timeout", "0"],
            &[],
            "--call-timeout 0: out of range",
            "TOOLBRIDGE_CALL_TIMEOUT",
        ),
        (
            &["tools"],
            &[("TOOLBRIDGE_CALL_TIMEOUT", "0")],
            "TOOLBRIDGE_CALL_TIMEOUT=0: out of range",
            "--call-timeout",
        ),
        (
            &["tools"],
            &[("TOOLBRIDGE_READ_ONLY", "maybe")],
            "TOOLBRIDGE_READ_ONLY=maybe: expected one of true/false/1/0/yes/no/on/off",
            "--read-only",
        ),
        (
            &["tools"],
            &[("TOOLBRIDGE_TOOL_MODE", "tiny")],
            "TOOLBRIDGE_TOOL_MODE=tiny: expected one of full, compact",
            "--tool-mode",
        ),
        // The flag wins over its variable, and is the one named.
        (
            &["tools", "--max-retries", "99"],
            &[("TOOLBRIDGE_MAX_RETRIES", "1")],
            "--max-retries 99",
            "TOOLBRIDGE_MAX_RETRIES",
        ),
        // The same for what is checked after parsing.
        (
            &["tools"],
            &[("TOOLBRIDGE_API_URL", "ftp://example.com")],
            "TOOLBRIDGE_API_URL must be http or https",
            "--api-url",
        ),
        (
            &["tools", "--api-url", "ftp://example.com"],
            &[("TOOLBRIDGE_API_URL", "http://example.com")],
            "--api-url must be http or https",
            "TOOLBRIDGE_API_URL",
        ),
        (
            &["tools"],
            &[("TOOLBRIDGE_TOOLSETS", "notes,widgets")],
            "TOOLBRIDGE_TOOLSETS: unknown toolset `widgets`",
            "--toolsets",
        ),
        (
            &["tools", "--dev-subject", "u"],
            &[
                ("TOOLBRIDGE_API_URL", "http://h"),
                ("TOOLBRIDGE_TOKEN", "t"),
            ],
            "set only one of TOOLBRIDGE_TOKEN, --dev-subject",
            "TOOLBRIDGE_DEV_SUBJECT",
        ),
    ];
    for (args, env, says, not) in cases {
        let output = with_env(args, env);
        assert_eq!(output.status.code(), Some(1), "{args:?} {env:?}");
        let line = one_line(&output);
        assert!(
            line.contains(says),
            "{args:?} {env:?}: `{line}` should say {says}"
        );
        assert!(
            !line.contains(not),
            "{args:?} {env:?}: `{line}` names {not}"
        );
    }
}

/// Boolean settings take the spellings people put in an environment: 1/0,
/// true/false, yes/no, on/off, in any case.
#[test]
fn boolean_settings_take_the_usual_spellings() {
    let read_only = ["1", "TRUE", "yes", "On"].map(|v| (v, 11));
    let full = ["0", "false", "No", "OFF"].map(|v| (v, 41));
    for (value, tools) in read_only.into_iter().chain(full) {
        let output = with_env(&["tools"], &[("TOOLBRIDGE_READ_ONLY", value)]);
        assert!(
            output.status.success(),
            "TOOLBRIDGE_READ_ONLY={value}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines = String::from_utf8(output.stdout).unwrap();
        assert_eq!(lines.lines().count(), tools, "TOOLBRIDGE_READ_ONLY={value}");
    }
}

/// A command line that does not parse (unknown flag or subcommand, missing
/// argument) is invalid input: exit 2 and one line, with clap's tip.
#[test]
fn a_usage_error_is_one_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--read-onyl", "tools"],
            "a similar argument exists: '--read-only'",
        ),
        (&["call"], "<TOOL>"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ];
    for (args, says) in cases {
        let output = with_env(args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let line = one_line(&output);
        assert!(line.contains(says), "{args:?}: `{line}` should say {says}");
    }
}

/// An unknown log level is refused at startup with the valid ones, instead of
/// an empty log; a level in any case and `target=level` directives still pass.
#[test]
fn an_unknown_log_level_is_refused() {
    let from_env = with_env(&["tools"], &[("TOOLBRIDGE_LOG", "verbose")]);
    assert_eq!(from_env.status.code(), Some(1));
    let line = one_line(&from_env);
    assert!(line.contains("TOOLBRIDGE_LOG=verbose"), "{line}");
    assert!(line.contains("error, warn, info, debug, trace"), "{line}");
    let from_flag = with_env(&["tools", "--log-level", "loud"], &[]);
    assert_eq!(from_flag.status.code(), Some(1));
    assert!(one_line(&from_flag).contains("--log-level loud"));
    for filter in ["debug", "WARN", "info,toolbridge_mcp=debug"] {
        let output = with_env(&["tools"], &[("TOOLBRIDGE_LOG", filter)]);
        assert!(
            output.status.success(),
            "{filter}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `call --help` says the exit codes and how to see a tool's parameters;
/// `call TOOL --help` prints them (type, required, enum values,
/// description, default) for the tools the settings enable; an unknown TOOL is the
/// unknown-tool error.
#[test]
fn call_help_shows_exit_codes_and_a_tools_parameters() {
    let call = with_env(&["call", "--help"], &[]);
    assert!(call.status.success());
    let text = String::from_utf8(call.stdout).unwrap();
    assert!(
        text.contains("Exit codes: 0 success; 1 setup error"),
        "{text}"
    );
    assert!(text.contains("3 not found or gone"), "{text}");
    assert!(text.contains("`toolbridge-mcp call TOOL --help`"), "{text}");

    let task = with_env(&["call", "patch_task", "--help"], &[]);
    assert!(task.status.success());
    let text = String::from_utf8(task.stdout).unwrap();
    assert!(
        text.starts_with("patch_task: Change only the given fields (≤1 MiB)."),
        "{text}"
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_owned()
    };
    assert!(line("uid").contains("* ") && line("uid").contains("string (uuid)"));
    assert!(!line("title").contains('*'), "optional: {}", line("title"));
    assert!(line("status").contains("open | in_progress | completed | archived"));
    assert!(line("parent_uid").contains("Parent task"));
    assert!(line("tags").contains("array of string"));

    let list = with_env(&["call", "list_notes", "--help"], &[]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("(default 50)"), "{list}");

    let compact = with_env(&["--tool-mode", "compact", "call", "write", "-h"], &[]);
    assert!(
        String::from_utf8(compact.stdout)
            .unwrap()
            .contains("operation *")
    );

    let unknown = with_env(&["call", "patch_tsk", "--help"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(one_line(&unknown).contains("did you mean patch_task"));
}

/// `call TOOL --help` with a setting's bad value says what is wrong with it
/// (which tools exist depends on the settings) instead of printing `call`'s
/// general help, which would not; `--help` alone still helps.
#[test]
fn tool_help_with_a_bad_setting_names_the_setting() {
    let env = [("TOOLBRIDGE_CALL_TIMEOUT", "abc")];
    let output = with_env(&["call", "get_note", "--help"], &env);
    assert_eq!(output.status.code(), Some(1));
    let line = one_line(&output);
    assert!(line.contains("TOOLBRIDGE_CALL_TIMEOUT=abc"), "{line}");
    for args in [&["--help"][..], &["call", "--help"]] {
        let help = with_env(args, &env);
        assert!(help.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
}

/// `toolbridge-mcp tools | head -1`: when the reader goes away the command
/// ends as Unix tools do (SIGPIPE), not with a panic on the broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["tools", "--json"])
        .env_clear()
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the command prints its first byte.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
}

/// `serve-api` gives its address only once its database is open: on a file
/// that is not a database it exits with what to do, and never says it
/// serves (a script that waits for the address would use a dead port).
#[test]
fn serve_api_on_a_damaged_database_never_says_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("api.db");
    std::fs::write(&db, [0xA5; 4096]).unwrap();
    let output = Command::new(common::BIN)
        .args(["serve-api", "--listen", "127.0.0.1:0", "--db-path"])
        .arg(&db)
        .env_clear()
        .env("TOOLBRIDGE_API_SECRET", "s")
        .env("TOOLBRIDGE_LOG_DIR", dir.path().join("logs"))
        .output()
        .expect("run serve-api");
    assert!(!output.status.success());
    let line = one_line(&output);
    assert!(line.contains("is damaged"), "{line}");
}
