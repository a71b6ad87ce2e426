//! `socklab p2p chat`: one peer, on a UDP socket, driven by [`net::driver`](crate::net::driver).
//!
//! ```text
//!  stdin lines ──(thread, batches)──▶ ┌───────────────┐ ──datagrams──▶ peer
//!  or the prompt (/stats, /help)      │ Watch<Arq>    │ ◀─datagrams───
//!  stdout "<nick> text" ◀──events──── └───────────────┘   (driver::run: socket, clock)
//!  (or above the prompt, or JSON)
//! ```
//!
//! [`Watch`] wraps the error-control core with the one rule of the command line: once stdin
//! has ended, the peer must acknowledge; if it acknowledges nothing for `-t` while messages are
//! outstanding, the run ends (exit 4) saying how many. While stdin still waits behind
//! unacknowledged messages, the same holds for a peer once heard from; one never heard from is
//! waited for. It also answers `/stats` with a [`Report`] taken at that instant.

use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::arq::{self, Arq, Event};
use super::wire;
use crate::exit::{ExitCoded, LOCAL_IO, TIMEOUT};
use crate::net::dgram::DatagramSocket;
use crate::net::driver::{self, Core, Ended, Transmit};
use crate::net::trace::TracedDgram;
use crate::net::{NetError, clock, fmt_duration};
use crate::term::{self, Prompt, Transcript};

/// Longest stdin line taken as one message (longer ones are refused, with a word on stderr).
pub const MAX_LINE: usize = 64 * 1024;

/// Most stdin lines handed to the core at once.
const LINE_BATCH: usize = 64;

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
    /// `--json`: messages and the closing counters as JSON lines on stdout.
    pub json: bool,
    /// `--log FILE`: a transcript of what was received and sent.
    pub log: Option<PathBuf>,
    /// `--trace`: every datagram on stderr, described and dumped.
    pub trace: bool,
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
    /// stdout or the transcript could not be written: messages would be lost, so the run
    /// stops.
    #[error("{what}: {source}")]
    Local {
        /// Which.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl ExitCoded for PeerError {
    fn exit_code(&self) -> u8 {
        match self {
            PeerError::Net(e) => e.exit_code(),
            PeerError::Unacknowledged { .. } => TIMEOUT,
            PeerError::Local { .. } => LOCAL_IO,
        }
    }
}

/// What the application hands [`Watch`]: lines typed or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A message to send (already a [`wire::chat_message`]).
    Say(Vec<u8>),
    /// `/stats`: report the counters now.
    Stats,
    /// A word for the user that goes back out in order (`/help`, an unknown command).
    Note(String),
}

/// What [`Watch`] tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The core's event.
    Arq(Event),
    /// Nothing acknowledged for the limit after stdin ended: this many messages are
    /// outstanding.
    GaveUp(usize),
    /// The answer to [`Line::Stats`].
    Stats(Report),
    /// A [`Line::Note`] coming back.
    Note(String),
}

/// The counters and the timer at one instant: for `/stats`, the end of a run and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Report {
    /// The core's counters.
    #[serde(flatten)]
    pub stats: arq::Stats,
    /// Smoothed round-trip time (µs), once measured.
    pub srtt_us: Option<u64>,
    /// Its variation (µs).
    pub rttvar_us: u64,
    /// The retransmission timeout now (µs).
    pub rto_us: u64,
    /// Seconds since the peer was last heard from (`None`: never).
    pub last_heard_s: Option<f64>,
    /// Messages not yet wholly acknowledged.
    pub unacknowledged: usize,
}

impl Report {
    /// The report of `arq` at `now`.
    pub fn of(arq: &Arq, now: Instant) -> Report {
        let rto = arq.rto();
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Report {
            stats: arq.stats(),
            srtt_us: rto.srtt.map(us),
            rttvar_us: us(rto.rttvar),
            rto_us: us(rto.rto),
            last_heard_s: arq
                .last_heard()
                .map(|t| now.saturating_duration_since(t).as_secs_f64()),
            unacknowledged: arq.unacknowledged(),
        }
    }

    /// The report for people, a few lines.
    pub fn text(&self) -> String {
        let s = &self.stats;
        let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
        let heard = match self.last_heard_s {
            Some(t) => format!("last heard from the peer {t:.1} s ago"),
            None => "the peer has not been heard from yet".into(),
        };
        let ratio = if s.bytes_plain > 0 {
            format!(
                " ({:.0} %)",
                s.bytes_packed as f64 * 100.0 / s.bytes_plain as f64
            )
        } else {
            String::new()
        };
        format!(
            "{} messages sent, {} received ({} not yet acknowledged); {heard}\n\
             {} datagrams sent, {} received, {} retransmitted; {} duplicates, {} corrupt, {} \
             other dropped; {} held out of order\n\
             SRTT {}, RTTVAR {}, RTO {}; {} message bytes sent as {}{ratio}",
            s.messages_sent,
            s.messages_received,
            self.unacknowledged,
            s.datagrams_sent,
            s.datagrams_received,
            s.retransmissions,
            s.duplicates,
            s.corrupt,
            s.dropped,
            s.out_of_order,
            self.srtt_us.map_or_else(|| "none yet".into(), ms),
            ms(self.rttvar_us),
            ms(self.rto_us),
            s.bytes_plain,
            s.bytes_packed,
        )
    }
}

/// The ARQ core, with the give-up rule after the end of input. Sans-IO like the core.
#[derive(Debug)]
pub struct Watch {
    /// The core.
    pub arq: Arq,
    limit: Duration,
    ended: bool,
    outstanding: bool,
    acknowledged: u64,
    progress_at: Instant,
    heard: bool,
    gave_up: Option<usize>,
    answers: std::collections::VecDeque<WatchEvent>,
}

impl Watch {
    /// Watches `arq`, giving up after `limit` without progress once input has ended.
    pub fn new(now: Instant, arq: Arq, limit: Duration) -> Self {
        Watch {
            arq,
            limit,
            ended: false,
            outstanding: false,
            acknowledged: 0,
            progress_at: now,
            heard: false,
            gave_up: None,
            answers: std::collections::VecDeque::new(),
        }
    }

    fn check(&mut self, now: Instant) {
        // The clock starts when the peer is first heard, and again at each acknowledgement.
        let heard = self.arq.last_heard().is_some();
        let acknowledged = self.arq.acknowledged();
        if acknowledged != self.acknowledged || (heard && !self.heard) {
            self.progress_at = now;
        }
        self.heard = heard;
        self.acknowledged = acknowledged;
        self.outstanding = self.arq.has_outstanding();
    }

    /// When to give up: messages are outstanding and nothing was acknowledged for the limit,
    /// counted from the end of input (or the peer's first word, or its last acknowledgement).
    /// While input still waits behind unacknowledged messages, a peer never heard from is
    /// waited for (it may start long after this one); once input has ended, it has `-t`.
    fn deadline(&self) -> Option<Instant> {
        let waiting = self.ended || (!self.arq.wants_input() && self.heard);
        (waiting && self.outstanding && self.gave_up.is_none())
            .then(|| self.progress_at + self.limit)
    }
}

impl Core for Watch {
    type Input = Vec<Line>;
    type Event = WatchEvent;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.arq.handle_datagram(now, from, data);
        self.check(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.arq.handle_timeout(now);
        self.check(now);
        if self.deadline().is_some_and(|d| d <= now) {
            self.gave_up = Some(self.arq.unacknowledged());
        }
    }

    fn handle_input(&mut self, now: Instant, input: Vec<Line>) {
        for line in input {
            match line {
                Line::Say(m) => self.arq.handle_input(now, m),
                Line::Stats => self
                    .answers
                    .push_back(WatchEvent::Stats(Report::of(&self.arq, now))),
                Line::Note(text) => self.answers.push_back(WatchEvent::Note(text)),
            }
        }
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
        if let Some(e) = self.arq.poll_event() {
            return Some(WatchEvent::Arq(e));
        }
        self.answers.pop_front()
    }

    fn wants_input(&self) -> bool {
        self.arq.wants_input()
    }

    fn is_drained(&self) -> bool {
        self.arq.is_drained()
    }
}

/// A fresh random session id (never 0): one per run of a peer, or per peer the lab's bot
/// talks to.
pub fn new_session() -> u32 {
    loop {
        let s: u32 = rand::random();
        if s != 0 {
            return s;
        }
    }
}

/// The receive buffer asked for.
pub const RECV_BUFFER: usize = 4 << 20;

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
    // A full window (256 datagrams of up to --mtu bytes, each costing the kernel about twice
    // its size) overflows the default receive buffer (208 KiB) when the reader falls behind
    // for a moment, and every datagram dropped there must be sent again. Ask for more; the
    // kernel grants up to net.core.rmem_max.
    let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(RECV_BUFFER);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {local}");
    let _ = out.flush();
    Ok(sock)
}

/// What the prompt understands; anything else starting with `/` is refused (`//` sends one
/// `/`).
pub const COMMANDS: &str = "\
commands: /stats  the counters, the timer, when the peer was last heard from
          /quit   stop typing: wait for every acknowledgement, then exit (or Ctrl-D)
          /help   this
a line starting with // is sent with one /";

/// A typed line as the watch takes it: `None` for `/quit`.
pub fn typed(nick: &str, line: &str) -> Option<Line> {
    Some(match line.trim_end() {
        "/stats" => Line::Stats,
        "/quit" => return None,
        "/help" => Line::Note(COMMANDS.into()),
        _ if line.starts_with("//") => Line::Say(wire::chat_message(nick, &line[1..])),
        cmd if cmd.starts_with('/') => Line::Note(format!(
            "{} is not a command (/help lists them; // sends a line starting with /)",
            cmd.split_whitespace().next().unwrap_or(cmd)
        )),
        _ => Line::Say(wire::chat_message(nick, line)),
    })
}

/// What one read of a stdin line found.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Line,
    TooLong,
    End,
}

/// Reads one line into `line` (without its `\n`); a line longer than `max` is read to its end
/// and thrown away, never held whole.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<Got> {
    line.clear();
    let (mut any, mut too_long) = (false, false);
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => Got::End,
                (true, true) => Got::TooLong,
                (true, false) => Got::Line,
            });
        }
        any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let part = &buf[..newline.unwrap_or(buf.len())];
        if !too_long {
            if line.len() + part.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            return Ok(if too_long { Got::TooLong } else { Got::Line });
        }
    }
}

/// Reads stdin (not a terminal) on its own thread, line by line, and hands the lines over in
/// batches: as many as are already read, up to [`LINE_BATCH`]. One hand-over (and one wake-up
/// of the driver) for a burst, instead of one per line.
///
/// A transcript that cannot be written stops the reading (what was read is still sent) and is
/// the error returned: the run then ends as at the end of input, and says so.
fn read_stdin(
    r: std::io::BufReader<impl std::io::Read>,
    nick: &str,
    tx: &mpsc::Sender<Vec<Line>>,
    log: Option<&Mutex<Transcript>>,
) -> std::io::Result<()> {
    let mut failed = None;
    let mut r = r;
    let mut line = Vec::new();
    let mut batch = Vec::new();
    loop {
        let got = read_line(&mut r, &mut line, MAX_LINE);
        match got {
            Ok(Got::Line) => {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                match std::str::from_utf8(text) {
                    Ok(text) => {
                        if let Some(log) = log {
                            failed = log_sent(log, text).err();
                        }
                        batch.push(Line::Say(wire::chat_message(nick, text)));
                    }
                    Err(_) => eprintln!("socklab: a stdin line that is not UTF-8 was not sent"),
                }
            }
            Ok(Got::TooLong) => {
                eprintln!("socklab: a stdin line longer than {MAX_LINE} bytes was not sent");
            }
            Ok(Got::End) => break,
            Err(e) => {
                eprintln!("socklab: reading stdin: {e}");
                break;
            }
        }
        // Handed over when full, or when no whole line is waiting in the buffer (a partial
        // line there may take any time to end).
        let more = r.buffer().contains(&b'\n');
        if !batch.is_empty()
            && (batch.len() >= LINE_BATCH || !more || failed.is_some())
            && tx.blocking_send(std::mem::take(&mut batch)).is_err()
        {
            return Ok(());
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}

/// Writes a sent line to the transcript.
fn log_sent(log: &Mutex<Transcript>, text: &str) -> std::io::Result<()> {
    log.lock()
        .map_err(|_| std::io::Error::other("the transcript's lock was poisoned"))?
        .sent(text)
}

/// Where messages are shown.
enum Output {
    /// `<nick> text` lines, buffered and written when the driver waits.
    Lines(std::io::BufWriter<std::io::Stdout>),
    /// JSON lines, likewise.
    Json(std::io::BufWriter<std::io::Stdout>),
    /// Above the prompt.
    Prompt(Box<dyn rustyline::ExternalPrinter + Send>),
}

/// One message for `--json`.
#[derive(serde::Serialize)]
struct JsonMessage<'a> {
    event: &'static str,
    nick: &'a str,
    text: &'a str,
}

impl Output {
    fn message(&mut self, nick: &str, text: &str) -> std::io::Result<()> {
        match self {
            Output::Lines(w) => writeln!(w, "<{nick}> {text}"),
            Output::Json(w) => {
                let m = JsonMessage {
                    event: "message",
                    nick,
                    text,
                };
                serde_json::to_writer(&mut *w, &m)?;
                w.write_all(b"\n")
            }
            Output::Prompt(p) => p
                .print(format!("<{}> {text}\n", term::coloured(nick)))
                .map_err(std::io::Error::other),
        }
    }

    /// A word for the user: above the prompt, or on stderr.
    fn note(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Output::Prompt(p) => p.print(format!("{text}\n")).map_err(std::io::Error::other),
            _ => {
                eprintln!("socklab: {text}");
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Lines(w) | Output::Json(w) => w.flush(),
            Output::Prompt(_) => Ok(()),
        }
    }
}

/// Why the driver was stopped from the callback.
enum Stop {
    GaveUp(usize),
    Output(&'static str, std::io::Error),
}

/// The counters at the end of a run, as `--json` prints them.
#[derive(serde::Serialize)]
struct JsonStats<'a> {
    event: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

/// What a stdout or transcript write failure left behind, for after the run.
type Failed = RefCell<Option<(&'static str, std::io::Error)>>;

/// The driver with this peer's callbacks, over any datagram socket (plain, or traced).
async fn drive<S: DatagramSocket<Addr = SocketAddr>>(
    watch: &mut Watch,
    sock: &S,
    rx: mpsc::Receiver<Vec<Line>>,
    shutdown: &CancellationToken,
    output: &RefCell<Output>,
    failed: &Failed,
    log: Option<&Mutex<Transcript>>,
) -> Result<driver::Outcome<Stop>, NetError> {
    driver::run_with_idle(
        watch,
        sock,
        rx,
        shutdown,
        |ev| {
            if let Some((what, e)) = failed.borrow_mut().take() {
                return ControlFlow::Break(Stop::Output(what, e));
            }
            let mut out = output.borrow_mut();
            let shown = match ev {
                WatchEvent::GaveUp(n) => return ControlFlow::Break(Stop::GaveUp(n)),
                WatchEvent::Arq(Event::Message(m)) => {
                    let (nick, text) = wire::parse_chat(&m)
                        .unwrap_or_else(|| ("?".into(), String::from_utf8_lossy(&m).into()));
                    if let Some(log) = &log
                        && let Err(e) = log
                            .lock()
                            .map_err(|_| std::io::Error::other("poisoned"))
                            .and_then(|mut l| l.received(&format!("<{nick}> {text}")))
                    {
                        return ControlFlow::Break(Stop::Output("writing the transcript", e));
                    }
                    out.message(&nick, &text)
                }
                WatchEvent::Arq(Event::PeerRestarted) => {
                    out.note("the peer restarted (a new session)")
                }
                WatchEvent::Stats(r) => out.note(&r.text()),
                WatchEvent::Note(text) => out.note(&text),
            };
            match shown {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(Stop::Output("writing stdout", e)),
            }
        },
        || {
            if let Err(e) = output.borrow_mut().flush() {
                *failed.borrow_mut() = Some(("writing stdout", e));
            }
        },
    )
    .await
}

/// Runs one peer until stdin has ended and everything sent is acknowledged, or `shutdown`.
/// The counters are printed at the end whatever happened (stderr, or a JSON line); the
/// report is also returned.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<Report, PeerError> {
    // The transcript first: a bad path is said before `listening on`.
    let log = match &cfg.log {
        Some(path) => Some(Arc::new(Mutex::new(Transcript::open(path).map_err(
            |source| PeerError::Local {
                what: "opening the transcript",
                source,
            },
        )?))),
        None => None,
    };
    let sock = bind(cfg.listen).await?;
    let (tx, rx) = mpsc::channel::<Vec<Line>>(4);
    // A transcript write that failed on the input side (reported after the run).
    let sent_log_failed: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    // Restores the terminal when the run ends, however it ends.
    let mut terminal = None;
    let prompt = if cfg.json { None } else { Prompt::open("> ") };
    let output = match prompt {
        Some(p) => {
            let (mut lines, printer, restore) = p.into_parts();
            terminal = Some(restore);
            let (nick, log) = (cfg.nick.clone(), log.clone());
            let failed = Arc::clone(&sent_log_failed);
            tokio::spawn(async move {
                while let Some(Some(line)) = lines.recv().await {
                    let Some(item) = typed(&nick, &line) else {
                        break;
                    };
                    let logged = match (&log, &item) {
                        (Some(log), Line::Say(_)) => log_sent(log, &line),
                        _ => Ok(()),
                    };
                    if tx.send(vec![item]).await.is_err() {
                        break;
                    }
                    if let Err(e) = logged {
                        // The input ends here; the run finishes and reports it.
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        break;
                    }
                }
            });
            let mut out = Output::Prompt(printer);
            let _ = out.note(&format!(
                "talking to {} as {} (/help for commands, Ctrl-D to finish)",
                cfg.peer, cfg.nick
            ));
            out
        }
        None => {
            let (nick, log) = (cfg.nick.clone(), log.clone());
            let failed = Arc::clone(&sent_log_failed);
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || {
                    let stdin = std::io::stdin();
                    let r = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
                    if let Err(e) = read_stdin(r, &nick, &tx, log.as_deref()) {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                })
                .map_err(|source| PeerError::Local {
                    what: "starting the stdin thread",
                    source,
                })?;
            let w = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
            if cfg.json {
                Output::Json(w)
            } else {
                Output::Lines(w)
            }
        }
    };
    let output = RefCell::new(output);
    let failed: Failed = RefCell::new(None);
    let now = clock::now();
    let mut watch = Watch::new(now, Arq::new(now, cfg.peer, cfg.arq.clone()), cfg.timeout);
    let ran = if cfg.trace {
        let sock = TracedDgram::new(sock, wire::describe);
        drive(
            &mut watch,
            &sock,
            rx,
            &shutdown,
            &output,
            &failed,
            log.as_deref(),
        )
        .await
    } else {
        drive(
            &mut watch,
            &sock,
            rx,
            &shutdown,
            &output,
            &failed,
            log.as_deref(),
        )
        .await
    };
    // The terminal as it was, before the closing words.
    drop(terminal);
    let report = Report::of(&watch.arq, clock::now());
    let mut output = output.into_inner();
    let failed = failed.into_inner();
    let outcome = ran?;
    match &mut output {
        Output::Json(w) => {
            let _ = serde_json::to_writer(
                &mut *w,
                &JsonStats {
                    event: "stats",
                    report: &report,
                },
            );
            let _ = w.write_all(b"\n");
            let _ = w.flush();
        }
        _ => eprintln!("socklab: {}", report.text().replace('\n', "\nsocklab: ")),
    }
    if let Some((what, source)) = failed {
        return Err(PeerError::Local { what, source });
    }
    let sent_log = sent_log_failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(source) = sent_log {
        return Err(PeerError::Local {
            what: "writing the transcript",
            source,
        });
    }
    match outcome.ended {
        Ended::Stopped(Stop::GaveUp(count)) => Err(PeerError::Unacknowledged {
            count,
            after: cfg.timeout,
        }),
        Ended::Stopped(Stop::Output(what, source)) => Err(PeerError::Local { what, source }),
        Ended::Drained | Ended::Cancelled => Ok(report),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn say(nick: &str, text: &str) -> Option<Line> {
        Some(Line::Say(wire::chat_message(nick, text)))
    }

    #[test]
    fn typed_lines_are_messages_commands_or_refusals() {
        assert_eq!(typed("ann", "hello"), say("ann", "hello"));
        assert_eq!(typed("ann", "/stats"), Some(Line::Stats));
        assert_eq!(typed("ann", "/stats  "), Some(Line::Stats));
        assert_eq!(typed("ann", "/quit"), None);
        assert_eq!(typed("ann", "/help"), Some(Line::Note(COMMANDS.into())));
        assert_eq!(typed("ann", "//etc/passwd"), say("ann", "/etc/passwd"));
        assert_eq!(typed("ann", " /stats"), say("ann", " /stats"));
        let Some(Line::Note(n)) = typed("ann", "/nick bob") else {
            panic!("an unknown command was sent");
        };
        assert!(n.starts_with("/nick is not a command"), "{n}");
    }

    #[test]
    fn stdin_lines_are_read_whole_and_long_ones_thrown_away() {
        let long = "y".repeat(100);
        let text = format!("one\ntwo\r\n{long}\n\nlast without newline");
        let mut r = std::io::BufReader::with_capacity(7, text.as_bytes());
        let mut line = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut line, 50).unwrap() {
                Got::End => break,
                g => got.push((g, String::from_utf8(line.clone()).unwrap())),
            }
        }
        assert_eq!(
            got,
            [
                (Got::Line, "one".into()),
                (Got::Line, "two\r".into()),
                (Got::TooLong, String::new()),
                (Got::Line, String::new()),
                (Got::Line, "last without newline".into()),
            ]
        );
        // Exactly the limit is a line; one more is not.
        for (n, want) in [(50, Got::Line), (51, Got::TooLong)] {
            let text = "z".repeat(n);
            let mut r = std::io::BufReader::new(text.as_bytes());
            assert_eq!(read_line(&mut r, &mut line, 50).unwrap(), want);
        }
    }

    #[test]
    fn stdin_is_handed_over_in_batches_in_order() {
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let r = std::io::BufReader::with_capacity(1 << 16, text.as_bytes());
        let (tx, mut rx) = mpsc::channel(1000);
        read_stdin(r, "ann", &tx, None).unwrap();
        drop(tx);
        let mut batches = Vec::new();
        while let Ok(b) = rx.try_recv() {
            batches.push(b);
        }
        assert!(
            batches
                .iter()
                .all(|b| !b.is_empty() && b.len() <= LINE_BATCH)
        );
        // All of it was buffered at once: full batches.
        assert_eq!(batches.len(), 200usize.div_ceil(LINE_BATCH));
        let all: Vec<Line> = batches.into_iter().flatten().collect();
        let want: Vec<Line> = (0..200)
            .map(|i| Line::Say(wire::chat_message("ann", &format!("line {i}"))))
            .collect();
        assert_eq!(all, want);
    }

    /// A whole line is handed over before a partial one after it is complete: the next part
    /// may take any time to come (someone typing into a pipe).
    #[test]
    fn a_line_is_not_held_back_by_a_partial_one() {
        /// Reads "hello\npar", then (having checked what was handed over) "tial\n", then ends.
        struct Slow {
            reads: usize,
            rx: mpsc::Receiver<Vec<Line>>,
            seen: std::sync::Arc<Mutex<Vec<Vec<Line>>>>,
        }
        impl std::io::Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.reads += 1;
                let part: &[u8] = match self.reads {
                    1 => b"hello\npar",
                    2 => {
                        while let Ok(b) = self.rx.try_recv() {
                            self.seen.lock().unwrap().push(b);
                        }
                        b"tial\n"
                    }
                    _ => b"",
                };
                buf[..part.len()].copy_from_slice(part);
                Ok(part.len())
            }
        }
        let (tx, rx) = mpsc::channel(16);
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let slow = Slow {
            reads: 0,
            rx,
            seen: std::sync::Arc::clone(&seen),
        };
        read_stdin(std::io::BufReader::new(slow), "ann", &tx, None).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [vec![Line::Say(wire::chat_message("ann", "hello"))]],
            "\"hello\" waited for the line after it"
        );
    }

    /// `/stats` is answered in order with what the core counted at that instant, and the
    /// text names every counter.
    #[test]
    fn stats_are_answered_with_the_counters_then() {
        let t0 = clock::now();
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut w = Watch::new(
            t0,
            Arq::new(t0, peer, arq::Config::default()),
            Duration::from_secs(30),
        );
        w.handle_input(
            t0,
            vec![
                Line::Say(wire::chat_message("ann", "one")),
                Line::Stats,
                Line::Note("hi".into()),
            ],
        );
        let mut events = Vec::new();
        while let Some(e) = w.poll_event() {
            events.push(e);
        }
        let [WatchEvent::Stats(r), WatchEvent::Note(n)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(n, "hi");
        assert_eq!(r.stats.messages_sent, 1);
        assert_eq!(r.unacknowledged, 1);
        assert_eq!(r.last_heard_s, None);
        let text = r.text();
        for word in [
            "1 messages sent, 0 received (1 not yet acknowledged)",
            "not been heard from",
            "retransmitted",
            "corrupt",
            "duplicates",
            "out of order",
            "SRTT none yet",
            "RTO 1000.0 ms",
        ] {
            assert!(text.contains(word), "{word:?} missing in {text}");
        }
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json["messages_sent"], 1);
        assert_eq!(json["rto_us"], 1_000_000);
        assert!(json["srtt_us"].is_null());
    }
}
