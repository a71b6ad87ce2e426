//! `socklab p2p chat`: one peer, on a UDP socket, driven by [`net::driver`](crate::net::driver).
//!
//! ```text
//!  stdin lines ──(bounded channel)──▶ ┌───────────────┐ ──datagrams──▶ peer
//!                                     │ Watch<Arq>    │ ◀─datagrams───
//!  stdout "<nick> text" ◀──events──── └───────────────┘   (driver::run: socket, clock)
//! ```
//!
//! [`Watch`] wraps the error-control core with the one rule of the command line: once stdin
//! has ended, the peer must acknowledge; if it acknowledges nothing for `-t` while messages are
//! outstanding, the run ends (exit 4) saying how many. While stdin still waits behind
//! unacknowledged messages, the same holds for a peer once heard from; one never heard from is
//! waited for.

use std::io::Write;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::arq::{self, Arq, Event};
use super::wire;
use crate::exit::{ExitCoded, TIMEOUT};
use crate::net::driver::{self, Core, Ended, Transmit};
use crate::net::{NetError, clock, fmt_duration};

/// Longest stdin line taken as one message (longer ones are refused, with a word on stderr).
pub const MAX_LINE: usize = 64 * 1024;

/// Everything a peer needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The other peer.
    pub peer: SocketAddr,
    /// This side's nickname.
    pub nick: String,
    /// After stdin ends: how long the peer may go without acknowledging anything.
    pub timeout: Duration,
    /// The error-control settings.
    pub arq: arq::Config,
}

/// How a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The socket.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The peer stopped acknowledging.
    #[error(
        "the peer acknowledged nothing for {}: {count} messages went unacknowledged",
        fmt_duration(*.after)
    )]
    Unacknowledged {
        /// Messages not wholly acknowledged.
        count: usize,
        /// How long the peer was silent.
        after: Duration,
    },
}

impl ExitCoded for PeerError {
    fn exit_code(&self) -> u8 {
        match self {
            PeerError::Net(e) => e.exit_code(),
            PeerError::Unacknowledged { .. } => TIMEOUT,
        }
    }
}

/// What [`Watch`] tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The core's event.
    Arq(Event),
    /// Nothing acknowledged for the limit after stdin ended: this many messages are
    /// outstanding.
    GaveUp(usize),
}

/// The ARQ core, with the give-up rule after the end of input. Sans-IO like the core.
#[derive(Debug)]
pub struct Watch {
    /// The core.
    pub arq: Arq,
    limit: Duration,
    ended: bool,
    outstanding: usize,
    progress_at: Instant,
    heard: bool,
    gave_up: Option<usize>,
}

impl Watch {
    /// Watches `arq`, giving up after `limit` without progress once input has ended.
    pub fn new(now: Instant, arq: Arq, limit: Duration) -> Self {
        Watch {
            arq,
            limit,
            ended: false,
            outstanding: 0,
            progress_at: now,
            heard: false,
            gave_up: None,
        }
    }

    fn check(&mut self, now: Instant) {
        let n = self.arq.unacknowledged();
        // The clock starts when the peer is first heard, and again at each acknowledgement.
        let heard = self.arq.last_heard().is_some();
        if n < self.outstanding || (heard && !self.heard) {
            self.progress_at = now;
        }
        self.heard = heard;
        self.outstanding = n;
    }

    /// When to give up: messages are outstanding and nothing was acknowledged for the limit,
    /// counted from the end of input (or the peer's first word, or its last acknowledgement).
    /// While input still waits behind unacknowledged messages, a peer never heard from is
    /// waited for (it may start long after this one); once input has ended, it has `-t`.
    fn deadline(&self) -> Option<Instant> {
        let waiting = self.ended || (!self.arq.wants_input() && self.heard);
        (waiting && self.outstanding > 0 && self.gave_up.is_none())
            .then(|| self.progress_at + self.limit)
    }
}

impl Core for Watch {
    type Input = Vec<u8>;
    type Event = WatchEvent;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.arq.handle_datagram(now, from, data);
        self.check(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.arq.handle_timeout(now);
        self.check(now);
        if self.deadline().is_some_and(|d| d <= now) {
            self.gave_up = Some(self.outstanding);
        }
    }

    fn handle_input(&mut self, now: Instant, input: Vec<u8>) {
        self.arq.handle_input(now, input);
        self.check(now);
    }

    fn handle_input_end(&mut self, now: Instant) {
        self.arq.handle_input_end(now);
        self.ended = true;
        self.progress_at = now;
        self.check(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.arq.poll_transmit(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.arq.poll_timeout(), self.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<WatchEvent> {
        if let Some(n) = self.gave_up.take() {
            return Some(WatchEvent::GaveUp(n));
        }
        self.arq.poll_event().map(WatchEvent::Arq)
    }

    fn wants_input(&self) -> bool {
        self.arq.wants_input()
    }

    fn is_drained(&self) -> bool {
        self.arq.is_drained()
    }
}

/// Binds a UDP socket at `listen` and prints `listening on ADDR` (the address bound) as the
/// first stdout line.
pub async fn bind(listen: SocketAddr) -> Result<UdpSocket, NetError> {
    let sock = UdpSocket::bind(listen)
        .await
        .map_err(|e| NetError::from_io(e, listen, format!("binding {listen}")))?;
    let local = sock.local_addr().map_err(|e| NetError::Io {
        what: "reading the bound address".into(),
        source: e,
    })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {local}");
    let _ = out.flush();
    Ok(sock)
}

/// Runs one peer until stdin has ended and everything sent is acknowledged, or `shutdown`.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<arq::Stats, PeerError> {
    let sock = bind(cfg.listen).await?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    let nick = cfg.nick.clone();
    let reader = tokio::spawn(async move {
        let mut lines = FramedRead::new(
            tokio::io::stdin(),
            LinesCodec::new_with_max_length(MAX_LINE),
        );
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => {
                    let text = line.strip_suffix('\r').unwrap_or(&line);
                    if tx.send(wire::chat_message(&nick, text)).await.is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("socklab: a stdin line was not sent: {e}"),
            }
        }
    });
    let now = clock::now();
    let mut watch = Watch::new(now, Arq::new(now, cfg.peer, cfg.arq.clone()), cfg.timeout);
    let stdout = std::io::stdout();
    let outcome = driver::run(&mut watch, &sock, rx, &shutdown, |ev| match ev {
        WatchEvent::GaveUp(n) => ControlFlow::Break(n),
        WatchEvent::Arq(Event::Message(m)) => {
            let line = match wire::parse_chat(&m) {
                Some((nick, text)) => format!("<{nick}> {text}\n"),
                None => format!("<?> {}\n", String::from_utf8_lossy(&m)),
            };
            let mut out = stdout.lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            ControlFlow::Continue(())
        }
        WatchEvent::Arq(Event::PeerRestarted) => {
            eprintln!("socklab: the peer restarted (a new session)");
            ControlFlow::Continue(())
        }
    })
    .await?;
    reader.abort();
    match outcome.ended {
        Ended::Stopped(count) => Err(PeerError::Unacknowledged {
            count,
            after: cfg.timeout,
        }),
        Ended::Drained | Ended::Cancelled => Ok(watch.arq.stats()),
    }
}

/// `--no-arq`: the course's first step. Each stdin line goes out as one bare datagram (the
/// line and its `\n`, nothing else: no header, no CRC, no compression, as `nc -u` sends it), and each datagram received, from
/// anyone, is printed as `<ADDR:PORT> text`. Nothing is acknowledged or sent again: under loss,
/// lines are simply gone. Ends at the end of stdin (after a moment for late replies) or on a
/// signal.
pub async fn run_plain(cfg: Config, shutdown: CancellationToken) -> Result<PlainStats, PeerError> {
    let sock = bind(cfg.listen).await?;
    let mut lines = FramedRead::new(
        tokio::io::stdin(),
        LinesCodec::new_with_max_length(MAX_LINE),
    );
    let mut stats = PlainStats::default();
    let mut buf = vec![0u8; 65_536];
    let mut input_open = true;
    // After the end of stdin, replies still in flight are printed for a moment.
    let linger = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(linger);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut linger, if !input_open => break,
            line = lines.next(), if input_open => match line {
                Some(Ok(line)) => {
                    // The line with its newline, as `nc -u` sends it.
                    let text = format!("{}\n", line.strip_suffix('\r').unwrap_or(&line));
                    match sock.send_to(text.as_bytes(), cfg.peer).await {
                        Ok(_) => stats.sent += 1,
                        Err(e) => eprintln!("socklab: sending to {}: {e}", cfg.peer),
                    }
                }
                Some(Err(e)) => eprintln!("socklab: a stdin line was not sent: {e}"),
                None => {
                    input_open = false;
                    linger
                        .as_mut()
                        .reset(clock::tokio_now() + PLAIN_LINGER);
                }
            },
            got = sock.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    stats.received += 1;
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "<{from}> {text}");
                    let _ = out.flush();
                }
                // An ICMP error about an earlier datagram (nobody listens at --peer yet).
                Err(e) => tracing::debug!("p2p: {e}"),
            },
        }
    }
    Ok(stats)
}

/// How long `--no-arq` waits for late datagrams after the end of stdin.
pub const PLAIN_LINGER: Duration = Duration::from_millis(500);

/// What `--no-arq` counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlainStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
}
