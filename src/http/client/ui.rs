//! What `http get` shows: messages, the progress bar or plain progress lines, the header log.
//!
//! Everything that goes to stderr while a bar is drawn goes through
//! [`ProgressBar::suspend`], so a `--header-log -` block or a warning never lands in the middle
//! of the bar (the clash wget2 users keep reporting).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::proto::{self, LogDir};
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
        let block = proto::log_block(clock::wall(), dir, peer, proxy, head);
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
        self.stderr(&proto::progress_line(&self.name, done, self.total, rate));
    }

    /// Removes the bar (before the summary or an error message).
    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
