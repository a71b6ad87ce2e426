//! `socklab echo send`: send, check that what comes back is what went out, time it.
//!
//! Two ways to use it:
//! - with MESSAGE arguments: send the message `--count` times, one round trip at a time,
//!   and print each round-trip time (like ping);
//! - without: stream stdin to the server and the echo to stdout while checking it byte for
//!   byte, so `socklab echo send HOST:PORT < file > copy` is a working pipe.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Framed;

use super::proto::{Mismatch, Verifier};
use crate::frame::{Frame, FrameCodec, FrameError, Framing};
use crate::net::{self, Endpoint, Metered, NetError, Tracer, clock, fmt_duration};
use crate::report::{Event, Line, Reporter};
use crate::stats;

/// Most bytes the stdin streamer may run ahead of the echo before it waits.
const MAX_AHEAD: usize = 4 * 1024 * 1024;
/// Longest stdin line sent as one frame or datagram.
const MAX_LINE: usize = 1024 * 1024;

/// Everything `echo send` needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to send.
    pub target: Endpoint,
    /// UDP (or Unix datagram) instead of a stream.
    pub datagram: bool,
    /// The message; `None` streams stdin.
    pub message: Option<Vec<u8>>,
    /// Round trips to make with the message.
    pub count: u64,
    /// Pause between round trips.
    pub interval: Duration,
    /// Connect and read timeout (overall deadline for one UDP round trip).
    pub timeout: Duration,
    /// UDP retransmissions before giving up.
    pub retries: u32,
    /// Write in pieces of this many bytes.
    pub chunk: Option<usize>,
    /// Send frames instead of bytes.
    pub framing: Option<Framing>,
    /// Largest frame accepted back.
    pub max_frame: usize,
    /// `--trace`.
    pub trace: bool,
}

/// Why `echo send` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The echo was not what we sent.
    #[error("{addr}: {source}")]
    Mismatch {
        /// The server.
        addr: String,
        /// What differed.
        source: Mismatch,
    },
    /// The server sent a malformed frame.
    #[error("{addr} sent a bad frame: {source}")]
    Frame {
        /// The server.
        addr: String,
        /// What was wrong with it.
        source: FrameError,
    },
    /// A message we were asked to send cannot be sent that way.
    #[error("{0}")]
    Usage(String),
    /// Reading stdin or writing stdout failed.
    #[error("{what}: {source}")]
    Local {
        /// Which.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Error::Net(n) => n.exit_code(),
            Error::Mismatch { .. } => exit::CHECK_FAILED,
            Error::Frame { .. } => exit::PROTOCOL,
            Error::Usage(_) => exit::USAGE,
            _ => exit::LOCAL_IO,
        }
    }
}

/// Round-trip statistics of one run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Round trips attempted.
    pub sent: u64,
    /// Round trips whose echo matched.
    pub echoed: u64,
    /// Round-trip times in microseconds.
    pub rtt_us: Vec<u64>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Runs the client.
pub async fn run(cfg: Config, out: Reporter) -> Result<Summary, Error> {
    let label = cfg.target.to_string();
    let tracer = cfg.trace.then(|| Tracer::new(label.clone()));
    if cfg.datagram {
        let sock = Dgram::connect(&cfg.target).await?;
        return datagram_rounds(&cfg, out, sock, tracer).await;
    }
    let stream = net::connect::stream(&cfg.target, cfg.timeout).await?;
    let stream = Metered::new(stream, tracer);
    match (&cfg.framing, &cfg.message) {
        (None, Some(msg)) => byte_rounds(&cfg, out, stream, msg).await,
        (None, None) => stream_stdin(&cfg, out, stream).await,
        (Some(f), _) => frame_rounds(&cfg, out, stream, f).await,
    }
}

fn local(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Local { what, source }
}

fn report_round(
    out: &Reporter,
    cfg: &Config,
    seq: u64,
    bytes: usize,
    rtt: Duration,
) -> Result<(), Error> {
    out.emit(&Round {
        bytes,
        ok: true,
        rtt_us: rtt.as_micros() as u64,
        seq,
        kind: "round",
        target: &cfg.target,
        rtt,
    })
    .map_err(local("writing stdout"))
}

fn read_error(cfg: &Config, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::TimedOut {
        NetError::Timeout {
            what: format!("waiting for the echo from {}", cfg.target),
            after: cfg.timeout,
        }
        .into()
    } else {
        NetError::from_io(e, &cfg.target, format!("talking to {}", cfg.target)).into()
    }
}

async fn write_chunked<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    chunk: Option<usize>,
) -> io::Result<()> {
    match chunk {
        None => w.write_all(data).await,
        Some(n) => {
            for piece in data.chunks(n.max(1)) {
                w.write_all(piece).await?;
            }
            Ok(())
        }
    }
}

async fn byte_rounds<S: Stream>(
    cfg: &Config,
    out: Reporter,
    mut s: Metered<S>,
    msg: &[u8],
) -> Result<Summary, Error> {
    let mut summary = Summary {
        sent: 0,
        echoed: 0,
        rtt_us: Vec::new(),
    };
    let mut verifier = Verifier::default();
    let mut buf = vec![0u8; 64 * 1024];
    let addr = cfg.target.to_string();
    for seq in 1..=cfg.count {
        if seq > 1 {
            tokio::time::sleep(cfg.interval).await;
        }
        let started = clock::now();
        verifier.sent(msg);
        summary.sent += 1;
        net::within(cfg.timeout, write_chunked(&mut s, msg, cfg.chunk))
            .await
            .map_err(|e| read_error(cfg, e))?;
        let mut echo = Vec::with_capacity(msg.len());
        while verifier.pending() > 0 {
            let n = net::within(cfg.timeout, s.read(&mut buf))
                .await
                .map_err(|e| read_error(cfg, e))?;
            if n == 0 {
                return Err(NetError::ClosedEarly {
                    addr,
                    when: format!(
                        "after echoing {} of {} bytes",
                        msg.len() - verifier.pending(),
                        msg.len()
                    ),
                }
                .into());
            }
            verifier
                .received(&buf[..n])
                .map_err(|source| Error::Mismatch {
                    addr: addr.clone(),
                    source,
                })?;
            echo.extend_from_slice(&buf[..n]);
        }
        let rtt = crate::net::clock::since(started);
        summary.echoed += 1;
        summary.rtt_us.push(rtt.as_micros() as u64);
        out.data(&echo).map_err(local("writing stdout"))?;
        report_round(&out, cfg, seq, msg.len(), rtt)?;
    }
    // Close our side and make sure the server sends nothing more than the echo.
    finish_stream(cfg, &mut s, &mut verifier, &mut buf, &out).await?;
    Ok(summary)
}

async fn finish_stream<S: Stream>(
    cfg: &Config,
    s: &mut Metered<S>,
    verifier: &mut Verifier,
    buf: &mut [u8],
    out: &Reporter,
) -> Result<(), Error> {
    let addr = cfg.target.to_string();
    s.shutdown().await.map_err(|e| read_error(cfg, e))?;
    loop {
        let n = net::within(cfg.timeout, s.read(buf))
            .await
            .map_err(|e| read_error(cfg, e))?;
        if n == 0 {
            break;
        }
        verifier
            .received(&buf[..n])
            .map_err(|source| Error::Mismatch {
                addr: addr.clone(),
                source,
            })?;
        out.data(&buf[..n]).map_err(local("writing stdout"))?;
    }
    verifier
        .finish()
        .map_err(|source| Error::Mismatch { addr, source })
}

/// Streams stdin through the server: a writer and a reader run concurrently in this task,
/// sharing the verifier. The writer records bytes before sending them and pauses when it is
/// more than [`MAX_AHEAD`] bytes ahead of the echo.
async fn stream_stdin<S: Stream>(
    cfg: &Config,
    out: Reporter,
    s: Metered<S>,
) -> Result<Summary, Error> {
    let started = clock::now();
    let addr = cfg.target.to_string();
    let verifier = RefCell::new(Verifier::default());
    let progress = tokio::sync::Notify::new();
    let (mut rd, mut wr) = tokio::io::split(s);

    let writer = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; cfg.chunk.unwrap_or(64 * 1024).clamp(1, 1 << 20)];
        loop {
            while verifier.borrow().pending() > MAX_AHEAD {
                progress.notified().await;
            }
            let n = stdin.read(&mut buf).await.map_err(local("reading stdin"))?;
            if n == 0 {
                break;
            }
            verifier.borrow_mut().sent(&buf[..n]);
            net::within(cfg.timeout, wr.write_all(&buf[..n]))
                .await
                .map_err(|e| read_error(cfg, e))?;
        }
        wr.shutdown().await.map_err(|e| read_error(cfg, e))?;
        Ok::<(), Error>(())
    };
    let reader = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = net::within(cfg.timeout, rd.read(&mut buf))
                .await
                .map_err(|e| read_error(cfg, e))?;
            if n == 0 {
                break;
            }
            verifier
                .borrow_mut()
                .received(&buf[..n])
                .map_err(|source| Error::Mismatch {
                    addr: addr.clone(),
                    source,
                })?;
            progress.notify_one();
            out.data(&buf[..n]).map_err(local("writing stdout"))?;
        }
        Ok::<(), Error>(())
    };
    tokio::try_join!(writer, reader)?;
    let v = verifier.into_inner();
    v.finish().map_err(|source| Error::Mismatch {
        addr: addr.clone(),
        source,
    })?;
    let took = crate::net::clock::since(started);
    out.emit(&Streamed {
        bytes: v.echoed(),
        elapsed_us: took.as_micros() as u64,
        ok: true,
        kind: "stream",
        addr: &addr,
        took,
    })
    .map_err(local("writing stdout"))?;
    Ok(Summary {
        sent: 1,
        echoed: 1,
        rtt_us: vec![took.as_micros() as u64],
    })
}

/// The messages to send: the one given (`count` times) or stdin's lines.
enum Messages {
    Repeat { msg: Vec<u8>, left: u64 },
    Lines(tokio::io::BufReader<tokio::io::Stdin>),
}

impl Messages {
    fn new(cfg: &Config) -> Self {
        match &cfg.message {
            Some(m) => Messages::Repeat {
                msg: m.clone(),
                left: cfg.count,
            },
            None => Messages::Lines(tokio::io::BufReader::new(tokio::io::stdin())),
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Messages::Repeat { msg, left } => {
                if *left == 0 {
                    return Ok(None);
                }
                *left -= 1;
                Ok(Some(msg.clone()))
            }
            Messages::Lines(r) => {
                let mut line = Vec::new();
                let n = (&mut *r)
                    .take(MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(local("reading stdin"))?;
                if n == 0 {
                    return Ok(None);
                }
                if line.len() > MAX_LINE {
                    return Err(Error::Usage(format!(
                        "a stdin line is longer than {MAX_LINE} bytes; send it as a stream instead"
                    )));
                }
                Ok(Some(line))
            }
        }
    }
}

async fn frame_rounds<S: Stream>(
    cfg: &Config,
    out: Reporter,
    s: Metered<S>,
    framing: &Framing,
) -> Result<Summary, Error> {
    let addr = cfg.target.to_string();
    let mut framed = Framed::new(s, FrameCodec::new(framing, cfg.max_frame));
    let mut summary = Summary {
        sent: 0,
        echoed: 0,
        rtt_us: Vec::new(),
    };
    let mut messages = Messages::new(cfg);
    let from_stdin = cfg.message.is_none();
    let mut seq = 0u64;
    while let Some(mut payload) = messages.next().await? {
        if from_stdin && payload.last() == Some(&b'\n') {
            payload.pop();
        }
        seq += 1;
        if seq > 1 && !from_stdin {
            tokio::time::sleep(cfg.interval).await;
        }
        let frame = Frame {
            id: seq as u32,
            timestamp_us: clock::unix_micros(),
            payload: Bytes::from(payload),
        };
        let started = clock::now();
        summary.sent += 1;
        let sent = tokio::time::timeout(cfg.timeout, framed.send(frame.clone()))
            .await
            .map_err(|_| NetError::Timeout {
                what: format!("sending to {addr}"),
                after: cfg.timeout,
            })?;
        match sent {
            Ok(()) => {}
            Err(FrameError::Io(e)) => return Err(read_error(cfg, e)),
            Err(e) => return Err(Error::Usage(format!("cannot send message {seq}: {e}"))),
        }
        let got = tokio::time::timeout(cfg.timeout, framed.next())
            .await
            .map_err(|_| NetError::Timeout {
                what: format!("waiting for the echo of message {seq} from {addr}"),
                after: cfg.timeout,
            })?;
        let echo = match got {
            None => {
                return Err(NetError::ClosedEarly {
                    addr,
                    when: format!("before echoing message {seq}"),
                }
                .into());
            }
            Some(Err(FrameError::Io(e))) => return Err(read_error(cfg, e)),
            Some(Err(source)) => return Err(Error::Frame { addr, source }),
            Some(Ok(f)) => f,
        };
        if echo.payload != frame.payload || (*framing == Framing::Header && echo.id != frame.id) {
            return Err(Error::Mismatch {
                addr,
                source: first_difference(&frame.payload, &echo.payload),
            });
        }
        let rtt = crate::net::clock::since(started);
        summary.echoed += 1;
        summary.rtt_us.push(rtt.as_micros() as u64);
        let mut line = echo.payload.to_vec();
        line.push(b'\n');
        out.data(&line).map_err(local("writing stdout"))?;
        report_round(&out, cfg, seq, frame.payload.len(), rtt)?;
    }
    Ok(summary)
}

fn first_difference(sent: &[u8], got: &[u8]) -> Mismatch {
    let mut v = Verifier::default();
    v.sent(sent);
    match v.received(got) {
        Err(m) => m,
        Ok(()) => Mismatch::Short {
            sent: sent.len() as u64,
            got: got.len() as u64,
        },
    }
}

/// A connected datagram socket, UDP or Unix.
enum Dgram {
    Udp(tokio::net::UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

impl Dgram {
    async fn connect(target: &Endpoint) -> Result<Self, Error> {
        Ok(match target {
            Endpoint::Unix(path) => Dgram::Unix(net::connect::unix_datagram(path).await?),
            inet => Dgram::Udp(net::connect::udp(inet).await?.0),
        })
    }
}

/// One datagram per message, through [`net::exchange`] (retransmission with doubling waits
/// within `--timeout`).
async fn datagram_rounds(
    cfg: &Config,
    out: Reporter,
    sock: Dgram,
    tracer: Option<Tracer>,
) -> Result<Summary, Error> {
    let addr = cfg.target.to_string();
    let mut summary = Summary {
        sent: 0,
        echoed: 0,
        rtt_us: Vec::new(),
    };
    let mut messages = Messages::new(cfg);
    let mut seq = 0u64;
    // Messages of earlier rounds: after a retransmission the server may answer twice, and
    // the late copy must not be taken for the next round's echo.
    let mut recent: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let exchange = net::exchange::Exchange {
        service: "echo",
        addr: &addr,
        timeout: cfg.timeout,
        retries: cfg.retries,
        tracer: tracer.as_ref(),
    };
    while let Some(msg) = messages.next().await? {
        if msg.len() > 65507 {
            return Err(Error::Usage(format!(
                "a {}-byte message does not fit in one UDP datagram (65507 bytes at most)",
                msg.len()
            )));
        }
        seq += 1;
        if seq > 1 && cfg.message.is_some() {
            tokio::time::sleep(cfg.interval).await;
        }
        summary.sent += 1;
        let started = clock::now();
        let fresh = |r: &[u8]| r == &msg[..] || !recent.iter().any(|m| m[..] == *r);
        let reply = match &sock {
            Dgram::Udp(s) => exchange.run(s, &msg, fresh).await?,
            Dgram::Unix(s) => exchange.run(s, &msg, fresh).await?,
        };
        let echo = &reply.data[..];
        if echo != msg.as_slice() {
            return Err(Error::Mismatch {
                addr,
                source: first_difference(&msg, echo),
            });
        }
        if reply.attempts > 1 {
            if recent.len() == 8 {
                recent.pop_front();
            }
            recent.push_back(msg.clone());
        }
        let rtt = crate::net::clock::since(started);
        summary.echoed += 1;
        summary.rtt_us.push(rtt.as_micros() as u64);
        out.data(echo).map_err(local("writing stdout"))?;
        report_round(&out, cfg, seq, msg.len(), rtt)?;
    }
    Ok(summary)
}

/// One verified round trip (`seq=3 time=120µs`).
#[derive(Debug, serde::Serialize)]
struct Round<'a> {
    bytes: usize,
    ok: bool,
    rtt_us: u64,
    seq: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip)]
    target: &'a Endpoint,
    #[serde(skip)]
    rtt: Duration,
}

impl Event for Round<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "{} bytes from {}: seq={} time={}",
            self.bytes,
            self.target,
            self.seq,
            fmt_duration(self.rtt)
        ))]
    }
}

/// A whole stdin stream echoed and verified.
#[derive(Debug, serde::Serialize)]
struct Streamed<'a> {
    bytes: u64,
    elapsed_us: u64,
    ok: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip)]
    addr: &'a str,
    #[serde(skip)]
    took: Duration,
}

impl Event for Streamed<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "{} bytes echoed by {} and verified in {}",
            self.bytes,
            self.addr,
            fmt_duration(self.took)
        ))]
    }
}

/// The statistics after several round trips, like ping's.
#[derive(Debug, serde::Serialize)]
pub struct Statistics<'a> {
    echoed: u64,
    rtt_us: stats::Summary,
    sent: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip)]
    target: &'a Endpoint,
}

impl<'a> Statistics<'a> {
    /// The statistics of `summary`, or `None` when there were not several round trips.
    pub fn of(target: &'a Endpoint, summary: &Summary) -> Option<Self> {
        if summary.rtt_us.len() < 2 {
            return None;
        }
        Some(Statistics {
            echoed: summary.echoed,
            rtt_us: stats::Summary::of(&summary.rtt_us)?,
            sent: summary.sent,
            kind: "summary",
            target,
        })
    }
}

impl Event for Statistics<'_> {
    fn lines(&self) -> Vec<Line> {
        let ms = |us: u64| us as f64 / 1000.0;
        let r = &self.rtt_us;
        vec![Line::Status(format!(
            "--- {} echo statistics ---\n{} sent, {} echoed and verified\n\
             rtt min/avg/p50/p99/max = {:.3}/{:.3}/{:.3}/{:.3}/{:.3} ms",
            self.target,
            self.sent,
            self.echoed,
            ms(r.min),
            r.mean / 1000.0,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
        ))]
    }
}
