//! The FastMCP peer, the common Python way (`peer/server.py`: a new
//! `httpx.AsyncClient` and a new sync session per call), installed with its
//! pinned packages into `target/bench/peer-venv` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::Launch;
use crate::common::fast_upstream::Counters;
use crate::{BoxError, Samples, Setup, Table, checked, hot, note_args, startup, us};

/// `server.py` and its pinned `requirements.txt`.
const PEER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sidecar/peer");
const WARMUP: usize = 100;
const CALLS: usize = 2_000;

fn run(command: &mut Command) -> Result<(), BoxError> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr).trim()).into())
}

/// The venv's Python, (re)installed when the pinned requirements changed;
/// `SIDECAR_BENCH_PYTHON` makes the venv (default `python3`).
fn ensure_venv(bench_dir: &Path) -> Result<PathBuf, BoxError> {
    let venv = bench_dir.join("peer-venv");
    let python = venv.join("bin/python");
    let requirements = Path::new(PEER_DIR).join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    let stamp = venv.join("bench-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    eprintln!("sidecar bench: installing the FastMCP peer into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    let interpreter = std::env::var("SIDECAR_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(interpreter).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn launch(python: &Path, url: &str) -> Launch {
    Launch::command(python)
        .arg(&format!("{PEER_DIR}/server.py"))
        .env("PEER_API_URL", url)
        .env("PYTHONUNBUFFERED", "1")
}

/// Its startup, per-call latency and peak RSS beside the sidecar's.
pub async fn measure(table: &mut Table, setup: &Setup) -> Result<(), BoxError> {
    let upstream = &setup.upstream;
    table.section("The FastMCP peer (`benches/sidecar/peer`)");
    let python = match ensure_venv(&setup.dir) {
        Ok(python) => python,
        Err(e) => {
            table.row("not measured", format!("cannot install it: {e}"));
            return Ok(());
        }
    };
    let [init, _, _] = startup(|_| launch(&python, &upstream.url)).await;
    let sidecar_init = table.json["startup_remote_initialize_ms"].as_f64().unwrap_or(f64::NAN);
    let measured = format!("{init:.1} ms, {:.0}× the sidecar", init / sidecar_init);
    table.goal("spawn → `initialize` reply", measured, "≥ 20×", Some(init >= 20.0 * sidecar_init));
    let mut peer = hot(launch(&python, &upstream.url), ("get_note", note_args())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = peer.peak_rss_kib().unwrap_or(0);
    let sessions = Counters::get(&upstream.counters.sessions);
    let run = checked(peer.call_loop("get_note", note_args(), 1, WARMUP, CALLS).await, "peer")?;
    let sessions = Counters::get(&upstream.counters.sessions) - sessions;
    let after = peer.peak_rss_kib().unwrap_or(0);
    peer.shutdown().await;
    let latency = Samples::from(run.latencies);
    let sidecar = table.json["latency_c1"]["sidecar"]["median_us"].as_f64().unwrap_or(f64::NAN);
    let times = latency.median() / sidecar;
    let measured = format!(
        "{}, {times:.0}× the sidecar; {:.2} sessions per call",
        latency.median_p99(us),
        sessions as f64 / (WARMUP + CALLS) as f64
    );
    table.goal("`get_note` median (p99)", measured, "≥ 10×", Some(times >= 10.0));
    let measured = format!("{:.1} / {:.1} MiB", idle as f64 / 1024.0, after as f64 / 1024.0);
    table.row("peak RSS idle / after 2,100 calls", measured);
    table.record("peer", json!({"initialize_ms": init, "get_note": latency.json(), "idle_kib": idle, "after_kib": after, "per_sec": run.per_sec}));
    Ok(())
}
