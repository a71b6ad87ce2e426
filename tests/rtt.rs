//! `socklab rtt`: the reflector and the source against each other, against echo servers
//! nobody here wrote (xinetd's, a student's Python one), beside irtt, and through
//! `socklab impair` (loss, duplication, delay).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn reflector() -> Server {
    Server::start(&["rtt", "serve", "-p", "0"])
}

/// `rtt measure ARGS --json`, parsed.
#[track_caller]
fn measure_json(args: &[&str]) -> Value {
    let mut all = vec!["rtt", "measure"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = socklab(&all, b"");
    let text = ok(&out);
    serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&text)
        )
    })
}

fn us(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{v} is not a number of µs"))
}

#[test]
fn the_summary_names_the_rfcs_four_statistics_in_microseconds() {
    let srv = reflector();
    assert!(srv.addr.starts_with("127.0.0.1:"), "{}", srv.addr);
    let out = socklab(
        &["rtt", "measure", &srv.addr, "-c", "50", "--rate", "500"],
        b"",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    for word in [
        "minimum ",
        "median ",
        "50th percentile ",
        "90th percentile ",
        "99th percentile ",
        "inverse-percentile ",
        "% of dT ≤ 1000.0 µs",
        "sent 50, replied 50, lost 0",
        "Type-P: UDP",
        "64 bytes, DSCP 0",
        "calibration: clock resolution",
        "systematic error",
        "random error ±",
        "at 95 % confidence",
        "reflector processing (T3 − T2): median",
    ] {
        assert!(text.contains(word), "no {word:?} in:\n{text}");
    }
    let minimum = text
        .lines()
        .find(|l| l.starts_with("minimum"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(minimum > 0.0 && minimum < 10_000.0, "{text}");
}

#[test]
fn json_carries_the_parameters_and_every_pair() {
    let srv = reflector();
    let v = measure_json(&[
        &srv.addr,
        "-c",
        "40",
        "--rate",
        "400",
        "--seed",
        "7",
        "--percentile",
        "50,95,99.9",
        "--threshold",
        "500us",
        "-s",
        "100",
        "--dscp",
        "10",
    ]);
    assert_eq!(v["Dst"], srv.addr.as_str());
    assert!(v["Src"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(v["λ"], 400.0);
    assert_eq!(v["schedule"], "poisson");
    assert_eq!(v["seed"], 7);
    assert_eq!(v["Type-P"]["protocol"], "UDP");
    assert_eq!(v["Type-P"]["size"], 100);
    assert_eq!(v["Type-P"]["dscp"], 10);
    assert_eq!(v["Type-P"]["dst_port"], srv.port());
    assert_eq!(us(&v["loss_threshold"]), 2_000_000.0);
    let t0 = v["T0"].as_str().unwrap();
    let tf = v["Tf"].as_str().unwrap();
    assert!(
        t0.ends_with('Z') && tf.ends_with('Z') && tf != t0,
        "{t0} {tf}"
    );
    let cal = &v["calibration"];
    assert!(us(&cal["systematic_error"]) > 0.0, "{cal}");
    assert!(us(&cal["random_error"]) >= 0.0, "{cal}");
    assert_eq!(cal["confidence"], 0.95);
    assert!(cal["clock_resolution_ns"].as_u64().unwrap() >= 1);
    let sample = v["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 40);
    let mut last_t = 0.0;
    for (i, pair) in sample.iter().enumerate() {
        assert_eq!(pair["seq"], i);
        assert!(pair["T"].as_str().unwrap().ends_with('Z'));
        let t = pair["t"].as_f64().unwrap();
        assert!(t >= last_t, "T not increasing at {i}");
        last_t = t;
        let dt = us(&pair["dT"]);
        let host = us(&pair["host"]);
        let processing = us(&pair["processing"]);
        assert!(dt > 0.0 && (dt + processing - host).abs() < 0.01, "{pair}");
    }
    let stats = &v["statistics"];
    let min = us(&stats["minimum"]);
    let med = us(&stats["median"]);
    let p50 = us(&stats["percentiles"]["50"]);
    let p95 = us(&stats["percentiles"]["95"]);
    let p999 = us(&stats["percentiles"]["99.9"]);
    assert!(min <= p50 && p50 <= p95 && p95 <= p999, "{stats}");
    // 40 values: the median is the mean of the 20th and 21st, the 50th percentile the 20th.
    let mut dts: Vec<f64> = sample.iter().map(|p| us(&p["dT"])).collect();
    dts.sort_by(f64::total_cmp);
    assert!(
        (med - (dts[19] + dts[20]) / 2.0).abs() < 0.002,
        "{med} {dts:?}"
    );
    assert_eq!(p50, dts[19]);
    assert_eq!(min, dts[0]);
    let frac = stats["inverse_percentile"]["fraction"].as_f64().unwrap();
    let below = dts.iter().filter(|&&d| d <= 500.0).count() as f64 / 40.0;
    assert_eq!(frac, below);
    assert_eq!(v["counts"]["sent"], 40);
    assert_eq!(v["counts"]["replied"], 40);
}

/// The kernel's transmit and receive timestamps arrive (software ones, on loopback), and the
/// wire-side figure is below the host one.
#[test]
fn kernel_timestamps_are_reported_beside_host_times() {
    let srv = reflector();
    let v = measure_json(&[&srv.addr, "-c", "30", "--rate", "300"]);
    let k = &v["kernel"];
    assert_eq!(k["tx_stamped"], 30, "{k}");
    assert_eq!(k["rx_stamped"], 30, "{k}");
    let kernel_median = us(&k["median"]);
    let host_median = us(&k["host_median_of_stamped"]);
    assert!(
        kernel_median <= host_median,
        "{kernel_median} > {host_median}"
    );
    for pair in v["sample"].as_array().unwrap() {
        assert!(us(&pair["kernel"]) <= us(&pair["dT"]), "{pair}");
    }
    // And the reflector used its kernel's receive timestamps for T2.
    srv.signal("INT");
    srv.expect_log("30 probes reflected over UDP (30 with a kernel receive timestamp)");
}

/// Loss, duplication and delay from `socklab impair`: losses are undefined values (+∞ in the
/// percentiles), duplicates are counted and ignored.
#[test]
fn through_a_lossy_relay_losses_are_undefined_and_duplicates_counted() {
    let srv = reflector();
    let relay = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &srv.addr,
        "--loss",
        "20%",
        "--dup",
        "20%",
        "--seed",
        "5",
    ]);
    let v = measure_json(&[
        &relay.addr,
        "-c",
        "200",
        "--rate",
        "1000",
        "--loss-threshold",
        "300ms",
        "--no-calibration",
    ]);
    let c = &v["counts"];
    let lost = c["lost"].as_u64().unwrap();
    let dups = c["duplicates"].as_u64().unwrap();
    // 20 % each way: about 36 % of round trips lose a datagram.
    assert!((30..=120).contains(&lost), "{c}");
    assert!(dups >= 10, "{c}");
    assert_eq!(c["replied"].as_u64().unwrap() + lost, 200, "{c}");
    let undefined = v["sample"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["dT"].is_null())
        .count() as u64;
    assert_eq!(undefined, lost);
    // More than 10 % lost: the 90th and 99th percentiles are +∞ (null), the median is not.
    assert!(
        v["statistics"]["percentiles"]["99"].is_null(),
        "{}",
        v["statistics"]
    );
    assert!(v["statistics"]["percentiles"]["90"].is_null());
    assert!(v["statistics"]["median"].is_number());
    let frac = v["statistics"]["inverse_percentile"]["fraction"]
        .as_f64()
        .unwrap();
    assert!(frac <= 1.0 - lost as f64 / 200.0 + 1e-9, "{frac}");
    // The text says +∞ in words.
    let out = socklab(
        &[
            "rtt",
            "measure",
            &relay.addr,
            "-c",
            "100",
            "--rate",
            "1000",
            "--loss-threshold",
            "300ms",
            "--no-calibration",
        ],
        b"",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("99th percentile") && l.contains("+∞")),
        "{text}"
    );
}

fn median_via(relay_args: &[&str], target: &str) -> f64 {
    let mut args = vec!["impair", "--listen", "127.0.0.1:0", "--to", target];
    args.extend_from_slice(relay_args);
    let relay = Server::start(&args);
    let v = measure_json(&[
        &relay.addr,
        "-c",
        "100",
        "--rate",
        "200",
        "--no-calibration",
    ]);
    assert_eq!(v["counts"]["replied"], 100, "{}", v["counts"]);
    us(&v["statistics"]["median"])
}

/// 10 ms each way is 20 ms on the round trip: the median moves by 20 ms ± 1 ms.
#[test]
fn an_added_20ms_delay_moves_the_median_by_20ms() {
    let srv = reflector();
    let base = median_via(&[], &srv.addr);
    let delayed = median_via(&["--delay", "10ms"], &srv.addr);
    let moved = delayed - base;
    assert!(
        (moved - 20_000.0).abs() <= 1_000.0,
        "the median moved by {moved:.1} µs ({base:.1} → {delayed:.1})"
    );
}

/// `--echo` against echo servers: ours, and a Python one written as a student would.
#[test]
fn echo_servers_serve_as_reflectors() {
    let echo = Server::start(&["echo", "serve", "-u", "-p", "0"]);
    let v = measure_json(&[&echo.addr, "--echo", "-c", "20", "--rate", "500"]);
    assert_eq!(v["counts"]["replied"], 20);
    assert_eq!(v["counts"]["echoed"], 20);
    assert_eq!(v["Type-P"]["reflector"], "echo");
    assert!(v["processing"]["median"].is_null());
    let (_peer, port) = python_server(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"#,
        &[],
    );
    let out = socklab(
        &[
            "rtt",
            "measure",
            &format!("127.0.0.1:{port}"),
            "--echo",
            "-c",
            "20",
            "--rate",
            "500",
        ],
        b"",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(text.contains("sent 20, replied 20, lost 0"), "{text}");
    assert!(text.contains("to an RFC 862 echo server"), "{text}");
    assert!(text.contains("not reported (an echo server)"), "{text}");
}

/// xinetd's built-in UDP echo, in a private network namespace (port 7 is free there).
/// xinetd answers one datagram at a time and, as measured here, loses a second one that
/// arrives meanwhile (about 1 in 20 Poisson probes at 200/s; a sequential Python client loses
/// none), so the probes go periodically, 20 ms apart. Its default rate limit (`cps`) is
/// lifted, or a second run within seconds would find the service switched off.
#[test]
fn xinetd_echo_is_a_reflector() {
    let out = with_xinetd_in_netns(
        "defaults\n{\n cps = 100000 1\n instances = UNLIMITED\n}\nservice echo\n{\n type = INTERNAL\n \
         id = echo-dgram\n socket_type = dgram\n protocol = udp\n user = root\n wait = yes\n \
         bind = 127.0.0.1\n}\n",
        "ss -uln | grep -q '127.0.0.1:7 '",
        &format!(
            "{} rtt measure 127.0.0.1 --echo -c 20 --rate 50 --schedule periodic --json",
            bin().display()
        ),
    );
    let v: Value = serde_json::from_slice(&ok(&out)).unwrap();
    assert_eq!(v["Dst"], "127.0.0.1:7");
    assert_eq!(v["counts"]["replied"], 20, "{}", v["counts"]);
    assert_eq!(v["counts"]["echoed"], 20);
}

/// irtt measures the same path (through a relay that adds 5 ms each way) and both agree on
/// the median within a millisecond.
#[test]
fn irtt_and_socklab_agree_on_the_same_path() {
    require("irtt");
    let srv = reflector();
    let irtt_port = free_udp_port();
    let irtt_addr = format!("127.0.0.1:{irtt_port}");
    let mut irtt_server = Command::new("irtt");
    irtt_server.args(["server", "-b", &irtt_addr]);
    let _irtt = Peer::spawn(irtt_server);
    std::thread::sleep(Duration::from_millis(300));
    let relay_ours = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &srv.addr,
        "--delay",
        "5ms",
    ]);
    let relay_irtt = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &irtt_addr,
        "--delay",
        "5ms",
    ]);
    let mut client = Command::new("irtt");
    client.args([
        "client",
        "-i",
        "10ms",
        "-d",
        "1s",
        "-Q",
        "-o",
        "-",
        "--fill=none",
        &relay_irtt.addr,
    ]);
    let out = run_with(client, b"", Duration::from_secs(30));
    let irtt: Value = serde_json::from_slice(&ok(&out)).unwrap_or_else(|e| {
        panic!("irtt's JSON: {e}: {}", err_text(&out));
    });
    let irtt_median_us = irtt["stats"]["rtt"]["median"].as_f64().unwrap() / 1e3;
    let v = measure_json(&[
        &relay_ours.addr,
        "-c",
        "100",
        "--rate",
        "100",
        "--no-calibration",
    ]);
    let ours = us(&v["host_median"]);
    assert!(
        (ours - irtt_median_us).abs() <= 1_000.0,
        "socklab {ours:.1} µs, irtt {irtt_median_us:.1} µs"
    );
    assert!(ours > 10_000.0, "{ours}");
}

#[test]
fn tcp_measures_on_one_connection_and_reports_the_connect_apart() {
    let srv = reflector();
    let v = measure_json(&[&srv.addr, "--tcp", "-c", "30", "--rate", "500"]);
    assert_eq!(v["Type-P"]["protocol"], "TCP");
    assert_eq!(v["counts"]["replied"], 30);
    assert!(us(&v["connect"]) > 0.0);
    assert!(v["processing"]["median"].is_number());
    // One connection for the whole sample.
    srv.signal("INT");
    srv.expect_log("30 over TCP");
    assert_eq!(srv.stderr().matches("rtt: connection from").count(), 1);
    // And against a TCP echo server.
    let echo = Server::start(&["echo", "serve", "-p", "0"]);
    let v = measure_json(&[&echo.addr, "--tcp", "--echo", "-c", "20", "--rate", "500"]);
    assert_eq!(v["counts"]["replied"], 20);
    assert_eq!(v["counts"]["echoed"], 20);
}

#[test]
fn periodic_schedule_and_busy_poll_and_duration() {
    let srv = reflector();
    let v = measure_json(&[
        &srv.addr,
        "-d",
        "500ms",
        "--rate",
        "100",
        "--schedule",
        "periodic",
        "--busy-poll",
        "--no-calibration",
    ]);
    assert_eq!(v["schedule"], "periodic");
    // Sends at 10, 20, … 500 ms: 50 probes.
    assert_eq!(v["counts"]["sent"], 50, "{}", v["counts"]);
    assert_eq!(v["counts"]["replied"], 50);
    let t: Vec<f64> = v["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["t"].as_f64().unwrap())
        .collect();
    // Equal gaps of 10 ms: the median exactly (to 0.5 ms), nearly all within 2 ms (a loaded
    // machine may preempt the sender now and then).
    let mut gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    assert!((gaps[gaps.len() / 2] - 0.010).abs() < 0.0005, "{gaps:?}");
    let close = gaps.iter().filter(|g| (*g - 0.010).abs() < 0.002).count();
    assert!(close * 10 >= gaps.len() * 9, "{gaps:?}");
    assert!(v["calibration"].is_null());
}

/// The DSCP is really on the probes: a Python server reads the TOS byte with IP_RECVTOS
/// (and says so on stderr: its stdout closes once the port is read).
#[test]
fn dscp_is_set_on_the_probes() {
    let (mut peer, port) = python_server(
        r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(2048, 64)
    for level, kind, value in anc:
        if level == socket.IPPROTO_IP and kind == socket.IP_TOS:
            print("tos", value[0], file=sys.stderr, flush=True)
    s.sendto(data, addr)
"#,
        &[],
    );
    let v = measure_json(&[
        &format!("127.0.0.1:{port}"),
        "--echo",
        "--dscp",
        "46",
        "-c",
        "5",
        "--rate",
        "200",
        "--no-calibration",
    ]);
    assert_eq!(v["counts"]["replied"], 5);
    let _ = peer.child.kill();
    let mut out = String::new();
    use std::io::Read;
    peer.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // 46 << 2 = 184 (Expedited Forwarding).
    assert_eq!(out.matches("tos 184").count(), 5, "{out}");
}

#[test]
fn plot_writes_an_svg_with_the_percentiles_marked() {
    let srv = reflector();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("rtt.svg");
    let out = socklab(
        &[
            "rtt",
            "measure",
            &srv.addr,
            "-c",
            "30",
            "--rate",
            "500",
            "--plot",
            svg.to_str().unwrap(),
            "--no-calibration",
        ],
        b"",
    );
    ok(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80]);
    for label in ["p50 = ", "p90 = ", "p99 = ", "median = ", "dT over time"] {
        assert!(text.contains(label), "no {label:?} in the plot");
    }
    assert_eq!(names(dir.path()), ["rtt.svg"], "no temporary file left");
    // A plot into a directory that does not exist is refused before measuring.
    let out = socklab(
        &[
            "rtt",
            "measure",
            &srv.addr,
            "-c",
            "3",
            "--plot",
            "/nonexistent/dir/x.svg",
        ],
        b"",
    );
    exits(&out, 6);
    stderr_has(&out, "is not a directory");
    assert!(out.stdout.is_empty());
}

#[test]
fn errors_have_their_exit_codes() {
    // Nothing listens: the ICMP port unreachable says so (exit 3), after the summary.
    let port = free_udp_port();
    let out = socklab(
        &[
            "rtt",
            "measure",
            &format!("127.0.0.1:{port}"),
            "-c",
            "5",
            "--rate",
            "100",
            "--loss-threshold",
            "200ms",
            "--no-calibration",
        ],
        b"",
    );
    exits(&out, 3);
    stderr_has(&out, "port unreachable");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent 5, replied 0, lost 5"));
    // A silent peer (a UDP socket that reads and never answers): exit 4.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = socklab(
        &[
            "rtt",
            "measure",
            &addr,
            "-c",
            "3",
            "--rate",
            "100",
            "--loss-threshold",
            "100ms",
            "--no-calibration",
        ],
        b"",
    );
    exits(&out, 4);
    stderr_has(
        &out,
        "no reply to any of the 3 probes within the loss threshold of 100ms",
    );
    // A reflector that answers only --allow'ed sources gives us nothing: exit 4.
    let fenced = Server::start(&["rtt", "serve", "-p", "0", "--allow", "10.0.0.0/8"]);
    let out = socklab(
        &[
            "rtt",
            "measure",
            &fenced.addr,
            "-c",
            "3",
            "--rate",
            "100",
            "--loss-threshold",
            "100ms",
            "--no-calibration",
        ],
        b"",
    );
    exits(&out, 4);
    // §5: no denial of service without --force.
    let out = socklab(&["rtt", "measure", "127.0.0.1", "--rate", "5000"], b"");
    exits(&out, 2);
    stderr_has(&out, "RFC 2681 §5");
    for bad in [
        &["-s", "10"][..],
        &["--percentile", "101"],
        &["-c", "0"],
        &["--dscp", "64"],
        &["-c", "5", "-d", "1s"],
    ] {
        let mut args = vec!["rtt", "measure", "127.0.0.1"];
        args.extend_from_slice(bad);
        exits(&socklab(&args, b""), 2);
    }
}

/// The reflector answers probes only: not junk, not replies (two reflectors pointed at each
/// other must not ping-pong), not corrupted probes; a TCP length out of range closes.
#[test]
fn the_reflector_answers_nothing_but_probes() {
    let srv = reflector();
    let out = python(
        r#"
import socket, struct, zlib, sys
addr = ("127.0.0.1", int(sys.argv[1]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.3)
def probe(kind, seq):
    body = b"RT" + bytes([1, kind]) + struct.pack(">IIQQQ", 9, seq, 5, 0, 0) + bytes(24)
    return body + struct.pack(">I", zlib.crc32(body))
def answered(d):
    s.sendto(d, addr)
    try:
        return s.recvfrom(70000)[0]
    except socket.timeout:
        return None
r = answered(probe(1, 1))
assert r is not None and r[3] == 2 and len(r) == 64, r
kind, session, seq, t1, t2, t3 = r[3], *struct.unpack(">IIQQQ", r[4:36])
assert (session, seq, t1) == (9, 1, 5) and t3 >= t2 > 0, (session, seq, t1, t2, t3)
assert zlib.crc32(r[:-4]) == struct.unpack(">I", r[-4:])[0]
assert answered(b"hello") is None
assert answered(probe(2, 2)) is None
bad = bytearray(probe(1, 3)); bad[30] ^= 1
assert answered(bytes(bad)) is None
t = socket.create_connection(addr, timeout=2)
t.sendall(struct.pack(">H", 7) + bytes(7))
assert t.recv(10) == b""
print("ok")
"#,
        &[&srv.port().to_string()],
        b"",
    );
    assert_eq!(String::from_utf8(ok(&out)).unwrap().trim(), "ok");
}

#[test]
fn ctrl_c_stops_sending_and_still_reports() {
    let srv = reflector();
    let mut cmd = Command::new(bin());
    cmd.args([
        "rtt",
        "measure",
        &srv.addr,
        "-c",
        "100000",
        "--rate",
        "100",
        "--no-calibration",
    ]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let ok_kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok_kill);
    // At most 10 s for it to stop: a broken stop fails here instead of hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(10)) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("rtt measure did not stop within 10 s of Ctrl-C");
    };
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", err_text(&out));
    assert!(text.contains("(interrupted)"), "{text}");
    assert!(text.contains("median"), "{text}");
}

/// The reflector's rate limit per source (`--rate`, `--burst`, as every UDP server has): ten
/// probes at once from one source, two answered.
#[test]
fn the_reflector_limits_replies_per_source_when_asked() {
    let srv = Server::start(&["rtt", "serve", "-p", "0", "--rate", "1", "--burst", "2"]);
    let out = python(
        r#"
import socket, struct, zlib, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for seq in range(10):
    body = b"RT" + bytes([1, 1]) + struct.pack(">IIQQQ", 9, seq, 5, 0, 0)
    s.sendto(body + struct.pack(">I", zlib.crc32(body)), ("127.0.0.1", int(sys.argv[1])))
got = 0
try:
    while True:
        s.recv(100)
        got += 1
except socket.timeout:
    pass
print(got)
"#,
        &[&srv.port().to_string()],
        b"",
    );
    assert_eq!(String::from_utf8(ok(&out)).unwrap().trim(), "2");
}

/// A reflector that closes the TCP connection in the middle of a sample (here its idle
/// timeout, 1 s, is shorter than the 2 s gaps): the summary says the sample is cut short, and
/// the exit status is not 0.
#[test]
fn a_tcp_sample_cut_short_says_so() {
    let srv = Server::start(&["rtt", "serve", "-p", "0", "-t", "1s"]);
    let out = socklab(
        &[
            "rtt",
            "measure",
            &srv.addr,
            "--tcp",
            "-c",
            "3",
            "--rate",
            "0.5",
            "--schedule",
            "periodic",
            "--no-calibration",
        ],
        b"",
    );
    exits(&out, 3);
    stderr_has(&out, "closed the connection after");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the sample is cut short"), "{text}");
}

/// A firewall that rejects the probes (nftables in a private network namespace, as
/// firewalld's default `reject with icmp host-prohibited` does): each probe's ICMP report is
/// counted, the run goes on to its summary, and the exit status says the path refused them (3).
/// Then a firewall that drops them on the way out (`EPERM` from `send`): the same.
#[test]
fn a_firewall_that_refuses_is_counted_and_the_run_goes_on() {
    require("unshare");
    require("ip");
    require("nft");
    let script = format!(
        r#"set -u
ip link set lo up
nft add table inet t
nft add chain inet t inp '{{ type filter hook input priority 0; }}'
nft add rule inet t inp udp dport 9999 reject with icmp type host-prohibited
{bin} rtt measure 127.0.0.1:9999 -c 5 --rate 200 --loss-threshold 100ms --no-calibration
echo "== $?"
nft flush ruleset
nft add table inet t
nft add chain inet t out '{{ type filter hook output priority 0; }}'
nft add rule inet t out udp dport 9999 drop
{bin} rtt measure 127.0.0.1:9999 -c 5 --rate 200 --loss-threshold 100ms --no-calibration
echo "== $?"
"#,
        bin = bin().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "bash", "-c", &script]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = err_text(&out);
    let runs: Vec<&str> = text.split("== ").collect();
    assert_eq!(runs.len(), 3, "{text}{err}");
    for (run, last) in [
        (runs[0], "No route to host"),
        (runs[1], "Operation not permitted"),
    ] {
        assert!(run.contains("sent 5, replied 0, lost 5"), "{text}{err}");
        assert!(
            run.contains("refused on the path: 0 port unreachable, 5 other"),
            "{text}{err}"
        );
        assert!(run.contains(last), "{text}");
    }
    assert!(
        runs[1].starts_with("3\n") && runs[2].starts_with("3\n"),
        "{text}{err}"
    );
    assert_eq!(
        err.matches("the path refused every probe to 127.0.0.1:9999")
            .count(),
        2,
        "{err}"
    );
}
