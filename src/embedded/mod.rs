//! The embedded ToolBridge-compatible API (axum over SQLite). Placeholder until
//! the implementation lands.
