//! The chat's IRC dialect on the same port as lines: `ii` (a real IRC client, scripted through
//! its files) and a raw IRC session beside `nc` users.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// Reads lines until one contains `needle` (10 s at most); returns all read.
fn until(s: &mut BufReader<TcpStream>, needle: &str) -> String {
    s.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = String::new();
    loop {
        let mut line = String::new();
        match s.read_line(&mut line) {
            Ok(0) | Err(_) => panic!("never got {needle:?}; got:\n{all}"),
            Ok(_) => {
                all.push_str(&line);
                if line.contains(needle) {
                    return all;
                }
            }
        }
    }
}

fn connect(addr: &str, first: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(first.as_bytes()).unwrap();
    BufReader::new(s)
}

/// Waits until `file` exists and contains `needle` (10 s at most).
fn file_contains(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{file:?} never got {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_raw_irc_session_registers_and_talks_with_nc_users() {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let mut nc = connect(&srv.addr, "bob\n");
    until(&mut nc, "you are in #general");
    nc.get_mut().write_all(b"said before ana came\n").unwrap();
    // The room's history, replayed to ana with the time it was said (server-time).
    std::thread::sleep(Duration::from_millis(200));
    let mut ana = connect(
        &srv.addr,
        "CAP LS 302\r\nNICK bob\r\nNICK ana\r\nUSER ana 0 * :Ana\r\nCAP REQ :server-time\r\nCAP END\r\n",
    );
    let reg = until(&mut ana, " 366 ana #general ");
    let lines: Vec<&str> = reg.lines().collect();
    assert_eq!(
        lines[0], ":socklab CAP * LS :message-tags server-time",
        "{reg}"
    );
    assert_eq!(
        lines[1], ":socklab 433 * bob :Nickname is already in use",
        "{reg}"
    );
    assert_eq!(lines[2], ":socklab CAP * ACK server-time", "{reg}");
    assert!(lines[3].starts_with(":socklab 001 ana :Welcome"), "{reg}");
    assert!(
        reg.contains(":socklab 422 ana :MOTD File is missing\r\n"),
        "{reg}"
    );
    assert!(reg.contains(" :ana!ana@socklab JOIN #general\r\n"), "{reg}");
    assert!(
        reg.contains(":socklab 353 ana = #general :ana bob\r\n"),
        "{reg}"
    );
    assert!(
        !reg.contains("-!-"),
        "no line-dialect text reaches an IRC client: {reg}"
    );
    let replay = until(&mut ana, "PRIVMSG #general :said before ana came");
    assert!(
        replay.starts_with("@time=") && replay.contains(" :bob!bob@socklab "),
        "{replay}"
    );
    until(&mut nc, "ana joined #general");
    // IRC to nc, and nc to IRC, text unchanged.
    ana.get_mut()
        .write_all(b"PRIVMSG #general :hello bob, from IRC: 100% real\r\n")
        .unwrap();
    until(&mut nc, "#general <ana> hello bob, from IRC: 100% real");
    nc.get_mut()
        .write_all(b"hi ana: plain lines here\n")
        .unwrap();
    let got = until(&mut ana, "PRIVMSG #general :hi ana: plain lines here");
    assert!(
        got.contains("@time=") && got.contains(" :bob!bob@socklab PRIVMSG"),
        "{got}"
    );
    // An action, a private message both ways, a nick change.
    nc.get_mut().write_all(b"/me waves\n").unwrap();
    until(&mut ana, "PRIVMSG #general :\u{1}ACTION waves\u{1}");
    ana.get_mut()
        .write_all(b"PRIVMSG bob :just you\r\n")
        .unwrap();
    until(&mut nc, "*ana* -> bob: just you");
    ana.get_mut().write_all(b"NICK anna\r\n").unwrap();
    until(&mut ana, ":ana!ana@socklab NICK anna");
    until(&mut nc, "ana is now anna");
    // A line over IRC's 512 bytes gets 417 and the session goes on; nothing of it is said.
    let long = format!("PRIVMSG #general :{}\r\n", "x".repeat(600));
    ana.get_mut().write_all(long.as_bytes()).unwrap();
    until(&mut ana, ":socklab 417 anna ");
    ana.get_mut()
        .write_all(b"FROB\r\nQUIT :gone fishing\r\n")
        .unwrap();
    let bye = until(&mut ana, "ERROR :Closing link: anna (gone fishing)");
    assert!(
        bye.contains(":socklab 421 anna FROB :Unknown command"),
        "{bye}"
    );
    let rest = until(&mut nc, "anna left (gone fishing)");
    assert!(!rest.contains("xxxx"), "{rest}");
}

/// `ii`, a real IRC client from Debian, scripted through its files: it registers, is in
/// `#general`, and talks with an nc user both ways.
#[test]
fn ii_and_nc_meet_in_general() {
    require("ii");
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let port = srv.port().to_string();
    let mut ii = std::process::Command::new("ii")
        .args(["-s", "127.0.0.1", "-p", &port, "-n", "iiuser", "-i"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let chan = dir.path().join("127.0.0.1").join("#general");
    file_contains(
        &chan.join("out"),
        "iiuser(iiuser@socklab) has joined #general",
    );
    let mut nc = connect(&srv.addr, "ncbob\n");
    until(&mut nc, "you are in #general");
    file_contains(
        &chan.join("out"),
        "ncbob(ncbob@socklab) has joined #general",
    );
    nc.get_mut().write_all(b"hi iiuser\n").unwrap();
    file_contains(&chan.join("out"), "<ncbob> hi iiuser");
    // ii's input is a FIFO: opening it for writing waits for ii to read it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(chan.join("in"))
        .unwrap()
        .write_all(b"hello from ii\n")
        .unwrap();
    until(&mut nc, "#general <iiuser> hello from ii");
    let _ = ii.kill();
    let _ = ii.wait();
    let mut rest = String::new();
    nc.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = nc.read_to_string(&mut rest);
}
