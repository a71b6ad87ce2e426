//! What the interactive clients share on a terminal: a line-editing prompt that stays at the
//! bottom while messages print above it, nicknames in colour, and a `--log` transcript.
//!
//! Used by `chat join` and `p2p chat`. The editor (rustyline) blocks, so it runs on its own
//! thread and hands each line over a channel; messages are printed through its "external
//! printer", which redraws the prompt and what has been typed so far below them.

use std::io;
use std::path::Path;

use tokio::sync::mpsc;

use crate::net::clock;

/// A line editor on the terminal.
pub struct Prompt {
    /// Each line typed; `None` once at the end (Ctrl-D, or the terminal gone).
    pub lines: mpsc::Receiver<Option<String>>,
    /// Prints above the prompt.
    pub printer: Box<dyn rustyline::ExternalPrinter + Send>,
    /// Puts the terminal back as it was when the prompt goes (the editor may still be
    /// waiting in raw mode when the program ends: a give-up, a signal).
    _restore: TermRestore,
}

/// The terminal's settings when the prompt started, restored on drop.
pub struct TermRestore(Option<libc::termios>);

impl std::fmt::Debug for TermRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TermRestore")
    }
}

impl TermRestore {
    /// The terminal's settings now (nothing when stdin is not a terminal).
    pub fn save() -> TermRestore {
        // SAFETY: tcgetattr writes a termios for fd 0 into the zeroed value; on failure the
        // value is not used.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::tcgetattr(0, &mut t) } == 0;
        TermRestore(ok.then_some(t))
    }
}

impl Drop for TermRestore {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restores settings read from the same fd by tcgetattr.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, t);
            }
            // The editor turns bracketed paste on; a shell after us would see its markers.
            let mut out = io::stdout();
            let _ = io::Write::write_all(&mut out, b"\x1b[?2004l");
            let _ = io::Write::flush(&mut out);
        }
    }
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt").finish_non_exhaustive()
    }
}

impl Prompt {
    /// A prompt showing `prompt`, if stdin is a terminal and the editor starts; `None`
    /// otherwise (read stdin as lines then).
    pub fn open(prompt: &'static str) -> Option<Prompt> {
        if !io::IsTerminal::is_terminal(&io::stdin()) {
            return None;
        }
        // Before the editor starts: it puts the terminal in raw mode.
        let restore = TermRestore::save();
        let (tx, lines) = mpsc::channel(16);
        let (ptx, prx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("line-editor".into())
            .spawn(move || {
                let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                    let _ = ptx.send(None);
                    return;
                };
                let printer = editor
                    .create_external_printer()
                    .ok()
                    .map(|p| Box::new(p) as Box<dyn rustyline::ExternalPrinter + Send>);
                // No printer (stdout is not a terminal, TERM=dumb): no prompt at all, or this
                // thread would compete with the caller's stdin reader for every line.
                let Some(printer) = printer else {
                    let _ = ptx.send(None);
                    return;
                };
                let _ = ptx.send(Some(printer));
                loop {
                    let line = match editor.readline(prompt) {
                        Ok(l) => {
                            let _ = editor.add_history_entry(l.as_str());
                            Some(l)
                        }
                        Err(rustyline::error::ReadlineError::Interrupted) => continue,
                        Err(_) => None,
                    };
                    // After `/quit` nothing more is read: the editor gives the terminal back now,
                    // not when the process exits in the middle of a `readline`.
                    let end = line.as_deref().is_none_or(|l| l.trim_end() == "/quit");
                    if tx.blocking_send(line).is_err() || end {
                        return;
                    }
                }
            });
        let printer = spawned.ok().and_then(|_| prx.recv().ok().flatten())?;
        Some(Prompt {
            lines,
            printer,
            _restore: restore,
        })
    }

    /// The typed lines, the printer, and the guard that restores the terminal (keep it until
    /// the end).
    pub fn into_parts(
        self,
    ) -> (
        mpsc::Receiver<Option<String>>,
        Box<dyn rustyline::ExternalPrinter + Send>,
        TermRestore,
    ) {
        (self.lines, self.printer, self._restore)
    }

    /// Prints `text` (one or more lines, without the last newline) above the prompt.
    pub fn print(&mut self, text: &str) -> io::Result<()> {
        self.printer
            .print(format!("{text}\n"))
            .map_err(io::Error::other)
    }
}

/// `nick` in one of six colours picked from its bytes, so a conversation is easy to follow.
pub fn coloured(nick: &str) -> String {
    let hue = 31
        + nick
            .bytes()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)))
            % 6;
    format!("\x1b[{hue}m{nick}\x1b[0m")
}

/// `--log FILE`: every message received as it was shown, and every line sent as
/// `[HH:MM:SS] > line`, appended and written line by line (a transcript survives a crash).
#[derive(Debug)]
pub struct Transcript(std::fs::File);

impl Transcript {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> io::Result<Transcript> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Transcript)
    }

    /// A line received, as shown.
    pub fn received(&mut self, text: &str) -> io::Result<()> {
        io::Write::write_all(&mut self.0, format!("{text}\n").as_bytes())
    }

    /// A line sent, with the time of day (UTC).
    pub fn sent(&mut self, text: &str) -> io::Result<()> {
        let at = crate::chat::proto::clock_text(clock::unix_micros());
        io::Write::write_all(&mut self.0, format!("[{at}] > {text}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nick_keeps_its_colour_and_its_text() {
        assert_eq!(coloured("ann"), coloured("ann"));
        let c = coloured("ann");
        assert!(
            c.starts_with("\x1b[3") && c.ends_with("ann\x1b[0m"),
            "{c:?}"
        );
        // Six colours: some two of seven nicks differ.
        let all: std::collections::HashSet<String> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|n| coloured(n)[..5].to_string())
            .collect();
        assert!(all.len() > 1);
    }

    #[test]
    fn a_transcript_appends_what_was_received_and_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "before\n").unwrap();
        let mut t = Transcript::open(&path).unwrap();
        t.received("<bob> hi").unwrap();
        t.sent("hello").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["before", "<bob> hi"]);
        assert!(
            lines[2].starts_with('[') && lines[2].ends_with("] > hello"),
            "{text}"
        );
    }
}
