//! Who the sidecar is to the upstream: the identity headers, and the token
//! command that can mint a fresh bearer token when the upstream answers 401.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::contract::DEBUG_SUB_HEADER;
use crate::error::{ErrorCode, SetupError, ToolError};

/// How the sidecar proves who it is.
pub enum Auth {
    Bearer(SecretString),
    /// `X-Debug-Sub`, accepted only by a dev-mode upstream.
    DevSubject(String),
    None,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer([REDACTED])"),
            Self::DevSubject(sub) => write!(f, "DevSubject({sub})"),
            Self::None => f.write_str("None"),
        }
    }
}

/// What runs the token command: [`run_token_command`], or in tests a stand-in
/// that needs no process (a real child and paused time do not mix: the
/// runtime, idle while the child runs, jumps the clock to the command's
/// timeout).
pub(super) type TokenRunner = Arc<
    dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = Result<SecretString, ToolError>> + Send>>
        + Send
        + Sync,
>;

/// The identity headers every request carries, with a generation that rises
/// each time the token command replaces the token.
pub(super) struct Identity {
    /// The token inside is marked sensitive so it never shows in a debug
    /// print.
    current: RwLock<(u64, HeaderMap)>,
    token_command: Option<Vec<String>>,
    pub(super) run: TokenRunner,
    /// Held while the token command runs: one run, however many calls met
    /// the 401 at once.
    refreshing: tokio::sync::Mutex<()>,
}

impl Identity {
    pub fn new(auth: &Auth, token_command: Option<Vec<String>>) -> Result<Self, SetupError> {
        let mut headers = HeaderMap::new();
        match auth {
            Auth::Bearer(token) => {
                let value = bearer(token).map_err(|e| SetupError::Credentials(e.message))?;
                headers.insert(AUTHORIZATION, value);
            }
            Auth::DevSubject(sub) => {
                let value = HeaderValue::from_str(sub).map_err(|_| {
                    SetupError::Credentials(
                        "the dev subject contains characters not allowed in a header".into(),
                    )
                })?;
                headers.insert(DEBUG_SUB_HEADER, value);
            }
            Auth::None => {}
        }
        Ok(Self {
            current: RwLock::new((0, headers)),
            token_command,
            run: Arc::new(|argv| Box::pin(async move { run_token_command(&argv).await })),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The headers to send, and their generation.
    pub fn headers(&self) -> (u64, HeaderMap) {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn can_refresh(&self) -> bool {
        self.token_command.is_some()
    }

    /// Replaces the token by what the token command prints, unless it was
    /// already replaced since generation `seen` (the one the refused request
    /// carried): then the newer token is used as it is.
    pub async fn refresh(&self, seen: u64) -> Result<(), ToolError> {
        let Some(argv) = &self.token_command else {
            return Ok(());
        };
        let _one_at_a_time = self.refreshing.lock().await;
        if self.headers().0 > seen {
            return Ok(());
        }
        let token = (self.run)(argv.clone()).await?;
        let value = bearer(&token)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        current.0 += 1;
        current.1.insert(AUTHORIZATION, value);
        tracing::info!(
            generation = current.0,
            "refreshed the token from the token command"
        );
        Ok(())
    }
}

fn bearer(token: &SecretString) -> Result<HeaderValue, ToolError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret().trim()))
        .map_err(|_| {
            ToolError::invalid_input("the token contains characters not allowed in a header")
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// How long a token command may take (a credential helper may prompt or hit
/// the network).
const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs a credential helper (`op read ...`, `gh auth token`): an argument
/// list, no shell; its trimmed stdout is the token.
pub async fn run_token_command(argv: &[String]) -> Result<SecretString, ToolError> {
    let fail = |why: String| {
        ToolError::new(
            ErrorCode::Unauthorized,
            format!("the token command failed: {why}"),
        )
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("it is empty".into()))?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run `{program}`: {e}")))?;
    let output = tokio::time::timeout(TOKEN_COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            fail(format!(
                "`{program}` did not finish within {} s",
                TOKEN_COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!(
            "`{program}` exited with {}: {}",
            output.status,
            stderr.trim()
        )));
    }
    let token =
        String::from_utf8(output.stdout).map_err(|_| fail("its output is not UTF-8".into()))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(fail("it printed nothing".into()));
    }
    Ok(SecretString::from(token.to_owned()))
}
