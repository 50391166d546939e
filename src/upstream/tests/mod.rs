//! The client's timing, proven in-process under `tokio::time::pause()`:
//! a scripted upstream ([`fake`]) behind the transport seam, virtual time
//! measured with `tokio::time::Instant`, nothing slept for real.

mod breaker;
mod deadlines;
mod fake;
mod pages;
mod retries;
mod sessions;
mod token;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Auth, Call, Client, ClientConfig, ClientSettings, Rate, RetryPolicy};
use crate::catalog::{Catalog, Request};
use fake::Fake;

pub const UID: &str = "6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70";

/// Quick, predictable settings: three retries from 200 ms, no breaker, no
/// pacing, a 10 s attempt timeout.
pub fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        },
        max_response_bytes: 1 << 20,
        breaker_threshold: 0,
        breaker_cooldown: Duration::from_secs(10),
        rate: Some(Rate {
            per_minute: 0,
            burst: 0,
        }),
        max_in_flight: 16,
        ca_bundle: None,
    }
}

pub fn config(settings: ClientSettings) -> ClientConfig {
    ClientConfig {
        base_url: "http://upstream.test".into(),
        auth: Auth::Bearer(SecretString::from("old-token")),
        tenant_id: Some("t-1".into()),
        token_command: None,
        settings,
    }
}

#[allow(clippy::unwrap_used)]
pub fn client(fake: &Arc<Fake>, settings: ClientSettings) -> Client {
    Client::with_transport(config(settings), fake.clone()).unwrap()
}

pub fn call(timeout_s: u64) -> Call {
    Call::new(Duration::from_secs(timeout_s), CancellationToken::new())
}

pub fn get_note() -> Request {
    Request::get(format!("/v1/notes/{UID}"))
}

/// The request the catalog plans for `tool` called with `args`.
#[allow(clippy::unwrap_used)]
pub fn planned(tool: &str, args: Value) -> Request {
    let catalog = Catalog::all();
    match catalog.get(tool).unwrap().plan(args.as_object().cloned()) {
        Ok(crate::catalog::Planned::Request(plan)) => plan.request,
        other => panic!("{tool} plans no upstream request: {other:?}"),
    }
}

pub fn create_note() -> Request {
    planned("create_note", json!({"title": "a note"}))
}

/// Virtual time since `start`.
pub fn since(start: tokio::time::Instant) -> Duration {
    tokio::time::Instant::now() - start
}
