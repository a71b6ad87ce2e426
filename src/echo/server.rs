//! Echo server drivers: thin loops around the kernel and [`crate::frame`].
//!
//! - Stream (TCP or Unix), `Model::Async`: one tokio task per connection.
//! - Stream, `Model::Threads`: one OS thread per connection with blocking `read`/`write`,
//!   as in the course's multithreaded server. Same observable behaviour.
//! - Datagram (UDP or Unix): one loop; each datagram goes back to its sender.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;

use super::proto::{self, Control, ExecStatus};
use crate::frame::{FrameCodec, Framing};
use crate::net::blocking::{BlockingStream, IntoBlocking, Readable};
use crate::net::dgram::DatagramSocket;
use crate::net::serve::{self, Listener, ServeSummary};
use crate::net::trace::Direction;
use crate::net::{AllowList, ConnReport, Metered, NetError, Peer, ServeOptions, Tracer, within};

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
    /// Accept-loop policy (allow-list, connection limit, grace).
    pub serve: ServeOptions,
    /// Idle timeout on every read from (and write to) a client.
    pub timeout: Duration,
    /// `--trace`.
    pub trace: bool,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            timeout: Duration::from_secs(300),
            trace: false,
            model: Model::Async,
            framing: None,
            max_frame: crate::frame::DEFAULT_MAX_FRAME,
            buffer: DEFAULT_BUFFER,
            control: None,
        }
    }
}

/// Runs a stream echo server (TCP or Unix) on an already bound listener until `shutdown`.
pub async fn run_stream<L: Listener>(
    listener: L,
    cfg: Config,
    shutdown: CancellationToken,
) -> ServeSummary {
    let cfg = Arc::new(cfg);
    let opts = cfg.serve.clone();
    serve::serve(listener, opts, shutdown, move |stream, peer, hard_stop| {
        let cfg = cfg.clone();
        async move {
            match cfg.model {
                Model::Async => echo_async(stream, peer, &cfg).await,
                Model::Threads => echo_on_thread(stream, peer, cfg, hard_stop).await,
            }
        }
    })
    .await
}

fn tracer_for(cfg: &Config, peer: &Peer) -> Option<Tracer> {
    cfg.trace.then(|| Tracer::new(peer.to_string()))
}

async fn echo_async<S>(stream: S, peer: Peer, cfg: &Config) -> ConnReport
where
    S: AsyncRead + AsyncWrite + Readable + Unpin + Send + Sync,
{
    let mut s = Metered::new(stream, tracer_for(cfg, &peer));
    // Wait for the first byte before allocating anything: idle clients cost no buffer.
    let result = match within(cfg.timeout, s.wait_readable()).await {
        Err(e) => Err(e.to_string()),
        Ok(()) => match &cfg.framing {
            None => echo_bytes(&mut s, cfg.timeout).await,
            Some(f) => echo_frames(&mut s, f, cfg).await,
        },
    };
    ConnReport {
        bytes_in: s.bytes_in(),
        bytes_out: s.bytes_out(),
        error: result.err(),
    }
}

/// RFC 862: "Once a connection is established any data received is sent back. This
/// continues until the calling user terminates the connection."
async fn echo_bytes<S>(s: &mut S, timeout: Duration) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = within(timeout, s.read(&mut buf))
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            // The client closed its side; dropping the stream closes ours.
            return Ok(());
        }
        within(timeout, s.write_all(&buf[..n]))
            .await
            .map_err(|e| format!("writing: {e}"))?;
        grow_if_full(&mut buf, n);
    }
}

async fn echo_frames<S>(s: &mut S, framing: &Framing, cfg: &Config) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(s, FrameCodec::new(framing, cfg.max_frame));
    loop {
        let next = tokio::time::timeout(cfg.timeout, framed.next())
            .await
            .map_err(|_| format!("idle for {}", crate::net::fmt_duration(cfg.timeout)))?;
        let frame = match next {
            None => return Ok(()),
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(format!("bad frame: {e}")),
        };
        tokio::time::timeout(cfg.timeout, framed.send(frame))
            .await
            .map_err(|_| "timed out writing".to_string())?
            .map_err(|e| format!("writing: {e}"))?;
    }
}

/// Hands the connection to a dedicated OS thread and waits (asynchronously) for it to end.
async fn echo_on_thread<S>(
    stream: S,
    peer: Peer,
    cfg: Arc<Config>,
    hard_stop: CancellationToken,
) -> ConnReport
where
    S: IntoBlocking,
{
    let std = match stream.into_blocking() {
        Ok(s) => s,
        Err(e) => return failed(format!("switching to blocking mode: {e}")),
    };
    let closer = match std.try_clone_stream() {
        Ok(c) => c,
        Err(e) => return failed(format!("cloning the socket: {e}")),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = format!("echo {peer}");
    let spawned = std::thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let _ = tx.send(echo_blocking(std, &peer, &cfg));
        });
    if let Err(e) = spawned {
        return failed(format!("cannot start a thread: {e}"));
    }
    tokio::select! {
        report = rx => report.unwrap_or_else(|_| failed("connection thread panicked".into())),
        _ = hard_stop.cancelled() => {
            // Unblocks the thread's read(); it then finishes on its own.
            closer.shutdown_both();
            failed("closed at shutdown".into())
        }
    }
}

fn failed(error: String) -> ConnReport {
    ConnReport {
        error: Some(error),
        ..ConnReport::default()
    }
}

fn echo_blocking<S: BlockingStream>(stream: S, peer: &Peer, cfg: &Config) -> ConnReport {
    if let Err(e) = stream.set_io_timeout(cfg.timeout) {
        return failed(format!("setting timeouts: {e}"));
    }
    let mut s = Metered::new(stream, tracer_for(cfg, peer));
    let result = match &cfg.framing {
        None => echo_bytes_blocking(&mut s),
        Some(f) => echo_frames_blocking(&mut s, f, cfg.max_frame),
    };
    ConnReport {
        bytes_in: s.bytes_in(),
        bytes_out: s.bytes_out(),
        error: result.err(),
    }
}

fn echo_bytes_blocking<S: Read + Write>(s: &mut S) -> Result<(), String> {
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])
            .map_err(|e| format!("writing: {e}"))?;
        grow_if_full(&mut buf, n);
    }
}

/// The same codec as the async path: the codec is sans-IO, so a blocking loop can drive it
/// just as well as `Framed` does.
fn echo_frames_blocking<S: Read + Write>(
    s: &mut S,
    framing: &Framing,
    max_frame: usize,
) -> Result<(), String> {
    let mut codec = FrameCodec::new(framing, max_frame);
    let mut inbuf = BytesMut::with_capacity(STREAM_BUFFER);
    let mut outbuf = BytesMut::new();
    let mut chunk = vec![0u8; STREAM_BUFFER];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return match codec.decode_eof(&mut inbuf) {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err("bytes after the last frame".into()),
                Err(e) => Err(format!("bad frame: {e}")),
            };
        }
        inbuf.extend_from_slice(&chunk[..n]);
        while let Some(frame) = codec
            .decode(&mut inbuf)
            .map_err(|e| format!("bad frame: {e}"))?
        {
            codec
                .encode(frame, &mut outbuf)
                .map_err(|e| format!("encoding: {e}"))?;
        }
        if !outbuf.is_empty() {
            s.write_all(&outbuf).map_err(|e| format!("writing: {e}"))?;
            outbuf.clear();
        }
    }
}

/// Counters of a datagram server.
#[derive(Debug, Default)]
pub struct DatagramStats {
    /// Datagrams echoed.
    pub echoed: AtomicU64,
    /// Datagrams larger than the buffer (dropped, never echoed in part).
    pub truncated: AtomicU64,
    /// Datagrams from addresses outside the allow-list.
    pub refused: AtomicU64,
    /// Control requests refused.
    pub control_refused: AtomicU64,
}

/// Runs a datagram echo server (UDP or Unix) on an already bound socket until `shutdown` (or
/// an accepted `SHUTDOWN` control datagram).
pub async fn run_datagram<D: DatagramSocket>(
    sock: D,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<Arc<DatagramStats>, NetError> {
    let sock = Arc::new(sock);
    let stats = Arc::new(DatagramStats::default());
    let mut buf = vec![0u8; cfg.buffer];
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = sock.recv_dgram(&mut buf) => r,
        };
        let got = match got {
            Ok(g) => g,
            // An ICMP error from an earlier reply surfaces here on some systems; it concerns
            // that old peer, not this socket.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                return Err(NetError::Io {
                    what: "receiving a datagram".into(),
                    source: e,
                });
            }
        };
        let from = got.from.clone();
        let ip = D::ip_of(&from);
        if let Some(ip) = ip
            && !cfg.serve.allow.allows(ip)
        {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("dropped datagram from {from}: not in the --allow list");
            continue;
        }
        let data = &buf[..got.copied];
        // Only with --trace: a tracer labelled with this datagram's sender.
        let tracer = cfg.trace.then(|| Tracer::new(from.to_string()));
        if let Some(t) = &tracer {
            t.event(Direction::Recv, data);
            if got.truncated() {
                t.note(&format!(
                    "the datagram was {} bytes; the rest was cut off",
                    got.size
                ));
            }
        }
        if got.truncated() {
            // Never echo part of a datagram: the client would get a wrong echo and no hint.
            let n = stats.truncated.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                "datagram from {from} is {} bytes, larger than the {}-byte buffer: not echoed \
                 (raise --buffer); {n} truncated so far",
                got.size,
                cfg.buffer,
            );
            continue;
        }
        if !D::can_reply(&from) {
            tracing::warn!("datagram from {from}: the sender has no address to reply to");
            continue;
        }
        if let (Some(policy), Some(ip)) = (&cfg.control, ip)
            && let Some(ctrl) = Control::parse(data)
        {
            handle_control(ctrl, (from, ip), policy, &sock, &stats, &shutdown).await;
            continue;
        }
        if let Some(t) = &tracer {
            t.event(Direction::Send, data);
        }
        match sock.send_dgram(data, &from).await {
            Ok(_) => {
                stats.echoed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("echoed {} bytes to {from}", data.len());
            }
            Err(e) => tracing::warn!("cannot reply to {from}: {e}"),
        }
    }
    tracing::info!(
        "datagram echo stopped: {} echoed, {} truncated, {} refused",
        stats.echoed.load(Ordering::Relaxed),
        stats.truncated.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    Ok(stats)
}

async fn handle_control<D: DatagramSocket>(
    ctrl: Control<'_>,
    (from, ip): (D::Addr, std::net::IpAddr),
    policy: &ControlPolicy,
    sock: &Arc<D>,
    stats: &DatagramStats,
    shutdown: &CancellationToken,
) {
    if !policy.from.allows(ip) {
        stats.control_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("refused control request {ctrl:?} from {from}: not in --control-from");
        let _ = sock.send_dgram(proto::REFUSED_REPLY, &from).await;
        return;
    }
    match ctrl {
        Control::Shutdown => {
            tracing::warn!("SHUTDOWN requested by {from}");
            let _ = sock.send_dgram(proto::SHUTDOWN_REPLY, &from).await;
            shutdown.cancel();
        }
        Control::Exec(cmd) => {
            tracing::warn!("EXEC requested by {from}: {cmd:?}");
            let cmd = cmd.to_string();
            let sock = sock.clone();
            // Run it on its own task so a slow command does not stop the echo service.
            tokio::spawn(async move {
                let (status, output) = run_command(&cmd).await;
                tracing::info!("EXEC {cmd:?} from {from} ended: {status}");
                let _ = sock
                    .send_dgram(&proto::exit_reply(status, &output), &from)
                    .await;
            });
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
