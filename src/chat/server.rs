//! The chat server: one task per client on the service host, one shared [`Hub`].
//!
//! ```text
//!  client A ──frames──▶ task A ──Hub::line()──▶ deliveries ──try_send──▶ queue B ──▶ task B ──▶ B
//!                                     (a std Mutex, held for the core's call only)    (bounded)
//! ```
//!
//! Each task reads its client's messages and writes what its queue holds. A delivery never
//! waits: it is `try_send` into the recipient's bounded queue. A client whose queue is full
//! (it stopped reading) is dropped from the chat as a slow consumer; the others are never
//! slowed and the server's memory never grows because of it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use super::cluster::{self, Claim, Cluster};
use super::proto::{self, ClientId, Hub, Kind, Message, Outcome, Settings};
use super::replica::{Entry, EntryKind};
use super::{irc, ircd};
use crate::frame::{Frame, FrameCodec, FrameError, Framing};
use crate::net::host::{self, Bound, Conn, Stream, StreamService};
use crate::net::serve::ServeSummary;
use crate::net::{NetError, Peer, ServeOptions, clock, fmt_duration, within};

/// Default TCP port (IRC's).
pub const DEFAULT_PORT: u16 = 6667;
/// Default most connections from one address (a classroom behind one NAT).
pub const DEFAULT_MAX_PER_IP: usize = 1000;
/// Default bytes waiting for one client (`--sendq`) before it counts as a slow consumer and is
/// dropped, as IRC servers' "SendQ exceeded". Each message is charged its length plus
/// [`SLOT_COST`], so this bounds the queue's own memory too (a room's message is one
/// allocation shared by every queue).
pub const DEFAULT_SENDQ: usize = 256 * 1024;
/// What a queued message costs beyond its bytes: its place in the queue.
pub const SLOT_COST: usize = 64;
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 4096;
/// Longest message a client may send, framing included: room for [`proto::MAX_TEXT`] and a
/// margin, so a message just over the limit gets the hub's clear refusal.
pub const READ_MAX: usize = proto::MAX_TEXT * 2;
/// Longest message the server frames (a long motd line, say); clients read up to this.
pub const WIRE_MAX: usize = 64 * 1024;
/// `fixed:N` records from this size up carry each chat line whole (a longer one is refused);
/// smaller records take a message in several pieces.
pub const MIN_WHOLE_RECORD: usize = 256;
/// What a new connection is told first (in `lines`, after [`GREETING_DELAY`] or its first line,
/// unless that line is IRC).
const GREETING: &str = "socklab chat: send your nickname first; /help lists the commands";
/// How long a `lines` connection waits for its first line before the greeting: an IRC client
/// sends `CAP`/`NICK` at once and must not get a line that is not IRC.
const GREETING_DELAY: Duration = Duration::from_millis(250);
/// Silence before the first TCP keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// How messages are cut on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatFraming {
    /// Lines ending in `\n` (a `\r` before it is dropped): what nc and telnet speak.
    Lines,
    /// One of the course's framings.
    Framed(Framing),
}

impl std::fmt::Display for ChatFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatFraming::Lines => f.write_str("lines"),
            ChatFraming::Framed(x) => write!(f, "{x}"),
        }
    }
}

impl std::str::FromStr for ChatFraming {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "lines" {
            return Ok(ChatFraming::Lines);
        }
        s.parse::<Framing>()
            .map(ChatFraming::Framed)
            .map_err(|e| format!("{e}, or lines"))
    }
}

impl ChatFraming {
    /// The codec, for frames of up to `max` bytes: lines are a `\n`-delimited framing.
    pub fn codec(&self, max: usize) -> FrameCodec {
        match self {
            ChatFraming::Lines => FrameCodec::new(&Framing::Delimited(b"\n".to_vec()), max),
            ChatFraming::Framed(f) => FrameCodec::new(f, max),
        }
    }
}

/// Everything a chat server needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy.
    pub serve: ServeOptions,
    /// How long a client may take to send its nickname, and to take each write (`-t`).
    pub timeout: Duration,
    /// The framing every client of this server speaks.
    pub framing: ChatFraming,
    /// The core's settings (history, flood, motd).
    pub settings: Settings,
    /// Most connections from one IP address.
    pub max_per_ip: usize,
    /// `--log FILE`: every chat line, action and private message as a JSON line.
    pub transcript: Option<std::path::PathBuf>,
    /// `--ping`: ping a client silent this long, and drop it if it stays silent as long again.
    pub ping: Option<Duration>,
    /// `--sendq`: bytes that may wait for one client before it is dropped as a slow consumer.
    pub sendq: usize,
    /// `--cluster`: the Redis (a `redis://` URL) through which several servers act as one.
    pub cluster: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            serve: ServeOptions::default(),
            timeout: Duration::from_secs(300),
            framing: ChatFraming::Lines,
            settings: Settings::default(),
            max_per_ip: DEFAULT_MAX_PER_IP,
            transcript: None,
            ping: None,
            sendq: DEFAULT_SENDQ,
            cluster: None,
        }
    }
}

/// Why a chat connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading failed.
    #[error("reading: {0}")]
    Read(io::Error),
    /// Writing failed or stalled past `-t`.
    #[error("writing: {0}")]
    Write(io::Error),
    /// No nickname within `-t`.
    #[error("no nickname within {}", fmt_duration(*.0))]
    Idle(Duration),
    /// Silent after a ping (`--ping`).
    #[error("no answer to ping within {}", fmt_duration(*.0))]
    NoPong(Duration),
    /// A frame the framing cannot read (a bad CRC, a length past the limit).
    #[error("bad frame: {0}")]
    Frame(FrameError),
    /// The client stopped reading and its queue filled.
    #[error("slow consumer: more than {} waiting; dropped from the chat", fmt_size(*.0))]
    SlowConsumer(usize),
    /// Too many connections from its address.
    #[error("{0} connections from this address already")]
    TooMany(usize),
    /// The server closed it (a nickname collision in the cluster).
    #[error("{0}")]
    Closed(String),
}

/// The sending end of a client's queue, and the token that stops its task when the queue
/// overflows.
struct Queue {
    tx: mpsc::UnboundedSender<Out>,
    /// The client speaks IRC (`Some`, with whether it asked for `server-time`): it gets IRC
    /// lines, rendered once per message for all such clients, or the message itself when its
    /// rendering depends on the recipient (its task renders those).
    irc: Option<bool>,
    /// Bytes waiting, as [`cost`] counts them; shared with the client's [`Inbox`].
    queued: Arc<AtomicUsize>,
    kick: CancellationToken,
}

impl Queue {
    /// Queues `msg` unless that would put more than `limit` bytes in the queue (`None`: no
    /// limit).
    fn push(&self, msg: Out, limit: Option<usize>) -> Result<(), Out> {
        let c = cost(&msg);
        let now = self.queued.fetch_add(c, Ordering::Relaxed) + c;
        if limit.is_some_and(|l| now > l) {
            self.queued.fetch_sub(c, Ordering::Relaxed);
            return Err(msg);
        }
        // The task may have ended already; its inbox then goes with it.
        let _ = self.tx.send(msg);
        Ok(())
    }
}

/// The receiving end of a client's queue, read by its own task.
struct Inbox {
    rx: mpsc::UnboundedReceiver<Out>,
    queued: Arc<AtomicUsize>,
}

impl Inbox {
    /// The next message. Cancel-safe. `None` once the queue was dropped (a slow consumer).
    async fn recv(&mut self) -> Option<Out> {
        let m = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&m), Ordering::Relaxed);
        Some(m)
    }

    fn try_recv(&mut self) -> Option<Out> {
        let m = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(cost(&m), Ordering::Relaxed);
        Some(m)
    }

    fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes waiting.
    fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// `262144` as `256 KiB`: a size as people write it.
fn fmt_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// What waits in a client's queue.
#[derive(Debug, Clone)]
enum Out {
    /// A message in the server's framing, shared by every recipient.
    Framed(Bytes),
    /// A message for an IRC client, rendered by its own task (the rendering depends on the
    /// client's nickname and capabilities).
    Msg(Arc<Message>),
    /// The server closes the connection, for this reason (sent as an error first).
    Close(Arc<str>),
}

/// What a queued message counts against `--sendq`.
fn cost(msg: &Out) -> usize {
    SLOT_COST
        + match msg {
            Out::Framed(b) => b.len(),
            Out::Msg(m) => m.text.len(),
            Out::Close(why) => why.len(),
        }
}

/// The chat service: the hub and every client's queue.
struct Chat {
    cfg: Config,
    hub: Mutex<Hub>,
    queues: Mutex<HashMap<ClientId, Queue>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next: AtomicU64,
    shutdown: CancellationToken,
    transcript: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    /// The link to the other servers (`--cluster`).
    cluster: Option<Arc<Cluster>>,
}

/// Runs a chat server on `bound` until `shutdown`; clients are told when it stops.
pub async fn run(
    bound: impl Into<Bound>,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    let opts = cfg.serve.clone();
    let transcript = match &cfg.transcript {
        None => None,
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| NetError::Io {
                    what: format!("opening the transcript {}", path.display()),
                    source: e,
                })?;
            Some(Mutex::new(std::io::BufWriter::new(file)))
        }
    };
    let link = match &cfg.cluster {
        None => None,
        Some(url) => Some(Arc::new(Cluster::new(url).map_err(|e| NetError::Io {
            what: "starting the cluster link".into(),
            source: io::Error::other(e.to_string()),
        })?)),
    };
    let chat = Arc::new(Chat {
        cluster: link.clone(),
        transcript,
        hub: Mutex::new(Hub::new(cfg.settings.clone())),
        cfg,
        queues: Mutex::new(HashMap::new()),
        per_ip: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        shutdown: shutdown.clone(),
    });
    let Some(link) = link else {
        return host::serve_stream(bound.into(), opts, shutdown, chat).await;
    };
    let task = {
        let (chat, shutdown) = (chat.clone(), shutdown.clone());
        tokio::spawn(async move { link.run(&*chat, shutdown).await })
    };
    let summary = host::serve_stream(bound.into(), opts, shutdown.clone(), chat).await;
    // Its goodbye to the cluster is quick (one round trip), and bounded.
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    summary
}

impl cluster::Local for Chat {
    fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        f(&mut self.hub.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn deliver(&self, out: Outcome) {
        Chat::deliver(self, out, None);
    }

    fn alloc(&self) -> ClientId {
        ClientId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn kick(&self, client: ClientId, why: &str) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = queues.get(&client) {
            let _ = q.push(Out::Close(why.into()), None);
        }
    }
}

impl Chat {
    /// Appends what was said to the transcript, one JSON object per line. (A small
    /// synchronous write, flushed once per batch of messages from one read.)
    fn record(&self, said: &[Arc<Message>]) {
        let Some(t) = &self.transcript else { return };
        if said.is_empty() {
            return;
        }
        let mut w = t.lock().unwrap_or_else(|e| e.into_inner());
        for m in said {
            let (room, nick, to) = match &m.kind {
                Kind::Chat { room, nick } | Kind::Action { room, nick } => {
                    (Some(room.as_str()), nick.as_str(), None)
                }
                Kind::Private { from, to } => (None, from.as_str(), Some(to.as_str())),
                Kind::Notice | Kind::Event(_) | Kind::Error => continue,
            };
            let line = TranscriptLine {
                action: matches!(m.kind, Kind::Action { .. }),
                id: m.id,
                nick,
                room,
                text: &m.text,
                time: jiff::Timestamp::from_microsecond(m.time_us as i64)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                to,
            };
            if let Ok(json) = serde_json::to_string(&line) {
                let _ = writeln!(w, "{json}");
            }
        }
        if let Err(e) = w.flush() {
            tracing::warn!("chat: cannot write the transcript: {e}");
        }
    }

    /// One message of the server's own, framed.
    fn framed(&self, m: &Message) -> Bytes {
        wire(&mut self.cfg.framing.codec(WIRE_MAX), &self.cfg.framing, m)
    }

    /// Hands each message to its recipient's queue, never waiting. A full queue drops that
    /// recipient (its task ends when it sees its queue closed), except `me`'s: the client
    /// whose message this is gets its replies anyway. A reply can be long (a history replay of
    /// up to 1,000 messages) and a read can hold many commands; neither means the client
    /// stopped reading.
    fn deliver(&self, out: Outcome, me: Option<ClientId>) {
        let limit = self.cfg.sendq;
        let mut encoder = self.cfg.framing.codec(WIRE_MAX);
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        // A message for a room comes as one shared allocation for all its recipients: it is
        // rendered and framed once, and every queue gets the same bytes.
        let mut last: Option<(Arc<Message>, Bytes)> = None;
        // The same for IRC clients without and with `server-time`.
        let mut last_irc: [Option<(Arc<Message>, Option<Bytes>)>; 2] = [None, None];
        let mut left_out = 0usize;
        for (to, msg) in out.deliveries {
            let Some(q) = queues.get(&to) else { continue };
            let item = if let Some(time) = q.irc {
                let slot = &mut last_irc[usize::from(time)];
                let shared = match slot {
                    Some((m, b)) if Arc::ptr_eq(m, &msg) => b.clone(),
                    _ => {
                        let b = ircd::render_shared(&msg, time);
                        *slot = Some((msg.clone(), b.clone()));
                        b
                    }
                };
                match shared {
                    Some(b) => Out::Framed(b),
                    None => Out::Msg(msg),
                }
            } else {
                Out::Framed(match &last {
                    Some((m, b)) if Arc::ptr_eq(m, &msg) => b.clone(),
                    _ => {
                        let b = wire(&mut encoder, &self.cfg.framing, &msg);
                        last = Some((msg, b.clone()));
                        b
                    }
                })
            };
            // Its own replies never drop it: its task writes them out before it reads the next
            // command. A reply longer than the queue (`/history 1000` of long lines) is cut,
            // and it is told.
            let full = q.push(item, Some(limit)).is_err();
            if full && Some(to) == me {
                left_out += 1;
                continue;
            }
            if full && let Some(q) = queues.remove(&to) {
                // It stopped reading: its task ends now, even in the middle of a write.
                tracing::warn!(
                    "chat: client {to} is a slow consumer (more than {} waiting)",
                    fmt_size(limit)
                );
                q.kick.cancel();
            }
        }
        if left_out > 0
            && let Some(q) = me.and_then(|me| queues.get(&me))
        {
            let note = plain(
                Kind::Error,
                format!(
                    "{left_out} messages of this reply left out: more than {} would wait for \
                     you (the server's --sendq)",
                    fmt_size(limit)
                ),
            );
            let item = if q.irc.is_some() {
                Out::Msg(Arc::new(note))
            } else {
                Out::Framed(wire(&mut encoder, &self.cfg.framing, &note))
            };
            let _ = q.push(item, None);
        }
    }

    fn enter(&self, peer: &Peer) -> Result<Option<IpAddr>, ConnError> {
        let Peer::Inet(addr) = peer else {
            return Ok(None);
        };
        let ip = addr.ip();
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.cfg.max_per_ip {
            return Err(ConnError::TooMany(*n));
        }
        *n += 1;
        Ok(Some(ip))
    }

    fn exit(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

impl StreamService for Chat {
    type Error = ConnError;

    fn name(&self) -> &str {
        "chat"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        // A peer that vanished without closing (a laptop lid, a pulled cable) is noticed by
        // TCP keepalive probes after about 90 s of silence, whatever -t says. (Not for Unix
        // sockets, where it does not apply.)
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        let _ = socket2::SockRef::from(conn.io.get_ref()).set_tcp_keepalive(&keepalive);
        let mut codec = self.cfg.framing.codec(READ_MAX);
        let ip = match self.enter(&conn.peer) {
            Ok(ip) => ip,
            Err(e) => {
                let msg = plain(Kind::Error, format!("refused: {e}"));
                let _ = write(conn, &self.framed(&msg), self.cfg.timeout).await;
                return Err(e);
            }
        };
        let id = ClientId(self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let inbox = Inbox {
            rx,
            queued: queued.clone(),
        };
        let kick = CancellationToken::new();
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Queue {
                    tx,
                    irc: None,
                    queued,
                    kick: kick.clone(),
                },
            );
        self.hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connect(clock::now(), id);
        let result = tokio::select! {
            r = self.converse(conn, &mut codec, id, inbox) => r,
            _ = kick.cancelled() => {
                // Writes to it may be stuck: do not linger on a client that never reads.
                conn.skip_linger();
                Err(ConnError::SlowConsumer(self.cfg.sendq))
            }
        };
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let why = match &result {
            Ok(()) => "quit".to_string(),
            Err(e) => e.to_string(),
        };
        let out = {
            let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
            let had_nick = hub.nick(id).is_some();
            let wall = clock::unix_micros();
            let out = hub.disconnect(wall, id, &why);
            if let Some(c) = &self.cluster {
                if had_nick {
                    c.publish(Entry {
                        from: c.id().into(),
                        kind: EntryKind::Bye,
                        client: id.0,
                        time_us: wall,
                        text: why,
                        said: None,
                    });
                }
                c.release_all(id);
            }
            out
        };
        self.deliver(out, None);
        self.exit(ip);
        result
    }
}

/// One connection's dialect: the server's framing, or IRC (a `lines` client whose first line was
/// `NICK`, `USER`, `CAP` or `PASS`).
struct Dialect {
    /// `Some` once the client spoke IRC.
    irc: Option<ircd::Session>,
    /// The greeting was sent (or is not wanted: IRC clients get numerics instead).
    greeted: bool,
    /// The first message came: the dialect is settled. (Not the greeting: an IRC client slower
    /// than the greeting's delay, over a long path, still gets IRC, one stray line first.)
    settled: bool,
    /// Paces this connection's nickname claims in a cluster (each is a Redis round trip).
    claims: proto::Pacer,
}

impl Chat {
    /// What the connection's dialect makes of `items`, in one buffer.
    fn render(&self, id: ClientId, d: &Dialect, items: &[Out], buf: &mut BytesMut) {
        let nick = match &d.irc {
            Some(_)
                if items
                    .iter()
                    .any(|o| matches!(o, Out::Msg(_) | Out::Close(_))) =>
            {
                self.nick_of(id)
            }
            _ => String::new(),
        };
        for item in items {
            match (item, &d.irc) {
                (Out::Framed(b), _) => buf.extend_from_slice(b),
                (Out::Msg(m), Some(session)) => session.render(&nick, m, buf),
                (Out::Msg(m), None) => buf.extend_from_slice(&self.framed(m)),
                // IRC's way to say the server closes the link.
                (Out::Close(why), Some(_)) => {
                    let bye = format!("Closing link: {nick} ({why})");
                    let _ = irc::write_message(buf, &[], None, "ERROR", &[&bye]);
                }
                (Out::Close(why), None) => {
                    let m = Arc::new(plain(Kind::Error, format!("closing: {why}")));
                    self.render(id, d, &[Out::Msg(m)], buf);
                }
            }
        }
    }

    /// A message of the server's own, in the connection's dialect.
    fn own(&self, id: ClientId, d: &Dialect, kind: Kind, text: String) -> BytesMut {
        let mut buf = BytesMut::new();
        let m = plain(kind, text);
        match d.irc {
            Some(_) => self.render(id, d, &[Out::Msg(Arc::new(m))], &mut buf),
            None => buf.extend_from_slice(&self.framed(&m)),
        }
        buf
    }

    /// Writes what the client's queue holds, in its dialect.
    async fn flush<S: Stream>(
        &self,
        conn: &mut Conn<S>,
        id: ClientId,
        d: &Dialect,
        rx: &mut Inbox,
    ) -> Result<(), ConnError> {
        let mut batch = Vec::new();
        while let Some(m) = rx.try_recv() {
            batch.push(m);
        }
        for chunk in batch.chunks(64) {
            let mut buf = BytesMut::new();
            self.render(id, d, chunk, &mut buf);
            write(conn, &buf, self.cfg.timeout).await?;
        }
        if let Some(Out::Close(why)) = batch.iter().find(|o| matches!(o, Out::Close(_))) {
            return Err(ConnError::Closed(why.to_string()));
        }
        Ok(())
    }

    async fn converse<S: Stream>(
        &self,
        conn: &mut Conn<S>,
        codec: &mut FrameCodec,
        id: ClientId,
        mut rx: Inbox,
    ) -> Result<(), ConnError> {
        let timeout = self.cfg.timeout;
        let mut input = BytesMut::with_capacity(READ_CHUNK);
        let mut batch: Vec<Out> = Vec::new();
        let mut out = BytesMut::new();
        let mut closing = false;
        // In `lines`, an IRC client may be on the line: the greeting waits a moment for the
        // first line (IRC clients send theirs at once, and get numerics instead). The course's
        // framings greet at once.
        let mut d = Dialect {
            irc: None,
            greeted: false,
            settled: false,
            claims: Cluster::claim_pacer(clock::now()),
        };
        let greet_after = if self.cfg.framing == ChatFraming::Lines {
            GREETING_DELAY
        } else {
            Duration::ZERO
        };
        let greet = tokio::time::sleep(greet_after);
        tokio::pin!(greet);
        // `-t` bounds the wait for a nickname, from the connection's start (a client dripping
        // a byte at a time does not extend it). After that a silent client may stay (people
        // read a chat far more than they write): TCP keepalive finds the hosts that vanished,
        // and `--ping` the programs that hang with their socket open.
        let mut registered = false;
        let mut live = self
            .cfg
            .ping
            .map(|every| proto::Liveness::new(clock::now(), every));
        let timer = tokio::time::sleep(timeout);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    let bye = self.own(id, &d, Kind::Notice, "server shutting down; bye".into());
                    let _ = write(conn, &bye, timeout).await;
                    return Ok(());
                }
                _ = &mut greet, if !d.greeted => {
                    d.greeted = true;
                    write(conn, &self.own(id, &d, Kind::Notice, GREETING.into()), timeout).await?;
                }
                got = rx.recv() => {
                    let Some(first) = got else {
                        // Our queue was dropped: we fell too far behind.
                        return Err(ConnError::SlowConsumer(self.cfg.sendq));
                    };
                    batch.clear();
                    batch.push(first);
                    if rx.is_empty() {
                        // Let the tasks ready to run go first: on a busy server they queue
                        // more for us, and one write then carries many messages. (On an idle
                        // one nothing else is ready and this costs nothing.)
                        tokio::task::yield_now().await;
                    }
                    while batch.len() < 64 {
                        match rx.try_recv() {
                            Some(m) => batch.push(m),
                            None => break,
                        }
                    }
                    out.clear();
                    self.render(id, &d, &batch, &mut out);
                    write(conn, &out, timeout).await?;
                    if let Some(Out::Close(why)) = batch.iter().find(|o| matches!(o, Out::Close(_))) {
                        return Err(ConnError::Closed(why.to_string()));
                    }
                    if closing && rx.is_empty() {
                        return Ok(());
                    }
                }
                read = conn.io.read_buf(&mut input), if !closing => {
                    let n = read.map_err(ConnError::Read)?;
                    if n == 0 {
                        return Ok(());
                    }
                    if let Some(l) = &mut live {
                        l.heard(clock::now());
                    }
                    closing = match self.decode_all(conn, codec, id, &mut input, &mut rx, &mut d).await {
                        Ok(quit) => quit,
                        Err(ConnError::Frame(e)) => {
                            // Deliver what the good frames before it produced, then the
                            // reason, then close.
                            let _ = self.flush(conn, id, &d, &mut rx).await;
                            let why = self.own(id, &d, Kind::Error, format!("closing: {e}"));
                            let _ = write(conn, &why, timeout).await;
                            return Err(ConnError::Frame(e));
                        }
                        Err(e) => return Err(e),
                    };
                    if closing && rx.is_empty() {
                        return Ok(());
                    }
                    if !registered
                        && self.hub.lock().unwrap_or_else(|e| e.into_inner()).nick(id).is_some()
                    {
                        registered = true;
                        if let Some(l) = &live {
                            timer.as_mut().reset(tokio::time::Instant::from_std(l.poll_timeout()));
                        }
                    }
                    if input.capacity() - input.len() < READ_CHUNK / 4 {
                        input.reserve(READ_CHUNK);
                    }
                }
                _ = &mut timer, if !closing && (!registered || live.is_some()) => {
                    let Some(l) = live.as_mut().filter(|_| registered) else {
                        return Err(ConnError::Idle(timeout));
                    };
                    match l.handle_timeout(clock::now()) {
                        Some(proto::Alive::Ping(text)) => {
                            let ping = match &d.irc {
                                // IRC clients answer PING by themselves.
                                Some(_) => {
                                    let mut b = BytesMut::new();
                                    let token = text.split(':').next().unwrap_or("PING");
                                    let _ = irc::write_message(&mut b, &[], None, "PING", &[token]);
                                    b
                                }
                                None => self.own(id, &d, Kind::Notice, text),
                            };
                            write(conn, &ping, timeout).await?;
                        }
                        Some(proto::Alive::Dead(after)) => {
                            let e = ConnError::NoPong(after);
                            let bye = self.own(id, &d, Kind::Error, format!("closing: {e}"));
                            let _ = write(conn, &bye, timeout).await;
                            return Err(e);
                        }
                        None => {}
                    }
                    timer.as_mut().reset(tokio::time::Instant::from_std(l.poll_timeout()));
                }
            }
        }
    }

    /// Decodes every whole message in `input` and hands each to the hub (through the IRC
    /// session for an IRC client). True when the client asked to quit.
    async fn decode_all<S: Stream>(
        &self,
        conn: &mut Conn<S>,
        codec: &mut FrameCodec,
        id: ClientId,
        input: &mut BytesMut,
        rx: &mut Inbox,
        d: &mut Dialect,
    ) -> Result<bool, ConnError> {
        loop {
            // Many commands in one read fill the client's own queue with replies: write them
            // out as we go (the client that sends them is made to wait for its replies).
            if rx.queued() >= self.cfg.sendq / 2 {
                self.flush(conn, id, d, rx).await?;
            }
            let frame = match codec.decode(input) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(false),
                Err(FrameError::TooLarge { max, .. })
                    if self.cfg.framing != ChatFraming::Framed(Framing::Header) =>
                {
                    // A line or delimited message too long: refused with a message; the
                    // codec skips to its end by itself.
                    let msg = match &d.irc {
                        Some(_) => {
                            let nick = self.nick_of(id);
                            let mut b = BytesMut::new();
                            let _ = irc::write_message(
                                &mut b,
                                &[],
                                Some(ircd::SERVER),
                                irc::ERR_INPUTTOOLONG,
                                &[&nick, "Input line was too long"],
                            );
                            b
                        }
                        None => self.own(
                            id,
                            d,
                            Kind::Error,
                            format!(
                                "message of more than {max} bytes refused: the limit is {}",
                                proto::MAX_TEXT
                            ),
                        ),
                    };
                    write(conn, &msg, self.cfg.timeout).await?;
                    continue;
                }
                // A header frame with a bad CRC or length: the caller delivers what is queued,
                // says so, then closes (the stream cannot be trusted any more).
                Err(e) => return Err(ConnError::Frame(e)),
            };
            // The first line decides the dialect.
            if !d.settled
                && self.cfg.framing == ChatFraming::Lines
                && ircd::is_irc_start(&frame.payload)
            {
                d.irc = Some(ircd::Session::new());
                self.set_irc(id, false);
            }
            d.settled = true;
            if !d.greeted {
                d.greeted = true;
                if d.irc.is_none() {
                    write(
                        conn,
                        &self.own(id, d, Kind::Notice, GREETING.into()),
                        self.cfg.timeout,
                    )
                    .await?;
                }
            }
            if let Some(session) = &mut d.irc {
                let line = match irc::parse(&frame.payload) {
                    Ok(l) => l,
                    Err(irc::ParseError::Empty) => continue,
                    Err(e) => {
                        let nick = self.nick_of(id);
                        let code = e.reply_numeric().unwrap_or(irc::ERR_UNKNOWNCOMMAND);
                        let mut b = BytesMut::new();
                        let why = e.to_string();
                        let _ = irc::write_message(
                            &mut b,
                            &[],
                            Some(ircd::SERVER),
                            code,
                            &[&nick, &why],
                        );
                        write(conn, &b, self.cfg.timeout).await?;
                        continue;
                    }
                };
                let time_before = session.server_time();
                let wanted = match (line.command_upper().as_ref(), line.params.first()) {
                    ("NICK", Some(n)) => Some((*n).to_string()),
                    _ => None,
                };
                let taken = self.claim_for(id, wanted, &mut d.claims).await;
                let step = self.on_hub(
                    id,
                    taken,
                    |hub, wall| session.handle(hub, clock::now(), wall, id, &line),
                    |step| &step.outcome,
                );
                if session.server_time() != time_before {
                    self.set_irc(id, session.server_time());
                }
                if !step.replies.is_empty() {
                    // What the queue holds came first.
                    self.flush(conn, id, d, rx).await?;
                    write(conn, &step.replies, self.cfg.timeout).await?;
                }
                self.record(&step.outcome.said);
                self.deliver(step.outcome, Some(id));
                if step.quit {
                    return Ok(true);
                }
                continue;
            }
            let mut text = String::from_utf8_lossy(&frame.payload).into_owned();
            if self.cfg.framing == ChatFraming::Lines && text.ends_with('\r') {
                text.pop();
            }
            let wanted = match self.cluster {
                Some(_) if self.nick_of(id) == "*" => Some(text.trim().to_string()),
                Some(_) => proto::nick_wanted(&text).map(str::to_string),
                None => None,
            };
            let taken = self.claim_for(id, wanted, &mut d.claims).await;
            let out = self.on_hub(
                id,
                taken,
                |hub, wall| hub.line(clock::now(), wall, id, &text),
                |out| out,
            );
            let quit = out.close.contains(&id);
            self.record(&out.said);
            self.deliver(out, Some(id));
            if quit {
                return Ok(true);
            }
        }
    }

    /// Marks `id`'s queue as an IRC client's, with or without `server-time`.
    fn set_irc(&self, id: ClientId, server_time: bool) {
        if let Some(q) = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            q.irc = Some(server_time);
        }
    }

    /// In a cluster, asks Redis for the nickname `wanted` (if the line claims one): `Some(nick)`
    /// when another client holds it, for [`Hub::set_taken_elsewhere`].
    /// A connection that keeps asking for nicknames is slowed to `pacer`'s rate (its reading
    /// waits), so it cannot turn its lines into Redis round trips faster than that.
    async fn claim_for(
        &self,
        id: ClientId,
        wanted: Option<String>,
        pacer: &mut proto::Pacer,
    ) -> Option<String> {
        let cluster = self.cluster.as_ref()?;
        let nick = wanted?;
        if proto::check_nick(&nick).is_err() {
            return None;
        }
        let wait = pacer.delay(clock::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let current = self
            .hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .nick(id)
            .map(str::to_string);
        match cluster.claim(id, &nick, current.as_deref()).await {
            Claim::Taken => Some(nick),
            Claim::Granted | Claim::Unchecked => None,
        }
    }

    /// One line's work on the hub (`f`, at wall time `wall`), under the hub's lock, with the
    /// cluster's answer about the nickname it claims (`taken`: held elsewhere); what it changed
    /// (`outcome` of its result) is passed on to the cluster.
    fn on_hub<T>(
        &self,
        id: ClientId,
        taken: Option<String>,
        f: impl FnOnce(&mut Hub, u64) -> T,
        outcome: impl Fn(&T) -> &Outcome,
    ) -> T {
        let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.set_taken_elsewhere(taken.as_deref());
        let had_nick = hub.nick(id).is_some();
        let wall = clock::unix_micros();
        let result = f(&mut hub, wall);
        hub.set_taken_elsewhere(None);
        self.pass_on(&hub, id, had_nick, wall, outcome(&result));
        result
    }

    /// In a cluster, passes on what a line of `id` changed (under the hub's lock, so entries go
    /// out in the order the hub applied them), and frees the nicknames it no longer uses.
    fn pass_on(&self, hub: &Hub, id: ClientId, had_nick: bool, wall: u64, out: &Outcome) {
        let Some(c) = &self.cluster else { return };
        if let Some(e) = Entry::for_line(c.id(), hub, id, had_nick, wall, out) {
            c.publish(e);
        }
        c.settle(id, hub.nick(id));
    }

    fn nick_of(&self, id: ClientId) -> String {
        self.hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .nick(id)
            .unwrap_or("*")
            .to_string()
    }
}

/// One line of the `--log` transcript.
#[derive(serde::Serialize)]
struct TranscriptLine<'a> {
    action: bool,
    id: u32,
    nick: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    text: &'a str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
}

fn plain(kind: Kind, text: String) -> Message {
    Message {
        id: 0,
        time_us: clock::unix_micros(),
        kind,
        text,
        replayed: false,
    }
}

/// Writes `bytes`, within `timeout`.
async fn write<S: Stream>(
    conn: &mut Conn<S>,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ConnError> {
    within(timeout, conn.io.write_all(bytes))
        .await
        .map_err(ConnError::Write)
}

/// One message, framed: its bytes on the wire.
fn wire(codec: &mut FrameCodec, framing: &ChatFraming, m: &Message) -> Bytes {
    let mut out = BytesMut::new();
    encode(codec, framing, m, &mut out);
    out.freeze()
}

/// One message in the connection's framing (a fixed record too small for it takes several).
pub fn encode(codec: &mut FrameCodec, framing: &ChatFraming, m: &Message, out: &mut BytesMut) {
    let text = m.render();
    let frames: Vec<Vec<u8>> = match framing {
        ChatFraming::Lines => vec![proto::without_delimiter(&text, b"\n").into_bytes()],
        ChatFraming::Framed(Framing::Delimited(d)) => {
            vec![proto::without_delimiter(&text, d).into_bytes()]
        }
        ChatFraming::Framed(Framing::Fixed(n)) => split_at_chars(&text, *n),
        ChatFraming::Framed(Framing::Header) => vec![text.into_bytes()],
    };
    for payload in frames {
        let frame = Frame {
            id: m.id,
            timestamp_us: m.time_us,
            payload: payload.into(),
        };
        // Every payload fits its framing by construction (cut to the record, no delimiter,
        // shorter than the limit), so encoding cannot fail; a failure would drop this one
        // message, never the connection.
        if let Err(e) = codec.encode(frame, out) {
            tracing::warn!("chat: cannot encode a message: {e}");
        }
    }
}

/// `text` cut into pieces of at most `n` bytes, on character boundaries.
fn split_at_chars(text: &str, n: usize) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if cur.len() + c.len_utf8() > n && !cur.is_empty() {
            pieces.push(std::mem::take(&mut cur).into_bytes());
        }
        if c.len_utf8() <= n {
            cur.push(c);
        }
    }
    if !cur.is_empty() || pieces.is_empty() {
        pieces.push(cur.into_bytes());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_records_take_long_messages_in_pieces() {
        assert_eq!(
            split_at_chars("abcdef", 4),
            vec![b"abcd".to_vec(), b"ef".to_vec()]
        );
        assert_eq!(
            split_at_chars("aé", 2),
            vec![b"a".to_vec(), "é".as_bytes().to_vec()]
        );
        assert_eq!(split_at_chars("", 4), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn framing_names_parse() {
        assert_eq!("lines".parse::<ChatFraming>().unwrap(), ChatFraming::Lines);
        assert_eq!(
            "fixed:1024".parse::<ChatFraming>().unwrap(),
            ChatFraming::Framed(Framing::Fixed(1024))
        );
        assert!("nope".parse::<ChatFraming>().unwrap_err().contains("lines"));
    }
}
