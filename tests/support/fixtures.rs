//! Real peers for the `socklab http get` interop tests, each configured by the test in its own
//! temporary directory on free loopback ports and stopped on drop:
//!
//! - [`Origin`]: tests/support/http_origin.py, a stdlib Python origin with test-only routes
//!   (redirects, /echo, chunked with trailers, truncated, HTTP/1.0, bad ranges, a flaky body).
//! - [`Nginx`]: Debian's nginx with static files, native ranges, gzip, `return 301/302`, and an
//!   https server whose certificate is signed by a CA made here with rcgen ([`Pki`]).
//! - [`Tinyproxy`]: Debian's tinyproxy, optionally with Basic authentication.
//!
//! Ports: bind 127.0.0.1:0, release, start the program on it; when the program could not bind
//! (another test took the port in between) it is started again on fresh ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Peer, free_port, noise, require, stop_child, without_proxies};

/// Length and seed of the origin's reference body (`noise(BLOB_LEN, BLOB_SEED)`).
pub const BLOB_LEN: usize = 262_147;
pub const BLOB_SEED: u64 = 11;

/// The origin's reference body, as the Python origin computes it.
pub fn blob() -> Vec<u8> {
    noise(BLOB_LEN, BLOB_SEED)
}

/// Waits until `port` accepts a connection or `alive` says the program is gone.
fn wait_listening(port: u16, child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Stops a program started here: TERM, then KILL.
fn stop(child: &mut Child) {
    if stop_child(child, "TERM").is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits up to 10 s for `file` to contain `needle` (logs are written asynchronously).
pub fn wait_file_contains(file: &Path, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends one `GET target` with `Connection: close` and returns (head, body); no proxy, no client
/// under test involved.
pub fn raw_get(addr: &str, target: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (
        String::from_utf8_lossy(&all[..end]).into_owned(),
        all[end..].to_vec(),
    )
}

// --- the Python origin -------------------------------------------------------------------------

/// One request the origin saw: method, target, Range header, Via header.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub range: Option<String>,
    pub via: Option<String>,
}

/// tests/support/http_origin.py on an ephemeral loopback port.
pub struct Origin {
    _peer: Peer,
    /// `127.0.0.1:PORT` or `[::1]:PORT`.
    pub addr: String,
}

impl Origin {
    /// On 127.0.0.1.
    pub fn start() -> Origin {
        Self::start_on("127.0.0.1")
    }

    /// On `ip` (e.g. `::1`; then `addr` is `[::1]:PORT`).
    pub fn start_on(ip: &str) -> Origin {
        require("python3");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/http_origin.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(ip);
        without_proxies(&mut cmd);
        let mut peer = Peer::spawn(cmd);
        let line = peer.first_line();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("http_origin.py printed {line:?}"))
            .to_string();
        Origin { _peer: peer, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests seen so far (the /__log request itself excluded).
    pub fn seen(&self) -> Vec<Seen> {
        let (_, body) = raw_get(&self.addr, "/__log");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("__log is JSON");
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |i: usize| r[i].as_str().map(str::to_string);
                Seen {
                    method: s(0).unwrap(),
                    target: s(1).unwrap(),
                    range: s(2),
                    via: s(3),
                }
            })
            .filter(|s| s.target != "/__log")
            .collect()
    }
}

// --- certificates ------------------------------------------------------------------------------

/// PEM files of a test CA, a server certificate for 127.0.0.1 and localhost signed by it, the
/// server's key, and an unrelated CA (trusting it must not be enough).
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

/// Writes the PEMs into `dir`.
pub fn pki(dir: &Path) -> Pki {
    let (ca_cert, issuer) = make_ca("socklab test CA");
    let (other_cert, _) = make_ca("socklab unrelated CA");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let p = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        other_ca: dir.join("other-ca.pem"),
    };
    std::fs::write(&p.ca, ca_cert.pem()).unwrap();
    std::fs::write(&p.other_ca, other_cert.pem()).unwrap();
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    p
}

// --- nginx -------------------------------------------------------------------------------------

/// Size of nginx's `big.bin`: a few MiB, not a multiple of anything.
pub const BIG_LEN: usize = 3 * 1024 * 1024 + 12_345;

/// The text nginx serves as `text.txt` (compressible, so gzip really shrinks it).
pub fn text_file() -> Vec<u8> {
    (0..6000)
        .map(|i| format!("{i:05} pack my box with five dozen liquor jugs\n"))
        .collect::<String>()
        .into_bytes()
}

/// nginx configured by the test: plain http on `port`, https on `tls_port`.
///
/// Files under `www`: `big.bin` (BIG_LEN noise bytes, seed 5), `text.txt` ([`text_file`]).
/// Redirects: `/old` 301 → `/text.txt`, `/found` 302 → absolute `/big.bin`,
/// `/hop1` 301 → `/hop2` 302 → `/big.bin`. gzip on for text/plain. The access log
/// (`access_log()`) records the request line, status, Range and User-Agent.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    pub www: PathBuf,
    pub pki: Pki,
}

impl Nginx {
    pub fn start() -> Nginx {
        let nginx = "/usr/sbin/nginx";
        assert!(
            Path::new(nginx).exists(),
            "nginx is not installed; the interop tests need it (./test.sh installs it with apt-get)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let www = root.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::write(www.join("big.bin"), noise(BIG_LEN, 5)).unwrap();
        std::fs::write(www.join("text.txt"), text_file()).unwrap();
        let pki = pki(&root);
        let conf = root.join("nginx.conf");
        for _attempt in 0..8 {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            std::fs::write(&conf, nginx_conf(&root, &www, &pki, port, tls_port)).unwrap();
            let _ = std::fs::remove_file(root.join("error.log"));
            let mut child = Command::new(nginx)
                .arg("-p")
                .arg(&root)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(root.join("error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx");
            if wait_listening(port, &mut child, Duration::from_secs(10))
                && wait_listening(tls_port, &mut child, Duration::from_secs(10))
            {
                return Nginx {
                    dir,
                    child,
                    port,
                    tls_port,
                    www,
                    pki,
                };
            }
            stop(&mut child);
            let log = std::fs::read_to_string(root.join("error.log")).unwrap_or_default();
            if !log.contains("Address already in use") {
                panic!("nginx did not start; error.log:\n{log}");
            }
        }
        panic!("nginx could not bind free loopback ports in 8 attempts");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn tls_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.tls_port)
    }

    /// A served file's bytes.
    pub fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.www.join(name)).unwrap()
    }

    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }
}

fn nginx_conf(root: &Path, www: &Path, pki: &Pki, port: u16, tls_port: u16) -> String {
    let r = root.display();
    let w = www.display();
    // One process (master_process off): nothing to drop privileges to, so files in a 0700
    // temporary directory stay readable when the tests run as root, and SIGKILL stops it all.
    format!(
        r#"master_process off;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format interop '$request $status range=$http_range ua=$http_user_agent';
    access_log {r}/access.log interop;
    sendfile on;
    client_body_temp_path {r}/tmp/body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 1;
    gzip_vary on;
    server {{
        listen 127.0.0.1:{port};
        root {w};
        location = /old {{ return 301 /text.txt; }}
        location = /found {{ return 302 http://127.0.0.1:{port}/big.bin; }}
        location = /hop1 {{ return 301 /hop2; }}
        location = /hop2 {{ return 302 /big.bin; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {w};
    }}
}}
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
    )
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

// --- tinyproxy ---------------------------------------------------------------------------------

/// tinyproxy configured by the test: listens on 127.0.0.1:`port`, allows 127.0.0.1, every
/// CONNECT port, logs at Info level (each request line, each CONNECT) to `log_file()`.
pub struct Tinyproxy {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Tinyproxy {
    /// Without authentication.
    pub fn start() -> Tinyproxy {
        Self::start_with(None)
    }

    /// With `BasicAuth user password`.
    pub fn with_auth(user: &str, password: &str) -> Tinyproxy {
        Self::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Tinyproxy {
        require("tinyproxy");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let conf = root.join("tinyproxy.conf");
        let out = root.join("stdout.txt");
        for _attempt in 0..8 {
            let port = free_port();
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{log}\"\nLogLevel Info\n\
                 PidFile \"{pid}\"\nMaxClients 64\nAllow 127.0.0.1\n",
                log = root.join("tinyproxy.log").display(),
                pid = root.join("tinyproxy.pid").display(),
            );
            if let Some((u, p)) = auth {
                text.push_str(&format!("BasicAuth {u} {p}\n"));
            }
            std::fs::write(&conf, text).unwrap();
            let mut child = Command::new("tinyproxy")
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(root.join("stderr.txt")).unwrap())
                .spawn()
                .expect("spawn tinyproxy");
            if wait_listening(port, &mut child, Duration::from_secs(10)) {
                return Tinyproxy { dir, child, port };
            }
            stop(&mut child);
            let said = std::fs::read_to_string(&out).unwrap_or_default()
                + &std::fs::read_to_string(root.join("stderr.txt")).unwrap_or_default();
            if !said.contains("Could not create listening sockets") {
                panic!("tinyproxy did not start:\n{said}");
            }
        }
        panic!("tinyproxy could not bind a free loopback port in 8 attempts");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("tinyproxy.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Waits up to 10 s for the log to contain `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        wait_file_contains(&self.log_file(), needle)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Debian's redis-server on a free loopback port, without persistence (`--save ''
/// --appendonly no`), killed on drop. [`Redis::kill`] and [`Redis::restart`] are for the
/// cluster's outage tests: a restarted Redis has lost every key, as a crashed one would.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// With persistence: the directory of its dump (written by `SAVE`, read at each start).
    dir: Option<tempfile::TempDir>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_in(None)
    }

    /// A Redis that keeps its data across [`Redis::restart`] when told to `SAVE`, as Debian's
    /// (which saves on shutdown) does.
    pub fn start_persistent() -> Redis {
        Self::start_in(Some(tempfile::tempdir().unwrap()))
    }

    fn start_in(dir: Option<tempfile::TempDir>) -> Redis {
        require("redis-server");
        for _attempt in 0..8 {
            let port = free_port();
            if let Some(child) = Self::spawn(port, dir.as_ref().map(|d| d.path())) {
                return Redis {
                    child: Some(child),
                    port,
                    dir,
                };
            }
        }
        panic!("redis-server could not bind a free loopback port in 8 attempts");
    }

    fn spawn(port: u16, dir: Option<&Path>) -> Option<Child> {
        let mut cmd = Command::new("redis-server");
        if let Some(dir) = dir {
            cmd.arg("--dir").arg(dir).args(["--dbfilename", "dump.rdb"]);
        }
        let mut child = cmd
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        if wait_listening(port, &mut child, Duration::from_secs(10)) {
            // Listening is not ready: ask.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 64];
                    if s.write_all(b"PING\r\n").is_ok()
                        && s.read(&mut buf)
                            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                    {
                        return Some(child);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        stop(&mut child);
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = Self::spawn(self.port, self.dir.as_ref().map(|d| d.path())) {
                self.child = Some(c);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server could not bind port {} again", self.port);
    }

    /// One command's raw reply (for checks on the keys).
    pub fn command(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
