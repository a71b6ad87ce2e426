//! The HTTP/1.1 message core, shared by the server (and, later, the client): request heads
//! parsed with `httparse` into an owned [`Request`], request bodies framed by [`BodyFramer`],
//! and response heads encoded by [`ResponseHead::encode`].
//!
//! Sans-IO: no sockets, no files, no clock. The `Date` header's time is an argument.
//!
//! # Limits (checked before anything is kept)
//!
//! | what | limit | answer |
//! |------|-------|--------|
//! | request line | [`MAX_REQUEST_LINE`] (8 KiB) | 414 URI Too Long |
//! | whole head (request line + header fields) | [`MAX_HEAD`] (16 KiB) | 431 |
//! | header fields | [`MAX_HEADERS`] (100) | 431 |
//! | chunk-size line or trailer section | [`MAX_CHUNK_LINE`], [`MAX_HEAD`] | 400 |
//!
//! # Framing decisions (RFC 9112 §6)
//!
//! A request body is framed by `Content-Length` or by `Transfer-Encoding: chunked`, never both:
//! a request with both, with a transfer coding other than exactly `chunked`, or with
//! `Content-Length` values that disagree is refused with 400 and the connection is closed
//! (§6.3 rule 3 and 5: the defence against request smuggling, where two servers on the path
//! disagree about where a request ends). HTTP/1.1 requests must carry exactly one `Host`
//! (§3.2).

use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};

pub use httparse::Status;

/// Longest request line (method, target, version, CRLF) we accept (RFC 9112 §3 recommends
/// at least 8000 octets).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head (request line and all header fields, with the blank line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size, extensions, CRLF) in a chunked body.
pub const MAX_CHUNK_LINE: usize = 1024;

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless the client asks otherwise.
    Http10,
    /// HTTP/1.1: persistent connections by default.
    Http11,
}

impl Version {
    /// The version as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request's body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, owned request head.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method (`GET`, `HEAD`, or any token).
    pub method: Method,
    /// The request target as sent (`/path?query`, or an absolute URI, or `*`).
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields (at most [`MAX_HEADERS`]).
    pub headers: HeaderMap,
    /// Whether the connection may stay open after the response (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// How the body is framed.
    pub body: BodyLength,
}

/// Why a request head was refused. Each maps to the status the server answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The request line is longer than the limit.
    #[error("request line longer than {max} bytes")]
    RequestLineTooLong {
        /// The limit.
        max: usize,
    },
    /// The head is longer than the limit.
    #[error("request head longer than {max} bytes")]
    HeadTooLarge {
        /// The limit.
        max: usize,
    },
    /// More header fields than the limit.
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// Not an HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// An HTTP/1.1 request without exactly one `Host` field.
    #[error("an HTTP/1.1 request needs exactly one Host header")]
    BadHost,
    /// A transfer coding other than `chunked`, or both `Transfer-Encoding` and
    /// `Content-Length`.
    #[error("unsupported Transfer-Encoding, or both Transfer-Encoding and Content-Length")]
    AmbiguousLength,
    /// A `Content-Length` that is not a number, or several that differ.
    #[error("invalid Content-Length")]
    BadContentLength,
}

impl HeadError {
    /// The status code the server answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::RequestLineTooLong { .. } => StatusCode::URI_TOO_LONG,
            HeadError::HeadTooLarge { .. } | HeadError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses one request head from the start of `buf`.
///
/// Returns `Partial` when more bytes are needed (never an error by itself), or the request and
/// the number of bytes its head took. Any body follows those bytes.
///
/// ```
/// use socklab::http::message::{parse, Status, Version};
///
/// let wire = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
/// let Ok(Status::Complete((req, used))) = parse(wire) else { panic!() };
/// assert_eq!((req.target.as_str(), req.version, req.keep_alive), ("/index.html", Version::Http11, true));
/// assert_eq!(&wire[used..], b"GET /next");
/// assert_eq!(parse(&wire[used..]), Ok(Status::Partial));
/// ```
pub fn parse(buf: &[u8]) -> Result<Status<(Request, usize)>, HeadError> {
    // httparse skips empty lines before the request line (RFC 9112 §2.2); so do we, so the
    // request line we measure is the one httparse reads.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    match buf[start..].iter().position(|&b| b == b'\n') {
        Some(end) if end + 1 > MAX_REQUEST_LINE => {
            return Err(HeadError::RequestLineTooLong {
                max: MAX_REQUEST_LINE,
            });
        }
        None if buf.len() - start > MAX_REQUEST_LINE => {
            return Err(HeadError::RequestLineTooLong {
                max: MAX_REQUEST_LINE,
            });
        }
        _ => {}
    }
    // Uninitialised slots: httparse writes the ones it fills (no 3 KiB memset per request).
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let used = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(Status::Complete(n)) if n > MAX_HEAD => {
            return Err(HeadError::HeadTooLarge { max: MAX_HEAD });
        }
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HeadError::HeadTooLarge { max: MAX_HEAD });
        }
        Ok(Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders { max: MAX_HEADERS });
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    // A complete parse fills these in; missing ones would be an httparse bug, answered 400.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed(format!("bad method {method:?}")))?;
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Malformed(format!("bad header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| HeadError::Malformed(format!("bad value in header {:?}", h.name)))?;
        headers.append(name, value);
    }
    if version == Version::Http11 && headers.get_all(HOST).iter().count() != 1 {
        return Err(HeadError::BadHost);
    }
    let body = body_length(&headers)?;
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing somewhere
    // on the path; read the body as chunked, but close the connection afterwards.
    let keep_alive = keep_alive(version, &headers)
        && !(version == Version::Http10 && body == BodyLength::Chunked);
    Ok(Status::Complete((
        Request {
            method,
            target: target.to_string(),
            version,
            headers,
            keep_alive,
            body,
        },
        used,
    )))
}

/// RFC 9112 §6.3: `Transfer-Encoding` (only `chunked`, alone) or `Content-Length` (all values
/// equal), never both.
fn body_length(headers: &HeaderMap) -> Result<BodyLength, HeadError> {
    let te: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    let has_cl = headers.contains_key(CONTENT_LENGTH);
    if !te.is_empty() {
        let chunked_alone = te.len() == 1
            && te[0]
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !chunked_alone || has_cl {
            return Err(HeadError::AmbiguousLength);
        }
        return Ok(BodyLength::Chunked);
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| HeadError::BadContentLength)?;
        // A list like `5, 5` is allowed when every member agrees (§6.3 rule 5).
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::BadContentLength);
            }
            let n: u64 = part.parse().map_err(|_| HeadError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        None | Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Length(n),
    })
}

/// RFC 9112 §9.3: `close` in `Connection` ends it; otherwise HTTP/1.1 persists, and HTTP/1.0
/// persists only with `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if has("close") {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => has("keep-alive"),
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the limit (413).
    #[error("request body longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// Chunked framing that does not parse (400).
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
}

/// Frames a request body so the driver can skip over it: feed bytes to [`BodyFramer::consume`]
/// until it says the body is done. Bodies longer than the limit are refused before they are
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFramer {
    state: BodyState,
    seen: u64,
    limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// This many body bytes remain (Content-Length, or the rest of a chunk).
    Fixed {
        left: u64,
        chunked: bool,
    },
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// A chunk-size line.
    ChunkSize,
    /// Trailer fields after the last chunk; `line` bytes of the current one seen so far.
    Trailers {
        line: usize,
        total: usize,
    },
    Done,
}

impl BodyFramer {
    /// A framer for `body`, refusing bodies over `limit` bytes.
    pub fn new(body: BodyLength, limit: u64) -> Result<Self, BodyError> {
        let state = match body {
            BodyLength::Empty => BodyState::Done,
            BodyLength::Length(n) if n > limit => return Err(BodyError::TooLarge { max: limit }),
            BodyLength::Length(n) => BodyState::Fixed {
                left: n,
                chunked: false,
            },
            BodyLength::Chunked => BodyState::ChunkSize,
        };
        Ok(Self {
            state,
            seen: 0,
            limit,
        })
    }

    /// Whether the whole body has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Consumes body bytes from the front of `buf`; returns how many belong to the body. When
    /// [`is_done`](Self::is_done) turns true, the rest of `buf` is the next request.
    pub fn consume(&mut self, buf: &[u8]) -> Result<usize, BodyError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.state {
                BodyState::Done => return Ok(used),
                BodyState::Fixed { left, chunked } => {
                    // Both lengths fit: `take` is at most `rest.len()`.
                    let take = left.min(rest.len() as u64) as usize;
                    used += take;
                    let left = left - take as u64;
                    self.state = match (left, chunked) {
                        (0, true) => BodyState::ChunkEnd,
                        (0, false) => BodyState::Done,
                        (left, _) => BodyState::Fixed { left, chunked },
                    };
                    if left > 0 {
                        return Ok(used);
                    }
                }
                BodyState::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = BodyState::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(used),
                    _ => return Err(BodyError::BadChunk("chunk data longer than its size")),
                },
                BodyState::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(Status::Complete((n, size))) => {
                        if n > MAX_CHUNK_LINE {
                            return Err(BodyError::BadChunk("chunk-size line too long"));
                        }
                        used += n;
                        self.seen = self.seen.saturating_add(size);
                        if self.seen > self.limit {
                            return Err(BodyError::TooLarge { max: self.limit });
                        }
                        self.state = if size == 0 {
                            BodyState::Trailers { line: 0, total: 0 }
                        } else {
                            BodyState::Fixed {
                                left: size,
                                chunked: true,
                            }
                        };
                    }
                    Ok(Status::Partial) if rest.len() > MAX_CHUNK_LINE => {
                        return Err(BodyError::BadChunk("chunk-size line too long"));
                    }
                    Ok(Status::Partial) => return Ok(used),
                    Err(_) => return Err(BodyError::BadChunk("bad chunk size")),
                },
                BodyState::Trailers { line, total } => {
                    // Trailer fields are skipped line by line; an empty line ends the body.
                    // `line` counts the current line's bytes other than CR.
                    let end = rest.iter().position(|&b| b == b'\n');
                    let text = &rest[..end.unwrap_or(rest.len())];
                    let line = line + text.iter().filter(|&&b| b != b'\r').count();
                    let eaten = end.map_or(rest.len(), |nl| nl + 1);
                    let total = total + eaten;
                    if total > MAX_HEAD {
                        return Err(BodyError::BadChunk("trailer section too long"));
                    }
                    used += eaten;
                    self.state = match end {
                        None => {
                            self.state = BodyState::Trailers { line, total };
                            return Ok(used);
                        }
                        Some(_) if line == 0 => BodyState::Done,
                        Some(_) => BodyState::Trailers { line: 0, total },
                    };
                }
            }
        }
    }
}

/// A response head: status line and header fields. `Date` and `Server` are added by
/// [`encode`](Self::encode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code (its canonical reason phrase is sent).
    pub status: StatusCode,
    /// Header fields, sent in this order after `Date` and `Server`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseHead {
    /// A head with no header fields yet.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            // A file response has seven fields; room for them at once.
            headers: Vec::with_capacity(8),
        }
    }

    /// Adds a header field.
    pub fn header(&mut self, name: HeaderName, value: HeaderValue) -> &mut Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a header field from text. Text that is not a valid field value (a CR or LF, say)
    /// is left out rather than sent: a value must never be able to start a new header line.
    pub fn text(&mut self, name: HeaderName, value: &str) -> &mut Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The value of the first field called `name`, if any.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Encodes `HTTP/1.1 CODE REASON`, `Date` (from `now`), `Server: socklab`, the fields,
    /// and the blank line. We always answer HTTP/1.1, also to 1.0 clients (RFC 9110 §6.2).
    pub fn encode(&self, now: SystemTime, out: &mut BytesMut) {
        out.put_slice(b"HTTP/1.1 ");
        out.put_slice(self.status.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(
            self.status
                .canonical_reason()
                .unwrap_or("Unknown")
                .as_bytes(),
        );
        out.put_slice(b"\r\nDate: ");
        put_date(now, out);
        out.put_slice(b"\r\nServer: socklab\r\n");
        for (name, value) in &self.headers {
            put_canonical(name, out);
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
    }
}

/// `content-type` → `Content-Type`: field names are case-insensitive, but people (and some
/// old clients' logs) read the capitalised form more easily.
fn put_canonical(name: &HeaderName, out: &mut BytesMut) {
    if name == http::header::ETAG {
        out.put_slice(b"ETag");
        return;
    }
    let mut upper = true;
    for &c in name.as_str().as_bytes() {
        out.put_u8(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == b'-';
    }
}

/// Writes `now` as an IMF-fixdate. The text changes once a second and a busy server answers
/// thousands of requests in that second, so each thread keeps the last one it formatted.
fn put_date(now: SystemTime, out: &mut BytesMut) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        out.put_slice(httpdate::fmt_http_date(now).as_bytes());
        return;
    };
    let secs = since.as_secs();
    LAST.with_borrow_mut(|(last, text)| {
        if *last != secs {
            *text = httpdate::fmt_http_date(now);
            *last = secs;
        }
        out.put_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::header::{CONTENT_TYPE, ETAG};
    use proptest::prelude::*;

    use super::*;

    fn complete(wire: &[u8]) -> (Request, usize) {
        match parse(wire) {
            Ok(Status::Complete(x)) => x,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_parse_get() {
        let (req, used) = complete(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
        assert_eq!(used, 49);
        assert_eq!(req.method, Method::GET);
        assert_eq!(req.target, "/a%20b?x=1");
        assert_eq!(req.version, Version::Http11);
        assert_eq!(req.headers["accept"], "*/*");
        assert!(req.keep_alive);
        assert_eq!(req.body, BodyLength::Empty);
    }

    #[test]
    fn partial_head_is_not_an_error() {
        let wire = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
    }

    #[test]
    fn keep_alive_follows_rfc_9112_9_3() {
        let ka = |wire: &[u8]| complete(wire).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn http_1_1_needs_one_host() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(HeadError::BadHost));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::BadHost)
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\n\r\n"),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn body_framing_refuses_smuggling() {
        let body = |extra: &str| {
            parse(format!("POST / HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes()).map(
                |s| match s {
                    Status::Complete((r, _)) => r.body,
                    Status::Partial => panic!("partial"),
                },
            )
        };
        assert_eq!(body("Content-Length: 5\r\n"), Ok(BodyLength::Length(5)));
        assert_eq!(body("Content-Length: 5, 5\r\n"), Ok(BodyLength::Length(5)));
        assert_eq!(
            body("Transfer-Encoding: Chunked\r\n"),
            Ok(BodyLength::Chunked)
        );
        assert_eq!(
            body("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(HeadError::AmbiguousLength)
        );
        assert_eq!(
            body("Transfer-Encoding: gzip, chunked\r\n"),
            Err(HeadError::AmbiguousLength)
        );
        assert_eq!(
            body("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(HeadError::BadContentLength)
        );
        assert_eq!(
            body("Content-Length: +5\r\n"),
            Err(HeadError::BadContentLength)
        );
    }

    #[test]
    fn limits_give_414_and_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        let err = parse(long_line.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
        // Even before the line ends.
        let err = parse(&long_line.as_bytes()[..MAX_REQUEST_LINE + 1]).unwrap_err();
        assert_eq!(err.status(), StatusCode::URI_TOO_LONG);

        let mut big = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..20 {
            big.push_str(&format!("X-{i}: {}\r\n", "v".repeat(1000)));
        }
        let err = parse(big.as_bytes()).unwrap_err();
        assert_eq!(err, HeadError::HeadTooLarge { max: MAX_HEAD });

        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let err = parse(many.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn garbage_is_400() {
        for wire in [
            &b"HELLO\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse(wire).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{wire:?}"
            );
        }
    }

    #[test]
    fn test_emit_response_head() {
        let mut head = ResponseHead::new(StatusCode::NOT_FOUND);
        head.header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )
        .text(CONTENT_LENGTH, "12")
        .text(ETAG, "bad\r\nInjected: yes");
        let mut out = BytesMut::new();
        head.encode(UNIX_EPOCH + Duration::from_secs(784_111_777), &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\n\
              Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
              Server: socklab\r\n\
              Content-Type: text/html; charset=utf-8\r\n\
              Content-Length: 12\r\n\
              \r\n"
        );
    }

    fn skip_body(body: BodyLength, wire: &[u8], read: usize) -> Result<(usize, bool), BodyError> {
        let mut framer = BodyFramer::new(body, 1 << 20)?;
        let mut used = 0;
        let mut fed = 0;
        while !framer.is_done() && fed < wire.len() {
            fed = (fed + read).min(wire.len());
            used += framer.consume(&wire[used..fed])?;
        }
        Ok((used, framer.is_done()))
    }

    #[test]
    fn chunked_body_is_skipped_in_any_reads() {
        let wire = b"5;ext=1\r\nhello\r\n0a\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET";
        for read in 1..wire.len() {
            assert_eq!(
                skip_body(BodyLength::Chunked, wire, read),
                Ok((wire.len() - 3, true))
            );
        }
        assert_eq!(
            skip_body(BodyLength::Chunked, b"0\r\n\r\n", 1),
            Ok((5, true))
        );
        assert_eq!(
            skip_body(BodyLength::Chunked, b"2\r\nabc\r\n", 100),
            Err(BodyError::BadChunk("chunk data longer than its size"))
        );
        assert_eq!(
            skip_body(BodyLength::Chunked, b"200000\r\n", 100),
            Err(BodyError::TooLarge { max: 1 << 20 })
        );
        assert_eq!(
            skip_body(BodyLength::Length(2 << 20), b"", 1),
            Err(BodyError::TooLarge { max: 1 << 20 })
        );
        assert_eq!(
            skip_body(BodyLength::Length(3), b"abcdef", 2),
            Ok((3, true))
        );
    }

    /// Parses every head in `stream` fed in reads of `read` bytes, as a driver would.
    fn parse_stream(stream: &[u8], read: usize) -> Vec<Result<Request, HeadError>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for chunk in stream.chunks(read.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match parse(&buf) {
                    Ok(Status::Complete((req, n))) => {
                        out.push(Ok(req));
                        buf.drain(..n);
                    }
                    Ok(Status::Partial) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    }

    fn request_strategy() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("DELETE")],
            "/[a-z0-9%./?=]{0,20}",
            prop_oneof![Just("1.0"), Just("1.1")],
            proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..5),
        )
            .prop_map(|(m, t, v, hs)| {
                let mut s = format!("{m} {t} HTTP/{v}\r\nHost: example\r\n");
                for (n, val) in hs {
                    if matches!(
                        n.to_ascii_lowercase().as_str(),
                        "host" | "content-length" | "transfer-encoding"
                    ) {
                        continue;
                    }
                    s.push_str(&format!("{n}: {}\r\n", val.trim()));
                }
                s.push_str("\r\n");
                s
            })
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&data);
            if let Ok(mut f) = BodyFramer::new(BodyLength::Chunked, 1000) {
                let _ = f.consume(&data);
            }
        }

        #[test]
        fn any_split_of_a_pipelined_stream_gives_the_same_requests(
            reqs in proptest::collection::vec(request_strategy(), 1..5),
            read in 1usize..64,
        ) {
            let stream = reqs.concat();
            let whole = parse_stream(stream.as_bytes(), stream.len());
            prop_assert_eq!(whole.len(), reqs.len());
            prop_assert!(whole.iter().all(Result::is_ok));
            prop_assert_eq!(parse_stream(stream.as_bytes(), read), whole);
        }
    }
}
