//! What `http get` shows: messages, the progress bar or plain progress lines, the header log.
//!
//! The text itself ([`log_block`], [`progress_line`], [`summary_line`]) is made by pure
//! functions, time passed in, tested with golden strings; [`Ui`] decides where it goes.
//!
//! Everything that goes to stderr while a bar is drawn goes through
//! [`ProgressBar::suspend`], so a `--header-log -` block or a warning never lands in the middle
//! of the bar (the clash wget2 users keep reporting).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::net::clock;

/// Where `--header-log` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// `-`: stderr.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

enum LogSink {
    Stderr,
    File(File),
}

/// Messages, progress and the header log for one run.
pub struct Ui {
    quiet: bool,
    tty: bool,
    bar: Option<ProgressBar>,
    log: Option<LogSink>,
    name: String,
    total: Option<u64>,
    started: Instant,
    base: u64,
    last_line: Option<Instant>,
}

impl Ui {
    /// `quiet`: no progress and no summary. `tty_progress`: a bar is allowed (stderr is a
    /// terminal and nothing else, like `--trace`, writes there).
    pub fn new(quiet: bool, tty_progress: bool, log: Option<&LogTarget>) -> io::Result<Self> {
        let log = match log {
            None => None,
            Some(LogTarget::Stderr) => Some(LogSink::Stderr),
            Some(LogTarget::File(path)) => Some(LogSink::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        Ok(Self {
            quiet,
            tty: tty_progress && io::stderr().is_terminal(),
            bar: None,
            log,
            name: String::new(),
            total: None,
            started: clock::now(),
            base: 0,
            last_line: None,
        })
    }

    fn stderr(&self, text: &str) {
        let write = || {
            let _ = writeln!(io::stderr().lock(), "{text}");
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// A message shown unless `-q` (redirect hops, the summary).
    pub fn info(&self, text: &str) {
        if !self.quiet {
            self.stderr(text);
        }
    }

    /// A message shown always (warnings, the `--no-follow` result).
    pub fn always(&self, text: &str) {
        self.stderr(text);
    }

    /// A warning, shown even with `-q`: something the user should know about the file.
    pub fn warn(&self, text: &str) {
        self.stderr(&format!("warning: {text}"));
    }

    /// Appends one head to the header log, if there is one.
    pub fn log_head(
        &mut self,
        dir: LogDir,
        peer: &str,
        proxy: bool,
        head: &[u8],
    ) -> io::Result<()> {
        let Some(sink) = &mut self.log else {
            return Ok(());
        };
        let block = log_block(clock::wall(), dir, peer, proxy, head);
        match sink {
            LogSink::File(f) => f.write_all(&block),
            LogSink::Stderr => {
                let write = || {
                    let _ = io::stderr().lock().write_all(&block);
                };
                match &self.bar {
                    Some(bar) => bar.suspend(write),
                    None => write(),
                }
                Ok(())
            }
        }
    }

    /// A body starts: `base` bytes are already there (resume), `total` is the whole size if
    /// known.
    pub fn start(&mut self, name: &str, base: u64, total: Option<u64>) {
        self.finish_bar();
        self.name = name.to_string();
        self.total = total;
        self.base = base;
        self.started = clock::now();
        self.last_line = Some(self.started);
        if self.quiet || !self.tty {
            return;
        }
        let bar = match total {
            Some(t) => {
                let bar = ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            }
        };
        bar.set_message(name.to_string());
        bar.set_position(base);
        // The per-second rate and ETA count only this session's bytes.
        bar.reset_eta();
        self.bar = Some(bar);
    }

    /// `done` bytes of the file are there now.
    pub fn progress(&mut self, done: u64) {
        if self.quiet {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let now = clock::now();
        if self
            .last_line
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_line = Some(now);
        let secs = now.duration_since(self.started).as_secs_f64();
        let rate = if secs > 0.0 {
            done.saturating_sub(self.base) as f64 / secs
        } else {
            0.0
        };
        self.stderr(&progress_line(&self.name, done, self.total, rate));
    }

    /// Removes the bar (before the summary or an error message).
    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Which way a logged head went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDir {
    /// A head we sent.
    Request,
    /// A head we received.
    Response,
}

/// One `--header-log` block: `--- TIMESTAMP request to PEER` (or `response from`, with
/// `proxy` before a proxy's address), then the head's exact bytes.
pub fn log_block(at: SystemTime, dir: LogDir, peer: &str, proxy: bool, head: &[u8]) -> Vec<u8> {
    let ts = jiff::Timestamp::try_from(at)
        .ok()
        .and_then(|t| jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", t).ok())
        .unwrap_or_else(|| "?".into());
    let verb = match dir {
        LogDir::Request => "request to",
        LogDir::Response => "response from",
    };
    let via = if proxy { "proxy " } else { "" };
    let mut out = format!("--- {ts} {verb} {via}{peer}\n").into_bytes();
    out.extend_from_slice(head);
    out
}

/// `12.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A plain progress line: `NAME: 12.0 MiB of 64.0 MiB (18%), 40.2 MiB/s`.
pub fn progress_line(name: &str, done: u64, total: Option<u64>, rate: f64) -> String {
    let rate = format!("{}/s", human_bytes(rate.max(0.0) as u64));
    match total {
        Some(t) if t > 0 => format!(
            "{name}: {} of {} ({}%), {rate}",
            human_bytes(done),
            human_bytes(t),
            done.saturating_mul(100) / t
        ),
        _ => format!("{name}: {}, {rate}", human_bytes(done)),
    }
}

/// `saved 'NAME': 1234 bytes in 0.01 s (98.1 MB/s)`: the file's size, and the rate of the
/// `moved` bytes this run transferred (decimal megabytes, as download tools usually report).
pub fn summary_line(name: &str, bytes: u64, moved: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    let rate = if secs > 0.0 {
        moved as f64 / secs / 1e6
    } else {
        0.0
    };
    if name == "-" {
        // `-O -`: the body went to stdout, not into a file called '-'.
        return format!("wrote {bytes} bytes to stdout in {secs:.2} s ({rate:.1} MB/s)");
    }
    format!("saved '{name}': {bytes} bytes in {secs:.2} s ({rate:.1} MB/s)")
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn test_emit_log_blocks_and_lines() {
        let at = UNIX_EPOCH + Duration::from_micros(1_795_255_200_123_456);
        assert_eq!(
            log_block(
                at,
                LogDir::Request,
                "127.0.0.1:8080",
                false,
                b"GET / HTTP/1.1\r\n\r\n"
            ),
            b"--- 2026-11-21T10:00:00.123456Z request to 127.0.0.1:8080\nGET / HTTP/1.1\r\n\r\n"
        );
        assert!(
            log_block(at, LogDir::Response, "127.0.0.1:3128", true, b"").starts_with(
                b"--- 2026-11-21T10:00:00.123456Z response from proxy 127.0.0.1:3128\n"
            )
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12 * 1024 * 1024 + 1), "12.0 MiB");
        assert_eq!(
            progress_line("f", 12 << 20, Some(64 << 20), 40.2 * 1048576.0),
            "f: 12.0 MiB of 64.0 MiB (18%), 40.2 MiB/s"
        );
        assert_eq!(progress_line("f", 2048, None, 0.0), "f: 2.0 KiB, 0 B/s");
        assert_eq!(
            summary_line("-", 10, 10, Duration::from_millis(10)),
            "wrote 10 bytes to stdout in 0.01 s (0.0 MB/s)"
        );
        assert_eq!(
            summary_line("index.html", 1234, 1234, Duration::from_millis(10)),
            "saved 'index.html': 1234 bytes in 0.01 s (0.1 MB/s)"
        );
    }
}
