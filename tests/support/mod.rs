//! Test support: spawn `socklab` servers on port 0, learn their address from the first
//! stdout line, capture their logs, kill them on drop; run peers with a deadline. Every helper
//! that more than one test module needs lives here: the exit-code and stderr assertions
//! ([`exits`], [`stderr_has`], [`Server::expect_log`]), fake Python servers ([`python_server`]),
//! curl without proxies ([`curl`], [`without_proxies`]), free ports, directory listings.

#![allow(dead_code)]

pub mod fixtures;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_socklab"))
}

/// Fails the test with a clear message when a peer program is missing (./test.sh installs them).
/// The program must be an executable file on the PATH: a shell builtin of the same name (`kill`)
/// does not count, since the tests run programs, not shells.
pub fn require(program: &str) {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    assert!(
        found,
        "{program} is not installed; the interop tests need it (./test.sh installs it with apt-get)"
    );
}

/// A running socklab server.
pub struct Server {
    child: Child,
    /// What it printed after `listening on ` (e.g. `127.0.0.1:41234` or `unix:/tmp/x`).
    pub addr: String,
    stderr: Arc<Mutex<String>>,
    stdout_rest: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `socklab ARGS` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Server::start_command(cmd)
    }

    /// Starts a command that runs socklab (say, under `setpriv`) and waits for its
    /// `listening on` line.
    pub fn start_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn socklab");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(err_pipe);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout_rest = Arc::new(Mutex::new(String::new()));
        let rest = stdout_rest.clone();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = out.read_line(&mut first);
            let _ = tx.send(first);
            let mut line = String::new();
            while out.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                rest.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let addr = match first.trim_end().strip_prefix("listening on ") {
            Some(a) => a.to_string(),
            None => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{cmd:?} did not print 'listening on': first line {first:?}, stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            stderr,
            stdout_rest,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Everything it has logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stdout after the first line.
    pub fn stdout_rest(&self) -> String {
        self.stdout_rest.lock().unwrap().clone()
    }

    /// Stdout after the first line once it contains every one of `needles`, or as it is
    /// after 5 s. An HTTP server's access log writes a busy moment's lines in batches, up to
    /// 100 ms after their requests.
    pub fn stdout_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.stdout_rest();
            if needles.iter().all(|n| out.contains(n)) || Instant::now() >= deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until its log contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Asserts that its log comes to contain `needle` within 5 s, showing the log otherwise.
    #[track_caller]
    pub fn expect_log(&self, needle: &str) {
        assert!(
            self.wait_log(needle, Duration::from_secs(5)),
            "the server never logged {needle:?}; its stderr:\n{}",
            self.stderr()
        );
    }

    /// Sends a signal (e.g. "TERM").
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion with stdin bytes and a deadline (killed after it).
pub fn run_with(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            panic!(
                "command {cmd:?} still running after {limit:?}; stderr so far: {}",
                String::from_utf8_lossy(&err_t.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Runs `socklab ARGS` with stdin, 30 s at most.
pub fn socklab(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    run_with(cmd, stdin, Duration::from_secs(30))
}

/// Runs a Python 3 script (`python3 -c SCRIPT ARGS`), 30 s at most.
pub fn python(script: &str, args: &[&str], stdin: &[u8]) -> Output {
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_with(cmd, stdin, Duration::from_secs(30))
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "failed with {}: stdout {:?} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// Text of stderr.
pub fn err_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing stdout and stderr otherwise.
#[track_caller]
pub fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}, got {}; stdout {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        err_text(out)
    );
}

/// Asserts that stderr contains `needle`, showing stderr otherwise.
#[track_caller]
pub fn stderr_has(out: &Output, needle: &str) {
    let err = err_text(out);
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Environment variables that would send a peer (curl, socklab) through a proxy.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// Removes the proxy variables ([`PROXY_VARS`]) from `cmd`'s environment: the tests talk to
/// loopback directly unless they name a proxy themselves.
pub fn without_proxies(cmd: &mut Command) -> &mut Command {
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Runs curl (`-sS --max-time 30`, no proxy from the environment) in `dir`, 40 s at most.
pub fn curl_in(dir: &Path, args: &[&str]) -> Output {
    require("curl");
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir)
        .args(["-sS", "--max-time", "30"])
        .args(args);
    without_proxies(&mut cmd);
    run_with(cmd, b"", Duration::from_secs(40))
}

/// [`curl_in`] the current directory.
pub fn curl(args: &[&str]) -> Output {
    curl_in(Path::new("."), args)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port nobody listened on a moment ago (bound, then released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to `addr`, sends `input`, half-closes (the peer reads end of stream) and reads until
/// the peer closes. Returns what arrived and how the reading ended: a reset after the last
/// bytes is an error there, which a caller may expect or refuse.
pub fn send_and_read(addr: &str, input: &[u8]) -> (Vec<u8>, std::io::Result<usize>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(input).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let end = s.read_to_end(&mut out);
    (out, end)
}

/// Starts a fake server written in Python (`python3 -c SCRIPT ARGS`) that prints its port as
/// its first stdout line; returns it (killed on drop) and that port.
pub fn python_server(script: &str, args: &[&str]) -> (Peer, u16) {
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    let mut peer = Peer::spawn(cmd);
    let line = peer.first_line();
    let port = line
        .parse()
        .unwrap_or_else(|_| panic!("the Python server printed {line:?}, not its port"));
    (peer, port)
}

/// A long-running peer process (nc holding a connection, a Python server), killed on drop.
pub struct Peer {
    pub child: Child,
}

impl Peer {
    /// Spawns with piped stdin/stdout.
    pub fn spawn(mut cmd: Command) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Peer {
            child: cmd.spawn().expect("spawn peer"),
        }
    }

    /// Reads the first stdout line (e.g. a port printed by a Python server).
    pub fn first_line(&mut self) -> String {
        let out = self.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut l = String::new();
            let _ = r.read_line(&mut l);
            let _ = tx.send(l);
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("peer printed nothing")
            .trim()
            .to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Sends `sig` to a child and waits up to 10 s for it to exit.
pub fn stop_child(child: &mut Child, sig: &str) -> Option<ExitStatus> {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The course's `MySocket` class (the Python socket HOWTO's), unchanged, with MSGLEN 1024: every
/// message is exactly MSGLEN bytes. Tests append their own script after it.
pub const MYSOCKET: &str = r#"
import socket, sys
MSGLEN = 1024
class MySocket:
    def __init__(self, sock=None):
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    def connect(self, host, port):
        self.sock.connect((host, port))
    def mysend(self, msg):
        totalsent = 0
        while totalsent < MSGLEN:
            sent = self.sock.send(msg[totalsent:])
            if sent == 0:
                raise RuntimeError("socket connection broken")
            totalsent = totalsent + sent
    def myreceive(self):
        chunks = []
        bytes_recd = 0
        while bytes_recd < MSGLEN:
            chunk = self.sock.recv(min(MSGLEN - bytes_recd, 2048))
            if chunk == b'':
                raise RuntimeError("socket connection broken")
            chunks.append(chunk)
            bytes_recd = bytes_recd + len(chunk)
        return b''.join(chunks)
"#;

/// Runs xinetd with `conf` (a whole xinetd.conf) in a private network namespace (so the RFC
/// ports are free), waits until `ready` (a shell test) succeeds, then runs `then` (shell
/// commands) there; returns their output. xinetd is stopped when `then` ends. Needs root.
pub fn with_xinetd_in_netns(conf: &str, ready: &str, then: &str) -> Output {
    require("unshare");
    require("xinetd");
    require("ip");
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("xinetd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let script = format!(
        r#"set -u
ip link set lo up
xinetd -dontfork -f {conf} -pidfile {dir}/pid &
xi=$!
trap 'kill $xi' EXIT
for _ in $(seq 50); do {ready} && break; sleep 0.1; done
{then}
"#,
        conf = conf_path.display(),
        dir = dir.path().display(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "bash", "-c", &script]);
    run_with(cmd, b"", Duration::from_secs(60))
}

/// One note of a REDbot report.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RedbotNote {
    /// GOOD, INFO, WARN or BAD.
    pub level: String,
    /// The note's class name, e.g. `FRESHNESS_HEURISTIC`.
    pub id: String,
    /// Its one-line summary.
    pub summary: String,
}

/// What REDbot said about one URL.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RedbotReport {
    /// The status of the checked response (None when it could not fetch it).
    pub status: Option<u16>,
    /// Why it could not fetch it.
    pub error: Option<String>,
    /// Every note, subnotes flattened after their note.
    pub notes: Vec<RedbotNote>,
}

impl RedbotReport {
    /// The notes at `level` ("BAD", "WARN").
    pub fn at(&self, level: &str) -> Vec<&RedbotNote> {
        self.notes.iter().filter(|n| n.level == level).collect()
    }
}

/// Runs REDbot (the PyPI package `redbot`, in the virtualenv ./test.sh makes at
/// `target/redbot-venv`, or `$SOCKLAB_REDBOT_VENV`) on `url` with extra request `headers`
/// ("Name: value"), through `tests/support/redbot_check.py`; 90 s at most.
pub fn redbot(url: &str, headers: &[&str]) -> RedbotReport {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("SOCKLAB_REDBOT_VENV")
        .map_or_else(|| root.join("target/redbot-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no REDbot virtualenv at {}; ./test.sh makes it (python3 -m venv, pip install redbot)",
        venv.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/support/redbot_check.py"))
        .arg(url)
        .args(headers);
    without_proxies(&mut cmd);
    let out = run_with(cmd, b"", Duration::from_secs(90));
    let json = ok(&out);
    serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "REDbot printed no report ({e}): {}\n{}",
            String::from_utf8_lossy(&json),
            err_text(&out)
        )
    })
}

/// Runs headless Chromium (no sandbox, no GPU, no background traffic, an 800x600 window)
/// with its own profile directory and `args`, 60 s at most.
pub fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    require("chromium");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=800,600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    run_with(cmd, b"", Duration::from_secs(60))
}
