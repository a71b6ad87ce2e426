//! `socklab {discard,chargen,qotd,daytime,time} serve|get|send` and `socklab inetd`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use ipnet::IpNet;
use tokio::task::JoinSet;

use super::proto::{MAX_QUOTES_FILE, Quotes, Service};
use super::{client, server};
use crate::args::{
    GuardArgs, JsonArg, OutputArgs, ServerNetArgs, UsageError, parse_duration, parse_size,
    read_operator_text,
};
use crate::exit::CodedResult;
use crate::net::guard::AMPLIFIER_LIMIT;
use crate::net::host;
use crate::net::{self, AllowList, BindOptions, Endpoint, NetError, ServeOptions};

/// Roles of daytime and time.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run the server (TCP, or UDP with -u) on the service's RFC port unless -p says otherwise.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Ask a server and print its reply and the offset between its clock and ours.
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
}

/// Roles of qotd.
#[derive(Debug, Subcommand)]
pub enum QotdRole {
    /// Run a quote-of-the-day server (RFC 865; TCP, or UDP with -u), port 17 unless -p.
    #[command(after_help = QOTD_SERVE_EXAMPLES)]
    Serve(QotdServeArgs),
    /// Ask a server for a quote and print it.
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
}

/// Roles of chargen.
#[derive(Debug, Subcommand)]
pub enum ChargenRole {
    /// Run a character generator (RFC 864; TCP, or UDP with -u), port 19 unless -p.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Read the generator's lines and check their pattern.
    #[command(after_help = CHARGEN_GET_EXAMPLES)]
    Get(ChargenGetArgs),
}

/// Roles of discard.
#[derive(Debug, Subcommand)]
pub enum DiscardRole {
    /// Run a discard server (RFC 863): everything sent is thrown away.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Send a message (or stdin) to a discard server.
    #[command(after_help = DISCARD_SEND_EXAMPLES)]
    Send(SendArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:  (daytime shown; discard, chargen, qotd and time take the same flags)
  socklab daytime serve -p 10013             TCP on 127.0.0.1:10013 (port 13 needs root)
  socklab daytime serve -u -p 10013          the same over UDP (rate-limited per source)
  socklab daytime serve -p 0                 a free port, printed first
Try it:
  nc 127.0.0.1 10013                         prints the date and closes
  nc -u 127.0.0.1 10013                      type Enter: one datagram, one reply
  socklab daytime get 127.0.0.1:10013        the reply and the clock offset";

const QOTD_SERVE_EXAMPLES: &str = "\
Examples:
  socklab qotd serve -p 10017                built-in quotes on 127.0.0.1:10017
  socklab qotd serve -p 10017 --quotes q.txt one quote per line, or fortune style (%)
Try it:
  nc 127.0.0.1 10017
  socklab qotd get 10017";

const GET_EXAMPLES: &str = "\
Examples:
  socklab daytime get 127.0.0.1:10013        the date and the offset of its clock
  socklab time get -u 10037                  RFC 868 over UDP (4 bytes, converted)
  socklab qotd get 10017 --json              the quote as a JSON object
Exit status: 0 a valid reply, 3 network error, 4 timeout, 5 a malformed reply (see README).";

const CHARGEN_GET_EXAMPLES: &str = "\
Examples:
  socklab chargen get 127.0.0.1:10019        7030 bytes (a whole 95-line cycle), checked
  socklab chargen get 10019 --bytes 1M -q > out.txt
  socklab chargen get -u 10019               one datagram (at most 512 bytes, RFC 864)
Exit status: 0 the pattern holds, 3 network error, 4 timeout, 5 the pattern breaks.";

const DISCARD_SEND_EXAMPLES: &str = "\
Examples:
  socklab discard send 127.0.0.1:10009 hello
  socklab discard send 10009 < big.bin       stream a file; done when the server closes
  socklab discard send -u 10009 ping         UDP: delivery cannot be confirmed";

/// `socklab <service> serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    net: ServerNetArgs,
    #[command(flatten)]
    guard: GuardArgs,
}

/// `socklab qotd serve`.
#[derive(Debug, Args)]
pub struct QotdServeArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Quotes from FILE, one per line, or fortune style (entries separated by lines holding
    /// only %). Entries of 512 characters or more are skipped. FILE must be a regular UTF-8
    /// file of at most 16 MiB.
    #[arg(long, value_name = "FILE")]
    quotes: Option<PathBuf>,
}

/// `socklab <service> get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Server address: HOST:PORT, [IPV6]:PORT or PORT (loopback).
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Ask over UDP (one datagram, resent with backoff when no reply comes).
    #[arg(short, long)]
    udp: bool,
    /// Give up after this long.
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// UDP: datagrams to resend when no reply comes.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// `socklab chargen get`.
#[derive(Debug, Args)]
pub struct ChargenGetArgs {
    #[command(flatten)]
    get: GetArgs,
    /// Over TCP: read this many bytes, then close (e.g. 10k, 1M).
    #[arg(long, default_value = "7030", value_parser = parse_size, value_name = "N")]
    bytes: usize,
}

/// `socklab discard send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Server address: HOST:PORT, [IPV6]:PORT or PORT (loopback).
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Message to send (a newline is added); without one, stdin is sent.
    #[arg(value_name = "MESSAGE")]
    message: Vec<String>,
    /// Over UDP (nothing comes back, so delivery cannot be confirmed).
    #[arg(short, long)]
    udp: bool,
    /// Give up after this long.
    #[arg(short, long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print every send as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// `socklab inetd`.
#[derive(Debug, Args)]
#[command(after_help = INETD_EXAMPLES)]
pub struct InetdArgs {
    /// Add N to every RFC port (e.g. --port-base 10000: daytime on 10013), so no root is
    /// needed and two can run at once.
    #[arg(long, default_value_t = 0, value_name = "N")]
    port_base: u16,
    /// Bind every service to a free port chosen by the kernel, TCP and UDP on the same one
    /// (for tests and scripts).
    #[arg(long, conflicts_with = "port_base")]
    ephemeral: bool,
    /// Address to bind (loopback by default; see the UDP reflection guard before changing it).
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Close a client that sends nothing for this long.
    #[arg(short, long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    /// Accept only these clients (address or CIDR; repeatable).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    allow: Vec<IpNet>,
    /// Serve at most N clients at once per service; more wait in the listen backlog.
    #[arg(long, default_value_t = net::serve::DEFAULT_MAX_CONNS, value_name = "N")]
    max_conns: usize,
    /// On Ctrl-C/SIGTERM, give open connections this long to finish.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    grace: Duration,
    /// Quotes for qotd (see `socklab qotd serve --help`).
    #[arg(long, value_name = "FILE")]
    quotes: Option<PathBuf>,
    #[command(flatten)]
    guard: GuardArgs,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
}

const INETD_EXAMPLES: &str = "\
Examples:
  socklab inetd --port-base 10000            echo on 10007, daytime on 10013, … (no root)
  socklab inetd --ephemeral                  free ports; each service's line names it
  sudo socklab inetd                         the RFC ports 7, 9, 13, 17, 19, 37
Try it:
  nc 127.0.0.1 10013; rdate -p -o 10037 127.0.0.1
The first stdout line is `listening on ADDR echo/tcp`; one line follows per service and
transport.";

fn load_quotes(path: Option<&PathBuf>) -> anyhow::Result<Arc<Quotes>> {
    let Some(path) = path else {
        return Ok(Arc::new(Quotes::builtin()));
    };
    let text = read_operator_text("--quotes", path, MAX_QUOTES_FILE)?;
    let quotes =
        Quotes::parse(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    if quotes.skipped > 0 {
        tracing::warn!(
            "{}: skipped {} quote(s) of 512 characters or more, or with non-ASCII characters",
            path.display(),
            quotes.skipped
        );
    }
    tracing::info!("{} quote(s) from {}", quotes.quotes.len(), path.display());
    Ok(Arc::new(quotes))
}

impl Role {
    /// Runs the role for `service` (daytime or time).
    pub async fn run(self, service: Service, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(service, args, None).await,
            Role::Get(args) => get(service, args, 0, out).await,
        }
    }
}

impl QotdRole {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            QotdRole::Serve(args) => serve(Service::Qotd, args.serve, args.quotes.as_ref()).await,
            QotdRole::Get(args) => get(Service::Qotd, args, 0, out).await,
        }
    }
}

impl ChargenRole {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            ChargenRole::Serve(args) => serve(Service::Chargen, args, None).await,
            ChargenRole::Get(args) => get(Service::Chargen, args.get, args.bytes, out).await,
        }
    }
}

impl DiscardRole {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            DiscardRole::Serve(args) => serve(Service::Discard, args, None).await,
            DiscardRole::Send(args) => send(args, out).await,
        }
    }
}

/// The rate limit a service gets unless `--rate` says otherwise: the services whose reply
/// is larger than the request are amplifiers.
fn default_limit(service: Service) -> Option<f64> {
    match service {
        Service::Echo | Service::Discard => None,
        _ => Some(AMPLIFIER_LIMIT.0),
    }
}

/// A server's flags with the service they are for (its RFC port, its rate limit) and the
/// quotes file (qotd only).
struct ServeFor<'a> {
    service: Service,
    args: &'a ServeArgs,
    quotes: Option<&'a PathBuf>,
}

impl TryFrom<ServeFor<'_>> for server::Config {
    type Error = anyhow::Error;

    fn try_from(s: ServeFor<'_>) -> anyhow::Result<Self> {
        let ServeFor {
            service,
            args,
            quotes,
        } = s;
        if args.net.unix.is_some() {
            return Err(
                UsageError(format!("{service} serves TCP and UDP ports, not --unix")).into(),
            );
        }
        let port = args.net.port.unwrap_or(service.rfc_port());
        Ok(server::Config {
            serve: args.net.serve_options(),
            timeout: args.net.timeout,
            quotes: load_quotes(quotes)?,
            guard: args.guard.config(default_limit(service), &[port])?,
            tz: jiff::tz::TimeZone::system(),
            daytime: Arc::default(),
        })
    }
}

impl TryFrom<&GetArgs> for client::Config {
    type Error = anyhow::Error;

    fn try_from(a: &GetArgs) -> anyhow::Result<Self> {
        let target: Endpoint = a.addr.parse()?;
        if matches!(target, Endpoint::Unix(_)) {
            return Err(UsageError(
                "the simple services run over TCP and UDP, not Unix sockets".into(),
            )
            .into());
        }
        Ok(client::Config {
            target,
            udp: a.udp,
            timeout: a.timeout,
            retries: a.retries,
            trace: a.trace,
        })
    }
}

impl TryFrom<&SendArgs> for client::Config {
    type Error = anyhow::Error;

    fn try_from(a: &SendArgs) -> anyhow::Result<Self> {
        Ok(client::Config {
            target: a.addr.parse()?,
            udp: a.udp,
            timeout: a.timeout,
            retries: 0,
            trace: a.trace,
        })
    }
}

async fn serve(
    service: Service,
    args: ServeArgs,
    quotes: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut cfg = server::Config::try_from(ServeFor {
        service,
        args: &args,
        quotes,
    })?;
    let shutdown = net::shutdown::on_signals();
    let bound = args.net.listen_spec(service.rfc_port())?.bind().await?;
    if let Some(addr) = bound.local_addr() {
        cfg.guard.block_source_port(addr.port());
    }
    bound.announce()?;
    server::run(service, bound, cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn get(
    service: Service,
    args: GetArgs,
    bytes: usize,
    out: OutputArgs,
) -> anyhow::Result<ExitCode> {
    let cfg = client::Config::try_from(&args)?;
    client::get(service, &cfg, bytes, out.reporter(args.json))
        .await
        .coded()?;
    Ok(ExitCode::SUCCESS)
}

async fn send(args: SendArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let cfg = client::Config::try_from(&args)?;
    let data = if args.message.is_empty() {
        use tokio::io::AsyncReadExt;
        let mut v = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut v)
            .await
            .context("reading stdin")?;
        v
    } else {
        format!("{}\n", args.message.join(" ")).into_bytes()
    };
    client::send_discard(&cfg, &data, out.reporter(args.json))
        .await
        .coded()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs all six services on TCP and UDP until Ctrl-C.
pub async fn inetd(args: InetdArgs) -> anyhow::Result<ExitCode> {
    let quotes = load_quotes(args.quotes.as_ref())?;
    let host = args
        .bind
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut ports: Vec<(Service, u16)> = Vec::new();
    for s in Service::ALL {
        let port = if args.ephemeral {
            0
        } else {
            let largest = u16::MAX - Service::ALL.iter().map(|s| s.rfc_port()).max().unwrap_or(0);
            s.rfc_port().checked_add(args.port_base).ok_or_else(|| {
                UsageError(format!(
                    "--port-base {} pushes {s}'s port {} past 65535; the largest base that \
                     fits is {largest}",
                    args.port_base,
                    s.rfc_port()
                ))
            })?
        };
        ports.push((s, port));
    }
    let serve = ServeOptions {
        allow: AllowList::new(args.allow.clone()),
        max_conns: args.max_conns,
        grace: args.grace,
        trace: args.trace,
        ..ServeOptions::default()
    };
    let mut cfg = server::Config {
        serve,
        timeout: args.timeout,
        quotes,
        guard: args.guard.config(Some(AMPLIFIER_LIMIT.0), &[])?,
        tz: jiff::tz::TimeZone::system(),
        daytime: Arc::default(),
    };
    let shutdown = net::shutdown::on_signals();
    let mut bound = Vec::new();
    for (service, port) in ports {
        let addr: SocketAddr = net::addr::resolve_host(&host, port).await?[0];
        let (tcp, udp) = host::bind_pair(addr, BindOptions::default())
            .await
            .map_err(|e| match e {
                NetError::AddrInUse { addr } => NetError::AddrInUseHint {
                    addr,
                    hint: "stop it, or choose other ports with --port-base N or --ephemeral".into(),
                },
                other => other,
            })
            .with_context(|| format!("starting {service} on {addr}"))?;
        if let Some(a) = tcp.local_addr() {
            cfg.guard.block_source_port(a.port());
        }
        bound.push((service, tcp, udp));
    }
    let mut tasks = JoinSet::new();
    for (service, tcp, udp) in bound {
        tcp.announce_as(&format!("{service}/tcp"))?;
        udp.announce_as(&format!("{service}/udp"))?;
        for b in [tcp, udp] {
            let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
            tasks.spawn(async move { server::run(service, b, cfg, shutdown).await });
        }
    }
    while let Some(res) = tasks.join_next().await {
        if let Ok(Err(e)) = res {
            tracing::error!("a service stopped: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
