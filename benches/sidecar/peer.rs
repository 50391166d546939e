//! The FastMCP peer: installs its pinned packages into a venv under
//! `target/bench/peer-venv` on first use, and builds the command that runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The peer's sources, beside this file.
fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sidecar/peer")
}

/// The venv's Python, installing or refreshing the venv when the pinned
/// requirements changed. `SIDECAR_BENCH_PYTHON` picks the interpreter that
/// makes the venv (default `python3`).
pub fn ensure_venv(bench_dir: &Path) -> Result<PathBuf, String> {
    let venv = bench_dir.join("peer-venv");
    let python = venv.join("bin/python");
    let requirements = peer_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp = venv.join("bench-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    eprintln!(
        "sidecar bench: installing the FastMCP peer into {} (first run only)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let interpreter = std::env::var("SIDECAR_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&interpreter).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    Ok(python)
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The command that serves the peer on stdio against `api_url`.
pub fn command(python: &Path, api_url: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(peer_dir().join("server.py"))
        .env("PEER_API_URL", api_url)
        .env("PEER_TOKEN", "x")
        .env("PEER_TENANT", "t")
        // Hosts launch servers with a non-interactive environment.
        .env("PYTHONUNBUFFERED", "1");
    command
}

/// `name==version` of the packages the report names.
pub fn versions(python: &Path) -> String {
    let script = "import importlib.metadata as m, sys; \
        print(' '.join(f'{p}=={m.version(p)}' for p in ('fastmcp','mcp','httpx','pydantic','anyio')), \
        'python=='+sys.version.split()[0])";
    Command::new(python)
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
