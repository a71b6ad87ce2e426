//! Regression tests: bugs found after a feature landed, each named `r<issue>_<what>` with the
//! issue it came from. They run the real binary, like every integration test.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
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
        &["lab", "--help"][..],
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
