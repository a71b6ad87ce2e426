//! Request heads: parsed by the server ([`Request::parse`]), written by the client
//! ([`RequestHead::encode`]).

use http::header::{CONNECTION, HOST};
use http::{HeaderMap, Method};

use super::body::{self, Framing};
use super::{Error, Kind, MAX_HEADERS, MAX_REQUEST_HEAD, MAX_REQUEST_LINE, Status, Version};

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
    /// How the body is framed: never [`Framing::UntilClose`], since a request without
    /// `Content-Length` or `Transfer-Encoding` has no body (RFC 9112 §6.3 rule 6).
    pub body: Framing,
}

impl Request {
    /// Parses one request head from the start of `buf`.
    ///
    /// Returns `Partial` when more bytes are needed (never an error by itself), or the request
    /// and the number of bytes its head took. Any body follows those bytes.
    ///
    /// ```
    /// use socklab::http::h1::{Request, Status, Version};
    ///
    /// let wire = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
    /// let Ok(Status::Complete((req, used))) = Request::parse(wire) else { panic!() };
    /// assert_eq!((req.target.as_str(), req.version, req.keep_alive), ("/index.html", Version::Http11, true));
    /// assert_eq!(&wire[used..], b"GET /next");
    /// assert_eq!(Request::parse(&wire[used..]), Ok(Status::Partial));
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Status<(Request, usize)>, Error> {
        check_request_line(buf)?;
        // Uninitialised slots: httparse writes the ones it fills (no 3 KiB memset per request).
        let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let too_large = Error::HeadTooLarge {
            kind: Kind::Request,
            max: MAX_REQUEST_HEAD,
        };
        let used = match req.parse_with_uninit_headers(buf, &mut fields) {
            Ok(Status::Complete(n)) if n > MAX_REQUEST_HEAD => return Err(too_large),
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) if buf.len() > MAX_REQUEST_HEAD => return Err(too_large),
            Ok(Status::Partial) => return Ok(Status::Partial),
            Err(e) => return Err(super::parse_error(Kind::Request, e)),
        };
        // A complete parse fills these in; missing ones would be an httparse bug, answered 400.
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(malformed("incomplete request line".into()));
        };
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| malformed(format!("bad method {method:?}")))?;
        let version = Version::from_minor(minor);
        let headers = super::own_headers(Kind::Request, req.headers)?;
        if version == Version::Http11 && headers.get_all(HOST).iter().count() != 1 {
            return Err(Error::HostMissingOrRepeated);
        }
        let body = body::request_framing(&headers)?;
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing
        // somewhere on the path; read the body as chunked, but close the connection afterwards.
        let keep_alive = keep_alive(version, &headers)
            && !(version == Version::Http10 && body == Framing::Chunked);
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
}

fn malformed(reason: String) -> Error {
    Error::MalformedHead {
        kind: Kind::Request,
        reason,
    }
}

/// Refuses a request line longer than [`MAX_REQUEST_LINE`], even before it ends (414, not the
/// 431 that the whole head's limit would give).
fn check_request_line(buf: &[u8]) -> Result<(), Error> {
    // httparse skips empty lines before the request line (RFC 9112 §2.2); so do we, so the
    // request line we measure is the one httparse reads.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let too_long = match buf[start..].iter().position(|&b| b == b'\n') {
        Some(end) => end + 1 > MAX_REQUEST_LINE,
        None => buf.len() - start > MAX_REQUEST_LINE,
    };
    if too_long {
        return Err(Error::RequestLineTooLong {
            max: MAX_REQUEST_LINE,
        });
    }
    Ok(())
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
    /// use socklab::http::h1::RequestHead;
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

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use proptest::prelude::*;

    use super::*;

    fn complete(wire: &[u8]) -> (Request, usize) {
        match Request::parse(wire) {
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
        assert_eq!(req.body, Framing::None);
    }

    #[test]
    fn test_emit_request_head_then_parse_it() {
        let head = RequestHead {
            method: Method::HEAD,
            target: "/x?y".into(),
            headers: vec![
                ("Host".into(), "h:1".into()),
                ("Accept".into(), "*/*".into()),
            ],
        };
        let wire = head.encode();
        assert_eq!(
            wire,
            b"HEAD /x?y HTTP/1.1\r\nHost: h:1\r\nAccept: */*\r\n\r\n"
        );
        let (req, used) = complete(&wire);
        assert_eq!(used, wire.len());
        assert_eq!((req.method, req.target.as_str()), (Method::HEAD, "/x?y"));
        assert_eq!(req.headers["host"], "h:1");
        assert_eq!(head.get("accept"), Some("*/*"));
    }

    #[test]
    fn partial_head_is_not_an_error() {
        let wire = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..wire.len() {
            assert_eq!(
                Request::parse(&wire[..cut]),
                Ok(Status::Partial),
                "cut at {cut}"
            );
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
        assert_eq!(
            Request::parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(Error::HostMissingOrRepeated)
        );
        assert_eq!(
            Request::parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(Error::HostMissingOrRepeated)
        );
        assert!(matches!(
            Request::parse(b"GET / HTTP/1.0\r\n\r\n"),
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn limits_give_414_and_431() {
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        let err = Request::parse(long_line.as_bytes()).unwrap_err();
        assert_eq!(err.status(), StatusCode::URI_TOO_LONG);
        // Even before the line ends.
        let err = Request::parse(&long_line.as_bytes()[..MAX_REQUEST_LINE + 1]).unwrap_err();
        assert_eq!(err.status(), StatusCode::URI_TOO_LONG);

        let mut big = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..20 {
            big.push_str(&format!("X-{i}: {}\r\n", "v".repeat(1000)));
        }
        let err = Request::parse(big.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            Error::HeadTooLarge {
                kind: Kind::Request,
                max: MAX_REQUEST_HEAD
            }
        );

        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let err = Request::parse(many.as_bytes()).unwrap_err();
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
                Request::parse(wire).unwrap_err().status(),
                StatusCode::BAD_REQUEST,
                "{wire:?}"
            );
        }
    }

    /// Parses every head in `stream` fed in reads of `read` bytes, as a driver would.
    fn parse_stream(stream: &[u8], read: usize) -> Vec<Result<Request, Error>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for chunk in stream.chunks(read.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match Request::parse(&buf) {
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
            let _ = Request::parse(&data);
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
