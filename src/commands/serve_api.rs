//! `toolbridge-mcp serve-api`: the embedded API on a fixed address.

use std::future::Future;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, Upstream};
use crate::embedded::{self, ApiConfig};
use crate::error::SetupError;

/// Serves until `shutdown` resolves.
pub async fn serve_api(
    config: &Config,
    listen: std::net::SocketAddr,
    secret: Option<SecretString>,
    shutdown: impl Future<Output = &'static str> + Send + 'static,
) -> Result<(), SetupError> {
    let Upstream::Embedded { db_path } = &config.upstream else {
        return Err(SetupError::Config(
            "serve-api serves the embedded API; unset TOOLBRIDGE_API_URL".into(),
        ));
    };
    let secret = match secret {
        Some(s) if !s.expose_secret().trim().is_empty() => {
            SecretString::from(s.expose_secret().trim().to_owned())
        }
        _ => {
            let secret = embedded::new_secret();
            eprintln!(
                "toolbridge-mcp: generated API secret (send as `Authorization: Bearer <secret>`): {}",
                secret.expose_secret()
            );
            secret
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SetupError::Listen {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| SetupError::Listen {
        addr: listen,
        source,
    })?;
    // Said once the database is open: a client may use the API from this line.
    let state = embedded::AppState::open(ApiConfig {
        db_path: db_path.clone(),
        secret,
        limits: Default::default(),
    })
    .await?;
    eprintln!(
        "toolbridge-mcp: embedded API on http://{bound} (database {}; tenant `{}`)",
        db_path.display(),
        embedded::TENANT_ID
    );
    tracing::info!(%bound, db_path = %db_path.display(), "serving the embedded API");
    embedded::serve(listener, state, async move {
        let signal = shutdown.await;
        tracing::info!(signal, "stopping the embedded API");
    })
    .await?;
    Ok(())
}
