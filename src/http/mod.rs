//! HTTP/1.1: a static file server and a wget-like client.
//!
//! HTTP/1.1 (RFC 9110 for the semantics, RFC 9112 for the wire format) is a request/reply
//! protocol over one TCP connection. A message is a *head* of text lines ended by an empty
//! line, then perhaps a *body*:
//!
//! ```text
//!   request-line   GET /docs/a.txt HTTP/1.1\r\n          method SP target SP version
//!   header fields  Host: 127.0.0.1:8080\r\n              name ":" value, one per line
//!                  Range: bytes=0-9\r\n
//!   empty line     \r\n                                   the head ends here
//!   body           (only if Content-Length or Transfer-Encoding says so)
//! ```
//!
//! **Framing** (RFC 9112 §6.3) is the heart of it, because nothing else says where a message
//! ends: a body is exactly `Content-Length` bytes, or a sequence of `SIZE\r\nDATA\r\n` chunks
//! ending with a zero-size chunk (`Transfer-Encoding: chunked`), or, for responses only,
//! "until the server closes". When two servers on a path disagree about where a request ends
//! (one believes `Content-Length`, the other `Transfer-Encoding`), an attacker can hide a
//! second request inside the first: *request smuggling*. So [`h1`] refuses any request
//! carrying both, or an unknown transfer coding, and the server closes the connection.
//!
//! **Persistent connections** (RFC 9112 §9.3): an HTTP/1.1 connection stays open after a
//! response unless either side sends `Connection: close`; HTTP/1.0 closes unless the client
//! sends `Connection: keep-alive`. A client may *pipeline*: send several requests without
//! waiting, and the server must answer them in order. One session, two requests on one
//! connection:
//!
//! ```text
//!   client                                          server
//!     │ GET /a.txt HTTP/1.1 | Host: x | (empty)        │
//!     │ ──────────────────────────────────────────────▶│
//!     │◀────────────────────────────────────────────── │
//!     │    HTTP/1.1 200 OK | Content-Length: 6 | … | (empty) | hello\n
//!     │ HEAD /b HTTP/1.1 | Host: x | Connection: close │
//!     │ ──────────────────────────────────────────────▶│
//!     │◀────────────────────────────────────────────── │
//!     │    HTTP/1.1 404 Not Found | Content-Length: 849 | Connection: close | (no body)
//!     │                                             FIN │
//! ```
//!
//! What lives where:
//!
//! - [`h1`]: the one sans-IO HTTP/1.1 message core both roles use: request and response
//!   heads (parsed with `httparse`, encoded into a buffer), the framing rules, and one body
//!   framer that hands back payload ranges (the server skips them, the client keeps them).
//!   Limits: 8 KiB request line (414), 16 KiB request head and 100 fields (431).
//! - [`server`]: the per-connection loop on `net::serve`, and the responses ([`server::respond`]),
//!   files, ranges, listings, error pages and access log.
//! - [`client`]: `socklab http get`, the downloader; its own decisions (request heads,
//!   redirects, proxies, resume, decompression, pacing) are sans-IO, one module each.
//! - [`cli`]: `socklab http serve` and `socklab http get`.
//!
//! Try it:
//!
//! ```text
//! $ socklab http serve ./site -p 8080
//! listening on 127.0.0.1:8080
//! $ curl -i http://127.0.0.1:8080/index.html                 status, headers and body
//! $ curl -r 0-99 -o part http://127.0.0.1:8080/big.iso       206 Partial Content
//! $ curl -v http://127.0.0.1:8080/a http://127.0.0.1:8080/b  "Re-using existing connection"
//! $ printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n' | nc -N 127.0.0.1 8080
//! ```

pub mod cli;
pub mod client;
pub mod h1;
pub mod lab;
pub mod server;
