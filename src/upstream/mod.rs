//! The one HTTP client every tool call goes through.
//!
//! It owns what the upstream contract asks of a client: authentication, the
//! tenant header, one sync session reused across calls (renewed before it
//! expires, re-established once on `428` or `409 epoch_mismatch`), a
//! correlation id per call, retries that cannot duplicate a write, and a
//! deadline no call outlives. Every failure leaves it as a normalized
//! [`ToolError`].

mod breaker;
mod failure;
mod session;
mod throttle;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, IF_MATCH};
use reqwest::{Method as HttpMethod, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Method, Request};
use crate::error::{ErrorCode, ToolError};
use breaker::{Breaker, Outcome};
pub use failure::RetryClass;
use failure::{Failure, Reached};
use session::{Session, SessionSlot};
pub use throttle::Rate;
use throttle::Throttle;

pub const HEADER_TENANT: &str = "x-tb-tenant-id";
pub const HEADER_SESSION: &str = "x-sync-session";
pub const HEADER_EPOCH: &str = "x-sync-epoch";
pub const HEADER_CORRELATION: &str = "x-correlation-id";
pub const HEADER_DEBUG_SUB: &str = "x-debug-sub";

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

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Where the client goes and as whom: these differ between a remote API and
/// the embedded one.
#[derive(Debug)]
pub struct ClientConfig {
    /// Without a trailing slash.
    pub base_url: String,
    pub auth: Auth,
    /// Resolved from `GET /v1/auth/tenant` on first use when not given.
    pub tenant_id: Option<String>,
    /// Re-run to get a fresh token when the upstream answers 401.
    pub token_command: Option<Vec<String>>,
    pub settings: ClientSettings,
}

/// How the client behaves: the same for every upstream.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// One HTTP attempt; never longer than what remains of the call.
    pub attempt_timeout: Duration,
    pub retry: RetryPolicy,
    pub max_response_bytes: usize,
    /// Consecutive failed attempts that open the circuit; 0 disables it.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// Client-side pacing; `None` follows the upstream's published limits.
    pub rate: Option<Rate>,
    pub max_in_flight: usize,
    /// Extra trusted CA certificates (PEM), for enterprise networks.
    pub ca_bundle: Option<std::path::PathBuf>,
}

/// One tool call as the client sees it: its correlation id, deadline and
/// cancellation, and what happened, for the call's log line.
pub struct Call {
    pub correlation_id: String,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    attempts: AtomicU32,
    retries: AtomicU32,
    last_status: AtomicU16,
}

impl Call {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> Self {
        Self {
            correlation_id: uuid::Uuid::new_v4().to_string(),
            deadline: Instant::now() + timeout,
            cancel,
            attempts: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            last_status: AtomicU16::new(0),
        }
    }

    /// HTTP requests sent for this call, session and tenant requests included.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Backoff retries taken (re-session replays do not count).
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The last HTTP status seen, if any.
    pub fn last_status(&self) -> Option<u16> {
        Some(self.last_status.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }
}

pub struct Client {
    http: reqwest::Client,
    /// The upstream's base URL, parsed once; each request only sets its path
    /// on a copy.
    base: reqwest::Url,
    /// Authorization and identity headers; the token inside is marked
    /// sensitive so it never shows in a debug print. Replaced only when a
    /// token command yields a fresh token.
    identity: std::sync::RwLock<HeaderMap>,
    token_command: Option<Vec<String>>,
    breaker: Breaker,
    throttle: Throttle,
    tenant: tokio::sync::OnceCell<HeaderValue>,
    session: SessionSlot,
    attempt_timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
}

/// A response body the caller asked for, already known to be 2xx.
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ToolError> {
        let settings = config.settings;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // A redirect would carry the token wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("toolbridge-mcp/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true);
        if config.base_url.starts_with("http://") {
            // No TLS to this upstream, and no redirect can lead to TLS: skip
            // loading the platform trust store (about half of startup).
            builder = builder.tls_certs_only(Vec::new());
        } else if let Some(path) = &settings.ca_bundle {
            builder = builder.tls_certs_merge(read_ca_bundle(path)?);
        }
        let http = builder
            .build()
            .map_err(|e| ToolError::invalid_input(format!("cannot build the HTTP client: {e}")))?;
        let base = reqwest::Url::parse(&config.base_url).map_err(|e| {
            ToolError::invalid_input(format!("`{}` is not a URL: {e}", config.base_url))
        })?;
        let mut identity = HeaderMap::new();
        match &config.auth {
            Auth::Bearer(token) => {
                identity.insert(AUTHORIZATION, bearer(token)?);
            }
            Auth::DevSubject(sub) => {
                let value = HeaderValue::from_str(sub).map_err(|_| {
                    ToolError::invalid_input(
                        "the dev subject contains characters not allowed in a header",
                    )
                })?;
                identity.insert(HeaderName::from_static(HEADER_DEBUG_SUB), value);
            }
            Auth::None => {}
        }
        let tenant = tokio::sync::OnceCell::new();
        if let Some(id) = &config.tenant_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                ToolError::invalid_input(
                    "the tenant id contains characters not allowed in a header",
                )
            })?;
            let _ = tenant.set(value);
        }
        Ok(Self {
            http,
            base,
            identity: std::sync::RwLock::new(identity),
            token_command: config.token_command,
            breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
            throttle: Throttle::new(settings.rate, settings.max_in_flight),
            tenant,
            session: SessionSlot::default(),
            attempt_timeout: settings.attempt_timeout,
            retry: settings.retry,
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// Without a trailing slash, as configured.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Sends an entity request with retries, within the call's deadline and
    /// until the call is cancelled.
    pub async fn send(&self, request: &Request, call: &Call) -> Result<Response, ToolError> {
        let outcome = tokio::select! {
            biased;
            _ = call.cancel.cancelled() => Err(ToolError::new(ErrorCode::Cancelled, "the call was cancelled")),
            result = tokio::time::timeout_at(call.deadline, self.send_with_retries(request, call)) => {
                result.unwrap_or_else(|_| Err(ToolError::new(
                    ErrorCode::Timeout,
                    format!("no answer from the upstream within the call's deadline ({} attempts)", call.attempts()),
                )))
            }
        };
        outcome.map_err(|e| e.with_correlation_id(&call.correlation_id))
    }

    async fn send_with_retries(
        &self,
        request: &Request,
        call: &Call,
    ) -> Result<Response, ToolError> {
        let class = retry_class(request);
        let replays = Replays::default();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let attempt = || self.attempt(request, call, &replays);
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| f.may_retry(class))
            .adjust(|f, backoff| {
                // The backoff's own budget is spent first; a Retry-After then
                // replaces the delay, but only if it fits the call's deadline.
                let delay = f.retry_after.unwrap_or(backoff?);
                let remaining = call.deadline.saturating_duration_since(Instant::now());
                (delay < remaining).then_some(delay)
            })
            .notify(|f, delay| {
                call.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    correlation_id = %call.correlation_id,
                    error = %f.error.summary(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying"
                );
            })
            .await
            .map_err(|f| f.error)
    }

    /// One attempt. A session or epoch rejection is repaired (new session) and
    /// so is a 401 when a token command can mint a new token; each is replayed
    /// once per call, inside the attempt, so it never spends a retry.
    async fn attempt(
        &self,
        request: &Request,
        call: &Call,
        replays: &Replays,
    ) -> Result<Response, Failure> {
        let session = self.session(call).await?;
        let failure = match self.send_once(request, call, &session).await {
            Err(f) => f,
            ok => return ok,
        };
        if failure.resession && !replays.resession.swap(true, Ordering::Relaxed) {
            tracing::info!(correlation_id = %call.correlation_id, status = failure.error.http_status, "renewing the sync session");
            self.session.invalidate(&session).await;
            let session = self.session(call).await?;
            return self.send_once(request, call, &session).await;
        }
        if failure.error.http_status == Some(401)
            && self.token_command.is_some()
            && !replays.reauth.swap(true, Ordering::Relaxed)
        {
            self.refresh_token()
                .await
                .map_err(|e| Failure::new(e, Reached::No, false))?;
            return self.send_once(request, call, &session).await;
        }
        Err(failure)
    }

    /// Runs the token command again and adopts what it prints.
    pub async fn refresh_token(&self) -> Result<(), ToolError> {
        let Some(argv) = &self.token_command else {
            return Ok(());
        };
        let token = run_token_command(argv).await?;
        let value = bearer(&token)?;
        self.identity
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(AUTHORIZATION, value);
        tracing::info!("refreshed the token from the token command");
        Ok(())
    }

    async fn send_once(
        &self,
        request: &Request,
        call: &Call,
        session: &Session,
    ) -> Result<Response, Failure> {
        let method = match request.method {
            Method::Get => HttpMethod::GET,
            Method::Post => HttpMethod::POST,
            Method::Put => HttpMethod::PUT,
            Method::Patch => HttpMethod::PATCH,
            Method::Delete => HttpMethod::DELETE,
        };
        let mut builder = self
            .request(method, &request.path, call)
            .await?
            .header(HEADER_SESSION, &session.id)
            .header(HEADER_EPOCH, session.epoch.to_string());
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(version) = request.if_match {
            builder = builder.header(IF_MATCH, format!("\"{version}\""));
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let (status, headers, body) = self.exchange(builder, call).await?;
        if status.is_success() {
            let body = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    let error = ToolError::new(
                        ErrorCode::UpstreamError,
                        format!("the upstream sent a response that is not JSON: {e}"),
                    )
                    .with_status(status.as_u16());
                    Failure::new(error, Reached::Maybe, false)
                })?
            };
            return Ok(Response {
                status: status.as_u16(),
                body,
            });
        }
        Err(Failure::status(
            status,
            &headers,
            &body,
            request.method != Method::Get,
        ))
    }

    /// A request with identity, tenant and correlation headers and the
    /// attempt's timeout (never past the call's deadline).
    async fn request(
        &self,
        method: HttpMethod,
        path: &str,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let tenant = self.tenant(call).await?;
        Ok(self
            .bare_request(method, path, call)
            .header(HEADER_TENANT, tenant))
    }

    fn bare_request(&self, method: HttpMethod, path: &str, call: &Call) -> reqwest::RequestBuilder {
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let identity = self
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.http
            .request(method, self.url(path))
            .headers(identity)
            .header(HEADER_CORRELATION, &call.correlation_id)
            .timeout(self.attempt_timeout.min(remaining))
    }

    /// `path` (already validated by the catalog) under the base URL, which may
    /// itself have a path (`https://host/toolbridge`).
    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        match self.base.path() {
            "/" | "" => url.set_path(path),
            prefix => url.set_path(&format!("{prefix}{path}")),
        }
        url
    }

    /// Sends and reads the whole body, refusing more than the configured cap.
    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
        call: &Call,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), Failure> {
        let permit = self.breaker.admit().map_err(Failure::circuit_open)?;
        let _slot = self
            .throttle
            .acquire(call.deadline)
            .await
            .map_err(Failure::paused)?;
        call.attempts.fetch_add(1, Ordering::Relaxed);
        let result = self.send_and_read(builder, call).await;
        let outcome = match &result {
            Ok((status, _, _)) if status.is_server_error() => Outcome::Failed,
            Ok((status, _, _)) if *status == StatusCode::TOO_MANY_REQUESTS => Outcome::Neutral,
            Ok(_) => Outcome::Healthy,
            Err(f) if f.error.http_status.is_some() => Outcome::Neutral,
            Err(_) => Outcome::Failed,
        };
        permit.record(outcome);
        if let Ok((status, headers, _)) = &result {
            self.throttle.observe(
                status.as_u16(),
                headers,
                failure::parse_retry_after(headers),
            );
        }
        result
    }

    async fn send_and_read(
        &self,
        builder: reqwest::RequestBuilder,
        call: &Call,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), Failure> {
        let mut response = builder
            .send()
            .await
            .map_err(|e| Failure::transport(&e, self.base_url()))?;
        let status = response.status();
        call.last_status.store(status.as_u16(), Ordering::Relaxed);
        let too_large = || {
            let error = ToolError::new(
                ErrorCode::UpstreamError,
                format!(
                    "the upstream's response is larger than {} bytes",
                    self.max_response_bytes
                ),
            )
            .with_status(status.as_u16());
            Failure::new(error, Reached::Maybe, false)
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_response_bytes as u64)
        {
            return Err(too_large());
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::transport(&e, self.base_url()))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    /// The tenant header: configured, or asked of the upstream once.
    async fn tenant(&self, call: &Call) -> Result<HeaderValue, Failure> {
        self.tenant
            .get_or_try_init(|| self.resolve_tenant(call))
            .await
            .cloned()
    }

    async fn resolve_tenant(&self, call: &Call) -> Result<HeaderValue, Failure> {
        let builder = self.bare_request(HttpMethod::GET, "/v1/auth/tenant", call);
        let (status, headers, body) = self.exchange(builder, call).await?;
        let explain = |detail: String| {
            let error = ToolError::new(
                ErrorCode::Unauthorized,
                format!("could not resolve the tenant ({detail}); set TOOLBRIDGE_TENANT_ID"),
            )
            .with_status(status.as_u16());
            Failure::new(error, Reached::No, false)
        };
        if !status.is_success() {
            let failure = Failure::status(status, &headers, &body, false);
            if failure.transient {
                return Err(failure);
            }
            return Err(explain(format!(
                "GET /v1/auth/tenant answered {}: {}",
                status.as_u16(),
                failure.error.message
            )));
        }
        let id = tenant_id_from(&body)
            .ok_or_else(|| explain("GET /v1/auth/tenant sent no tenant id".into()))?;
        tracing::info!(tenant = %id, "resolved the tenant");
        HeaderValue::from_str(&id)
            .map_err(|_| explain("the tenant id is not a valid header value".into()))
    }

    async fn session(&self, call: &Call) -> Result<Session, Failure> {
        self.session.get_or_open(|| self.open_session(call)).await
    }

    async fn open_session(&self, call: &Call) -> Result<Session, Failure> {
        let builder = self
            .request(HttpMethod::POST, "/v1/sync/sessions", call)
            .await?;
        let (status, headers, body) = self.exchange(builder, call).await?;
        if !status.is_success() {
            let mut failure = Failure::status(status, &headers, &body, false);
            // A session that cannot be opened is never fixed by another session.
            failure.resession = false;
            failure.error.message =
                format!("could not open a sync session: {}", failure.error.message);
            return Err(failure);
        }
        Session::from_response(&headers, &body).ok_or_else(|| {
            let error = ToolError::new(
                ErrorCode::UpstreamError,
                "the upstream's session response has no id",
            )
            .with_status(status.as_u16());
            Failure::new(error, Reached::No, false)
        })
    }

    /// Ends the sync session, if any; bounded so shutdown never hangs on it.
    pub async fn close(&self) {
        let Some(session) = self.session.take().await else {
            return;
        };
        let call = Call::new(Duration::from_secs(2), CancellationToken::new());
        let path = format!("/v1/sync/sessions/{}", session.id);
        if let Ok(builder) = self.request(HttpMethod::DELETE, &path, &call).await {
            match self.exchange(builder, &call).await {
                Ok((status, _, _)) => {
                    tracing::info!(status = status.as_u16(), "ended the sync session")
                }
                Err(f) => {
                    tracing::warn!(error = %f.error.summary(), "could not end the sync session")
                }
            }
        }
    }

    /// Sizes the client-side rate limit from `GET /v1/sync/info` (best
    /// effort: the contract default stays when it cannot be read).
    pub async fn discover_limits(&self) {
        let call = Call::new(Duration::from_secs(5), CancellationToken::new());
        let builder = self.bare_request(HttpMethod::GET, "/v1/sync/info", &call);
        let Ok((status, _, body)) = self.send_and_read(builder, &call).await else {
            return;
        };
        let info: Value = serde_json::from_slice(&body).unwrap_or_default();
        let limit = &info["rateLimit"];
        let (Some(max), Some(window)) = (
            limit["maxRequests"].as_u64(),
            limit["windowSeconds"].as_u64(),
        ) else {
            tracing::debug!(
                status = status.as_u16(),
                "no rate limit published in /v1/sync/info"
            );
            return;
        };
        if window == 0 {
            return;
        }
        let per_minute = (max * 60 / window).min(u32::MAX as u64) as u32;
        let burst = limit["burst"]
            .as_u64()
            .map_or(per_minute, |b| b.min(u32::MAX as u64) as u32);
        self.throttle.adopt(Rate { per_minute, burst });
    }

    /// Resolves the tenant and opens a session, for `doctor`: the tenant and
    /// the session's epoch.
    pub async fn check_session(&self, call: &Call) -> Result<(String, u64), ToolError> {
        let tenant = self.tenant(call).await.map_err(|f| f.error)?;
        let session = self.session(call).await.map_err(|f| f.error)?;
        Ok((tenant.to_str().unwrap_or("?").to_owned(), session.epoch))
    }

    /// The breaker's state in words, for `doctor` and the logs.
    pub fn breaker_state(&self) -> String {
        self.breaker.describe()
    }

    /// `GET /healthz`, for `doctor`.
    pub async fn health(&self, call: &Call) -> Result<u16, ToolError> {
        let builder = self.bare_request(HttpMethod::GET, "/healthz", call);
        let (status, _, _) = self.exchange(builder, call).await.map_err(|f| f.error)?;
        Ok(status.as_u16())
    }
}

/// Repairs replayed at most once per call.
#[derive(Default)]
struct Replays {
    resession: AtomicBool,
    reauth: AtomicBool,
}

/// Extra trusted CA certificates, for networks that intercept TLS.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ToolError> {
    let pem = std::fs::read(path).map_err(|e| {
        ToolError::invalid_input(format!("cannot read the CA bundle {}: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        ToolError::invalid_input(format!("the CA bundle {} is not PEM: {e}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(ToolError::invalid_input(format!(
            "the CA bundle {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
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

pub fn retry_class(request: &Request) -> RetryClass {
    match (request.method, request.if_match) {
        (Method::Get, _) => RetryClass::Read,
        (_, Some(_)) => RetryClass::Conditional,
        (_, None) => RetryClass::Idempotent,
    }
}

/// The contract names no shape for `GET /v1/auth/tenant`: accept the likely
/// ones (`{"tenantId"}`, `{"tenant_id"}`, `{"id"}`, or a bare string).
fn tenant_id_from(body: &[u8]) -> Option<String> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return Some(String::from_utf8_lossy(body).trim().to_owned()).filter(|s| !s.is_empty());
        }
    };
    let id = match &value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(map) => ["tenantId", "tenant_id", "tenant", "id"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str)),
        _ => None,
    };
    id.map(str::to_owned).filter(|s| !s.is_empty())
}
