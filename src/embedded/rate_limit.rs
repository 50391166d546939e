//! A token bucket per route group, as the real service keeps per user (here
//! there is one user, so one bucket per group per process).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub allowed: bool,
    pub remaining: u32,
    /// Until the bucket is full again (`X-RateLimit-Reset`).
    pub full_in: Duration,
    /// Until the next token, when refused (`Retry-After`).
    pub retry_in: Duration,
}

pub struct TokenBucket {
    per_minute: u32,
    burst: u32,
    /// Tokens left and when they were counted.
    level: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// Refills `per_minute` tokens a minute up to `burst`; both at least 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let burst = burst.max(1);
        Self {
            per_minute: per_minute.max(1),
            burst,
            level: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    pub fn take(&self) -> Quota {
        self.take_at(Instant::now())
    }

    fn take_at(&self, now: Instant) -> Quota {
        let rate = f64::from(self.per_minute) / 60.0;
        let capacity = f64::from(self.burst);
        // The state is two numbers always written together; a poisoned lock holds a valid pair.
        let mut level = self.level.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(level.1).as_secs_f64();
        let mut tokens = (level.0 + elapsed * rate).min(capacity);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        *level = (tokens, now);
        Quota {
            allowed,
            // Truncation is intended: a partial token is not a request.
            remaining: tokens.floor() as u32,
            full_in: Duration::from_secs_f64((capacity - tokens) / rate),
            retry_in: if allowed {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((1.0 - tokens) / rate)
            },
        }
    }

    /// `Retry-After` in whole seconds, at least one.
    pub fn retry_after_secs(quota: &Quota) -> u64 {
        quota.retry_in.as_secs_f64().ceil().max(1.0) as u64
    }

    /// Adds the `X-RateLimit-*` headers describing `quota`.
    pub fn write_headers(&self, quota: &Quota, headers: &mut HeaderMap) {
        let reset = SystemTime::now()
            .checked_add(quota.full_in)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs_f64().ceil() as u64);
        let pairs = [
            ("x-ratelimit-limit", HeaderValue::from(self.per_minute)),
            ("x-ratelimit-remaining", HeaderValue::from(quota.remaining)),
            ("x-ratelimit-reset", HeaderValue::from(reset)),
            ("x-ratelimit-burst", HeaderValue::from(self.burst)),
        ];
        for (name, value) in pairs {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_then_refill() {
        let bucket = TokenBucket::new(60, 2); // one token a second
        let t0 = Instant::now();
        assert_eq!(bucket.take_at(t0).remaining, 1);
        assert_eq!(bucket.take_at(t0).remaining, 0);
        let refused = bucket.take_at(t0);
        assert!(!refused.allowed);
        assert_eq!(TokenBucket::retry_after_secs(&refused), 1);
        assert!(bucket.take_at(t0 + Duration::from_millis(1000)).allowed);
        assert!(!bucket.take_at(t0 + Duration::from_millis(1500)).allowed);
    }

    #[test]
    fn full_in_counts_the_missing_tokens() {
        let bucket = TokenBucket::new(600, 120); // ten tokens a second
        let quota = bucket.take_at(Instant::now());
        assert!(quota.allowed);
        assert_eq!(quota.remaining, 119);
        assert!((quota.full_in.as_secs_f64() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let bucket = TokenBucket::new(0, 0);
        assert!(bucket.take_at(Instant::now()).allowed);
    }

    #[test]
    fn headers_describe_the_bucket() {
        let bucket = TokenBucket::new(600, 120);
        let mut headers = HeaderMap::new();
        bucket.write_headers(&bucket.take(), &mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "600");
        assert_eq!(headers["x-ratelimit-remaining"], "119");
        assert_eq!(headers["x-ratelimit-burst"], "120");
        assert!(headers.contains_key("x-ratelimit-reset"));
    }
}
