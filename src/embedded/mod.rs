//! Placeholder with the embedded API's interface; the implementation lands
//! from the `embedded-api` branch.

use std::path::PathBuf;

pub const TENANT_ID: &str = "local";

pub struct ApiConfig {
    pub db_path: PathBuf,
    pub secret: secrecy::SecretString,
    pub limits: RateLimits,
}

#[derive(Default)]
pub struct RateLimits {
    pub entity_per_minute: u32,
    pub entity_burst: u32,
    pub bootstrap_per_minute: u32,
    pub bootstrap_burst: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("the embedded API is not built yet")]
pub struct Error;

pub async fn serve(
    _listener: tokio::net::TcpListener,
    _config: ApiConfig,
    _shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    Err(Error)
}

pub async fn spawn(_config: ApiConfig) -> Result<RunningApi, Error> {
    Err(Error)
}

pub struct RunningApi;

impl RunningApi {
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub async fn shutdown(self) {}
}

pub fn new_secret() -> secrecy::SecretString {
    secrecy::SecretString::from(uuid::Uuid::new_v4().simple().to_string())
}
