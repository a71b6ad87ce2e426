//! `socklab http get` against real servers and a real proxy, all on loopback and configured by
//! each test (tests/support/fixtures.rs): a Python origin with test-only routes, Debian's nginx
//! (static files, ranges, gzip, redirects, https with an rcgen CA) and tinyproxy (absolute-form
//! http, CONNECT for https, Basic authentication). Saved files are compared byte for byte with
//! what curl saves from the same URLs. The expectations are the fixed CLI contract of
//! `socklab http get` (exit codes, .part rules, header-log format, summary line).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::fixtures::*;
use crate::support::*;

// --- helpers -----------------------------------------------------------------------------------

/// Runs `socklab http get ARGS` in `dir`, with no proxy variable from the outside world but
/// those in `env`; 60 s at most.
fn get_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir).args(["http", "get"]).args(args);
    without_proxies(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with(cmd, b"", Duration::from_secs(60))
}

fn get(dir: &Path, args: &[&str]) -> Output {
    get_env(dir, args, &[])
}

/// What curl saves from `url` with `extra` options.
fn curl_saves(url: &str, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = extra.to_vec();
    args.extend(["-o", "curl.out", url]);
    ok(&curl_in(dir.path(), &args));
    std::fs::read(dir.path().join("curl.out")).unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts two byte strings are equal without printing megabytes.
#[track_caller]
fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {} bytes; first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

/// The JSON /echo returned on stdout (`-O -`).
fn echo_doc(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not /echo's JSON ({e}): {:?}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            err_text(out)
        )
    })
}

/// A request header /echo saw (case-insensitive name).
fn echo_header(doc: &serde_json::Value, name: &str) -> Option<String> {
    doc["headers"].as_array().unwrap().iter().find_map(|h| {
        let h = h.as_array().unwrap();
        h[0].as_str()
            .unwrap()
            .eq_ignore_ascii_case(name)
            .then(|| h[1].as_str().unwrap().to_string())
    })
}

/// One block of a header log.
#[derive(Debug)]
struct Block {
    ts: jiff::Timestamp,
    /// "request" or "response".
    kind: String,
    /// The marker says `proxy`.
    proxy: bool,
    /// The peer address in the marker.
    peer: String,
    /// The head's exact text (CRLFs included).
    head: String,
}

impl Block {
    fn first_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap()
    }
}

/// Parses a header log (contract: `--- TIMESTAMP request to [proxy ]ADDR` / `--- TIMESTAMP
/// response from [proxy ]ADDR`, then the head with its CRLFs), checking that it is clean: no
/// escape sequence, no bare CR (progress output), every head complete.
fn header_log(path: &Path) -> Vec<Block> {
    let text = String::from_utf8(read(path)).expect("the header log is UTF-8 text");
    assert!(
        !text.contains('\x1b'),
        "escape sequence in the header log:\n{text:?}"
    );
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        assert!(
            *b != b'\r' || bytes.get(i + 1) == Some(&b'\n'),
            "bare CR at byte {i} of the header log (progress output?):\n{text:?}"
        );
    }
    assert!(text.starts_with("--- "), "header log: {text:?}");
    let mut starts: Vec<usize> = text.match_indices("\n--- ").map(|(i, _)| i + 1).collect();
    starts.insert(0, 0);
    starts.push(text.len());
    starts
        .windows(2)
        .map(|w| {
            let seg = &text[w[0]..w[1]];
            let (marker, head) = seg.split_once('\n').expect("a marker line");
            let marker = marker.trim_end_matches('\r');
            let mut words = marker.split(' ');
            assert_eq!(words.next(), Some("---"), "{marker:?}");
            let ts: jiff::Timestamp = words
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("bad timestamp in {marker:?}: {e}"));
            let kind = words.next().unwrap_or_default().to_string();
            let prep = words.next().unwrap_or_default();
            assert!(
                (kind == "request" && prep == "to") || (kind == "response" && prep == "from"),
                "marker {marker:?}"
            );
            let rest: Vec<&str> = words.collect();
            let (proxy, peer) = match rest.as_slice() {
                ["proxy", addr] => (true, addr.to_string()),
                [addr] => (false, addr.to_string()),
                _ => panic!("marker {marker:?}"),
            };
            let head = head
                .strip_suffix('\n')
                .filter(|h| h.ends_with("\r\n\r\n"))
                .unwrap_or(head);
            assert!(
                head.ends_with("\r\n\r\n") && !head[..head.len() - 4].contains("\r\n\r\n"),
                "block is not exactly one complete head: {seg:?}"
            );
            Block {
                ts,
                kind,
                proxy,
                peer,
                head: head.to_string(),
            }
        })
        .collect()
}

/// The summary line (contract): `saved 'PATH': N bytes …`.
#[track_caller]
fn assert_summary(out: &Output, name: &str, len: usize) {
    let err = err_text(out);
    let line = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        line.contains(name) && line.contains(&format!("{len} bytes")),
        "last stderr line should name {name:?} and {len} bytes: {line:?}\nstderr:\n{err}"
    );
}

// --- the fixtures themselves, checked with curl ------------------------------------------------

/// Every fixture answers curl as the other tests expect; when this fails, the environment (not
/// socklab) is broken.
#[test]
fn fixtures_answer_curl() {
    let nginx = Nginx::start();
    let origin = Origin::start();
    let proxy = Tinyproxy::start();
    let authed = Tinyproxy::with_auth("alice", "s3cret");
    let ca = nginx.pki.ca.to_str().unwrap().to_string();
    let big = nginx.file("big.bin");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    same(&curl_saves(&nginx.url("/big.bin"), &[]), &big, "nginx");
    same(
        &curl_saves(&nginx.tls_url("/big.bin"), &["--cacert", &ca]),
        &big,
        "nginx https",
    );
    let t = ok(&curl_in(
        d,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--compressed",
            &nginx.url("/text.txt"),
        ],
    ));
    assert!(
        String::from_utf8_lossy(&t).contains("Content-Encoding: gzip"),
        "nginx does not gzip: {}",
        String::from_utf8_lossy(&t)
    );
    let t = ok(&curl_in(
        d,
        &[
            "-r",
            "1000-",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &nginx.url("/big.bin"),
        ],
    ));
    assert!(
        String::from_utf8_lossy(&t).contains(&format!(
            "Content-Range: bytes 1000-{}/{}",
            BIG_LEN - 1,
            BIG_LEN
        )),
        "nginx ranges: {}",
        String::from_utf8_lossy(&t)
    );
    same(
        &curl_saves(&nginx.url("/hop1"), &["-L"]),
        &big,
        "nginx redirects",
    );
    same(
        &curl_saves(&origin.url("/blob"), &[]),
        &blob(),
        "origin blob = noise()",
    );
    same(
        &curl_saves(&origin.url("/http10"), &[]),
        &blob(),
        "origin http10",
    );
    same(
        &curl_saves(&origin.url("/chunked"), &[]),
        &curl_saves(&origin.url("/chunked-text"), &[]),
        "origin chunked",
    );
    let origin6 = Origin::start_on("::1");
    same(
        &curl_saves(&origin6.url("/blob"), &["-g"]),
        &blob(),
        "origin on ::1",
    );
    // Through the proxy: absolute form and CONNECT, both in tinyproxy's log.
    same(
        &curl_saves(&nginx.url("/big.bin"), &["-x", &proxy.url()]),
        &big,
        "proxied http",
    );
    assert!(
        proxy.logged(&format!("GET {} HTTP/1.1", nginx.url("/big.bin"))),
        "{}",
        proxy.log()
    );
    same(
        &curl_saves(
            &nginx.tls_url("/big.bin"),
            &["-x", &proxy.url(), "--cacert", &ca],
        ),
        &big,
        "CONNECT tunnel",
    );
    assert!(
        proxy.logged(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", nginx.tls_port)),
        "{}",
        proxy.log()
    );
    // Basic authentication: 407 without, through with.
    let t = curl_in(
        d,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            &authed.url(),
            &origin.url("/echo"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&t.stdout), "407");
    same(
        &curl_saves(
            &origin.url("/blob"),
            &["-x", &authed.url(), "-U", "alice:s3cret"],
        ),
        &blob(),
        "authenticated proxy",
    );
}

// --- byte for byte against curl ----------------------------------------------------------------

#[test]
fn nginx_static_files_match_curl() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["big.bin", "text.txt"] {
        let url = nginx.url(&format!("/{name}"));
        // Default output name: the last path segment, in the current directory.
        let out = get(dir.path(), &[&url]);
        exits(&out, 0);
        let mine = read(&dir.path().join(name));
        same(&mine, &curl_saves(&url, &[]), name);
        same(&mine, &nginx.file(name), name);
        assert_summary(&out, name, mine.len());
    }
    assert_eq!(names(dir.path()), ["big.bin", "text.txt"], "no .part left");
}

#[test]
fn nginx_gzip_with_compressed_matches_curl() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.url("/text.txt");
    let out = get(
        dir.path(),
        &[
            &url,
            "--compressed",
            "-O",
            "gz.txt",
            "--header-log",
            "h.log",
        ],
    );
    exits(&out, 0);
    let mine = read(&dir.path().join("gz.txt"));
    same(&mine, &curl_saves(&url, &["--compressed"]), "gzip vs curl");
    same(&mine, &text_file(), "gzip decoded");
    let log = header_log(&dir.path().join("h.log"));
    let req = log.iter().find(|b| b.kind == "request").unwrap();
    assert!(
        req.head
            .to_ascii_lowercase()
            .contains("accept-encoding: gzip, deflate\r\n"),
        "{}",
        req.head
    );
    let resp = log.iter().find(|b| b.kind == "response").unwrap();
    assert!(
        resp.head
            .to_ascii_lowercase()
            .contains("content-encoding: gzip\r\n"),
        "nginx really compressed: {}",
        resp.head
    );
    // Without --compressed nothing is asked for, and the file is the same.
    let out = get(dir.path(), &[&url, "-O", "plain.txt"]);
    exits(&out, 0);
    same(
        &read(&dir.path().join("plain.txt")),
        &text_file(),
        "identity",
    );
}

#[test]
fn python_gzip_with_compressed_matches_curl() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/gzip");
    let out = get(dir.path(), &[&url, "--compressed", "-O", "a"]);
    exits(&out, 0);
    let plain = curl_saves(&origin.url("/text"), &[]);
    same(
        &read(&dir.path().join("a")),
        &curl_saves(&url, &["--compressed"]),
        "vs curl",
    );
    same(&read(&dir.path().join("a")), &plain, "decoded");
}

#[test]
fn python_chunked_with_trailers_matches_curl() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/chunked");
    let out = get(dir.path(), &[&url, "--header-log", "h.log"]);
    exits(&out, 0);
    let mine = read(&dir.path().join("chunked"));
    same(&mine, &curl_saves(&url, &[]), "chunked vs curl");
    same(
        &mine,
        &curl_saves(&origin.url("/chunked-text"), &[]),
        "chunked decoded",
    );
    assert_summary(&out, "chunked", mine.len());
    let log = header_log(&dir.path().join("h.log"));
    assert!(
        log.iter()
            .any(|b| b.kind == "response" && b.head.contains("Transfer-Encoding: chunked\r\n")),
        "{log:?}"
    );
    assert_eq!(names(dir.path()), ["chunked", "h.log"]);
}

#[test]
fn python_http10_read_until_close_matches_curl() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/http10");
    let out = get(dir.path(), &[&url, "-O", "h10.bin"]);
    exits(&out, 0);
    let mine = read(&dir.path().join("h10.bin"));
    same(&mine, &curl_saves(&url, &[]), "http10 vs curl");
    same(&mine, &blob(), "http10");
}

#[test]
fn nginx_redirects_match_curl_location() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.url("/hop1");
    let out = get(dir.path(), &[&url, "-O", "r.bin"]);
    exits(&out, 0);
    same(
        &read(&dir.path().join("r.bin")),
        &curl_saves(&url, &["-L"]),
        "vs curl -L",
    );
    same(
        &read(&dir.path().join("r.bin")),
        &nginx.file("big.bin"),
        "redirected file",
    );
    let err = err_text(&out);
    for hop in [
        format!("redirect 301 -> {}", nginx.url("/hop2")),
        format!("redirect 302 -> {}", nginx.url("/big.bin")),
    ] {
        assert!(err.contains(&hop), "missing {hop:?} in:\n{err}");
    }
    // 301 with nginx's absolute Location, to a text file.
    let out = get(dir.path(), &[&nginx.url("/old"), "-O", "old.txt"]);
    exits(&out, 0);
    same(&read(&dir.path().join("old.txt")), &text_file(), "/old");
}

#[test]
fn error_status_body_saved_like_curl_and_fail_saves_nothing() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let url = origin.url("/status/404");
    let out = get(dir.path(), &[&url, "-O", "nf.txt"]);
    exits(&out, 0);
    same(
        &read(&dir.path().join("nf.txt")),
        &curl_saves(&url, &[]),
        "404 body",
    );
    assert!(
        err_text(&out).contains("404"),
        "a warning names the status:\n{}",
        err_text(&out)
    );

    let empty = tempfile::tempdir().unwrap();
    let out = get(empty.path(), &[&url, "--fail", "-O", "nf.txt"]);
    exits(&out, 7);
    assert!(names(empty.path()).is_empty(), "{:?}", names(empty.path()));
}

#[test]
fn output_to_stdout_no_clobber_and_existing_file_replaced() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.url("/text.txt");
    let out = get(dir.path(), &[&url, "-O", "-", "-q"]);
    exits(&out, 0);
    same(&out.stdout, &text_file(), "-O -");
    assert!(names(dir.path()).is_empty(), "-O - leaves no file");

    assert!(wait_file_contains(&nginx.access_log(), "GET /text.txt"));
    let asked = || {
        std::fs::read_to_string(nginx.access_log())
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = asked();
    std::fs::write(dir.path().join("text.txt"), "mine").unwrap();
    let out = get(dir.path(), &[&url, "--no-clobber"]);
    exits(&out, 0);
    stderr_has(&out, "already exists");
    assert_eq!(read(&dir.path().join("text.txt")), b"mine");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(asked(), before, "--no-clobber must not even ask");

    let out = get(dir.path(), &[&url]);
    exits(&out, 0);
    same(
        &read(&dir.path().join("text.txt")),
        &text_file(),
        "replaced",
    );
    assert_eq!(names(dir.path()), ["text.txt"]);
}

// --- redirects ---------------------------------------------------------------------------------

#[test]
fn redirect_method_rules_via_echo() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    for code in [301, 302, 303, 307, 308] {
        let out = get(
            dir.path(),
            &[
                &origin.url(&format!("/redirect/{code}")),
                "--post-data",
                "a=1&b=two",
                "-O",
                "-",
            ],
        );
        exits(&out, 0);
        let doc = echo_doc(&out);
        let (method, body) = if code == 307 || code == 308 {
            ("POST", "a=1&b=two")
        } else {
            ("GET", "")
        };
        assert_eq!(doc["method"], method, "after {code}: {doc}");
        assert_eq!(doc["body"], body, "after {code}: {doc}");
        assert_eq!(doc["path"], "/echo");
        if code == 307 || code == 308 {
            assert_eq!(
                echo_header(&doc, "content-type").as_deref(),
                Some("application/x-www-form-urlencoded"),
                "{doc}"
            );
        } else {
            assert_eq!(
                echo_header(&doc, "content-length")
                    .as_deref()
                    .unwrap_or("0"),
                "0"
            );
        }
        let hop = format!("redirect {code} -> {}", origin.url("/echo"));
        assert!(
            err_text(&out).contains(&hop),
            "missing {hop:?}:\n{}",
            err_text(&out)
        );
    }
    let seen = origin.seen();
    for code in [301, 302, 303, 307, 308] {
        let first = seen
            .iter()
            .find(|s| s.target == format!("/redirect/{code}"))
            .unwrap();
        assert_eq!(first.method, "POST");
    }
    assert!(names(dir.path()).is_empty(), "-O - saves nothing");
}

#[test]
fn redirect_chain_within_and_beyond_max_redirects() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = get(
        empty.path(),
        &[&origin.url("/chain/3"), "--max-redirects", "2", "-O", "end"],
    );
    exits(&out, 5);
    let err = err_text(&out);
    for hop in ["/chain/3", "/chain/2", "/chain/1"] {
        assert!(err.contains(hop), "the chain is printed ({hop}):\n{err}");
    }
    assert!(names(empty.path()).is_empty(), "{:?}", names(empty.path()));
    assert!(
        !origin.seen().iter().any(|s| s.target == "/chain/0"),
        "the hop beyond the limit is not requested"
    );

    let out = get(
        dir.path(),
        &[&origin.url("/chain/3"), "--max-redirects", "3", "-O", "end"],
    );
    exits(&out, 0);
    assert_eq!(read(&dir.path().join("end")), b"end of chain\n");

    // The default is 20.
    let out = get(dir.path(), &[&origin.url("/chain/20"), "-O", "twenty"]);
    exits(&out, 0);
    assert_eq!(read(&dir.path().join("twenty")), b"end of chain\n");
    let out = get(empty.path(), &[&origin.url("/chain/21"), "-O", "x"]);
    exits(&out, 5);
    assert!(names(empty.path()).is_empty());
}

#[test]
fn redirect_loop_is_detected_with_its_chain() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let out = get(dir.path(), &[&origin.url("/loop/a"), "-O", "x"]);
    exits(&out, 5);
    let err = err_text(&out);
    assert!(
        err.contains(&origin.url("/loop/a")) && err.contains(&origin.url("/loop/b")),
        "{err}"
    );
    let asked = origin
        .seen()
        .iter()
        .filter(|s| s.target.starts_with("/loop/"))
        .count();
    assert!(
        asked <= 3,
        "a loop is seen when a URL comes back, not after 20 hops: {asked} requests"
    );
    assert!(names(dir.path()).is_empty());
}

#[test]
fn no_follow_prints_the_redirect_and_saves_nothing() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let out = get(dir.path(), &[&origin.url("/redirect/301"), "--no-follow"]);
    exits(&out, 0);
    let err = err_text(&out);
    assert!(err.contains("301") && err.contains("/echo"), "{err}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    assert!(
        !origin.seen().iter().any(|s| s.target == "/echo"),
        "not followed"
    );
}

#[test]
fn authorization_dropped_on_cross_host_redirect_only() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let basic = "Basic dTpw"; // u:p
    // Same host: kept.
    let out = get(
        dir.path(),
        &[&origin.url("/redirect/302"), "--user", "u:p", "-O", "-"],
    );
    exits(&out, 0);
    assert_eq!(
        echo_header(&echo_doc(&out), "authorization").as_deref(),
        Some(basic)
    );
    // 127.0.0.1 -> localhost: dropped, with --user and with userinfo in the URL.
    let out = get(
        dir.path(),
        &[&origin.url("/cross"), "--user", "u:p", "-O", "-"],
    );
    exits(&out, 0);
    let doc = echo_doc(&out);
    assert_eq!(
        echo_header(&doc, "host"),
        Some(format!("localhost:{}", origin.port()))
    );
    assert_eq!(echo_header(&doc, "authorization"), None, "{doc}");
    let with_userinfo = format!("http://u:p@{}/cross", origin.addr);
    let out = get(dir.path(), &[&with_userinfo, "-O", "-"]);
    exits(&out, 0);
    assert_eq!(echo_header(&echo_doc(&out), "authorization"), None);
    // ...but it was sent to the first host.
    let out = get(
        dir.path(),
        &[&format!("http://u:p@{}/echo", origin.addr), "-O", "-"],
    );
    exits(&out, 0);
    assert_eq!(
        echo_header(&echo_doc(&out), "authorization").as_deref(),
        Some(basic)
    );
}

// --- bodies, .part, resume, retries ------------------------------------------------------------

#[test]
fn truncated_body_keeps_part_and_leaves_the_old_file() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.bin"), "previous download").unwrap();
    let out = get(
        dir.path(),
        &[&origin.url("/truncated"), "-O", "t.bin", "--retries", "0"],
    );
    exits(&out, 5);
    let err = err_text(&out);
    assert!(
        err.contains("40000") && err.contains("100000"),
        "body ended after 40000 of 100000 bytes:\n{err}"
    );
    assert_eq!(read(&dir.path().join("t.bin")), b"previous download");
    same(
        &read(&dir.path().join("t.bin.part")),
        &blob()[..40000],
        ".part",
    );
}

#[test]
fn continue_resumes_a_part_against_nginx() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let big = nginx.file("big.bin");
    let k = 1024 * 1024;
    std::fs::write(dir.path().join("big.bin.part"), &big[..k]).unwrap();
    let out = get(
        dir.path(),
        &[&nginx.url("/big.bin"), "-c", "--header-log", "h.log"],
    );
    exits(&out, 0);
    same(&read(&dir.path().join("big.bin")), &big, "resumed");
    assert_eq!(names(dir.path()), ["big.bin", "h.log"]);
    let log = header_log(&dir.path().join("h.log"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0]
            .head
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={k}-\r\n")),
        "{}",
        log[0].head
    );
    assert!(
        log[1].first_line().starts_with("HTTP/1.1 206"),
        "{}",
        log[1].head
    );
    assert!(
        wait_file_contains(
            &nginx.access_log(),
            &format!("GET /big.bin HTTP/1.1 206 range=bytes={k}-")
        ),
        "{}",
        std::fs::read_to_string(nginx.access_log()).unwrap_or_default()
    );
}

#[test]
fn continue_with_a_complete_part_gets_416_and_renames() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let big = nginx.file("big.bin");
    std::fs::write(dir.path().join("big.bin.part"), &big).unwrap();
    let out = get(dir.path(), &[&nginx.url("/big.bin"), "-c"]);
    exits(&out, 0);
    same(&read(&dir.path().join("big.bin")), &big, "complete .part");
    assert_eq!(names(dir.path()), ["big.bin"]);
    assert!(
        wait_file_contains(&nginx.access_log(), " 416 range="),
        "nginx answered 416"
    );
}

#[test]
fn continue_against_a_server_ignoring_range_starts_over() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    // Zeros: appending the 200 body to them would give a corrupt file.
    std::fs::write(dir.path().join("ri.part"), vec![0u8; 5000]).unwrap();
    let out = get(
        dir.path(),
        &[&origin.url("/range-ignored"), "-c", "-O", "ri"],
    );
    exits(&out, 0);
    stderr_has(&out, "ignored the range");
    same(&read(&dir.path().join("ri")), &blob(), "started over");
    assert_eq!(names(dir.path()), ["ri"]);
    let seen = origin.seen();
    assert_eq!(seen[0].range.as_deref(), Some("bytes=5000-"), "{seen:?}");
}

#[test]
fn continue_against_a_wrong_content_range_never_corrupts() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("br.part"), vec![0u8; 5000]).unwrap();
    let out = get(
        dir.path(),
        &[
            &origin.url("/bad-range"),
            "-c",
            "-O",
            "br",
            "--retries",
            "0",
        ],
    );
    assert_ne!(out.status.code(), Some(101), "panic:\n{}", err_text(&out));
    let fin = dir.path().join("br");
    if out.status.success() {
        same(
            &read(&fin),
            &blob(),
            "a 206 starting at 4900 for bytes=5000- is not a resume",
        );
    } else {
        assert!(!fin.exists(), "failed, yet {} exists", fin.display());
    }
    assert_eq!(origin.seen()[0].range.as_deref(), Some("bytes=5000-"));
}

#[test]
fn retries_resume_after_a_connection_reset() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let out = get(
        dir.path(),
        &[&origin.url("/flaky"), "--retries", "2", "-O", "fl"],
    );
    exits(&out, 0);
    same(&read(&dir.path().join("fl")), &blob(), "after the retry");
    assert_eq!(names(dir.path()), ["fl"]);
    let seen: Vec<Seen> = origin
        .seen()
        .into_iter()
        .filter(|s| s.target == "/flaky")
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let range = seen[1]
        .range
        .as_deref()
        .expect("the retry resumes with Range");
    let k: usize = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{range}"));
    assert!(k > 0 && k <= BLOB_LEN / 2, "resumed at {k}");

    // Without retries the reset is a network error and the .part stays for -c.
    let out = get(
        dir.path(),
        &[&origin.url("/flaky?again"), "--retries", "0", "-O", "f2"],
    );
    exits(&out, 3);
    assert!(!dir.path().join("f2").exists());
    let part = read(&dir.path().join("f2.part"));
    same(&part, &blob()[..part.len()], "the .part is a prefix");
    let out = get(dir.path(), &[&origin.url("/flaky?again"), "-c", "-O", "f2"]);
    exits(&out, 0);
    same(&read(&dir.path().join("f2")), &blob(), "resumed by -c");
}

// --- proxies -----------------------------------------------------------------------------------

#[test]
fn proxy_http_uses_absolute_form_through_tinyproxy() {
    let nginx = Nginx::start();
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.url("/big.bin");
    let out = get(
        dir.path(),
        &[&url, "-x", &proxy.url(), "--header-log", "h.log"],
    );
    exits(&out, 0);
    same(
        &read(&dir.path().join("big.bin")),
        &nginx.file("big.bin"),
        "proxied",
    );
    assert!(
        proxy.logged(&format!("GET {url} HTTP/1.1")),
        "{}",
        proxy.log()
    );
    let log = header_log(&dir.path().join("h.log"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0].proxy && log[0].peer == proxy.addr() && log[0].kind == "request",
        "{log:?}"
    );
    assert_eq!(log[0].first_line(), format!("GET {url} HTTP/1.1"));
    assert!(
        log[1].proxy && log[1].peer == proxy.addr() && log[1].kind == "response",
        "{log:?}"
    );
    assert!(log[1].first_line().starts_with("HTTP/1.") && log[1].first_line().contains(" 200"));
    assert!(
        log[1].head.contains("Via: "),
        "tinyproxy adds Via: {}",
        log[1].head
    );
}

#[test]
fn proxy_https_goes_through_connect_to_nginx() {
    let nginx = Nginx::start();
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = nginx.pki.ca.to_str().unwrap();
    let url = nginx.tls_url("/big.bin");
    let out = get(
        dir.path(),
        &[
            &url,
            "-x",
            &proxy.url(),
            "--cacert",
            ca,
            "--header-log",
            "h.log",
        ],
    );
    exits(&out, 0);
    let mine = read(&dir.path().join("big.bin"));
    same(&mine, &nginx.file("big.bin"), "tunnelled");
    same(
        &mine,
        &curl_saves(&url, &["-x", &proxy.url(), "--cacert", ca]),
        "vs curl",
    );
    let connect = format!("CONNECT 127.0.0.1:{} HTTP/1.1", nginx.tls_port);
    assert!(proxy.logged(&connect), "{}", proxy.log());
    let log = header_log(&dir.path().join("h.log"));
    assert_eq!(
        log.len(),
        4,
        "CONNECT, its answer, the request, the response: {log:?}"
    );
    assert!(
        log[0].proxy && log[0].kind == "request" && log[0].peer == proxy.addr(),
        "{log:?}"
    );
    assert_eq!(log[0].first_line(), connect);
    assert!(log[1].proxy && log[1].kind == "response", "{log:?}");
    assert!(log[1].first_line().contains(" 200"), "{}", log[1].head);
    assert_eq!(log[2].kind, "request");
    assert_eq!(
        log[2].first_line(),
        "GET /big.bin HTTP/1.1",
        "origin form inside the tunnel"
    );
    assert_eq!(log[3].kind, "response");
    assert!(
        log[3].first_line().starts_with("HTTP/1.1 200"),
        "{}",
        log[3].head
    );
    assert!(
        log.windows(2).all(|w| w[0].ts <= w[1].ts),
        "timestamps in order"
    );
}

#[test]
fn proxy_user_authenticates_and_407_is_a_proxy_error() {
    let nginx = Nginx::start();
    let proxy = Tinyproxy::with_auth("alice", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let ca = nginx.pki.ca.to_str().unwrap();
    let big = nginx.file("big.bin");
    for url in [nginx.url("/big.bin"), nginx.tls_url("/big.bin")] {
        let out = get(
            dir.path(),
            &[
                &url,
                "-x",
                &proxy.url(),
                "--cacert",
                ca,
                "--retries",
                "0",
                "-O",
                "no",
            ],
        );
        exits(&out, 9);
        assert!(err_text(&out).contains("407"), "{url}: {}", err_text(&out));
        assert!(!dir.path().join("no").exists(), "{url}");
        let out = get(
            dir.path(),
            &[
                &url,
                "-x",
                &proxy.url(),
                "--proxy-user",
                "alice:s3cret",
                "--cacert",
                ca,
                "-O",
                "yes",
            ],
        );
        exits(&out, 0);
        same(&read(&dir.path().join("yes")), &big, &url);
        let out = get(
            dir.path(),
            &[
                &url,
                "-x",
                &proxy.url(),
                "--proxy-user",
                "alice:wrong",
                "--cacert",
                ca,
                "--retries",
                "0",
                "-O",
                "wrong",
            ],
        );
        // tinyproxy 1.11 answers wrong credentials with `401 Unauthorized` (not 407). Through
        // CONNECT any non-2xx is a proxy error; in absolute form the client cannot tell the
        // proxy's 401 from an origin's, so it is an HTTP error status like any other.
        let wrong = dir.path().join("wrong");
        if url.starts_with("https:") {
            exits(&out, 9);
            assert!(err_text(&out).contains("401"), "{url}: {}", err_text(&out));
            assert!(!wrong.exists(), "{url}");
        } else {
            exits(&out, 0);
            assert!(err_text(&out).contains("401"), "{url}: {}", err_text(&out));
            assert!(read(&wrong) != big, "{url}: tinyproxy's error page");
            std::fs::remove_file(&wrong).unwrap();
        }
    }
    assert!(!dir.path().join("no").exists());
}

#[test]
fn proxy_refused_is_a_proxy_error() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = get(
        dir.path(),
        &[
            &origin.url("/blob"),
            "-x",
            &dead,
            "--retries",
            "0",
            "-O",
            "x",
        ],
    );
    exits(&out, 9);
    assert!(
        err_text(&out).to_lowercase().contains("proxy"),
        "{}",
        err_text(&out)
    );
    assert!(names(dir.path()).is_empty());
    assert!(origin.seen().is_empty());
}

/// Whether the request for `target` reached the origin through tinyproxy (Via header).
fn via_proxy(origin: &Origin, target: &str) -> bool {
    let seen = origin.seen();
    let last = seen
        .iter()
        .rev()
        .find(|s| s.target == target)
        .unwrap_or_else(|| panic!("{target} never reached the origin: {seen:?}"));
    last.via.as_deref().is_some_and(|v| v.contains("tinyproxy"))
}

#[test]
fn env_proxies_are_used_and_overridden() {
    let nginx = Nginx::start();
    let origin = Origin::start();
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let p = proxy.url();
    let out = get_env(
        dir.path(),
        &[&origin.url("/echo?env"), "-O", "-"],
        &[("http_proxy", &p)],
    );
    exits(&out, 0);
    assert!(via_proxy(&origin, "/echo?env"), "http_proxy is used");
    assert!(proxy.logged(&format!("GET {} HTTP/1.1", origin.url("/echo?env"))));

    // --no-proxy ignores it; -x overrides a dead one.
    let out = get_env(
        dir.path(),
        &[&origin.url("/echo?noproxy"), "--no-proxy", "-O", "-"],
        &[("http_proxy", &p)],
    );
    exits(&out, 0);
    assert!(
        !via_proxy(&origin, "/echo?noproxy"),
        "--no-proxy goes direct"
    );
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = get_env(
        dir.path(),
        &[&origin.url("/echo?x"), "-x", &p, "-O", "-"],
        &[("http_proxy", &dead)],
    );
    exits(&out, 0);
    assert!(via_proxy(&origin, "/echo?x"), "-x wins over http_proxy");

    // https_proxy for https: CONNECT.
    let ca = nginx.pki.ca.to_str().unwrap();
    let out = get_env(
        dir.path(),
        &[&nginx.tls_url("/text.txt"), "--cacert", ca],
        &[("https_proxy", &p)],
    );
    exits(&out, 0);
    same(
        &read(&dir.path().join("text.txt")),
        &text_file(),
        "https_proxy",
    );
    assert!(
        proxy.logged(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", nginx.tls_port)),
        "{}",
        proxy.log()
    );
}

#[test]
fn no_proxy_matches_ips_cidrs_and_host_suffixes() {
    let origin = Origin::start();
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let p = proxy.url();
    let local = format!("http://localhost:{}", origin.port());
    // (url, no_proxy, goes through the proxy?)
    let cases = [
        (origin.url("/echo?ip"), "127.0.0.1", false),
        (origin.url("/echo?cidr"), "10.0.0.0/8,127.0.0.0/8", false),
        (
            origin.url("/echo?othercidr"),
            "10.0.0.0/8,192.168.0.0/16",
            true,
        ),
        (format!("{local}/echo?host"), "example.org,localhost", false),
        // A suffix matches at a dot boundary only: "host" is not a domain of "localhost".
        (format!("{local}/echo?partial"), "host", true),
        (origin.url("/echo?star"), "*", false),
        (origin.url("/echo?other"), "example.org", true),
    ];
    for (url, no_proxy, proxied) in cases {
        let out = get_env(
            dir.path(),
            &[&url, "-O", "-"],
            &[("http_proxy", &p), ("no_proxy", no_proxy)],
        );
        exits(&out, 0);
        let target = url
            .split_once("/echo")
            .map(|(_, q)| format!("/echo{q}"))
            .unwrap();
        assert_eq!(
            via_proxy(&origin, &target),
            proxied,
            "{url} with no_proxy={no_proxy:?}"
        );
        let in_log = proxy.log().contains(&format!("GET {url} HTTP/1.1"));
        assert_eq!(
            in_log,
            proxied,
            "{url} in tinyproxy's log:\n{}",
            proxy.log()
        );
    }
}

#[test]
fn no_proxy_matches_ipv6_addresses_and_ranges() {
    let origin = Origin::start_on("::1");
    let proxy = Tinyproxy::start();
    let dir = tempfile::tempdir().unwrap();
    let p = proxy.url();
    let cases = [
        ("/echo?v6ip", "::1", false),
        ("/echo?v6cidr", "fe80::/10,::1/128", false),
        ("/echo?v4only", "127.0.0.1,127.0.0.0/8", true),
    ];
    for (target, no_proxy, proxied) in cases {
        let url = origin.url(target);
        let out = get_env(
            dir.path(),
            &[&url, "-O", "-"],
            &[("http_proxy", &p), ("no_proxy", no_proxy)],
        );
        exits(&out, 0);
        assert_eq!(
            via_proxy(&origin, target),
            proxied,
            "{url} with no_proxy={no_proxy:?}"
        );
        assert_eq!(
            proxy.log().contains(&format!("GET {url} HTTP/1.1")),
            proxied,
            "{url} in tinyproxy's log:\n{}",
            proxy.log()
        );
    }
}

// --- the header log ----------------------------------------------------------------------------

#[test]
fn header_log_records_every_hop_with_timestamps_and_appends() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = get(
            dir.path(),
            &[
                &origin.url("/chain/2"),
                "-O",
                "end",
                "--header-log",
                "h.log",
            ],
        );
        exits(&out, 0);
    }
    let log = header_log(&dir.path().join("h.log"));
    assert_eq!(
        log.len(),
        12,
        "3 hops x (request + response), twice: {log:?}"
    );
    for (i, b) in log.iter().enumerate() {
        assert_eq!(b.peer, origin.addr);
        assert!(!b.proxy);
        let hop = 2 - (i / 2) % 3;
        if i % 2 == 0 {
            assert_eq!(b.kind, "request");
            assert_eq!(b.first_line(), format!("GET /chain/{hop} HTTP/1.1"));
            assert!(
                b.head.contains(&format!("\r\nHost: {}\r\n", origin.addr)),
                "{}",
                b.head
            );
        } else {
            assert_eq!(b.kind, "response");
            let status = if hop == 0 {
                "HTTP/1.1 200"
            } else {
                "HTTP/1.1 302"
            };
            assert!(b.first_line().starts_with(status), "{}", b.head);
        }
    }
    assert!(
        log.windows(2).all(|w| w[0].ts <= w[1].ts),
        "timestamps in order"
    );
    let age = jiff::Timestamp::now().duration_since(log[0].ts);
    assert!(
        age.as_secs() < 120 && age.as_secs() >= 0,
        "timestamps are now, in UTC: {:?}",
        log[0].ts
    );
    // `-` is stderr; -q silences progress and summary, not the log.
    let out = get(
        dir.path(),
        &[
            &origin.url("/chain/1"),
            "-O",
            "-",
            "-q",
            "--header-log",
            "-",
        ],
    );
    exits(&out, 0);
    assert_eq!(out.stdout, b"end of chain\n");
    let err = err_text(&out);
    assert_eq!(err.matches("--- ").count(), 4, "{err}");
    assert_eq!(
        err.matches(&format!(" request to {}", origin.addr)).count(),
        2,
        "{err}"
    );
    assert!(err.contains("GET /chain/1 HTTP/1.1\r\n"), "{err}");
    assert!(err.contains("GET /chain/0 HTTP/1.1\r\n"), "{err}");
    assert!(!err.contains("saved "), "-q: no summary\n{err}");
}

/// Downloads nginx's big.bin into a fresh directory with `http get ... EXTRA`, run under a
/// pseudo-terminal (`script`) so the progress bar is drawn. Returns the directory and what
/// the terminal showed, after checking the run succeeded and the file is intact.
fn get_big_under_a_terminal(nginx: &Nginx, extra: &str) -> (tempfile::TempDir, String) {
    require("script");
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.url("/big.bin");
    let cmdline = format!(
        "'{}' http get '{url}' -O big.bin {extra} --limit-rate 1M",
        bin().display()
    );
    let mut cmd = Command::new("script");
    cmd.current_dir(dir.path())
        .args(["-qfec", &cmdline, "/dev/null"]);
    without_proxies(&mut cmd);
    cmd.env("TERM", "xterm");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{screen}", out.status);
    same(
        &read(&dir.path().join("big.bin")),
        &nginx.file("big.bin"),
        "under a pty",
    );
    (dir, screen)
}

#[test]
fn header_log_and_progress_bar_under_a_terminal() {
    let nginx = Nginx::start();
    let (dir, screen) = get_big_under_a_terminal(&nginx, "--header-log h.log");
    assert!(
        screen.contains('\r') || screen.contains('\x1b'),
        "a progress bar is redrawn on a terminal: {screen:?}"
    );
    let log = header_log(&dir.path().join("h.log"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].first_line(), "GET /big.bin HTTP/1.1");
    assert!(log[1].first_line().starts_with("HTTP/1.1 200"));
    assert_eq!(names(dir.path()), ["big.bin", "h.log"]);
}

/// `--header-log -` on the same terminal as the bar: each head block reaches the screen whole,
/// on lines of its own, between redraws of the bar (the clash wget2 users report).
#[test]
fn header_log_to_stderr_shares_the_terminal_with_the_bar() {
    let nginx = Nginx::start();
    let (_dir, screen) = get_big_under_a_terminal(&nginx, "--header-log -");
    assert!(screen.contains('\x1b'), "a bar was drawn: {screen:?}");
    // Every line of both heads arrives intact, starting a line of its own.
    for line in [
        "GET /big.bin HTTP/1.1\r",
        "HTTP/1.1 200 OK\r",
        "Content-Length: ",
    ] {
        assert!(
            screen.split('\n').any(|l| l.starts_with(line)),
            "{line:?} not on a line of its own: {screen:?}"
        );
    }
    assert_eq!(screen.matches("--- ").count(), 2, "{screen:?}");
}

// --- TLS ---------------------------------------------------------------------------------------

#[test]
fn tls_trust_rules_against_nginx() {
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nginx.tls_url("/big.bin");
    let big = nginx.file("big.bin");
    let ca = nginx.pki.ca.to_str().unwrap();
    // Not signed by a system root, nor by an unrelated CA.
    let out = get(dir.path(), &[&url, "--retries", "0", "-O", "x"]);
    exits(&out, 8);
    let out = get(
        dir.path(),
        &[
            &url,
            "--cacert",
            nginx.pki.other_ca.to_str().unwrap(),
            "--retries",
            "0",
            "-O",
            "x",
        ],
    );
    exits(&out, 8);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    // Trusted: by IP and by name, same bytes as curl.
    let out = get(dir.path(), &[&url, "--cacert", ca, "-O", "a"]);
    exits(&out, 0);
    same(
        &read(&dir.path().join("a")),
        &curl_saves(&url, &["--cacert", ca]),
        "vs curl",
    );
    same(&read(&dir.path().join("a")), &big, "https");
    let by_name = format!("https://localhost:{}/big.bin", nginx.tls_port);
    let out = get(dir.path(), &[&by_name, "--cacert", ca, "-O", "b"]);
    exits(&out, 0);
    same(&read(&dir.path().join("b")), &big, "https by name");
    // -k: no verification at all.
    let out = get(dir.path(), &[&url, "-k", "-O", "c"]);
    exits(&out, 0);
    same(&read(&dir.path().join("c")), &big, "-k");
}
