//! `socklab chat join`: stdin lines out, the server's messages in, one line each.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use super::server::ChatFraming;
use crate::frame::{Frame, FrameCodec};
use crate::net::{self, Endpoint, Metered, NetError, Tracer, clock};
use crate::report::{Event, Line, Reporter};

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

/// Joins the chat: sends the nickname (and `/join`), then each stdin line; prints each
/// message. At the end of stdin it sends `/quit` and waits for the server to close.
pub async fn run(cfg: Config, out: Reporter) -> Result<(), Error> {
    let addr = cfg.target.to_string();
    let stream = net::connect::stream(&cfg.target, cfg.timeout).await?;
    let tracer = cfg.trace.then(|| Tracer::new(addr.clone()));
    let mut s = Metered::new(stream, tracer);
    let mut codec = match &cfg.framing {
        ChatFraming::Lines => FrameCodec::new(
            &crate::frame::Framing::Delimited(b"\n".to_vec()),
            super::proto::MAX_TEXT * 4,
        ),
        ChatFraming::Framed(f) => FrameCodec::new(f, super::proto::MAX_TEXT * 4),
    };
    let mut first = vec![cfg.nick.clone()];
    first.extend(cfg.room.iter().map(|r| format!("/join {r}")));
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut input = BytesMut::with_capacity(4096);
    let mut pending = first;
    let mut sent_id = 0u32;
    let mut quitting = false;
    let write_err = |e: io::Error| NetError::from_io(e, &addr, format!("writing to {addr}"));
    loop {
        if !pending.is_empty() {
            let mut buf = BytesMut::new();
            for text in pending.drain(..) {
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
            line = stdin.next_line(), if !quitting => {
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
                    out.emit(&Received { id: frame.id, text: &text, time_us: frame.timestamp_us })
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
