use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// A student's calculator client: one `sendall` per line, one reply line read through
/// `makefile`, as the course's exercise does it. Each argument is sent as one line; each
/// reply is printed.
const PY_CLIENT: &str = r#"
import socket, sys
host, port, tokens = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
s = socket.create_connection((host, port), timeout=10)
f = s.makefile('rb')
for t in tokens:
    s.sendall(t.encode() + b'\n')
    line = f.readline()
    if not line:
        print('EOF')
        break
    sys.stdout.write(line.decode())
s.close()
"#;

/// Many students at once: N threads, each with its own connection and its own numbers.
/// Threads meet at a barrier between every line, so all the connections hold operands at the
/// same time. Reads use a plain recv() loop up to the newline.
const PY_MANY: &str = r#"
import socket, sys, threading
host, port, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
barrier = threading.Barrier(n, timeout=20)
errors = []

def ask(s, buf, token):
    s.sendall(token.encode() + b'\n')
    while b'\n' not in buf[0]:
        data = s.recv(4096)
        if not data:
            raise EOFError('server closed')
        buf[0] += data
    line, buf[0] = buf[0].split(b'\n', 1)
    return line.decode()

def client(i):
    try:
        s = socket.create_connection((host, port), timeout=20)
        buf = [b'']
        for k in range(rounds):
            a, b = i * 1000 + k, k - i
            op = '+-*'[(i + k) % 3]
            want = {'+': a + b, '-': a - b, '*': a * b}[op]
            for token, expected in ((str(a), 'OK'), (str(b), 'OK'), (op, 'OK %d' % want)):
                got = ask(s, buf, token)
                if got != expected:
                    errors.append('client %d round %d: sent %s, got %r, wanted %r'
                                  % (i, k, token, got, expected))
                barrier.wait()
        s.close()
    except Exception as e:
        errors.append('client %d: %r' % (i, e))
        barrier.abort()

threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print('\n'.join(errors[:5]) if errors else 'all %d clients correct' % n)
"#;

/// A server that is not a calculator: `garbage` answers every line with `hello`, `silent`
/// never answers.
const PY_BAD_SERVER: &str = r#"
import socket, sys, threading
mode = sys.argv[1]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', 0))
srv.listen(5)
print(srv.getsockname()[1], flush=True)
def serve(conn):
    f = conn.makefile('rb')
    for line in f:
        if mode == 'garbage':
            conn.sendall(b'hello\n')
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

fn start() -> Server {
    Server::start(&["calc", "serve", "-p", "0"])
}

/// Sends `input` on a plain socket, half-closes, and returns everything the server says.
fn raw(srv: &Server, input: &[u8]) -> String {
    let (out, end) = send_and_read(&srv.addr, input);
    end.unwrap();
    String::from_utf8(out).unwrap()
}

fn py_client(srv: &Server, tokens: &[&str]) -> String {
    let port = srv.port().to_string();
    let mut args = vec!["127.0.0.1", &port];
    args.extend_from_slice(tokens);
    String::from_utf8(ok(&python(PY_CLIENT, &args, b""))).unwrap()
}

#[test]
fn nc_transaction() {
    require("nc");
    let srv = start();
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let out = run_with(cmd, b"3\n4\n+\n", Duration::from_secs(10));
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "OK\nOK\nOK 7\n");
}

#[test]
fn python_client_decimal_and_big_numbers() {
    let srv = start();
    let out = py_client(
        &srv,
        &[
            "0.1",
            "0.2",
            "+", // exact decimal
            "123456789012345678901234567890",
            "987654321098765432109876543210",
            "*",
            "2",
            "1000",
            "^", // checked against Python below
            "1",
            "3",
            "/", // 50 significant digits
            "1e3",
            "2.50",
            "*", // no exponent, no needless zeros
            "-7",
            "2",
            "%", // sign of the dividend
            "QUIT",
        ],
    );
    let two_1000 = python("print(2**1000)", &[], b"");
    let two_1000 = String::from_utf8(ok(&two_1000)).unwrap();
    let expected = format!(
        "OK\nOK\nOK 0.3\n\
         OK\nOK\nOK 121932631137021795226185032733622923332237463801111263526900\n\
         OK\nOK\nOK {}\n\
         OK\nOK\nOK 0.{}\n\
         OK\nOK\nOK 2500\n\
         OK\nOK\nOK -1\n\
         OK bye\n",
        two_1000.trim(),
        "3".repeat(50)
    );
    assert_eq!(out, expected);
}

#[test]
fn python_client_errors_then_corrections() {
    let srv = start();
    let out = py_client(
        &srv,
        &[
            "1",
            "0",
            "/", // division by zero ends the transaction
            "5",
            "5x",
            "6",
            "*", // refused operand, corrected
            "1",
            "2",
            "3",
            "+", // a third operand is refused
            "+", // missing operands
            "2",
            "sqrt2", // unknown operator clears
            "4",
            "sqrt",
            "-1",
            "sqrt",
            "9",
            "99999",
            "^",
            "1e999999999",
        ],
    );
    assert_eq!(
        out,
        "OK\nOK\nFALLO division by zero\n\
         OK\nFALLO not a number\nOK\nOK 30\n\
         OK\nOK\nFALLO too many operands\nOK 3\n\
         FALLO needs two operands\n\
         OK\nFALLO unknown operator\n\
         OK\nOK 2\n\
         OK\nFALLO square root of a negative number\n\
         OK\nOK\nFALLO result too large\n\
         FALLO too many digits\n"
    );
}

#[test]
fn fifty_concurrent_clients_keep_their_own_state() {
    let srv = start();
    let out = python(
        PY_MANY,
        &["127.0.0.1", &srv.port().to_string(), "50", "10"],
        b"",
    );
    assert_eq!(
        String::from_utf8(ok(&out)).unwrap().trim(),
        "all 50 clients correct"
    );
}

#[test]
fn crlf_lines_and_spaces_around_tokens() {
    let srv = start();
    assert_eq!(
        raw(&srv, b"3\r\n 4 \r\n*\r\nquit\r\n"),
        "OK\nOK\nOK 12\nOK bye\n"
    );
}

#[test]
fn pipelined_lines_and_a_last_line_without_newline() {
    let srv = start();
    assert_eq!(
        raw(&srv, b"6\n7\n*\n2\n3\n^"),
        "OK\nOK\nOK 42\nOK\nOK\nOK 8\n"
    );
}

#[test]
fn over_long_line_is_refused_and_the_connection_goes_on() {
    let srv = start();
    let mut input = b"1\n".to_vec();
    input.extend(std::iter::repeat_n(b'7', 2000));
    input.extend_from_slice(b"\n2\n+\n");
    assert_eq!(
        raw(&srv, &input),
        "OK\nFALLO line too long\nOK\nOK 3\n",
        "the held 1 survives the long line"
    );
    // Exactly 1024 bytes is still a line.
    let mut input = "9".repeat(1024).into_bytes();
    input.extend_from_slice(b"\r\n");
    assert_eq!(raw(&srv, &input), "OK\n");
}

#[test]
fn empty_line_changes_nothing() {
    let srv = start();
    assert_eq!(
        raw(&srv, b"2\n\n \n3\n-\n"),
        "OK\nFALLO empty line\nFALLO empty line\nOK\nOK -1\n"
    );
}

#[test]
fn quit_closes_the_connection() {
    let srv = start();
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"1\nQUIT\n").unwrap();
    let mut out = Vec::new();
    // Without half-closing: the server itself must close after `OK bye`.
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"OK\nOK bye\n");
}

#[test]
fn idle_client_gets_fallo_then_close() {
    let srv = Server::start(&["calc", "serve", "-p", "0", "-t", "1s"]);
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"5\n").unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"OK\nFALLO idle timeout\n");
    assert!(started.elapsed() >= Duration::from_millis(900));
    srv.expect_log("idle for 1s");
}

#[test]
fn garbage_never_stops_the_server() {
    let srv = start();
    let noise = noise(256 * 1024, 3);
    let out = raw(&srv, &noise);
    for line in out.lines() {
        assert!(
            line == "OK" || line.starts_with("OK ") || line.starts_with("FALLO "),
            "{line:?}"
        );
    }
    // One reply per line, the unterminated last one included (the noise holds no QUIT).
    let lines =
        noise.iter().filter(|&&b| b == b'\n').count() + usize::from(noise.last() != Some(&b'\n'));
    assert_eq!(out.lines().count(), lines, "{out}");
    assert_eq!(py_client(&srv, &["2", "2", "+"]), "OK\nOK\nOK 4\n");
}

#[test]
fn eval_prints_the_result() {
    let srv = start();
    let addr = srv.addr.clone();
    let out = socklab(&["calc", "connect", &addr, "--eval", "0.1 0.2 +"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "0.3\n");
    // Several transactions: the last result is printed.
    let out = socklab(&["calc", "connect", &addr, "-e", "3 4 + 5 6 *"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "30\n");
    let out = socklab(
        &["calc", "connect", &addr, "--eval", "2 64 ^", "--json"],
        b"",
    );
    assert_eq!(
        String::from_utf8(ok(&out)).unwrap(),
        "{\"result\":\"18446744073709551616\"}\n"
    );
}

#[test]
fn eval_exit_codes() {
    let srv = start();
    let addr = srv.addr.clone();
    let out = socklab(&["calc", "connect", &addr, "--eval", "1 0 /"], b"");
    exits(&out, 1);
    stderr_has(&out, "FALLO division by zero to \"/\"");
    let out = socklab(
        &["calc", "connect", &addr, "--eval", "1 0 /", "--json"],
        b"",
    );
    exits(&out, 1);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"fallo\":\"division by zero\",\"token\":\"/\"}\n"
    );
    let out = socklab(&["calc", "connect", &addr, "--eval", "3 4"], b"");
    exits(&out, 2);
    let out = socklab(&["calc", "connect", &addr, "--eval", "  "], b"");
    exits(&out, 2);
    drop(srv);
    let out = socklab(&["calc", "connect", &addr, "--eval", "3 4 +"], b"");
    exits(&out, 3);
}

#[test]
fn eval_against_servers_that_are_not_calculators() {
    let (_garbage, port) = python_server(PY_BAD_SERVER, &["garbage"]);
    let out = socklab(
        &["calc", "connect", &port.to_string(), "--eval", "3 4 +"],
        b"",
    );
    exits(&out, 5);
    stderr_has(&out, "not an OK or FALLO reply");
    let (_silent, port) = python_server(PY_BAD_SERVER, &["silent"]);
    let out = socklab(
        &[
            "calc",
            "connect",
            &port.to_string(),
            "-t",
            "500ms",
            "--eval",
            "3 4 +",
        ],
        b"",
    );
    exits(&out, 4);
}

#[test]
fn piped_stdin_to_connect() {
    let srv = start();
    let out = socklab(
        &["calc", "connect", &srv.addr],
        b"3 4 +\n5\n6\n*\n\n1 0 /\nQUIT\n99\n",
    );
    assert_eq!(
        String::from_utf8(ok(&out)).unwrap(),
        "OK\nOK\nOK 7\nOK\nOK\nOK 30\nOK\nOK\nFALLO division by zero\nOK bye\n",
        "an empty line sends nothing; after QUIT nothing more is sent"
    );
    let out = socklab(&["calc", "connect", &srv.addr, "--json"], b"2\nsqrt");
    assert_eq!(
        String::from_utf8(ok(&out)).unwrap(),
        "{\"reply\":\"OK\",\"token\":\"2\"}\n\
         {\"reply\":\"OK 1.4142135623730950488016887242096980785696718753769\",\"token\":\"sqrt\"}\n"
    );
}

#[test]
fn connect_reports_a_server_that_times_out_an_idle_client() {
    let srv = Server::start(&["calc", "serve", "-p", "0", "-t", "1s"]);
    let mut cmd = Command::new(bin());
    cmd.args(["calc", "connect", &srv.addr]);
    let mut client = Peer::spawn(cmd);
    // Keep stdin open (no input): the server gives up first.
    let mut stdout = client.child.stdout.take().unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let status = client.child.wait().unwrap();
    assert_eq!(out, "FALLO idle timeout\n");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn unix_socket_and_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calc.sock");
    let target = format!("unix:{}", path.display());
    let srv = Server::start(&["calc", "serve", "--unix", path.to_str().unwrap(), "--trace"]);
    assert_eq!(srv.addr, target);
    let out = socklab(&["calc", "connect", &target, "--eval", "2 10 ^"], b"");
    assert_eq!(String::from_utf8(ok(&out)).unwrap(), "1024\n");
    srv.expect_log("send 8 bytes");
    assert!(srv.stderr().contains("|OK 1024.|"), "{}", srv.stderr());
}

#[test]
fn udp_is_refused() {
    let out = socklab(&["calc", "serve", "-u", "-p", "0"], b"");
    exits(&out, 2);
    stderr_has(&out, "not --udp");
}
