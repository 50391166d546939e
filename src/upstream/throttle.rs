//! Client-side pacing: a token bucket sized from the upstream's published
//! limits, a pause when the upstream says "come back later", and a bound on
//! requests in flight. A burst of tool calls from a model is smoothed here
//! instead of earning 429s there.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderName};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::contract::{RATE_LIMIT_REMAINING_HEADER, RATE_LIMIT_RESET_HEADER};
use crate::notices::{self, Notice};

/// The longest pause taken from `X-RateLimit-Reset`: a far-off or bogus value
/// must not stall every call.
const MAX_RESET_PAUSE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

pub struct Throttle {
    /// `None` when pacing is off.
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    /// Whether the rate was set by the user (then the upstream's published
    /// limits do not replace it).
    configured: bool,
    paused_until: Mutex<Option<Instant>>,
    in_flight: Semaphore,
}

impl Throttle {
    /// `rate`: `Some(r)` paces at `r` (a `per_minute` of 0 turns pacing off);
    /// `None` paces only once the upstream publishes its limits (until then,
    /// and against an upstream that publishes none, 429s and `Retry-After`
    /// still pause requests).
    pub fn new(rate: Option<Rate>, max_in_flight: usize) -> Self {
        Self {
            limiter: RwLock::new(rate.and_then(limiter)),
            configured: rate.is_some(),
            paused_until: Mutex::new(None),
            in_flight: Semaphore::new(max_in_flight.max(1)),
        }
    }

    /// Adopts the rate the upstream publishes in `/v1/sync/info`.
    pub fn adopt(&self, rate: Rate) {
        if self.configured {
            return;
        }
        tracing::info!(
            per_minute = rate.per_minute,
            burst = rate.burst,
            "pacing requests to the upstream's published rate"
        );
        *self.limiter.write().unwrap_or_else(|e| e.into_inner()) = limiter(rate);
    }

    /// Waits for a slot in flight, any pause, and a token. Fails at once with
    /// the time to wait when a pause reaches past `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<SemaphorePermit<'_>, Duration> {
        let permit = self.in_flight.acquire().await.map_err(|_| Duration::ZERO)?;
        let paused = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = paused.filter(|u| *u > Instant::now()) {
            if until > deadline {
                return Err(until - Instant::now());
            }
            tokio::time::sleep_until(until).await;
        }
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        Ok(permit)
    }

    /// Learns from a response: `Retry-After` on 429/503, or an exhausted
    /// bucket (`X-RateLimit-Remaining: 0`), pauses everyone until then.
    pub fn observe(&self, status: u16, headers: &HeaderMap, retry_after: Option<Duration>) {
        let pause = match (status, retry_after) {
            (429 | 503, Some(after)) => Some(after),
            _ if header_u64(headers, &RATE_LIMIT_REMAINING_HEADER) == Some(0) => {
                header_u64(headers, &RATE_LIMIT_RESET_HEADER)
                    .map(|reset| until_unix(reset).min(MAX_RESET_PAUSE))
            }
            _ => None,
        };
        if let Some(pause) = pause.filter(|p| !p.is_zero()) {
            let now = Instant::now();
            let until = now + pause;
            let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            let was_paused = paused.is_some_and(|p| p > now);
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
                // Once per pause: the concurrent answers that extend it say
                // nothing new.
                if !was_paused {
                    notices::publish(|| Notice::RateLimited { pause, status });
                }
            }
        }
    }
}

fn limiter(rate: Rate) -> Option<Arc<DefaultDirectRateLimiter>> {
    let per_minute = NonZeroU32::new(rate.per_minute)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(per_minute);
    Some(Arc::new(RateLimiter::direct(
        Quota::per_minute(per_minute).allow_burst(burst),
    )))
}

/// Header names arrive as `X-Ratelimit-*` too; `HeaderMap` lookups ignore case.
fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn until_unix(reset: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(reset).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket lets a burst through and then paces.
    #[tokio::test]
    async fn paces_after_the_burst() {
        let throttle = Throttle::new(
            Some(Rate {
                per_minute: 60,
                burst: 3,
            }),
            8,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = std::time::Instant::now();
        for _ in 0..3 {
            drop(throttle.acquire(deadline).await.unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "the burst is not paced"
        );
        let limiter = throttle.limiter.read().unwrap().clone().unwrap();
        assert!(limiter.check().is_err(), "the fourth token must wait");
    }

    /// A Retry-After beyond the caller's deadline fails at once with the wait.
    #[tokio::test(start_paused = true)]
    async fn pause_past_the_deadline_fails_fast() {
        let throttle = Throttle::new(
            Some(Rate {
                per_minute: 0,
                burst: 0,
            }),
            8,
        );
        throttle.observe(429, &HeaderMap::new(), Some(Duration::from_secs(20)));
        let deadline = Instant::now() + Duration::from_secs(5);
        let wait = throttle.acquire(deadline).await.unwrap_err();
        assert!(wait > Duration::from_secs(19));
        // Within the deadline, the pause is waited out.
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = Instant::now();
        drop(throttle.acquire(deadline).await.unwrap());
        assert!(Instant::now() - before >= Duration::from_secs(19));
    }

    /// An exhausted bucket reported by the upstream pauses until its reset.
    #[tokio::test]
    async fn exhausted_bucket_pauses_until_reset() {
        let throttle = Throttle::new(None, 8);
        let mut headers = HeaderMap::new();
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        headers.insert("X-Ratelimit-Remaining", "0".parse().unwrap());
        headers.insert("X-Ratelimit-Reset", reset.to_string().parse().unwrap());
        throttle.observe(200, &headers, None);
        let wait = throttle
            .acquire(Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(31),
            "{wait:?}"
        );
    }

    /// No more than the bound is in flight: the third request waits (under
    /// paused time the runtime, idle, jumps to the timeout: the wait is
    /// proven without sleeping).
    #[tokio::test(start_paused = true)]
    async fn bounds_requests_in_flight() {
        let throttle = Throttle::new(
            Some(Rate {
                per_minute: 0,
                burst: 0,
            }),
            2,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let a = throttle.acquire(deadline).await.unwrap();
        let _b = throttle.acquire(deadline).await.unwrap();
        let third =
            tokio::time::timeout(Duration::from_millis(50), throttle.acquire(deadline)).await;
        assert!(third.is_err(), "a third request got through");
        drop(a);
        assert!(throttle.acquire(deadline).await.is_ok());
    }
}
