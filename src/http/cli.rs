//! `socklab http serve` and `socklab http get`: arguments and their conversion to configs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::client::request::{basic_auth, parse_header_arg, url_credentials};
use super::client::{self, Body, Family, Output, output, proxy, tls::TlsOptions, ui::LogTarget};
use super::server::{self, log::Destination};
use crate::args::{
    OutputArgs, ServerNetArgs, UsageError, parse_duration, parse_size, read_operator_file,
};
use crate::exit::CodedResult;
use crate::net;

/// HTTP roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Serve the files under a directory over HTTP/1.1 (GET and HEAD, ranges, conditional
    /// requests, keep-alive, directory listings).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Download a URL like wget: redirects, proxies (CONNECT for https), resume, a header
    /// log, progress. Saves to NAME.part and renames it only when complete.
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
}

const GET_EXAMPLES: &str = "\
Examples:
  socklab http get http://127.0.0.1:8080/big.bin        saves big.bin (via big.bin.part)
  socklab http get http://127.0.0.1:8080/ -O - | less   the body on stdout
  socklab http get -c http://127.0.0.1:8080/big.bin     resume big.bin.part with Range
  socklab http get --header-log - http://127.0.0.1:8080/old   every head of every hop
  socklab http get -x 127.0.0.1:3128 https://example.test/ --cacert ca.pem
  socklab http get --fail -q http://127.0.0.1:8080/x || echo \"failed: $?\"
Output: the last path segment of the URL (index.html for /), in --output-dir.
An existing file is replaced only when the new one is complete (--no-clobber keeps it).
Without --fail an error page (404...) is saved, with a warning, and the exit code is 0.
Proxies: -x, or http_proxy / https_proxy / no_proxy from the environment (--no-proxy
ignores them; -x is always used).
Limits: -t (60s) without progress, -m/--max-time for the whole run, --max-filesize;
with --compressed a body inflating past 100:1 after its first MiB is refused (a
decompression bomb) unless --max-filesize bounds it instead.
Exit codes: 1 larger than --max-filesize, 2 usage, 3 network, 4 timeout (-t, -m),
5 protocol (short body, bad response, redirect loop, decompression bomb, endless 1xx),
6 local file, 7 HTTP status with --fail, 8 TLS, 9 proxy.";

/// `socklab http get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The URL (http:// or https://; http:// is assumed without a scheme).
    url: String,
    /// Save to FILE; `-O -` writes the body to stdout.
    #[arg(short = 'O', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Directory for the default file name.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    output_dir: Option<PathBuf>,
    /// If the file exists, leave it alone and exit 0.
    #[arg(long)]
    no_clobber: bool,
    /// Resume FILE.part with a Range request.
    #[arg(short = 'c', long = "continue")]
    resume: bool,
    /// Retries after a broken or stalled transfer; each resumes from the .part (waiting 1 s,
    /// 2 s, 4 s ...).
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
    /// Most redirects to follow.
    #[arg(long, default_value_t = 20, value_name = "N")]
    max_redirects: usize,
    /// Print a redirect (status and Location) and stop.
    #[arg(long)]
    no_follow: bool,
    /// Use this HTTP proxy (http://host:port or host:port), whatever the environment says.
    #[arg(short = 'x', long, value_name = "URL")]
    proxy: Option<String>,
    /// Ignore http_proxy, https_proxy and no_proxy.
    #[arg(long)]
    no_proxy: bool,
    /// Basic credentials for the proxy (Proxy-Authorization).
    #[arg(long, value_name = "USER:PASS")]
    proxy_user: Option<String>,
    /// Basic credentials for the server (dropped on a redirect to another host).
    #[arg(long, value_name = "USER:PASS")]
    user: Option<String>,
    /// Append every request and response head (each hop, each CONNECT) with timestamps to
    /// FILE; `-` is stderr.
    #[arg(long, value_name = "FILE")]
    header_log: Option<PathBuf>,
    /// At most RATE bytes a second (k, M, G: powers of 1024), e.g. 200k.
    #[arg(long, value_name = "RATE", value_parser = parse_size)]
    limit_rate: Option<usize>,
    /// Give up connecting after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    connect_timeout: Duration,
    /// Give up when nothing moves for this long (reads, writes, the TLS handshake).
    #[arg(short = 't', long, default_value = "60s", value_parser = parse_duration, value_name = "DUR")]
    timeout: Duration,
    /// Give up after this long in all: connecting, redirects, the body, retries and their
    /// waits (exit 4; the .part is kept, never renamed).
    #[arg(short = 'm', long, value_parser = parse_duration, value_name = "DUR")]
    max_time: Option<Duration>,
    /// Save at most SIZE bytes (k, M, G: powers of 1024): a larger announced size is refused
    /// before downloading, a body that grows past it is stopped (exit 1). It also replaces
    /// the --compressed ratio limit (100:1 after the first MiB) with itself.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_filesize: Option<usize>,
    /// An extra request header, "Name: value" (repeatable; an empty value removes a default).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The User-Agent.
    #[arg(short = 'A', long, value_name = "UA")]
    user_agent: Option<String>,
    /// IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// IPv6 addresses only.
    #[arg(short = '6')]
    ipv6: bool,
    /// Ask for gzip or deflate and decode the body.
    #[arg(long)]
    compressed: bool,
    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Treat a status of 400 or more as an error: save nothing, exit 7.
    #[arg(long)]
    fail: bool,
    /// The request method (HEAD prints the response head and saves nothing).
    #[arg(long, value_name = "M")]
    method: Option<String>,
    /// Send STR as a POST body (application/x-www-form-urlencoded unless -H says otherwise).
    #[arg(long, value_name = "STR", conflicts_with = "post_file")]
    post_data: Option<String>,
    /// Send the contents of FILE as a POST body.
    #[arg(long, value_name = "FILE")]
    post_file: Option<PathBuf>,
    /// Print every byte sent and received as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
}

fn credentials(arg: &str) -> String {
    let (user, pass) = arg.split_once(':').unwrap_or((arg, ""));
    basic_auth(user, pass)
}

impl GetArgs {
    fn config(&self, out: OutputArgs) -> Result<client::Config, UsageError> {
        let text = self.url.trim();
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| UsageError(format!("bad URL {text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UsageError(format!(
                "unsupported scheme {:?} in {text:?}: only http and https",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UsageError(format!("bad URL {text:?}: no host")));
        }
        let output = match &self.output {
            Some(p) if p.as_os_str() == "-" => Output::Stdout,
            Some(p) => Output::File(p.clone()),
            None => {
                let name = output::default_name(&url);
                Output::File(match &self.output_dir {
                    Some(dir) => dir.join(name),
                    None => PathBuf::from(name),
                })
            }
        };
        if self.resume && output == Output::Stdout {
            return Err(UsageError(
                "-c resumes a file; it cannot be used with -O -".into(),
            ));
        }
        for (name, d) in [
            ("--connect-timeout", self.connect_timeout),
            ("--timeout", self.timeout),
            ("--max-time", self.max_time.unwrap_or(Duration::MAX)),
        ] {
            if d.is_zero() {
                return Err(UsageError(format!("{name} must be more than 0")));
            }
        }
        if self.limit_rate == Some(0) {
            return Err(UsageError("--limit-rate must be more than 0".into()));
        }
        let headers = self
            .headers
            .iter()
            .map(|h| parse_header_arg(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(UsageError)?;
        let body = match (&self.post_data, &self.post_file) {
            (Some(s), _) => Some(Body::Bytes(s.clone().into_bytes())),
            (None, Some(path)) => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| UsageError(format!("--post-file {}: {e}", path.display())))?;
                if !meta.is_file() {
                    return Err(UsageError(format!(
                        "--post-file {}: not a regular file",
                        path.display()
                    )));
                }
                Some(Body::File(path.clone(), meta.len()))
            }
            (None, None) => None,
        };
        let method = match &self.method {
            Some(m) => http::Method::from_bytes(m.as_bytes())
                .map_err(|_| UsageError(format!("--method {m:?} is not a method name")))?,
            None if body.is_some() => http::Method::POST,
            None => http::Method::GET,
        };
        let proxy = self
            .proxy
            .as_deref()
            .map(proxy::parse_proxy)
            .transpose()
            .map_err(UsageError)?;
        let proxy_auth = match (&self.proxy_user, &proxy) {
            (Some(u), _) => Some(credentials(u)),
            (None, Some(p)) => url_credentials(p).map(|(u, p)| basic_auth(&u, &p)),
            (None, None) => None,
        };
        let header_log = self.header_log.as_ref().map(|p| {
            if p.as_os_str() == "-" {
                LogTarget::Stderr
            } else {
                LogTarget::File(p.clone())
            }
        });
        Ok(client::Config {
            url,
            output,
            no_clobber: self.no_clobber,
            resume: self.resume,
            retries: self.retries,
            max_redirects: self.max_redirects,
            follow: !self.no_follow,
            proxy,
            proxy_env: (!self.no_proxy).then(client::proxy_env),
            proxy_auth,
            auth: self.user.as_deref().map(credentials),
            header_log,
            quiet: out.quiet,
            limit_rate: self.limit_rate.map(|r| r as u64),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_time: self.max_time,
            max_filesize: self.max_filesize.map(|m| m as u64),
            headers,
            user_agent: self
                .user_agent
                .clone()
                .unwrap_or_else(client::default_user_agent),
            family: match (self.ipv4, self.ipv6) {
                (true, _) => Family::V4,
                (_, true) => Family::V6,
                _ => Family::Any,
            },
            compressed: self.compressed,
            tls: TlsOptions {
                cacert: self.cacert.clone(),
                insecure: self.insecure,
            },
            fail: self.fail,
            method,
            body,
            trace: self.trace,
        })
    }
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab http serve                         the current directory on 127.0.0.1:8080
  socklab http serve site -p 0 --no-listing  a free port (printed first); no directory listings
  socklab http serve . --access-log access.log --json-log
  socklab http serve site --precompressed    site/app.js.br, .zst, .gz sent to who accepts them
  socklab http serve site -p 8443 --tls-self-signed   HTTPS with a certificate made now
  socklab http serve site -p 8443 --tls-cert fullchain.pem --tls-key key.pem
Try it:
  curl -v http://127.0.0.1:8080/             a listing (or index.html)
  curl -r 0-99 http://127.0.0.1:8080/big.bin the first 100 bytes (206 Partial Content)
  curl -v http://127.0.0.1:8080/a http://127.0.0.1:8080/b   one connection, two requests
  printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc 127.0.0.1 8080
  curl --compressed -v http://127.0.0.1:8080/app.js   with --precompressed: Content-Encoding: br
The access log (Combined Log Format + seconds taken) goes to stdout after the
`listening on` line unless --access-log or --no-access-log. Lines are written in
batches, at most 100 ms after their request. It never slows a request: when a worker
has 1 MiB of lines not yet written (a stdout nobody reads) new lines are dropped, and
stderr counts them (at once, every 10 s at most, and in total at shutdown).
Timeouts: reading a request head is bounded by --header-timeout and --keepalive-timeout;
a request body gets --header-timeout, then one second more for each --body-min-rate
bytes, and --body-timeout in all (408 after it); -t/--timeout bounds each write, so a
client that stops reading is dropped after it.
HTTPS: stdout still starts with `listening on ADDR`; stderr gives the https:// URL, the
certificate's SHA-256 fingerprint and, with --tls-self-signed, the PEM to trust:
  curl --cacert PEM https://localhost:8443/      wget --ca-certificate=PEM ...
  chromium --ignore-certificate-errors-spki-list=HASH https://localhost:8443/
  openssl s_client -connect 127.0.0.1:8443 -tls1_2 -alpn http/1.1
Files are encrypted from a 64 KiB buffer (sendfile cannot encrypt); a plain-HTTP request
on the HTTPS port gets a 400 page saying to use https://. SSLKEYLOGFILE=FILE writes the
session keys, so Wireshark or `tshark -o tls.keylog_file:FILE` can decrypt a capture.";

/// `socklab http serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory to serve.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    net: ServerNetArgs,
    /// Serve and list dotfiles (`.env`, `.git/`); without it they are 404.
    #[arg(long)]
    hidden: bool,
    /// Never list a directory: one without index.html is 403 Forbidden.
    #[arg(long)]
    no_listing: bool,
    /// Send this file's contents (as text/html) as the body of every 404 (a regular file of
    /// at most 1 MiB, read once at start-up).
    #[arg(long, value_name = "FILE")]
    not_found: Option<PathBuf>,
    /// Append the access log to FILE instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "no_access_log")]
    access_log: Option<PathBuf>,
    /// No access log.
    #[arg(long)]
    no_access_log: bool,
    /// Access log lines as JSON objects.
    #[arg(long)]
    json_log: bool,
    /// Time allowed for a whole request head, from its first byte (408 after it).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    header_timeout: Duration,
    /// Time allowed for a whole request body, from the end of its head (408 after it).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    body_timeout: Duration,
    /// Least average rate of a request body once its first --header-timeout is spent, in
    /// bytes a second (k, M: powers of 1024); a body that falls behind gets 408. 0: no rate
    /// check, only --body-timeout.
    #[arg(long, default_value = "1k", value_parser = parse_size, value_name = "RATE")]
    body_min_rate: usize,
    /// Close a keep-alive connection idle for this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    keepalive_timeout: Duration,
    /// Close a connection after this many requests.
    #[arg(long, default_value_t = server::DEFAULT_MAX_REQUESTS, value_name = "N")]
    max_requests: usize,
    /// Worker threads, each accepting and serving its own connections, like nginx's
    /// worker processes [default: one per CPU core this process may run on].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Serve FILE.br, FILE.zst or FILE.gz (made beforehand, e.g. `gzip -k FILE`) instead of
    /// FILE to clients whose Accept-Encoding accepts that coding, with Content-Encoding and
    /// FILE's Content-Type (like nginx's gzip_static). The client's q-values choose; ties go
    /// br, then zstd, then gzip. FILE itself must exist. Listings hide the variants.
    #[arg(long)]
    precompressed: bool,
    /// Let browsers and caches reuse files for DUR without asking (Cache-Control: max-age);
    /// without it files say Cache-Control: no-cache (always revalidated, a cheap 304).
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    max_age: Option<Duration>,
    /// Open-file cache: remember up to N files (descriptor, metadata, ETag, and the bytes of
    /// files up to 64 KiB), so a request for a known path costs no open, stat, read or close
    /// (like nginx's open_file_cache). 0: no cache, every request opens its file.
    #[arg(long, default_value_t = server::cache::DEFAULT_ENTRIES, value_name = "N")]
    file_cache: usize,
    /// How long a cached file is trusted before the next request for it checks the file
    /// again (a change, a rename over it, a deletion or a chmod is seen at most this late).
    /// 0: no cache, as --file-cache 0.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DUR")]
    file_cache_valid: Duration,
    /// HTTPS: the certificate chain to present, a PEM file (the server's certificate first,
    /// then any intermediates). Needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        help_heading = "HTTPS (TLS 1.3 and 1.2, ALPN http/1.1)"
    )]
    tls_cert: Option<PathBuf>,
    /// HTTPS: the private key of --tls-cert, a PEM file (PKCS#8, PKCS#1 or SEC1). Refused
    /// when everyone may read it (group-readable is fine, as for Debian's ssl-cert group).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        help_heading = "HTTPS (TLS 1.3 and 1.2, ALPN http/1.1)"
    )]
    tls_key: Option<PathBuf>,
    /// HTTPS with a certificate made at start (ECDSA P-256, valid a year) for localhost,
    /// 127.0.0.1, ::1 and the --bind address (the host name when bound to a wildcard). Its
    /// PEM file, SHA-256 fingerprint and public-key hash are printed on stderr; the key is
    /// never written.
    #[arg(
        long,
        conflicts_with_all = ["tls_cert", "tls_key"],
        help_heading = "HTTPS (TLS 1.3 and 1.2, ALPN http/1.1)"
    )]
    tls_self_signed: bool,
    /// Write the self-signed certificate's PEM to FILE (replaced, and kept after the server
    /// stops) instead of a private temporary directory removed when it stops.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_self_signed",
        help_heading = "HTTPS (TLS 1.3 and 1.2, ALPN http/1.1)"
    )]
    tls_self_signed_out: Option<PathBuf>,
}

impl ServeArgs {
    /// Where the TLS certificate comes from (None: plain HTTP).
    fn tls_source(&self, host: &str) -> Option<server::tls::Source> {
        if self.tls_self_signed {
            let hostname = server::tls::hostname();
            return Some(server::tls::Source::SelfSigned {
                names: server::tls::self_signed_names(host, hostname.as_deref()),
                out: self.tls_self_signed_out.clone(),
            });
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls::Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            // clap's `requires` makes them come in pairs.
            _ => None,
        }
    }
}

impl TryFrom<&ServeArgs> for server::Config {
    type Error = UsageError;

    fn try_from(a: &ServeArgs) -> Result<Self, UsageError> {
        if a.net.udp {
            return Err(UsageError("HTTP/1.1 runs over TCP, not --udp".into()));
        }
        if a.net.unix.is_some() {
            return Err(UsageError(
                "socklab http serve listens on TCP only; --unix is not supported".into(),
            ));
        }
        for (name, d) in [
            ("--header-timeout", a.header_timeout),
            ("--body-timeout", a.body_timeout),
            ("--keepalive-timeout", a.keepalive_timeout),
        ] {
            if d.is_zero() {
                return Err(UsageError(format!("{name} must be more than 0")));
            }
        }
        if a.workers == Some(0) {
            return Err(UsageError("--workers must be at least 1".into()));
        }
        if a.max_requests == 0 {
            return Err(UsageError("--max-requests must be at least 1".into()));
        }
        let root = std::fs::canonicalize(&a.dir)
            .map_err(|e| UsageError(format!("cannot serve {}: {e}", a.dir.display())))?;
        if !root.is_dir() {
            return Err(UsageError(format!(
                "cannot serve {}: not a directory",
                a.dir.display()
            )));
        }
        let not_found = match &a.not_found {
            None => None,
            Some(path) => {
                Some(read_operator_file("--not-found", path, server::MAX_NOT_FOUND_FILE)?.into())
            }
        };
        let log = match (&a.access_log, a.no_access_log) {
            (_, true) => Destination::Off,
            (Some(path), false) => {
                // Open it once now so a bad path is a usage error, not a silent log.
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| UsageError(format!("--access-log {}: {e}", path.display())))?;
                Destination::File(path.clone())
            }
            (None, false) => Destination::Stdout,
        };
        let mut serve = a.net.serve_options();
        serve.workers = a.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(server::Config {
            serve,
            root,
            hidden: a.hidden,
            listing: !a.no_listing,
            not_found,
            log,
            json_log: a.json_log,
            header_timeout: a.header_timeout,
            body_timeout: a.body_timeout,
            body_min_rate: a.body_min_rate as u64,
            keepalive_timeout: a.keepalive_timeout,
            max_requests: a.max_requests,
            // For HTTP, reads are bounded by --header-timeout and --keepalive-timeout; -t
            // bounds each write, so a client that stops reading is dropped.
            send_timeout: a.net.timeout,
            trace: a.net.trace,
            precompressed: a.precompressed,
            max_age: a.max_age,
            // Loaded by `serve` (its errors are TLS errors, not usage errors).
            tls: None,
            file_cache: a.file_cache,
            file_cache_valid: a.file_cache_valid,
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args).await,
            Role::Get(args) => {
                let cfg = args.config(out)?;
                client::run(cfg).await.coded()?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = server::Config::try_from(&args)?;
    let spec = args.net.listen_spec(server::DEFAULT_PORT)?;
    let host = match &spec.place {
        net::host::Place::Inet { host, .. } => host.as_str(),
        net::host::Place::Unix(_) => "localhost",
    };
    // Before binding: a bad certificate or key is a usage error, with no `listening on`.
    let tls = match args.tls_source(host) {
        Some(source) => Some(server::tls::Identity::load(&source).coded()?),
        None => None,
    };
    cfg.tls = tls.as_ref().map(|t| t.config.clone());
    let shutdown = net::shutdown::on_signals();
    let bound = spec.bind().await?;
    bound.announce()?;
    if let Some(tls) = &tls {
        tell_tls(tls, bound.local_addr());
    }
    let summary = server::run(bound, cfg, shutdown).await?;
    // The self-signed certificate's temporary directory goes now.
    drop(tls);
    if summary.failed_workers > 0 {
        anyhow::bail!(
            "{} worker thread(s) failed (see the messages above); the server stopped",
            summary.failed_workers
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr (stdout's first line stays `listening on ADDR`) where to point a client
/// and how it can trust the certificate.
fn tell_tls(tls: &server::tls::Identity, local: Option<std::net::SocketAddr>) {
    use std::io::Write;
    let url = match local {
        Some(a) if a.ip().is_unspecified() => format!("https://localhost:{}/", a.port()),
        Some(a) => format!("https://{a}/"),
        None => "https://localhost/".into(),
    };
    let mut text = format!("socklab: serving HTTPS (TLS 1.3 and 1.2, ALPN http/1.1) at {url}\n");
    if let Some(ss) = &tls.self_signed {
        text += &format!(
            "socklab: self-signed certificate for {} written to {}\n\
             socklab: trust it with: curl --cacert {} {url}\n",
            ss.names.join(", "),
            ss.pem.display(),
            ss.pem.display(),
        );
    }
    text += &format!(
        "socklab: certificate SHA-256 fingerprint {}\n\
         socklab: public key (SPKI) SHA-256 {} \
         (chromium --ignore-certificate-errors-spki-list={})\n",
        tls.cert_sha256, tls.spki_sha256, tls.spki_sha256
    );
    // Best effort: a closed stderr must not stop the server.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
