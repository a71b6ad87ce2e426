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

use super::proto::{self, Quotes, Service};
use super::{client, server};
use crate::cli::{OutputArgs, ServerNetArgs, UsageError, parse_duration, parse_size};
use crate::net::guard::GuardConfig;
use crate::net::{self, AllowList, BindOptions, Endpoint, ServeOptions, fmt_duration};
use crate::report::Reporter;

/// Roles of chargen, qotd, daytime and time.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run the server (TCP, or UDP with -u) on the service's RFC port unless -p says otherwise.
    Serve(ServeArgs),
    /// Ask a server and print its reply (and, for daytime and time, the clock offset).
    Get(GetArgs),
}

/// Roles of discard.
#[derive(Debug, Subcommand)]
pub enum DiscardRole {
    /// Run a discard server (RFC 863): everything sent is thrown away.
    Serve(ServeArgs),
    /// Send a message (or stdin) to a discard server.
    Send(SendArgs),
}

/// Flags of the UDP reflection guard.
#[derive(Debug, Args, Clone)]
pub struct GuardArgs {
    /// UDP replies per second to one source address (chargen, qotd, daytime and friends are
    /// amplifiers if anyone may trigger them at will).
    #[arg(long, default_value_t = 20.0, value_name = "N")]
    rate: f64,
    /// UDP replies one source may get in a burst before --rate applies.
    #[arg(long, default_value_t = 40.0, value_name = "N")]
    burst: f64,
}

impl GuardArgs {
    fn config(&self, extra_ports: &[u16]) -> Result<GuardConfig, UsageError> {
        if !(self.rate > 0.0
            && self.rate.is_finite()
            && self.burst >= 1.0
            && self.burst.is_finite())
        {
            return Err(UsageError(
                "--rate must be above 0 and --burst at least 1".into(),
            ));
        }
        let mut ports: Vec<u16> = Service::ALL.iter().map(|s| s.rfc_port()).collect();
        ports.extend(extra_ports);
        ports.sort_unstable();
        ports.dedup();
        Ok(GuardConfig {
            rate: self.rate,
            burst: self.burst,
            blocked_ports: ports,
            ..GuardConfig::default()
        })
    }
}

/// `socklab <service> serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    net: ServerNetArgs,
    #[command(flatten)]
    guard: GuardArgs,
    /// qotd: quotes from FILE, one per line, or fortune style (entries separated by lines
    /// holding only %). Entries of 512 characters or more are skipped.
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
    /// chargen over TCP: read this many bytes, then close (e.g. 10k, 1M).
    #[arg(long, default_value = "7030", value_parser = parse_size, value_name = "N")]
    bytes: usize,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
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
}

/// `socklab inetd`.
#[derive(Debug, Args)]
pub struct InetdArgs {
    /// Add N to every RFC port (e.g. --port-base 10000: daytime on 10013), so no root is
    /// needed and two can run at once.
    #[arg(long, default_value_t = 0, value_name = "N")]
    port_base: u16,
    /// Bind every service to a free port chosen by the kernel (for tests and scripts).
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
    /// Quotes for qotd (see `socklab qotd serve --help`).
    #[arg(long, value_name = "FILE")]
    quotes: Option<PathBuf>,
    #[command(flatten)]
    guard: GuardArgs,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
}

fn load_quotes(path: Option<&PathBuf>) -> anyhow::Result<Arc<Quotes>> {
    let Some(path) = path else {
        return Ok(Arc::new(Quotes::builtin()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading quotes from {}", path.display()))?;
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
    /// Runs the role for `service`.
    pub async fn run(self, service: Service, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(service, args).await,
            Role::Get(args) => get(service, args, out).await,
        }
    }
}

impl DiscardRole {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            DiscardRole::Serve(args) => serve(Service::Discard, args).await,
            DiscardRole::Send(args) => send(args, out).await,
        }
    }
}

async fn serve(service: Service, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.net.unix.is_some() {
        return Err(UsageError(format!("{service} serves TCP and UDP ports, not --unix")).into());
    }
    let port = args.net.port.unwrap_or(service.rfc_port());
    let cfg = server::Config {
        serve: args.net.serve_options(),
        timeout: args.net.timeout,
        trace: args.net.trace,
        quotes: load_quotes(args.quotes.as_ref())?,
        guard: args.guard.config(&[port])?,
        tz: jiff::tz::TimeZone::system(),
        daytime: Arc::default(),
    };
    let addr = args.net.bind_addr(service.rfc_port()).await?;
    let shutdown = net::shutdown::on_signals();
    if args.net.udp {
        let sock = net::listen::udp_socket(addr, args.net.bind_options())?;
        net::announce(sock.local_addr()?)?;
        server::run_udp(service, sock, cfg, shutdown).await?;
    } else {
        let listener = net::listen::tcp_listener(addr, args.net.bind_options())?;
        net::announce(listener.local_addr()?)?;
        server::run_tcp(service, listener, cfg, shutdown).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(service: Service, args: GetArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let target: Endpoint = args.addr.parse()?;
    if matches!(target, Endpoint::Unix(_)) {
        return Err(
            UsageError(format!("{service} runs over TCP and UDP, not Unix sockets")).into(),
        );
    }
    let cfg = client::Config {
        target,
        udp: args.udp,
        timeout: args.timeout,
        retries: args.retries,
        trace: args.trace,
    };
    let reporter = Reporter::new(out.json, out.quiet);
    let (max, cut) = match service {
        Service::Chargen => (args.bytes, true),
        Service::Time => (4, false),
        _ => (proto::MAX_DAYTIME.max(proto::MAX_QUOTE + 1), false),
    };
    // Daytime and qotd answer any datagram; RFC 868 asks for an empty one; chargen any.
    let request: &[u8] = if args.udp && service != Service::Time {
        b"\n"
    } else {
        b""
    };
    let got = client::fetch(service, &cfg, request, max, cut).await?;
    let bad = |why: String| client::Error::BadReply {
        addr: args.addr.clone(),
        service,
        why,
    };
    match service {
        Service::Time => {
            let bytes: [u8; 4] = got
                .data
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("{} bytes instead of 4", got.data.len())))?;
            let now = got.midpoint_us.div_euclid(1_000_000);
            let secs = proto::decode_time(bytes, now);
            report_clock(&reporter, service, &hex(&bytes), secs, "RFC 868", &got)?;
        }
        Service::Daytime => {
            let text = String::from_utf8_lossy(&got.data).to_string();
            reporter.data(text.trim_end().as_bytes())?;
            reporter.data(b"\n")?;
            match proto::parse_daytime(&text, &jiff::tz::TimeZone::system()) {
                Some(p) => report_clock(
                    &reporter,
                    service,
                    text.trim_end(),
                    p.at.as_second(),
                    p.format,
                    &got,
                )?,
                None => {
                    reporter
                        .result("offset: unknown (socklab does not recognise this date format)")?;
                    reporter.record(&serde_json::json!({
                        "service": "daytime", "reply": text.trim_end(), "format": null,
                        "rtt_us": got.rtt.as_micros() as u64,
                    }))?;
                }
            }
        }
        Service::Chargen => {
            if let Err(at) = proto::check_chargen(&got.data) {
                return Err(bad(format!("byte {at} breaks the RFC 864 pattern")).into());
            }
            if args.udp && got.data.len() > proto::MAX_UDP_CHARGEN {
                tracing::warn!(
                    "{} sent {} bytes; RFC 864 says a UDP reply holds at most 512",
                    args.addr,
                    got.data.len()
                );
            }
            reporter.data(&got.data)?;
            reporter.status(&format!(
                "{} bytes of chargen from {} in {}, pattern checked",
                got.data.len(),
                args.addr,
                fmt_duration(got.rtt)
            ));
            reporter.record(&serde_json::json!({
                "service": "chargen", "bytes": got.data.len(), "rtt_us": got.rtt.as_micros() as u64,
            }))?;
        }
        _ => {
            if got.data.is_empty() {
                return Err(bad("an empty reply".into()).into());
            }
            reporter.data(&got.data)?;
            reporter.record(&serde_json::json!({
                "service": service.name(), "reply": String::from_utf8_lossy(&got.data),
                "rtt_us": got.rtt.as_micros() as u64,
            }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints the server's time and its offset from ours. Both services send whole seconds, so
/// the server's clock read somewhere in [secs, secs+1): we compare its midpoint with the
/// middle of our exchange and say ±0.5 s plus half the round trip.
fn report_clock(
    out: &Reporter,
    service: Service,
    raw: &str,
    server_secs: i64,
    format: &str,
    got: &client::Fetched,
) -> anyhow::Result<()> {
    let server_us = server_secs * 1_000_000 + 500_000;
    let offset_s = (server_us - got.midpoint_us) as f64 / 1e6;
    let bound = 0.5 + got.rtt.as_secs_f64() / 2.0;
    let when = jiff::Timestamp::from_second(server_secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{server_secs} s since 1970"));
    let direction = if offset_s >= 0.0 {
        "ahead of"
    } else {
        "behind"
    };
    if service == Service::Time {
        out.result(&when)?;
    }
    out.result(&format!(
        "offset: the server's clock is {:.1} s {direction} this machine's (±{bound:.1} s; {format}; rtt {})",
        offset_s.abs(),
        fmt_duration(got.rtt)
    ))?;
    out.record(&serde_json::json!({
        "service": service.name(), "reply": raw, "format": format, "server_time": when,
        "offset_s": offset_s, "uncertainty_s": bound, "rtt_us": got.rtt.as_micros() as u64,
    }))?;
    Ok(())
}

async fn send(args: SendArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let target: Endpoint = args.addr.parse()?;
    let cfg = client::Config {
        target,
        udp: args.udp,
        timeout: args.timeout,
        retries: 0,
        trace: args.trace,
    };
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
    let sent = client::discard(&cfg, &data).await?;
    let reporter = Reporter::new(out.json, out.quiet);
    reporter.status(&format!(
        "{sent} bytes sent to {}{}",
        args.addr,
        if args.udp {
            " (UDP: delivery not confirmed)"
        } else {
            " and discarded"
        }
    ));
    reporter.record(&serde_json::json!({"service": "discard", "bytes": sent, "udp": args.udp}))?;
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
    let ports: Vec<(Service, u16)> = Service::ALL
        .iter()
        .map(|&s| {
            let p = if args.ephemeral {
                0
            } else {
                s.rfc_port().checked_add(args.port_base).unwrap_or(0)
            };
            (s, p)
        })
        .collect();
    if !args.ephemeral && ports.iter().any(|&(_, p)| p == 0) {
        return Err(UsageError(format!(
            "--port-base {} pushes a port past 65535",
            args.port_base
        ))
        .into());
    }
    let service_ports: Vec<u16> = ports.iter().map(|&(_, p)| p).filter(|&p| p != 0).collect();
    let cfg = server::Config {
        serve: ServeOptions {
            allow: AllowList::new(args.allow.clone()),
            ..ServeOptions::default()
        },
        timeout: args.timeout,
        trace: args.trace,
        quotes,
        guard: args.guard.config(&service_ports)?,
        tz: jiff::tz::TimeZone::system(),
        daytime: Arc::default(),
    };
    let shutdown = net::shutdown::on_signals();
    let mut tasks = JoinSet::new();
    for (service, port) in ports {
        let addr: SocketAddr = net::addr::resolve_host(&host, port).await?[0];
        let what = |proto: &str| format!("starting {service}/{proto} on {addr}");
        let listener =
            net::listen::tcp_listener(addr, BindOptions::default()).with_context(|| what("tcp"))?;
        net::announce(format!("{} {service}/tcp", listener.local_addr()?))?;
        let sock =
            net::listen::udp_socket(addr, BindOptions::default()).with_context(|| what("udp"))?;
        net::announce(format!("{} {service}/udp", sock.local_addr()?))?;
        let (c1, c2) = (cfg.clone(), cfg.clone());
        let (s1, s2) = (shutdown.clone(), shutdown.clone());
        tasks.spawn(async move {
            server::run_tcp(service, listener, c1, s1).await;
            Ok(())
        });
        tasks.spawn(async move { server::run_udp(service, sock, c2, s2).await });
    }
    while let Some(res) = tasks.join_next().await {
        if let Ok(Err(e)) = res {
            tracing::error!("a service stopped: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
