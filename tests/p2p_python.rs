//! `socklab p2p chat` against `tests/support/p2p_peer.py`, a second implementation of
//! docs/PROTOCOLS.md §9 written from the document alone in stdlib Python: the document is
//! enough to interoperate. Long lines are cut into fragments, repetitive ones compressed, both
//! ways; directly and through `socklab impair`.

use std::io::{ErrorKind, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const PEER_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/p2p_peer.py");

/// Spawns `cmd` with piped stdio and feeds it `input` (then closes its stdin) from a thread.
fn spawn_fed(mut cmd: Command, input: Vec<u8>) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    child
}

fn socklab_peer(listen: u16, to: u16, nick: &str, input: Vec<u8>) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(["p2p", "chat", "--listen", &format!("127.0.0.1:{listen}")])
        .args(["--peer", &format!("127.0.0.1:{to}"), "--nick", nick]);
    spawn_fed(cmd, input)
}

fn python_peer(listen: u16, to: u16, nick: &str, input: Vec<u8>) -> Child {
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg(PEER_PY)
        .args([listen.to_string(), to.to_string(), nick.to_string()]);
    spawn_fed(cmd, input)
}

/// Waits (10 s at most) until something listens on UDP `port`: a datagram sent there draws no
/// ICMP port unreachable (the Python peer ignores it, as it is not from its peer). socklab's
/// first flight must not hit a closed port: if all of it is lost, all of it is retransmitted,
/// Karn's rule leaves socklab without an RTT sample, its timer stays at 1 s and doubles at each
/// loss, and a lost last ACK can then leave it waiting longer than the Python peer's 3 s of
/// quiet before it stops (socklab then exits 4).
fn wait_bound(port: u16) {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.connect(("127.0.0.1", port)).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !refused(probe.send(b"are you there?")) && !refused(probe.recv(&mut [0; 64])) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on UDP port {port}");
}

fn refused(r: std::io::Result<usize>) -> bool {
    r.is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)
}

/// Waits for `child` (60 s at most, then it is killed) and returns its exit code, stdout and
/// stderr.
fn finish(child: Child) -> (i32, String, String) {
    let id = child.id();
    let (done, stop) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if stop.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = watchdog.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` lines from `tag`: every tenth (from 3) a long line of letters and digits at random
/// (2,500 to 6,000 bytes: compressed, still two to four fragments at the default --mtu 1200),
/// every tenth (from 7) a highly repetitive one (3,500 bytes, compressed into one fragment), the
/// rest short lines with non-ASCII letters (too short to gain from compression).
fn lines(n: usize, tag: &str) -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..n)
        .map(|i| match i % 10 {
            3 => {
                let len = 2500 + (i * 977) % 3500;
                let text: String = noise(len, i as u64 + 1)
                    .iter()
                    .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                    .collect();
                format!("{tag} {i} {text}")
            }
            7 => format!("{tag} {i} {}", "over and over ".repeat(250)),
            _ => format!("{tag} line {i}: héllo  wörld"),
        })
        .collect()
}

fn input(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn shown(nick: &str, lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| format!("<{nick}> {l}")).collect()
}

/// The Python peer's counters (`name=value` words on its last stderr line).
fn counter(stderr: &str, name: &str) -> u64 {
    stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in the Python peer's stderr:\n{stderr}"))
}

/// Runs ann (socklab, listening on `pa`) and pyb (Python, on `pb`), both sending to the ports
/// given, and checks that each printed exactly the other's lines, once, in order.
fn exchange(pa: u16, ann_to: u16, pb: u16, pyb_to: u16, n_ann: usize, n_pyb: usize) {
    let (from_ann, from_pyb) = (lines(n_ann, "a"), lines(n_pyb, "b"));
    let pyb = python_peer(pb, pyb_to, "pyb", input(&from_pyb));
    wait_bound(pb);
    let ann = socklab_peer(pa, ann_to, "ann", input(&from_ann));
    // Both outputs are read at once: a peer whose stdout nobody reads stops.
    let pyb = std::thread::spawn(move || finish(pyb));
    let (ca, out_a, err_a) = finish(ann);
    let (cb, out_b, err_b) = pyb.join().unwrap();
    assert_eq!((ca, cb), (0, 0), "ann:\n{err_a}\npyb:\n{err_b}");
    assert_eq!(
        out_a.lines().next(),
        Some(format!("listening on 127.0.0.1:{pa}").as_str())
    );
    let got_a: Vec<&str> = out_a.lines().skip(1).collect();
    assert_eq!(got_a, shown("pyb", &from_pyb), "ann:\n{err_a}");
    let got_b: Vec<&str> = out_b.lines().collect();
    assert_eq!(got_b, shown("ann", &from_ann), "pyb:\n{err_b}");
    assert!(
        err_a.contains(&format!("{n_ann} messages sent, {n_pyb} received")),
        "{err_a}"
    );
    // Fragmentation and compression happened both ways.
    let (received, fragments) = (
        counter(&err_b, "received"),
        counter(&err_b, "frags_received"),
    );
    assert!(fragments > received, "ann never fragmented: {err_b}");
    assert!(
        counter(&err_b, "compressed_received") > 0,
        "ann never compressed: {err_b}"
    );
    assert!(
        counter(&err_b, "frags_sent") > counter(&err_b, "sent")
            && counter(&err_b, "compressed_sent") > 0,
        "{err_b}"
    );
}

#[test]
fn the_python_peer_and_socklab_exchange_every_line_once_in_order() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    exchange(pa, pb, pb, pa, 300, 50);
}

/// The same through `socklab impair` (loss, duplication, reordering, corruption): the Python
/// peer's retransmission, duplicate detection, reordering and CRC check work against socklab's.
#[test]
fn the_python_peer_and_socklab_through_a_bad_link() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut relay = Server::start(&[
        "impair",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("127.0.0.1:{pb}"),
        "--loss",
        "10%",
        "--dup",
        "5%",
        "--reorder",
        "5%",
        "--corrupt",
        "2%",
        "--seed",
        "3",
    ]);
    let pr = relay.port();
    exchange(pa, pr, pb, pr, 100, 30);
    relay.signal("INT");
    assert!(relay.wait_exit(Duration::from_secs(10)).is_some());
}
