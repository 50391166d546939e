//! The router, its shared state, and the non-entity routes.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::clock::rfc3339;
use super::entities::{ENTITIES, EntitySpec};
use super::error::{ApiError, SYNC_EPOCH, correlate};
use super::gate;
use super::items::{self, MAX_LIMIT};
use super::rate_limit::TokenBucket;
use super::sessions::{Session, Sessions};
use super::store::{Store, blocking};
use super::{ApiConfig, Error, RateLimits, TENANT_ID, USER_ID};

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub(super) store: Arc<Store>,
    pub(super) sessions: Sessions,
    pub(super) secret: SecretString,
    pub(super) limits: RateLimits,
    pub(super) entity_bucket: TokenBucket,
    pub(super) bootstrap_bucket: TokenBucket,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Opens (creating and migrating) the store `config` names.
    pub async fn open(config: ApiConfig) -> Result<Self, Error> {
        let ApiConfig {
            db_path,
            secret,
            limits,
        } = config;
        let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
            .await
            .map_err(Error::Startup)??;
        Ok(Self(Arc::new(Shared {
            store: Arc::new(store),
            sessions: Sessions::default(),
            secret,
            limits,
            entity_bucket: TokenBucket::new(limits.entity_per_minute, limits.entity_burst),
            bootstrap_bucket: TokenBucket::new(limits.bootstrap_per_minute, limits.bootstrap_burst),
        })))
    }
}

/// The whole API. Gates wrap each route's handlers, not the route, so an
/// unknown path is a plain `404` and a known path with a wrong method a bare
/// `405`, before any credentials are checked.
pub fn router(state: AppState) -> Router {
    let bootstrap =
        |route: Route| route.route_layer(from_fn_with_state(state.clone(), gate::bootstrap));
    let entity = |route: Route| route.route_layer(from_fn_with_state(state.clone(), gate::entity));
    let wipe_gate = from_fn_with_state(state.clone(), gate::wipe);
    let base = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/sync/info", get(info))
        .route("/v1/auth/tenant", bootstrap(get(tenant)))
        .route("/v1/sync/sessions", bootstrap(post(begin_session)))
        .route(
            "/v1/sync/sessions/{id}",
            bootstrap(get(get_session).delete(end_session)),
        )
        .route("/v1/sync/wipe", post(wipe).route_layer(wipe_gate));
    ENTITIES
        .iter()
        .fold(base, |router, spec| {
            router.merge(entity_routes(spec, &entity))
        })
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .layer(from_fn(correlate))
        // Bodies are read up to twice the largest item (room for another
        // client's indentation); the item itself is measured once parsed.
        .layer(axum::extract::DefaultBodyLimit::max(items::MAX_BODY_BYTES))
        .with_state(state)
}

type Route = MethodRouter<AppState>;

/// The eight routes of one entity, all served by the generic handlers.
fn entity_routes(spec: &'static EntitySpec, gated: &impl Fn(Route) -> Route) -> Router<AppState> {
    let item = format!("{}/{{uid}}", spec.path);
    Router::new()
        .route(spec.path, gated(get(items::list).post(items::create)))
        .route(
            &item,
            gated(
                get(items::get)
                    .put(items::update)
                    .patch(items::patch)
                    .delete(items::delete),
            ),
        )
        .route(&format!("{item}/archive"), gated(post(items::archive)))
        .route(&format!("{item}/process"), gated(post(items::process)))
        .layer(Extension(spec))
}

/// `GET /v1/sync/info`: the capability document (unauthenticated).
async fn info(State(app): State<AppState>) -> Json<Value> {
    let entities: Map<String, Value> = ENTITIES
        .iter()
        .map(|e| {
            (
                e.key.to_owned(),
                json!({ "maxLimit": MAX_LIMIT, "push": true, "pull": true }),
            )
        })
        .collect();
    Json(json!({
        "apiVersion": "1.1",
        "serverTime": rfc3339(OffsetDateTime::now_utc()),
        "entities": entities,
        "locking": { "supported": true, "mode": "session" },
        "minClientVersion": "0.1.0",
        "rateLimit": {
            "windowSeconds": 60,
            "maxRequests": app.limits.entity_per_minute,
            "burst": app.limits.entity_burst,
        },
        "hints": { "recommendedBatch": 500, "backoffMsOn429": 1500 },
    }))
}

/// `GET /v1/auth/tenant` → `200 {"tenantId":"local"}`: the embedded API has
/// exactly one tenant, [`TENANT_ID`].
async fn tenant() -> Json<Value> {
    Json(json!({ "tenantId": TENANT_ID }))
}

/// `POST /v1/sync/sessions` → `201` session, with `X-Sync-Epoch`.
async fn begin_session(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let epoch = blocking(&app.store, |store| store.epoch()).await?;
    let session = app.sessions.begin(USER_ID, epoch);
    Ok((
        StatusCode::CREATED,
        [(SYNC_EPOCH, HeaderValue::from(epoch))],
        Json(session),
    ))
}

/// `GET /v1/sync/sessions/{id}` → `200` session, or a plain `404`.
async fn get_session(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    app.sessions.get(&id).map(Json).ok_or(SESSION_NOT_FOUND)
}

/// `DELETE /v1/sync/sessions/{id}` → `204`, or a plain `404` when there was
/// no live session, as on the real service.
async fn end_session(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.sessions.end(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(SESSION_NOT_FOUND)
    }
}

const SESSION_NOT_FOUND: ApiError =
    ApiError::Plain(StatusCode::NOT_FOUND, "session not found or expired");

/// `POST /v1/sync/wipe` → `200 {"epoch":N}` with `X-Sync-Epoch: N`.
///
/// Raises the tenant's epoch and ends every session of this process. Unlike
/// the real service it deletes no data and needs no `{"confirm":"WIPE"}`
/// body: here it exists to exercise re-sessioning, and a user's local notes
/// must not vanish in a test. Sessions held by other processes sharing the
/// database are not visible here; their clients meet `409 epoch_mismatch` on
/// their next entity request, because the epoch check reads the database.
async fn wipe(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let epoch = blocking(&app.store, |store| store.bump_epoch()).await?;
    app.sessions.end_all();
    tracing::info!(epoch, "embedded API wiped: epoch raised, sessions ended");
    Ok((
        [(SYNC_EPOCH, HeaderValue::from(epoch))],
        Json(json!({ "epoch": epoch })),
    ))
}
