//! `--compressed`: which content coding a response has, and undoing gzip or deflate in
//! bounded pieces. Sans-IO: bytes in, bytes out.
//!
//! **Decompression bombs.** A few kilobytes of gzip can inflate to gigabytes of zeros
//! (deflate's ceiling is about 1032:1 per layer). Decoding in bounded pieces keeps memory
//! flat, but the disk would still fill. So, unless the user set their own ceiling with
//! `--max-filesize`, a [`Decompressor`] with a ratio limit refuses a body whose output, past
//! its first [`RATIO_FREE`] bytes, is more than [`MAX_RATIO`] times the compressed input read
//! so far. 100:1 is Apache POI's `ZipSecureFile` default (a minimum inflate ratio of 0.01);
//! text, HTML and JSON compress 3 to 20 times, and a bound of 1000:1 would catch only the
//! most perfect bombs, which reach 1032:1.

use std::fmt;

use http::header::CONTENT_ENCODING;

use crate::http::h1::Response;

/// Compressed bytes fed to the decompressor at a time, so one piece can expand to at most
/// about 1 MiB (deflate's ratio is bounded near 1032:1).
pub const DECOMPRESS_PIECE: usize = 1024;
/// Most output bytes per compressed input byte, once [`RATIO_FREE`] bytes have come out (see
/// the module docs).
pub const MAX_RATIO: u64 = 100;
/// Output allowed before [`MAX_RATIO`] is checked: small, very compressible responses (a page
/// of repeated rows) pass whatever their ratio.
pub const RATIO_FREE: u64 = 1 << 20;

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
pub fn content_coding(head: &Response) -> Coding {
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
#[non_exhaustive]
pub enum DecompressError {
    /// Not a valid stream of its coding, or cut short.
    #[error("cannot decode the {coding} body: {reason}")]
    Corrupt {
        /// `gzip` or `deflate`.
        coding: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A body inflating more than [`MAX_RATIO`]:1 past its first [`RATIO_FREE`] bytes.
    #[error(
        "the {coding} body inflates more than {max_ratio}:1 ({output} bytes out of {input}), \
         like a decompression bomb; refused (--max-filesize SIZE accepts it up to SIZE)"
    )]
    Bomb {
        /// `gzip` or `deflate`.
        coding: &'static str,
        /// The limit.
        max_ratio: u64,
        /// Bytes that came out.
        output: u64,
        /// Compressed bytes that went in.
        input: u64,
    },
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
    /// [`MAX_RATIO`], unless the caller lifted the limit.
    max_ratio: Option<u64>,
    /// Compressed bytes taken so far.
    input: u64,
    /// Bytes produced so far.
    output: u64,
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
        Some(Self {
            inner,
            coding,
            max_ratio: Some(MAX_RATIO),
            input: 0,
            output: 0,
        })
    }

    /// No ratio limit (the caller bounds the output itself: `--max-filesize`).
    pub fn without_ratio_limit(mut self) -> Self {
        self.max_ratio = None;
        self
    }

    fn err(&self, e: impl fmt::Display) -> DecompressError {
        DecompressError::Corrupt {
            coding: self.coding,
            reason: e.to_string(),
        }
    }

    /// Decodes `input`; returns what came out (valid until the next call).
    pub fn push(&mut self, input: &[u8]) -> Result<&[u8], DecompressError> {
        self.input += input.len() as u64;
        self.inflate(input)?;
        self.checked_output()
    }

    /// The body ended: checks the stream was complete and returns the last output.
    pub fn finish(&mut self) -> Result<&[u8], DecompressError> {
        if let Inflater::Sniffing(seen) = &self.inner {
            if seen.is_empty() {
                return Ok(&[]);
            }
            return Err(self.err("the stream ended after one byte"));
        }
        self.write(&[], |d, _| d.try_finish())?;
        self.checked_output()
    }

    /// The output of the last step, counted and checked against the ratio limit.
    fn checked_output(&mut self) -> Result<&[u8], DecompressError> {
        self.output += self.current().len() as u64;
        if let Some(max_ratio) = self.max_ratio
            && self.output > RATIO_FREE
            && self.output > self.input.saturating_mul(max_ratio)
        {
            return Err(DecompressError::Bomb {
                coding: self.coding,
                max_ratio,
                output: self.output,
                input: self.input,
            });
        }
        Ok(self.current())
    }

    /// What the last step produced.
    fn current(&self) -> &[u8] {
        match &self.inner {
            Inflater::Gzip(d) => d.get_ref(),
            Inflater::Zlib(d) => d.get_ref(),
            Inflater::Raw(d) => d.get_ref(),
            Inflater::Sniffing(_) => &[],
        }
    }

    /// Runs the decoder over `input`, leaving its output in the inner buffer.
    fn inflate(&mut self, input: &[u8]) -> Result<(), DecompressError> {
        if let Inflater::Sniffing(seen) = &mut self.inner {
            seen.extend_from_slice(input);
            if seen.len() < 2 {
                return Ok(());
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

    fn write(
        &mut self,
        input: &[u8],
        op: impl Fn(&mut dyn FinishWrite, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), DecompressError> {
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
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::http::h1::Status;

    fn head(wire: &[u8]) -> Response {
        match Response::parse(wire) {
            Ok(Status::Complete((h, _))) => h,
            other => panic!("{other:?}"),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate_all(coding: Coding, wire: &[u8], piece: usize) -> Result<Vec<u8>, String> {
        let mut d = Decompressor::new(&coding).unwrap();
        let mut out = Vec::new();
        for p in wire.chunks(piece) {
            out.extend_from_slice(d.push(p).map_err(|e| e.to_string())?);
        }
        out.extend_from_slice(d.finish().map_err(|e| e.to_string())?);
        Ok(out)
    }

    /// See: issue 15. A gzip bomb was decoded to the end, filling the disk.
    #[test]
    fn a_bomb_is_refused_past_the_first_mib_unless_the_limit_is_lifted() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        let mut d = Decompressor::new(&Coding::Gzip).unwrap();
        let mut out = 0u64;
        let err = bomb
            .chunks(DECOMPRESS_PIECE)
            .try_for_each(|p| d.push(p).map(|o| out += o.len() as u64))
            .unwrap_err();
        assert!(
            matches!(err, DecompressError::Bomb { max_ratio: 100, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("inflates more than 100:1"),
            "{err}"
        );
        // Refused before much more than the free first MiB was handed out.
        assert!(out <= RATIO_FREE, "{out}");
        // Lifted, it decodes all of it.
        assert_eq!(
            inflate_all_unlimited(Coding::Gzip, &bomb, DECOMPRESS_PIECE).len(),
            zeros.len()
        );
        // A small very compressible body passes: its output stays under the free MiB.
        assert_eq!(
            inflate_all(Coding::Gzip, &gzip(&[0u8; 1 << 19]), DECOMPRESS_PIECE).unwrap(),
            vec![0u8; 1 << 19]
        );
        // Ordinary data past the first MiB passes too.
        let text: Vec<u8> = (0..1_000_000u32)
            .flat_map(|i| format!("{i},").into_bytes())
            .collect();
        assert_eq!(
            inflate_all(Coding::Gzip, &gzip(&text), DECOMPRESS_PIECE).unwrap(),
            text
        );
    }

    fn inflate_all_unlimited(coding: Coding, wire: &[u8], piece: usize) -> Vec<u8> {
        let mut d = Decompressor::new(&coding).unwrap().without_ratio_limit();
        let mut out = Vec::new();
        for p in wire.chunks(piece) {
            out.extend_from_slice(d.push(p).unwrap());
        }
        out.extend_from_slice(d.finish().unwrap());
        out
    }

    #[test]
    fn gzip_and_deflate_decode_in_pieces() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let gz = gzip(&text);
        for piece in [1, 7, 1024] {
            assert_eq!(inflate_all(Coding::Gzip, &gz, piece).unwrap(), text);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&text).unwrap();
        let zlib = z.finish().unwrap();
        assert_eq!(inflate_all(Coding::Deflate, &zlib, 1).unwrap(), text);
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        r.write_all(&text).unwrap();
        let raw = r.finish().unwrap();
        assert_eq!(inflate_all(Coding::Deflate, &raw, 5).unwrap(), text);
        // Truncated and corrupt streams are errors, not short files.
        assert!(inflate_all(Coding::Gzip, &gz[..gz.len() / 2], 100).is_err());
        assert!(inflate_all(Coding::Gzip, b"not gzip at all", 100).is_err());
        assert!(Decompressor::new(&Coding::Identity).is_none());
        assert_eq!(
            content_coding(&head(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: X-GZIP\r\n\r\n"
            )),
            Coding::Gzip
        );
        assert_eq!(
            content_coding(&head(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n")),
            Coding::Other("br".into())
        );
    }
}
