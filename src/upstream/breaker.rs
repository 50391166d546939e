//! A circuit breaker around the upstream: after a run of failed attempts,
//! calls fail fast for a cooldown instead of each waiting out its own
//! retries; then one probe is let through, and its outcome closes or reopens
//! the circuit.
//!
//! No small, well-kept crate does this (failsafe is dormant, tower has none),
//! and the states fit in a screen.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::notices::{self, Notice};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown is over and one probe is out.
    HalfOpen,
}

/// The breaker's state as others may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Disabled,
    Closed { failures: u32 },
    Open { next_probe: Duration },
    HalfOpen,
}

impl BreakerState {
    /// Calls go through (closed or disabled).
    pub fn admits_calls(self) -> bool {
        matches!(self, Self::Disabled | Self::Closed { .. })
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => f.write_str("disabled"),
            Self::Closed { failures } => write!(f, "closed ({failures} recent failures)"),
            Self::Open { next_probe } => write!(
                f,
                "open (next probe in {:.0} s)",
                next_probe.as_secs_f64().ceil()
            ),
            Self::HalfOpen => f.write_str("half-open"),
        }
    }
}

/// What an attempt's outcome means to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (any status but 5xx): it is there.
    Healthy,
    /// A connection failure, a timeout, or a 5xx.
    Failed,
    /// Says nothing about health (429: it is there but busy).
    Neutral,
}

/// An admitted attempt; see [`Breaker::admit`].
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Permit<'_> {
    pub fn record(mut self, outcome: Outcome) {
        self.breaker.record(outcome, self.probe);
        self.probe = false;
    }
}

impl std::fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.probe)
            .finish()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.abandon_probe();
        }
    }
}

pub struct Breaker {
    /// Consecutive failed attempts that open the circuit; 0 disables it.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Lets an attempt through, or says how long until the next probe. The
    /// permit must be given the attempt's outcome; one dropped without it (a
    /// cancelled call, a request refused before it went out) gives its probe
    /// back, so the circuit never stays half-open with no probe out.
    pub fn admit(&self) -> Result<Permit<'_>, Duration> {
        let mut permit = Permit {
            breaker: self,
            probe: false,
        };
        if self.threshold == 0 {
            return Ok(permit);
        }
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(permit),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    tracing::info!("circuit half-open: probing the upstream");
                    *state = State::HalfOpen;
                    permit.probe = true;
                    Ok(permit)
                } else {
                    Err(until - now)
                }
            }
            // The probe is out; everyone else waits for its verdict.
            State::HalfOpen => Err(Duration::from_secs(1)),
        }
    }

    fn record(&self, outcome: Outcome, probe: bool) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        let next = match (*state, outcome) {
            // A probe that got any answer but a failure found the upstream
            // there (a 429 is busy, not down).
            (State::HalfOpen, Outcome::Healthy | Outcome::Neutral) if probe => {
                tracing::info!("circuit closed: the upstream answered the probe");
                notices::publish(|| Notice::CircuitClosed);
                State::Closed { failures: 0 }
            }
            (_, Outcome::Neutral) => return,
            (State::Closed { .. }, Outcome::Healthy) => State::Closed { failures: 0 },
            (_, Outcome::Healthy) => {
                tracing::info!("circuit closed: the upstream answered");
                notices::publish(|| Notice::CircuitClosed);
                State::Closed { failures: 0 }
            }
            (State::Closed { failures }, Outcome::Failed) if failures + 1 < self.threshold => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            // An attempt admitted before the circuit opened fails late: the
            // circuit stays open for the cooldown it already has.
            (State::Open { .. }, Outcome::Failed) => return,
            (state, Outcome::Failed) => {
                tracing::warn!(
                    cooldown_s = self.cooldown.as_secs_f64(),
                    threshold = self.threshold,
                    "circuit opened: the upstream keeps failing"
                );
                notices::publish(|| Notice::CircuitOpened {
                    cooldown: self.cooldown,
                    after_probe: state == State::HalfOpen,
                });
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
        *state = next;
    }

    /// A probe that ended without a verdict: the next attempt probes again.
    fn abandon_probe(&self) {
        let mut state = self.lock();
        if *state == State::HalfOpen {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    /// The state now, for `doctor`.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            _ if self.threshold == 0 => BreakerState::Disabled,
            State::Closed { failures } => BreakerState::Closed { failures },
            State::Open { until } => BreakerState::Open {
                next_probe: until.saturating_duration_since(Instant::now()),
            },
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    #[cfg(test)]
    fn describe(&self) -> String {
        self.state().to_string()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is plain data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens after the threshold, fails fast during the cooldown, lets one
    /// probe through after it, and closes on the probe's success.
    #[tokio::test(start_paused = true)]
    async fn opens_fails_fast_half_opens_and_closes() {
        let breaker = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            breaker.admit().unwrap().record(Outcome::Failed);
        }
        breaker
            .admit()
            .expect("still closed below the threshold")
            .record(Outcome::Failed);
        let wait = breaker.admit().unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(breaker.admit().unwrap_err(), Duration::from_secs(6));

        tokio::time::advance(Duration::from_secs(6)).await;
        let probe = breaker.admit().expect("the probe goes through");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        probe.record(Outcome::Healthy);
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.describe(), "closed (0 recent failures)");
    }

    /// A failed probe reopens the circuit for a full cooldown.
    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        breaker.admit().unwrap().record(Outcome::Failed);
        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.admit().unwrap().record(Outcome::Failed);
        assert_eq!(breaker.admit().unwrap_err(), Duration::from_secs(5));
    }

    /// A probe that ends without a verdict (cancelled, refused before it went
    /// out) lets the next attempt probe; a probe answered 429 closes.
    #[tokio::test(start_paused = true)]
    async fn abandoned_or_busy_probe_does_not_wedge() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        breaker.admit().unwrap().record(Outcome::Failed);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(breaker.admit().expect("probe"));
        let probe = breaker
            .admit()
            .expect("a new probe after the abandoned one");
        probe.record(Outcome::Neutral);
        assert_eq!(breaker.describe(), "closed (0 recent failures)");
    }

    /// A success resets the run; 429s and 4xx do not count as failures.
    #[tokio::test(start_paused = true)]
    async fn success_resets_and_neutral_does_not_count() {
        let breaker = Breaker::new(2, Duration::from_secs(5));
        for outcome in [
            Outcome::Failed,
            Outcome::Healthy,
            Outcome::Failed,
            Outcome::Neutral,
        ] {
            breaker.admit().unwrap().record(outcome);
        }
        breaker.admit().unwrap().record(Outcome::Failed);
        assert!(breaker.admit().is_err());
    }

    #[test]
    fn zero_threshold_disables() {
        let breaker = Breaker::new(0, Duration::from_secs(5));
        for _ in 0..100 {
            breaker.admit().unwrap().record(Outcome::Failed);
        }
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.describe(), "disabled");
    }
}
