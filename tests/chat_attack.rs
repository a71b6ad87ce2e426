//! Adversarial tests for `socklab chat serve`: a client that never reads while twenty others
//! chat for half a minute, a flood of 10,000 lines, a megabyte without a newline, a header frame
//! that claims 4 GB, fifty clients racing for one nickname, and messages at the size limit.
//!
//! Each test runs the real binary on port 0 and talks to it over loopback with plain
//! `std::net::TcpStream`s and std threads. Time bounds are generous (tens to hundreds of times
//! what an idle machine needs), so they hold on a loaded 2-core CI machine while still failing
//! when the server stalls.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use socklab::chat::proto::{Flood, MAX_TEXT};
use socklab::chat::server::READ_MAX;

use crate::support::Server;

/// The refusal a flooding client gets for each line over its budget (`proto.rs`).
const FLOOD_REFUSAL: &str =
    "!!! flood control: too many messages; wait a moment (this one was not sent)";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Microseconds since the first call: the send time the chatters carry in their text (every
/// client is in this process, so one monotonic clock serves them all).
fn micros() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Reads `\n`-ended lines from a socket before a deadline. A partial line is kept across read
/// timeouts, so no byte is lost when a timeout falls in the middle of a line.
struct Lines {
    r: BufReader<TcpStream>,
    partial: Vec<u8>,
    /// The stream ended (end of stream or an error such as a reset).
    ended: Option<String>,
}

impl Lines {
    fn new(s: TcpStream) -> Lines {
        Lines {
            r: BufReader::with_capacity(64 * 1024, s),
            partial: Vec::new(),
            ended: None,
        }
    }

    /// The next line without its `\n`, or `None` at the deadline or once the stream ended.
    fn next_before(&mut self, deadline: Instant) -> Option<String> {
        while self.ended.is_none() {
            if self.r.buffer().is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                let _ = self
                    .r
                    .get_ref()
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            }
            match self.r.read_until(b'\n', &mut self.partial) {
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.pop();
                    return Some(String::from_utf8_lossy(&line).into_owned());
                }
                Ok(_) => self.ended = Some("end of stream".into()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => self.ended = Some(e.to_string()),
            }
        }
        None
    }

    /// Lines up to and including the first that contains `needle`; panics after `limit`.
    #[track_caller]
    fn until(&mut self, needle: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(line) = self.next_before(deadline) {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
        panic!(
            "never got {needle:?} within {limit:?} ({}); got:\n{}",
            self.ended.as_deref().unwrap_or("still open"),
            seen.join("\n")
        );
    }
}

/// A line client: a socket to write on and its lines to read.
struct Client {
    w: TcpStream,
    lines: Lines,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        w.set_nodelay(true).unwrap();
        let lines = Lines::new(w.try_clone().unwrap());
        Client { w, lines }
    }

    fn say(&mut self, text: &str) {
        self.w.write_all(format!("{text}\n").as_bytes()).unwrap();
    }
}

/// Connects and registers `nick` (waits for the welcome).
fn join(addr: &str, nick: &str) -> Client {
    let mut c = Client::connect(addr);
    c.say(nick);
    c.lines
        .until(&format!("welcome, {nick}:"), Duration::from_secs(10));
    c
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmData`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
}

/// A barrier that gives up: [`Latch::wait`] panics when the others do not all arrive within its
/// limit, where a std `Barrier` would hang the test for ever after one thread's panic.
struct Latch {
    n: usize,
    arrived: Mutex<usize>,
    all: Condvar,
}

impl Latch {
    fn new(n: usize) -> Latch {
        Latch {
            n,
            arrived: Mutex::new(0),
            all: Condvar::new(),
        }
    }

    fn wait(&self, limit: Duration) {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        if *arrived >= self.n {
            self.all.notify_all();
            return;
        }
        let (arrived, _) = self
            .all
            .wait_timeout_while(arrived, limit, |a| *a < self.n)
            .unwrap();
        assert!(
            *arrived >= self.n,
            "only {} of {} threads arrived within {limit:?}",
            *arrived,
            self.n
        );
    }
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// The `q`-quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One header frame (PROTOCOLS.md §3.3) around `payload`.
fn header_frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut head = header_only(id, payload.len() as u32, crc32fast::hash(payload));
    head.extend_from_slice(payload);
    head
}

/// A 24-byte header that claims `length` bytes of payload.
fn header_only(id: u32, length: u32, crc: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(24);
    f.extend_from_slice(b"SL\x01\x00");
    f.extend_from_slice(&length.to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&1_700_000_000_000_000u64.to_be_bytes());
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

/// A client of a `--framing header` server.
struct HeaderClient {
    s: TcpStream,
    id: u32,
}

impl HeaderClient {
    fn connect(addr: &str) -> HeaderClient {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        HeaderClient { s, id: 0 }
    }

    fn join(addr: &str, nick: &str) -> HeaderClient {
        let mut c = HeaderClient::connect(addr);
        c.send(nick.as_bytes());
        c.until(&format!("welcome, {nick}:"));
        c
    }

    fn send(&mut self, payload: &[u8]) {
        self.id += 1;
        self.s.write_all(&header_frame(self.id, payload)).unwrap();
    }

    /// The next frame's payload as text; `Ok(None)` at a clean end of stream.
    fn frame(&mut self) -> io::Result<Option<String>> {
        let mut head = [0u8; 24];
        if self.s.read(&mut head[..1])? == 0 {
            return Ok(None);
        }
        self.s.read_exact(&mut head[1..])?;
        assert_eq!(&head[..4], b"SL\x01\x00", "a header frame from the server");
        let len = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(head[20..24].try_into().unwrap());
        assert!(len <= 64 * 1024, "the server framed {len} bytes");
        let mut payload = vec![0u8; len];
        self.s.read_exact(&mut payload)?;
        assert_eq!(crc32fast::hash(&payload), crc, "the server's CRC");
        Ok(Some(
            String::from_utf8(payload).expect("UTF-8 from the server"),
        ))
    }

    /// Frames up to and including the first that contains `needle`.
    #[track_caller]
    fn until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.frame() {
                Ok(Some(text)) => {
                    let found = text.contains(needle);
                    seen.push(text);
                    if found {
                        return seen;
                    }
                }
                end => panic!("never got {needle:?} ({end:?}); got:\n{}", seen.join("\n")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A client that never reads, while twenty others chat

/// How long the chatters talk. The issue asks for 30 s of steady traffic: long enough for the
/// silent client's socket buffers and queue to fill, and for any per-message leak to show in
/// the server's RSS. The whole test takes about 31 s.
const CHAT_FOR: Duration = Duration::from_secs(30);
/// Clients chatting at once.
const CHATTERS: usize = 20;
/// Messages per second from each chatter.
const PER_SECOND: u32 = 10;
/// Bytes of padding in each chat line. 6,000 lines of about 1 KiB carry 6 MiB to the client
/// that never reads: more than the kernel buffers for it (on loopback the server's send buffer
/// grows to `tcp_wmem`'s maximum, 4 MiB by default), so the server's own queue for it fills.
/// Short lines (300 KB in all) would sit in the kernel and test nothing of the server.
const PAD: usize = 1000;

#[test]
fn a_client_that_never_reads_slows_no_one_while_twenty_chat_for_30_s() {
    // Flood control stays on, at a rate that admits 10/s with room for a late thread's catch-up.
    let srv = Server::start(&["chat", "serve", "-p", "0", "--flood", "20/100"]);
    let mut chatters: Vec<Client> = (0..CHATTERS)
        .map(|i| join(&srv.addr, &format!("c{i}")))
        .collect();

    // The sloth: a 4 KiB receive buffer; it registers and never calls recv.
    let sloth = {
        let to: SocketAddr = srv.addr.parse().unwrap();
        let s = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&to.into()).unwrap();
        let mut s: TcpStream = s.into();
        s.write_all(b"sloth\n").unwrap();
        s
    };
    chatters[0]
        .lines
        .until("sloth joined #general", Duration::from_secs(10));

    let period = Duration::from_secs(1) / PER_SECOND;
    let per_sender = (CHAT_FOR.as_millis() / period.as_millis()) as usize;
    let expected = (CHATTERS - 1) * per_sender;
    let rss_before = proc_kb(srv.pid(), "VmRSS");
    let started = Instant::now();
    let start = started + Duration::from_millis(200);
    let start_us = micros() + 200_000;
    let read_deadline = start + CHAT_FOR + Duration::from_secs(15);

    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (i, c) in chatters.into_iter().enumerate() {
        let Client { mut w, mut lines } = c;
        writers.push(thread::spawn(move || {
            let pad = "p".repeat(PAD);
            // Staggered so that the twenty do not all write in the same millisecond.
            let offset = period * i as u32 / CHATTERS as u32;
            for k in 0..per_sender {
                sleep_until(start + offset + period * k as u32);
                w.write_all(format!("m {i} {k} {} {pad}\n", micros()).as_bytes())
                    .unwrap_or_else(|e| panic!("c{i} message {k}: {e}"));
            }
            w
        }));
        readers.push(thread::spawn(move || {
            let mut heard: HashSet<(usize, usize)> = HashSet::new();
            let mut dup = 0;
            let mut own = 0;
            let mut misattributed = Vec::new();
            let mut latencies = Vec::with_capacity(expected);
            let mut sloth_left = None;
            while heard.len() < expected {
                let Some(line) = lines.next_before(read_deadline) else {
                    break;
                };
                let now = micros();
                let Some((head, rest)) = line.split_once("> m ") else {
                    if line.contains("-!- sloth left") {
                        sloth_left = Some((line, now));
                    }
                    continue;
                };
                let f: Vec<&str> = rest.split(' ').collect();
                let [from, k, t, pad] = f[..] else {
                    misattributed.push(line.clone());
                    continue;
                };
                let (from, k, t): (usize, usize, u64) = (
                    from.parse().unwrap(),
                    k.parse().unwrap(),
                    t.parse().unwrap(),
                );
                if !head.ends_with(&format!("#general <c{from}"))
                    || head.contains("(history)")
                    || pad.len() != PAD
                {
                    misattributed.push(line.clone());
                }
                if from == i {
                    own += 1;
                }
                if !heard.insert((from, k)) {
                    dup += 1;
                }
                latencies.push(now.saturating_sub(t));
            }
            let heard = heard.len();
            (
                i,
                heard,
                dup,
                own,
                misattributed,
                latencies,
                sloth_left,
                lines,
            )
        }));
    }

    // The server's memory, sampled while they talk.
    let mut rss_max = rss_before;
    while writers.iter().any(|w| !w.is_finished()) {
        rss_max = rss_max.max(proc_kb(srv.pid(), "VmRSS"));
        thread::sleep(Duration::from_millis(250));
    }
    let sockets: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let mut all = Vec::new();
    let mut first_lines = None;
    let mut sloth_left = Vec::new();
    for r in readers {
        let (i, heard, dup, own, misattributed, latencies, left, lines) = r.join().unwrap();
        sloth_left.extend(left);
        assert_eq!(
            (heard, dup, own),
            (expected, 0, 0),
            "c{i}: (distinct messages heard, duplicates, its own) of {expected} from the others \
             ({})",
            lines.ended.as_deref().unwrap_or("still open")
        );
        assert!(misattributed.is_empty(), "c{i}: {misattributed:?}");
        all.extend(latencies);
        if i == 0 {
            first_lines = Some(lines);
        }
    }
    rss_max = rss_max.max(proc_kb(srv.pid(), "VmRSS"));
    all.sort_unstable();
    let (p50, p99, max) = (
        quantile(&all, 0.5),
        quantile(&all, 0.99),
        all[all.len() - 1],
    );
    let sent_to_sloth = CHATTERS * per_sender * (PAD + 60);
    eprintln!(
        "{} deliveries in {:?}; latency p50 {p50} µs, p99 {p99} µs, max {max} µs; server RSS \
         {rss_before} kB before, {rss_max} kB at most; {sent_to_sloth} bytes for the sloth; it \
         left: {:?}",
        all.len(),
        started.elapsed(),
        sloth_left
            .first()
            .map(|(l, t)| (l, Duration::from_micros(t.saturating_sub(start_us)))),
    );
    assert_eq!(all.len(), CHATTERS * expected);
    assert!(
        p99 < 250_000,
        "p99 latency {p99} µs (p50 {p50}, max {max}) with a client that never reads"
    );
    assert!(
        rss_max.saturating_sub(rss_before) < 64 * 1024,
        "server RSS grew from {rss_before} kB to {rss_max} kB"
    );
    // The run did reach the server's own queue for the sloth (it did not all sit in the kernel),
    // and the sloth went the documented way: dropped as a slow consumer, every chatter told.
    let kernel_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    // The server's --sendq (default 256 KiB) on top of the kernel's buffers, with a margin.
    if sent_to_sloth > kernel_max + socklab::chat::server::DEFAULT_SENDQ + (1 << 20) {
        assert_eq!(sloth_left.len(), CHATTERS, "told: {sloth_left:?}");
        assert!(
            sloth_left.iter().all(|(l, _)| l.contains("slow consumer")),
            "{sloth_left:?}"
        );
    } else {
        eprintln!("tcp_wmem allows {kernel_max} bytes: the sloth's queue may never fill");
    }

    // Still serving: a newcomer joins and is heard.
    let mut late = join(&srv.addr, "late");
    late.say("late hello");
    let mut c0 = first_lines.unwrap();
    c0.until("<late> late hello", Duration::from_secs(10));
    drop((sloth, sockets));
}

// ---------------------------------------------------------------------------------------------
// 2. A flood

/// Lines the flooder sends, as fast as it can.
const FLOOD_LINES: usize = 10_000;

#[test]
fn a_flood_is_held_to_its_budget_told_so_and_others_still_get_through() {
    flood(|i| format!("flood {i:05} as fast as it can go"));
}

/// The same flood in the shortest lines: a 4-8 KiB read then holds more than 512 of them, and
/// each refused line queues a refusal for the flooder itself.
#[test]
fn a_flood_of_short_lines_is_refused_line_by_line_not_dropped_as_a_slow_consumer() {
    flood(|i| format!("f{i}"));
}

/// One client sends [`FLOOD_LINES`] lines (`line(i)`) in one write with the default flood
/// control (5/s, bursts of 10), reading its replies all the while; a well-behaved client talks
/// between parts of the flood. Each line must be delivered to the room or refused to its sender,
/// exactly once; no more get through than the bucket allows; the good client's lines arrive
/// promptly; the flooder stays connected.
fn flood(line: fn(usize) -> String) {
    const GOOD: usize = 5;
    let Flood { rate, burst } = Flood::DEFAULT;
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let watcher = join(&srv.addr, "watcher");
    let mut good = join(&srv.addr, "good");
    // The flooder's bucket is full (burst) from its connection on: the budget counts from here.
    let t0 = Instant::now();
    let flooder = join(&srv.addr, "flooder");
    good.lines
        .until("flooder joined #general", Duration::from_secs(10));

    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));

    // The flooder reads as it writes (10,000 refusals are about 1 MB), counting refusals, until
    // its pong.
    let Client {
        w: mut fw,
        lines: mut flines,
    } = flooder;
    let freader = {
        let refused = refused.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut other = Vec::new();
            while let Some(l) = flines.next_before(deadline) {
                if l.ends_with(FLOOD_REFUSAL) {
                    refused.fetch_add(1, Ordering::SeqCst);
                } else if l.ends_with("-!- pong") {
                    return (true, other, None);
                } else {
                    other.push(l);
                }
            }
            (false, other, flines.ended)
        })
    };

    // The watcher counts the flooder's lines that reach it and times the good client's.
    let wreader = {
        let (accepted, refused) = (accepted.clone(), refused.clone());
        let Client { lines: mut wl, .. } = watcher;
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seqs = Vec::new();
            // (latency in µs, refusals the flooder had received when it arrived)
            let mut good = Vec::new();
            while let Some(l) = wl.next_before(deadline) {
                if let Some(text) = l.split_once("<flooder> ").map(|x| x.1) {
                    let seq = (0..FLOOD_LINES).find(|&i| line(i) == text);
                    seqs.push(seq.unwrap_or_else(|| panic!("not a line it sent: {l:?}")));
                    accepted.fetch_add(1, Ordering::SeqCst);
                } else if l.contains("<good> good done") {
                    return (seqs, good, None);
                } else if let Some(rest) = l.split_once("<good> good ").map(|x| x.1) {
                    let t: u64 = rest.split(' ').nth(1).unwrap().parse().unwrap();
                    good.push((micros().saturating_sub(t), refused.load(Ordering::SeqCst)));
                }
            }
            (seqs, good, wl.ended)
        })
    };

    // The flood, in one write per fifth, the good client saying one line after each fifth
    // (within its own budget of 10 at once).
    let text: Vec<String> = (0..FLOOD_LINES).map(|i| format!("{}\n", line(i))).collect();
    for (k, part) in text.chunks(FLOOD_LINES / GOOD).enumerate() {
        fw.write_all(part.concat().as_bytes()).unwrap();
        good.say(&format!("good {k} {}", micros()));
    }

    // Every line is answered one way or the other: delivered to the room or refused to its
    // sender. Wait until all of them are accounted for (or the flooder's connection ends).
    let deadline = Instant::now() + Duration::from_secs(30);
    let counted = loop {
        let n = accepted.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst);
        if n >= FLOOD_LINES || freader.is_finished() || Instant::now() > deadline {
            break n;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = t0.elapsed().as_secs_f64();
    if counted < FLOOD_LINES {
        let (_, other, ended) = freader.join().unwrap();
        panic!(
            "after {elapsed:.1} s only {counted} of {FLOOD_LINES} lines were delivered ({}) or \
             refused ({}); the flooder's connection: {ended:?}; it got besides: {other:?}; the \
             server's log:\n{}",
            accepted.load(Ordering::SeqCst),
            refused.load(Ordering::SeqCst),
            srv.stderr()
        );
    }
    good.say("good done");
    let (seqs, good_seen, wended) = wreader.join().unwrap();

    // The flooder is still connected and may talk again once its bucket has refilled.
    thread::sleep(Duration::from_secs_f64(2.0 / rate));
    fw.write_all(b"/ping\n").unwrap();
    let (pong, other, fended) = freader.join().unwrap();
    assert!(
        pong,
        "the flooder got no pong ({fended:?}); besides refusals it got: {other:?}"
    );

    let accepted = accepted.load(Ordering::SeqCst);
    let refused = refused.load(Ordering::SeqCst);
    let bound = burst + rate * elapsed + 3.0;
    eprintln!(
        "flood: {accepted} delivered, {refused} refused in {elapsed:.2} s (bound {bound:.1}); \
         good lines (latency µs, flooder refusals by then): {good_seen:?}"
    );
    assert!(
        wended.is_none(),
        "the watcher's connection ended: {wended:?}"
    );
    assert_eq!(seqs.len(), accepted);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "each delivered once, in order: {seqs:?}"
    );
    assert_eq!(
        accepted + refused,
        FLOOD_LINES,
        "each line delivered or refused once"
    );
    assert!(
        accepted >= burst as usize && (accepted as f64) <= bound,
        "{accepted} flooder lines delivered in {elapsed:.2} s: the bucket allows {burst} + \
         {rate}/s (at most {bound:.1})"
    );
    assert_eq!(
        seqs.first(),
        Some(&0),
        "the burst starts with the first line"
    );
    assert!(
        refused > 0,
        "the flooder was never told about flood control"
    );
    assert_eq!(
        good_seen.len(),
        GOOD,
        "the good client's lines: {good_seen:?}"
    );
    let worst = good_seen.iter().map(|g| g.0).max().unwrap_or(0);
    assert!(
        worst < 1_000_000,
        "a good client's line took {worst} µs to arrive during the flood: {good_seen:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A megabyte without a newline; a header frame that claims 4 GB

#[test]
fn a_megabyte_without_a_newline_is_refused_and_the_connection_goes_on() {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut watcher = join(&srv.addr, "watcher");
    let big = join(&srv.addr, "big");
    watcher
        .lines
        .until("big joined #general", Duration::from_secs(10));
    let rss_before = proc_kb(srv.pid(), "VmRSS");

    let Client {
        w: mut bw,
        lines: mut bl,
    } = big;
    // Its replies are read while it writes, up to its pong.
    let breader = thread::spawn(move || {
        let got = bl.until("-!- pong", Duration::from_secs(30));
        (got, bl)
    });
    let mut megabyte = b"MEGA".repeat(256 * 1024);
    megabyte.extend_from_slice(b"\nhello after\n/ping\n");
    bw.write_all(&megabyte).unwrap();
    let (got, mut bl) = breader.join().unwrap();
    let refusal = format!("message of more than {READ_MAX} bytes refused: the limit is {MAX_TEXT}");
    let refusals = got.iter().filter(|l| l.contains(&refusal)).count();
    assert_eq!(
        refusals, 1,
        "one refusal ({refusal:?}) for the megabyte: {got:?}"
    );
    let rss_after = proc_kb(srv.pid(), "VmRSS");

    // The watcher hears "hello after" and no fragment of the megabyte, before or after it.
    bw.write_all(b"still here\n").unwrap();
    let seen = watcher
        .lines
        .until("<big> still here", Duration::from_secs(10));
    let from_big: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.split_once("#general <big> ").map(|x| x.1))
        .collect();
    assert_eq!(from_big, ["hello after", "still here"], "{seen:?}");
    let bytes: usize = seen.iter().map(|l| l.len() + 1).sum();
    assert!(
        seen.iter().all(|l| !l.contains("MEGA")) && bytes < 1024,
        "the watcher got {bytes} bytes: {seen:?}"
    );
    // The sender heard nothing of its own megabyte either, and still gets answers.
    bw.write_all(b"/ping\n").unwrap();
    let more = bl.until("-!- pong", Duration::from_secs(10));
    assert!(
        got.iter().chain(&more).all(|l| !l.contains("MEGA")),
        "{got:?} {more:?}"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 16 * 1024,
        "server RSS {rss_before} kB before the megabyte, {rss_after} kB after"
    );
}

#[test]
fn a_header_frame_claiming_4_gb_is_refused_with_a_message_and_closed() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "header"]);
    let mut watcher = HeaderClient::join(&srv.addr, "watcher");
    let mut attacker = HeaderClient::join(&srv.addr, "hdr");
    watcher.until("hdr joined #general");
    let pid = srv.pid();
    let (rss_before, data_before) = (proc_kb(pid, "VmRSS"), proc_kb(pid, "VmData"));

    // A valid header whose length field says 4 GiB - 1, then a little of that "payload".
    let mut attack = header_only(2, u32::MAX, 0xdead_beef);
    attack.extend_from_slice(&[0x5a; 1000]);
    attacker.s.write_all(&attack).unwrap();
    let mut got = Vec::new();
    let end = loop {
        match attacker.frame() {
            Ok(Some(text)) => got.push(text),
            end => break end,
        }
    };
    let closing = format!(
        "!!! closing: frame of {} bytes exceeds the limit of {READ_MAX} bytes",
        u32::MAX
    );
    assert!(
        got.last().is_some_and(|l| l.ends_with(&closing)),
        "the last frame should say {closing:?}: {got:?}"
    );
    assert!(
        matches!(end, Ok(None)),
        "after the message the server should close cleanly, got {end:?}"
    );
    let left = watcher.until("hdr left");
    assert!(
        left.last()
            .unwrap()
            .contains(&format!("frame of {} bytes exceeds", u32::MAX)),
        "{left:?}"
    );
    let (rss_after, data_after) = (proc_kb(pid, "VmRSS"), proc_kb(pid, "VmData"));
    assert!(
        rss_after.saturating_sub(rss_before) < 16 * 1024,
        "server RSS {rss_before} kB before the 4 GB claim, {rss_after} kB after"
    );
    // Not even reserved: a 4 GiB reservation would show in the data segment without touching a
    // page.
    assert!(
        data_after.saturating_sub(data_before) < 1024 * 1024,
        "server VmData {data_before} kB before the 4 GB claim, {data_after} kB after"
    );

    // The server goes on.
    let mut newcomer = HeaderClient::join(&srv.addr, "newcomer");
    newcomer.send(b"after the attack");
    watcher.until("<newcomer> after the attack");
}

// ---------------------------------------------------------------------------------------------
// 4. Fifty clients race for one nickname

#[test]
fn fifty_clients_racing_for_one_nickname_in_different_cases_one_wins() {
    const N: usize = 50;
    const BASE: &str = "racers";
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let addr = Arc::new(srv.addr.clone());
    let race = Arc::new(Latch::new(N));
    let settled = Arc::new(Latch::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (addr, race, settled) = (addr.clone(), race.clone(), settled.clone());
            thread::spawn(move || {
                // "racers" with the letters whose bit is set in i upper-cased: 50 spellings.
                let nick: String = BASE
                    .chars()
                    .enumerate()
                    .map(|(b, c)| {
                        if i >> b & 1 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                let mut c = Client::connect(&addr);
                c.lines
                    .until("send your nickname first", Duration::from_secs(10));
                race.wait(Duration::from_secs(20));
                c.say(&nick);
                let welcome = format!("-!- welcome, {nick}: you are in #general");
                let taken = format!("!!! nickname {nick:?} is taken; send another nickname");
                let deadline = Instant::now() + Duration::from_secs(20);
                let won = loop {
                    let line = c
                        .lines
                        .next_before(deadline)
                        .unwrap_or_else(|| panic!("{nick}: no answer ({:?})", c.lines.ended));
                    if line.contains(&welcome) {
                        break true;
                    }
                    if line.ends_with(&taken) {
                        break false;
                    }
                };
                let name = if won {
                    nick.clone()
                } else {
                    let other = format!("loser{i}");
                    c.say(&other);
                    c.lines
                        .until(&format!("welcome, {other}:"), Duration::from_secs(10));
                    other
                };
                settled.wait(Duration::from_secs(20));
                c.say(&format!("hi from {i}"));
                let mut heard = HashSet::new();
                while heard.len() < N - 1 {
                    let Some(line) = c.lines.next_before(deadline) else {
                        break;
                    };
                    if let Some(rest) = line.split_once("> hi from ").map(|x| x.1) {
                        heard.insert(rest.parse::<usize>().unwrap());
                    }
                }
                (i, nick, won, name, heard.len(), c)
            })
        })
        .collect();
    let mut results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<String> = results
        .iter()
        .filter(|r| r.2)
        .map(|r| r.1.clone())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 50 spellings wins: {winners:?}"
    );
    for (i, nick, _, name, heard, _) in &results {
        assert_eq!(
            *heard,
            N - 1,
            "client {i} ({nick}, now {name}) heard the others"
        );
    }
    // The room knows one spelling of the name, the winner's (all 50 are still connected).
    let c = &mut results[0].5;
    c.say("/who");
    let who = c.lines.until("-!- in #general:", Duration::from_secs(10));
    let names: Vec<&str> = who
        .last()
        .unwrap()
        .rsplit(": ")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    let spellings: Vec<&&str> = names
        .iter()
        .filter(|n| n.eq_ignore_ascii_case(BASE))
        .collect();
    assert_eq!(spellings, [&winners[0].as_str()], "{names:?}");
    assert_eq!(names.len(), N, "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Messages at the size limit

/// Text of exactly `len` bytes: leading and trailing blanks, a tab, multi-byte characters and
/// symbols a sloppy server might touch, padded with ASCII.
fn text_of(len: usize) -> String {
    let mut t = String::from("  héllo, wörld ✓ <b>&amp; \t% {} \\ 1 + 1 = 2 ");
    while t.len() + "日本".len() + 2 <= len {
        t.push_str("日本");
    }
    while t.len() + 2 < len {
        t.push('x');
    }
    t.push_str("  ");
    assert_eq!(t.len(), len);
    t
}

#[test]
fn a_line_of_exactly_max_text_bytes_is_delivered_unchanged_and_one_more_is_refused() {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut alice = join(&srv.addr, "alice");
    let mut bob = join(&srv.addr, "bob");
    alice
        .lines
        .until("bob joined #general", Duration::from_secs(10));
    let at_limit = text_of(MAX_TEXT);
    // With CR LF, as telnet sends it: the CR is framing, not text.
    alice
        .w
        .write_all(format!("{at_limit}\r\n").as_bytes())
        .unwrap();
    let got = bob
        .lines
        .until("#general <alice> ", Duration::from_secs(10));
    let text = got
        .last()
        .unwrap()
        .split_once("#general <alice> ")
        .unwrap()
        .1;
    assert_eq!(text, at_limit, "the 2048-byte line, unchanged");

    // One byte over, two ways: 2049 ASCII bytes, and 2047 bytes and a 2-byte character.
    let over_ascii = "y".repeat(MAX_TEXT + 1);
    let over_utf8 = format!("{}é", "z".repeat(MAX_TEXT - 1));
    for over in [over_ascii, over_utf8] {
        assert_eq!(over.len(), MAX_TEXT + 1);
        alice.say(&over);
        let refusal = format!(
            "!!! message of {} bytes refused: the limit is {MAX_TEXT}",
            MAX_TEXT + 1
        );
        let got = alice.lines.until("!!! ", Duration::from_secs(10));
        assert!(got.last().unwrap().ends_with(&refusal), "{got:?}");
    }
    alice.say("after the refusals");
    let seen = bob
        .lines
        .until("<alice> after the refusals", Duration::from_secs(10));
    assert_eq!(
        seen.len(),
        1,
        "nothing of the refused lines reached bob: {seen:?}"
    );
}

#[test]
fn a_header_frame_of_exactly_max_text_bytes_is_delivered_and_one_more_is_refused() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "header"]);
    let mut alice = HeaderClient::join(&srv.addr, "alice");
    let mut bob = HeaderClient::join(&srv.addr, "bob");
    alice.until("bob joined #general");
    let at_limit = text_of(MAX_TEXT);
    alice.send(at_limit.as_bytes());
    let got = bob.until("#general <alice> ");
    let text = got
        .last()
        .unwrap()
        .split_once("#general <alice> ")
        .unwrap()
        .1;
    assert_eq!(text, at_limit, "the 2048-byte frame, unchanged");

    let over = format!("{}é", "z".repeat(MAX_TEXT - 1));
    alice.send(over.as_bytes());
    let got = alice.until("!!! ");
    let refusal = format!(
        "!!! message of {} bytes refused: the limit is {MAX_TEXT}",
        MAX_TEXT + 1
    );
    assert!(got.last().unwrap().ends_with(&refusal), "{got:?}");
    alice.send(b"after the refusal");
    let seen = bob.until("<alice> after the refusal");
    assert_eq!(seen.len(), 1, "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Found while writing these: a long history replayed on join

/// `--history` may be up to 1,000, and joining a room replays its whole history into the
/// newcomer's queue at once. A newcomer that reads everything must get it all and stay.
#[test]
fn a_newcomer_gets_the_whole_history_the_server_keeps_and_stays() {
    const SAID: usize = 600;
    let srv = Server::start(&[
        "chat",
        "serve",
        "-p",
        "0",
        "--history",
        "1000",
        "--flood",
        "off",
    ]);
    let mut alice = join(&srv.addr, "alice");
    let said: String = (0..SAID).map(|i| format!("line {i}\n")).collect();
    alice.w.write_all(said.as_bytes()).unwrap();
    alice.say("/ping");
    alice.lines.until("-!- pong", Duration::from_secs(10));

    let mut bob = join(&srv.addr, "bob");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut replayed = 0;
    while replayed < SAID {
        match bob.lines.next_before(deadline) {
            Some(l) if l.contains("(history) #general <alice> line ") => replayed += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(
        replayed,
        SAID,
        "history lines replayed to the newcomer ({}); the server's log:\n{}",
        bob.lines.ended.as_deref().unwrap_or("still open"),
        srv.stderr()
    );
    bob.say("/ping");
    bob.lines.until("-!- pong", Duration::from_secs(10));
}
