//! The eight entity operations, written once for every entity of the table.
//! Each route carries its [`EntitySpec`] as an extension, and each request
//! the epoch its client claims ([`ClaimedEpoch`], left by the gate). The
//! handler parses the request; then, in one store transaction, the store
//! checks the epoch and the spec decides.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, FromRequestParts, Path, Query, State};
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::clock::rfc3339_ms;
use super::entities::{EntitySpec, Payload, Precondition, Write};
use super::error::ApiError;
use super::gate::ClaimedEpoch;
use super::routes::AppState;
use super::store::{Position, Record, blocking};
use crate::catalog::size::{self, MAX_ITEM_BYTES};

/// Page size when the client gives none, or one that is not positive.
pub const DEFAULT_LIMIT: usize = 500;
/// The largest page served; larger requests are clamped.
pub const MAX_LIMIT: usize = 1000;
/// The largest request body read: twice the largest item, so an item the
/// sidecar would send is accepted however another client indents it.
pub const MAX_BODY_BYTES: usize = 2 * MAX_ITEM_BYTES;

/// A request body, or why it could not be read.
type Body = Result<Bytes, BytesRejection>;

type Spec = Extension<&'static EntitySpec>;
type Epoch = Extension<ClaimedEpoch>;

/// An item as the wire shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    uid: Uuid,
    version: i64,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
    payload: Payload,
}

impl From<Record> for Item {
    fn from(r: Record) -> Self {
        Self {
            uid: r.uid,
            version: r.version,
            updated_at: rfc3339_ms(r.updated_ms),
            deleted_at: r.deleted_ms.map(rfc3339_ms),
            payload: r.payload,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    items: Vec<Item>,
    /// Present whenever the page is non-empty; the listing ends on an empty page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Query parameters, kept as text so bad values fall back instead of failing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    include_deleted: Option<String>,
}

/// The `{uid}` path segment. Parsed leniently (upper case, braces,
/// `urn:uuid:`), like the real service; anything else is `400 invalid UID`.
pub struct ItemUid(Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ItemUid {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = || ApiError::BadRequest("invalid UID".into());
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        Uuid::parse_str(&raw).map(ItemUid).map_err(|_| invalid())
    }
}

/// `GET P?limit=&cursor=&includeDeleted=true`
pub async fn list(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let parsed = query.map_err(|_| ApiError::BadRequest("invalid query string".into()));
    let Query(params) = admit(&app, epoch, parsed).await?;
    let limit = page_limit(params.limit.as_deref());
    // An undecodable cursor restarts the listing, as on the real service.
    let after = params.cursor.as_deref().and_then(decode_cursor);
    let include_deleted = is_true(params.include_deleted.as_deref());
    let records = blocking(&app.store, move |s| {
        s.list(spec.key, after, limit, include_deleted, epoch.0)
    })
    .await?;
    let next_cursor = records.last().map(|r| {
        encode_cursor(Position {
            updated_ms: r.updated_ms,
            uid: r.uid,
        })
    });
    Ok(Json(Page {
        items: records.into_iter().map(Item::from).collect(),
        next_cursor,
    }))
}

/// `POST P`: creates, or replaces and undeletes the item the body's `uid` names.
pub async fn create(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    body: Body,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    let parsed = parse_body(&body)
        .and_then(|payload| Ok((uid_for_create(&payload)?, Write::Create(payload))));
    Ok((StatusCode::CREATED, write(&app, spec, epoch, parsed).await?))
}

/// `GET P/{uid}?includeDeleted=true`
pub async fn get(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Item>, ApiError> {
    let ItemUid(uid) = admit(&app, epoch, uid).await?;
    let include_deleted = query.is_ok_and(|Query(p)| is_true(p.include_deleted.as_deref()));
    let found = blocking(&app.store, move |s| s.get(spec.key, uid, epoch.0)).await?;
    let record = found.ok_or_else(|| spec.not_found())?;
    if !include_deleted {
        spec.live(Some(&record))?;
    }
    Ok(Json(record.into()))
}

/// `PUT P/{uid}` with an optional `If-Match`.
pub async fn update(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Item>, ApiError> {
    let parsed = uid.and_then(|ItemUid(uid)| {
        let payload = parse_body(&body)?;
        Ok((uid, Write::Replace(payload, precondition(&headers)?)))
    });
    write(&app, spec, epoch, parsed).await
}

/// `PATCH P/{uid}` with an optional `If-Match`.
pub async fn patch(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Item>, ApiError> {
    let parsed = uid.and_then(|ItemUid(uid)| {
        let fields = parse_body(&body)?;
        Ok((uid, Write::Merge(fields, precondition(&headers)?)))
    });
    write(&app, spec, epoch, parsed).await
}

/// `DELETE P/{uid}`: a soft delete answering the tombstone.
pub async fn delete(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
) -> Result<Json<Item>, ApiError> {
    let parsed = uid.map(|ItemUid(uid)| (uid, Write::Delete));
    write(&app, spec, epoch, parsed).await
}

/// `POST P/{uid}/archive` (any body is ignored).
pub async fn archive(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
) -> Result<Json<Item>, ApiError> {
    let parsed = uid.map(|ItemUid(uid)| (uid, Write::Archive));
    write(&app, spec, epoch, parsed).await
}

/// `POST P/{uid}/process` with `{action, metadata?}`. The body is read before
/// the item is looked up, and `metadata` is accepted and not stored, both
/// as on the real service.
pub async fn process(
    State(app): State<AppState>,
    Extension(spec): Spec,
    Extension(epoch): Epoch,
    uid: Result<ItemUid, ApiError>,
    body: Body,
) -> Result<Json<Item>, ApiError> {
    let parsed = uid.and_then(|ItemUid(uid)| {
        let request = parse_body(&body)?;
        Ok((uid, Write::Process(action_of(&request)?)))
    });
    write(&app, spec, epoch, parsed).await
}

/// Runs the parsed write on its item in one store transaction, which first
/// checks the claimed epoch.
async fn write(
    app: &AppState,
    spec: &'static EntitySpec,
    epoch: ClaimedEpoch,
    parsed: Result<(Uuid, Write), ApiError>,
) -> Result<Json<Item>, ApiError> {
    let (uid, write) = admit(app, epoch, parsed).await?;
    let record = blocking(&app.store, move |store| {
        store.write(spec.key, uid, epoch.0, |current, parents| {
            spec.decide(write, current, parents)
        })
    })
    .await?;
    Ok(Json(record.into()))
}

/// What the handler parsed, or why it refuses the request. A refusal waits
/// for the epoch check, so a stale client hears `409 epoch_mismatch` before
/// `400`, as it would if the epoch were checked in front of the handler (as
/// on the real service). Parsed requests take the epoch check to the store.
async fn admit<T>(
    app: &AppState,
    epoch: ClaimedEpoch,
    parsed: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if parsed.is_err() {
        blocking(&app.store, move |store| store.check_epoch(epoch.0)).await?;
    }
    parsed
}

/// The `action` of a process request; none is the empty action.
fn action_of(request: &Payload) -> Result<String, ApiError> {
    match request.get("action") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(action)) => Ok(action.clone()),
        Some(_) => Err(ApiError::BadRequest("action must be a string".into())),
    }
}

/// The body as read, or `413` when it was over [`MAX_BODY_BYTES`] (axum's own
/// refusal is plain text, not the contract's error body).
fn parse_body(body: &Body) -> Result<Payload, ApiError> {
    match body {
        Ok(body) => parse_object(body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::TooLarge(format!(
                "the request body is larger than {} bytes; the largest item is {}",
                size::grouped(MAX_BODY_BYTES),
                size::max_item_text()
            )))
        }
        Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
    }
}

/// The body as a JSON object. The real service crashes (`500`) on `null`
/// and misbehaves on other non-objects; we refuse them with `400`. An item
/// over the sidecar's limit is `413`, measured as the sidecar measures it.
fn parse_object(body: &[u8]) -> Result<Payload, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) if size::json_len(&map) > MAX_ITEM_BYTES => {
            Err(ApiError::TooLarge(format!(
                "the item is {} bytes as JSON; the largest item is {}",
                size::grouped(size::json_len(&map)),
                size::max_item_text()
            )))
        }
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        )),
        Err(_) => Err(ApiError::BadRequest("invalid JSON".into())),
    }
}

/// The uid a create writes: the body's, which must be a UUID (the real
/// service silently replaces a malformed one, hiding the client's bug), or a
/// fresh one when the body has none.
fn uid_for_create(payload: &Payload) -> Result<Uuid, ApiError> {
    match payload.get("uid") {
        None | Some(Value::Null) => Ok(Uuid::new_v4()),
        Some(Value::String(uid)) => Uuid::parse_str(uid).map_err(|_| {
            ApiError::BadRequest(format!("invalid uid in body: {uid:?} is not a UUID"))
        }),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid uid in body: {other} is not a UUID string"
        ))),
    }
}

/// `If-Match` as a bare or fully quoted version number. The real service
/// ignores a header it cannot parse and writes anyway; we refuse it with
/// `400`, since the client clearly meant a precondition.
fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(Precondition::None);
    };
    let invalid =
        || ApiError::BadRequest("invalid If-Match header: expected a version number".into());
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let bare = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    bare.parse()
        .map(Precondition::Version)
        .map_err(|_| invalid())
}

fn page_limit(raw: Option<&str>) -> usize {
    match raw.and_then(|r| r.trim().parse::<i64>().ok()) {
        Some(n) if n > 0 => usize::try_from(n).map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT)),
        _ => DEFAULT_LIMIT,
    }
}

fn is_true(raw: Option<&str>) -> bool {
    raw == Some("true")
}

/// Opaque to clients: base64url (no padding) of `"<updated ms>|<uid>"`.
fn encode_cursor(at: Position) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", at.updated_ms, at.uid))
}

fn decode_cursor(cursor: &str) -> Option<Position> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let (ms, uid) = std::str::from_utf8(&bytes).ok()?.split_once('|')?;
    Some(Position {
        updated_ms: ms.parse().ok()?,
        uid: Uuid::parse_str(uid).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn if_match(value: &str) -> Result<Precondition, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            IF_MATCH,
            HeaderValue::from_str(value).expect("header value"),
        );
        precondition(&headers)
    }

    #[test]
    fn if_match_accepts_bare_and_quoted_numbers_only() {
        assert_eq!(
            precondition(&HeaderMap::new()).ok(),
            Some(Precondition::None)
        );
        assert_eq!(if_match("3").ok(), Some(Precondition::Version(3)));
        assert_eq!(if_match("\"3\"").ok(), Some(Precondition::Version(3)));
        for bad in ["*", "\"3", "3\"", "W/\"3\"", "three"] {
            assert!(
                matches!(if_match(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_fall_back_and_clamp() {
        assert_eq!(page_limit(None), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("0")), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("-4")), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("ten")), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("10")), 10);
        assert_eq!(page_limit(Some("5000")), MAX_LIMIT);
    }

    #[test]
    fn cursors_round_trip_and_garbage_restarts() {
        let at = Position {
            updated_ms: 1_700_000_000_123,
            uid: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(at)), Some(at));
        assert_eq!(decode_cursor("not a cursor!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12|nope")), None);
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(parse_object(br#"{"a":1}"#).is_ok());
        assert!(
            matches!(parse_object(b"{bad"), Err(ApiError::BadRequest(m)) if m == "invalid JSON")
        );
        assert!(matches!(parse_object(b""), Err(ApiError::BadRequest(m)) if m == "invalid JSON"));
        for not_object in [&b"null"[..], b"[]", b"3", b"\"x\""] {
            assert!(
                matches!(parse_object(not_object), Err(ApiError::BadRequest(m)) if m.contains("JSON object"))
            );
        }
    }

    #[test]
    fn create_uid_must_be_a_uuid_when_given() {
        let body = |v: Value| v.as_object().cloned().unwrap_or_default();
        let uid = Uuid::new_v4();
        assert_eq!(
            uid_for_create(&body(serde_json::json!({"uid": uid.to_string()}))).ok(),
            Some(uid)
        );
        assert!(uid_for_create(&body(serde_json::json!({}))).is_ok());
        assert!(uid_for_create(&body(serde_json::json!({"uid": null}))).is_ok());
        assert!(uid_for_create(&body(serde_json::json!({"uid": "abc"}))).is_err());
        assert!(uid_for_create(&body(serde_json::json!({"uid": 7}))).is_err());
    }
}
