//! `socklab rexec connect` and `run`: connect, trust the host key the way ssh does (pinned,
//! known, or asked), authenticate, then run commands one after another.
//!
//! ```text
//!  TCP ─▶ TLS 1.3 (PinVerifier: the handshake signature, the key's fingerprint)
//!      ─▶ a new host? --accept-new, or ask on the terminal; a changed key: refused, nothing sent
//!      ─▶ AUTH (password from SOCKLAB_PASSWORD, --password-file, or the no-echo prompt)
//!      ─▶ EXEC … output … EXIT, for each command
//! ```

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::FramedRead;
use zeroize::{Zeroize, Zeroizing};

use super::proto::{ClientPhase, ClientSession, Ending, MAX_DATA, MAX_FRAME, Message, ProtoError};
use super::tls::{self, Expect, KeyError, KnownHosts, Seen, host_key_name};
use crate::frame::tlv::TlvCodec;
use crate::net::{self, NetError, clock};

/// socklab's own failures in `rexec connect` and `run` exit with this code (as ssh does with
/// 255), so that every other code is the remote command's.
pub const OWN_ERROR: u8 = 255;

/// Where the password comes from.
#[derive(Clone)]
pub enum PasswordSource {
    /// Given (from `SOCKLAB_PASSWORD` or `--password-file`); one try.
    Given(Zeroizing<String>),
    /// The no-echo prompt on the terminal; a new prompt after each failure.
    Prompt,
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never the password.
            PasswordSource::Given(_) => f.write_str("Given(<hidden>)"),
            PasswordSource::Prompt => f.write_str("Prompt"),
        }
    }
}

/// How the host key is trusted.
#[derive(Debug, Clone)]
pub struct Trust {
    /// `--fingerprint`: exactly this key.
    pub fingerprint: Option<String>,
    /// `--accept-new`: remember an unknown key without asking.
    pub accept_new: bool,
    /// The known-hosts file.
    pub known_hosts: PathBuf,
}

/// Everything a client needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The user name.
    pub user: String,
    /// The server's host (as given: it names the known-hosts line).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Host-key trust.
    pub trust: Trust,
    /// The password.
    pub password: PasswordSource,
    /// Connecting, the handshake and each answer before a command runs.
    pub timeout: Duration,
    /// `--log FILE`: the session's transcript.
    pub log: Option<PathBuf>,
}

/// A client failure: each exits with [`OWN_ERROR`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The host key changed (the warning was printed).
    #[error("the host key of {name} is not the one expected ({expected_by}); nothing was sent")]
    HostKeyChanged {
        /// `[HOST]:PORT`.
        name: String,
        /// Where the expected key comes from.
        expected_by: String,
    },
    /// An unknown host key and no way to ask.
    #[error(
        "the host key of {name} is unknown ({fingerprint}); check it with the server's operator, \
         then connect again with --accept-new or --fingerprint {fingerprint}; nothing was sent"
    )]
    HostKeyUnknown {
        /// `[HOST]:PORT`.
        name: String,
        /// What it showed.
        fingerprint: String,
    },
    /// The user answered no.
    #[error("host key not accepted; nothing was sent")]
    HostKeyDeclined,
    /// TLS failed.
    #[error("TLS with {0}")]
    Tls(String),
    /// Authentication failed.
    #[error("authentication failed{}", retry_hint(*.retry_after_ms))]
    AuthFailed {
        /// The server's advice.
        retry_after_ms: u32,
    },
    /// No password available.
    #[error("{0}")]
    NoPassword(String),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server ended the session.
    #[error("the server ended the session: {0}")]
    Ended(String),
    /// The connection closed before the end.
    #[error("the connection closed {0}")]
    Closed(&'static str),
    /// No answer in time.
    #[error("no answer from the server within {}", net::fmt_duration(*.0))]
    Timeout(Duration),
    /// The key files.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A flag or file the client needs is wrong (reported before anything is sent).
    #[error("{0}")]
    Setup(String),
    /// Ctrl-C three times during one command (it ignored SIGINT).
    #[error("interrupted three times: leaving (the server hangs up the command's process group)")]
    Interrupted,
    /// Local I/O (the terminal, stdin, stdout, the log).
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn retry_hint(ms: u32) -> String {
    if ms == 0 {
        String::new()
    } else {
        format!(
            " (too many failures: the server checks no password for this user from here for {:.0} s)",
            f64::from(ms) / 1000.0
        )
    }
}

impl crate::exit::ExitCoded for ClientError {
    fn exit_code(&self) -> u8 {
        match self {
            ClientError::Interrupted => 130,
            _ => OWN_ERROR,
        }
    }
}

impl From<ProtoError> for ClientError {
    fn from(e: ProtoError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

fn local(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Local { what, source }
}

type Tls = TlsStream<TcpStream>;

/// An authenticated session.
pub struct Channel {
    frames: FramedRead<ReadHalf<Tls>, TlvCodec>,
    writer: WriteHalf<Tls>,
    session: ClientSession,
    timeout: Duration,
    /// The working directory the server reported last.
    pub cwd: String,
    /// The server key's fingerprint.
    pub fingerprint: String,
    transcript: Option<Transcript>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("cwd", &self.cwd)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The loud warning for a changed host key, as ssh prints it.
fn warn_changed(name: &str, seen: &str, expected: &str, source: &str, hint: &str) {
    eprintln!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: REMOTE HOST KEY HAS CHANGED!                @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
         Someone could be eavesdropping on you right now (man-in-the-middle attack),\n\
         or the server's host key was replaced.\n\
         {name} showed the key      {seen}\n\
         but {source} expects   {expected}\n\
         {hint}\n\
         Nothing was sent: no user name, no password, no command."
    );
}

/// Whether a command runs (Ctrl-C then goes to it, not to this process).
static IN_COMMAND: AtomicBool = AtomicBool::new(false);

/// Ctrl-C outside a command (at the password prompt, while connecting, between piped
/// commands) ends the client at once with 130, the terminal's settings put back first (the
/// password prompt turns echo off). Call once, before anything else.
pub fn exit_on_interrupt_outside_commands() -> Result<(), ClientError> {
    let saved = TtyState::save();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(local("catching Ctrl-C"))?;
    tokio::spawn(async move {
        while sigint.recv().await.is_some() {
            if !IN_COMMAND.load(Ordering::SeqCst) {
                saved.restore();
                eprintln!("\nsocklab: interrupted");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

/// The controlling terminal's settings, to put back.
struct TtyState(Option<(std::fs::File, libc::termios)>);

impl TtyState {
    fn save() -> TtyState {
        use std::os::fd::AsRawFd;
        let Ok(tty) = std::fs::File::open("/dev/tty") else {
            return TtyState(None);
        };
        // SAFETY: tcgetattr fills the zeroed termios for an open descriptor; on failure the
        // value is not used.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut t) } != 0 {
            return TtyState(None);
        }
        TtyState(Some((tty, t)))
    }

    fn restore(&self) {
        use std::os::fd::AsRawFd;
        if let Some((tty, t)) = &self.0 {
            // SAFETY: sets back settings read from the same terminal.
            unsafe {
                libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, t);
            }
        }
    }
}

/// Marks a command as running for as long as it lives.
struct InCommand;

impl InCommand {
    fn enter() -> InCommand {
        IN_COMMAND.store(true, Ordering::SeqCst);
        InCommand
    }
}

impl Drop for InCommand {
    fn drop(&mut self) {
        IN_COMMAND.store(false, Ordering::SeqCst);
    }
}

/// Connects, checks the host key, and authenticates.
pub async fn connect(cfg: &Config) -> Result<Channel, ClientError> {
    // The transcript first: a log that cannot be written is found before anything is sent.
    let transcript = match &cfg.log {
        Some(path) => Some(Transcript::open(path)?),
        None => None,
    };
    let name = host_key_name(&cfg.host, cfg.port);
    let mut known = KnownHosts::load(&cfg.trust.known_hosts)?;
    let expect = match (&cfg.trust.fingerprint, known.find(&name)) {
        (Some(fp), _) => Expect::Pinned {
            fingerprint: fp.clone(),
            source: "--fingerprint".into(),
        },
        (None, Some(k)) => Expect::Pinned {
            fingerprint: k.fingerprint,
            source: format!("{} line {}", known.path().display(), k.line),
        },
        (None, None) => Expect::Unknown,
    };
    let endpoint = net::Endpoint::Inet {
        host: cfg
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: cfg.port,
    };
    let (tcp, _addr) = net::connect::tcp(&endpoint, cfg.timeout).await?;
    let (config, seen) = tls::client_config(expect.clone())?;
    let server_name = server_name(&cfg.host);
    let connector = tokio_rustls::TlsConnector::from(config);
    let handshake = tokio::time::timeout(cfg.timeout, connector.connect(server_name, tcp)).await;
    let fingerprint = |seen: &Arc<Mutex<Seen>>| {
        let s = seen.lock().unwrap_or_else(|p| p.into_inner());
        (s.fingerprint.clone().unwrap_or_default(), s.mismatch)
    };
    let tls = match handshake {
        Err(_) => return Err(ClientError::Timeout(cfg.timeout)),
        Ok(Err(e)) => {
            let (fp, mismatch) = fingerprint(&seen);
            if mismatch
                && let Expect::Pinned {
                    fingerprint,
                    source,
                } = &expect
            {
                let hint = if source == "--fingerprint" {
                    "Check the fingerprint given with --fingerprint.".to_string()
                } else {
                    let line = source.rsplit(' ').next().unwrap_or("");
                    format!(
                        "If the change is expected, remove line {line} of {} (sed -i {line}d {}).",
                        known.path().display(),
                        known.path().display()
                    )
                };
                warn_changed(&name, &fp, fingerprint, source, &hint);
                return Err(ClientError::HostKeyChanged {
                    name,
                    expected_by: source.clone(),
                });
            }
            return Err(ClientError::Tls(format!("{name}: {e}")));
        }
        Ok(Ok(t)) => t,
    };
    let (fp, _) = fingerprint(&seen);
    if matches!(expect, Expect::Unknown) {
        if cfg.trust.accept_new {
            known.add(&name, &fp)?;
            eprintln!(
                "socklab: added {name} {fp} to {} (--accept-new)",
                known.path().display()
            );
        } else if ask_trust(&name, &fp)? {
            known.add(&name, &fp)?;
            eprintln!("socklab: added {name} {fp} to {}", known.path().display());
        } else {
            return Err(ClientError::HostKeyDeclined);
        }
    }
    let (rd, writer) = tokio::io::split(tls);
    let mut chan = Channel {
        frames: FramedRead::new(rd, TlvCodec::new(MAX_FRAME)),
        writer,
        session: ClientSession::new(),
        timeout: cfg.timeout,
        cwd: String::new(),
        fingerprint: fp,
        transcript: None,
    };
    chan.authenticate(cfg).await?;
    if let Some(mut t) = transcript {
        t.header(&format!(
            "# socklab rexec {}@{name} ({}) started {}\n",
            cfg.user,
            chan.fingerprint,
            super::server::timestamp(clock::wall())
        ))?;
        chan.transcript = Some(t);
    }
    Ok(chan)
}

fn server_name(host: &str) -> ServerName<'static> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(h.to_string())
            .unwrap_or_else(|_| ServerName::try_from("socklab-rexec").expect("a valid name")),
    }
}

/// Asks on the terminal whether to trust a new host key; an error when there is none.
fn ask_trust(name: &str, fp: &str) -> Result<bool, ClientError> {
    let unknown = || ClientError::HostKeyUnknown {
        name: name.into(),
        fingerprint: fp.into(),
    };
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Err(unknown());
    };
    let mut w = &tty;
    write!(
        w,
        "The authenticity of host {name} can't be established.\n\
         Its key fingerprint is {fp}.\n\
         Are you sure you want to continue connecting (yes/no/[fingerprint])? "
    )
    .map_err(|_| unknown())?;
    let mut line = String::new();
    loop {
        line.clear();
        let mut r = io::BufReader::new(&tty);
        if io::BufRead::read_line(&mut r, &mut line).map_err(|_| unknown())? == 0 {
            return Ok(false);
        }
        let a = line.trim();
        if a.eq_ignore_ascii_case("yes") || tls::same_fingerprint(a, fp) {
            return Ok(true);
        }
        if a.eq_ignore_ascii_case("no") {
            return Ok(false);
        }
        write!(w, "Please type 'yes', 'no' or the fingerprint: ").map_err(|_| unknown())?;
    }
}

fn prompt_password(user: &str, host: &str) -> Result<Zeroizing<String>, ClientError> {
    if std::fs::File::open("/dev/tty").is_err() {
        return Err(ClientError::NoPassword(
            "no password: no terminal to ask on; set SOCKLAB_PASSWORD or give --password-file"
                .into(),
        ));
    }
    rpassword::prompt_password(format!("{user}@{host}'s password: "))
        .map(Zeroizing::new)
        .map_err(local("reading the password"))
}

impl Channel {
    async fn send(&mut self, m: &Message) -> Result<(), ClientError> {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let r = self.writer.write_all(&buf).await;
        if let Message::Auth { .. } = m {
            buf.zeroize();
        }
        r.map_err(|_| ClientError::Closed("while sending"))?;
        self.writer
            .flush()
            .await
            .map_err(|_| ClientError::Closed("while sending"))
    }

    async fn next(&mut self, deadline: Option<Duration>) -> Result<Message, ClientError> {
        let f = match deadline {
            Some(d) => tokio::time::timeout(d, self.frames.next())
                .await
                .map_err(|_| ClientError::Timeout(d))?,
            None => self.frames.next().await,
        };
        let f = match f {
            None => return Err(ClientError::Closed("by the server")),
            Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
            Some(Ok(f)) => f,
        };
        let m = Message::parse(f.kind, &f.value)?;
        self.session.on_message(&m)?;
        if let Message::Error { reason, .. } = &m {
            return Err(ClientError::Ended(reason.clone()));
        }
        Ok(m)
    }

    async fn authenticate(&mut self, cfg: &Config) -> Result<(), ClientError> {
        loop {
            let password = match &cfg.password {
                PasswordSource::Given(p) => p.clone(),
                PasswordSource::Prompt => prompt_password(&cfg.user, &cfg.host)?,
            };
            if password.is_empty() || password.len() > super::proto::MAX_PASSWORD {
                return Err(ClientError::NoPassword(format!(
                    "the password must be 1 to {} bytes",
                    super::proto::MAX_PASSWORD
                )));
            }
            let mut auth = Message::Auth {
                user: cfg.user.clone(),
                password: password.as_bytes().to_vec(),
            };
            self.session.auth_sent();
            let sent = self.send(&auth).await;
            if let Message::Auth { password, .. } = &mut auth {
                password.zeroize();
            }
            sent?;
            // Argon2 and a penalty wait happen before the answer.
            match self
                .next(Some(self.timeout + Duration::from_secs(15)))
                .await?
            {
                Message::AuthOk { cwd } => {
                    self.cwd = cwd;
                    return Ok(());
                }
                Message::AuthFail {
                    tries_left,
                    retry_after_ms,
                } => {
                    if tries_left == 0
                        || retry_after_ms > 0
                        || !matches!(cfg.password, PasswordSource::Prompt)
                    {
                        return Err(ClientError::AuthFailed { retry_after_ms });
                    }
                    eprintln!("Permission denied, please try again.");
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "{} in answer to AUTH",
                        other.name()
                    )));
                }
            }
        }
    }

    /// Runs one command: its output to `stdout`/`stderr`, `stdin` forwarded when given, each
    /// Ctrl-C sent as SIGINT to the remote process group. Returns how it ended.
    pub async fn exec<I: AsyncRead + Unpin>(
        &mut self,
        line: &str,
        mut stdin: Option<I>,
    ) -> Result<Ending, ClientError> {
        if line.len() > super::proto::MAX_COMMAND {
            return Err(ClientError::Protocol(format!(
                "a command of {} bytes: at most {}",
                line.len(),
                super::proto::MAX_COMMAND
            )));
        }
        let began = clock::now();
        let running = InCommand::enter();
        // One stream for the whole command: a Ctrl-C between two turns of the loop below is
        // kept for the next turn, not lost.
        let mut interrupts =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(local("catching Ctrl-C"))?;
        if let Some(t) = &mut self.transcript {
            t.command(line)?;
        }
        self.send(&Message::Exec {
            stdin: stdin.is_some(),
            command: line.to_string(),
        })
        .await?;
        self.session.exec_sent();
        let mut buf = BytesMut::with_capacity(MAX_DATA);
        let mut stdin_open = stdin.is_some();
        let mut presses = 0;
        let mut out = io::stdout();
        let mut err = io::stderr();
        let ending = loop {
            let window = self.session.window();
            tokio::select! {
                m = self.next(None) => match m? {
                    Message::Stdout(b) => {
                        write_out(&mut out, &b).map_err(local("writing stdout"))?;
                        if let Some(t) = &mut self.transcript { t.output(&b)?; }
                    }
                    Message::Stderr(b) => {
                        write_out(&mut err, &b).map_err(local("writing stderr"))?;
                        if let Some(t) = &mut self.transcript { t.output(&b)?; }
                    }
                    Message::Window(_) => {}
                    Message::Exit { ending, cwd } => {
                        self.cwd = cwd;
                        break ending;
                    }
                    other => return Err(ClientError::Protocol(format!("{} while a command runs", other.name()))),
                },
                r = async {
                    let input = stdin.as_mut().expect("guarded");
                    buf.clear();
                    let want = window.min(MAX_DATA as u64);
                    input.take(want).read_buf(&mut buf).await
                }, if stdin_open && window > 0 => {
                    match r {
                        Ok(0) => {
                            stdin_open = false;
                            self.send(&Message::StdinEof).await?;
                        }
                        Ok(n) => {
                            self.session.stdin_sent(n);
                            let data = Bytes::copy_from_slice(&buf[..n]);
                            self.send(&Message::Stdin(data)).await?;
                        }
                        Err(e) => return Err(local("reading stdin")(e)),
                    }
                }
                _ = interrupts.recv() => {
                    // The remote group gets SIGINT; the command decides what it means. A
                    // command that ignores it is left at the third Ctrl-C.
                    presses += 1;
                    if presses >= 3 {
                        // Still "in a command" for the Ctrl-C watcher, which would otherwise
                        // exit first with a vaguer message.
                        std::mem::forget(running);
                        return Err(ClientError::Interrupted);
                    }
                    self.send(&Message::Signal(2)).await?;
                }
            }
        };
        let _ = out.flush();
        if let Some(t) = &mut self.transcript {
            t.exit(ending, clock::since(began))?;
        }
        debug_assert_eq!(self.session.phase(), &ClientPhase::Ready);
        Ok(ending)
    }

    /// Ends the session politely.
    pub async fn bye(mut self) -> Result<(), ClientError> {
        let _ = self.send(&Message::Bye).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer.shutdown()).await;
        if let Some(t) = &mut self.transcript {
            t.header(&format!(
                "# session ended {}\n",
                super::server::timestamp(clock::wall())
            ))?;
        }
        Ok(())
    }
}

/// Writes output straight to the file descriptor (the runtime thread waits: one session,
/// and the wait is the back-pressure on the server).
fn write_out(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    tokio::task::block_in_place(|| {
        w.write_all(b)?;
        w.flush()
    })
}

/// The client's `--log FILE`: the session as text, appended.
struct Transcript {
    file: std::fs::File,
    /// The last byte written was a newline (or nothing was written).
    at_line_start: bool,
}

impl Transcript {
    fn open(path: &std::path::Path) -> Result<Transcript, ClientError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map(|file| Transcript {
                file,
                at_line_start: true,
            })
            .map_err(local(format!("opening the log {}", path.display())))
    }

    fn header(&mut self, s: &str) -> Result<(), ClientError> {
        // Each entry on a line of its own, after output that did not end one.
        let nl = if self.at_line_start { "" } else { "\n" };
        self.at_line_start = true;
        self.file
            .write_all(format!("{nl}{s}").as_bytes())
            .map_err(local("writing the log"))
    }

    fn command(&mut self, line: &str) -> Result<(), ClientError> {
        self.header(&format!(
            "[{}] >>> {line}\n",
            super::server::timestamp(clock::wall())
        ))
    }

    fn output(&mut self, b: &[u8]) -> Result<(), ClientError> {
        if let Some(&last) = b.last() {
            self.at_line_start = last == b'\n';
        }
        self.file.write_all(b).map_err(local("writing the log"))
    }

    fn exit(&mut self, ending: Ending, took: Duration) -> Result<(), ClientError> {
        self.header(&format!(
            "[{}] {ending} after {:.3} s\n",
            super::server::timestamp(clock::wall()),
            took.as_secs_f64()
        ))
    }
}

/// Whether stdin is a terminal (then `connect` shows the prompt).
pub fn interactive() -> bool {
    io::stdin().is_terminal()
}
