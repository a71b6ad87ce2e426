//! `socklab echo serve` and `socklab echo send`: arguments and their conversion to configs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use ipnet::IpNet;

use super::{client, server};
use crate::args::{
    GuardArgs, JsonArg, OutputArgs, ServerNetArgs, UsageError, parse_duration, parse_size,
};
use crate::exit::CodedResult;
use crate::frame::Framing;
use crate::net::{self, AllowList, Endpoint};

/// Echo roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run an echo server: everything a client sends comes back (RFC 862).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Send a message (or stdin) to an echo server and check what comes back.
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab echo serve                         TCP on 127.0.0.1:3500
  socklab echo serve -u -p 0                 UDP on a free port (printed first)
  socklab echo serve --model threads         one OS thread per client
  socklab echo serve --framing header        echo whole header frames, checking CRC32
  socklab echo serve --unix /tmp/echo.sock   Unix stream socket
Try it:
  nc 127.0.0.1 3500                          type lines, see them come back
  nc -u 127.0.0.1 3500                       the same over UDP";

const SEND_EXAMPLES: &str = "\
Examples:
  socklab echo send 127.0.0.1:3500 hello world
  socklab echo send -u 127.0.0.1:3500 ping --count 5 --interval 200ms
  socklab echo send 127.0.0.1:3500 < big.bin > copy.bin     stream a file and verify it
  socklab echo send 127.0.0.1:3500 hello --chunk 1 --trace  watch each 1-byte write
  socklab echo send --unix /tmp/echo.sock hi
Exit status: 0 echo verified, 1 echo differs, 3 network error, 4 timeout (see README).";

/// Framing choice, shared by server and client.
#[derive(Debug, Args, Clone)]
pub struct FramingArgs {
    /// Echo whole frames instead of bytes: fixed:N (N-byte records, NUL padded),
    /// delim:STR (e.g. delim:\n), or header (length, id, timestamp, CRC32; see
    /// docs/PROTOCOLS.md).
    #[arg(long, value_name = "SPEC")]
    pub framing: Option<Framing>,
    /// Largest frame accepted (e.g. 64k, 16M); larger lengths are refused before any
    /// memory is reserved.
    #[arg(long, default_value = "16M", value_parser = parse_size, value_name = "BYTES")]
    pub max_frame: usize,
}

/// Concurrency model of a stream server.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// One tokio task per client (scales to many thousands).
    Async,
    /// One OS thread per client with blocking I/O, as in the course's threaded server.
    Threads,
}

/// `socklab echo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    net: ServerNetArgs,
    #[command(flatten)]
    framing: FramingArgs,
    #[command(flatten)]
    guard: GuardArgs,
    /// How stream clients are served.
    #[arg(long, value_enum, default_value = "async")]
    model: ModelArg,
    /// Datagram receive buffer; a larger datagram is detected, logged, counted and not
    /// echoed.
    #[arg(long, default_value = "65535", value_parser = parse_size, value_name = "BYTES")]
    buffer: usize,
    /// DANGEROUS. Accept control datagrams (UDP only): `SHUTDOWN` stops the server and
    /// `EXEC <command>` runs a shell command and replies `EXIT <status>` with its first
    /// output bytes. Only from --control-from addresses; others get a REFUSED reply.
    #[arg(long, requires = "udp")]
    control: bool,
    /// Addresses allowed to send control datagrams (default: loopback only).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net, requires = "control")]
    control_from: Vec<IpNet>,
}

impl TryFrom<&ServeArgs> for server::Config {
    type Error = UsageError;

    fn try_from(a: &ServeArgs) -> Result<Self, UsageError> {
        let model = match a.model {
            ModelArg::Async => server::Model::Async,
            ModelArg::Threads => server::Model::Threads,
        };
        if a.net.udp && matches!(model, server::Model::Threads) {
            return Err(UsageError(
                "--model threads applies to stream (TCP and Unix) servers, not --udp".into(),
            ));
        }
        if a.net.udp && a.framing.framing.is_some() {
            return Err(UsageError(
                "--framing applies to streams; a datagram is already a message".into(),
            ));
        }
        if a.control && a.net.unix.is_some() {
            return Err(UsageError(
                "--control works on UDP ports only (its allow-list is by IP address), not --unix"
                    .into(),
            ));
        }
        if a.buffer == 0 || a.buffer > server::MAX_BUFFER {
            return Err(UsageError(format!(
                "--buffer must be between 1 and {} bytes",
                server::MAX_BUFFER
            )));
        }
        if a.framing.max_frame == 0 || a.framing.max_frame > 1 << 30 {
            return Err(UsageError(
                "--max-frame must be between 1 byte and 1G".into(),
            ));
        }
        let control = a.control.then(|| server::ControlPolicy {
            from: if a.control_from.is_empty() {
                AllowList::loopback()
            } else {
                AllowList::new(a.control_from.clone())
            },
        });
        // Echo's reply is the request, so it amplifies nothing: no rate limit unless asked;
        // the port rules (source port 0, the simple services' ports, our own) always apply.
        let port = a.net.port.unwrap_or(server::DEFAULT_PORT);
        Ok(server::Config {
            serve: a.net.serve_options(),
            timeout: a.net.timeout,
            model,
            framing: a.framing.framing.clone(),
            max_frame: a.framing.max_frame,
            buffer: a.buffer,
            control,
            guard: a.guard.config(None, &[port])?,
            name: "echo".into(),
        })
    }
}

/// `socklab echo send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Server address: HOST:PORT, [IPV6]:PORT, PORT (loopback) or unix:/PATH.
    #[arg(value_name = "ADDR", required_unless_present = "unix")]
    addr: Option<String>,
    /// Message to send (words are joined with spaces and a newline is added, unless -n).
    /// Without a message, stdin is streamed and the echo written to stdout.
    #[arg(value_name = "MESSAGE")]
    message: Vec<String>,
    /// Talk to a Unix domain socket at PATH (then every positional word is the message).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// UDP (or Unix datagram) instead of a stream.
    #[arg(short, long)]
    udp: bool,
    /// Do not add a newline to the message.
    #[arg(short = 'n', long)]
    no_newline: bool,
    /// Give up on connecting or on a silent server after this long.
    #[arg(short, long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    /// UDP: datagrams to resend when no reply comes (waits 0.5s, 1s, 2s, … in between).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Write the message in pieces of N bytes (watch them with --trace).
    #[arg(long, value_name = "N", value_parser = parse_size)]
    chunk: Option<usize>,
    /// Send the message this many times, one round trip at a time.
    #[arg(short, long, default_value_t = 1)]
    count: u64,
    /// Pause between round trips.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    #[command(flatten)]
    framing: FramingArgs,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

impl TryFrom<&SendArgs> for client::Config {
    type Error = anyhow::Error;

    fn try_from(a: &SendArgs) -> anyhow::Result<Self> {
        let mut words = a.message.clone();
        let target = match (&a.unix, &a.addr) {
            (Some(path), addr) => {
                if let Some(first) = addr {
                    words.insert(0, first.clone());
                }
                Endpoint::Unix(path.clone())
            }
            (None, Some(addr)) => addr.parse::<Endpoint>()?,
            (None, None) => return Err(UsageError("give an ADDR or --unix PATH".into()).into()),
        };
        if a.count == 0 {
            return Err(UsageError("--count must be at least 1".into()).into());
        }
        if a.chunk == Some(0) {
            return Err(UsageError("--chunk must be at least 1 byte".into()).into());
        }
        if a.udp && a.framing.framing.is_some() {
            return Err(UsageError("--framing applies to streams, not --udp".into()).into());
        }
        let message = (!words.is_empty()).then(|| {
            let mut m = words.join(" ").into_bytes();
            // A frame carries its own boundary, so no newline is added inside it.
            if !a.no_newline && a.framing.framing.is_none() {
                m.push(b'\n');
            }
            m
        });
        // Refuse a message its framing cannot carry before connecting to anyone.
        if let (Some(framing), Some(msg)) = (&a.framing.framing, &message) {
            use tokio_util::codec::Encoder;
            let mut codec = crate::frame::FrameCodec::new(framing, a.framing.max_frame);
            let frame = crate::frame::Frame::new(msg.clone());
            if let Err(e) = codec.encode(frame, &mut bytes::BytesMut::new()) {
                return Err(
                    UsageError(format!("cannot send this message as {framing}: {e}")).into(),
                );
            }
        }
        if message.is_none() && a.count != 1 {
            return Err(UsageError("--count needs a MESSAGE (stdin is sent once)".into()).into());
        }
        Ok(client::Config {
            target,
            datagram: a.udp,
            message,
            count: a.count,
            interval: a.interval,
            timeout: a.timeout,
            retries: a.retries,
            chunk: a.chunk,
            framing: a.framing.framing.clone(),
            max_frame: a.framing.max_frame,
            trace: a.trace,
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args).await,
            Role::Send(args) => send(args, out).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = server::Config::try_from(&args)?;
    let shutdown = net::shutdown::on_signals();
    let bound = args.net.listen_spec(server::DEFAULT_PORT)?.bind().await?;
    if let Some(addr) = bound.local_addr() {
        cfg.guard.block_source_port(addr.port());
    }
    bound.announce()?;
    server::run(bound, cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn send(args: SendArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let cfg = client::Config::try_from(&args)?;
    let reporter = out.reporter(args.json);
    let target = cfg.target.clone();
    let summary = client::run(cfg, reporter).await.coded()?;
    if let Some(stats) = client::Statistics::of(&target, &summary) {
        reporter.emit(&stats)?;
    }
    Ok(ExitCode::SUCCESS)
}
