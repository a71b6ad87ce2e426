//! The receiver, `socklab transfer serve`: a thin loop around [`Receiver`] and [`Store`] on
//! the shared service host.
//!
//! ```text
//!  read (a whole frame within -t) ──▶ TlvCodec (≤ 65,540) ──▶ Message::parse ──▶ Receiver
//!                                                                                   │
//!        Store (NAME.part, SHA-256, rename)  ◀── poll_action ───────────────────────┤
//!        stdout (texts, saved files)                                                │
//!        write_all(answers) ◀── poll_answer ────────────────────────────────────────┘
//! ```
//!
//! Every answer due after one read goes out in one write. Files are written as the chunks
//! come (page-cache writes, inline); the final `fsync` and rename, and the hashing of a
//! resumed `.part`, run with `block_in_place` so other connections keep going.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::name::printable;
use super::proto::{self, ErrorCode, MAX_FRAME, Message, ProtoError};
use super::receive::{self, Action, Receiver};
use super::store::{Claims, Store, StoreError, hex};
use crate::frame::FrameError;
use crate::frame::tlv::{self, TlvCodec};
use crate::net::host::{self, Bound, Conn, Stream, StreamService};
use crate::net::serve::ServeSummary;
use crate::net::{NetError, Peer, ServeOptions, clock, fmt_duration, within};
use crate::report::{Event, Line, Reporter};

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 3600;
/// Default for `-t`: the longest wait for the next whole frame.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default for `--max-size`.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 40;
/// Bytes asked of the kernel per read: 16 chunks. Reads of 1 MiB cost the receiver 0.6 s of
/// kernel time per GiB, reads of 64 to 128 KiB 1.1 to 1.4 s (measured on loopback, the sender
/// ahead of the receiver).
const BIG_READ: usize = 1024 * 1024;
/// What a read needs at least (when the input budget is short): a whole frame and a head.
const SMALL_READ: usize = MAX_FRAME + 2 * tlv::HEAD;

/// Everything a receiver needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy (allow-list, connection limit, grace, `--trace`).
    pub serve: ServeOptions,
    /// Where files are saved.
    pub dir: PathBuf,
    /// Replace files of the same name instead of numbering.
    pub overwrite: bool,
    /// The largest file accepted.
    pub max_size: u64,
    /// The longest wait for the next whole frame (and for a write).
    pub timeout: Duration,
    /// How texts and files are reported.
    pub reporter: Reporter,
}

/// Runs a receiver on a bound TCP socket until `shutdown`.
pub async fn run(
    bound: impl Into<Bound>,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    let opts = cfg.serve.clone();
    let service = Transfer {
        cfg,
        claims: Claims::default(),
    };
    host::serve_stream(bound.into(), opts, shutdown, Arc::new(service)).await
}

struct Transfer {
    cfg: Config,
    claims: Claims,
}

impl StreamService for Transfer {
    type Error = ConnError;

    fn name(&self) -> &str {
        "transfer"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        let store = Store::shared(&self.cfg.dir, self.cfg.overwrite, self.claims.clone())
            .map_err(ConnError::Store)?;
        Session {
            cfg: &self.cfg,
            peer: conn.peer.clone(),
            store,
            rx: Receiver::new(receive::Config {
                max_size: self.cfg.max_size,
            }),
            files: HashMap::new(),
        }
        .run(conn)
        .await
    }
}

/// Why a connection ended early (logged in the close line).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading failed.
    #[error("reading: {0}")]
    Read(io::Error),
    /// Writing failed or stalled.
    #[error("writing: {0}")]
    Write(io::Error),
    /// No whole frame within the timeout.
    #[error("no whole frame for {}", fmt_duration(*.0))]
    Idle(Duration),
    /// A frame longer than any message.
    #[error("{0}")]
    Frame(FrameError),
    /// A frame that is not a valid message, or a message out of place.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The receiving directory is gone or unreadable.
    #[error("{0}")]
    Store(StoreError),
    /// The connection closed in the middle (files still open keep their `.part`).
    #[error("closed by the sender before BYE")]
    Cut,
    /// The server-wide input budget is spent.
    #[error("{0}")]
    Budget(crate::net::host::OverBudget),
    /// Printing what arrived failed (stdout closed).
    #[error("printing: {0}")]
    Print(io::Error),
}

/// What the receiver knows about a file in flight, for its report line.
struct FileInfo {
    name: String,
    size: u64,
    media: String,
}

struct Session<'a> {
    cfg: &'a Config,
    peer: Peer,
    store: Store,
    rx: Receiver,
    files: HashMap<u32, FileInfo>,
}

impl Session<'_> {
    async fn run<S: Stream>(mut self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        let io = &mut conn.io;
        let mut codec = TlvCodec::new(MAX_FRAME);
        let mut input = BytesMut::new();
        let mut output = BytesMut::new();
        // A whole frame must come within the timeout of the previous one: a peer dripping a
        // byte a second does not hold its connection for ever.
        let mut deadline = clock::tokio_now() + self.cfg.timeout;
        loop {
            let mut finished = false;
            loop {
                let tlv = match codec.decode(&mut input) {
                    Ok(Some(t)) => t,
                    Ok(None) => break,
                    Err(e) => {
                        let reason = e.to_string();
                        self.refuse_connection(&mut output, &reason);
                        send(io, &mut output, self.cfg.timeout).await?;
                        return Err(ConnError::Frame(e));
                    }
                };
                deadline = clock::tokio_now() + self.cfg.timeout;
                let msg = match Message::parse(tlv.kind, &tlv.value) {
                    Ok(m) => m,
                    Err(e) => return self.bad_frame(io, &mut output, e).await,
                };
                if let Err(fatal) = self.rx.handle(msg) {
                    self.answers(&mut output);
                    send(io, &mut output, self.cfg.timeout).await?;
                    return Err(ConnError::Protocol(fatal.0));
                }
                finished |= self.act()?;
                self.answers(&mut output);
                if output.len() >= 64 * 1024 {
                    send(io, &mut output, self.cfg.timeout).await?;
                }
            }
            send(io, &mut output, self.cfg.timeout).await?;
            if finished {
                return Ok(());
            }
            // The server-wide input budget decides how much this connection may buffer.
            let room = if conn.input.set(input.len() + BIG_READ).is_ok() {
                BIG_READ
            } else {
                match conn.input.set(input.len() + SMALL_READ) {
                    Ok(()) => SMALL_READ,
                    Err(e) => {
                        self.refuse_connection(
                            &mut output,
                            "the receiver is short of memory for input; try again later",
                        );
                        send(io, &mut output, self.cfg.timeout).await?;
                        return Err(ConnError::Budget(e));
                    }
                }
            };
            input.reserve(room);
            let read =
                tokio::time::timeout_at(deadline, io.read_buf(&mut (&mut input).limit(room))).await;
            match read {
                Err(_) => return Err(ConnError::Idle(self.cfg.timeout)),
                Ok(Err(e)) => return Err(ConnError::Read(e)),
                Ok(Ok(0)) => return Err(ConnError::Cut),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn refuse_connection(&mut self, output: &mut BytesMut, reason: &str) {
        let m = Message::Error {
            id: 0,
            code: ErrorCode::Protocol,
            reason: reason.to_string(),
        };
        output.extend_from_slice(&proto::frame(&m));
    }

    async fn bad_frame<S: Stream>(
        &mut self,
        io: &mut crate::net::Metered<S>,
        output: &mut BytesMut,
        e: ProtoError,
    ) -> Result<(), ConnError> {
        let reason = e.to_string();
        self.answers(output);
        self.refuse_connection(output, &reason);
        send(io, output, self.cfg.timeout).await?;
        Err(ConnError::Protocol(reason))
    }

    fn answers(&mut self, output: &mut BytesMut) {
        while let Some(m) = self.rx.poll_answer() {
            if let Message::Error { id, code, reason } = &m
                && *id != 0
            {
                let name = self.files.remove(id).map(|f| f.name);
                let _ = self.cfg.reporter.emit(&Refused {
                    event: "refused",
                    peer: self.peer.to_string(),
                    id: *id,
                    name,
                    code: *code as u16,
                    reason: reason.clone(),
                });
            }
            output.extend_from_slice(&proto::frame(&m));
        }
    }

    /// Carries out the receiver's actions; true once the sender said BYE.
    fn act(&mut self) -> Result<bool, ConnError> {
        let mut finished = false;
        while let Some(a) = self.rx.poll_action() {
            match a {
                Action::Text { id, text } => self
                    .cfg
                    .reporter
                    .emit(&TextEvent {
                        event: "text",
                        peer: self.peer.to_string(),
                        id,
                        text,
                    })
                    .map_err(ConnError::Print)?,
                Action::Open {
                    id,
                    name,
                    size,
                    offset,
                    media,
                } => {
                    let opened = if offset > 0 {
                        // Hashing what the `.part` holds can take a while.
                        blocking(|| self.store.open(id, &name, size, offset))
                    } else {
                        self.store.open(id, &name, size, offset)
                    };
                    match opened {
                        Ok(()) => {
                            if offset > 0 {
                                tracing::info!(
                                    "{}: resuming {name} at byte {offset} of {size}",
                                    self.peer
                                );
                            }
                            self.files.insert(id, FileInfo { name, size, media });
                        }
                        Err(e) => {
                            self.files.insert(id, FileInfo { name, size, media });
                            let code = match e {
                                StoreError::NoSpace { .. } => ErrorCode::NoSpace,
                                _ => ErrorCode::Io,
                            };
                            self.rx.failed(id, code, e.to_string());
                        }
                    }
                }
                Action::Write { id, data } => {
                    if let Err(e) = self.store.write(id, &data) {
                        self.store.discard(id);
                        self.rx.failed(id, ErrorCode::Io, e.to_string());
                    }
                }
                Action::MediaMismatch {
                    id,
                    declared,
                    found,
                } => {
                    let name = self.files.get(&id).map(|f| f.name.clone());
                    let _ = self.cfg.reporter.emit(&MediaMismatch {
                        event: "media_mismatch",
                        peer: self.peer.to_string(),
                        id,
                        name,
                        declared,
                        found,
                    });
                }
                Action::Close { id, sha256 } => {
                    let closed = blocking(|| self.store.close(id, &sha256));
                    match closed {
                        Ok((saved, sha)) => {
                            let info = self.files.remove(&id);
                            let path = self.cfg.dir.join(&saved);
                            let (size, media) =
                                info.map_or((0, String::new()), |f| (f.size, f.media));
                            self.cfg
                                .reporter
                                .emit(&Saved {
                                    event: "file",
                                    peer: self.peer.to_string(),
                                    id,
                                    path: path.display().to_string(),
                                    size,
                                    media,
                                    sha256: hex(&sha),
                                })
                                .map_err(ConnError::Print)?;
                            self.rx.saved(id, sha, saved);
                        }
                        Err(e) => {
                            let code = match e {
                                StoreError::Mismatch { .. } => ErrorCode::Mismatch,
                                _ => ErrorCode::Io,
                            };
                            self.rx.failed(id, code, e.to_string());
                        }
                    }
                }
                // (Its name stays known for the ERROR's report line that follows.)
                Action::Discard { id } => self.store.discard(id),
                Action::Query { id, name, size } => {
                    let held = self.store.held(&name, size);
                    self.rx.have(id, held);
                }
                Action::Finished => finished = true,
            }
        }
        Ok(finished)
    }
}

/// Runs `f`, letting the runtime move other tasks off this thread meanwhile (on a
/// multi-threaded runtime; on a single-threaded one it just runs).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

async fn send<S: Stream>(
    io: &mut crate::net::Metered<S>,
    output: &mut BytesMut,
    timeout: Duration,
) -> Result<(), ConnError> {
    if output.is_empty() {
        return Ok(());
    }
    within(timeout, io.write_all(output))
        .await
        .map_err(ConnError::Write)?;
    output.clear();
    Ok(())
}

/// A text arrived.
#[derive(Serialize)]
struct TextEvent {
    event: &'static str,
    peer: String,
    id: u32,
    text: String,
}

impl Event for TextEvent {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(format!(
            "text from {}: {}",
            self.peer,
            printable(&self.text)
        ))]
    }
}

/// A file was saved, verified.
#[derive(Serialize)]
struct Saved {
    event: &'static str,
    peer: String,
    id: u32,
    path: String,
    size: u64,
    media: String,
    sha256: String,
}

impl Event for Saved {
    fn lines(&self) -> Vec<Line> {
        let media = if self.media.is_empty() {
            String::new()
        } else {
            format!(", {}", printable(&self.media))
        };
        vec![Line::Result(format!(
            "file from {}: saved {} ({} bytes{media}) sha256 {}",
            self.peer,
            printable(&self.path),
            self.size,
            self.sha256
        ))]
    }
}

/// A file (or text) was refused.
#[derive(Serialize)]
struct Refused {
    event: &'static str,
    peer: String,
    id: u32,
    name: Option<String>,
    code: u16,
    reason: String,
}

impl Event for Refused {
    fn lines(&self) -> Vec<Line> {
        let what = match &self.name {
            Some(n) => format!("file {} ({})", self.id, printable(n)),
            None => format!("item {}", self.id),
        };
        vec![Line::Result(format!(
            "refused from {}: {what}: {}",
            self.peer,
            printable(&self.reason)
        ))]
    }
}

/// A declared media type that the file's first bytes contradict.
#[derive(Serialize)]
struct MediaMismatch {
    event: &'static str,
    peer: String,
    id: u32,
    name: Option<String>,
    declared: String,
    found: Option<&'static str>,
}

impl Event for MediaMismatch {
    fn lines(&self) -> Vec<Line> {
        let name = self.name.as_deref().unwrap_or("?");
        vec![Line::Result(format!(
            "media mismatch from {}: file {} ({}) declared {}, but its first bytes are {}",
            self.peer,
            self.id,
            printable(name),
            printable(&self.declared),
            match self.found {
                Some(f) => format!("{f}'s"),
                None => "no known type's".into(),
            }
        ))]
    }
}
