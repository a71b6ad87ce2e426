use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// A served directory with known content, and the server on it.
struct Site {
    dir: tempfile::TempDir,
    server: Server,
    /// Kept so the symlink test has somewhere outside the root to point at.
    _outside: tempfile::TempDir,
}

fn site(extra: &[&str]) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
    std::fs::write(root.join("big.bin"), noise(1_000_003, 7)).unwrap();
    std::fs::write(root.join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join(".secret"), "dotfile").unwrap();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::create_dir(root.join("files")).unwrap();
    std::fs::write(root.join("files/a b&<c>.txt"), "odd name").unwrap();
    std::fs::write(root.join("files/.hidden"), "x").unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), root.join("escape")).unwrap();
    let root_s = root.to_str().unwrap().to_string();
    let mut args = vec!["http", "serve", root_s.as_str(), "-p", "0"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    Site {
        dir,
        server,
        _outside: outside,
    }
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }
}

/// One response read from raw bytes.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a byte stream into responses, framed by Content-Length (HEAD and 304 have no body
/// when `bodiless` says so).
fn responses(mut wire: &[u8], bodiless: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(wire).expect("a response head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response: {wire:?}"),
        };
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let status = r.code.unwrap();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let len = if bodiless.get(out.len()).copied().unwrap_or(false) || status == 304 {
            0
        } else {
            len
        };
        let body = wire[n..n + len].to_vec();
        wire = &wire[n + len..];
        out.push(Response {
            status,
            headers,
            body,
        });
    }
    out
}

/// Sends `request` bytes in one write, half-closes, and reads until the server closes (a reset
/// after the answer ends the reading, without error).
fn raw(addr: &str, request: &[u8]) -> Vec<u8> {
    send_and_read(addr, request).0
}

fn raw_one(addr: &str, request: &[u8]) -> Response {
    let mut all = responses(&raw(addr, request), &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn get(addr: &str, target: &str) -> Response {
    raw_one(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_gets_a_file_with_its_headers() {
    let s = site(&[]);
    let out = curl(&["-i", &s.url("/hello.txt")]);
    let t = String::from_utf8_lossy(&ok(&out)).into_owned();
    assert!(t.starts_with("HTTP/1.1 200 OK\r\n"), "{t}");
    for want in [
        "Server: socklab\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "Content-Length: 13\r\n",
        "Accept-Ranges: bytes\r\n",
        "Last-Modified: ",
        "ETag: W/\"d-",
        "Date: ",
    ] {
        assert!(t.contains(want), "missing {want:?} in {t}");
    }
    assert!(t.ends_with("\r\n\r\nhello, world\n"));
    let json = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{content_type}",
        &s.url("/data.json"),
    ]);
    assert_eq!(text(&json), "application/json; charset=utf-8");
}

#[test]
fn curl_large_file_arrives_intact() {
    let s = site(&[]);
    let out = curl(&[&s.url("/big.bin")]);
    assert_eq!(ok(&out), noise(1_000_003, 7));
}

/// Large bodies normally go out with sendfile(2); with --trace they pass through our memory so
/// every byte is dumped. Both ways give the same bytes, and a range from the middle too.
#[test]
fn large_files_are_the_same_with_and_without_trace() {
    let want = noise(1_000_003, 7);
    for extra in [&[][..], &["--trace"][..]] {
        let s = site(extra);
        assert_eq!(ok(&curl(&[&s.url("/big.bin")])), want, "{extra:?}");
        let part = curl(&["-r", "100000-899999", &s.url("/big.bin")]);
        assert_eq!(ok(&part), &want[100_000..900_000], "{extra:?}");
        if !extra.is_empty() {
            // Every body byte went through the dump: once both connections are closed, the
            // traced sends add up to both bodies plus the two heads.
            let deadline = Instant::now() + Duration::from_secs(5);
            while s.server.stderr().matches("closed ").count() < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = s.server.stderr();
            let sent: usize = log
                .lines()
                .filter_map(|l| l.split("] send ").nth(1))
                .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
                .sum();
            let bodies = want.len() + 800_000;
            assert!(
                (bodies..bodies + 2_000).contains(&sent),
                "traced {sent} bytes for {bodies} bytes of bodies"
            );
        }
    }
}

#[test]
fn curl_ranges_give_206_and_416() {
    let s = site(&[]);
    let big = noise(1_000_003, 7);
    let out = curl(&["-r", "10-19", "-D", "-", &s.url("/big.bin")]);
    let t = ok(&out);
    let head = String::from_utf8_lossy(&t[..t.len() - 10]).into_owned();
    assert!(head.starts_with("HTTP/1.1 206 Partial Content"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 10-19/1000003\r\n"),
        "{head}"
    );
    assert_eq!(&t[t.len() - 10..], &big[10..20]);
    // Suffix range: the last 5 bytes.
    let out = curl(&["-r", "-5", &s.url("/big.bin")]);
    assert_eq!(ok(&out), &big[big.len() - 5..]);
    // Past the end: 416 with the length.
    let r = raw_one(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=100-\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */13"));
    // Several ranges: the whole file, 200.
    let out = curl(&["-r", "0-1,4-5", "-w", "%{http_code}", &s.url("/hello.txt")]);
    assert_eq!(text(&out), "hello, world\n200");
}

#[test]
fn curl_if_none_match_gives_304() {
    let s = site(&[]);
    let first = get(&s.server.addr, "/hello.txt");
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let out = curl(&[
        "-i",
        "-H",
        &format!("If-None-Match: {etag}"),
        &s.url("/hello.txt"),
    ]);
    let t = String::from_utf8_lossy(&ok(&out)).into_owned();
    assert!(t.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{t}");
    assert!(t.ends_with("\r\n\r\n"), "a 304 has no body: {t}");
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("If-Modified-Since: {lm}"),
        &s.url("/hello.txt"),
    ]);
    assert_eq!(text(&out), "304");
    // If-None-Match wins: a different tag means 200 even with a matching date.
    let r = raw_one(
        &s.server.addr,
        format!(
            "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\n\
             If-Modified-Since: {lm}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn curl_reuses_the_connection() {
    let s = site(&[]);
    let out = curl(&["-v", &s.url("/hello.txt"), &s.url("/data.json")]);
    let err = err_text(&out);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );
    assert_eq!(text(&out), "hello, world\n{\"a\":1}");
}

#[test]
fn curl_head_has_the_get_headers_and_no_body() {
    let s = site(&[]);
    let out = curl(&["-I", &s.url("/big.bin")]);
    let t = String::from_utf8_lossy(&ok(&out)).into_owned();
    assert!(t.starts_with("HTTP/1.1 200 OK"), "{t}");
    assert!(t.contains("Content-Length: 1000003\r\n"), "{t}");
    // An error page for HEAD: its status, its length, no body.
    let r = responses(
        &raw(
            &s.server.addr,
            b"HEAD /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ),
        &[true],
    );
    assert_eq!(r[0].status, 404);
    let get = get(&s.server.addr, "/missing");
    assert_eq!(
        r[0].header("content-length").unwrap(),
        get.body.len().to_string()
    );
}

#[test]
fn wget_downloads_and_fails_on_404() {
    require("wget");
    let s = site(&[]);
    let mut cmd = Command::new("wget");
    cmd.args(["-q", "-O", "-", &s.url("/hello.txt")]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    assert_eq!(ok(&out), b"hello, world\n");

    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("wget");
    cmd.current_dir(work.path())
        .args(["--server-response", &s.url("/nothing.html")]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    exits(&out, 8);
    stderr_has(&out, "HTTP/1.1 404 Not Found");
    assert!(!work.path().join("nothing.html").exists());
}

const PY_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
c.request('GET', '/hello.txt')
r = c.getresponse(); body = r.read()
print(r.status, body.decode().strip())
sock = c.sock
c.request('HEAD', '/data.json')
r = c.getresponse(); body = r.read()
print(r.status, r.getheader('Content-Length'), len(body), c.sock is sock)
c.request('GET', '/no/such/page')
r = c.getresponse(); body = r.read().decode()
print(r.status, '<title>404 Not Found</title>' in body, '/no/such/page' in body, c.sock is sock)
"#;

#[test]
fn python_http_client_keeps_the_connection() {
    let s = site(&[]);
    let port = s.server.port().to_string();
    let out = python(PY_CLIENT, &["127.0.0.1", &port], b"");
    assert_eq!(
        String::from_utf8(ok(&out)).unwrap(),
        "200 hello, world\n200 7 0 True\n404 True True True\n"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = site(&[]);
    let wire = raw(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /data.json HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /data.json HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = responses(&wire, &[false, true, false]);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].body, b"hello, world\n");
    assert_eq!((r[1].status, r[1].body.len()), (200, 0));
    assert_eq!(r[2].body, b"{\"a\":1}");
}

#[test]
fn a_get_body_is_skipped_and_a_huge_one_refused() {
    let s = site(&[]);
    let wire = raw(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nxxxxx\
          GET /data.json HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = responses(&wire, &[]);
    let got: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(got, [200, 200, 200]);
    assert_eq!(r[1].body, b"{\"a\":1}");
    let r = raw_one(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn bad_requests_get_their_status_codes() {
    let s = site(&[]);
    let a = &s.server.addr;
    let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    assert_eq!(raw_one(a, long.as_bytes()).status, 414);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw_one(a, many.as_bytes()).status, 431);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "v".repeat(20_000)
    );
    assert_eq!(raw_one(a, huge.as_bytes()).status, 431);
    assert_eq!(raw_one(a, b"NONSENSE\r\n\r\n").status, 400);
    assert_eq!(raw_one(a, b"GET / HTTP/1.1\r\n\r\n").status, 400, "no Host");
    let smuggle =
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    let r = raw_one(a, smuggle);
    assert_eq!((r.status, r.header("connection")), (400, Some("close")));
    let r = raw_one(
        a,
        b"DELETE /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert!(String::from_utf8_lossy(&r.body).contains("405"));
}

#[test]
fn paths_cannot_leave_the_directory() {
    let s = site(&[]);
    let a = &s.server.addr;
    for (target, want) in [
        ("/../hello.txt", 403),
        ("/%2e%2e/etc/passwd", 403),
        ("/docs/..%2f..%2fetc%2fpasswd", 403),
        ("/..\\hello.txt", 403),
        ("/docs%5c..%5chello.txt", 403),
        ("/hello.txt%00.html", 400),
        ("/escape", 403),
        ("/.secret", 404),
        ("/files/.hidden", 404),
        ("*", 400),
        ("//etc/passwd", 404),
        ("http://t/hello.txt", 200),
    ] {
        assert_eq!(get(a, target).status, want, "{target}");
    }
    // The absolute path names a file inside the root, never /etc/passwd.
    std::fs::create_dir(s.dir.path().join("etc")).unwrap();
    std::fs::write(s.dir.path().join("etc/passwd"), "ours").unwrap();
    assert_eq!(get(a, "//etc/passwd").body, b"ours");
}

#[test]
fn hidden_flag_serves_dotfiles() {
    let s = site(&["--hidden"]);
    assert_eq!(get(&s.server.addr, "/.secret").body, b"dotfile");
    let listing = String::from_utf8(get(&s.server.addr, "/files/").body).unwrap();
    assert!(listing.contains(".hidden"));
}

#[test]
fn directories_redirect_index_and_list() {
    let s = site(&[]);
    let a = &s.server.addr;
    let r = get(a, "/docs?x=1");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/?x=1")));
    assert_eq!(get(a, "/docs/").body, b"<h1>docs</h1>");
    let r = get(a, "/files/");
    let html = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        html.contains("<a href=\"a%20b%26%3Cc%3E.txt\">a b&amp;&lt;c&gt;.txt</a>"),
        "{html}"
    );
    assert!(!html.contains(".hidden"));
    // The link works.
    assert_eq!(get(a, "/files/a%20b%26%3Cc%3E.txt").body, b"odd name");
}

#[test]
fn no_listing_gives_403_and_custom_404_page() {
    let page = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(page.path(), "<h1>lost?</h1>").unwrap();
    let s = site(&["--no-listing", "--not-found", page.path().to_str().unwrap()]);
    let a = &s.server.addr;
    assert_eq!(get(a, "/files/").status, 403);
    assert_eq!(get(a, "/docs/").status, 200, "index.html is still served");
    let r = get(a, "/nope");
    assert_eq!((r.status, r.body.as_slice()), (404, &b"<h1>lost?</h1>"[..]));
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let s = site(&[]);
    let mut c = TcpStream::connect(&s.server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    // No half-close from us: the server must close by itself.
    c.read_to_end(&mut out).unwrap();
    let r = responses(&out, &[]);
    assert_eq!(
        (r[0].status, r[0].header("connection")),
        (200, Some("close"))
    );

    let wire = raw(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /data.json HTTP/1.0\r\n\r\n",
    );
    let r = responses(&wire, &[]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].header("connection"), Some("keep-alive"));
    assert_eq!(r[1].header("connection"), Some("close"));
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = site(&["--keepalive-timeout", "300ms", "--max-requests", "2"]);
    let mut c = TcpStream::connect(&s.server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(responses(&out, &[]).len(), 1);
    // --max-requests 2: the second response says close.
    let wire = raw(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = responses(&wire, &[]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].header("connection"), Some("close"));
}

#[test]
fn access_log_goes_to_stdout_a_file_or_json() {
    let s = site(&[]);
    get(&s.server.addr, "/hello.txt");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.server.stdout_rest().contains("hello.txt") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = s.server.stdout_rest();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /hello.txt HTTP/1.1\" 200 13 \"-\" \"-\" "),
        "{line}"
    );

    let log = tempfile::NamedTempFile::new().unwrap();
    let s = site(&["--json-log", "--access-log", log.path().to_str().unwrap()]);
    get(&s.server.addr, "/nope");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while !text.contains('\n') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        text = std::fs::read_to_string(log.path()).unwrap();
    }
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["status"], 404);
    assert_eq!(v["request"], "GET /nope HTTP/1.1");
    assert_eq!(s.server.stdout_rest(), "");
}

#[test]
fn bad_usage_is_refused() {
    let out = socklab(&["http", "serve", "/no/such/dir", "-p", "0"], b"");
    exits(&out, 2);
    stderr_has(&out, "/no/such/dir");
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = socklab(
        &["http", "serve", file.path().to_str().unwrap(), "-p", "0"],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "not a directory");
    let out = socklab(&["http", "serve", ".", "--unix", "/tmp/x.sock"], b"");
    exits(&out, 2);
    assert!(Path::new(".").exists());
}

#[test]
fn a_slow_request_head_gets_408() {
    let s = site(&["--header-timeout", "300ms"]);
    let mut c = TcpStream::connect(&s.server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let r = responses(&out, &[]);
    assert_eq!(
        (r[0].status, r[0].header("connection")),
        (408, Some("close"))
    );
}

#[test]
fn shutdown_closes_idle_keep_alive_connections_at_once() {
    let mut s = site(&["--keepalive-timeout", "60s", "--grace", "30s"]);
    let mut c = TcpStream::connect(&s.server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.ends_with(b"hello, world\n") {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    let started = Instant::now();
    s.server.signal("TERM");
    let status = s.server.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited out the grace period"
    );
    assert_eq!(
        c.read(&mut chunk).unwrap_or(0),
        0,
        "the idle connection was closed"
    );
}

#[test]
fn an_empty_file_is_served() {
    let s = site(&[]);
    std::fs::write(s.dir.path().join("empty.txt"), "").unwrap();
    let r = get(&s.server.addr, "/empty.txt");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    assert!(r.body.is_empty());
}

/// A client that asks for a large file and then stops reading is dropped after `-t`, so it
/// cannot hold a connection (and its file) open forever.
#[test]
fn client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![7u8; 64 << 20]).unwrap();
    let srv = Server::start(&[
        "http",
        "serve",
        dir.path().to_str().unwrap(),
        "-p",
        "0",
        "-t",
        "1s",
    ]);
    let script = r#"
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b'GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
time.sleep(4)
"#;
    ok(&python(script, &[&srv.port().to_string()], b""));
    srv.expect_log("no progress for 1s");
}

/// Slowloris (Debian's slowhttptest -H): 400 connections that each send a header line every
/// second and never finish their request. Each is cut off when --header-timeout runs out, and
/// all the while a normal client is served at once.
#[test]
fn slowloris_does_not_stop_a_normal_client() {
    require("slowhttptest");
    require("curl");
    let s = site(&["--header-timeout", "3s", "--no-access-log"]);
    let url = s.url("/hello.txt");
    let mut attack = Command::new("slowhttptest");
    attack.args([
        "-H", "-c", "400", "-r", "200", "-i", "1", "-l", "7", "-p", "2", "-u",
    ]);
    attack.arg(s.url("/"));
    let attack = std::thread::spawn(move || run_with(attack, b"", Duration::from_secs(30)));
    // Let it ramp up to its 400 connections, then try as a normal client a few times.
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..4 {
        let started = Instant::now();
        let out = curl(&["-m", "2", "-o", "-", "-w", "%{http_code}", &url]);
        eprintln!("normal client served in {:?}", started.elapsed());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello, world\n200",
            "{}",
            err_text(&out)
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    let report = attack.join().unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("service available:"),
        "slowhttptest ran: {text}"
    );
    // The attack really held connections open, and the server cut them off.
    s.server.expect_log("request head not complete within 3s");
    let cut = s
        .server
        .stderr()
        .matches("request head not complete")
        .count();
    assert!(cut >= 300, "only {cut} slow connections were cut off");
}

/// A 4 GiB file (sparse, with one real byte at the end) goes out whole, with a Content-Length
/// past 32 bits, and the server's peak memory stays where it started.
#[test]
fn a_4_gib_file_is_streamed_with_flat_memory() {
    let s = site(&["--no-access-log"]);
    let size: u64 = (4 << 30) + 1;
    let f = std::fs::File::create(s.dir.path().join("huge.bin")).unwrap();
    f.set_len(size - 1).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"!", size - 1).unwrap();
    drop(f);
    let peak = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.server.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap() // KiB
    };
    // Warm up (a small file) so the baseline includes the runtime's first allocations.
    assert_eq!(text(&curl(&[&s.url("/hello.txt")])), "hello, world\n");
    let before = peak();
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &s.url("/huge.bin"),
    ]);
    assert_eq!(text(&out), format!("200 {size}"), "{}", err_text(&out));
    let tail = curl(&["-r", "-2", &s.url("/huge.bin")]);
    assert_eq!(tail.stdout, b"\0!");
    let after = peak();
    assert!(
        after < before + 8 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB while sending 4 GiB"
    );
    eprintln!("peak RSS {before} KiB before, {after} KiB after 4 GiB");
}

/// Permissions, seen by an unprivileged server (root would bypass them): a directory that may
/// be entered but not listed (0711) still serves its index.html and its files, and its
/// listing is 403; an unreadable file is 403.
#[test]
fn permissions_as_an_unprivileged_server() {
    use std::os::unix::fs::PermissionsExt;
    require("setpriv");
    require("curl");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(root, 0o755).unwrap();
    for d in ["enter", "enter_noindex"] {
        std::fs::create_dir(root.join(d)).unwrap();
        std::fs::write(root.join(d).join("f.txt"), "file\n").unwrap();
    }
    std::fs::write(root.join("enter/index.html"), "<p>index</p>").unwrap();
    std::fs::write(root.join("secret.txt"), "no").unwrap();
    mode(&root.join("enter"), 0o711).unwrap();
    mode(&root.join("enter_noindex"), 0o711).unwrap();
    mode(&root.join("secret.txt"), 0o600).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args([
            "http",
            "serve",
            root.to_str().unwrap(),
            "-p",
            "0",
            "--no-access-log",
        ]);
    let server = Server::start_command(cmd);
    let status = |path: &str| {
        let out = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}{path}", server.addr),
        ]);
        text(&out)
    };
    assert_eq!(
        text(&curl(&[&format!("http://{}/enter/", server.addr)])),
        "<p>index</p>"
    );
    assert_eq!(status("/enter"), "301");
    assert_eq!(status("/enter/f.txt"), "200");
    assert_eq!(status("/enter_noindex/f.txt"), "200");
    assert_eq!(status("/enter_noindex/"), "403");
    assert_eq!(status("/secret.txt"), "403");
}

/// `--workers 3`: three worker threads accept on one socket and serve; `--max-conns` is shared by
/// them (a second client waits in the backlog while one connection is open, whichever worker
/// would take it); SIGTERM closes an idle keep-alive connection and the server exits 0.
#[test]
fn workers_serve_together_and_share_the_connection_limit() {
    let mut s = site(&["--workers", "3", "--max-conns", "1", "--no-access-log"]);
    // `listening on` comes as soon as the socket is bound; the workers start just after.
    let workers = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", s.server.pid()))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("worker-"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(workers().len(), 3, "{:?}", workers());
    for _ in 0..6 {
        assert_eq!(get(&s.server.addr, "/hello.txt").body, b"hello, world\n");
    }
    // One open connection holds the only slot: another client is not served meanwhile.
    let mut held = TcpStream::connect(&s.server.addr).unwrap();
    held.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 15];
    held.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    let waiting = curl(&["-m", "1", "-o", "/dev/null", &s.url("/hello.txt")]);
    assert_eq!(
        waiting.status.code(),
        Some(28),
        "curl should time out: {}",
        err_text(&waiting)
    );
    // SIGTERM: the idle keep-alive connection is closed at once and the server exits 0.
    s.server.signal("TERM");
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).unwrap();
    let st = s
        .server
        .wait_exit(Duration::from_secs(10))
        .expect("server ignored SIGTERM");
    assert!(st.success(), "{st}\n{}", s.server.stderr());
}

#[test]
fn zero_workers_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = socklab(
        &[
            "http",
            "serve",
            dir.path().to_str().unwrap(),
            "--workers",
            "0",
        ],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "--workers must be at least 1");
}
