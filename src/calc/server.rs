//! The calculator server: a thin loop around [`proto::Session`] on the shared accept loop.
//!
//! Each connection gets its own task and its own [`proto::Session`], so clients never see
//! each other's operands. The loop for one connection:
//!
//! ```text
//!   read (idle timeout) ──▶ line codec (LF, max 1 KiB + CR) ──▶ Session::handle_line
//!        ▲                                                           │
//!        └──── write_all(all replies for this read, at once) ◀──────┘
//! ```
//!
//! Replies to every line found in one read are encoded into one buffer and written with one
//! `write_all` (a client that pipelines 1000 lines costs a handful of system calls, not 1000).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::proto::{self, Reason, Reply, Session};
use crate::frame::FrameError;
use crate::frame::delimited::DelimitedCodec;
use crate::net::blocking::Readable;
use crate::net::host::{self, Bound, Conn, LINGER, Stream, StreamService};
use crate::net::serve::ServeSummary;
use crate::net::{Metered, NetError, ServeOptions, fmt_duration, within};

/// Default TCP port (the course's).
pub const DEFAULT_PORT: u16 = 51216;
/// Default idle timeout: a client silent this long gets `FALLO idle timeout` and is closed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4096;
/// Replies are written once this many bytes are waiting, even in the middle of a read's
/// lines, so a client pipelining big results cannot make the server buffer without bound.
const FLUSH_AT: usize = 16 * 1024;

/// Everything a calculator server needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy (allow-list, connection limit, grace, `--trace`).
    pub serve: ServeOptions,
    /// Idle timeout: the longest wait for the client's next bytes (and for a write).
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Runs a calculator server on a bound stream socket (TCP or Unix) until `shutdown`.
pub async fn run(
    bound: impl Into<Bound>,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    let opts = cfg.serve.clone();
    host::serve_stream(bound.into(), opts, shutdown, Arc::new(Calc { cfg })).await
}

/// The calculator service: one [`Session`] per connection.
struct Calc {
    cfg: Config,
}

impl StreamService for Calc {
    type Error = ConnError;

    fn name(&self) -> &str {
        "calc"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        lines(&mut conn.io, &self.cfg).await
    }
}

/// Why a calculator connection ended early (the host logs it in the close line; the host
/// also closes gracefully, so a goodbye line is not lost to a reset).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading from the client failed.
    #[error("reading: {0}")]
    Read(io::Error),
    /// Writing to the client failed or stalled.
    #[error("writing: {0}")]
    Write(io::Error),
    /// The line codec failed for another reason than length.
    #[error("reading a line: {0}")]
    Line(FrameError),
    /// The client said nothing for the idle timeout (it was told so with a `FALLO`).
    #[error("idle for {}", fmt_duration(*.0))]
    Idle(Duration),
}

/// Why a connection ended early, for the close log line.
type Outcome = Result<(), ConnError>;

async fn lines<S>(s: &mut Metered<S>, cfg: &Config) -> Outcome
where
    S: AsyncRead + AsyncWrite + Readable + Unpin + Send + Sync,
{
    // Wait for the first byte before allocating anything: idle clients cost no buffer.
    match within(cfg.timeout, s.wait_readable()).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return idle(s, cfg).await,
        Err(e) => return Err(ConnError::Read(e)),
    }
    // The codec hands over lines of up to MAX_LINE bytes plus a CR; longer ones become one
    // TooLarge error each (the codec then skips to the end of that line by itself).
    let mut codec = DelimitedCodec::new(b"\n".to_vec(), proto::MAX_LINE + 1);
    let mut session = Session::new();
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::new();
    loop {
        input.reserve(READ_CHUNK);
        let n = match within(cfg.timeout, s.read_buf(&mut input)).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                send(s, &output, cfg).await?;
                return idle(s, cfg).await;
            }
            Err(e) => return Err(ConnError::Read(e)),
        };
        let eof = n == 0;
        let mut bye = false;
        loop {
            let decoded = if eof {
                codec.decode_eof(&mut input)
            } else {
                codec.decode(&mut input)
            };
            let reply = match decoded {
                Ok(Some(frame)) => session.handle_line(&frame.payload),
                Ok(None) => break,
                Err(FrameError::TooLarge { .. }) => Reply::Fallo(Reason::LineTooLong),
                // The client half-closed after a last line with no `\n`: answer it anyway,
                // as a line (its reply can still reach a client that only shut down writing).
                Err(FrameError::PartialFrame { .. }) => session.handle_line(&input.split()),
                Err(e) => return Err(ConnError::Line(e)),
            };
            reply.encode(&mut output);
            if reply.closes() {
                bye = true;
                break;
            }
            if output.len() >= FLUSH_AT {
                send(s, &output, cfg).await?;
                output.clear();
            }
        }
        send(s, &output, cfg).await?;
        output.clear();
        if bye {
            return Ok(());
        }
        if eof {
            return Ok(());
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8], cfg: &Config) -> Outcome {
    if bytes.is_empty() {
        return Ok(());
    }
    within(cfg.timeout, s.write_all(bytes))
        .await
        .map_err(ConnError::Write)
}

/// The client said nothing for the idle timeout: tell it why, then close.
async fn idle<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, cfg: &Config) -> Outcome {
    let mut line = BytesMut::new();
    Reply::Fallo(Reason::IdleTimeout).encode(&mut line);
    // A client that stopped reading must not hold us for another full timeout.
    let _ = within(LINGER, s.write_all(&line)).await;
    Err(ConnError::Idle(cfg.timeout))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    async fn start(timeout: Duration) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let cfg = Config {
            timeout,
            ..Config::default()
        };
        tokio::spawn(run(listener, cfg, shutdown.clone()));
        (addr, shutdown)
    }

    async fn exchange(addr: std::net::SocketAddr, input: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(input).await.unwrap();
        c.shutdown().await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn pipelined_lines_get_one_reply_each_in_order() {
        let (addr, _stop) = start(Duration::from_secs(5)).await;
        let out = exchange(addr, b"3\n4\n+\r\n\n1\n0\n/\n2").await;
        // The last line has no newline: it is answered at the half-close.
        assert_eq!(
            out,
            "OK\nOK\nOK 7\nFALLO empty line\nOK\nOK\nFALLO division by zero\nOK\n"
        );
    }

    #[tokio::test]
    async fn long_line_is_refused_and_the_connection_goes_on() {
        let (addr, _stop) = start(Duration::from_secs(5)).await;
        let mut input = b"1\n".to_vec();
        input.extend(std::iter::repeat_n(b'9', 5000));
        input.extend_from_slice(b"\n2\n+\n");
        let out = exchange(addr, &input).await;
        assert_eq!(out, "OK\nFALLO line too long\nOK\nOK 3\n");
    }

    #[tokio::test]
    async fn quit_says_bye_and_ignores_the_rest() {
        let (addr, _stop) = start(Duration::from_secs(5)).await;
        let out = exchange(addr, b"1\nQUIT\n2\n3\n+\n").await;
        assert_eq!(out, "OK\nOK bye\n");
    }

    #[tokio::test]
    async fn idle_client_is_told_and_closed() {
        let (addr, _stop) = start(Duration::from_millis(300)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"5\n").await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"OK\nFALLO idle timeout\n");
    }
}
