//! `socklab transfer serve`, `send` and `chat`: arguments and their conversion to a
//! [`server::Config`] or a [`client::Config`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::BytesMut;
use clap::{ArgMatches, Args, FromArgMatches, Subcommand};
use ipnet::IpNet;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

use super::client::{self, Item, Summary};
use super::proto::MAX_TEXT;
use super::server;
use crate::args::{JsonArg, OutputArgs, UsageError, parse_duration, parse_size};
use crate::exit::{self, CodedResult};
use crate::net::addr::Endpoint;
use crate::net::{self, AllowList, ServeOptions};
use crate::report::{Event, Line, Reporter};

/// transfer roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Receive texts and files: print each text, save each file under its (safe) name once
    /// its SHA-256 is verified (TCP port 3600).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Send texts and files on one connection, in the order given; exit 0 only when the
    /// receiver confirmed every one (files verified by SHA-256).
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Type messages, and send files with `/send FILE` while typing goes on.
    #[command(after_help = CHAT_EXAMPLES)]
    Chat(ChatArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab transfer serve --dir inbox                 on 127.0.0.1:3600
  socklab transfer serve --dir inbox -b :: --max-size 2G
Each text is printed as `text from PEER: TEXT`; each file is written to NAME.part, renamed to
its name only once its size and SHA-256 match, and printed as
`file from PEER: saved PATH (SIZE bytes, TYPE) sha256 HEX`. Names are made safe (no paths,
no hidden or device names) and never overwrite a file (`photo (1).png`) unless --overwrite.
A connection cut in the middle of a file keeps its .part for `send --continue`.";

const SEND_EXAMPLES: &str = "\
Examples:
  socklab transfer send 127.0.0.1:3600 --text 'here it is' photo.png --text 'bye'
  socklab transfer send 3600 big.iso --continue      resume what the receiver holds
  journalctl -f | socklab transfer send host:3600     each line a text
Exit codes: 0 every item confirmed, 1 an item refused (too large, mismatch, no space),
3 refused or cut connection, 4 timeout, 5 protocol error, 6 a file unreadable here.";

const CHAT_EXAMPLES: &str = "\
Examples:
  socklab transfer chat 127.0.0.1:3600
Type a line to send it as a text. Commands: /send FILE (goes out in the background; texts
typed meanwhile overtake it), /quit (or Ctrl-D: waits for every confirmation), /help.";

/// `socklab transfer serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Save files into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Port (0 picks a free one; the first stdout line says which).
    #[arg(short, long, default_value_t = server::DEFAULT_PORT)]
    port: u16,
    /// Address to bind: 127.0.0.1 (the default), ::1, 0.0.0.0, or ::.
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Replace a file of the same name instead of saving `NAME (1).EXT`.
    #[arg(long)]
    overwrite: bool,
    /// Refuse files larger than this (e.g. 500M, 4G).
    #[arg(long, default_value = "1024G", value_parser = parse_size, value_name = "BYTES")]
    max_size: usize,
    /// Close a connection whose next whole frame has not come after this long.
    #[arg(short, long, default_value = "600s", value_parser = parse_duration)]
    timeout: Duration,
    /// Accept only these senders (an address or CIDR network; repeatable).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    allow: Vec<IpNet>,
    /// Serve at most N connections at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_conns: usize,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

/// `socklab transfer send`'s flags (the order of texts and files is read apart).
#[derive(Debug, Args)]
pub struct SendFlags {
    /// The receiver: HOST:PORT, [IPV6]:PORT, or PORT (on 127.0.0.1).
    #[arg(value_name = "ADDR")]
    addr: String,
    /// A text to send (repeatable; texts and files go in the order given).
    #[arg(long = "text", value_name = "TEXT", allow_hyphen_values = true)]
    texts: Vec<String>,
    /// Files to send. Without texts or files, and with stdin not a terminal, each stdin line
    /// is a text.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Ask the receiver how much of each file it already holds (from a cut transfer) and
    /// send only the rest; the SHA-256 still covers the whole file.
    #[arg(long = "continue")]
    resume: bool,
    /// Give up when connecting, a write, or an answer due takes longer than this.
    #[arg(short, long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    json: JsonArg,
}

/// `socklab transfer send`: the flags, and the items in command-line order.
#[derive(Debug)]
pub struct SendArgs {
    flags: SendFlags,
    items: Vec<Item>,
}

impl FromArgMatches for SendArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = SendFlags::from_arg_matches(m)?;
        // clap keeps each value's position on the command line: merge the two lists by it.
        let mut items: Vec<(usize, Item)> = Vec::new();
        if let Some(idx) = m.indices_of("texts") {
            items.extend(idx.zip(flags.texts.iter().cloned().map(Item::Text)));
        }
        if let Some(idx) = m.indices_of("files") {
            items.extend(idx.zip(flags.files.iter().cloned().map(Item::File)));
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(SendArgs {
            items: items.into_iter().map(|(_, item)| item).collect(),
            flags,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for SendArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        SendFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        SendFlags::augment_args_for_update(cmd)
    }
}

/// `socklab transfer chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The receiver: HOST:PORT, [IPV6]:PORT, or PORT (on 127.0.0.1).
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Give up when connecting, a write, or an answer due takes longer than this.
    #[arg(short, long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    json: JsonArg,
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args, out).await,
            Role::Send(args) => send(args, out).await,
            Role::Chat(args) => chat(args, out).await,
        }
    }
}

async fn serve(args: ServeArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let ip = crate::args::bind_ip(&args.bind)?;
    if args.max_conns == 0 {
        return Err(UsageError("--max-conns must be at least 1".into()).into());
    }
    if !args.dir.exists() {
        std::fs::create_dir_all(&args.dir).map_err(|e| {
            anyhow::Error::new(e).context(format!("creating {}", args.dir.display()))
        })?;
    }
    if !args.dir.is_dir() {
        return Err(UsageError(format!("--dir {} is not a directory", args.dir.display())).into());
    }
    let shutdown = net::shutdown::on_signals();
    let bound = net::host::ListenSpec::tcp(std::net::SocketAddr::new(ip, args.port))
        .bind()
        .await?;
    bound.announce()?;
    let cfg = server::Config {
        serve: ServeOptions {
            allow: AllowList::new(args.allow),
            max_conns: args.max_conns,
            trace: args.trace,
            ..ServeOptions::default()
        },
        dir: args.dir,
        overwrite: args.overwrite,
        max_size: args.max_size as u64,
        timeout: args.timeout,
        reporter: out.reporter(args.json),
    };
    server::run(bound, cfg, shutdown).await.coded()?;
    Ok(ExitCode::SUCCESS)
}

/// The address as given, with port 3600 when it has none.
fn endpoint(addr: &str) -> Result<Endpoint, UsageError> {
    crate::args::inet_endpoint(
        addr,
        server::DEFAULT_PORT,
        "transfer runs over TCP, not a Unix socket",
    )
}

fn config(
    addr: &str,
    timeout: Duration,
    resume: bool,
    ordered: bool,
    reporter: Reporter,
    out: &OutputArgs,
) -> Result<client::Config, UsageError> {
    Ok(client::Config {
        endpoint: endpoint(addr)?,
        timeout,
        resume,
        ordered,
        reporter,
        progress: std::io::stderr().is_terminal() && !reporter.is_json() && !out.quiet,
    })
}

async fn send(args: SendArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let reporter = out.reporter(args.flags.json);
    let cfg = config(
        &args.flags.addr,
        args.flags.timeout,
        args.flags.resume,
        true,
        reporter,
        &out,
    )?;
    // Every file is checked before anything is sent.
    for item in &args.items {
        if let Item::File(path) = item {
            client::open(path).map_err(|e| {
                anyhow::Error::new(e)
                    .context(format!("cannot send {} (nothing was sent)", path.display()))
            })?;
        }
        if let Item::Text(t) = item
            && t.len() > MAX_TEXT
        {
            return Err(UsageError(format!(
                "a text of {} bytes: texts are at most {MAX_TEXT} bytes (send it as a file)",
                t.len()
            ))
            .into());
        }
    }
    let (tx, rx) = mpsc::channel(1024);
    if args.items.is_empty() {
        if std::io::stdin().is_terminal() {
            return Err(UsageError(
                "nothing to send: give --text TEXT or files, pipe lines into stdin, \
                 or use `socklab transfer chat` to type"
                    .into(),
            )
            .into());
        }
        tokio::spawn(stdin_lines(tx, false, cfg.reporter));
    } else {
        tokio::spawn(async move {
            for item in args.items {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
    }
    finish(client::run(cfg, rx).await, reporter)
}

async fn chat(args: ChatArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let reporter = out.reporter(args.json);
    let cfg = config(&args.addr, args.timeout, false, false, reporter, &out)?;
    let (tx, rx) = mpsc::channel(1024);
    if std::io::stdin().is_terminal() && !out.quiet {
        eprintln!("type a line to send it; /send FILE sends a file; /quit or Ctrl-D ends");
    }
    tokio::spawn(stdin_lines(tx, true, cfg.reporter));
    finish(client::run(cfg, rx).await, reporter)
}

/// Stdin's lines, each at most [`MAX_TEXT`] bytes. Unlike a `FramedRead`, which ends at its
/// first error, it goes on after a line too long (the codec skips to its end).
struct StdinLines {
    stdin: tokio::io::Stdin,
    codec: LinesCodec,
    buf: BytesMut,
    eof: bool,
}

impl Default for StdinLines {
    fn default() -> Self {
        StdinLines {
            stdin: tokio::io::stdin(),
            codec: LinesCodec::new_with_max_length(MAX_TEXT),
            buf: BytesMut::new(),
            eof: false,
        }
    }
}

impl StdinLines {
    async fn next(&mut self) -> Option<Result<String, LinesCodecError>> {
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(line)) => return Some(Ok(line)),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            self.buf.reserve(8192);
            match self.stdin.read_buf(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(LinesCodecError::Io(e))),
            }
        }
    }
}

/// Feeds stdin's lines as items: texts, and with `commands`, `/send FILE`, `/quit`, `/help`.
async fn stdin_lines(tx: mpsc::Sender<Item>, commands: bool, reporter: Reporter) {
    let mut lines = StdinLines::default();
    let mut number = 0u64;
    while let Some(line) = lines.next().await {
        number += 1;
        let line = match line {
            Ok(l) => l,
            // Not sent, and counted: the run then exits 6, never 0.
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                let why = format!("longer than {MAX_TEXT} bytes (send it as a file)");
                if tx
                    .send(Item::Unsendable(format!("stdin line {number}"), why))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(LinesCodecError::Io(e)) => {
                let why = format!("{e}; nothing after it is sent");
                let _ = tx
                    .send(Item::Unsendable(format!("stdin line {number}"), why))
                    .await;
                return;
            }
        };
        let item = if commands {
            match line.trim() {
                "" => continue,
                "/quit" | "/exit" => return,
                "/help" => {
                    reporter.status(
                        "type a line to send it; /send FILE sends a file; /quit or Ctrl-D ends",
                    );
                    continue;
                }
                l if l.starts_with("/send ") => {
                    let path = PathBuf::from(l["/send ".len()..].trim());
                    if let Err(e) = client::open(&path) {
                        reporter.status(&format!("cannot send {}: {e}", path.display()));
                        continue;
                    }
                    Item::File(path)
                }
                l if l.starts_with('/') && !l.starts_with("//") => {
                    reporter.status(&format!(
                        "unknown command {l:?} (/send FILE, /quit, /help; start with // to \
                         send a line that begins with /)"
                    ));
                    continue;
                }
                // `//x` sends `/x`.
                _ => Item::Text(match line.strip_prefix("//") {
                    Some(rest) => format!("/{rest}"),
                    None => line,
                }),
            }
        } else {
            Item::Text(line)
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

/// The summary, and the exit code the items' fate says.
fn finish(
    result: Result<Summary, client::SendError>,
    reporter: Reporter,
) -> anyhow::Result<ExitCode> {
    let summary = result.coded()?;
    reporter.emit(&Done {
        event: "summary",
        summary: summary.clone(),
    })?;
    Ok(if summary.failed > 0 {
        ExitCode::from(exit::LOCAL_IO)
    } else if summary.refused > 0 {
        ExitCode::from(exit::CHECK_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Serialize)]
struct Done {
    event: &'static str,
    #[serde(flatten)]
    summary: Summary,
}

impl Event for Done {
    fn lines(&self) -> Vec<Line> {
        self.summary.lines()
    }
}
