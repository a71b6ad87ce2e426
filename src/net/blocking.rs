//! Blocking sockets for the one-thread-per-connection model.
//!
//! The course's multithreaded server gives each client an OS thread running plain blocking
//! `recv`/`send`. We accept with tokio (so the allow-list, limits and logging are the same),
//! then hand the socket to a thread as a blocking `std` stream.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

/// A tokio stream that can become a blocking `std` stream.
pub trait IntoBlocking {
    /// The blocking stream type.
    type Std: BlockingStream;
    /// Converts, switching the socket back to blocking mode.
    fn into_blocking(self) -> io::Result<Self::Std>;
}

/// What the thread model needs from a blocking stream.
pub trait BlockingStream: Read + Write + Send + Sized + 'static {
    /// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO`.
    fn set_io_timeout(&self, d: Duration) -> io::Result<()>;
    /// A second handle to the same socket (to close it from another thread).
    fn try_clone_stream(&self) -> io::Result<Self>;
    /// Shuts both directions down, waking a thread blocked in `read`.
    fn shutdown_both(&self);
}

impl IntoBlocking for tokio::net::TcpStream {
    type Std = std::net::TcpStream;
    fn into_blocking(self) -> io::Result<Self::Std> {
        let s = self.into_std()?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
}

impl IntoBlocking for tokio::net::UnixStream {
    type Std = std::os::unix::net::UnixStream;
    fn into_blocking(self) -> io::Result<Self::Std> {
        let s = self.into_std()?;
        s.set_nonblocking(false)?;
        Ok(s)
    }
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
}

/// A stream that can wait until it is readable without consuming anything, so a server can
/// put off allocating its buffer until a client actually sends (10,000 idle clients then cost
/// no buffers at all).
pub trait Readable {
    /// Waits for readability (data, end of stream or an error).
    fn wait_readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

impl Readable for tokio::net::TcpStream {
    async fn wait_readable(&self) -> io::Result<()> {
        self.readable().await
    }
}

impl Readable for tokio::net::UnixStream {
    async fn wait_readable(&self) -> io::Result<()> {
        self.readable().await
    }
}

impl<S: Readable + Sync> Readable for super::Metered<S> {
    async fn wait_readable(&self) -> io::Result<()> {
        self.get_ref().wait_readable().await
    }
}
