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
//! 4. Open it so that it cannot leave the root: `openat2(RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS)` relative to the root's descriptor in the common case (one system
//!    call does the lookup, the check and the open); when a symlink is on the way, canonicalize
//!    and require the result to lie inside the canonicalized root, so a symlink that leads out
//!    of the directory is refused and one that stays inside works (see [`resolve`]).
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
//! | no such file, or a file used as a directory (`/a.txt/x`, also `/a.txt/`, `/a.txt/.`) | 404 | |

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use http::StatusCode;
use percent_encoding::percent_decode_str;

use super::encoding::Coding;

/// A target split into decoded path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Decoded, non-empty segments other than `.`.
    pub segments: Vec<Vec<u8>>,
    /// Whether the decoded path names a directory: it ends with `/` or `/.` (`/a.txt/`,
    /// `/a.txt/.`, `/a.txt//`). Such a path never serves a regular file (see [`resolve`]).
    pub names_directory: bool,
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
    /// A regular file, already open (so it cannot be swapped between the check and the read).
    File(Opened),
    /// A directory named with a trailing slash and without `index.html`: list it.
    Listing(PathBuf),
    /// A directory named without its trailing slash: redirect to this location (see
    /// [`slash_location`]).
    AddSlash(String),
}

/// An open regular file and what `fstat` said about it.
#[derive(Debug)]
pub struct Opened {
    /// The path under the root (for the Content-Type guess and logs).
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    /// Its metadata, from the open descriptor.
    pub meta: Metadata,
}

/// The served directory: its canonical path and, when the kernel has `openat2` (Linux 5.6+),
/// a descriptor to resolve requests beneath.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: Option<OwnedFd>,
}

impl Root {
    /// Holds `path` (which must be canonical) open for [`resolve`]. Without a working
    /// `openat2` (checked once, here) every request takes the slow path.
    pub fn new(path: PathBuf) -> Self {
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&path)
            .ok()
            .map(OwnedFd::from)
            .filter(|fd| open_beneath(fd, Path::new(""), libc::O_PATH).is_ok());
        Self { path, fd }
    }

    /// `path` without a descriptor: every request takes the slow path (as on a kernel
    /// without `openat2`), so tests can check both paths give the same answers.
    #[cfg(test)]
    fn slow_only(path: PathBuf) -> Self {
        Self { path, fd: None }
    }
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
    let names_directory = decoded.ends_with(b"/") || decoded.ends_with(b"/.");
    Ok(Target {
        segments,
        names_directory,
        raw_path: raw_path.to_string(),
        query: query.to_string(),
    })
}

/// Resolves a checked target under `root`: step 4 of the module docs, then directory
/// handling (`index.html`, trailing slash redirect, listing).
///
/// The fast path asks the kernel to do step 4 in the same system call that opens the file:
/// `openat2` beneath the root's descriptor with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
/// refuses any `..` or absolute escape and any symlink on the way. Without symlinks the path
/// we built is the real path, so the dotfile check of [`split`] still holds. A symlink on the
/// way (`ELOOP`) or an escape (`EXDEV`) takes the slow path: canonicalize, compare with the
/// root, then open the canonical path, again without following symlinks, so a component
/// swapped for a symlink after the check fails (404) instead of leading out. Both paths give
/// the same answers; the fast one costs one `openat2` and one `fstat` instead of a `readlink`
/// per path component. On a kernel without `openat2` (before Linux 5.6, or filtered by
/// seccomp) only the slow path runs, and its open follows symlinks.
pub fn resolve(root: &Root, target: &Target, hidden: bool) -> Result<Resolved, StatusCode> {
    let mut rel = PathBuf::new();
    for seg in &target.segments {
        rel.push(OsStr::from_bytes(seg));
    }
    let opened = open_under(root, &rel, hidden)?;
    if opened.meta.is_file() {
        // `/a.txt/` asks for a directory called a.txt; the kernel says ENOTDIR to
        // `open("a.txt/")`, and nginx and Apache answer 404. Dropping the empty and `.`
        // segments must not turn it into the file.
        if target.names_directory {
            return Err(StatusCode::NOT_FOUND);
        }
        return Ok(Resolved::File(opened));
    }
    if !opened.meta.is_dir() {
        // Sockets, FIFOs, devices: reading one could block or never end. (We opened it
        // with O_NONBLOCK, so even a FIFO did not block the open.)
        return Err(StatusCode::FORBIDDEN);
    }
    if !target.ends_with_slash() {
        return Ok(Resolved::AddSlash(slash_location(target)));
    }
    // `index.html` beside the directory's real path, which is under the root.
    let dir = opened.path;
    let real = dir.strip_prefix(&root.path).unwrap_or(Path::new(""));
    match open_under(root, &real.join("index.html"), hidden) {
        Ok(index) if index.meta.is_file() => Ok(Resolved::File(index)),
        Ok(_) | Err(StatusCode::NOT_FOUND) => Ok(Resolved::Listing(dir)),
        Err(e) => Err(e),
    }
}

/// The stored `coding` variant of a served file (`--precompressed`): `FILE.br`, `FILE.zst` or
/// `FILE.gz` beside the file `path` (an [`Opened::path`], so beside the real file when a
/// symlink led to it, and beside `index.html` for a directory), opened by the same safe rules
/// as any request. Only a regular file counts; anything else (missing, a directory, a FIFO,
/// permission denied, a symlink out of the root) means "no such variant", never an error page:
/// the plain file is still there to serve.
pub fn variant(root: &Root, path: &Path, coding: Coding, hidden: bool) -> Option<Opened> {
    let rel = path.strip_prefix(&root.path).ok()?;
    let mut name = rel.as_os_str().to_owned();
    name.push(coding.suffix());
    open_under(root, Path::new(&name), hidden)
        .ok()
        .filter(|o| o.meta.is_file())
}

/// Opens `rel` (relative to the root) by the fast path if it can, else by the slow one.
fn open_under(root: &Root, rel: &Path, hidden: bool) -> Result<Opened, StatusCode> {
    if root.fd.is_some() {
        match open_rel(root, rel) {
            Ok(file) => return opened(root.path.join(rel), file),
            // A symlink on the way, an escape (perhaps through a symlink that is fine after
            // all, e.g. an absolute link back inside the root), or a rename racing the
            // lookup: let the slow path decide.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ELOOP | libc::EXDEV | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(os_status(e)),
        }
    }
    let canon = inside(&root.path, &root.path.join(rel), hidden)?;
    let real = canon.strip_prefix(&root.path).unwrap_or(Path::new(""));
    let file = open_rel(root, real).map_err(os_status)?;
    opened(canon, file)
}

fn opened(path: PathBuf, file: File) -> Result<Opened, StatusCode> {
    let meta = file.metadata().map_err(os_status)?;
    Ok(Opened { path, file, meta })
}

/// Opens `rel` under the root for reading, without blocking (a FIFO would) and, when the
/// kernel has `openat2`, without following any symlink or leaving the root.
///
/// A directory we may enter but not list (mode 0711) cannot be opened for reading; it is
/// opened with `O_PATH` instead, which is enough for `fstat` (a listing reads the directory by
/// path, and is refused there).
fn open_rel(root: &Root, rel: &Path) -> io::Result<File> {
    let open = |flags: libc::c_int| match &root.fd {
        Some(fd) => open_beneath(fd, rel, flags),
        None => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(root.path.join(rel)),
    };
    match open(libc::O_NONBLOCK | libc::O_NOCTTY) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let path_only = open(libc::O_PATH)?;
            if path_only.metadata()?.is_dir() {
                Ok(path_only)
            } else {
                Err(e)
            }
        }
        other => other,
    }
}

/// `openat2(dir, rel, O_RDONLY | O_CLOEXEC | flags)` with `RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`.
fn open_beneath(dir: &OwnedFd, rel: &Path, flags: libc::c_int) -> io::Result<File> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c_rel = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain integers; zeroed is its documented "no options" state.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | flags) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the pointers are valid for the call; the size is that of the struct passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c_rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
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
fn inside(root: &Path, path: &Path, hidden: bool) -> Result<PathBuf, StatusCode> {
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

    #[test]
    fn symlinks_out_of_the_root_are_forbidden_on_both_paths() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("ok.txt"), "ok").unwrap();
        std::fs::write(root.join(".env"), "k=v").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/in.txt"), "in").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("leakdir")).unwrap();
        // An absolute link back inside the root, a relative one, one to a directory.
        std::os::unix::fs::symlink(root.join("ok.txt"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink("ok.txt", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("subalias")).unwrap();
        std::os::unix::fs::symlink("../ok.txt", root.join("sub/up")).unwrap();
        // A visible name for a dotfile must not reveal it.
        std::os::unix::fs::symlink(".env", root.join("env")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        for held in [Root::new(root.clone()), Root::slow_only(root.clone())] {
            let which = if held.fd.is_some() { "fast" } else { "slow" };
            let go = |t: &str| resolve(&held, &split(t, false).unwrap(), false);
            let file = |t: &str| match go(t) {
                Ok(Resolved::File(o)) => o,
                other => panic!("{which} {t}: {other:?}"),
            };
            assert_eq!(file("/ok.txt").meta.len(), 2, "{which}");
            assert_eq!(file("/alias").path, root.join("ok.txt"), "{which}");
            assert_eq!(file("/rel").path, root.join("ok.txt"), "{which}");
            assert_eq!(
                file("/subalias/in.txt").path,
                root.join("sub/in.txt"),
                "{which}"
            );
            assert_eq!(file("/sub/up").path, root.join("ok.txt"), "{which}");
            for (t, want) in [
                ("/leak", StatusCode::FORBIDDEN),
                ("/leakdir/secret", StatusCode::FORBIDDEN),
                ("/env", StatusCode::NOT_FOUND),
                ("/missing", StatusCode::NOT_FOUND),
                ("/ok.txt/x", StatusCode::NOT_FOUND),
                // See: issue 15. A regular file named as a directory, however spelled.
                ("/ok.txt/", StatusCode::NOT_FOUND),
                ("/ok.txt/.", StatusCode::NOT_FOUND),
                ("/ok.txt//", StatusCode::NOT_FOUND),
                ("/ok.txt/./", StatusCode::NOT_FOUND),
                ("/ok.txt%2F", StatusCode::NOT_FOUND),
                ("/alias/", StatusCode::NOT_FOUND),
                ("/sub/in.txt/", StatusCode::NOT_FOUND),
                // Opened without blocking, then refused: not a regular file.
                ("/fifo", StatusCode::FORBIDDEN),
            ] {
                assert_eq!(go(t).unwrap_err(), want, "{which} {t}");
            }
            match go("/sub?a=1") {
                Ok(Resolved::AddSlash(loc)) => assert_eq!(loc, "/sub/?a=1"),
                other => panic!("{which}: {other:?}"),
            }
            assert!(matches!(go("/sub/"), Ok(Resolved::Listing(_))), "{which}");
            assert!(
                matches!(go("/"), Ok(Resolved::Listing(p)) if p == root),
                "{which}"
            );
            // Never a protocol-relative `//host/` location.
            match go("//sub") {
                Ok(Resolved::AddSlash(loc)) => assert_eq!(loc, "/sub/"),
                other => panic!("{which}: {other:?}"),
            }
        }
        std::fs::write(root.join("sub/index.html"), "<p>").unwrap();
        for held in [Root::new(root.clone()), Root::slow_only(root.clone())] {
            let go = |t: &str| resolve(&held, &split(t, false).unwrap(), false);
            assert!(
                matches!(go("/sub/"), Ok(Resolved::File(o)) if o.path.ends_with("sub/index.html"))
            );
            assert!(
                matches!(go("/subalias/"), Ok(Resolved::File(o)) if o.path.ends_with("sub/index.html"))
            );
        }
    }
}
