//! What the two SQLite files (the embedded API's database and the local
//! replica) need alike.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

/// Switches the file to WAL (persistent in the file) and returns the journal
/// mode it is in. Switching a new file takes an exclusive lock, and when two
/// openers escalate at once SQLite fails one at once, without calling the
/// busy handler (its deadlock rule): that is retried for up to `wait`, as
/// long as a busy wait would last.
pub fn enable_wal(conn: &Connection, wait: Duration) -> rusqlite::Result<String> {
    let deadline = Instant::now() + wait;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}
