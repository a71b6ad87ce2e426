//! Output: results and data on stdout, human status lines on stderr, or JSON lines.
//!
//! Logs go through `tracing` (stderr). What a command *produces* goes through a [`Reporter`]
//! as typed events: each [`Event`] says how it reads as text (a result line on stdout, a status
//! line on stderr) and serialises itself for `--json` (one object per line on stdout). Raw data
//! (an echo, a quote) goes through [`Reporter::data`]. A closed stdout (`| head`) is an ordinary
//! `BrokenPipe` error that `main` turns into a quiet exit 0.

use std::io::{self, Write};

use serde::Serialize;

/// One line of an event's text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A result, on stdout.
    Result(String),
    /// A status line, on stderr (not with `-q`).
    Status(String),
}

/// Something a command reports: text for people, an object for `--json`.
///
/// The JSON form is the type's `Serialize` (declare fields in the order they should appear).
pub trait Event: Serialize {
    /// The text form, line by line (none: the event shows only in `--json`).
    fn lines(&self) -> Vec<Line>;
}

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

    /// Reports an event: its JSON object with `--json`, its lines otherwise.
    pub fn emit<E: Event>(&self, event: &E) -> io::Result<()> {
        if self.json {
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
            return out.flush();
        }
        for line in event.lines() {
            match line {
                Line::Result(text) => {
                    let mut out = io::stdout().lock();
                    writeln!(out, "{text}")?;
                    out.flush()?;
                }
                Line::Status(text) => self.status(&text),
            }
        }
        Ok(())
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

    /// A human status line on stderr (suppressed by `-q` and in JSON mode), for what is
    /// neither data nor a result (a prompt's greeting).
    pub fn status(&self, line: &str) {
        if !self.quiet && !self.json {
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
    }

    /// A human result line on stdout, not an event (in JSON mode, nothing).
    pub fn result(&self, line: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Done {
        bytes: u64,
        ok: bool,
    }

    impl Event for Done {
        fn lines(&self) -> Vec<Line> {
            vec![Line::Status(format!("{} bytes", self.bytes))]
        }
    }

    #[test]
    fn an_event_is_text_and_json_from_one_value() {
        let e = Done { bytes: 3, ok: true };
        assert_eq!(e.lines(), vec![Line::Status("3 bytes".into())]);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"bytes":3,"ok":true}"#
        );
    }
}
