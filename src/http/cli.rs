//! `socklab http serve`: arguments and their conversion to the server's config.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::server::{self, log::Destination};
use crate::cli::{OutputArgs, ServerNetArgs, UsageError, parse_duration};
use crate::net;

/// HTTP roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Serve the files under a directory over HTTP/1.1 (GET and HEAD, ranges, conditional
    /// requests, keep-alive, directory listings).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab http serve                         the current directory on 127.0.0.1:8080
  socklab http serve site -p 0 --no-listing  a free port (printed first); no directory listings
  socklab http serve . --access-log access.log --json-log
Try it:
  curl -v http://127.0.0.1:8080/             a listing (or index.html)
  curl -r 0-99 http://127.0.0.1:8080/big.bin the first 100 bytes (206 Partial Content)
  curl -v http://127.0.0.1:8080/a http://127.0.0.1:8080/b   one connection, two requests
  printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc 127.0.0.1 8080
The access log (Combined Log Format + seconds taken) goes to stdout after the
`listening on` line unless --access-log or --no-access-log.
Timeouts: reading a request is bounded by --header-timeout and --keepalive-timeout;
-t/--timeout bounds each write, so a client that stops reading is dropped after it.";

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
    /// Send this file's contents (as text/html) as the body of every 404.
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
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| UsageError(format!("--not-found {}: {e}", path.display())))?
                    .into(),
            ),
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
            keepalive_timeout: a.keepalive_timeout,
            max_requests: a.max_requests,
            // For HTTP, reads are bounded by --header-timeout and --keepalive-timeout; -t
            // bounds each write, so a client that stops reading is dropped.
            send_timeout: a.net.timeout,
            trace: a.net.trace,
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, _out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = server::Config::try_from(&args)?;
    let shutdown = net::shutdown::on_signals();
    let addr = args.net.bind_addr(server::DEFAULT_PORT).await?;
    let listener = net::listen::tcp_listener(addr, args.net.bind_options())?;
    net::announce(listener.local_addr()?)?;
    server::run(listener, cfg, shutdown).await;
    Ok(ExitCode::SUCCESS)
}
