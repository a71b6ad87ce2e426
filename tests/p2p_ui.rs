//! `socklab p2p chat` as people use it: at a terminal (a line-editing prompt with messages
//! printed above it, `/stats`, `/quit`), with `--log` (a transcript) and with `--json`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// A peer fed through a pipe we keep open, whose stdout is read as it comes.
struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Piped {
    fn start(listen: u16, to: u16, nick: &str, extra: &[&str]) -> Piped {
        let mut child = Command::new(bin())
            .args(["p2p", "chat", "--listen", &format!("127.0.0.1:{listen}")])
            .args(["--peer", &format!("127.0.0.1:{to}"), "--nick", nick])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn socklab p2p chat");
        let (out, err): (Arc<Mutex<String>>, Arc<Mutex<String>>) = Default::default();
        for (pipe, sink) in [
            (
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                Arc::clone(&out),
            ),
            (Box::new(child.stderr.take().unwrap()), Arc::clone(&err)),
        ] {
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    sink.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let stdin = child.stdin.take();
        Piped {
            child,
            stdin,
            out,
            err,
        }
    }

    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{text}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Closes stdin and waits (20 s at most) for the exit code.
    fn finish(&mut self) -> Option<i32> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The pipes' last lines.
                std::thread::sleep(Duration::from_millis(100));
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (10 s at most) until `f()` contains `needle`.
fn until(what: &str, needle: &str, f: impl Fn() -> String) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = f();
        if s.contains(needle) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never showed {needle:?}; it shows:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A peer in a detached tmux session on a private tmux server (its socket in a throw-away
/// directory). Dropping it kills that tmux server and the peer with it.
struct Terminal {
    dir: tempfile::TempDir,
}

impl Terminal {
    fn start(command: &str) -> Terminal {
        let t = Terminal {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "40",
            "-s",
            "p2p",
            "sh",
            "-c",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.path("tmux.sock"))
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn type_line(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", "p2p", "-l", text]);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
        let out = self.tmux(&["send-keys", "-t", "p2p", "Enter"]);
        assert!(out.status.success(), "tmux send-keys Enter: {out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "p2p"]).stdout).into()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// At a terminal: a prompt, bob's message shown above it, a typed line sent, `/stats`
/// answered, an unknown command refused (and not sent), `/quit` ending the run once
/// everything is acknowledged (exit 0); the transcript holds both directions.
#[test]
fn at_a_terminal_a_prompt_with_stats_and_a_transcript() {
    require("tmux");
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let mut bob = Piped::start(pb, pa, "bob", &[]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ann.log");
    let ann = Terminal::start(&format!(
        "{} p2p chat --listen 127.0.0.1:{pa} --peer 127.0.0.1:{pb} --nick ann --log {}; \
         echo exit=$?; if stty -a | grep -q -- ' -echo '; then echo tty=raw; else echo tty=sane; fi; \
         sleep 60",
        bin().display(),
        log.display()
    ));
    until("ann's terminal", "/help for commands", || ann.screen());
    bob.say("hello from bob");
    until("ann's terminal", "<bob> hello from bob", || ann.screen());
    ann.type_line("hi bob, 1 + 1 = 2");
    until("bob's stdout", "<ann> hi bob, 1 + 1 = 2\n", || bob.stdout());
    ann.type_line("/stats");
    let screen = until("ann's terminal", "1 messages sent, 1 received", || {
        ann.screen()
    });
    assert!(screen.contains("SRTT") && screen.contains("retransmitted"));
    ann.type_line("/nope");
    until("ann's terminal", "/nope is not a command", || ann.screen());
    ann.type_line("//slash");
    until("bob's stdout", "<ann> /slash\n", || bob.stdout());
    ann.type_line("/quit");
    until("ann's terminal", "exit=0", || ann.screen());
    // The terminal is given back as it was (echo on), not left in the editor's raw mode.
    until("ann's terminal", "tty=sane", || ann.screen());
    assert_eq!(bob.finish(), Some(0), "bob:\n{}", bob.stderr());
    // bob saw exactly ann's two messages, never the commands.
    let shown: Vec<String> = bob.stdout().lines().skip(1).map(String::from).collect();
    assert_eq!(shown, ["<ann> hi bob, 1 + 1 = 2", "<ann> /slash"]);
    let transcript = read(&log);
    let lines: Vec<&str> = transcript.lines().collect();
    assert_eq!(lines.len(), 3, "{transcript}");
    assert_eq!(lines[0], "<bob> hello from bob");
    assert!(lines[1].ends_with("] > hi bob, 1 + 1 = 2"), "{transcript}");
    assert!(lines[2].ends_with("] > //slash"), "{transcript}");
}

/// `--json`: after the `listening on` line, one object per message, then the counters;
/// `--log` with stdin from a pipe records what was sent and received.
#[test]
fn json_lines_and_a_transcript_from_a_pipe() {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ann.log");
    let log_arg = log.display().to_string();
    let mut bob = Piped::start(pb, pa, "bob", &["--json"]);
    let mut ann = Piped::start(pa, pb, "ann", &["--log", &log_arg]);
    // Both sockets are bound before anything is said: a first DATA to a port not yet open
    // would be sent again, and a resent DATA gives no RTT sample (Karn).
    until("bob's stdout", "listening on", || bob.stdout());
    until("ann's stdout", "listening on", || ann.stdout());
    ann.say("first \"quoted\" line");
    ann.say("second\tline é");
    bob.say("back to you");
    until("ann's stdout", "<bob> back to you\n", || ann.stdout());
    assert_eq!(ann.finish(), Some(0), "ann:\n{}", ann.stderr());
    assert_eq!(bob.finish(), Some(0), "bob:\n{}", bob.stderr());
    let out = bob.stdout();
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("listening on 127.0.0.1:"));
    let objects: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(objects.len(), 3, "{out}");
    for (o, text) in objects
        .iter()
        .zip(["first \"quoted\" line", "second\tline é"])
    {
        assert_eq!(o["event"], "message");
        assert_eq!(o["nick"], "ann");
        assert_eq!(o["text"], text);
    }
    let stats = &objects[2];
    assert_eq!(stats["event"], "stats");
    assert_eq!(stats["messages_received"], 2);
    assert_eq!(stats["messages_sent"], 1);
    assert_eq!(stats["unacknowledged"], 0);
    assert_eq!(stats["retransmissions"], 0, "{stats}");
    assert!(stats["srtt_us"].as_u64().is_some(), "{stats}");
    assert!(stats["datagrams_sent"].as_u64().unwrap() >= 1);
    // Nothing else on bob's stderr than its closing words would be for people: in JSON mode
    // the counters are not repeated there.
    assert!(!bob.stderr().contains("messages sent"), "{}", bob.stderr());
    let transcript = read(&log);
    let lines: Vec<&str> = transcript.lines().collect();
    assert_eq!(lines.len(), 3, "{transcript}");
    assert!(lines.contains(&"<bob> back to you"), "{transcript}");
    let sent: Vec<&&str> = lines.iter().filter(|l| l.contains("] > ")).collect();
    assert_eq!(sent.len(), 2, "{transcript}");
    assert!(sent[0].ends_with("] > first \"quoted\" line"));
    assert!(sent[1].ends_with("] > second\tline é"));
}
