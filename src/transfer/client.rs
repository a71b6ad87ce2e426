//! The sender, `socklab transfer send` and `socklab transfer chat`: a thin loop around
//! [`Scheduler`].
//!
//! ```text
//!  items (args, stdin lines, /send) ──▶ Scheduler ──poll_next──▶ frames (≤ 256 KiB a write)
//!                                          ▲          file bytes: pread + SHA-256 as sent
//!  reader task: TlvCodec ──▶ answers ──────┘ (TEXT_OK, FILE_OK, HAVE, ERROR: cancel a file)
//! ```
//!
//! One task writes, a second reads the receiver's answers all the time (so a receiver
//! answering 10,000 texts never blocks on a full socket buffer). A text waits for one write
//! (at most [`BATCH`] bytes) before it goes out, whatever file is in flight. `send` adds its
//! items one after another (each once the previous one is wholly sent), so the receiver
//! sees them in the order given; `chat` adds them as they are typed, so a text goes out
//! between the chunks of a file being sent.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

use super::proto::{self, ErrorCode, MAX_CHUNK, MAX_FILES_IN_FLIGHT, MAX_TEXT, Message, kind};
use super::schedule::{Next, Scheduler};
use super::store::hex;
use crate::exit::{self, ExitCoded};
use crate::frame::tlv::{self, TlvCodec};
use crate::net::{Endpoint, NetError, clock, connect, fmt_duration, within};
use crate::report::{Event, Line, Reporter};

/// Frames written in one `write` at most (several chunks: fewer system calls; a text queued
/// meanwhile waits for this much at most).
pub const BATCH: usize = 256 * 1024;
/// The largest answer frame accepted from a receiver (an ERROR with its longest reason).
const MAX_ANSWER: usize = 4 + 2 + proto::MAX_REASON + 64;
/// Ids of FILE_QUERY start here, apart from the items' ids (which count from 1).
const QUERY_IDS: u32 = 0x8000_0000;

/// Everything a sender needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The receiver.
    pub endpoint: Endpoint,
    /// Connecting, each write, and the wait for each answer due.
    pub timeout: Duration,
    /// `--continue`: ask the receiver how much of each file it holds and send the rest.
    pub resume: bool,
    /// Add each item once the previous one is wholly sent (`send`), rather than at once
    /// (`chat`, where texts go out between a file's chunks).
    pub ordered: bool,
    /// Results and events.
    pub reporter: Reporter,
    /// A progress bar per file on stderr.
    pub progress: bool,
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A text.
    Text(String),
    /// A file.
    File(PathBuf),
    /// Something that cannot be sent (what, why): reported, and counted as not sent.
    Unsendable(String, String),
}

/// How a run went.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Texts the receiver confirmed.
    pub texts: u64,
    /// Files the receiver saved and verified.
    pub files: u64,
    /// Items refused by the receiver.
    pub refused: u64,
    /// Items that could not be sent (a file unreadable here, a text too long).
    pub failed: u64,
    /// File bytes sent (from the offsets, when resumed).
    pub bytes: u64,
    /// Seconds from connecting to the last answer.
    pub seconds: f64,
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connecting failed, or the connection did (reset, closed under our writes).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The receiver did not answer in time.
    #[error("the receiver did not {what} within {}", fmt_duration(*.after))]
    Timeout {
        /// What it did not do.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The receiver broke the protocol, or refused the connection.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The receiver closed before answering every item.
    #[error("the receiver closed the connection with {0} item(s) unconfirmed")]
    Cut(usize),
}

impl ExitCoded for SendError {
    fn exit_code(&self) -> u8 {
        match self {
            SendError::Net(e) => e.exit_code(),
            SendError::Cut(_) => exit::NETWORK,
            SendError::Timeout { .. } => exit::TIMEOUT,
            SendError::Protocol(_) => exit::PROTOCOL,
        }
    }
}

/// A file being sent.
struct Outgoing {
    path: PathBuf,
    name: String,
    file: File,
    size: u64,
    /// Where its bytes started (the receiver held the rest).
    offset: u64,
    /// SHA-256 of the bytes so far, in order, from byte 0.
    hash: Sha256,
    sha256: Option<[u8; 32]>,
    bar: Option<ProgressBar>,
    /// It had been resumed (a mismatch then means: send it whole again, once).
    resumed: bool,
}

/// An item sent and not yet answered.
enum Pending {
    Text(String),
    File(Box<Outgoing>),
}

/// A file waiting for the receiver's HAVE.
struct Query {
    path: PathBuf,
    file: File,
    size: u64,
}

/// Sends what `items` yields (until it closes) to the receiver, and waits for every answer.
pub async fn run(cfg: Config, items: mpsc::Receiver<Item>) -> Result<Summary, SendError> {
    let started = clock::now();
    let (stream, addr) = connect::tcp(&cfg.endpoint, cfg.timeout).await?;
    tracing::debug!("connected to {addr}");
    let (rd, wr) = stream.into_split();
    let (tx, answers) = mpsc::channel(1024);
    let reader = tokio::spawn(read_answers(rd, tx));
    let multi = MultiProgress::with_draw_target(if cfg.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut s = Sender {
        cfg,
        addr,
        wr,
        answers,
        items,
        inputs_open: true,
        sched: Scheduler::new(),
        sending: HashMap::new(),
        pending: HashMap::new(),
        queries: HashMap::new(),
        next_query: QUERY_IDS,
        hello: false,
        bye_sent: false,
        summary: Summary::default(),
        multi,
        buf: BytesMut::with_capacity(BATCH + MAX_CHUNK + 64),
    };
    let result = s.run().await;
    reader.abort();
    let mut summary = result?;
    summary.seconds = clock::since(started).as_secs_f64();
    Ok(summary)
}

/// What the reader task hands over.
enum Answer {
    Message(Message),
    Bad(String),
    Closed,
    Failed(io::Error),
}

async fn read_answers(mut rd: OwnedReadHalf, tx: mpsc::Sender<Answer>) {
    let mut codec = TlvCodec::new(MAX_ANSWER);
    let mut input = BytesMut::with_capacity(4096);
    loop {
        loop {
            match codec.decode(&mut input) {
                Ok(Some(t)) => {
                    let a = match Message::parse(t.kind, &t.value) {
                        Ok(m) => Answer::Message(m),
                        Err(e) => Answer::Bad(e.to_string()),
                    };
                    let bad = matches!(a, Answer::Bad(_));
                    if tx.send(a).await.is_err() || bad {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Answer::Bad(e.to_string())).await;
                    return;
                }
            }
        }
        input.reserve(4096);
        match rd.read_buf(&mut input).await {
            Ok(0) => {
                let _ = tx.send(Answer::Closed).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Answer::Failed(e)).await;
                return;
            }
        }
    }
}

struct Sender {
    cfg: Config,
    /// The receiver's address, for errors.
    addr: std::net::SocketAddr,
    wr: OwnedWriteHalf,
    answers: mpsc::Receiver<Answer>,
    items: mpsc::Receiver<Item>,
    inputs_open: bool,
    sched: Scheduler,
    /// Files whose bytes are going out.
    sending: HashMap<u32, Outgoing>,
    /// Items wholly sent, waiting for their answer.
    pending: HashMap<u32, Pending>,
    queries: HashMap<u32, Query>,
    next_query: u32,
    hello: bool,
    bye_sent: bool,
    summary: Summary,
    multi: MultiProgress,
    buf: BytesMut,
}

impl Sender {
    async fn run(&mut self) -> Result<Summary, SendError> {
        self.buf.extend_from_slice(&proto::frame(&Message::Hello));
        self.flush().await?;
        loop {
            while let Ok(a) = self.answers.try_recv() {
                if self.answer(a)? {
                    return Ok(self.summary.clone());
                }
            }
            self.take_items().await?;
            match self.sched.poll_next() {
                Next::Idle if !self.buf.is_empty() => self.flush().await?,
                Next::Idle => {
                    if self.wait().await? {
                        return Ok(self.summary.clone());
                    }
                }
                first => {
                    self.encode(first)?;
                    while self.buf.len() < BATCH {
                        match self.sched.poll_next() {
                            Next::Idle => break,
                            n => self.encode(n)?,
                        }
                    }
                    self.flush().await?;
                }
            }
        }
    }

    /// Whether the next item may be added now.
    fn may_add(&self) -> bool {
        self.queries.is_empty()
            && self.sending.len() < MAX_FILES_IN_FLIGHT
            && (!self.cfg.ordered || self.sched.pending() == 0)
    }

    /// Adds the items waiting, as far as [`Sender::may_add`] allows; once they are all in,
    /// tells the scheduler nothing more comes.
    async fn take_items(&mut self) -> Result<(), SendError> {
        while self.inputs_open && self.may_add() {
            match self.items.try_recv() {
                Ok(item) => self.add(item).await?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.inputs_open = false,
            }
        }
        // BYE waits for the answer to a resumed file: a mismatch means sending it again.
        let resumed_unanswered = self
            .pending
            .values()
            .any(|p| matches!(p, Pending::File(f) if f.resumed));
        if !self.inputs_open && self.queries.is_empty() && !resumed_unanswered {
            self.sched.finish();
        }
        Ok(())
    }

    /// Nothing to send: waits for an answer or an item. True when the run is over.
    async fn wait(&mut self) -> Result<bool, SendError> {
        let owed = !self.pending.is_empty() || !self.queries.is_empty() || !self.hello;
        if self.bye_sent && !owed {
            return Ok(true);
        }
        let take = self.inputs_open && self.may_add();
        // Waiting for the receiver is bounded; waiting for a person typing is not.
        let limit = if owed {
            self.cfg.timeout
        } else {
            Duration::MAX
        };
        tokio::select! {
            biased;
            a = self.answers.recv() => {
                let a = a.unwrap_or(Answer::Closed);
                return self.answer(a);
            }
            item = self.items.recv(), if take => match item {
                Some(item) => self.add(item).await?,
                None => self.inputs_open = false,
            },
            () = tokio::time::sleep(limit), if owed => {
                return Err(SendError::Timeout {
                    what: if self.hello { "answer" } else { "say HELLO" },
                    after: self.cfg.timeout,
                });
            }
        }
        Ok(false)
    }

    async fn add(&mut self, item: Item) -> Result<(), SendError> {
        match item {
            Item::Unsendable(item, reason) => self.local_failure(&Failed {
                event: "failed",
                item,
                reason,
            }),
            Item::Text(text) => {
                if text.len() > MAX_TEXT {
                    self.local_failure(&Failed {
                        event: "failed",
                        item: format!("a text of {} bytes", text.len()),
                        reason: format!("texts are at most {MAX_TEXT} bytes"),
                    });
                    return Ok(());
                }
                // Kept until its TEXT_OK (its id is the scheduler's).
                let id = self.sched.add_text(text.clone());
                self.pending.insert(id, Pending::Text(text));
            }
            Item::File(path) => {
                let (file, size) = match open(&path) {
                    Ok(f) => f,
                    Err(e) => {
                        self.local_failure(&Failed {
                            event: "failed",
                            item: path.display().to_string(),
                            reason: e.to_string(),
                        });
                        return Ok(());
                    }
                };
                if self.cfg.resume {
                    let id = self.next_query;
                    self.next_query = self.next_query.wrapping_add(1).max(QUERY_IDS);
                    let m = Message::FileQuery {
                        id,
                        size,
                        name: send_name(&path),
                    };
                    self.queries.insert(id, Query { path, file, size });
                    self.buf.extend_from_slice(&proto::frame(&m));
                    self.flush().await?;
                } else {
                    self.start_file(path, file, size, 0, Sha256::new());
                }
            }
        }
        Ok(())
    }

    fn start_file(&mut self, path: PathBuf, file: File, size: u64, offset: u64, hash: Sha256) {
        let id = self.sched.add_file(size, offset);
        let bar = self.cfg.progress.then(|| {
            let bar = self.multi.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:20!} {bytes:>10}/{total_bytes:10} {bar:30} {bytes_per_sec:>12} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(send_name(&path));
            bar.set_position(offset);
            bar
        });
        self.sending.insert(
            id,
            Outgoing {
                name: send_name(&path),
                path,
                file,
                size,
                offset,
                hash,
                sha256: None,
                bar,
                resumed: offset > 0,
            },
        );
    }

    fn local_failure(&mut self, e: &Failed) {
        self.summary.failed += 1;
        let _ = self.multi.suspend(|| self.cfg.reporter.emit(e));
    }

    /// Puts the frame(s) for `next` into the buffer.
    fn encode(&mut self, next: Next) -> Result<(), SendError> {
        match next {
            Next::Text { id, text } => {
                let m = Message::Text { id, text };
                self.buf.extend_from_slice(&proto::frame(&m));
            }
            Next::Begin { id } => {
                let Some(f) = self.sending.get(&id) else {
                    return Ok(());
                };
                let m = Message::FileBegin {
                    id,
                    size: f.size,
                    offset: f.offset,
                    name: f.name.clone(),
                    media: media_type(&f.file, &f.path),
                };
                self.buf.extend_from_slice(&proto::frame(&m));
            }
            Next::Chunk { id, offset, len } => {
                let Some(f) = self.sending.get_mut(&id) else {
                    return Ok(());
                };
                let start = self.buf.len();
                self.buf.put_u8(kind::FILE_CHUNK);
                self.buf.put_u32((4 + len) as u32);
                self.buf.put_u32(id);
                let at = self.buf.len();
                self.buf.resize(at + len, 0);
                if let Err(e) = f.file.read_exact_at(&mut self.buf[at..], offset) {
                    // The file changed (shrank) while being sent: this chunk is not sent; its
                    // FILE_END then tells the receiver, which refuses the file.
                    self.buf.truncate(start);
                    self.sched.cancel(id);
                    let reason = format!("reading it at byte {offset}: {e} (did it change?)");
                    let mut f = self.sending.remove(&id).expect("present");
                    f.sha256 = Some(f.hash.clone().finalize().into());
                    let m = Message::FileEnd {
                        id,
                        sha256: f.sha256.unwrap_or_default(),
                    };
                    self.buf.extend_from_slice(&proto::frame(&m));
                    let item = f.path.display().to_string();
                    self.pending.insert(id, Pending::File(Box::new(f)));
                    self.local_failure(&Failed {
                        event: "failed",
                        item,
                        reason,
                    });
                    return Ok(());
                }
                f.hash.update(&self.buf[at..]);
                self.summary.bytes += len as u64;
                if let Some(bar) = &f.bar {
                    bar.inc(len as u64);
                }
            }
            Next::End { id } => {
                let Some(mut f) = self.sending.remove(&id) else {
                    return Ok(());
                };
                let sha: [u8; 32] = f.hash.clone().finalize().into();
                f.sha256 = Some(sha);
                self.buf
                    .extend_from_slice(&proto::frame(&Message::FileEnd { id, sha256: sha }));
                self.pending.insert(id, Pending::File(Box::new(f)));
            }
            Next::Bye => {
                self.buf.extend_from_slice(&proto::frame(&Message::Bye));
                self.bye_sent = true;
            }
            Next::Idle => {}
        }
        debug_assert!(self.buf.len() <= BATCH + MAX_CHUNK + tlv::HEAD + 4 + 2048);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match within(self.cfg.timeout, self.wr.write_all(&self.buf)).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(SendError::Timeout {
                    what: "read what was sent",
                    after: self.cfg.timeout,
                });
            }
            // The receiver closed: its last answer (an ERROR, say) explains why.
            Err(e) => {
                if let Some(err) = self.explain_close().await {
                    return Err(err);
                }
                return Err(NetError::from_io(e, self.addr, "sending").into());
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// After a failed write: the receiver's ERROR id 0, if it sent one before closing.
    async fn explain_close(&mut self) -> Option<SendError> {
        let deadline = Duration::from_millis(500);
        while let Ok(Some(a)) = tokio::time::timeout(deadline, self.answers.recv()).await {
            match a {
                Answer::Message(Message::Error { id: 0, reason, .. }) => {
                    return Some(SendError::Protocol(format!(
                        "the receiver refused: {reason}"
                    )));
                }
                Answer::Message(_) => {}
                Answer::Bad(reason) => return Some(SendError::Protocol(reason)),
                _ => return None,
            }
        }
        None
    }

    /// Handles an answer; true when the run is over.
    fn answer(&mut self, a: Answer) -> Result<bool, SendError> {
        let m = match a {
            Answer::Message(m) => m,
            Answer::Bad(reason) => return Err(SendError::Protocol(reason)),
            Answer::Failed(e) => {
                return Err(
                    NetError::from_io(e, self.addr, "reading the receiver's answers").into(),
                );
            }
            Answer::Closed => {
                let owed = self.pending.len() + self.queries.len() + self.sending.len();
                if self.bye_sent && owed == 0 && self.hello {
                    return Ok(true);
                }
                if !self.hello {
                    return Err(SendError::Protocol(
                        "the receiver closed without a HELLO (not a socklab transfer receiver?)"
                            .into(),
                    ));
                }
                return Err(SendError::Cut(owed));
            }
        };
        if !self.hello {
            return match m {
                Message::Hello => {
                    self.hello = true;
                    Ok(false)
                }
                Message::Error { reason, .. } => Err(SendError::Protocol(format!(
                    "the receiver refused: {reason}"
                ))),
                other => Err(SendError::Protocol(format!(
                    "the receiver's first frame is {:#04x}, not HELLO",
                    other.kind()
                ))),
            };
        }
        match m {
            Message::TextOk { id } => match self.pending.remove(&id) {
                Some(Pending::Text(text)) => {
                    self.summary.texts += 1;
                    self.emit(&TextOk {
                        event: "text_ok",
                        id,
                        text,
                    });
                }
                _ => return Err(unexpected("TEXT_OK", id)),
            },
            Message::FileOk {
                id,
                sha256,
                saved_as,
            } => match self.pending.remove(&id) {
                Some(Pending::File(f)) => {
                    if let Some(bar) = &f.bar {
                        bar.finish_and_clear();
                    }
                    if f.sha256 != Some(sha256) {
                        return Err(SendError::Protocol(format!(
                            "the receiver confirmed {} with SHA-256 {}, but it is {}",
                            f.path.display(),
                            hex(&sha256),
                            hex(&f.sha256.unwrap_or_default())
                        )));
                    }
                    self.summary.files += 1;
                    self.emit(&FileOk {
                        event: "file_ok",
                        id,
                        path: f.path.display().to_string(),
                        saved_as,
                        size: f.size,
                        resumed_at: f.offset,
                        sha256: hex(&sha256),
                    });
                }
                _ => return Err(unexpected("FILE_OK", id)),
            },
            Message::Have { id, bytes } => {
                let Some(q) = self.queries.remove(&id) else {
                    return Err(unexpected("HAVE", id));
                };
                let offset = if bytes <= q.size { bytes } else { 0 };
                let hash = match prefix_hash(&q.file, offset) {
                    Ok(h) => h,
                    Err(e) => {
                        self.local_failure(&Failed {
                            event: "failed",
                            item: q.path.display().to_string(),
                            reason: format!("reading it: {e}"),
                        });
                        return Ok(false);
                    }
                };
                if offset > 0 {
                    self.emit(&Resuming {
                        event: "resuming",
                        path: q.path.display().to_string(),
                        held: offset,
                        size: q.size,
                    });
                }
                self.start_file(q.path, q.file, q.size, offset, hash);
            }
            Message::Error { id: 0, reason, .. } => {
                return Err(SendError::Protocol(format!(
                    "the receiver refused: {reason}"
                )));
            }
            Message::Error { id, code, reason } => {
                // A file refused while being sent: no more chunks, and a FILE_END so that the
                // receiver can forget it (its hash does not matter).
                if self.sched.cancel(id) {
                    self.buf.extend_from_slice(&proto::frame(&Message::FileEnd {
                        id,
                        sha256: [0; 32],
                    }));
                }
                let item = self
                    .sending
                    .remove(&id)
                    .map(|f| Pending::File(Box::new(f)))
                    .or_else(|| self.pending.remove(&id));
                let Some(item) = item else {
                    return Err(unexpected("ERROR", id));
                };
                if let Pending::File(f) = &item
                    && let Some(bar) = &f.bar
                {
                    bar.abandon();
                }
                // A resumed file whose `.part` was not the start of this file: once more,
                // whole.
                if let Pending::File(f) = item
                    && f.resumed
                    && code == ErrorCode::Mismatch
                {
                    self.multi.suspend(|| {
                        self.cfg.reporter.status(&format!(
                            "{}: the receiver's partial copy is not this file's start; \
                             sending it whole",
                            f.path.display()
                        ))
                    });
                    let f = *f;
                    self.start_file(f.path, f.file, f.size, 0, Sha256::new());
                    return Ok(false);
                }
                self.summary.refused += 1;
                self.emit(&Refused {
                    event: "refused",
                    id,
                    code: code as u16,
                    reason,
                });
            }
            Message::Hello => return Err(SendError::Protocol("a second HELLO".into())),
            other => {
                return Err(SendError::Protocol(format!(
                    "a {:#04x} frame, which only a sender sends",
                    other.kind()
                )));
            }
        }
        Ok(false)
    }

    fn emit<E: Event>(&self, e: &E) {
        let _ = self.multi.suspend(|| self.cfg.reporter.emit(e));
    }
}

fn unexpected(what: &str, id: u32) -> SendError {
    SendError::Protocol(format!(
        "{what} for item {id}, which is not waiting for one"
    ))
}

/// Opens a file to send: it must be a regular file.
pub fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta.len()))
}

/// The name sent for a file: its last component.
fn send_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

/// The SHA-256 state after the first `offset` bytes.
fn prefix_hash(file: &File, offset: u64) -> io::Result<Sha256> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0;
    while at < offset {
        let want = (offset - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..want], at)?;
        hash.update(&buf[..want]);
        at += want as u64;
    }
    Ok(hash)
}

/// The media type to declare: what the first bytes say, else a guess from the extension for
/// the types that have no magic, else nothing.
fn media_type(file: &File, path: &Path) -> String {
    let mut head = [0u8; 16];
    let n = read_head(file, &mut head);
    if let Some(t) = proto::sniff(&head[..n]) {
        return t.to_string();
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        _ => "",
    }
    .to_string()
}

fn read_head(file: &File, head: &mut [u8]) -> usize {
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// A text arrived.
#[derive(Serialize)]
struct TextOk {
    event: &'static str,
    id: u32,
    text: String,
}

impl Event for TextOk {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(format!("text {} delivered", self.id))]
    }
}

/// A file arrived, verified.
#[derive(Serialize)]
struct FileOk {
    event: &'static str,
    id: u32,
    path: String,
    saved_as: String,
    size: u64,
    resumed_at: u64,
    sha256: String,
}

impl Event for FileOk {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(format!(
            "file {} {} saved as {} ({} bytes) sha256 {} verified",
            self.id,
            self.path,
            super::name::printable(&self.saved_as),
            self.size,
            self.sha256
        ))]
    }
}

/// The receiver holds part of a file: the rest goes.
#[derive(Serialize)]
struct Resuming {
    event: &'static str,
    path: String,
    held: u64,
    size: u64,
}

impl Event for Resuming {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "{}: the receiver holds {} of {} bytes; sending the rest",
            self.path, self.held, self.size
        ))]
    }
}

/// The receiver refused an item.
#[derive(Serialize)]
struct Refused {
    event: &'static str,
    id: u32,
    code: u16,
    reason: String,
}

impl Event for Refused {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(format!(
            "item {} refused: {}",
            self.id,
            super::name::printable(&self.reason)
        ))]
    }
}

/// An item could not be sent.
#[derive(Serialize)]
struct Failed {
    event: &'static str,
    item: String,
    reason: String,
}

impl Event for Failed {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "cannot send {}: {}",
            self.item, self.reason
        ))]
    }
}

impl Event for Summary {
    fn lines(&self) -> Vec<Line> {
        let rate = if self.seconds > 0.0 {
            format!(", {:.1} MB/s", self.bytes as f64 / 1e6 / self.seconds)
        } else {
            String::new()
        };
        vec![Line::Status(format!(
            "{} text(s) and {} file(s) confirmed, {} refused, {} not sent; {} file bytes in {:.3}s{rate}",
            self.texts, self.files, self.refused, self.failed, self.bytes, self.seconds
        ))]
    }
}
