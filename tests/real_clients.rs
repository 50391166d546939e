//! Real third-party MCP clients driving the binary on its embedded API: the MCP
//! Inspector CLI, the official Python SDK (both protocol eras) and the official
//! TypeScript SDK. Their versions are pinned in `tests/clients/` and installed
//! once per machine into `target/real-clients/` (`npm ci`, a Python venv); a
//! failed install fails the tests. Each test gets its own database and log
//! directory, passed the way a host's config passes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    unsafe_code
)]
#![cfg(unix)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_toolbridge-mcp");
const CLIENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
/// The files whose content decides what is installed; a change reinstalls.
const PINNED: [&str; 3] = ["package.json", "package-lock.json", "requirements.txt"];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
const TOOL_COUNT: usize = 41; // 40 entity tools and search

/// Where the installed clients are.
struct RealClients {
    /// Holds `node_modules` (Inspector, TypeScript SDK) and a copy of `ts_client.mjs`.
    node_dir: PathBuf,
    /// The venv's interpreter, with `mcp` and `jsonschema`.
    python: PathBuf,
}

/// The installed clients, installing them first if needed (once per process,
/// under a file lock across processes). Panics with the reason when it fails.
fn real_clients() -> &'static RealClients {
    static CLIENTS: OnceLock<Result<RealClients, String>> = OnceLock::new();
    match CLIENTS.get_or_init(install) {
        Ok(clients) => clients,
        Err(e) => panic!("could not install the real MCP clients into target/real-clients:\n{e}"),
    }
}

fn install() -> Result<RealClients, String> {
    // target/debug/toolbridge-mcp -> target/real-clients, wherever the target dir is.
    let target = Path::new(BIN)
        .ancestors()
        .nth(2)
        .ok_or("no target directory")?;
    let root = target.join("real-clients");
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let _lock = lock(&root.join(".lock"))?;

    let node_dir = root.join("node");
    let venv = root.join("venv");
    let clients = RealClients {
        python: venv.join("bin/python"),
        node_dir,
    };
    let mut stamp = String::new();
    for name in PINNED {
        stamp += &read(&Path::new(CLIENTS_DIR).join(name))?;
    }
    let marker = root.join("installed.stamp");
    let installed = fs::read_to_string(&marker).is_ok_and(|s| s == stamp)
        && clients.python.exists()
        && clients
            .node_dir
            .join("node_modules/@modelcontextprotocol/inspector")
            .exists()
        && clients
            .node_dir
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists();
    if !installed {
        progress(&format!(
            "installing real MCP clients into {} (npm ci and a Python venv, once; can take a minute)…",
            root.display()
        ));
        let started = Instant::now();
        let _ = fs::remove_file(&marker);
        npm_ci(&clients.node_dir)?;
        python_venv(&venv, &clients.python)?;
        fs::write(&marker, &stamp).map_err(|e| e.to_string())?;
        progress(&format!(
            "installed real MCP clients in {:.1?}",
            started.elapsed()
        ));
    }
    // Node resolves an ES module's imports from the module's own directory, so
    // the script runs from beside the node_modules it imports.
    copy_if_changed(
        &Path::new(CLIENTS_DIR).join("ts_client.mjs"),
        &clients.node_dir.join("ts_client.mjs"),
    )?;
    Ok(clients)
}

/// The Inspector and the TypeScript SDK, exactly as `package-lock.json` pins them.
fn npm_ci(node_dir: &Path) -> Result<(), String> {
    fs::create_dir_all(node_dir).map_err(|e| e.to_string())?;
    for name in ["package.json", "package-lock.json"] {
        copy_if_changed(&Path::new(CLIENTS_DIR).join(name), &node_dir.join(name))?;
    }
    // --ignore-scripts: the Inspector's only install script is a no-op outside
    // its own source tree, and nothing else needs one.
    run_checked(
        Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(node_dir),
    )
}

/// A fresh venv with the Python SDK and jsonschema from `requirements.txt`.
fn python_venv(venv: &Path, python: &Path) -> Result<(), String> {
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(|e| format!("remove old venv: {e}"))?;
    }
    run_checked(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    run_checked(
        Command::new(python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--quiet", "--requirement"])
            .arg(Path::new(CLIENTS_DIR).join("requirements.txt")),
    )
}

/// A line on the real stderr: the test harness captures `eprintln!`, and an
/// install that takes a minute should say so while it runs.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// An exclusive lock on `path`, held until the returned file is dropped.
fn lock(path: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; released on close.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(file)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let content = read(from)?;
    if fs::read_to_string(to).is_ok_and(|c| c == content) {
        return Ok(());
    }
    // Through a temporary file and a rename, so a concurrent reader never sees half of it.
    let temp = to.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&temp, content).map_err(|e| format!("write {}: {e}", temp.display()))?;
    fs::rename(&temp, to).map_err(|e| format!("rename to {}: {e}", to.display()))
}

/// What a finished command produced.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion with stdin closed, killing its whole process group
/// (client and the server it launched) if it outlives `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Run, String> {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let (tx, rx) = mpsc::channel();
    for (index, mut pipe) in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((index, String::from_utf8_lossy(&buf).into_owned()));
        });
    }
    let kill_group = |pid: u32| {
        // SAFETY: signals the process group this function created.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(child.id());
        }
        thread::sleep(Duration::from_millis(20));
    };
    // A grandchild still holding a pipe would block the readers: give them a
    // moment, then end the group.
    let mut out = [String::new(), String::new()];
    for _ in 0..2 {
        let (index, text) = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(got) => got,
            Err(_) => {
                kill_group(child.id());
                rx.recv().map_err(|e| e.to_string())?
            }
        };
        out[index] = text;
    }
    let [stdout, stderr] = out;
    let run = Run {
        status,
        stdout,
        stderr,
    };
    if timed_out {
        return Err(format!(
            "{what} timed out after {timeout:?} and was killed\n{}",
            run.report()
        ));
    }
    Ok(run)
}

fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let run = run(cmd, INSTALL_TIMEOUT)?;
    if run.status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed\n{}", run.report()))
    }
}

/// A test's own database and log directory, removed when dropped.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn db(&self) -> String {
        self.dir.path().join("toolbridge.db").display().to_string()
    }
    fn logs(&self) -> String {
        self.dir.path().join("logs").display().to_string()
    }
    /// The server wrote a log line for `tool`: the client passed the environment on.
    fn assert_logged(&self, tool: &str) {
        let needle = format!("\"tool\":\"{tool}\"");
        let logs: String = fs::read_dir(self.logs())
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            logs.contains(&needle),
            "no log line for {tool} in {}: TOOLBRIDGE_LOG_DIR did not reach the server",
            self.logs()
        );
    }
}

/// One Inspector CLI invocation (its own server process) on the scratch database.
fn inspector(scratch: &Scratch, method_args: &[&str]) -> Run {
    inspector_with(scratch, &[], method_args)
}

/// [`inspector`] with extra arguments for the server (`--tool-mode compact`).
fn inspector_with(scratch: &Scratch, server_args: &[&str], method_args: &[&str]) -> Run {
    let clients = real_clients();
    let config = scratch.dir.path().join("inspector");
    let mut cmd = Command::new("npx");
    cmd.current_dir(&clients.node_dir)
        // Never fetch from the registry: only the locked, installed Inspector.
        .env("npm_config_yes", "false")
        // Keep the Inspector's own files out of the user's home.
        .env("MCP_CATALOG_PATH", config.join("catalog.json"))
        .env("MCP_CLIENT_CONFIG_PATH", config.join("client.json"))
        .args([
            "@modelcontextprotocol/inspector",
            "--cli",
            "--format",
            "json",
        ])
        .args(["-e", &format!("TOOLBRIDGE_LOG_DIR={}", scratch.logs())])
        .args([BIN, "--db-path", &scratch.db()])
        .args(server_args)
        // Method options last: --tool-arg takes every following word.
        .args(method_args);
    run(&mut cmd, CLIENT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// The `result` of an Inspector `--format json` run that must have succeeded.
fn inspector_result(run: &Run) -> Value {
    assert!(run.status.success(), "Inspector failed\n{}", run.report());
    let out: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("Inspector stdout is not JSON ({e})\n{}", run.report()));
    out["result"].clone()
}

/// Creates a note titled `title` through an Inspector `tools/call`, with
/// content "from the Inspector CLI"; returns its uid.
fn inspector_create_note(scratch: &Scratch, title: &str) -> String {
    let created = inspector_result(&inspector(
        scratch,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "create_note",
            "--tool-arg",
            &format!("title={title}"),
            "content=from the Inspector CLI",
        ],
    ));
    assert_eq!(created["isError"], false, "{created}");
    let note = &created["structuredContent"];
    assert_eq!(note["payload"]["title"], title, "{created}");
    note["uid"].as_str().expect("uid").to_owned()
}

/// Inspector CLI: `tools/list --strict` finds no portability problem in any of the
/// 41 schemas in either era, and a note created by one process is read back by another.
#[test]
fn inspector_cli_lists_strictly_and_round_trips_a_note() {
    let scratch = Scratch::new();
    for era in ["legacy", "modern"] {
        let run = inspector(
            &scratch,
            &["--protocol-era", era, "--method", "tools/list", "--strict"],
        );
        let result = inspector_result(&run);
        let tools = result["tools"].as_array().expect("tools array");
        assert_eq!(tools.len(), TOOL_COUNT, "{era} era\n{}", run.report());
        // --strict prints every finding, errors and warnings, as `Error: tool "x"` / `Warning: tool "x"`.
        assert!(
            !run.stderr.contains(": tool \""),
            "{era} era: the Inspector reports schema portability problems\n{}",
            run.stderr
        );
    }

    let title = format!("inspector round trip {}", std::process::id());
    let uid = inspector_create_note(&scratch, &title);

    let got = inspector_result(&inspector(
        &scratch,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "get_note",
            "--tool-arg",
            &format!("uid={uid}"),
        ],
    ));
    assert_eq!(got["structuredContent"]["uid"], uid.as_str(), "{got}");
    assert_eq!(
        got["structuredContent"]["payload"]["title"],
        title.as_str(),
        "{got}"
    );
    assert_eq!(
        got["structuredContent"]["payload"]["content"], "from the Inspector CLI",
        "{got}"
    );
    scratch.assert_logged("get_note");
}

/// Inspector CLI, in both eras: a note shows among the resources, reads back
/// as markdown, and the templates and prompts are listed.
#[test]
fn inspector_cli_lists_resources_and_prompts() {
    let scratch = Scratch::new();
    let title = format!("inspector resource {}", std::process::id());
    let uid = inspector_create_note(&scratch, &title);
    let uri = format!("toolbridge://notes/{uid}");
    for era in ["legacy", "modern"] {
        let method = |args: &[&str]| {
            let mut all = vec!["--protocol-era", era, "--method"];
            all.extend_from_slice(args);
            let run = inspector(&scratch, &all);
            (inspector_result(&run), run.report())
        };
        let (listed, report) = method(&["resources/list"]);
        assert_eq!(
            listed["resources"][0]["uri"],
            uri.as_str(),
            "{era} era\n{report}"
        );
        assert_eq!(
            listed["resources"][0]["name"],
            title.as_str(),
            "{era} era\n{report}"
        );
        let (read, report) = method(&["resources/read", "--uri", &uri]);
        let text = read["contents"][0]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(&title) && text.contains(&uid),
            "{era} era\n{report}"
        );
        let (templates, report) = method(&["resources/templates/list"]);
        assert_eq!(
            templates["resourceTemplates"].as_array().map(Vec::len),
            Some(4),
            "{era} era\n{report}"
        );
        let (prompts, report) = method(&["prompts/list"]);
        let names: Vec<&str> = prompts["prompts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["daily_review", "summarize", "note_to_tasks"],
            "{era} era\n{report}"
        );
    }
}

/// Inspector CLI in compact mode: `--strict` finds nothing to report in the
/// three tools in either era, and a note written with `write` is read back
/// with `read`.
#[test]
fn inspector_cli_in_compact_mode() {
    let scratch = Scratch::new();
    let compact = ["--tool-mode", "compact"];
    for era in ["legacy", "modern"] {
        let run = inspector_with(
            &scratch,
            &compact,
            &["--protocol-era", era, "--method", "tools/list", "--strict"],
        );
        let result = inspector_result(&run);
        let names: Vec<&str> = result["tools"]
            .as_array()
            .expect("tools array")
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["search", "read", "write"], "{era} era");
        assert!(
            !run.stderr.contains(": tool \""),
            "{era} era: the Inspector reports schema portability problems\n{}",
            run.stderr
        );
    }
    let created = inspector_result(&inspector_with(
        &scratch,
        &compact,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "write",
            "--tool-arg",
            "entity=notes",
            "operation=create",
            "title=compact",
        ],
    ));
    assert_eq!(created["isError"], false, "{created}");
    let uid = created["structuredContent"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let got = inspector_result(&inspector_with(
        &scratch,
        &compact,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "read",
            "--tool-arg",
            "entity=notes",
            "operation=get",
            &format!("uid={uid}"),
        ],
    ));
    assert_eq!(
        got["structuredContent"]["payload"]["title"], "compact",
        "{got}"
    );
    scratch.assert_logged("get_note");
}

/// Inspector CLI: a refused call reaches the user as a tool error (exit 5,
/// `isError`, code `invalid_input`), not as a client-side failure.
#[test]
fn inspector_cli_shows_tool_errors() {
    let scratch = Scratch::new();
    let run = inspector(
        &scratch,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "get_note",
            "--tool-arg",
            "uid=not-a-uuid",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(5),
        "expected exit 5 (tool returned isError)\n{}",
        run.report()
    );
    let out: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("Inspector stdout is not JSON ({e})\n{}", run.report()));
    let result = &out["result"];
    assert_eq!(result["isError"], true, "{}", run.report());
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        result["structuredContent"]["code"] == "invalid_input" || text.contains("invalid_input"),
        "{}",
        run.report()
    );
}

/// Runs `python_client.py` on a fresh scratch database, with `server_args`
/// for the server; it prints "all checks passed" when every check held.
fn python_client(server_args: &[&str]) -> Scratch {
    let clients = real_clients();
    let scratch = Scratch::new();
    let run = run(
        Command::new(&clients.python)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg(Path::new(CLIENTS_DIR).join("python_client.py"))
            .args([BIN, &scratch.db(), &scratch.logs()])
            .args(server_args),
        CLIENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.status.success() && run.stdout.contains("all checks passed"),
        "python_client.py {server_args:?} failed\n{}",
        run.report()
    );
    scratch
}

/// Python SDK 2.3: handshake era and 2026-07-28 `server/discover` era, every
/// schema a valid Draft 2020-12 schema, resources, templates, completions,
/// prompts and a subscription in both, a note-and-comment chain, a tool error.
#[test]
fn python_sdk_both_eras_and_a_chain() {
    python_client(&[]).assert_logged("process_comment");
}

/// The same in compact tool mode: three tools, the chain through `write`,
/// `read` and `search`.
#[test]
fn python_sdk_in_compact_mode() {
    python_client(&["--tool-mode", "compact"]).assert_logged("process_comment");
}

/// Runs `ts_client.mjs SCENARIO` on a fresh scratch database, with
/// `server_args` for the server; it prints "all checks passed" when every
/// check held.
fn ts_client(scenario: &str, server_args: &[&str]) -> Scratch {
    let clients = real_clients();
    let scratch = Scratch::new();
    let run = run(
        Command::new("node")
            .current_dir(&clients.node_dir)
            .args([
                "ts_client.mjs",
                scenario,
                BIN,
                &scratch.db(),
                &scratch.logs(),
            ])
            .args(server_args),
        CLIENT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.status.success() && run.stdout.contains("all checks passed"),
        "ts_client.mjs {scenario} failed\n{}",
        run.report()
    );
    scratch
}

/// TypeScript SDK 1.x: 41 tools, create_task then process_task `complete`,
/// every result accepted by the SDK's own output-schema validation.
#[test]
fn typescript_sdk_validates_a_task_chain() {
    ts_client("chain", &[]).assert_logged("process_task");
}

/// TypeScript SDK 1.x: a refused call resolves to an `isError` result with code
/// `invalid_input` instead of the SDK throwing.
#[test]
fn typescript_sdk_receives_tool_errors() {
    ts_client("tool-error", &[]);
}

/// TypeScript SDK 1.x: resources (newest first), templates, a read that
/// carries the item's comments, completion of a template's uid, prompts, and
/// a subscription that hears a change made through a tool.
#[test]
fn typescript_sdk_lists_reads_and_completes_resources() {
    ts_client("surface", &[]);
}

/// TypeScript SDK 1.x in compact tool mode: three tools, a task chain through
/// `write`, `read` and `search`, every result schema-validated.
#[test]
fn typescript_sdk_in_compact_mode() {
    ts_client("compact", &["--tool-mode", "compact"]).assert_logged("process_task");
}
