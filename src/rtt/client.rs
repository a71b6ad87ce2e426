//! `socklab rtt measure`: the source. It owns the socket and the clock; the schedule, the
//! matching of replies and the statistics are the sans-IO parts ([`Schedule`], [`Meter`],
//! [`stats`]).
//!
//! The measuring loop runs on a thread of its own with a blocking socket: a probe's send time
//! is read just before `send`, a reply's arrival just after `recvmsg` returns, with nothing
//! (no task scheduler) in between. Between events it sleeps in `ppoll` until the next send
//! or the next loss deadline, or with `--busy-poll` spins on non-blocking receives, which
//! removes the wake-up from the figures at the price of a busy core.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::meter::{self, Counts, Matched, Meter, Singleton};
use super::probe::{self, Packet};
use super::schedule::{self, Schedule};
use super::{server, stats};
use crate::net::stamp;
use crate::net::{AllowList, NetError, clock};

/// When the sample ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Until {
    /// After this many probes.
    Count(u32),
    /// Sending stops at T0 + this (Tf).
    Duration(Duration),
}

/// The transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram per probe.
    Udp,
    /// Probes on one TCP connection.
    Tcp,
}

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The reflector (resolved).
    pub target: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer is a plain RFC 862 echo server (the reply is the probe itself).
    pub echo: bool,
    /// When to stop sending.
    pub until: Until,
    /// λ, probes per second.
    pub rate: f64,
    /// Poisson or periodic.
    pub schedule: schedule::Kind,
    /// The schedule's seed.
    pub seed: u64,
    /// Probe size in bytes (UDP payload, or the probe without its TCP length prefix).
    pub size: usize,
    /// How long to wait for a reply.
    pub loss_threshold: Duration,
    /// The DSCP to send with.
    pub dscp: u8,
    /// Spin instead of sleeping.
    pub busy_poll: bool,
    /// Measure the host's own overhead first.
    pub calibrate: bool,
}

/// The calibration (RFC 2681 §3.7, §3.8): what this host adds to any figure it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The monotonic clock's resolution as the system states it (`clock_getres`), ns.
    pub resolution_ns: u64,
    /// The smallest step seen between two consecutive clock reads, ns.
    pub smallest_step_ns: u64,
    /// What reading the clock costs, ns (mean over many reads).
    pub read_cost_ns: f64,
    /// Probes in the loopback run.
    pub probes: usize,
    /// The systematic error: the median round trip over loopback to a reflector run by the
    /// measuring thread itself, where neither a wire nor a wake-up adds anything.
    pub systematic: Duration,
    /// The random error: half the width of the interval holding the central
    /// [`Calibration::confidence`] of those round trips.
    pub random: Duration,
    /// The confidence level of [`Calibration::random`].
    pub confidence: f64,
}

/// Which kernel timestamps came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStamps {
    /// Probes with a transmit timestamp.
    pub tx: u64,
    /// Replies with a receive timestamp.
    pub rx: u64,
}

/// A finished measurement.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Our address.
    pub src: SocketAddr,
    /// The reflector's.
    pub dst: SocketAddr,
    /// T0, the start of the sample, on the wall clock.
    pub t0: SystemTime,
    /// Tf, when sending stopped (ns after T0).
    pub tf: Duration,
    /// Every probe.
    pub singletons: Vec<Singleton>,
    /// The counts.
    pub counts: Counts,
    /// TCP: how long the connection took to set up.
    pub connect: Option<Duration>,
    /// Kernel timestamps received.
    pub kernel: KernelStamps,
    /// The calibration, when asked for (or why it could not be made).
    pub calibration: Option<Result<Calibration, String>>,
    /// Sends or receives refused by an ICMP port unreachable (nothing listens there).
    pub refused: u64,
    /// Other ICMP reports the kernel passed on (host unreachable, prohibited, too big …).
    pub icmp_errors: u64,
    /// The last of those, in words.
    pub last_icmp: Option<String>,
    /// Sending stopped early on Ctrl-C.
    pub interrupted: bool,
    /// The reflector closed the TCP connection before the end.
    pub closed_early: bool,
}

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Not one probe had a reply within the threshold.
    #[error(
        "no reply to any of the {sent} probes within the loss threshold of {}: is a reflector \
         running there (socklab rtt serve, or an echo server with --echo)?",
        crate::net::fmt_duration(*threshold)
    )]
    NoReply {
        /// Probes sent.
        sent: u64,
        /// The threshold.
        threshold: Duration,
    },
    /// Every probe was refused on the way (an ICMP report other than port unreachable, or a
    /// local firewall).
    #[error("the path refused every probe to {addr}: {last}")]
    PathRefused {
        /// The reflector.
        addr: SocketAddr,
        /// The last error, in words.
        last: String,
    },
    /// The TCP reflector closed the connection before the sample was complete.
    #[error(
        "{addr} closed the connection after {sent} probes: the sample is cut short (a \
         reflector's idle timeout is longer than the gaps of any sensible --rate; was it stopped?)"
    )]
    Closed {
        /// The reflector.
        addr: SocketAddr,
        /// Probes sent until then.
        sent: u64,
    },
    /// The TCP reflector answered something that is not a reply of the probe's size.
    #[error(
        "the reflector sent a reply of {got} bytes to a probe of {want}: is it an rtt reflector (use --echo for an echo server)?"
    )]
    Framing {
        /// The length it declared.
        got: usize,
        /// The probe's size.
        want: usize,
    },
}

impl crate::exit::ExitCoded for MeasureError {
    fn exit_code(&self) -> u8 {
        match self {
            MeasureError::Net(e) => e.exit_code(),
            MeasureError::NoReply { .. } => crate::exit::TIMEOUT,
            MeasureError::Closed { .. } | MeasureError::PathRefused { .. } => crate::exit::NETWORK,
            MeasureError::Framing { .. } => crate::exit::PROTOCOL,
        }
    }
}

fn io_err(what: &str, addr: SocketAddr) -> impl Fn(io::Error) -> NetError + '_ {
    move |e| NetError::from_io(e, addr, what.to_string())
}

/// ns since `t0` on the monotonic clock.
fn ns_since(t0: Instant) -> u64 {
    u64::try_from(clock::since(t0).as_nanos()).unwrap_or(u64::MAX)
}

/// The socket under the loop.
enum Link {
    Udp(UdpSocket),
    Tcp {
        s: TcpStream,
        /// Probes framed by a 2-byte length (our reflector), or raw (an echo server).
        framed: bool,
        inbuf: Vec<u8>,
        eof: bool,
    },
}

impl Link {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Link::Udp(s) => s.as_fd(),
            Link::Tcp { s, .. } => s.as_fd(),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Udp(s) => s.send(bytes).map(drop),
            Link::Tcp { s, framed, .. } => {
                if *framed {
                    let mut out = Vec::with_capacity(bytes.len() + 2);
                    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    out.extend_from_slice(bytes);
                    s.write_all(&out)
                } else {
                    s.write_all(bytes)
                }
            }
        }
    }

    /// Reads what is there without waiting; each complete reply goes to the meter.
    fn drain(
        &mut self,
        io: &mut Scratch,
        meter: &mut Meter,
        t0: Instant,
        out: &mut Tally,
    ) -> Result<usize, MeasureError> {
        let mut n = 0;
        match self {
            Link::Udp(s) => {
                for _ in 0..DRAIN_BATCH {
                    match stamp::recv(s.as_fd(), &mut io.buf, &mut io.cmsg, true, false) {
                        Ok(got) => {
                            let now =
                                u64::try_from(got.at.saturating_duration_since(t0).as_nanos())
                                    .unwrap_or(u64::MAX);
                            if got.truncated {
                                meter.stray();
                            } else if let Matched::Reply(_) =
                                meter.receive(&io.buf[..got.len], now, got.kernel)
                                && got.kernel.is_some()
                            {
                                out.kernel.rx += 1;
                            }
                            n += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if out.icmp(&e) => {}
                        Err(e) => {
                            return Err(NetError::from_io(e, out.dst, "receiving a reply").into());
                        }
                    }
                }
            }
            Link::Tcp {
                s,
                framed,
                inbuf,
                eof,
            } => {
                let size = meter.config().size;
                loop {
                    let mut chunk = [0u8; 16384];
                    match nix::sys::socket::recv(
                        std::os::fd::AsRawFd::as_raw_fd(s),
                        &mut chunk,
                        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(0) => {
                            *eof = true;
                            break;
                        }
                        Ok(k) => inbuf.extend_from_slice(&chunk[..k]),
                        Err(nix::errno::Errno::EAGAIN) => break,
                        Err(nix::errno::Errno::EINTR) => {}
                        // The reflector went away: what was measured so far is reported.
                        Err(nix::errno::Errno::ECONNRESET | nix::errno::Errno::EPIPE) => {
                            *eof = true;
                            break;
                        }
                        Err(e) => {
                            return Err(
                                NetError::from_io(e.into(), out.dst, "receiving a reply").into()
                            );
                        }
                    }
                }
                let now = ns_since(t0);
                let head = if *framed { 2 } else { 0 };
                let mut at = 0;
                while inbuf.len() - at >= head + size {
                    if *framed {
                        let got = usize::from(u16::from_be_bytes([inbuf[at], inbuf[at + 1]]));
                        if got != size {
                            return Err(MeasureError::Framing { got, want: size });
                        }
                    }
                    meter.receive(&inbuf[at + head..at + head + size], now, None);
                    at += head + size;
                    n += 1;
                }
                inbuf.drain(..at);
            }
        }
        Ok(n)
    }

    /// Transmit timestamps waiting on the error queue (UDP only).
    fn drain_tx(&mut self, io: &mut Scratch, meter: &mut Meter, out: &mut Tally) {
        let Link::Udp(s) = self else { return };
        let size = meter.config().size;
        while let Ok(got) = stamp::recv(s.as_fd(), &mut io.buf, &mut io.cmsg, true, true) {
            // The packet comes back with its headers in front: the probe is the tail.
            let (Some(ns), false) = (got.kernel, got.truncated) else {
                continue;
            };
            if got.len >= size
                && let Ok(p) = Packet::parse(&io.buf[got.len - size..got.len])
                && p.session == meter.config().session
            {
                meter.tx_stamp(p.seq, ns);
                out.kernel.tx += 1;
            }
        }
    }
}

/// Buffers reused across the loop.
struct Scratch {
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

/// Counts the loop keeps besides the meter's.
struct Tally {
    dst: SocketAddr,
    kernel: KernelStamps,
    refused: u64,
    /// Other ICMP reports (host unreachable, prohibited, too big …) and the last one.
    icmp: u64,
    last_icmp: Option<String>,
}

impl Tally {
    fn new(dst: SocketAddr) -> Self {
        Tally {
            dst,
            kernel: KernelStamps::default(),
            refused: 0,
            icmp: 0,
            last_icmp: None,
        }
    }

    /// Counts an error the kernel reported for an earlier datagram; `false` if it is not one.
    fn icmp(&mut self, e: &io::Error) -> bool {
        if !stamp::is_icmp_report(e) {
            return false;
        }
        if e.raw_os_error() == Some(libc::ECONNREFUSED) {
            self.refused += 1;
        } else {
            self.icmp += 1;
            self.last_icmp = Some(e.to_string());
        }
        true
    }
}

/// Most datagrams read in one go, so a flood cannot keep the loop from its schedule or from
/// noticing Ctrl-C.
const DRAIN_BATCH: usize = 64;

/// Runs the measurement (blocking: call it from a thread of its own). `stop` ends sending
/// early (Ctrl-C); replies still due are waited for.
pub fn measure(cfg: &Config, stop: &AtomicBool) -> Result<Measurement, MeasureError> {
    let dst = cfg.target;
    let v6 = dst.is_ipv6();
    let calibration = if cfg.calibrate {
        Some(calibrate(v6, cfg.size, cfg.busy_poll).map_err(|e| e.to_string()))
    } else {
        None
    };
    let (mut link, src, connect) = match cfg.transport {
        Transport::Udp => {
            let local: SocketAddr = if v6 {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(local).map_err(|e| NetError::from_bind(e, local))?;
            s.connect(dst).map_err(io_err("connecting", dst))?;
            (
                Link::Udp(s.try_clone().map_err(io_err("connecting", dst))?),
                s.local_addr().map_err(io_err("reading our address", dst))?,
                None,
            )
        }
        Transport::Tcp => {
            let timeout = cfg.loss_threshold.max(Duration::from_secs(5));
            let started = clock::now();
            let s = TcpStream::connect_timeout(&dst, timeout).map_err(|e| {
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
                    NetError::Timeout {
                        what: format!("connecting to {dst}"),
                        after: timeout,
                    }
                } else {
                    NetError::from_io(e, dst, format!("connecting to {dst}"))
                }
            })?;
            let took = clock::since(started);
            s.set_nodelay(true)
                .map_err(io_err("setting TCP_NODELAY", dst))?;
            s.set_write_timeout(Some(timeout))
                .map_err(io_err("setting a send timeout", dst))?;
            let src = s.local_addr().map_err(io_err("reading our address", dst))?;
            (
                Link::Tcp {
                    s,
                    framed: !cfg.echo,
                    inbuf: Vec::new(),
                    eof: false,
                },
                src,
                Some(took),
            )
        }
    };
    if cfg.dscp != 0 {
        let r = match &link {
            Link::Udp(s) => stamp::set_dscp(s, cfg.dscp, v6),
            Link::Tcp { s, .. } => stamp::set_dscp(s, cfg.dscp, v6),
        };
        r.map_err(io_err("setting the DSCP", dst))?;
    }
    if let Link::Udp(s) = &link {
        stamp::enable(s.as_fd(), true);
    }
    let session = rand::random::<u32>();
    let mut meter = Meter::new(meter::Config {
        session,
        size: cfg.size,
        loss_threshold: cfg.loss_threshold,
    });
    let mut sched = Schedule::new(cfg.schedule, cfg.rate, cfg.seed);
    let mut io = Scratch {
        buf: vec![0u8; probe::MAX_SIZE + 256],
        cmsg: stamp::cmsg_buffer(),
    };
    let mut tally = Tally::new(dst);
    let t0_wall = clock::wall();
    let t0 = clock::now();
    let mut next = dur_ns(sched.next_send());
    let mut sending = true;
    let mut tf = 0;
    let mut interrupted = false;
    loop {
        let now = ns_since(t0);
        if sending {
            let done = match cfg.until {
                Until::Count(n) => meter.counts().sent >= u64::from(n),
                Until::Duration(d) => next > dur_ns(d),
            };
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
            }
            if done || interrupted || link_closed(&link) {
                sending = false;
                // Tf is T0 + -d when the sample ran its course (RFC 2681 §3.1), the end of
                // sending otherwise.
                tf = match cfg.until {
                    Until::Duration(d) if done && !interrupted && !link_closed(&link) => dur_ns(d),
                    _ => now,
                };
            }
        }
        if sending && now >= next {
            // Replies already in are read first, so their arrival is not stamped after a
            // burst of sends (and TCP replies never pile up while we write).
            link.drain(&mut io, &mut meter, t0, &mut tally)?;
            // Encoded first, stamped last: the clock is read just before the system call.
            let p = meter.send(now, now);
            let bytes = p.encode();
            meter.restamp(p.seq, ns_since(t0));
            match link.send(&bytes) {
                Ok(()) => {}
                Err(e) if cfg.transport == Transport::Udp && tally.icmp(&e) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
                {
                    if let Link::Tcp { eof, .. } = &mut link {
                        *eof = true;
                    }
                }
                Err(e) => return Err(NetError::from_io(e, dst, "sending a probe").into()),
            }
            link.drain_tx(&mut io, &mut meter, &mut tally);
            next = dur_ns(sched.next_send());
            continue;
        }
        if !sending && (meter.settled(now) || link_closed(&link)) {
            break;
        }
        let deadline = if sending {
            next
        } else {
            meter.last_expiry().unwrap_or(now)
        };
        let wait =
            Duration::from_nanos(deadline.saturating_sub(now)).min(Duration::from_millis(50));
        if cfg.busy_poll {
            let until = now + dur_ns(wait);
            while link.drain(&mut io, &mut meter, t0, &mut tally)? == 0
                && ns_since(t0) < until
                && !link_closed(&link)
            {
                std::hint::spin_loop();
            }
        } else {
            if !wait.is_zero() {
                stamp::wait_readable(link.fd(), wait)
                    .map_err(io_err("waiting for a reply", dst))?;
            }
            link.drain(&mut io, &mut meter, t0, &mut tally)?;
        }
        link.drain_tx(&mut io, &mut meter, &mut tally);
        if let Link::Udp(s) = &link
            && let Some(e) = stamp::take_error(s.as_fd())
        {
            tally.icmp(&e);
        }
    }
    let closed_early = link_closed(&link);
    let (singletons, counts) = meter.finish();
    Ok(Measurement {
        src,
        dst,
        t0: t0_wall,
        tf: Duration::from_nanos(tf),
        singletons,
        counts,
        connect,
        kernel: tally.kernel,
        calibration,
        refused: tally.refused,
        icmp_errors: tally.icmp,
        last_icmp: tally.last_icmp,
        interrupted,
        closed_early,
    })
}

#[cfg(test)]
impl Measurement {
    /// A measurement of these singletons, for tests of what is made of one.
    pub fn for_tests(singletons: Vec<Singleton>) -> Self {
        let mut counts = Counts {
            sent: singletons.len() as u64,
            ..Counts::default()
        };
        counts.replied = singletons.iter().filter(|s| s.host.is_some()).count() as u64;
        Measurement {
            src: SocketAddr::from(([127, 0, 0, 1], 40000)),
            dst: SocketAddr::from(([127, 0, 0, 1], 8620)),
            t0: SystemTime::UNIX_EPOCH,
            tf: Duration::from_secs(1),
            singletons,
            counts,
            connect: None,
            kernel: KernelStamps::default(),
            calibration: None,
            refused: 0,
            icmp_errors: 0,
            last_icmp: None,
            interrupted: false,
            closed_early: false,
        }
    }
}

fn link_closed(link: &Link) -> bool {
    matches!(link, Link::Tcp { eof: true, .. })
}

fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Probes in the calibration run.
pub const CALIBRATION_PROBES: usize = 1000;
/// Probes sent before those, and not counted.
const CALIBRATION_WARMUP: usize = 100;

/// The calibration: the clock's resolution and cost, then [`CALIBRATION_PROBES`] probes one
/// after another over loopback to a reflector driven by the same thread.
pub fn calibrate(v6: bool, size: usize, busy_poll: bool) -> io::Result<Calibration> {
    let resolution_ns = nix::time::clock_getres(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0);
    const READS: u32 = 100_000;
    let mut smallest = u64::MAX;
    let start = clock::now();
    let mut last = start;
    for _ in 0..READS {
        let t = clock::now();
        let step = u64::try_from(t.duration_since(last).as_nanos()).unwrap_or(u64::MAX);
        if step > 0 {
            smallest = smallest.min(step);
        }
        last = t;
    }
    let read_cost_ns = last.duration_since(start).as_nanos() as f64 / f64::from(READS);

    let lo: SocketAddr = if v6 {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    // Both ends in this thread: loopback delivers a datagram during the `send` call, so the
    // reflector's socket already holds the probe when it reads, and the reply is waiting when
    // the source reads. No thread wakes up: what is left is this host's own cost of sending,
    // receiving and reading the clock (the wake-ups are in the processing time and in the
    // host-versus-kernel difference, reported apart).
    let refl = UdpSocket::bind(lo)?;
    stamp::enable(refl.as_fd(), false);
    refl.set_read_timeout(Some(Duration::from_millis(100)))?;
    let s = UdpSocket::bind(lo)?;
    s.connect(refl.local_addr()?)?;
    let mut reflector =
        server::Reflector::new(crate::net::guard::GuardConfig::for_services(None, []));
    let counters = server::Counters::default();
    let any = AllowList::any();
    let mut meter = Meter::new(meter::Config {
        session: rand::random(),
        size,
        loss_threshold: Duration::from_millis(200),
    });
    let mut io = Scratch {
        buf: vec![0u8; probe::MAX_SIZE + 256],
        cmsg: stamp::cmsg_buffer(),
    };
    let mut tally = Tally::new(lo);
    let mut link = Link::Udp(s);
    let t0 = clock::now();
    // The first probes find cold caches: sent, not kept.
    for i in 0..CALIBRATION_WARMUP + CALIBRATION_PROBES {
        if i == CALIBRATION_WARMUP {
            meter = Meter::new(meter.config().clone());
        }
        let at = ns_since(t0);
        let p = meter.send(at, at);
        let bytes = p.encode();
        meter.restamp(p.seq, ns_since(t0));
        link.send(&bytes)?;
        reflector.answer_one(&refl, &any, &counters)?;
        // Until this probe's reply is in (at once, on loopback), or 100 ms.
        let give_up = ns_since(t0) + 100_000_000;
        while meter.singletons()[p.seq as usize].host.is_none() && ns_since(t0) < give_up {
            if !busy_poll {
                stamp::wait_readable(link.fd(), Duration::from_millis(10))?;
            }
            link.drain(&mut io, &mut meter, t0, &mut tally)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
    }
    let singletons = meter.finish().0;
    let dts: Vec<stats::Dt> = singletons.iter().map(Singleton::dt).collect();
    let systematic = stats::median(&dts).flatten().unwrap_or_default();
    let p = |x| stats::percentile(&dts, x).flatten().unwrap_or_default();
    let random = (p(97.5).saturating_sub(p(2.5))) / 2;
    Ok(Calibration {
        resolution_ns,
        smallest_step_ns: if smallest == u64::MAX { 0 } else { smallest },
        read_cost_ns,
        probes: CALIBRATION_PROBES,
        systematic,
        random,
        confidence: 0.95,
    })
}
