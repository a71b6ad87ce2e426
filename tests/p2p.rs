//! `socklab p2p chat`: two real processes over loopback UDP, fed by pipes as the contract
//! says (each stdin line one message, each message received one stdout line with the nick and
//! the text), in either start order; the exit codes (0 when everything was acknowledged, 4
//! when the peer stopped acknowledging).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn peer(listen: u16, to: u16, nick: &str, input: Vec<u8>, extra: &[&str]) -> Child {
    let mut child = Command::new(bin())
        .args(["p2p", "chat", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--peer", &format!("127.0.0.1:{to}"), "--nick", nick])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn socklab p2p chat");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    child
}

/// Waits for `child` (60 s at most) and returns its exit code, stdout and stderr.
fn finish(child: Child) -> (i32, String, String) {
    let id = child.id();
    // Kills the child after 60 s, unless told it has been reaped (its pid might be reused).
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            wait.recv_timeout(Duration::from_secs(60))
        {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    drop(done);
    let _ = watchdog.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(n: usize, tag: &str) -> Vec<u8> {
    (0..n)
        .map(|i| format!("{tag} line {i}: héllo  wörld\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn two_peers_exchange_every_line_once_in_order_whichever_starts_first() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = peer(pa, pb, "ann", lines(3000, "a"), &[]);
    // b starts later; a waits for it.
    std::thread::sleep(Duration::from_millis(1500));
    let b = peer(pb, pa, "bob", lines(40, "b"), &[]);
    // Both outputs are read at once: a peer whose stdout nobody reads stops (its writes
    // block), and so, rightly, does the transfer.
    let b = std::thread::spawn(move || finish(b));
    let (ca, out_a, err_a) = finish(a);
    let (cb, out_b, err_b) = b.join().unwrap();
    assert_eq!((ca, cb), (0, 0), "ann:\n{err_a}\nbob:\n{err_b}");
    assert_eq!(
        out_a.lines().next(),
        Some(format!("listening on 127.0.0.1:{pa}").as_str())
    );
    let got_b: Vec<&str> = out_b.lines().skip(1).collect();
    let want_b: Vec<String> = (0..3000)
        .map(|i| format!("<ann> a line {i}: héllo  wörld"))
        .collect();
    assert_eq!(got_b, want_b);
    let got_a: Vec<&str> = out_a.lines().skip(1).collect();
    let want_a: Vec<String> = (0..40)
        .map(|i| format!("<bob> b line {i}: héllo  wörld"))
        .collect();
    assert_eq!(got_a, want_a);
    assert!(err_a.contains("3000 messages sent, 40 received"), "{err_a}");
}

#[test]
fn a_peer_that_stops_acknowledging_makes_the_other_exit_4_with_the_count() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let b = peer(pb, pa, "bob", Vec::new(), &["-t", "2s"]);
    let mut b = b;
    // Keep b's stdin open: it just listens. a sends far more than fits in flight.
    let a = peer(pa, pb, "ann", lines(200_000, "a"), &["-t", "2s"]);
    std::thread::sleep(Duration::from_millis(1000));
    let _ = b.kill();
    let _ = b.wait();
    let started = Instant::now();
    let (code, _, err) = finish(a);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("the peer acknowledged nothing for 2s:")
            && err.contains("messages went unacknowledged"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = socklab(
        &[
            "p2p", "chat", "--listen", "nowhere", "--peer", "1", "--nick", "a",
        ],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "--listen \"nowhere\" is not ADDR:PORT");
    let out = socklab(
        &["p2p", "chat", "--listen", "0", "--peer", "0", "--nick", "a"],
        b"",
    );
    exits(&out, 2);
    let out = socklab(
        &["impair", "--listen", "0", "--to", "9", "--loss", "150%"],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "loss=150%");
}

/// The two peers through `socklab impair` with 30 % loss, 10 % duplication, 20 % reordering
/// and 5 % corruption each way: every line still arrives once, in order; the relay's JSON says
/// what it did.
#[test]
fn through_a_terrible_link_every_line_arrives_once_in_order() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut relay = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("127.0.0.1:{pb}"),
        "--loss",
        "30%",
        "--dup",
        "10%",
        "--reorder",
        "20%",
        "--corrupt",
        "5%",
        "--delay",
        "1ms",
        "--seed",
        "7",
        "--json",
    ]);
    let pr = relay.port();
    let a = peer(pa, pr, "ann", lines(500, "a"), &[]);
    let b = peer(pb, pr, "bob", lines(200, "b"), &[]);
    let b = std::thread::spawn(move || finish(b));
    let (ca, out_a, err_a) = finish(a);
    let (cb, out_b, err_b) = b.join().unwrap();
    assert_eq!((ca, cb), (0, 0), "ann:\n{err_a}\nbob:\n{err_b}");
    let got_b: Vec<&str> = out_b.lines().skip(1).collect();
    let want_b: Vec<String> = (0..500)
        .map(|i| format!("<ann> a line {i}: héllo  wörld"))
        .collect();
    assert_eq!(got_b, want_b);
    let got_a: Vec<&str> = out_a.lines().skip(1).collect();
    let want_a: Vec<String> = (0..200)
        .map(|i| format!("<bob> b line {i}: héllo  wörld"))
        .collect();
    assert_eq!(got_a, want_a);
    // The link did its worst, and the peers noticed.
    relay.signal("INT");
    assert!(relay.wait_exit(Duration::from_secs(10)).is_some());
    let stats: serde_json::Value = serde_json::from_str(relay.stdout_rest().trim()).unwrap();
    for dir in ["up", "down"] {
        for what in ["dropped", "duplicated", "reordered", "corrupted"] {
            assert!(
                stats[dir][what].as_u64().unwrap() > 0,
                "{dir} {what}: {stats}"
            );
        }
    }
    assert!(count(&err_a, " retransmitted") > 0, "{err_a}");
    assert!(count(&err_b, " corrupt,") > 0, "{err_b}");
}

/// The number just before `word` in a peer's closing counters (`… 12 retransmitted; …`).
fn count(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in:\n{text}"));
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {word:?} in:\n{text}"))
}

/// `--no-arq` and `nc -u` (netcat-openbsd) talk both ways: each line one bare datagram.
#[test]
fn no_arq_talks_with_nc_u() {
    require("nc");
    let (pa, pn) = (free_udp_port(), free_udp_port());
    let mut nc = Command::new("nc")
        .args(["-u", "-l", "127.0.0.1", &pn.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nc");
    std::thread::sleep(Duration::from_millis(300));
    let mut ours = Command::new(bin())
        .args([
            "p2p",
            "chat",
            "--no-arq",
            "--listen",
            &format!("127.0.0.1:{pa}"),
        ])
        .args(["--peer", &format!("127.0.0.1:{pn}"), "--nick", "ann"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut our_in = ours.stdin.take().unwrap();
    our_in.write_all(b"hi nc, no acks here\n").unwrap();
    // nc prints what it got; once it has, it knows where to answer.
    let mut nc_out = std::io::BufReader::new(nc.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut nc_out, &mut line).unwrap();
    assert_eq!(line, "hi nc, no acks here\n");
    nc.stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello from nc\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(our_in);
    let (code, out, err) = finish(ours);
    let _ = nc.kill();
    let _ = nc.wait();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("<127.0.0.1:{pn}> hello from nc\n")),
        "{out}"
    );
    assert!(err.contains("1 datagrams sent, 1 received"), "{err}");
}

/// `--no-arq` against the course's kind of Python UDP peer (bind, recvfrom, sendto).
#[test]
fn no_arq_talks_with_a_student_python_udp_script() {
    require("python3");
    let (pa, pp) = (free_udp_port(), free_udp_port());
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', {pp}))\n\
         s.settimeout(20)\n\
         for _ in range(2):\n\
         \x20   data, addr = s.recvfrom(1024)\n\
         \x20   s.sendto(data.upper(), addr)\n"
    );
    let mut py = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let ours = peer(
        pa,
        pp,
        "ann",
        b"ping one\nping two\n".to_vec(),
        &["--no-arq"],
    );
    let (code, out, err) = finish(ours);
    let _ = py.wait();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("<127.0.0.1:{pp}> PING ONE\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("<127.0.0.1:{pp}> PING TWO\n")),
        "{out}"
    );
}

/// The Contract's exit 4 with a peer that never answers at all: after the end of stdin it has
/// `-t` to acknowledge, then the count is said.
#[test]
fn a_peer_that_never_answers_makes_the_other_exit_4_after_t() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let started = Instant::now();
    let a = peer(
        pa,
        pb,
        "ann",
        b"anyone there?\nhello?\n".to_vec(),
        &["-t", "1s"],
    );
    let (code, out, err) = finish(a);
    assert_eq!(code, 4, "{err}");
    assert_eq!(
        out.lines().next(),
        Some(format!("listening on 127.0.0.1:{pa}").as_str())
    );
    assert!(
        err.contains("the peer acknowledged nothing for 1s: 2 messages went unacknowledged"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// `socklab impair --rate 1mbit`: a burst of 1000-byte datagrams leaves the relay no faster than
/// 8 ms each (1 Mbit/s), those beyond `--limit` are dropped and counted as overflowed, and a
/// rate of 0 is a usage error that says why.
#[test]
fn impair_rate_paces_a_burst_and_overflows_past_the_limit() {
    let out = socklab(
        &["impair", "--listen", "0", "--to", "9", "--rate", "0mbit"],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "rate=0mbit: a rate must be above zero");

    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let to = rx.local_addr().unwrap().to_string();
    let mut relay = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to,
        "--rate",
        "1mbit",
        "--limit",
        "25",
        "--json",
    ]);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_addr = format!("127.0.0.1:{}", relay.port());
    const N: u32 = 50;
    let started = Instant::now();
    for i in 0..N {
        let mut d = i.to_be_bytes().to_vec();
        d.resize(1000, 0x5a);
        tx.send_to(&d, &relay_addr).unwrap();
    }
    let mut got = Vec::new();
    let mut last = started;
    let mut buf = [0u8; 2048];
    while let Ok(n) = rx.recv(&mut buf) {
        assert_eq!(n, 1000);
        got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        last = Instant::now();
    }
    relay.signal("INT");
    assert!(relay.wait_exit(Duration::from_secs(10)).is_some());
    let mut stats = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(v) = serde_json::from_str(relay.stdout_rest().trim()) {
            stats = v;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let up = &stats["up"];
    assert_eq!(up["received"], N, "{stats}");
    assert_eq!(up["sent"], got.len() as u64, "{stats}");
    let overflowed = up["overflowed"].as_u64().unwrap();
    assert_eq!(got.len() as u64 + overflowed, u64::from(N), "{stats}");
    // The burst took well under 200 ms to send, so the 25-datagram queue overflowed.
    assert!(overflowed > 0, "{stats}");
    // In order, and never faster than the link: k datagrams of 8,000 bits take k * 8 ms.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    let elapsed = last - started;
    let floor = Duration::from_millis(8) * got.len() as u32;
    assert!(elapsed >= floor, "{} datagrams in {elapsed:?}", got.len());
    // And not much slower either (generous, for a busy machine).
    assert!(
        elapsed < floor + Duration::from_millis(1500),
        "{} datagrams in {elapsed:?}",
        got.len()
    );
}

/// A long stream through 30 % loss each way, with a short `-t`: runs of losses in a row
/// happen many times over, and the sender's timer must keep probing often enough that the
/// receiver, which is there all along, is never taken for gone (exit 4). Every line arrives
/// once, in order.
#[test]
fn a_long_stream_through_heavy_loss_never_gives_up_on_a_present_peer() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut relay = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("127.0.0.1:{pb}"),
        "--loss",
        "30%",
        "--seed",
        "1",
    ]);
    let pr = relay.port();
    const N: usize = 10_000;
    let b = peer(pb, pr, "bob", Vec::new(), &["-t", "3s"]);
    let a = peer(pa, pr, "ann", lines(N, "a"), &["-t", "3s"]);
    let b = std::thread::spawn(move || finish(b));
    let (ca, _, err_a) = finish(a);
    let (cb, out_b, err_b) = b.join().unwrap();
    assert_eq!((ca, cb), (0, 0), "ann:\n{err_a}\nbob:\n{err_b}");
    let got: Vec<&str> = out_b.lines().skip(1).collect();
    assert_eq!(got.len(), N, "bob:\n{err_b}");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, l)| *l == format!("<ann> a line {i}: héllo  wörld")),
        "lines out of order or changed"
    );
    assert!(count(&err_a, " retransmitted") > 1000, "{err_a}");
    relay.signal("INT");
    assert!(relay.wait_exit(Duration::from_secs(10)).is_some());
}

/// `--trace` (README, PROTOCOLS §9.3): every datagram on stderr with what it is, its
/// timestamp, the echo in ACKs, and its bytes; stdout is untouched.
#[test]
fn trace_describes_and_dumps_every_datagram() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let b = peer(pb, pa, "bob", Vec::new(), &[]);
    let a = peer(pa, pb, "ann", lines(2, "a"), &["--trace"]);
    let b = std::thread::spawn(move || finish(b));
    let (ca, out_a, err_a) = finish(a);
    let (cb, out_b, _) = b.join().unwrap();
    assert_eq!((ca, cb), (0, 0), "{err_a}");
    assert_eq!(out_a.lines().count(), 1, "only `listening on`: {out_a}");
    assert_eq!(out_b.lines().skip(1).count(), 2);
    let to = format!("127.0.0.1:{pb}] send ");
    let data = err_a
        .lines()
        .find(|l| l.contains(&to) && l.contains(": DATA ") && l.contains(" seq 0 "))
        .unwrap_or_else(|| panic!("no DATA seq 0 traced:\n{err_a}"));
    assert!(
        data.contains(" ts ") && data.contains("fragment 1/1"),
        "{data}"
    );
    let ack = err_a
        .lines()
        .find(|l| l.contains("] recv ") && l.contains(": ACK ") && l.contains(" next 2"))
        .unwrap_or_else(|| panic!("no ACK of both traced:\n{err_a}"));
    assert!(ack.contains(" echo "), "{ack}");
    // The dump: the version and kind bytes of a DATA after the header line.
    assert!(err_a.contains("  0000  02 01 00 00 "), "{err_a}");
}

/// A transcript that cannot be opened is a local error (exit 6) said before anything else:
/// no `listening on`, no datagram sent.
#[test]
fn a_transcript_that_cannot_be_opened_stops_before_listening() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let a = peer(
        pa,
        pb,
        "ann",
        lines(1, "a"),
        &["--log", "/nonexistent/dir/ann.log"],
    );
    let (code, out, err) = finish(a);
    assert_eq!(code, 6, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("opening the transcript"), "{err}");
}
