//! `toolbridge-mcp sync`: refresh the local replica of every enabled entity
//! now, and say what came (with a progress bar on a terminal).

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::Backend;
use crate::config::Config;
use crate::error::SetupError;
use crate::upstream::Call;

/// How long `sync` may take: a first sync of a large account pages through
/// everything.
const SYNC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1800);

pub async fn run(mut config: Config) -> ExitCode {
    if config.replica.is_none() {
        return super::fail(&SetupError::Config(
            "the local replica is off (--replica off / TOOLBRIDGE_REPLICA=off): nothing to sync"
                .into(),
        ));
    }
    let backend = match Backend::start(&mut config).await {
        Ok(backend) => backend,
        Err(error) => return super::fail(&error),
    };
    let Some(follower) = backend.service.follower().cloned() else {
        backend.shutdown().await;
        return ExitCode::FAILURE;
    };
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
    let call = Call::new(SYNC_DEADLINE, CancellationToken::new());
    let entities = backend.entities().to_vec();
    let started = std::time::Instant::now();
    let result = follower
        .sync(&entities, &call, false, |entity, fetched| {
            if let Some(bar) = &bar {
                bar.set_message(format!("{}: {fetched} items", entity.plural));
                bar.tick();
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let code = match result {
        Ok(fetched) => {
            for (entity, count) in &fetched {
                println!("{:<14} {count:>8} items fetched", entity.plural);
            }
            let total: usize = fetched.iter().map(|(_, n)| n).sum();
            println!(
                "{:<14} {total:>8} items in {:.1} s",
                "total",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("toolbridge-mcp: sync failed: {}", error.summary());
            ExitCode::from(error.code.exit_code())
        }
    };
    backend.shutdown().await;
    code
}
