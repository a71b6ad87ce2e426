//! One UDP request, one reply: retransmission with doubling waits, all within a deadline.
//!
//! UDP may lose the request or the reply and says nothing about it, so a client that waits
//! once may wait forever. We wait 0.5 s, then resend and wait 1 s, 2 s, … up to `retries`
//! resends, never past `timeout` in all. An ICMP port unreachable (reported on a connected
//! socket as ECONNREFUSED) ends it at once with "no SERVICE server at ADDR".

use std::future::Future;
use std::time::Duration;

use tokio::net::{UdpSocket, UnixDatagram};

use super::{NetError, Tracer, fmt_duration, trace::Direction};

/// A connected datagram socket (UDP or Unix) that a client exchanges datagrams on.
pub trait Connected: Sync {
    /// Sends one datagram to the peer.
    fn send_dgram(&self, data: &[u8]) -> impl Future<Output = std::io::Result<usize>> + Send;
    /// Receives one datagram from the peer.
    fn recv_dgram(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send;
}

impl Connected for UdpSocket {
    fn send_dgram(&self, data: &[u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        self.send(data)
    }
    fn recv_dgram(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        self.recv(buf)
    }
}

impl Connected for UnixDatagram {
    fn send_dgram(&self, data: &[u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        self.send(data)
    }
    fn recv_dgram(&self, buf: &mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send {
        self.recv(buf)
    }
}

/// First wait for a reply; it doubles after each resend.
pub const FIRST_WAIT: Duration = Duration::from_millis(500);

/// How to run an exchange.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// Service name for messages ("daytime").
    pub service: &'static str,
    /// The server, for messages.
    pub addr: &'a str,
    /// Deadline for the whole exchange.
    pub timeout: Duration,
    /// Resends after the first datagram.
    pub retries: u32,
    /// `--trace`.
    pub tracer: Option<&'a Tracer>,
}

/// The reply and how many datagrams it took.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Datagrams sent (1 when nothing was lost).
    pub attempts: u32,
}

impl Exchange<'_> {
    /// Sends `request` on a connected socket and returns the first reply that `accept` takes
    /// (a reply it refuses, such as a late duplicate of an earlier exchange, is skipped).
    pub async fn run(
        &self,
        sock: &impl Connected,
        request: &[u8],
        mut accept: impl FnMut(&[u8]) -> bool,
    ) -> Result<Reply, NetError> {
        let started = super::clock::tokio_now();
        let deadline = started + self.timeout;
        let mut wait = FIRST_WAIT;
        let mut buf = vec![0u8; 65536];
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Some(t) = self.tracer {
                t.event(Direction::Send, request);
            }
            sock.send_dgram(request).await.map_err(|e| self.error(e))?;
            let until = (super::clock::tokio_now() + wait).min(deadline);
            loop {
                match tokio::time::timeout_at(until, sock.recv_dgram(&mut buf)).await {
                    Ok(Ok(n)) => {
                        if let Some(t) = self.tracer {
                            t.event(Direction::Recv, &buf[..n]);
                        }
                        if accept(&buf[..n]) {
                            return Ok(Reply {
                                data: buf[..n].to_vec(),
                                attempts,
                            });
                        }
                        tracing::debug!("skipping a reply that belongs to an earlier request");
                    }
                    Ok(Err(e)) => return Err(self.error(e)),
                    Err(_) => break,
                }
            }
            if attempts > self.retries || super::clock::tokio_now() >= deadline {
                return Err(NetError::Timeout {
                    what: format!(
                        "waiting for the {} reply from {} ({attempts} datagram(s) sent)",
                        self.service, self.addr
                    ),
                    after: super::clock::since(started.into_std()),
                });
            }
            tracing::info!(
                "no reply from {} after {}; retrying",
                self.addr,
                fmt_duration(wait)
            );
            wait *= 2;
        }
    }

    fn error(&self, e: std::io::Error) -> NetError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            NetError::PortUnreachable {
                service: self.service,
                addr: self.addr.to_string(),
            }
        } else {
            NetError::from_io(e, self.addr, format!("talking to {}", self.addr))
        }
    }
}
