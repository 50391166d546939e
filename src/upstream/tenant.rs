//! The tenant header: configured, or asked of the upstream once.

use reqwest::Method as HttpMethod;
use reqwest::header::HeaderValue;
use serde_json::Value;

use super::failure::Failure;
use super::{Call, Client};
use crate::catalog::repeat::{Reached, Transience};
use crate::error::{ErrorCode, ToolError};

impl Client {
    pub(super) async fn tenant(&self, call: &Call) -> Result<HeaderValue, Failure> {
        self.tenant
            .get_or_try_init(|| self.resolve_tenant(call))
            .await
            .cloned()
    }

    async fn resolve_tenant(&self, call: &Call) -> Result<HeaderValue, Failure> {
        let builder = self.bare_request(HttpMethod::GET, "/v1/auth/tenant", call);
        let (status, headers, body) = self.exchange(builder, call, None).await?;
        let explain = |detail: String| {
            let error = ToolError::new(
                ErrorCode::Unauthorized,
                format!("could not resolve the tenant ({detail}); set TOOLBRIDGE_TENANT_ID"),
            )
            .with_status(status.as_u16());
            Failure::new(error, Reached::No, Transience::Permanent)
        };
        if !status.is_success() {
            let failure = Failure::status(status, &headers, &body, false);
            if failure.transience == Transience::Now || refuses_credentials(status, &body) {
                return Err(failure);
            }
            return Err(explain(format!(
                "GET /v1/auth/tenant answered {}: {}",
                status.as_u16(),
                failure.error.message
            )));
        }
        let id = tenant_id_from(&body)
            .ok_or_else(|| explain("GET /v1/auth/tenant sent no tenant id".into()))?;
        tracing::info!(tenant = %id, "resolved the tenant");
        HeaderValue::from_str(&id)
            .map_err(|_| explain("the tenant id is not a valid header value".into()))
    }
}

/// Whether a refusal of `GET /v1/auth/tenant` is the auth layer refusing the
/// credentials (a wrong token), which no tenant setting fixes. The upstream
/// answers those in plain text (`unauthorized`); a JSON `401` comes from the
/// tenant handler itself (no organization, a dev-mode API that cannot
/// resolve tenants), which a configured tenant does fix.
fn refuses_credentials(status: reqwest::StatusCode, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    status == reqwest::StatusCode::UNAUTHORIZED
        && serde_json::from_slice::<Value>(body).map_or(true, |b| b.get("error").is_none())
        && !text.to_ascii_lowercase().contains("tenant")
}

/// The contract names no shape for `GET /v1/auth/tenant`: accept the likely
/// ones (`{"tenantId"}`, `{"tenant_id"}`, `{"id"}`, or a bare string).
fn tenant_id_from(body: &[u8]) -> Option<String> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return Some(String::from_utf8_lossy(body).trim().to_owned()).filter(|s| !s.is_empty());
        }
    };
    let id = match &value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(map) => ["tenantId", "tenant_id", "tenant", "id"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str)),
        _ => None,
    };
    id.map(str::to_owned).filter(|s| !s.is_empty())
}
