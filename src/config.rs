//! Flags and environment into one validated [`Config`]. Every flag has an
//! environment variable, so a client's config file can set either.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::catalog::{Selection, toolset_names};
use crate::error::SetupError;
use crate::upstream::{Auth, ClientConfig, ClientSettings, Rate, RetryPolicy};

pub const APP: &str = "toolbridge-mcp";

/// The exit codes every command shares (the README's "Commands" says the same).
const EXIT_CODES: &str = "Exit codes: 0 success; 1 setup error: a setting (flag or environment variable) \
is invalid, or the command could not start; 2 invalid input: an unknown flag, subcommand or tool, a missing \
argument. `call` has more: see `toolbridge-mcp call --help`.";

/// `call`'s exit codes: [`EXIT_CODES`] and one per kind of tool failure
/// ([`crate::error::ErrorCode::exit_code`]).
const CALL_EXIT_CODES: &str = "Exit codes: 0 success; 1 setup error (a setting, the credentials, the \
embedded API); 2 invalid input (an unknown tool, a bad argument); 3 not found or gone; 4 conflict; \
5 unauthorized or forbidden; 6 rate limited, timeout or upstream failure.

`toolbridge-mcp call TOOL --help` prints a tool's parameters; `toolbridge-mcp tools` lists the tools.";

#[derive(Parser, Debug)]
#[command(
    name = APP,
    version,
    about = "MCP server exposing the ToolBridge API (notes, tasks, comments, chats, chat messages) as 40 tools",
    long_about = "MCP server exposing the ToolBridge API (notes, tasks, comments, chats, chat messages) as 40 tools.\n\n\
With no subcommand it serves MCP on stdin/stdout, as MCP clients launch it. \
Without --api-url it starts an embedded ToolBridge-compatible API on loopback, stored in SQLite (see --db-path).",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve MCP on stdin/stdout (the default).
    Serve,
    /// Run one tool and print its result as JSON on stdout.
    #[command(after_help = CALL_EXIT_CODES)]
    Call {
        /// Tool name, e.g. create_note.
        tool: String,
        /// An argument as key=value (repeatable); JSON values are parsed
        /// unless the parameter is a string.
        #[arg(long = "arg", short = 'a', value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// All arguments as one JSON object (merged under --arg); @FILE
        /// reads it from a file, - from stdin.
        #[arg(long, value_name = "OBJECT|@FILE|-")]
        json: Option<String>,
        /// Print the tool's parameters instead of calling it (`call TOOL
        /// --help`; set by [`crate::command_line`], not a flag of its own).
        #[arg(skip)]
        help: bool,
    },
    /// List the tools (name and description; --json for full definitions).
    Tools {
        /// Print the full definitions as JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the reference tables the README carries.
        #[arg(long)]
        markdown: bool,
        /// Write one JSON file per tool into this directory (the `tools/` catalog).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["json", "markdown"])]
        write: Option<PathBuf>,
    },
    /// Check configuration, reachability, auth, tenant, session, a read, the replica and the logs.
    Doctor,
    /// Refresh the local replica of every enabled entity now, and say what came.
    Sync,
    /// Summarize the log files: calls, errors and latency per tool, and the upstream's health.
    Stats {
        /// Start of the window: a duration back from now (30m, 24h, 7d), a date
        /// (2026-11-29, UTC) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN", default_value = "24h")]
        since: String,
        /// Only this tool's calls (the upstream section stays whole).
        #[arg(long, value_name = "NAME")]
        tool: Option<String>,
        /// List the failed calls, newest first, instead of the tables (with
        /// --json: add them to the document as `errors`).
        #[arg(long)]
        errors: bool,
        /// Print one JSON document instead of the tables.
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report with charts to FILE
        /// (owner-only: it shows who used which tools when).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Serve the embedded ToolBridge-compatible API over HTTP.
    ServeApi {
        #[arg(long, env = "TOOLBRIDGE_LISTEN", default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Bearer secret clients must send; generated and printed to stderr when not set.
        #[arg(long, env = "TOOLBRIDGE_API_SECRET", hide_env_values = true, value_parser = parse_secret)]
        secret: Option<SecretString>,
    },
}

#[derive(Args, Debug)]
pub struct Options {
    /// ToolBridge API base URL; without it the embedded API is used.
    #[arg(long, env = "TOOLBRIDGE_API_URL", global = true)]
    pub api_url: Option<String>,
    /// Bearer token for the API.
    #[arg(long, env = "TOOLBRIDGE_TOKEN", hide_env_values = true, value_parser = parse_secret, global = true)]
    pub token: Option<SecretString>,
    /// File holding the bearer token.
    #[arg(long, env = "TOOLBRIDGE_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// Tenant id (X-TB-Tenant-ID); asked of the API when not set.
    #[arg(long, env = "TOOLBRIDGE_TENANT_ID", global = true)]
    pub tenant_id: Option<String>,
    /// User id sent as X-Debug-Sub to a dev-mode API instead of a token.
    #[arg(long, env = "TOOLBRIDGE_DEV_SUBJECT", global = true)]
    pub dev_subject: Option<String>,
    /// Seconds to wait for a connection.
    #[arg(long, env = "TOOLBRIDGE_CONNECT_TIMEOUT", default_value = "5", value_parser = parse_seconds, global = true)]
    pub connect_timeout: Duration,
    /// Seconds one HTTP attempt may take.
    #[arg(long, env = "TOOLBRIDGE_ATTEMPT_TIMEOUT", default_value = "10", value_parser = parse_seconds, global = true)]
    pub attempt_timeout: Duration,
    /// Seconds a whole tool call may take, retries included.
    #[arg(long, env = "TOOLBRIDGE_CALL_TIMEOUT", default_value = "30", value_parser = parse_seconds, global = true)]
    pub call_timeout: Duration,
    /// Retries after a failed attempt (only where a retry cannot duplicate a write).
    #[arg(long, env = "TOOLBRIDGE_MAX_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10), global = true)]
    pub max_retries: u32,
    /// Largest upstream response accepted, in bytes.
    #[arg(long, env = "TOOLBRIDGE_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024, global = true)]
    pub max_response_bytes: usize,
    /// Consecutive failed attempts that open the circuit breaker (0: never).
    #[arg(
        long,
        env = "TOOLBRIDGE_BREAKER_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub breaker_threshold: u32,
    /// Seconds the open circuit fails calls fast before probing again.
    #[arg(long, env = "TOOLBRIDGE_BREAKER_COOLDOWN", default_value = "15", value_parser = parse_seconds, global = true)]
    pub breaker_cooldown: Duration,
    /// Requests per minute to the upstream (0: unpaced); default: what the
    /// upstream publishes in /v1/sync/info.
    #[arg(long, env = "TOOLBRIDGE_RATE_LIMIT", global = true)]
    pub rate_limit: Option<u32>,
    /// Upstream requests in flight at once.
    #[arg(long, env = "TOOLBRIDGE_MAX_IN_FLIGHT", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024), global = true)]
    pub max_in_flight: u32,
    /// Command printing the bearer token (run without a shell; re-run on 401).
    #[arg(long, env = "TOOLBRIDGE_TOKEN_COMMAND", global = true)]
    pub token_command: Option<String>,
    /// PEM file of extra CA certificates to trust.
    #[arg(long, env = "TOOLBRIDGE_CA_BUNDLE", global = true)]
    pub ca_bundle: Option<PathBuf>,
    /// Entities to expose, comma-separated: notes,tasks,comments,chats,chat_messages.
    #[arg(
        long,
        env = "TOOLBRIDGE_TOOLSETS",
        value_delimiter = ',',
        global = true
    )]
    pub toolsets: Vec<String>,
    /// Expose only list and get tools (the variable takes 1/0, true/false,
    /// yes/no, on/off).
    #[arg(long, env = "TOOLBRIDGE_READ_ONLY", value_parser = BoolishValueParser::new(), global = true)]
    pub read_only: bool,
    /// Full: one tool per operation (40); compact: a read and a write tool per entity (10), for hosts that cap tools or context.
    #[arg(long, env = "TOOLBRIDGE_TOOL_MODE", value_enum, default_value_t = ToolMode::Full, global = true)]
    pub tool_mode: ToolMode,
    /// Keep a local replica of your items, which answers reads and search (off: every read asks the API).
    #[arg(long, env = "TOOLBRIDGE_REPLICA", value_enum, default_value_t = ReplicaMode::On, global = true)]
    pub replica: ReplicaMode,
    /// Seconds a read trusts the replica before refreshing it (0: refresh before every read).
    #[arg(long, env = "TOOLBRIDGE_MAX_STALENESS", default_value = "2", value_parser = parse_staleness, global = true)]
    pub max_staleness: Duration,
    /// Directory of the local replica files (one per API, tenant and user; a cache, safe to delete).
    #[arg(long, env = "TOOLBRIDGE_REPLICA_DIR", default_value_os_t = default_replica_dir(), global = true)]
    pub replica_dir: PathBuf,
    /// The most a tool result may cost a model's context, in tokens (estimated at 4 bytes each): lists stop there with a cursor, long text is cut.
    #[arg(long, env = "TOOLBRIDGE_RESULT_BUDGET", default_value_t = crate::service::DEFAULT_RESULT_BUDGET as u64, value_parser = clap::value_parser!(u64).range(500..=1_000_000), global = true)]
    pub result_budget: u64,
    /// SQLite file of the embedded API.
    #[arg(long, env = "TOOLBRIDGE_DB_PATH", default_value_os_t = default_db_path(), global = true)]
    pub db_path: PathBuf,
    /// Log level (error, warn, info, debug, trace, off), or tracing directives
    /// that each end in one (info,toolbridge_mcp=debug).
    #[arg(long, env = "TOOLBRIDGE_LOG", default_value = "info", value_parser = crate::logging::parse_filter, global = true)]
    pub log_level: String,
    /// Directory of the rotating JSON log files.
    #[arg(long, env = "TOOLBRIDGE_LOG_DIR", default_value_os_t = default_log_dir(), global = true)]
    pub log_dir: PathBuf,
    /// Megabytes the log files may take together; the oldest are removed past it.
    #[arg(long, env = "TOOLBRIDGE_MAX_LOG_MB", default_value_t = crate::logging::DEFAULT_MAX_LOG_MB, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_log_mb: u32,
    /// The settings (field names) whose values came from their environment
    /// variables, filled by [`crate::command_line`]: a message names what
    /// the user set, the variable or the flag.
    #[arg(skip)]
    pub from_env: Vec<String>,
}

/// How a message names a setting: its variable when the value came from the
/// environment, else its flag (`TOOLBRIDGE_API_URL`, `--api-url`).
pub fn setting_name(arg: &clap::Arg, from_env: bool) -> String {
    match (from_env, arg.get_env(), arg.get_long()) {
        (true, Some(variable), _) => variable.to_string_lossy().into_owned(),
        (_, _, Some(long)) => format!("--{long}"),
        _ => arg.get_id().to_string(),
    }
}

/// [`setting_name`] of the option `id` (its field name).
fn named(id: &str, from_env: &[String]) -> String {
    let command = Cli::command();
    match command.get_arguments().find(|arg| arg.get_id() == id) {
        Some(arg) => setting_name(arg, from_env.iter().any(|e| e == id)),
        None => id.to_owned(),
    }
}

/// Held as a secret from the moment it is parsed: `Debug` prints
/// `[REDACTED]`, so no log or panic message can carry it.
fn parse_secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    Full,
    Compact,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaMode {
    On,
    Off,
}

/// Like [`parse_seconds`], but 0 is allowed: refresh before every read.
fn parse_staleness(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_seconds(s),
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err("out of range (0 < seconds <= 3600)".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", APP)
}

pub fn default_replica_dir() -> PathBuf {
    project_dirs()
        .map(|d| d.data_dir().join("replicas"))
        .unwrap_or_else(|| PathBuf::from("replicas"))
}

pub fn default_db_path() -> PathBuf {
    project_dirs()
        .map(|d| d.data_dir().join("toolbridge.db"))
        .unwrap_or_else(|| PathBuf::from("toolbridge.db"))
}

/// `directories` has no log directory: the platform's conventional one.
pub fn default_log_dir() -> PathBuf {
    let Some(dirs) = project_dirs() else {
        return std::env::temp_dir().join(APP);
    };
    if cfg!(target_os = "macos")
        && let Some(home) = directories::BaseDirs::new()
    {
        return home.home_dir().join("Library/Logs").join(APP);
    }
    if cfg!(windows) {
        return dirs.data_local_dir().join("logs");
    }
    dirs.state_dir()
        .map(|d| d.join("logs"))
        .unwrap_or_else(|| dirs.data_local_dir().join("logs"))
}

/// Where the tools' requests go.
#[derive(Debug)]
pub enum Upstream {
    /// A ToolBridge API at this URL.
    Remote { base_url: String },
    /// The embedded API on this SQLite file, started in-process.
    Embedded { db_path: PathBuf },
}

/// The local replica's settings.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub dir: PathBuf,
    pub max_staleness: Duration,
}

/// The validated configuration of one run.
#[derive(Debug)]
pub struct Config {
    pub upstream: Upstream,
    pub auth: Auth,
    pub tenant_id: Option<String>,
    /// The credential helper, when the token comes from one.
    pub token_command: Option<Vec<String>>,
    pub call_timeout: Duration,
    /// The most a result may cost a model, in tokens.
    pub result_budget: usize,
    pub client: ClientSettings,
    pub selection: Selection,
    /// Where the local replica lives and how stale a read may be; `None`
    /// with `--replica off`.
    pub replica: Option<ReplicaSettings>,
    pub log_level: String,
    pub log_dir: PathBuf,
    /// The log files' total size cap, in bytes.
    pub max_log_bytes: u64,
}

impl Config {
    pub fn from_options(o: Options) -> Result<Self, SetupError> {
        Self::validate(o).map_err(SetupError::Config)
    }

    fn validate(o: Options) -> Result<Self, String> {
        let from_env = o.from_env.clone();
        let named = |id: &str| named(id, &from_env);
        let upstream = match &o.api_url {
            Some(url) => Upstream::Remote {
                base_url: validate_url(url, &named("api_url"))?,
            },
            None => {
                if o.token.is_some()
                    || o.token_file.is_some()
                    || o.token_command.is_some()
                    || o.dev_subject.is_some()
                    || o.tenant_id.is_some()
                {
                    return Err("credentials or a tenant are set but TOOLBRIDGE_API_URL (--api-url) is not; \
                                set it, or unset them to use the embedded API"
                        .into());
                }
                Upstream::Embedded { db_path: o.db_path }
            }
        };
        let sources: Vec<String> = [
            ("token", o.token.is_some()),
            ("token_file", o.token_file.is_some()),
            ("dev_subject", o.dev_subject.is_some()),
            ("token_command", o.token_command.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(id, _)| named(id))
        .collect();
        if sources.len() > 1 {
            return Err(format!(
                "set only one of {}: a token, a token file, a token command or a dev subject",
                sources.join(", ")
            ));
        }
        let token_command = match &o.token_command {
            Some(line) => match shlex::split(line) {
                Some(argv) if !argv.is_empty() => Some(argv),
                _ => {
                    return Err(format!(
                        "{} `{line}` is not a command line",
                        named("token_command")
                    ));
                }
            },
            None => None,
        };
        let auth = if let Some(token) = o.token {
            Auth::Bearer(non_empty_token(token.expose_secret(), &named("token"))?)
        } else if let Some(path) = o.token_file {
            let token = SecretString::from(
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
            );
            Auth::Bearer(non_empty_token(
                token.expose_secret(),
                &path.display().to_string(),
            )?)
        } else if let Some(sub) = o.dev_subject.filter(|s| !s.trim().is_empty()) {
            Auth::DevSubject(sub.trim().to_owned())
        } else {
            // A token command runs when the client starts (it may prompt).
            Auth::None
        };
        if let Some(path) = &o.ca_bundle
            && !path.is_file()
        {
            return Err(format!("the CA bundle {} does not exist", path.display()));
        }
        let known = toolset_names();
        let toolsets: Vec<String> = o
            .toolsets
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(bad) = toolsets.iter().find(|t| !known.contains(&t.as_str())) {
            return Err(format!(
                "{}: unknown toolset `{bad}`; known: {}",
                named("toolsets"),
                known.join(", ")
            ));
        }
        if o.max_response_bytes < 1024 {
            return Err(format!(
                "{}: {} is below the minimum, 1024 bytes",
                named("max_response_bytes"),
                o.max_response_bytes
            ));
        }
        Ok(Self {
            upstream,
            auth,
            tenant_id: o
                .tenant_id
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
            token_command,
            call_timeout: o.call_timeout,
            result_budget: usize::try_from(o.result_budget).unwrap_or(usize::MAX),
            client: ClientSettings {
                connect_timeout: o.connect_timeout,
                // An attempt never outlives its call.
                attempt_timeout: o.attempt_timeout.min(o.call_timeout),
                retry: RetryPolicy {
                    max_retries: o.max_retries as usize,
                    ..RetryPolicy::default()
                },
                max_response_bytes: o.max_response_bytes,
                breaker_threshold: o.breaker_threshold,
                breaker_cooldown: o.breaker_cooldown,
                rate: o.rate_limit.map(|per_minute| Rate {
                    per_minute,
                    burst: (per_minute / 5).max(1),
                }),
                max_in_flight: o.max_in_flight as usize,
                ca_bundle: o.ca_bundle,
            },
            selection: Selection {
                toolsets,
                read_only: o.read_only,
                local: o.replica == ReplicaMode::On,
                compact: o.tool_mode == ToolMode::Compact,
            },
            replica: (o.replica == ReplicaMode::On).then_some(ReplicaSettings {
                dir: o.replica_dir,
                max_staleness: o.max_staleness,
            }),
            log_level: o.log_level,
            log_dir: o.log_dir,
            max_log_bytes: u64::from(o.max_log_mb) * 1024 * 1024,
        })
    }

    /// The client's configuration for an upstream at `base_url`.
    pub fn client_config(
        &self,
        base_url: String,
        auth: Auth,
        tenant_id: Option<String>,
    ) -> ClientConfig {
        ClientConfig {
            base_url,
            auth,
            tenant_id,
            token_command: self.token_command.clone(),
            settings: self.client.clone(),
        }
    }
}

fn non_empty_token(token: &str, source: &str) -> Result<SecretString, String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("the token from {source} is empty"));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// `name` is how the message names the setting ([`setting_name`]).
fn validate_url(url: &str, name: &str) -> Result<String, String> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("{name} `{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{name} must be http or https, not `{}`",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{name} `{url}` must be a base URL such as https://api.example.com"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Not repeated: the URL carries a secret.
        return Err(format!(
            "{name} must not carry credentials; use TOOLBRIDGE_TOKEN"
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens and secrets are held as secrets from parsing on: no `Debug`
    /// print of the command line or the configuration carries them.
    #[test]
    fn secrets_never_print_through_debug() {
        let cli = Cli::try_parse_from([
            "toolbridge-mcp",
            "--api-url",
            "https://api.example.com",
            "--token",
            "tok-SECRET-1",
            "serve-api",
            "--secret",
            "api-SECRET-2",
        ])
        .unwrap();
        let printed = format!("{cli:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        let config = Config::from_options(cli.options).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
    }
}
