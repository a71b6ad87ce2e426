//! Where a body ends (RFC 9112 §6), for both roles: the framing rules, and one [`BodyFramer`]
//! that walks a body's bytes and says which of them are payload.
//!
//! ```text
//!   Content-Length: 5        hello                          exactly 5 bytes
//!   Transfer-Encoding:       5;ext\r\n hello \r\n 0\r\n X-Sum: 1\r\n \r\n
//!     chunked                size line  data  CRLF  last  trailers     end
//!   (neither, response)      everything until the server closes
//!   (neither, request)       no body at all
//! ```
//!
//! The framer never copies: [`BodyFramer::decode`] answers how many input bytes it used and
//! which range of them is payload. The server skips that range; the client writes it out.

use std::ops::Range;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode};

use super::{Error, MAX_CHUNK_LINE, MAX_TRAILERS, Status};

/// How a body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a request without `Content-Length` (or with 0) or `Transfer-Encoding`; a
    /// response to HEAD, 1xx, 204, 304.
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection (a response with no length given).
    UntilClose,
}

/// A request's framing, as the server must judge it: `Transfer-Encoding` (only `chunked`, in
/// one field) or `Content-Length` (all values equal), never both. A request that could be
/// read two ways is refused, because two servers on the path might each pick a different way:
/// request smuggling (§6.3 rules 3 and 5; §6.1 requires 400 for an unknown coding).
pub(super) fn request_framing(headers: &HeaderMap) -> Result<Framing, Error> {
    let mut te = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let chunked_alone = te.next().is_none()
            && first
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !chunked_alone {
            return Err(unsupported(headers));
        }
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(Error::TransferEncodingWithContentLength);
        }
        return Ok(Framing::Chunked);
    }
    Ok(match content_length(headers)? {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// A response's framing, as the client judges it: no body after HEAD, 1xx, 204 and 304;
/// `Transfer-Encoding` wins over `Content-Length` (§6.3 rule 3), but only `chunked` is
/// understood; otherwise `Content-Length`, or until the server closes.
pub(super) fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Framing, Error> {
    let code = status.as_u16();
    if *method == Method::HEAD || status.is_informational() || code == 204 || code == 304 {
        return Ok(Framing::None);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let codings = transfer_codings(headers);
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            _ => Err(Error::UnsupportedTransferEncoding {
                codings: codings.join(", "),
            }),
        };
    }
    Ok(match content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// The transfer codings of every `Transfer-Encoding` field, in order, lowercased.
fn transfer_codings(headers: &HeaderMap) -> Vec<String> {
    let mut codings = Vec::new();
    for v in headers.get_all(TRANSFER_ENCODING) {
        codings.extend(
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty()),
        );
    }
    codings
}

fn unsupported(headers: &HeaderMap) -> Error {
    Error::UnsupportedTransferEncoding {
        codings: transfer_codings(headers).join(", "),
    }
}

/// The `Content-Length`, if any: decimal digits only, and every value the same (a list like
/// `5, 5` is allowed when every member agrees, §6.3 rule 5).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let invalid = || Error::InvalidContentLength {
            value: value.clone(),
        };
        let text = value.to_str().map_err(|_| invalid())?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let n: u64 = part.parse().map_err(|_| invalid())?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::ContentLengthsDisagree);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// What one [`BodyFramer::decode`] call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes consumed (framing and payload). 0 means more input is needed, or the body
    /// is done; bytes past the end of the body are never consumed.
    pub used: usize,
    /// The payload among them: always the last bytes of `input[..used]`, perhaps empty.
    pub payload: Range<usize>,
}

impl Decoded {
    fn framing_only(used: usize) -> Self {
        Self {
            used,
            payload: used..used,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many `Content-Length` bytes remain.
    Fixed {
        left: u64,
    },
    /// A chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk remain.
    ChunkData {
        left: u64,
    },
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk. `line`: the current line's bytes other than CR
    /// and LF; `kept`: its bytes kept so far; `total`: the section's bytes so far.
    Trailers {
        line: usize,
        kept: usize,
        total: usize,
    },
    UntilClose,
    Done,
}

/// Takes one body off the wire: feed it what arrives, learn which bytes are payload, and call
/// [`finish`](Self::finish) if the stream ends first.
///
/// ```
/// use socklab::http::h1::{BodyFramer, Framing};
/// let mut framer = BodyFramer::response(Framing::Chunked);
/// let mut wire = &b"3\r\nabc\r\n0\r\n\r\n"[..];
/// let mut body = Vec::new();
/// while !framer.is_done() {
///     let step = framer.decode(wire).unwrap();
///     body.extend_from_slice(&wire[step.payload]);
///     wire = &wire[step.used..];
/// }
/// assert_eq!(body, b"abc");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFramer {
    state: State,
    want: Option<u64>,
    received: u64,
    /// Most payload bytes (the sum of the chunk sizes, for a chunked body).
    limit: u64,
    keep_trailers: bool,
    trailers: Vec<u8>,
}

impl BodyFramer {
    /// A request body, as the server reads it: refused (413) when `Content-Length` or the
    /// chunk sizes add up to more than `limit`; trailer fields are skipped, not kept.
    pub fn request(framing: Framing, limit: u64) -> Result<Self, Error> {
        if let Framing::Length(n) = framing
            && n > limit
        {
            return Err(Error::BodyTooLarge { max: limit });
        }
        Ok(Self::new(framing, limit, false))
    }

    /// A response body, as the client reads it: no limit (it goes to a file), and the trailer
    /// section is kept (see [`trailers`](Self::trailers)).
    pub fn response(framing: Framing) -> Self {
        Self::new(framing, u64::MAX, true)
    }

    fn new(framing: Framing, limit: u64, keep_trailers: bool) -> Self {
        let (state, want) = match framing {
            Framing::None | Framing::Length(0) => (State::Done, Some(0)),
            Framing::Length(n) => (State::Fixed { left: n }, Some(n)),
            Framing::Chunked => (State::ChunkSize, None),
            Framing::UntilClose => (State::UntilClose, None),
        };
        Self {
            state,
            want,
            received: 0,
            limit,
            keep_trailers,
            trailers: Vec::new(),
        }
    }

    /// True once the whole body has been read (never for a body that runs until close).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body runs until the connection closes (no length, not chunked).
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Payload bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The announced length (`Content-Length`), if any.
    pub fn expected(&self) -> Option<u64> {
        self.want
    }

    /// The trailer section of a chunked response, as received (its closing empty line
    /// excluded); always empty for a request.
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Consumes framing bytes from the front of `input` and at most one run of payload.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok(Decoded::framing_only(used)),
                State::UntilClose => {
                    if self.received.saturating_add(rest.len() as u64) > self.limit {
                        return Err(Error::BodyTooLarge { max: self.limit });
                    }
                    self.received += rest.len() as u64;
                    return Ok(Decoded {
                        used: input.len(),
                        payload: used..input.len(),
                    });
                }
                State::Fixed { left } | State::ChunkData { left } => {
                    if rest.is_empty() {
                        return Ok(Decoded::framing_only(used));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let left = left - n as u64;
                    self.received += n as u64;
                    self.state = match self.state {
                        State::Fixed { .. } if left == 0 => State::Done,
                        State::Fixed { .. } => State::Fixed { left },
                        _ if left == 0 => State::ChunkEnd,
                        _ => State::ChunkData { left },
                    };
                    return Ok(Decoded {
                        used: used + n,
                        payload: used..used + n,
                    });
                }
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(Decoded::framing_only(used)),
                    _ => return Err(Error::ChunkLongerThanSize),
                },
                State::ChunkSize => {
                    let Some((n, size)) = chunk_size(rest)? else {
                        return Ok(Decoded::framing_only(used));
                    };
                    used += n;
                    // At a size line every earlier chunk has been received whole.
                    if self.received.saturating_add(size) > self.limit {
                        return Err(Error::BodyTooLarge { max: self.limit });
                    }
                    self.state = if size == 0 {
                        State::Trailers {
                            line: 0,
                            kept: 0,
                            total: 0,
                        }
                    } else {
                        State::ChunkData { left: size }
                    };
                }
                State::Trailers { line, kept, total } => {
                    // Trailer fields, line by line, until an empty line.
                    let end = rest.iter().position(|&b| b == b'\n');
                    let eaten = end.map_or(rest.len(), |nl| nl + 1);
                    let text = &rest[..eaten];
                    let line = line + text.iter().filter(|&&b| b != b'\r' && b != b'\n').count();
                    let total = total + eaten;
                    if total > MAX_TRAILERS {
                        return Err(Error::TrailersTooLong);
                    }
                    used += eaten;
                    let kept = kept + self.keep(text);
                    match end {
                        None => {
                            self.state = State::Trailers { line, kept, total };
                            return Ok(Decoded::framing_only(used));
                        }
                        Some(_) if line == 0 => {
                            // The empty line that ends the section is not a trailer: drop
                            // what was kept of it (a CR that came in an earlier read).
                            self.trailers.truncate(self.trailers.len() - kept);
                            self.state = State::Done;
                        }
                        Some(_) => {
                            self.state = State::Trailers {
                                line: 0,
                                kept: 0,
                                total,
                            };
                        }
                    }
                }
            }
        }
    }

    /// Keeps trailer bytes when this framer keeps them; returns how many it kept.
    fn keep(&mut self, text: &[u8]) -> usize {
        if !self.keep_trailers {
            return 0;
        }
        self.trailers.extend_from_slice(text);
        text.len()
    }

    /// The stream ended: fine for a body that runs until close or is complete; an error if
    /// `Content-Length` bytes or the last chunk did not come.
    pub fn finish(&mut self) -> Result<(), Error> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Fixed { .. } => Err(Error::BodyCutShort {
                got: self.received,
                want: self.want.unwrap_or(0),
            }),
            _ => Err(Error::ChunkedBodyCutShort { got: self.received }),
        }
    }
}

/// Reads a chunk-size line (`HEX[;extensions]CRLF`, at most [`MAX_CHUNK_LINE`] bytes) from
/// the front of `rest`: its length and the size, or `None` until it is complete. Garbage is
/// refused as soon as it arrives, and the line ends at its first LF: a bare LF inside an
/// extension (which httparse would pass over) is refused, so that no reader on the path can
/// see a different line end than we do.
fn chunk_size(rest: &[u8]) -> Result<Option<(usize, u64)>, Error> {
    let window = &rest[..rest.len().min(MAX_CHUNK_LINE)];
    let nl = window.iter().position(|&b| b == b'\n');
    let line = nl.map_or(window, |nl| &window[..=nl]);
    match httparse::parse_chunk_size(line) {
        Ok(Status::Complete(x)) => Ok(Some(x)),
        Ok(Status::Partial) if nl.is_some() => Err(Error::BadChunkSize),
        Ok(Status::Partial) if rest.len() >= MAX_CHUNK_LINE => Err(Error::ChunkSizeLineTooLong),
        Ok(Status::Partial) => Ok(None),
        Err(_) => Err(Error::BadChunkSize),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Request, Response};
    use super::*;
    use crate::frame::testing::assert_any_split;

    // ---- the framing rules -------------------------------------------------------------

    #[test]
    fn body_framing_refuses_smuggling() {
        let body = |extra: &str| {
            Request::parse(format!("POST / HTTP/1.1\r\nHost: h\r\n{extra}\r\n").as_bytes()).map(
                |s| match s {
                    Status::Complete((r, _)) => r.body,
                    Status::Partial => panic!("partial"),
                },
            )
        };
        assert_eq!(body("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(body("Content-Length: 5, 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(body("Content-Length: 0\r\n"), Ok(Framing::None));
        assert_eq!(body(""), Ok(Framing::None));
        assert_eq!(body("Transfer-Encoding: Chunked\r\n"), Ok(Framing::Chunked));
        assert_eq!(
            body("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            Err(Error::TransferEncodingWithContentLength)
        );
        assert_eq!(
            body("Transfer-Encoding: gzip, chunked\r\n"),
            Err(Error::UnsupportedTransferEncoding {
                codings: "gzip, chunked".into()
            })
        );
        // One field only: a second one, even an empty one, is how framing gets hidden.
        assert!(matches!(
            body("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            Err(Error::UnsupportedTransferEncoding { .. })
        ));
        assert_eq!(
            body("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err(Error::ContentLengthsDisagree)
        );
        assert_eq!(
            body("Content-Length: +5\r\n"),
            Err(Error::InvalidContentLength {
                value: http::HeaderValue::from_static("+5")
            })
        );
    }

    fn response(wire: &[u8]) -> Response {
        match Response::parse(wire) {
            Ok(Status::Complete((h, _))) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112_6_3() {
        let get = Method::GET;
        let f = |wire: &str| response(wire.as_bytes()).framing(&get);
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(f("HTTP/1.0 200 OK\r\n\r\n"), Ok(Framing::UntilClose));
        assert_eq!(f("HTTP/1.1 204 No Content\r\n\r\n"), Ok(Framing::None));
        assert_eq!(
            f("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
            Ok(Framing::None)
        );
        assert_eq!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n").framing(&Method::HEAD),
            Ok(Framing::None)
        );
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").is_err());
        assert!(f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").is_err());
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
                .unwrap_err()
                .to_string(),
            "invalid Content-Length \"-1\""
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\nTransfer-Encoding: Chunked\r\n\r\n")
                .unwrap_err()
                .to_string(),
            "unsupported Transfer-Encoding \"gzip, chunked\" (only chunked is understood)"
        );
    }

    // ---- golden bytes ------------------------------------------------------------------

    /// Every step `decode` takes over `wire`, each on what the previous ones left.
    fn steps(mut framer: BodyFramer, wire: &[u8]) -> Vec<(usize, Range<usize>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let step = framer.decode(&wire[at..]).unwrap();
            out.push((step.used, step.payload.clone()));
            if step.used == 0 {
                return out;
            }
            at += step.used;
        }
    }

    #[test]
    fn test_decode_chunked_golden() {
        let wire = b"5;ext=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        // size line + data, CRLF + size line + data, CRLF + last chunk + trailer + end, stop.
        assert_eq!(
            steps(BodyFramer::response(Framing::Chunked), wire),
            [(14, 9..14), (16, 6..16), (17, 17..17), (0, 0..0)]
        );
        assert_eq!(
            steps(BodyFramer::request(Framing::Chunked, 15).unwrap(), wire),
            [(14, 9..14), (16, 6..16), (17, 17..17), (0, 0..0)]
        );
    }

    #[test]
    fn test_decode_length_and_until_close_golden() {
        assert_eq!(
            steps(BodyFramer::response(Framing::Length(3)), b"abcdef"),
            [(3, 0..3), (0, 0..0)]
        );
        assert_eq!(
            steps(BodyFramer::response(Framing::UntilClose), b"abcdef"),
            [(6, 0..6), (0, 0..0)]
        );
        assert_eq!(
            steps(BodyFramer::response(Framing::None), b"abc"),
            [(0, 0..0)]
        );
    }

    // ---- the server's role: skip, within a limit -------------------------------------

    /// Skips a request body fed in reads of `read` bytes: the bytes it took and whether it
    /// ended.
    fn skip_body(body: Framing, wire: &[u8], read: usize) -> Result<(usize, bool), Error> {
        let mut framer = BodyFramer::request(body, 1 << 20)?;
        let mut used = 0;
        let mut fed = 0;
        while !framer.is_done() && fed < wire.len() {
            fed = (fed + read).min(wire.len());
            loop {
                let step = framer.decode(&wire[used..fed])?;
                used += step.used;
                if step.used == 0 || framer.is_done() {
                    break;
                }
            }
        }
        Ok((used, framer.is_done()))
    }

    #[test]
    fn chunked_body_is_skipped_in_any_reads() {
        let wire = b"5;ext=1\r\nhello\r\n0a\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET";
        for read in 1..wire.len() {
            assert_eq!(
                skip_body(Framing::Chunked, wire, read),
                Ok((wire.len() - 3, true))
            );
        }
        assert_eq!(skip_body(Framing::Chunked, b"0\r\n\r\n", 1), Ok((5, true)));
        assert_eq!(
            skip_body(Framing::Chunked, b"2\r\nabc\r\n", 100),
            Err(Error::ChunkLongerThanSize)
        );
        assert_eq!(
            skip_body(Framing::Chunked, b"200000\r\n", 100),
            Err(Error::BodyTooLarge { max: 1 << 20 })
        );
        assert_eq!(
            skip_body(Framing::Length(2 << 20), b"", 1),
            Err(Error::BodyTooLarge { max: 1 << 20 })
        );
        assert_eq!(skip_body(Framing::Length(3), b"abcdef", 2), Ok((3, true)));
        // The limit counts every chunk: 5 + 6 is over 10 at the second size line.
        let mut framer = BodyFramer::request(Framing::Chunked, 10).unwrap();
        let wire = b"5\r\nhello\r\n6\r\n";
        let step = framer.decode(wire).unwrap();
        assert_eq!(
            framer.decode(&wire[step.used..]),
            Err(Error::BodyTooLarge { max: 10 })
        );
        // A request keeps no trailers.
        let mut framer = BodyFramer::request(Framing::Chunked, 10).unwrap();
        framer.decode(b"0\r\nX: 1\r\n\r\n").unwrap();
        assert!(framer.is_done() && framer.trailers().is_empty());
    }

    // ---- the client's role: keep, then end the stream --------------------------------

    /// Decodes `wire` fed in reads of `read` bytes, as the client does (unconsumed bytes stay
    /// buffered), then ends the stream. Returns the payload and the outcome.
    fn decode_all(framing: Framing, wire: &[u8], read: usize) -> (Vec<u8>, Result<usize, Error>) {
        let (body, res, _) = decode_cut(BodyFramer::response(framing), wire, &reads(wire, read));
        (body, res)
    }

    /// The cut points of reads of `read` bytes.
    fn reads(wire: &[u8], read: usize) -> Vec<usize> {
        (1..wire.len()).filter(|i| i % read.max(1) == 0).collect()
    }

    /// Feeds `wire` cut at `cuts` (sorted offsets) to `framer`, decoding all it can after each
    /// piece, then ends the stream: the payload, the bytes consumed or the error, and the
    /// trailers.
    fn decode_cut(
        mut framer: BodyFramer,
        wire: &[u8],
        cuts: &[usize],
    ) -> (Vec<u8>, Result<usize, Error>, Vec<u8>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut start = 0;
        for end in cuts.iter().copied().chain([wire.len()]) {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            loop {
                match framer.decode(&buf) {
                    Ok(step) if step.used == 0 => break,
                    Ok(step) => {
                        assert!(step.payload.end == step.used, "payload not at the end");
                        body.extend_from_slice(&buf[step.payload]);
                        buf.drain(..step.used);
                        consumed += step.used;
                    }
                    Err(e) => return (body, Err(e), framer.trailers().to_vec()),
                }
            }
            if framer.is_done() {
                return (body, Ok(consumed), framer.trailers().to_vec());
            }
        }
        let res = framer.finish().map(|()| consumed);
        (body, res, framer.trailers().to_vec())
    }

    /// Asserts that `wire` frames to the same payload, outcome and trailers however it is cut
    /// into reads: at every single cut, and as [`assert_any_split`] cuts it (all at once, one
    /// byte at a time, random cuts). Returns that common result.
    fn assert_split_invariant(
        make: impl Fn() -> BodyFramer,
        wire: &[u8],
    ) -> (Vec<u8>, Result<usize, Error>, Vec<u8>) {
        let whole = decode_cut(make(), wire, &[]);
        let check = |cuts: &[usize]| {
            let got = decode_cut(make(), wire, cuts);
            if got == whole {
                Ok(())
            } else {
                Err(format!("cut at {cuts:?}: {got:?}, all at once: {whole:?}"))
            }
        };
        for cut in 0..=wire.len() {
            if let Err(e) = check(&[cut]) {
                panic!("one cut: {e}");
            }
        }
        assert_any_split(wire.len(), check);
        whole
    }

    #[test]
    fn every_split_frames_the_same() {
        let wire = b"5;ext=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        let (body, res, trailers) =
            assert_split_invariant(|| BodyFramer::response(Framing::Chunked), wire);
        assert_eq!(body, b"hello0123456789");
        assert_eq!(res, Ok(wire.len() - 4));
        assert_eq!(trailers, b"X-Sum: 1\r\nX-B: 2\r\n");
        let (_, res, trailers) =
            assert_split_invariant(|| BodyFramer::request(Framing::Chunked, 100).unwrap(), wire);
        assert_eq!((res, trailers), (Ok(wire.len() - 4), vec![]));
        let (body, res, _) =
            assert_split_invariant(|| BodyFramer::response(Framing::Length(5)), b"helloNEXT");
        assert_eq!((body, res), (b"hello".to_vec(), Ok(5)));
        let (body, res, _) =
            assert_split_invariant(|| BodyFramer::response(Framing::UntilClose), b"all of it");
        assert_eq!((body, res), (b"all of it".to_vec(), Ok(9)));
        // Errors, too, come out the same wherever the reads fall.
        let (_, res, _) = assert_split_invariant(
            || BodyFramer::response(Framing::Chunked),
            b"3\r\nabc\r\n4;a\nb\r\nabcd\r\n0\r\n\r\n",
        );
        assert_eq!(res, Err(Error::BadChunkSize));
        let (_, res, _) =
            assert_split_invariant(|| BodyFramer::request(Framing::Chunked, 4).unwrap(), wire);
        assert_eq!(res, Err(Error::BodyTooLarge { max: 4 }));
    }

    #[test]
    fn test_parse_chunked_with_trailers_in_any_reads() {
        let wire = b"5;ext=1\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        for read in 1..=wire.len() {
            let (body, res) = decode_all(Framing::Chunked, wire, read);
            assert_eq!(body, b"hello0123456789", "read {read}");
            assert_eq!(res, Ok(wire.len() - 4), "read {read}");
        }
        let mut dec = BodyFramer::response(Framing::Chunked);
        let mut rest = &wire[..];
        while !dec.is_done() {
            let step = dec.decode(rest).unwrap();
            rest = &rest[step.used..];
        }
        assert_eq!(dec.trailers(), b"X-Sum: 1\r\nX-B: 2\r\n");
        assert_eq!(dec.received(), 15);
    }

    #[test]
    fn chunked_errors() {
        let bad = |wire: &[u8]| decode_all(Framing::Chunked, wire, 1000).1;
        assert_eq!(
            bad(b"2\r\nabc\r\n0\r\n\r\n"),
            Err(Error::ChunkLongerThanSize)
        );
        assert_eq!(
            Error::ChunkLongerThanSize.to_string(),
            "malformed chunked body: chunk data longer than its size"
        );
        assert_eq!(bad(b"zz\r\n"), Err(Error::BadChunkSize));
        assert_eq!(
            Error::BadChunkSize.to_string(),
            "malformed chunked body: bad chunk-size line"
        );
        assert_eq!(
            bad(b"3\r\nabc\r\n"),
            Err(Error::ChunkedBodyCutShort { got: 3 })
        );
        let long = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(bad(long.as_bytes()), Err(Error::ChunkSizeLineTooLong));
        assert_eq!(
            Error::ChunkSizeLineTooLong.to_string(),
            "malformed chunked body: chunk-size line too long"
        );
        let huge_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
        assert_eq!(bad(huge_trailer.as_bytes()), Err(Error::TrailersTooLong));
        assert_eq!(
            Error::TrailersTooLong.to_string(),
            "malformed chunked body: trailer section too long"
        );
        // A size that does not fit in 64 bits.
        assert!(bad(b"1ffffffffffffffff\r\n").is_err());
        // Garbage is refused before its line ends.
        assert_eq!(bad(b"zz"), Err(Error::BadChunkSize));
    }

    #[test]
    fn fixed_and_until_close() {
        assert_eq!(
            decode_all(Framing::Length(3), b"abcdef", 2),
            (b"abc".to_vec(), Ok(3))
        );
        assert_eq!(
            decode_all(Framing::Length(10), b"abcd", 3),
            (
                b"abcd".to_vec(),
                Err(Error::BodyCutShort { got: 4, want: 10 })
            )
        );
        assert_eq!(
            Error::BodyCutShort { got: 4, want: 10 }.to_string(),
            "body ended after 4 of 10 bytes"
        );
        assert_eq!(
            decode_all(Framing::UntilClose, b"all of it", 4),
            (b"all of it".to_vec(), Ok(9))
        );
        assert_eq!(decode_all(Framing::None, b"xyz", 1), (vec![], Ok(0)));
        assert_eq!(decode_all(Framing::Length(0), b"", 1), (vec![], Ok(0)));
        let framer = BodyFramer::response(Framing::Length(7));
        assert_eq!((framer.expected(), framer.until_close()), (Some(7), false));
        assert!(BodyFramer::response(Framing::UntilClose).until_close());
    }

    fn chunked_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            proptest::collection::vec("[A-Za-z]{1,8}: [ -~]{0,10}", 0..3),
            any::<bool>(),
        )
            .prop_map(|(chunks, trailers, ext)| {
                let mut wire = Vec::new();
                let mut body = Vec::new();
                for c in chunks {
                    if ext {
                        wire.extend_from_slice(format!("{:X};a=b\r\n", c.len()).as_bytes());
                    } else {
                        wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    }
                    wire.extend_from_slice(&c);
                    wire.extend_from_slice(b"\r\n");
                    body.extend_from_slice(&c);
                }
                wire.extend_from_slice(b"0\r\n");
                for t in trailers {
                    wire.extend_from_slice(t.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"\r\n");
                (wire, body)
            })
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_the_same_in_any_reads((wire, body) in chunked_strategy(), read in 1usize..50) {
            let whole = decode_all(Framing::Chunked, &wire, wire.len().max(1));
            prop_assert_eq!(&whole.0, &body);
            prop_assert_eq!(whole.1.clone(), Ok(wire.len()));
            prop_assert_eq!(decode_all(Framing::Chunked, &wire, read), whole);
        }

        #[test]
        fn any_bytes_decode_the_same_in_any_reads(
            wire in proptest::collection::vec(prop_oneof![
                Just(b'0'), Just(b'1'), Just(b'a'), Just(b'\r'), Just(b'\n'), Just(b';'), Just(b'x'), any::<u8>()
            ], 0..200),
            read in 1usize..20,
            len in 0u64..100,
        ) {
            for framing in [Framing::Chunked, Framing::Length(len), Framing::UntilClose] {
                let whole = decode_cut(BodyFramer::response(framing), &wire, &[]);
                prop_assert_eq!(decode_cut(BodyFramer::response(framing), &wire, &reads(&wire, read)), whole);
                let skip = |cuts: &[usize]| {
                    let (_, res, _) = decode_cut(BodyFramer::request(framing, 64).unwrap(), &wire, cuts);
                    res
                };
                if framing != Framing::Length(len) || len <= 64 {
                    prop_assert_eq!(skip(&reads(&wire, read)), skip(&[]));
                }
            }
            let _ = Response::parse(&wire);
        }
    }
}
