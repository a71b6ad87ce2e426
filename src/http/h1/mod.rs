//! The one HTTP/1.1 message core (RFC 9112), shared by the server and the client.
//!
//! Both roles read and write the same wire format, so both go through the same code: the
//! server parses request heads and writes response heads, the client writes request heads and
//! parses response heads, and both take bodies off the wire with the same [`BodyFramer`].
//!
//! ```text
//!              the server                          the client
//!   reads      Request::parse  (request.rs)       Response::parse     (response.rs)
//!   frames     Request::body   (the §6.3 rules)   Response::framing   (body.rs)
//!   skips or   BodyFramer::request: payload       BodyFramer::response: payload
//!   keeps      ranges skipped, ≤ a limit          ranges kept, trailers kept
//!   writes     ResponseHead::encode (response.rs) RequestHead::encode (request.rs)
//! ```
//!
//! Sans-IO: no sockets, no files, no clock (the `Date` header's time is an argument). Every
//! parser takes the bytes buffered so far and answers "need more" ([`Status::Partial`],
//! never an error), a complete message with the bytes it took, or an [`Error`].
//!
//! # Limits (checked before anything is kept)
//!
//! | what | limit | the server answers |
//! |------|-------|--------------------|
//! | request line | [`MAX_REQUEST_LINE`] (8 KiB) | 414 URI Too Long |
//! | request head (request line + fields + blank line) | [`MAX_REQUEST_HEAD`] (16 KiB) | 431 |
//! | response head (what the client reads) | [`MAX_RESPONSE_HEAD`] (64 KiB) | — |
//! | header fields in one head | [`MAX_HEADERS`] (100) | 431 |
//! | chunk-size line (size, extensions, CRLF) | [`MAX_CHUNK_LINE`] (1 KiB) | 400 |
//! | trailer section after the last chunk | [`MAX_TRAILERS`] (16 KiB) | 400 |
//! | request body | the server's argument to [`BodyFramer::request`] | 413 |
//!
//! # Errors
//!
//! One [`Error`] for both roles, each variant named for what the peer sent.
//! [`Error::status`] is the answer a server gives; the client reports the message.
//!
//! # A round trip
//!
//! ```
//! use std::time::UNIX_EPOCH;
//!
//! use bytes::BytesMut;
//! use http::{Method, StatusCode, header::CONTENT_LENGTH};
//! use socklab::http::h1::{BodyFramer, Request, RequestHead, Response, ResponseHead, Status};
//!
//! // The client writes a request; the server parses it.
//! let head = RequestHead {
//!     method: Method::GET,
//!     target: "/a.txt".into(),
//!     headers: vec![("Host".into(), "x".into())],
//! };
//! let Ok(Status::Complete((req, _))) = Request::parse(&head.encode()) else { panic!() };
//! assert_eq!((req.method, req.target.as_str()), (Method::GET, "/a.txt"));
//!
//! // The server answers; the client parses the head and frames the body.
//! let mut wire = BytesMut::new();
//! let mut reply = ResponseHead::new(StatusCode::OK);
//! reply.text(CONTENT_LENGTH, "5");
//! reply.encode(UNIX_EPOCH, &mut wire);
//! wire.extend_from_slice(b"hello");
//! let Ok(Status::Complete((resp, used))) = Response::parse(&wire) else { panic!() };
//! let mut framer = BodyFramer::response(resp.framing(&Method::GET).unwrap());
//! let step = framer.decode(&wire[used..]).unwrap();
//! assert_eq!(&wire[used..][step.payload], b"hello");
//! assert!(framer.is_done());
//! ```

mod body;
mod request;
mod response;

use std::fmt;

use http::{HeaderValue, StatusCode};

pub use self::body::{BodyFramer, Decoded, Framing};
pub use self::request::{Request, RequestHead};
pub use self::response::{Response, ResponseHead};
pub use httparse::Status;

/// Longest request line (method, target, version, CRLF) the server accepts (RFC 9112 §3
/// recommends at least 8000 octets).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head (request line, all header fields, the blank line).
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Longest response head (status line, header fields, blank line) the client reads.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header fields in one head, request or response.
pub const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size, extensions, CRLF) in a chunked body.
pub const MAX_CHUNK_LINE: usize = 1024;
/// Longest trailer section after the last chunk of a chunked body.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The HTTP version of a message.
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

    /// The version httparse read (`1.0` is minor 0; it reads nothing but 1.0 and 1.1).
    fn from_minor(minor: u8) -> Self {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// Which kind of head an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request head (what a server reads).
    Request,
    /// A response head (what a client reads).
    Response,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Request => "request",
            Kind::Response => "response",
        })
    }
}

/// What the peer sent that HTTP/1.1 (or one of our limits) does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request line longer than [`MAX_REQUEST_LINE`].
    #[error("request line longer than {max} bytes")]
    RequestLineTooLong {
        /// The limit.
        max: usize,
    },
    /// A head that did not end within its limit.
    #[error("{kind} head longer than {max} bytes")]
    HeadTooLarge {
        /// Request or response.
        kind: Kind,
        /// The limit.
        max: usize,
    },
    /// More header fields than [`MAX_HEADERS`].
    #[error("more than {max} header fields in the {kind}")]
    TooManyHeaders {
        /// Request or response.
        kind: Kind,
        /// The limit.
        max: usize,
    },
    /// Not an HTTP/1.x head.
    #[error("malformed {kind} head: {reason}")]
    MalformedHead {
        /// Request or response.
        kind: Kind,
        /// What httparse (or we) found wrong.
        reason: String,
    },
    /// An HTTP/1.1 request without exactly one `Host` field (RFC 9112 §3.2).
    #[error("an HTTP/1.1 request needs exactly one Host header")]
    HostMissingOrRepeated,
    /// A request with both `Transfer-Encoding` and `Content-Length`: the shape of request
    /// smuggling (RFC 9112 §6.3 rule 3).
    #[error("both Transfer-Encoding and Content-Length in a request")]
    TransferEncodingWithContentLength,
    /// A transfer coding other than `chunked` alone.
    #[error("unsupported Transfer-Encoding {codings:?} (only chunked is understood)")]
    UnsupportedTransferEncoding {
        /// The codings as sent.
        codings: String,
    },
    /// A `Content-Length` that is not a decimal number.
    #[error("invalid Content-Length {value:?}")]
    InvalidContentLength {
        /// The field as sent.
        value: HeaderValue,
    },
    /// Several `Content-Length` values that differ (RFC 9112 §6.3 rule 5).
    #[error("Content-Length values that disagree")]
    ContentLengthsDisagree,
    /// A request body longer than the server reads.
    #[error("request body longer than {max} bytes")]
    BodyTooLarge {
        /// The limit.
        max: u64,
    },
    /// A chunk-size line that is not hex digits, extensions and CRLF.
    #[error("malformed chunked body: bad chunk-size line")]
    BadChunkSize,
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`].
    #[error("malformed chunked body: chunk-size line too long")]
    ChunkSizeLineTooLong,
    /// Chunk data not followed by CRLF where its size says it ends.
    #[error("malformed chunked body: chunk data longer than its size")]
    ChunkLongerThanSize,
    /// A trailer section longer than [`MAX_TRAILERS`].
    #[error("malformed chunked body: trailer section too long")]
    TrailersTooLong,
    /// The connection closed before `Content-Length` bytes came.
    #[error("body ended after {got} of {want} bytes")]
    BodyCutShort {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// The connection closed inside a chunked body.
    #[error("chunked body ended after {got} bytes, before its last chunk")]
    ChunkedBodyCutShort {
        /// Bytes received.
        got: u64,
    },
}

impl Error {
    /// The status a server answers this error with (RFC 9110 §15.5).
    pub fn status(&self) -> StatusCode {
        match self {
            Error::RequestLineTooLong { .. } => StatusCode::URI_TOO_LONG,
            Error::HeadTooLarge { .. } | Error::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// What an httparse error means: too many fields, or not a head at all.
fn parse_error(kind: Kind, e: httparse::Error) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders {
            kind,
            max: MAX_HEADERS,
        },
        e => Error::MalformedHead {
            kind,
            reason: e.to_string(),
        },
    }
}

/// Copies httparse's borrowed fields into an owned map, refusing what `http` cannot hold.
fn own_headers(kind: Kind, fields: &[httparse::Header<'_>]) -> Result<http::HeaderMap, Error> {
    let malformed = |reason: String| Error::MalformedHead { kind, reason };
    let mut headers = http::HeaderMap::with_capacity(fields.len());
    for h in fields {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| malformed(format!("bad header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| malformed(format!("bad value in header {:?}", h.name)))?;
        headers.append(name, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errors = [
            Error::RequestLineTooLong { max: 1 },
            Error::HeadTooLarge {
                kind: Kind::Request,
                max: 1,
            },
            Error::TooManyHeaders {
                kind: Kind::Response,
                max: 1,
            },
            Error::MalformedHead {
                kind: Kind::Response,
                reason: "x".into(),
            },
            Error::HostMissingOrRepeated,
            Error::TransferEncodingWithContentLength,
            Error::UnsupportedTransferEncoding {
                codings: "gzip".into(),
            },
            Error::InvalidContentLength {
                value: HeaderValue::from_static("x"),
            },
            // `ContentLengthsDisagree` starts with the field's name, as written on the wire.
            Error::BodyTooLarge { max: 1 },
            Error::BadChunkSize,
            Error::ChunkSizeLineTooLong,
            Error::ChunkLongerThanSize,
            Error::TrailersTooLong,
            Error::BodyCutShort { got: 1, want: 2 },
            Error::ChunkedBodyCutShort { got: 1 },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
        assert_eq!(
            Error::HeadTooLarge {
                kind: Kind::Response,
                max: MAX_RESPONSE_HEAD
            }
            .to_string(),
            "response head longer than 65536 bytes"
        );
    }

    #[test]
    fn each_error_maps_to_its_status() {
        assert_eq!(
            Error::RequestLineTooLong { max: 1 }.status(),
            StatusCode::URI_TOO_LONG
        );
        assert_eq!(
            Error::TooManyHeaders {
                kind: Kind::Request,
                max: 1
            }
            .status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            Error::BodyTooLarge { max: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(Error::BadChunkSize.status(), StatusCode::BAD_REQUEST);
    }
}
