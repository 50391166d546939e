//! One tool call's requests: the deadline and cancellation they share, the
//! retries each may take, and the repairs replayed inside an attempt.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method as HttpMethod;
use reqwest::header::{CONTENT_TYPE, HeaderMap, IF_MATCH};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::failure::Failure;
use super::session::Session;
use super::{Client, Response};
use crate::catalog::repeat::{Reached, Transience};
use crate::catalog::{Method, Request, RetryClass};
use crate::contract::{CORRELATION_HEADER, EPOCH_HEADER, SESSION_HEADER};
use crate::error::{ErrorCode, ToolError};
use crate::notices::{self, Notice};

/// One tool call as the client sees it: its correlation id, deadline and
/// cancellation, and what happened, for the call's log line.
pub struct Call {
    pub correlation_id: String,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    attempts: AtomicU32,
    setup_requests: AtomicU32,
    retries: AtomicU32,
    last_status: AtomicU16,
    /// Time spent waiting for the client's pacing or an upstream's pause.
    waited_us: AtomicU64,
    /// The correlation id an upstream answered with, when not ours.
    upstream_correlation_id: OnceLock<String>,
}

impl Call {
    pub fn new(timeout: Duration, cancel: CancellationToken) -> Self {
        Self {
            correlation_id: uuid::Uuid::new_v4().to_string(),
            deadline: Instant::now() + timeout,
            cancel,
            attempts: AtomicU32::new(0),
            setup_requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            last_status: AtomicU16::new(0),
            waited_us: AtomicU64::new(0),
            upstream_correlation_id: OnceLock::new(),
        }
    }

    /// The correlation id the upstream echoed when it differs from ours (an
    /// upstream or a proxy that makes its own): what to quote to its
    /// operators. The first one seen.
    pub fn upstream_correlation_id(&self) -> Option<&str> {
        self.upstream_correlation_id.get().map(String::as_str)
    }

    /// Notes the echoed correlation id, if it is not ours: one header lookup
    /// and a comparison per response.
    fn saw_correlation(&self, headers: &HeaderMap) {
        let Some(echoed) = headers.get(CORRELATION_HEADER) else {
            return;
        };
        if echoed.as_bytes() == self.correlation_id.as_bytes()
            || self.upstream_correlation_id.get().is_some()
        {
            return;
        }
        // Bounded and printable: it goes into a log line.
        let text: String = String::from_utf8_lossy(echoed.as_bytes())
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        let _ = self.upstream_correlation_id.set(text);
    }

    /// HTTP requests sent for this call's own work: its entity requests,
    /// with every retry and replay. A clean call is one.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// HTTP requests this call made first to set up what every call shares:
    /// resolving the tenant, opening (or renewing) the sync session. Zero
    /// once they exist.
    pub fn setup_requests(&self) -> u32 {
        self.setup_requests.load(Ordering::Relaxed)
    }

    /// Backoff retries taken (re-session replays do not count).
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The last HTTP status seen, if any.
    pub fn last_status(&self) -> Option<u16> {
        Some(self.last_status.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// Time spent waiting on rate limits (pacing, `Retry-After` pauses).
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_us.load(Ordering::Relaxed))
    }

    /// Counts a request going out: an attempt of an entity request, or a
    /// setup request (see [`Call::setup_requests`]).
    pub(super) fn count_request(&self, entity_request: bool) {
        let counter = if entity_request {
            &self.attempts
        } else {
            &self.setup_requests
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn saw_status(&self, status: u16) {
        self.last_status.store(status, Ordering::Relaxed);
    }

    pub(super) fn add_wait(&self, waited: Duration) {
        let us = waited.as_micros().min(u64::MAX as u128) as u64;
        self.waited_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// What the attempts of one request have done, across its retries: whether
/// any may have reached the upstream decides what a failure tells the model.
pub(super) struct Sending {
    pub class: RetryClass,
    /// An attempt failed after the request may have gone out.
    maybe_reached: AtomicBool,
    /// An attempt is on the wire; if the call's deadline or cancellation
    /// drops it there, it may have reached the upstream.
    on_the_wire: AtomicBool,
}

impl Sending {
    fn new(class: RetryClass) -> Self {
        Self {
            class,
            maybe_reached: AtomicBool::new(false),
            on_the_wire: AtomicBool::new(false),
        }
    }

    pub fn on_the_wire(&self, yes: bool) {
        self.on_the_wire.store(yes, Ordering::Relaxed);
    }

    fn record(&self, failure: &Failure) {
        if failure.reached == Reached::Maybe {
            self.maybe_reached.store(true, Ordering::Relaxed);
        }
    }

    fn reached(&self) -> Reached {
        if self.maybe_reached.load(Ordering::Relaxed) || self.on_the_wire.load(Ordering::Relaxed) {
            Reached::Maybe
        } else {
            Reached::No
        }
    }
}

/// What the upstream serves when a list names no `limit` (upstream
/// contract §5).
const UPSTREAM_DEFAULT_LIMIT: u32 = 500;

/// A page of a list, and the `limit` it was asked with: smaller than the
/// request's when the page had to shrink to fit the response cap.
#[derive(Debug)]
pub struct Page {
    pub body: Value,
    pub limit: u32,
    /// Whether `limit` is smaller than the request's.
    pub shrunk: bool,
}

/// Why a list cannot go on: its next item alone is over the cap. The
/// message names the entity's `get_*` by the list's path.
fn one_item_over_cap(path: &str, cap: usize) -> String {
    let (noun, get) = crate::catalog::ENTITIES
        .iter()
        .find(|e| e.path == path)
        .map_or(("item".to_owned(), "get_*".to_owned()), |e| {
            (e.noun.to_owned(), format!("get_{}", e.singular))
        });
    format!(
        "the next {noun} of this list alone is larger than the upstream response cap of {cap} bytes \
         (--max-response-bytes): raise the cap to list past it; {get} with offset then reads it in pieces"
    )
}

/// Repairs replayed at most once per call.
#[derive(Default)]
struct Replays {
    resession: AtomicBool,
    reauth: AtomicBool,
}

impl Client {
    /// Sends an entity request with retries, within the call's deadline and
    /// until the call is cancelled. A failure says, from the request's class,
    /// whether the model may repeat the call and whether a write was applied.
    pub async fn send(&self, request: &Request, call: &Call) -> Result<Response, ToolError> {
        self.send_keeping_failure(request, call)
            .await
            .map_err(|failure| failure.error)
    }

    /// A page of a list, with as many items as fit the response cap
    /// (`--max-response-bytes`): a page over it is asked again with half its
    /// `limit`, down to one item. Only an item that alone is over the cap
    /// fails. Lists and the replica's feed both page through here.
    pub async fn send_page(&self, request: &Request, call: &Call) -> Result<Page, ToolError> {
        let mut limit = request
            .query
            .iter()
            .find(|(key, _)| *key == "limit")
            .and_then(|(_, value)| value.parse().ok())
            .filter(|limit: &u32| *limit > 0)
            .unwrap_or(UPSTREAM_DEFAULT_LIMIT);
        let mut request = request.clone();
        let mut shrunk = false;
        loop {
            request.query.retain(|(key, _)| *key != "limit");
            request.query.push(("limit", limit.to_string()));
            match self.send_keeping_failure(&request, call).await {
                Ok(response) => {
                    return Ok(Page {
                        body: response.body,
                        limit,
                        shrunk,
                    });
                }
                Err(failure) if !failure.over_cap => return Err(failure.error),
                Err(failure) if limit <= 1 => {
                    let mut error = failure.error;
                    error.message = one_item_over_cap(&request.path, self.max_response_bytes);
                    return Err(error);
                }
                Err(_) => {
                    tracing::info!(
                        correlation_id = %call.correlation_id,
                        path = %request.path,
                        from = limit,
                        to = limit / 2,
                        "a page was larger than the response cap; asking for fewer items"
                    );
                    limit /= 2;
                    shrunk = true;
                }
            }
        }
    }

    /// [`Self::send`], keeping what kind of failure it was.
    async fn send_keeping_failure(
        &self,
        request: &Request,
        call: &Call,
    ) -> Result<Response, Failure> {
        let sending = Sending::new(request.class);
        let outcome = tokio::select! {
            biased;
            _ = call.cancel.cancelled() => Err(Failure::new(
                ToolError::new(ErrorCode::Cancelled, "the call was cancelled"),
                Reached::No,
                Transience::Permanent,
            )),
            result = tokio::time::timeout_at(call.deadline, self.send_with_retries(request, call, &sending)) => {
                result.unwrap_or_else(|_| Err(Failure::new(
                    ToolError::new(
                        ErrorCode::Timeout,
                        format!("no answer from the upstream within the call's deadline ({} attempts)", call.attempts()),
                    ),
                    Reached::No,
                    Transience::Now,
                )))
            }
        };
        outcome.map_err(|mut failure| {
            sending.record(&failure);
            let verdict = request.class.verdict(failure.transience, sending.reached());
            failure.error = failure
                .error
                .with_verdict(verdict)
                .with_correlation_id(&call.correlation_id);
            failure
        })
    }

    async fn send_with_retries(
        &self,
        request: &Request,
        call: &Call,
        sending: &Sending,
    ) -> Result<Response, Failure> {
        let replays = Replays::default();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let attempt = || async {
            let result = self.attempt(request, call, sending, &replays).await;
            if let Err(failure) = &result {
                sending.record(failure);
            }
            result
        };
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| request.class.may_resend(f.transience, f.reached))
            .adjust(|f, backoff| {
                // The backoff's own budget is spent first; a Retry-After then
                // replaces the delay, but only if it fits the call's deadline.
                let delay = f.retry_after.unwrap_or(backoff?);
                let remaining = call.deadline.saturating_duration_since(Instant::now());
                (delay < remaining).then_some(delay)
            })
            .notify(|f, delay| {
                call.retries.fetch_add(1, Ordering::Relaxed);
                if f.retry_after.is_some() {
                    call.add_wait(delay);
                }
                tracing::debug!(
                    correlation_id = %call.correlation_id,
                    error = %f.error.summary(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying"
                );
            })
            .await
    }

    /// One attempt. A session or epoch rejection is repaired (new session) and
    /// so is a 401 when a token command can mint a new token; each is replayed
    /// once per call, inside the attempt, so it never spends a retry.
    async fn attempt(
        &self,
        request: &Request,
        call: &Call,
        sending: &Sending,
        replays: &Replays,
    ) -> Result<Response, Failure> {
        let session = self.session(call).await.map_err(Failure::before_sending)?;
        let generation = self.identity.headers().0;
        let failure = match self.send_once(request, call, &session, sending).await {
            Err(f) => f,
            ok => return ok,
        };
        if failure.resession && !replays.resession.swap(true, Ordering::Relaxed) {
            tracing::info!(correlation_id = %call.correlation_id, status = failure.error.http_status, "renewing the sync session");
            self.session.invalidate(&session).await;
            let renewed = self.session(call).await.map_err(Failure::before_sending)?;
            notices::publish(|| Notice::SessionRenewed {
                from_epoch: session.epoch,
                to_epoch: renewed.epoch,
            });
            return self.send_once(request, call, &renewed, sending).await;
        }
        if failure.error.http_status == Some(401)
            && self.identity.can_refresh()
            && !replays.reauth.swap(true, Ordering::Relaxed)
        {
            self.identity
                .refresh(generation)
                .await
                .map_err(|e| Failure::new(e, Reached::No, Transience::Permanent))?;
            return self.send_once(request, call, &session, sending).await;
        }
        Err(failure)
    }

    async fn send_once(
        &self,
        request: &Request,
        call: &Call,
        session: &Session,
        sending: &Sending,
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
            .await
            .map_err(Failure::before_sending)?
            .header(SESSION_HEADER, &session.id)
            .header(EPOCH_HEADER, session.epoch.to_string());
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
        let (status, headers, body) = self.exchange(builder, call, Some(sending)).await?;
        call.saw_correlation(&headers);
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
                    Failure::new(error, Reached::Maybe, Transience::Permanent)
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
            request.class.is_write(),
        ))
    }
}
