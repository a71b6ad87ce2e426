//! Opening the connection for one request: straight to the origin, or to a proxy (plain, or a
//! CONNECT tunnel with TLS inside), with TLS for https; and the buffered reads on it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::Url;

use super::request;
use super::ui::{LogDir, Ui};
use super::{Config, Error, Family, tls};
use crate::http::h1::{self, Response, Status};
use crate::net::{self, Metered, NetError, Tracer};

/// A plain or TLS stream.
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (perhaps through a proxy's tunnel).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Size of the read buffer: big enough for few system calls per megabyte, small enough that
/// memory stays flat.
pub const BUF_SIZE: usize = 256 * 1024;
/// Most informational (1xx) responses read before the final one. A server may send several
/// (`100 Continue`, `103 Early Hints`), but one that never stops would keep the client (and
/// its `--header-log`) going forever.
pub const MAX_INFORMATIONAL: usize = 20;

/// A connection ready for a request, with its read buffer.
pub struct Conn {
    io: Metered<Stream>,
    /// The socket's peer (the proxy's address when there is one), for logs and errors.
    pub peer: String,
    /// Whether `peer` is a proxy.
    pub via_proxy: bool,
    /// Whether requests go in absolute form (a plain-HTTP proxy).
    pub absolute_form: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
    /// The TLS peer closed the TCP connection without a `close_notify` alert.
    unclean_eof: bool,
    /// Informational (1xx) responses read so far.
    informational: usize,
}

impl Conn {
    fn new(
        stream: Stream,
        peer: String,
        via_proxy: bool,
        absolute_form: bool,
        cfg: &Config,
    ) -> Self {
        let tracer = cfg.trace.then(|| Tracer::new(peer.clone()));
        Self {
            io: Metered::new(stream, tracer),
            peer,
            via_proxy,
            absolute_form,
            buf: Vec::new(),
            start: 0,
            end: 0,
            timeout: cfg.timeout,
            unclean_eof: false,
            informational: 0,
        }
    }

    fn io_err(&self, e: io::Error, what: &str) -> Error {
        net_error(e, &self.peer, what, self.timeout).into()
    }

    /// Writes all of `data`, each write bounded by the read timeout.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        let res = net::within(self.timeout, self.io.write_all(data)).await;
        res.map_err(|e| self.io_err(e, &format!("sending to {}", self.peer)))
    }

    /// Writes `data` (part of a request body) while watching for the response, as RFC 9112
    /// §9.5 asks of a client sending a body: a server may refuse it (413, 401...) before it
    /// has read it, and close. Returns `Some(final head)` when the response came before all
    /// of `data` went out (the rest is not sent), `None` when all of it was written.
    ///
    /// A write that fails (the server reset the connection after its answer) is not the end
    /// either: whatever answer the kernel still holds is read first, and only without one is
    /// the write error reported. Each step (a read or a write) is bounded by `-t`.
    pub async fn send_watching(
        &mut self,
        ui: &mut Ui,
        mut data: &[u8],
    ) -> Result<Option<(Response, Vec<u8>)>, Error> {
        enum Step {
            Read(usize),
            Wrote(usize),
        }
        // The server may have ended its side; reads then stop (they would return 0 at once).
        let mut reading = true;
        while !data.is_empty() {
            if self.buf.is_empty() {
                self.buf = vec![0; BUF_SIZE];
            }
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Both directions in one poll: the socket is one object, so the read and the
            // write cannot be two futures borrowing it at once.
            let (io, room) = (&mut self.io, &mut self.buf[self.end..]);
            let step = std::future::poll_fn(|cx| {
                if reading && !room.is_empty() {
                    let mut rb = ReadBuf::new(room);
                    match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                        Poll::Ready(Ok(())) => {
                            return Poll::Ready(Ok(Step::Read(rb.filled().len())));
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                Pin::new(&mut *io).poll_write(cx, data).map_ok(Step::Wrote)
            });
            match net::within(self.timeout, step).await {
                Ok(Step::Read(0)) => reading = false,
                Ok(Step::Read(n)) => {
                    self.end += n;
                    if let Some(head) = self.take_head(ui)? {
                        return Ok(Some(head));
                    }
                }
                Ok(Step::Wrote(0)) => {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return Err(self.io_err(e, &format!("sending to {}", self.peer)));
                }
                Ok(Step::Wrote(n)) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(self.io_err(e, &format!("sending to {}", self.peer)));
                }
                Err(e) => {
                    let failed = self.io_err(e, &format!("sending to {}", self.peer));
                    return match self.read_head(ui).await {
                        Ok(head) => Ok(Some(head)),
                        Err(_) => Err(failed),
                    };
                }
            }
        }
        Ok(None)
    }

    /// The bytes read but not yet used.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes into the buffer (at most `max` this time); returns how many, 0 at the
    /// end of the stream.
    pub async fn fill(&mut self, max: usize) -> Result<usize, Error> {
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = (self.buf.len() - self.end).min(max.max(1));
        let read = self.io.read(&mut self.buf[self.end..self.end + room]);
        match net::within(self.timeout, read).await {
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            // TLS without close_notify: for a body with a length (or chunked) the decoder
            // says whether it was complete; for one that runs until close the caller must not
            // take it as the end (see `unclean_eof`).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.unclean_eof = true;
                Ok(0)
            }
            Err(e) => Err(self.io_err(e, &format!("reading from {}", self.peer))),
        }
    }

    /// Whether the connection ended without TLS's `close_notify`: an attacker (or a crash)
    /// can cut a TLS stream at any byte, so "until close" is not an end then.
    pub fn unclean_eof(&self) -> bool {
        self.unclean_eof
    }

    /// Reads one response head: the head and its exact bytes. 1xx heads are logged and
    /// skipped, [`MAX_INFORMATIONAL`] at most.
    pub async fn read_head(&mut self, ui: &mut Ui) -> Result<(Response, Vec<u8>), Error> {
        loop {
            if let Some(head) = self.take_head(ui)? {
                return Ok(head);
            }
            let had = self.end - self.start;
            if self.fill(usize::MAX).await? == 0 {
                return Err(Error::NoResponse {
                    peer: self.peer.clone(),
                    partial: had > 0,
                });
            }
        }
    }

    /// The final response head, if the buffer holds one: 1xx heads before it are logged,
    /// counted and skipped. `None`: more bytes are needed.
    fn take_head(&mut self, ui: &mut Ui) -> Result<Option<(Response, Vec<u8>)>, Error> {
        loop {
            let parsed = Response::parse(self.buffered()).map_err(|source| Error::Head {
                peer: self.peer.clone(),
                source,
            })?;
            let Status::Complete((head, used)) = parsed else {
                return Ok(None);
            };
            let raw = self.buffered()[..used].to_vec();
            self.consume(used);
            ui.log_head(LogDir::Response, &self.peer, self.via_proxy, &raw)
                .map_err(Error::log)?;
            if head.status.as_u16() == 101 {
                return Err(Error::Head {
                    peer: self.peer.clone(),
                    source: h1::Error::MalformedHead {
                        kind: h1::Kind::Response,
                        reason: "unexpected 101 Switching Protocols".into(),
                    },
                });
            }
            if !head.status.is_informational() {
                return Ok(Some((head, raw)));
            }
            self.informational += 1;
            if self.informational > MAX_INFORMATIONAL {
                return Err(Error::TooManyInformational {
                    peer: self.peer.clone(),
                    max: MAX_INFORMATIONAL,
                });
            }
        }
    }
}

/// An OS error on the connection to `peer`, with the timeout it ran into.
pub fn net_error(e: io::Error, peer: &str, what: &str, timeout: Duration) -> NetError {
    if e.kind() == io::ErrorKind::TimedOut {
        NetError::Timeout {
            what: what.to_string(),
            after: timeout,
        }
    } else {
        NetError::from_io(e, peer, what)
    }
}

/// Resolves `host` and keeps the addresses of the family asked for.
async fn resolve(
    host: &url::Host<&str>,
    port: u16,
    family: Family,
    limit: Duration,
) -> Result<Vec<SocketAddr>, NetError> {
    let name = match host {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    // A name server that does not answer is bounded by --connect-timeout too.
    let addrs = match tokio::time::timeout(limit, net::addr::resolve_host(&name, port)).await {
        Ok(addrs) => addrs?,
        Err(_) => {
            return Err(NetError::Timeout {
                what: format!("resolving {name}"),
                after: limit,
            });
        }
    };
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .collect();
    if kept.is_empty() {
        let fam = if family == Family::V4 { "IPv4" } else { "IPv6" };
        return Err(NetError::NameNotFound {
            host: name,
            reason: format!(
                "no {fam} address (-{})",
                if family == Family::V4 { 4 } else { 6 }
            ),
        });
    }
    Ok(kept)
}

/// Opens a connection for a request to `url`, through `proxy` if given. `tls` is built on
/// the first https URL and kept.
pub async fn open(
    url: &Url,
    proxy: Option<&Url>,
    cfg: &Config,
    ui: &mut Ui,
    tls: &mut Option<TlsConnector>,
) -> Result<Conn, Error> {
    let host = url
        .host()
        .ok_or_else(|| Error::Usage(format!("{url}: no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let https = url.scheme() == "https";
    let Some(proxy) = proxy else {
        let addrs = resolve(&host, port, cfg.family, cfg.connect_timeout).await?;
        let (tcp, addr) =
            net::connect::tcp_to(&addrs, &host.to_string(), cfg.connect_timeout).await?;
        let peer = addr.to_string();
        let stream = if https {
            Stream::Tls(Box::new(handshake(tcp, &host, &peer, cfg, tls).await?))
        } else {
            Stream::Tcp(tcp)
        };
        return Ok(Conn::new(stream, peer, false, false, cfg));
    };

    let proxy_name = request::authority(proxy);
    let phost = proxy
        .host()
        .ok_or_else(|| Error::Usage(format!("proxy {proxy}: no host")))?;
    let pport = proxy.port_or_known_default().unwrap_or(80);
    let reach = |e: NetError| Error::Proxy(format!("cannot reach proxy {proxy_name}: {e}"));
    let addrs = resolve(&phost, pport, cfg.family, cfg.connect_timeout)
        .await
        .map_err(reach)?;
    let (mut tcp, addr) = net::connect::tcp_to(&addrs, &proxy_name, cfg.connect_timeout)
        .await
        .map_err(reach)?;
    let peer = addr.to_string();
    if !https {
        return Ok(Conn::new(Stream::Tcp(tcp), peer, true, true, cfg));
    }

    // CONNECT host:port, then TLS inside the tunnel. The tunnel's own exchange is traced
    // and logged like any other.
    let head = request::connect_head(url, &cfg.user_agent, cfg.proxy_auth.as_deref());
    let bytes = head.encode();
    {
        let mut conn = Conn::new(Stream::Tcp(tcp), peer.clone(), true, false, cfg);
        ui.log_head(LogDir::Request, &peer, true, &bytes)
            .map_err(Error::log)?;
        conn.send(&bytes)
            .await
            .map_err(|e| proxy_failed(&proxy_name, e))?;
        let (resp, _) = conn
            .read_head(ui)
            .await
            .map_err(|e| proxy_failed(&proxy_name, e))?;
        if !resp.status.is_success() {
            return Err(Error::Proxy(proxy_refusal(
                &proxy_name,
                &resp,
                cfg,
                &head.target,
            )));
        }
        if !conn.buffered().is_empty() {
            return Err(Error::Proxy(format!(
                "proxy {proxy_name} sent data after its CONNECT answer, before TLS started"
            )));
        }
        let Stream::Tcp(inner) = conn.io.into_inner() else {
            unreachable!("the tunnel is plain TCP until TLS starts");
        };
        tcp = inner;
    }
    let stream = handshake(tcp, &host, &peer, cfg, tls).await?;
    Ok(Conn::new(
        Stream::Tls(Box::new(stream)),
        peer,
        true,
        false,
        cfg,
    ))
}

/// The message for a proxy that answered with an error status.
pub fn proxy_refusal(proxy: &str, resp: &Response, cfg: &Config, target: &str) -> String {
    if resp.status.as_u16() == 407 {
        let hint = if cfg.proxy_auth.is_some() {
            "it rejected the --proxy-user credentials"
        } else {
            "pass --proxy-user USER:PASS"
        };
        format!(
            "proxy {proxy} requires authentication ({}); {hint}",
            resp.status_line()
        )
    } else {
        format!(
            "proxy {proxy} refused to connect to {target}: {}",
            resp.status_line()
        )
    }
}

fn proxy_failed(proxy: &str, e: Error) -> Error {
    match e {
        Error::Proxy(_) => e,
        other => Error::Proxy(format!("proxy {proxy}: {other}")),
    }
}

async fn handshake(
    tcp: TcpStream,
    host: &url::Host<&str>,
    peer: &str,
    cfg: &Config,
    tls: &mut Option<TlsConnector>,
) -> Result<TlsStream<TcpStream>, Error> {
    if tls.is_none() {
        *tls = Some(tls::connector(&cfg.tls)?);
    }
    let connector = tls.as_ref().expect("just built");
    let name = tls::server_name(host)?;
    match net::within(cfg.timeout, connector.connect(name, tcp)).await {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(NetError::Timeout {
            what: format!("the TLS handshake with {peer}"),
            after: cfg.timeout,
        }
        .into()),
        Err(e) => Err(Error::Tls(tls::describe(&host.to_string(), &e))),
    }
}
