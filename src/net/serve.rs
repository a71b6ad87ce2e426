//! The accept loop every stream server shares.
//!
//! ```text
//!   listener ──accept──▶ allow-list? ──no──▶ log "refused", close
//!                          │ yes
//!                          ▼
//!                  wait for a connection slot (--max-conns; extra clients wait in the
//!                          │                   kernel's backlog, not in our memory)
//!                          ▼
//!                  spawn handler(stream, peer) ──▶ log bytes in/out and duration at close
//! ```
//!
//! On shutdown the loop stops accepting, then waits up to the grace period for open
//! connections to finish; whatever is still open after that is dropped (closed).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::host::InputBudget;
use super::{AllowList, clock, fmt_duration};

/// Who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An internet peer.
    Inet(SocketAddr),
    /// A Unix socket peer (usually unnamed).
    Unix(String),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Inet(a) => write!(f, "{a}"),
            Peer::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

/// Something that accepts stream connections: a TCP or Unix listener.
pub trait Listener: Send + 'static {
    /// The accepted stream type.
    type Stream: AsyncRead
        + AsyncWrite
        + super::blocking::Readable
        + super::blocking::IntoBlocking
        + super::SendFile
        + Unpin
        + Send
        + Sync
        + 'static;
    /// Accepts one connection.
    fn accept_peer(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
    /// A second descriptor for the same listening socket (for another runtime to accept on).
    fn dup_fd(&self) -> io::Result<OwnedFd>;
    /// A listener on a descriptor from [`Listener::dup_fd`], registered with the current
    /// runtime.
    fn from_fd(fd: OwnedFd) -> io::Result<Self>
    where
        Self: Sized;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        // The duplicate shares the original's O_NONBLOCK (file status flags are per socket).
        TcpListener::from_std(std::net::TcpListener::from(fd))
    }

    async fn accept_peer(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, addr) = self.accept().await?;
        // Small request/reply messages should leave at once, not wait for Nagle.
        stream.set_nodelay(true)?;
        // On a dual-stack `::` listener IPv4 clients arrive as ::ffff:a.b.c.d; show (and
        // allow-list) them as the IPv4 addresses they are.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        Ok((stream, Peer::Inet(addr)))
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;

    fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.as_fd().try_clone_to_owned()
    }

    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
    }

    async fn accept_peer(&self) -> io::Result<(UnixStream, Peer)> {
        let (stream, addr) = self.accept().await?;
        let name = addr
            .as_pathname()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(unnamed)".into());
        Ok((stream, Peer::Unix(name)))
    }
}

/// Policy for one server's accept loop.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Who may connect.
    pub allow: AllowList,
    /// At most this many connections at once; more wait in the listen backlog.
    pub max_conns: usize,
    /// How long open connections may take to finish after shutdown begins.
    pub grace: Duration,
    /// 0: accept and serve on the caller's runtime. N > 0: on N threads of their own, each
    /// with a single-threaded runtime accepting on the same socket (see [`serve`]).
    pub workers: usize,
    /// `--trace`: dump every read and write of every connection.
    pub trace: bool,
    /// The server-wide budget for buffered partial input.
    pub input_budget: InputBudget,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            allow: AllowList::any(),
            max_conns: DEFAULT_MAX_CONNS,
            grace: DEFAULT_GRACE,
            workers: 0,
            trace: false,
            input_budget: InputBudget::default(),
        }
    }
}

/// Default connection limit.
pub const DEFAULT_MAX_CONNS: usize = 20_000;
/// Default grace period at shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// What a connection handler reports when it is done.
#[derive(Debug, Default, Clone)]
pub struct ConnReport {
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
    /// Why the connection ended, if not by a clean close.
    pub error: Option<String>,
}

/// Totals for a server's lifetime.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections accepted and handled.
    pub accepted: u64,
    /// Connections refused by the allow-list.
    pub refused: u64,
    /// Connections still open when the grace period ran out.
    pub abandoned: usize,
    /// Worker threads (`ServeOptions::workers`) that could not start or failed; the server
    /// stops when one does.
    pub failed_workers: usize,
}

/// Accepts connections until `shutdown` is cancelled, running `handler` for each; `name`
/// names the service in log lines. Protocols use [`super::host::serve_stream`], which builds
/// the handler; this is its engine.
///
/// The handler gets the stream, the peer and a token cancelled when the grace period ends
/// (a handler that blocks outside tokio, like the threads model, uses it to close its
/// socket).
///
/// With `opts.workers` = N > 0 the server runs as nginx does with N worker processes: N
/// threads, each with its own single-threaded runtime and its own descriptor for the
/// listening socket, each accepting and serving its connections start to end. A connection
/// never moves between threads, so nothing is shared on the hot path; the `--max-conns`
/// slots and the shutdown signal are shared by all workers.
pub async fn serve<L, H, F>(
    listener: L,
    name: Arc<str>,
    opts: ServeOptions,
    shutdown: CancellationToken,
    handler: H,
) -> ServeSummary
where
    L: Listener,
    H: Fn(L::Stream, Peer, CancellationToken) -> F + Send + Sync + 'static,
    F: Future<Output = ConnReport> + Send + 'static,
{
    let handler = Arc::new(handler);
    let slots = Arc::new(Semaphore::new(opts.max_conns.max(1)));
    if opts.workers == 0 {
        // Run the loop on a runtime worker, not on whatever thread awaits us (often main's
        // `block_on`): accepting there costs a thread switch per connection.
        let task = tokio::spawn(accept_loop(listener, name, opts, shutdown, handler, slots));
        return match task.await {
            Ok(summary) => summary,
            Err(e) => {
                tracing::error!("the accept loop failed: {e}");
                ServeSummary::default()
            }
        };
    }
    // Each worker says when it is accepting (or why it cannot), then, at the end, its totals.
    let mut ready = Vec::with_capacity(opts.workers);
    let mut done = Vec::with_capacity(opts.workers);
    let mut total = ServeSummary::default();
    for n in 0..opts.workers {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<io::Result<()>>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (name, opts, shutdown, handler, slots) = (
            name.clone(),
            opts.clone(),
            shutdown.clone(),
            handler.clone(),
            slots.clone(),
        );
        let started = listener.dup_fd().and_then(|fd| {
            std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => return drop(ready_tx.send(Err(e))),
                    };
                    rt.block_on(async {
                        let listener = match L::from_fd(fd) {
                            Ok(l) => l,
                            Err(e) => return drop(ready_tx.send(Err(e))),
                        };
                        let _ = ready_tx.send(Ok(()));
                        let _ = done_tx.send(
                            accept_loop(listener, name, opts, shutdown, handler, slots).await,
                        );
                    });
                    // Whatever outlived the grace period is dropped (closed) here.
                    rt.shutdown_background();
                })
        });
        match started {
            Ok(_) => {
                ready.push((n, ready_rx));
                done.push(done_rx);
            }
            Err(e) => {
                tracing::error!("cannot start worker {n}: {e}");
                total.failed_workers += 1;
            }
        }
    }
    // The workers hold their own descriptors; this registration is no longer needed.
    drop(listener);
    for (n, rx) in ready {
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("worker {n} cannot start: {e}");
                total.failed_workers += 1;
            }
            Err(_) => {
                tracing::error!("worker {n} ended while starting");
                total.failed_workers += 1;
            }
        }
    }
    if total.failed_workers > 0 {
        // A server short of workers is not the one asked for: stop the others.
        shutdown.cancel();
    }
    // Totals as workers end; a worker that ends without them has panicked: stop the rest.
    let mut done: FuturesUnordered<_> = done.into_iter().collect();
    while let Some(result) = done.next().await {
        match result {
            Ok(s) => {
                total.accepted += s.accepted;
                total.refused += s.refused;
                total.abandoned += s.abandoned;
            }
            Err(_) if total.failed_workers > 0 && shutdown.is_cancelled() => {
                // Did not start (already counted), or stopped by the cancel above.
            }
            Err(_) => {
                tracing::error!("a worker thread failed; stopping the server");
                total.failed_workers += 1;
                shutdown.cancel();
            }
        }
    }
    total
}

async fn accept_loop<L, H, F>(
    listener: L,
    name: Arc<str>,
    opts: ServeOptions,
    shutdown: CancellationToken,
    handler: Arc<H>,
    slots: Arc<Semaphore>,
) -> ServeSummary
where
    L: Listener,
    H: Fn(L::Stream, Peer, CancellationToken) -> F + Send + Sync + 'static,
    F: Future<Output = ConnReport> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let mut summary = ServeSummary::default();
    let mut backoff = Duration::from_millis(10);

    loop {
        // Take a slot before accepting: when the server is full, new clients queue in the
        // kernel (the listen backlog) instead of costing us memory.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept_peer() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) if is_transient_accept_error(&e) => {
                // Out of file descriptors or memory: wait a little instead of spinning.
                tracing::error!(error = %e, "accept failed; retrying in {}", fmt_duration(backoff));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept: connection aborted before we took it");
                continue;
            }
        };
        if let Peer::Inet(addr) = &peer
            && !opts.allow.allows(addr.ip())
        {
            summary.refused += 1;
            tracing::warn!("{name}: refused connection from {peer}: not in the --allow list");
            drop(stream);
            continue;
        }
        summary.accepted += 1;
        tracing::info!("{name}: connection from {peer}");
        let handler = handler.clone();
        let name = name.clone();
        let stop = hard_stop.clone();
        tracker.spawn(async move {
            let started = clock::now();
            let report = handler(stream, peer.clone(), stop).await;
            let took = fmt_duration(crate::net::clock::since(started));
            match &report.error {
                None => tracing::info!(
                    "{name}: closed {peer}: {} bytes in, {} bytes out, {took}",
                    report.bytes_in,
                    report.bytes_out
                ),
                Some(err) => tracing::warn!(
                    "{name}: closed {peer}: {err}; {} bytes in, {} bytes out, {took}",
                    report.bytes_in,
                    report.bytes_out
                ),
            }
            drop(permit);
        });
    }

    // Close the listening socket now, not after the grace period: a client that connects
    // during it is refused at once instead of waiting in the backlog for a reset.
    drop(listener);
    tracker.close();
    let open = tracker.len();
    if open > 0 {
        tracing::info!(
            "stopped accepting; waiting up to {} for {open} open connection(s)",
            fmt_duration(opts.grace)
        );
        if tokio::time::timeout(opts.grace, tracker.wait())
            .await
            .is_err()
        {
            summary.abandoned = tracker.len();
            tracing::warn!(
                "grace period over: closing {} connection(s) still open",
                summary.abandoned
            );
            hard_stop.cancel();
        }
    }
    summary
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
