//! The one HTTP client every tool call goes through.
//!
//! It owns what the upstream contract asks of a client: authentication, the
//! tenant header, one sync session reused across calls (renewed before it
//! expires, re-established once on `428` or `409 epoch_mismatch`), a
//! correlation id per call, retries that cannot duplicate a write, and a
//! deadline no call outlives. Every failure leaves it as a normalized
//! [`ToolError`].

mod auth;
mod breaker;
mod call;
mod failure;
mod session;
mod tenant;
mod throttle;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method as HttpMethod, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::repeat::{Reached, Transience};
use crate::contract::{CORRELATION_HEADER, TENANT_HEADER};
use crate::error::{ErrorCode, SetupError, ToolError};
use auth::Identity;
pub use auth::{Auth, run_token_command};
pub use breaker::BreakerState;
use breaker::{Breaker, Outcome};
use call::Sending;
pub use call::{Call, Page};
pub use failure::CREDENTIALS_HINT;
use failure::Failure;
use session::SessionSlot;
pub use throttle::Rate;
use throttle::Throttle;
pub use transport::{Answer, SendFuture, Transport, TransportError};

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

pub struct Client {
    /// Builds each request (it knows the defaults); `transport` sends it.
    http: reqwest::Client,
    /// reqwest in production; a scripted fake in tests.
    transport: Arc<dyn Transport>,
    /// The upstream's base URL, parsed once; each request only sets its path
    /// on a copy.
    base: reqwest::Url,
    /// Authorization and identity headers, and the token command that can
    /// replace the token.
    identity: Identity,
    breaker: Breaker,
    throttle: Throttle,
    tenant: tokio::sync::OnceCell<HeaderValue>,
    session: SessionSlot,
    attempt_timeout: Duration,
    retry: RetryPolicy,
    /// The largest response read (the transport enforces it).
    max_response_bytes: usize,
}

/// Whose data, at which epoch: see [`Client::scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub tenant: String,
    pub user_id: String,
    pub epoch: u64,
}

/// A response body the caller asked for, already known to be 2xx.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, SetupError> {
        let http = build_http(&config)?;
        let transport = Arc::new(transport::Reqwest {
            http: http.clone(),
            max_response_bytes: config.settings.max_response_bytes,
        });
        Self::assemble(config, http, transport)
    }

    /// A client whose exchanges go through `transport` instead of the
    /// network: the seam tests use to script the upstream in-process.
    pub fn with_transport(
        config: ClientConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, SetupError> {
        let http = build_http(&config)?;
        Self::assemble(config, http, transport)
    }

    fn assemble(
        config: ClientConfig,
        http: reqwest::Client,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, SetupError> {
        let settings = config.settings;
        let base = reqwest::Url::parse(&config.base_url)
            .map_err(|e| SetupError::Config(format!("`{}` is not a URL: {e}", config.base_url)))?;
        let identity = Identity::new(&config.auth, config.token_command)?;
        let tenant = tokio::sync::OnceCell::new();
        if let Some(id) = &config.tenant_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                SetupError::Config(
                    "the tenant id contains characters not allowed in a header".into(),
                )
            })?;
            let _ = tenant.set(value);
        }
        Ok(Self {
            http,
            transport,
            base,
            identity,
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

    /// A request with identity, tenant and correlation headers.
    async fn request(
        &self,
        method: HttpMethod,
        path: &str,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let tenant = self.tenant(call).await?;
        Ok(self
            .bare_request(method, path, call)
            .header(TENANT_HEADER, tenant))
    }

    fn bare_request(&self, method: HttpMethod, path: &str, call: &Call) -> reqwest::RequestBuilder {
        let (_, identity) = self.identity.headers();
        self.http
            .request(method, self.url(path))
            .headers(identity)
            .header(CORRELATION_HEADER, &call.correlation_id)
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
    /// Every HTTP exchange goes through here: the breaker admits it, the
    /// throttle paces it, and the call's deadline bounds all of it (a wait
    /// for pacing or a slot included). `sending` is the entity request this
    /// attempt belongs to, if any.
    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
        call: &Call,
        sending: Option<&Sending>,
    ) -> Result<Answer, Failure> {
        let bounded = tokio::time::timeout_at(call.deadline, async {
            let permit = self.breaker.admit().map_err(Failure::circuit_open)?;
            let waiting = Instant::now();
            let _slot = self
                .throttle
                .acquire(call.deadline)
                .await
                .map_err(Failure::paused)?;
            call.add_wait(waiting.elapsed());
            call.count_request(sending.is_some());
            if let Some(sending) = sending {
                sending.on_the_wire(true);
            }
            let result = self.send_and_read(builder, call).await;
            if let Some(sending) = sending {
                sending.on_the_wire(false);
            }
            let write = sending.is_some_and(|s| s.class.is_write());
            let outcome = match &result {
                // A write's 500 is most often a missing parent, not an outage:
                // it must not open the circuit for every tool.
                Ok((status, _, _)) if *status == StatusCode::INTERNAL_SERVER_ERROR && write => {
                    Outcome::Neutral
                }
                // A damaged database answers at once, with what to do:
                // failing fast instead would hide that.
                Ok((status, _, body))
                    if *status == StatusCode::INTERNAL_SERVER_ERROR
                        && failure::reports_damaged_database(body) =>
                {
                    Outcome::Neutral
                }
                Ok((status, _, _)) if status.is_server_error() => Outcome::Failed,
                Ok((status, _, _)) if *status == StatusCode::TOO_MANY_REQUESTS => Outcome::Neutral,
                Ok(_) => Outcome::Healthy,
                Err(f) if f.error.http_status.is_some() => Outcome::Neutral,
                Err(_) => Outcome::Failed,
            };
            permit.record(outcome);
            if let Ok((status, headers, _)) = &result {
                if status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS {
                    tracing::warn!(
                        status = status.as_u16(),
                        correlation_id = %call.correlation_id,
                        "upstream status"
                    );
                }
                self.throttle.observe(
                    status.as_u16(),
                    headers,
                    failure::parse_retry_after(headers),
                );
            }
            result
        });
        bounded.await.unwrap_or_else(|_| {
            let error = ToolError::new(
                ErrorCode::Timeout,
                "no answer from the upstream within the call's deadline",
            );
            Err(Failure::new(error, Reached::Maybe, Transience::Now))
        })
    }

    /// One attempt through the transport, bounded by the attempt's timeout
    /// (never past the call's deadline). The bound is set here, not in
    /// reqwest, so paused time controls it in tests.
    async fn send_and_read(
        &self,
        builder: reqwest::RequestBuilder,
        call: &Call,
    ) -> Result<Answer, Failure> {
        let fail = |e: TransportError| {
            if let Some(status) = e.status() {
                call.saw_status(status.as_u16());
            }
            Failure::transport(&e, self.base_url())
        };
        let request = builder
            .build()
            .map_err(|e| fail(TransportError::from_reqwest(&e, None)))?;
        let remaining = call.deadline.saturating_duration_since(Instant::now());
        let sent = tokio::time::timeout(
            self.attempt_timeout.min(remaining),
            self.transport.send(request),
        );
        let answer = sent
            .await
            .unwrap_or(Err(TransportError::Timeout))
            .map_err(fail)?;
        call.saw_status(answer.0.as_u16());
        Ok(answer)
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
    /// the session's epoch. Both go through [`Self::exchange`], so the call's
    /// deadline bounds them.
    pub async fn check_session(&self, call: &Call) -> Result<(String, u64), ToolError> {
        let tenant = self.tenant(call).await.map_err(|f| f.error)?;
        let session = self.session(call).await.map_err(|f| f.error)?;
        Ok((tenant.to_str().unwrap_or("?").to_owned(), session.epoch))
    }

    /// Whose data this client reads, and at which epoch: the tenant and the
    /// user id of the current session (opening one if needed). A local
    /// replica is keyed by it, with where the data lives.
    pub async fn scope(&self, call: &Call) -> Result<Scope, ToolError> {
        let tenant = self.tenant(call).await.map_err(|f| f.error)?;
        let session = self.session(call).await.map_err(|f| f.error)?;
        Ok(Scope {
            tenant: tenant.to_str().unwrap_or_default().to_owned(),
            user_id: session.user_id.unwrap_or_default(),
            epoch: session.epoch,
        })
    }

    /// The breaker's state, for `doctor`.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// `GET /healthz`, for `doctor`.
    pub async fn health(&self, call: &Call) -> Result<u16, ToolError> {
        let builder = self.bare_request(HttpMethod::GET, "/healthz", call);
        let (status, _, _) = self
            .exchange(builder, call, None)
            .await
            .map_err(|f| f.error)?;
        Ok(status.as_u16())
    }
}

/// The reqwest client: it builds every request, and sends them in
/// production.
fn build_http(config: &ClientConfig) -> Result<reqwest::Client, SetupError> {
    let settings = &config.settings;
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
    builder
        .build()
        .map_err(|e| SetupError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Extra trusted CA certificates, for networks that intercept TLS.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, SetupError> {
    let pem = std::fs::read(path).map_err(|e| {
        SetupError::Config(format!("cannot read the CA bundle {}: {e}", path.display()))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        SetupError::Config(format!("the CA bundle {} is not PEM: {e}", path.display()))
    })?;
    if certs.is_empty() {
        return Err(SetupError::Config(format!(
            "the CA bundle {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}
