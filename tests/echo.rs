use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// A student's TCP echo client: connect, sendall, recv(1024) until everything is back.
const PY_TCP_CLIENT: &str = r#"
import socket, sys
host, port, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
s.connect((host, port))
s.sendall(msg)
got = b''
while len(got) < len(msg):
    data = s.recv(1024)
    if not data:
        break
    got += data
s.close()
sys.stdout.write(got.decode())
"#;

/// A student's UDP echo client.
const PY_UDP_CLIENT: &str = r#"
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
msg = bytes((i * 7) % 256 for i in range(size))
s.sendto(msg, (host, port))
try:
    data, addr = s.recvfrom(65535)
    print('same' if data == msg else 'different', len(data))
except socket.timeout:
    print('no reply')
"#;

/// A student's threaded TCP echo server (the course's exercise), on a free port.
const PY_TCP_SERVER: &str = r#"
import socket, sys, threading
transform = sys.argv[1] if len(sys.argv) > 1 else 'echo'
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(5)
print(srv.getsockname()[1], flush=True)
def serve(conn):
    while True:
        data = conn.recv(1024)
        if not data:
            break
        if transform == 'upper':
            data = data.upper()
        if transform == 'silent':
            continue
        conn.sendall(data)
    conn.close()
while True:
    conn, addr = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

fn host_port(addr: &str) -> (String, String) {
    let (h, p) = addr.rsplit_once(':').unwrap();
    (
        h.trim_start_matches('[').trim_end_matches(']').to_string(),
        p.to_string(),
    )
}

fn python_client_gets_echo(model: &str) {
    let srv = Server::start(&["echo", "serve", "-p", "0", "--model", model]);
    let (h, p) = host_port(&srv.addr);
    let msg = "hello from python\n".repeat(200); // > 1024, so several recv() calls
    let out = python(PY_TCP_CLIENT, &[&h, &p, &msg], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), msg);
    srv.expect_log("bytes in");
    let log = srv.stderr();
    assert!(log.contains("connection from 127.0.0.1:"), "{log}");
    assert!(
        log.contains(&format!("{} bytes in, {} bytes out", msg.len(), msg.len())),
        "{log}"
    );
}

#[test]
fn python_client_async_model() {
    python_client_gets_echo("async");
}

#[test]
fn python_client_threads_model() {
    python_client_gets_echo("threads");
}

#[test]
fn nc_client_gets_echo() {
    require("nc");
    let srv = Server::start(&["echo", "serve", "-p", "0"]);
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let out = run_with(cmd, b"line one\nline two\n", Duration::from_secs(10));
    assert_eq!(ok(&out), b"line one\nline two\n");
}

/// The course's check: nc holds a connection open (idle) while another client is served.
fn nc_holds_while_other_served(model: &str) {
    require("nc");
    let srv = Server::start(&["echo", "serve", "-p", "0", "--model", model]);
    let mut cmd = Command::new("nc");
    cmd.args(["127.0.0.1", &srv.port().to_string()]);
    let _holder = Peer::spawn(cmd);
    srv.expect_log("connection from");
    let out = python(
        PY_TCP_CLIENT,
        &["127.0.0.1", &srv.port().to_string(), "second\n"],
        b"",
    );
    assert_eq!(ok(&out), b"second\n");
    // nc is still connected: one connection closed (python's), one still open.
    assert_eq!(
        srv.stderr().matches("connection from").count(),
        2,
        "{}",
        srv.stderr()
    );
    assert_eq!(
        srv.stderr().matches("closed 127.0.0.1").count(),
        1,
        "{}",
        srv.stderr()
    );
}

#[test]
fn nc_holds_connection_async() {
    nc_holds_while_other_served("async");
}

#[test]
fn nc_holds_connection_threads() {
    nc_holds_while_other_served("threads");
}

#[test]
fn our_client_against_python_server() {
    let (_py, port) = python_server(PY_TCP_SERVER, &["echo"]);
    let addr = format!("127.0.0.1:{port}");
    let out = socklab(&["echo", "send", &addr, "hello", "world"], b"");
    assert_eq!(ok(&out), b"hello world\n");
    stderr_has(&out, "12 bytes from");
    // Streaming stdin: 1 MiB of binary noise comes back identical.
    let data = noise(1 << 20, 7);
    let out = socklab(&["echo", "send", &addr], &data);
    assert!(ok(&out) == data, "streamed echo differs");
}

#[test]
fn our_client_detects_a_wrong_echo() {
    let (_py, port) = python_server(PY_TCP_SERVER, &["upper"]);
    let out = socklab(
        &["echo", "send", &format!("127.0.0.1:{port}"), "hello"],
        b"",
    );
    exits(&out, 1);
    let err = err_text(&out);
    assert!(err.contains("echo differs at byte 0"), "{err}");
    assert_eq!(
        err.matches("echo differs").count(),
        1,
        "cause printed twice: {err}"
    );
}

#[test]
fn our_client_times_out_on_a_silent_server() {
    let (_py, port) = python_server(PY_TCP_SERVER, &["silent"]);
    let out = socklab(
        &[
            "echo",
            "send",
            &format!("127.0.0.1:{port}"),
            "hi",
            "-t",
            "1s",
        ],
        b"",
    );
    exits(&out, 4);
    stderr_has(&out, "timed out after");
}

fn stream_through(model: &str) {
    let srv = Server::start(&["echo", "serve", "-p", "0", "--model", model, "-q"]);
    let data = noise(8 << 20, 42);
    let out = socklab(&["echo", "send", &srv.addr], &data);
    assert!(ok(&out) == data, "8 MiB echo differs ({model})");
}

#[test]
fn streams_8mib_async() {
    stream_through("async");
}

#[test]
fn streams_8mib_threads() {
    stream_through("threads");
}

#[test]
fn udp_echo_with_python_and_nc() {
    let srv = Server::start(&["echo", "serve", "-u", "-p", "0"]);
    let p = srv.port().to_string();
    let out = python(PY_UDP_CLIENT, &["127.0.0.1", &p, "1200"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "same 1200\n");
    require("nc");
    let mut cmd = Command::new("nc");
    cmd.args(["-u", "-w", "1", "127.0.0.1", &p]);
    let out = run_with(cmd, b"over udp\n", Duration::from_secs(10));
    assert_eq!(out.stdout, b"over udp\n");
    let out = socklab(
        &[
            "echo", "send", "-u", &srv.addr, "ping", "-c", "3", "-i", "10ms",
        ],
        b"",
    );
    assert_eq!(ok(&out), b"ping\nping\nping\n");
}

#[test]
fn udp_truncation_is_detected_and_counted() {
    let srv = Server::start(&["echo", "serve", "-u", "-p", "0", "--buffer", "100"]);
    let p = srv.port().to_string();
    let out = python(PY_UDP_CLIENT, &["127.0.0.1", &p, "500"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "no reply\n");
    srv.expect_log("is 500 bytes, larger than the 100-byte buffer");
    assert!(
        srv.stderr().contains("1 truncated so far"),
        "{}",
        srv.stderr()
    );
    let out = python(PY_UDP_CLIENT, &["127.0.0.1", &p, "100"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "same 100\n");
}

#[test]
fn udp_client_without_server_says_port_unreachable() {
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let out = socklab(&["echo", "send", "-u", &addr, "anyone?"], b"");
    exits(&out, 3);
    stderr_has(
        &out,
        &format!("no echo server at {addr} (port unreachable)"),
    );
}

/// Sends a byte and reports whether the server closed (EOF or reset) without answering.
const PY_REFUSED: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
try:
    s.sendall(b'x')
    print('closed' if s.recv(1024) == b'' else 'answered')
except ConnectionResetError:
    print('closed')
"#;

#[test]
fn allow_list_drops_others_tcp_and_udp() {
    let srv = Server::start(&["echo", "serve", "-u", "-p", "0", "--allow", "10.0.0.0/8"]);
    let out = python(
        PY_UDP_CLIENT,
        &["127.0.0.1", &srv.port().to_string(), "10"],
        b"",
    );
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "no reply\n");
    srv.expect_log("not in the --allow list");

    let srv = Server::start(&["echo", "serve", "-p", "0", "--allow", "10.0.0.0/8"]);
    let out = python(PY_REFUSED, &["127.0.0.1", &srv.port().to_string()], b"");
    assert_eq!(
        ok(&out),
        b"closed\n",
        "a refused client must get nothing back"
    );
    srv.expect_log("refused connection");

    let out = socklab(&["echo", "send", &srv.addr, "let me in"], b"");
    exits(&out, 3);

    let srv = Server::start(&["echo", "serve", "-p", "0", "--allow", "127.0.0.1"]);
    let out = python(
        PY_TCP_CLIENT,
        &["127.0.0.1", &srv.port().to_string(), "x"],
        b"",
    );
    assert_eq!(ok(&out), b"x");
}

const PY_UDP_REQUEST: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
data, _ = s.recvfrom(65535)
sys.stdout.write(data.decode())
"#;

#[test]
fn udp_control_exec_and_shutdown() {
    let mut srv = Server::start(&["echo", "serve", "-u", "-p", "0", "--control"]);
    let p = srv.port().to_string();
    let out = python(
        PY_UDP_REQUEST,
        &["127.0.0.1", &p, "EXEC echo hi; exit 3"],
        b"",
    );
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "EXIT 3\nhi\n");
    let out = python(PY_UDP_REQUEST, &["127.0.0.1", &p, "not a command"], b"");
    assert_eq!(
        ok(&out),
        b"not a command",
        "ordinary datagrams are still echoed"
    );
    let out = python(PY_UDP_REQUEST, &["127.0.0.1", &p, "SHUTDOWN\n"], b"");
    assert_eq!(ok(&out), b"OK shutting down\n");
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .expect("server did not stop");
    assert!(st.success(), "{st}");
}

#[test]
fn udp_control_refused_from_other_addresses() {
    let srv = Server::start(&[
        "echo",
        "serve",
        "-u",
        "-p",
        "0",
        "--control",
        "--control-from",
        "10.0.0.0/8",
    ]);
    let p = srv.port().to_string();
    let out = python(PY_UDP_REQUEST, &["127.0.0.1", &p, "SHUTDOWN"], b"");
    assert!(String::from_utf8(ok(&out)).unwrap().starts_with("REFUSED"));
    // Without --control, SHUTDOWN is just a datagram to echo.
    let srv2 = Server::start(&["echo", "serve", "-u", "-p", "0"]);
    let out = python(
        PY_UDP_REQUEST,
        &["127.0.0.1", &srv2.port().to_string(), "SHUTDOWN"],
        b"",
    );
    assert_eq!(ok(&out), b"SHUTDOWN");
    srv.expect_log("refused control request");
}

const PY_UNIX_STREAM: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'over unix\n')
print(s.recv(1024).decode(), end='')
"#;

const PY_UNIX_DGRAM: &str = r#"
import socket, sys, os
me = sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(me)
s.settimeout(5)
s.sendto(b'unix datagram', sys.argv[1])
print(s.recv(1024).decode(), end='')
os.unlink(me)
"#;

#[test]
fn unix_stream_and_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let path_s = path.to_str().unwrap();
    // A stale socket file, as left by a killed server, is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let srv = Server::start(&["echo", "serve", "--unix", path_s]);
    assert_eq!(srv.addr, format!("unix:{path_s}"));
    assert_eq!(ok(&python(PY_UNIX_STREAM, &[path_s], b"")), b"over unix\n");
    let out = socklab(&["echo", "send", "--unix", path_s, "from", "socklab"], b"");
    assert_eq!(ok(&out), b"from socklab\n");
    let out = socklab(&["echo", "send", &format!("unix:{path_s}"), "again"], b"");
    assert_eq!(ok(&out), b"again\n");
    // A live socket is not taken over.
    let out = socklab(&["echo", "serve", "--unix", path_s], b"");
    exits(&out, 3);
    stderr_has(&out, "already in use");
    drop(srv);

    // The threads model serves Unix streams too.
    let tpath = dir.path().join("threads.sock");
    let tpath_s = tpath.to_str().unwrap();
    let _srv = Server::start(&["echo", "serve", "--unix", tpath_s, "--model", "threads"]);
    assert_eq!(ok(&python(PY_UNIX_STREAM, &[tpath_s], b"")), b"over unix\n");

    let dpath = dir.path().join("echo.dgram");
    let dpath_s = dpath.to_str().unwrap();
    let _srv = Server::start(&["echo", "serve", "-u", "--unix", dpath_s]);
    let me = dir.path().join("client.dgram");
    let out = python(PY_UNIX_DGRAM, &[dpath_s, me.to_str().unwrap()], b"");
    assert_eq!(ok(&out), b"unix datagram");
    let out = socklab(&["echo", "send", "-u", "--unix", dpath_s, "dgram"], b"");
    assert_eq!(ok(&out), b"dgram\n");
}

#[test]
fn ipv6_loopback() {
    let srv = Server::start(&["echo", "serve", "-b", "::1", "-p", "0"]);
    assert!(srv.addr.starts_with("[::1]:"), "{}", srv.addr);
    let out = python(
        PY_TCP_CLIENT,
        &["::1", &srv.port().to_string(), "six\n"],
        b"",
    );
    assert_eq!(ok(&out), b"six\n");
    let out = socklab(&["echo", "send", &srv.addr, "v6"], b"");
    assert_eq!(ok(&out), b"v6\n");
}

/// The course's MySocket echoing two words (the class is `support::MYSOCKET`).
const PY_MYSOCKET_ECHO: &str = r#"
s = MySocket()
s.connect('127.0.0.1', int(sys.argv[1]))
for word in [b'first', b'second']:
    s.mysend(word.ljust(MSGLEN, b'\0'))
    got = s.myreceive()
    print(len(got), got.rstrip(b'\0').decode())
"#;

#[test]
fn fixed_framing_matches_the_course_mysocket() {
    for model in ["async", "threads"] {
        let srv = Server::start(&[
            "echo",
            "serve",
            "-p",
            "0",
            "--framing",
            "fixed:1024",
            "--model",
            model,
        ]);
        let out = python(
            &format!("{MYSOCKET}{PY_MYSOCKET_ECHO}"),
            &[&srv.port().to_string()],
            b"",
        );
        assert_eq!(
            String::from_utf8(ok(&out)).unwrap(),
            "1024 first\n1024 second\n"
        );
        let out = socklab(
            &[
                "echo",
                "send",
                "--framing",
                "fixed:1024",
                &srv.addr,
                "padded",
            ],
            b"",
        );
        assert_eq!(ok(&out), b"padded\n");
    }
}

#[test]
fn delimited_framing_with_nc_and_stdin_lines() {
    require("nc");
    let srv = Server::start(&["echo", "serve", "-p", "0", "--framing", "delim:\\n"]);
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let out = run_with(cmd, b"a\nbb\n\nccc\n", Duration::from_secs(10));
    assert_eq!(ok(&out), b"a\nbb\n\nccc\n");
    let out = socklab(
        &["echo", "send", "--framing", "delim:\\n", &srv.addr],
        b"one\ntwo\n",
    );
    assert_eq!(ok(&out), b"one\ntwo\n");
    // A message containing the delimiter cannot be framed: a clear usage error.
    let out = socklab(
        &["echo", "send", "--framing", "delim:o", &srv.addr, "foo"],
        b"",
    );
    exits(&out, 2);
}

/// Builds header frames by hand with struct and zlib.crc32, as a Python peer would.
const PY_HEADER: &str = r#"
import socket, struct, sys, zlib
port, corrupt = int(sys.argv[1]), sys.argv[2] == 'corrupt'
def frame(mid, ts, payload, crc=None):
    crc = zlib.crc32(payload) if crc is None else crc
    return b'SL' + bytes([1, 0]) + struct.pack('>IIQI', len(payload), mid, ts, crc) + payload
s = socket.create_connection(('127.0.0.1', port), timeout=5)
f = frame(7, 1700000000000000, b'hello')
if corrupt:
    f = frame(9, 0, b'hello', crc=0xdeadbeef)
s.sendall(f)
got = b''
while True:
    d = s.recv(1024)
    if not d:
        break
    got += d
    if len(got) >= len(f):
        break
print('identical' if got == f else 'closed' if got == b'' else got.hex())
"#;

#[test]
fn header_framing_interop_and_crc_check() {
    let srv = Server::start(&["echo", "serve", "-p", "0", "--framing", "header"]);
    let p = srv.port().to_string();
    assert_eq!(ok(&python(PY_HEADER, &[&p, "ok"], b"")), b"identical\n");
    assert_eq!(ok(&python(PY_HEADER, &[&p, "corrupt"], b"")), b"closed\n");
    srv.expect_log("crc32 mismatch in message 9");
    let out = socklab(
        &[
            "echo",
            "send",
            "--framing",
            "header",
            &srv.addr,
            "hi",
            "-c",
            "2",
            "-i",
            "1ms",
        ],
        b"",
    );
    assert_eq!(ok(&out), b"hi\nhi\n");
}

/// The course's backlog experiment. With the server busy (--max-conns 1, one client held),
/// the kernel completes handshakes for at most backlog+1 waiting clients; further SYNs are
/// dropped and those connects time out. A larger backlog queues more.
const PY_BACKLOG: &str = r#"
import socket, sys
port = int(sys.argv[1])
held = socket.create_connection(('127.0.0.1', port))
held.sendall(b'a'); assert held.recv(10) == b'a'   # served: it owns the only slot
queued = []
for i in range(12):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(('127.0.0.1', port))
        queued.append(s)
    except OSError:
        break
n = len(queued)
queued[0].sendall(b'q')                  # waits in the backlog, not served yet
queued[0].settimeout(0.3)
try:
    early = queued[0].recv(10)
except socket.timeout:
    early = b''
held.close()                             # frees the slot: the first queued client is served
queued[0].settimeout(5)
late = queued[0].recv(10)
print(n, early.decode() or '-', late.decode())
"#;

#[test]
fn backlog_experiment() {
    let mut counts = Vec::new();
    for backlog in ["1", "5"] {
        let srv = Server::start(&[
            "echo",
            "serve",
            "-p",
            "0",
            "--max-conns",
            "1",
            "--backlog",
            backlog,
        ]);
        let out = python(PY_BACKLOG, &[&srv.port().to_string()], b"");
        let text = String::from_utf8(ok(&out)).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            &fields[1..],
            ["-", "q"],
            "queued client must wait, then be served: {text}"
        );
        counts.push(fields[0].parse::<u32>().unwrap());
    }
    // Linux queues backlog+1 completed connections.
    assert_eq!(counts, vec![2, 6], "queued connections for backlog 1 and 5");
}

/// `-b ::` is dual-stack: IPv4 clients arrive as `::ffff:a.b.c.d`. Binding `::` means every
/// interface, so the test runs in a private network namespace (loopback only) it creates.
#[test]
fn dual_stack_any_address_in_a_private_namespace() {
    require("unshare");
    require("ip");
    let script = format!(
        r#"set -e
ip link set lo up
exec 3< <(exec {bin} echo serve -b :: -p 0 2>&1)
server=$!
trap 'kill $server' EXIT
read -r first <&3
port=${{first##*:}}
{bin} echo send -q 127.0.0.1:$port four
{bin} echo send -q [::1]:$port six
echo "$first""#,
        bin = bin().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "bash", "-c", &script]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(text.starts_with("four\nsix\nlistening on [::]:"), "{text}");
}

/// A lossy UDP echo server: ignores the first datagram, echoes the next.
const PY_LOSSY_UDP: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1], flush=True)
seen = 0
while True:
    data, addr = s.recvfrom(65535)
    seen += 1
    if seen % 2 == 1:
        continue
    s.sendto(data, addr)
"#;

#[test]
fn udp_client_retransmits_a_lost_datagram() {
    let (_py, port) = python_server(PY_LOSSY_UDP, &[]);
    let addr = format!("127.0.0.1:{port}");
    let out = socklab(&["-v", "echo", "send", "-u", &addr, "again"], b"");
    assert_eq!(ok(&out), b"again\n");
    stderr_has(&out, "no reply from");
    // With no retries the lost datagram is a timeout (exit 4), after about the first wait.
    let out = socklab(
        &[
            "echo",
            "send",
            "-u",
            &addr,
            "once",
            "--retries",
            "0",
            "-t",
            "2s",
        ],
        b"",
    );
    exits(&out, 4);
    stderr_has(&out, "1 datagram(s) sent");
}

/// A slow UDP echo server: the first copy of each message is answered after 0.7 s, so the
/// client (first wait 0.5 s) retransmits and then gets two echoes of the same message.
const PY_SLOW_UDP: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1], flush=True)
seen = set()
while True:
    data, addr = s.recvfrom(65535)
    if data not in seen:
        seen.add(data)
        time.sleep(0.7)
    s.sendto(data, addr)
"#;

#[test]
fn udp_late_duplicate_is_not_taken_for_the_next_echo() {
    let (_py, port) = python_server(PY_SLOW_UDP, &[]);
    let addr = format!("127.0.0.1:{port}");
    let out = socklab(&["echo", "send", "-u", &addr], b"first\nsecond\n");
    assert_eq!(ok(&out), b"first\nsecond\n");
}

#[test]
fn unbound_unix_datagram_sender_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sock");
    let srv = Server::start(&["echo", "serve", "-u", "--unix", path.to_str().unwrap()]);
    let script = "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b'x', sys.argv[1])";
    ok(&python(script, &[path.to_str().unwrap()], b""));
    srv.expect_log("the sender has no address to reply to");
}
