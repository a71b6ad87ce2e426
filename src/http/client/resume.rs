//! Resuming with `Range: bytes=K-`: whether the answer continues the partial file, restarts
//! it, says it is already complete, or refuses it. Sans-IO.

use http::{HeaderValue, StatusCode};

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
    /// Any other 416 (`bytes */0`, `bytes */N` for another N, or no `Content-Range`): the
    /// `.part` does not fit the file the server has now. Not a reason to throw the `.part`
    /// away and download whatever the server sends instead: an error, the `.part` kept.
    Unsatisfiable,
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
            _ => Resume::Unsatisfiable,
        },
        _ => Resume::NotRange,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_checks() {
        let cr = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            check_resume(
                StatusCode::PARTIAL_CONTENT,
                Some(&cr("bytes 100-199/200")),
                100
            ),
            Resume::Append { total: Some(200) }
        );
        assert_eq!(
            check_resume(
                StatusCode::PARTIAL_CONTENT,
                Some(&cr("bytes 100-199/*")),
                100
            ),
            Resume::Append { total: None }
        );
        assert!(matches!(
            check_resume(
                StatusCode::PARTIAL_CONTENT,
                Some(&cr("bytes 0-199/200")),
                100
            ),
            Resume::Restart(_)
        ));
        assert!(matches!(
            check_resume(StatusCode::PARTIAL_CONTENT, None, 100),
            Resume::Restart(_)
        ));
        assert_eq!(
            check_resume(StatusCode::OK, None, 100),
            Resume::Restart("server ignored the range; starting over".into())
        );
        assert_eq!(
            check_resume(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Some(&cr("bytes */100")),
                100
            ),
            Resume::Complete
        );
        // See: issue 15. Any other 416 threw the .part away and saved what came next.
        for other in [
            Some(cr("bytes */90")),
            Some(cr("bytes */0")),
            Some(cr("x")),
            None,
        ] {
            assert_eq!(
                check_resume(StatusCode::RANGE_NOT_SATISFIABLE, other.as_ref(), 100),
                Resume::Unsatisfiable,
                "{other:?}"
            );
        }
        assert_eq!(
            check_resume(StatusCode::NOT_FOUND, None, 100),
            Resume::NotRange
        );
    }
}
