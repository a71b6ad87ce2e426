//! HTTPS (issue 15): `http serve --tls-self-signed` and `--tls-cert/--tls-key` against curl,
//! wget (GnuTLS), Python's `ssl` + `http.client`, openssl s_client (TLS 1.2 and 1.3, ALPN),
//! headless Chromium and `socklab http get`; 64 MiB with bounded memory; plain HTTP on the
//! HTTPS port; bad certificates and keys.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// A served directory over HTTPS with a self-signed certificate.
struct TlsSite {
    dir: tempfile::TempDir,
    server: Server,
    /// The certificate's PEM, as the server said on stderr.
    pem: PathBuf,
    /// The public-key hash the server printed for Chromium.
    spki: String,
}

fn docroot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
    std::fs::write(root.join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.join("big.bin"), noise(1_000_003, 15)).unwrap();
    dir
}

fn tls_site(extra: &[&str]) -> TlsSite {
    let dir = docroot();
    let root = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["http", "serve", &root, "-p", "0", "--tls-self-signed"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    server.expect_log("(chromium --ignore-certificate-errors-spki-list=");
    let log = server.stderr();
    let pem = after(&log, " written to ");
    let spki = after(&log, "--ignore-certificate-errors-spki-list=")
        .trim_end_matches(')')
        .to_string();
    TlsSite {
        dir,
        server,
        pem: PathBuf::from(pem),
        spki,
    }
}

/// The rest of the first line of `log` after `marker`.
fn after(log: &str, marker: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{log}"));
    line.split(marker).nth(1).unwrap().trim().to_string()
}

impl TlsSite {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.server.port())
    }

    fn pem(&self) -> &str {
        self.pem.to_str().unwrap()
    }
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&ok(out)).into_owned()
}

fn openssl(args: &[&str], stdin: &[u8]) -> std::process::Output {
    require("openssl");
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    run_with(cmd, stdin, Duration::from_secs(30))
}

/// The base64 SHA-256 of a certificate's SubjectPublicKeyInfo, computed by openssl.
fn openssl_spki_hash(pem: &Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
         | openssl dgst -sha256 -binary | base64",
        pem.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    text(&run_with(cmd, b"", Duration::from_secs(30)))
        .trim()
        .to_string()
}

/// The self-signed PEM and what the server printed agree with openssl; curl trusts it by
/// name and by address; one curl reuses one connection for two URLs; ranges, HEAD, 304 and
/// error pages work as over plain HTTP; the access log and `listening on` are unchanged.
#[test]
fn curl_trusts_the_self_signed_pem_and_keeps_the_connection() {
    let s = tls_site(&[]);
    assert!(s.server.addr.starts_with("127.0.0.1:"), "{}", s.server.addr);
    let log = s.server.stderr();
    assert!(
        log.contains(&format!("https://127.0.0.1:{}/", s.server.port())),
        "{log}"
    );
    assert!(
        log.contains("for localhost, 127.0.0.1, ::1 written to"),
        "{log}"
    );

    // The fingerprints the server printed are the certificate's, as openssl sees them.
    let fp = text(&openssl(
        &["x509", "-in", s.pem(), "-noout", "-fingerprint", "-sha256"],
        b"",
    ));
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    assert_eq!(after(&log, "certificate SHA-256 fingerprint "), fp);
    assert_eq!(s.spki, openssl_spki_hash(&s.pem));
    let subject = text(&openssl(
        &["x509", "-in", s.pem(), "-noout", "-ext", "subjectAltName"],
        b"",
    ));
    assert!(
        subject.contains("DNS:localhost")
            && subject.contains("IP Address:127.0.0.1")
            && subject.contains("IP Address:0:0:0:0:0:0:0:1"),
        "{subject}"
    );

    // Two URLs, one connection: 1 new connection, then 0.
    let out = curl(&[
        "--cacert",
        s.pem(),
        "-w",
        " %{http_code} %{num_connects} %{http_version}\n",
        &s.url("/hello.txt"),
        &s.url("/data.json"),
    ]);
    assert_eq!(
        text(&out),
        "hello, world\n 200 1 1.1\n{\"a\":1} 200 0 1.1\n",
        "{}",
        err_text(&out)
    );
    // By name (the certificate covers localhost too).
    let by_name = format!("https://localhost:{}/hello.txt", s.server.port());
    assert_eq!(
        text(&curl(&["--cacert", s.pem(), "-4", &by_name])),
        "hello, world\n"
    );
    // Without the PEM, curl refuses the certificate (exit 60): the trust is real.
    let out = curl(&[&s.url("/hello.txt")]);
    exits(&out, 60);

    // A range.
    let big = std::fs::read(s.dir.path().join("big.bin")).unwrap();
    let out = curl(&[
        "--cacert",
        s.pem(),
        "-r",
        "1000-1099",
        "-D",
        "-",
        &s.url("/big.bin"),
    ]);
    let got = ok(&out);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.1 206 Partial Content"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 1000-1099/1000003"),
        "{head}"
    );
    assert_eq!(&got[head_end..], &big[1000..1100]);

    // HEAD, then a conditional request with the ETag it gave: 304.
    let head = text(&curl(&["--cacert", s.pem(), "-I", &s.url("/big.bin")]));
    assert!(head.contains("Content-Length: 1000003\r\n"), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("ETag: "))
        .unwrap()
        .trim()
        .to_string();
    let out = curl(&[
        "--cacert",
        s.pem(),
        "-H",
        &format!("If-None-Match: {etag}"),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &s.url("/big.bin"),
    ]);
    assert_eq!(text(&out), "304");
    // The error page.
    let out = curl(&["--cacert", s.pem(), "-w", "\n%{http_code}", &s.url("/nope")]);
    let page = text(&out);
    assert!(
        page.contains("<title>404 Not Found</title>") && page.ends_with("\n404"),
        "{page}"
    );

    // The access log is the same as over plain HTTP.
    let want = [
        "\"GET /hello.txt HTTP/1.1\" 200 13",
        "\"GET /big.bin HTTP/1.1\" 206 100",
        "\"HEAD /big.bin HTTP/1.1\" 200 -",
        "\"GET /big.bin HTTP/1.1\" 304 -",
        "\"GET /nope HTTP/1.1\" 404",
    ];
    let log = s.server.stdout_with(&want);
    for line in want {
        assert!(log.contains(line), "{line} not in:\n{log}");
    }
}

/// A CA and a leaf signed by it, made with rcgen, as an operator would get them: the chain
/// file holds the leaf then the CA; the client trusts only the CA.
struct CaPair {
    dir: tempfile::TempDir,
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

fn ca_signed_pair() -> CaPair {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "socklab test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let ca = dir.path().join("ca.pem");
    let chain = dir.path().join("chain.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&chain, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    CaPair {
        dir,
        ca,
        chain,
        key,
    }
}

/// An RSA pair made by `openssl req`, self-signed for localhost and 127.0.0.1.
fn openssl_rsa_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("rsa-cert.pem");
    let key = dir.join("rsa-key.pem");
    ok(&openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        b"",
    ));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

fn serve_with(root: &Path, cert: &Path, key: &Path) -> Server {
    Server::start(&[
        "http",
        "serve",
        root.to_str().unwrap(),
        "-p",
        "0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
}

/// A CA-signed chain from rcgen: curl trusting only the CA gets the file; the server sends
/// the intermediate it was given (openssl sees a chain of two).
#[test]
fn curl_trusts_a_ca_signed_chain_from_files() {
    let pair = ca_signed_pair();
    let root = docroot();
    let srv = serve_with(root.path(), &pair.chain, &pair.key);
    let url = format!("https://localhost:{}/hello.txt", srv.port());
    let out = curl(&["--cacert", pair.ca.to_str().unwrap(), "-4", &url]);
    assert_eq!(text(&out), "hello, world\n", "{}", err_text(&out));
    let addr = format!("127.0.0.1:{}", srv.port());
    let out = openssl(
        &[
            "s_client",
            "-connect",
            &addr,
            "-showcerts",
            "-servername",
            "localhost",
        ],
        b"",
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        shown.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{shown}"
    );
    assert!(shown.contains("CN = socklab test CA"), "{shown}");
    drop(pair.dir);
}

/// openssl's RSA pair; openssl s_client negotiates TLS 1.2 and TLS 1.3, each with ALPN
/// http/1.1, and an HTTP request goes through each; curl pinned to 1.2 works too.
#[test]
fn tls_1_2_and_1_3_are_both_negotiated_with_alpn() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_rsa_pair(keys.path());
    let root = docroot();
    let srv = serve_with(root.path(), &cert, &key);
    let addr = format!("127.0.0.1:{}", srv.port());
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let out = openssl(
            &[
                "s_client",
                "-connect",
                &addr,
                flag,
                "-alpn",
                "http/1.1",
                "-CAfile",
                cert.to_str().unwrap(),
                "-verify_return_error",
                "-quiet",
                "-ign_eof",
            ],
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.starts_with("HTTP/1.1 200 OK\r\n") && shown.ends_with("\r\n\r\nhello, world\n"),
            "{flag}: {shown}\n{}",
            err_text(&out)
        );
        // The same with the session summary instead of -quiet.
        let out = openssl(
            &[
                "s_client",
                "-connect",
                &addr,
                flag,
                "-alpn",
                "http/1.1",
                "-CAfile",
                cert.to_str().unwrap(),
            ],
            b"",
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains(&format!("Protocol  : {version}"))
                || shown.contains(&format!("New, {version}")),
            "{flag}: {shown}"
        );
        assert!(shown.contains("ALPN protocol: http/1.1"), "{flag}: {shown}");
        assert!(
            shown.contains("Verify return code: 0 (ok)"),
            "{flag}: {shown}"
        );
    }
    let out = curl(&[
        "-v",
        "--cacert",
        cert.to_str().unwrap(),
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        &format!("https://127.0.0.1:{}/data.json", srv.port()),
    ]);
    assert_eq!(text(&out), "{\"a\":1}");
    let err = err_text(&out);
    assert!(err.contains("TLSv1.2"), "{err}");
    assert!(
        err.contains("ALPN: server accepted http/1.1")
            || err.contains("ALPN, server accepted to use http/1.1"),
        "{err}"
    );
}

/// wget (GnuTLS on Debian) with `--ca-certificate`, and its 404.
#[test]
fn wget_trusts_the_ca_certificate() {
    require("wget");
    let s = tls_site(&[]);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("wget");
    without_proxies(&mut cmd);
    cmd.current_dir(work.path()).args([
        "-q",
        &format!("--ca-certificate={}", s.pem()),
        &s.url("/big.bin"),
    ]);
    ok(&run_with(cmd, b"", Duration::from_secs(30)));
    assert_eq!(
        std::fs::read(work.path().join("big.bin")).unwrap(),
        std::fs::read(s.dir.path().join("big.bin")).unwrap()
    );
    let mut cmd = Command::new("wget");
    without_proxies(&mut cmd);
    cmd.current_dir(work.path()).args([
        "--server-response",
        &format!("--ca-certificate={}", s.pem()),
        &s.url("/nothing.html"),
    ]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    exits(&out, 8);
    stderr_has(&out, "HTTP/1.1 404 Not Found");
    // Without it, wget refuses the certificate (exit 5: SSL verification failure).
    let mut cmd = Command::new("wget");
    without_proxies(&mut cmd);
    cmd.current_dir(work.path())
        .args(["-q", "-O", "-", &s.url("/hello.txt")]);
    exits(&run_with(cmd, b"", Duration::from_secs(30)), 5);
}

const PY_CLIENT: &str = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.set_alpn_protocols(['http/1.1'])
c = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=ctx, timeout=10)
c.request('GET', '/hello.txt')
r = c.getresponse(); body = r.read()
print(r.status, body.decode().strip(), c.sock.version(), c.sock.selected_alpn_protocol())
sock = c.sock
c.request('HEAD', '/data.json')
r = c.getresponse(); body = r.read()
print(r.status, r.getheader('Content-Length'), len(body), c.sock is sock)
c.request('GET', '/big.bin', headers={'Range': 'bytes=-10'})
r = c.getresponse(); body = r.read()
print(r.status, r.getheader('Content-Range'), body.hex(), c.sock is sock)
c.request('GET', '/no/such/page')
r = c.getresponse(); body = r.read().decode()
print(r.status, '<title>404 Not Found</title>' in body, c.sock is sock)
"#;

/// Python's ssl + http.client, trusting the PEM: TLS 1.3, ALPN http/1.1, keep-alive through
/// GET, HEAD, a suffix range and a 404.
#[test]
fn python_ssl_http_client_keeps_the_connection() {
    let s = tls_site(&[]);
    let port = s.server.port().to_string();
    let big = std::fs::read(s.dir.path().join("big.bin")).unwrap();
    let tail: String = big[big.len() - 10..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = python(PY_CLIENT, &["127.0.0.1", &port, s.pem()], b"");
    assert_eq!(
        text(&out),
        format!(
            "200 hello, world TLSv1.3 http/1.1\n200 7 0 True\n\
             206 bytes 999993-1000002/1000003 {tail} True\n404 True True\n"
        )
    );
}

const CHROMIUM_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>tls</title></head><body>
<pre id="result">pending</pre>
<script>
window.addEventListener('load', async () => {
  const j = await (await fetch('/data.json')).json();
  const missing = await fetch('/missing');
  document.getElementById('result').textContent =
    'proto=' + location.protocol + ' json=' + j.a + ' missing=' + missing.status +
    ' secure=' + window.isSecureContext;
});
</script></body></html>
"#;

/// Headless Chromium, trusting the server's key by the hash the server printed (checked
/// against openssl's), loads the page and runs its fetches over HTTPS.
#[test]
fn chromium_loads_the_page_over_https() {
    let s = tls_site(&[]);
    std::fs::write(s.dir.path().join("index.html"), CHROMIUM_PAGE).unwrap();
    assert_eq!(s.spki, openssl_spki_hash(&s.pem));
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(
        profile.path(),
        &[
            &format!("--ignore-certificate-errors-spki-list={}", s.spki),
            "--virtual-time-budget=10000",
            "--dump-dom",
            &s.url("/"),
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("proto=https: json=1 missing=404 secure=true"),
        "{dom}\n{}",
        err_text(&out)
    );
    let log = s.server.stdout_with(&["\"GET /data.json HTTP/1.1\" 200"]);
    assert!(log.contains("\"GET /data.json HTTP/1.1\" 200"), "{log}");
}

/// `socklab http get --cacert` downloads over HTTPS byte for byte; without it, exit 8.
#[test]
fn socklab_get_downloads_over_https() {
    let s = tls_site(&[]);
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("out.bin");
    let out = socklab(
        &[
            "http",
            "get",
            "-q",
            "--cacert",
            s.pem(),
            &s.url("/big.bin"),
            "-O",
            dest.to_str().unwrap(),
        ],
        b"",
    );
    ok(&out);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(s.dir.path().join("big.bin")).unwrap()
    );
    let out = socklab(&["http", "get", "-q", &s.url("/hello.txt"), "-O", "-"], b"");
    exits(&out, 8);
}

fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 64 MiB over TLS (no sendfile there): the bytes arrive intact, and the server's anonymous
/// memory, sampled while curl downloads at a limited rate, stays within a few MiB.
#[test]
fn a_64_mib_file_over_tls_keeps_memory_bounded() {
    let s = tls_site(&["--no-access-log"]);
    let size = 64usize << 20;
    let data = noise(size, 64);
    std::fs::write(s.dir.path().join("64m.bin"), &data).unwrap();
    // Warm up: TLS and the file path have made their first allocations.
    assert_eq!(
        text(&curl(&["--cacert", s.pem(), &s.url("/hello.txt")])),
        "hello, world\n"
    );
    let pid = s.server.pid();
    let before = rss_anon_kib(pid);
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("64m.bin");
    require("curl");
    let mut cmd = Command::new("curl");
    without_proxies(&mut cmd);
    cmd.args([
        "-sS",
        "--max-time",
        "60",
        "--limit-rate",
        "32M",
        "--cacert",
        s.pem(),
        "-o",
        dest.to_str().unwrap(),
        &s.url("/64m.bin"),
    ]);
    let mut child = cmd.spawn().unwrap();
    let mut peak = before;
    let mut samples = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "curl still running after 60 s");
        peak = peak.max(rss_anon_kib(pid));
        samples += 1;
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "curl failed: {status}");
    assert!(
        samples >= 20,
        "the download was too fast to sample ({samples} samples)"
    );
    assert!(std::fs::read(&dest).unwrap() == data, "the file differs");
    eprintln!("RssAnon {before} KiB before, peak {peak} KiB while sending 64 MiB over TLS");
    assert!(
        peak < before + 8 * 1024,
        "RssAnon grew from {before} KiB to {peak} KiB while sending 64 MiB over TLS"
    );
}

/// A plain-HTTP request on the HTTPS port gets a 400 page, in plain HTTP, that says so (as
/// nginx does); a byte that is neither TLS nor HTTP just fails the handshake. Both are
/// logged, and the server goes on serving HTTPS.
#[test]
fn plain_http_on_the_https_port_gets_a_clear_400() {
    let s = tls_site(&[]);
    let (got, _) = send_and_read(
        &s.server.addr,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(got.contains("Connection: close\r\n"), "{got}");
    assert!(got.contains("This port speaks HTTPS"), "{got}");
    // curl's plain http:// to it: the same page.
    let out = curl(&[
        "-w",
        "\n%{http_code}",
        &format!("http://{}/hello.txt", s.server.addr),
    ]);
    let page = text(&out);
    assert!(
        page.contains("use an https:// address") || page.contains("Use an https:// address"),
        "{page}"
    );
    assert!(page.ends_with("\n400"), "{page}");
    s.server
        .expect_log("a plain-HTTP request on the HTTPS port");
    // Not TLS, not HTTP: the handshake fails, the connection closes.
    let mut sock = TcpStream::connect(&s.server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut sock, b"\x01\x02\x03\x04\x05\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    s.server.expect_log("TLS handshake:");
    assert_eq!(
        text(&curl(&["--cacert", s.pem(), &s.url("/hello.txt")])),
        "hello, world\n"
    );
    let log = s.server.stdout_with(&["\"GET /hello.txt HTTP/1.1\" 400"]);
    assert!(log.contains("\"GET /hello.txt HTTP/1.1\" 400"), "{log}");
}

/// Bad certificate and key combinations: exit 2, a message naming the flag and the file, and
/// no `listening on` line.
#[test]
fn bad_certificates_and_keys_exit_2_with_a_clear_message() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_rsa_pair(keys.path());
    let other = keys.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_other_cert, other_key) = openssl_rsa_pair(&other);
    let open_key = keys.path().join("open-key.pem");
    std::fs::copy(&key, &open_key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let garbage = keys.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let root = docroot();
    let root = root.path().to_str().unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let missing = keys.path().join("missing.pem");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--tls-cert".into(),
                p(&missing),
                "--tls-key".into(),
                p(&key),
            ],
            "--tls-cert",
        ),
        (
            vec![
                "--tls-cert".into(),
                p(&cert),
                "--tls-key".into(),
                p(&other_key),
            ],
            "does not match the certificate",
        ),
        (
            vec![
                "--tls-cert".into(),
                p(&cert),
                "--tls-key".into(),
                p(&open_key),
            ],
            "readable by everyone (mode 644)",
        ),
        (
            vec!["--tls-cert".into(), p(&key), "--tls-key".into(), p(&key)],
            "no certificate in it",
        ),
        (
            vec!["--tls-cert".into(), p(&cert), "--tls-key".into(), p(&cert)],
            "no private key in it",
        ),
        (
            vec![
                "--tls-cert".into(),
                p(&garbage),
                "--tls-key".into(),
                p(&key),
            ],
            "cannot be parsed",
        ),
        (vec!["--tls-cert".into(), p(&cert)], "--tls-key"),
        (
            vec![
                "--tls-self-signed".into(),
                "--tls-cert".into(),
                p(&cert),
                "--tls-key".into(),
                p(&key),
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--tls-self-signed-out".into(),
                p(&keys.path().join("x.pem")),
            ],
            "--tls-self-signed",
        ),
        (
            vec![
                "--tls-self-signed".into(),
                "--tls-self-signed-out".into(),
                p(&keys.path().join("no/such/dir/x.pem")),
            ],
            "writing the self-signed certificate",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["http", "serve", root, "-p", "0"];
        args.extend(flags.iter().map(String::as_str));
        let out = socklab(&args, b"");
        exits(&out, 2);
        stderr_has(&out, needle);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on"),
            "{args:?}"
        );
    }
    // The missing file's message says why.
    let out = socklab(
        &[
            "http",
            "serve",
            root,
            "-p",
            "0",
            "--tls-cert",
            &p(&missing),
            "--tls-key",
            &p(&key),
        ],
        b"",
    );
    stderr_has(&out, "No such file or directory");
}

/// `--tls-self-signed-out FILE`: the PEM goes there and stays after the server stops; the
/// temporary one goes with the server.
#[test]
fn the_self_signed_pem_is_kept_only_when_asked() {
    let keep = tempfile::tempdir().unwrap();
    let out_pem = keep.path().join("cert.pem");
    let mut s = tls_site(&["--tls-self-signed-out", out_pem.to_str().unwrap()]);
    assert_eq!(s.pem, out_pem);
    assert_eq!(
        text(&curl(&["--cacert", s.pem(), &s.url("/hello.txt")])),
        "hello, world\n"
    );
    s.server.signal("TERM");
    assert!(s.server.wait_exit(Duration::from_secs(10)).is_some());
    assert!(out_pem.exists());

    let mut t = tls_site(&[]);
    assert!(t.pem.exists());
    t.server.signal("TERM");
    assert!(t.server.wait_exit(Duration::from_secs(10)).is_some());
    assert!(!t.pem.exists(), "{} outlived the server", t.pem.display());
}
