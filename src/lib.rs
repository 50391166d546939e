//! toolbridge-mcp: the ToolBridge REST API as MCP tools over stdio, with a
//! local replica that answers reads and search.
//!
//! The layers, outermost first:
//! - [`config`]: flags and environment into one validated [`config::Config`];
//!   [`command_line`] parses them, refusing bad ones in one line.
//! - [`mcp`]: the rmcp server handler. It knows tools and results, not HTTP;
//!   `prompts` are the conversations it offers to start.
//! - [`service`]: runs one tool call: catalog validation, then the replica
//!   or the upstream.
//! - [`catalog`]: the entity table × the eight operations → tool definitions,
//!   schemas and request plans. It knows nothing of transport.
//! - [`upstream`]: the one HTTP client: sessions, epochs, auth, retries,
//!   deadlines and error normalization.
//! - [`replica`]: the local replica of the user's items: it answers reads
//!   and search, follows the upstream's change feed, and serves stale reads
//!   (marked) when the upstream cannot be reached.
//! - [`embedded`]: a ToolBridge-compatible API on SQLite, served in-process on
//!   loopback when no upstream URL is configured.
//! - [`contract`]: what the upstream contract names (its headers), spelled
//!   once for the client and the embedded API.
//! - [`notices`]: what a person should know while it happens (the circuit,
//!   rate limits, a renewed session, stale reads, a rebuilt replica), which
//!   [`mcp`] forwards to a client that asked for log messages.
//! - [`subscriptions`]: live resource updates for subscribed clients, in
//!   both protocol eras, from the replica's changes.
//! - [`logging`]: JSON lines to a rotating file, never to stdout; [`stdio`]:
//!   the MCP channel, guarded so nothing else reaches stdout, and framed
//!   here so every message gets its JSON-RPC answer.
//! - [`fsmode`]: data and logs are owner-only (umask, 0700 directories, 0600
//!   files); [`sqlite`]: what the embedded API's database and the replica's
//!   file need alike (switching a new file to WAL when others open it too).
//! - [`commands`]: the commands `main` dispatches to, one file each;
//!   [`stats`] reads only the log files.

// Modules tests and benches reach are public; the rest are the crate's own, so
// the compiler reports what nothing uses.
pub mod catalog;
pub mod command_line;
pub mod commands;
pub mod config;
mod contract;
pub mod embedded;
mod error;
mod fsmode;
mod logging;
pub mod mcp;
pub mod notices;
mod prompts;
pub mod replica;
pub mod service;
mod sqlite;
mod stats;
mod stdio;
mod subscriptions;
pub mod upstream;
