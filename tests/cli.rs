use std::time::Duration;

use crate::support::*;

#[test]
fn address_in_use_is_explained() {
    let srv = Server::start(&["echo", "serve", "-p", "0"]);
    let out = socklab(&["echo", "serve", "-p", &srv.port().to_string()], b"");
    exits(&out, 3);
    stderr_has(&out, "already in use");
}

#[test]
fn connection_refused_and_unknown_host() {
    let port = free_port();
    let out = socklab(&["echo", "send", &format!("127.0.0.1:{port}"), "x"], b"");
    exits(&out, 3);
    stderr_has(&out, "connection refused by 127.0.0.1:");
    let out = socklab(&["echo", "send", "no-such-host.invalid:7", "x"], b"");
    exits(&out, 3);
    stderr_has(&out, "cannot resolve host name");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["echo", "send", "::1:80", "x"][..],
        &["echo", "serve", "--framing", "fixed:0"][..],
        &["echo", "serve", "-u", "--model", "threads"][..],
        &["echo", "serve", "--timeout", "soon"][..],
        &["echo", "serve", "-b", "127.0.0.1:3612"][..],
        &["echo", "serve", "-u", "--unix", "/tmp/x", "--control"][..],
        // Refused before connecting (port 1 has no server: a network error would be 3).
        &[
            "echo",
            "send",
            "--framing",
            "fixed:4",
            "127.0.0.1:1",
            "hello",
        ][..],
    ] {
        let out = socklab(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", err_text(&out));
        assert!(!err_text(&out).contains("panicked"), "{}", err_text(&out));
    }
}

#[test]
fn trace_shows_each_partial_write() {
    let srv = Server::start(&["echo", "serve", "-p", "0", "--trace"]);
    let out = socklab(
        &["echo", "send", &srv.addr, "abc", "--chunk", "1", "--trace"],
        b"",
    );
    assert_eq!(ok(&out), b"abc\n");
    let err = err_text(&out);
    assert_eq!(err.matches("send 1 byte\n").count(), 4, "{err}");
    assert!(
        err.contains("0000  61                                                |a|"),
        "{err}"
    );
    srv.expect_log("recv 0 bytes: the peer closed");
    assert!(srv.stderr().contains("] recv "), "{}", srv.stderr());
}

#[test]
fn json_output_is_one_object_per_line() {
    let srv = Server::start(&["echo", "serve", "-p", "0"]);
    let out = socklab(
        &[
            "echo", "send", &srv.addr, "x", "-c", "3", "-i", "1ms", "--json",
        ],
        b"",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(values.len(), 4, "{text}");
    assert_eq!(values[2]["seq"], 3);
    assert_eq!(values[3]["type"], "summary");
    assert_eq!(values[3]["echoed"], 3);
    assert!(values[3]["rtt_us"]["p99"].as_u64().unwrap() > 0);
}

#[test]
fn sigterm_waits_for_open_connections_then_exits() {
    require("nc");
    let mut srv = Server::start(&["echo", "serve", "-p", "0", "--grace", "500ms"]);
    let mut cmd = std::process::Command::new("nc");
    cmd.args(["127.0.0.1", &srv.port().to_string()]);
    let _held = Peer::spawn(cmd);
    srv.expect_log("connection from");
    srv.signal("TERM");
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .expect("server did not stop");
    assert!(st.success(), "{st}");
    let log = srv.stderr();
    assert!(
        log.contains("waiting up to 500ms for 1 open connection"),
        "{log}"
    );
    assert!(
        log.contains("grace period over: closing 1 connection"),
        "{log}"
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    let srv = Server::start(&["echo", "serve", "-p", "0", "-q"]);
    let script = format!(
        "head -c 4000000 /dev/zero | {} echo send -q {} | head -c 10 > /dev/null; echo ${{PIPESTATUS[1]}}",
        bin().display(),
        srv.addr
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c").arg(script);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        err_text(&out)
    );
    assert!(!err_text(&out).contains("panicked"), "{}", err_text(&out));
}

#[test]
fn lab_starts_every_server_and_stops_on_ctrl_c() {
    // Held in a Peer so a failed assertion still kills the lab.
    let mut lab = Peer {
        child: std::process::Command::new(bin())
            .args(["lab", "--ephemeral"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    };
    let child = &mut lab.child;
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut rows = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("127.0.0.1:") {
            rows.push(line);
        }
        if rows.len() == 14 {
            break;
        }
    }
    assert_eq!(rows.len(), 14, "{rows:?}");
    let addr_of = |row: &str| {
        row.split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
            .unwrap()
            .to_string()
    };
    let tcp = addr_of(&rows[0]);
    let out = socklab(&["echo", "send", &tcp, "lab"], b"");
    assert_eq!(ok(&out), b"lab\n");
    let udp = addr_of(&rows[1]);
    assert!(rows[1].contains("udp"), "{}", rows[1]);
    let out = socklab(&["echo", "send", "-u", &udp, "lab"], b"");
    assert_eq!(ok(&out), b"lab\n");
    let header = addr_of(&rows[3]);
    let out = socklab(
        &["echo", "send", "--framing", "header", &header, "lab"],
        b"",
    );
    assert_eq!(ok(&out), b"lab\n");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.starts_with(&format!("{name} ")))
            .unwrap()
    };
    let out = socklab(
        &[
            "calc",
            "connect",
            &addr_of(row("calc")),
            "--eval",
            "0.1 0.2 +",
        ],
        b"",
    );
    assert_eq!(ok(&out), b"0.3\n");
    for service in ["daytime", "qotd", "chargen", "time"] {
        ok(&socklab(&[service, "get", &addr_of(row(service))], b""));
        ok(&socklab(
            &[service, "get", "-u", &addr_of(row(service))],
            b"",
        ));
    }
    ok(&socklab(
        &["discard", "send", &addr_of(row("discard")), "x"],
        b"",
    ));
    // The p2p bot answers each line of a real peer, in order (the peer exits 0 once all it
    // sent is acknowledged and the bot has been quiet for a while).
    let out = socklab(
        &[
            "p2p",
            "chat",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &addr_of(row("p2p")),
            "--nick",
            "you",
        ],
        b"hello\nagain\n",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        ["<lab> you, you said: hello", "<lab> you, you said: again"],
        "{text}"
    );
    // The reflector answers socklab's source, and the Python one-liner the table shows.
    let out = socklab(
        &[
            "rtt",
            "measure",
            &addr_of(row("rtt")),
            "-c",
            "5",
            "--rate",
            "200",
            "--no-calibration",
        ],
        b"",
    );
    assert!(
        String::from_utf8(ok(&out))
            .unwrap()
            .contains("sent 5, replied 5"),
        "{}",
        err_text(&out)
    );
    let python_line = &row("rtt")[row("rtt").find("python3 -c").unwrap()..];
    let mut sh = std::process::Command::new("bash");
    sh.args(["-c", python_line]);
    let out = run_with(sh, b"", std::time::Duration::from_secs(10));
    let reply = String::from_utf8(ok(&out)).unwrap();
    assert!(reply.starts_with("52540102"), "{reply}");
    assert_eq!(reply.trim().len(), 80, "a 40-byte reply: {reply}");
    require("curl");
    let site = addr_of(row("http"));
    for (path, code) in [
        ("/", "200"),
        ("/socket.png", "200"),
        ("/files/", "200"),
        ("/nope", "404"),
    ] {
        let url = format!("http://{site}{path}");
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
        assert_eq!(ok(&out), code.as_bytes(), "{path}");
    }
    let st = stop_child(child, "INT").expect("lab did not stop on Ctrl-C");
    assert!(st.success(), "{st}");
}

/// A server whose stdout and stderr readers went away (a closed pipe) keeps serving and still
/// stops on SIGTERM: a failed log write must not panic a task.
#[test]
fn server_survives_closed_stderr_and_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin())
        .args(["echo", "serve", "-p", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    drop(child.stderr.take()); // closes the read ends: every log write now fails
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    for _ in 0..3 {
        let out = socklab(&["echo", "send", &addr, "still here"], b"");
        assert_eq!(ok(&out), b"still here\n");
    }
    let st = stop_child(&mut child, "TERM").expect("server ignored SIGTERM");
    assert!(st.success(), "{st}");
}

/// An unprivileged user binding port 7 gets the hint from the issue, not a raw EACCES.
#[test]
fn privileged_port_error_suggests_another_port() {
    require("setpriv");
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["echo", "serve", "-p", "7"]);
    let out = run_with(cmd, b"", Duration::from_secs(10));
    exits(&out, 3);
    stderr_has(&out, "port 7 needs root; try --port 7007");
}
