//! `socklab chat`: nc and student-style Python clients in every framing, our own `chat join`,
//! and a client that stops reading.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

/// Reads lines from `s` until one contains `needle` (or 10 s pass); returns all read.
fn read_until(s: &mut BufReader<TcpStream>, needle: &str) -> String {
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut line = String::new();
        match s.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                all.push_str(&line);
                if line.contains(needle) {
                    return all;
                }
            }
        }
    }
    panic!("never got {needle:?}; got:\n{all}");
}

fn line_client(addr: &str, nick: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("{nick}\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    read_until(&mut r, &format!("welcome, {nick}"));
    r
}

#[test]
fn lines_reach_every_other_member_of_the_room_unchanged() {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut alice = line_client(&srv.addr, "alice");
    let mut bob = line_client(&srv.addr, "bob");
    read_until(&mut alice, "bob joined #general");
    let text = "héllo, wörld: 1 + 1 = 2  ";
    alice
        .get_mut()
        .write_all(format!("{text}\n").as_bytes())
        .unwrap();
    let got = read_until(&mut bob, "<alice>");
    assert!(got.contains(&format!("#general <alice> {text}\n")), "{got}");
    // Rooms separate, private messages cross them, unknown commands get an error.
    bob.get_mut()
        .write_all(b"/join #other\n/msg alice psst\n/nope\n")
        .unwrap();
    read_until(&mut bob, "unknown command /nope");
    read_until(&mut alice, "*bob* -> alice: psst");
    alice
        .get_mut()
        .write_all(b"only general hears this\n/quit\n")
        .unwrap();
    read_until(&mut alice, "bye");
    bob.get_mut().write_all(b"/who\n").unwrap();
    let who = read_until(&mut bob, "in #other:");
    assert!(!who.contains("only general hears this"), "{who}");
}

#[test]
fn nc_is_a_chat_client() {
    require("nc");
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut bob = line_client(&srv.addr, "bob");
    let mut nc = std::process::Command::new("nc");
    nc.args(["-N", "127.0.0.1", &srv.port().to_string()]);
    let out = run_with(nc, b"carol\nhi from nc\n/quit\n", Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("welcome, carol"), "{text}");
    let got = read_until(&mut bob, "<carol>");
    assert!(got.contains("#general <carol> hi from nc\n"), "{got}");
}

/// A chat client on the course's `MySocket` class (`support::MYSOCKET`), unchanged.
const PY_MYSOCKET_CHAT: &str = r#"
def pad(s):
    b = s.encode()
    return b + b'\0' * (MSGLEN - len(b))
s = MySocket()
s.connect('127.0.0.1', int(sys.argv[1]))
s.mysend(pad(sys.argv[2]))
while True:
    m = s.myreceive().rstrip(b'\0').decode()
    if 'welcome' in m:
        break
s.mysend(pad(sys.argv[3]))
s.mysend(pad('/quit'))
while True:
    m = s.myreceive().rstrip(b'\0').decode()
    print(m)
    if 'bye' in m:
        break
"#;

#[test]
fn the_courses_mysocket_class_chats_in_fixed_1024() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "fixed:1024"]);
    let port = srv.port().to_string();
    // A listener in the same framing, by hand.
    let mut l = TcpStream::connect(&srv.addr).unwrap();
    l.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut record = b"listener".to_vec();
    record.resize(1024, 0);
    l.write_all(&record).unwrap();
    let out = python(
        &format!("{MYSOCKET}{PY_MYSOCKET_CHAT}"),
        &[&port, "student", "hello from MySocket"],
        b"",
    );
    assert!(String::from_utf8_lossy(&ok(&out)).contains("bye"));
    let mut seen = String::new();
    let mut buf = vec![0u8; 1024];
    while !seen.contains("<student> hello from MySocket") {
        l.read_exact(&mut buf).expect("a 1024-byte record");
        let end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        seen.push_str(&String::from_utf8_lossy(&buf[..end]));
        seen.push('\n');
    }
}

/// A header-frame client written with struct and zlib.crc32.
const PY_HEADER_CHAT: &str = r#"
import socket, struct, sys, time, zlib
def frame(payload, mid, crc=None):
    crc = zlib.crc32(payload) if crc is None else crc
    return b'SL' + bytes([1, 0]) + struct.pack('>IIQI', len(payload), mid, int(time.time()*1e6), crc) + payload
def read_frame(s):
    head = b''
    while len(head) < 24:
        c = s.recv(24 - len(head))
        if not c:
            return None
        head += c
    length, mid, ts, crc = struct.unpack('>IIQI', head[4:])
    body = b''
    while len(body) < length:
        body += s.recv(length - len(body))
    assert zlib.crc32(body) == crc, 'bad crc from the server'
    return mid, ts, body.decode()
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.settimeout(10)
s.sendall(frame(b'hdr', 1))
s.sendall(frame(b'framed hello', 2))
s.sendall(frame(b'corrupted', 3, crc=12345))
while True:
    f = read_frame(s)
    if f is None:
        print('closed')
        break
    print(f[0] > 0 or 'welcome' in f[2], f[1] > 1_600_000_000_000_000, f[2])
"#;

#[test]
fn header_frames_carry_id_and_time_and_a_bad_crc_is_answered() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "header"]);
    let port = srv.port().to_string();
    let out = python(PY_HEADER_CHAT, &[&port], b"");
    let text = String::from_utf8_lossy(&ok(&out)).into_owned();
    assert!(text.contains("True True"), "{text}");
    assert!(text.contains("welcome, hdr"), "{text}");
    assert!(text.contains("closing: crc32 mismatch"), "{text}");
    assert_eq!(text.matches("closing:").count(), 1, "said once: {text}");
    assert!(text.trim_end().ends_with("closed"), "{text}");
}

#[test]
fn delimited_messages_never_contain_the_delimiter() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "delim:."]);
    let mut a = TcpStream::connect(&srv.addr).unwrap();
    let mut b = TcpStream::connect(&srv.addr).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    b.write_all(b"bob.").unwrap();
    a.write_all(b"alice.").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    a.write_all(b"version 1 2 is out.").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains("<alice>") && Instant::now() < deadline {
        let n = b.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let messages: Vec<&str> = text.split('.').collect();
    let said = messages.iter().find(|m| m.contains("<alice>")).unwrap();
    assert!(said.ends_with("<alice> version 1 2 is out"), "{said:?}");
    // "127.0.0.1" or a clock never leaks a '.' into a message: each piece is whole.
    assert!(messages.iter().all(|m| !m.contains("\n")), "{messages:?}");
}

#[test]
fn chat_join_sends_stdin_lines_and_leaves_at_eof() {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut bob = line_client(&srv.addr, "bob");
    let out = socklab(
        &["chat", "join", &srv.addr, "--nick", "bot"],
        b"first line\nsecond line\n",
    );
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(
        text.contains("welcome, bot") && text.contains("bye"),
        "{text}"
    );
    let got = read_until(&mut bob, "<bot> second line");
    assert!(got.contains("<bot> first line"), "{got}");
    exits(
        &socklab(&["chat", "join", &srv.addr, "--nick", "9bad"], b""),
        2,
    );
}

/// A client that never reads must neither slow the others nor grow the server.
#[test]
fn a_client_that_never_reads_is_dropped_and_the_others_go_on() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--flood", "off"]);
    let mut sloth = TcpStream::connect(&srv.addr).unwrap();
    sloth.write_all(b"sloth\n").unwrap();
    let mut reader = line_client(&srv.addr, "reader");
    let mut talker = line_client(&srv.addr, "talker");
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let line = format!("{}\n", "x".repeat(1000));
    let burst = line.repeat(200);
    let started = Instant::now();
    // 40 bursts of 200 lines (8 MB): the reader reads every one; the sloth reads nothing.
    for round in 0..40 {
        talker.get_mut().write_all(burst.as_bytes()).unwrap();
        let mut seen = 0;
        while seen < 200 {
            let mut l = String::new();
            assert!(
                reader.read_line(&mut l).unwrap() > 0,
                "round {round}: closed"
            );
            if l.contains("<talker> xxx") {
                seen += 1;
            }
        }
    }
    srv.expect_log("slow consumer");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", srv.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    assert!(
        rss_kb < 100_000,
        "server RSS {rss_kb} kB after 8 MB to a client that never reads"
    );
    drop(sloth);
}

#[test]
fn the_transcript_keeps_every_line_said_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("chat.jsonl");
    let srv = Server::start(&["chat", "serve", "-p", "0", "--log", log.to_str().unwrap()]);
    let mut bob = line_client(&srv.addr, "bob");
    let out = socklab(
        &["chat", "join", &srv.addr, "--nick", "ann", "--room", "#r"],
        b"said in #r\n/me waves\n/msg bob psst\n",
    );
    ok(&out);
    read_until(&mut bob, "*ann* -> bob: psst");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["room"], "#r");
    assert_eq!(lines[0]["nick"], "ann");
    assert_eq!(lines[0]["text"], "said in #r");
    assert_eq!(lines[1]["action"], true);
    assert_eq!(lines[2]["to"], "bob");
    assert!(lines[0]["id"].as_u64().unwrap() > 0);
    assert!(lines[0]["time"].as_str().unwrap().starts_with("20"));
    exits(
        &socklab(
            &["chat", "serve", "-p", "0", "--log", "/nonexistent/dir/x"],
            b"",
        ),
        2,
    );
}

/// 200 clients at once, each sending one message: each receives the other 199.
#[test]
fn two_hundred_clients_each_hear_the_other_199() {
    const N: usize = 200;
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut clients: Vec<BufReader<TcpStream>> = (0..N)
        .map(|i| line_client(&srv.addr, &format!("c{i}")))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.get_mut()
            .write_all(format!("message {i}\n").as_bytes())
            .unwrap();
    }
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            std::thread::spawn(move || {
                c.get_ref()
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let mut heard = std::collections::HashSet::new();
                while heard.len() < N - 1 {
                    let mut l = String::new();
                    if c.read_line(&mut l).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(rest) = l.split("> message ").nth(1) {
                        heard.insert(rest.trim().parse::<usize>().unwrap());
                    }
                }
                assert!(!heard.contains(&i), "client {i} heard itself");
                heard.len()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), N - 1, "client {i}");
    }
}

/// `-t` bounds the wait for a nickname; a registered client may stay silent longer.
#[test]
fn silence_is_allowed_after_the_nickname_but_not_before() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "-t", "1s"]);
    let mut mute = TcpStream::connect(&srv.addr).unwrap();
    let mut lurker = line_client(&srv.addr, "lurker");
    std::thread::sleep(Duration::from_millis(2500));
    mute.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let _ = mute.read_to_string(&mut got);
    srv.expect_log("no nickname within 1s");
    lurker.get_mut().write_all(b"/ping\n").unwrap();
    read_until(&mut lurker, "pong");
}

/// `--max-per-ip` refuses with a message; `--motd` greets each client after its nickname.
#[test]
fn limits_refuse_with_a_message_and_the_motd_greets() {
    let dir = tempfile::tempdir().unwrap();
    let motd = dir.path().join("motd.txt");
    std::fs::write(&motd, "be kind\nno spam\n").unwrap();
    let srv = Server::start(&[
        "chat",
        "serve",
        "-p",
        "0",
        "--max-per-ip",
        "1",
        "--motd",
        motd.to_str().unwrap(),
    ]);
    let mut first = TcpStream::connect(&srv.addr).unwrap();
    first.write_all(b"ann\n").unwrap();
    let mut first = BufReader::new(first);
    let got = read_until(&mut first, "motd: no spam");
    assert!(got.contains("motd: be kind"), "{got}");
    let mut second = TcpStream::connect(&srv.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut refused = String::new();
    let _ = second.read_to_string(&mut refused);
    assert!(
        refused.contains("refused: 1 connections from this address already"),
        "{refused}"
    );
}

/// `--ping`: a client program that hangs with its socket open is pinged, told, and dropped, and
/// the room hears why; `chat join` answers pings by itself and stays; its `--log` keeps a
/// transcript without the pongs.
#[test]
fn a_hung_client_is_pinged_and_dropped_while_chat_join_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("joiner.log");
    let srv = Server::start(&["chat", "serve", "-p", "0", "--ping", "1s"]);
    let mut hung = line_client(&srv.addr, "hung");
    // `chat join` says nothing for 3.5 s (three ping intervals), then one line, then leaves.
    let mut joiner = std::process::Command::new("sh");
    joiner
        .arg("-c")
        .arg(r#"(sleep 3.5; echo 'still here') | "$0" chat join "$1" --nick joiner --log "$2""#)
        .arg(bin())
        .arg(&srv.addr)
        .arg(&log);
    let joiner = std::thread::spawn(move || run_with(joiner, b"", Duration::from_secs(20)));
    // The hung client sees the ping, answers nothing, and is told before it is closed.
    read_until(&mut hung, "PING 1: answer /pong 1");
    let started = Instant::now();
    let got = read_until(&mut hung, "!!! closing: no answer to ping within 1s");
    assert!(started.elapsed() < Duration::from_secs(5), "{got}");
    let mut rest = String::new();
    let _ = hung.read_to_string(&mut rest);
    srv.expect_log("no answer to ping within 1s");
    let out = joiner.join().unwrap();
    let text = String::from_utf8(ok(&out)).unwrap();
    assert!(
        text.contains("hung left (no answer to ping within 1s)"),
        "{text}"
    );
    assert!(
        !text.contains("PING"),
        "pings are answered, not shown: {text}"
    );
    assert!(!text.contains("joiner left"), "{text}");
    let transcript = std::fs::read_to_string(&log).unwrap();
    assert!(transcript.contains("] > joiner\n"), "{transcript}");
    assert!(transcript.contains("] > still here\n"), "{transcript}");
    assert!(transcript.contains("-!- welcome, joiner"), "{transcript}");
    assert!(transcript.contains("hung left"), "{transcript}");
    assert!(!transcript.contains("pong"), "{transcript}");
}

/// `-t` counts from the connection's start: a client dripping a byte at a time without ever
/// finishing its nickname is closed on time.
#[test]
fn a_dripped_nickname_does_not_extend_the_deadline() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "-t", "1s"]);
    let mut drip = TcpStream::connect(&srv.addr).unwrap();
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..20 {
        if drip.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if srv.stderr().contains("no nickname within 1s") {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after 4 s: {}", srv.stderr());
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A client whose host vanishes (no FIN, no RST) is found by TCP keepalive: the server's socket
/// for it has a keepalive timer, as `ss -o` shows (the probes themselves take 90 s).
#[test]
fn the_server_keeps_tcp_keepalive_on_each_client() {
    require("ss");
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let _alice = line_client(&srv.addr, "alice");
    let port = srv.port();
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("timer:(keepalive,"), "{text}");
}

/// A history replay longer than half of `--sendq` keeps the most recent messages and says how
/// many older ones it left out; the newcomer stays.
#[test]
fn a_reply_longer_than_the_send_queue_is_cut_and_said() {
    let srv = Server::start(&[
        "chat",
        "serve",
        "-p",
        "0",
        "--flood",
        "off",
        "--history",
        "1000",
        "--sendq",
        "8K",
    ]);
    let mut alice = line_client(&srv.addr, "alice");
    let long = "x".repeat(200);
    let mut said = String::new();
    for i in 0..100 {
        said.push_str(&format!("{i:03} {long}\n"));
    }
    said.push_str("/ping\n");
    alice.get_mut().write_all(said.as_bytes()).unwrap();
    read_until(&mut alice, "pong");
    let mut bob = TcpStream::connect(&srv.addr).unwrap();
    bob.write_all(b"bob\n").unwrap();
    let mut bob = BufReader::new(bob);
    let got = read_until(&mut bob, "(history) #general <alice> 099 ");
    let replayed = got.lines().filter(|l| l.contains("(history)")).count();
    let note = got
        .lines()
        .find(|l| l.contains("older messages not replayed"))
        .unwrap_or_else(|| panic!("{got}"));
    let older: usize = note
        .split("-!- ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{note}"));
    // The most recent ones, in order, up to the last.
    assert_eq!(replayed + older, 100, "{got}");
    assert!(replayed > 0 && older > 0, "{got}");
    assert!(
        got.contains(&format!("<alice> {older:03} "))
            && !got.contains(&format!("<alice> {:03} ", older - 1)),
        "{got}"
    );
    assert!(note.ends_with("the replay is kept under 4 KiB"), "{note}");
    // Bob is still in: what he says reaches alice.
    bob.get_mut().write_all(b"still here\n").unwrap();
    read_until(&mut alice, "<bob> still here");
}

/// In `fixed:N` (N >= 256) a chat line reaches the others as exactly one record: one that would
/// not fit is refused, with how much text fits.
#[test]
fn fixed_records_carry_each_chat_line_whole_or_refuse_it() {
    let srv = Server::start(&["chat", "serve", "-p", "0", "--framing", "fixed:300"]);
    let record = |s: &mut TcpStream| {
        let mut r = [0u8; 300];
        s.read_exact(&mut r).unwrap();
        String::from_utf8_lossy(&r)
            .trim_end_matches('\0')
            .to_string()
    };
    let send = |s: &mut TcpStream, text: &str| {
        let mut r = text.as_bytes().to_vec();
        r.resize(300, 0);
        s.write_all(&r).unwrap();
    };
    let until = |s: &mut TcpStream, needle: &str| loop {
        let got = record(s);
        if got.contains(needle) {
            return got;
        }
    };
    let mut ann = TcpStream::connect(&srv.addr).unwrap();
    let mut bob = TcpStream::connect(&srv.addr).unwrap();
    for s in [&ann, &bob] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    send(&mut ann, "ann");
    until(&mut ann, "you are in #general");
    send(&mut bob, "bob");
    until(&mut bob, "you are in #general");
    until(&mut ann, "bob joined");
    // "[HH:MM:SS] #general <ann> " is 26 bytes: 274 bytes of text fit, 275 do not.
    let fits = "f".repeat(274);
    send(&mut ann, &fits);
    let got = until(&mut bob, "<ann>");
    assert!(got.ends_with(&format!("<ann> {fits}")), "{got}");
    send(&mut ann, &"g".repeat(275));
    let refusal = until(&mut ann, "!!!");
    assert!(
        refusal.contains("message too long for one 300-byte record: at most 274 bytes of text"),
        "{refusal}"
    );
    send(&mut ann, "short");
    let next = until(&mut bob, "<ann>");
    assert!(
        next.ends_with("<ann> short"),
        "nothing of the refused line: {next}"
    );
}
