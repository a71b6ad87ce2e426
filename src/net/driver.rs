//! Runs a timer-driven sans-IO protocol core over a datagram socket.
//!
//! Some protocols are not request/reply: a UDP chat with its own acknowledgements (ARQ) must
//! send, wait, give up waiting and send again; an RTT meter must send probes on a schedule
//! and notice the replies that never come. Their logic is all about *time*, and code that
//! reads the clock and sleeps on a socket can only be tested by waiting. So, after quinn, the
//! protocol is written as a [`Core`] that does no I/O and never reads the clock: every call
//! passes `now`, and the core says what it wants through `poll_*` methods. This module holds
//! the other half, written once: [`run`] owns the socket, the clock and the waiting.
//!
//! ```text
//!                        application
//!        inputs (bounded mpsc) │        ▲ on_event(ev) -> ControlFlow
//!                              ▼        │
//!                 ┌──────────────────────────────────┐
//!   datagram ────▶│ handle_datagram(now, from, data) │──▶ poll_transmit(now) ──▶ send_dgram
//!   deadline ────▶│ handle_timeout(now)              │──▶ poll_timeout()     ──▶ sleep_until
//!   input    ────▶│ handle_input(now, input)         │──▶ poll_event()       ──▶ on_event
//!                 └──────────────────────────────────┘
//!                     Core: no sockets, no clock
//! ```
//!
//! The loop in [`run`]:
//!
//! 1. send everything [`Core::poll_transmit`] has;
//! 2. hand everything [`Core::poll_event`] has to the application's callback, which may stop
//!    the run by returning [`ControlFlow::Break`];
//! 3. stop if [`Core::is_drained`];
//! 4. wait for whichever comes first: a datagram, the core's deadline
//!    ([`Core::poll_timeout`]), an input from the application, or cancellation; hand it to the
//!    core with the time it happened, and go back to 1.
//!
//! How a protocol uses it: write the core (`p2p/arq.rs`, `rtt/…`) against [`Core`], test it
//! two-party on a virtual clock with [`Pair`] (lossy links included, see
//! [`impair`](crate::net::impair)), and make its client a few lines: bind a `UdpSocket`,
//! spawn a task that feeds stdin lines into a bounded channel, call [`run`] with a callback
//! that prints events. Wrapping the socket in an
//! [`Impaired`](crate::net::impair::Impaired) makes the same client run over a lossy link.

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::net::NetError;
use crate::net::clock;
use crate::net::dgram::{DatagramSocket, Received};
use crate::net::impair::{ImpairConfig, ImpairStats, Impairment, is_icmp_error, sleep_until};

/// A datagram the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The whole datagram.
    pub data: Vec<u8>,
}

/// A timer-driven protocol state machine, in the shape of quinn-proto's `Connection`.
///
/// A core never touches a socket or the clock. Its inputs are the `handle_*` methods, each
/// told the time; its outputs are the `poll_*` methods. After any `handle_*` call, the
/// driver ([`run`] or [`Pair`]) calls [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event) until they return `None`, then
/// [`poll_timeout`](Self::poll_timeout) to learn when to wake it next. So a core only has to
/// queue what it wants to say; it is never asked to say it at an awkward moment.
pub trait Core {
    /// What the application hands the core (a line to send, a command).
    type Input;
    /// What the core tells the application (a message delivered, a peer gone, a sample).
    type Event;

    /// The largest datagram the protocol accepts. Bigger ones are dropped by the driver
    /// (counted in [`DriverStats::truncated`]) and never reach
    /// [`handle_datagram`](Self::handle_datagram).
    const MAX_DATAGRAM: usize = 65_535;

    /// Processes a datagram that arrived from `from` at `now`.
    ///
    /// The bytes are whatever the network delivered: the core must treat them as untrusted
    /// (check lengths, checksums, the sender) and must not panic on any input.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);

    /// Processes timer expiry. Call this after the time returned by
    /// [`poll_timeout`](Self::poll_timeout) has come; it may be called late, or when nothing
    /// is due, and must then do nothing harmful.
    fn handle_timeout(&mut self, now: Instant);

    /// Processes one input from the application. Only called while
    /// [`wants_input`](Self::wants_input) is true.
    fn handle_input(&mut self, now: Instant, input: Self::Input);

    /// The application will send no more input (its channel closed). A core that should end
    /// once its work is done starts finishing here and later reports
    /// [`is_drained`](Self::is_drained).
    fn handle_input_end(&mut self, now: Instant) {
        let _ = now;
    }

    /// The next datagram to send, if any. Call this after every `handle_*` call until it
    /// returns `None`.
    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit>;

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, or `None` if no
    /// timer is set. Call this after every `handle_*` call; the answer may change each time.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the application, if any. Call this after every `handle_*` call
    /// until it returns `None`.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Whether the core has room for another input. While it says no, the driver leaves
    /// inputs in their bounded channel, so a fast application is slowed down instead of
    /// filling memory (flow control). Defaults to always.
    fn wants_input(&self) -> bool {
        true
    }

    /// True once the core has nothing left to do, so the driver can return. Defaults to
    /// never (the run ends by cancellation or by the application).
    fn is_drained(&self) -> bool {
        false
    }
}

/// How a [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended<B> {
    /// The core reported [`Core::is_drained`].
    Drained,
    /// The application's callback returned `ControlFlow::Break(b)`.
    Stopped(B),
    /// The cancellation token fired.
    Cancelled,
}

/// What a [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams handed to the core.
    pub received: u64,
    /// Datagrams larger than [`Core::MAX_DATAGRAM`], dropped.
    pub truncated: u64,
    /// ICMP errors (port or host unreachable) reported by the socket about earlier sends,
    /// ignored.
    pub icmp_errors: u64,
    /// Sends that failed in a way the protocol should treat as a lost datagram (an ICMP
    /// error, a full buffer).
    pub send_failed: u64,
}

/// The result of a [`run`]: why it ended and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<B> {
    /// Why the run ended.
    pub ended: Ended<B>,
    /// Counters.
    pub stats: DriverStats,
}

/// Runs `core` over `sock` until the core is drained, `on_event` returns `Break`, or
/// `shutdown` fires.
///
/// - `inputs` feeds the core ([`Core::handle_input`]); when every sender is dropped the core
///   hears [`Core::handle_input_end`] once. Pass a receiver whose sender is already dropped
///   if there will be no inputs.
/// - `on_event` gets every event in order. It runs on the driver's task, so keep it quick
///   (print a line, push into a bounded channel with `try_send`).
/// - The socket may be a tokio `UdpSocket` (received through
///   [`recv_udp`](crate::net::dgram::recv_udp), which notices truncation) or a wrapper such as
///   [`Impaired`](crate::net::impair::Impaired).
///
/// The core stays with the caller, so its state (counters, what is still unacknowledged) can
/// be read after the run.
///
/// # Errors
///
/// A receive error other than an ICMP report, or a send error that is not a transient
/// network condition (for example a datagram too large for the socket): these are bugs or
/// local faults that retrying cannot fix.
pub async fn run<C, S, B>(
    core: &mut C,
    sock: &S,
    inputs: mpsc::Receiver<C::Input>,
    shutdown: &CancellationToken,
    on_event: impl FnMut(C::Event) -> ControlFlow<B>,
) -> Result<Outcome<B>, NetError>
where
    C: Core,
    S: DatagramSocket<Addr = SocketAddr>,
{
    run_with_idle(core, sock, inputs, shutdown, on_event, || {}).await
}

/// Most datagrams, and most inputs, taken in one turn of the loop after the one that woke it.
pub const BATCH: usize = 64;

/// [`run`], with `on_idle` called each time the driver has handed over every event and is
/// about to wait: the moment to flush output the callback buffered (one `write` for a burst
/// of messages instead of one each).
///
/// A datagram that wakes the driver is handled with up to [`BATCH`] more already waiting
/// ([`DatagramSocket::try_recv_dgram`]), and an input with up to [`BATCH`] more, before the
/// core is asked what to send: so a burst of DATA costs one wake-up and is answered by one
/// acknowledgement, as a core that sets an "ACK due" flag (rather than queuing one ACK per
/// datagram) makes it.
///
/// # Errors
///
/// As [`run`].
pub async fn run_with_idle<C, S, B>(
    core: &mut C,
    sock: &S,
    mut inputs: mpsc::Receiver<C::Input>,
    shutdown: &CancellationToken,
    mut on_event: impl FnMut(C::Event) -> ControlFlow<B>,
    mut on_idle: impl FnMut(),
) -> Result<Outcome<B>, NetError>
where
    C: Core,
    S: DatagramSocket<Addr = SocketAddr>,
{
    let mut stats = DriverStats::default();
    let mut buf = vec![0u8; C::MAX_DATAGRAM];
    let mut inputs_open = true;
    let outcome = |ended, stats| Ok(Outcome { ended, stats });
    loop {
        // 1. Say everything the core has to say. The same `now` for the whole batch: it is
        //    the time of the decision, and the core may stamp it into the datagrams.
        let now = clock::now();
        while let Some(t) = core.poll_transmit(now) {
            match sock.send_dgram(&t.data, &t.to).await {
                Ok(_) => stats.sent += 1,
                Err(e) if is_transient_send_error(&e) => {
                    // To the protocol this is a lost datagram; its timers will deal with it.
                    stats.send_failed += 1;
                    tracing::debug!("sending {} bytes to {} failed: {e}", t.data.len(), t.to);
                }
                Err(e) => {
                    return Err(NetError::from_io(
                        e,
                        t.to,
                        format!("sending a datagram to {}", t.to),
                    ));
                }
            }
        }
        // 2. Tell the application what happened.
        while let Some(ev) = core.poll_event() {
            if let ControlFlow::Break(b) = on_event(ev) {
                on_idle();
                return outcome(Ended::Stopped(b), stats);
            }
        }
        // 3. Done?
        if core.is_drained() {
            on_idle();
            return outcome(Ended::Drained, stats);
        }
        on_idle();
        // 4. Wait for the next thing to happen. Each branch reads the clock when it fires,
        //    not before the wait. `select!` polls the branches in random order, so a flood
        //    of datagrams cannot starve the timer or the application's inputs.
        let deadline = core.poll_timeout();
        let want_input = inputs_open && core.wants_input();
        tokio::select! {
            () = shutdown.cancelled() => return outcome(Ended::Cancelled, stats),
            () = sleep_until(deadline) => core.handle_timeout(clock::now()),
            got = sock.recv_dgram(&mut buf) => {
                received(core, &mut stats, got, &buf)?;
                // The others already waiting, with the same wake-up.
                for _ in 0..BATCH {
                    match sock.try_recv_dgram(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        got => received(core, &mut stats, got, &buf)?,
                    }
                }
            },
            input = inputs.recv(), if want_input => match input {
                Some(input) => {
                    core.handle_input(clock::now(), input);
                    for _ in 0..BATCH {
                        if !core.wants_input() {
                            break;
                        }
                        match inputs.try_recv() {
                            Ok(input) => core.handle_input(clock::now(), input),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                inputs_open = false;
                                core.handle_input_end(clock::now());
                                break;
                            }
                        }
                    }
                }
                None => {
                    inputs_open = false;
                    core.handle_input_end(clock::now());
                }
            },
        }
    }
}

/// Hands a received datagram to the core, or counts why not.
fn received<C: Core>(
    core: &mut C,
    stats: &mut DriverStats,
    got: io::Result<Received<SocketAddr>>,
    buf: &[u8],
) -> Result<(), NetError> {
    match got {
        Ok(got) if got.truncated() => {
            // The protocol has a size limit; a datagram above it is not one of ours (or is
            // an attack), and its cut-off head must not be parsed.
            stats.truncated += 1;
            tracing::warn!(
                "dropped a {}-byte datagram from {}: the limit is {} bytes",
                got.size,
                got.from,
                C::MAX_DATAGRAM
            );
        }
        Ok(got) => {
            stats.received += 1;
            core.handle_datagram(clock::now(), got.from, &buf[..got.copied]);
        }
        // An ICMP error about an earlier send (the peer's port was closed for a moment)
        // surfaces here on some systems; it concerns that old datagram, not this socket, and
        // the protocol's timers already cover the loss.
        Err(e) if is_icmp_error(&e) => {
            stats.icmp_errors += 1;
            tracing::debug!("ignored an ICMP error about an earlier datagram: {e}");
        }
        Err(e) => {
            return Err(NetError::Io {
                what: "receiving a datagram".into(),
                source: e,
            });
        }
    }
    Ok(())
}

/// Send errors that mean "this datagram is lost", not "this socket is broken".
fn is_transient_send_error(e: &io::Error) -> bool {
    is_icmp_error(e)
        || e.kind() == io::ErrorKind::WouldBlock
        || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// Most rounds [`Pair`] runs without its clock moving before it calls the cores stuck.
const MAX_ROUNDS_PER_INSTANT: u32 = 100_000;

/// Two cores joined by two lossy links, on a virtual clock: the two-party test harness
/// (quinn's `Pair`).
///
/// There are no sockets and no waiting: [`drive`](Self::drive) lets both cores talk until
/// nothing more happens at the current virtual time, then jumps the clock to the next
/// deadline (a core's timer or a link releasing a datagram), and so on. A run that would
/// take minutes over a real lossy network takes milliseconds, and with seeded links it is
/// the same every time.
///
/// Datagrams a core addresses to anyone but its peer are dropped and counted in
/// [`misdirected`](Self::misdirected); datagrams above the receiver's
/// [`Core::MAX_DATAGRAM`] are dropped as the driver would.
///
/// ```
/// # use std::net::SocketAddr;
/// # use std::time::Instant;
/// # use socklab::net::driver::{Core, Pair, Transmit};
/// /// A core that sends one greeting and reports what it hears.
/// struct Hello { peer: SocketAddr, greeting: Option<Vec<u8>>, heard: Vec<Vec<u8>> }
/// impl Core for Hello {
///     type Input = ();
///     type Event = Vec<u8>;
///     fn handle_datagram(&mut self, _: Instant, _: SocketAddr, data: &[u8]) {
///         self.heard.push(data.to_vec());
///     }
///     fn handle_timeout(&mut self, _: Instant) {}
///     fn handle_input(&mut self, _: Instant, _: ()) {}
///     fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
///         let data = self.greeting.take()?;
///         Some(Transmit { to: self.peer, data })
///     }
///     fn poll_timeout(&self) -> Option<Instant> { None }
///     fn poll_event(&mut self) -> Option<Vec<u8>> { self.heard.pop() }
/// }
///
/// let (a_addr, b_addr): (SocketAddr, SocketAddr) =
///     ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
/// let a = Hello { peer: b_addr, greeting: Some(b"hi b".to_vec()), heard: vec![] };
/// let b = Hello { peer: a_addr, greeting: Some(b"hi a".to_vec()), heard: vec![] };
/// let t0 = socklab::net::clock::now();
/// let mut pair = Pair::new(t0, (a, a_addr), (b, b_addr));
/// assert!(pair.drive(t0));
/// assert_eq!(pair.a_events, [b"hi a".to_vec()]);
/// assert_eq!(pair.b_events, [b"hi b".to_vec()]);
/// ```
#[derive(Debug)]
pub struct Pair<A: Core, B: Core> {
    /// The first core.
    pub a: A,
    /// The second core.
    pub b: B,
    /// The virtual time.
    pub now: Instant,
    /// Events from `a`, in order.
    pub a_events: Vec<A::Event>,
    /// Events from `b`, in order.
    pub b_events: Vec<B::Event>,
    /// Datagrams sent to an address other than the peer's, dropped.
    pub misdirected: u64,
    /// Datagrams above the receiver's size limit, dropped.
    pub oversized: u64,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    a_to_b: Impairment,
    b_to_a: Impairment,
}

impl<A: Core, B: Core> Pair<A, B> {
    /// Two cores at their addresses, joined by perfect links, with the clock at `now`.
    pub fn new(now: Instant, (a, a_addr): (A, SocketAddr), (b, b_addr): (B, SocketAddr)) -> Self {
        Self {
            a,
            b,
            now,
            a_events: Vec::new(),
            b_events: Vec::new(),
            misdirected: 0,
            oversized: 0,
            a_addr,
            b_addr,
            a_to_b: Impairment::new(ImpairConfig::default()),
            b_to_a: Impairment::new(ImpairConfig::default()),
        }
    }

    /// The same pair with lossy links: `a_to_b` impairs what `a` sends, `b_to_a` what `b`
    /// sends.
    pub fn with_links(mut self, a_to_b: ImpairConfig, b_to_a: ImpairConfig) -> Self {
        self.a_to_b = Impairment::new(a_to_b);
        self.b_to_a = Impairment::new(b_to_a);
        self
    }

    /// What the two links have done: (`a` to `b`, `b` to `a`).
    pub fn link_stats(&self) -> (ImpairStats, ImpairStats) {
        (self.a_to_b.stats(), self.b_to_a.stats())
    }

    /// One round at the current time: fire due timers, move transmits onto the links,
    /// deliver what the links release, collect events. Returns whether anything happened.
    pub fn step(&mut self) -> bool {
        let now = self.now;
        let mut busy = false;
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
            busy = true;
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
            busy = true;
        }
        while let Some(t) = self.a.poll_transmit(now) {
            busy = true;
            if t.to == self.b_addr {
                self.a_to_b.submit(now, t.data);
            } else {
                self.misdirected += 1;
            }
        }
        while let Some(t) = self.b.poll_transmit(now) {
            busy = true;
            if t.to == self.a_addr {
                self.b_to_a.submit(now, t.data);
            } else {
                self.misdirected += 1;
            }
        }
        while let Some(d) = self.a_to_b.poll_release(now) {
            busy = true;
            if d.len() > B::MAX_DATAGRAM {
                self.oversized += 1;
            } else {
                self.b.handle_datagram(now, self.a_addr, &d);
            }
        }
        while let Some(d) = self.b_to_a.poll_release(now) {
            busy = true;
            if d.len() > A::MAX_DATAGRAM {
                self.oversized += 1;
            } else {
                self.a.handle_datagram(now, self.b_addr, &d);
            }
        }
        while let Some(e) = self.a.poll_event() {
            busy = true;
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            busy = true;
            self.b_events.push(e);
        }
        busy
    }

    /// Runs both cores, moving the clock from deadline to deadline, until nothing is left to
    /// happen (returns true) or the next deadline is after `until` (the clock stops at
    /// `until`; returns false).
    ///
    /// # Panics
    ///
    /// If the cores keep exchanging datagrams or firing timers without time passing (a core
    /// whose deadline stays in the past after `handle_timeout`, or two cores answering each
    /// other forever at once).
    pub fn drive(&mut self, until: Instant) -> bool {
        loop {
            let mut rounds = 0;
            while self.step() {
                rounds += 1;
                assert!(
                    rounds < MAX_ROUNDS_PER_INSTANT,
                    "the cores made {rounds} rounds without time passing"
                );
            }
            let next = [
                self.a.poll_timeout(),
                self.b.poll_timeout(),
                self.a_to_b.poll_timeout(),
                self.b_to_a.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                None => return true,
                Some(t) if t > until => {
                    self.now = self.now.max(until);
                    return false;
                }
                Some(t) => self.now = self.now.max(t),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::net::UdpSocket;

    use crate::net::dgram::Received;
    use crate::net::impair::{Impaired, Probability};

    const DATA: u8 = 0;
    const ACK: u8 = 1;

    /// A toy stop-and-wait ARQ: one message in flight, retransmitted every `rto` until its
    /// ACK comes back. Both directions in one core: `[kind, seq (4 bytes BE), payload]`.
    #[derive(Debug)]
    struct Ping {
        peer: SocketAddr,
        rto: Duration,
        /// Messages not yet acknowledged; the front one is in flight.
        queue: VecDeque<Vec<u8>>,
        /// Sequence number of the front of `queue`.
        seq: u32,
        /// The front needs (re)sending.
        resend: bool,
        deadline: Option<Instant>,
        /// Next sequence number to deliver.
        expected: u32,
        acks: VecDeque<u32>,
        delivered: VecDeque<Vec<u8>>,
        input_ended: bool,
        /// Whether to report drained when all is acknowledged and input has ended (the
        /// sender), or to keep answering until cancelled (the receiver).
        finish: bool,
        retransmits: u64,
        garbage: u64,
    }

    impl Ping {
        fn new(peer: SocketAddr, rto: Duration, finish: bool) -> Self {
            Self {
                peer,
                rto,
                queue: VecDeque::new(),
                seq: 0,
                resend: false,
                deadline: None,
                expected: 0,
                acks: VecDeque::new(),
                delivered: VecDeque::new(),
                input_ended: false,
                finish,
                retransmits: 0,
                garbage: 0,
            }
        }

        fn frame(kind: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
            let mut d = vec![kind];
            d.extend_from_slice(&seq.to_be_bytes());
            d.extend_from_slice(payload);
            d
        }
    }

    impl Core for Ping {
        type Input = Vec<u8>;
        type Event = Vec<u8>;

        const MAX_DATAGRAM: usize = 512;

        fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, data: &[u8]) {
            if from != self.peer || data.len() < 5 {
                self.garbage += 1;
                return;
            }
            let seq = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
            match data[0] {
                DATA => {
                    if seq == self.expected {
                        self.delivered.push_back(data[5..].to_vec());
                        self.expected += 1;
                    }
                    // Acknowledge anything already delivered, so a lost ACK is repaired
                    // by the retransmission it causes.
                    if seq < self.expected {
                        self.acks.push_back(seq);
                    }
                }
                ACK if seq == self.seq && !self.queue.is_empty() => {
                    self.queue.pop_front();
                    self.seq += 1;
                    self.deadline = None;
                    self.resend = !self.queue.is_empty();
                }
                ACK => {} // a duplicate ACK
                _ => self.garbage += 1,
            }
        }

        fn handle_timeout(&mut self, now: Instant) {
            if self.deadline.is_some_and(|t| t <= now) {
                self.deadline = None;
                self.resend = true;
                self.retransmits += 1;
            }
        }

        fn handle_input(&mut self, _now: Instant, input: Vec<u8>) {
            self.queue.push_back(input);
            if self.queue.len() == 1 {
                self.resend = true;
            }
        }

        fn handle_input_end(&mut self, _now: Instant) {
            self.input_ended = true;
        }

        fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
            let data = if let Some(seq) = self.acks.pop_front() {
                Self::frame(ACK, seq, &[])
            } else if self.resend {
                self.resend = false;
                self.deadline = Some(now + self.rto);
                Self::frame(DATA, self.seq, self.queue.front()?)
            } else {
                return None;
            };
            Some(Transmit {
                to: self.peer,
                data,
            })
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }

        fn poll_event(&mut self) -> Option<Vec<u8>> {
            self.delivered.pop_front()
        }

        fn wants_input(&self) -> bool {
            self.queue.len() < 4
        }

        fn is_drained(&self) -> bool {
            self.finish && self.input_ended && self.queue.is_empty()
        }
    }

    fn message(i: usize) -> Vec<u8> {
        format!("message {i}").into_bytes()
    }

    fn lossy(loss: f64, seed: u64) -> ImpairConfig {
        ImpairConfig {
            loss: Probability::new(loss).unwrap(),
            seed,
            ..ImpairConfig::default()
        }
    }

    /// Two drivers over real loopback sockets, each dropping 30% of what it sends: the toy
    /// ARQ still delivers every message, in order, and the sender finishes.
    #[tokio::test]
    async fn arq_over_loopback_with_30_percent_loss() {
        const N: usize = 40;
        let a_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a_sock.local_addr().unwrap(), b_sock.local_addr().unwrap());
        let a_sock = Impaired::new(a_sock, lossy(0.3, 1), ImpairConfig::default());
        let b_sock = Impaired::new(b_sock, lossy(0.3, 2), ImpairConfig::default());
        let mut a = Ping::new(b_addr, Duration::from_millis(5), true);
        let mut b = Ping::new(a_addr, Duration::from_millis(5), false);

        // Inputs through a channel smaller than N: the core's flow control and the bounded
        // channel pace the feeder.
        let (a_in, a_inputs) = mpsc::channel(2);
        let feeder = tokio::spawn(async move {
            for i in 0..N {
                a_in.send(message(i)).await.unwrap();
            }
        });
        let (_, b_inputs) = mpsc::channel::<Vec<u8>>(1);
        let (a_stop, b_stop) = (CancellationToken::new(), CancellationToken::new());
        let mut got = Vec::new();
        let both = async {
            tokio::join!(
                async {
                    let r = run(&mut a, &a_sock, a_inputs, &a_stop, |_| {
                        ControlFlow::<()>::Continue(())
                    })
                    .await;
                    // The receiver stays until the sender has its last ACK.
                    b_stop.cancel();
                    r
                },
                run(&mut b, &b_sock, b_inputs, &b_stop, |m| {
                    got.push(m);
                    ControlFlow::<()>::Continue(())
                }),
            )
        };
        let (ra, rb) = tokio::time::timeout(Duration::from_secs(60), both)
            .await
            .expect("the transfer did not finish");
        feeder.await.unwrap();
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.ended, Ended::Drained);
        assert_eq!(rb.ended, Ended::Cancelled);
        assert_eq!(got, (0..N).map(message).collect::<Vec<_>>());
        assert!(a.retransmits > 0, "30% loss and not one retransmission?");
        assert!(a_sock.stats().outgoing.dropped > 0);
        assert!(b_sock.stats().outgoing.dropped > 0);
        assert_eq!(a.garbage + b.garbage, 0);
        assert!(ra.stats.sent >= N as u64 && rb.stats.received >= N as u64);
    }

    /// The same protocol on a virtual clock, over links that lose, duplicate, reorder,
    /// delay and jitter: all messages arrive in order, and a second run with the same seeds
    /// is identical to the first.
    #[test]
    fn arq_on_a_virtual_clock_over_a_bad_link() {
        const N: usize = 200;
        let bad = |seed| ImpairConfig {
            loss: Probability::percent(30.0).unwrap(),
            duplicate: Probability::percent(5.0).unwrap(),
            reorder: Probability::percent(10.0).unwrap(),
            reorder_delay: Duration::from_millis(15),
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            seed,
            ..ImpairConfig::default()
        };
        let t0 = clock::now();
        let once = || {
            let (a_addr, b_addr) = (
                "10.0.0.1:1000".parse().unwrap(),
                "10.0.0.2:2000".parse().unwrap(),
            );
            let rto = Duration::from_millis(60);
            let mut pair = Pair::new(
                t0,
                (Ping::new(b_addr, rto, true), a_addr),
                (Ping::new(a_addr, rto, false), b_addr),
            )
            .with_links(bad(5), bad(6));
            for i in 0..N {
                pair.a.handle_input(pair.now, message(i));
            }
            pair.a.handle_input_end(pair.now);
            assert!(pair.drive(t0 + Duration::from_secs(3600)));
            assert!(pair.a.is_drained());
            pair
        };
        let p = once();
        assert_eq!(p.b_events, (0..N).map(message).collect::<Vec<_>>());
        assert!(p.a_events.is_empty());
        let (ab, ba) = p.link_stats();
        assert!(ab.dropped > 0 && ab.duplicated > 0 && ab.reordered > 0);
        assert!(ba.dropped > 0);
        assert_eq!(p.misdirected + p.oversized, 0);
        // At least one link delay per message and per ACK.
        assert!(p.now - t0 >= Duration::from_millis(30) * N as u32);
        let q = once();
        assert_eq!((q.now, q.link_stats()), (p.now, p.link_stats()));
        assert_eq!(q.a.retransmits, p.a.retransmits);
    }

    #[test]
    #[should_panic(expected = "without time passing")]
    fn a_core_whose_timer_stays_in_the_past_is_caught() {
        /// Its deadline never moves, so `handle_timeout` is due forever.
        struct Stuck(Instant);
        impl Core for Stuck {
            type Input = ();
            type Event = ();
            fn handle_datagram(&mut self, _: Instant, _: SocketAddr, _: &[u8]) {}
            fn handle_timeout(&mut self, _: Instant) {}
            fn handle_input(&mut self, _: Instant, _: ()) {}
            fn poll_transmit(&mut self, _: Instant) -> Option<Transmit> {
                None
            }
            fn poll_timeout(&self) -> Option<Instant> {
                Some(self.0)
            }
            fn poll_event(&mut self) -> Option<()> {
                None
            }
        }
        let t0 = clock::now();
        let addr: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut pair = Pair::new(t0, (Stuck(t0), addr), (Stuck(t0), addr));
        pair.drive(t0);
    }

    /// One scripted receive: a datagram and its sender, or an error.
    type ScriptedRecv = io::Result<(SocketAddr, Vec<u8>)>;

    /// A socket that returns scripted receive results, then waits forever; it records sends.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<ScriptedRecv>>,
        sent: Mutex<Vec<(SocketAddr, Vec<u8>)>>,
    }

    impl DatagramSocket for Scripted {
        type Addr = SocketAddr;

        async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<SocketAddr>> {
            let next = self.script.lock().unwrap().pop_front();
            let Some(next) = next else {
                return std::future::pending().await;
            };
            let (from, data) = next?;
            let copied = data.len().min(buf.len());
            buf[..copied].copy_from_slice(&data[..copied]);
            Ok(Received {
                copied,
                size: data.len(),
                from,
            })
        }

        async fn send_dgram(&self, data: &[u8], to: &SocketAddr) -> io::Result<usize> {
            self.sent.lock().unwrap().push((*to, data.to_vec()));
            Ok(data.len())
        }

        fn ip_of(addr: &SocketAddr) -> Option<std::net::IpAddr> {
            Some(addr.ip())
        }

        fn can_reply(_: &SocketAddr) -> bool {
            true
        }

        fn socket_addr_of(addr: &SocketAddr) -> Option<SocketAddr> {
            Some(*addr)
        }
    }

    /// ICMP errors are skipped, oversized datagrams dropped before the core sees them, and
    /// the callback's `Break` ends the run with its value.
    #[tokio::test]
    async fn refused_and_oversized_datagrams_do_not_reach_the_core() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let sock = Scripted::default();
        sock.script.lock().unwrap().extend([
            Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
            Ok((peer, Ping::frame(DATA, 0, &[7; 600]))),
            Ok((peer, Ping::frame(DATA, 0, b"fits"))),
        ]);
        let mut core = Ping::new(peer, Duration::from_secs(1), false);
        let (_, inputs) = mpsc::channel(1);
        let out = run(&mut core, &sock, inputs, &CancellationToken::new(), |m| {
            ControlFlow::Break(m)
        })
        .await
        .unwrap();
        assert_eq!(out.ended, Ended::Stopped(b"fits".to_vec()));
        assert_eq!(
            out.stats,
            DriverStats {
                sent: 1,
                received: 1,
                truncated: 1,
                icmp_errors: 1,
                send_failed: 0,
            }
        );
        // The ACK went out before the event was handed over.
        assert_eq!(
            *sock.sent.lock().unwrap(),
            [(peer, Ping::frame(ACK, 0, &[]))]
        );
        assert_eq!(core.garbage, 0);
    }

    #[tokio::test]
    async fn cancellation_ends_an_idle_run() {
        let sock = Scripted::default();
        let mut core = Ping::new(
            "127.0.0.1:9".parse().unwrap(),
            Duration::from_secs(1),
            false,
        );
        let (_keep, inputs) = mpsc::channel(1);
        let stop = CancellationToken::new();
        stop.cancel();
        let out = run(&mut core, &sock, inputs, &stop, |_| {
            ControlFlow::<()>::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(out.ended, Ended::Cancelled);
        assert!(!core.input_ended, "the input channel is still open");
    }
}
