//! `sendfile(2)`: file bytes to a socket without passing through our memory.
//!
//! A static file server's large responses are copies from the page cache to a socket. With
//! `read` + `write` each byte crosses into user space and back; `sendfile` moves it inside the
//! kernel. The socket is non-blocking, so one call sends what fits in the socket buffer and
//! we wait for writability like any other write.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;

/// A stream that can send straight from a file.
pub trait SendFile {
    /// Sends up to `count` bytes of `file` starting at `offset` (the file's own position is
    /// neither used nor moved), waiting until the socket takes some. Returns the bytes sent:
    /// 0 means `offset` is at or past the end of the file.
    fn send_file(
        &mut self,
        file: &File,
        offset: u64,
        count: usize,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Sends some of `buf` with `MSG_MORE` (the kernel holds a partial segment back for the
    /// data that follows, so a response head before its `sendfile` body goes out in the same
    /// packet instead of one of its own), waiting until the socket takes some. Returns the
    /// bytes sent.
    fn send_more(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

fn sendfile_once(sock: &impl AsRawFd, file: &File, offset: u64, count: usize) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: both descriptors are open for the duration of the call and `off` is a valid
    // pointer; sendfile writes only to `off`.
    let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn send_more_once(sock: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length for the duration of the call.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

macro_rules! impl_send_file {
    ($t:ty) => {
        impl SendFile for $t {
            async fn send_more(&mut self, buf: &[u8]) -> io::Result<usize> {
                loop {
                    self.writable().await?;
                    match self.try_io(Interest::WRITABLE, || send_more_once(&*self, buf)) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => return other,
                    }
                }
            }

            async fn send_file(
                &mut self,
                file: &File,
                offset: u64,
                count: usize,
            ) -> io::Result<usize> {
                loop {
                    self.writable().await?;
                    match self.try_io(Interest::WRITABLE, || {
                        sendfile_once(&*self, file, offset, count)
                    }) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        other => return other,
                    }
                }
            }
        }
    };
}

impl_send_file!(tokio::net::TcpStream);
impl_send_file!(tokio::net::UnixStream);

impl<S: SendFile + Send> SendFile for super::Metered<S> {
    async fn send_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.get_mut().send_more(buf).await?;
        self.on_write(&buf[..n]);
        Ok(n)
    }

    async fn send_file(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        let n = self.get_mut().send_file(file, offset, count).await?;
        self.count_out(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn sends_a_file_range_to_a_socket() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(s.send_more(b"head:").await.unwrap(), 5);
        let (mut off, end) = (1000u64, 250_000u64);
        while off < end {
            let n = s.send_file(&f, off, (end - off) as usize).await.unwrap();
            assert!(n > 0);
            off += n as u64;
        }
        // Past the end of the file: nothing to send.
        assert_eq!(s.send_file(&f, data.len() as u64, 10).await.unwrap(), 0);
        drop(s);
        let got = reader.await.unwrap();
        assert_eq!(&got[..5], b"head:");
        assert_eq!(&got[5..], &data[1000..250_000]);
    }
}
