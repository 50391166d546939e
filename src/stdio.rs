//! The MCP channel on stdin/stdout, guarded so that nothing else can write to
//! stdout: not a library's stray print, not a panic hook. [`StdioTransport`]
//! frames it for rmcp: every line the client sends gets the answer JSON-RPC
//! prescribes.

mod judge;
mod oversized;
mod transport;

use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub use transport::StdioTransport;

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
