//! The service host: how every socklab server is brought up, runs, and stops.
//!
//! A protocol describes *what* it says on a connection or to a datagram (a [`StreamService`]
//! or a [`DatagramService`]); the host does everything around that, once for every protocol:
//!
//! ```text
//!  ServerNetArgs ──▶ ListenSpec ──bind──▶ Bound ──announce──▶ "listening on ADDR" (stdout)
//!                                           │
//!             ┌─────────────────────────────┴──────────────────────────┐
//!             ▼ stream (TCP, Unix)                                     ▼ datagram (UDP, Unix)
//!   serve_stream: accept, allow-list, --max-conns,          serve_datagram: recv (truncation
//!   a task per client:                                      noticed), allow-list, the service's
//!     Metered (byte counts) + Tracer (--trace)              answer, the reflection guard (port
//!     + input budget ──▶ service.serve(&mut Conn)           0, service ports, rate), --trace,
//!     ──▶ graceful close (linger) ──▶ "closed …" log line   send; drops logged once a second
//!             │                                                        │
//!             └──────────── first Ctrl-C/SIGTERM: stop receiving ──────┘
//!                (the listening socket closes at once: new clients are refused),
//!                then --grace for open connections; the Unix socket file is removed
//! ```
//!
//! The path of a byte: the kernel queues a connection; the accept loop takes it when a
//! `--max-conns` slot is free, checks `--allow`, wraps the socket in [`Metered`] (which counts
//! and, with `--trace`, dumps every read and write) and calls the service with a [`Conn`]. The
//! service reads through `conn.io`, parses with its sans-IO core, writes the reply through
//! `conn.io`. When it returns, the host closes gracefully (FIN, then drains what the client
//! still sends, so the last reply is not lost to a reset), and logs the bytes each way and
//! the typed error, if any.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};
use tokio_util::sync::CancellationToken;

use super::blocking::{IntoBlocking, Readable};
use super::dgram::DatagramSocket;
use super::guard::{Guard, GuardConfig, SIMPLE_SERVICE_PORTS, Verdict};
use super::serve::{self, ConnReport, Listener, ServeSummary};
use super::trace::Direction;
use super::{
    AllowList, BindOptions, Metered, NetError, Peer, SendFile, ServeOptions, Tracer, clock, listen,
    within,
};

/// Stream or datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, or a Unix stream socket.
    Stream,
    /// UDP, or a Unix datagram socket.
    Datagram,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A host (address or name) and a port (0: the kernel picks one).
    Inet {
        /// The address or name to bind.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix socket file.
    Unix(PathBuf),
}

/// Everything needed to bind one server socket.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// Where.
    pub place: Place,
    /// Stream or datagram.
    pub transport: Transport,
    /// Socket options.
    pub bind: BindOptions,
}

impl ListenSpec {
    /// A TCP listener on `addr`, default options.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::inet(addr, Transport::Stream)
    }

    /// A UDP socket on `addr`, default options.
    pub fn udp(addr: SocketAddr) -> Self {
        Self::inet(addr, Transport::Datagram)
    }

    fn inet(addr: SocketAddr, transport: Transport) -> Self {
        ListenSpec {
            place: Place::Inet {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
            transport,
            bind: BindOptions::default(),
        }
    }

    /// The address to bind (the first the host name resolves to).
    pub async fn resolve(&self) -> Result<SocketAddr, NetError> {
        match &self.place {
            Place::Inet { host, port } => Ok(super::addr::resolve_host(host, *port).await?[0]),
            Place::Unix(path) => Err(NetError::BadAddress {
                input: format!("unix:{}", path.display()),
                reason: "a Unix socket has no IP address".into(),
            }),
        }
    }

    /// Binds the socket. Nothing is printed yet: call [`Bound::announce`] once every socket
    /// a command needs is bound.
    pub async fn bind(&self) -> Result<Bound, NetError> {
        let (socket, file) = match (&self.place, self.transport) {
            (Place::Unix(path), Transport::Stream) => (
                Socket::UnixStream(listen::unix_listener(path, self.bind)?),
                Some(SocketFile(path.clone())),
            ),
            (Place::Unix(path), Transport::Datagram) => (
                Socket::UnixDatagram(listen::unix_datagram(path)?),
                Some(SocketFile(path.clone())),
            ),
            (Place::Inet { .. }, Transport::Stream) => {
                let addr = self.resolve().await?;
                (Socket::Tcp(listen::tcp_listener(addr, self.bind)?), None)
            }
            (Place::Inet { .. }, Transport::Datagram) => {
                let addr = self.resolve().await?;
                (Socket::Udp(listen::udp_socket(addr, self.bind)?), None)
            }
        };
        Bound::new(socket, file)
    }
}

/// A bound server socket, ready to serve. Its Unix socket file, if any, is removed when the
/// server is done with it (so the next start finds a clean path).
#[derive(Debug)]
pub struct Bound {
    socket: Socket,
    shown: String,
    local: Option<SocketAddr>,
    file: Option<SocketFile>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    UnixStream(UnixListener),
    Udp(UdpSocket),
    UnixDatagram(UnixDatagram),
}

/// Removes our Unix socket file when dropped.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Bound {
    fn new(socket: Socket, file: Option<SocketFile>) -> Result<Self, NetError> {
        let addr_err = |e: io::Error| NetError::Io {
            what: "reading the bound address".into(),
            source: e,
        };
        let local = match &socket {
            Socket::Tcp(l) => Some(l.local_addr().map_err(addr_err)?),
            Socket::Udp(s) => Some(s.local_addr().map_err(addr_err)?),
            Socket::UnixStream(_) | Socket::UnixDatagram(_) => None,
        };
        let shown = match (&local, &file) {
            (Some(a), _) => a.to_string(),
            (None, Some(f)) => format!("unix:{}", f.0.display()),
            (None, None) => "unix:(unnamed)".into(),
        };
        Ok(Bound {
            socket,
            shown,
            local,
            file,
        })
    }

    /// The IP address and port bound (None for Unix sockets).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        match self.socket {
            Socket::Tcp(_) | Socket::UnixStream(_) => Transport::Stream,
            Socket::Udp(_) | Socket::UnixDatagram(_) => Transport::Datagram,
        }
    }

    /// The UDP socket itself, for a protocol that drives it with its own loop
    /// ([`driver`](crate::net::driver)) rather than as a request/reply service; `None` for
    /// any other kind of socket.
    pub fn into_udp(self) -> Option<UdpSocket> {
        match self.socket {
            Socket::Udp(s) => Some(s),
            _ => None,
        }
    }

    /// Prints `listening on ADDR`, the first stdout line of every server.
    pub fn announce(&self) -> io::Result<()> {
        super::announce(&self.shown)
    }

    /// Prints `listening on ADDR SUFFIX` (inetd names the service after the address).
    pub fn announce_as(&self, suffix: &str) -> io::Result<()> {
        super::announce(format!("{} {suffix}", self.shown))
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl From<TcpListener> for Bound {
    /// A listener bound elsewhere (tests bind port 0 themselves).
    fn from(l: TcpListener) -> Self {
        let local = l.local_addr().ok();
        Bound {
            shown: local.map_or_else(|| "tcp:(unknown)".into(), |a| a.to_string()),
            socket: Socket::Tcp(l),
            local,
            file: None,
        }
    }
}

impl From<UdpSocket> for Bound {
    /// A UDP socket bound elsewhere.
    fn from(s: UdpSocket) -> Self {
        let local = s.local_addr().ok();
        Bound {
            shown: local.map_or_else(|| "udp:(unknown)".into(), |a| a.to_string()),
            socket: Socket::Udp(s),
            local,
            file: None,
        }
    }
}

/// Binds a TCP listener and a UDP socket on the same port, as inetd does for a service. With
/// port 0 the kernel picks TCP's port, and UDP takes the same (tried again with another
/// port, a few times, in the rare case that port is busy for UDP).
pub async fn bind_pair(addr: SocketAddr, opts: BindOptions) -> Result<(Bound, Bound), NetError> {
    const TRIES: usize = 16;
    let mut last = None;
    for _ in 0..TRIES {
        let tcp = Bound::new(Socket::Tcp(listen::tcp_listener(addr, opts)?), None)?;
        let port = tcp.local_addr().map_or(addr.port(), |a| a.port());
        match listen::udp_socket(SocketAddr::new(addr.ip(), port), opts) {
            Ok(udp) => return Ok((tcp, Bound::new(Socket::Udp(udp), None)?)),
            Err(e @ NetError::AddrInUse { .. }) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(NetError::AddrInUse {
        addr: addr.to_string(),
    }))
}

/// The server-wide budget for buffered partial input.
///
/// A client may start a message as long as the protocol allows (a 16 MiB header frame) and
/// then stop sending. Each such client is within its own limit, yet thousands of them hold
/// gigabytes. The budget bounds the sum: a connection asks for room before it buffers more,
/// and is refused, with a clear log line, once the server as a whole holds the budget.
#[derive(Debug, Clone)]
pub struct InputBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
}

/// Default server-wide input budget.
pub const DEFAULT_INPUT_BUDGET: usize = 256 << 20;

impl Default for InputBudget {
    fn default() -> Self {
        InputBudget::new(DEFAULT_INPUT_BUDGET)
    }
}

impl InputBudget {
    /// A budget of `limit` bytes shared by every connection of a server.
    pub fn new(limit: usize) -> Self {
        InputBudget {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes held now by all connections.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// A per-connection account, holding nothing yet.
    pub fn account(&self) -> Held {
        Held {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// One connection's share of the [`InputBudget`]; released when dropped.
#[derive(Debug)]
pub struct Held {
    budget: InputBudget,
    held: usize,
}

/// Buffering more would take the server past its input budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's input budget is spent ({used} of {limit} bytes of partial messages buffered \
     across all clients); this client wanted {wanted} bytes: refused"
)]
pub struct OverBudget {
    /// Bytes held by all connections.
    pub used: usize,
    /// The budget.
    pub limit: usize,
    /// What this connection asked to hold.
    pub wanted: usize,
}

impl Held {
    /// Sets this connection's holding to `bytes` (its buffer's capacity, say), or refuses
    /// and keeps the old holding when the server-wide budget would be exceeded.
    pub fn set(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let inner = &self.budget.inner;
        if bytes <= self.held {
            inner.used.fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return Ok(());
        }
        let more = bytes - self.held;
        let before = inner.used.fetch_add(more, Ordering::Relaxed);
        if before.saturating_add(more) > inner.limit {
            inner.used.fetch_sub(more, Ordering::Relaxed);
            return Err(OverBudget {
                used: before,
                limit: inner.limit,
                wanted: bytes,
            });
        }
        self.held = bytes;
        Ok(())
    }

    /// A second account on the same budget, holding nothing yet (for a thread that buffers
    /// on the connection's behalf).
    pub fn sibling(&self) -> Held {
        self.budget.account()
    }

    /// Bytes held by this connection.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget
            .inner
            .used
            .fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// What a stream service may do with its connection: every accepted stream (TCP or Unix)
/// qualifies.
pub trait Stream:
    AsyncRead + AsyncWrite + Readable + IntoBlocking + SendFile + AsFd + Unpin + Send + Sync + 'static
{
}

impl<T> Stream for T where
    T: AsyncRead
        + AsyncWrite
        + Readable
        + IntoBlocking
        + SendFile
        + AsFd
        + Unpin
        + Send
        + Sync
        + 'static
{
}

/// One client connection as a service sees it.
pub struct Conn<S> {
    /// The stream, counting bytes (and dumping them with `--trace`).
    pub io: Metered<S>,
    /// Who is on the other end.
    pub peer: Peer,
    /// Cancelled when the grace period after a shutdown signal ends: a service that blocks
    /// outside tokio (the threads model) closes its socket on it.
    pub hard_stop: CancellationToken,
    /// This connection's share of the server-wide input budget.
    pub input: Held,
    linger: bool,
}

impl<S> Conn<S> {
    /// The host will not linger after the service returns (the service closed the socket
    /// itself, or handed it to a thread that did).
    pub fn skip_linger(&mut self) {
        self.linger = false;
    }

    /// A tracer labelled with this peer, when `--trace` is on (for a service that reads
    /// the socket through another handle, like the threads model).
    pub fn tracer(&self) -> Option<Tracer> {
        self.io.tracer().cloned()
    }
}

/// A protocol spoken on stream connections.
pub trait StreamService: Send + Sync + 'static {
    /// Why a connection ended early (logged in the connection's close line).
    type Error: std::error::Error + Send;

    /// The service's name, for log lines ("echo", "daytime", "http").
    fn name(&self) -> &str;

    /// Serves one connection from its first byte to its end. The host then closes the
    /// connection gracefully and logs it.
    fn serve<S: Stream>(
        &self,
        conn: &mut Conn<S>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How long the graceful close waits for the client's own close.
pub const LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and discarded while lingering.
pub const LINGER_MAX: usize = 64 * 1024;

/// Closes gracefully: FIN first, then read and discard until the client closes too (for
/// [`LINGER`] and [`LINGER_MAX`] bytes at most). Closing a socket with unread input makes the
/// kernel send a reset, and a reset can discard our last reply before the client read it.
pub async fn linger<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let _ = within(LINGER, s.shutdown()).await;
    // On the heap, and only now: a buffer in this future would sit in every connection's
    // task for its whole life (the task's size is its largest state), idle ones included.
    // One deadline for the whole drain, not one per read: a peer dripping a byte a second
    // would otherwise hold the connection for hours.
    let drain = async {
        let mut sink = vec![0u8; 1024];
        let mut discarded = 0;
        while discarded < LINGER_MAX {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Serves stream connections on `bound` until `shutdown`, each with `service`.
///
/// Errors only when `bound` is a datagram socket. The summary says how many connections
/// came, were refused, or outlived the grace period.
pub async fn serve_stream<H: StreamService>(
    bound: Bound,
    opts: ServeOptions,
    shutdown: CancellationToken,
    service: Arc<H>,
) -> Result<ServeSummary, NetError> {
    let Bound { socket, file, .. } = bound;
    let name: Arc<str> = service.name().into();
    let summary = match socket {
        Socket::Tcp(l) => serve_on(l, name, opts, shutdown, service).await,
        Socket::UnixStream(l) => serve_on(l, name, opts, shutdown, service).await,
        Socket::Udp(_) | Socket::UnixDatagram(_) => {
            return Err(NetError::Io {
                what: format!("serving {name}"),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "this service runs over a stream (TCP or a Unix stream socket)",
                ),
            });
        }
    };
    drop(file);
    Ok(summary)
}

/// The accept loop on one kind of listener, with the per-connection work the host does
/// around the service. (The connection's future is not boxed: its size is what an idle
/// connection costs.)
async fn serve_on<L, H>(
    listener: L,
    name: Arc<str>,
    opts: ServeOptions,
    shutdown: CancellationToken,
    service: Arc<H>,
) -> ServeSummary
where
    L: Listener,
    L::Stream: Stream,
    H: StreamService,
{
    let trace = opts.trace;
    let budget = opts.input_budget.clone();
    serve::serve(
        listener,
        name,
        opts,
        shutdown,
        move |stream, peer, hard_stop| {
            let service = service.clone();
            let tracer = trace.then(|| Tracer::new(peer.to_string()));
            let input = budget.account();
            async move {
                let mut conn = Conn {
                    io: Metered::new(stream, tracer),
                    peer,
                    hard_stop,
                    input,
                    linger: true,
                };
                let result = service.serve(&mut conn).await;
                if conn.linger {
                    if conn.io.saw_eof() {
                        // The client has closed its side already: our FIN is all that is left.
                        let _ = within(LINGER, conn.io.shutdown()).await;
                    } else {
                        linger(&mut conn.io).await;
                    }
                }
                ConnReport {
                    bytes_in: conn.io.bytes_in(),
                    bytes_out: conn.io.bytes_out(),
                    error: result.err().map(|e| e.to_string()),
                }
            }
        },
    )
    .await
}

/// One datagram as a service sees it.
#[derive(Debug)]
pub struct Datagram<'a, A> {
    /// Its bytes (cut at the receive buffer's size when [`Datagram::truncated`]).
    pub data: &'a [u8],
    /// Its real size.
    pub size: usize,
    /// The sender.
    pub from: &'a A,
}

impl<A> Datagram<'_, A> {
    /// True when the datagram was larger than the receive buffer.
    pub fn truncated(&self) -> bool {
        self.size > self.data.len()
    }
}

/// What a datagram service does with one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send the reply buffer back to the sender (subject to the reflection guard).
    Reply,
    /// Nothing to send (discard, or the service answered by itself).
    Nothing,
    /// Drop it, and say why in the (rate-limited) drop log.
    Drop(String),
}

/// What a datagram service can reach besides the datagram: the socket (to answer later,
/// from a task of its own) and the shutdown token.
pub struct DatagramCtx<D> {
    /// The server's socket.
    pub socket: Arc<D>,
    /// Cancel it to stop the server.
    pub shutdown: CancellationToken,
}

/// A protocol spoken in datagrams.
pub trait DatagramService: Send + Sync + 'static {
    /// The service's name, for log lines.
    fn name(&self) -> &str;

    /// Answers one datagram, writing any reply into `reply` (empty on entry).
    fn answer<D: DatagramSocket>(
        &self,
        dgram: Datagram<'_, D::Addr>,
        reply: &mut Vec<u8>,
        ctx: &DatagramCtx<D>,
    ) -> Answer;
}

/// Policy of a datagram server.
#[derive(Debug, Clone)]
pub struct DatagramOptions {
    /// Who may send.
    pub allow: AllowList,
    /// The reflection guard (UDP senders only).
    pub guard: GuardConfig,
    /// The receive buffer; larger datagrams are noticed as truncated.
    pub buffer: usize,
    /// `--trace`.
    pub trace: bool,
}

impl Default for DatagramOptions {
    fn default() -> Self {
        DatagramOptions {
            allow: AllowList::any(),
            guard: GuardConfig::default(),
            buffer: 65536,
            trace: false,
        }
    }
}

/// Counters of a datagram server.
#[derive(Debug, Default)]
pub struct DatagramSummary {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies sent.
    pub replied: AtomicU64,
    /// Datagrams dropped (allow-list, guard, truncation, the service's own reasons).
    pub dropped: AtomicU64,
}

/// Serves datagrams on `bound` until `shutdown`, each answered by `service`.
pub async fn serve_datagram<H: DatagramService>(
    bound: Bound,
    opts: DatagramOptions,
    shutdown: CancellationToken,
    service: Arc<H>,
) -> Result<Arc<DatagramSummary>, NetError> {
    let Bound { socket, file, .. } = bound;
    let result = match socket {
        Socket::Udp(s) => datagram_loop(s, opts, shutdown, service).await,
        Socket::UnixDatagram(s) => datagram_loop(s, opts, shutdown, service).await,
        Socket::Tcp(_) | Socket::UnixStream(_) => Err(NetError::Io {
            what: format!("serving {}", service.name()),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "this service runs over datagrams (UDP or a Unix datagram socket)",
            ),
        }),
    };
    drop(file);
    result
}

async fn datagram_loop<D: DatagramSocket, H: DatagramService>(
    sock: D,
    opts: DatagramOptions,
    shutdown: CancellationToken,
    service: Arc<H>,
) -> Result<Arc<DatagramSummary>, NetError> {
    let name = service.name().to_string();
    let ctx = DatagramCtx {
        socket: Arc::new(sock),
        shutdown: shutdown.clone(),
    };
    let stats = Arc::new(DatagramSummary::default());
    let mut guard = Guard::new(opts.guard.clone());
    let mut drops = DropLog::default();
    let mut buf = vec![0u8; opts.buffer.max(1)];
    let mut reply = Vec::new();
    loop {
        let got = tokio::select! {
            // The socket closes when this returns: datagrams sent after the signal are not
            // read by anyone.
            _ = shutdown.cancelled() => break,
            r = ctx.socket.recv_dgram(&mut buf) => r,
        };
        let got = match got {
            Ok(g) => g,
            // An ICMP error from an earlier reply surfaces here on some systems; it concerns
            // that old peer, not this socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                return Err(NetError::Io {
                    what: format!("receiving a {name} datagram"),
                    source: e,
                });
            }
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let from = got.from.clone();
        let data = &buf[..got.copied];
        let now = clock::now();
        let tracer = opts.trace.then(|| Tracer::new(from.to_string()));
        if let Some(t) = &tracer {
            t.event(Direction::Recv, data);
            if got.truncated() {
                t.note(&format!(
                    "the datagram was {} bytes; the rest was cut off",
                    got.size
                ));
            }
        }
        let ip = D::ip_of(&from);
        if let Some(ip) = ip
            && !opts.allow.allows(ip)
        {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            drops.drop(&name, &from, "not in the --allow list", now);
            continue;
        }
        reply.clear();
        let dgram = Datagram {
            data,
            size: got.size,
            from: &from,
        };
        match service.answer(dgram, &mut reply, &ctx) {
            Answer::Nothing => continue,
            Answer::Drop(why) => {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                drops.drop(&name, &from, &why, now);
                continue;
            }
            Answer::Reply => {}
        }
        if !D::can_reply(&from) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            drops.drop(&name, &from, "the sender has no address to reply to", now);
            continue;
        }
        if let Some(addr) = D::socket_addr_of(&from) {
            let why = match guard.check(addr, now) {
                Verdict::Allow => None,
                Verdict::PortZero => Some("source port 0".to_string()),
                Verdict::ServicePort(p) if SIMPLE_SERVICE_PORTS.contains(&p) => {
                    Some(format!("source port {p} is a simple service's (a loop)"))
                }
                Verdict::ServicePort(p) => Some(format!(
                    "source port {p} is one this process serves on (a loop)"
                )),
                Verdict::RateLimited => Some("rate limit for this source (--rate)".to_string()),
            };
            if let Some(why) = why {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                drops.drop(&name, &from, &why, now);
                continue;
            }
        }
        if let Some(t) = &tracer {
            t.event(Direction::Send, &reply);
        }
        match ctx.socket.send_dgram(&reply, &from).await {
            Ok(_) => {
                stats.replied.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!("{name}: cannot reply to {from}: {e}"),
        }
    }
    tracing::info!(
        "{name} datagrams stopped: {} received, {} answered, {} dropped",
        stats.received.load(Ordering::Relaxed),
        stats.replied.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed)
    );
    Ok(stats)
}

/// Counts dropped datagrams and logs them at most once a second, so a flood of bad
/// datagrams cannot flood the log too.
#[derive(Default)]
struct DropLog {
    pending: u64,
    last_log: Option<Instant>,
}

impl DropLog {
    fn drop(&mut self, service: &str, from: &dyn fmt::Display, why: &str, now: Instant) {
        self.pending += 1;
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(
                "{service}: dropped {} datagram(s); latest from {from}: {why}",
                self.pending
            );
            self.pending = 0;
            self.last_log = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_released() {
        let budget = InputBudget::new(100);
        let mut a = budget.account();
        let mut b = budget.account();
        a.set(60).unwrap();
        let err = b.set(50).unwrap_err();
        assert_eq!((err.used, err.limit, err.wanted), (60, 100, 50));
        assert_eq!(b.held(), 0, "a refused request holds nothing");
        b.set(40).unwrap();
        assert_eq!(budget.used(), 100);
        a.set(10).unwrap();
        assert_eq!(budget.used(), 50);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn unix_socket_file_goes_with_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let spec = ListenSpec {
            place: Place::Unix(path.clone()),
            transport: Transport::Stream,
            bind: BindOptions::default(),
        };
        let bound = spec.bind().await.unwrap();
        assert_eq!(bound.to_string(), format!("unix:{}", path.display()));
        assert!(path.exists());
        drop(bound);
        assert!(!path.exists());
    }
}
