//! Blocking sockets for the one-thread-per-connection model.
//!
//! The course's multithreaded server gives each client an OS thread running plain blocking
//! `recv`/`send`. We accept with tokio (so the allow-list, limits and logging are the same),
//! then hand the socket to a thread as a blocking `std` stream.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// A tokio stream that lends a blocking `std` handle to the same socket.
///
/// The handle is a duplicate descriptor switched to blocking mode. The mode belongs to the
/// socket, not the descriptor, so while the handle lives the tokio stream must not be used;
/// [`Lent::give_back`] switches the socket back before the tokio side resumes (the host then
/// closes it gracefully).
pub trait IntoBlocking {
    /// The blocking stream type.
    type Std: BlockingStream;
    /// A blocking handle to this socket.
    fn lend_blocking(&self) -> io::Result<Lent<Self::Std>>;
}

/// A blocking handle lent by [`IntoBlocking::lend_blocking`].
#[derive(Debug)]
pub struct Lent<T>(pub T);

impl<T: BlockingStream> Lent<T> {
    /// Switches the socket back to non-blocking mode and drops the handle.
    pub fn give_back(self) {
        let _ = self.0.set_nonblocking_mode(true);
    }
}

macro_rules! lend {
    ($tokio:ty, $std:ty) => {
        impl IntoBlocking for $tokio {
            type Std = $std;
            fn lend_blocking(&self) -> io::Result<Lent<$std>> {
                use std::os::fd::AsFd;
                let fd = self.as_fd().try_clone_to_owned()?;
                let s = <$std>::from(fd);
                s.set_nonblocking(false)?;
                Ok(Lent(s))
            }
        }
    };
}

lend!(tokio::net::TcpStream, std::net::TcpStream);
lend!(tokio::net::UnixStream, std::os::unix::net::UnixStream);

/// What the thread model needs from a blocking stream.
pub trait BlockingStream: Read + Write + Send + Sized + 'static {
    /// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO`.
    fn set_io_timeout(&self, d: Duration) -> io::Result<()>;
    /// A second handle to the same socket (to close it from another thread).
    fn try_clone_stream(&self) -> io::Result<Self>;
    /// Shuts both directions down, waking a thread blocked in `read`.
    fn shutdown_both(&self);
    /// Sets or clears `O_NONBLOCK`.
    fn set_nonblocking_mode(&self, on: bool) -> io::Result<()>;
}

impl BlockingStream for std::net::TcpStream {
    fn set_io_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn set_nonblocking_mode(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}

impl BlockingStream for std::os::unix::net::UnixStream {
    fn set_io_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn set_nonblocking_mode(&self, on: bool) -> io::Result<()> {
        self.set_nonblocking(on)
    }
}

/// A stream that can wait until it is readable without consuming anything, so a server can
/// put off allocating its buffer until a client actually sends (10,000 idle clients then cost
/// no buffers at all).
pub trait Readable {
    /// Waits until a byte, the end of the stream or an error is there to read.
    fn wait_readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

/// Waits for real data with a 1-byte `MSG_PEEK`. `readable()` alone is not enough: tokio
/// marks a freshly accepted socket readable before anything arrives (tokio #8435), which
/// would have every idle client allocate its buffer at once.
macro_rules! peek_wait {
    ($sock:expr) => {{
        let sock = $sock;
        loop {
            sock.readable().await?;
            let peeked = sock.try_io(tokio::io::Interest::READABLE, || {
                let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                socket2::SockRef::from(sock).peek(&mut byte)
            });
            match peeked {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }};
}

impl Readable for tokio::net::TcpStream {
    async fn wait_readable(&self) -> io::Result<()> {
        peek_wait!(self)
    }
}

impl Readable for tokio::net::UnixStream {
    async fn wait_readable(&self) -> io::Result<()> {
        peek_wait!(self)
    }
}

impl<S: Readable + Sync> Readable for super::Metered<S> {
    async fn wait_readable(&self) -> io::Result<()> {
        self.get_ref().wait_readable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn fresh_idle_connection_is_not_readable_until_data_arrives() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let idle = tokio::time::timeout(Duration::from_millis(100), server.wait_readable()).await;
        assert!(idle.is_err(), "an idle client must not look readable");
        client.write_all(b"x").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.wait_readable())
            .await
            .expect("readable after a byte")
            .unwrap();
        // Peeking consumed nothing.
        let mut b = [0u8; 1];
        assert_eq!(server.try_read(&mut b).unwrap(), 1);
    }
}
