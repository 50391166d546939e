//! The MCP channel as an rmcp transport whose framing is ours: every line the
//! client sends passes [`judge`] first, so each one that is owed an answer
//! gets it (see `judge.rs`), a line over [`MAX_MESSAGE_BYTES`] is walked past
//! without being kept and still answered, and rmcp sees only messages it can
//! act on. Replies written here and rmcp's own go through one [`Output`],
//! whole lines at a time.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::judge::{self, MAX_MESSAGE_BYTES, Verdict};
use super::oversized::{Found, Scan};
use super::{Reader, Writer};

/// How long closing waits for queued lines to reach a client that may have
/// stopped reading.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// Reads from stdin in pieces of a pipe's default capacity.
const READ_CHUNK: usize = 64 * 1024;

pub struct StdioTransport {
    input: LineReader,
    output: Arc<Output>,
    /// A reply owed to the client, kept here until it is queued: rmcp polls
    /// `receive` inside a `select!` and drops it at any await.
    owed: Option<Vec<u8>>,
    /// The first request, read before rmcp starts.
    first: Option<ClientJsonRpcMessage>,
}

impl StdioTransport {
    pub fn new(reader: Reader, writer: Writer) -> Self {
        Self {
            input: LineReader::new(reader),
            output: Arc::new(Output::new(writer)),
            owed: None,
            first: None,
        }
    }

    /// Reads up to the client's first request, for rmcp to start the session
    /// with. rmcp ends the session when its first message is not a request
    /// (`initialize`, or a 2026-07-28 request), and a client that sends
    /// `notifications/cancelled` or a late response first would kill the
    /// server: those are dropped. `false`: stdin closed before any request (a
    /// host that launches servers twice closes the spare at once).
    pub async fn first_request(&mut self) -> io::Result<bool> {
        loop {
            match self.next_message().await? {
                None => return Ok(false),
                Some(request @ JsonRpcMessage::Request(_)) => {
                    self.first = Some(request);
                    return Ok(true);
                }
                Some(_) => {
                    tracing::debug!("dropped a message that arrived before the first request");
                }
            }
        }
    }

    /// The next message for rmcp, answering on the way every line that is
    /// owed an answer rmcp would not give. `None` at the end of stdin.
    async fn next_message(&mut self) -> io::Result<Option<ClientJsonRpcMessage>> {
        loop {
            if self.owed.is_some() {
                self.output.send(&mut self.owed).await?;
            }
            let verdict = match self.input.next_line().await? {
                Line::End => return Ok(None),
                Line::Whole(line) => judge::judge(line),
                Line::Oversized(found) => judge::oversized(&found),
            };
            match verdict {
                Verdict::Deliver(message) => return Ok(Some(message)),
                Verdict::Reply(reply) => {
                    tracing::debug!("answered a malformed message");
                    self.owed = Some(reply);
                }
                Verdict::Drop(what) => tracing::debug!(what, "dropped a line"),
            }
        }
    }
}

impl rmcp::transport::Transport<RoleServer> for StdioTransport {
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let output = self.output.clone();
        async move {
            let mut line = serde_json::to_vec(&item)?;
            line.push(b'\n');
            output.send(&mut Some(line)).await
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        match self.next_message().await {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "cannot read stdin");
                None
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let output = self.output.clone();
        let owed = &mut self.owed;
        let flushed = tokio::time::timeout(CLOSE_FLUSH, async move {
            let mut state = output.state.lock().await;
            if let Some(line) = owed.take() {
                state.queue(line);
            }
            let flushed = state.flush().await;
            // Closing stdout tells the client the session is over.
            state.writer = None;
            flushed
        })
        .await;
        match flushed {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading stdout",
            )),
        }
    }
}

/// One line read from stdin.
enum Line<'a> {
    /// A whole line, without its newline.
    Whole(&'a [u8]),
    /// A line over [`MAX_MESSAGE_BYTES`], consumed to its newline.
    Oversized(Found),
    End,
}

/// Reads stdin line by line within [`MAX_MESSAGE_BYTES`]. Cancel-safe: a line
/// read in part stays in `line` (or `oversized`) for the next call.
struct LineReader {
    read: BufReader<Reader>,
    line: Vec<u8>,
    /// `line` holds a line already handed out: cleared before reading on.
    handed_out: bool,
    /// Set while a line over the limit is being walked past.
    oversized: Option<Scan>,
}

impl LineReader {
    fn new(reader: Reader) -> Self {
        Self {
            read: BufReader::with_capacity(READ_CHUNK, reader),
            line: Vec::new(),
            handed_out: false,
            oversized: None,
        }
    }

    async fn next_line(&mut self) -> io::Result<Line<'_>> {
        if self.handed_out {
            self.line.clear();
            self.handed_out = false;
        }
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                // A trailing line without its newline is not a message.
                return Ok(Line::End);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let content = &available[..newline.unwrap_or(available.len())];
            let consumed = newline.map_or(available.len(), |at| at + 1);
            if let Some(scan) = &mut self.oversized {
                scan.feed(content);
            } else if self.line.len() + content.len() > MAX_MESSAGE_BYTES {
                // Walk what was kept and the rest as it comes; keep nothing.
                let mut scan = Scan::default();
                scan.feed(&self.line);
                scan.feed(content);
                self.line = Vec::new();
                self.oversized = Some(scan);
            } else {
                self.line.extend_from_slice(content);
            }
            self.read.consume(consumed);
            if newline.is_some() {
                if let Some(scan) = self.oversized.take() {
                    return Ok(Line::Oversized(scan.finish()));
                }
                self.handed_out = true;
                return Ok(Line::Whole(&self.line));
            }
        }
    }
}

/// The one writer to stdout: whole lines, in the order they are queued.
/// Cancel-safe: a queued line stays queued until written, and what a
/// dropped write left is written by the next one.
struct Output {
    state: tokio::sync::Mutex<OutputState>,
}

struct OutputState {
    /// `None` once closed.
    writer: Option<Writer>,
    /// Queued bytes (whole lines), written up to `written`.
    pending: Vec<u8>,
    written: usize,
}

impl Output {
    fn new(writer: Writer) -> Self {
        Self {
            state: tokio::sync::Mutex::new(OutputState {
                writer: Some(writer),
                pending: Vec::new(),
                written: 0,
            }),
        }
    }

    /// Queues `line` (taking it only once the queue is held) and writes out
    /// everything queued.
    async fn send(&self, line: &mut Option<Vec<u8>>) -> io::Result<()> {
        let mut state = self.state.lock().await;
        if let Some(line) = line.take() {
            state.queue(line);
        }
        state.flush().await
    }
}

impl OutputState {
    fn queue(&mut self, line: Vec<u8>) {
        if self.pending.is_empty() {
            self.pending = line;
        } else {
            self.pending.extend_from_slice(&line);
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "stdout is closed",
            ));
        };
        while self.written < self.pending.len() {
            let n = writer.write(&self.pending[self.written..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        // Not `clear`: a large reply's buffer is not kept for the session.
        self.pending = Vec::new();
        self.written = 0;
        writer.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: Vec<u8>) -> LineReader {
        LineReader::new(Box::pin(std::io::Cursor::new(bytes)))
    }

    /// Lines come out whole, a line over the limit comes out as what was read
    /// of it (its length and id), and the line after it is whole again.
    #[tokio::test]
    async fn a_line_over_the_limit_is_walked_past_and_reading_goes_on() {
        let mut input = b"{\"a\":1}\n{\"id\":9,\"pad\":\"".to_vec();
        input.resize(input.len() + MAX_MESSAGE_BYTES, b'x');
        input.extend_from_slice(b"\"}\n{\"b\":2}\r\nno newline");
        let long = input.len() - b"{\"a\":1}\n".len() - b"\n{\"b\":2}\r\nno newline".len();
        let mut lines = reader(input);
        assert!(matches!(
            lines.next_line().await,
            Ok(Line::Whole(b"{\"a\":1}"))
        ));
        match lines.next_line().await {
            Ok(Line::Oversized(found)) => {
                assert_eq!(found.bytes, long as u64);
                assert_eq!(found.id, Some(serde_json::json!(9)));
            }
            _ => panic!("expected the oversized line"),
        }
        assert!(
            lines.line.capacity() < MAX_MESSAGE_BYTES,
            "the long line was kept"
        );
        assert!(matches!(
            lines.next_line().await,
            Ok(Line::Whole(b"{\"b\":2}\r"))
        ));
        assert!(matches!(lines.next_line().await, Ok(Line::End)));
    }

    /// A line of exactly the limit is still read whole.
    #[tokio::test]
    async fn a_line_at_the_limit_is_whole() {
        let mut input = vec![b' '; MAX_MESSAGE_BYTES];
        input.push(b'\n');
        let mut lines = reader(input);
        match lines.next_line().await {
            Ok(Line::Whole(line)) => assert_eq!(line.len(), MAX_MESSAGE_BYTES),
            _ => panic!("expected a whole line"),
        }
    }
}
