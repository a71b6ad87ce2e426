//! `socklab rexec serve`: TLS 1.3 on the shared service host, then the session of
//! [`super::proto`]: authentication (Argon2id, the brake of [`super::penalty`], at most
//! `--max-auth` hashes at once), then commands ([`super::session`]) one after another.
//!
//! ```text
//!  accept ─▶ TLS handshake ─▶ frames ─▶ ServerSession ─┬─ Authenticate ─▶ gate (brake, semaphore,
//!  (within --login-grace)                              │                   Argon2id on a thread)
//!                                                      ├─ Exec ─▶ sh -c (process group) ─┐
//!                                                      ├─ Stdin/Eof ─▶ its stdin          │
//!                                                      └─ Signal ─▶ killpg                │
//!  writer ◀── control messages first (AUTH_*, WINDOW, ERROR) ◀── session                  │
//!         ◀── STDOUT/STDERR, then EXIT (a bounded queue: back-pressure) ◀─────────────────┘
//! ```
//!
//! Every event goes to `--log FILE` as a JSON line (see [`Audit`]).

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroize;

use super::penalty::{Admit, Brake};
use super::proto::{self, ErrorCode, MAX_FRAME, Message, STDIN_WINDOW, ServerEvent, ServerSession};
use super::session::{self, Input, Running};
use super::tls::HostKey;
use super::users::{self, Users};
use crate::frame::tlv::TlvCodec;
use crate::net::host::{self, Bound, Conn, Stream, StreamService};
use crate::net::serve::ServeSummary;
use crate::net::{NetError, Peer, ServeOptions, clock, within};

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 2222;
/// Default `--login-grace`.
pub const DEFAULT_LOGIN_GRACE: Duration = Duration::from_secs(30);
/// Default `--idle-timeout`.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default `--max-auth`.
pub const DEFAULT_MAX_AUTH: usize = 4;

/// Everything a server needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy.
    pub serve: ServeOptions,
    /// The users file (read again at each authentication, so `passwd add` takes effect
    /// at once).
    pub users: PathBuf,
    /// Where commands start.
    pub home: PathBuf,
    /// Not authenticated this long after connecting: closed.
    pub login_grace: Duration,
    /// No message and no command this long: closed.
    pub idle: Duration,
    /// Commands running longer are ended.
    pub command_timeout: Option<Duration>,
    /// Argon2 hashes at once (each takes 19 MiB).
    pub max_auth: usize,
    /// Connections not yet authenticated, in all (`--max-startups`).
    pub max_startups: usize,
    /// Connections not yet authenticated, per source address (`--max-startups-per-source`).
    pub per_source_startups: usize,
}

/// Default `--max-startups`.
pub const DEFAULT_MAX_STARTUPS: usize = 128;
/// Default `--max-startups-per-source`.
pub const DEFAULT_PER_SOURCE_STARTUPS: usize = 32;
/// The longest a TLS handshake may take (within the login grace).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that have not logged in yet, counted in all and per source, so that
/// connections that never authenticate (a flood, or a peer that holds sockets open) cannot
/// take every `--max-conns` slot from the users who do: beyond either limit a new connection is
/// closed at once (as sshd's MaxStartups and PerSourceMaxStartups do).
#[derive(Debug, Default)]
struct Startups {
    total: usize,
    per: std::collections::HashMap<IpAddr, usize>,
}

/// One connection's place among the [`Startups`], given back when it logs in or ends.
struct StartupSlot<'a> {
    owner: &'a Mutex<Startups>,
    ip: IpAddr,
    held: bool,
}

impl<'a> StartupSlot<'a> {
    fn take(owner: &'a Mutex<Startups>, ip: IpAddr, max: usize, per: usize) -> Option<Self> {
        let mut s = owner.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.per.get(&ip).copied().unwrap_or(0);
        if s.total >= max || n >= per {
            return None;
        }
        s.total += 1;
        s.per.insert(ip, n + 1);
        Some(StartupSlot {
            owner,
            ip,
            held: true,
        })
    }

    fn release(&mut self) {
        if !self.held {
            return;
        }
        self.held = false;
        let mut s = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per.remove(&self.ip);
            }
        }
    }
}

impl Drop for StartupSlot<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// The key the brake and the start-up limits use for an address: IPv6 by its /64 (one host
/// usually holds a whole /64), IPv4 as it is.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

/// The server's `--log FILE`: one JSON object per line, each with `time` (RFC 3339, UTC),
/// `event` and `session` (a number per connection):
///
/// - `connect`: `peer`, `tls` (version), `cipher`, `alpn`;
/// - `auth`: `user`, `result` (`ok`/`fail`), `reason` (`unknown user`, `wrong password`,
///   `too many failures, retry after N ms`, `users file: …`, kept server-side only),
///   `tries_left`;
/// - `command`: `user`, `cwd`, `command`, `argv`, `start`, `duration_ms`, `exit_status` or
///   `signal`, `timed_out`, `bytes_out`, `bytes_err`;
/// - `disconnect`: `user`, `reason`, `duration_ms`, `commands`.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl Audit {
    /// No log.
    pub fn none() -> Audit {
        Audit::default()
    }

    /// Appends to `path` (created with mode 0600).
    pub fn open(path: &std::path::Path) -> io::Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Audit {
            file: Some(Arc::new(Mutex::new(f))),
        })
    }

    /// Writes one event (one `write` per line, so lines from several sessions never mix).
    pub fn log(&self, event: &str, session: u64, mut fields: serde_json::Value) {
        let Some(f) = &self.file else { return };
        let mut obj = serde_json::Map::new();
        obj.insert("time".into(), json!(timestamp(clock::wall())));
        obj.insert("event".into(), json!(event));
        obj.insert("session".into(), json!(session));
        if let Some(m) = fields.as_object_mut() {
            obj.append(m);
        }
        let mut line = serde_json::Value::Object(obj).to_string();
        line.push('\n');
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = io::Write::write_all(&mut *f, line.as_bytes()) {
            tracing::warn!("rexec: writing the log: {e}");
        }
    }
}

/// RFC 3339 in UTC, to the microsecond.
pub fn timestamp(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| format!("{ts:.6}"))
        .unwrap_or_default()
}

/// Who checks passwords: the brake, the semaphore, the decoy hash.
struct Gate {
    users: PathBuf,
    brake: Mutex<Brake>,
    hashing: Semaphore,
    /// Woken when a check finishes (tries waiting for a slot ask again).
    slot: tokio::sync::Notify,
    decoy: String,
}

/// The outcome of one try.
struct Outcome {
    ok: bool,
    reason: String,
    retry_after: Duration,
}

impl Gate {
    /// Checks a try, unless the session that asked is gone (`None` then: nothing is checked,
    /// nothing counted).
    async fn check(
        self: Arc<Self>,
        ip: IpAddr,
        user: String,
        mut password: Vec<u8>,
        asker: &oneshot::Sender<Outcome>,
    ) -> Option<Outcome> {
        let at = loop {
            if asker.is_closed() {
                password.zeroize();
                return None;
            }
            // Made before asking, so a slot freed in between is not missed.
            let freed = self.slot.notified();
            let admit =
                self.brake
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .admit(ip, &user, clock::now());
            match admit {
                Admit::At(at) => break at,
                Admit::Busy => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), freed).await;
                }
                Admit::Refuse(wait) => {
                    password.zeroize();
                    return Some(Outcome {
                        ok: false,
                        reason: format!("too many failures, retry after {} ms", wait.as_millis()),
                        retry_after: wait,
                    });
                }
            }
        };
        tokio::time::sleep_until(at.into()).await;
        let permit = self.hashing.acquire().await;
        if asker.is_closed() {
            // Gone while waiting: give the slot back without a check.
            password.zeroize();
            drop(permit);
            self.brake
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .abandon(ip, &user);
            self.slot.notify_waiters();
            return None;
        }
        let gate = self.clone();
        let name = user.clone();
        let (ok, reason) = tokio::task::spawn_blocking(move || {
            // Unknown users are checked against the decoy: the same work, the same answer.
            let (phc, known, reason) = match Users::load_for_server(&gate.users) {
                Ok(u) => match u.hash_of(&name) {
                    Some(h) => (h.to_string(), true, "wrong password".to_string()),
                    None => (gate.decoy.clone(), false, "unknown user".to_string()),
                },
                Err(e) => (gate.decoy.clone(), false, format!("users file: {e}")),
            };
            let ok = users::verify(&password, &phc) && known;
            password.zeroize();
            (ok, if ok { "ok".to_string() } else { reason })
        })
        .await
        .unwrap_or((false, "the check failed".into()));
        drop(permit);
        self.brake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(ip, &user, ok, clock::now());
        self.slot.notify_waiters();
        Some(Outcome {
            ok,
            reason,
            retry_after: Duration::ZERO,
        })
    }
}

/// Runs the server on a bound TCP socket until `shutdown`.
pub async fn run(
    bound: impl Into<Bound>,
    cfg: Config,
    key: &HostKey,
    audit: Audit,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    let tls = key.server_config().map_err(|e| NetError::Io {
        what: "setting up TLS".into(),
        source: io::Error::other(e.to_string()),
    })?;
    let decoy = users::decoy().map_err(|e| NetError::Io {
        what: "making the decoy hash".into(),
        source: io::Error::other(e.to_string()),
    })?;
    return_big_blocks();
    let opts = cfg.serve.clone();
    let service = Rexec {
        acceptor: tokio_rustls::TlsAcceptor::from(tls),
        gate: Arc::new(Gate {
            users: cfg.users.clone(),
            brake: Mutex::new(Brake::new()),
            hashing: Semaphore::new(cfg.max_auth.max(1)),
            slot: tokio::sync::Notify::new(),
            decoy,
        }),
        cfg,
        audit,
        sessions: AtomicU64::new(0),
        shutdown: shutdown.clone(),
        startups: Mutex::new(Startups::default()),
    };
    host::serve_stream(bound.into(), opts, shutdown, Arc::new(service)).await
}

/// Each password check allocates Argon2's 19 MiB and frees it. glibc raises its mmap
/// threshold after such a free, so later checks come from the heap of whichever thread ran
/// them, and every blocking thread keeps its 19 MiB resident (measured: 101 MiB of anonymous
/// memory after five logins, 140 MiB after eleven). A fixed threshold keeps blocks of 4 MiB
/// and more on mmap, given back to the kernel when freed.
fn return_big_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before the server
    // allocates its first block of this size.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

struct Rexec {
    cfg: Config,
    acceptor: tokio_rustls::TlsAcceptor,
    gate: Arc<Gate>,
    audit: Audit,
    sessions: AtomicU64,
    shutdown: CancellationToken,
    startups: Mutex<Startups>,
}

/// Why a session ended early (logged in the connection's close line).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    /// No TLS handshake in time.
    #[error("no TLS handshake within 10 s (or the login grace)")]
    HandshakeTimeout,
    /// Too many connections not logged in yet.
    #[error("closed at once: too many connections not logged in (--max-startups)")]
    Startups,
    /// Reading failed.
    #[error("reading: {0}")]
    Read(String),
    /// The client broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl StreamService for Rexec {
    type Error = ConnError;

    fn name(&self) -> &str {
        "rexec"
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> Result<(), ConnError> {
        let id = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let began = clock::now();
        let login_deadline = clock::tokio_now() + self.cfg.login_grace;
        let peer = conn.peer.clone();
        let hard_stop = conn.hard_stop.clone();
        let ip = match &peer {
            Peer::Inet(a) => source_key(a.ip()),
            Peer::Unix(_) => IpAddr::from([127, 0, 0, 1]),
        };
        let Some(startup) = StartupSlot::take(
            &self.startups,
            ip,
            self.cfg.max_startups,
            self.cfg.per_source_startups,
        ) else {
            self.audit.log(
                "refused",
                id,
                json!({
                    "peer": peer.to_string(),
                    "reason": "too many connections not logged in (--max-startups)",
                }),
            );
            conn.skip_linger();
            return Err(ConnError::Startups);
        };
        let handshake_deadline = login_deadline.min(clock::tokio_now() + HANDSHAKE_TIMEOUT);
        let tls =
            match tokio::time::timeout_at(handshake_deadline, self.acceptor.accept(&mut conn.io))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    self.audit.log(
                        "handshake_failed",
                        id,
                        json!({"peer": peer.to_string(), "reason": e.to_string()}),
                    );
                    return Err(ConnError::Handshake(e));
                }
                Err(_) => {
                    self.audit.log(
                        "handshake_failed",
                        id,
                        json!({"peer": peer.to_string(), "reason": "no TLS handshake in time"}),
                    );
                    return Err(ConnError::HandshakeTimeout);
                }
            };
        {
            let (_, c) = tls.get_ref();
            self.audit.log(
                "connect",
                id,
                json!({
                    "peer": peer.to_string(),
                    "tls": c.protocol_version().map(|v| format!("{v:?}")),
                    "cipher": c.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
                    "alpn": c.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned()),
                }),
            );
        }
        let (rd, wr) = tokio::io::split(tls);
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(8);
        // The writer tells the session when the client stopped reading; the session tells the
        // writer when it is over (so a daemon still holding a pipe cannot keep it open).
        let stalled = CancellationToken::new();
        let over = CancellationToken::new();
        let writer = write_loop(
            wr,
            ctrl_rx,
            data_rx,
            self.cfg.idle,
            over.clone(),
            stalled.clone(),
        );
        let s = Session {
            srv: self,
            id,
            startup,
            peer,
            user: None,
            cwd: self.cfg.home.clone(),
            proto: ServerSession::new(),
            ctrl: ctrl_tx,
            data: data_tx,
            commands: 0,
        };
        let frames = FramedRead::new(rd, TlvCodec::new(MAX_FRAME));
        let main = async {
            let r = s.run(frames, login_deadline, hard_stop, stalled).await;
            over.cancel();
            r
        };
        let ((result, user, commands), _) = tokio::join!(main, writer);
        let (reason, err) = match result {
            Ok(r) => (r, None),
            Err(e) => (e.to_string(), Some(e)),
        };
        self.audit.log(
            "disconnect",
            id,
            json!({
                "user": user,
                "reason": reason,
                "duration_ms": ms(clock::since(began)),
                "commands": commands,
            }),
        );
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

struct Session<'a> {
    srv: &'a Rexec,
    id: u64,
    startup: StartupSlot<'a>,
    peer: Peer,
    user: Option<String>,
    cwd: PathBuf,
    proto: ServerSession,
    ctrl: mpsc::UnboundedSender<Message>,
    data: mpsc::Sender<Message>,
    commands: u64,
}

/// A command being run, and what the log needs of it.
struct Job {
    running: Running,
    command: String,
    cwd: PathBuf,
    start: std::time::SystemTime,
}

impl Session<'_> {
    fn send(&self, m: Message) {
        let _ = self.ctrl.send(m);
    }

    fn fail(&self, code: ErrorCode, reason: impl Into<String>) {
        self.send(Message::Error {
            code,
            reason: reason.into(),
        });
    }

    /// The session's loop; returns why it ended normally, the user and the commands run.
    /// It consumes the session, so the writer's queues close when it returns.
    async fn run<R>(
        mut self,
        mut frames: FramedRead<R, TlvCodec>,
        login_deadline: tokio::time::Instant,
        hard_stop: CancellationToken,
        stalled: CancellationToken,
    ) -> (Result<String, ConnError>, Option<String>, u64)
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        let ip = self.startup.ip;
        let (written_tx, mut written_rx) = mpsc::unbounded_channel::<u32>();
        let mut auth: Option<oneshot::Receiver<Outcome>> = None;
        let mut job: Option<Job> = None;
        let mut last = clock::tokio_now();
        let shutdown = self.srv.shutdown.clone();
        let result = loop {
            let deadline = if !self.proto.authenticated() {
                login_deadline
            } else if job.is_some() {
                last + Duration::from_secs(100 * 365 * 86_400)
            } else {
                last + self.srv.cfg.idle
            };
            tokio::select! {
                biased;
                _ = stalled.cancelled() => {
                    break Ok(format!(
                        "the client stopped reading (no write went through for {})",
                        crate::net::fmt_duration(self.srv.cfg.idle)
                    ));
                }
                _ = hard_stop.cancelled() => {
                    self.fail(ErrorCode::Shutdown, "the server is shutting down");
                    break Ok("server shut down".to_string());
                }
                _ = shutdown.cancelled(), if job.is_none() => {
                    self.fail(ErrorCode::Shutdown, "the server is shutting down");
                    break Ok("server shut down".to_string());
                }
                outcome = async { auth.as_mut().expect("guarded").await }, if auth.is_some() => {
                    auth = None;
                    let outcome = outcome.unwrap_or(Outcome {
                        ok: false,
                        reason: "the check failed".into(),
                        retry_after: Duration::ZERO,
                    });
                    let left = self.proto.auth_done(outcome.ok);
                    let user = self.user.clone();
                    self.srv.audit.log("auth", self.id, json!({
                        "peer": self.peer.to_string(),
                        "user": user,
                        "result": if outcome.ok { "ok" } else { "fail" },
                        "reason": outcome.reason,
                        "tries_left": left,
                    }));
                    if outcome.ok {
                        self.startup.release();
                        tracing::info!("rexec: {} authenticated as {}", self.peer, user.as_deref().unwrap_or(""));
                        self.send(Message::AuthOk { cwd: self.cwd.display().to_string() });
                    } else {
                        tracing::info!("rexec: {} failed to authenticate as {} ({})", self.peer, user.as_deref().unwrap_or(""), outcome.reason);
                        self.user = None;
                        self.send(Message::AuthFail {
                            tries_left: left,
                            retry_after_ms: outcome.retry_after.as_millis().min(u128::from(u32::MAX)) as u32,
                        });
                        if left == 0 {
                            break Ok("three failed tries".to_string());
                        }
                    }
                }
                done = async { (&mut job.as_mut().expect("guarded").running.done).await }, if job.is_some() => {
                    let j = job.take().expect("guarded");
                    let done = done.unwrap_or(session::Done {
                        ending: proto::Ending::NotStarted,
                        cwd: None,
                        bytes_out: 0,
                        bytes_err: 0,
                        duration: Duration::ZERO,
                    });
                    if let Some(dir) = &done.cwd {
                        self.cwd = dir.clone();
                    }
                    self.log_command(&j, &done, false);
                    // After the output: through the data queue.
                    let exit = Message::Exit { ending: done.ending, cwd: self.cwd.display().to_string() };
                    if self.data.send(exit).await.is_err() {
                        break Ok("connection lost".to_string());
                    }
                    self.proto.exec_done();
                    last = clock::tokio_now();
                }
                Some(n) = written_rx.recv() => {
                    if job.is_some() && n > 0 {
                        self.proto.window_grant(n);
                        self.send(Message::Window(n.min(STDIN_WINDOW)));
                    }
                }
                frame = tokio::time::timeout_at(deadline, frames.next()) => {
                    let frame = match frame {
                        Err(_) => {
                            if self.proto.authenticated() {
                                self.fail(ErrorCode::Idle, format!("no command for {}", crate::net::fmt_duration(self.srv.cfg.idle)));
                                break Ok("idle timeout".to_string());
                            }
                            self.fail(ErrorCode::LoginGrace, "not authenticated in time");
                            break Ok("login grace timeout".to_string());
                        }
                        Ok(None) => break Ok("closed by the client".to_string()),
                        Ok(Some(Err(e))) => {
                            let e = e.to_string();
                            self.fail(ErrorCode::Protocol, e.clone());
                            break Err(ConnError::Read(e));
                        }
                        Ok(Some(Ok(f))) => f,
                    };
                    last = clock::tokio_now();
                    let event = Message::parse(frame.kind, &frame.value)
                        .and_then(|m| self.proto.on_message(m));
                    let event = match event {
                        Ok(ev) => ev,
                        Err(e) => {
                            self.fail(ErrorCode::Protocol, e.to_string());
                            break Err(ConnError::Protocol(e.to_string()));
                        }
                    };
                    match event {
                        ServerEvent::Authenticate { user, password } => {
                            self.user = Some(user.clone());
                            let (tx, rx) = oneshot::channel();
                            let gate = self.srv.gate.clone();
                            tokio::spawn(async move {
                                // `tx` closes when the session is gone: the check is skipped.
                                if let Some(outcome) = gate.check(ip, user, password, &tx).await {
                                    let _ = tx.send(outcome);
                                }
                            });
                            auth = Some(rx);
                        }
                        ServerEvent::Exec { stdin, command } => {
                            self.commands += 1;
                            let user = self.user.clone().unwrap_or_default();
                            let env = session::environment(&user, &self.peer.to_string(), &self.cwd);
                            if stdin {
                                self.send(Message::Window(STDIN_WINDOW));
                            }
                            let running = session::start(
                                session::Spec {
                                    line: command.clone(),
                                    cwd: self.cwd.clone(),
                                    home: self.srv.cfg.home.clone(),
                                    env,
                                    stdin,
                                    timeout: self.srv.cfg.command_timeout,
                                },
                                self.data.clone(),
                                written_tx.clone(),
                            );
                            let start = clock::wall();
                            // Logged as it starts too: a command that never ends (a daemon
                            // holding its pipes, a server stopped) is still on record.
                            self.srv.audit.log("command_start", self.id, json!({
                                "user": self.user,
                                "cwd": self.cwd.display().to_string(),
                                "command": command,
                                "start": timestamp(start),
                            }));
                            job = Some(Job { running, command, cwd: self.cwd.clone(), start });
                        }
                        ServerEvent::Stdin(b) => {
                            if let Some(tx) = job.as_ref().and_then(|j| j.running.stdin.as_ref()) {
                                let _ = tx.send(Input::Data(b));
                            }
                        }
                        ServerEvent::StdinEof => {
                            if let Some(tx) = job.as_ref().and_then(|j| j.running.stdin.as_ref()) {
                                let _ = tx.send(Input::Eof);
                            }
                        }
                        ServerEvent::Signal(sig) => {
                            if let Some(j) = &job {
                                j.running.signal(sig);
                            }
                        }
                        ServerEvent::Late => {}
                        ServerEvent::Bye => break Ok("bye".to_string()),
                    }
                }
            }
        };
        // A command still running when the session ends: SIGHUP, then SIGKILL.
        if let Some(mut j) = job.take() {
            session::kill_group(j.running.pgid, nix::sys::signal::Signal::SIGHUP);
            let done = match tokio::time::timeout(session::KILL_AFTER, &mut j.running.done).await {
                Ok(d) => d.ok(),
                Err(_) => {
                    session::kill_group(j.running.pgid, nix::sys::signal::Signal::SIGKILL);
                    tokio::time::timeout(session::KILL_AFTER, &mut j.running.done)
                        .await
                        .ok()
                        .and_then(|d| d.ok())
                }
            };
            if let Some(done) = done {
                self.log_command(&j, &done, true);
            }
        }
        (result, self.user.take(), self.commands)
    }

    fn log_command(&self, j: &Job, done: &session::Done, cut: bool) {
        let mut fields = json!({
            "user": self.user,
            "cwd": j.cwd.display().to_string(),
            "command": j.command,
            "argv": ["/bin/sh", "-c", j.command],
            "start": timestamp(j.start),
            "duration_ms": ms(done.duration),
            "timed_out": matches!(done.ending, proto::Ending::TimedOut(_)),
            "bytes_out": done.bytes_out,
            "bytes_err": done.bytes_err,
        });
        let m = fields.as_object_mut().expect("an object");
        match done.ending {
            proto::Ending::Exited(n) => {
                m.insert("exit_status".into(), json!(n));
            }
            proto::Ending::Signaled(s) | proto::Ending::TimedOut(s) => {
                m.insert("signal".into(), json!(s));
            }
            proto::Ending::NotStarted => {
                m.insert("exit_status".into(), json!(null));
                m.insert("not_started".into(), json!(true));
            }
        }
        if cut {
            m.insert("session_ended".into(), json!(true));
        }
        tracing::info!(
            "rexec: {} ran {:?} in {}: {}",
            self.user.as_deref().unwrap_or(""),
            j.command,
            j.cwd.display(),
            done.ending
        );
        self.srv.audit.log("command", self.id, fields);
    }
}

/// Writes control messages first, then output; batches what is queued into one write. A
/// write that makes no progress for `stall` cancels `stalled` (the session ends). Once `over`
/// is cancelled, what is queued is written and the writer ends.
async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    ctrl: mpsc::UnboundedReceiver<Message>,
    data: mpsc::Receiver<Message>,
    stall: Duration,
    over: CancellationToken,
    stalled: CancellationToken,
) -> io::Result<()> {
    let r = write_queued(wr, ctrl, data, stall, over).await;
    if r.is_err() {
        stalled.cancel();
    }
    r
}

async fn write_queued<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut ctrl: mpsc::UnboundedReceiver<Message>,
    mut data: mpsc::Receiver<Message>,
    stall: Duration,
    over: CancellationToken,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    let mut ctrl_open = true;
    let mut data_open = true;
    let mut last = false;
    while (ctrl_open || data_open) && !last {
        tokio::select! {
            biased;
            m = ctrl.recv(), if ctrl_open => match m {
                Some(m) => m.encode(&mut buf),
                None => { ctrl_open = false; continue; }
            },
            m = data.recv(), if data_open => match m {
                Some(m) => m.encode(&mut buf),
                None => { data_open = false; continue; }
            },
            _ = over.cancelled() => last = true,
        }
        while last || buf.len() < 256 * 1024 {
            if let Ok(m) = ctrl.try_recv() {
                m.encode(&mut buf);
            } else if let Ok(m) = data.try_recv() {
                m.encode(&mut buf);
            } else {
                break;
            }
        }
        within(stall, wr.write_all(&buf)).await?;
        within(stall, wr.flush()).await?;
        buf.clear();
    }
    let _ = within(Duration::from_secs(2), wr.shutdown()).await;
    Ok(())
}
