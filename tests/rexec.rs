//! `socklab rexec`: the course's seed session through `connect` and `run`, host keys trusted
//! as ssh does (first use, silent, changed and refused), a tcpdump capture that shows neither
//! the password nor the command until tshark decrypts it with the client's SSLKEYLOGFILE,
//! openssl's view of the fingerprint, the brute-force brake, unknown user against wrong
//! password, a users file made by the `argon2` tool, hostile frames, and 1 GiB of output in
//! bounded server memory.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const ANA_PW: &str = "correct horse 7";
const BOB_PW: &str = "battery staple 9";

/// A directory with a users file (ana, bob), a home for the sessions, and the paths the
/// server and the clients use.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(lab.home()).unwrap();
        for (user, pw) in [("ana", ANA_PW), ("bob", BOB_PW)] {
            let out = socklab(
                &[
                    "rexec",
                    "passwd",
                    lab.path("users").to_str().unwrap(),
                    "add",
                    user,
                    "--password-stdin",
                ],
                format!("{pw}\n").as_bytes(),
            );
            ok(&out);
        }
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    /// `rexec serve` with the lab's files, the host key `key`, the audit log `log`.
    fn server(&self, key: &str, log: &str, extra: &[&str]) -> Server {
        let (users, key, log, home) = (self.s("users"), self.s(key), self.s(log), self.s("home"));
        let mut args = vec!["rexec", "serve", "--users", &users, "--allow-root"];
        if !extra.contains(&"-p") {
            args.extend_from_slice(&["-p", "0"]);
        }
        args.extend_from_slice(&["--host-key", &key, "--log", &log, "--dir", &home]);
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// A client command (`connect` or `run`) with the lab's known-hosts file, the password
    /// in SOCKLAB_PASSWORD, and no controlling terminal (so nothing can prompt).
    fn client(&self, password: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        // Options before the role's words (after `--` they would be the command's).
        cmd.arg("rexec")
            .arg(args[0])
            .arg("--known-hosts")
            .arg(self.path("known_hosts"))
            .args(&args[1..])
            .env("SOCKLAB_PASSWORD", password)
            .env_remove("SSLKEYLOGFILE");
        no_tty(&mut cmd);
        cmd
    }

    fn run(&self, password: &str, args: &[&str], stdin: &[u8]) -> Output {
        run_with(self.client(password, args), stdin, Duration::from_secs(60))
    }

    /// The server's JSON log, one value per line.
    fn audit(&self, log: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(log))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// Runs the child in a session of its own: no controlling terminal, so /dev/tty cannot be
/// opened and the client must not (cannot) prompt.
fn no_tty(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and is the only call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

fn target(srv: &Server, user: &str) -> String {
    format!("{user}@127.0.0.1:{}", srv.port())
}

fn events<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["event"] == kind).collect()
}

fn fingerprint_of(srv: &Server) -> String {
    srv.expect_log("host key fingerprint");
    let err = srv.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("host key fingerprint"))
        .unwrap();
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn the_seed_session_through_connect_and_run() {
    let lab = Lab::new();
    std::fs::write(lab.home().join("a"), "moved\n").unwrap();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let t = target(&srv, "ana");
    let home = lab.s("home");

    // Piped: each stdin line is a command; `cd` stays for the commands after it.
    let script = format!(
        "pwd\nls\ncd /tmp\npwd\ncd {home}\nmv a b\nls\necho to-stderr >&2\ncat b\nexit 3\n"
    );
    let out = lab.run(
        ANA_PW,
        &[
            "connect",
            &t,
            "--accept-new",
            "--log",
            &lab.s("transcript.txt"),
        ],
        script.as_bytes(),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "connect exits with the last command's status; stderr {}",
        err_text(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{home}\na\n/tmp\nb\nmoved\n")
    );
    assert!(err_text(&out).contains("to-stderr"), "{}", err_text(&out));
    assert!(lab.home().join("b").exists() && !lab.home().join("a").exists());
    let transcript = std::fs::read_to_string(lab.path("transcript.txt")).unwrap();
    for needle in [
        ">>> pwd",
        ">>> mv a b",
        "exit 3 after",
        "to-stderr",
        "# session ended",
    ] {
        assert!(transcript.contains(needle), "{needle:?} in\n{transcript}");
    }

    // `exit` ends the session: the line after it never runs.
    let out = lab.run(ANA_PW, &["connect", &t], b"echo one\nexit\necho two\n");
    assert_eq!(String::from_utf8_lossy(&ok(&out)), "one\n");

    // run: stdout, stderr and the status are the command's; a signal is 128+N.
    let out = lab.run(
        ANA_PW,
        &["run", &t, "--", "echo out; echo err >&2; exit 3"],
        b"",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(err_text(&out), "err\n", "nothing of socklab's on stderr");
    let out = lab.run(ANA_PW, &["run", &t, "--", "kill", "-TERM", "$$"], b"");
    assert_eq!(out.status.code(), Some(128 + 15), "{}", err_text(&out));
    // Stdin is forwarded: 3 MB through sha256sum.
    let data = noise(3_000_000, 7);
    let out = lab.run(ANA_PW, &["run", &t, "--", "sha256sum"], &data);
    let want = {
        use sha2::Digest;
        sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(String::from_utf8_lossy(&ok(&out)), format!("{want}  -\n"));
    // The environment is the documented one.
    let out = lab.run(ANA_PW, &["run", &t, "--", "env | sort"], b"");
    let env = String::from_utf8_lossy(&ok(&out)).into_owned();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert_eq!(
        names,
        [
            "HOME",
            "LANG",
            "LOGNAME",
            "PATH",
            "PWD",
            "SHELL",
            "SOCKLAB_REXEC_PEER",
            "SOCKLAB_REXEC_USER",
            "TERM",
            "USER"
        ],
        "{env}"
    );
    assert!(env.contains("SOCKLAB_REXEC_USER=ana\n"), "{env}");

    // Ctrl-C on the client interrupts the remote `sleep 100`.
    let mut cmd = lab.client(ANA_PW, &["run", &t, "--", "echo started; sleep 100"]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started\n");
    let began = Instant::now();
    let st = stop_child(&mut child, "INT").expect("the client ends after Ctrl-C");
    assert_eq!(st.code(), Some(130), "SIGINT: 128+2; stderr {:?}", {
        let mut e = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut e);
        e
    });
    assert!(began.elapsed() < Duration::from_secs(10));

    // 20 sessions at once.
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let cmd = lab.client(
                if i % 2 == 0 { ANA_PW } else { BOB_PW },
                &[
                    "run",
                    &target(&srv, if i % 2 == 0 { "ana" } else { "bob" }),
                    "--",
                    &format!("sleep 0.3; echo session-{i} $SOCKLAB_REXEC_USER"),
                ],
            );
            std::thread::spawn(move || run_with(cmd, b"", Duration::from_secs(60)))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let out = t.join().unwrap();
        let user = if i % 2 == 0 { "ana" } else { "bob" };
        assert_eq!(
            String::from_utf8_lossy(&ok(&out)),
            format!("session-{i} {user}\n")
        );
    }

    // The audit log: every command, with its directory, status or signal and byte counts.
    let log = lab.audit("audit.jsonl");
    let connects = events(&log, "connect");
    assert!(
        connects.iter().all(|e| e["tls"] == "TLSv1_3"),
        "{connects:?}"
    );
    let commands = events(&log, "command");
    let mv = commands
        .iter()
        .find(|e| e["command"] == "mv a b")
        .expect("mv logged");
    assert_eq!(mv["cwd"], home.as_str());
    assert_eq!(mv["exit_status"], 0);
    assert_eq!(mv["user"], "ana");
    assert_eq!(mv["argv"][0], "/bin/sh");
    let cd = commands.iter().find(|e| e["command"] == "cd /tmp").unwrap();
    assert_eq!(cd["exit_status"], 0);
    let pwd_after = commands
        .iter()
        .filter(|e| e["command"] == "pwd")
        .nth(1)
        .unwrap();
    assert_eq!(pwd_after["cwd"], "/tmp");
    let killed = commands
        .iter()
        .find(|e| e["command"] == "kill -TERM $$")
        .unwrap();
    assert_eq!(killed["signal"], 15);
    let sha = commands
        .iter()
        .find(|e| e["command"] == "sha256sum")
        .unwrap();
    assert_eq!(
        sha["bytes_out"], 68,
        "64 hex digits, two spaces, a dash, a newline"
    );
    let interrupted = commands
        .iter()
        .find(|e| e["command"] == "echo started; sleep 100")
        .unwrap();
    assert_eq!(interrupted["signal"], 2, "{interrupted}");
    let oks = events(&log, "auth")
        .iter()
        .filter(|e| e["result"] == "ok")
        .count();
    assert!(oks >= 27, "{oks} logins logged");
    assert!(
        !std::fs::read_to_string(lab.path("audit.jsonl"))
            .unwrap()
            .contains(ANA_PW),
        "the password is never logged"
    );
}

#[test]
fn host_keys_are_trusted_on_first_use_then_pinned() {
    let lab = Lab::new();
    let srv = lab.server("hk1.pem", "audit1.jsonl", &[]);
    let fp1 = fingerprint_of(&srv);
    let t = target(&srv, "ana");
    let name = format!("[127.0.0.1]:{}", srv.port());

    // Unknown, no terminal to ask on, no --accept-new: refused, nothing sent.
    let out = lab.run(ANA_PW, &["run", &t, "--", "echo hi"], b"");
    exits(&out, 255);
    stderr_has(&out, &fp1);
    stderr_has(&out, "--accept-new");
    assert!(out.stdout.is_empty());
    assert!(!lab.path("known_hosts").exists());

    // First use with --accept-new: remembered.
    let out = lab.run(ANA_PW, &["run", &t, "--accept-new", "--", "echo hi"], b"");
    assert_eq!(ok(&out), b"hi\n");
    stderr_has(&out, &format!("added {name} {fp1}"));
    let kh = std::fs::read_to_string(lab.path("known_hosts")).unwrap();
    assert_eq!(kh, format!("{name} {fp1}\n"));

    // Second time: silent.
    let out = lab.run(ANA_PW, &["run", &t, "--", "echo hi"], b"");
    assert_eq!(ok(&out), b"hi\n");
    assert_eq!(err_text(&out), "", "nothing on stderr the second time");

    // The same port, a new key: refused loudly, nothing sent.
    let port = srv.port().to_string();
    drop(srv);
    let srv2 = lab.server("hk2.pem", "audit2.jsonl", &["-p", &port]);
    let fp2 = fingerprint_of(&srv2);
    assert_ne!(fp1, fp2);
    for extra in [&[][..], &["--accept-new"][..]] {
        let mut args = vec!["run", &t];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "touch", "should-not-exist"]);
        let out = lab.run(ANA_PW, &args, b"");
        exits(&out, 255);
        stderr_has(&out, "REMOTE HOST KEY HAS CHANGED");
        stderr_has(&out, &fp1);
        stderr_has(&out, &fp2);
        stderr_has(&out, &format!("remove line 1 of {}", lab.s("known_hosts")));
        stderr_has(&out, "nothing was sent");
    }
    assert!(!lab.home().join("should-not-exist").exists());
    let log2 = lab.audit("audit2.jsonl");
    assert!(
        events(&log2, "auth").is_empty() && events(&log2, "command").is_empty(),
        "the server saw no login and no command: {log2:?}"
    );
    assert_eq!(
        std::fs::read_to_string(lab.path("known_hosts")).unwrap(),
        kh,
        "the remembered key is left alone"
    );

    // --fingerprint pins the new key for this connection.
    let out = lab.run(
        ANA_PW,
        &["run", &t, "--fingerprint", &fp2, "--", "echo pinned"],
        b"",
    );
    assert_eq!(ok(&out), b"pinned\n");
    // ... and a wrong one is refused.
    let out = lab.run(
        ANA_PW,
        &["run", &t, "--fingerprint", &fp1, "--", "echo pinned"],
        b"",
    );
    exits(&out, 255);
    stderr_has(&out, "REMOTE HOST KEY HAS CHANGED");

    // The host key file: PKCS#8 PEM, mode 0600, the same fingerprint at the next start.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(lab.path("hk2.pem")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(lab.path("hk2.pem"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

#[test]
fn openssl_computes_the_fingerprint_the_server_prints() {
    require("openssl");
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let fp = fingerprint_of(&srv);
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{} -alpn socklab-rexec/1 -tls1_3 </dev/null 2>/dev/null \
         | openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER \
         | openssl dgst -sha256 -binary | base64",
        srv.port()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    let b64 = String::from_utf8_lossy(&ok(&out)).trim().to_string();
    assert_eq!(format!("SHA256:{}", b64.trim_end_matches('=')), fp);
    // TLS 1.2 is not offered.
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!(
            "openssl s_client -connect 127.0.0.1:{} -tls1_2 </dev/null",
            srv.port()
        ),
    ]);
    let out = run_with(cmd, b"", Duration::from_secs(30));
    assert!(!out.status.success(), "a TLS 1.2 handshake must fail");
}

/// The decrypted TLS bytes in `tshark -x` output ("Decrypted TLS (N bytes):" blocks).
fn decrypted(tshark_x: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in tshark_x.lines() {
        if line.starts_with("Decrypted TLS") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.len() < 6 || !line[..4].chars().all(|c| c.is_ascii_hexdigit()) {
            inside = false;
            continue;
        }
        let hex = &line[6..line.len().min(6 + 16 * 3)];
        out.extend(
            hex.split_whitespace()
                .filter_map(|h| u8::from_str_radix(h, 16).ok()),
        );
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_capture_shows_neither_user_password_nor_command_until_decrypted() {
    require("tcpdump");
    require("tshark");
    let lab = Lab::new();
    let user = "marguerite";
    let password = "Sekr1t-pw-4c2b";
    let out = socklab(
        &[
            "rexec",
            "passwd",
            &lab.s("users"),
            "add",
            user,
            "--password-stdin",
        ],
        format!("{password}\n").as_bytes(),
    );
    ok(&out);
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let pcap = lab.path("cap.pcap");
    let keys = lab.path("keys.txt");
    let mut dump = Command::new("tcpdump")
        .args(["-i", "lo", "-Z", "root", "--immediate-mode", "-U", "-w"])
        .arg(&pcap)
        .arg(format!("tcp port {}", srv.port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on lo" once it captures.
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let command = "printf '%s\\n' out-$((6*7))";
    let mut cmd = lab.client(
        password,
        &["run", &target(&srv, user), "--accept-new", "--", command],
    );
    cmd.env("SSLKEYLOGFILE", &keys);
    let out = run_with(cmd, b"", Duration::from_secs(60));
    assert_eq!(ok(&out), b"out-42\n");
    std::thread::sleep(Duration::from_millis(500));
    stop_child(&mut dump, "INT");
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let raw = std::fs::read(&pcap).unwrap();
    assert!(
        raw.len() > 2000,
        "the capture holds the session ({} bytes): {rest}",
        raw.len()
    );
    for secret in [password, user, "printf", "out-42"] {
        assert!(
            !contains(&raw, secret),
            "{secret:?} is in the capture in clear"
        );
    }
    // With the client's key log, tshark decrypts the same capture and finds all of them:
    // the capture was of the real session.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .arg("-d")
        .arg(format!("tcp.port=={},tls", srv.port()))
        .arg("-x");
    let out = run_with(cmd, b"", Duration::from_secs(60));
    let text = String::from_utf8_lossy(&ok(&out)).into_owned();
    let plain = decrypted(&text);
    for secret in [password, user, "printf", "out-42"] {
        assert!(
            contains(&plain, secret),
            "{secret:?} not in tshark's decrypted bytes ({} bytes)",
            plain.len()
        );
    }
}

/// One JSON object per stdout line.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn raw_py() -> String {
    format!("{}/tests/support/rexec_raw.py", env!("CARGO_MANIFEST_DIR"))
}

fn raw(args: &[&str], limit: Duration) -> Output {
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg(raw_py()).args(args);
    run_with(cmd, b"", limit)
}

#[test]
fn fifty_wrong_passwords_are_slowed_and_cut_while_bob_logs_in() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let port = srv.port().to_string();
    // 17 connections × 3 tries = 51 wrong passwords for ana, all from 127.0.0.1 at once.
    let attack = {
        let port = port.clone();
        std::thread::spawn(move || {
            raw(
                &["brute", "127.0.0.1", &port, "ana", "17"],
                Duration::from_secs(60),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile bob, from the same address, logs in at once.
    let began = Instant::now();
    let out = lab.run(
        BOB_PW,
        &[
            "run",
            &target(&srv, "bob"),
            "--accept-new",
            "--",
            "echo bob-in",
        ],
        b"",
    );
    let bob_took = began.elapsed();
    assert_eq!(ok(&out), b"bob-in\n");
    let out = attack.join().unwrap();
    let answers = json_lines(&ok(&out));
    let fails: Vec<&Value> = answers.iter().filter(|a| a["kind"] == 0x82).collect();
    assert_eq!(fails.len(), 51, "every try answered: {answers:?}");
    // Cut: after its third failure every connection was closed by the server.
    let cut = answers.iter().filter(|a| a["after_third"] == "eof").count();
    assert_eq!(cut, 17, "{answers:?}");
    // Slowed: only a handful of the 51 were checked at all (the others were answered with
    // the time to wait), and the checked ones were spread over seconds.
    let mut checked: Vec<f64> = fails
        .iter()
        .filter(|a| a["retry_after_ms"] == 0)
        .map(|a| a["t"].as_f64().unwrap())
        .collect();
    checked.sort_by(f64::total_cmp);
    assert!(
        (4..=7).contains(&checked.len()),
        "{} tries checked: {checked:?}",
        checked.len()
    );
    let last = *checked.last().unwrap();
    assert!(
        last > 2.5,
        "the checked tries were not spread out: {checked:?}"
    );
    let refused = fails.len() - checked.len();
    assert!(
        fails
            .iter()
            .filter(|a| a["retry_after_ms"] != 0)
            .all(|a| a["retry_after_ms"].as_u64().unwrap() > 10_000),
        "{refused} refused tries say how long to wait"
    );
    // Bob was not slowed by ana's brake: done while ana's tries were still spaced out.
    assert!(
        bob_took.as_secs_f64() < last,
        "bob took {bob_took:?}, ana's last check at {last} s"
    );
    // ana herself, with the right password, is told to wait (the brake does not check).
    let out = lab.run(ANA_PW, &["run", &target(&srv, "ana"), "--", "true"], b"");
    exits(&out, 255);
    stderr_has(&out, "too many failures");
    let log = lab.audit("audit.jsonl");
    let auths = events(&log, "auth");
    assert!(
        auths.iter().any(|e| e["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("too many failures")),
        "the brake is logged"
    );
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    // Each try from its own source address, so the brake never applies; the two kinds
    // alternate, so both see the same load.
    let out = raw(
        &[
            "timing",
            "127.0.0.1",
            &srv.port().to_string(),
            "ana",
            "ghost",
            "10",
        ],
        Duration::from_secs(120),
    );
    let rows = json_lines(&ok(&out));
    let answer = |u: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r["user"] == u)
            .map(|r| r["answer"].as_str().unwrap().to_string())
            .collect()
    };
    let (a, g) = (answer("ana"), answer("ghost"));
    assert_eq!(a.len(), 10);
    assert!(
        a.iter().chain(&g).all(|x| x == "0200000000"),
        "the same AUTH_FAIL bytes (2 tries left, no wait): {a:?} {g:?}"
    );
    let median = |u: &str| -> f64 {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|r| r["user"] == u)
            .map(|r| r["ms"].as_f64().unwrap())
            .collect();
        v.sort_by(f64::total_cmp);
        (v[4] + v[5]) / 2.0
    };
    let (ma, mg) = (median("ana"), median("ghost"));
    // Argon2id's cost is milliseconds; without the decoy an unknown user would answer in
    // well under one. The bound stated in docs/REXEC.md: medians within a factor of 1.5.
    let ratio = ma.max(mg) / ma.min(mg);
    assert!(
        ratio < 1.5,
        "median ms: wrong password {ma:.1}, unknown user {mg:.1}"
    );
    assert!(
        mg > 5.0,
        "the unknown user's answer cost no hashing ({mg:.2} ms)"
    );
    let log = lab.audit("audit.jsonl");
    let reasons: Vec<&str> = events(&log, "auth")
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"unknown user") && reasons.contains(&"wrong password"));
}

#[test]
fn the_users_file_holds_standard_argon2id_strings() {
    require("argon2");
    let lab = Lab::new();
    use std::os::unix::fs::PermissionsExt;
    let users = lab.path("users");
    let meta = std::fs::metadata(&users).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&users).unwrap();
    for line in text.lines() {
        assert!(
            line.starts_with("ana:$argon2id$v=19$m=19456,t=2,p=1$")
                || line.starts_with("bob:$argon2id$v=19$m=19456,t=2,p=1$"),
            "{line}"
        );
    }
    // A hash made by the reference `argon2` tool, pasted into the file, lets carol in.
    let mut cmd = Command::new("argon2");
    cmd.args([
        "somesaltsomesalt",
        "-id",
        "-t",
        "2",
        "-k",
        "19456",
        "-p",
        "1",
        "-l",
        "32",
        "-e",
    ]);
    let out = run_with(cmd, b"carols-pw", Duration::from_secs(30));
    let phc = String::from_utf8_lossy(&ok(&out)).trim().to_string();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    std::fs::write(&users, format!("{text}# pasted\ncarol:{phc}\n")).unwrap();
    let out = socklab(&["rexec", "passwd", &lab.s("users"), "list"], b"");
    assert_eq!(String::from_utf8_lossy(&ok(&out)), "ana\nbob\ncarol\n");
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let out = lab.run(
        "carols-pw",
        &[
            "run",
            &target(&srv, "carol"),
            "--accept-new",
            "--",
            "echo carol-in",
        ],
        b"",
    );
    assert_eq!(ok(&out), b"carol-in\n");
    // Removed: no longer let in (the server reads the file at each login).
    let out = socklab(
        &["rexec", "passwd", &lab.s("users"), "remove", "carol"],
        b"",
    );
    ok(&out);
    assert!(
        std::fs::read_to_string(&users)
            .unwrap()
            .contains("# pasted")
    );
    let out = lab.run(
        "carols-pw",
        &["run", &target(&srv, "carol"), "--", "true"],
        b"",
    );
    exits(&out, 255);
    stderr_has(&out, "authentication failed");
    // Usage errors.
    let out = socklab(
        &["rexec", "passwd", &lab.s("users"), "remove", "nobody"],
        b"",
    );
    exits(&out, 2);
    let out = socklab(
        &[
            "rexec",
            "passwd",
            &lab.s("users"),
            "add",
            "../x",
            "--password-stdin",
        ],
        b"pw\n",
    );
    exits(&out, 2);
}

#[test]
fn hostile_frames_get_an_error_and_a_close() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &["--login-grace", "1s"]);
    let port = srv.port().to_string();
    let out = raw(&["hostile", "127.0.0.1", &port], Duration::from_secs(60));
    for row in json_lines(&ok(&out)) {
        assert_eq!(row["kind"], 0x87, "an ERROR for {row}");
        assert_eq!(row["code"], 1, "protocol error for {row}");
        assert_eq!(row["then"], "eof", "then the close, for {row}");
    }
    // A client that sends nothing is dropped after the login grace.
    let out = raw(&["grace", "127.0.0.1", &port], Duration::from_secs(30));
    let row = &json_lines(&ok(&out))[0];
    assert_eq!(row["kind"], 0x87);
    assert_eq!(row["code"], 3);
    let after = row["after_s"].as_f64().unwrap();
    assert!((0.5..10.0).contains(&after), "{after}");
}

#[test]
fn the_server_refuses_root_without_allow_root_and_bad_key_files() {
    let lab = Lab::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let out = socklab(
            &["rexec", "serve", "--users", &lab.s("users"), "-p", "0"],
            b"",
        );
        exits(&out, 2);
        stderr_has(&out, "--allow-root");
    }
    std::fs::write(lab.path("loose.pem"), "x").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        lab.path("loose.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = socklab(
        &[
            "rexec",
            "serve",
            "--users",
            &lab.s("users"),
            "-p",
            "0",
            "--allow-root",
            "--host-key",
            &lab.s("loose.pem"),
        ],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "chmod 600");
}

/// Anonymous resident memory of a process, in kB.
fn rss_anon_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn a_gibibyte_of_output_in_bounded_server_memory() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let before = rss_anon_kb(srv.pid());
    let mut cmd = lab.client(
        ANA_PW,
        &[
            "run",
            &target(&srv, "ana"),
            "--accept-new",
            "--",
            "head -c 1073741824 /dev/zero",
        ],
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let pid = srv.pid();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_anon_kb(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0));
        total += n as u64;
        assert!(Instant::now() < deadline, "1 GiB took more than 300 s");
    }
    let st = child.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert!(st.success());
    assert_eq!(total, 1 << 30);
    // One login's Argon2 block (19 MiB) is mmapped and given back; the output itself is
    // a few 32 KiB messages in flight.
    assert!(
        peak < before + 40 * 1024,
        "server anonymous memory peaked at {peak} kB (started at {before} kB)"
    );
    let after = rss_anon_kb(pid);
    assert!(
        after < before + 8 * 1024,
        "server anonymous memory {after} kB after, {before} kB before"
    );
    let log = lab.audit("audit.jsonl");
    let cmd = events(&log, "command")[0];
    assert_eq!(cmd["bytes_out"], 1u64 << 30);
}

#[test]
fn a_python_client_written_from_the_document_runs_commands() {
    // tests/support/rexec_client.py was written from docs/PROTOCOLS.md §12 alone (stdlib
    // ssl, socket, struct): TLS 1.3, the fingerprint pinned by hand, AUTH, EXEC with stdin
    // and its windows, EXIT.
    require("python3");
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let fp = fingerprint_of(&srv);
    let py = |fp: &str, password: &str, command: &str, stdin: &[u8]| {
        let mut cmd = Command::new("python3");
        cmd.arg(format!(
            "{}/tests/support/rexec_client.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["127.0.0.1", &srv.port().to_string(), "ana", fp, command])
        .env("SOCKLAB_PASSWORD", password);
        run_with(cmd, stdin, Duration::from_secs(60))
    };
    let out = py(&fp, ANA_PW, "cat; echo err >&2; exit 3", b"hello\n");
    assert_eq!(out.status.code(), Some(3), "{}", err_text(&out));
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(err_text(&out), "err\n");
    // A megabyte of stdin, more than the window, through sha256sum.
    let data = noise(1 << 20, 3);
    let out = py(&fp, ANA_PW, "wc -c", &data);
    assert_eq!(String::from_utf8_lossy(&ok(&out)).trim(), "1048576");
    // The wrong fingerprint: refused before anything is sent.
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let out = py(wrong, ANA_PW, "touch py-should-not-exist", b"");
    exits(&out, 255);
    assert!(!lab.home().join("py-should-not-exist").exists());
    // The wrong password.
    let out = py(&fp, "nope", "true", b"");
    exits(&out, 255);
    let log = lab.audit("audit.jsonl");
    let commands = events(&log, "command");
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(commands[1]["command"], "wc -c");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_its_command_killed() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &["--idle-timeout", "2s"]);
    let before = rss_anon_kb(srv.pid());
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg(raw_py())
        .args([
            "stall",
            "127.0.0.1",
            &srv.port().to_string(),
            "ana",
            "yes",
            "6",
        ])
        .env("SOCKLAB_PASSWORD", ANA_PW);
    let out = run_with(cmd, b"", Duration::from_secs(60));
    ok(&out);
    // The session ended with the command killed by the hang-up, memory back where it was.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = lab.audit("audit.jsonl");
        if !events(&log, "disconnect").is_empty() || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let disc = events(&log, "disconnect");
    assert_eq!(disc.len(), 1, "{log:?}");
    assert!(
        disc[0]["reason"]
            .as_str()
            .unwrap()
            .contains("stopped reading"),
        "{}",
        disc[0]
    );
    let yes = events(&log, "command")[0];
    assert_eq!(yes["command"], "yes");
    assert_eq!(yes["session_ended"], true);
    assert!(yes["signal"] == 1 || yes["signal"] == 9, "{yes}");
    assert!(rss_anon_kb(srv.pid()) < before + 8 * 1024);
}

#[test]
fn a_command_that_ignores_ctrl_c_is_left_at_the_third() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let mut cmd = lab.client(
        ANA_PW,
        &[
            "run",
            &target(&srv, "ana"),
            "--accept-new",
            "--",
            "trap '' INT; echo started; sleep 100",
        ],
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started\n");
    for _ in 0..2 {
        assert!(
            Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "still running");
    }
    let st = stop_child(&mut child, "INT").expect("left at the third Ctrl-C");
    assert_eq!(st.code(), Some(130));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("interrupted three times"), "{err}");
    // The server hangs the command up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = lab.audit("audit.jsonl");
        if let Some(c) = events(&log, "command").first() {
            assert_eq!(c["session_ended"], true, "{c}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the command was not ended: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn on_a_terminal_the_client_asks_about_the_key_and_for_the_password() {
    require("script");
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    let fp = fingerprint_of(&srv);
    // `script` gives the client a pseudo-terminal: the host-key question, the no-echo
    // password prompt and the `>>> ` prompt all happen there.
    let inner = format!(
        "{} rexec connect ana@127.0.0.1:{} --known-hosts {}",
        bin().display(),
        srv.port(),
        lab.s("known_hosts")
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env_remove("SOCKLAB_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let seen = seen.clone();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let mut stdin = child.stdin.take().unwrap();
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !seen.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "never saw {needle:?}; the terminal showed:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    use std::io::Write;
    wait_for("Are you sure you want to continue connecting");
    assert!(
        seen.lock().unwrap().contains(&fp),
        "the fingerprint is shown"
    );
    stdin.write_all(b"yes\n").unwrap();
    wait_for("ana@127.0.0.1's password: ");
    stdin.write_all(format!("{ANA_PW}\n").as_bytes()).unwrap();
    wait_for(">>> ");
    stdin.write_all(b"echo $((40+2))\n").unwrap();
    wait_for("\n42\r\n");
    // The next prompt (the command has ended), then `exit`.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().matches(">>> ").count() < 2 {
        assert!(Instant::now() < deadline, "no second prompt");
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"exit\n").unwrap();
    let st = stop_child(&mut child, "CONT").expect("the session ends at exit");
    assert!(st.success(), "{st}");
    let screen = seen.lock().unwrap().clone();
    assert!(
        !screen.contains(ANA_PW),
        "the password was echoed:\n{screen}"
    );
    let kh = std::fs::read_to_string(lab.path("known_hosts")).unwrap();
    assert_eq!(kh, format!("[127.0.0.1]:{} {fp}\n", srv.port()));
}

#[test]
fn command_timeout_ends_a_long_command() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &["--command-timeout", "1s"]);
    let began = Instant::now();
    let out = lab.run(
        ANA_PW,
        &[
            "run",
            &target(&srv, "ana"),
            "--accept-new",
            "--",
            "sleep 30",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(124), "{}", err_text(&out));
    assert!(began.elapsed() < Duration::from_secs(20));
    let log = lab.audit("audit.jsonl");
    let c = events(&log, "command")[0];
    assert_eq!(c["timed_out"], true);
    assert_eq!(c["signal"], 15);
}

#[test]
fn connections_that_never_log_in_cannot_take_every_slot() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &[]);
    // 50 plain TCP connections from 127.0.0.2 that never start TLS.
    require("python3");
    let mut cmd = Command::new("python3");
    cmd.arg(raw_py()).args([
        "hold",
        "127.0.0.1",
        &srv.port().to_string(),
        "127.0.0.2",
        "50",
        "4",
    ]);
    let holder = std::thread::spawn(move || run_with(cmd, b"", Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    // Meanwhile ana, from 127.0.0.1, logs in at once.
    let began = Instant::now();
    let out = lab.run(
        ANA_PW,
        &["run", &target(&srv, "ana"), "--accept-new", "--", "echo in"],
        b"",
    );
    assert_eq!(ok(&out), b"in\n");
    assert!(began.elapsed() < Duration::from_secs(10));
    let out = holder.join().unwrap();
    let rows = json_lines(&ok(&out));
    assert_eq!(rows[0]["opened"], 50);
    assert_eq!(
        rows[1]["closed_at_once"], 18,
        "beyond 32 not logged in per address, closed at once"
    );
    let log = lab.audit("audit.jsonl");
    assert_eq!(events(&log, "refused").len(), 18);
}

#[test]
fn a_removed_directory_and_a_daemon_do_not_wedge_the_session() {
    let lab = Lab::new();
    let srv = lab.server("hk.pem", "audit.jsonl", &["--command-timeout", "2s"]);
    let t = target(&srv, "ana");
    let home = lab.s("home");
    // The session's directory is removed under it: the next command runs in the start
    // directory, and says so.
    let out = lab.run(
        ANA_PW,
        &["connect", &t, "--accept-new"],
        b"mkdir gone\ncd gone\nrmdir ../gone\npwd\npwd\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&ok(&out)),
        format!("{home}\n{home}\n")
    );
    stderr_has(&out, "gone is gone; running in");
    // A daemon holding the output pipe open is cut at --command-timeout.
    let began = Instant::now();
    let out = lab.run(
        ANA_PW,
        &["run", &t, "--", "setsid sleep 30 & echo started"],
        b"",
    );
    assert_eq!(out.status.code(), Some(124), "{}", err_text(&out));
    assert_eq!(out.stdout, b"started\n");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    let log = lab.audit("audit.jsonl");
    assert!(
        events(&log, "command_start")
            .iter()
            .any(|e| e["command"] == "setsid sleep 30 & echo started")
    );
    // A users file others can write is refused at start.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(lab.path("users"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = socklab(
        &[
            "rexec",
            "serve",
            "--users",
            &lab.s("users"),
            "-p",
            "0",
            "--allow-root",
        ],
        b"",
    );
    exits(&out, 2);
    stderr_has(&out, "chmod 600");
}

#[test]
fn a_server_whose_home_does_not_exist_starts_sessions_in_root() {
    let lab = Lab::new();
    let mut cmd = Command::new(bin());
    cmd.args([
        "rexec",
        "serve",
        "--users",
        &lab.s("users"),
        "-p",
        "0",
        "--allow-root",
    ])
    .arg("--host-key")
    .arg(lab.path("hk.pem"))
    .env("HOME", "/nonexistent");
    let srv = Server::start_command(cmd);
    srv.expect_log("is not a directory: sessions start in /");
    let out = lab.run(
        ANA_PW,
        &["run", &target(&srv, "ana"), "--accept-new", "--", "pwd"],
        b"",
    );
    assert_eq!(ok(&out), b"/\n");
    // The password from the first line of --password-file (SOCKLAB_PASSWORD, wrong here,
    // comes after it).
    std::fs::write(lab.path("pw"), format!("{ANA_PW}\nignored\n")).unwrap();
    let pw = lab.s("pw");
    let out = lab.run(
        "wrong",
        &[
            "run",
            &target(&srv, "ana"),
            "--password-file",
            &pw,
            "--",
            "exit 7",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(7), "{}", err_text(&out));
}
