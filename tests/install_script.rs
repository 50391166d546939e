//! `install/`: the snippets `install.sh --print-only` prints for each client,
//! the committed config templates, and the `.mcpb` bundle manifest, checked
//! against the binary they describe.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_toolbridge-mcp");
const INSTALL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install");
const PLACEHOLDER: &str = "/ABSOLUTE/PATH/TO/toolbridge-mcp";

/// `sh install/install.sh ARGS...` (sh, not bash: the script is POSIX).
fn install_sh(args: &[&str]) -> Output {
    Command::new("sh")
        .arg(Path::new(INSTALL_DIR).join("install.sh"))
        .args(args)
        .output()
        .expect("run sh")
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "install.sh failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The binary under a path a shell and JSON must both quote: space, apostrophe, double quote.
fn awkward_bin(dir: &Path) -> PathBuf {
    let awkward = dir.join("it's a \"tool\" dir");
    fs::create_dir(&awkward).unwrap();
    let bin = awkward.join("toolbridge-mcp");
    symlink(BIN, &bin).unwrap();
    bin
}

/// Runs a `claude mcp add ...` command line with a stand-in `claude` on PATH and
/// returns the arguments it received.
fn claude_argv(script: &str, dir: &Path) -> Vec<String> {
    let fake_bin = dir.join("fake-bin");
    fs::create_dir_all(&fake_bin).unwrap();
    let claude = fake_bin.join("claude");
    fs::write(
        &claude,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$ARGV_OUT\"\n",
    )
    .unwrap();
    fs::set_permissions(&claude, fs::Permissions::from_mode(0o755)).unwrap();
    let argv_out = dir.join("argv");
    let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("sh")
        .args(["-c", script])
        .env("PATH", path)
        .env("ARGV_OUT", &argv_out)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}\n{out:?}");
    fs::read_to_string(&argv_out)
        .unwrap()
        .split_terminator('\0')
        .map(str::to_owned)
        .collect()
}

/// Each client's snippet is valid JSON (or a working `claude mcp add` line) with
/// the absolute binary path filled in, however awkward the path, and no env.
#[test]
fn print_only_fills_in_the_path_for_each_client() {
    let temp = tempfile::tempdir().unwrap();
    let bin = awkward_bin(temp.path());
    let bin_s = bin.to_str().unwrap();

    for client in ["claude-desktop", "cursor"] {
        let config = stdout_json(&install_sh(&["--print-only", bin_s, client]));
        assert_eq!(
            config,
            json!({"mcpServers": {"toolbridge": {"command": bin_s}}}),
            "{client}"
        );
    }
    let vscode = stdout_json(&install_sh(&["--print-only", bin_s, "vscode"]));
    assert_eq!(
        vscode,
        json!({"servers": {"toolbridge": {"type": "stdio", "command": bin_s}}})
    );

    let out = install_sh(&["--print-only", bin_s, "claude-code"]);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        claude_argv(&line, temp.path()),
        [
            "mcp",
            "add",
            "--transport",
            "stdio",
            "--scope",
            "user",
            "toolbridge",
            "--",
            bin_s
        ]
    );

    // A relative path is made absolute.
    let out = Command::new("sh")
        .current_dir(bin.parent().unwrap())
        .arg(Path::new(INSTALL_DIR).join("install.sh"))
        .args(["--print-only", "./toolbridge-mcp", "cursor"])
        .output()
        .unwrap();
    assert_eq!(
        stdout_json(&out)["mcpServers"]["toolbridge"]["command"],
        bin_s
    );
}

/// `--api-url` and `--token-file` add the env block, in every client's form.
#[test]
fn print_only_adds_the_api_environment() {
    let token_file = "/home/me/.config/toolbridge/it's \"the\" token";
    let args = |client| {
        [
            "--print-only",
            BIN,
            "--api-url",
            "https://api.example.com",
            "--token-file",
            token_file,
            client,
        ]
    };
    let env = json!({
        "TOOLBRIDGE_API_URL": "https://api.example.com",
        "TOOLBRIDGE_TOKEN_FILE": token_file,
    });
    for client in ["claude-desktop", "cursor"] {
        let config = stdout_json(&install_sh(&args(client)));
        assert_eq!(config["mcpServers"]["toolbridge"]["env"], env, "{client}");
    }
    let vscode = stdout_json(&install_sh(&args("vscode")));
    assert_eq!(vscode["servers"]["toolbridge"]["env"], env);

    let out = install_sh(&args("claude-code"));
    assert!(out.status.success(), "{out:?}");
    let temp = tempfile::tempdir().unwrap();
    let argv = claude_argv(&String::from_utf8(out.stdout).unwrap(), temp.path());
    let expected_tail = [
        "toolbridge".to_owned(),
        "-e".into(),
        "TOOLBRIDGE_API_URL=https://api.example.com".into(),
        "-e".into(),
        format!("TOOLBRIDGE_TOKEN_FILE={token_file}"),
        "--".into(),
        BIN.into(),
    ];
    assert!(argv.ends_with(&expected_tail), "{argv:?}");

    // An API URL alone is fine; a token file alone is refused (it would go unused).
    let url_only = stdout_json(&install_sh(&[
        "--print-only",
        BIN,
        "--api-url",
        "https://api.example.com",
        "cursor",
    ]));
    assert_eq!(
        url_only["mcpServers"]["toolbridge"]["env"],
        json!({"TOOLBRIDGE_API_URL": "https://api.example.com"})
    );
    let out = install_sh(&["--print-only", BIN, "--token-file", "/t", "cursor"]);
    assert!(!out.status.success(), "{out:?}");
}

/// `--help` succeeds; an unknown or missing client, a missing binary and an
/// unknown option fail with a message naming the problem.
#[test]
fn install_script_help_and_refusals() {
    let help = install_sh(&["--help"]);
    assert!(help.status.success());
    let usage = String::from_utf8(help.stdout).unwrap();
    for client in [
        "claude-desktop",
        "vscode",
        "cursor",
        "claude-code",
        "--print-only",
    ] {
        assert!(usage.contains(client), "--help does not mention {client}");
    }

    for (args, needle) in [
        (
            &["--print-only", BIN, "emacs"][..],
            "unknown client 'emacs'",
        ),
        (&["--print-only", BIN][..], "name the client"),
        (
            &["--print-only", "/nonexistent/toolbridge-mcp", "cursor"][..],
            "no executable",
        ),
        (&["--frobnicate", "cursor"][..], "unknown option"),
    ] {
        let out = install_sh(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stdout_is_empty(&out), "{args:?} printed a snippet anyway");
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

fn stdout_is_empty(out: &Output) -> bool {
    out.stdout.is_empty()
}

/// The committed templates are valid JSON (or a valid script) with the path
/// placeholder and the example env block.
#[test]
fn templates_have_the_placeholder_and_example_env() {
    let env = json!({
        "TOOLBRIDGE_API_URL": "https://api.example.com",
        "TOOLBRIDGE_TOKEN_FILE": "/ABSOLUTE/PATH/TO/toolbridge-token",
    });
    for (file, key) in [
        ("claude_desktop_config.json", "mcpServers"),
        ("cursor-mcp.json", "mcpServers"),
        ("vscode-mcp.json", "servers"),
    ] {
        let text = fs::read_to_string(Path::new(INSTALL_DIR).join(file)).unwrap();
        let config: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        let server = &config[key]["toolbridge"];
        assert_eq!(server["command"], PLACEHOLDER, "{file}");
        assert_eq!(server["env"], env, "{file}");
        if key == "servers" {
            assert_eq!(server["type"], "stdio", "{file}");
        }
    }

    let script = Path::new(INSTALL_DIR).join("claude-code.sh");
    let temp = tempfile::tempdir().unwrap();
    let argv = claude_argv(&format!("sh '{}'", script.display()), temp.path());
    assert_eq!(argv[..2], ["mcp", "add"]);
    assert_eq!(argv.last().unwrap(), PLACEHOLDER);
    for needle in [
        "TOOLBRIDGE_API_URL=https://api.example.com",
        "TOOLBRIDGE_TOKEN_FILE=/ABSOLUTE/PATH/TO/toolbridge-token",
    ] {
        let at = argv
            .iter()
            .position(|a| a == needle)
            .unwrap_or_else(|| panic!("{argv:?}"));
        assert_eq!(argv[at - 1], "-e", "{argv:?}");
    }
}

fn manifest() -> Value {
    let text = fs::read_to_string(Path::new(INSTALL_DIR).join("manifest.json")).unwrap();
    serde_json::from_str(&text).expect("manifest.json is not JSON")
}

/// The `.mcpb` manifest launches the bundled binary, lists exactly the tools the
/// binary serves, and marks the token sensitive.
#[test]
fn mcpb_manifest_matches_the_binary() {
    let manifest = manifest();
    assert_eq!(manifest["server"]["type"], "binary");
    let entry = manifest["server"]["entry_point"].as_str().unwrap();
    assert_eq!(
        manifest["server"]["mcp_config"]["command"],
        format!("${{__dirname}}/{entry}")
    );
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));

    let out = Command::new(BIN)
        .args(["tools", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let tools: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let served: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t["name"], "description": t["description"]}))
        .collect();
    assert_eq!(
        manifest["tools"],
        Value::Array(served),
        "install/manifest.json's tools differ from the binary's; regenerate them with\n  \
         jq --argjson tools \"$(./target/debug/toolbridge-mcp tools --json | jq '[.[] | {{name, description}}]')\" \
         '.tools = $tools' install/manifest.json > m.json && mv m.json install/manifest.json"
    );

    let user_config = manifest["user_config"].as_object().unwrap();
    assert_eq!(user_config["api_token"]["sensitive"], true);
    for (key, value) in manifest["server"]["mcp_config"]["env"].as_object().unwrap() {
        let value = value.as_str().unwrap();
        let name = value
            .strip_prefix("${user_config.")
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{key} = {value} is not a user_config reference"));
        assert!(
            user_config.contains_key(name),
            "{key} refers to unknown user_config.{name}"
        );
    }
}

/// Installed from the bundle with its settings left blank, the server runs on the
/// embedded API: the host substitutes each blank setting's default (`""`), as the
/// mcpb reference implementation does, and an empty variable must mean "unset".
#[test]
fn mcpb_bundle_with_blank_settings_uses_the_embedded_api() {
    let manifest = manifest();
    let user_config = manifest["user_config"].as_object().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["call", "list_notes"])
        .env_clear()
        .env("HOME", temp.path())
        .env("TOOLBRIDGE_DB_PATH", temp.path().join("db.sqlite"))
        .env("TOOLBRIDGE_LOG_DIR", temp.path().join("logs"));
    for (key, value) in manifest["server"]["mcp_config"]["env"].as_object().unwrap() {
        let mut value = value.as_str().unwrap().to_owned();
        for (name, option) in user_config {
            let default = option["default"].as_str().unwrap_or_default();
            value = value.replace(&format!("${{user_config.{name}}}"), default);
        }
        cmd.env(key, value);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "the bundle's default settings do not start the embedded API: {}\n{cmd:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed["items"].is_array(), "{listed}");
}
