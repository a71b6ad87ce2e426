//! Output: results and data on stdout, human status lines on stderr.
//!
//! Logs go through `tracing` (stderr). What a command *produces* goes through a [`Reporter`]:
//! raw data (an echo, a download to `-`) and results (round-trip times) on stdout, either as
//! human text or, with `--json`, as one JSON object per line. A closed stdout (`| head`) is an
//! ordinary `BrokenPipe` error that `main` turns into a quiet exit 0.

use std::io::{self, Write};

/// Where a command's output goes, and in which form.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter {
    json: bool,
    quiet: bool,
}

impl Reporter {
    /// A reporter; `json` switches results to JSON lines, `quiet` silences status lines.
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// True with `--json`.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes raw data to stdout (not in JSON mode, where data is not printed).
    pub fn data(&self, bytes: &[u8]) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()
    }

    /// A human status line on stderr (suppressed by `-q` and in JSON mode).
    pub fn status(&self, line: &str) {
        if !self.quiet && !self.json {
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
    }

    /// A human result line on stdout (in JSON mode use [`Reporter::record`] instead).
    pub fn result(&self, line: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// One JSON object on its own line on stdout (only in JSON mode).
    pub fn record(&self, value: &serde_json::Value) -> io::Result<()> {
        if !self.json {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, value)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}
