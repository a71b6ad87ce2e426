//! Regression tests: bugs found after a feature landed, each named `r<issue>_<what>` with the
//! issue it came from. They run the real binary, like every integration test.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// See: issue 8. SO_REUSEADDR on UDP sockets let a second server bind a busy UDP port and
/// silently take its datagrams; it must be refused as for TCP (exit 3).
#[test]
fn r8_busy_udp_port_is_refused() {
    let srv = Server::start(&["echo", "serve", "-u", "-p", "0"]);
    let port = srv.port().to_string();
    for args in [
        ["echo", "serve", "-u", "-p", &port],
        ["daytime", "serve", "-u", "-p", &port],
    ] {
        let out = socklab(&args, b"");
        exits(&out, 3);
        stderr_has(&out, "already in use");
    }
    // The first server still answers.
    assert_eq!(
        ok(&socklab(
            &["echo", "send", "-u", &srv.addr, "still mine"],
            b""
        )),
        b"still mine\n"
    );
}

/// See: issue 8. `echo serve -u` answered datagrams from service ports (a reflection loop
/// between two servers); every UDP server now has the guard. A datagram from the echo
/// server's own port number (on another loopback address, so no root is needed) is another
/// echo server's reply: dropped, and said so.
#[test]
fn r8_udp_echo_drops_datagrams_from_service_ports() {
    let srv = Server::start(&["echo", "serve", "-u", "-p", "0"]);
    let port = srv.port();
    let looped = UdpSocket::bind(("127.0.0.2", port)).expect("bind 127.0.0.2");
    looped
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    looped.send_to(b"loop?", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        looped.recv_from(&mut buf).is_err(),
        "echoed a datagram from a service port"
    );
    srv.expect_log(&format!("source port {port} is one this process serves on"));
    // An ordinary client still gets its echo.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"hi", ("127.0.0.1", port)).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
}

/// See: issue 8. During the grace period after SIGTERM the listening socket stayed open, so a
/// new client connected, hung, and got a reset at exit. It must be refused at once.
#[test]
fn r8_listener_closes_at_the_first_signal() {
    let mut srv = Server::start(&["echo", "serve", "-p", "0", "--grace", "3s"]);
    // One open connection keeps the server in its grace period.
    let mut held = TcpStream::connect(&srv.addr).unwrap();
    held.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    held.read_exact(&mut b).unwrap();
    srv.signal("TERM");
    srv.expect_log("waiting up to 3s for 1 open connection");
    let err = TcpStream::connect(&srv.addr).expect_err("a new client was let in");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // The open connection is still served during the grace period.
    held.write_all(b"y").unwrap();
    held.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
    drop(held);
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .expect("server did not stop");
    assert!(st.success(), "{st}");
}

/// See: issue 8. Buffered partial input was bounded per connection only (60 clients each
/// holding part of a 16 MiB frame took the server to 992 MB). A server-wide budget refuses
/// the client that would go past it, and the others go on.
#[test]
fn r8_input_budget_is_server_wide() {
    const RECORD: usize = 600_000;
    let framing = format!("fixed:{RECORD}");
    let srv = Server::start(&[
        "echo",
        "serve",
        "-p",
        "0",
        "--framing",
        &framing,
        "--input-budget",
        "1M",
    ]);
    // A starts a record: the server reserves room for all of it.
    let mut a = TcpStream::connect(&srv.addr).unwrap();
    a.write_all(b"a").unwrap();
    srv.expect_log("connection from");
    std::thread::sleep(Duration::from_millis(200));
    // B starts one too: that would take the server past 1 MiB of partial input.
    let mut b = TcpStream::connect(&srv.addr).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    b.write_all(b"b").unwrap();
    let mut sink = Vec::new();
    let _ = b.read_to_end(&mut sink);
    assert!(sink.is_empty(), "B got {} bytes", sink.len());
    srv.expect_log("input budget is spent");
    // A finishes its record and gets it back whole.
    let rest = noise(RECORD - 1, 8);
    a.write_all(&rest).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut back = vec![0u8; RECORD];
    a.read_exact(&mut back).unwrap();
    assert_eq!(back[0], b'a');
    assert!(back[1..] == rest[..], "the echoed record differs");
}

/// See: issue 8. Flags leaked between services: `daytime get` listed chargen's `--bytes`,
/// `daytime serve --quotes` was accepted, and the global `--json` was accepted and ignored
/// by `http get`.
#[test]
fn r8_each_subcommand_takes_only_its_own_flags() {
    let help = String::from_utf8(ok(&socklab(&["daytime", "get", "--help"], b""))).unwrap();
    assert!(!help.contains("--bytes"), "{help}");
    assert!(help.contains("Examples:"), "{help}");
    let help = String::from_utf8(ok(&socklab(&["chargen", "get", "--help"], b""))).unwrap();
    assert!(help.contains("--bytes"), "{help}");
    exits(
        &socklab(
            &["daytime", "serve", "-p", "0", "--quotes", "/etc/hostname"],
            b"",
        ),
        2,
    );
    let out = socklab(&["--json", "http", "get", "http://127.0.0.1:9/"], b"");
    exits(&out, 2);
    stderr_has(&out, "--json");
    exits(
        &socklab(&["http", "get", "--json", "http://127.0.0.1:9/"], b""),
        2,
    );
    for cmd in [
        &["http", "--help"][..],
        &["echo", "--help"],
        &["discard", "--help"],
        &["time", "--help"],
        &["lab", "--help"],
        &["inetd", "--help"],
        &["http", "serve", "--help"],
        &["discard", "serve", "--help"],
        &["chargen", "serve", "--help"],
        &["qotd", "serve", "--help"],
        &["daytime", "serve", "--help"],
        &["time", "get", "--help"],
    ] {
        let help = String::from_utf8(ok(&socklab(cmd, b""))).unwrap();
        assert!(help.contains("Examples:"), "{cmd:?}: {help}");
    }
}

/// See: issue 8. `lab --port-base 20000` exited 6 without saying what base would fit.
#[test]
fn r8_lab_port_base_too_large_is_a_usage_error() {
    let out = socklab(&["lab", "--port-base", "20000"], b"");
    exits(&out, 2);
    stderr_has(&out, "the largest base that fits is 14319");
}

/// See: issue 8. `chargen get --bytes 100` named the server `20019` instead of its address.
#[test]
fn r8_chargen_summary_names_the_address() {
    let srv = Server::start(&["chargen", "serve", "-p", "0"]);
    let port = srv.port().to_string();
    let out = socklab(&["chargen", "get", &port, "--bytes", "100"], b"");
    assert_eq!(
        ok(&out).len(),
        100,
        "the data is exactly what was asked for"
    );
    stderr_has(&out, &format!("from 127.0.0.1:{port} in"));
}

/// See: issue 8. Under `--ephemeral`, echo's TCP and UDP servers got different ports while
/// the simple services shared one; every service now shares one, as inetd does.
#[test]
fn r8_ephemeral_tcp_and_udp_share_a_port() {
    let srv = Server::start(&["inetd", "--ephemeral"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.stdout_rest().lines().count() < 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lines = vec![format!("listening on {} echo/tcp", srv.addr)];
    lines.extend(srv.stdout_rest().lines().map(str::to_string));
    for service in ["echo", "discard", "daytime", "qotd", "chargen", "time"] {
        let addr = |proto: &str| {
            lines
                .iter()
                .find(|l| l.ends_with(&format!(" {service}/{proto}")))
                .and_then(|l| l.split_whitespace().nth(2))
                .unwrap_or_else(|| panic!("{service}/{proto}: {lines:?}"))
                .to_string()
        };
        assert_eq!(addr("tcp"), addr("udp"), "{service}");
    }
}

/// See: issue 8. The command-line basics: `--version` names the git revision, and shell
/// completions and the manual page come from the same definitions as `--help`.
#[test]
fn r8_version_completions_and_man() {
    let v = String::from_utf8(ok(&socklab(&["--version"], b""))).unwrap();
    assert!(v.starts_with("socklab 0.") && v.contains("(git "), "{v}");
    let bash = String::from_utf8(ok(&socklab(&["completions", "bash"], b""))).unwrap();
    assert!(
        bash.contains("complete -F") && bash.contains("daytime"),
        "{bash}"
    );
    let man = String::from_utf8(ok(&socklab(&["man"], b""))).unwrap();
    assert!(
        man.contains(".TH socklab") && man.contains("inetd"),
        "{man}"
    );
    let dir = tempfile::tempdir().unwrap();
    ok(&socklab(
        &["man", "--dir", dir.path().to_str().unwrap()],
        b"",
    ));
    let pages = names(dir.path());
    for page in ["socklab.1", "socklab-echo-serve.1", "socklab-http-get.1"] {
        assert!(pages.iter().any(|p| p == page), "{page}: {pages:?}");
    }
}

/// Starts `socklab lab --ephemeral` with `path` as its PATH and reads its table.
fn lab_rows(path: &str) -> (Peer, Vec<String>, String, Arc<Mutex<String>>) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["lab", "--ephemeral"])
        .env("PATH", path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut lab = Peer::spawn(cmd);
    let mut lines = std::io::BufReader::new(lab.child.stdout.take().unwrap()).lines();
    let (mut rows, mut head) = (Vec::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("127.0.0.1:") {
            rows.push(line);
        } else {
            head.push_str(&line);
            head.push('\n');
        }
        if rows.len() == 12 {
            break;
        }
    }
    assert_eq!(rows.len(), 12, "{head}{rows:?}");
    // Keep reading stdout (the access log) so the lab never blocks on a full pipe.
    let rest = Arc::new(Mutex::new(String::new()));
    let sink = rest.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    (lab, rows, head, rest)
}

fn addr_in(row: &str) -> String {
    row.split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_string()
}

/// See: issue 8. The lab's try-it table printed `socklab …` commands that are not on PATH
/// after `cargo run`, and nc or rdate commands with no fallback where they are missing; under
/// `--ephemeral` echo's TCP and UDP got different ports.
#[test]
fn r8_lab_table_works_without_socklab_nc_or_rdate_on_path() {
    let (mut lab, rows, head, _) = lab_rows("/nonexistent");
    assert!(
        head.contains(&format!("alias socklab='{}'", bin().display())),
        "{head}"
    );
    assert!(
        rows.iter()
            .all(|r| !r.contains(" nc ") && !r.contains("rdate")),
        "{rows:?}"
    );
    let time = rows.iter().find(|r| r.starts_with("time ")).unwrap();
    assert!(time.contains("python3 -c"), "{time}");
    assert_eq!(addr_in(&rows[0]), addr_in(&rows[1]), "echo tcp and udp");
    // The Python one-liner the table gives for the echo server works as printed.
    let echo = rows.iter().find(|r| r.starts_with("echo ")).unwrap();
    let cmd = &echo[echo.find("python3 -c ").unwrap()..];
    let script = cmd
        .trim_start_matches("python3 -c ")
        .trim()
        .trim_matches('"')
        .to_string();
    let out = python(&script, &[], b"");
    assert_eq!(ok(&out), b"b'hello\\n'\n");
    // Stopped, not killed: a lab that stops removes its demo site.
    let st = stop_child(&mut lab.child, "INT").expect("lab did not stop");
    assert!(st.success(), "{st}");
}

/// See: issue 8. The lab's HTTP server had no access log, and the demo page named
/// 127.0.0.1:8080 whatever the real address.
#[test]
fn r8_lab_http_logs_and_names_its_real_address() {
    require("curl");
    // A demo site left by a killed lab (a pid above Linux's largest, so never alive).
    let abandoned = std::env::temp_dir().join("socklab-lab-4194999");
    std::fs::create_dir_all(abandoned.join("files")).unwrap();
    let (mut lab, rows, _, log) = lab_rows(&std::env::var("PATH").unwrap());
    let site = addr_in(rows.iter().find(|r| r.starts_with("http ")).unwrap());
    let page = ok(&curl(&["-s", &format!("http://{site}/")]));
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(&format!("curl -v http://{site}/")), "{page}");
    assert!(
        !page.contains("127.0.0.1:8080") || site.ends_with(":8080"),
        "{page}"
    );
    assert!(
        page.contains(&addr_in(&rows[0])),
        "the page lists the others: {page}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.lock().unwrap().contains("\"GET / HTTP/1.1\" 200") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        log.lock().unwrap().contains("\"GET / HTTP/1.1\" 200"),
        "no access log line: {}",
        log.lock().unwrap()
    );
    let st = stop_child(&mut lab.child, "INT").expect("lab did not stop");
    assert!(st.success(), "{st}");
}

/// See: issue 8. `http get -O -` reported `saved '-'`.
#[test]
fn r8_http_get_to_stdout_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"hello").unwrap();
    let srv = Server::start(&["http", "serve", dir.path().to_str().unwrap(), "-p", "0"]);
    let out = socklab(
        &[
            "http",
            "get",
            &format!("http://{}/a.txt", srv.addr),
            "-O",
            "-",
        ],
        b"",
    );
    assert_eq!(ok(&out), b"hello");
    stderr_has(&out, "wrote 5 bytes to stdout");
    assert!(!err_text(&out).contains("saved '-'"), "{}", err_text(&out));
}

/// See: issue 8. One busy port stopped the whole lab with the hint "choose another --port",
/// which `lab` does not take. The busy server is skipped with a warning; the others start.
#[test]
fn r8_lab_skips_a_busy_port() {
    use std::io::BufRead;
    // Hold a TCP port P in the range where --port-base can put echo (3500 + base, base up to
    // 14319), then start the lab so that echo's TCP port is P.
    let (held, base) = (0..200)
        .find_map(|i| {
            let port = 9000 + ((std::process::id() as u16).wrapping_mul(7) + i * 37) % 8000;
            std::net::TcpListener::bind(("127.0.0.1", port))
                .ok()
                .map(|l| (l, port - 3500))
        })
        .expect("a free port to hold");
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["lab", "--port-base", &base.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut lab = Peer::spawn(cmd);
    let stderr = lab.child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(lab.child.stdout.take().unwrap()).lines();
    let mut rows = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("127.0.0.1:") {
            rows.push(line);
        }
        if rows.len() == 12 {
            break;
        }
    }
    assert_eq!(rows.len(), 12, "{rows:?}");
    let echo_port = held.local_addr().unwrap().port();
    assert!(
        rows[0].contains(&format!("127.0.0.1:{echo_port} (busy)")),
        "{}",
        rows[0]
    );
    // Echo over UDP, on the same port number, did start.
    let out = socklab(
        &["echo", "send", "-u", &format!("127.0.0.1:{echo_port}"), "x"],
        b"",
    );
    assert_eq!(ok(&out), b"x\n");
    let st = stop_child(&mut lab.child, "INT").expect("lab did not stop");
    assert!(st.success(), "{st}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut log).unwrap();
    assert!(
        log.contains("echo (tcp) not started") && log.contains("--port-base"),
        "{log}"
    );
    drop(held);
}
