//! The command-line tree: `socklab <protocol> <role> [options]`.
//!
//! Each protocol owns its arguments in `<protocol>/cli.rs` and converts them into its
//! `Config`; drivers never see clap types. The flag groups here mean the same thing in
//! every subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::net::{self, AllowList, BindOptions, ServeOptions};
use crate::simple::proto::Service;
use crate::{calc, echo, http, lab, simple};

/// socklab: reference clients and servers for the classic socket exercises.
#[derive(Debug, Parser)]
#[command(
    name = "socklab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with `socklab lab` to run every server on loopback, \
    or `socklab echo serve --help`."
)]
pub struct Cli {
    /// Output options, accepted after any subcommand.
    #[command(flatten)]
    pub out: OutputArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags about output, valid everywhere.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// More log detail on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors on stderr; no per-round status lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Results as JSON lines on stdout (for commands whose output is data).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The protocols.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo over TCP, UDP and Unix sockets (RFC 862), with optional framing.
    Echo {
        /// Server or client.
        #[command(subcommand)]
        role: echo::cli::Role,
    },
    /// Discard (RFC 863): a server that throws away what it gets, and a client.
    Discard {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::DiscardRole,
    },
    /// Character generator (RFC 864): an endless pattern of printable lines.
    Chargen {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// Quote of the day (RFC 865).
    Qotd {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// Daytime (RFC 867): the date and time as text; the client shows the clock offset.
    Daytime {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// Time (RFC 868): seconds since 1900 in 4 bytes; the client shows the clock offset.
    Time {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// All six simple services (echo, discard, daytime, qotd, chargen, time) on TCP and UDP,
    /// like inetd's built-ins.
    Inetd(simple::cli::InetdArgs),
    /// Postfix calculator protocol on TCP 51216 (the course's exercise).
    Calc {
        /// Server or client.
        #[command(subcommand)]
        role: calc::cli::Role,
    },
    /// HTTP/1.1: a static file server and a wget-like downloader.
    Http {
        /// Server or client.
        #[command(subcommand)]
        role: http::cli::Role,
    },
    /// Start every server on loopback and show how to try each one.
    Lab(lab::LabArgs),
}

impl Command {
    /// Runs the command.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Command::Echo { role } => role.run(out).await,
            Command::Calc { role } => role.run(out).await,
            Command::Discard { role } => role.run(out).await,
            Command::Chargen { role } => role.run(Service::Chargen, out).await,
            Command::Qotd { role } => role.run(Service::Qotd, out).await,
            Command::Daytime { role } => role.run(Service::Daytime, out).await,
            Command::Time { role } => role.run(Service::Time, out).await,
            Command::Inetd(args) => simple::cli::inetd(args).await,
            Command::Http { role } => role.run(out).await,
            Command::Lab(args) => lab::run(args).await,
        }
    }
}

/// A usage error found after clap parsing (a combination of flags that makes no sense).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Flags every server takes.
#[derive(Debug, Args, Clone)]
pub struct ServerNetArgs {
    /// Port to listen on (0 picks a free one; the real port is printed).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Address to bind: 127.0.0.1 (loopback, the default), ::1, 0.0.0.0, or :: (IPv4 and
    /// IPv6 on every interface).
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: String,
    /// UDP (datagrams) instead of TCP; with --unix, a Unix datagram socket.
    #[arg(short, long)]
    pub udp: bool,
    /// Listen on a Unix domain socket at PATH instead of a port (a stale socket file left
    /// by a dead server is replaced; a live one or a regular file is not).
    #[arg(long, value_name = "PATH", conflicts_with = "port")]
    pub unix: Option<PathBuf>,
    /// Close a client that sends nothing for this long (e.g. 30s, 5m).
    #[arg(short, long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// listen() backlog: connections the kernel queues before we accept them.
    #[arg(long, default_value_t = net::listen::DEFAULT_BACKLOG, value_name = "N")]
    pub backlog: i32,
    /// Accept only these clients (an address or CIDR network; repeatable). Others are
    /// dropped and logged.
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    pub allow: Vec<IpNet>,
    /// Serve at most N clients at once; more wait in the listen backlog.
    #[arg(long, default_value_t = net::serve::DEFAULT_MAX_CONNS, value_name = "N")]
    pub max_conns: usize,
    /// On Ctrl-C/SIGTERM, give open connections this long to finish.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    pub trace: bool,
    /// Turn SO_REUSEADDR off (on by default, so a restarted server can rebind at once).
    #[arg(long)]
    pub no_reuseaddr: bool,
}

impl ServerNetArgs {
    /// The accept-loop policy.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            allow: AllowList::new(self.allow.clone()),
            max_conns: self.max_conns,
            grace: self.grace,
        }
    }

    /// Socket options for binding.
    pub fn bind_options(&self) -> BindOptions {
        BindOptions {
            backlog: self.backlog,
            reuse_addr: !self.no_reuseaddr,
        }
    }

    /// The address to bind, with `default_port` when `--port` is not given.
    pub async fn bind_addr(&self, default_port: u16) -> anyhow::Result<SocketAddr> {
        let port = self.port.unwrap_or(default_port);
        let host = self.bind.trim_start_matches('[').trim_end_matches(']');
        if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UsageError(format!(
                "--bind takes an address without a port ({:?}); give the port with -p",
                self.bind
            ))
            .into());
        }
        let addrs = net::addr::resolve_host(host, port).await?;
        Ok(addrs[0])
    }
}

/// Parses a human duration: `300s`, `5m`, `1.5s`, `200ms`, `1h 30m`; a bare number means
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s:?} is not a duration"));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; try 300s, 5m, 1.5s or 200ms"))?;
    d.try_into()
        .map_err(|_| format!("{s:?} is negative or too large"))
}

/// Parses a byte size: `1024`, `64k`, `16M` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1usize),
        Some((i, _)) => {
            let mult = match s[i..].to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                "b" => 1,
                other => return Err(format!("unknown size unit {other:?}; use k, M or G")),
            };
            (&s[..i], mult)
        }
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; try 1024, 64k or 16M"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert!(parse_size("12q").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
