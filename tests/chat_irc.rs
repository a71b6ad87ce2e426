//! The chat's IRC dialect on the same port as lines: `ii` (a real IRC client, scripted through
//! its files), irssi (a real IRC client in a terminal, driven through tmux), a raw IRC session
//! beside `nc` users, and one scripted raw session run against socklab and against ngircd side
//! by side, so the test shows which replies match.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// How long a test waits for anything a peer should say or do.
const PATIENCE: Duration = Duration::from_secs(15);

/// Types `line` in irssi until nc hears `needle` (three tries, 5 s each): a line typed while
/// irssi is busy can be lost on a loaded machine (seen in full-suite runs only).
fn type_until_heard(irssi: &Irssi, nc: &mut BufReader<TcpStream>, line: &str, needle: &str) {
    nc.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut all = String::new();
    for _ in 0..3 {
        irssi.type_line(line);
        loop {
            let mut got = String::new();
            match nc.read_line(&mut got) {
                Ok(0) => panic!("nc's connection closed; got:\n{all}"),
                Err(_) => break,
                Ok(_) => {
                    all.push_str(&got);
                    if got.contains(needle) {
                        return;
                    }
                }
            }
        }
    }
    panic!("never got {needle:?} after typing {line:?} three times; got:\n{all}");
}

/// Reads lines until one contains `needle` (15 s per line at most); returns all read.
fn until(s: &mut BufReader<TcpStream>, needle: &str) -> String {
    s.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
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

/// Waits until `file` exists and contains `needle` (15 s at most).
fn file_contains(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
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

// --- irssi in tmux -----------------------------------------------------------------------------

/// irssi in a detached tmux session on a private tmux server, with a throw-away home holding
/// its config, its logs and the tmux server's socket (`tmux -S HOME/tmux.sock`: like `-L NAME`
/// but unique by construction, and gone with the directory; tmux leaves its socket file behind
/// in /tmp/tmux-UID when its server exits). Dropping it kills that tmux server, and irssi with
/// it, also when the test panics.
struct Irssi {
    /// The tmux server's socket.
    socket: PathBuf,
    /// irssi's pid (the pane's process), to make sure it is gone after the tmux server.
    pid: Option<u32>,
    /// irssi's `--home`: config, `all.log` (every message, status window included) and
    /// `logs/#channel.log` (autolog, one file per channel).
    home: tempfile::TempDir,
}

impl Irssi {
    /// Starts irssi as `nick`, connecting to 127.0.0.1:`port` and nowhere else: its config
    /// has no servers, no chat networks and no channels of its own. irssi's own flood
    /// protection (a queue that holds commands 2.2 s apart after the first five) is off, so
    /// what is typed goes out at once.
    fn start(nick: &str, port: u16) -> Irssi {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().display().to_string();
        let config = format!(
            r#"servers = ( );
chatnets = {{ }};
channels = ( );
settings = {{
  core = {{
    real_name = "socklab test";
    user_name = "{nick}";
    nick = "{nick}";
    settings_autosave = "no";
    awaylog_file = "{h}/away.log";
  }};
  "fe-common/core" = {{
    autolog = "yes";
    autolog_path = "{h}/logs/$0.log";
    autolog_level = "all";
    log_timestamp = "%H:%M:%S ";
  }};
  "irc/core" = {{
    cmd_queue_speed = "0";
    cmds_max_at_once = "100";
  }};
}};
logs = {{ "{h}/all.log" = {{ auto_open = "yes"; level = "ALL"; }}; }};
"#
        );
        std::fs::write(home.path().join("config"), config).unwrap();
        let socket = home.path().join("tmux.sock");
        // The guard exists before the tmux server does: whatever fails next, drop cleans up.
        let mut irssi = Irssi {
            socket,
            pid: None,
            home,
        };
        let port = port.to_string();
        let home_arg = format!("--home={h}");
        let out = irssi.tmux(&[
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "-s",
            "irc",
            "irssi",
            &home_arg,
            "-n",
            nick,
            "-c",
            "127.0.0.1",
            "-p",
            &port,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        let pid = irssi.tmux(&["display-message", "-p", "-t", "irc", "#{pane_pid}"]);
        irssi.pid = String::from_utf8_lossy(&pid.stdout).trim().parse().ok();
        irssi
    }

    /// Runs `tmux -S SOCKET -f /dev/null ARGS` with irssi's home as HOME.
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Types `text` into irssi's input line and presses Enter.
    fn type_line(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "irc", "-l", text]);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
        let out = self.tmux(&["send-keys", "-t", "irc", "Enter"]);
        assert!(out.status.success(), "tmux send-keys Enter: {out:?}");
    }

    /// Waits until irssi's input line takes keys: a probe key is typed until it shows, then
    /// erased. (Keys typed while irssi is still starting up, on a loaded machine, are lost.)
    fn wait_for_input(&self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let out = self.tmux(&["send-keys", "-t", "irc", "-l", "§"]);
            assert!(out.status.success(), "tmux send-keys: {out:?}");
            let probe = Instant::now() + Duration::from_millis(500);
            while Instant::now() < probe {
                if self
                    .screen()
                    .lines()
                    .any(|l| l.starts_with('[') && l.trim_end().ends_with('§'))
                {
                    let out = self.tmux(&["send-keys", "-t", "irc", "C-u"]);
                    assert!(out.status.success(), "tmux send-keys C-u: {out:?}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("irssi never took a key:\n{}", self.screen());
    }

    /// Types `text` and Enter until `done` holds, three times at most, 5 s each. A line typed
    /// while irssi is busy redrawing can be taken as part of a paste and not run (seen only
    /// when the whole suite loads the machine); the commands retyped here are idempotent.
    fn type_until(&self, text: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..3 {
            self.type_line(text);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if done(self) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!(
            "typing {text:?} three times had no effect:\n--- all.log:\n{}\n--- screen:\n{}",
            std::fs::read_to_string(self.all_log()).unwrap_or_default(),
            self.screen()
        );
    }

    /// What the terminal shows now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "irc"]).stdout).into()
    }

    /// The log of every message irssi printed, status window included.
    fn all_log(&self) -> PathBuf {
        self.home.path().join("all.log")
    }

    /// The autolog of `channel`'s window.
    fn channel_log(&self, channel: &str) -> PathBuf {
        self.home.path().join("logs").join(format!("{channel}.log"))
    }

    /// Waits until `file` contains `needle` (15 s); returns its text. On timeout the failure
    /// shows the file, the full log and the screen.
    #[track_caller]
    fn wait_log(&self, file: &Path, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "{file:?} never got {needle:?}:\n{text}\n--- all.log:\n{}\n--- screen:\n{}",
                    std::fs::read_to_string(self.all_log()).unwrap_or_default(),
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the tmux session is gone (irssi exited, so its only window closed).
    fn wait_exit(&self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if !self.tmux(&["has-session", "-t", "irc"]).status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Whether process `pid` still runs (a zombie does not count).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

impl Drop for Irssi {
    fn drop(&mut self) {
        // Kills every session and the server; irssi gets SIGHUP with its terminal.
        let _ = self.tmux(&["kill-server"]);
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if running(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// irssi, driven through tmux, against `chat serve`: it registers and is put in `#general`,
/// talks with an nc user both ways (with `/msg` and by typing in the channel window), is
/// refused a nickname the nc user holds (433), and its `/quit bye` reaches the nc user.
/// Assertions read irssi's own logs; the screen is read once, and shown on failure.
#[test]
fn irssi_in_tmux_and_nc_meet_in_general() {
    require("irssi");
    require("tmux");
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let irssi = Irssi::start("irssinick", srv.port());
    let chan = irssi.channel_log("#general");
    // Registered: the welcome (001), then the server's JOIN puts irssi in #general.
    irssi.wait_log(&chan, "irssinick [irssinick@socklab] has joined #general");
    let all = irssi.wait_log(&irssi.all_log(), "Welcome to the socklab chat, irssinick");
    let connecting: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("Connecting to"))
        .collect();
    assert_eq!(
        connecting.len(),
        1,
        "irssi connects to our server only:\n{all}"
    );
    assert!(
        connecting[0].contains(&format!("127.0.0.1 [127.0.0.1] port {}", srv.port())),
        "{all}"
    );

    let mut nc = connect(&srv.addr, "bob\n");
    until(&mut nc, "you are in #general");
    irssi.wait_log(&chan, "bob [bob@socklab] has joined #general");

    // irssi to nc, with /msg from the status window, then typed in the channel window.
    irssi.wait_for_input();
    type_until_heard(
        &irssi,
        &mut nc,
        "/msg #general hello from irssi",
        "#general <irssinick> hello from irssi",
    );
    // nc to irssi.
    nc.get_mut().write_all(b"hello irssi, from nc\n").unwrap();
    irssi.wait_log(&chan, "< bob> hello irssi, from nc");
    irssi.type_until("/window goto #general", |i| {
        i.screen().contains("< bob> hello irssi, from nc")
    });
    type_until_heard(
        &irssi,
        &mut nc,
        "typed in the channel window",
        "#general <irssinick> typed in the channel window",
    );

    // bob is taken: the server answers 433, which irssi prints as "Nick bob is already in
    // use", and irssi keeps its nickname.
    irssi.type_until("/nick bob", |i| {
        std::fs::read_to_string(i.all_log())
            .unwrap_or_default()
            .contains("Nick bob is already in use")
    });
    irssi.type_line("/msg #general still irssinick");
    let between = until(&mut nc, "#general <irssinick> still irssinick");
    assert!(!between.contains(" is now "), "{between}");

    irssi.type_line("/quit bye");
    // (A loaded machine may take a while; on failure, show what irssi did.)
    nc.get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("irssinick left (bye)") {
        let mut line = String::new();
        if nc.read_line(&mut line).unwrap_or(0) == 0 {
            panic!(
                "nc never got \"irssinick left (bye)\"; got:\n{seen}\nirssi's screen:\n{}\n\
                 irssi's log:\n{}",
                irssi.screen(),
                std::fs::read_to_string(irssi.all_log()).unwrap_or_default()
            );
        }
        seen.push_str(&line);
    }
    assert!(
        irssi.wait_exit(),
        "irssi did not exit after /quit:\n{}",
        irssi.screen()
    );
}

// --- one scripted session, socklab beside ngircd -----------------------------------------------

/// Debian's ngircd, configured by the test in a temporary directory on a free loopback port
/// (the settings bench/chat.sh uses), killed on drop.
struct Ngircd {
    child: Child,
    port: u16,
    /// Everything it logged (with `-n` it logs to stdout).
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    fn start() -> Ngircd {
        require("ngircd");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ngircd.conf");
        for _attempt in 0..8 {
            let port = free_port();
            // No PAM, ident or DNS lookups: nothing leaves the loopback. A MOTD phrase, so
            // it sends 375/372/376 (socklab, without a MOTD, sends 422: both RFC 2812). Run
            // as root, it switches to `nobody` and cannot write the pid file: harmless.
            let text = format!(
                "[Global]\n\tName = ngircd.test\n\tInfo = socklab test\n\
                 \tAdminInfo1 = socklab tests\n\tAdminInfo2 = loopback\n\
                 \tAdminEMail = nobody@invalid\n\tListen = 127.0.0.1\n\tPorts = {port}\n\
                 \tPidFile = {pid}\n\tMotdPhrase = socklab test\n\
                 [Limits]\n\tMaxConnections = 0\n\tMaxConnectionsIP = 0\n\tMaxJoins = 0\n\
                 \tMaxNickLength = 16\n\tPingTimeout = 600\n\tPongTimeout = 600\n\
                 [Options]\n\tPAM = no\n\tIdent = no\n\tDNS = no\n",
                pid = dir.path().join("ngircd.pid").display()
            );
            std::fs::write(&conf, text).unwrap();
            let mut child = Command::new("ngircd")
                .arg("-n")
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ngircd");
            let log = Arc::new(Mutex::new(String::new()));
            let (tx, rx) = std::sync::mpsc::channel();
            let out = BufReader::new(child.stdout.take().unwrap());
            let sink = log.clone();
            // Reads its log to the end, so it never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in out.lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut log = sink.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    let _ = tx.send(line);
                }
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut clash = false;
            let mut ready = false;
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if line.contains("Now listening on") {
                    ready = true;
                    break;
                }
                clash |= line.contains("Address already in use");
            }
            if ready {
                return Ngircd {
                    child,
                    port,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            if !clash {
                panic!("ngircd did not start:\n{}", log.lock().unwrap());
            }
        }
        panic!("ngircd could not bind a free loopback port in 8 attempts");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One IRC message as received: the raw line, and its command and parameters (tags and
/// prefix parsed off).
#[derive(Debug, Clone)]
struct Reply {
    raw: String,
    command: String,
    params: Vec<String>,
}

impl Reply {
    /// `[@tags SP] [:prefix SP] command *( SP middle ) [ SP :trailing ]`.
    fn parse(raw: &str) -> Reply {
        let raw = raw.trim_end_matches(['\r', '\n']).to_string();
        let mut rest = raw.as_str();
        for lead in ['@', ':'] {
            if rest.starts_with(lead) {
                rest = rest
                    .split_once(' ')
                    .map_or("", |(_, r)| r.trim_start_matches(' '));
            }
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_string());
                break;
            }
            let (middle, more) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(middle.to_string());
            rest = more;
        }
        Reply {
            command: command.to_ascii_uppercase(),
            params,
            raw,
        }
    }

    /// What the comparison looks at: the command or numeric; a `PONG` with its token.
    fn key(&self) -> String {
        match (self.command.as_str(), self.params.last()) {
            ("PONG", Some(token)) => format!("PONG {token}"),
            _ => self.command.clone(),
        }
    }

    /// A numeric error reply (400–599).
    fn is_error(&self) -> bool {
        self.command.len() == 3
            && self.command.bytes().all(|b| b.is_ascii_digit())
            && matches!(self.command.as_bytes()[0], b'4' | b'5')
    }
}

/// A raw IRC connection.
struct IrcConn {
    r: BufReader<TcpStream>,
    /// A line read in part when a read timed out.
    partial: Vec<u8>,
}

impl IrcConn {
    fn connect(addr: &str) -> IrcConn {
        IrcConn {
            r: BufReader::new(TcpStream::connect(addr).unwrap()),
            partial: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.r
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// The next message, or `None` at the end of the stream, on an error, or at `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<Reply> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.r.get_ref().set_read_timeout(Some(left)).unwrap();
        match self.r.read_until(b'\n', &mut self.partial) {
            Ok(_) if self.partial.ends_with(b"\n") => {
                let line = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                Some(Reply::parse(&line))
            }
            _ => None,
        }
    }
}

/// How a step's replies are collected.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// On the session's connection, followed by `PING :syncN`: the replies are what comes
    /// before the matching `PONG`. Both servers answer in order, so a step that has no reply
    /// (ngircd's flood penalty delays, it does not reorder) is known to have none.
    Sync,
    /// On a second connection, until a numeric that ends a registration attempt.
    Second,
    /// `QUIT`: everything until the server closes the connection.
    Quit,
}

/// One step of the scripted session.
struct Step {
    what: &'static str,
    send: &'static [&'static str],
    via: Via,
    /// Replies RFC 2812 calls for that both servers must send; each entry lists alternatives.
    both: &'static [&'static [&'static str]],
    /// Count the previous step's replies too (socklab joins `#general` at registration).
    with_previous: bool,
    /// A reply RFC 2812 calls for that only socklab is held to here (ngircd differs).
    socklab: &'static [&'static str],
    /// RFC 2812 has no reply for success: neither server may answer with an error numeric.
    no_error: bool,
    /// Where and why the servers legitimately differ.
    note: &'static str,
}

const fn step(what: &'static str, send: &'static [&'static str]) -> Step {
    Step {
        what,
        send,
        via: Via::Sync,
        both: &[],
        with_previous: false,
        socklab: &[],
        no_error: false,
        note: "",
    }
}

impl Step {
    const fn both(mut self, both: &'static [&'static [&'static str]]) -> Step {
        self.both = both;
        self
    }
    const fn via(mut self, via: Via) -> Step {
        self.via = via;
        self
    }
    const fn with_previous(mut self) -> Step {
        self.with_previous = true;
        self
    }
    const fn socklab(mut self, socklab: &'static [&'static str]) -> Step {
        self.socklab = socklab;
        self
    }
    const fn no_error(mut self) -> Step {
        self.no_error = true;
        self
    }
    const fn note(mut self, note: &'static str) -> Step {
        self.note = note;
        self
    }
}

/// Runs `steps` against the server at `addr` as `ana`; returns each step's replies.
fn run_session(addr: &str, steps: &[Step]) -> Vec<Vec<Reply>> {
    let mut c = IrcConn::connect(addr);
    let mut all = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        match s.via {
            Via::Sync => {
                for line in s.send {
                    c.send(line);
                }
                let token = format!("sync{i}");
                c.send(&format!("PING :{token}"));
                loop {
                    let Some(r) = c.next(deadline) else {
                        panic!("{addr}: step {:?} never got PONG {token}: {got:#?}", s.what);
                    };
                    if r.command == "PONG" && r.params.last() == Some(&token) {
                        break;
                    }
                    got.push(r);
                }
            }
            Via::Second => {
                let mut d = IrcConn::connect(addr);
                for line in s.send {
                    d.send(line);
                }
                loop {
                    let Some(r) = d.next(deadline) else {
                        panic!("{addr}: step {:?} got no verdict: {got:#?}", s.what);
                    };
                    let done = ["001", "431", "432", "433"].contains(&r.command.as_str());
                    got.push(r);
                    if done {
                        break;
                    }
                }
            }
            Via::Quit => {
                for line in s.send {
                    c.send(line);
                }
                while let Some(r) = c.next(deadline) {
                    got.push(r);
                }
                assert!(
                    Instant::now() < deadline,
                    "{addr}: the connection stayed open after {:?}: {got:#?}",
                    s.what
                );
            }
        }
        all.push(got);
    }
    all
}

/// The keys of `replies` in order, runs of one key shown once (`005 005` → `005`).
fn keys(replies: &[Reply]) -> Vec<String> {
    let mut k: Vec<String> = replies.iter().map(Reply::key).collect();
    k.dedup();
    k
}

/// Runs `steps` against socklab and ngircd, prints a table (step, socklab, ngircd, match) to
/// stderr, then asserts each step's requirements on both; every failure is listed, with the
/// raw lines of both servers. The table shows each step's own replies (numerics and commands,
/// a repeated one once); "match" is `same` (the same replies in the same order), `yes on …`
/// (the replies asserted are there on both, the rest differ as the note says), `differ,
/// nothing asserted` (a difference by design), or `NO: …` (an assertion failed).
fn compare(steps: &[Step]) {
    let srv = Server::start(&["chat", "serve", "-p", "0"]);
    let ngircd = Ngircd::start();
    // Both at once: ngircd's flood penalty makes its side take seconds.
    let ng_addr = ngircd.addr();
    let results = std::thread::scope(|t| {
        let theirs = t.spawn(|| run_session(&ng_addr, steps));
        let ours = run_session(&srv.addr, steps);
        (ours, theirs.join())
    });
    let (ours, theirs) = match results {
        (ours, Ok(theirs)) => (ours, theirs),
        (_, Err(e)) => panic!(
            "the ngircd session failed: {e:?}\nngircd's log:\n{}",
            ngircd.log.lock().unwrap()
        ),
    };
    let mut table = format!(
        "\n{:<24} {:<38} {:<58} match\n",
        "step", "socklab", "ngircd"
    );
    let mut failures = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let scope = |all: &[Vec<Reply>]| -> Vec<Reply> {
            let from = if s.with_previous {
                i.saturating_sub(1)
            } else {
                i
            };
            all[from..=i].concat()
        };
        let (a, b) = (scope(&ours), scope(&theirs));
        let has = |r: &[Reply], alts: &[&str]| r.iter().any(|m| alts.contains(&m.key().as_str()));
        let mut bad = Vec::new();
        for alts in s.both {
            for (name, r) in [("socklab", &a), ("ngircd", &b)] {
                if !has(r, alts) {
                    bad.push(format!("{name} sent no {}", alts.join(" or ")));
                }
            }
        }
        for alt in s.socklab {
            if !has(&a, &[alt]) {
                bad.push(format!("socklab sent no {alt}"));
            }
        }
        if s.no_error {
            for (name, r) in [("socklab", &a), ("ngircd", &b)] {
                if let Some(e) = r.iter().find(|m| m.is_error()) {
                    bad.push(format!("{name} answered an error: {}", e.raw));
                }
            }
        }
        let (ka, kb) = (keys(&ours[i]), keys(&theirs[i]));
        let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) =
            (ka.iter().collect(), kb.iter().collect());
        let verdict = if !bad.is_empty() {
            format!("NO: {}", bad.join("; "))
        } else if ka == kb {
            "same".to_string()
        } else if sa == sb {
            "same replies, other order".to_string()
        } else if s.both.is_empty() && s.socklab.is_empty() && !s.no_error {
            "differ, nothing asserted".to_string()
        } else {
            let mut req: Vec<String> = s.both.iter().map(|alts| alts.join("|")).collect();
            req.extend(s.socklab.iter().map(|a| format!("socklab {a}")));
            if s.no_error {
                req.push("no error".into());
            }
            format!("yes on {}", req.join(" "))
        };
        let verdict = match (s.note, bad.is_empty() && ka != kb) {
            (note, true) if !note.is_empty() => format!("{verdict} ({note})"),
            _ => verdict,
        };
        table += &format!(
            "{:<24} {:<38} {:<58} {verdict}\n",
            s.what,
            if ka.is_empty() {
                "-".into()
            } else {
                ka.join(" ")
            },
            if kb.is_empty() {
                "-".into()
            } else {
                kb.join(" ")
            },
        );
        if !bad.is_empty() {
            let raw = |r: &[Reply]| {
                r.iter()
                    .map(|m| format!("    {}\n", m.raw))
                    .collect::<String>()
            };
            failures.push(format!(
                "step {:?}: {}\n  socklab:\n{}  ngircd:\n{}",
                s.what,
                bad.join("; "),
                raw(&a),
                raw(&b)
            ));
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The session both servers are held to. Where they legitimately differ, only what RFC 2812
/// requires is asserted, and the table shows the rest:
///
/// - registration: ngircd sends the LUSERS numerics (251–255, 265, 266) and 250, which RFC
///   2812 does not require at registration; 005 (ISUPPORT by custom, RPL_BOUNCE in RFC 2812)
///   lists other tokens on each; MOTD: ngircd has one (375/372/376), socklab says 422, both
///   allowed.
/// - `JOIN #general`: socklab joined everyone to `#general` at registration (JOIN, 353, 366
///   came then), so this JOIN of a channel one is in gets no reply; ngircd joins now.
/// - `NICK` without a nickname: RFC 2812 says 431 ERR_NONICKNAMEGIVEN; socklab sends it,
///   ngircd sends 461 ERR_NEEDMOREPARAMS.
/// - `WHOIS`: ngircd adds 378, 379 (not in RFC 2812) and 317 (idle time, optional).
/// - `LIST`: ngircd sends 321, which RFC 2812 marks "Obsolete. Not used.", and its `&SERVER`.
/// - `MODE #general`: ngircd adds 329 (creation time, not in RFC 2812).
/// - `PART #general`: socklab keeps each client in exactly one room (see src/chat/ircd.rs),
///   so it answers with a NOTICE; ngircd parts.
/// - `QUIT`: both end with ERROR; ngircd sends a NOTICE before it.
const SESSION: &[Step] = &[
    step("NICK ana / USER", &["NICK ana", "USER ana 0 * :Ana"])
        .both(&[&["001"], &["002"], &["003"], &["004"], &["376", "422"]])
        .note("ngircd adds LUSERS 250-266; socklab joins #general here"),
    step("JOIN #general", &["JOIN #general"])
        .both(&[&["JOIN"], &["353"], &["366"]])
        .with_previous()
        .note("counted with registration: socklab joined then"),
    step("JOIN #general again", &["JOIN #general"]),
    step("PRIVMSG #general :hi", &["PRIVMSG #general :hi"]).no_error(),
    step("NAMES #general", &["NAMES #general"]).both(&[&["353"], &["366"]]),
    step("TOPIC #general", &["TOPIC #general"]).both(&[&["331", "332"]]),
    step("WHOIS ana", &["WHOIS ana"])
        .both(&[&["311"], &["312"], &["319"], &["318"]])
        .note("ngircd adds 378 379 317"),
    step("PRIVMSG nobody :x", &["PRIVMSG nobody :x"]).both(&[&["401"]]),
    step("FOO", &["FOO"]).both(&[&["421"]]),
    step("NICK", &["NICK"])
        .socklab(&["431"])
        .note("ngircd sends 461, RFC 2812 says 431"),
    step("NICK 1bad", &["NICK 1bad"]).both(&[&["432"]]),
    step("2nd conn: NICK ana", &["NICK ana", "USER ana2 0 * :Ana"])
        .via(Via::Second)
        .both(&[&["433"]]),
    step("PING tok", &["PING tok"]).both(&[&["PONG tok"]]),
    step("MODE ana", &["MODE ana"]).both(&[&["221"]]),
    step("WHO #general", &["WHO #general"]).both(&[&["352"], &["315"]]),
    step("LIST", &["LIST"])
        .both(&[&["322"], &["323"]])
        .note("ngircd adds 321 (obsolete in RFC 2812)"),
    step("MODE #general", &["MODE #general"])
        .both(&[&["324"]])
        .note("ngircd adds 329"),
    step("PART #general", &["PART #general"])
        .note("socklab: one room always, a NOTICE; ngircd: PART"),
    step("QUIT :bye", &["QUIT :bye"])
        .via(Via::Quit)
        .both(&[&["ERROR"]])
        .note("ngircd sends a NOTICE before ERROR"),
];

/// The same scripted raw session against socklab and ngircd: every reply RFC 2812 calls for
/// and ngircd sends, socklab sends too. Run with `--nocapture` to see the table.
#[test]
fn a_scripted_session_gets_the_replies_ngircd_gives() {
    compare(SESSION);
}

/// What irssi sends after it joins a channel, and RFC 2812 answers, which socklab gets wrong
/// today (irssi prints "Unknown MODE flag" and "#general Channel modes cannot be changed here"
/// at every connection). Both assertions below FAIL against socklab at the time of writing;
/// they are kept, not weakened, until src/chat/ircd.rs answers them:
///
/// - `MODE ana +i`: RFC 2812 3.1.5's example "MODE Angel +i ; Command from Angel to make
///   herself invisible", and socklab's own 004 lists `i` as its one user mode; socklab
///   answers `501 ana :Unknown MODE flag`. ngircd confirms with `MODE ana :+i`.
/// - `MODE #general +b`: RFC 2812 3.2.3, "MODE &oulu +b ; Command to list ban masks set for
///   the channel", and "After the banmasks have been listed (or if none present) a
///   RPL_ENDOFBANLIST MUST be sent"; socklab answers `482 ana #general :Channel modes cannot
///   be changed here`, ngircd `368 ana #general :End of channel ban list`. irssi sends the
///   unsigned form `MODE #general b`: shown, not asserted (RFC 2812's grammar wants a sign).
const MODE_QUERIES: &[Step] = &[
    step("NICK ana / USER", &["NICK ana", "USER ana 0 * :Ana"]).both(&[&["001"]]),
    step("JOIN #general", &["JOIN #general"])
        .both(&[&["366"]])
        .with_previous(),
    // Fails against socklab (501), see above.
    step("MODE ana +i", &["MODE ana +i"]).no_error(),
    // Fails against socklab (482), see above.
    step("MODE #general +b", &["MODE #general +b"]).both(&[&["368"]]),
    step("MODE #general b", &["MODE #general b"]).note("irssi's form, not asserted"),
    step("QUIT", &["QUIT"]).via(Via::Quit).both(&[&["ERROR"]]),
];

/// The MODE queries irssi sends: socklab should answer them as RFC 2812 and ngircd do. FAILS
/// at the time of writing; see [`MODE_QUERIES`].
#[test]
fn the_mode_queries_irssi_sends_get_the_replies_ngircd_gives() {
    compare(MODE_QUERIES);
}
