//! The access log: one line per request, in the Combined Log Format plus the time taken, or
//! one JSON object per line with `--json-log`.
//!
//! ```text
//! 127.0.0.1 - - [21/Nov/2026:21:36:47 +0000] "GET /a.txt HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.000412
//! ```
//!
//! Connection handlers never write the log themselves: they put entries in a bounded queue
//! ([`QUEUE`] entries) that one writer thread empties. If the writer falls behind (a slow
//! disk, a stdout piped to a program that stopped reading), a handler never waits: when the
//! queue is full its line is dropped and counted, so a log nobody reads costs no request any
//! time. The count is reported on stderr: a warning at the first dropped line and then at
//! most once every [`REPORT_EVERY`] while lines keep being dropped, and a total at shutdown
//! (with the lines still queued when the writer had to be abandoned).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::net::clock;

/// Entries waiting for the writer.
pub const QUEUE: usize = 1024;
/// Least time between two "dropped lines" warnings.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

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

/// One request, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The client's address (`None` for Unix sockets).
    pub peer: Option<IpAddr>,
    /// When the request head was complete.
    pub time: SystemTime,
    /// `METHOD TARGET VERSION`, or empty for a request we could not parse.
    pub request: String,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The Referer header.
    pub referer: Option<String>,
    /// The User-Agent header.
    pub user_agent: Option<String>,
    /// From the complete head to the last byte of the response.
    pub took: Duration,
}

impl Entry {
    /// The Combined Log Format line plus the duration in seconds.
    pub fn combined(&self) -> String {
        let peer = self.peer.map_or("-".to_string(), |p| p.to_string());
        let when = jiff::Timestamp::try_from(self.time)
            .map(|t| t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string())
            .unwrap_or_else(|_| "-".into());
        let bytes = if self.bytes == 0 {
            "-".to_string()
        } else {
            self.bytes.to_string()
        };
        format!(
            "{peer} - - [{when}] \"{}\" {} {bytes} \"{}\" \"{}\" {:.6}",
            quote(&self.request),
            self.status,
            quote(self.referer.as_deref().unwrap_or("-")),
            quote(self.user_agent.as_deref().unwrap_or("-")),
            self.took.as_secs_f64()
        )
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let line = JsonLine {
            bytes: self.bytes,
            duration_s: self.took.as_secs_f64(),
            peer: self.peer.map(|p| p.to_string()),
            referer: self.referer.as_deref(),
            request: &self.request,
            status: self.status,
            time: jiff::Timestamp::try_from(self.time)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            user_agent: self.user_agent.as_deref(),
        };
        // Serialising plain fields cannot fail; an empty line would be the only outcome if it did.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// The `--json-log` line, fields in alphabetical order.
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

/// Escapes `"` and `\` and control bytes so a peer cannot forge log fields or lines.
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

/// The handlers' end of the log.
#[derive(Debug, Clone)]
pub struct Logger {
    tx: Option<mpsc::Sender<Entry>>,
    counts: Arc<Counts>,
}

/// What happened to the lines, shared by the handlers, the writer and the shutdown report.
#[derive(Debug, Default)]
pub struct Counts {
    /// Lines put in the queue.
    queued: AtomicU64,
    /// Lines the writer wrote.
    written: AtomicU64,
    /// Lines dropped because the queue was full.
    dropped: AtomicU64,
    /// When the last "dropped lines" warning was given.
    warned: Mutex<Option<Instant>>,
}

impl Counts {
    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines queued but not (yet) written.
    pub fn unwritten(&self) -> u64 {
        let queued = self.queued.load(Ordering::Relaxed);
        queued.saturating_sub(self.written.load(Ordering::Relaxed))
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
            "access log: its writer is behind (a slow disk, or a stdout nobody reads);              {dropped} line(s) dropped so far, requests are not slowed"
        );
    }

    /// The shutdown report, when something was lost.
    pub fn report(&self) {
        let (dropped, unwritten) = (self.dropped(), self.unwritten());
        if dropped > 0 || unwritten > 0 {
            tracing::warn!(
                "access log: {dropped} line(s) dropped because its writer fell behind,                  {unwritten} still queued at exit"
            );
        }
    }
}

impl Logger {
    /// A logger that discards everything.
    pub fn off() -> Self {
        Self {
            tx: None,
            counts: Arc::default(),
        }
    }

    /// Whether lines go anywhere (so callers can skip building them).
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// The counts, for the shutdown report.
    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }

    /// Logs one request without waiting: a full queue drops (and counts) the line.
    pub fn log(&self, entry: Entry) {
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(entry) {
            Ok(()) => {
                self.counts.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => self.counts.drop_one(),
            // The writer gave up after a write error, and said so.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

/// Starts the writer task. Returns the logger and the task, which ends once every logger
/// clone is dropped and the queue is written.
pub fn start(
    dest: Destination,
    json: bool,
) -> std::io::Result<(Logger, Option<tokio::task::JoinHandle<()>>)> {
    let mut sink: Box<dyn Write + Send> = match dest {
        Destination::Off => return Ok((Logger::off(), None)),
        Destination::Stdout => Box::new(std::io::stdout()),
        Destination::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
    };
    let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
    let counts = Arc::<Counts>::default();
    let written = counts.clone();
    // A blocking writer on its own thread: file and pipe writes block, and must not block a
    // runtime worker.
    let task = tokio::task::spawn_blocking(move || {
        while let Some(entry) = rx.blocking_recv() {
            let line = if json { entry.json() } else { entry.combined() };
            if writeln!(sink, "{line}")
                .and_then(|()| sink.flush())
                .is_err()
            {
                tracing::warn!("cannot write the access log; it is off from now on");
                return;
            }
            written.written.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok((
        Logger {
            tx: Some(tx),
            counts,
        },
        Some(task),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn entry() -> Entry {
        Entry {
            peer: Some("127.0.0.1".parse().unwrap()),
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            request: "GET /a\"b HTTP/1.1".into(),
            status: 200,
            bytes: 5,
            referer: None,
            user_agent: Some("curl/8.5.0\n".into()),
            took: Duration::from_micros(412),
        }
    }

    #[test]
    fn combined_log_format() {
        assert_eq!(
            entry().combined(),
            "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\\"b HTTP/1.1\" 200 5 \"-\" \
             \"curl/8.5.0\\x0a\" 0.000412"
        );
    }

    /// See: issue 15. A full queue made every request wait 100 ms; now the line is dropped at
    /// once and counted.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(2);
        let logger = Logger {
            tx: Some(tx),
            counts: Arc::default(),
        };
        let started = clock::now();
        for _ in 0..5 {
            logger.log(entry());
        }
        assert!(clock::since(started) < Duration::from_millis(50));
        let counts = logger.counts();
        assert_eq!((counts.dropped(), counts.unwritten()), (3, 2));
    }

    #[test]
    fn json_line() {
        let v: serde_json::Value = serde_json::from_str(&entry().json()).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "1994-11-06T08:49:37Z");
        assert_eq!(v["referer"], serde_json::Value::Null);
    }
}
