//! The user's data and logs are private: directories the binary creates are
//! 0700, the database (with its WAL and shared-memory files) and the log
//! files 0600, whatever the umask it was started with; directories it did not
//! create are left alone. Unix only: elsewhere there are no mode bits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Launch, ok};
use serde_json::json;

/// Runs the binary under the usual umask, 022, whatever this test process
/// inherited: the modes checked are then the ones the binary sets itself.
fn usual_umask() {
    // SAFETY: umask(2) cannot fail and touches no memory; every test in this
    // file wants the same mask.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o022)
    };
}

fn mode(path: &Path) -> u32 {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Asserts each path's mode, listing every mismatch at once.
fn assert_modes(expected: &[(&Path, u32)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(path, want)| mode(path) != *want)
        .map(|(path, want)| format!("{} is {:o}, want {want:o}", path.display(), mode(path)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The database and whichever of its `-wal` and `-shm` files exist.
fn database_files(db: &Path) -> Vec<PathBuf> {
    let sidecar = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_owned(), sidecar("-wal"), sidecar("-shm")]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .expect("log dir")
        .map(|entry| entry.expect("entry").path())
        .collect()
}

/// `call create_note`, on the embedded database `db`, logging to `logs`.
fn create_note(db: &Path, logs: &Path) {
    let output = Command::new(common::BIN)
        .args(["call", "create_note", "--arg", "title=x", "--db-path"])
        .arg(db)
        .arg("--log-dir")
        .arg(logs)
        .env_clear()
        .output()
        .expect("run toolbridge-mcp");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A first run creates the database's and the logs' directories 0700 and
/// their files 0600, under the usual umask 022, and leaves a directory it
/// found (0755 here) as it was.
#[test]
fn a_first_run_creates_private_directories_and_files() {
    usual_umask();
    let tmp = tempfile::tempdir().expect("tempdir");
    let found = tmp.path().join("found");
    fs::create_dir(&found).expect("mkdir");
    set_mode(&found, 0o755);
    let db = found.join("new/dir/db.sqlite");
    let logs = tmp.path().join("logs/sub");

    create_note(&db, &logs);

    assert_modes(&[
        (&found, 0o755),
        (&found.join("new"), 0o700),
        (&found.join("new/dir"), 0o700),
        (&tmp.path().join("logs"), 0o700),
        (&logs, 0o700),
    ]);
    let logged = log_files(&logs);
    assert!(!logged.is_empty(), "no log file");
    let files: Vec<PathBuf> = database_files(&db).into_iter().chain(logged).collect();
    assert_modes(
        &files
            .iter()
            .map(|f| (f.as_path(), 0o600))
            .collect::<Vec<_>>(),
    );
}

/// While a sidecar has the database open, its `-wal` and `-shm` files exist
/// and are 0600 too; and a database left readable by others (by an older
/// version, or by hand) is made private, with its `-wal` and `-shm`, by the
/// next process that opens it.
#[tokio::test]
async fn the_wal_and_shm_are_private_and_loose_files_are_tightened() {
    usual_umask();
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("data/db.sqlite");
    let logs = tmp.path().join("logs");
    let mut sidecar = Launch::embedded(&db).log_dir(&logs).spawn().await;
    sidecar.initialize().await;
    ok(&sidecar
        .call_tool("create_note", json!({"title": "held open"}))
        .await);
    let files = database_files(&db);
    assert_eq!(files.len(), 3, "expected the db, -wal and -shm: {files:?}");
    let private: Vec<(&Path, u32)> = files.iter().map(|f| (f.as_path(), 0o600)).collect();
    assert_modes(&private);

    for file in &files {
        set_mode(file, 0o644);
    }
    create_note(&db, &logs);
    assert_modes(&private);
    sidecar.shutdown().await;
}
