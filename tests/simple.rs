use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// A student's client for the one-shot services: connect, read until the server closes.
const PY_READ_ALL: &str = r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
data = b''
while True:
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
"#;

/// A student's UDP request: send one datagram, print the reply (or "no reply").
const PY_UDP_ASK: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.5)
s.sendto(sys.argv[2].encode(), ('127.0.0.1', int(sys.argv[1])))
try:
    sys.stdout.buffer.write(s.recvfrom(65535)[0])
except socket.timeout:
    print('no reply')
"#;

fn serve(service: &str, udp: bool) -> Server {
    let mut args = vec![service, "serve", "-p", "0"];
    if udp {
        args.push("-u");
    }
    Server::start(&args)
}

#[test]
fn daytime_tcp_and_udp_with_python_and_nc() {
    let srv = serve("daytime", false);
    let p = srv.port().to_string();
    let text = String::from_utf8(ok(&python(PY_READ_ALL, &[&p], b""))).unwrap();
    assert!(text.ends_with("\r\n") && text.len() < 100, "{text:?}");
    // Our client reads it back and states the offset; the server is this machine, so the
    // offset is within the stated second.
    let out = socklab(&["--json", "daytime", "get", &srv.addr], b"");
    let v: serde_json::Value = serde_json::from_slice(&ok(&out)).unwrap();
    assert_eq!(v["format"], "RFC 867 example");
    assert!(v["offset_s"].as_f64().unwrap().abs() <= 1.0, "{v}");
    require("nc");
    let mut nc = Command::new("nc");
    nc.args(["-N", "127.0.0.1", &p]);
    let out = run_with(nc, b"", Duration::from_secs(10));
    assert!(
        String::from_utf8(ok(&out)).unwrap().contains(", 20"),
        "a date line"
    );

    let srv = serve("daytime", true);
    let reply = ok(&python(
        PY_UDP_ASK,
        &[&srv.port().to_string(), "anything"],
        b"",
    ));
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.ends_with("\r\n") && reply.contains(", 20"),
        "{reply:?}"
    );
    let out = socklab(&["daytime", "get", "-u", &srv.addr], b"");
    assert!(
        String::from_utf8(ok(&out))
            .unwrap()
            .contains("offset: the server's clock is")
    );
}

const PY_TIME: &str = r#"
import socket, struct, sys, time
port, udp = int(sys.argv[1]), sys.argv[2] == 'udp'
if udp:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b'', ('127.0.0.1', port))
    data = s.recvfrom(64)[0]
else:
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    data = b''
    while True:
        c = s.recv(64)
        if not c:
            break
        data += c
(secs,) = struct.unpack('!I', data)
print(len(data), abs(secs - 2208988800 - time.time()) < 2)
"#;

#[test]
fn time_tcp_and_udp_with_python_and_rdate() {
    for udp in [false, true] {
        let srv = serve("time", udp);
        let p = srv.port().to_string();
        let out = python(PY_TIME, &[&p, if udp { "udp" } else { "tcp" }], b"");
        assert_eq!(ok(&out), b"4 True\n");
        require("rdate");
        let mut cmd = Command::new("rdate");
        cmd.args(["-p", "-o", &p]);
        if udp {
            cmd.arg("-u");
        }
        cmd.arg("127.0.0.1");
        let out = run_with(cmd, b"", Duration::from_secs(10));
        let text = String::from_utf8(ok(&out)).unwrap();
        assert!(text.contains(" 20"), "rdate printed {text:?}");
        let out = socklab(
            &["time", "get", &srv.addr, if udp { "-u" } else { "-q" }],
            b"",
        );
        let text = String::from_utf8(ok(&out)).unwrap();
        assert!(text.starts_with("20") && text.contains("RFC 868"), "{text}");
    }
}

const PY_CHARGEN: &str = r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
data = b''
while len(data) < 20000:
    data += s.recv(4096)
s.close()
lines = data.split(b'\r\n')[:-1]
ok = all(len(l) == 72 for l in lines)
ok = ok and all(lines[i+1][0] == (lines[i][0] - 32 + 1) % 95 + 32 for i in range(len(lines) - 1))
print(len(lines), ok)
"#;

#[test]
fn chargen_tcp_pattern_with_python_and_our_checker() {
    let srv = serve("chargen", false);
    let out = python(PY_CHARGEN, &[&srv.port().to_string()], b"");
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(text.trim_end().ends_with("True"), "{text}");
    assert!(
        srv.wait_log("closed 127.0.0.1", Duration::from_secs(5)),
        "the server stops when the client closes"
    );
    let out = socklab(&["chargen", "get", &srv.addr, "--bytes", "100k"], b"");
    assert_eq!(ok(&out).len(), 100 * 1024);
    stderr_has(&out, "pattern checked");

    let srv = serve("chargen", true);
    let out = socklab(&["chargen", "get", "-u", &srv.addr], b"");
    stderr_has(&out, "pattern checked");
    let reply = ok(&python(PY_UDP_ASK, &[&srv.port().to_string(), "x"], b""));
    assert!(
        reply.len() <= 512
            && reply
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\r' || *b == b'\n'),
        "{reply:?}"
    );
}

#[test]
fn qotd_from_a_fortune_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fortunes");
    std::fs::write(
        &file,
        format!(
            "First quote,\nin two lines.\n%\nSecond.\n%\n{}\n",
            "x".repeat(600)
        ),
    )
    .unwrap();
    let srv = Server::start(&[
        "qotd",
        "serve",
        "-p",
        "0",
        "--quotes",
        file.to_str().unwrap(),
    ]);
    // stderr is captured by a thread: wait for the line rather than race it.
    srv.expect_log("skipped 1 quote");
    let p = srv.port().to_string();
    for _ in 0..5 {
        let q = String::from_utf8(ok(&python(PY_READ_ALL, &[&p], b""))).unwrap();
        assert!(
            q == "First quote,\r\nin two lines.\r\n" || q == "Second.\r\n",
            "{q:?}"
        );
    }
    let out = socklab(&["qotd", "get", &srv.addr], b"");
    assert!(!ok(&out).is_empty());
    let srv = serve("qotd", true);
    let out = socklab(&["qotd", "get", "-u", &srv.addr], b"");
    let q = ok(&out);
    assert!(!q.is_empty() && q.len() < 512);
}

const PY_DISCARD: &str = r#"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'x' * 1000000)
s.shutdown(socket.SHUT_WR)
print(repr(s.recv(10)))
"#;

#[test]
fn discard_tcp_and_udp() {
    let srv = serve("discard", false);
    let out = python(PY_DISCARD, &[&srv.port().to_string()], b"");
    assert_eq!(ok(&out), b"b''\n");
    srv.expect_log("1000000 bytes in, 0 bytes out");
    let out = socklab(&["discard", "send", &srv.addr], &noise(300_000, 3));
    ok(&out);
    stderr_has(&out, "300000 bytes sent");
    let srv = serve("discard", true);
    let out = python(PY_UDP_ASK, &[&srv.port().to_string(), "into the void"], b"");
    assert_eq!(ok(&out), b"no reply\n");
}

const PY_FLOOD: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 2:
    s.bind(('127.0.0.1', int(sys.argv[2])))
s.settimeout(0.5)
for _ in range(10):
    s.sendto(b'\n', ('127.0.0.1', int(sys.argv[1])))
n = 0
try:
    while True:
        s.recvfrom(1024)
        n += 1
except socket.timeout:
    pass
print(n)
"#;

#[test]
fn udp_reflection_guard_limits_rate_and_blocks_service_ports() {
    let srv = Server::start(&[
        "daytime", "serve", "-u", "-p", "0", "--rate", "1", "--burst", "3",
    ]);
    let p = srv.port().to_string();
    assert_eq!(
        ok(&python(PY_FLOOD, &[&p], b"")),
        b"3\n",
        "burst of 3, then 1/s"
    );
    srv.expect_log("rate limit for this source");
    // A datagram "from" the chargen port would start an endless chargen<->daytime loop.
    let srv = Server::start(&["daytime", "serve", "-u", "-p", "0"]);
    let out = python(PY_FLOOD, &[&srv.port().to_string(), "19"], b"");
    assert_eq!(ok(&out), b"0\n");
    srv.expect_log("source port 19 is a simple service's (a loop)");
}

#[test]
fn privileged_rfc_port_suggests_another() {
    require("setpriv");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["daytime", "serve"]);
    let out = run_with(cmd, b"", Duration::from_secs(10));
    exits(&out, 3);
    stderr_has(&out, "port 13 needs root; try --port 7013");
}

#[test]
fn inetd_runs_all_six_on_tcp_and_udp() {
    let srv = Server::start(&["inetd", "--ephemeral"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while srv.stdout_rest().lines().count() < 11 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lines = vec![format!("listening on {}", srv.addr)];
    lines.extend(srv.stdout_rest().lines().map(str::to_string));
    assert_eq!(lines.len(), 12, "{lines:?}");
    let find = |what: &str| {
        let line = lines
            .iter()
            .find(|l| l.ends_with(&format!(" {what}")))
            .unwrap_or_else(|| panic!("{what}: {lines:?}"));
        line.split_whitespace().nth(2).unwrap().to_string()
    };
    assert_eq!(
        ok(&socklab(&["echo", "send", &find("echo/tcp"), "hi"], b"")),
        b"hi\n"
    );
    assert_eq!(
        ok(&socklab(
            &["echo", "send", "-u", &find("echo/udp"), "hi"],
            b""
        )),
        b"hi\n"
    );
    ok(&socklab(
        &["discard", "send", &find("discard/tcp"), "x"],
        b"",
    ));
    ok(&socklab(&["daytime", "get", &find("daytime/tcp")], b""));
    ok(&socklab(
        &["daytime", "get", "-u", &find("daytime/udp")],
        b"",
    ));
    ok(&socklab(&["qotd", "get", &find("qotd/tcp")], b""));
    ok(&socklab(&["qotd", "get", "-u", &find("qotd/udp")], b""));
    ok(&socklab(&["chargen", "get", &find("chargen/tcp")], b""));
    ok(&socklab(
        &["chargen", "get", "-u", &find("chargen/udp")],
        b"",
    ));
    ok(&socklab(&["time", "get", &find("time/tcp")], b""));
    ok(&socklab(&["time", "get", "-u", &find("time/udp")], b""));
}

/// Our clients against xinetd's built-in services, in a private network namespace so xinetd
/// can use the RFC ports without clashing with anything.
#[test]
fn our_clients_against_xinetd_builtins() {
    let mut conf = String::from("defaults\n{\n}\n");
    for (name, ty, proto, wait) in [
        ("echo", "stream", "tcp", "no"),
        ("echo", "dgram", "udp", "yes"),
        ("discard", "stream", "tcp", "no"),
        ("daytime", "stream", "tcp", "no"),
        ("daytime", "dgram", "udp", "yes"),
        ("chargen", "stream", "tcp", "no"),
        ("chargen", "dgram", "udp", "yes"),
        ("time", "stream", "tcp", "no"),
        ("time", "dgram", "udp", "yes"),
    ] {
        conf.push_str(&format!(
            "service {name}\n{{\n type = INTERNAL\n id = {name}-{ty}\n socket_type = {ty}\n \
             protocol = {proto}\n user = root\n wait = {wait}\n bind = 127.0.0.1\n}}\n"
        ));
    }
    let then = format!(
        r#"b={bin}
for args in "daytime get 13" "daytime get -u 13" "time get 37" "time get -u 37" \
            "chargen get 19 --bytes 5000 -q" "chargen get -u 19 -q" "discard send 9 hello" \
            "echo send 7 hello" "echo send -u 7 hello"; do
  out=$($b $args 2>&1); echo "== $args => $?"; echo "$out" | head -c 300; echo
done"#,
        bin = bin().display()
    );
    let out = with_xinetd_in_netns(&conf, "nc -z 127.0.0.1 13", &then);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for args in [
        "daytime get 13",
        "daytime get -u 13",
        "time get 37",
        "time get -u 37",
        "chargen get 19 --bytes 5000 -q",
        "chargen get -u 19 -q",
        "discard send 9 hello",
        "echo send 7 hello",
        "echo send -u 7 hello",
    ] {
        assert!(
            text.contains(&format!("== {args} => 0")),
            "{args} failed:\n{text}\n{}",
            err_text(&out)
        );
    }
    // xinetd writes "21 NOV 2026 21:04:07 UTC"; our client recognises it and gives an offset.
    let daytime = text.split("== daytime get -u 13").next().unwrap();
    assert!(daytime.contains("offset: the server's clock is"), "{text}");
    // xinetd's chargen ring ('!' to '}') differs from ours but passes the shift check.
    assert!(
        text.contains("== chargen get 19 --bytes 5000 -q => 0"),
        "{text}"
    );
}

#[test]
fn wrong_service_and_no_server_have_their_exit_codes() {
    // A daytime server answering a time client: 4 bytes expected, a line arrives.
    let srv = serve("daytime", false);
    let out = socklab(&["time", "get", &srv.addr], b"");
    exits(&out, 5);
    stderr_has(&out, "sent a bad time reply: more than 4 bytes");
    // Nobody on a UDP port: the ICMP port unreachable ends it at once.
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let out = socklab(&["daytime", "get", "-u", &addr], b"");
    exits(&out, 3);
    stderr_has(
        &out,
        &format!("no daytime server at {addr} (port unreachable)"),
    );
}
