//! `--trace`: every send and receive, with direction, byte count and a hex+ASCII dump.
//!
//! Learners usually picture `send("hello world")` arriving as one `recv` of 11 bytes. The
//! trace shows what really happens: a read may return part of a message, or two messages
//! glued together, and a write may take only part of the buffer. Each line is one system
//! call's result, exactly as the program saw it.
//!
//! [`Metered`] wraps any stream (async or blocking), counts the bytes each way for the
//! connection log, and, only when a [`Tracer`] is attached, prints the dump. With tracing off
//! the cost is one branch per read or write.
//!
//! ```text
//! [127.0.0.1:41512] recv 5 bytes
//!   0000  68 65 6c 6c 6f                                    |hello|
//! ```

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which way the bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the peer.
    Recv,
    /// Sent to the peer.
    Send,
}

/// Prints dumps for one connection or socket, labelled with the peer.
#[derive(Debug, Clone)]
pub struct Tracer {
    label: String,
}

impl Tracer {
    /// A tracer whose lines start with `[label]`.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
        }
    }

    /// Prints one event to stderr in a single write, so dumps of concurrent connections do
    /// not interleave line by line.
    pub fn event(&self, dir: Direction, data: &[u8]) {
        let text = render(&self.label, dir, data);
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }

    /// Prints a note (for example "recv: end of stream").
    pub fn note(&self, what: &str) {
        let _ = writeln!(io::stderr().lock(), "[{}] {what}", self.label);
    }
}

/// Renders one trace event: a header line and 16-byte rows of hex and printable ASCII.
pub fn render(label: &str, dir: Direction, data: &[u8]) -> String {
    let verb = match dir {
        Direction::Recv => "recv",
        Direction::Send => "send",
    };
    let plural = if data.len() == 1 { "" } else { "s" };
    let mut out = format!("[{label}] {verb} {} byte{plural}\n", data.len());
    for (row, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "  {:04x}  ", row * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if i == 7 {
                out.push(' ');
            }
        }
        out.push_str(" |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    out
}

/// A datagram socket that prints every datagram it sends and receives (`--trace` for the
/// datagram protocols): the header line names the peer, the size and, through `describe`,
/// what the protocol makes of the bytes; then the dump.
///
/// ```text
/// [    0.412 ms 127.0.0.1:7001] send 42 bytes: DATA 1a2b3c4d>00000000 ts 412 seq 0 base 0 fragment 1/1, 10 bytes
///   0000  01 01 00 00 1a 2b 3c 4d  00 00 00 00 00 00 01 9c  |.....+<M........|
/// ```
pub struct TracedDgram<S> {
    inner: S,
    describe: fn(&[u8]) -> String,
    start: std::time::Instant,
}

impl<S> TracedDgram<S> {
    /// Wraps `inner`; `describe` says in one line what a datagram is. Each line also says
    /// when, in milliseconds since this call (timers at work show as gaps).
    pub fn new(inner: S, describe: fn(&[u8]) -> String) -> Self {
        TracedDgram {
            inner,
            describe,
            start: crate::net::clock::now(),
        }
    }

    fn dump(&self, peer: &dyn std::fmt::Display, dir: Direction, data: &[u8]) {
        let ms = crate::net::clock::now()
            .saturating_duration_since(self.start)
            .as_secs_f64()
            * 1000.0;
        let text = render(&format!("{ms:9.3} ms {peer}"), dir, data);
        let text = text.replacen('\n', &format!(": {}\n", (self.describe)(data)), 1);
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}

impl<S: crate::net::dgram::DatagramSocket> crate::net::dgram::DatagramSocket for TracedDgram<S> {
    type Addr = S::Addr;

    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<crate::net::dgram::Received<S::Addr>> {
        let got = self.inner.recv_dgram(buf).await?;
        self.dump(&got.from, Direction::Recv, &buf[..got.copied]);
        Ok(got)
    }

    fn try_recv_dgram(&self, buf: &mut [u8]) -> io::Result<crate::net::dgram::Received<S::Addr>> {
        let got = self.inner.try_recv_dgram(buf)?;
        self.dump(&got.from, Direction::Recv, &buf[..got.copied]);
        Ok(got)
    }

    async fn send_dgram(&self, data: &[u8], to: &S::Addr) -> io::Result<usize> {
        self.dump(to, Direction::Send, data);
        self.inner.send_dgram(data, to).await
    }

    fn ip_of(addr: &S::Addr) -> Option<std::net::IpAddr> {
        S::ip_of(addr)
    }

    fn can_reply(addr: &S::Addr) -> bool {
        S::can_reply(addr)
    }

    fn socket_addr_of(addr: &S::Addr) -> Option<std::net::SocketAddr> {
        S::socket_addr_of(addr)
    }
}

fn trace_read(t: &Tracer, data: &[u8]) {
    if data.is_empty() {
        t.note("recv 0 bytes: the peer closed its side (end of stream)");
    } else {
        t.event(Direction::Recv, data);
    }
}

/// A stream that counts bytes each way and optionally traces them.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    bytes_in: u64,
    bytes_out: u64,
    tracer: Option<Tracer>,
    /// A read returned end of stream (the peer closed its side).
    eof: bool,
}

impl<S> Metered<S> {
    /// Wraps `inner`; pass a tracer to print every read and write.
    pub fn new(inner: S, tracer: Option<Tracer>) -> Self {
        Self {
            inner,
            bytes_in: 0,
            bytes_out: 0,
            tracer,
            eof: false,
        }
    }

    /// True once a read has returned end of stream: the peer closed its sending side.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// The tracer, when `--trace` is on.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Adds bytes moved through another handle of the same socket (a blocking thread's).
    pub fn count(&mut self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    /// Bytes read so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes written so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Whether every byte is being dumped (so callers keep bytes visible, e.g. by not using
    /// `sendfile`).
    pub fn is_tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// Counts bytes sent by a path that bypassed `poll_write` (see `net::sendfile`).
    pub(crate) fn count_out(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// The wrapped stream, unwrapped (to upgrade it, say to TLS after a proxy's CONNECT).
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn on_read(&mut self, data: &[u8]) {
        self.bytes_in += data.len() as u64;
        // (The blocking `Read` path passes only what it read; an empty read there is EOF too.)
        self.eof |= data.is_empty();
        if let Some(t) = &self.tracer {
            trace_read(t, data);
        }
    }

    pub(crate) fn on_write(&mut self, data: &[u8]) {
        self.bytes_out += data.len() as u64;
        if let Some(t) = &self.tracer {
            t.event(Direction::Send, data);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let filled = &buf.filled()[before..];
            this.eof |= asked && filled.is_empty();
            this.bytes_in += filled.len() as u64;
            if let Some(t) = &this.tracer {
                trace_read(t, filled);
            }
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.on_write(&buf[..n]);
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Read> Read for Metered<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.on_read(&buf[..n]);
        Ok(n)
    }
}

impl<S: Write> Write for Metered<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.on_write(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_golden() {
        let got = render("peer", Direction::Recv, b"hello, world\r\n\x00\xffXYZ");
        let want = "[peer] recv 19 bytes\n  \
            0000  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 0d 0a 00 ff  |hello, world....|\n  \
            0010  58 59 5a                                          |XYZ|\n";
        assert_eq!(got, want);
    }

    #[test]
    fn one_byte_is_singular() {
        assert!(render("p", Direction::Send, b"x").starts_with("[p] send 1 byte\n"));
    }

    #[tokio::test]
    async fn metered_counts_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(64);
        let mut m = Metered::new(a, None);
        m.write_all(b"abc").await.unwrap();
        b.write_all(b"12345").await.unwrap();
        let mut buf = [0u8; 5];
        m.read_exact(&mut buf).await.unwrap();
        assert_eq!((m.bytes_in(), m.bytes_out()), (5, 3));
    }
}
