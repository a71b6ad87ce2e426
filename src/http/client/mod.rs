//! `socklab http get`: a wget-like HTTP/1.1 client written on the socket.
//!
//! One request per connection (`Connection: close`), written and read by our own code:
//!
//! ```text
//!   GET /a.txt HTTP/1.1            ─▶  origin (or, for http through a proxy, the proxy with
//!   Host: 127.0.0.1:8080               `GET http://127.0.0.1:8080/a.txt HTTP/1.1`; for https,
//!   User-Agent: socklab/0.1.0          `CONNECT host:443` first, then TLS inside the tunnel)
//!   Accept: */*
//!   Connection: close
//!                                  ◀─  HTTP/1.1 200 OK | Content-Length: 6 | … | hello\n
//! ```
//!
//! Heads and bodies go through the HTTP/1 core the server uses too ([`crate::http::h1`]:
//! response heads, body framing into payload ranges). The client's own decisions are sans-IO,
//! one concern per module, each unit-tested with golden bytes:
//!
//! - [`request`]: the request head (origin or absolute form, CONNECT, `-H`, credentials).
//! - [`redirect`]: which redirects to follow, with which method, and when to stop.
//! - [`proxy`]: which proxy a URL goes through (`-x`, `http_proxy`, `no_proxy`).
//! - [`resume`]: whether the answer to a `Range` request continues the `.part`.
//! - [`decode`]: `--compressed`: gzip and deflate in bounded pieces.
//! - [`rate`]: `--limit-rate`, a token bucket with time passed in.
//! - [`output`]: the file name from the URL, and its `.part`.
//!
//! And the drivers around them:
//!
//! - `conn`: connecting (directly, through a proxy, through a CONNECT tunnel; TLS with rustls)
//!   and buffered reads.
//! - `sink`: stdout, or `NAME.part` renamed into place once complete.
//! - [`ui`]: messages, progress (indicatif bar on a terminal, plain lines otherwise), the
//!   header log, and the text of each.
//! - [`run`]: the download: redirects, `NAME.part` renamed into place only when complete and
//!   of the announced length, `-c` and retries that resume with `Range`.

mod conn;
pub mod decode;
pub mod output;
pub mod proxy;
pub mod rate;
pub mod redirect;
pub mod request;
pub mod resume;
mod sink;
pub mod tls;
pub mod ui;

use std::fs::File;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::CONTENT_RANGE;
use http::{Method, StatusCode};
use tokio_rustls::TlsConnector;
use url::Url;

use self::conn::Conn;
use self::decode::{Coding, DecompressError, Decompressor};
use self::output::part_path;
use self::proxy::ProxyEnv;
use self::rate::TokenBucket;
use self::redirect::{Chain, Hop, RedirectError};
use self::request::{BodyInfo, RequestSpec};
use self::resume::Resume;
use self::sink::{Sink, finish_file, write_stdout};
use self::tls::TlsOptions;
use self::ui::{LogDir, LogTarget, Ui};
use crate::http::h1::{self, BodyFramer, Response};
use crate::net::{NetError, clock};

/// Where the body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `-O -`.
    Stdout,
    /// A file (written as `FILE.part` first).
    File(PathBuf),
}

/// `-4` / `-6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Any address the name resolves to.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `--post-data`.
    Bytes(Vec<u8>),
    /// `--post-file`: read from the file when sent, this many bytes.
    File(PathBuf, u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }
}

/// Everything `http get` needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL.
    pub url: Url,
    /// Where the body goes.
    pub output: Output,
    /// Leave an existing file alone.
    pub no_clobber: bool,
    /// `-c`: resume `FILE.part`.
    pub resume: bool,
    /// Retries after a network failure.
    pub retries: u32,
    /// Most redirects followed.
    pub max_redirects: usize,
    /// Follow redirects (`--no-follow` clears it).
    pub follow: bool,
    /// `-x`.
    pub proxy: Option<Url>,
    /// The environment's proxy settings; `None` under `--no-proxy`.
    pub proxy_env: Option<ProxyEnv>,
    /// `Proxy-Authorization` value.
    pub proxy_auth: Option<String>,
    /// `Authorization` value from `--user`.
    pub auth: Option<String>,
    /// `--header-log`.
    pub header_log: Option<LogTarget>,
    /// `-q`.
    pub quiet: bool,
    /// `--limit-rate`, bytes a second.
    pub limit_rate: Option<u64>,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `-t`: no progress for this long ends the transfer.
    pub timeout: Duration,
    /// `-m`/`--max-time`: the whole run (redirects, retries and their waits) ends after this
    /// long.
    pub max_time: Option<Duration>,
    /// `--max-filesize`: the most bytes the saved file (or stdout) may hold; it also lifts
    /// the decompression ratio limit.
    pub max_filesize: Option<u64>,
    /// `-H` fields.
    pub headers: Vec<(String, String)>,
    /// `-A`.
    pub user_agent: String,
    /// `-4` / `-6`.
    pub family: Family,
    /// `--compressed`.
    pub compressed: bool,
    /// `--cacert`, `-k`.
    pub tls: TlsOptions,
    /// `--fail`.
    pub fail: bool,
    /// The method.
    pub method: Method,
    /// The request body.
    pub body: Option<Body>,
    /// `--trace`.
    pub trace: bool,
}

/// Why `http get` failed. [`crate::exit::code_for`] maps each to its exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad usage found late (a bad `--cacert`, a proxy variable that does not parse).
    #[error("{0}")]
    Usage(String),
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The TLS handshake or the certificate failed.
    #[error("{0}")]
    Tls(String),
    /// The exchange cannot go on correctly (exit 5): a body that may be cut short, a range
    /// the server keeps refusing, a retry that would duplicate bytes already written.
    #[error("{0}")]
    Protocol(String),
    /// The proxy could not be reached or refused.
    #[error("{0}")]
    Proxy(String),
    /// An error status with `--fail` (or while resuming).
    #[error("{url}: the server answered {status}{hint}")]
    Status {
        /// The URL that answered.
        url: String,
        /// `404 Not Found`.
        status: String,
        /// Extra words.
        hint: &'static str,
    },
    /// A malformed response head.
    #[error("{peer}: {source}")]
    Head {
        /// The peer.
        peer: String,
        /// What was wrong.
        source: h1::Error,
    },
    /// More informational (1xx) responses than `conn::MAX_INFORMATIONAL` (20) before a final
    /// one.
    #[error("{peer} sent more than {max} informational (1xx) responses without a final one")]
    TooManyInformational {
        /// The peer.
        peer: String,
        /// The limit.
        max: usize,
    },
    /// The server closed the connection before a complete response head.
    #[error("{peer} closed the connection {}", if *.partial { "in the middle of the response head" } else { "without answering" })]
    NoResponse {
        /// The peer.
        peer: String,
        /// Whether part of a head came.
        partial: bool,
    },
    /// A body that is malformed or shorter than announced, or framing fields that make no
    /// sense.
    #[error(transparent)]
    Body(#[from] h1::Error),
    /// A redirect that cannot be followed.
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    /// A compressed body that does not decode.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The server announced a file larger than `--max-filesize` (nothing downloaded).
    #[error(
        "{url}: the server announces {size} bytes, more than --max-filesize {max}; not downloaded"
    )]
    AnnouncedTooLarge {
        /// The URL.
        url: String,
        /// The announced size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The body went past `--max-filesize`.
    #[error("{name}: the body goes past --max-filesize {max} bytes; stopped{kept}")]
    GrewTooLarge {
        /// The file (`-` for stdout).
        name: String,
        /// The limit.
        max: u64,
        /// Where what came is kept, if anywhere (`, what came is kept in NAME.part`).
        kept: String,
    },
    /// The file's size differs from what the server announced.
    #[error("{path}: got {got} bytes, the server announced {want}; kept as {path}.part")]
    SizeMismatch {
        /// The file.
        path: String,
        /// Its size.
        got: u64,
        /// What it should be.
        want: u64,
    },
    /// A local file could not be written.
    #[error("{what} {}: {source}", .path.display())]
    File {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl Error {
    fn file<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::File {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    fn log(source: io::Error) -> Error {
        Error::File {
            what: "writing",
            path: PathBuf::from("the --header-log file"),
            source,
        }
    }

    /// Whether another attempt (resuming from the `.part`) may help: a connection that broke
    /// or stalled, a body cut short. Not a refused connection, a name that does not
    /// resolve, TLS, proxy or HTTP errors, which the same request would meet again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Net(e) => !matches!(
                e,
                NetError::Refused { .. }
                    | NetError::NameNotFound { .. }
                    | NetError::BadAddress { .. }
                    | NetError::PermissionDenied { .. }
                    | NetError::Unreachable { .. }
            ),
            Error::NoResponse { .. } => true,
            Error::Body(h1::Error::BodyCutShort { .. } | h1::Error::ChunkedBodyCutShort { .. }) => {
                true
            }
            _ => false,
        }
    }
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Net(e) => exit::code_for(e),
            Error::Tls(_) => exit::TLS,
            Error::Proxy(_) => exit::PROXY,
            Error::Status { .. } => exit::HTTP_STATUS,
            // The answer did not meet a requirement the user set: a failed check, as curl's
            // own code for it (63) has no place in our table.
            Error::AnnouncedTooLarge { .. } | Error::GrewTooLarge { .. } => exit::CHECK_FAILED,
            Error::Protocol(_)
            | Error::Head { .. }
            | Error::TooManyInformational { .. }
            | Error::NoResponse { .. }
            | Error::Body(_)
            | Error::Redirect(_)
            | Error::Decompress(_)
            | Error::SizeMismatch { .. } => exit::PROTOCOL,
            Error::File { .. } => exit::LOCAL_IO,
        }
    }
}

/// Runs `http get`.
pub async fn run(cfg: Config) -> Result<(), Error> {
    // `--trace` dumps go straight to stderr and would tear the bar; `--header-log -` blocks go
    // through the bar's `suspend`, so the two share the terminal cleanly.
    let tty_progress = !cfg.trace;
    let mut ui = Ui::new(cfg.quiet, tty_progress, cfg.header_log.as_ref()).map_err(|source| {
        Error::File {
            what: "opening the header log",
            path: match &cfg.header_log {
                Some(LogTarget::File(p)) => p.clone(),
                _ => PathBuf::from("-"),
            },
            source,
        }
    })?;
    let mut dl = Download::new(&cfg);
    let download = dl.run(&mut ui);
    let res = match cfg.max_time {
        None => download.await,
        // Dropping the download at the deadline leaves the .part as it is: never renamed.
        Some(limit) => match tokio::time::timeout(limit, download).await {
            Ok(res) => res,
            Err(_) => {
                ui.finish_bar();
                if let Output::File(path) = &cfg.output
                    && part_path(path).exists()
                {
                    ui.warn(&format!(
                        "what came is kept in '{}' (-c resumes it)",
                        part_path(path).display()
                    ));
                }
                Err(NetError::Timeout {
                    what: format!(
                        "downloading {} (-m/--max-time bounds the whole run)",
                        cfg.url
                    ),
                    after: limit,
                }
                .into())
            }
        },
    };
    ui.finish_bar();
    res
}

/// What happened to one attempt.
enum Step {
    /// Finished (saved, or nothing to save).
    Done,
    /// The server did not honour the range in a way that needs a new request from byte 0.
    Fresh,
}

/// The response we are going to read, after any redirects.
struct Fetched {
    conn: Conn,
    head: Response,
    raw: Vec<u8>,
    url: Url,
    method: Method,
}

/// Where this attempt's body starts.
struct Start {
    /// Appending to the `.part` at this offset (a 206 that continues it); `None`: from byte 0.
    resume_at: Option<u64>,
    /// Body bytes to drop (stdout only: they went out already).
    skip: u64,
    /// The whole file's size, when a `Content-Range` said it.
    total: Option<u64>,
}

/// One response body on its way from the connection to the sink.
struct Incoming {
    framer: BodyFramer,
    inflate: Option<Decompressor>,
    sink: Sink,
    /// The name shown in progress and the summary (`-` for stdout).
    shown: String,
    /// Bytes of the file there now (after decoding).
    written: u64,
    skip: u64,
    /// The file's announced size, checked before the rename.
    total: Option<u64>,
    /// `--max-filesize`.
    max: Option<u64>,
}

impl Incoming {
    /// Hands one run of payload to the sink (dropping what `skip` says, decompressing if
    /// asked); returns the payload bytes kept, before decompression.
    fn deliver(&mut self, mut data: &[u8]) -> Result<usize, Error> {
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(data.len());
            self.skip -= n as u64;
            data = &data[n..];
        }
        match &mut self.inflate {
            None => {
                Self::check_max(self.max, self.written, data.len(), &self.shown, &self.sink)?;
                self.sink.write(data)?;
                self.written += data.len() as u64;
            }
            Some(inf) => {
                for piece in data.chunks(decode::DECOMPRESS_PIECE) {
                    let out = inf.push(piece)?;
                    Self::check_max(self.max, self.written, out.len(), &self.shown, &self.sink)?;
                    self.sink.write(out)?;
                    self.written += out.len() as u64;
                }
            }
        }
        Ok(data.len())
    }

    /// `--max-filesize`: refuses `more` bytes that would take the output past it (so the
    /// `.part` never holds more than the limit).
    fn check_max(
        max: Option<u64>,
        written: u64,
        more: usize,
        shown: &str,
        sink: &Sink,
    ) -> Result<(), Error> {
        match max {
            Some(max) if written.saturating_add(more as u64) > max => Err(Error::GrewTooLarge {
                name: shown.to_string(),
                max,
                kept: match sink {
                    Sink::File(_, part) => format!(", what came is kept in {}", part.display()),
                    Sink::Stdout => String::new(),
                },
            }),
            _ => Ok(()),
        }
    }
}

/// One download, across redirects and retries.
struct Download<'c> {
    cfg: &'c Config,
    tls: Option<TlsConnector>,
    /// Bytes already written to stdout (`-O -`), to resume a retry there.
    stdout_done: u64,
    started: std::time::Instant,
    /// Body bytes received in this run (for the rate in the summary).
    moved: u64,
}

impl<'c> Download<'c> {
    fn new(cfg: &'c Config) -> Self {
        Self {
            cfg,
            tls: None,
            stdout_done: 0,
            started: clock::now(),
            moved: 0,
        }
    }

    async fn run(&mut self, ui: &mut Ui) -> Result<(), Error> {
        let cfg = self.cfg;
        if let (Output::File(path), true) = (&cfg.output, cfg.no_clobber)
            && path.exists()
        {
            ui.info(&format!(
                "'{}' already exists; not retrieving",
                path.display()
            ));
            return Ok(());
        }
        if cfg.resume && cfg.compressed {
            ui.warn("-c cannot resume a --compressed download (the .part holds decoded bytes); starting over");
        }
        let mut attempt = 0;
        let mut fresh = false;
        let mut restarts = 0;
        loop {
            let res = self.attempt(ui, attempt > 0, fresh).await;
            ui.finish_bar();
            match res {
                Ok(Step::Done) => return Ok(()),
                Ok(Step::Fresh) if restarts < 2 => {
                    restarts += 1;
                    fresh = true;
                }
                Ok(Step::Fresh) => {
                    return Err(Error::Protocol(
                        "the server keeps refusing the range; remove the .part file".into(),
                    ));
                }
                Err(e) if e.is_retryable() && attempt < cfg.retries => {
                    attempt += 1;
                    let wait = Duration::from_secs(1 << (attempt - 1).min(6));
                    ui.warn(&format!(
                        "{e}; retrying in {} (retry {attempt} of {})",
                        crate::net::fmt_duration(wait),
                        cfg.retries
                    ));
                    tokio::time::sleep(wait).await;
                    fresh = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The offset to resume from: the `.part`'s size (with `-c`, or on a retry), or what
    /// already went to stdout.
    fn offset(&self, retry: bool, fresh: bool) -> Result<u64, Error> {
        let cfg = self.cfg;
        if fresh || cfg.compressed || cfg.method != Method::GET {
            if matches!(cfg.output, Output::Stdout) && self.stdout_done > 0 {
                // Stdout cannot be rewound, and this download cannot skip what it holds.
                return Err(Error::Protocol(format!(
                    "{} bytes already went to stdout and a {} download cannot resume; not retrying",
                    self.stdout_done,
                    if cfg.compressed {
                        "--compressed"
                    } else {
                        "non-GET"
                    }
                )));
            }
            return Ok(0);
        }
        match &cfg.output {
            Output::Stdout => Ok(self.stdout_done),
            Output::File(path) if cfg.resume || retry => {
                let part = part_path(path);
                match std::fs::metadata(&part) {
                    Ok(m) => Ok(m.len()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
                    Err(e) => Err(Error::file("reading", &part)(e)),
                }
            }
            Output::File(_) => Ok(0),
        }
    }

    /// One request (and its redirects) and, unless it stops early, its body saved.
    async fn attempt(&mut self, ui: &mut Ui, retry: bool, fresh: bool) -> Result<Step, Error> {
        let offset = self.offset(retry, fresh)?;
        let Some(mut got) = self.fetch(ui, (offset > 0).then_some(offset)).await? else {
            return Ok(Step::Done);
        };
        if got.method == Method::HEAD {
            write_stdout(&got.raw)?;
            return self.check_status(ui, &got, false).map(|_| Step::Done);
        }
        let start = match self.resume_from(ui, &got, offset)? {
            ControlFlow::Continue(start) => start,
            ControlFlow::Break(step) => return Ok(step),
        };
        self.check_status(ui, &got, true)?;
        let mut body = self.open_body(ui, &got, start)?;
        self.receive(ui, &mut got.conn, &mut body).await?;
        self.save(ui, body)
    }

    /// What the answer to `Range: bytes=offset-` means for this attempt: where the body
    /// starts, or the end of the attempt (already complete, or a new request from byte 0).
    fn resume_from(
        &self,
        ui: &Ui,
        got: &Fetched,
        offset: u64,
    ) -> Result<ControlFlow<Step, Start>, Error> {
        let cfg = self.cfg;
        let from_zero = Start {
            resume_at: None,
            skip: 0,
            total: None,
        };
        if offset == 0 {
            return Ok(ControlFlow::Continue(from_zero));
        }
        let status = got.head.status;
        match resume::check_resume(status, got.head.headers.get(CONTENT_RANGE), offset) {
            Resume::Append { total } => Ok(ControlFlow::Continue(Start {
                resume_at: Some(offset),
                skip: 0,
                total,
            })),
            Resume::Complete => {
                if let Output::File(path) = &cfg.output {
                    finish_file(path, None)?;
                    ui.info(&format!(
                        "the server says '{}' is already complete",
                        part_path(path).display()
                    ));
                    ui.info(&ui::summary_line(
                        &path.display().to_string(),
                        offset,
                        0,
                        clock::now() - self.started,
                    ));
                }
                Ok(ControlFlow::Break(Step::Done))
            }
            Resume::Restart(reason) if status == StatusCode::OK => {
                ui.warn(&reason);
                // The whole body again: on stdout, what already went out is dropped.
                let skip = if cfg.output == Output::Stdout {
                    offset
                } else {
                    0
                };
                Ok(ControlFlow::Continue(Start { skip, ..from_zero }))
            }
            Resume::Restart(reason) => {
                ui.warn(&reason);
                if cfg.output == Output::Stdout {
                    return Err(Error::Status {
                        url: got.url.to_string(),
                        status: got.head.status_line(),
                        hint: " to the resume request; part of the body already went to stdout",
                    });
                }
                Ok(ControlFlow::Break(Step::Fresh))
            }
            // The server cannot serve from the .part's end: keep the .part, say so (exit 7).
            Resume::Unsatisfiable => Err(Error::Status {
                url: got.url.to_string(),
                status: got.head.status_line(),
                hint: " to the resume request (the partial file is longer than the server's \
                       file, or it changed); the partial file is kept: remove it to download \
                       the whole file again",
            }),
            // An error page instead of the rest of the file: keep the .part.
            Resume::NotRange => Err(Error::Status {
                url: got.url.to_string(),
                status: got.head.status_line(),
                hint: " to the resume request; the partial file is kept",
            }),
        }
    }

    /// Gets ready to receive the body: its framing, any decompression, the sink, the
    /// progress display.
    fn open_body(&self, ui: &mut Ui, got: &Fetched, start: Start) -> Result<Incoming, Error> {
        let cfg = self.cfg;
        let framer = BodyFramer::response(got.head.framing(&got.method)?);
        let inflate = if cfg.compressed {
            let coding = decode::content_coding(&got.head);
            if let Coding::Other(name) = &coding {
                ui.warn(&format!(
                    "unknown Content-Encoding {name:?}; saving the body as it came"
                ));
            }
            Decompressor::new(&coding).map(|d| {
                // --max-filesize bounds the output itself, in place of the ratio limit.
                if cfg.max_filesize.is_some() {
                    d.without_ratio_limit()
                } else {
                    d
                }
            })
        } else {
            None
        };
        let mut total = start.total;
        if total.is_none() && start.resume_at.is_none() {
            total = framer.expected();
        }
        // The whole file's announced size (unknown once decoded).
        let total = if inflate.is_some() { None } else { total };
        // A file announced larger than --max-filesize is refused before any byte is saved.
        let announced = total.or_else(|| {
            let base = start.resume_at?;
            framer.expected().map(|rest| base.saturating_add(rest))
        });
        if let (Some(max), Some(size)) = (cfg.max_filesize, announced)
            && inflate.is_none()
            && size > max
        {
            return Err(Error::AnnouncedTooLarge {
                url: got.url.to_string(),
                size,
                max,
            });
        }
        let sink = Sink::open(&cfg.output, start.resume_at.is_some())?;
        let shown = match &cfg.output {
            Output::Stdout => "-".to_string(),
            Output::File(p) => p.display().to_string(),
        };
        let base = start.resume_at.unwrap_or(0);
        ui.start(&shown, base, total);
        Ok(Incoming {
            framer,
            inflate,
            sink,
            shown,
            written: base,
            skip: start.skip,
            total,
            max: cfg.max_filesize,
        })
    }

    /// Reads the body to its end: frame what is buffered, hand the payload to the sink, read
    /// more (paced by `--limit-rate`).
    async fn receive(
        &mut self,
        ui: &mut Ui,
        conn: &mut Conn,
        body: &mut Incoming,
    ) -> Result<(), Error> {
        let cfg = self.cfg;
        let mut bucket = cfg
            .limit_rate
            .map(|r| TokenBucket::new(r, (r / 4).max(1024)));
        let read_max = cfg.limit_rate.map_or(usize::MAX, |r| {
            usize::try_from(r / 4).unwrap_or(usize::MAX).max(1024)
        });
        loop {
            // Frame what is buffered.
            loop {
                let step = body.framer.decode(conn.buffered())?;
                if step.used == 0 {
                    break;
                }
                let moved = body.deliver(&conn.buffered()[step.payload])?;
                self.moved += moved as u64;
                if cfg.output == Output::Stdout {
                    self.stdout_done = body.written;
                }
                conn.consume(step.used);
                ui.progress(body.written);
                if let Some(b) = &mut bucket {
                    let wait = b.take(clock::now(), moved);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            if body.framer.is_done() {
                return Ok(());
            }
            if conn.fill(read_max).await? == 0 {
                if body.framer.until_close() && conn.unclean_eof() {
                    return Err(Error::Protocol(format!(
                        "{}: the TLS connection ended without close_notify in a body that runs \
                         until close, so it may be cut short ({} bytes); not saved as complete",
                        conn.peer, body.written
                    )));
                }
                body.framer.finish()?;
                return Ok(());
            }
        }
    }

    /// The body is complete: flushes stdout, or checks the `.part` and renames it into place.
    fn save(&mut self, ui: &mut Ui, mut body: Incoming) -> Result<Step, Error> {
        if let Some(inf) = &mut body.inflate {
            let out = inf.finish()?;
            body.sink.write(out)?;
            body.written += out.len() as u64;
        }
        ui.progress(body.written);
        ui.finish_bar();
        if !body.framer.trailers().is_empty() {
            tracing::debug!(
                "trailers: {}",
                String::from_utf8_lossy(body.framer.trailers()).trim_end()
            );
        }
        match body.sink {
            Sink::Stdout => {
                io::stdout()
                    .flush()
                    .map_err(Error::file("writing", Path::new("stdout")))?;
            }
            Sink::File(file, _) => {
                drop(file);
                let Output::File(path) = &self.cfg.output else {
                    unreachable!("a file sink has a file output")
                };
                finish_file(path, body.total)?;
            }
        }
        ui.info(&ui::summary_line(
            &body.shown,
            body.written,
            self.moved,
            clock::now() - self.started,
        ));
        Ok(Step::Done)
    }

    /// `--fail` and the warning for an error status.
    fn check_status(&self, ui: &Ui, got: &Fetched, saving: bool) -> Result<(), Error> {
        let status = got.head.status;
        if status.as_u16() < 400 {
            return Ok(());
        }
        if self.cfg.fail {
            return Err(Error::Status {
                url: got.url.to_string(),
                status: got.head.status_line(),
                hint: "",
            });
        }
        if saving {
            let via = if got.conn.absolute_form && matches!(status.as_u16(), 502..=504) {
                " (from the proxy, which may have failed to reach the server)"
            } else {
                ""
            };
            ui.warn(&format!(
                "the server answered {}{via}; saving the body anyway (--fail makes this an error)",
                got.head.status_line()
            ));
        }
        Ok(())
    }

    /// Sends the request and follows redirects; `None` when `--no-follow` stopped at one.
    async fn fetch(
        &mut self,
        ui: &mut Ui,
        range_from: Option<u64>,
    ) -> Result<Option<Fetched>, Error> {
        let cfg = self.cfg;
        let mut out = Outgoing::new(cfg);
        let mut chain = Chain::new(&out.url, cfg.max_redirects);
        loop {
            let proxy = proxy::choose_proxy(&out.url, cfg.proxy.as_ref(), cfg.proxy_env.as_ref())
                .map_err(Error::Usage)?;
            let mut conn = conn::open(&out.url, proxy.as_ref(), cfg, ui, &mut self.tls).await?;
            let head = out
                .spec(cfg, conn.absolute_form, range_from)
                .head()
                .encode();
            ui.log_head(LogDir::Request, &conn.peer, conn.via_proxy, &head)
                .map_err(Error::log)?;
            conn.send(&head).await?;
            let early = match &out.body {
                Some(b) => send_body(&mut conn, ui, b).await?,
                None => None,
            };
            let (resp, raw) = match early {
                Some(head) => head,
                None => conn.read_head(ui).await?,
            };
            if conn.absolute_form && resp.status.as_u16() == 407 {
                let name = proxy.as_ref().map_or(String::new(), request::authority);
                return Err(Error::Proxy(conn::proxy_refusal(&name, &resp, cfg, "")));
            }
            if redirect::is_redirect(resp.status) && redirect::location(&resp).is_some() {
                let hop = redirect::next_hop(
                    resp.status,
                    &out.method,
                    &out.url,
                    redirect::location(&resp),
                )?;
                if !cfg.follow {
                    ui.always(&format!("redirect {} -> {}", resp.status.as_u16(), hop.url));
                    return Ok(None);
                }
                chain.push(&hop.url)?;
                ui.info(&format!("redirect {} -> {}", resp.status.as_u16(), hop.url));
                out.follow(hop);
                continue;
            }
            return Ok(Some(Fetched {
                conn,
                head: resp,
                raw,
                url: out.url,
                method: out.method,
            }));
        }
    }
}

/// The request as it stands after the redirects followed so far.
struct Outgoing {
    url: Url,
    method: Method,
    body: Option<Body>,
    /// `Authorization`: `--user`, or the URL's own credentials.
    auth: Option<String>,
    /// The `-H` fields.
    extra: Vec<(String, String)>,
}

impl Outgoing {
    fn new(cfg: &Config) -> Self {
        let auth = cfg.auth.clone().or_else(|| {
            request::url_credentials(&cfg.url).map(|(u, p)| request::basic_auth(&u, &p))
        });
        Self {
            url: cfg.url.clone(),
            method: cfg.method.clone(),
            body: cfg.body.clone(),
            auth,
            extra: cfg.headers.clone(),
        }
    }

    /// Everything that goes into the head, for a connection that wants `absolute_form` (a
    /// plain-HTTP proxy) or not.
    fn spec<'a>(
        &'a self,
        cfg: &'a Config,
        absolute_form: bool,
        range_from: Option<u64>,
    ) -> RequestSpec<'a> {
        RequestSpec {
            method: &self.method,
            url: &self.url,
            absolute_form,
            user_agent: &cfg.user_agent,
            compressed: cfg.compressed,
            range_from,
            authorization: self.auth.as_deref(),
            proxy_authorization: cfg.proxy_auth.as_deref(),
            body: self.body.as_ref().map(|b| BodyInfo {
                len: b.len(),
                content_type: "application/x-www-form-urlencoded",
            }),
            extra: &self.extra,
        }
    }

    /// The request that follows a redirect: credentials (and `Authorization` or `Cookie` given
    /// with `-H`) go along only to the same origin, the body only when the hop keeps it.
    fn follow(&mut self, hop: Hop) {
        if !hop.keep_credentials {
            self.auth =
                request::url_credentials(&hop.url).map(|(u, p)| request::basic_auth(&u, &p));
            self.extra.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
            });
        }
        if !hop.keep_body {
            self.body = None;
        }
        self.url = hop.url;
        self.method = hop.method;
    }
}

/// Sends a request body, watching for an early answer (see [`Conn::send_watching`]):
/// `Some(final head)` when the server answered before the whole body went out, which then
/// stops.
async fn send_body(
    conn: &mut Conn,
    ui: &mut Ui,
    body: &Body,
) -> Result<Option<(Response, Vec<u8>)>, Error> {
    let early = |ui: &mut Ui, conn: &Conn| {
        ui.info(&format!(
            "{} answered before the whole request body ({} bytes) was sent; stopped sending",
            conn.peer,
            body.len()
        ));
    };
    match body {
        Body::Bytes(b) => {
            let head = conn.send_watching(ui, b).await?;
            if head.is_some() {
                early(ui, conn);
            }
            Ok(head)
        }
        Body::File(path, len) => {
            use std::io::Read;
            let mut file = File::open(path).map_err(Error::file("reading", path))?;
            let mut buf = vec![0; 64 * 1024];
            let mut sent = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(Error::file("reading", path))?;
                if n == 0 {
                    break;
                }
                if sent + n as u64 > *len {
                    sent += n as u64;
                    break;
                }
                if let Some(head) = conn.send_watching(ui, &buf[..n]).await? {
                    early(ui, conn);
                    return Ok(Some(head));
                }
                sent += n as u64;
            }
            if sent != *len {
                return Err(Error::File {
                    what: "sending",
                    path: path.clone(),
                    source: io::Error::other(format!(
                        "the file changed size while sending ({len} bytes announced)"
                    )),
                });
            }
            Ok(None)
        }
    }
}

/// The `User-Agent` we send by default.
pub fn default_user_agent() -> String {
    format!("socklab/{}", env!("CARGO_PKG_VERSION"))
}

/// The environment's proxy settings.
pub fn proxy_env() -> ProxyEnv {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
    };
    ProxyEnv {
        http: var(&["http_proxy"]),
        https: var(&["https_proxy", "HTTPS_PROXY"]),
        no_proxy: var(&["no_proxy", "NO_PROXY"]),
    }
}
