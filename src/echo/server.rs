//! Echo server drivers: thin loops around the kernel and [`crate::frame`].
//!
//! - Stream (TCP or Unix), `Model::Async`: one tokio task per connection.
//! - Stream, `Model::Threads`: one OS thread per connection with blocking `read`/`write`,
//!   as in the course's multithreaded server. Same observable behaviour.
//! - Datagram (UDP or Unix): one loop; each datagram goes back to its sender.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use super::proto::{self, Control, ExecStatus};
use crate::frame::{FrameCodec, FrameError, Framing};
use crate::net::blocking::{BlockingStream, Readable};
use crate::net::dgram::DatagramSocket;
use crate::net::guard::GuardConfig;
use crate::net::host::{
    self, Answer, Bound, Conn, Datagram, DatagramCtx, DatagramOptions, DatagramService, Held,
    OverBudget, Stream, StreamService, Transport,
};
use crate::net::serve::ServeSummary;
use crate::net::{AllowList, Metered, NetError, ServeOptions, Tracer, fmt_duration, within};

/// Default TCP/UDP port (the course's).
pub const DEFAULT_PORT: u16 = 3500;
/// Default UDP receive buffer.
pub const DEFAULT_BUFFER: usize = 65535;
/// Largest `--buffer` accepted.
pub const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// Stream read buffer per active connection (allocated on the first byte, not at accept).
const STREAM_BUFFER: usize = 16 * 1024;
/// A connection whose reads keep filling the buffer (a bulk transfer) grows it up to this,
/// so streaming takes fewer system calls while chatty clients stay small.
const STREAM_BUFFER_MAX: usize = 256 * 1024;

/// Doubles `buf` (up to [`STREAM_BUFFER_MAX`]) when a read filled it completely.
fn grow_if_full(buf: &mut Vec<u8>, n: usize) {
    if n == buf.len() && buf.len() < STREAM_BUFFER_MAX {
        buf.resize(buf.len() * 2, 0);
    }
}
/// How long an `EXEC` command may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack size of a connection thread in the threads model (echo needs little).
const THREAD_STACK: usize = 256 * 1024;

/// How a stream server runs its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// One tokio task per connection.
    #[default]
    Async,
    /// One OS thread per connection, blocking I/O.
    Threads,
}

/// The opt-in UDP control channel.
#[derive(Debug, Clone)]
pub struct ControlPolicy {
    /// Sources allowed to send `SHUTDOWN` and `EXEC`.
    pub from: AllowList,
}

/// Everything an echo server needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy (allow-list, connection limit, grace, trace, input budget).
    pub serve: ServeOptions,
    /// Idle timeout on every read from (and write to) a client.
    pub timeout: Duration,
    /// Async tasks or OS threads.
    pub model: Model,
    /// Echo whole frames instead of a byte stream.
    pub framing: Option<Framing>,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Datagram receive buffer.
    pub buffer: usize,
    /// `--control` (datagram servers only).
    pub control: Option<ControlPolicy>,
    /// The UDP reflection guard.
    pub guard: GuardConfig,
    /// The name in log lines ("echo", or the lab's "echo-lines").
    pub name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            timeout: Duration::from_secs(300),
            model: Model::Async,
            framing: None,
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            buffer: DEFAULT_BUFFER,
            control: None,
            guard: GuardConfig::for_services(None, [DEFAULT_PORT]),
            name: "echo".into(),
        }
    }
}

/// Why an echo connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Reading from the client failed.
    #[error("reading: {0}")]
    Read(io::Error),
    /// Writing to the client failed.
    #[error("writing: {0}")]
    Write(io::Error),
    /// The client sent nothing for the idle timeout.
    #[error("idle for {}", fmt_duration(*.0))]
    Idle(Duration),
    /// The client's bytes are not a frame of the chosen framing.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The client closed in the middle of a frame.
    #[error("bytes after the last frame")]
    TrailingBytes,
    /// Buffering this client's partial frame would exceed the server's input budget.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// The threads model could not start its thread.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    /// The connection's thread panicked.
    #[error("connection thread panicked")]
    ThreadPanicked,
    /// The grace period ran out while the thread was still serving.
    #[error("closed at shutdown")]
    Shutdown,
}

/// The echo service, for streams and datagrams alike.
#[derive(Debug)]
pub struct Echo {
    cfg: Config,
    truncated: AtomicU64,
}

impl Echo {
    /// The service with this configuration.
    pub fn new(cfg: Config) -> Self {
        Echo {
            cfg,
            truncated: AtomicU64::new(0),
        }
    }
}

/// Runs an echo server on `bound` (a stream or a datagram socket) until `shutdown` (or an
/// accepted `SHUTDOWN` control datagram).
pub async fn run(
    bound: Bound,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    let opts = cfg.serve.clone();
    let dgram_opts = DatagramOptions {
        allow: cfg.serve.allow.clone(),
        guard: cfg.guard.clone(),
        buffer: cfg.buffer,
        trace: cfg.serve.trace,
    };
    let service = Arc::new(Echo::new(cfg));
    match bound.transport() {
        Transport::Stream => host::serve_stream(bound, opts, shutdown, service).await,
        Transport::Datagram => {
            host::serve_datagram(bound, dgram_opts, shutdown, service).await?;
            Ok(ServeSummary::default())
        }
    }
}

impl StreamService for Echo {
    type Error = ConnError;

    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        let cfg = &self.cfg;
        if cfg.model == Model::Threads {
            return echo_on_thread(conn, cfg).await;
        }
        // Wait for the first byte before allocating anything: idle clients cost no buffer.
        within(cfg.timeout, conn.io.wait_readable())
            .await
            .map_err(ConnError::Read)?;
        match &cfg.framing {
            None => echo_bytes(conn, cfg.timeout).await,
            Some(f) => echo_frames(conn, f, cfg).await,
        }
    }
}

/// RFC 862: "Once a connection is established any data received is sent back. This
/// continues until the calling user terminates the connection."
async fn echo_bytes<S: Stream>(conn: &mut Conn<S>, timeout: Duration) -> Result<(), ConnError> {
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = within(timeout, conn.io.read(&mut buf))
            .await
            .map_err(ConnError::Read)?;
        if n == 0 {
            // The client closed its side; the host closes ours.
            return Ok(());
        }
        within(timeout, conn.io.write_all(&buf[..n]))
            .await
            .map_err(ConnError::Write)?;
        // A buffer past the usual size is charged to the server's input budget; when the
        // budget is spent the connection simply keeps its smaller buffer.
        if n == buf.len()
            && buf.len() < STREAM_BUFFER_MAX
            && conn.input.set(buf.len() * 2 - STREAM_BUFFER).is_ok()
        {
            grow_if_full(&mut buf, n);
        }
    }
}

/// Room kept free in the input buffer before each read.
const READ_ROOM: usize = 4 * 1024;

/// Echoes whole frames: decode what has arrived, encode each frame back, write once per
/// read. The input buffer (which the codec may grow to a whole frame as soon as its header
/// names the length) is charged to the server's input budget.
async fn echo_frames<S: Stream>(
    conn: &mut Conn<S>,
    framing: &Framing,
    cfg: &Config,
) -> Result<(), ConnError> {
    let mut codec = FrameCodec::new(framing, cfg.max_frame);
    let mut inbuf = BytesMut::new();
    let mut outbuf = BytesMut::new();
    loop {
        while let Some(frame) = codec.decode(&mut inbuf)? {
            codec.encode(frame, &mut outbuf)?;
        }
        conn.input.set(charged(&inbuf, &outbuf))?;
        if !outbuf.is_empty() {
            within(cfg.timeout, conn.io.write_all(&outbuf))
                .await
                .map_err(ConnError::Write)?;
            outbuf.clear();
        }
        shrink(&mut inbuf, &mut outbuf);
        if inbuf.capacity() - inbuf.len() < READ_ROOM {
            inbuf.reserve(STREAM_BUFFER);
        }
        conn.input.set(charged(&inbuf, &outbuf))?;
        let n = match within(cfg.timeout, conn.io.read_buf(&mut inbuf)).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(ConnError::Idle(cfg.timeout));
            }
            Err(e) => return Err(ConnError::Read(e)),
        };
        if n == 0 {
            return match codec.decode_eof(&mut inbuf)? {
                None => Ok(()),
                Some(_) => Err(ConnError::TrailingBytes),
            };
        }
    }
}

/// What a framed connection's buffers cost the input budget: everything past the usual read
/// buffer, which every active connection has (and `--max-conns` bounds).
fn charged(inbuf: &BytesMut, outbuf: &BytesMut) -> usize {
    (inbuf.capacity() + outbuf.capacity()).saturating_sub(STREAM_BUFFER + READ_ROOM)
}

/// Gives back the memory of a large frame once it has gone: a client that sent one 16 MiB
/// frame should not hold 16 MiB for the rest of its connection. (A frame in progress keeps
/// the room its codec reserved; the budget has been charged for it.)
fn shrink(inbuf: &mut BytesMut, outbuf: &mut BytesMut) {
    if outbuf.is_empty() && outbuf.capacity() > STREAM_BUFFER_MAX {
        *outbuf = BytesMut::new();
    }
    if inbuf.is_empty() && inbuf.capacity() > STREAM_BUFFER_MAX {
        *inbuf = BytesMut::new();
    }
}

/// Lends the connection to a dedicated OS thread as a blocking socket and waits
/// (asynchronously) for the thread to end.
async fn echo_on_thread<S: Stream>(conn: &mut Conn<S>, cfg: &Config) -> Result<(), ConnError> {
    let lent = conn.io.get_ref().lend_blocking().map_err(ConnError::Read)?;
    let closer = lent.0.try_clone_stream().map_err(ConnError::Read)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = format!("echo {}", conn.peer);
    let tracer = conn.tracer();
    let mut input = conn.input.sibling();
    let thread_cfg = cfg.clone();
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let outcome = echo_blocking(&lent.0, tracer, &thread_cfg, &mut input);
            lent.give_back();
            let _ = tx.send(outcome);
        });
    if let Err(e) = spawned {
        return Err(ConnError::Thread(e));
    }
    tokio::select! {
        outcome = rx => match outcome {
            Ok((bytes_in, bytes_out, result)) => {
                conn.io.count(bytes_in, bytes_out);
                result
            }
            Err(_) => Err(ConnError::ThreadPanicked),
        },
        _ = conn.hard_stop.cancelled() => {
            // Unblocks the thread's read(); it then finishes on its own.
            closer.shutdown_both();
            conn.skip_linger();
            Err(ConnError::Shutdown)
        }
    }
}

/// The thread's whole job: bytes in, bytes out, and why it stopped.
fn echo_blocking<B: BlockingStream>(
    stream: &B,
    tracer: Option<Tracer>,
    cfg: &Config,
    input: &mut Held,
) -> (u64, u64, Result<(), ConnError>) {
    if let Err(e) = stream.set_io_timeout(cfg.timeout) {
        return (0, 0, Err(ConnError::Read(e)));
    }
    let handle = match stream.try_clone_stream() {
        Ok(h) => h,
        Err(e) => return (0, 0, Err(ConnError::Read(e))),
    };
    let mut s = Metered::new(handle, tracer);
    let result = match &cfg.framing {
        None => echo_bytes_blocking(&mut s),
        Some(f) => echo_frames_blocking(&mut s, f, cfg.max_frame, input),
    };
    let result = result.map_err(|e| match e {
        ConnError::Read(e) if e.kind() == io::ErrorKind::WouldBlock => ConnError::Idle(cfg.timeout),
        other => other,
    });
    (s.bytes_in(), s.bytes_out(), result)
}

fn echo_bytes_blocking<S: Read + Write>(s: &mut S) -> Result<(), ConnError> {
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = s.read(&mut buf).map_err(ConnError::Read)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).map_err(ConnError::Write)?;
    }
}

/// The same codec as the async path: the codec is sans-IO, so a blocking loop can drive it
/// just as well as the async one does.
fn echo_frames_blocking<S: Read + Write>(
    s: &mut S,
    framing: &Framing,
    max_frame: usize,
    input: &mut Held,
) -> Result<(), ConnError> {
    let mut codec = FrameCodec::new(framing, max_frame);
    let mut inbuf = BytesMut::with_capacity(STREAM_BUFFER);
    let mut outbuf = BytesMut::new();
    let mut chunk = vec![0u8; STREAM_BUFFER];
    loop {
        let n = s.read(&mut chunk).map_err(ConnError::Read)?;
        if n == 0 {
            return match codec.decode_eof(&mut inbuf)? {
                None => Ok(()),
                Some(_) => Err(ConnError::TrailingBytes),
            };
        }
        inbuf.extend_from_slice(&chunk[..n]);
        while let Some(frame) = codec.decode(&mut inbuf)? {
            codec.encode(frame, &mut outbuf)?;
        }
        input.set(charged(&inbuf, &outbuf))?;
        if !outbuf.is_empty() {
            s.write_all(&outbuf).map_err(ConnError::Write)?;
            outbuf.clear();
        }
        shrink(&mut inbuf, &mut outbuf);
    }
}

impl DatagramService for Echo {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn answer<D: DatagramSocket>(
        &self,
        dgram: Datagram<'_, D::Addr>,
        reply: &mut Vec<u8>,
        ctx: &DatagramCtx<D>,
    ) -> Answer {
        if dgram.truncated() {
            // Never echo part of a datagram: the client would get a wrong echo and no hint.
            let n = self.truncated.fetch_add(1, Ordering::Relaxed) + 1;
            return Answer::Drop(format!(
                "datagram from {} is {} bytes, larger than the {}-byte buffer: not echoed \
                 (raise --buffer); {n} truncated so far",
                dgram.from, dgram.size, self.cfg.buffer,
            ));
        }
        if let Some(policy) = &self.cfg.control
            && let Some(ip) = D::ip_of(dgram.from)
            && let Some(ctrl) = Control::parse(dgram.data)
        {
            return control(ctrl, (dgram.from.clone(), ip), policy, reply, ctx);
        }
        reply.extend_from_slice(dgram.data);
        Answer::Reply
    }
}

/// A control datagram (`--control`): refused, `SHUTDOWN`, or `EXEC` on a task of its own.
fn control<D: DatagramSocket>(
    ctrl: Control<'_>,
    (from, ip): (D::Addr, std::net::IpAddr),
    policy: &ControlPolicy,
    reply: &mut Vec<u8>,
    ctx: &DatagramCtx<D>,
) -> Answer {
    if !policy.from.allows(ip) {
        tracing::warn!("refused control request {ctrl:?} from {from}: not in --control-from");
        reply.extend_from_slice(proto::REFUSED_REPLY);
        return Answer::Reply;
    }
    match ctrl {
        Control::Shutdown => {
            tracing::warn!("SHUTDOWN requested by {from}");
            reply.extend_from_slice(proto::SHUTDOWN_REPLY);
            ctx.shutdown.cancel();
            Answer::Reply
        }
        Control::Exec(cmd) => {
            tracing::warn!("EXEC requested by {from}: {cmd:?}");
            let cmd = cmd.to_string();
            let sock = ctx.socket.clone();
            // Run it on its own task so a slow command does not stop the echo service.
            tokio::spawn(async move {
                let (status, output) = run_command(&cmd).await;
                tracing::info!("EXEC {cmd:?} from {from} ended: {status}");
                let _ = sock
                    .send_dgram(&proto::exit_reply(status, &output), &from)
                    .await;
            });
            Answer::Nothing
        }
    }
}

async fn run_command(cmd: &str) -> (ExecStatus, Vec<u8>) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return (ExecStatus::NotStarted, e.to_string().into_bytes()),
    };
    match tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output()).await {
        Err(_) => (ExecStatus::Timeout, Vec::new()),
        Ok(Err(e)) => (ExecStatus::NotStarted, e.to_string().into_bytes()),
        Ok(Ok(out)) => {
            let status = match out.status.code() {
                Some(c) => ExecStatus::Code(c),
                None => ExecStatus::Signal,
            };
            let mut bytes = out.stdout;
            bytes.extend_from_slice(&out.stderr);
            (status, bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_grows_only_when_reads_fill_it_and_stops_at_the_cap() {
        let mut buf = vec![0u8; STREAM_BUFFER];
        grow_if_full(&mut buf, 100);
        assert_eq!(buf.len(), STREAM_BUFFER);
        for _ in 0..10 {
            let n = buf.len();
            grow_if_full(&mut buf, n);
        }
        assert_eq!(buf.len(), STREAM_BUFFER_MAX);
    }
}
