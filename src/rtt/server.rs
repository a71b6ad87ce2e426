//! `socklab rtt serve`: the reflector. UDP and TCP on the same port (8620 by default).
//!
//! UDP runs on a thread of its own with a blocking socket, not on the async runtime: the
//! reflector's processing time is part of what is measured (it is subtracted, but its
//! spread is not), and a blocking `recvmsg` wakes sooner than a task does. T2 is the kernel's
//! receive timestamp when the kernel gives one (else the clock just after `recvmsg`), T3 the
//! clock just before `sendto`; both on the wall clock, whose difference is all the source
//! uses. Only valid probes are answered, with a reply of the same size: nothing is amplified,
//! and two reflectors never answer each other.
//!
//! TCP frames each probe with a 2-byte length (docs/PROTOCOLS.md §10.3) and runs on the
//! service host like every other stream protocol (allow-list, connection limit, timeouts).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::probe::{MAX_SIZE, MIN_SIZE, Packet};
use crate::net::guard::{Guard, GuardConfig, Verdict};
use crate::net::host::{self, Bound, Conn, Stream, StreamService};
use crate::net::stamp;
use crate::net::{AllowList, NetError, ServeOptions, clock, within};

/// The reflector's default port.
pub const DEFAULT_PORT: u16 = 8620;

/// How often the UDP thread looks at the shutdown flag when nothing arrives.
const TICK: Duration = Duration::from_millis(100);

/// What the reflector counted.
#[derive(Debug, Default)]
pub struct Counters {
    /// Probes answered.
    pub reflected: AtomicU64,
    /// Datagrams not answered: not a probe, corrupted, truncated, or from outside --allow.
    pub dropped: AtomicU64,
    /// Probes that carried a kernel receive timestamp.
    pub kernel_stamped: AtomicU64,
}

/// The reflector's buffers and reflection guard, reused for every datagram.
pub struct Reflector {
    buf: Vec<u8>,
    cmsg: Vec<u8>,
    guard: Guard,
}

impl Reflector {
    /// A reflector with this guard (`net::guard`: source port 0, the simple services' ports
    /// and the process's own are never answered; an optional per-source rate).
    pub fn new(guard: GuardConfig) -> Self {
        Reflector {
            buf: vec![0u8; MAX_SIZE + 1],
            cmsg: stamp::cmsg_buffer(),
            guard: Guard::new(guard),
        }
    }
}

impl Reflector {
    /// Receives one datagram (waiting as the socket's mode says) and answers it if it is a
    /// probe from an allowed source. `Ok(false)`: nothing came (a timeout, a signal, an ICMP
    /// error about an earlier reply).
    pub fn answer_one(
        &mut self,
        sock: &UdpSocket,
        allow: &AllowList,
        counters: &Counters,
    ) -> io::Result<bool> {
        let got = match stamp::recv(sock.as_fd(), &mut self.buf, &mut self.cmsg, false, false) {
            Ok(g) => g,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        // An ICMP error about an earlier reply: that peer's business.
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let t2 = match got.kernel {
            Some(t) => {
                counters.kernel_stamped.fetch_add(1, Ordering::Relaxed);
                t
            }
            None => clock::wall_nanos(),
        };
        let Some(from) = got.from else {
            return Ok(true);
        };
        if got.truncated || !allow.allows(from.ip()) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        // Before any work: a spoofed probe "from" a chargen port would make us the first
        // half of a loop.
        if self.guard.check(from, clock::now()) != Verdict::Allow {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        let d = &mut self.buf[..got.len];
        if let Err(why) = Packet::reply_in_place(d, t2, clock::wall_nanos) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("rtt: dropped a datagram from {from}: {why}");
            return Ok(true);
        }
        match sock.send_to(d, from) {
            Ok(_) => {
                counters.reflected.fetch_add(1, Ordering::Relaxed);
            }
            // A full send buffer or an unreachable sender loses this reply: a lost probe,
            // which is the source's to count.
            Err(e) => tracing::debug!("rtt: reply to {from} not sent: {e}"),
        }
        Ok(true)
    }
}

/// Reflects probes on a blocking UDP socket until `stop` is set.
pub fn reflect_udp(
    sock: UdpSocket,
    allow: &AllowList,
    guard: GuardConfig,
    stop: &AtomicBool,
    counters: &Counters,
) -> io::Result<()> {
    sock.set_read_timeout(Some(TICK))?;
    if !stamp::enable(sock.as_fd(), false) {
        tracing::info!("rtt: the kernel gives no receive timestamps; T2 is read after recvmsg");
    }
    let mut reflector = Reflector::new(guard);
    while !stop.load(Ordering::Relaxed) {
        reflector.answer_one(&sock, allow, counters)?;
    }
    Ok(())
}

/// Runs [`reflect_udp`] on its own thread until `shutdown`.
pub async fn serve_udp(
    bound: Bound,
    allow: AllowList,
    guard: GuardConfig,
    shutdown: CancellationToken,
) -> Result<Arc<Counters>, NetError> {
    let shown = bound.to_string();
    let io_err = |e: io::Error| NetError::Io {
        what: format!("reflecting probes on {shown}"),
        source: e,
    };
    let sock = bound
        .into_udp()
        .ok_or_else(|| io_err(io::Error::other("not a UDP socket")))?
        .into_std()
        .map_err(io_err)?;
    sock.set_nonblocking(false).map_err(io_err)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let thread = {
        let (stop, counters) = (stop.clone(), counters.clone());
        tokio::task::spawn_blocking(move || reflect_udp(sock, &allow, guard, &stop, &counters))
    };
    let stopper = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let result = thread.await;
    stopper.abort();
    match result {
        Ok(r) => r.map_err(io_err)?,
        Err(e) => return Err(io_err(io::Error::other(e.to_string()))),
    }
    Ok(counters)
}

/// The TCP side: each probe framed by its length (2 bytes, big-endian), answered in kind.
#[derive(Debug)]
pub struct TcpReflector {
    /// How long a connection may stay silent.
    pub timeout: Duration,
    /// Counts.
    pub counters: Arc<Counters>,
}

/// Why a TCP probe connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// Reading or writing failed (or timed out).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A length outside 40..=65507.
    #[error("a probe of {0} bytes (the length must be {MIN_SIZE} to {MAX_SIZE})")]
    Length(usize),
    /// Not a probe.
    #[error("not a probe: {0}")]
    Probe(#[from] super::probe::ProbeError),
}

impl StreamService for TcpReflector {
    type Error = TcpError;

    fn name(&self) -> &str {
        "rtt"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), TcpError> {
        let mut buf = Vec::new();
        loop {
            let mut len = [0u8; 2];
            // The source closes after its last probe: the normal end, between two frames.
            match within(self.timeout, conn.io.read(&mut len[..1])).await? {
                0 => return Ok(()),
                _ => within(self.timeout, conn.io.read_exact(&mut len[1..])).await?,
            };
            let n = usize::from(u16::from_be_bytes(len));
            if !(MIN_SIZE..=MAX_SIZE).contains(&n) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(TcpError::Length(n));
            }
            buf.resize(n, 0);
            within(self.timeout, conn.io.read_exact(&mut buf)).await?;
            let t2 = clock::wall_nanos();
            if let Err(e) = Packet::reply_in_place(&mut buf, t2, clock::wall_nanos) {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
            let mut out = Vec::with_capacity(n + 2);
            out.extend_from_slice(&len);
            out.extend_from_slice(&buf);
            within(self.timeout, conn.io.write_all(&out)).await?;
            self.counters.reflected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Serves both sides until `shutdown`; logs the counts at the end.
pub async fn run(
    tcp: Bound,
    udp: Bound,
    opts: ServeOptions,
    guard: GuardConfig,
    timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), NetError> {
    let tcp_side = Arc::new(TcpReflector {
        timeout,
        counters: Arc::new(Counters::default()),
    });
    let allow = opts.allow.clone();
    let (u, t) = tokio::join!(
        serve_udp(udp, allow, guard, shutdown.clone()),
        host::serve_stream(tcp, opts, shutdown, tcp_side.clone())
    );
    let u = u?;
    t?;
    tracing::info!(
        "rtt: {} probes reflected over UDP ({} with a kernel receive timestamp), {} over TCP; {} dropped",
        u.reflected.load(Ordering::Relaxed),
        u.kernel_stamped.load(Ordering::Relaxed),
        tcp_side.counters.reflected.load(Ordering::Relaxed),
        u.dropped.load(Ordering::Relaxed) + tcp_side.counters.dropped.load(Ordering::Relaxed),
    );
    Ok(())
}
