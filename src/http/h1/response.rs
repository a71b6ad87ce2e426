//! Response heads: written by the server ([`ResponseHead::encode`]), parsed by the client
//! ([`Response::parse`]).

use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::body::{self, Framing};
use super::{Error, Kind, MAX_HEADERS, MAX_RESPONSE_HEAD, Status, Version};

/// A parsed response head.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as sent.
    pub reason: String,
    /// The header fields (at most [`MAX_HEADERS`]).
    pub headers: HeaderMap,
}

impl Response {
    /// Parses a response head from the start of `buf`: `Partial` until the blank line arrives,
    /// then the head and its length in bytes.
    ///
    /// ```
    /// use socklab::http::h1::{Response, Status};
    /// let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    /// let Ok(Status::Complete((head, used))) = Response::parse(wire) else { panic!() };
    /// assert_eq!((head.status.as_u16(), &wire[used..]), (200, &b"hi"[..]));
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Status<(Response, usize)>, Error> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut fields);
        // Only the first MAX_RESPONSE_HEAD bytes are looked at, so the answer does not depend
        // on how much of the body arrived with the head.
        let window = &buf[..buf.len().min(MAX_RESPONSE_HEAD)];
        let used = match resp.parse(window) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD => {
                return Err(Error::HeadTooLarge {
                    kind: Kind::Response,
                    max: MAX_RESPONSE_HEAD,
                });
            }
            Ok(Status::Partial) => return Ok(Status::Partial),
            Err(e) => return Err(super::parse_error(Kind::Response, e)),
        };
        let (Some(minor), Some(code)) = (resp.version, resp.code) else {
            return Err(malformed("incomplete status line".into()));
        };
        let status =
            StatusCode::from_u16(code).map_err(|_| malformed(format!("bad status code {code}")))?;
        let headers = super::own_headers(Kind::Response, resp.headers)?;
        Ok(Status::Complete((
            Response {
                version: Version::from_minor(minor),
                status,
                reason: resp.reason.unwrap_or("").to_string(),
                headers,
            },
            used,
        )))
    }

    /// Where the body of this response, the answer to a `method` request, ends (RFC 9112
    /// §6.3): nothing after HEAD, 1xx, 204 and 304; `Transfer-Encoding: chunked` over
    /// `Content-Length`; otherwise until the server closes.
    pub fn framing(&self, method: &Method) -> Result<Framing, Error> {
        body::response_framing(method, self.status, &self.headers)
    }

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

fn malformed(reason: String) -> Error {
    Error::MalformedHead {
        kind: Kind::Response,
        reason,
    }
}

/// A response head to send: status line and header fields. `Date` and `Server` are added by
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
    use http::header::*;
    // The fields the server sends on every response, spelled once (a byte-by-byte copy with
    // case changes was the largest user-space cost of a small response's head).
    let known: &[u8] = match *name {
        CONTENT_TYPE => b"Content-Type",
        CONTENT_LENGTH => b"Content-Length",
        ACCEPT_RANGES => b"Accept-Ranges",
        ETAG => b"ETag",
        LAST_MODIFIED => b"Last-Modified",
        CACHE_CONTROL => b"Cache-Control",
        VARY => b"Vary",
        CONTENT_ENCODING => b"Content-Encoding",
        CONTENT_RANGE => b"Content-Range",
        CONNECTION => b"Connection",
        LOCATION => b"Location",
        _ => b"",
    };
    if !known.is_empty() {
        out.put_slice(known);
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

    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
    use proptest::prelude::*;

    use super::*;

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

    #[test]
    fn test_parse_response_head() {
        let wire = b"HTTP/1.0 404 Not Here\r\nContent-Length: 3\r\nX: a\r\nX: b\r\n\r\nabc";
        let Ok(Status::Complete((h, used))) = Response::parse(wire) else {
            panic!()
        };
        assert_eq!(used, wire.len() - 3);
        assert_eq!(h.version, Version::Http10);
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        assert_eq!(h.reason, "Not Here");
        assert_eq!(h.status_line(), "404 Not Here");
        assert_eq!(h.headers.get_all("x").iter().count(), 2);
        for cut in 0..used {
            assert_eq!(Response::parse(&wire[..cut]), Ok(Status::Partial), "{cut}");
        }
    }

    #[test]
    fn an_encoded_head_parses_back() {
        let mut head = ResponseHead::new(StatusCode::PARTIAL_CONTENT);
        head.text(CONTENT_LENGTH, "10").text(ETAG, "\"x\"");
        let mut out = BytesMut::new();
        head.encode(UNIX_EPOCH, &mut out);
        let Ok(Status::Complete((h, used))) = Response::parse(&out) else {
            panic!()
        };
        assert_eq!(used, out.len());
        assert_eq!(h.status_line(), "206 Partial Content");
        assert_eq!(h.text(&ETAG), Some("\"x\""));
        assert_eq!(h.text(&http::header::SERVER), Some("socklab"));
        assert_eq!(
            head.get(&CONTENT_LENGTH).map(|v| v.as_bytes()),
            Some(&b"10"[..])
        );
    }

    #[test]
    fn response_head_limits() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX_RESPONSE_HEAD {
            big.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        // Too many fields is found first here; a head of few long fields hits the size limit.
        assert!(Response::parse(&big).is_err());
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_RESPONSE_HEAD + 10, b'a');
        assert_eq!(
            Response::parse(&long),
            Err(Error::HeadTooLarge {
                kind: Kind::Response,
                max: MAX_RESPONSE_HEAD
            })
        );
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            Response::parse(many.as_bytes()),
            Err(Error::TooManyHeaders {
                kind: Kind::Response,
                max: MAX_HEADERS
            })
        );
        assert!(matches!(
            Response::parse(b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(Error::MalformedHead { .. })
        ));
        assert!(matches!(
            Response::parse(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(Error::MalformedHead { .. })
        ));
    }

    proptest! {
        #[test]
        fn split_response_heads_parse_the_same(
            fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..6),
            code in 100u16..600,
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut wire = format!("HTTP/1.1 {code} Whatever\r\n");
            for (n, v) in &fields {
                wire.push_str(&format!("{n}: {}\r\n", v.trim()));
            }
            wire.push_str("\r\nBODY");
            let full = Response::parse(wire.as_bytes());
            let Ok(Status::Complete((h, used))) = full else { panic!("{full:?}") };
            prop_assert_eq!(h.status.as_u16(), code);
            prop_assert_eq!(&wire[used..], "BODY");
            let c = cut.index(used);
            prop_assert_eq!(Response::parse(&wire.as_bytes()[..c]), Ok(Status::Partial));
        }
    }
}
