//! `socklab p2p chat`: arguments and their conversion to a [`peer::Config`].

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{arq, peer, relay};
use crate::args::{JsonArg, OutputArgs, UsageError, parse_duration};
use crate::exit::CodedResult;
use crate::net;
use crate::net::impair::{DEFAULT_LIMIT, ImpairConfig};

/// p2p roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Chat with one peer over UDP, with error control (acknowledgements, retransmission,
    /// in-order delivery, CRC-32) and zlib compression. Both peers run the same command with
    /// the addresses swapped, in either order.
    #[command(after_help = CHAT_EXAMPLES)]
    Chat(ChatArgs),
}

const CHAT_EXAMPLES: &str = "\
Examples:
  socklab p2p chat --listen 127.0.0.1:7000 --peer 127.0.0.1:7001 --nick ann
  socklab p2p chat --listen 127.0.0.1:7001 --peer 127.0.0.1:7000 --nick bob
  seq 1000 | socklab p2p chat --listen 7000 --peer 7001 --nick ann    send 1,000 lines, wait for
                                                                     every acknowledgement, exit
Each stdin line is one message; each message received is printed as `<nick> text`. At the end
of stdin the peer waits until everything it sent is acknowledged (exit 0), or until the other
side has acknowledged nothing for -t (exit 4, saying how many messages went unacknowledged).";

/// `socklab p2p chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Where to receive: ADDR:PORT, [IPV6]:PORT, or PORT (127.0.0.1). Port 0 lets the kernel
    /// choose (the first stdout line says which).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: String,
    /// The other peer: ADDR:PORT, [IPV6]:PORT, or PORT (127.0.0.1).
    #[arg(long, value_name = "ADDR:PORT")]
    peer: String,
    /// Your nickname (at most 255 bytes), shown with each of your messages.
    #[arg(long)]
    nick: String,
    /// After the end of stdin: give up when the peer has acknowledged nothing for this long.
    #[arg(short = 't', long = "timeout", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    timeout: Duration,
    /// The largest datagram to send, in bytes (longer messages are cut into fragments).
    #[arg(long, default_value_t = 1200, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(64..=65507))]
    mtu: u16,
    /// zlib level: 0 never compresses, 1 fastest, 9 smallest (a message is sent compressed
    /// only when that makes it smaller).
    #[arg(long, default_value_t = 6, value_name = "0-9", value_parser = clap::value_parser!(u32).range(0..=9))]
    level: u32,
    /// The course's first step: each line as one bare datagram (no header, no
    /// acknowledgement, no compression), so `nc -u` or a few lines of Python can be the other
    /// end; what arrives, from anyone, prints as `<ADDR:PORT> text`. Under loss, lines are lost.
    #[arg(long)]
    no_arq: bool,
    /// A transcript: each message received as `<nick> text`, each line sent as
    /// `[HH:MM:SS] > text`, appended to FILE line by line.
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
    /// Every datagram sent and received on stderr: what it is (DATA seq 4 …, ACK next 5 …)
    /// and a hex dump, to watch the error control at work.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// An address as the flags take it.
fn address(flag: &str, s: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        UsageError(format!(
            "--{flag} {s:?} is not ADDR:PORT, [IPV6]:PORT or PORT"
        ))
    })
}

impl TryFrom<&ChatArgs> for peer::Config {
    type Error = UsageError;

    fn try_from(a: &ChatArgs) -> Result<Self, UsageError> {
        let listen = address("listen", &a.listen)?;
        let peer = address("peer", &a.peer)?;
        if peer.port() == 0 {
            return Err(UsageError("--peer needs a port other than 0".into()));
        }
        if a.nick.is_empty() || a.nick.len() > 255 || a.nick.contains(['\n', '\r']) {
            return Err(UsageError(
                "--nick must be 1 to 255 bytes, on one line".into(),
            ));
        }
        let session = peer::new_session();
        Ok(peer::Config {
            listen,
            peer,
            nick: a.nick.clone(),
            timeout: a.timeout,
            json: false,
            log: a.log.clone(),
            trace: a.trace,
            arq: arq::Config {
                level: a.level,
                mtu: usize::from(a.mtu),
                session,
                // On a fast path, probed about ten times within -t before it counts as gone.
                backoff_cap: arq::BACKOFF_CAP.min(a.timeout / 10),
                ..arq::Config::default()
            },
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Chat(args) => {
                let mut cfg = peer::Config::try_from(&args).coded()?;
                cfg.json = out.reporter(args.json).is_json();
                if args.no_arq && (cfg.json || cfg.log.is_some()) {
                    return Err(UsageError(
                        "--no-arq prints each datagram as it comes; --json and --log are for \
                         the chat with error control"
                            .into(),
                    )
                    .into());
                }
                let shutdown = net::shutdown::on_signals();
                if args.no_arq {
                    let s = peer::run_plain(cfg, shutdown).await.coded()?;
                    eprintln!(
                        "socklab: {} datagrams sent, {} received (no error control)",
                        s.sent, s.received
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                peer::run(cfg, shutdown).await.coded()?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

const IMPAIR_EXAMPLES: &str = "\
Examples:
  socklab impair --listen 127.0.0.1:7100 --to 127.0.0.1:7001 --loss 10% --dup 2% --reorder 5%
  socklab p2p chat --listen 7001 --peer 7100 --nick bob      (--to is this one)
  socklab p2p chat --listen 7000 --peer 7100 --nick ann      (the relay sends back to it)
  socklab impair --listen 7100 --to 7001 --rate 1mbit --delay 20ms --limit 100
                                      a 1 Mbit/s link with 20 ms of delay and a 100-datagram queue
What comes from --to goes back to the last other address that sent to the relay. At exit (Ctrl-C)
it prints what it did to each direction (--json: as one JSON object).";

/// `socklab impair`.
#[derive(Debug, Args)]
#[command(after_help = IMPAIR_EXAMPLES)]
pub struct ImpairArgs {
    /// Where the relay receives: ADDR:PORT or PORT (127.0.0.1).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: String,
    /// Where it sends what it receives: ADDR:PORT or PORT (127.0.0.1).
    #[arg(long, value_name = "ADDR:PORT")]
    to: String,
    /// Chance that a datagram is dropped: 10% or 0.1.
    #[arg(long, value_name = "P")]
    loss: Option<String>,
    /// Chance that a datagram is sent twice.
    #[arg(long, value_name = "P")]
    dup: Option<String>,
    /// Chance that a datagram is held back (--reorder-delay) so later ones overtake it.
    #[arg(long, value_name = "P")]
    reorder: Option<String>,
    /// How long a reordered datagram is held back.
    #[arg(long, value_name = "DURATION")]
    reorder_delay: Option<String>,
    /// Delay added to every datagram.
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// Each delay varies within delay ± jitter.
    #[arg(long, value_name = "DURATION")]
    jitter: Option<String>,
    /// Chance that one bit of a datagram is flipped.
    #[arg(long, value_name = "P")]
    corrupt: Option<String>,
    /// Bandwidth of each direction, as tc netem's rate: datagrams cross one after another,
    /// each taking its size*8/RATE (payload bytes only), and --delay starts after that. Units
    /// (any case): bit, kbit, mbit, gbit are bits per second; bps, kbps, mbps, gbps are BYTES
    /// per second (k = 1000): 1mbit, 1.5mbit, 64kbps (= 512kbit). From 1kbit to 100gbit.
    #[arg(long, value_name = "RATE")]
    rate: Option<String>,
    /// Most datagrams each direction holds at once (waiting for the link or delayed); more are
    /// dropped and counted as overflowed.
    #[arg(long, default_value_t = DEFAULT_LIMIT as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Seed of the fault schedule (the way back uses seed + 1): the same seed, the same faults.
    #[arg(long, default_value_t = 1, value_name = "N")]
    seed: u64,
    /// What it did, at exit, as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

impl ImpairArgs {
    /// The two directions' faults.
    fn configs(&self) -> Result<(ImpairConfig, ImpairConfig), UsageError> {
        let mut items = vec![
            format!("seed={}", self.seed),
            format!("limit={}", self.limit),
        ];
        for (key, value) in [
            ("loss", &self.loss),
            ("dup", &self.dup),
            ("reorder", &self.reorder),
            ("reorder-delay", &self.reorder_delay),
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("corrupt", &self.corrupt),
            ("rate", &self.rate),
        ] {
            if let Some(v) = value {
                items.push(format!("{key}={v}"));
            }
        }
        let up: ImpairConfig = items
            .join(",")
            .parse()
            .map_err(|e| UsageError(format!("{e}")))?;
        let down = ImpairConfig {
            seed: self.seed.wrapping_add(1),
            ..up.clone()
        };
        Ok((up, down))
    }

    /// Runs the relay until a signal.
    pub async fn run(self, json: bool) -> anyhow::Result<ExitCode> {
        let listen = address("listen", &self.listen).coded()?;
        let to = address("to", &self.to).coded()?;
        let (up, down) = self.configs().coded()?;
        let shutdown = net::shutdown::on_signals();
        let stats = relay::run(listen, to, up, down, shutdown).await.coded()?;
        if json || self.json {
            println!("{}", serde_json::to_string(&stats)?);
        } else {
            for (name, c) in [("up (to --to)", stats.up), ("down (back)", stats.down)] {
                eprintln!(
                    "socklab impair: {name}: {} in, {} out; {} dropped, {} duplicated, {} \
                     reordered, {} corrupted, {} overflowed",
                    c.received,
                    c.sent,
                    c.dropped,
                    c.duplicated,
                    c.reordered,
                    c.corrupted,
                    c.overflowed
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
