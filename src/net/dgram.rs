//! Datagram receive that notices truncation.
//!
//! `recvfrom()` into a buffer smaller than the datagram silently drops the rest: the call
//! returns the buffer's size and the kernel discards the tail. nc, ncat and socat live with
//! that. Linux tells us the datagram's real size if we pass `MSG_TRUNC` (see `recv(2)`), so
//! the caller can compare it with the buffer and say so.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{UdpSocket, UnixDatagram};

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Received<A> {
    /// Bytes copied into the buffer (at most the buffer's length).
    pub copied: usize,
    /// The datagram's real size; larger than `copied` when it was truncated.
    pub size: usize,
    /// The sender.
    pub from: A,
}

impl<A> Received<A> {
    /// True when the datagram did not fit into the buffer.
    pub fn truncated(&self) -> bool {
        self.size > self.copied
    }
}

fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the same layout as `u8`, and recvfrom only ever writes
    // initialised bytes into the slice, so the caller's `[u8]` stays initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Receives one UDP datagram, reporting its real size.
pub async fn recv_udp(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received<SocketAddr>> {
    let cap = buf.len();
    let got = sock
        .async_io(Interest::READABLE, || {
            SockRef::from(sock).recv_from_with_flags(as_uninit(buf), libc::MSG_TRUNC)
        })
        .await?;
    udp_received(got, cap)
}

/// Receives one UDP datagram if one is waiting, without waiting (`WouldBlock` if none).
pub fn try_recv_udp(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received<SocketAddr>> {
    let cap = buf.len();
    let got = sock.try_io(Interest::READABLE, || {
        SockRef::from(sock).recv_from_with_flags(as_uninit(buf), libc::MSG_TRUNC)
    })?;
    udp_received(got, cap)
}

fn udp_received(
    (size, from): (usize, socket2::SockAddr),
    cap: usize,
) -> io::Result<Received<SocketAddr>> {
    let from = from
        .as_socket()
        .ok_or_else(|| io::Error::other("datagram from a non-IP address"))?;
    Ok(Received {
        copied: size.min(cap),
        size,
        from,
    })
}

/// The sender of a Unix datagram: a path, an abstract name, or nobody (unbound).
#[derive(Debug, Clone)]
pub struct UnixPeer(socket2::SockAddr);

impl UnixPeer {
    /// True when the sender has no address (an unbound socket), so no reply can reach it.
    pub fn is_unnamed(&self) -> bool {
        self.0.as_pathname().is_none() && self.0.as_abstract_namespace().is_none()
    }
}

impl std::fmt::Display for UnixPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = self.0.as_pathname() {
            write!(f, "unix:{}", p.display())
        } else if let Some(name) = self.0.as_abstract_namespace() {
            write!(f, "unix:@{}", String::from_utf8_lossy(name))
        } else {
            f.write_str("unix:(unnamed)")
        }
    }
}

/// Receives one Unix datagram, reporting its real size and the sender.
pub async fn recv_unix(sock: &UnixDatagram, buf: &mut [u8]) -> io::Result<Received<UnixPeer>> {
    let cap = buf.len();
    let (size, from) = sock
        .async_io(Interest::READABLE, || {
            SockRef::from(sock).recv_from_with_flags(as_uninit(buf), libc::MSG_TRUNC)
        })
        .await?;
    Ok(Received {
        copied: size.min(cap),
        size,
        from: UnixPeer(from),
    })
}

/// Sends one Unix datagram to `to` (which may be an abstract address, unlike tokio's
/// `send_to`, which takes only paths).
pub async fn send_unix(sock: &UnixDatagram, data: &[u8], to: &UnixPeer) -> io::Result<usize> {
    sock.async_io(Interest::WRITABLE, || {
        SockRef::from(sock).send_to(data, &to.0)
    })
    .await
}

/// A bound datagram socket a server can receive on and reply from: UDP or Unix.
pub trait DatagramSocket: Send + Sync + 'static {
    /// The sender's address type.
    type Addr: Clone + std::fmt::Display + Send + Sync + 'static;
    /// Receives one datagram, reporting its real size.
    fn recv_dgram(
        &self,
        buf: &mut [u8],
    ) -> impl std::future::Future<Output = io::Result<Received<Self::Addr>>> + Send;
    /// Receives one datagram only if one is already waiting: `WouldBlock` otherwise, and
    /// always by default. A driver that has just been woken by a datagram drains the others
    /// with it, so a burst costs one wake-up and one reply (an acknowledgement of the lot).
    fn try_recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<Self::Addr>> {
        let _ = buf;
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// Sends one datagram to `to`.
    fn send_dgram(
        &self,
        data: &[u8],
        to: &Self::Addr,
    ) -> impl std::future::Future<Output = io::Result<usize>> + Send;
    /// The sender's IP address, for allow-lists (None for Unix senders).
    fn ip_of(addr: &Self::Addr) -> Option<std::net::IpAddr>;
    /// Whether a reply can reach `addr` (an unbound Unix socket has no address).
    fn can_reply(addr: &Self::Addr) -> bool;
    /// The sender's IP address and port, for the reflection guard (None for Unix senders).
    fn socket_addr_of(addr: &Self::Addr) -> Option<SocketAddr>;
}

impl DatagramSocket for UdpSocket {
    type Addr = SocketAddr;

    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<SocketAddr>> {
        recv_udp(self, buf).await
    }

    fn try_recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<SocketAddr>> {
        try_recv_udp(self, buf)
    }

    async fn send_dgram(&self, data: &[u8], to: &SocketAddr) -> io::Result<usize> {
        self.send_to(data, to).await
    }

    fn ip_of(addr: &SocketAddr) -> Option<std::net::IpAddr> {
        Some(addr.ip())
    }

    fn can_reply(_: &SocketAddr) -> bool {
        true
    }

    fn socket_addr_of(addr: &SocketAddr) -> Option<SocketAddr> {
        Some(*addr)
    }
}

impl DatagramSocket for UnixDatagram {
    type Addr = UnixPeer;

    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<UnixPeer>> {
        recv_unix(self, buf).await
    }

    async fn send_dgram(&self, data: &[u8], to: &UnixPeer) -> io::Result<usize> {
        send_unix(self, data, to).await
    }

    fn ip_of(_: &UnixPeer) -> Option<std::net::IpAddr> {
        None
    }

    fn can_reply(addr: &UnixPeer) -> bool {
        !addr.is_unnamed()
    }

    fn socket_addr_of(_: &UnixPeer) -> Option<SocketAddr> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversize_datagram_reports_real_size() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        tx.send_to(&[7u8; 3000], rx.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 1000];
        let got = recv_udp(&rx, &mut buf).await.unwrap();
        assert_eq!((got.copied, got.size), (1000, 3000));
        assert!(got.truncated());
        assert_eq!(got.from, tx.local_addr().unwrap());
    }

    #[tokio::test]
    async fn fitting_datagram_is_not_truncated() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        tx.send_to(b"hi", rx.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 1000];
        let got = recv_udp(&rx, &mut buf).await.unwrap();
        assert_eq!((got.copied, got.size, &buf[..2]), (2, 2, &b"hi"[..]));
        assert!(!got.truncated());
    }
}
