//! The access log: one line per request, in the Combined Log Format plus the time taken, or
//! one JSON object per line with `--json-log`.
//!
//! ```text
//! 127.0.0.1 - - [21/Nov/2026:21:36:47 +0000] "GET /a.txt HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.000412
//! ```
//!
//! Logging must cost a request little (nginx loses a few per cent of its throughput when it
//! logs), so a request's line costs no allocation, no message and, on a busy server, no
//! wake-up:
//!
//! ```text
//!  runtime worker 0 ──format──▶ shard 0: Mutex<Vec<u8>> ─┐
//!  runtime worker 1 ──format──▶ shard 1: Mutex<Vec<u8>> ─┼─▶ writer thread: every 100 ms,
//!  …                                                      │   swap each non-empty shard for
//!  runtime worker N ──format──▶ shard N: Mutex<Vec<u8>> ─┘   its spare; one writev for all
//! ```
//!
//! - A handler describes its request as a [`Line`], borrowed from the request, and formats it
//!   straight into the bytes of a shard of the [`Buffer`]: no `String` per field or per line.
//!   The date is formatted once a second per thread.
//! - There is a shard per runtime worker; a thread keeps the shard it was given, round robin,
//!   at its first line. A shard's lock is therefore almost never contended (tens of
//!   nanoseconds): only the writer takes it too, to swap the buffer out.
//! - One writer thread of its own (file and pipe writes block, and must never block a runtime
//!   worker) wakes every [`FLUSH_EVERY`], swaps each non-empty shard's bytes for its spare
//!   empty buffer (the two allocations change places, so steady traffic allocates nothing),
//!   and writes them all with one `writev`. A shard passing [`WAKE_AT`] wakes it at once (one
//!   wake-up per crossing, not per line). On a quiet server the writer sleeps until a line
//!   arrives, and that first line wakes it: a lone request is in the log at once, the lines
//!   of a busy server at most [`FLUSH_EVERY`] later. At shutdown the writer writes every line
//!   left once the last [`Logger`] is dropped.
//! - Lines of one shard keep their order; lines of different shards interleave by batches
//!   (as the lines of nginx's worker processes do), never inside a line.
//!
//! If the writer falls behind (a slow disk, a stdout piped to a program that stopped reading),
//! a handler never waits: a shard holding [`SHARD_CAP`] bytes drops the new line and counts
//! it, so a log nobody reads costs no request any time. The count is reported on stderr: a
//! warning at the first dropped line and then at most once every [`REPORT_EVERY`] while lines
//! keep being dropped, and a total at shutdown (with the lines still unwritten when the writer
//! had to be abandoned). A write error turns the log off, with one warning.
//!
//! A peer's bytes cannot forge fields or lines: `"` and `\` are escaped as `\"` and `\\`, and
//! control characters (C0, DEL and the C1 range U+0080 to U+009F) as `\xNN`. A header value
//! that is not UTF-8 keeps its bytes there too: each byte of an invalid sequence is shown as
//! `\xNN`, as nginx shows such bytes (`\` itself being escaped, `\x` is always an escape). In
//! JSON lines, which must be Unicode, an invalid sequence becomes U+FFFD, as
//! `String::from_utf8_lossy` makes it.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::{self, IoSlice, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::net::clock;

/// Longest a line waits in its shard on a busy server.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A shard holding this many bytes wakes the writer without waiting for [`FLUSH_EVERY`].
pub const WAKE_AT: usize = 64 * 1024;
/// A shard holding this many bytes drops new lines (its writer is stuck): 1 MiB, about
/// 11,000 lines, more than 100 ms of a busy server's lines.
pub const SHARD_CAP: usize = 1024 * 1024;
/// Least time between two "dropped lines" warnings.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A writer's spare buffer grown past this by a burst is given back.
const SPARE_KEEP: usize = 4 * WAKE_AT;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// stdout, after the `listening on` line.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
    /// Nowhere (`--no-access-log`).
    Off,
}

/// One request, as logged: borrowed from the request, formatted straight into a shard.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The client's address (`None` for Unix sockets).
    pub peer: Option<IpAddr>,
    /// When the request head was complete.
    pub time: SystemTime,
    /// The request line.
    pub request: RequestText<'a>,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The Referer header's value.
    pub referer: Option<&'a [u8]>,
    /// The User-Agent header's value.
    pub user_agent: Option<&'a [u8]>,
    /// From the complete head to the last byte of the response.
    pub took: Duration,
}

/// The request, as the log shows it.
#[derive(Debug, Clone, Copy)]
pub enum RequestText<'a> {
    /// A parsed request: `METHOD TARGET VERSION`.
    Parts {
        /// The method.
        method: &'a str,
        /// The target as sent.
        target: &'a str,
        /// `HTTP/1.0` or `HTTP/1.1`.
        version: &'a str,
    },
    /// The first line of a request we could not parse, as received (empty when none came).
    Raw(&'a [u8]),
}

impl Line<'_> {
    /// Appends the Combined Log Format line plus the duration in seconds (no newline).
    pub fn write_combined(&self, out: &mut Vec<u8>) {
        match self.peer {
            Some(IpAddr::V4(ip)) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    decimal(u64::from(octet), out);
                }
            }
            // Writing into a Vec cannot fail.
            Some(ip) => {
                let _ = write!(out, "{ip}");
            }
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" - - [");
        clf_date(self.time, out);
        out.extend_from_slice(b"] \"");
        match self.request {
            RequestText::Parts {
                method,
                target,
                version,
            } => {
                escape(method.as_bytes(), out);
                out.push(b' ');
                escape(target.as_bytes(), out);
                out.push(b' ');
                escape(version.as_bytes(), out);
            }
            RequestText::Raw(raw) => escape(raw, out),
        }
        out.extend_from_slice(b"\" ");
        decimal(u64::from(self.status), out);
        out.push(b' ');
        if self.bytes == 0 {
            out.push(b'-');
        } else {
            decimal(self.bytes, out);
        }
        out.extend_from_slice(b" \"");
        escape(self.referer.unwrap_or(b"-"), out);
        out.extend_from_slice(b"\" \"");
        escape(self.user_agent.unwrap_or(b"-"), out);
        out.extend_from_slice(b"\" ");
        seconds(self.took, out);
    }

    /// Appends one JSON object, fields in alphabetical order (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let line = JsonLine {
            bytes: self.bytes,
            duration_s: self.took.as_secs_f64(),
            peer: self.peer.map(Text),
            referer: self.referer.map(|v| Text(Lossy(v))),
            request: Text(self.request),
            status: self.status,
            time: Text(IsoTime(self.time)),
            user_agent: self.user_agent.map(|v| Text(Lossy(v))),
        };
        let start = out.len();
        // Serialising plain fields into a Vec cannot fail; an empty line would be the only
        // outcome if it did.
        if serde_json::to_writer(&mut *out, &line).is_err() {
            out.truncate(start);
        }
    }
}

/// The `--json-log` line, fields in alphabetical order. The text fields are written through
/// their `Display`, escaped on the way: no `String` is made.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    bytes: u64,
    duration_s: f64,
    peer: Option<Text<IpAddr>>,
    referer: Option<Text<Lossy<'a>>>,
    request: Text<RequestText<'a>>,
    status: u16,
    time: Text<IsoTime>,
    user_agent: Option<Text<Lossy<'a>>>,
}

/// A JSON string written from `T`'s `Display`.
struct Text<T>(T);

impl<T: fmt::Display> serde::Serialize for Text<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl fmt::Display for RequestText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RequestText::Parts {
                method,
                target,
                version,
            } => write!(f, "{method} {target} {version}"),
            RequestText::Raw(raw) => Lossy(raw).fmt(f),
        }
    }
}

/// Bytes as text, each invalid UTF-8 sequence as U+FFFD (what `String::from_utf8_lossy`
/// makes, without making it).
struct Lossy<'a>(&'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

/// A time in RFC 3339 as jiff's `Timestamp` prints it (`1994-11-06T08:49:37.5Z`: fractional
/// seconds only when not zero, without trailing zeros), or nothing if jiff cannot.
struct IsoTime(SystemTime);

impl fmt::Display for IsoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((dates, nanos)) = Dates::of(self.0) else {
            return match jiff::Timestamp::try_from(self.0) {
                Ok(t) => write!(f, "{t}"),
                Err(_) => Ok(()),
            };
        };
        f.write_str(dates.iso())?;
        if nanos != 0 {
            let mut digits = [b'0'; 9];
            let mut n = nanos;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let end = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
            f.write_char('.')?;
            // ASCII digits.
            f.write_str(std::str::from_utf8(&digits[..end]).unwrap_or_default())?;
        }
        f.write_char('Z')
    }
}

/// Appends `bytes`, escaped so that a peer cannot forge log fields or lines: `"` and `\`
/// with a backslash, control characters as `\xNN` (their code point), and each byte of an
/// invalid UTF-8 sequence as `\xNN` (its value).
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        escape_str(chunk.valid(), out);
        for &b in chunk.invalid() {
            hex(b, out);
        }
    }
}

/// [`escape`] for valid UTF-8: copies the runs that need no escape in one go.
fn escape_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    // `b[copied..i]` needs no escape and is not in `out` yet.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        // The code point to show as `\xNN` (`None`: `"` or `\`), and its length in bytes.
        let (code, len) = match b[i] {
            b'"' | b'\\' => (None, 1),
            c @ (0x00..=0x1f | 0x7f) => (Some(c), 1),
            // U+0080 to U+009F, the C1 controls, are C2 80 to C2 9F in UTF-8.
            0xc2 if matches!(b.get(i + 1), Some(0x80..=0x9f)) => (Some(b[i + 1]), 2),
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[copied..i]);
        match code {
            Some(c) => hex(c, out),
            None => out.extend_from_slice(&[b'\\', b[i]]),
        }
        i += len;
        copied = i;
    }
    out.extend_from_slice(&b[copied..]);
}

/// Appends `\xNN`, lower-case.
fn hex(b: u8, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        DIGITS[usize::from(b >> 4)],
        DIGITS[usize::from(b & 0xf)],
    ]);
}

/// Appends `took` in seconds with six decimals, exactly as `{:.6}` prints
/// `took.as_secs_f64()`.
fn seconds(took: Duration, out: &mut Vec<u8>) {
    let (secs, nanos) = (took.as_secs(), took.subsec_nanos());
    // In integers, unless the float could round otherwise: below 2^20 s its error (< 1e-9 s)
    // cannot move a value across a rounding boundary unless it lies on one (…500 ns).
    if secs < 1 << 20 && nanos % 1000 != 500 {
        let micros = (nanos + 500) / 1000;
        let (secs, micros) = if micros == 1_000_000 {
            (secs + 1, 0)
        } else {
            (secs, micros)
        };
        decimal(secs, out);
        out.push(b'.');
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.extend_from_slice(&digits);
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{:.6}", took.as_secs_f64());
    }
}

/// Appends `n` in decimal, as `write!(out, "{n}")` does without the formatting machinery
/// (a third of the cost of a line).
fn decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the date as `06/Nov/1994:08:49:37 +0000`.
fn clf_date(time: SystemTime, out: &mut Vec<u8>) {
    if let Some((dates, _)) = Dates::of(time) {
        out.extend_from_slice(&dates.clf);
        return;
    }
    // Before 1970 or after 9999: as jiff formats it, each time, or `-` if it cannot.
    match jiff::Timestamp::try_from(time) {
        Ok(t) => {
            let _ = write!(out, "{}", t.strftime("%d/%b/%Y:%H:%M:%S +0000"));
        }
        Err(_) => out.push(b'-'),
    }
}

thread_local! {
    /// The dates of the second this thread logged last.
    static DATES: Cell<Option<Dates>> = const { Cell::new(None) };
}

/// One second's dates, formatted: each thread keeps those of the last second it logged, so
/// the lines of a second format its date once.
#[derive(Debug, Clone, Copy)]
struct Dates {
    /// Seconds since the Unix epoch.
    second: u64,
    /// `06/Nov/1994:08:49:37 +0000`
    clf: [u8; 26],
    /// `1994-11-06T08:49:37`
    iso: [u8; 19],
}

impl Dates {
    /// The dates of `time` (from this thread's cache when its second is the last one
    /// asked), and its nanoseconds. `None` before 1970 and after 9999.
    fn of(time: SystemTime) -> Option<(Dates, u32)> {
        let since = time.duration_since(UNIX_EPOCH).ok()?;
        let second = since.as_secs();
        let dates = match DATES.get() {
            Some(d) if d.second == second => d,
            _ => {
                let d = Dates::format(second)?;
                DATES.set(Some(d));
                d
            }
        };
        Some((dates, since.subsec_nanos()))
    }

    /// Formats `second`'s dates (with jiff, once a second).
    fn format(second: u64) -> Option<Dates> {
        let t = jiff::Timestamp::from_second(i64::try_from(second).ok()?).ok()?;
        let mut dates = Dates {
            second,
            clf: [0; 26],
            iso: [0; 19],
        };
        // Years 1970 to 9999 fill both exactly.
        let mut clf = &mut dates.clf[..];
        write!(clf, "{}", t.strftime("%d/%b/%Y:%H:%M:%S +0000")).ok()?;
        let mut iso = &mut dates.iso[..];
        write!(iso, "{}", t.strftime("%Y-%m-%dT%H:%M:%S")).ok()?;
        (clf.is_empty() && iso.is_empty()).then_some(dates)
    }

    fn iso(&self) -> &str {
        // jiff wrote ASCII.
        std::str::from_utf8(&self.iso).unwrap_or_default()
    }
}

/// The handlers' end of the log. Clones share one [`Buffer`]; when the last clone is
/// dropped, the writer writes what is left and ends.
#[derive(Debug, Clone)]
pub struct Logger {
    buffer: Arc<Buffer>,
    /// Held by every clone (`None` when the log is off): its drop tells the writer to finish.
    open: Option<Arc<Open>>,
}

/// Dropped with the last [`Logger`] clone.
#[derive(Debug)]
struct Open(Arc<Buffer>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.wake_writer();
    }
}

/// The shards the handlers write lines into, the writer's wake-up, and what happened to the
/// lines (for the shutdown report).
#[derive(Debug)]
pub struct Buffer {
    shards: Box<[Shard]>,
    /// `--json-log`.
    json: bool,
    /// A shard holding this many bytes drops new lines ([`SHARD_CAP`]).
    cap: usize,
    /// Lines dropped because their shard was full.
    dropped: AtomicU64,
    /// When the last "dropped lines" warning was given.
    warned: Mutex<Option<Instant>>,
    /// Lines taken from a shard and not yet written.
    in_flight: AtomicU64,
    /// The writer thread, to unpark.
    writer: OnceLock<Thread>,
    /// The writer found nothing to write and sleeps until a line comes: the next line wakes it.
    idle: AtomicBool,
    /// Every logger is dropped: the writer writes what is left and ends.
    closed: AtomicBool,
    /// A write failed: the log is off.
    failed: AtomicBool,
}

/// One worker's lines, on a cache line of its own so that workers do not slow each other.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Batch>);

/// Formatted lines waiting for the writer.
#[derive(Debug, Default)]
struct Batch {
    /// The lines, each ending in `\n`.
    bytes: Vec<u8>,
    /// How many.
    lines: u64,
}

impl Buffer {
    fn new(shards: usize, json: bool, cap: usize) -> Buffer {
        Buffer {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            json,
            cap,
            dropped: AtomicU64::new(0),
            warned: Mutex::new(None),
            in_flight: AtomicU64::new(0),
            writer: OnceLock::new(),
            idle: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        }
    }

    /// Lines dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines logged but not (yet) written.
    pub fn unwritten(&self) -> u64 {
        let waiting: u64 = self.shards.iter().map(|s| lock(s).lines).sum();
        waiting + self.in_flight.load(Ordering::Relaxed)
    }

    /// The shutdown report, when something was lost.
    pub fn report(&self) {
        let (dropped, unwritten) = (self.dropped(), self.unwritten());
        if dropped > 0 || unwritten > 0 {
            tracing::warn!(
                "access log: {dropped} line(s) dropped because its writer fell behind, \
                 {unwritten} still queued at exit"
            );
        }
    }

    /// Formats `line` into this thread's shard, or drops it if the shard is full.
    fn append(&self, line: &Line<'_>) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        let shard = &self.shards[shard_index() % self.shards.len()];
        let mut batch = lock(shard);
        let before = batch.bytes.len();
        if before >= self.cap {
            drop(batch);
            self.drop_one();
            return;
        }
        if self.json {
            line.write_json(&mut batch.bytes);
        } else {
            line.write_combined(&mut batch.bytes);
        }
        batch.bytes.push(b'\n');
        batch.lines += 1;
        let after = batch.bytes.len();
        drop(batch);
        // One wake-up when the shard crosses WAKE_AT, or for the first line a sleeping writer
        // waits for. A busy server's writer is never idle: this is one relaxed load.
        if (before < WAKE_AT && after >= WAKE_AT)
            || (self.idle.load(Ordering::Relaxed) && self.idle.swap(false, Ordering::AcqRel))
        {
            self.wake_writer();
        }
    }

    /// Counts one dropped line, and warns if the last warning is old enough.
    fn drop_one(&self) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // Only the dropping path takes this lock, and only for a clock reading.
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        if warned.is_some_and(|t| clock::since(t) < REPORT_EVERY) {
            return;
        }
        *warned = Some(clock::now());
        tracing::warn!(
            "access log: its writer is behind (a slow disk, or a stdout nobody reads); \
             {dropped} line(s) dropped so far, requests are not slowed"
        );
    }

    fn wake_writer(&self) {
        // Before the writer has started there is no one to wake: it looks at the shards first.
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    /// The writer thread: writes the shards' lines in batches until every logger is dropped
    /// (then writes what is left) or a write fails.
    fn write_loop(&self, sink: &mut dyn Write) {
        let _ = self.writer.set(std::thread::current());
        // Each shard's spare: its bytes while they are written, its empty buffer after.
        let mut spares: Vec<Vec<u8>> = self.shards.iter().map(|_| Vec::new()).collect();
        loop {
            // Read before writing: every line logged before the last logger was dropped is
            // in a shard by now, and is written below.
            let closing = self.closed.load(Ordering::Acquire);
            let wrote = match self.write_shards(sink, &mut spares) {
                Ok(n) => n,
                Err(e) => {
                    self.failed.store(true, Ordering::Relaxed);
                    tracing::warn!("cannot write the access log ({e}); it is off from now on");
                    return;
                }
            };
            if closing {
                return;
            }
            if wrote > 0 {
                self.idle.store(false, Ordering::Relaxed);
                std::thread::park_timeout(FLUSH_EVERY);
            } else if self.idle.swap(true, Ordering::AcqRel) {
                // Nothing, and nothing again since the next line was asked to wake us: sleep
                // until it does (or the last logger is dropped). A spurious wake-up just
                // looks again.
                std::thread::park();
            }
            // Otherwise idle was just set: look once more before sleeping, for a line logged
            // while it was being set (its handler may have seen it unset).
        }
    }

    /// Takes every non-empty shard's lines and writes them all with one `writev`, then
    /// flushes. Returns the lines written.
    fn write_shards(&self, sink: &mut dyn Write, spares: &mut [Vec<u8>]) -> io::Result<u64> {
        let mut lines = 0;
        for (shard, spare) in self.shards.iter().zip(spares.iter_mut()) {
            let mut batch = lock(shard);
            if batch.lines > 0 {
                std::mem::swap(&mut batch.bytes, spare);
                lines += std::mem::take(&mut batch.lines);
            }
        }
        if lines == 0 {
            return Ok(0);
        }
        self.in_flight.store(lines, Ordering::Relaxed);
        let mut slices: Vec<IoSlice<'_>> = spares
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| IoSlice::new(s))
            .collect();
        write_all_vectored(sink, &mut slices)?;
        sink.flush()?;
        self.in_flight.store(0, Ordering::Relaxed);
        for spare in spares {
            spare.clear();
            if spare.capacity() > SPARE_KEEP {
                spare.shrink_to(WAKE_AT);
            }
        }
        Ok(lines)
    }
}

/// `Write::write_all` for several buffers (one system call when the sink takes them all).
fn write_all_vectored(sink: &mut dyn Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match sink.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A shard's lines; a handler that panicked while holding the lock left at worst a partial
/// line, still worth writing.
fn lock(shard: &Shard) -> MutexGuard<'_, Batch> {
    shard
        .0
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This thread's shard number (modulo the shard count): given round robin at its first line.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

impl Logger {
    /// A logger that discards everything.
    pub fn off() -> Self {
        Self {
            buffer: Arc::new(Buffer::new(0, false, 0)),
            open: None,
        }
    }

    /// Whether lines go anywhere (so callers can skip the clock readings for them).
    pub fn is_on(&self) -> bool {
        self.open.is_some() && !self.buffer.failed.load(Ordering::Relaxed)
    }

    /// The buffer, for the shutdown report.
    pub fn buffer(&self) -> Arc<Buffer> {
        self.buffer.clone()
    }

    /// Logs one request without waiting: a full shard drops (and counts) the line.
    pub fn log(&self, line: &Line<'_>) {
        if self.open.is_some() {
            self.buffer.append(line);
        }
    }
}

/// The writer thread's end, for the shutdown.
#[derive(Debug)]
pub struct Writer(oneshot::Receiver<()>);

impl Writer {
    /// Waits at most `limit` for the writer to end (it does once every [`Logger`] is dropped
    /// and the lines are written); a writer stuck on a blocked stdout is abandoned.
    pub async fn finish(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.0).await;
    }
}

/// Opens the destination and starts the writer thread, with `shards` shards (one per runtime
/// worker). Returns the logger and the writer's end (`None` when the log is off).
pub fn start(dest: Destination, json: bool, shards: usize) -> io::Result<(Logger, Option<Writer>)> {
    let mut sink: Box<dyn Write + Send> = match dest {
        Destination::Off => return Ok((Logger::off(), None)),
        Destination::Stdout => Box::new(io::stdout()),
        Destination::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
    };
    let buffer = Arc::new(Buffer::new(shards.max(1), json, SHARD_CAP));
    let (done, finished) = oneshot::channel();
    let theirs = buffer.clone();
    // A thread of its own, not a runtime worker's nor tokio's blocking pool's: a write to a
    // stdout nobody reads blocks forever, and must neither stall a worker nor keep the
    // runtime from shutting down.
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            theirs.write_loop(&mut *sink);
            let _ = done.send(());
        })?;
    let open = Some(Arc::new(Open(buffer.clone())));
    Ok((Logger { buffer, open }, Some(Writer(finished))))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GET: RequestText<'static> = RequestText::Parts {
        method: "GET",
        target: "/a\"b",
        version: "HTTP/1.1",
    };

    fn line() -> Line<'static> {
        Line {
            peer: Some("127.0.0.1".parse().unwrap()),
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            request: GET,
            status: 200,
            bytes: 5,
            referer: None,
            user_agent: Some(b"curl/8.5.0\n"),
            took: Duration::from_micros(412),
        }
    }

    fn combined(line: &Line<'_>) -> String {
        let mut out = Vec::new();
        line.write_combined(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn json(line: &Line<'_>) -> String {
        let mut out = Vec::new();
        line.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_log_format() {
        assert_eq!(
            combined(&line()),
            "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\\"b HTTP/1.1\" 200 5 \"-\" \
             \"curl/8.5.0\\x0a\" 0.000412"
        );
    }

    #[test]
    fn json_line() {
        let v: serde_json::Value = serde_json::from_str(&json(&line())).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "1994-11-06T08:49:37Z");
        assert_eq!(v["referer"], serde_json::Value::Null);
        assert_eq!(
            json(&line()),
            "{\"bytes\":5,\"duration_s\":0.000412,\"peer\":\"127.0.0.1\",\"referer\":null,\
             \"request\":\"GET /a\\\"b HTTP/1.1\",\"status\":200,\"time\":\"1994-11-06T08:49:37Z\",\
             \"user_agent\":\"curl/8.5.0\\n\"}"
        );
    }

    #[test]
    fn an_unparsed_request_and_a_unix_socket_peer() {
        let l = Line {
            peer: None,
            request: RequestText::Raw(b"GET /\x01 HTTP/9"),
            bytes: 0,
            status: 400,
            ..line()
        };
        assert_eq!(
            combined(&l),
            "- - - [06/Nov/1994:08:49:37 +0000] \"GET /\\x01 HTTP/9\" 400 - \"-\" \
             \"curl/8.5.0\\x0a\" 0.000412"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&l)).unwrap();
        assert_eq!(
            (&v["peer"], &v["request"]),
            (
                &serde_json::Value::Null,
                &serde_json::json!("GET /\u{1} HTTP/9")
            )
        );
    }

    #[test]
    fn control_bytes_and_invalid_utf8_are_escaped() {
        let mut out = Vec::new();
        // ", \, C0, DEL, a C1 control (U+0085), invalid bytes (a lone FF, a truncated €),
        // and text that needs nothing (é, €).
        escape(
            b"a\"b\\c\x01\x1b\x7f\xc2\x85\xff\xe2\x82 \xc3\xa9\xe2\x82\xac.",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\\"b\\\\c\\x01\\x1b\\x7f\\x85\\xff\\xe2\\x82 é€."
        );
        // JSON lines stay Unicode: U+FFFD, as String::from_utf8_lossy.
        let l = Line {
            user_agent: Some(b"x\xff\xe2\x82y"),
            referer: Some(b"\xc3"),
            ..line()
        };
        let v: serde_json::Value = serde_json::from_str(&json(&l)).unwrap();
        assert_eq!(v["user_agent"], "x\u{fffd}\u{fffd}y");
        assert_eq!(v["referer"], "\u{fffd}");
        assert!(combined(&l).contains("\"\\xc3\" \"x\\xff\\xe2\\x82y\""));
    }

    #[test]
    fn the_date_is_formatted_once_a_second_and_right_for_any_second() {
        let at = |s: u64, nanos: u32| UNIX_EPOCH + Duration::new(s, nanos);
        let clf = |t: SystemTime| {
            let mut out = Vec::new();
            clf_date(t, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(clf(at(784_111_777, 5)), "06/Nov/1994:08:49:37 +0000");
        // The cache holds that second now, and is keyed on it: other seconds, back and forth.
        assert_eq!(DATES.get().map(|d| d.second), Some(784_111_777));
        assert_eq!(clf(at(784_111_778, 0)), "06/Nov/1994:08:49:38 +0000");
        assert_eq!(
            clf(at(784_111_777, 999_999_999)),
            "06/Nov/1994:08:49:37 +0000"
        );
        assert_eq!(clf(at(0, 0)), "01/Jan/1970:00:00:00 +0000");
        // Before 1970, not cached: as before, jiff's.
        assert_eq!(
            clf(UNIX_EPOCH - Duration::from_secs(1)),
            "31/Dec/1969:23:59:59 +0000"
        );
        // Every week and a second from 1970 to 2100, with fractions: as jiff prints them.
        for s in (0..4_102_444_800u64).step_by(604_801) {
            let nanos = (s % 1_000_000_007) as u32 % 1_000_000_000;
            for n in [0, nanos, nanos / 1000 * 1000, 500_000_000, 1] {
                let t = at(s, n);
                let jt = jiff::Timestamp::try_from(t).unwrap();
                assert_eq!(clf(t), jt.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string());
                assert_eq!(IsoTime(t).to_string(), jt.to_string());
            }
        }
    }

    #[test]
    fn decimals_print_as_display_does() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            65_535,
            1 << 32,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            decimal(n, &mut out);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn seconds_print_as_float_formatting_does() {
        let cases = [
            0,
            1,
            499,
            500,
            501,
            999,
            1_000,
            412_000,
            999_999_499,
            999_999_500,
        ];
        for secs in [0, 1, 59, (1 << 20) - 1, 1 << 20, 1 << 40] {
            for nanos in cases.into_iter().chain((0..2_000).map(|n| n * 499_999 + 7)) {
                let took = Duration::new(secs, nanos % 1_000_000_000);
                let mut out = Vec::new();
                seconds(took, &mut out);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("{:.6}", took.as_secs_f64())
                );
            }
        }
    }

    /// The formatting before this module borrowed its fields (an owned entry, a `String` per
    /// field): the lines must not have changed for text that is UTF-8.
    mod before {
        use super::*;

        fn quote(s: &str) -> String {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                    c => out.push(c),
                }
            }
            out
        }

        pub fn combined(l: &Line<'_>, request: &str) -> String {
            let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
            let peer = l.peer.map_or("-".to_string(), |p| p.to_string());
            let when = jiff::Timestamp::try_from(l.time)
                .map(|t| t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string())
                .unwrap_or_else(|_| "-".into());
            let bytes = if l.bytes == 0 {
                "-".to_string()
            } else {
                l.bytes.to_string()
            };
            format!(
                "{peer} - - [{when}] \"{}\" {} {bytes} \"{}\" \"{}\" {:.6}",
                quote(request),
                l.status,
                quote(text(l.referer).as_deref().unwrap_or("-")),
                quote(text(l.user_agent).as_deref().unwrap_or("-")),
                l.took.as_secs_f64()
            )
        }

        #[derive(serde::Serialize)]
        struct JsonLine<'a> {
            bytes: u64,
            duration_s: f64,
            peer: Option<String>,
            referer: Option<&'a str>,
            request: &'a str,
            status: u16,
            time: String,
            user_agent: Option<&'a str>,
        }

        pub fn json(l: &Line<'_>, request: &str) -> String {
            let text = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
            let (referer, user_agent) = (text(l.referer), text(l.user_agent));
            serde_json::to_string(&JsonLine {
                bytes: l.bytes,
                duration_s: l.took.as_secs_f64(),
                peer: l.peer.map(|p| p.to_string()),
                referer: referer.as_deref(),
                request,
                status: l.status,
                time: jiff::Timestamp::try_from(l.time)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                user_agent: user_agent.as_deref(),
            })
            .unwrap()
        }
    }

    proptest! {
        #[test]
        fn lines_are_as_before_for_utf8_text(
            target in any::<String>(),
            agent in proptest::option::of(any::<String>()),
            referer in proptest::option::of("[ -~\\x00-\\x1f\\u{80}-\\u{9f}é€\"\\\\]{0,40}"),
            raw in proptest::bool::ANY,
            v6 in proptest::bool::ANY,
            v4 in any::<[u8; 4]>(),
            secs in 0u64..4_102_444_800,
            nanos in 0u32..1_000_000_000,
            took_ns in 0u64..20_000_000_000,
            bytes in proptest::option::of(0u64..u64::MAX),
            status in 100u16..600,
        ) {
            let request_line = format!("GET {target} HTTP/1.1");
            let l = Line {
                peer: Some(if v6 { "::ffff:10.0.0.7".parse().unwrap() } else { IpAddr::from(v4) }),
                time: UNIX_EPOCH + Duration::new(secs, nanos),
                request: if raw {
                    RequestText::Raw(request_line.as_bytes())
                } else {
                    RequestText::Parts { method: "GET", target: &target, version: "HTTP/1.1" }
                },
                status,
                bytes: bytes.unwrap_or(0),
                referer: referer.as_deref().map(str::as_bytes),
                user_agent: agent.as_deref().map(str::as_bytes),
                took: Duration::from_nanos(took_ns),
            };
            prop_assert_eq!(combined(&l), before::combined(&l, &request_line));
            prop_assert_eq!(json(&l), before::json(&l, &request_line));
        }
    }

    /// See: issue 15. A full queue made every request wait 100 ms; now a full shard drops
    /// the line at once and counts it.
    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        // No writer: nothing is ever taken out. The cap lets three lines in.
        let buffer = Arc::new(Buffer::new(1, false, 3 * (combined(&line()).len() + 1)));
        let logger = Logger {
            buffer: buffer.clone(),
            open: Some(Arc::new(Open(buffer.clone()))),
        };
        let started = clock::now();
        for _ in 0..5 {
            logger.log(&line());
        }
        assert!(clock::since(started) < Duration::from_millis(50));
        assert_eq!((buffer.dropped(), buffer.unwritten()), (2, 3));
    }

    fn read_log(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// Lines from many threads (more than shards, so some share one) all arrive, each whole,
    /// and the last ones are written when the last logger is dropped.
    #[test]
    fn lines_from_many_threads_arrive_whole() {
        // No `"` in the request: the fields are found by splitting at quotes.
        const PLAIN: RequestText<'static> = RequestText::Parts {
            method: "GET",
            target: "/a",
            version: "HTTP/1.1",
        };
        // About 1.8 MB of lines: each shard can hold its part even if the writer never ran.
        const THREADS: usize = 8;
        const EACH: usize = 1_500;
        const PAD: usize = 64;
        let file = tempfile::NamedTempFile::new().unwrap();
        let (logger, writer) = start(Destination::File(file.path().into()), false, 3).unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let logger = logger.clone();
                s.spawn(move || {
                    for i in 0..EACH {
                        // Lengths vary, so that a torn line would show.
                        let agent = format!("t{t} n{i} {}", "x".repeat(i % PAD));
                        logger.log(&Line {
                            request: PLAIN,
                            user_agent: Some(agent.as_bytes()),
                            ..line()
                        });
                    }
                });
            }
        });
        let buffer = logger.buffer();
        drop(logger);
        writer.unwrap().0.blocking_recv().unwrap();
        assert_eq!((buffer.dropped(), buffer.unwritten()), (0, 0));
        let text = read_log(file.path());
        let mut seen = std::collections::HashSet::new();
        for l in text.lines() {
            let agent = l
                .split('"')
                .nth(5)
                .unwrap_or_else(|| panic!("torn line {l:?}"));
            let mut words = agent.split(' ');
            let (t, i) = (words.next().unwrap(), words.next().unwrap());
            let i: usize = i[1..].parse().unwrap();
            let want = Line {
                request: PLAIN,
                user_agent: Some(agent.as_bytes()),
                ..line()
            };
            assert_eq!(l, combined(&want), "torn line");
            assert_eq!(words.next().unwrap_or("").len(), i % PAD, "{l}");
            assert!(seen.insert((t.to_string(), i)), "twice: {l}");
        }
        assert_eq!(seen.len(), THREADS * EACH);
    }

    /// A lone request's line is written at once, not at the next batch.
    #[test]
    fn a_quiet_log_writes_at_once() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let (logger, _writer) = start(Destination::File(file.path().into()), true, 2).unwrap();
        let mut fastest = Duration::MAX;
        for n in 1..=3 {
            // Long enough for the writer to fall asleep.
            std::thread::sleep(FLUSH_EVERY * 3);
            let started = clock::now();
            logger.log(&line());
            while read_log(file.path()).lines().count() < n {
                assert!(
                    clock::since(started) < FLUSH_EVERY * 20,
                    "line {n} not written"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            fastest = fastest.min(clock::since(started));
        }
        // Not waiting for the next batch (a busy machine may delay one or two of them).
        assert!(fastest < FLUSH_EVERY / 2, "{fastest:?}");
    }

    /// A write error turns the log off, once.
    #[test]
    fn a_write_error_turns_the_log_off() {
        let (logger, writer) = start(Destination::File("/dev/full".into()), false, 1).unwrap();
        assert!(logger.is_on());
        logger.log(&line());
        let started = clock::now();
        while logger.is_on() {
            assert!(clock::since(started) < Duration::from_secs(5), "still on");
            std::thread::sleep(Duration::from_millis(5));
        }
        logger.log(&line());
        writer.unwrap().0.blocking_recv().unwrap();
    }
}
