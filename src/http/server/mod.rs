//! The static file server: a thin per-connection loop around [`super::h1`], on the shared
//! accept loop ([`net::serve`](crate::net::serve)).
//!
//! - [`respond`]: the answer to a parsed request (file, listing, redirect, error page), built
//!   without writing anything.
//! - [`files`]: target → path, and every path-safety decision (403 vs 404).
//! - [`range`]: ETag, 304, 206 and 416, as pure functions.
//! - [`encoding`]: `--precompressed`, which stored variant (`.br`, `.zst`, `.gz`) a request's
//!   `Accept-Encoding` asks for, as a pure function.
//! - [`listing`], [`error_page`]: the HTML we generate.
//! - [`log`]: the access log: lines formatted into per-worker buffers, written in batches by
//!   one writer thread.
//! - [`tls`]: HTTPS: the certificate (PEM files or self-signed) and the rustls configuration.
//!
//! One connection:
//!
//! ```text
//!   wait for a first byte (--header-timeout; no buffer until then)
//!        │
//!        ▼
//!   ┌─▶ parse every complete head already buffered ── 400/414/431 ──▶ error page, close
//!   │    │ partial: read more (the whole head within --header-timeout of its first byte;
//!   │    │          an empty buffer waits --keepalive-timeout, then closes quietly)
//!   │    ▼
//!   │   skip the request body (Content-Length or chunked, ≤ 1 MiB, else 413 and close;
//!   │    │  within --body-timeout and at --body-min-rate, else 408 and close)
//!   │    ▼
//!   │   answer: head + body (files streamed in 64 KiB reads), log one line
//!   │    │
//!   └────┴── keep-alive and fewer than --max-requests? else close
//! ```
//!
//! Pipelined requests are answered in order simply because one connection handles one
//! request at a time: the next head waits in the buffer until the previous response is sent.
//!
//! Over TLS (`--tls-cert`/`--tls-key` or `--tls-self-signed`) the same loop runs on a
//! [`tokio_rustls`] stream once the handshake is done (within `--header-timeout` of the first
//! byte). A first byte that cannot begin a TLS record but could begin a request line is a
//! plain-HTTP client on the HTTPS port: it gets a `400` page saying so, in plain HTTP. File
//! bodies cannot leave by `sendfile(2)` (the kernel would send them unencrypted): they are
//! read 64 KiB at a time into the response buffer and written through TLS, so memory stays
//! flat there too.

pub mod cache;
pub mod encoding;
pub mod error_page;
pub mod files;
pub mod listing;
pub mod log;
pub mod range;
pub mod respond;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, REFERER, USER_AGENT};
use http::{HeaderValue, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use self::respond::{Body, Reply, error_reply, respond};
use super::h1::{self, BodyFramer, Framing, Request, Status, Version};
use crate::net::blocking::Readable;
use crate::net::host::{self, Bound, Conn, LINGER, Stream, StreamService};
use crate::net::serve::ServeSummary;
use crate::net::{Metered, NetError, Peer, SendFile, ServeOptions, clock, fmt_duration, within};

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default time allowed for a whole request head, from its first byte.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for a whole request body, from the end of its head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default least average rate of a request body (bytes a second) once its first
/// `--header-timeout` is spent.
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
/// Default time an idle keep-alive connection is kept open.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default most requests on one connection.
pub const DEFAULT_MAX_REQUESTS: usize = 1000;
/// Largest request body we read (and throw away); a longer one gets 413 and a close.
pub const MAX_BODY: u64 = 1 << 20;
/// Largest `--not-found` page: it is read once at start-up and kept in memory.
pub const MAX_NOT_FOUND_FILE: u64 = 1 << 20;
/// Bytes read from a file per write to the socket: memory stays flat whatever the file size.
const FILE_CHUNK: usize = 64 * 1024;
/// A connection keeps its response buffer between requests up to this capacity.
const OUT_KEEP: usize = 16 * 1024;
/// Most bytes asked of one `sendfile` call (it sends what fits in the socket buffer anyway).
const SENDFILE_MAX: usize = 16 << 20;
/// Bytes asked of the kernel per socket read.
const READ_CHUNK: usize = 4096;
/// Default longest wait for one write to the client (a client that stops reading is dropped).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the access log's writer gets to write the last lines at shutdown.
const LOG_FLUSH: Duration = Duration::from_secs(2);

/// Everything the file server needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accept-loop policy (allow-list, connection limit, grace).
    pub serve: ServeOptions,
    /// The served directory, canonicalized.
    pub root: PathBuf,
    /// `--hidden`: serve and list dotfiles.
    pub hidden: bool,
    /// Directory listings on (off with `--no-listing`: 403).
    pub listing: bool,
    /// `--not-found FILE`: the 404 body, sent as `text/html`.
    pub not_found: Option<Bytes>,
    /// Where the access log goes.
    pub log: log::Destination,
    /// `--json-log`.
    pub json_log: bool,
    /// The whole request head must arrive within this long of its first byte.
    pub header_timeout: Duration,
    /// The whole request body must arrive within this long of the end of its head.
    pub body_timeout: Duration,
    /// Least average rate of a request body, bytes a second, once `header_timeout` is spent
    /// (0: no rate check). See [`body_deadline`].
    pub body_min_rate: u64,
    /// An idle keep-alive connection is closed after this long.
    pub keepalive_timeout: Duration,
    /// Most requests answered on one connection.
    pub max_requests: usize,
    /// Longest wait for one write to the client (`-t`): a client that stops reading is dropped.
    pub send_timeout: Duration,
    /// `--trace`: hex-dump every read and write on stderr (over TLS: the encrypted records).
    pub trace: bool,
    /// `--precompressed`: serve `FILE.br`, `FILE.zst` or `FILE.gz` to clients that accept
    /// the coding (see [`encoding`]), and say `Vary: Accept-Encoding` on file responses.
    pub precompressed: bool,
    /// `--max-age`: files say `Cache-Control: max-age=N` instead of `no-cache`.
    pub max_age: Option<Duration>,
    /// HTTPS: the TLS configuration (None: plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `--file-cache`: most entries of the open-file cache (0: no cache). See [`cache`].
    pub file_cache: usize,
    /// `--file-cache-valid`: how long a cache entry is trusted after a check.
    pub file_cache_valid: Duration,
}

impl Config {
    /// A configuration serving `root` (which must already be canonical) with the defaults.
    pub fn new(root: PathBuf) -> Self {
        Self {
            serve: ServeOptions::default(),
            root,
            hidden: false,
            listing: true,
            not_found: None,
            log: log::Destination::Off,
            json_log: false,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_requests: DEFAULT_MAX_REQUESTS,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            trace: false,
            precompressed: false,
            max_age: None,
            tls: None,
            file_cache: cache::DEFAULT_ENTRIES,
            file_cache_valid: cache::DEFAULT_VALID,
        }
    }
}

/// Runs the file server on a bound stream socket until `shutdown`.
pub async fn run(
    bound: impl Into<Bound>,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    // One log shard per runtime worker: the --workers threads, or the multi-thread runtime's.
    let shards = match cfg.serve.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let (logger, writer) = match log::start(cfg.log.clone(), cfg.json_log, shards) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("cannot open the access log: {e}; logging no requests");
            (log::Logger::off(), None)
        }
    };
    let opts = cfg.serve.clone();
    let log_buffer = logger.buffer();
    let cache = (cfg.file_cache > 0 && !cfg.file_cache_valid.is_zero()).then(|| {
        // Descriptors: a quarter of what this process may open; the rest is for connections.
        let fds = crate::net::fd_limit().map_or(256, |l| usize::try_from(l / 4).unwrap_or(256));
        cache::FileCache::new(cfg.file_cache, fds, cfg.file_cache_valid)
    });
    let shared = Arc::new(Shared {
        cache,
        tls: cfg.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        root: files::Root::new(cfg.root.clone()),
        cfg,
        logger,
        shutdown: shutdown.clone(),
    });
    let summary = host::serve_stream(bound.into(), opts, shutdown, shared).await;
    // The accept loop has dropped its handler and with it the last logger (unless a
    // connection outlived the grace period): the writer writes the lines left and ends.
    if let Some(writer) = writer {
        writer.finish(LOG_FLUSH).await;
    }
    log_buffer.report();
    summary
}

/// Why an HTTP connection ended early, for the close log line.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading from the client failed.
    #[error("reading: {0}")]
    Read(io::Error),
    /// The request head was malformed or too large (answered with its 4xx status).
    #[error("refused a request: {0}")]
    Refused(h1::Error),
    /// The client closed after part of a request head.
    #[error("closed in the middle of a request head")]
    ClosedInHead,
    /// The request head did not complete within `--header-timeout` (answered 408).
    #[error("request head not complete within {}", fmt_duration(*.0))]
    HeadTimeout(Duration),
    /// The client closed in the middle of a request body.
    #[error("closed in the middle of a request body")]
    ClosedInBody,
    /// Reading a request body failed.
    #[error("reading a request body: {0}")]
    ReadBody(io::Error),
    /// The request body came too slowly: under `--body-min-rate` once `--header-timeout` was
    /// spent, or not complete within `--body-timeout` (answered 408).
    #[error(
        "request body too slow: {received} bytes in {} (--body-min-rate, --body-timeout)",
        fmt_duration(*.after)
    )]
    BodyTooSlow {
        /// Body bytes read (framing included).
        received: u64,
        /// Time since the end of the head.
        after: Duration,
    },
    /// Writing the response failed or stalled past `-t`.
    #[error("writing: {0}")]
    Write(io::Error),
    /// The file shrank while it was sent: the promised Content-Length cannot be kept, so
    /// closing is the only honest signal left.
    #[error("the file got shorter while being sent")]
    FileShrank,
    /// Reading the file failed.
    #[error("reading the file: {0}")]
    ReadFile(io::Error),
    /// The TLS handshake failed (a client that does not trust the certificate, no common
    /// version or cipher suite, not TLS at all).
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    /// The TLS handshake did not complete within `--header-timeout` of its first byte.
    #[error("TLS handshake not complete within {}", fmt_duration(*.0))]
    HandshakeTimeout(Duration),
    /// A plain-HTTP request came to the HTTPS port (answered 400).
    #[error("a plain-HTTP request on the HTTPS port")]
    PlainHttp,
}

impl StreamService for Shared {
    type Error = ConnError;

    fn name(&self) -> &str {
        "http"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        let ip = match &conn.peer {
            Peer::Inet(a) => Some(a.ip()),
            Peer::Unix(_) => None,
        };
        // When this returns, the host closes gracefully (FIN, then drains what the client
        // still sends), so an error page or a last response is not lost to a reset.
        match &self.tls {
            None => requests(&mut conn.io, ip, self).await,
            Some(acceptor) => serve_tls(&mut conn.io, acceptor, ip, self).await,
        }
    }
}

/// One HTTPS connection: wait for the first byte, answer a plain-HTTP client in plain HTTP,
/// otherwise the TLS handshake, the usual request loop on the TLS stream, and `close_notify`.
async fn serve_tls<S: Stream>(
    io: &mut Metered<S>,
    acceptor: &tokio_rustls::TlsAcceptor,
    ip: Option<IpAddr>,
    sh: &Shared,
) -> Outcome {
    let cfg = &sh.cfg;
    // As for plain HTTP, nothing is allocated (here: no rustls connection) before a byte.
    let first = tokio::select! {
        r = within(cfg.header_timeout, io.wait_readable()) => r,
        _ = sh.shutdown.cancelled() => return Ok(()),
    };
    match first {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
        Err(e) => return Err(ConnError::Read(e)),
    }
    if looks_like_plain_http(io) {
        return plain_http_on_tls_port(io, ip, sh).await;
    }
    let handshake = tokio::select! {
        r = tokio::time::timeout(cfg.header_timeout, acceptor.accept(&mut *io)) => r,
        _ = sh.shutdown.cancelled() => return Ok(()),
    };
    let mut tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(ConnError::Handshake(e)),
        Err(_) => return Err(ConnError::HandshakeTimeout(cfg.header_timeout)),
    };
    {
        let (_, c) = tls.get_ref();
        tracing::debug!(
            "http: {}: {:?}, {:?}, ALPN {:?}",
            ip.map_or_else(|| "?".into(), |ip| ip.to_string()),
            c.protocol_version(),
            c.negotiated_cipher_suite().map(|s| s.suite()),
            c.alpn_protocol().map(String::from_utf8_lossy),
        );
    }
    let result = requests(&mut tls, ip, sh).await;
    // close_notify, then FIN (tokio-rustls shuts the socket's write side down after it); the
    // host then drains what the client still sends, as for plain HTTP.
    let _ = within(LINGER, tls.shutdown()).await;
    result
}

/// Whether the first byte waiting on the socket could start a request line (`GET`, `HEAD`
/// ...: an upper-case letter) rather than a TLS record (a handshake record starts 0x16).
fn looks_like_plain_http<S: Stream>(io: &Metered<S>) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(io.get_ref()).peek(&mut byte) {
        // SAFETY: peek returned 1, so it wrote the byte.
        Ok(1) => unsafe { byte[0].assume_init() }.is_ascii_uppercase(),
        _ => false,
    }
}

/// nginx's answer to a plain-HTTP request on an HTTPS port: read the head (so the log can
/// show it), answer a `400` page that says to use `https://`, close.
async fn plain_http_on_tls_port<S: Stream>(
    io: &mut Metered<S>,
    ip: Option<IpAddr>,
    sh: &Shared,
) -> Outcome {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let deadline = clock::now() + sh.cfg.header_timeout;
    while !has_head_end(&buf) && buf.len() < READ_CHUNK {
        let left = deadline.saturating_duration_since(clock::now());
        match within(left, io.read_buf(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    finish_early(io, respond::plain_http_reply(), ip, first_line(&buf), sh).await;
    Err(ConnError::PlainHttp)
}

/// Whether `buf` holds the end of a request head (an empty line).
fn has_head_end(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

/// What the request loop needs of its connection: the socket itself (files leave by
/// `sendfile`), or a TLS stream over it (file bytes pass through our memory to be encrypted).
trait HttpIo: AsyncRead + AsyncWrite + Unpin + Send {
    /// Waits until a request's first byte can be read.
    fn wait_first_byte(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Whether [`SendFile`] may be used: plain TCP without `--trace`.
    fn zero_copy(&self) -> bool;

    /// [`SendFile::send_more`] (only called when [`HttpIo::zero_copy`]).
    fn send_more(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;

    /// [`SendFile::send_file`] (only called when [`HttpIo::zero_copy`]).
    fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        count: usize,
    ) -> impl Future<Output = io::Result<usize>> + Send;
}

impl<S> HttpIo for Metered<S>
where
    S: AsyncRead + AsyncWrite + Readable + SendFile + Unpin + Send + Sync,
{
    async fn wait_first_byte(&mut self) -> io::Result<()> {
        self.wait_readable().await
    }

    fn zero_copy(&self) -> bool {
        // With --trace the bytes go through our memory, so every one is dumped.
        !self.is_tracing()
    }

    async fn send_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        SendFile::send_more(self, buf).await
    }

    async fn send_file(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        count: usize,
    ) -> io::Result<usize> {
        SendFile::send_file(self, file, offset, count).await
    }
}

impl<IO> HttpIo for tokio_rustls::server::TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn wait_first_byte(&mut self) -> io::Result<()> {
        // The handshake waited for the first byte already, and the request may be decrypted
        // and waiting inside rustls, where the socket's readiness would not show it.
        Ok(())
    }

    fn zero_copy(&self) -> bool {
        false
    }

    async fn send_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf).await
    }

    async fn send_file(&mut self, _: &std::fs::File, _: u64, _: usize) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}

struct Shared {
    cfg: Config,
    /// The open-file cache (None with `--file-cache 0`).
    cache: Option<cache::FileCache>,
    /// The TLS acceptor when serving HTTPS.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The served directory, held open.
    root: files::Root,
    logger: log::Logger,
    /// Cancelled at shutdown: idle keep-alive connections close at once instead of holding
    /// the grace period, and a response in flight is sent with `Connection: close`.
    shutdown: CancellationToken,
}

/// Why a connection ended early, for the close log line.
type Outcome = Result<(), ConnError>;

async fn requests<S: HttpIo>(s: &mut S, ip: Option<IpAddr>, sh: &Shared) -> Outcome {
    let cfg = &sh.cfg;
    // Wait for the first byte before allocating anything: idle clients cost no buffer.
    let first = tokio::select! {
        r = within(cfg.header_timeout, s.wait_first_byte()) => r,
        _ = sh.shutdown.cancelled() => return Ok(()),
    };
    match first {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(()),
        Err(e) => return Err(ConnError::Read(e)),
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The response buffer, reused from one response to the next on this connection.
    let mut out = BytesMut::new();
    let mut served = 0usize;
    loop {
        // 1. A complete head: parse what is buffered, read more only when it is not enough.
        let mut head_deadline = None;
        let (req, used) = loop {
            match if buf.is_empty() {
                Ok(Status::Partial)
            } else {
                Request::parse(&buf)
            } {
                Ok(Status::Complete(x)) => break x,
                Ok(Status::Partial) => {}
                Err(e) => {
                    let reply = error_reply(e.status(), "", cfg);
                    finish_early(s, reply, ip, first_line(&buf), sh).await;
                    return Err(ConnError::Refused(e));
                }
            }
            let limit = if buf.is_empty() {
                if served == 0 {
                    cfg.header_timeout
                } else {
                    cfg.keepalive_timeout
                }
            } else {
                let deadline =
                    *head_deadline.get_or_insert_with(|| clock::now() + cfg.header_timeout);
                deadline.saturating_duration_since(clock::now())
            };
            buf.reserve(READ_CHUNK);
            let idle = buf.is_empty();
            let read = tokio::select! {
                r = within(limit, s.read_buf(&mut buf)) => r,
                _ = sh.shutdown.cancelled(), if idle => return Ok(()),
            };
            match read {
                Ok(0) if buf.is_empty() => return Ok(()),
                Ok(0) => return Err(ConnError::ClosedInHead),
                Ok(_) => {}
                // Idle between requests: the normal end of a keep-alive connection.
                Err(e) if e.kind() == io::ErrorKind::TimedOut && buf.is_empty() => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let reply = error_reply(StatusCode::REQUEST_TIMEOUT, "", cfg);
                    finish_early(s, reply, ip, b"", sh).await;
                    return Err(ConnError::HeadTimeout(cfg.header_timeout));
                }
                Err(e) => return Err(ConnError::Read(e)),
            }
        };
        buf.advance(used);
        served += 1;
        // Only the access log needs these clock readings.
        let logging = sh.logger.is_on();
        let started = logging.then(clock::now);
        let time = if logging { clock::wall() } else { UNIX_EPOCH };

        // 2. Skip any body, so the next head starts where we will look for it.
        let mut close = !req.keep_alive || served >= cfg.max_requests || sh.shutdown.is_cancelled();
        // Why the connection ends after this answer, for the close log line.
        let mut ended = None;
        let reply = match skip_body(s, &mut buf, &req, cfg).await {
            Ok(()) => respond(&req, cfg, &sh.root, sh.cache.as_ref()).await,
            Err(BodySkip::Refused(status)) => {
                close = true;
                error_reply(status, &req.target, cfg)
            }
            Err(BodySkip::TooSlow(e)) => {
                close = true;
                ended = Some(e);
                error_reply(StatusCode::REQUEST_TIMEOUT, &req.target, cfg)
            }
            Err(BodySkip::Io(e)) => return Err(e),
        };

        // 3. Answer, log, and go round again or close.
        let status = reply.head.status;
        let sent = send(s, reply, &req, close, sh.cfg.send_timeout, &mut out).await;
        if let (Err(ConnError::FileShrank), Some(cache)) = (&sent, &sh.cache) {
            // The cached length no longer holds: the next request opens the file again
            // instead of failing the same way until the entry's period ends.
            cache.forget(cache::key(&req.target));
        }
        if out.capacity() > OUT_KEEP {
            // A large small-file response: do not keep its buffer for an idle connection.
            out = BytesMut::new();
        }
        if let Some(started) = started {
            // Borrowed from the request: the line is formatted straight into the log's buffer.
            sh.logger.log(&log::Line {
                peer: ip,
                time,
                request: log::RequestText::Parts {
                    method: req.method.as_str(),
                    target: &req.target,
                    version: req.version.as_str(),
                },
                status: status.as_u16(),
                bytes: *sent.as_ref().unwrap_or(&0),
                referer: header_bytes(&req, REFERER),
                user_agent: header_bytes(&req, USER_AGENT),
                took: clock::since(started),
            });
        }
        sent?;
        if close {
            return ended.map_or(Ok(()), Err);
        }
    }
}

enum BodySkip {
    /// Answer with this status and close.
    Refused(StatusCode),
    /// The body came too slowly: answer 408 and close.
    TooSlow(ConnError),
    /// The connection failed.
    Io(ConnError),
}

/// When a request body that began at `start` and has brought `received` bytes so far must be
/// complete (after Apache's mod_reqtimeout `body=…,MinRate=…`): it gets the first
/// `header_timeout` for free, then one more second for every `body_min_rate` bytes, and
/// never more than `body_timeout` in all.
///
/// A client dripping a byte every few seconds therefore loses its connection after about
/// `header_timeout` (each read alone would have been in time); one that keeps up the rate is
/// cut only at `body_timeout`, which bounds what a fast-enough but endless body can hold.
/// Pure: the clock reading is the caller's.
fn body_deadline(start: Instant, received: u64, cfg: &Config) -> Instant {
    let earned = if cfg.body_min_rate == 0 {
        cfg.body_timeout
    } else {
        let secs = received as f64 / cfg.body_min_rate as f64;
        cfg.header_timeout
            .saturating_add(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    };
    start + earned.min(cfg.body_timeout)
}

/// Reads and discards the request's body (we serve files; nothing takes a body), within the
/// time [`body_deadline`] allows.
async fn skip_body<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    req: &Request,
    cfg: &Config,
) -> Result<(), BodySkip> {
    if req.body == Framing::None {
        return Ok(());
    }
    // 413 for a body over the limit, 400 for broken chunked framing.
    let refused = |e: h1::Error| BodySkip::Refused(e.status());
    let mut framer = BodyFramer::request(req.body, MAX_BODY).map_err(refused)?;
    let start = clock::now();
    let mut received = 0u64;
    loop {
        // The framer says which bytes are payload; we skip those along with the framing.
        let step = framer.decode(buf).map_err(refused)?;
        buf.advance(step.used);
        if framer.is_done() {
            return Ok(());
        }
        if step.used > 0 {
            continue;
        }
        let too_slow = || {
            BodySkip::TooSlow(ConnError::BodyTooSlow {
                received,
                after: clock::since(start),
            })
        };
        // Each read waits at most --header-timeout, and never past the body's deadline.
        let left = body_deadline(start, received, cfg).saturating_duration_since(clock::now());
        if left.is_zero() {
            return Err(too_slow());
        }
        buf.reserve(READ_CHUNK);
        match within(left.min(cfg.header_timeout), s.read_buf(buf)).await {
            Ok(0) => return Err(BodySkip::Io(ConnError::ClosedInBody)),
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(too_slow()),
            Err(e) => return Err(BodySkip::Io(ConnError::ReadBody(e))),
        }
    }
}

/// Sends the error page for a request we could not even parse, logs it, and closes.
async fn finish_early<S: HttpIo>(
    s: &mut S,
    reply: Reply,
    ip: Option<IpAddr>,
    request: &[u8],
    sh: &Shared,
) {
    let status = reply.head.status.as_u16();
    let time = clock::wall();
    let pseudo = Request {
        method: Method::GET,
        target: String::new(),
        version: Version::Http11,
        headers: http::HeaderMap::new(),
        keep_alive: false,
        body: Framing::None,
    };
    let sent = send(
        s,
        reply,
        &pseudo,
        true,
        sh.cfg.send_timeout,
        &mut BytesMut::new(),
    )
    .await
    .unwrap_or(0);
    sh.logger.log(&log::Line {
        peer: ip,
        time,
        request: log::RequestText::Raw(request),
        status,
        bytes: sent,
        referer: None,
        user_agent: None,
        took: Duration::ZERO,
    });
    // The host closes gracefully once the service returns.
}

/// The request line of a refused head, for the log (at most 200 bytes).
fn first_line(buf: &[u8]) -> &[u8] {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    &buf[..end.min(200)]
}

fn header_bytes(req: &Request, name: http::HeaderName) -> Option<&[u8]> {
    req.headers.get(name).map(HeaderValue::as_bytes)
}

/// Writes the head and, unless the request was HEAD or the status has no body, the body,
/// and flushes (TLS may hold the last record until asked). Returns the body bytes sent.
async fn send<S: HttpIo>(
    s: &mut S,
    reply: Reply,
    req: &Request,
    close: bool,
    send_timeout: Duration,
    out: &mut BytesMut,
) -> Result<u64, ConnError> {
    let sent = send_unflushed(s, reply, req, close, send_timeout, out).await?;
    within(send_timeout, s.flush())
        .await
        .map_err(ConnError::Write)?;
    Ok(sent)
}

async fn send_unflushed<S: HttpIo>(
    s: &mut S,
    mut reply: Reply,
    req: &Request,
    close: bool,
    send_timeout: Duration,
    out: &mut BytesMut,
) -> Result<u64, ConnError> {
    if close {
        reply
            .head
            .header(CONNECTION, HeaderValue::from_static("close"));
    } else if req.version == Version::Http10 {
        // A 1.0 client that asked for keep-alive needs to hear that it got it.
        reply
            .head
            .header(CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    // Room for the head and, when it is small, a file's body: one allocation per response.
    let small_file = match &reply.body {
        Body::File { len, .. } if *len <= FILE_CHUNK as u64 => *len as usize,
        _ => 0,
    };
    out.clear();
    out.reserve(512 + small_file);
    reply.head.encode(clock::wall(), out);
    let status = reply.head.status;
    let bodiless = req.method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
    let write = ConnError::Write;
    match reply.body {
        _ if bodiless => {
            within(send_timeout, s.write_all(out))
                .await
                .map_err(write)?;
            Ok(0)
        }
        // Head and a generated body in one write.
        Body::Bytes(bytes) => {
            out.extend_from_slice(&bytes);
            within(send_timeout, s.write_all(out))
                .await
                .map_err(write)?;
            Ok(bytes.len() as u64)
        }
        Body::File { file, start, len } => {
            if len <= FILE_CHUNK as u64 {
                // A small file goes out with the head in one write: one read, one send.
                let at = out.len();
                out.resize(at + len as usize, 0);
                read_exact_at(&file, &mut out[at..], start)?;
                within(send_timeout, s.write_all(out))
                    .await
                    .map_err(write)?;
                return Ok(len);
            }
            let (mut at, end) = (start, start + len);
            let mut zero_copy = s.zero_copy();
            if zero_copy {
                // The head waits in the kernel for the first body bytes (MSG_MORE).
                let mut head: &[u8] = out;
                while !head.is_empty() {
                    let n = within(send_timeout, s.send_more(head))
                        .await
                        .map_err(write)?;
                    head = &head[n..];
                }
                out.clear();
            }
            // The kernel copies from the page cache to the socket; memory stays flat however
            // large the file. With --trace (or TLS) the bytes go through our memory instead;
            // and so they do if this file system cannot sendfile.
            while zero_copy && at < end {
                let want = usize::try_from(end - at).map_or(SENDFILE_MAX, |l| l.min(SENDFILE_MAX));
                match within(send_timeout, s.send_file(&file, at, want)).await {
                    Ok(0) => return Err(ConnError::FileShrank),
                    Ok(n) => at += n as u64,
                    Err(e)
                        if at == start
                            && matches!(
                                e.raw_os_error(),
                                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                            ) =>
                    {
                        zero_copy = false;
                    }
                    Err(e) => return Err(write(e)),
                }
            }
            // A bounded buffer, reused: the response buffer, where the head (if not sent yet)
            // goes out with the first chunk.
            while at < end {
                let want = usize::try_from(end - at).map_or(FILE_CHUNK, |l| l.min(FILE_CHUNK));
                let from = out.len();
                out.resize(from + want, 0);
                read_exact_at(&file, &mut out[from..], at)?;
                within(send_timeout, s.write_all(out))
                    .await
                    .map_err(write)?;
                out.clear();
                at += want as u64;
            }
            Ok(len)
        }
    }
}

/// Fills `buf` from `file` at `offset` (pread: the file position is not used).
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> Result<(), ConnError> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ConnError::FileShrank
        } else {
            ConnError::ReadFile(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 15. The body had only a per-read timeout, so a byte every few seconds held
    /// a connection forever.
    #[test]
    fn a_body_earns_time_at_the_minimum_rate_up_to_the_body_timeout() {
        let mut cfg = Config::new(PathBuf::from("/"));
        cfg.header_timeout = Duration::from_secs(10);
        cfg.body_timeout = Duration::from_secs(30);
        cfg.body_min_rate = 1024;
        let t0 = clock::now();
        let at = |received| body_deadline(t0, received, &cfg) - t0;
        // A drip earns almost nothing beyond the first --header-timeout.
        assert_eq!(at(0), Duration::from_secs(10));
        assert_eq!(
            at(3),
            Duration::from_secs(10) + Duration::from_secs_f64(3.0 / 1024.0)
        );
        // Each 1 KiB earns a second...
        assert_eq!(at(10 * 1024), Duration::from_secs(20));
        // ... up to --body-timeout, however fast the body comes.
        assert_eq!(at(1 << 20), Duration::from_secs(30));
        assert_eq!(at(u64::MAX), Duration::from_secs(30));
        // No rate check: --body-timeout alone.
        cfg.body_min_rate = 0;
        assert_eq!(body_deadline(t0, 0, &cfg) - t0, Duration::from_secs(30));
        // A --header-timeout longer than --body-timeout is cut to it.
        cfg.body_min_rate = 1024;
        cfg.header_timeout = Duration::from_secs(60);
        assert_eq!(body_deadline(t0, 0, &cfg) - t0, Duration::from_secs(30));
    }
}
