//! The open-file cache of `socklab http serve`, against its specification: a file replaced by
//! rename, changed in place, deleted or made unreadable while clients keep asking for it is
//! never served stale longer than `--file-cache-valid` (1 s by default) after the change; every
//! answer's Content-Length, ETag, Last-Modified and body belong to one version of the file (for
//! atomic replacement); 404 and 403 are not cached; `--file-cache N` bounds the open
//! descriptors, `--file-cache 0` turns the cache off.
//!
//! The load: loader threads send keep-alive GETs from plain `TcpStream`s (Content-Length
//! framing, so a body longer or shorter than its Content-Length breaks the next parse or ends in
//! a short read), paced and capped in count, and record for each response the instant its
//! request was *sent*, its status, its validators and which known version its body is, byte for
//! byte. The change is made at T (the instant the rename, write, unlink or chmod returned). A
//! request sent after T + window + [`MARGIN`] must see the new state; one sent in between may
//! see either state, but (for a rename) never a mix of the two.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::*;

/// `--file-cache-valid`'s default: how long an entry is trusted without a system call.
const WINDOW: Duration = Duration::from_secs(1);

/// Added to the window before a stale answer counts as a failure. Requests are stamped when the
/// loader sends them, but the server, the loaders and the other tests (cargo test and nextest
/// run them in parallel, on a debug build) share a few cores: a request can wait in a socket
/// buffer, a worker can be descheduled between its check and its answer, T is read after the
/// change returned. A generous margin keeps the test about staleness, not about scheduling: a
/// cache that never rechecks (the bug that matters) is still caught, since the load goes on
/// [`CHECKED`] past the margin.
const MARGIN: Duration = Duration::from_millis(1500);

/// How long the load goes on after T + window + [`MARGIN`]: the stretch in which only the new
/// state may be served (and must be, at least once).
const CHECKED: Duration = Duration::from_secs(1);

/// Load before the change: the cache (and every loader's connection) sees the first version.
const BEFORE: Duration = Duration::from_millis(300);

/// At most this many requests per loader thread (a paced loader makes far fewer).
const LOADER_MAX_REQUESTS: usize = 20_000;

/// A loader gives up on a response after this long (then reconnects).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The size limit of the cache's in-memory copies: files up to this size whose mtime is more
/// than 1 s old are kept as bytes.
const SMALL_FILE_MAX: usize = 64 * 1024;

/// The mtime given to a first version: far in the past, so a small file's bytes are cacheable
/// and the test covers the in-memory copy, not only the cached descriptor.
fn old_mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `len` pseudo-random bytes, different for each `seed` ([`noise`] alone makes the same bytes
/// for seeds 2k and 2k + 1).
fn content(len: usize, seed: u64) -> Vec<u8> {
    noise(len, (seed << 1) | 1)
}

// --- the server and the files ------------------------------------------------------------------

/// `socklab http serve DIR -p 0 --no-access-log EXTRA`.
fn serve(dir: &Path, extra: &[&str]) -> Server {
    let root = dir.to_str().unwrap();
    let mut args = vec!["http", "serve", root, "-p", "0", "--no-access-log"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The same, as user `nobody` when the tests run as root (root reads any file, so a chmod
/// would change nothing for it), through `setpriv` like `http_server`'s permissions test.
/// `dir` must be reachable by `nobody` (a 0755 directory under /tmp is).
fn serve_unprivileged(dir: &Path, extra: &[&str]) -> Server {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return serve(dir, extra);
    }
    require("setpriv");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["http", "serve", dir.to_str().unwrap(), "-p", "0"])
        .arg("--no-access-log")
        .args(extra);
    Server::start_command(cmd)
}

/// Writes `bytes` to `path` and dates it [`old_mtime`].
fn put_old(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(old_mtime()).unwrap();
}

/// Replaces `path` atomically, as editors and deploy tools do: the bytes go to a temporary
/// file in the same directory (a dotfile, so never served), then rename(2) puts it in place.
fn replace_by_rename(path: &Path, bytes: &[u8]) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let tmp = path.with_file_name(format!(".{name}.new"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Rewrites `path` in place: open r+ (same inode), optionally truncate to 0 first, write
/// `bytes` from offset 0.
fn rewrite_in_place(path: &Path, bytes: &[u8], truncate_first: bool) {
    let mut f = std::fs::File::options().write(true).open(path).unwrap();
    if truncate_first {
        f.set_len(0).unwrap();
    }
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(bytes).unwrap();
}

/// `path`'s mtime as an HTTP date: what its Last-Modified must say.
fn http_mtime(path: &Path) -> String {
    httpdate::fmt_http_date(std::fs::metadata(path).unwrap().modified().unwrap())
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A temporary directory `nobody` may enter and read (tempdir makes it 0700).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

// --- a keep-alive client -----------------------------------------------------------------------

/// One response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no whole response.
#[derive(Debug, Clone)]
struct Failure {
    /// The connection ended before any byte of a response: the server's only honest signal
    /// when a file shrinks under it after it stated its length (tolerated around an in-place
    /// change, nowhere else).
    before_response: bool,
    what: String,
}

/// A keep-alive connection, opened again whenever the server closed it (`Connection: close`
/// after `--max-requests`) or a response went wrong.
struct Client {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn new(addr: &str) -> Client {
        Client {
            addr: addr.to_string(),
            stream: None,
            buf: Vec::new(),
        }
    }

    fn get(&mut self, target: &str) -> Result<Reply, Failure> {
        self.send("GET", target, "")
    }

    /// Sends `METHOD TARGET` with `extra` header lines (each ending in CRLF); reads the reply.
    fn send(&mut self, method: &str, target: &str, extra: &str) -> Result<Reply, Failure> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).map_err(|e| Failure {
                before_response: false,
                what: format!("connecting: {e}"),
            })?;
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            s.set_nodelay(true).unwrap();
            self.stream = Some(s);
            self.buf.clear();
        }
        let s = self.stream.as_mut().unwrap();
        let request = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
        let result = match s.write_all(request.as_bytes()) {
            Ok(()) => read_reply(s, &mut self.buf, method == "HEAD"),
            Err(e) => Err(Failure {
                before_response: true,
                what: format!("sending a request: {e}"),
            }),
        };
        let keep = result.as_ref().is_ok_and(|r| {
            !r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        });
        if !keep {
            self.stream = None;
        }
        result
    }
}

/// Reads one response (Content-Length framing; none for HEAD, 304 and 1xx/204).
fn read_reply(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Result<Reply, Failure> {
    let broken = |buf: &Vec<u8>, e: Option<std::io::Error>, doing: &str| {
        let closed = e.as_ref().is_none_or(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        });
        Failure {
            before_response: buf.is_empty() && closed,
            what: match e {
                None => format!("closed {doing} ({} bytes buffered)", buf.len()),
                Some(e) => format!("{doing}: {e} ({} bytes buffered)", buf.len()),
            },
        }
    };
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_string(), v)
                    })
                    .collect::<Vec<_>>();
                break (r.code.unwrap_or(0), headers, n);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                let start = String::from_utf8_lossy(&buf[..buf.len().min(60)]).into_owned();
                return Err(Failure {
                    before_response: false,
                    what: format!("a bad response head ({e}), starting {start:?}"),
                });
            }
        }
        match read_some(s, buf) {
            Ok(0) => return Err(broken(buf, None, "before a whole response head")),
            Ok(_) => {}
            Err(e) => return Err(broken(buf, Some(e), "reading a response head")),
        }
    };
    let bodiless = head_only || status == 304 || status == 204 || (100..200).contains(&status);
    let len = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        _ if bodiless => 0,
        Some((_, v)) => v.trim().parse::<usize>().map_err(|_| Failure {
            before_response: false,
            what: format!("Content-Length {v:?}"),
        })?,
        None => {
            return Err(Failure {
                before_response: false,
                what: format!("{status} without Content-Length"),
            });
        }
    };
    buf.drain(..head_len);
    buf.reserve(len.min(64 << 20));
    while buf.len() < len {
        match read_some(s, buf) {
            Ok(0) => {
                return Err(Failure {
                    before_response: false,
                    what: format!("closed after {} of {len} body bytes", buf.len()),
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Failure {
                    before_response: false,
                    what: format!("after {} of {len} body bytes: {e}", buf.len()),
                });
            }
        }
    }
    let rest = buf.split_off(len);
    let body = std::mem::replace(buf, rest);
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    let n = s.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

// --- the load ----------------------------------------------------------------------------------

/// What one request got.
struct Seen {
    /// When the loader sent it.
    sent: Instant,
    /// When its answer (or failure) had arrived.
    done: Instant,
    got: Result<Got, Failure>,
}

/// A whole response, reduced to what the checks need.
struct Got {
    status: u16,
    /// Which known version the body is, byte for byte (index into the versions; None: none).
    version: Option<usize>,
    /// Body length (equal to Content-Length: that is how it was read).
    len: usize,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        self.got.as_ref().ok().map(|g| g.status)
    }

    /// A 200 whose body is exactly version `v`.
    fn is_version(&self, v: usize) -> bool {
        self.got
            .as_ref()
            .is_ok_and(|g| g.status == 200 && g.version == Some(v))
    }

    /// A connection closed before any response (see [`Failure::before_response`]).
    fn closed_before_response(&self) -> bool {
        self.got.as_ref().is_err_and(|f| f.before_response)
    }

    fn label(&self) -> String {
        match &self.got {
            Err(f) => format!("no response: {}", f.what),
            Ok(g) => match (g.status, g.version) {
                (200, Some(v)) => format!("v{}", v + 1),
                (200, None) => format!("200 with {} bytes that are no version", g.len),
                (s, _) => s.to_string(),
            },
        }
    }
}

/// Loader threads requesting one target until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    loaders: Vec<JoinHandle<Vec<Seen>>>,
}

impl Load {
    /// `loaders` threads GET `target` on keep-alive connections, sleeping `pace` after each
    /// response, at most [`LOADER_MAX_REQUESTS`] each; bodies are matched against `versions`.
    fn start(
        addr: &str,
        target: &str,
        versions: &Arc<Vec<Vec<u8>>>,
        loaders: usize,
        pace: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let loaders = (0..loaders)
            .map(|_| {
                let (stop, versions) = (stop.clone(), versions.clone());
                let (addr, target) = (addr.to_string(), target.to_string());
                std::thread::spawn(move || {
                    let mut client = Client::new(&addr);
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) && seen.len() < LOADER_MAX_REQUESTS {
                        let sent = Instant::now();
                        let got = client.get(&target).map(|r| Got {
                            status: r.status,
                            version: versions.iter().position(|v| *v == r.body),
                            len: r.body.len(),
                            etag: r.header("etag").map(str::to_string),
                            last_modified: r.header("last-modified").map(str::to_string),
                        });
                        let done = Instant::now();
                        seen.push(Seen { sent, done, got });
                        std::thread::sleep(pace);
                    }
                    seen
                })
            })
            .collect();
        Load { stop, loaders }
    }

    /// Stops the loaders; every response they saw, in the order the requests were sent.
    fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Seen> = self
            .loaders
            .into_iter()
            .flat_map(|l| l.join().expect("a loader panicked"))
            .collect();
        all.sort_by_key(|s| s.sent);
        all
    }
}

/// A change made under load.
struct Run {
    /// When the change started.
    t0: Instant,
    /// When it returned.
    t: Instant,
    /// After the window and the margin: only the new state from here on.
    cutoff: Instant,
    seen: Vec<Seen>,
}

/// Which part of a [`Run`] a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Answered before the change started: the first state only.
    Before,
    /// Answered after the change started and sent before the cutoff: either state (a request
    /// sent before the change may well be served after it).
    Window,
    /// Sent after the cutoff: the new state only.
    After,
}

impl Run {
    /// Lets `load` run for [`BEFORE`], makes `change`, goes on until `window` + [`MARGIN`] +
    /// [`CHECKED`] after it returned.
    fn under(load: Load, window: Duration, change: impl FnOnce()) -> Run {
        std::thread::sleep(BEFORE);
        let t0 = Instant::now();
        change();
        let t = Instant::now();
        let cutoff = t + window + MARGIN;
        sleep_until(cutoff + CHECKED);
        Run {
            t0,
            t,
            cutoff,
            seen: load.finish(),
        }
    }

    fn phase(&self, s: &Seen) -> Phase {
        if s.done < self.t0 {
            Phase::Before
        } else if s.sent < self.cutoff {
            Phase::Window
        } else {
            Phase::After
        }
    }

    /// Counts of each answer in each phase, for failure messages and the test's output.
    fn summary(&self) -> String {
        let mut counts = std::collections::BTreeMap::<(Phase, String), usize>::new();
        for s in &self.seen {
            *counts.entry((self.phase(s), s.label())).or_default() += 1;
        }
        let parts: Vec<String> = counts
            .iter()
            .map(|((p, l), n)| format!("{p:?} {l}: {n}"))
            .collect();
        format!(
            "{} requests, change took {:?}, cutoff T+{:?}; {}",
            self.seen.len(),
            self.t - self.t0,
            self.cutoff - self.t,
            parts.join("; ")
        )
    }

    /// Asserts that every request of each phase passes that phase's check, and that at least
    /// one was answered before the change and one sent after the cutoff (else the run proved
    /// nothing). Lists the first offenders, with their send time relative to T.
    #[track_caller]
    fn check(
        &self,
        what: &str,
        before: impl Fn(&Seen) -> bool,
        window: impl Fn(&Seen) -> bool,
        after: impl Fn(&Seen) -> bool,
    ) {
        let summary = self.summary();
        eprintln!("{what}: {summary}");
        let mut bad = Vec::new();
        for s in &self.seen {
            let ok = match self.phase(s) {
                Phase::Before => before(s),
                Phase::Window => window(s),
                Phase::After => after(s),
            };
            if !ok {
                let at = if s.sent >= self.t {
                    format!("T+{:?}", s.sent - self.t)
                } else {
                    format!("T-{:?}", self.t - s.sent)
                };
                bad.push(format!("{at} ({:?}): {}", self.phase(s), s.label()));
            }
        }
        assert!(
            bad.is_empty(),
            "{what}: {} wrong answers, first ones:\n  {}\n{summary}",
            bad.len(),
            bad[..bad.len().min(10)].join("\n  ")
        );
        for phase in [Phase::Before, Phase::After] {
            assert!(
                self.seen.iter().any(|s| self.phase(s) == phase),
                "{what}: no request was sent in phase {phase:?}, the run proves nothing: {summary}"
            );
        }
    }

    /// Asserts that the 200s of each version (from `phases`) carry one ETag and one
    /// Last-Modified, that different versions have different ETags, and that version `v`'s
    /// Last-Modified is `last_modified[v]` where given.
    #[track_caller]
    fn check_validators(&self, phases: &[Phase], last_modified: &[Option<String>]) {
        let mut per_version = vec![BTreeSet::new(); last_modified.len()];
        for s in self.seen.iter().filter(|s| phases.contains(&self.phase(s))) {
            if let Ok(Got {
                status: 200,
                version: Some(v),
                etag,
                last_modified,
                ..
            }) = &s.got
            {
                per_version[*v].insert((etag.clone(), last_modified.clone()));
            }
        }
        let mut etags = BTreeSet::new();
        for (v, seen) in per_version.iter().enumerate() {
            assert!(
                seen.len() <= 1,
                "v{}'s answers carry different validators (ETag, Last-Modified): {seen:?}",
                v + 1
            );
            if let Some((etag, lm)) = seen.first() {
                assert!(etag.is_some(), "v{} was sent without an ETag", v + 1);
                assert!(
                    etags.insert(etag.clone()),
                    "v{} has the ETag of another version: {etag:?}",
                    v + 1
                );
                if let Some(want) = &last_modified[v] {
                    assert_eq!(lm.as_ref(), Some(want), "v{}'s Last-Modified", v + 1);
                }
            }
        }
    }
}

/// Pace of the small-file loaders: about a thousand requests a second each, enough to have
/// requests in flight at every instant of the change without starving the tests beside.
const PACE: Duration = Duration::from_millis(1);

// --- 1. replaced by rename ---------------------------------------------------------------------

/// Three loaders on `a.txt` (v1, 1 KiB, its bytes cacheable); v2 (`v2_len` bytes) is renamed
/// over it. Every answer is exactly v1 or exactly v2, with that version's length, ETag and
/// Last-Modified; v1 until the change, v2 only from T + 1 s + 1.5 s on.
fn renamed_over_under_load(v2_len: usize) {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let (v1, v2) = (content(1024, 1), content(v2_len, 2));
    put_old(&path, &v1);
    let server = serve(dir.path(), &[]);
    let versions = Arc::new(vec![v1, v2.clone()]);
    let load = Load::start(&server.addr, "/a.txt", &versions, 3, PACE);
    let run = Run::under(load, WINDOW, || replace_by_rename(&path, &v2));
    run.check(
        "a.txt renamed over",
        |s| s.is_version(0),
        |s| s.is_version(0) || s.is_version(1),
        |s| s.is_version(1),
    );
    let lm = [
        Some(httpdate::fmt_http_date(old_mtime())),
        Some(http_mtime(&path)),
    ];
    run.check_validators(&[Phase::Before, Phase::Window, Phase::After], &lm);
}

/// v2 has v1's length: only the validators and the bytes tell them apart.
#[test]
fn renamed_over_under_load_same_size() {
    renamed_over_under_load(1024);
}

/// v2 is longer: a body of one version framed by the other's length breaks the framing.
#[test]
fn renamed_over_under_load_new_size() {
    renamed_over_under_load(1500);
}

// --- 2. changed in place -----------------------------------------------------------------------

/// Three loaders on `a.txt` (v1, 1 KiB, old mtime) while it is rewritten in place (same inode).
/// In the window a body may be any mix (an in-place write is not atomic), but its length is
/// always its Content-Length, and a connection may only be closed before a response (a file
/// that shrank under the server); from T + 1 s + 1.5 s on, only v2, with v2's validators.
fn changed_in_place_under_load(v2_len: usize, truncate_first: bool) {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let (v1, v2) = (content(1024, 3), content(v2_len, 4));
    put_old(&path, &v1);
    let server = serve(dir.path(), &[]);
    let versions = Arc::new(vec![v1, v2.clone()]);
    let load = Load::start(&server.addr, "/a.txt", &versions, 3, PACE);
    let run = Run::under(load, WINDOW, || {
        rewrite_in_place(&path, &v2, truncate_first)
    });
    let shrunk = run
        .seen
        .iter()
        .filter(|s| s.closed_before_response())
        .count();
    eprintln!("connections closed before a response (file shrank): {shrunk}");
    run.check(
        "a.txt rewritten in place",
        |s| s.is_version(0),
        // Whole responses of any content (the framing checked their lengths).
        |s| s.status() == Some(200) || s.closed_before_response(),
        |s| s.is_version(1),
    );
    run.check_validators(&[Phase::After], &[None, Some(http_mtime(&path))]);
}

/// `open(r+)` and a write of new bytes of the same length.
#[test]
fn changed_in_place_under_load_same_size() {
    changed_in_place_under_load(1024, false);
}

/// Truncated to 0, then written shorter: the size changes twice.
#[test]
fn truncated_and_rewritten_under_load() {
    changed_in_place_under_load(700, true);
}

// --- 3. deleted --------------------------------------------------------------------------------

/// `a.txt` deleted under load: v1 or 404 in the window, only 404 after it.
#[test]
fn deleted_under_load_becomes_404() {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let v1 = content(1024, 5);
    put_old(&path, &v1);
    let server = serve(dir.path(), &[]);
    let load = Load::start(&server.addr, "/a.txt", &Arc::new(vec![v1]), 3, PACE);
    let run = Run::under(load, WINDOW, || std::fs::remove_file(&path).unwrap());
    run.check(
        "a.txt deleted",
        |s| s.is_version(0),
        |s| s.is_version(0) || s.status() == Some(404),
        |s| s.status() == Some(404),
    );
}

// --- 4. permissions ----------------------------------------------------------------------------

/// `a.txt` made unreadable (chmod 000) under load, the server running as `nobody` (when the
/// tests run as root): v1 or 403 in the window, only 403 after it. Made readable again, it is
/// served by the very next request (a 403 is not cached).
#[test]
fn made_unreadable_under_load_becomes_403_then_readable_at_once() {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let v1 = content(1024, 6);
    put_old(&path, &v1);
    chmod(&path, 0o644);
    let server = serve_unprivileged(dir.path(), &[]);
    let load = Load::start(&server.addr, "/a.txt", &Arc::new(vec![v1.clone()]), 3, PACE);
    let run = Run::under(load, WINDOW, || chmod(&path, 0o000));
    run.check(
        "a.txt chmod 000",
        |s| s.is_version(0),
        |s| s.is_version(0) || s.status() == Some(403),
        |s| s.status() == Some(403),
    );
    let mut c = Client::new(&server.addr);
    assert_eq!(c.get("/a.txt").unwrap().status, 403);
    chmod(&path, 0o644);
    let r = c.get("/a.txt").unwrap();
    assert_eq!(r.status, 200, "a 403 was remembered after chmod 644");
    assert!(r.body == v1, "readable again, a.txt is not v1");
}

// --- 5. 404s are not cached --------------------------------------------------------------------

/// A name that was 404 (asked several times) is served by the very next request once a file
/// appears there: renamed into place, created by a plain write, or in a new directory.
#[test]
fn a_file_appearing_after_a_404_is_served_at_once() {
    let dir = open_tempdir();
    let server = serve(dir.path(), &[]);
    let mut c = Client::new(&server.addr);
    let status = |c: &mut Client, t: &str| c.get(t).unwrap().status;
    for _ in 0..3 {
        assert_eq!(status(&mut c, "/renamed.txt"), 404);
        assert_eq!(status(&mut c, "/written.txt"), 404);
        assert_eq!(status(&mut c, "/sub/new.txt"), 404);
    }
    replace_by_rename(&dir.path().join("renamed.txt"), b"renamed into place\n");
    let r = c.get("/renamed.txt").unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"renamed into place\n"[..]));
    std::fs::write(dir.path().join("written.txt"), b"written\n").unwrap();
    let r = c.get("/written.txt").unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"written\n"[..]));
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/new.txt"), b"in a new directory\n").unwrap();
    let r = c.get("/sub/new.txt").unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"in a new directory\n"[..]));
}

// --- 6. --file-cache 0 -------------------------------------------------------------------------

/// `--file-cache 0`: no cache, so every change is seen by the very next request, on the same
/// keep-alive connection: a rename, an in-place write of the same size, a deletion, a new file.
#[test]
fn file_cache_0_sees_every_change_at_once() {
    sees_every_change_at_once(&["--file-cache", "0"]);
}

/// `--file-cache-valid 0` turns the cache off too (`http serve --help` says so).
#[test]
fn file_cache_valid_0_sees_every_change_at_once() {
    sees_every_change_at_once(&["--file-cache-valid", "0"]);
}

fn sees_every_change_at_once(flags: &[&str]) {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let v = |seed| content(1024, seed);
    put_old(&path, &v(10));
    let server = serve(dir.path(), flags);
    let mut c = Client::new(&server.addr);
    let body = |c: &mut Client| {
        let r = c.get("/a.txt").unwrap();
        assert_eq!(r.status, 200);
        r.body
    };
    assert!(body(&mut c) == v(10) && body(&mut c) == v(10));
    replace_by_rename(&path, &v(11));
    assert!(body(&mut c) == v(11), "a rename was not seen at once");
    rewrite_in_place(&path, &v(12), false);
    assert!(
        body(&mut c) == v(12),
        "an in-place write was not seen at once"
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(c.get("/a.txt").unwrap().status, 404);
    std::fs::write(&path, v(13)).unwrap();
    assert!(body(&mut c) == v(13), "a new file was not seen at once");
}

// --- 7. the cache is really used ---------------------------------------------------------------

/// On one keep-alive connection: GET `a.txt` (the cache's check), rename v2 over it, then GET
/// at `probes` after T. Each answer that *arrived* less than `window` - 100 ms after the first
/// GET was *sent* was necessarily made within `window` of the check, so it must be v1; later
/// ones are not judged (a slow machine skips, it does not fail). From T + window + 1.5 s on,
/// v2 only.
fn cached_version_is_served_within_the_window(extra: &[&str], window: Duration, probes: &[u64]) {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let (v1, v2) = (content(1024, 20), content(1024, 21));
    put_old(&path, &v1);
    let server = serve(dir.path(), extra);
    let mut c = Client::new(&server.addr);
    let checked_at = Instant::now();
    let first = c.get("/a.txt").unwrap();
    assert!(first.status == 200 && first.body == v1);
    replace_by_rename(&path, &v2);
    let t = Instant::now();
    let mut judged = 0;
    for ms in probes {
        sleep_until(t + Duration::from_millis(*ms));
        let r = c.get("/a.txt").unwrap();
        let age = checked_at.elapsed();
        if age >= window - Duration::from_millis(100) {
            eprintln!("probe at T+{ms} ms answered {age:?} after the check: too late to judge");
            continue;
        }
        judged += 1;
        assert_eq!(r.status, 200);
        assert!(
            r.body == v1,
            "T+{ms} ms, {age:?} after the check (window {window:?}): the new version was \
             served; no cache, or one that checks the file system within its window"
        );
        assert_eq!(r.header("etag"), first.header("etag"));
    }
    assert!(
        judged > 0,
        "no probe was answered within {window:?} of the check: the machine is too slow to tell"
    );
    sleep_until(t + window + MARGIN);
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end {
        let r = c.get("/a.txt").unwrap();
        assert!(
            r.status == 200 && r.body == v2,
            "v2 not served {:?} after the rename (window {window:?})",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--file-cache-valid 3s`: the replaced file's old version is still served up to 1.5 s after
/// the rename (this fails without a cache), the new one from 3 s + 1.5 s on.
#[test]
fn file_cache_valid_3s_serves_the_cached_version_then_the_new_one() {
    cached_version_is_served_within_the_window(
        &["--file-cache-valid", "3s"],
        Duration::from_secs(3),
        &[0, 500, 1000, 1500],
    );
}

/// The default window (1 s) is really used: a GET right after a rename still gets the version
/// checked just before it (judged only when it was answered within 0.9 s of that check).
#[test]
fn the_default_window_serves_the_cached_version_just_after_a_rename() {
    cached_version_is_served_within_the_window(&[], WINDOW, &[0, 300]);
}

// --- 8. bounded --------------------------------------------------------------------------------

/// The server's open descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `--file-cache 100` and 2,000 distinct small files, each asked for twice (in order, then in
/// reverse) over 8 keep-alive connections: every answer is its own file's content, and the
/// server never holds more than its starting descriptors + 100 entries + 50 (connections,
/// slack). N bounds the whole process, however many `--workers` share it.
#[test]
fn file_cache_100_bounds_open_descriptors_over_2000_files() {
    const FILES: usize = 2000;
    const SLACK: usize = 50;
    let dir = open_tempdir();
    let text_of = |i: usize| format!("file {i:04}\n").repeat(i % 7 + 1).into_bytes();
    for i in 0..FILES {
        put_old(&dir.path().join(format!("f{i:04}.txt")), &text_of(i));
    }
    let server = serve(dir.path(), &["--file-cache", "100"]);
    let pid = server.pid();
    // Each worker's runtime is up once it has served a connection.
    let mut clients: Vec<Client> = (0..8).map(|_| Client::new(&server.addr)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/missing").unwrap().status, 404);
    }
    drop(clients);
    std::thread::sleep(Duration::from_millis(200));
    let baseline = open_fds(pid);
    let limit = baseline + 100 + SLACK;
    let mut clients: Vec<Client> = (0..8).map(|_| Client::new(&server.addr)).collect();
    let mut peak = 0;
    let order: Vec<usize> = (0..FILES).chain((0..FILES).rev()).collect();
    for (n, &i) in order.iter().enumerate() {
        let r = clients[n % 8].get(&format!("/f{i:04}.txt")).unwrap();
        assert_eq!(r.status, 200, "f{i:04}.txt");
        assert!(r.body == text_of(i), "f{i:04}.txt came with another body");
        if n % 100 == 99 {
            peak = peak.max(open_fds(pid));
            assert!(
                peak <= limit,
                "{peak} descriptors open after {} requests (baseline {baseline}, limit {limit})",
                n + 1
            );
        }
    }
    drop(clients);
    // The server notices the closed connections soon after.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now_open = open_fds(pid);
    while now_open > limit && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now_open = open_fds(pid);
    }
    eprintln!("descriptors: baseline {baseline}, peak {peak}, at the end {now_open}");
    assert!(
        now_open <= limit,
        "{now_open} descriptors open at the end (baseline {baseline}, limit {limit})"
    );
}

// --- 9. a large file ---------------------------------------------------------------------------

/// 8 MiB (above the in-memory limit, sent with sendfile from the cached descriptor), renamed
/// over by another 8 MiB under load: every answer is one whole version with its validators,
/// only v2 from T + 1 s + 1.5 s on.
#[test]
fn a_large_file_renamed_over_under_load() {
    const LEN: usize = 8 << 20;
    const { assert!(LEN > SMALL_FILE_MAX) };
    let dir = open_tempdir();
    let path = dir.path().join("big.bin");
    let (v1, v2) = (content(LEN, 30), content(LEN, 31));
    put_old(&path, &v1);
    let server = serve(dir.path(), &[]);
    let versions = Arc::new(vec![v1, v2.clone()]);
    // Paced: 8 MiB each time, two loaders, a few hundred answers in all.
    let load = Load::start(
        &server.addr,
        "/big.bin",
        &versions,
        2,
        Duration::from_millis(20),
    );
    let run = Run::under(load, WINDOW, || replace_by_rename(&path, &v2));
    run.check(
        "big.bin renamed over",
        |s| s.is_version(0),
        |s| s.is_version(0) || s.is_version(1),
        |s| s.is_version(1),
    );
    let lm = [
        Some(httpdate::fmt_http_date(old_mtime())),
        Some(http_mtime(&path)),
    ];
    run.check_validators(&[Phase::Before, Phase::Window, Phase::After], &lm);
}

// --- 10. HEAD, ranges, conditional requests ----------------------------------------------------

/// The requests cycled through by [`head_range_and_conditional_requests_follow_the_version`].
#[derive(Debug, Clone, Copy)]
enum Ask {
    Head,
    /// `Range: bytes=START-END`.
    Range(usize, usize),
    /// `If-None-Match` with v1's ETag.
    IfNoneMatchV1,
}

/// The answer version `v` (`bytes`) must get for `ask` (status, Content-Length, Content-Range,
/// body), v1 being version 0.
fn expected(ask: Ask, v: usize, bytes: &[u8]) -> (u16, usize, Option<String>, Vec<u8>) {
    let len = bytes.len();
    match ask {
        Ask::Head => (200, len, None, Vec::new()),
        Ask::Range(start, end) => {
            let end = end.min(len - 1);
            let range = format!("bytes {start}-{end}/{len}");
            (
                206,
                end - start + 1,
                Some(range),
                bytes[start..=end].to_vec(),
            )
        }
        Ask::IfNoneMatchV1 if v == 0 => (304, len, None, Vec::new()),
        Ask::IfNoneMatchV1 => (200, len, None, bytes.to_vec()),
    }
}

/// On a cached `a.txt` (v1, 1024 bytes): HEAD, `bytes=0-9`, `bytes=1020-1029` and
/// If-None-Match give v1's length, ranges and 304. Then v2 (1500 bytes) is renamed over it
/// and the same requests go on: each answer is exactly what one version would get (its
/// Content-Length, Content-Range, bytes and validators, never one version's length with the
/// other's bytes), and only v2's from T + 1 s + 1.5 s on (where v1's ETag no longer gives 304).
#[test]
fn head_range_and_conditional_requests_follow_the_version() {
    let dir = open_tempdir();
    let path = dir.path().join("a.txt");
    let (v1, v2) = (content(1024, 40), content(1500, 41));
    put_old(&path, &v1);
    let server = serve(dir.path(), &[]);
    let mut c = Client::new(&server.addr);
    let first = c.get("/a.txt").unwrap();
    assert!(first.status == 200 && first.body == v1);
    let etag1 = first.header("etag").expect("an ETag").to_string();
    let asks = [
        Ask::Head,
        Ask::Range(0, 9),
        Ask::Range(1020, 1029),
        Ask::IfNoneMatchV1,
    ];
    let send = |c: &mut Client, ask: Ask| match ask {
        Ask::Head => c.send("HEAD", "/a.txt", ""),
        Ask::Range(s, e) => c.send("GET", "/a.txt", &format!("Range: bytes={s}-{e}\r\n")),
        Ask::IfNoneMatchV1 => c.send("GET", "/a.txt", &format!("If-None-Match: {etag1}\r\n")),
    };
    // Which version `r` is a whole answer of, or why it is none.
    let versions = [v1.clone(), v2.clone()];
    let version_of = |ask: Ask, r: &Reply| -> Result<usize, String> {
        let content_length = r.header("content-length").and_then(|v| v.parse().ok());
        (0..2)
            .find(|&v| {
                let (status, len, range, body) = expected(ask, v, &versions[v]);
                r.status == status
                    && (status == 304 || content_length == Some(len))
                    && r.header("content-range") == range.as_deref()
                    && r.body == body
            })
            .ok_or_else(|| {
                format!(
                    "{ask:?}: {} Content-Length {content_length:?} Content-Range {:?}, {} \
                     body bytes: no version's answer",
                    r.status,
                    r.header("content-range"),
                    r.body.len()
                )
            })
    };
    for ask in asks {
        let r = send(&mut c, ask).unwrap();
        assert_eq!(version_of(ask, &r), Ok(0), "before the change");
        assert_eq!(r.header("etag"), Some(etag1.as_str()), "{ask:?}");
    }
    replace_by_rename(&path, &v2);
    let t = Instant::now();
    let cutoff = t + WINDOW + MARGIN;
    let mut validators = [BTreeSet::new(), BTreeSet::new()];
    let (mut n, mut after_cutoff) = (0, 0);
    while Instant::now() < cutoff + CHECKED {
        let ask = asks[n % asks.len()];
        n += 1;
        let sent = Instant::now();
        let r = send(&mut c, ask).unwrap_or_else(|f| panic!("{ask:?}: {}", f.what));
        let v = version_of(ask, &r).unwrap_or_else(|e| panic!("T+{:?}: {e}", sent - t));
        if sent >= cutoff {
            after_cutoff += 1;
            assert_eq!(v, 1, "{ask:?} at T+{:?}: still v1", sent - t);
        }
        let lm = r.header("last-modified").map(str::to_string);
        validators[v].insert((r.header("etag").map(str::to_string), lm));
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("{n} requests after the rename, {after_cutoff} after the cutoff");
    assert!(after_cutoff > 0, "no request after the cutoff");
    let v1_validators = (
        Some(etag1.clone()),
        Some(httpdate::fmt_http_date(old_mtime())),
    );
    assert!(
        validators[0].iter().all(|x| *x == v1_validators),
        "{validators:?}"
    );
    let v2_validators = (
        validators[1].first().and_then(|x| x.0.clone()),
        Some(http_mtime(&path)),
    );
    assert_eq!(
        validators[1].iter().collect::<Vec<_>>(),
        [&v2_validators],
        "v2's answers carry one ETag and its Last-Modified"
    );
    assert_ne!(v2_validators.0.as_deref(), Some(etag1.as_str()));
    assert!(v2_validators.0.is_some());
}
