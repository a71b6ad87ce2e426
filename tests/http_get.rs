//! `socklab http get` against real peers on loopback: `socklab http serve`, a Python
//! `http.server` origin with test-only routes (redirects, chunked, truncated and until-close
//! bodies, gzip, header echo), the same origin wrapped in Python's `ssl` with an rcgen CA, and
//! a small Python proxy (absolute-form and CONNECT). nginx, tinyproxy and curl comparisons live
//! in the interop tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

/// The test origin. argv: [certfile keyfile]. Prints its port first.
const ORIGIN: &str = r#"
import gzip, socket, ssl, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass

    def raw(self, data, tls_close=True):
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True
        # Over TLS a body that runs until close ends with close_notify, as a careful server
        # sends it; without it the client cannot tell the end from a cut (see /cut-tls).
        if tls_close and hasattr(self.connection, "unwrap"):
            try:
                self.connection.unwrap()
            except OSError:
                pass

    def reply(self, code, body, extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def redirect(self, code, where):
        self.reply(code, b"moved\n", [("Location", where)])

    def echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        text = "%s %s\n%s\n" % (self.command, self.path, str(self.headers).strip())
        self.reply(200, text.encode() + b"\nbody=" + data)

    def route(self):
        p, port = self.path, self.server.server_address[1]
        if p == "/r/301":
            self.redirect(301, "/r/302")
        elif p == "/r/302":
            self.redirect(302, "final?x=1")
        elif p == "/r/final?x=1":
            self.reply(200, b"the end of the chain\n")
        elif p == "/loop/a":
            self.redirect(302, "/loop/b")
        elif p == "/loop/b":
            self.redirect(307, "http://127.0.0.1:%d/loop/a" % port)
        elif p == "/cross":
            self.redirect(302, "http://localhost:%d/echo" % port)
        elif p == "/same":
            self.redirect(302, "/echo")
        elif p in ("/p303", "/p307", "/p301"):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.redirect(int(p[2:]), "/echo")
        elif p == "/echo":
            self.echo()
        elif p == "/short":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"s" * 40)
        elif p == "/chunked":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n"
                     b"Connection: close\r\n\r\n"
                     b"5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n\n\r\n0\r\nX-Sum: 42\r\n\r\n")
        elif p == "/close":
            self.raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the server closes\n")
        elif p == "/cut-tls":
            self.raw(b"HTTP/1.0 200 OK\r\n\r\nperhaps the whole body", tls_close=False)
        elif p == "/gzip":
            self.reply(200, gzip.compress(b"squeezed " * 1000), [("Content-Encoding", "gzip")])
        elif p == "/stall":
            time.sleep(10)
        elif p == "/garbage":
            self.raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        else:
            self.reply(404, b"no such thing\n", [("Content-Type", "text/plain")])

    do_GET = do_HEAD = do_POST = do_PUT = route

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// A forwarding proxy: absolute-form requests are forwarded (target rewritten to origin-form),
/// CONNECT opens a tunnel. With argv[1] = "user:pass" it wants those Basic credentials (407
/// otherwise). Prints its port first.
const PROXY: &str = r#"
import base64, socket, sys, threading
from urllib.parse import urlsplit

need = None
if len(sys.argv) > 1:
    need = "Basic " + base64.b64encode(sys.argv[1].encode()).decode()

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(65536)
        if not d:
            return c.close()
        head += d
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    method, target, version = lines[0].split(" ")
    fields = [l for l in lines[1:] if l]
    auth = [l.split(":", 1)[1].strip() for l in fields if l.lower().startswith("proxy-authorization:")]
    if need and auth != [need]:
        c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=t\r\n"
                  b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        return c.close()
    if method == "CONNECT":
        host, port = target.rsplit(":", 1)
        if port == "1":
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return c.close()
        u = socket.create_connection((host.strip("[]"), int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        t = urlsplit(target)
        u = socket.create_connection((t.hostname, t.port or 80))
        path = t.path + ("?" + t.query if t.query else "")
        kept = [l for l in fields if not l.lower().startswith("proxy-authorization:")]
        kept.append("Via: 1.1 testproxy")
        u.sendall(("%s %s %s\r\n" % (method, path, version)).encode()
                  + "\r\n".join(kept).encode() + b"\r\n\r\n" + rest)
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    pipe(u, c)

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

fn origin() -> (Peer, String) {
    let (peer, port) = python_server(ORIGIN, &[]);
    (peer, format!("http://127.0.0.1:{port}"))
}

/// `socklab http get ARGS` run in `dir`, with no proxy variables from the environment.
fn get_in(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(["http", "get"]).args(args).current_dir(dir);
    without_proxies(&mut cmd);
    run_with(cmd, b"", Duration::from_secs(30))
}

/// `socklab http serve` on a temporary directory with known files.
fn site() -> (tempfile::TempDir, Server, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(1_000_003, 11);
    std::fs::write(dir.path().join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(dir.path().join("a b.txt"), "spaced\n").unwrap();
    let root = dir.path().to_str().unwrap().to_string();
    let server = Server::start(&["http", "serve", &root, "-p", "0", "--no-access-log"]);
    (dir, server, big)
}

#[test]
fn downloads_from_socklab_serve_byte_for_byte() {
    let (_root, srv, big) = site();
    let out_dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}", srv.addr);

    let out = get_in(out_dir.path(), &[&format!("{base}/big.bin")]);
    ok(&out);
    assert_eq!(std::fs::read(out_dir.path().join("big.bin")).unwrap(), big);
    stderr_has(&out, "saved 'big.bin': 1000003 bytes in ");

    // `/` is index.html; a percent-encoded name is decoded.
    ok(&get_in(out_dir.path(), &[&format!("{base}/")]));
    ok(&get_in(out_dir.path(), &[&format!("{base}/a%20b.txt")]));
    assert_eq!(names(out_dir.path()), ["a b.txt", "big.bin", "index.html"]);
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("index.html")).unwrap(),
        "<h1>home</h1>\n"
    );

    // -O - writes the body to stdout and nothing to disk.
    let empty = tempfile::tempdir().unwrap();
    let out = get_in(empty.path(), &["-O", "-", "-q", &format!("{base}/big.bin")]);
    assert_eq!(ok(&out), big);
    assert!(err_text(&out).is_empty(), "{}", err_text(&out));
    assert!(names(empty.path()).is_empty());

    // --output-dir, created if missing.
    let out = get_in(
        empty.path(),
        &["--output-dir", "sub/dir", &format!("{base}/index.html")],
    );
    ok(&out);
    assert!(empty.path().join("sub/dir/index.html").is_file());
    stderr_has(&out, "saved 'sub/dir/index.html'");
}

#[test]
fn no_clobber_keeps_the_file_and_a_new_download_replaces_it() {
    let (_root, srv, _) = site();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/index.html", srv.addr);
    std::fs::write(dir.path().join("index.html"), "old").unwrap();
    let out = get_in(dir.path(), &["--no-clobber", &url]);
    ok(&out);
    stderr_has(&out, "'index.html' already exists; not retrieving");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("index.html")).unwrap(),
        "old"
    );
    ok(&get_in(dir.path(), &[&url]));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("index.html")).unwrap(),
        "<h1>home</h1>\n"
    );
    assert_eq!(names(dir.path()), ["index.html"]);
}

#[test]
fn continue_resumes_a_part_with_a_range_request() {
    let (_root, srv, big) = site();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/big.bin", srv.addr);
    std::fs::write(dir.path().join("big.bin.part"), &big[..300_000]).unwrap();
    let out = get_in(dir.path(), &["-c", "--header-log", "heads.log", &url]);
    ok(&out);
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), big);
    assert!(!dir.path().join("big.bin.part").exists());
    let log = std::fs::read_to_string(dir.path().join("heads.log")).unwrap();
    assert!(log.contains("Range: bytes=300000-\r\n"), "{log}");
    assert!(log.contains("HTTP/1.1 206 Partial Content\r\n"), "{log}");
    assert!(
        log.contains("Content-Range: bytes 300000-1000002/1000003\r\n"),
        "{log}"
    );
    stderr_has(&out, "saved 'big.bin': 1000003 bytes");

    // A complete .part: the server answers 416 bytes */LEN and the file is renamed.
    std::fs::remove_file(dir.path().join("big.bin")).unwrap();
    std::fs::write(dir.path().join("big.bin.part"), &big).unwrap();
    let out = get_in(dir.path(), &["-c", &url]);
    ok(&out);
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), big);
    assert!(!dir.path().join("big.bin.part").exists());
    stderr_has(&out, "already complete");

    // Without -c an old .part is ignored and replaced.
    std::fs::write(dir.path().join("index.html.part"), "garbage").unwrap();
    ok(&get_in(
        dir.path(),
        &[&format!("http://{}/index.html", srv.addr)],
    ));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("index.html")).unwrap(),
        "<h1>home</h1>\n"
    );
}

#[test]
fn a_server_that_ignores_the_range_means_starting_over() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("close.part"), "stale bytes").unwrap();
    let out = get_in(dir.path(), &["-c", &format!("{base}/close")]);
    ok(&out);
    stderr_has(&out, "server ignored the range; starting over");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("close")).unwrap(),
        "until the server closes\n"
    );
}

#[test]
fn error_status_is_saved_without_fail_and_exit_7_with_it() {
    let (_root, srv, _) = site();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/missing.txt", srv.addr);
    let out = get_in(dir.path(), &[&url]);
    ok(&out);
    stderr_has(&out, "404 Not Found");
    let page = std::fs::read_to_string(dir.path().join("missing.txt")).unwrap();
    assert!(page.contains("404"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out = get_in(dir.path(), &["--fail", &url]);
    exits(&out, 7);
    stderr_has(&out, "404 Not Found");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn a_short_body_is_an_error_and_keeps_the_part() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(dir.path(), &["--retries", "1", &format!("{base}/short")]);
    exits(&out, 5);
    let err = err_text(&out);
    assert!(err.contains("body ended after 40 of 100 bytes"), "{err}");
    // The retry asked for the rest, was refused the range, and started over.
    assert!(err.contains("retrying in 1s (retry 1 of 1)"), "{err}");
    assert!(err.contains("server ignored the range"), "{err}");
    assert_eq!(names(dir.path()), ["short.part"]);
    assert_eq!(
        std::fs::read(dir.path().join("short.part")).unwrap(),
        [b's'; 40]
    );
}

/// Stdout cannot be rewound: a retry that cannot skip what stdout already holds (here a
/// --compressed download, which never resumes) is refused rather than writing it twice.
#[test]
fn a_retry_never_duplicates_what_went_to_stdout() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(
        dir.path(),
        &[
            "--compressed",
            "--retries",
            "2",
            "-O",
            "-",
            &format!("{base}/short"),
        ],
    );
    exits(&out, 5);
    assert_eq!(out.stdout, [b's'; 40], "the 40 bytes, once");
    let err = err_text(&out);
    assert!(err.contains("40 bytes already went to stdout"), "{err}");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn chunked_with_trailers_and_until_close_bodies() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(dir.path(), &["-O", "-", &format!("{base}/chunked")]);
    assert_eq!(ok(&out), b"hello, world\n");
    let out = get_in(dir.path(), &[&format!("{base}/close")]);
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("close")).unwrap(),
        "until the server closes\n"
    );
    stderr_has(&out, "saved 'close': 24 bytes");
}

#[test]
fn compressed_bodies_are_decoded() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(
        dir.path(),
        &[
            "--compressed",
            "-O",
            "-",
            "--header-log",
            "-",
            &format!("{base}/gzip"),
        ],
    );
    assert_eq!(ok(&out), "squeezed ".repeat(1000).as_bytes());
    stderr_has(&out, "Accept-Encoding: gzip, deflate\r\n");
    // Without --compressed the body is saved as it came.
    let out = get_in(dir.path(), &["-O", "-", &format!("{base}/gzip")]);
    assert_eq!(&ok(&out)[..2], [0x1f, 0x8b]);
}

#[test]
fn network_and_usage_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = get_in(dir.path(), &[&format!("http://127.0.0.1:{port}/x")]);
    exits(&out, 3);
    stderr_has(&out, "connection refused");

    for (url, needle) in [
        ("ftp://127.0.0.1/x", "unsupported scheme"),
        ("http://[::1/x", "bad URL"),
        ("http://", "bad URL"),
    ] {
        let out = get_in(dir.path(), &[url]);
        exits(&out, 2);
        assert!(err_text(&out).contains(needle), "{url}: {}", err_text(&out));
    }
    let out = get_in(dir.path(), &["-H", "no colon", "http://127.0.0.1:1/"]);
    exits(&out, 2);
    let out = get_in(dir.path(), &["-6", "http://127.0.0.1:1/"]);
    exits(&out, 3);
    stderr_has(&out, "no IPv6 address");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn a_garbage_response_is_a_protocol_error() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(dir.path(), &[&format!("{base}/garbage")]);
    exits(&out, 5);
    stderr_has(&out, "malformed response head");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn redirect_chains_loops_and_no_follow() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(
        dir.path(),
        &["--header-log", "log", "-O", "out", &format!("{base}/r/301")],
    );
    ok(&out);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "the end of the chain\n"
    );
    let err = err_text(&out);
    assert!(
        err.contains(&format!("redirect 301 -> {base}/r/302")),
        "{err}"
    );
    assert!(
        err.contains(&format!("redirect 302 -> {base}/r/final?x=1")),
        "{err}"
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log.matches(" request to 127.0.0.1:").count(), 3, "{log}");
    assert_eq!(log.matches(" response from 127.0.0.1:").count(), 3, "{log}");
    assert!(log.contains("GET /r/final?x=1 HTTP/1.1\r\n"), "{log}");

    // The default name comes from the URL asked for, not the last hop.
    ok(&get_in(dir.path(), &[&format!("{base}/r/301")]));
    assert!(dir.path().join("301").is_file());

    let out = get_in(dir.path(), &[&format!("{base}/loop/a")]);
    exits(&out, 5);
    let err = err_text(&out);
    assert!(
        err.contains(&format!(
            "redirect loop: {base}/loop/a -> {base}/loop/b -> {base}/loop/a"
        )),
        "{err}"
    );

    let out = get_in(
        dir.path(),
        &["--max-redirects", "1", &format!("{base}/r/301")],
    );
    exits(&out, 5);
    stderr_has(&out, "more than 1 redirects");

    let nf = tempfile::tempdir().unwrap();
    let out = get_in(nf.path(), &["--no-follow", &format!("{base}/r/301")]);
    ok(&out);
    stderr_has(&out, &format!("redirect 301 -> {base}/r/302"));
    assert!(names(nf.path()).is_empty());
}

#[test]
fn redirects_follow_the_method_rules_and_drop_credentials_across_hosts() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let body = |args: &[&str]| {
        let mut all = vec!["-4", "-O", "-"];
        all.extend_from_slice(args);
        String::from_utf8(ok(&get_in(dir.path(), &all))).unwrap()
    };
    // Basic credentials stay on the same host and are dropped on the way to another.
    let same = body(&["--user", "u:p", &format!("{base}/same")]);
    assert!(same.contains("Authorization: Basic dTpw"), "{same}");
    let cross = body(&["--user", "u:p", &format!("{base}/cross")]);
    assert!(cross.starts_with("GET /echo"), "{cross}");
    assert!(!cross.contains("Authorization"), "{cross}");

    // 303 and 301 turn POST into GET without a body; 307 keeps both.
    let b303 = body(&["--post-data", "a=1", &format!("{base}/p303")]);
    assert!(
        b303.starts_with("GET /echo") && b303.ends_with("body="),
        "{b303}"
    );
    let b301 = body(&["--post-data", "a=1", &format!("{base}/p301")]);
    assert!(
        b301.starts_with("GET /echo") && b301.ends_with("body="),
        "{b301}"
    );
    let b307 = body(&["--post-data", "a=1", &format!("{base}/p307")]);
    assert!(b307.starts_with("POST /echo"), "{b307}");
    assert!(b307.ends_with("body=a=1"), "{b307}");
    assert!(
        b307.contains("Content-Type: application/x-www-form-urlencoded"),
        "{b307}"
    );
}

#[test]
fn head_prints_the_response_head_and_saves_nothing() {
    let (_root, srv, _) = site();
    let dir = tempfile::tempdir().unwrap();
    let out = get_in(
        dir.path(),
        &["--method", "HEAD", &format!("http://{}/big.bin", srv.addr)],
    );
    let head = String::from_utf8(ok(&out)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 1000003\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
    assert!(names(dir.path()).is_empty());
}

#[test]
fn header_log_records_every_head_with_a_timestamp() {
    let (_root, srv, _) = site();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/index.html", srv.addr);
    ok(&get_in(
        dir.path(),
        &["--header-log", "h.log", "-A", "probe/1", &url],
    ));
    ok(&get_in(dir.path(), &["--header-log", "h.log", "-q", &url]));
    let log = std::fs::read_to_string(dir.path().join("h.log")).unwrap();
    let markers: Vec<&str> = log.lines().filter(|l| l.starts_with("--- ")).collect();
    assert_eq!(markers.len(), 4, "appended, two blocks per run: {log}");
    for (i, m) in markers.iter().enumerate() {
        // --- 2026-11-21T10:00:00.123456Z request to 127.0.0.1:8080
        let parts: Vec<&str> = m.split(' ').collect();
        let ts = parts[1];
        assert_eq!(ts.len(), 27, "{m}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{m}");
        let want = if i % 2 == 0 {
            format!("request to {}", srv.addr)
        } else {
            format!("response from {}", srv.addr)
        };
        assert_eq!(parts[2..].join(" "), want);
    }
    assert!(log.contains(&format!(
        "request to {}\nGET /index.html HTTP/1.1\r\nHost: {}\r\nUser-Agent: probe/1\r\n",
        srv.addr, srv.addr
    )));
    // Each response head ends with its blank line and no body follows it in the log.
    assert_eq!(log.matches("\r\n\r\n").count(), 4, "{log}");
    assert!(!log.contains("<h1>home</h1>"));
}

/// A CA and a certificate for 127.0.0.1 signed by it, written as PEM files.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "socklab test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (ca, crt, k) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (ca, crt, k)
}

#[test]
fn https_with_cacert_without_it_and_insecure() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(pki.path());
    let (_peer, port) = python_server(ORIGIN, &[cert.to_str().unwrap(), key.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{port}/r/301");
    let dir = tempfile::tempdir().unwrap();

    let out = get_in(
        dir.path(),
        &["--cacert", ca.to_str().unwrap(), "-O", "-", &url],
    );
    assert_eq!(ok(&out), b"the end of the chain\n");

    let out = get_in(dir.path(), &["-O", "x", &url]);
    exits(&out, 8);
    stderr_has(
        &out,
        "certificate for 127.0.0.1 is not trusted (unknown issuer); pass --cacert FILE or -k",
    );
    assert!(names(dir.path()).is_empty());

    let out = get_in(dir.path(), &["-k", "-O", "-", &url]);
    assert_eq!(ok(&out), b"the end of the chain\n");

    // A self-signed certificate marked CA:TRUE (what `openssl req -x509` makes), used as the
    // server's own and pinned with --cacert, is accepted as curl accepts it.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let self_signed = params.self_signed(&key).unwrap();
    let (ss_cert, ss_key) = (pki.path().join("ss.pem"), pki.path().join("ss.key"));
    std::fs::write(&ss_cert, self_signed.pem()).unwrap();
    std::fs::write(&ss_key, key.serialize_pem()).unwrap();
    let (_ss, ss_port) = python_server(
        ORIGIN,
        &[ss_cert.to_str().unwrap(), ss_key.to_str().unwrap()],
    );
    let ss_url = format!("https://127.0.0.1:{ss_port}/close");
    let out = get_in(
        dir.path(),
        &["--cacert", ss_cert.to_str().unwrap(), "-O", "-", &ss_url],
    );
    assert_eq!(ok(&out), b"until the server closes\n");
    // The same kind of body cut without close_notify may be cut anywhere: not complete.
    let cut = get_in(
        dir.path(),
        &[
            "--cacert",
            ss_cert.to_str().unwrap(),
            "--retries",
            "0",
            &ss_url.replace("/close", "/cut-tls"),
        ],
    );
    exits(&cut, 5);
    stderr_has(&cut, "without close_notify");
    assert!(!dir.path().join("cut-tls").exists());
    assert_eq!(
        std::fs::read(dir.path().join("cut-tls.part")).unwrap(),
        b"perhaps the whole body"
    );
    std::fs::remove_file(dir.path().join("cut-tls.part")).unwrap();
    let out = get_in(
        dir.path(),
        &["--cacert", ca.to_str().unwrap(), "-O", "-", &ss_url],
    );
    exits(&out, 8);
    stderr_has(&out, "self-signed with CA:TRUE");

    // Plain HTTP spoken to the TLS port, and TLS to a plain port, are explained.
    let (_plain, plain_base) = origin();
    let tls_to_plain = plain_base.replace("http://", "https://");
    let out = get_in(dir.path(), &["-k", "-O", "-", &format!("{tls_to_plain}/x")]);
    exits(&out, 8);
    stderr_has(&out, "TLS");
}

#[test]
fn proxies_absolute_form_connect_and_their_errors() {
    let (_origin, base) = origin();
    let (_proxy, pport) = python_server(PROXY, &[]);
    let proxy = format!("127.0.0.1:{pport}");
    let dir = tempfile::tempdir().unwrap();

    // http through the proxy: absolute-form, logged as going to the proxy.
    let out = get_in(
        dir.path(),
        &[
            "-x",
            &proxy,
            "--header-log",
            "-",
            "-O",
            "-",
            &format!("{base}/echo"),
        ],
    );
    let body = String::from_utf8(ok(&out)).unwrap();
    assert!(body.contains("Via: 1.1 testproxy"), "{body}");
    let err = err_text(&out);
    assert!(
        err.contains(&format!(
            "request to proxy {proxy}\nGET {base}/echo HTTP/1.1\r\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("response from proxy {proxy}\nHTTP/1.1 200 OK\r\n")),
        "{err}"
    );

    // The environment's http_proxy works too, and --no-proxy ignores it.
    let mut cmd = Command::new(bin());
    cmd.args(["http", "get", "-O", "-", &format!("{base}/echo")])
        .env("http_proxy", format!("http://{proxy}"))
        .env_remove("no_proxy")
        .env_remove("NO_PROXY");
    let body = String::from_utf8(ok(&run_with(cmd, b"", Duration::from_secs(30)))).unwrap();
    assert!(body.contains("Via: 1.1 testproxy"), "{body}");
    let mut cmd = Command::new(bin());
    cmd.args([
        "http",
        "get",
        "--no-proxy",
        "-O",
        "-",
        &format!("{base}/echo"),
    ])
    .env("http_proxy", format!("http://{proxy}"));
    let body = String::from_utf8(ok(&run_with(cmd, b"", Duration::from_secs(30)))).unwrap();
    assert!(!body.contains("Via:"), "{body}");

    // https through a CONNECT tunnel, TLS inside.
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(pki.path());
    let (_tls, tport) = python_server(ORIGIN, &[cert.to_str().unwrap(), key.to_str().unwrap()]);
    let out = get_in(
        dir.path(),
        &[
            "-x",
            &proxy,
            "--cacert",
            ca.to_str().unwrap(),
            "--header-log",
            "-",
            "-O",
            "-",
            &format!("https://127.0.0.1:{tport}/chunked"),
        ],
    );
    assert_eq!(ok(&out), b"hello, world\n");
    let err = err_text(&out);
    assert!(
        err.contains(&format!(
            "request to proxy {proxy}\nCONNECT 127.0.0.1:{tport} HTTP/1.1\r\nHost: 127.0.0.1:{tport}\r\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("HTTP/1.1 200 Connection established\r\n\r\n"),
        "{err}"
    );
    assert!(err.contains("GET /chunked HTTP/1.1\r\n"), "{err}");

    // A CONNECT refused with 502, a refused proxy port: exit 9.
    let out = get_in(
        dir.path(),
        &["-x", &proxy, "-O", "-", "https://127.0.0.1:1/"],
    );
    exits(&out, 9);
    stderr_has(&out, "502 Bad Gateway");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = get_in(
        dir.path(),
        &[
            "-x",
            &format!("127.0.0.1:{dead}"),
            "-O",
            "-",
            &format!("{base}/echo"),
        ],
    );
    exits(&out, 9);
    stderr_has(&out, "cannot reach proxy");
}

#[test]
fn proxy_authentication() {
    let (_origin, base) = origin();
    let (_proxy, pport) = python_server(PROXY, &["pu:pp"]);
    let proxy = format!("127.0.0.1:{pport}");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/echo");

    let out = get_in(dir.path(), &["-x", &proxy, "-O", "-", &url]);
    exits(&out, 9);
    stderr_has(&out, "--proxy-user");

    let out = get_in(
        dir.path(),
        &["-x", &proxy, "--proxy-user", "pu:pp", "-O", "-", &url],
    );
    let body = String::from_utf8(ok(&out)).unwrap();
    // The proxy took its credentials off; the origin never sees them.
    assert!(!body.contains("Proxy-Authorization"), "{body}");

    let out = get_in(
        dir.path(),
        &[
            "-x",
            &proxy,
            "--proxy-user",
            "pu:wrong",
            "-O",
            "-",
            &url.replace("http:", "https:"),
        ],
    );
    exits(&out, 9);
    stderr_has(&out, "407");
}

#[test]
fn a_silent_server_times_out_with_exit_4() {
    let (_peer, base) = origin();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = get_in(
        dir.path(),
        &["-t", "300ms", "--retries", "0", &format!("{base}/stall")],
    );
    exits(&out, 4);
    stderr_has(&out, "timed out after 300ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(names(dir.path()).is_empty());
}

#[test]
fn limit_rate_paces_and_plain_progress_lines_show_it() {
    let (_root, srv, big) = site();
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = get_in(
        dir.path(),
        &[
            "--limit-rate",
            "400k",
            &format!("http://{}/big.bin", srv.addr),
        ],
    );
    ok(&out);
    let took = started.elapsed();
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), big);
    // 1,000,003 bytes at 409,600 bytes/s, less the 100 KiB burst: at least 2.1 s.
    assert!(took >= Duration::from_millis(2000), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // stderr is not a terminal: plain lines, at most one a second.
    let err = err_text(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("big.bin: ")).collect();
    assert!(!lines.is_empty(), "{err}");
    assert!(lines.len() <= took.as_secs() as usize + 1, "{err}");
    assert!(lines[0].contains(" of 976.6 KiB ("), "{err}");
    assert!(lines[0].ends_with("KiB/s"), "{err}");
}
