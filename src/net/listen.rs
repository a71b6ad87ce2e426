//! Binding listeners and sockets with socket2, so every server gets the same options.
//!
//! `std` and tokio bind with fixed choices (backlog 128 or 1024, no say over IPV6_V6ONLY).
//! A sockets lab needs the knobs the course turns: `SO_REUSEADDR` (on, as the course's
//! servers do, so a restarted server does not wait out TIME_WAIT), the `listen()` backlog
//! (the course's experiment uses 1 and 5), and dual-stack `::`.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::NetError;

/// Default `listen()` backlog.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Options for binding a server socket.
#[derive(Debug, Clone, Copy)]
pub struct BindOptions {
    /// `listen()` backlog for stream sockets.
    pub backlog: i32,
    /// Set `SO_REUSEADDR` (default on).
    pub reuse_addr: bool,
}

impl Default for BindOptions {
    fn default() -> Self {
        Self {
            backlog: DEFAULT_BACKLOG,
            reuse_addr: true,
        }
    }
}

fn new_socket(
    addr: SocketAddr,
    ty: Type,
    proto: Protocol,
    opts: BindOptions,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    // SO_REUSEADDR lets a restarted TCP server bind while old connections sit in TIME_WAIT.
    // On a UDP socket it means something else: a second socket may bind a port another one
    // holds and receive its datagrams. UDP has no TIME_WAIT, so it never needs it.
    if opts.reuse_addr && ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        // Binding `::` should accept IPv4 too (as `::ffff:a.b.c.d`). Linux defaults to that
        // already, but the default is a sysctl; say it explicitly, and before bind().
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Binds a TCP listener on `addr` (port 0 picks a free port).
pub fn tcp_listener(
    addr: SocketAddr,
    opts: BindOptions,
) -> Result<tokio::net::TcpListener, NetError> {
    let io_err = |e: io::Error| NetError::from_bind(e, addr);
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP, opts).map_err(io_err)?;
    socket.bind(&addr.into()).map_err(io_err)?;
    socket.listen(opts.backlog).map_err(io_err)?;
    let std: std::net::TcpListener = socket.into();
    tokio::net::TcpListener::from_std(std).map_err(io_err)
}

/// Binds a UDP socket on `addr`.
pub fn udp_socket(addr: SocketAddr, opts: BindOptions) -> Result<tokio::net::UdpSocket, NetError> {
    let io_err = |e: io::Error| NetError::from_bind(e, addr);
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP, opts).map_err(io_err)?;
    socket.bind(&addr.into()).map_err(io_err)?;
    let std: std::net::UdpSocket = socket.into();
    tokio::net::UdpSocket::from_std(std).map_err(io_err)
}

/// Binds a Unix stream listener at `path`, replacing a stale socket file.
pub fn unix_listener(path: &Path, opts: BindOptions) -> Result<tokio::net::UnixListener, NetError> {
    clear_stale_socket(path)?;
    let io_err = |e: io::Error| unix_bind_error(e, path);
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err)?;
    socket
        .bind(&SockAddr::unix(path).map_err(io_err)?)
        .map_err(io_err)?;
    socket.listen(opts.backlog).map_err(io_err)?;
    socket.set_nonblocking(true).map_err(io_err)?;
    let std: std::os::unix::net::UnixListener = socket.into();
    tokio::net::UnixListener::from_std(std).map_err(io_err)
}

/// Binds a Unix datagram socket at `path`, replacing a stale socket file.
pub fn unix_datagram(path: &Path) -> Result<tokio::net::UnixDatagram, NetError> {
    clear_stale_socket(path)?;
    tokio::net::UnixDatagram::bind(path).map_err(|e| unix_bind_error(e, path))
}

fn unix_bind_error(e: io::Error, path: &Path) -> NetError {
    match e.kind() {
        io::ErrorKind::AddrInUse => NetError::AddrInUse {
            addr: format!("unix:{}", path.display()),
        },
        io::ErrorKind::PermissionDenied => NetError::PermissionDenied {
            what: format!("creating the socket file {}", path.display()),
        },
        _ => NetError::Io {
            what: format!("binding unix:{}", path.display()),
            source: e,
        },
    }
}

/// Removes `path` if it is a socket nobody listens on any more.
///
/// A server killed without cleanup leaves its socket file behind, and `bind()` then fails
/// with "address in use" although nobody uses it. We remove the file only when it *is* a
/// socket and connecting to it is refused; a live server's socket, or a regular file that
/// happens to have that name, is left alone with a clear error.
pub fn clear_stale_socket(path: &Path) -> Result<(), NetError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(NetError::Io {
                what: format!("checking {}", path.display()),
                source: e,
            });
        }
    };
    let addr = format!("unix:{}", path.display());
    if !meta.file_type().is_socket() {
        return Err(NetError::Io {
            what: format!("binding {addr}"),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket; refusing to remove it",
            ),
        });
    }
    // A stream socket with a listener accepts the connect; a datagram socket with a live
    // owner accepts a connected datagram socket. Either means "in use".
    let live_stream = std::os::unix::net::UnixStream::connect(path).is_ok();
    let live_dgram = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(path))
        .is_ok();
    if live_stream || live_dgram {
        return Err(NetError::AddrInUse { addr });
    }
    tracing::info!(path = %path.display(), "removing stale socket file");
    std::fs::remove_file(path).map_err(|e| NetError::Io {
        what: format!("removing stale socket {}", path.display()),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_zero_gets_a_real_port() {
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[tokio::test]
    async fn second_bind_is_addr_in_use() {
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let err = tcp_listener(l.local_addr().unwrap(), BindOptions::default()).unwrap_err();
        assert!(matches!(err, NetError::AddrInUse { .. }), "{err}");
    }

    #[tokio::test]
    async fn second_udp_bind_is_addr_in_use() {
        // Regression (issue 8): SO_REUSEADDR on UDP let a second server take a busy port.
        let s = udp_socket("127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let err = udp_socket(s.local_addr().unwrap(), BindOptions::default()).unwrap_err();
        assert!(matches!(err, NetError::AddrInUse { .. }), "{err}");
    }

    #[tokio::test]
    async fn stale_unix_socket_is_replaced_but_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let live = unix_listener(&path, BindOptions::default()).unwrap();
        let err = unix_listener(&path, BindOptions::default()).unwrap_err();
        assert!(matches!(err, NetError::AddrInUse { .. }), "{err}");
        drop(live); // leaves the file behind, like a killed server
        assert!(path.exists());
        unix_listener(&path, BindOptions::default()).unwrap();
    }

    #[tokio::test]
    async fn regular_file_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"precious").unwrap();
        let err = unix_listener(&path, BindOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }
}
