//! What the upstream contract names, spelled once for both of its sides: the
//! client ([`crate::upstream`]) and the embedded stand-in
//! ([`crate::embedded`]). Today: the header names.
//!
//! `HeaderMap` lookups ignore case, so the lower-case spelling here matches
//! `X-TB-Tenant-ID` and `X-Ratelimit-Remaining` alike.

use reqwest::header::HeaderName;

/// The tenant every entity request names.
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tb-tenant-id");
/// The sync session an entity request belongs to.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("x-sync-session");
/// The data epoch a request claims, and a session or `epoch_mismatch` reply
/// reports.
pub const EPOCH_HEADER: HeaderName = HeaderName::from_static("x-sync-epoch");
/// One id per tool call, sent on each of its requests and echoed on replies.
pub const CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");
/// The subject a dev-mode upstream accepts instead of a token.
pub const DEBUG_SUB_HEADER: HeaderName = HeaderName::from_static("x-debug-sub");
/// Tokens left in the upstream's bucket.
pub const RATE_LIMIT_REMAINING_HEADER: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining");
/// When the upstream's bucket refills (Unix seconds).
pub const RATE_LIMIT_RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The `code` of the embedded API's error body when its database file is
/// damaged: the client shows the message and never repeats the request.
pub const DATABASE_DAMAGED_CODE: &str = "database_damaged";
