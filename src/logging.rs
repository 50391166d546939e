//! Structured logs: JSON lines in a daily-rotating file, never on stdout.
//!
//! `tracing_subscriber::fmt()` writes to stdout unless told otherwise, and the
//! non-blocking writer's guard prints to stdout when its flush times out; in
//! `serve` stdout is the MCP channel, so [`crate::stdio`] points fd 1 at
//! stderr before this runs, and here every writer is named explicitly.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;

/// Log files are `<prefix>.<YYYY-MM-DD>.<suffix>`; `stats` reads them by
/// this name.
pub const FILE_PREFIX: &str = "toolbridge-mcp";
pub const FILE_SUFFIX: &str = "jsonl";

/// Days of log files kept.
const KEEP_FILES: usize = 7;

/// Flushes buffered log lines when dropped; keep it alive until exit.
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Installs the global subscriber. When the log directory cannot be used the
/// reason goes to stderr and logs follow it there: losing logs must not stop
/// the server.
pub fn init(dir: &Path, level: &str) -> LogGuard {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("toolbridge-mcp: ignoring log filter `{level}` ({e}); using info");
        EnvFilter::new("info")
    });
    // Owner-only: the directories made here 0700; the files 0600, by the
    // process umask (`fsmode::private_umask`), since the appender takes no mode.
    let appender = crate::fsmode::create_private_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            RollingFileAppender::builder()
                .rotation(Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .filename_suffix(FILE_SUFFIX)
                .max_log_files(KEEP_FILES)
                .build(dir)
                .map_err(|e| e.to_string())
        });
    let builder = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter);
    match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let _ = builder.with_writer(writer).with_ansi(false).try_init();
            LogGuard {
                _worker: Some(guard),
            }
        }
        Err(e) => {
            eprintln!(
                "toolbridge-mcp: cannot write logs to {}: {e}; logging to stderr",
                dir.display()
            );
            let _ = builder.with_writer(std::io::stderr).try_init();
            LogGuard { _worker: None }
        }
    }
}
