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
//! - [`proto`]: the sans-IO core (request heads, response heads, body framing, gzip, the
//!   redirect and proxy policies, resume checks, output names), unit-tested with golden bytes.
//! - `conn`: connecting (directly, through a proxy, through a CONNECT tunnel; TLS with rustls)
//!   and buffered reads.
//! - `ui`: messages, progress (indicatif bar on a terminal, plain lines otherwise), the header
//!   log.
//! - [`run`]: the download: redirects, `NAME.part` renamed into place only when complete and
//!   of the announced length, `-c` and retries that resume with `Range`.

mod conn;
pub mod proto;
pub mod tls;
pub mod ui;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::header::CONTENT_RANGE;
use http::{Method, StatusCode};
use tokio_rustls::TlsConnector;
use url::Url;

use self::conn::Conn;
use self::proto::{
    BodyDecoder, BodyError, BodyInfo, Chain, Coding, DecompressError, Decompressor, HeadError,
    LogDir, ProxyEnv, RedirectError, RequestSpec, ResponseHead, Resume, TokenBucket,
};
use self::tls::TlsOptions;
use self::ui::{LogTarget, Ui};
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
        source: HeadError,
    },
    /// The server closed the connection before a complete response head.
    #[error("{peer} closed the connection {}", if *.partial { "in the middle of the response head" } else { "without answering" })]
    NoResponse {
        /// The peer.
        peer: String,
        /// Whether part of a head came.
        partial: bool,
    },
    /// A body that is malformed or shorter than announced.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A redirect that cannot be followed.
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    /// A compressed body that does not decode.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
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
            Error::Body(BodyError::Short { .. } | BodyError::ChunkedEnded { .. }) => true,
            _ => false,
        }
    }

    /// The exit code (see `src/exit.rs`).
    pub fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Net(e) => exit::code_for(e),
            Error::Tls(_) => exit::TLS,
            Error::Proxy(_) => exit::PROXY,
            Error::Status { .. } => exit::HTTP_STATUS,
            Error::Protocol(_)
            | Error::Head { .. }
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
    let res = Download::new(&cfg).run(&mut ui).await;
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
    head: ResponseHead,
    raw: Vec<u8>,
    url: Url,
    method: Method,
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

    async fn attempt(&mut self, ui: &mut Ui, retry: bool, fresh: bool) -> Result<Step, Error> {
        let cfg = self.cfg;
        let offset = self.offset(retry, fresh)?;
        let range_from = (offset > 0).then_some(offset);
        let Some(mut got) = self.fetch(ui, range_from).await? else {
            return Ok(Step::Done);
        };
        let status = got.head.status;

        if got.method == Method::HEAD {
            write_stdout(&got.raw)?;
            return self.check_status(ui, &got, false).map(|_| Step::Done);
        }

        // What the answer to a Range request means.
        let mut append = false;
        let mut skip = 0; // body bytes to drop (stdout only: they went out already)
        let mut total_known = None;
        if offset > 0 {
            match proto::check_resume(status, got.head.headers.get(CONTENT_RANGE), offset) {
                Resume::Append { total } => {
                    append = true;
                    total_known = total;
                }
                Resume::Complete => {
                    if let Output::File(path) = &cfg.output {
                        finish_file(path, None)?;
                        ui.info(&format!(
                            "the server says '{}' is already complete",
                            part_path(path).display()
                        ));
                        ui.info(&proto::summary_line(
                            &path.display().to_string(),
                            offset,
                            0,
                            clock::now() - self.started,
                        ));
                    }
                    return Ok(Step::Done);
                }
                Resume::Restart(reason) if status == StatusCode::OK => {
                    ui.warn(&reason);
                    if cfg.output == Output::Stdout {
                        skip = offset;
                    }
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
                    return Ok(Step::Fresh);
                }
                Resume::NotRange => {
                    // An error page instead of the rest of the file: keep the .part.
                    return Err(Error::Status {
                        url: got.url.to_string(),
                        status: got.head.status_line(),
                        hint: " to the resume request; the partial file is kept",
                    });
                }
            }
        }
        self.check_status(ui, &got, true)?;

        let framing = proto::framing(&got.method, &got.head)?;
        let mut decoder = BodyDecoder::new(framing);
        let coding = proto::content_coding(&got.head);
        let mut inflate = if cfg.compressed {
            if let Coding::Other(name) = &coding {
                ui.warn(&format!(
                    "unknown Content-Encoding {name:?}; saving the body as it came"
                ));
            }
            Decompressor::new(&coding)
        } else {
            None
        };
        if total_known.is_none() && !append {
            total_known = decoder.expected();
        }
        let total = if inflate.is_some() { None } else { total_known };

        // The sink: stdout, or NAME.part (appended when resuming).
        let mut sink = match &cfg.output {
            Output::Stdout => Sink::Stdout,
            Output::File(path) => {
                let part = part_path(path);
                if let Some(dir) = part.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(Error::file("creating", dir))?;
                }
                let file = if append {
                    std::fs::OpenOptions::new().append(true).open(&part)
                } else {
                    File::create(&part)
                }
                .map_err(Error::file("opening", &part))?;
                Sink::File(file, part)
            }
        };
        let base = if append { offset } else { 0 };
        let shown = match &cfg.output {
            Output::Stdout => "-".to_string(),
            Output::File(p) => p.display().to_string(),
        };
        ui.start(&shown, base, total);
        let mut written = base;
        let mut bucket = cfg
            .limit_rate
            .map(|r| TokenBucket::new(r, (r / 4).max(1024)));
        let read_max = cfg.limit_rate.map_or(usize::MAX, |r| {
            usize::try_from(r / 4).unwrap_or(usize::MAX).max(1024)
        });

        loop {
            // Decode what is buffered.
            loop {
                let (used, data) = decoder.decode(got.conn.buffered())?;
                if used == 0 {
                    break;
                }
                let mut data = data;
                if skip > 0 {
                    let n = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                    skip -= n as u64;
                    data = &data[n..];
                }
                self.moved += data.len() as u64;
                match &mut inflate {
                    None => {
                        sink.write(data)?;
                        written += data.len() as u64;
                    }
                    Some(inf) => {
                        for piece in data.chunks(proto::DECOMPRESS_PIECE) {
                            let out = inf.push(piece)?;
                            sink.write(out)?;
                            written += out.len() as u64;
                        }
                    }
                }
                if cfg.output == Output::Stdout {
                    self.stdout_done = written;
                }
                let moved = data.len();
                got.conn.consume(used);
                ui.progress(written);
                if let Some(b) = &mut bucket {
                    let wait = b.take(clock::now(), moved);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            if decoder.is_done() {
                break;
            }
            if got.conn.fill(read_max).await? == 0 {
                if decoder.until_close() && got.conn.unclean_eof() {
                    return Err(Error::Protocol(format!(
                        "{}: the TLS connection ended without close_notify in a body that runs \
                         until close, so it may be cut short ({written} bytes); not saved as complete",
                        got.conn.peer
                    )));
                }
                decoder.finish()?;
                break;
            }
        }
        if let Some(inf) = &mut inflate {
            let out = inf.finish()?;
            sink.write(out)?;
            written += out.len() as u64;
        }
        ui.progress(written);
        ui.finish_bar();
        if !decoder.trailers().is_empty() {
            tracing::debug!(
                "trailers: {}",
                String::from_utf8_lossy(decoder.trailers()).trim_end()
            );
        }

        match sink {
            Sink::Stdout => {
                io::stdout()
                    .flush()
                    .map_err(Error::file("writing", Path::new("stdout")))?;
            }
            Sink::File(file, _) => {
                drop(file);
                let Output::File(path) = &cfg.output else {
                    unreachable!("a file sink has a file output")
                };
                // The whole file's announced size (unknown once decoded).
                finish_file(path, total)?;
            }
        }
        ui.info(&proto::summary_line(
            &shown,
            written,
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
        let mut url = cfg.url.clone();
        let mut method = cfg.method.clone();
        let mut body = cfg.body.clone();
        let mut auth = cfg
            .auth
            .clone()
            .or_else(|| proto::url_credentials(&url).map(|(u, p)| proto::basic_auth(&u, &p)));
        let mut extra = cfg.headers.clone();
        let mut chain = Chain::new(&url, cfg.max_redirects);
        loop {
            let proxy = proto::choose_proxy(&url, cfg.proxy.as_ref(), cfg.proxy_env.as_ref())
                .map_err(Error::Usage)?;
            let mut conn = conn::open(&url, proxy.as_ref(), cfg, ui, &mut self.tls).await?;
            let spec = RequestSpec {
                method: &method,
                url: &url,
                absolute_form: conn.absolute_form,
                user_agent: &cfg.user_agent,
                compressed: cfg.compressed,
                range_from,
                authorization: auth.as_deref(),
                proxy_authorization: cfg.proxy_auth.as_deref(),
                body: body.as_ref().map(|b| BodyInfo {
                    len: b.len(),
                    content_type: "application/x-www-form-urlencoded",
                }),
                extra: &extra,
            };
            let head = spec.head().encode();
            ui.log_head(LogDir::Request, &conn.peer, conn.via_proxy, &head)
                .map_err(Error::log)?;
            conn.send(&head).await?;
            if let Some(b) = &body {
                send_body(&mut conn, b).await?;
            }
            let (resp, raw) = conn.read_head(ui).await?;
            if conn.absolute_form && resp.status.as_u16() == 407 {
                let name = proxy.as_ref().map_or(String::new(), proto::authority);
                return Err(Error::Proxy(conn::proxy_refusal(&name, &resp, cfg, "")));
            }
            if proto::is_redirect(resp.status) && proto::location(&resp).is_some() {
                let hop = proto::next_hop(resp.status, &method, &url, proto::location(&resp))?;
                if !cfg.follow {
                    ui.always(&format!("redirect {} -> {}", resp.status.as_u16(), hop.url));
                    return Ok(None);
                }
                chain.push(&hop.url)?;
                ui.info(&format!("redirect {} -> {}", resp.status.as_u16(), hop.url));
                if !hop.keep_credentials {
                    auth = proto::url_credentials(&hop.url).map(|(u, p)| proto::basic_auth(&u, &p));
                    extra.retain(|(n, _)| {
                        !n.eq_ignore_ascii_case("authorization")
                            && !n.eq_ignore_ascii_case("cookie")
                    });
                }
                if !hop.keep_body {
                    body = None;
                }
                url = hop.url;
                method = hop.method;
                continue;
            }
            return Ok(Some(Fetched {
                conn,
                head: resp,
                raw,
                url,
                method,
            }));
        }
    }
}

/// Sends a request body.
async fn send_body(conn: &mut Conn, body: &Body) -> Result<(), Error> {
    match body {
        Body::Bytes(b) => conn.send(b).await,
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
                sent += n as u64;
                if sent > *len {
                    break;
                }
                conn.send(&buf[..n]).await?;
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
            Ok(())
        }
    }
}

enum Sink {
    Stdout,
    File(File, PathBuf),
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Stdout => write_stdout(data),
            Sink::File(f, path) => f.write_all(data).map_err(Error::file("writing", path)),
        }
    }
}

fn write_stdout(data: &[u8]) -> Result<(), Error> {
    io::stdout()
        .lock()
        .write_all(data)
        .map_err(Error::file("writing", Path::new("stdout")))
}

/// `NAME.part`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Checks `NAME.part` has `want` bytes (when known) and renames it to NAME, replacing any
/// old NAME atomically.
fn finish_file(path: &Path, want: Option<u64>) -> Result<(), Error> {
    let part = part_path(path);
    let got = std::fs::metadata(&part)
        .map_err(Error::file("checking", &part))?
        .len();
    if let Some(want) = want
        && got != want
    {
        return Err(Error::SizeMismatch {
            path: path.display().to_string(),
            got,
            want,
        });
    }
    std::fs::rename(&part, path).map_err(Error::file("renaming the .part file to", path))
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
