//! Clients for the simple services: fetch a reply over TCP (read to the end) or UDP (one
//! datagram, retransmitted with backoff), with limits on how much a server may send.

use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proto::{self, Service};
use crate::net::exchange::Exchange;
use crate::net::{self, Endpoint, Metered, NetError, Tracer, fmt_duration};
use crate::report::{Event, Line, Reporter};

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
    /// Writing the reply to stdout failed.
    #[error("writing to stdout: {0}")]
    Stdout(#[source] io::Error),
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Net(n) => crate::exit::ExitCoded::exit_code(n),
            Error::Stdout(_) => crate::exit::LOCAL_IO,
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

/// `socklab SERVICE get`: asks, checks the reply as the service's RFC defines it, and reports
/// it (for daytime and time, with the offset between the server's clock and ours).
pub async fn get(service: Service, cfg: &Config, bytes: usize, out: Reporter) -> Result<(), Error> {
    let (max, cut) = match service {
        Service::Chargen => (bytes, true),
        Service::Time => (4, false),
        _ => (proto::MAX_DAYTIME.max(proto::MAX_QUOTE + 1), false),
    };
    // Daytime and qotd answer any datagram; RFC 868 asks for an empty one; chargen any.
    let request: &[u8] = if cfg.udp && service != Service::Time {
        b"\n"
    } else {
        b""
    };
    let got = fetch(service, cfg, request, max, cut).await?;
    let shown = cfg.target.to_string();
    let bad = |why: String| Error::BadReply {
        addr: shown.clone(),
        service,
        why,
    };
    let rtt_us = got.rtt.as_micros() as u64;
    match service {
        Service::Time => {
            let four: [u8; 4] = got
                .data
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("{} bytes instead of 4", got.data.len())))?;
            let now = got.midpoint_us.div_euclid(1_000_000);
            let secs = proto::decode_time(four, now);
            let raw: String = four.iter().map(|b| format!("{b:02x}")).collect();
            out.emit(&Clock::new(service, &raw, Some((secs, "RFC 868")), &got))
                .map_err(Error::Stdout)?;
        }
        Service::Daytime => {
            let text = String::from_utf8_lossy(&got.data).to_string();
            out.data(text.trim_end().as_bytes())
                .map_err(Error::Stdout)?;
            out.data(b"\n").map_err(Error::Stdout)?;
            let parsed = proto::parse_daytime(&text, &jiff::tz::TimeZone::system())
                .map(|p| (p.at.as_second(), p.format));
            out.emit(&Clock::new(service, text.trim_end(), parsed, &got))
                .map_err(Error::Stdout)?;
        }
        Service::Chargen => {
            if let Err(at) = proto::check_chargen(&got.data) {
                return Err(bad(format!("byte {at} breaks the RFC 864 pattern")));
            }
            if cfg.udp && got.data.len() > proto::MAX_UDP_CHARGEN {
                tracing::warn!(
                    "{shown} sent {} bytes; RFC 864 says a UDP reply holds at most 512",
                    got.data.len()
                );
            }
            out.data(&got.data).map_err(Error::Stdout)?;
            // On a terminal, end the output's last line so the summary starts on its own
            // (a redirected output keeps exactly the bytes received).
            if !got.data.ends_with(b"\n")
                && !out.is_json()
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                out.data(b"\n").map_err(Error::Stdout)?;
            }
            out.emit(&Chargen {
                bytes: got.data.len(),
                rtt_us,
                service: "chargen",
                from: &shown,
                rtt: got.rtt,
            })
            .map_err(Error::Stdout)?;
        }
        _ => {
            if got.data.is_empty() {
                return Err(bad("an empty reply".into()));
            }
            out.data(&got.data).map_err(Error::Stdout)?;
            out.emit(&Reply {
                reply: &String::from_utf8_lossy(&got.data),
                rtt_us,
                service: service.name(),
            })
            .map_err(Error::Stdout)?;
        }
    }
    Ok(())
}

/// `socklab discard send`: sends `data` and reports how much went.
pub async fn send_discard(cfg: &Config, data: &[u8], out: Reporter) -> Result<(), Error> {
    let sent = discard(cfg, data).await?;
    out.emit(&Discarded {
        bytes: sent,
        service: "discard",
        udp: cfg.udp,
        to: &cfg.target,
    })
    .map_err(Error::Stdout)
}

/// The server's clock and its offset from ours (daytime, time). Both services send whole
/// seconds, so the server's clock read somewhere in [secs, secs+1): we compare its midpoint
/// with the middle of our exchange and say ±0.5 s plus half the round trip.
#[derive(Debug, Serialize)]
struct Clock<'a> {
    /// The date format recognised (`null` when socklab could not read the date).
    format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset_s: Option<f64>,
    reply: &'a str,
    rtt_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_time: Option<String>,
    service: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncertainty_s: Option<f64>,
    #[serde(skip)]
    rtt: Duration,
}

impl<'a> Clock<'a> {
    fn new(
        service: Service,
        reply: &'a str,
        server: Option<(i64, &'a str)>,
        got: &Fetched,
    ) -> Self {
        let rtt_us = got.rtt.as_micros() as u64;
        let Some((secs, format)) = server else {
            return Clock {
                format: None,
                offset_s: None,
                reply,
                rtt_us,
                server_time: None,
                service: service.name(),
                uncertainty_s: None,
                rtt: got.rtt,
            };
        };
        let server_us = secs * 1_000_000 + 500_000;
        Clock {
            format: Some(format),
            offset_s: Some((server_us - got.midpoint_us) as f64 / 1e6),
            reply,
            rtt_us,
            server_time: Some(
                jiff::Timestamp::from_second(secs)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| format!("{secs} s since 1970")),
            ),
            service: service.name(),
            uncertainty_s: Some(0.5 + got.rtt.as_secs_f64() / 2.0),
            rtt: got.rtt,
        }
    }
}

impl Event for Clock<'_> {
    fn lines(&self) -> Vec<Line> {
        let (Some(offset), Some(bound), Some(format), Some(when)) = (
            self.offset_s,
            self.uncertainty_s,
            self.format,
            &self.server_time,
        ) else {
            return vec![Line::Result(
                "offset: unknown (socklab does not recognise this date format)".into(),
            )];
        };
        let direction = if offset >= 0.0 { "ahead of" } else { "behind" };
        let mut lines = Vec::new();
        if self.service == Service::Time.name() {
            lines.push(Line::Result(when.clone()));
        }
        lines.push(Line::Result(format!(
            "offset: the server's clock is {:.1} s {direction} this machine's (±{bound:.1} s; \
             {format}; rtt {})",
            offset.abs(),
            fmt_duration(self.rtt)
        )));
        lines
    }
}

/// Chargen's lines, checked.
#[derive(Debug, Serialize)]
struct Chargen<'a> {
    bytes: usize,
    rtt_us: u64,
    service: &'static str,
    #[serde(skip)]
    from: &'a str,
    #[serde(skip)]
    rtt: Duration,
}

impl Event for Chargen<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "{} bytes of chargen from {} in {}, pattern checked",
            self.bytes,
            self.from,
            fmt_duration(self.rtt)
        ))]
    }
}

/// A quote (the text itself went to stdout as data).
#[derive(Debug, Serialize)]
struct Reply<'a> {
    reply: &'a str,
    rtt_us: u64,
    service: &'static str,
}

impl Event for Reply<'_> {
    fn lines(&self) -> Vec<Line> {
        Vec::new()
    }
}

/// What `discard send` sent.
#[derive(Debug, Serialize)]
struct Discarded<'a> {
    bytes: u64,
    service: &'static str,
    udp: bool,
    #[serde(skip)]
    to: &'a Endpoint,
}

impl Event for Discarded<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Status(format!(
            "{} bytes sent to {}{}",
            self.bytes,
            self.to,
            if self.udp {
                " (UDP: delivery not confirmed)"
            } else {
                " and discarded"
            }
        ))]
    }
}
