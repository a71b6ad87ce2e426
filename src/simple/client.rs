//! Clients for the simple services: fetch a reply over TCP (read to the end) or UDP (one
//! datagram, retransmitted with backoff), with limits on how much a server may send.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proto::Service;
use crate::net::exchange::Exchange;
use crate::net::{self, Endpoint, Metered, NetError, Tracer};

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Endpoint,
    /// UDP instead of TCP.
    pub udp: bool,
    /// Deadline for connecting, and for the whole reply.
    pub timeout: Duration,
    /// UDP resends.
    pub retries: u32,
    /// `--trace`.
    pub trace: bool,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, sending or receiving failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The reply is not what the service sends.
    #[error("{addr} sent a bad {service} reply: {why}")]
    BadReply {
        /// The server.
        addr: String,
        /// The service.
        service: Service,
        /// What is wrong with it.
        why: String,
    },
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Net(n) => crate::exit::ExitCoded::exit_code(n),
            _ => crate::exit::PROTOCOL,
        }
    }
}

/// A reply and when it came.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes.
    pub data: Vec<u8>,
    /// From sending the request to the end of the reply.
    pub rtt: Duration,
    /// Wall-clock time (Unix microseconds) halfway through the exchange: the best local
    /// estimate of the moment the server read its clock.
    pub midpoint_us: i64,
}

/// Sends `request` and reads the reply: over TCP until the server closes or `max` bytes
/// arrived (a longer reply is cut at `max` when `cut` is set, else an error); over UDP one
/// datagram.
pub async fn fetch(
    service: Service,
    cfg: &Config,
    request: &[u8],
    max: usize,
    cut: bool,
) -> Result<Fetched, Error> {
    let addr = cfg.target.to_string();
    let tracer = cfg.trace.then(|| Tracer::new(addr.clone()));
    let wall_start = net::clock::unix_micros() as i64;
    let started = net::clock::now();
    let data = if cfg.udp {
        let (sock, _) = net::connect::udp(&cfg.target).await?;
        let exchange = Exchange {
            service: service.name(),
            addr: &addr,
            timeout: cfg.timeout,
            retries: cfg.retries,
            tracer: tracer.as_ref(),
        };
        exchange.run(&sock, request, |_| true).await?.data
    } else {
        let (stream, _) = net::connect::tcp(&cfg.target, cfg.timeout).await?;
        let mut s = Metered::new(stream, tracer);
        let io = |e: std::io::Error| NetError::from_io(e, &addr, format!("talking to {addr}"));
        if !request.is_empty() {
            s.write_all(request).await.map_err(io)?;
        }
        let mut data = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let read_all = async {
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 || (cut && data.len() + n >= max) || data.len() + n > max {
                    data.extend_from_slice(&buf[..n]);
                    return Ok::<(), std::io::Error>(());
                }
                data.extend_from_slice(&buf[..n]);
            }
        };
        match tokio::time::timeout(cfg.timeout, read_all).await {
            Ok(r) => r.map_err(io)?,
            Err(_) => {
                return Err(NetError::Timeout {
                    what: format!("waiting for the {service} reply from {addr}"),
                    after: cfg.timeout,
                }
                .into());
            }
        }
        if data.len() > max {
            if !cut {
                return Err(Error::BadReply {
                    addr,
                    service,
                    why: format!("more than {max} bytes"),
                });
            }
            data.truncate(max);
        }
        data
    };
    let rtt = crate::net::clock::since(started);
    Ok(Fetched {
        data,
        rtt,
        midpoint_us: wall_start + (rtt.as_micros() / 2) as i64,
    })
}

/// Sends `data` to a discard server: over TCP writes it all and waits for the server to close
/// after our end of stream; over UDP sends it as datagrams of at most 65507 bytes (no reply
/// is expected, so UDP delivery cannot be confirmed). Returns the bytes sent.
pub async fn discard(cfg: &Config, data: &[u8]) -> Result<u64, Error> {
    let addr = cfg.target.to_string();
    let tracer = cfg.trace.then(|| Tracer::new(addr.clone()));
    let io = |e: std::io::Error| NetError::from_io(e, &addr, format!("talking to {addr}"));
    if cfg.udp {
        let (sock, _) = net::connect::udp(&cfg.target).await?;
        for chunk in data.chunks(65507) {
            if let Some(t) = &tracer {
                t.event(net::trace::Direction::Send, chunk);
            }
            sock.send(chunk).await.map_err(io)?;
        }
        return Ok(data.len() as u64);
    }
    let (stream, _) = net::connect::tcp(&cfg.target, cfg.timeout).await?;
    let mut s = Metered::new(stream, tracer);
    net::within(cfg.timeout, s.write_all(data))
        .await
        .map_err(io)?;
    s.shutdown().await.map_err(io)?;
    let mut buf = [0u8; 1024];
    // A discard server sends nothing; wait for its close so we know everything arrived.
    let n = net::within(cfg.timeout, s.read(&mut buf))
        .await
        .map_err(io)?;
    if n > 0 {
        return Err(Error::BadReply {
            addr,
            service: Service::Discard,
            why: format!("it sent {n} byte(s) back; a discard server sends nothing"),
        });
    }
    Ok(s.bytes_out())
}
