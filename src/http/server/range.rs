//! Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14), as pure
//! functions of the request headers and the file's size and modification time. The header
//! grammars are parsed by the `headers` crate.
//!
//! Decisions:
//!
//! - The ETag is weak, `W/"<size hex>-<mtime nanos hex>"`: it changes whenever the size or
//!   the modification time does, but two files with equal size and mtime would share it, so
//!   it does not promise byte-for-byte equality. A stored variant served with a content coding
//!   (`--precompressed`) is tagged from its own size and time plus the coding,
//!   `W/"<size hex>-<mtime nanos hex>-br"`, so it never shares a tag with the plain file or
//!   another coding, and `If-None-Match` matches per encoding (RFC 9110 §8.8.3.3).
//! - `If-None-Match` takes precedence over `If-Modified-Since` (§13.2.2): when it is present
//!   the date is ignored. Both only apply to GET and HEAD, where a match gives 304.
//! - One range (`bytes=0-99`, `bytes=100-`, `bytes=-100`) gives 206 with `Content-Range`.
//!   Several ranges give a plain 200 with the whole file (allowed by §14.2: a server may
//!   ignore Range); we do not write `multipart/byteranges`.
//! - A range that starts at or after the end (or `bytes=-0`) gives 416 with
//!   `Content-Range: bytes */LEN`. A Range header we cannot parse is ignored (200).
//! - A suffix longer than the file (`bytes=-101` for 100 bytes) selects the whole file, 206
//!   `bytes 0-99/100` (§14.1.3), however long: one too large for a `u64` saturates.
//! - `If-Range` must match strongly (§13.1.5). Our ETags are weak, so an `If-Range` with an
//!   entity tag never matches and the whole file is sent; a date matches when it is at or
//!   after the file's Last-Modified (at one-second precision).

use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch, IfRange, LastModified, Range};
use http::HeaderMap;

/// The weak ETag for a file of `len` bytes modified at `mtime`, sent with the content coding
/// `coding` (`Some("br")`) or as it is (`None`).
pub fn etag(len: u64, mtime: SystemTime, coding: Option<&str>) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    match coding {
        None => format!("W/\"{len:x}-{nanos:x}\""),
        Some(c) => format!("W/\"{len:x}-{nanos:x}-{c}\""),
    }
}

/// Whether a GET or HEAD should be answered 304 Not Modified.
pub fn not_modified(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if headers.contains_key(http::header::IF_NONE_MATCH) {
        let (Some(inm), Ok(tag)) = (headers.typed_get::<IfNoneMatch>(), etag.parse::<ETag>())
        else {
            return false;
        };
        return !inm.precondition_passes(&tag);
    }
    match headers.typed_get::<IfModifiedSince>() {
        Some(ims) => !ims.is_modified(mtime),
        None => false,
    }
}

/// What part of the file to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// All of it, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// Chooses the part of a `len`-byte file to send for these request headers.
pub fn select(headers: &HeaderMap, len: u64, etag: &str, mtime: SystemTime) -> Selection {
    let Some(range) = headers.typed_get::<Range>() else {
        return Selection::Full;
    };
    if let Some(if_range) = headers.typed_get::<IfRange>() {
        let tag = etag.parse::<ETag>().ok();
        if if_range.is_modified(tag.as_ref(), Some(&LastModified::from(mtime))) {
            return Selection::Full;
        }
    }
    let raw = headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if raw.split(',').count() != 1 {
        return Selection::Full;
    }
    // `satisfiable_ranges` drops suffixes longer than the file; `bytes=-N` with N > len
    // means the whole file (§14.1.3), so handle a suffix ourselves.
    let spec = raw.trim_start_matches("bytes=").trim();
    if let Some(suffix) = spec.strip_prefix('-') {
        return match suffix_length(suffix) {
            None => Selection::Full,
            Some(0) => Selection::Unsatisfiable,
            Some(_) if len == 0 => Selection::Unsatisfiable,
            Some(n) => Selection::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some((start, end)) = range.satisfiable_ranges(len).next() else {
        return Selection::Full;
    };
    let start = match start {
        Bound::Included(s) => s,
        _ => return Selection::Full,
    };
    let end = match end {
        Bound::Included(e) => e,
        Bound::Excluded(e) => e.saturating_sub(1),
        Bound::Unbounded => u64::MAX,
    };
    if end < start {
        // `bytes=5-2` is invalid syntax: ignore the header (§14.1.1).
        return Selection::Full;
    }
    if start >= len {
        return Selection::Unsatisfiable;
    }
    Selection::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// The N of a suffix range `bytes=-N`: `None` when it is not digits (the header is then
/// ignored, §14.1.1). A number too large for a `u64` is longer than any file, so it means the
/// whole representation (§14.1.3: "if the selected representation is shorter than the
/// specified suffix-length, the entire representation is used"), as a smaller too-long
/// suffix does; it saturates instead of failing to parse.
fn suffix_length(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;

    const MTIME_SECS: u64 = 1_700_000_000;

    fn mtime() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(MTIME_SECS) + Duration::from_nanos(5)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn etag_is_weak_size_and_nanos() {
        assert_eq!(
            etag(255, UNIX_EPOCH + Duration::from_nanos(16), None),
            "W/\"ff-10\""
        );
    }

    /// Issue 15, `--precompressed`: each encoding has its own tag, and a client's tag for one
    /// encoding does not give 304 for another.
    #[test]
    fn a_variant_is_tagged_with_its_coding() {
        let t = UNIX_EPOCH + Duration::from_nanos(16);
        let (plain, br) = (etag(255, t, None), etag(255, t, Some("br")));
        assert_eq!(br, "W/\"ff-10-br\"");
        assert!(not_modified(&headers(&[("if-none-match", &br)]), &br, t));
        assert!(!not_modified(
            &headers(&[("if-none-match", &plain)]),
            &br,
            t
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", &br)]),
            &plain,
            t
        ));
        let gzip = etag(255, t, Some("gzip"));
        let both = format!("{plain}, {gzip}");
        assert!(not_modified(
            &headers(&[("if-none-match", &both)]),
            &gzip,
            t
        ));
        assert!(!not_modified(&headers(&[("if-none-match", &both)]), &br, t));
    }

    #[test]
    fn conditional_get() {
        let tag = etag(10, mtime(), None);
        let date = httpdate::fmt_http_date(mtime());
        let old = httpdate::fmt_http_date(mtime() - Duration::from_secs(60));
        assert!(not_modified(
            &headers(&[("if-none-match", &tag)]),
            &tag,
            mtime()
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "*")]),
            &tag,
            mtime()
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"x\"")]),
            &tag,
            mtime()
        ));
        assert!(not_modified(
            &headers(&[("if-modified-since", &date)]),
            &tag,
            mtime()
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &old)]),
            &tag,
            mtime()
        ));
        // If-None-Match wins over a date that alone would give 304.
        let h = headers(&[("if-none-match", "\"x\""), ("if-modified-since", &date)]);
        assert!(!not_modified(&h, &tag, mtime()));
    }

    /// See: issue 15. A suffix longer than a `u64` got 416; it is longer than the file, so
    /// it means the whole file, like any other suffix longer than the file (§14.1.3).
    #[test]
    fn a_suffix_longer_than_u64_means_the_whole_file() {
        let tag = etag(100, mtime(), None);
        let sel = |r: &str| select(&headers(&[("range", r)]), 100, &tag, mtime());
        let whole = Selection::Partial { start: 0, end: 99 };
        assert_eq!(sel("bytes=-99999999999999999999"), whole);
        assert_eq!(sel("bytes=-18446744073709551615"), whole);
        assert_eq!(sel("bytes=-18446744073709551616"), whole);
        assert_eq!(sel(&format!("bytes=-{}", "9".repeat(500))), whole);
        // Still a zero-length suffix, and an empty file, are unsatisfiable.
        assert_eq!(sel("bytes=-00000000000000000000"), Selection::Unsatisfiable);
        let empty = select(
            &headers(&[("range", "bytes=-99999999999999999999")]),
            0,
            &tag,
            mtime(),
        );
        assert_eq!(empty, Selection::Unsatisfiable);
    }

    #[test]
    fn ranges() {
        let tag = etag(100, mtime(), None);
        let sel = |r: &str| select(&headers(&[("range", r)]), 100, &tag, mtime());
        assert_eq!(sel("bytes=0-9"), Selection::Partial { start: 0, end: 9 });
        assert_eq!(sel("bytes=90-"), Selection::Partial { start: 90, end: 99 });
        assert_eq!(
            sel("bytes=90-500"),
            Selection::Partial { start: 90, end: 99 }
        );
        assert_eq!(sel("bytes=-10"), Selection::Partial { start: 90, end: 99 });
        assert_eq!(sel("bytes=-500"), Selection::Partial { start: 0, end: 99 });
        assert_eq!(sel("bytes=-101"), Selection::Partial { start: 0, end: 99 });
        assert_eq!(sel("bytes=100-"), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=-0"), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=0-1,5-6"), Selection::Full);
        assert_eq!(sel("bytes=5-2"), Selection::Full);
        assert_eq!(sel("items=0-1"), Selection::Full);
        let date = httpdate::fmt_http_date(mtime());
        let old = httpdate::fmt_http_date(mtime() - Duration::from_secs(60));
        let with_if = |v: &str| {
            select(
                &headers(&[("range", "bytes=0-9"), ("if-range", v)]),
                100,
                &tag,
                mtime(),
            )
        };
        assert_eq!(with_if(&date), Selection::Partial { start: 0, end: 9 });
        assert_eq!(with_if(&old), Selection::Full);
        assert_eq!(
            with_if(&tag),
            Selection::Full,
            "weak tags never match If-Range"
        );
    }
}
