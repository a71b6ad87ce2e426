//! The client's sans-IO core: everything `http get` decides, with no socket, file or clock.
//!
//! - [`RequestSpec::head`]: the request head, byte for byte (origin-form, absolute-form for a
//!   proxy, [`connect_head`] for a CONNECT tunnel).
//! - [`parse_response`]: a response head, with `httparse` (limits: [`MAX_RESPONSE_HEAD`],
//!   [`MAX_HEADERS`]).
//! - [`framing`] and [`BodyDecoder`]: where the body ends (RFC 9112 §6.3): `Content-Length`,
//!   chunked with trailers, or the close of the connection.
//! - [`Decompressor`]: `Content-Encoding: gzip` / `deflate`, in bounded pieces.
//! - [`next_hop`] and [`Chain`]: the redirect policy (method rules, loops, hop limit).
//! - [`NoProxy`] and [`choose_proxy`]: which proxy, if any, a URL goes through.
//! - [`check_resume`]: whether a `Range` request was honoured.
//! - [`default_name`]: the output file name from the URL.
//! - [`TokenBucket`]: `--limit-rate`, with time as an argument.
//! - [`log_block`], [`progress_line`], [`summary_line`]: what the user reads.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, LOCATION, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use ipnet::IpNet;
use url::{Position, Url};

pub use httparse::Status;

/// Longest response head (status line, header fields, blank line) we read.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in one response head.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size, extensions, CRLF).
pub const MAX_CHUNK_LINE: usize = 1024;
/// Longest trailer section after the last chunk.
pub const MAX_TRAILERS: usize = 16 * 1024;
/// Longest file name we derive from a URL: the usual file-system limit (255 bytes) less the
/// `.part` suffix the download is written under first.
pub const MAX_NAME: usize = 255 - ".part".len();
/// Compressed bytes fed to the decompressor at a time, so one piece can expand to at most
/// about 1 MiB (deflate's ratio is bounded near 1032:1).
pub const DECOMPRESS_PIECE: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Requests

/// A request head ready to send: method, target and header fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target (`/path?q`, `http://host/path?q`, or `host:port` for CONNECT).
    pub target: String,
    /// Header fields, sent in this order.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The head's bytes: request line, fields, blank line.
    ///
    /// ```
    /// use socklab::http::client::proto::RequestHead;
    /// let head = RequestHead {
    ///     method: http::Method::GET,
    ///     target: "/".into(),
    ///     headers: vec![("Host".into(), "x".into())],
    /// };
    /// assert_eq!(head.encode(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The value of the first field called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request body's length and the `Content-Type` we send with it unless `-H` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyInfo<'a> {
    /// Its length (sent as `Content-Length`).
    pub len: u64,
    /// The default content type.
    pub content_type: &'a str,
}

/// Everything that goes into one request head.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URL (userinfo and fragment are never sent).
    pub url: &'a Url,
    /// Absolute-form target, for a plain-HTTP proxy.
    pub absolute_form: bool,
    /// `User-Agent`.
    pub user_agent: &'a str,
    /// Send `Accept-Encoding: gzip, deflate`.
    pub compressed: bool,
    /// Send `Range: bytes=N-`.
    pub range_from: Option<u64>,
    /// `Authorization` value.
    pub authorization: Option<&'a str>,
    /// `Proxy-Authorization` value (absolute-form only; a tunnel sends it on the CONNECT).
    pub proxy_authorization: Option<&'a str>,
    /// The request body, if any.
    pub body: Option<BodyInfo<'a>>,
    /// `-H` fields: one with the name of a default replaces it in place; an empty value
    /// removes it; the others follow the defaults.
    pub extra: &'a [(String, String)],
}

impl RequestSpec<'_> {
    /// Builds the head.
    pub fn head(&self) -> RequestHead {
        let target = if self.absolute_form {
            absolute_target(self.url)
        } else {
            origin_target(self.url)
        };
        let mut defaults: Vec<(&str, String)> = vec![
            ("Host", host_header(self.url)),
            ("User-Agent", self.user_agent.to_string()),
            ("Accept", "*/*".into()),
        ];
        if self.compressed {
            defaults.push(("Accept-Encoding", "gzip, deflate".into()));
        }
        if let Some(from) = self.range_from {
            defaults.push(("Range", format!("bytes={from}-")));
        }
        if let Some(auth) = self.authorization {
            defaults.push(("Authorization", auth.to_string()));
        }
        if let (true, Some(auth)) = (self.absolute_form, self.proxy_authorization) {
            defaults.push(("Proxy-Authorization", auth.to_string()));
        }
        if let Some(body) = self.body {
            defaults.push(("Content-Type", body.content_type.to_string()));
            defaults.push(("Content-Length", body.len.to_string()));
        }
        defaults.push(("Connection", "close".into()));
        RequestHead {
            method: self.method.clone(),
            target,
            headers: merge_headers(defaults, self.extra),
        }
    }
}

/// Defaults, each replaced in place by a `-H` of the same name; then the other `-H` fields.
/// A `-H` with an empty value removes the field.
fn merge_headers(
    defaults: Vec<(&str, String)>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in defaults {
        match extra.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((n, v)) if !v.is_empty() => out.push((n.clone(), v.clone())),
            Some(_) => {}
            None => out.push((name.to_string(), value)),
        }
    }
    for (name, value) in extra {
        if value.is_empty() || out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    out
}

/// Parses a `-H "Name: value"` argument. `Content-Length` and `Transfer-Encoding` are refused:
/// the body's framing is ours to state.
pub fn parse_header_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("-H {arg:?}: expected \"Name: value\""))?;
    let name = name.trim();
    HeaderName::from_str(name).map_err(|_| format!("-H {arg:?}: {name:?} is not a field name"))?;
    let value = value.trim();
    HeaderValue::from_str(value)
        .map_err(|_| format!("-H {arg:?}: the value has a control character"))?;
    if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
    {
        return Err(format!(
            "-H {name}: socklab frames the body itself; this field cannot be set"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `/path?query` (the fragment is never sent).
pub fn origin_target(url: &Url) -> String {
    let t = &url[Position::BeforePath..Position::AfterQuery];
    if t.is_empty() { "/".into() } else { t.into() }
}

/// `http://host:port/path?query` without userinfo and fragment, for a proxy.
pub fn absolute_target(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u.to_string()
}

/// The `Host` value: the host, and the port unless it is the scheme's default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// `host:port` with the port always written (IPv6 in brackets): a CONNECT target.
pub fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    )
}

/// The CONNECT request that opens a tunnel to `url`'s host through a proxy.
pub fn connect_head(url: &Url, user_agent: &str, proxy_authorization: Option<&str>) -> RequestHead {
    let target = authority(url);
    let mut headers = vec![
        ("Host".to_string(), target.clone()),
        ("User-Agent".to_string(), user_agent.to_string()),
    ];
    if let Some(auth) = proxy_authorization {
        headers.push(("Proxy-Authorization".into(), auth.into()));
    }
    RequestHead {
        method: Method::CONNECT,
        target,
        headers,
    }
}

/// `Basic base64(user:pass)` (RFC 7617).
pub fn basic_auth(user: &str, pass: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

/// `user:pass` from a URL's userinfo, percent-decoded; `None` without a user name.
pub fn url_credentials(url: &Url) -> Option<(String, String)> {
    if url.username().is_empty() {
        return None;
    }
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(url.username()), dec(url.password().unwrap_or(""))))
}

/// True when two URLs share scheme, host and port (credentials may go from one to the other).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

// ---------------------------------------------------------------------------------------------
// Responses

/// A parsed response head.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as sent.
    pub reason: String,
    /// The header fields (at most [`MAX_HEADERS`]).
    pub headers: HeaderMap,
}

impl ResponseHead {
    /// The first value of `name` as text, if it is text.
    pub fn text(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `404 Not Found` (the reason as sent, or the canonical one when none was).
    pub fn status_line(&self) -> String {
        let reason = if self.reason.is_empty() {
            self.status.canonical_reason().unwrap_or("")
        } else {
            &self.reason
        };
        format!("{} {reason}", self.status.as_u16())
    }
}

/// Why a response head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head did not end within the limit.
    #[error("response head longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More header fields than the limit.
    #[error("more than {max} header fields in the response")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// Not an HTTP/1.x response head.
    #[error("malformed response head: {0}")]
    Malformed(String),
}

/// Parses a response head from the start of `buf`: `Partial` until the blank line arrives,
/// then the head and its length in bytes.
///
/// ```
/// use socklab::http::client::proto::{parse_response, Status};
/// let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let Ok(Status::Complete((head, used))) = parse_response(wire) else { panic!() };
/// assert_eq!((head.status.as_u16(), &wire[used..]), (200, &b"hi"[..]));
/// ```
pub fn parse_response(buf: &[u8]) -> Result<Status<(ResponseHead, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    // Only the first MAX_RESPONSE_HEAD bytes are looked at, so the answer does not depend on
    // how much of the body arrived with the head.
    let window = &buf[..buf.len().min(MAX_RESPONSE_HEAD)];
    let used = match resp.parse(window) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
            return Err(HeadError::TooLarge {
                max: MAX_RESPONSE_HEAD,
            });
        }
        Ok(Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders { max: MAX_HEADERS });
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let (Some(minor), Some(code)) = (resp.version, resp.code) else {
        return Err(HeadError::Malformed("incomplete status line".into()));
    };
    let status = StatusCode::from_u16(code)
        .map_err(|_| HeadError::Malformed(format!("bad status code {code}")))?;
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Malformed(format!("bad header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| HeadError::Malformed(format!("bad value in header {:?}", h.name)))?;
        headers.append(name, value);
    }
    Ok(Status::Complete((
        ResponseHead {
            minor,
            status,
            reason: resp.reason.unwrap_or("").to_string(),
            headers,
        },
        used,
    )))
}

/// How a response body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204, 304.
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection (no length given).
    UntilClose,
}

/// Where the body of `head`, the answer to a `method` request, ends.
///
/// `Transfer-Encoding` wins over `Content-Length` (§6.3 rule 3); a transfer coding other than
/// `chunked` is refused, as are `Content-Length` values that are not numbers or disagree.
pub fn framing(method: &Method, head: &ResponseHead) -> Result<Framing, BodyError> {
    let code = head.status.as_u16();
    if *method == Method::HEAD || head.status.is_informational() || code == 204 || code == 304 {
        return Ok(Framing::None);
    }
    let te: Vec<&HeaderValue> = head.headers.get_all(TRANSFER_ENCODING).iter().collect();
    if !te.is_empty() {
        let mut codings = Vec::new();
        for v in te {
            let text = v
                .to_str()
                .map_err(|_| BodyError::Framing("unreadable Transfer-Encoding".into()))?;
            codings.extend(
                text.split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        }
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            _ => Err(BodyError::Framing(format!(
                "unsupported Transfer-Encoding {:?} (only chunked is understood)",
                codings.join(", ")
            ))),
        };
    }
    let mut length = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        let bad = || BodyError::Framing(format!("invalid Content-Length {value:?}"));
        let text = value.to_str().map_err(|_| bad())?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u64 = part.parse().map_err(|_| bad())?;
            if length.is_some_and(|l| l != n) {
                return Err(BodyError::Framing(
                    "Content-Length values that disagree".into(),
                ));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The head's framing fields make no sense.
    #[error("{0}")]
    Framing(String),
    /// Chunked framing that does not parse.
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The connection closed before `Content-Length` bytes came.
    #[error("body ended after {got} of {want} bytes")]
    Short {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// The connection closed inside a chunked body.
    #[error("chunked body ended after {got} bytes, before its last chunk")]
    ChunkedEnded {
        /// Bytes received.
        got: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Fixed { left: u64 },
    ChunkSize,
    ChunkData { left: u64 },
    ChunkEnd,
    Trailers { line: usize, total: usize },
    UntilClose,
    Done,
}

/// Takes a response body off the wire: feed it what arrives, get the payload back (a slice of
/// the input, never copied), then call [`finish`](Self::finish) at the end of the stream.
///
/// ```
/// use socklab::http::client::proto::{BodyDecoder, Framing};
/// let mut dec = BodyDecoder::new(Framing::Chunked);
/// let mut wire = &b"3\r\nabc\r\n0\r\n\r\n"[..];
/// let mut body = Vec::new();
/// while !dec.is_done() {
///     let (used, data) = dec.decode(wire).unwrap();
///     body.extend_from_slice(data);
///     wire = &wire[used..];
/// }
/// assert_eq!(body, b"abc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyDecoder {
    state: BodyState,
    want: Option<u64>,
    received: u64,
    trailers: Vec<u8>,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let (state, want) = match framing {
            Framing::None | Framing::Length(0) => (BodyState::Done, Some(0)),
            Framing::Length(n) => (BodyState::Fixed { left: n }, Some(n)),
            Framing::Chunked => (BodyState::ChunkSize, None),
            Framing::UntilClose => (BodyState::UntilClose, None),
        };
        Self {
            state,
            want,
            received: 0,
            trailers: Vec::new(),
        }
    }

    /// True once the whole body has been read (never for a body that runs until close).
    pub fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Whether the body runs until the connection closes (no length, not chunked).
    pub fn until_close(&self) -> bool {
        self.state == BodyState::UntilClose
    }

    /// Payload bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The announced length (`Content-Length`), if any.
    pub fn expected(&self) -> Option<u64> {
        self.want
    }

    /// The trailer section of a chunked body, as received (empty lines excluded).
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Consumes framing bytes from `input` and at most one run of payload, which it returns.
    /// The payload is always the last bytes of `input[..used]`. `used == 0` means more input
    /// is needed (or the body is done); bytes past the end of the body are never consumed.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), BodyError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                BodyState::Done => return Ok((used, &[])),
                BodyState::UntilClose => {
                    self.received += rest.len() as u64;
                    return Ok((input.len(), rest));
                }
                BodyState::Fixed { left } | BodyState::ChunkData { left } => {
                    if rest.is_empty() {
                        return Ok((used, &[]));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let left = left - n as u64;
                    self.received += n as u64;
                    self.state = match self.state {
                        BodyState::Fixed { .. } if left == 0 => BodyState::Done,
                        BodyState::Fixed { .. } => BodyState::Fixed { left },
                        _ if left == 0 => BodyState::ChunkEnd,
                        _ => BodyState::ChunkData { left },
                    };
                    return Ok((used + n, &rest[..n]));
                }
                BodyState::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = BodyState::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok((used, &[])),
                    _ => return Err(BodyError::BadChunk("chunk data longer than its size")),
                },
                BodyState::ChunkSize => {
                    let window = &rest[..rest.len().min(MAX_CHUNK_LINE)];
                    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                        if rest.len() >= MAX_CHUNK_LINE {
                            return Err(BodyError::BadChunk("chunk-size line too long"));
                        }
                        return Ok((used, &[]));
                    };
                    let (n, size) = match httparse::parse_chunk_size(&rest[..=nl]) {
                        Ok(Status::Complete(x)) => x,
                        _ => return Err(BodyError::BadChunk("bad chunk-size line")),
                    };
                    used += n;
                    self.state = if size == 0 {
                        BodyState::Trailers { line: 0, total: 0 }
                    } else {
                        BodyState::ChunkData { left: size }
                    };
                }
                BodyState::Trailers { line, total } => {
                    // Trailer fields, line by line, until an empty line. `line` counts the
                    // current line's bytes other than CR.
                    let end = rest.iter().position(|&b| b == b'\n');
                    let eaten = end.map_or(rest.len(), |nl| nl + 1);
                    let text = &rest[..eaten];
                    let line = line + text.iter().filter(|&&b| b != b'\r' && b != b'\n').count();
                    let total = total + eaten;
                    if total > MAX_TRAILERS {
                        return Err(BodyError::BadChunk("trailer section too long"));
                    }
                    used += eaten;
                    match end {
                        None => {
                            self.trailers.extend_from_slice(text);
                            self.state = BodyState::Trailers { line, total };
                            return Ok((used, &[]));
                        }
                        Some(_) if line == 0 => {
                            self.state = BodyState::Done;
                        }
                        Some(_) => {
                            self.trailers.extend_from_slice(text);
                            self.state = BodyState::Trailers { line: 0, total };
                        }
                    }
                }
            }
        }
    }

    /// The stream ended: fine for a body that runs until close or is complete; an error if
    /// `Content-Length` bytes or the last chunk did not come.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            BodyState::Done => Ok(()),
            BodyState::UntilClose => {
                self.state = BodyState::Done;
                Ok(())
            }
            BodyState::Fixed { .. } => Err(BodyError::Short {
                got: self.received,
                want: self.want.unwrap_or(0),
            }),
            _ => Err(BodyError::ChunkedEnded { got: self.received }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Content-Encoding

/// A body's content coding, as far as `--compressed` is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coding {
    /// No coding (or none we were asked to undo).
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped as RFC 9110 says, or raw as some servers send).
    Deflate,
    /// Something else; the body is saved as it came.
    Other(String),
}

/// The coding named by `Content-Encoding`.
pub fn content_coding(head: &ResponseHead) -> Coding {
    let Some(value) = head.text(&CONTENT_ENCODING) else {
        return Coding::Identity;
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Coding::Identity,
        "gzip" | "x-gzip" => Coding::Gzip,
        "deflate" => Coding::Deflate,
        other => Coding::Other(other.to_string()),
    }
}

/// Why a compressed body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the {coding} body: {reason}")]
pub struct DecompressError {
    coding: &'static str,
    reason: String,
}

enum Inflater {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    Raw(flate2::write::DeflateDecoder<Vec<u8>>),
    /// `deflate` before its first two bytes arrive: zlib or raw?
    Sniffing(Vec<u8>),
}

/// Undoes gzip or deflate as bytes arrive. Feed it at most [`DECOMPRESS_PIECE`] bytes at a
/// time to bound the output of one call.
pub struct Decompressor {
    inner: Inflater,
    coding: &'static str,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("coding", &self.coding)
            .finish()
    }
}

impl Decompressor {
    /// A decoder for `coding`; `None` for identity or an unknown coding.
    pub fn new(coding: &Coding) -> Option<Self> {
        let (inner, coding) = match coding {
            Coding::Gzip => (
                Inflater::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
                "gzip",
            ),
            Coding::Deflate => (Inflater::Sniffing(Vec::new()), "deflate"),
            _ => return None,
        };
        Some(Self { inner, coding })
    }

    fn err(&self, e: impl fmt::Display) -> DecompressError {
        DecompressError {
            coding: self.coding,
            reason: e.to_string(),
        }
    }

    /// Decodes `input`; returns what came out (valid until the next call).
    pub fn push(&mut self, input: &[u8]) -> Result<&[u8], DecompressError> {
        if let Inflater::Sniffing(seen) = &mut self.inner {
            seen.extend_from_slice(input);
            if seen.len() < 2 {
                return Ok(&[]);
            }
            let head = std::mem::take(seen);
            // A zlib header: CM = 8 in the low nibble, and the two bytes a multiple of 31.
            let zlib =
                head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            self.inner = if zlib {
                Inflater::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
            } else {
                Inflater::Raw(flate2::write::DeflateDecoder::new(Vec::new()))
            };
            return self.write(&head, |d, b| d.write_all(b));
        }
        self.write(input, |d, b| d.write_all(b))
    }

    /// The body ended: checks the stream was complete and returns the last output.
    pub fn finish(&mut self) -> Result<&[u8], DecompressError> {
        if let Inflater::Sniffing(seen) = &self.inner {
            if seen.is_empty() {
                return Ok(&[]);
            }
            return Err(self.err("the stream ended after one byte"));
        }
        self.write(&[], |d, _| d.try_finish())
    }

    fn write(
        &mut self,
        input: &[u8],
        op: impl Fn(&mut dyn FinishWrite, &[u8]) -> std::io::Result<()>,
    ) -> Result<&[u8], DecompressError> {
        let res = match &mut self.inner {
            Inflater::Gzip(d) => {
                d.get_mut().clear();
                op(d, input)
            }
            Inflater::Zlib(d) => {
                d.get_mut().clear();
                op(d, input)
            }
            Inflater::Raw(d) => {
                d.get_mut().clear();
                op(d, input)
            }
            Inflater::Sniffing(_) => Ok(()),
        };
        if let Err(e) = res {
            let reason = if e.kind() == std::io::ErrorKind::WriteZero {
                "data after the end of the compressed stream".to_string()
            } else {
                e.to_string()
            };
            return Err(self.err(reason));
        }
        Ok(match &self.inner {
            Inflater::Gzip(d) => d.get_ref(),
            Inflater::Zlib(d) => d.get_ref(),
            Inflater::Raw(d) => d.get_ref(),
            Inflater::Sniffing(_) => &[],
        })
    }
}

/// The flate2 writers' common ground.
trait FinishWrite: std::io::Write {
    fn try_finish(&mut self) -> std::io::Result<()>;
}

impl FinishWrite for flate2::write::MultiGzDecoder<Vec<u8>> {
    fn try_finish(&mut self) -> std::io::Result<()> {
        flate2::write::MultiGzDecoder::try_finish(self)
    }
}

impl FinishWrite for flate2::write::ZlibDecoder<Vec<u8>> {
    fn try_finish(&mut self) -> std::io::Result<()> {
        flate2::write::ZlibDecoder::try_finish(self)
    }
}

impl FinishWrite for flate2::write::DeflateDecoder<Vec<u8>> {
    fn try_finish(&mut self) -> std::io::Result<()> {
        flate2::write::DeflateDecoder::try_finish(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Redirects

/// The next request after a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Where to go (fragment removed).
    pub url: Url,
    /// With which method.
    pub method: Method,
    /// Whether the request body goes along (307/308 only).
    pub keep_body: bool,
    /// Whether `Authorization` may go along (same scheme, host and port).
    pub keep_credentials: bool,
}

/// Why a redirect cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// A redirect status without `Location`, or one that does not parse.
    #[error("redirect {status} with a bad Location {location:?}: {reason}")]
    BadLocation {
        /// The status.
        status: u16,
        /// What the server sent.
        location: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A `Location` in a scheme we cannot fetch.
    #[error("redirect {status} to {url}: only http and https can be followed")]
    Scheme {
        /// The status.
        status: u16,
        /// The target.
        url: String,
    },
    /// The same URL twice in the chain.
    #[error("redirect loop: {chain}")]
    Loop {
        /// The whole chain, `a -> b -> a`.
        chain: String,
    },
    /// More hops than `--max-redirects`.
    #[error("more than {max} redirects: {chain}")]
    TooMany {
        /// The limit.
        max: usize,
        /// The whole chain.
        chain: String,
    },
}

/// True for the statuses we follow: 301, 302, 303, 307, 308.
pub fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The request that follows a redirect `status` answered to `method` on `current`.
///
/// 303 turns everything but HEAD into GET without a body; 301 and 302 turn POST into GET
/// without a body (what browsers, curl and wget do); 307 and 308 keep method and body.
pub fn next_hop(
    status: StatusCode,
    method: &Method,
    current: &Url,
    location: Option<&HeaderValue>,
) -> Result<Hop, RedirectError> {
    let code = status.as_u16();
    let bad = |location: &str, reason: &str| RedirectError::BadLocation {
        status: code,
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let location = location.ok_or_else(|| bad("", "missing"))?;
    // Some servers send raw UTF-8 in Location; url percent-encodes it.
    let text = String::from_utf8_lossy(location.as_bytes());
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(text, "empty"));
    }
    let mut url = current.join(text).map_err(|e| bad(text, &e.to_string()))?;
    url.set_fragment(None);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RedirectError::Scheme {
            status: code,
            url: url.to_string(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(text, "no host"));
    }
    let (method, keep_body) = match code {
        303 if *method == Method::HEAD => (Method::HEAD, false),
        303 => (Method::GET, false),
        301 | 302 if *method == Method::POST => (Method::GET, false),
        301 | 302 => (method.clone(), false),
        _ => (method.clone(), true),
    };
    let keep_credentials = same_origin(current, &url);
    Ok(Hop {
        url,
        method,
        keep_body,
        keep_credentials,
    })
}

/// The URLs visited so far, to detect loops and count hops.
#[derive(Debug, Clone)]
pub struct Chain {
    urls: Vec<Url>,
    max: usize,
}

impl Chain {
    /// A chain starting at `start`, allowing `max` redirects.
    pub fn new(start: &Url, max: usize) -> Self {
        let mut u = start.clone();
        u.set_fragment(None);
        Self { urls: vec![u], max }
    }

    /// Records a hop to `url`; an error for a URL already visited or one hop too many.
    pub fn push(&mut self, url: &Url) -> Result<(), RedirectError> {
        let seen = self.urls.contains(url);
        self.urls.push(url.clone());
        if seen {
            return Err(RedirectError::Loop {
                chain: self.to_string(),
            });
        }
        if self.urls.len() - 1 > self.max {
            return Err(RedirectError::TooMany {
                max: self.max,
                chain: self.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.urls.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{u}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Proxies

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyHost {
    Net(IpNet),
    Ip(IpAddr),
    Domain(String),
}

/// A `no_proxy` list: `*`, host names (matching themselves and their subdomains, with or
/// without a leading dot), IP addresses (IPv6 with or without brackets), CIDR networks, each
/// optionally with `:PORT`. Separated by commas or white space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<(NoProxyHost, Option<u16>)>,
}

impl NoProxy {
    /// Parses a list; entries that mean nothing are skipped.
    pub fn parse(list: &str) -> Self {
        let mut out = NoProxy::default();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            let item = item.trim().to_ascii_lowercase();
            if item.is_empty() {
                continue;
            }
            if item == "*" {
                out.all = true;
                continue;
            }
            if let Some(entry) = parse_no_proxy_entry(&item) {
                out.entries.push(entry);
            }
        }
        out
    }

    /// True when `url` must not go through a proxy.
    pub fn matches(&self, url: &Url) -> bool {
        if self.all {
            return true;
        }
        let port = url.port_or_known_default();
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                NoProxyHost::Domain(d.trim_end_matches('.').to_ascii_lowercase())
            }
            Some(url::Host::Ipv4(ip)) => NoProxyHost::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => NoProxyHost::Ip(ip.into()),
            None => return false,
        };
        self.entries.iter().any(|(entry, p)| {
            if p.is_some() && *p != port {
                return false;
            }
            match (entry, &host) {
                (NoProxyHost::Net(net), NoProxyHost::Ip(ip)) => net.contains(ip),
                (NoProxyHost::Ip(a), NoProxyHost::Ip(b)) => a == b,
                (NoProxyHost::Domain(d), NoProxyHost::Domain(h)) => {
                    h == d
                        || (h.len() > d.len()
                            && h.ends_with(d.as_str())
                            && h.as_bytes()[h.len() - d.len() - 1] == b'.')
                }
                _ => false,
            }
        })
    }
}

fn parse_no_proxy_host(s: &str) -> Option<NoProxyHost> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(NoProxyHost::Net(net));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(NoProxyHost::Ip(ip));
    }
    let d = s
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    if d.is_empty() || d.contains(['/', '[', ']', ':']) {
        return None;
    }
    Some(NoProxyHost::Domain(d.to_string()))
}

fn parse_no_proxy_entry(item: &str) -> Option<(NoProxyHost, Option<u16>)> {
    // `[v6]` or `[v6]:port`.
    if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((parse_no_proxy_host(host)?, port));
    }
    // A bare address or network first: `::1` and `fe80::/10` have colons that are no port
    // separator (so an IPv6 address with a port needs its brackets).
    if let Ok(net) = item.parse::<IpNet>() {
        return Some((NoProxyHost::Net(net), None));
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some((NoProxyHost::Ip(ip), None));
    }
    if let Some((host, port)) = item.rsplit_once(':') {
        return Some((parse_no_proxy_host(host)?, Some(port.parse().ok()?)));
    }
    Some((parse_no_proxy_host(item)?, None))
}

/// The proxy settings read from the environment (`http_proxy`, `https_proxy`/`HTTPS_PROXY`,
/// `no_proxy`/`NO_PROXY`; an empty value counts as unset). `HTTP_PROXY` in capitals is
/// ignored, as curl does: a CGI program gets it from a request's `Proxy:` header (httpoxy).
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    /// For http URLs.
    pub http: Option<String>,
    /// For https URLs.
    pub https: Option<String>,
    /// Exceptions.
    pub no_proxy: Option<String>,
}

/// Parses a proxy URL: `http://host:port`, or `host:port` (http assumed; a missing port means
/// 80, as in any http URL). Only http proxies are supported.
pub fn parse_proxy(s: &str) -> Result<Url, String> {
    let s = s.trim();
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("proxy {s:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "proxy {s:?}: only http:// proxies are supported (https URLs reach them through CONNECT)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy {s:?}: no host"));
    }
    Ok(url)
}

/// The proxy for `url`: `explicit` (`-x`) always wins; otherwise the environment's proxy for
/// the URL's scheme unless `no_proxy` exempts the host; `env` is `None` under `--no-proxy`.
pub fn choose_proxy(
    url: &Url,
    explicit: Option<&Url>,
    env: Option<&ProxyEnv>,
) -> Result<Option<Url>, String> {
    if let Some(p) = explicit {
        return Ok(Some(p.clone()));
    }
    let Some(env) = env else { return Ok(None) };
    let var = match url.scheme() {
        "https" => env.https.as_deref(),
        _ => env.http.as_deref(),
    };
    let Some(var) = var.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if env
        .no_proxy
        .as_deref()
        .is_some_and(|n| NoProxy::parse(n).matches(url))
    {
        return Ok(None);
    }
    parse_proxy(var).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Resume

/// What to do with a response to a `Range: bytes=K-` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// 206 from K: append; the whole file is `total` bytes when the server says.
    Append {
        /// The complete length, if known.
        total: Option<u64>,
    },
    /// The server did not honour the range: start over from byte 0.
    Restart(String),
    /// 416 with `bytes */K`: the partial file is already complete.
    Complete,
    /// Some other status (an error page, say): not an answer to the range at all.
    NotRange,
}

/// Checks the answer to `Range: bytes=offset-`.
pub fn check_resume(
    status: StatusCode,
    content_range: Option<&HeaderValue>,
    offset: u64,
) -> Resume {
    use headers::Header;
    let parsed =
        content_range.and_then(|v| headers::ContentRange::decode(&mut std::iter::once(v)).ok());
    match status.as_u16() {
        206 => match parsed
            .as_ref()
            .and_then(|r| r.bytes_range().map(|b| (b, r.bytes_len())))
        {
            Some(((start, end), total))
                if start == offset && end >= start && total.is_none_or(|t| end < t) =>
            {
                Resume::Append { total }
            }
            Some(((start, end), _)) => Resume::Restart(format!(
                "the server sent bytes {start}-{end}, not from byte {offset}; starting over"
            )),
            None => Resume::Restart("206 without a usable Content-Range; starting over".into()),
        },
        200 => Resume::Restart("server ignored the range; starting over".into()),
        416 => match parsed {
            Some(r) if r.bytes_range().is_none() && r.bytes_len() == Some(offset) => {
                Resume::Complete
            }
            _ => Resume::Restart(format!(
                "the server cannot serve from byte {offset} (416); starting over"
            )),
        },
        _ => Resume::NotRange,
    }
}

// ---------------------------------------------------------------------------------------------
// Output names

/// The file name for `url`, like wget: the last path segment, percent-decoded; `index.html`
/// when it is empty. A name that could leave the output directory is made safe: `/`, `\`,
/// NUL and control characters become `_`, and `.` or `..` become `index.html`.
pub fn default_name(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8_lossy();
    let mut name: String = decoded
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        return "index.html".into();
    }
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

// ---------------------------------------------------------------------------------------------
// Rate limit

/// `--limit-rate`: a token bucket holding at most `burst` bytes, refilled at `rate` bytes a
/// second. Spending more than it holds puts it in debt, paid off by waiting.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` bytes, refilled at `rate` bytes a second.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    /// Takes `n` bytes at `now`; returns how long to wait before going on.
    pub fn take(&mut self, now: Instant, n: usize) -> Duration {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the user reads

/// Which way a logged head went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDir {
    /// A head we sent.
    Request,
    /// A head we received.
    Response,
}

/// One `--header-log` block: `--- TIMESTAMP request to PEER` (or `response from`, with
/// `proxy` before a proxy's address), then the head's exact bytes.
pub fn log_block(at: SystemTime, dir: LogDir, peer: &str, proxy: bool, head: &[u8]) -> Vec<u8> {
    let ts = jiff::Timestamp::try_from(at)
        .ok()
        .and_then(|t| jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", t).ok())
        .unwrap_or_else(|| "?".into());
    let verb = match dir {
        LogDir::Request => "request to",
        LogDir::Response => "response from",
    };
    let via = if proxy { "proxy " } else { "" };
    let mut out = format!("--- {ts} {verb} {via}{peer}\n").into_bytes();
    out.extend_from_slice(head);
    out
}

/// `12.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A plain progress line: `NAME: 12.0 MiB of 64.0 MiB (18%), 40.2 MiB/s`.
pub fn progress_line(name: &str, done: u64, total: Option<u64>, rate: f64) -> String {
    let rate = format!("{}/s", human_bytes(rate.max(0.0) as u64));
    match total {
        Some(t) if t > 0 => format!(
            "{name}: {} of {} ({}%), {rate}",
            human_bytes(done),
            human_bytes(t),
            done.saturating_mul(100) / t
        ),
        _ => format!("{name}: {}, {rate}", human_bytes(done)),
    }
}

/// `saved 'NAME': 1234 bytes in 0.01 s (98.1 MB/s)`: the file's size, and the rate of the
/// `moved` bytes this run transferred (decimal megabytes, as download tools usually report).
pub fn summary_line(name: &str, bytes: u64, moved: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    let rate = if secs > 0.0 {
        moved as f64 / secs / 1e6
    } else {
        0.0
    };
    format!("saved '{name}': {bytes} bytes in {secs:.2} s ({rate:.1} MB/s)")
}

/// Location header of a response, for messages.
pub fn location(head: &ResponseHead) -> Option<&HeaderValue> {
    head.headers.get(LOCATION)
}

#[cfg(test)]
mod tests;
