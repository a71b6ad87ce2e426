//! `socklab chat join`: stdin lines out, the server's messages in, one line each.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use super::proto;
use super::server::ChatFraming;
use crate::frame::Frame;
use crate::net::{self, Endpoint, Metered, NetError, Tracer, clock};
use crate::report::{Event, Line, Reporter};
use crate::term::{self, Transcript};

/// Everything `chat join` needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Endpoint,
    /// The nickname to ask for.
    pub nick: String,
    /// A room to join after the nickname.
    pub room: Option<String>,
    /// The server's framing.
    pub framing: ChatFraming,
    /// Deadline for connecting, and for writing.
    pub timeout: Duration,
    /// `--trace`.
    pub trace: bool,
    /// `--log FILE`: a transcript of what was received and sent.
    pub log: Option<std::path::PathBuf>,
}

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting or talking failed, or the server closed first.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server sent something the framing cannot read.
    #[error("bad frame from {addr}: {source}")]
    Frame {
        /// The server.
        addr: String,
        /// What was wrong.
        source: crate::frame::FrameError,
    },
    /// stdin or stdout failed.
    #[error("{what}: {source}")]
    Local {
        /// Which.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Error::Net(n) => n.exit_code(),
            Error::Frame { .. } => exit::PROTOCOL,
            Error::Local { .. } => exit::LOCAL_IO,
        }
    }
}

/// One message from the server.
#[derive(Debug, serde::Serialize)]
struct Received<'a> {
    id: u32,
    text: &'a str,
    time_us: u64,
}

impl Event for Received<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(self.text.to_string())]
    }
}

/// Where typed lines come from: stdin, or on a terminal a line editor whose prompt stays at
/// the bottom while messages print above it ([`term::Prompt`]).
enum Input {
    Pipe(tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>),
    Editor(term::Prompt),
}

impl Input {
    fn open(out: &Reporter) -> Input {
        let pipe = || Input::Pipe(tokio::io::BufReader::new(tokio::io::stdin()).lines());
        if out.is_json() {
            return pipe();
        }
        term::Prompt::open("> ").map_or_else(pipe, Input::Editor)
    }

    /// The next line; `None` at the end of input. Cancel-safe.
    async fn next(&mut self) -> io::Result<Option<String>> {
        match self {
            Input::Pipe(l) => l.next_line().await,
            Input::Editor(p) => Ok(p.lines.recv().await.flatten()),
        }
    }

    /// Prints a received message: above the prompt on a terminal, in the nick's colour.
    fn show(&mut self, out: &Reporter, msg: &Received<'_>) -> io::Result<()> {
        match self {
            Input::Editor(p) => p.print(&colour_nick(msg.text)),
            Input::Pipe(_) => out.emit(msg),
        }
    }
}

/// The `<nick>` of a shown line (`[time] <nick> text`) in its colour.
fn colour_nick(text: &str) -> String {
    let (Some(a), Some(b)) = (text.find(" <"), text.find("> ")) else {
        return text.to_string();
    };
    if b <= a {
        return text.to_string();
    }
    let nick = &text[a + 2..b];
    format!(
        "{}<{}>{}",
        &text[..a + 1],
        term::coloured(nick),
        &text[b + 1..]
    )
}

/// Joins the chat: sends the nickname (and `/join`), then each stdin line; prints each
/// message. At the end of stdin it sends `/quit` and waits for the server to close.
pub async fn run(cfg: Config, out: Reporter) -> Result<(), Error> {
    let addr = cfg.target.to_string();
    let stream = net::connect::stream(&cfg.target, cfg.timeout).await?;
    let tracer = cfg.trace.then(|| Tracer::new(addr.clone()));
    let mut s = Metered::new(stream, tracer);
    let mut codec = cfg.framing.codec(super::server::WIRE_MAX);
    let mut first = vec![cfg.nick.clone()];
    first.extend(cfg.room.iter().map(|r| format!("/join {r}")));
    let mut stdin = Input::open(&out);
    let mut input = BytesMut::with_capacity(4096);
    let mut pending = first;
    let mut sent_id = 0u32;
    let mut quitting = false;
    let write_err = |e: io::Error| NetError::from_io(e, &addr, format!("writing to {addr}"));
    let mut log = match &cfg.log {
        None => None,
        Some(path) => Some(Transcript::open(path).map_err(|source| Error::Local {
            what: "opening the transcript",
            source,
        })?),
    };
    let log_err = |source| Error::Local {
        what: "writing the transcript",
        source,
    };
    loop {
        if !pending.is_empty() {
            let mut buf = BytesMut::new();
            for text in pending.drain(..) {
                if let Some(t) = &mut log
                    && !text.starts_with("/pong ")
                {
                    t.sent(&text).map_err(log_err)?;
                }
                sent_id = sent_id.wrapping_add(1);
                let frame = Frame {
                    id: sent_id,
                    timestamp_us: clock::unix_micros(),
                    payload: text.into_bytes().into(),
                };
                codec
                    .encode(frame, &mut buf)
                    .map_err(|source| Error::Frame {
                        addr: addr.clone(),
                        source,
                    })?;
            }
            net::within(cfg.timeout, s.write_all(&buf))
                .await
                .map_err(write_err)?;
        }
        tokio::select! {
            line = stdin.next(), if !quitting => {
                match line.map_err(|source| Error::Local { what: "reading stdin", source })? {
                    Some(l) => pending.push(l),
                    None => {
                        pending.push("/quit".into());
                        quitting = true;
                    }
                }
            }
            read = s.read_buf(&mut input) => {
                let n = read.map_err(|e| NetError::from_io(e, &addr, format!("reading from {addr}")))?;
                while let Some(frame) = codec.decode(&mut input).map_err(|source| Error::Frame {
                    addr: addr.clone(),
                    source,
                })? {
                    let mut text = String::from_utf8_lossy(&frame.payload).into_owned();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                    // The server's liveness check (`chat serve --ping`) is answered, not shown.
                    // (A delimiter framing may have swapped its spaces.)
                    let plain = text.replace('\u{a0}', " ");
                    if let Some(token) = proto::ping_token(&plain) {
                        pending.push(format!("/pong {token}"));
                        continue;
                    }
                    if let Some(t) = &mut log {
                        t.received(&text).map_err(log_err)?;
                    }
                    let msg = Received { id: frame.id, text: &text, time_us: frame.timestamp_us };
                    stdin
                        .show(&out, &msg)
                        .map_err(|source| Error::Local { what: "writing stdout", source })?;
                }
                if n == 0 {
                    if quitting {
                        return Ok(());
                    }
                    return Err(NetError::ClosedEarly { addr, when: "while we were chatting".into() }.into());
                }
                if input.capacity() - input.len() < 1024 {
                    input.reserve(4096);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_get_a_colour_and_the_rest_is_unchanged() {
        let c = colour_nick("[12:00:00] #general <alice> hi <b> x");
        assert!(c.starts_with("[12:00:00] #general <\x1b[3"), "{c:?}");
        assert!(c.ends_with("alice\x1b[0m> hi <b> x"), "{c:?}");
        assert_eq!(colour_nick("[12:00:00] -!- hello"), "[12:00:00] -!- hello");
    }
}
