//! The embedded ToolBridge-compatible API: axum over one SQLite file.
//!
//! When no upstream URL is configured, the binary starts this API in-process
//! on loopback ([`spawn`]) and talks to it exactly as it would to the real
//! service; `toolbridge-mcp serve-api` runs it standalone ([`serve`]). It
//! follows the contract in `shared/upstream-contract.md`, including what was
//! observed on the real service, but not its defects. Where it differs:
//!
//! - One user (subject `local`) authenticated by a bearer secret, compared in
//!   constant time; one tenant, [`TENANT_ID`]. `GET /v1/auth/tenant` answers
//!   `200 {"tenantId":"local"}` (the real one fails without an identity
//!   provider).
//! - `POST /v1/sync/wipe` (auth and a session, no epoch check) raises the
//!   epoch and ends this process's sessions but deletes no data, needs no
//!   confirmation body, and answers `{"epoch":N}`. Other processes' sessions
//!   are caught by the epoch check, which reads the database.
//! - Sessions live in each process's memory: a session begun on one process
//!   sharing the database is unknown (`428`) to another.
//! - A `null` or non-object body is `400` (the real one: `500`, empty body).
//! - A non-UUID `uid` in a create body is `400` (the real one replaces it).
//! - An unparseable `If-Match` is `400` (the real one ignores it and writes).
//! - A stale `If-Match` is `412 "version mismatch: expected N, actual M"`
//!   (the real one doubles the prefix).
//! - Parents (re-checked on every write but delete): a missing or foreign
//!   `parentType`, or a missing or non-UUID `parentUid`/`chatUid`, is `400`;
//!   a parent that does not exist or is deleted is `422` (the real one: `500`
//!   for all of these).
//! - Every JSON error body carries `correlation_id`, `410` bodies included,
//!   and an `epoch_mismatch` reply echoes the generated id too.
//! - `DELETE` answers the full item (with `payload`) carrying `deletedAt`.
//! - `/v1/sync/info` lists the five entities served here (not seven).
//! - Rate limits are per process (one user), configurable by [`RateLimits`].
//! - An internal fault is `500 {"error":"internal error"}`; the detail goes
//!   to the log only, on a line with the request's correlation id.
//! - A damaged database file (SQLite finds a malformed page or record, or
//!   cannot read it) is `500 {"error","code":"database_damaged"}` whose
//!   message says how to recover, keeping the file: it is the user's data.

mod clock;
mod entities;
mod error;
mod gate;
mod items;
mod rate_limit;
mod routes;
mod sessions;
mod store;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::serve::ListenerExt;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use routes::{AppState, router};
pub use store::{Integrity, check_file, recovery_steps};

/// The only tenant: entity requests must send `X-TB-Tenant-ID: local`.
pub const TENANT_ID: &str = "local";

/// The only user, as sessions report it in `userId`.
const USER_ID: &str = "local";

/// How long [`RunningApi::shutdown`] lets open requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the embedded API needs to run.
#[derive(Debug)]
pub struct ApiConfig {
    /// The SQLite file; its parent directory is created if missing.
    pub db_path: PathBuf,
    /// The bearer secret clients must send.
    pub secret: SecretString,
    pub limits: RateLimits,
}

/// Token buckets (requests per minute, burst), one per route group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// The 40 entity routes.
    pub entity_per_minute: u32,
    pub entity_burst: u32,
    /// `/v1/auth/tenant` and the session routes.
    pub bootstrap_per_minute: u32,
    pub bootstrap_burst: u32,
}

impl Default for RateLimits {
    /// The real service's numbers.
    fn default() -> Self {
        Self {
            entity_per_minute: 600,
            entity_burst: 120,
            bootstrap_per_minute: 60,
            bootstrap_burst: 20,
        }
    }
}

impl RateLimits {
    /// For the API a sidecar starts for itself: its only client is that
    /// sidecar, so the limits only stop a runaway loop, not a busy model.
    pub fn in_process() -> Self {
        Self {
            entity_per_minute: 60_000,
            entity_burst: 1_000,
            bootstrap_per_minute: 600,
            bootstrap_burst: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create directory {} for the embedded API database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the embedded API database {}: {source}", path.display())]
    OpenStore {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the embedded API database {} is damaged ({source}): {}",
        path.display(),
        store::recovery_steps(path)
    )]
    Damaged {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the embedded API database {} has schema version {found}, newer than this binary supports \
         ({supported}); use a newer toolbridge-mcp or another database file",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: usize,
    },
    #[error("cannot listen on {addr} for the embedded API: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded API server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the embedded API's startup task failed: {0}")]
    Startup(#[source] tokio::task::JoinError),
}

/// Serves `state` (its store opened by [`AppState::open`]) on `listener`
/// until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // Without TCP_NODELAY, Nagle holds small replies back ~40 ms waiting
    // for the client's delayed ACK.
    let listener = listener.tap_io(|socket| {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "embedded API could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

/// Starts the API in-process on `127.0.0.1:0`; returns once it is accepting.
pub async fn spawn(config: ApiConfig) -> Result<RunningApi, Error> {
    let state = AppState::open(config).await?;
    let requested = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let bind_failed = |source| Error::Bind {
        addr: requested,
        source,
    };
    let listener = TcpListener::bind(requested).await.map_err(bind_failed)?;
    let addr = listener.local_addr().map_err(bind_failed)?;
    let (stop, stopped) = oneshot::channel::<()>();
    // A dropped `RunningApi` drops `stop`, which also ends the server.
    let task = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    tracing::info!(%addr, "embedded API listening");
    Ok(RunningApi { addr, stop, task })
}

/// The API started by [`spawn`]. Dropping it stops the server too, without
/// waiting; [`RunningApi::shutdown`] waits (boundedly).
#[derive(Debug)]
pub struct RunningApi {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), Error>>,
}

impl RunningApi {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish for up to two seconds, then
    /// aborts whatever remains.
    pub async fn shutdown(self) {
        let Self { stop, mut task, .. } = self;
        // An error means the server already ended; the join below reports why.
        let _ = stop.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => tracing::info!("embedded API stopped"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "embedded API ended with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "embedded API task failed"),
            Err(_) => {
                tracing::warn!("embedded API did not stop within {SHUTDOWN_GRACE:?}; aborting it");
                task.abort();
            }
        }
    }
}

/// A fresh random bearer secret: 64 hex digits, 244 random bits (uuid v4
/// draws from the operating system's CSPRNG).
pub fn new_secret() -> SecretString {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    SecretString::from(format!("{}{}", a.simple(), b.simple()))
}
