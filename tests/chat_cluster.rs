//! `chat serve --cluster`: several servers, one chat, through a real `redis-server` on a free
//! loopback port. Clients on different servers talk, a nickname is unique across servers,
//! Redis killed and restarted loses no server and delivery comes back, and a chaos run: three
//! servers, Redis restarted twice mid-conversation, every message sent after each recovery
//! delivered exactly once to every member.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fixtures::Redis;
use crate::support::*;

/// How long a cluster may take to settle (reconnection backoff is at most 2 s, a snapshot one
/// round trip).
const SETTLE: Duration = Duration::from_secs(30);

/// A line client (as nc is) whose every received line is kept, read by a thread.
struct Client {
    nick: String,
    w: TcpStream,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn join(addr: &str, nick: &str) -> Client {
        let w = TcpStream::connect(addr).unwrap();
        let r = w.try_clone().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut c = Client {
            nick: nick.into(),
            w,
            lines,
        };
        c.send(nick);
        c.wait_for(&format!("welcome, {nick}"));
        c
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits until a line contains `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        self.wait_from(0, needle)
    }

    /// Waits until a line from the `from`-th on contains `needle`.
    fn wait_from(&self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} never got {needle:?}; got:\n{}", self.nick, self.all());
    }

    /// Asks `/who` until the room lists exactly `nicks`.
    fn who_until(&mut self, nicks: &[&str]) {
        let mut want: Vec<String> = nicks.iter().map(|n| n.to_lowercase()).collect();
        want.sort();
        let deadline = Instant::now() + SETTLE;
        let mut last = String::new();
        while Instant::now() < deadline {
            let from = self.lines.lock().unwrap().len();
            self.send("/who");
            last = self.wait_from(from, "-!- in #general:");
            let (_, names) = last.split_once("in #general:").unwrap();
            let mut got: Vec<String> = names.split_whitespace().map(str::to_lowercase).collect();
            got.sort();
            if got == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{}: /who never listed {nicks:?}; last: {last}", self.nick);
    }
}

fn cluster_server(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["chat", "serve", "-p", "0", "--cluster", &url];
    args.extend_from_slice(extra);
    let srv = Server::start(&args);
    assert!(
        srv.wait_log("cluster: linked through Redis", SETTLE),
        "{}",
        srv.stderr()
    );
    srv
}

#[test]
fn clients_of_two_servers_talk_and_a_nick_is_unique_across_them() {
    let redis = Redis::start();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let mut ann = Client::join(&a.addr, "ann");
    let mut bob = Client::join(&b.addr, "bob");
    ann.wait_for("bob joined #general");
    ann.who_until(&["ann", "bob"]);
    bob.who_until(&["ann", "bob"]);
    ann.send("hello from A, ünïcode kept");
    bob.send("hello from B");
    let got = bob.wait_for("<ann>");
    assert!(
        got.ends_with("#general <ann> hello from A, ünïcode kept"),
        "{got}"
    );
    ann.wait_for("#general <bob> hello from B");
    // The nickname is taken on A: B refuses it, in any case, at registration and as /nick.
    let mut eve = TcpStream::connect(&b.addr).unwrap();
    eve.write_all(b"ANN\n").unwrap();
    let mut r = BufReader::new(eve.try_clone().unwrap());
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = String::new();
    while !got.contains("taken") {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "{got}");
        got.push_str(&line);
    }
    assert!(got.contains("nickname \"ANN\" is taken"), "{got}");
    bob.send("/nick Ann");
    bob.wait_for("nickname \"Ann\" is taken");
    // Private messages cross servers, once.
    bob.send("/msg ann psst");
    ann.wait_for("*bob* -> ann: psst");
    // A rename on A is seen on B, and frees the old nickname for B.
    ann.send("/nick anna");
    bob.wait_for("ann is now anna");
    bob.send("/nick ann");
    bob.wait_for("you are now ann");
    ann.wait_for("bob is now ann");
    // Rooms are shared: a move on B shows on A, and history crosses too.
    ann.send("/join #rust");
    ann.send("crabs");
    let mut cat = Client::join(&b.addr, "cat");
    cat.send("/join #rust");
    cat.wait_for("(history) #rust <anna> crabs");
    ann.wait_for("cat joined #rust");
    assert_eq!(ann.count(|l| l.contains("<ann> hello from A")), 0);
    // Every message exactly once.
    assert_eq!(
        bob.count(|l| l.contains("hello from A")),
        1,
        "{}",
        bob.all()
    );
    assert_eq!(ann.count(|l| l.contains("psst")), 1, "{}", ann.all());
    // The keys are where docs/PROTOCOLS.md says.
    let nicks = redis.command(&["HKEYS", "socklab:chat:nicks"]);
    for n in ["anna", "ann", "cat"] {
        assert!(nicks.lines().any(|l| l == n), "{nicks}");
    }
    assert!(!nicks.lines().any(|l| l == "bob"), "{nicks}");
}

#[test]
fn redis_killed_and_restarted_loses_no_server_and_delivery_comes_back() {
    let mut redis = Redis::start();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let mut ann = Client::join(&a.addr, "ann");
    let mut bob = Client::join(&b.addr, "bob");
    ann.who_until(&["ann", "bob"]);
    redis.kill();
    ann.wait_for("cluster link lost");
    bob.wait_for("cluster link lost");
    assert!(a.wait_log("cluster: lost Redis", SETTLE), "{}", a.stderr());
    // Each server goes on serving its own clients, new ones included.
    let mut cat = Client::join(&a.addr, "cat");
    cat.send("local while split");
    ann.wait_for("#general <cat> local while split");
    redis.restart();
    for c in [&ann, &bob, &cat] {
        c.wait_for("cluster link restored");
    }
    assert!(
        a.wait_log("is back; resynchronised", SETTLE),
        "{}",
        a.stderr()
    );
    bob.who_until(&["ann", "bob", "cat"]);
    ann.who_until(&["ann", "bob", "cat"]);
    bob.send("after the restart");
    ann.wait_for("#general <bob> after the restart");
    cat.wait_for("#general <bob> after the restart");
    cat.send("me too");
    bob.wait_for("#general <cat> me too");
    // The nicknames were claimed again in the new Redis.
    let nicks = redis.command(&["HKEYS", "socklab:chat:nicks"]);
    for n in ["ann", "bob", "cat"] {
        assert!(nicks.lines().any(|l| l == n), "{nicks}");
    }
    // Neither server stopped: both take new clients, who see everyone.
    for (srv, nick) in [(&a, "dan"), (&b, "eve")] {
        let mut c = Client::join(&srv.addr, nick);
        c.send("/who");
        c.wait_for("in #general: ann bob cat");
    }
}

#[test]
fn a_server_that_stops_takes_its_clients_out_of_the_others() {
    let redis = Redis::start();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let ann = Client::join(&a.addr, "ann");
    let mut bob = Client::join(&b.addr, "bob");
    bob.who_until(&["ann", "bob"]);
    a.signal("TERM");
    bob.wait_for("ann left (server shutting down)");
    ann.wait_for("server shutting down");
    bob.who_until(&["bob"]);
    // Its nicknames are free at once.
    let mut ann2 = Client::join(&b.addr, "ann");
    ann2.send("/who");
    ann2.wait_for("in #general: ann bob");
}

#[test]
fn a_server_started_while_redis_is_down_serves_and_links_when_it_comes() {
    let mut redis = Redis::start();
    redis.kill();
    let url = redis.url();
    let a = Server::start(&["chat", "serve", "-p", "0", "--cluster", &url]);
    assert!(a.wait_log("cannot reach Redis", SETTLE), "{}", a.stderr());
    let mut ann = Client::join(&a.addr, "ann");
    redis.restart();
    assert!(a.wait_log("linked through Redis", SETTLE), "{}", a.stderr());
    let b = cluster_server(&redis, &[]);
    let bob = Client::join(&b.addr, "bob");
    ann.who_until(&["ann", "bob"]);
    ann.send("hi bob");
    bob.wait_for("#general <ann> hi bob");
}

/// Three servers, two clients each; Redis restarted twice during the conversation. After
/// each recovery every client sends five messages, and every other client gets each of them
/// exactly once. During each outage, messages still reach the members on the same server.
#[test]
fn chaos_three_servers_redis_restarted_twice_every_message_after_recovery_exactly_once() {
    let mut redis = Redis::start();
    let servers: Vec<Server> = (0..3)
        .map(|_| cluster_server(&redis, &["--flood", "off"]))
        .collect();
    let names = ["a1", "a2", "b1", "b2", "c1", "c2"];
    let mut clients: Vec<Client> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Client::join(&servers[i / 2].addr, n))
        .collect();
    for phase in 0..3 {
        if phase > 0 {
            redis.kill();
            for c in &clients {
                c.wait_for_count("cluster link lost", phase);
            }
            // Split: each server serves its own.
            for (i, c) in clients.iter_mut().enumerate() {
                let text = format!("split{phase}-{}", names[i]);
                c.send(&text);
            }
            for (i, c) in clients.iter().enumerate() {
                let mate = names[i ^ 1];
                c.wait_for(&format!("<{mate}> split{phase}-{mate}"));
            }
            redis.restart();
            for c in &clients {
                c.wait_for_count("cluster link restored", phase);
            }
        }
        for c in clients.iter_mut() {
            c.who_until(&names);
        }
        for (i, c) in clients.iter_mut().enumerate() {
            for k in 0..5 {
                c.send(&format!("p{phase}-{}-{k}", names[i]));
            }
        }
        for (i, c) in clients.iter().enumerate() {
            for (j, other) in names.iter().enumerate() {
                if i != j {
                    c.wait_for(&format!("#general <{other}> p{phase}-{other}-4"));
                }
            }
        }
        // Anything duplicated would have come by now.
        std::thread::sleep(Duration::from_millis(500));
        for (i, c) in clients.iter().enumerate() {
            for (j, other) in names.iter().enumerate() {
                for k in 0..5 {
                    let line = format!("#general <{other}> p{phase}-{other}-{k}");
                    let n = c.count(|l| l.ends_with(&line));
                    let want = usize::from(i != j);
                    assert_eq!(n, want, "{} got {line:?} {n} times:\n{}", names[i], c.all());
                }
            }
        }
    }
    for s in &servers {
        assert!(!s.stderr().contains("panicked"), "{}", s.stderr());
    }
}

impl Client {
    /// Waits until `needle` was seen `n` times.
    fn wait_for_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if self.count(|l| l.contains(needle)) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} never got {needle:?} {n} times:\n{}",
            self.nick,
            self.all()
        );
    }
}

/// Two users take the same nickname on two servers while Redis is down (each server can only
/// check its own): when Redis is back, one keeps it and the other is closed with the reason.
#[test]
fn the_same_nick_taken_on_two_servers_during_a_split_collides_once_redis_is_back() {
    let mut redis = Redis::start();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let watcher = Client::join(&a.addr, "watcher");
    redis.kill();
    watcher.wait_for("cluster link lost");
    let za = Client::join(&a.addr, "zed");
    let zb = Client::join(&b.addr, "ZED");
    redis.restart();
    watcher.wait_for("cluster link restored");
    let deadline = Instant::now() + SETTLE;
    let collided = |c: &Client| c.count(|l| l.contains("closing: nickname collision")) > 0;
    while Instant::now() < deadline && !(collided(&za) || collided(&zb)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Exactly one of them, with the reason.
    assert!(
        collided(&za) ^ collided(&zb),
        "zed on A:\n{}\nZED on B:\n{}",
        za.all(),
        zb.all()
    );
    let kept = if collided(&za) { "ZED" } else { "zed" };
    let nicks = redis.command(&["HGETALL", "socklab:chat:nicks"]);
    assert!(nicks.lines().any(|l| l == "zed"), "{nicks}");
    let mut check = Client::join(&b.addr, "check");
    check.who_until(&["check", kept, "watcher"]);
}

/// An IRC client on one server is refused (433) a nickname a line user holds on another, and
/// talks with it across the servers.
#[test]
fn an_irc_client_on_one_server_meets_a_line_user_on_another() {
    let redis = Redis::start();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let ann = Client::join(&a.addr, "ann");
    let mut irc = TcpStream::connect(&b.addr).unwrap();
    irc.write_all(b"NICK ann\r\nUSER x 0 * :X\r\n").unwrap();
    let mut r = BufReader::new(irc.try_clone().unwrap());
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut until = |needle: &str| {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("never got {needle:?}; got:\n{all}");
            }
            all.push_str(&line);
            if line.contains(needle) {
                return all;
            }
        }
    };
    let got = until(" 433 ");
    assert!(
        got.contains(" 433 * ann :Nickname is already in use"),
        "{got}"
    );
    irc.write_all(b"NICK ircbo\r\n").unwrap();
    until(" 001 ircbo ");
    until(" 366 ");
    irc.write_all(b"PRIVMSG #general :hello across\r\n")
        .unwrap();
    ann.wait_for("#general <ircbo> hello across");
    let mut ann = ann;
    ann.send("hi irc");
    let got = until("PRIVMSG #general :hi irc");
    assert!(
        got.contains(":ann!ann@socklab PRIVMSG #general :hi irc"),
        "{got}"
    );
}

/// A Redis that comes back with its data (saved, then restarted: Debian's saves on shutdown)
/// and connections that blink while Redis stays up: no server delivers again what it had
/// delivered, and delivery goes on.
#[test]
fn a_redis_that_comes_back_with_its_log_or_a_link_that_blinks_redelivers_nothing() {
    let mut redis = Redis::start_persistent();
    let a = cluster_server(&redis, &[]);
    let b = cluster_server(&redis, &[]);
    let mut ann = Client::join(&a.addr, "ann");
    let mut bob = Client::join(&b.addr, "bob");
    ann.who_until(&["ann", "bob"]);
    ann.send("said before the restart");
    bob.wait_for("<ann> said before the restart");
    assert!(redis.command(&["SAVE"]).contains("OK"));
    redis.restart();
    for c in [&ann, &bob] {
        c.wait_for("cluster link restored");
    }
    bob.who_until(&["ann", "bob"]);
    ann.send("after the restart");
    bob.wait_for("<ann> after the restart");
    // Every connection to Redis cut at once, Redis itself untouched.
    assert!(
        redis
            .command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 4,
        "the servers' four connections were not killed"
    );
    for c in [&ann, &bob] {
        c.wait_for_count("cluster link restored", 2);
    }
    bob.who_until(&["ann", "bob"]);
    ann.send("after the blink");
    bob.wait_for("<ann> after the blink");
    std::thread::sleep(Duration::from_millis(500));
    for text in [
        "said before the restart",
        "after the restart",
        "after the blink",
    ] {
        let line = format!("#general <ann> {text}");
        assert_eq!(
            bob.count(|l| l.ends_with(&line)),
            1,
            "{text:?}:\n{}",
            bob.all()
        );
    }
    // bob came after ann: an old log applied again would show her joining or leaving.
    assert_eq!(
        bob.count(|l| l.contains("ann joined") || l.contains("ann left")),
        0,
        "{}",
        bob.all()
    );
}
