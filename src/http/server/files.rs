//! From a request target to a file under the served directory, safely.
//!
//! The steps, each one a defence:
//!
//! 1. Keep the path of the target (origin form `/p?q`, or absolute form `http://host/p?q`);
//!    anything else (`*`, `example.com:80`) is a 400.
//! 2. Percent-decode it **once** (`%252e` stays `%2e`, a literal name).
//! 3. Split at `/` and rebuild the path segment by segment under the root: empty segments and
//!    `.` are skipped, so the path can never become absolute (`//etc/passwd` and
//!    `/%2Fetc/passwd` both mean `ROOT/etc/passwd`).
//! 4. Canonicalize the result and require it to lie inside the canonicalized root, so a
//!    symlink that leads out of the directory is refused.
//!
//! Which answer for which case:
//!
//! | case | status | why |
//! |------|--------|-----|
//! | target not `/…` or `http(s)://host/…` | 400 | not a path at all |
//! | NUL byte (`%00`) after decoding | 400 | no file name can hold one; a C library would cut there |
//! | a `..` segment (also `%2e%2e`, `..%2f`) | 403 | a deliberate climb out of the root |
//! | a backslash (`\`, `%5c`) | 403 | a Windows separator, refused so `..\` tricks never matter |
//! | a symlink whose target is outside the root | 403 | the file exists but is not ours to serve |
//! | the OS says permission denied | 403 | |
//! | a dotfile or dot-directory (`.git`), without `--hidden` | 404 | its existence is not revealed |
//! | no such file, or a file used as a directory | 404 | |

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use http::StatusCode;
use percent_encoding::percent_decode_str;

/// A target split into decoded path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Decoded, non-empty segments other than `.`.
    pub segments: Vec<Vec<u8>>,
    /// The path as sent (still percent-encoded), without the query.
    pub raw_path: String,
    /// The query, with its `?`, or empty.
    pub query: String,
}

impl Target {
    /// Whether the path as sent ends with `/` (a directory URL).
    pub fn ends_with_slash(&self) -> bool {
        self.raw_path.ends_with('/')
    }
}

/// What a target resolved to.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file (canonical path).
    File(PathBuf),
    /// A directory named with a trailing slash and without `index.html`: list it.
    Listing(PathBuf),
    /// A directory named without its trailing slash: redirect to this location (see
    /// [`slash_location`]).
    AddSlash(String),
}

/// Checks a request target and splits it into segments (steps 1 to 3 of the module docs).
pub fn split(target: &str, hidden: bool) -> Result<Target, StatusCode> {
    let path_and_query = if target.starts_with('/') {
        target
    } else if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        return Err(StatusCode::BAD_REQUEST);
    };
    let (raw_path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    if decoded.contains(&0) {
        return Err(StatusCode::BAD_REQUEST);
    }
    if decoded.contains(&b'\\') {
        return Err(StatusCode::FORBIDDEN);
    }
    let mut segments = Vec::new();
    let mut dotfile = false;
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return Err(StatusCode::FORBIDDEN),
            s => {
                dotfile |= s.starts_with(b".");
                segments.push(s.to_vec());
            }
        }
    }
    if dotfile && !hidden {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Target {
        segments,
        raw_path: raw_path.to_string(),
        query: query.to_string(),
    })
}

/// Resolves a checked target under `root` (which must be canonical): step 4 of the module
/// docs, then directory handling (`index.html`, trailing slash redirect, listing).
pub async fn resolve(root: &Path, target: &Target, hidden: bool) -> Result<Resolved, StatusCode> {
    let mut path = root.to_path_buf();
    for seg in &target.segments {
        path.push(OsStr::from_bytes(seg));
    }
    let canon = inside(root, &path, hidden).await?;
    let meta = std::fs::metadata(&canon).map_err(os_status)?;
    if meta.is_file() {
        return Ok(Resolved::File(canon));
    }
    if !meta.is_dir() {
        // Sockets, FIFOs, devices: reading one could block or never end.
        return Err(StatusCode::FORBIDDEN);
    }
    if !target.ends_with_slash() {
        return Ok(Resolved::AddSlash(slash_location(target)));
    }
    match inside(root, &canon.join("index.html"), hidden).await {
        Ok(index) if std::fs::metadata(&index).is_ok_and(|m| m.is_file()) => {
            Ok(Resolved::File(index))
        }
        Ok(_) | Err(StatusCode::NOT_FOUND) => Ok(Resolved::Listing(canon)),
        Err(e) => Err(e),
    }
}

/// Where to redirect a directory named without its trailing slash: the path as sent, with one
/// leading slash (so `//evil.example/` can never become a protocol-relative URL pointing at
/// another host), a slash added, and the query kept.
pub fn slash_location(target: &Target) -> String {
    format!(
        "/{}/{}",
        target.raw_path.trim_start_matches('/'),
        target.query
    )
}

/// Canonicalizes `path` and checks it is still under `root` and, without `hidden`, that no
/// symlink led to a dotfile.
async fn inside(root: &Path, path: &Path, hidden: bool) -> Result<PathBuf, StatusCode> {
    let canon = std::fs::canonicalize(path).map_err(os_status)?;
    let Ok(rel) = canon.strip_prefix(root) else {
        return Err(StatusCode::FORBIDDEN);
    };
    if !hidden && rel.iter().any(|c| c.as_bytes().starts_with(b".")) {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(canon)
}

/// The status for an OS error on a path: 403 for permission, 404 for everything else (no
/// such file, a file used as a directory, a symlink loop).
pub fn os_status(e: io::Error) -> StatusCode {
    match e.kind() {
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(target: &str) -> StatusCode {
        split(target, false).expect_err(target)
    }

    #[test]
    fn traversal_is_refused_however_it_is_spelled() {
        for t in [
            "/../etc/passwd",
            "/%2e%2e/etc",
            "/a/..%2f..%2fetc",
            "/a/%2E%2E",
            "/..",
        ] {
            assert_eq!(status(t), StatusCode::FORBIDDEN, "{t}");
        }
        assert_eq!(status("/a\\b"), StatusCode::FORBIDDEN);
        assert_eq!(status("/..%5c..%5cwindows"), StatusCode::FORBIDDEN);
        assert_eq!(status("/a%00.html"), StatusCode::BAD_REQUEST);
        assert_eq!(status("*"), StatusCode::BAD_REQUEST);
        assert_eq!(status("/.git/config"), StatusCode::NOT_FOUND);
        assert_eq!(status("/a/.env"), StatusCode::NOT_FOUND);
        assert!(split("/.env", true).is_ok());
    }

    #[test]
    fn decoding_happens_once_and_paths_stay_relative() {
        let t = split("/a%20b/%252e%252e/./c?x=%2F", false).unwrap();
        assert_eq!(
            t.segments,
            [b"a b".to_vec(), b"%2e%2e".to_vec(), b"c".to_vec()]
        );
        assert_eq!(t.query, "?x=%2F");
        let t = split("//etc/%2Fpasswd", false).unwrap();
        assert_eq!(t.segments, [b"etc".to_vec(), b"passwd".to_vec()]);
        let t = split("http://example.com/x/y/?q", false).unwrap();
        assert_eq!((t.raw_path.as_str(), t.query.as_str()), ("/x/y/", "?q"));
        assert!(t.ends_with_slash());
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_forbidden() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("ok.txt"), "ok").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(root.join("ok.txt"), root.join("alias")).unwrap();

        let go = |t: &str| {
            let t = split(t, false).unwrap();
            let root = root.clone();
            async move { resolve(&root, &t, false).await }
        };
        assert!(matches!(go("/ok.txt").await, Ok(Resolved::File(_))));
        assert!(matches!(go("/alias").await, Ok(Resolved::File(_))));
        assert_eq!(go("/leak").await.unwrap_err(), StatusCode::FORBIDDEN);
        assert_eq!(go("/missing").await.unwrap_err(), StatusCode::NOT_FOUND);
        assert_eq!(go("/ok.txt/x").await.unwrap_err(), StatusCode::NOT_FOUND);
        match go("/sub?a=1").await {
            Ok(Resolved::AddSlash(loc)) => assert_eq!(loc, "/sub/?a=1"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(go("/sub/").await, Ok(Resolved::Listing(_))));
        // Never a protocol-relative `//host/` location.
        match go("//sub").await {
            Ok(Resolved::AddSlash(loc)) => assert_eq!(loc, "/sub/"),
            other => panic!("{other:?}"),
        }
        std::fs::write(root.join("sub/index.html"), "<p>").unwrap();
        assert!(matches!(go("/sub/").await, Ok(Resolved::File(p)) if p.ends_with("index.html")));
    }
}
