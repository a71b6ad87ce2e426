//! The access log: one line per request, in the Combined Log Format plus the time taken, or
//! one JSON object per line with `--json-log`.
//!
//! ```text
//! 127.0.0.1 - - [21/Nov/2026:21:36:47 +0000] "GET /a.txt HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.000412
//! ```
//!
//! Connection handlers never write the log themselves: they send entries down a bounded
//! channel to one writer task. If the writer falls behind (a slow disk, a stdout nobody
//! reads), a handler waits at most [`SEND_WAIT`] and then drops its line rather than stall
//! its client.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Entries waiting for the writer.
const QUEUE: usize = 1024;
/// Longest a handler waits for room in the queue.
pub const SEND_WAIT: Duration = Duration::from_millis(100);

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
}

impl Logger {
    /// A logger that discards everything.
    pub fn off() -> Self {
        Self { tx: None }
    }

    /// Whether lines go anywhere (so callers can skip building them).
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Logs one request (see the module docs for what happens when the writer is slow).
    pub async fn log(&self, entry: Entry) {
        if let Some(tx) = &self.tx
            && tokio::time::timeout(SEND_WAIT, tx.send(entry))
                .await
                .is_err()
        {
            tracing::debug!("access log behind: dropped a line");
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
        }
    });
    Ok((Logger { tx: Some(tx) }, Some(task)))
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

    #[test]
    fn json_line() {
        let v: serde_json::Value = serde_json::from_str(&entry().json()).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "1994-11-06T08:49:37Z");
        assert_eq!(v["referer"], serde_json::Value::Null);
    }
}
