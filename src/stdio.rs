//! The MCP channel on stdin/stdout, guarded so that nothing else can write to
//! stdout: not a library's stray print, not a panic hook, not the log
//! writer's flush warning.

use std::io;
use std::pin::Pin;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Takes stdin and stdout for MCP, then points file descriptor 1 at stderr so
/// any later write to "stdout" lands on stderr instead of the channel.
#[cfg(unix)]
pub fn claim() -> io::Result<(Reader, Writer)> {
    use std::os::fd::AsFd;

    let channel = io::stdout().as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on two descriptors this process holds open; it replaces
    // fd 1 atomically and touches no Rust-owned handle (`channel` is a dup).
    #[allow(unsafe_code)]
    let redirected = unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
    if redirected < 0 {
        return Err(io::Error::last_os_error());
    }
    let reader: Reader = pipe_reader().unwrap_or_else(|| Box::pin(tokio::io::stdin()));
    let writer: Writer = match pipe_writer(&channel) {
        Some(w) => w,
        None => Box::pin(tokio::fs::File::from_std(std::fs::File::from(channel))),
    };
    Ok((reader, writer))
}

#[cfg(not(unix))]
pub fn claim() -> io::Result<(Reader, Writer)> {
    Ok((Box::pin(tokio::io::stdin()), Box::pin(tokio::io::stdout())))
}

/// When the channel is a FIFO (how most clients launch servers), reopen it
/// through /proc as a non-blocking pipe driven by the IO reactor: no hand-off
/// to the blocking pool per message, and the shared descriptor keeps its flags.
#[cfg(target_os = "linux")]
fn pipe_reader() -> Option<Reader> {
    let rx = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver("/proc/self/fd/0")
        .ok()?;
    Some(Box::pin(rx))
}

#[cfg(target_os = "linux")]
fn pipe_writer(channel: &std::os::fd::OwnedFd) -> Option<Writer> {
    use std::os::fd::AsRawFd;
    let tx = tokio::net::unix::pipe::OpenOptions::new()
        .open_sender(format!("/proc/self/fd/{}", channel.as_raw_fd()))
        .ok()?;
    Some(Box::pin(tx))
}

#[cfg(all(unix, not(target_os = "linux")))]
fn pipe_reader() -> Option<Reader> {
    None
}

#[cfg(all(unix, not(target_os = "linux")))]
fn pipe_writer(_: &std::os::fd::OwnedFd) -> Option<Writer> {
    None
}

/// The longest line looked at before the handshake; rmcp itself refuses lines
/// over 16 MiB, so a longer one is handed on as it is.
const MAX_EARLY_LINE: u64 = 16 * 1024 * 1024;

/// Drops notifications and stray responses that arrive before the client's
/// first request. rmcp ends the session when the first message is not a
/// request (`initialize`, or a 2026-07-28 request), and a client that sends
/// `notifications/cancelled` or a late response first would kill the server.
/// Everything from the first request on, and any line that is not JSON, is
/// handed to rmcp untouched. `None`: stdin closed before any request (a host
/// that launches servers twice closes the spare at once).
pub async fn skip_to_first_request(reader: Reader) -> io::Result<Option<Reader>> {
    let mut buffered = BufReader::new(reader);
    loop {
        let mut line = Vec::new();
        let read = (&mut buffered)
            .take(MAX_EARLY_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        let message: Option<serde_json::Value> = serde_json::from_slice(&line).ok();
        let is_request = message
            .as_ref()
            .is_none_or(|m| m.get("method").is_some() && m.get("id").is_some());
        if is_request {
            return Ok(Some(Box::pin(std::io::Cursor::new(line).chain(buffered))));
        }
        tracing::debug!(
            bytes = line.len(),
            "dropped a message that arrived before the first request"
        );
    }
}
