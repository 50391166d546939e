//! The token command is single-flight: however many calls meet `401` at
//! once, it runs once and every call replays with the new token.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::fake::{Fake, Reply, item};
use super::{UID, call, config, get_note, settings, since};
use crate::upstream::Client;

/// Eight calls meet `401` together; the token command (a stand-in that
/// takes 100 ms of virtual time) runs once; each call replays once with the
/// new token and succeeds.
#[tokio::test(start_paused = true)]
async fn concurrent_401s_run_the_token_command_once() {
    let fake = Fake::new(|seen| match seen.header("authorization") {
        Some("Bearer new-token") => Reply::json(200, item(UID, 1)),
        _ => Reply::error(401, "token expired"),
    });
    let mut config = config(settings());
    config.token_command = Some(vec!["credential-helper".into(), "token".into()]);
    let mut client = Client::with_transport(config, fake.clone()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    client.identity.run = {
        let runs = runs.clone();
        Arc::new(move |argv| {
            assert_eq!(argv, ["credential-helper", "token"]);
            runs.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(SecretString::from("new-token"))
            })
        })
    };
    let client = Arc::new(client);
    let start = Instant::now();

    let mut calls = JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        calls.spawn(async move { client.send(&get_note(), &call(30)).await });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }

    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the token command ran again"
    );
    assert_eq!(since(start), Duration::from_millis(100));
    let gets = fake.scripted();
    let with = |token: &str| {
        gets.iter()
            .filter(|g| g.header("authorization") == Some(token))
            .count()
    };
    assert_eq!(with("Bearer old-token"), 8, "every call met the 401");
    assert_eq!(with("Bearer new-token"), 8, "every call replayed once");
}
