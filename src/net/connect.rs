//! Client-side connections: resolve, try each address in turn, time out, explain failures.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

use super::{Endpoint, NetError};

/// A client's stream connection: TCP or a Unix stream socket, whichever the address named.
#[derive(Debug)]
pub enum ClientStream {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

/// Connects to `endpoint`: `unix:/PATH` as a Unix stream socket, anything else over TCP
/// (each address in turn), bounded by `timeout`. Every stream client starts here.
pub async fn stream(endpoint: &Endpoint, timeout: Duration) -> Result<ClientStream, NetError> {
    match endpoint {
        Endpoint::Unix(path) => Ok(ClientStream::Unix(unix_stream(path, timeout).await?)),
        inet => Ok(ClientStream::Tcp(tcp(inet, timeout).await?.0)),
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            ClientStream::Tcp($s) => $e,
            ClientStream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Tcp(s) => s.is_write_vectored(),
            ClientStream::Unix(s) => s.is_write_vectored(),
        }
    }
}

/// Connects over TCP to the first address of `endpoint` that accepts, each try bounded by
/// `timeout`. The error is the last address's, which is the one a person can act on.
pub async fn tcp(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), NetError> {
    let addrs = endpoint.resolve().await?;
    tcp_to(&addrs, &endpoint.to_string(), timeout).await
}

/// Connects over TCP to the first of `addrs` (already resolved, perhaps filtered by address
/// family) that accepts, each try bounded by `timeout`. `name` names the target when the list
/// is empty.
pub async fn tcp_to(
    addrs: &[SocketAddr],
    name: &str,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), NetError> {
    let mut last = None;
    for &addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| NetError::from_io(e, addr, "setting TCP_NODELAY"))?;
                return Ok((stream, addr));
            }
            Ok(Err(e)) => last = Some(NetError::from_io(e, addr, format!("connecting to {addr}"))),
            Err(_) => {
                last = Some(NetError::Timeout {
                    what: format!("connecting to {addr}"),
                    after: timeout,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| NetError::NameNotFound {
        host: name.to_string(),
        reason: "no addresses".into(),
    }))
}

/// A UDP socket connected to the first address of `endpoint`.
///
/// "Connected" matters for UDP: the kernel then filters replies to that peer, and reports an
/// ICMP port-unreachable as `ECONNREFUSED` on the next `recv`, so a client with no server gets
/// an answer instead of a hang.
pub async fn udp(endpoint: &Endpoint) -> Result<(UdpSocket, SocketAddr), NetError> {
    let addrs = endpoint.resolve().await?;
    let addr = addrs[0]; // resolve() never returns an empty list
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| NetError::from_bind(e, local))?;
    sock.connect(addr)
        .await
        .map_err(|e| NetError::from_io(e, addr, format!("connecting to {addr}")))?;
    Ok((sock, addr))
}

/// Connects to a Unix stream socket.
pub async fn unix_stream(path: &Path, timeout: Duration) -> Result<UnixStream, NetError> {
    let addr = format!("unix:{}", path.display());
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(unix_error(e, &addr)),
        Err(_) => Err(NetError::Timeout {
            what: format!("connecting to {addr}"),
            after: timeout,
        }),
    }
}

/// A Unix datagram socket connected to `path`, bound to an autobound abstract address so
/// the server has somewhere to send its replies (an unbound socket cannot receive any).
pub async fn unix_datagram(path: &Path) -> Result<UnixDatagram, NetError> {
    let addr = format!("unix:{}", path.display());
    let sock = bind_autobound().map_err(|e| NetError::Io {
        what: "binding a local Unix datagram socket".into(),
        source: e,
    })?;
    sock.connect(path).map_err(|e| unix_error(e, &addr))?;
    Ok(sock)
}

fn bind_autobound() -> std::io::Result<UnixDatagram> {
    use std::os::linux::net::SocketAddrExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "socklab-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let std = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
    std.set_nonblocking(true)?;
    UnixDatagram::from_std(std)
}

fn unix_error(e: std::io::Error, addr: &str) -> NetError {
    match e.kind() {
        std::io::ErrorKind::NotFound => NetError::Refused {
            addr: format!("{addr} (no such socket file)"),
        },
        _ => NetError::from_io(e, addr, format!("connecting to {addr}")),
    }
}
