//! `toolbridge-mcp doctor`: checks what a working setup needs, in the order a
//! person would debug it, and says how to fix each failure.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Backend;
use crate::config::{Config, Upstream};
use crate::embedded::{self, Integrity};
use crate::error::ToolError;
use crate::upstream::Auth;

/// How long the embedded database's check may read: a few seconds cover
/// files far larger than a person's notes.
const DATABASE_CHECK_BUDGET: Duration = Duration::from_secs(10);

/// `toolbridge-mcp doctor`: each check on one line, PASS or FAIL, with a fix
/// under each failure. True when everything passed.
pub async fn run(mut config: Config) -> bool {
    let mut report = Report::default();
    match &config.upstream {
        Upstream::Remote { base_url } => {
            report.pass("configuration", format!("remote API {base_url}"))
        }
        Upstream::Embedded { db_path } => report.pass(
            "configuration",
            format!("embedded API, database {}", db_path.display()),
        ),
    }
    match check_log_dir(&config.log_dir) {
        Ok(()) => report.pass("log directory", config.log_dir.display().to_string()),
        Err(e) => report.fail(
            "log directory",
            format!("{}: {e}", config.log_dir.display()),
            "set TOOLBRIDGE_LOG_DIR to a writable directory",
        ),
    }
    if let Upstream::Embedded { db_path } = &config.upstream {
        database_check(db_path, &mut report).await;
    }
    let dev_subject = matches!(config.auth, Auth::DevSubject(_));
    let backend = match Backend::start(&mut config).await {
        Ok(backend) => backend,
        Err(e) => {
            report.fail(
                "startup",
                e.to_string(),
                "see the message; for the embedded API check TOOLBRIDGE_DB_PATH",
            );
            return report.finish();
        }
    };
    let client = backend.service.client();
    let call = || crate::upstream::Call::new(config.call_timeout, CancellationToken::new());
    let checks_passed = match client.health(&call()).await {
        Ok(200) => {
            report.pass(
                "reachability",
                format!("GET {}/healthz answered 200", client.base_url()),
            );
            true
        }
        Ok(status) => {
            report.fail(
                "reachability",
                format!("GET /healthz answered {status}"),
                "check TOOLBRIDGE_API_URL points at the API's base URL",
            );
            false
        }
        Err(e) => {
            report.fail("reachability", e.message, "check TOOLBRIDGE_API_URL and that the API is running (behind a proxy, set HTTPS_PROXY)");
            false
        }
    };
    if checks_passed {
        match client.check_session(&call()).await {
            Ok((tenant, epoch)) => {
                report.pass(
                    "auth and tenant",
                    format!("tenant `{tenant}` accepted the credentials"),
                );
                report.pass("session", format!("opened a sync session (epoch {epoch})"));
                let read = match backend
                    .service
                    .catalog()
                    .get("list_notes")
                    .or_else(|| backend.service.catalog().tools().first())
                {
                    Some(tool) => {
                        let args = serde_json::json!({"limit": 1});
                        let result = backend
                            .service
                            .run(tool, args.as_object().cloned(), CancellationToken::new())
                            .await;
                        Some((tool.name.clone(), result))
                    }
                    None => None,
                };
                match read {
                    Some((name, Ok(_))) => report.pass("read", format!("{name} answered")),
                    Some((name, Err(e))) => report.fail(
                        "read",
                        format!("{name}: {}", e.summary()),
                        fix_for(&e, dev_subject),
                    ),
                    None => {}
                }
            }
            Err(e) => report.fail("auth and tenant", e.summary(), fix_for(&e, dev_subject)),
        }
    }
    if checks_passed {
        replica_check(&backend, &config, &mut report).await;
    }
    let breaker = client.breaker_state();
    if breaker.admits_calls() {
        report.pass("circuit breaker", breaker);
    } else {
        report.fail(
            "circuit breaker",
            breaker,
            "the upstream failed repeatedly during these checks; see the failures above",
        );
    }
    backend.shutdown().await;
    report.finish()
}

/// How to fix a failed check; `dev_subject` when the credentials are a dev
/// subject, so the fix speaks of that rather than of tokens.
fn fix_for(error: &ToolError, dev_subject: bool) -> &'static str {
    use crate::error::ErrorCode::*;
    match error.code {
        Unauthorized if dev_subject => {
            "TOOLBRIDGE_DEV_SUBJECT is only accepted by an API in dev mode; check that, and set TOOLBRIDGE_TENANT_ID if the API cannot tell your tenant (or use TOOLBRIDGE_TOKEN instead)"
        }
        // Resolving the tenant failed although the credentials passed.
        Unauthorized if error.message.contains("TOOLBRIDGE_TENANT_ID") => {
            "set TOOLBRIDGE_TENANT_ID to your tenant's id: the API cannot tell it from the credentials"
        }
        Unauthorized => crate::upstream::CREDENTIALS_HINT,
        Forbidden => "check TOOLBRIDGE_TENANT_ID: the credentials do not belong to that tenant",
        Timeout => {
            "the API is slow or unreachable: check the network, or raise TOOLBRIDGE_CALL_TIMEOUT"
        }
        RateLimited => "the API is rate limiting this user: wait and run doctor again",
        UpstreamUnavailable => "check TOOLBRIDGE_API_URL and that the API is running",
        _ => "see the message; the log file has the details under its correlation id",
    }
}

/// The embedded API's database file, read whole by SQLite's `quick_check`
/// (see [`embedded::check_file`]) before anything uses it.
async fn database_check(path: &Path, report: &mut Report) {
    let file = path.to_owned();
    let found =
        tokio::task::spawn_blocking(move || embedded::check_file(&file, DATABASE_CHECK_BUDGET))
            .await
            .unwrap_or_else(|e| Integrity::Unreadable(e.to_string()));
    let shown = path.display();
    match found {
        Integrity::Missing => report.pass(
            "database",
            format!("{shown} does not exist yet (the first start creates it)"),
        ),
        Integrity::Intact => report.pass("database", format!("{shown}: quick_check ok")),
        Integrity::Unfinished => report.pass(
            "database",
            format!(
                "{shown}: quick_check did not finish within {} s; for a full check run `sqlite3 '{shown}' 'PRAGMA integrity_check'`",
                DATABASE_CHECK_BUDGET.as_secs()
            ),
        ),
        Integrity::Damaged(problems) => report.fail(
            "database",
            format!("{shown} is damaged: {problems}"),
            &embedded::recovery_steps(path),
        ),
        Integrity::Unreadable(why) => report.fail(
            "database",
            format!("cannot read {shown}: {why}"),
            "check that TOOLBRIDGE_DB_PATH names a file this user may read and write",
        ),
    }
}

/// Where the replica is, what it holds per entity, when each was last
/// refreshed, and its size on disk.
async fn replica_check(backend: &Backend, config: &Config, report: &mut Report) {
    let Some(follower) = backend.service.follower() else {
        report.pass("replica", "off (--replica off): every read asks the API");
        return;
    };
    let call = crate::upstream::Call::new(config.call_timeout, CancellationToken::new());
    let replica = match follower.replica(&call).await {
        Ok(Some(replica)) => replica,
        Ok(None) => {
            report.fail(
                "replica",
                "cannot be used (see the log)",
                "delete the replica directory's files, or run with TOOLBRIDGE_REPLICA=off",
            );
            return;
        }
        Err(e) => {
            report.fail("replica", e.summary(), fix_for(&e, false));
            return;
        }
    };
    match replica.stats() {
        Ok(stats) => {
            let entities: Vec<String> = stats
                .entities
                .iter()
                .map(|e| {
                    let refreshed = e.feed.refreshed_ms.map_or("never synced".to_owned(), |ms| {
                        let ago = now_ms().saturating_sub(ms) / 1000;
                        format!("refreshed {ago} s ago")
                    });
                    format!("{} {} ({refreshed})", e.entity, e.live)
                })
                .collect();
            report.pass(
                "replica",
                format!(
                    "{} ({} KiB): {}",
                    replica.path().display(),
                    stats.size_bytes / 1024,
                    entities.join(", ")
                ),
            );
        }
        Err(e) => report.fail(
            "replica",
            e.to_string(),
            "delete the replica file; it is a cache and is rebuilt",
        ),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn check_log_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".doctor-probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(probe)
}

/// Doctor's output, one line per check.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn pass(&mut self, check: &str, detail: impl std::fmt::Display) {
        println!("PASS  {check:<16} {detail}");
    }

    fn fail(&mut self, check: &str, detail: impl std::fmt::Display, fix: &str) {
        self.failed = true;
        println!("FAIL  {check:<16} {detail}\n      fix: {fix}");
    }

    fn finish(self) -> bool {
        !self.failed
    }
}
