//! The commands `main` dispatches to, one file each. Every long-running
//! command takes its shutdown as a future (as mini-redis's
//! `server::run(listener, shutdown)` does): `main` passes the process's
//! signals, a test can pass its own.

mod call;
pub mod doctor;
mod serve;
mod serve_api;
mod stats;
mod sync;
mod tools;

use std::process::ExitCode;
use std::sync::Arc;

pub use call::{CallFailure, call};
pub use serve::serve;
pub use serve_api::serve_api;
pub use tools::{ToolsFormat, tools, write_catalog};

use crate::catalog::{Catalog, Entity};
use crate::config::{Cli, Command, Config, Upstream};
use crate::embedded::{self, ApiConfig, RateLimits, RunningApi};
use crate::error::SetupError;
use crate::replica::Follower;
use crate::service::Service;
use crate::upstream::{Auth, Call, Client, run_token_command};
use crate::{fsmode, logging, stdio};
use tokio_util::sync::CancellationToken;

/// A command that prints (`doctor | head`) ends quietly, as Unix tools do,
/// when its reader goes away: Rust ignores SIGPIPE, so `println!` would panic
/// on the broken pipe instead. Not for the servers: the MCP server ends its
/// session upstream when the client closes the channel, and a signal would
/// cut that short.
#[cfg(unix)]
fn end_quietly_on_closed_stdout() {
    // SAFETY: restores the default disposition of one signal before any
    // thread starts; no handler runs Rust code.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_on_closed_stdout() {}

/// Parses nothing (that is `main`'s), runs the command `cli` names, and says
/// how the process should exit.
pub fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    if !matches!(command, Command::Serve | Command::ServeApi { .. }) {
        end_quietly_on_closed_stdout();
    }
    // Stats reads only the log files: no upstream, no configuration to validate.
    if let Command::Stats {
        since,
        tool,
        errors,
        json,
        html,
    } = command
    {
        return stats::run(stats::Options {
            log_dir: cli.options.log_dir,
            since,
            tool,
            errors,
            json,
            html,
        });
    }
    let config = match Config::from_options(cli.options) {
        Ok(config) => config,
        Err(error) if matches!(command, Command::Doctor) => {
            println!(
                "FAIL  configuration    {error}\n      fix: correct the flag or environment variable named above"
            );
            return ExitCode::FAILURE;
        }
        Err(error) => return fail(&error),
    };
    if let Command::Tools {
        json,
        markdown,
        write,
    } = &command
    {
        return tools::run(&config, *json, *markdown, write.as_deref());
    }
    if let Command::Call { tool, help, .. } = &command
        && let Some(exit) = call::answer_early(&config, tool, *help)
    {
        return exit;
    }
    // From here on every file this process creates is owner-only: the
    // database, SQLite's -wal and -shm, the daily log files (the libraries
    // that make the last three take no mode). Set before the runtime starts
    // any thread, since the mask is per process. Not for `tools` above: the
    // catalog it writes is meant to be shared.
    fsmode::private_umask();
    let runtime = match runtime_for(&command).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&SetupError::Runtime(e)),
    };
    runtime.block_on(async move {
        match command {
            Command::Serve => {
                // Signals first: a host may terminate a spare launch at any
                // moment, and a SIGTERM that lands before the handler exists
                // kills the process without ending its upstream session or
                // flushing the log. Then claim stdout before anything can
                // write to it.
                let mut signals = ShutdownSignals::install();
                let channel = match stdio::claim() {
                    Ok(channel) => channel,
                    Err(e) => return fail(&SetupError::Stdio(e)),
                };
                let _log = logging::init(&config.log_dir, &config.log_level, config.max_log_bytes);
                exit(serve(config, channel, signals.recv()).await)
            }
            Command::Call {
                tool, args, json, ..
            } => {
                let _log = logging::init(&config.log_dir, &config.log_level, config.max_log_bytes);
                call::run(config, &tool, &args, json.as_deref()).await
            }
            Command::ServeApi { listen, secret } => {
                let mut signals = ShutdownSignals::install();
                let _log = logging::init(&config.log_dir, &config.log_level, config.max_log_bytes);
                let shutdown = async move { signals.recv().await };
                exit(serve_api(&config, listen, secret, shutdown).await)
            }
            Command::Sync => {
                let _log = logging::init(&config.log_dir, &config.log_level, config.max_log_bytes);
                sync::run(config).await
            }
            Command::Doctor => {
                let _log = logging::init(&config.log_dir, &config.log_level, config.max_log_bytes);
                if doctor::run(config).await {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Command::Tools { .. } | Command::Stats { .. } => ExitCode::SUCCESS,
        }
    })
}

/// One thread for everything but `serve-api`. The sidecar serves one client
/// whose calls wait on I/O: with a second worker, a call's tasks (rmcp's
/// handler, hyper's connection) hop between threads, each hop a wake-up:
/// 4.2–5.3 context switches per call instead of 2, and up to twice the CPU
/// (`cargo bench --bench sidecar`; the README's Benchmark section has the
/// figures). What blocks (SQLite in the embedded API, the replica's pages and
/// searches) runs on the blocking pool. `serve-api` serves many clients at
/// once, so it keeps a worker per core.
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    match command {
        Command::ServeApi { .. } => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}

fn exit(result: Result<(), SetupError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &SetupError) -> ExitCode {
    eprintln!("toolbridge-mcp: {error}");
    ExitCode::FAILURE
}

/// The service and, on the embedded default, the API it talks to.
pub struct Backend {
    pub service: Arc<Service>,
    embedded: Option<RunningApi>,
    /// The entities `--toolsets` enables.
    entities: Vec<&'static Entity>,
    /// Cancels background work (the replica's first sync) at shutdown.
    background: CancellationToken,
}

/// How long the background first sync may take before it stops (what it
/// stored is kept; the next refresh goes on from there).
const FIRST_SYNC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

impl Backend {
    pub async fn start(config: &mut Config) -> Result<Self, SetupError> {
        let mut auth = std::mem::replace(&mut config.auth, Auth::None);
        if let Some(argv) = &config.token_command {
            let token = run_token_command(argv)
                .await
                .map_err(|e| SetupError::Credentials(e.message))?;
            auth = Auth::Bearer(token);
        }
        let origin = origin_of(config);
        let (client_config, embedded) = match &config.upstream {
            Upstream::Remote { base_url } => {
                tracing::info!(upstream = %base_url, "using a remote ToolBridge API");
                (
                    config.client_config(base_url.clone(), auth, config.tenant_id.clone()),
                    None,
                )
            }
            Upstream::Embedded { db_path } => {
                let secret = embedded::new_secret();
                let api = embedded::spawn(ApiConfig {
                    db_path: db_path.clone(),
                    secret: secret.clone(),
                    limits: RateLimits::in_process(),
                })
                .await?;
                tracing::info!(db_path = %db_path.display(), url = %api.base_url(), "started the embedded API");
                let client_config = config.client_config(
                    api.base_url(),
                    Auth::Bearer(secret),
                    Some(embedded::TENANT_ID.to_owned()),
                );
                (client_config, Some(api))
            }
        };
        let tenant = client_config.tenant_id.clone();
        let client = Arc::new(Client::new(client_config)?);
        // Pace requests by the upstream's published limits, once it says them.
        tokio::spawn({
            let client = client.clone();
            async move { client.discover_limits().await }
        });
        let follower = config.replica.as_ref().map(|settings| {
            Arc::new(Follower::new(
                client.clone(),
                origin,
                settings.dir.clone(),
                settings.max_staleness,
            ))
        });
        // One line that says what this process is and where it reads and
        // writes (the tenant when known before the first request).
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            upstream = %origin_of(config),
            tenant = tenant.as_deref(),
            replica_dir = %config
                .replica
                .as_ref()
                .map_or("off".into(), |r| r.dir.display().to_string()),
            log_dir = %config.log_dir.display(),
            max_log_mb = config.max_log_bytes / (1024 * 1024),
            "starting"
        );
        let catalog = Catalog::select(&config.selection);
        let entities = config.selection.entities();
        let service = Service::new(catalog, client, follower, config.call_timeout)
            .with_result_budget(config.result_budget);
        Ok(Self {
            service: Arc::new(service),
            embedded,
            entities,
            background: CancellationToken::new(),
        })
    }

    /// Starts the replica's first sync of every enabled entity in the
    /// background (a no-op for entities already synced beyond a refresh);
    /// until an entity's completes, its reads go to the upstream.
    pub fn start_first_sync(&self) {
        let Some(follower) = self.service.follower().cloned() else {
            return;
        };
        let entities = self.entities.clone();
        let stop = self.background.clone();
        tokio::spawn(async move {
            let call = Call::new(FIRST_SYNC_DEADLINE, stop);
            match follower.sync(&entities, &call, true, |_, _| {}).await {
                Ok(fetched) => {
                    let items: usize = fetched.iter().map(|(_, n)| n).sum();
                    tracing::info!(items, "the local replica is in step with the upstream");
                }
                Err(error) => {
                    tracing::warn!(error = %error.summary(), "the replica's first sync stopped; reads go to the upstream until it completes")
                }
            }
        });
    }

    /// The enabled entities, in table order.
    pub fn entities(&self) -> &[&'static Entity] {
        &self.entities
    }

    /// Ends the upstream session and stops the embedded API.
    pub async fn shutdown(self) {
        self.background.cancel();
        self.service.client().close().await;
        if let Some(api) = self.embedded {
            api.shutdown().await;
        }
    }
}

/// Where the data lives: the API's base URL, or for the embedded API its
/// database (its loopback port changes with every start).
fn origin_of(config: &Config) -> String {
    match &config.upstream {
        Upstream::Remote { base_url } => base_url.clone(),
        Upstream::Embedded { db_path } => format!(
            "embedded:{}",
            std::path::absolute(db_path)
                .unwrap_or_else(|_| db_path.clone())
                .display()
        ),
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment of `install`.
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves with the signal's name when one arrives.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => "SIGTERM",
                _ = next(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
