//! `socklab chat serve` and `socklab chat join`: arguments and their conversion to configs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::client;
use super::proto::{self, Flood, Settings};
use super::server::{self, ChatFraming};
use crate::args::{
    JsonArg, OutputArgs, ServerNetArgs, UsageError, parse_duration, parse_size, read_operator_text,
};
use crate::exit::CodedResult;
use crate::frame::Framing;
use crate::net;

/// Chat roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run a chat server: rooms, nicknames, commands, history, over lines or the course's
    /// framings.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Join a chat: stdin lines are sent, each message received is printed as one line.
    #[command(after_help = JOIN_EXAMPLES)]
    Join(JoinArgs),
}

/// Largest `--motd` file: it is read once at start-up and kept in memory.
const MAX_MOTD_FILE: u64 = 64 * 1024;

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab chat serve                         lines on 127.0.0.1:6667 (nc, telnet)
  socklab chat serve -p 0 --framing fixed:1024   the course's MySocket clients (MSGLEN 1024)
  socklab chat serve --framing 'delim:.'     messages ending in '.'
  socklab chat serve --framing header        length, id, timestamp and CRC32 (PROTOCOLS.md)
  socklab chat serve --flood off --history 200
  socklab chat serve -p 6667 --cluster redis://127.0.0.1:6379   two or more servers, one chat
Try it:
  nc 127.0.0.1 6667                          first line: your nickname; then chat; /help";

const JOIN_EXAMPLES: &str = "\
Examples:
  socklab chat join 127.0.0.1:6667 --nick alice
  socklab chat join 6667 --nick bot --room '#news' < lines.txt    send a file's lines, leave
  socklab chat join 6667 --nick carol --framing header --json";

/// `socklab chat serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    net: ServerNetArgs,
    /// How messages are cut: lines (\n; a \r before it is dropped), fixed:N, delim:STR or
    /// header.
    #[arg(long, default_value = "lines", value_name = "SPEC")]
    framing: ChatFraming,
    /// Per-client flood control, RATE/BURST (messages per second, burst), or off.
    #[arg(long, default_value = "5/10", value_name = "RATE/BURST|off", value_parser = parse_flood)]
    flood: FloodArg,
    /// Most connections from one IP address.
    #[arg(long, default_value_t = server::DEFAULT_MAX_PER_IP, value_name = "N")]
    max_per_ip: usize,
    /// Messages kept per room and replayed to whoever joins it.
    #[arg(long, default_value_t = proto::DEFAULT_HISTORY, value_name = "N")]
    history: usize,
    /// A message of the day, sent to each client after its nickname (a regular UTF-8 file of
    /// at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    motd: Option<PathBuf>,
    /// Append every chat line, action and private message to FILE as JSON lines (time, room,
    /// nick, id, text).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Send "PING N" to a client silent this long; drop it if it stays silent as long again
    /// (it may answer /pong N or say anything; `chat join` answers by itself). Off: only TCP
    /// keepalive (about 90 s) finds dead peers.
    #[arg(long, default_value = "off", value_name = "DURATION|off", value_parser = parse_ping)]
    ping: PingArg,
    /// Bytes that may wait for one client (each message counts its length plus 64) before it
    /// is dropped as a slow consumer, like IRC's SendQ. K and M suffixes.
    #[arg(long, default_value = "256K", value_name = "SIZE", value_parser = parse_size)]
    sendq: usize,
    /// Act as one chat with every server given the same Redis: rooms, messages, nicknames,
    /// presence and history are shared through it (docs/PROTOCOLS.md §8.2). If Redis goes
    /// away, this server goes on serving its own clients, tells them, and reconnects.
    #[arg(long, value_name = "redis://HOST:PORT")]
    cluster: Option<String>,
}

/// `--ping`.
#[derive(Debug, Clone, Copy)]
pub struct PingArg(Option<Duration>);

fn parse_ping(s: &str) -> Result<PingArg, String> {
    if s == "off" {
        return Ok(PingArg(None));
    }
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: ping at most once a second (at least 1s), or off"
        ));
    }
    Ok(PingArg(Some(d)))
}

/// Opens `--log FILE` once, for appending, so a bad path is a usage error now rather than a
/// transcript silently missing later.
fn check_log(path: Option<&std::path::Path>) -> Result<(), UsageError> {
    let Some(path) = path else { return Ok(()) };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|e| UsageError(format!("--log {}: {e}", path.display())))
}

/// `--flood`.
#[derive(Debug, Clone, Copy)]
pub struct FloodArg(Option<Flood>);

fn parse_flood(s: &str) -> Result<FloodArg, String> {
    if s == "off" {
        return Ok(FloodArg(None));
    }
    let bad = || format!("{s:?} is not RATE/BURST (e.g. 5/10) or off");
    let (r, b) = s.split_once('/').ok_or_else(bad)?;
    let rate: f64 = r.trim().parse().map_err(|_| bad())?;
    let burst: f64 = b.trim().parse().map_err(|_| bad())?;
    if !(rate > 0.0 && rate.is_finite() && burst >= 1.0 && burst.is_finite()) {
        return Err(format!(
            "{s:?}: the rate must be above 0 and the burst at least 1"
        ));
    }
    Ok(FloodArg(Some(Flood { rate, burst })))
}

impl TryFrom<&ServeArgs> for server::Config {
    type Error = anyhow::Error;

    fn try_from(a: &ServeArgs) -> anyhow::Result<Self> {
        if a.net.udp {
            return Err(UsageError(
                "the chat runs over a stream (TCP or --unix), not --udp".into(),
            )
            .into());
        }
        if a.history > proto::MAX_HISTORY {
            return Err(UsageError(format!("--history is at most {}", proto::MAX_HISTORY)).into());
        }
        if a.sendq < 4 * proto::MAX_TEXT {
            return Err(UsageError(format!(
                "--sendq must hold a few messages: at least {} bytes",
                4 * proto::MAX_TEXT
            ))
            .into());
        }
        if a.max_per_ip == 0 {
            return Err(UsageError("--max-per-ip must be at least 1".into()).into());
        }
        let motd = match &a.motd {
            None => None,
            Some(path) => Some(read_operator_text("--motd", path, MAX_MOTD_FILE)?),
        };
        check_log(a.log.as_deref())?;
        if let Some(url) = &a.cluster {
            super::cluster::Cluster::new(url).map_err(|e| UsageError(e.to_string()))?;
        }
        Ok(server::Config {
            serve: a.net.serve_options(),
            timeout: a.net.timeout,
            framing: a.framing.clone(),
            settings: Settings {
                history: a.history,
                flood: a.flood.0,
                motd,
                // A replay never fills more than half the send queue.
                replay_budget: a.sendq / 2,
                // Records of 256 bytes or more hold a whole chat line (longer ones are refused);
                // smaller ones could not hold even the time and nick, so messages go out in
                // several records.
                max_rendered: match &a.framing {
                    ChatFraming::Framed(Framing::Fixed(n)) if *n >= server::MIN_WHOLE_RECORD => {
                        Some(*n)
                    }
                    _ => None,
                },
            },
            max_per_ip: a.max_per_ip,
            transcript: a.log.clone(),
            ping: a.ping.0,
            sendq: a.sendq,
            cluster: a.cluster.clone(),
        })
    }
}

/// `socklab chat join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Server address: HOST:PORT, [IPV6]:PORT, PORT (loopback) or unix:/PATH.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Your nickname.
    #[arg(long)]
    nick: String,
    /// A room to join (#name).
    #[arg(long, value_name = "#ROOM")]
    room: Option<String>,
    /// The server's framing: lines, fixed:N, delim:STR or header.
    #[arg(long, default_value = "lines", value_name = "SPEC")]
    framing: ChatFraming,
    /// Give up on connecting, or on a write, after this long.
    #[arg(short, long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    /// Append a transcript to FILE: each message received as shown, each line sent as
    /// "[HH:MM:SS] > line".
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArg,
}

impl TryFrom<&JoinArgs> for client::Config {
    type Error = anyhow::Error;

    fn try_from(a: &JoinArgs) -> anyhow::Result<Self> {
        proto::check_nick(&a.nick).map_err(|e| UsageError(e.to_string()))?;
        if let Some(room) = &a.room {
            proto::check_room(room).map_err(|e| UsageError(e.to_string()))?;
        }
        check_log(a.log.as_deref())?;
        Ok(client::Config {
            target: a.addr.parse()?,
            nick: a.nick.clone(),
            room: a.room.clone(),
            framing: a.framing.clone(),
            timeout: a.timeout,
            trace: a.trace,
            log: a.log.clone(),
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => {
                let cfg = server::Config::try_from(&args)?;
                let shutdown = net::shutdown::on_signals();
                let bound = args.net.listen_spec(server::DEFAULT_PORT)?.bind().await?;
                bound.announce()?;
                server::run(bound, cfg, shutdown).await?;
                Ok(ExitCode::SUCCESS)
            }
            Role::Join(args) => {
                let cfg = client::Config::try_from(&args)?;
                client::run(cfg, out.reporter(args.json)).await.coded()?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
