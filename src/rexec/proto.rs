//! The inner protocol of `socklab rexec` (docs/PROTOCOLS.md §12), sans-IO: typed messages on
//! the TLV framing of [`crate::frame::tlv`] (a type byte, a u32 big-endian length, the value),
//! carried inside TLS 1.3, and the two state machines that say which message may come when.
//!
//! ```text
//!  client                                              server
//!    AUTH user, password            ─────────▶   (Argon2id verify, penalty)
//!                                   ◀─────────   AUTH_OK cwd  |  AUTH_FAIL tries-left, retry-after
//!    EXEC flags, command line       ─────────▶   (sh -c, own process group)
//!                                   ◀─────────   WINDOW n          (only when stdin is forwarded)
//!    STDIN bytes (≤ window)         ─────────▶
//!    STDIN_EOF                      ─────────▶
//!    SIGNAL n  (Ctrl-C: 2)          ─────────▶   killpg(n)
//!                                   ◀─────────   STDOUT bytes | STDERR bytes | WINDOW n …
//!                                   ◀─────────   EXIT kind, code, cwd
//!    EXEC …  (the next command)  …
//!    BYE                            ─────────▶   (closes)
//!                                   ◀─────────   ERROR code, reason  (then closes)
//! ```
//!
//! Every length is checked against the limits below before a value is used; the codec has
//! already refused a frame longer than [`MAX_FRAME`].

use bytes::{BufMut, Bytes, BytesMut};

/// The TLS ALPN name of this protocol and its version.
pub const ALPN: &[u8] = b"socklab-rexec/1";
/// The longest user name.
pub const MAX_USER: usize = 32;
/// The longest password, in bytes.
pub const MAX_PASSWORD: usize = 1024;
/// The longest command line, in bytes of UTF-8.
pub const MAX_COMMAND: usize = 32 * 1024;
/// The most bytes of output or input in one STDOUT, STDERR or STDIN message.
pub const MAX_DATA: usize = 32 * 1024;
/// The longest working directory sent back.
pub const MAX_PATH: usize = 4096;
/// The longest error reason.
pub const MAX_REASON: usize = 1024;
/// The largest frame value any message needs.
pub const MAX_FRAME: usize = MAX_COMMAND + 1;
/// Tries of a password on one connection; the third failure closes it.
pub const MAX_TRIES: u8 = 3;
/// The stdin window the server opens when a command starts (and tops up as the command
/// reads): the most stdin bytes in flight that the server must hold.
pub const STDIN_WINDOW: u32 = 256 * 1024;

/// Type bytes.
pub mod kind {
    /// Client: a user name and a password.
    pub const AUTH: u8 = 0x01;
    /// Client: run a command line.
    pub const EXEC: u8 = 0x02;
    /// Client: bytes for the command's stdin.
    pub const STDIN: u8 = 0x03;
    /// Client: the command's stdin ends.
    pub const STDIN_EOF: u8 = 0x04;
    /// Client: send a signal to the command's process group.
    pub const SIGNAL: u8 = 0x05;
    /// Client: the session ends.
    pub const BYE: u8 = 0x06;
    /// Server: authenticated; the session's working directory.
    pub const AUTH_OK: u8 = 0x81;
    /// Server: not authenticated; tries left, and how long to wait before the next.
    pub const AUTH_FAIL: u8 = 0x82;
    /// Server: the command's stdout.
    pub const STDOUT: u8 = 0x83;
    /// Server: the command's stderr.
    pub const STDERR: u8 = 0x84;
    /// Server: the command ended: how, and the working directory now.
    pub const EXIT: u8 = 0x85;
    /// Server: this many more stdin bytes may be sent.
    pub const WINDOW: u8 = 0x86;
    /// Server: the session ends, and why.
    pub const ERROR: u8 = 0x87;
}

/// Signals a client may ask for (the others are refused as a protocol error).
pub const SIGNALS: [u8; 5] = [
    1,  // SIGHUP
    2,  // SIGINT (Ctrl-C)
    3,  // SIGQUIT
    9,  // SIGKILL
    15, // SIGTERM
];

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status.
    Exited(u8),
    /// A signal killed it.
    Signaled(u8),
    /// It could not be started (the server says why on STDERR first).
    NotStarted,
    /// `--command-timeout` passed; the signal that ended it.
    TimedOut(u8),
}

impl Ending {
    /// The exit status a client gives for it: the status; 128 + the signal; 127 when it
    /// could not start (as a shell says for a missing command); 124 on a timeout (as
    /// timeout(1) does).
    pub fn status(self) -> u8 {
        match self {
            Ending::Exited(n) => n,
            Ending::Signaled(s) => 128u8.saturating_add(s),
            Ending::NotStarted => 127,
            Ending::TimedOut(_) => 124,
        }
    }

    fn encode(self) -> (u8, u8) {
        match self {
            Ending::Exited(n) => (0, n),
            Ending::Signaled(s) => (1, s),
            Ending::NotStarted => (2, 0),
            Ending::TimedOut(s) => (3, s),
        }
    }

    fn decode(kind: u8, code: u8) -> Result<Ending, ProtoError> {
        Ok(match kind {
            0 => Ending::Exited(code),
            1 => Ending::Signaled(code),
            2 if code == 0 => Ending::NotStarted,
            2 => return Err(ProtoError::Bad("EXIT of kind 2 with a code".into())),
            3 => Ending::TimedOut(code),
            k => return Err(ProtoError::Bad(format!("EXIT of unknown kind {k}"))),
        })
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Exited(n) => write!(f, "exit {n}"),
            Ending::Signaled(s) => write!(f, "killed by signal {s}"),
            Ending::NotStarted => f.write_str("not started"),
            Ending::TimedOut(s) => write!(f, "timed out (signal {s})"),
        }
    }
}

/// Why the server ends a session ([`Message::Error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The client broke the protocol.
    Protocol,
    /// No message for `--idle-timeout`.
    Idle,
    /// Not authenticated within `--login-grace`.
    LoginGrace,
    /// Three failed tries.
    TooManyTries,
    /// The server is shutting down.
    Shutdown,
    /// A code this version does not know.
    Other(u8),
}

impl ErrorCode {
    fn byte(self) -> u8 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::Idle => 2,
            ErrorCode::LoginGrace => 3,
            ErrorCode::TooManyTries => 4,
            ErrorCode::Shutdown => 5,
            ErrorCode::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> ErrorCode {
        match b {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Idle,
            3 => ErrorCode::LoginGrace,
            4 => ErrorCode::TooManyTries,
            5 => ErrorCode::Shutdown,
            b => ErrorCode::Other(b),
        }
    }
}

/// One message, either way.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// A user name and a password (the password is wiped by the receiver's driver).
    Auth {
        /// 1 to [`MAX_USER`] bytes of `[A-Za-z0-9._-]`.
        user: String,
        /// 1 to [`MAX_PASSWORD`] bytes.
        password: Vec<u8>,
    },
    /// Run a command line with `sh -c`.
    Exec {
        /// Whether the client will forward stdin (otherwise the command reads /dev/null).
        stdin: bool,
        /// The command line.
        command: String,
    },
    /// Stdin bytes.
    Stdin(Bytes),
    /// Stdin ends.
    StdinEof,
    /// A signal for the command's process group.
    Signal(u8),
    /// The client ends the session.
    Bye,
    /// Authenticated: the session's working directory.
    AuthOk {
        /// Where commands start.
        cwd: String,
    },
    /// Not authenticated.
    AuthFail {
        /// Tries left on this connection (0: it closes).
        tries_left: u8,
        /// Milliseconds before a next try is worth making (0 unless failures piled up).
        retry_after_ms: u32,
    },
    /// Stdout bytes.
    Stdout(Bytes),
    /// Stderr bytes.
    Stderr(Bytes),
    /// The command ended.
    Exit {
        /// How.
        ending: Ending,
        /// The session's working directory after it (changed by `cd`).
        cwd: String,
    },
    /// More stdin may be sent.
    Window(u32),
    /// The session ends.
    Error {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never the password, whatever prints this.
            Message::Auth { user, password } => f
                .debug_struct("Auth")
                .field("user", user)
                .field("password", &format_args!("<{} bytes>", password.len()))
                .finish(),
            Message::Exec { stdin, command } => f
                .debug_struct("Exec")
                .field("stdin", stdin)
                .field("command", command)
                .finish(),
            Message::Stdin(b) => write!(f, "Stdin({} bytes)", b.len()),
            Message::StdinEof => f.write_str("StdinEof"),
            Message::Signal(s) => write!(f, "Signal({s})"),
            Message::Bye => f.write_str("Bye"),
            Message::AuthOk { cwd } => write!(f, "AuthOk({cwd:?})"),
            Message::AuthFail {
                tries_left,
                retry_after_ms,
            } => write!(
                f,
                "AuthFail(left {tries_left}, retry after {retry_after_ms} ms)"
            ),
            Message::Stdout(b) => write!(f, "Stdout({} bytes)", b.len()),
            Message::Stderr(b) => write!(f, "Stderr({} bytes)", b.len()),
            Message::Exit { ending, cwd } => write!(f, "Exit({ending}, {cwd:?})"),
            Message::Window(n) => write!(f, "Window({n})"),
            Message::Error { code, reason } => write!(f, "Error({code:?}, {reason:?})"),
        }
    }
}

/// A message that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A type byte no message has.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// A value that does not fit its message.
    #[error("{0}")]
    Bad(String),
    /// A valid message at a time it may not come.
    #[error("{0} is not allowed {1}")]
    OutOfOrder(&'static str, &'static str),
}

fn bad(what: impl Into<String>) -> ProtoError {
    ProtoError::Bad(what.into())
}

/// Whether a user name is one the users file can hold: 1 to [`MAX_USER`] bytes of ASCII
/// letters, digits, `.`, `_` and `-`, not starting with `-` or `.`.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USER
        && !user.starts_with(['-', '.'])
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn utf8(v: &[u8], what: &str) -> Result<String, ProtoError> {
    String::from_utf8(v.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

fn exact(value: &[u8], n: usize, what: &str) -> Result<(), ProtoError> {
    if value.len() != n {
        return Err(bad(format!(
            "{what} carries {} bytes, not {n}",
            value.len()
        )));
    }
    Ok(())
}

impl Message {
    /// The name used in errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Auth { .. } => "AUTH",
            Message::Exec { .. } => "EXEC",
            Message::Stdin(_) => "STDIN",
            Message::StdinEof => "STDIN_EOF",
            Message::Signal(_) => "SIGNAL",
            Message::Bye => "BYE",
            Message::AuthOk { .. } => "AUTH_OK",
            Message::AuthFail { .. } => "AUTH_FAIL",
            Message::Stdout(_) => "STDOUT",
            Message::Stderr(_) => "STDERR",
            Message::Exit { .. } => "EXIT",
            Message::Window(_) => "WINDOW",
            Message::Error { .. } => "ERROR",
        }
    }

    /// Parses a frame's value as the message its type says, checking every length.
    pub fn parse(kind: u8, value: &Bytes) -> Result<Message, ProtoError> {
        let v = &value[..];
        Ok(match kind {
            kind::AUTH => {
                let (&ulen, rest) = v.split_first().ok_or_else(|| bad("AUTH is empty"))?;
                let ulen = usize::from(ulen);
                if rest.len() < ulen {
                    return Err(bad("AUTH's user name runs past its end"));
                }
                let user = utf8(&rest[..ulen], "the user name")?;
                if !valid_user(&user) {
                    return Err(bad(
                        "AUTH's user name must be 1 to 32 of A-Z a-z 0-9 . _ - (not first . or -)",
                    ));
                }
                let password = &rest[ulen..];
                if password.is_empty() || password.len() > MAX_PASSWORD {
                    return Err(bad(format!(
                        "AUTH's password must be 1 to {MAX_PASSWORD} bytes"
                    )));
                }
                Message::Auth {
                    user,
                    password: password.to_vec(),
                }
            }
            kind::EXEC => {
                let (&flags, rest) = v.split_first().ok_or_else(|| bad("EXEC is empty"))?;
                if flags & !1 != 0 {
                    return Err(bad(format!("EXEC has unknown flags 0x{flags:02x}")));
                }
                if rest.is_empty() || rest.len() > MAX_COMMAND {
                    return Err(bad(format!(
                        "EXEC's command must be 1 to {MAX_COMMAND} bytes"
                    )));
                }
                let command = utf8(rest, "the command")?;
                if command.contains('\0') {
                    return Err(bad("the command contains a NUL byte"));
                }
                Message::Exec {
                    stdin: flags & 1 != 0,
                    command,
                }
            }
            kind::STDIN => {
                if v.is_empty() || v.len() > MAX_DATA {
                    return Err(bad(format!("STDIN must carry 1 to {MAX_DATA} bytes")));
                }
                Message::Stdin(value.clone())
            }
            kind::STDIN_EOF => {
                exact(v, 0, "STDIN_EOF")?;
                Message::StdinEof
            }
            kind::SIGNAL => {
                exact(v, 1, "SIGNAL")?;
                if !SIGNALS.contains(&v[0]) {
                    return Err(bad(format!(
                        "signal {} is not one a client may send (1, 2, 3, 9, 15)",
                        v[0]
                    )));
                }
                Message::Signal(v[0])
            }
            kind::BYE => {
                exact(v, 0, "BYE")?;
                Message::Bye
            }
            kind::AUTH_OK => {
                if v.len() > MAX_PATH {
                    return Err(bad("AUTH_OK's directory is too long"));
                }
                Message::AuthOk {
                    cwd: utf8(v, "the directory")?,
                }
            }
            kind::AUTH_FAIL => {
                exact(v, 5, "AUTH_FAIL")?;
                if v[0] >= MAX_TRIES {
                    return Err(bad(format!("AUTH_FAIL says {} tries left", v[0])));
                }
                Message::AuthFail {
                    tries_left: v[0],
                    retry_after_ms: u32::from_be_bytes([v[1], v[2], v[3], v[4]]),
                }
            }
            kind::STDOUT | kind::STDERR => {
                if v.is_empty() || v.len() > MAX_DATA {
                    return Err(bad(format!("output must carry 1 to {MAX_DATA} bytes")));
                }
                if kind == kind::STDOUT {
                    Message::Stdout(value.clone())
                } else {
                    Message::Stderr(value.clone())
                }
            }
            kind::EXIT => {
                if v.len() < 2 || v.len() > 2 + MAX_PATH {
                    return Err(bad("EXIT must carry 2 bytes and a directory"));
                }
                Message::Exit {
                    ending: Ending::decode(v[0], v[1])?,
                    cwd: utf8(&v[2..], "the directory")?,
                }
            }
            kind::WINDOW => {
                exact(v, 4, "WINDOW")?;
                let n = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                if n == 0 || n > STDIN_WINDOW {
                    return Err(bad(format!("WINDOW of {n} bytes (1 to {STDIN_WINDOW})")));
                }
                Message::Window(n)
            }
            kind::ERROR => {
                if v.is_empty() || v.len() > 1 + MAX_REASON {
                    return Err(bad("ERROR must carry a code and a reason"));
                }
                Message::Error {
                    code: ErrorCode::from_byte(v[0]),
                    reason: utf8(&v[1..], "the reason")?,
                }
            }
            other => return Err(ProtoError::UnknownType(other)),
        })
    }

    /// Appends the message as one frame. Lengths were checked where the message was made;
    /// over-long strings (a reason, a directory) are cut here at a character boundary.
    pub fn encode(&self, dst: &mut BytesMut) {
        fn head(dst: &mut BytesMut, kind: u8, len: usize) {
            dst.reserve(crate::frame::tlv::HEAD + len);
            dst.put_u8(kind);
            dst.put_u32(len as u32);
        }
        match self {
            Message::Auth { user, password } => {
                head(dst, kind::AUTH, 1 + user.len() + password.len());
                dst.put_u8(user.len() as u8);
                dst.put_slice(user.as_bytes());
                dst.put_slice(password);
            }
            Message::Exec { stdin, command } => {
                head(dst, kind::EXEC, 1 + command.len());
                dst.put_u8(u8::from(*stdin));
                dst.put_slice(command.as_bytes());
            }
            Message::Stdin(b) => {
                head(dst, kind::STDIN, b.len());
                dst.put_slice(b);
            }
            Message::StdinEof => head(dst, kind::STDIN_EOF, 0),
            Message::Signal(s) => {
                head(dst, kind::SIGNAL, 1);
                dst.put_u8(*s);
            }
            Message::Bye => head(dst, kind::BYE, 0),
            Message::AuthOk { cwd } => {
                let cwd = cut(cwd, MAX_PATH);
                head(dst, kind::AUTH_OK, cwd.len());
                dst.put_slice(cwd.as_bytes());
            }
            Message::AuthFail {
                tries_left,
                retry_after_ms,
            } => {
                head(dst, kind::AUTH_FAIL, 5);
                dst.put_u8(*tries_left);
                dst.put_u32(*retry_after_ms);
            }
            Message::Stdout(b) => {
                head(dst, kind::STDOUT, b.len());
                dst.put_slice(b);
            }
            Message::Stderr(b) => {
                head(dst, kind::STDERR, b.len());
                dst.put_slice(b);
            }
            Message::Exit { ending, cwd } => {
                let cwd = cut(cwd, MAX_PATH);
                let (k, c) = ending.encode();
                head(dst, kind::EXIT, 2 + cwd.len());
                dst.put_u8(k);
                dst.put_u8(c);
                dst.put_slice(cwd.as_bytes());
            }
            Message::Window(n) => {
                head(dst, kind::WINDOW, 4);
                dst.put_u32(*n);
            }
            Message::Error { code, reason } => {
                let reason = cut(reason, MAX_REASON);
                head(dst, kind::ERROR, 1 + reason.len());
                dst.put_u8(code.byte());
                dst.put_slice(reason.as_bytes());
            }
        }
    }

    /// The message as one frame, in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The server's view of a session: which client message may come now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPhase {
    /// Waiting for AUTH, with this many tries left.
    ExpectAuth {
        /// Tries left.
        tries_left: u8,
    },
    /// An AUTH is being checked: nothing may come until the answer.
    Checking {
        /// Tries left after this one fails.
        tries_left: u8,
    },
    /// Authenticated, no command running: EXEC or BYE.
    Ready,
    /// A command runs.
    Running {
        /// Stdin is forwarded and has not ended.
        stdin_open: bool,
        /// Stdin bytes the client may still send.
        window: u64,
    },
    /// The session is over.
    Closed,
}

/// What the server's driver does with a client message that was allowed.
#[derive(PartialEq, Eq)]
pub enum ServerEvent {
    /// Check these credentials.
    Authenticate {
        /// The user name.
        user: String,
        /// The password (wipe it after use).
        password: Vec<u8>,
    },
    /// Start this command.
    Exec {
        /// Forward stdin.
        stdin: bool,
        /// The line.
        command: String,
    },
    /// Write these bytes to the command's stdin.
    Stdin(Bytes),
    /// Close the command's stdin.
    StdinEof,
    /// Signal the command's process group.
    Signal(u8),
    /// A late STDIN, STDIN_EOF or SIGNAL for a command that already ended (sent before the
    /// client saw its EXIT): dropped.
    Late,
    /// End the session.
    Bye,
}

impl std::fmt::Debug for ServerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never the password.
            ServerEvent::Authenticate { user, password } => write!(
                f,
                "Authenticate {{ user: {user:?}, password: <{} bytes> }}",
                password.len()
            ),
            ServerEvent::Exec { stdin, command } => {
                write!(f, "Exec {{ stdin: {stdin}, command: {command:?} }}")
            }
            ServerEvent::Stdin(b) => write!(f, "Stdin({} bytes)", b.len()),
            ServerEvent::StdinEof => f.write_str("StdinEof"),
            ServerEvent::Signal(s) => write!(f, "Signal({s})"),
            ServerEvent::Late => f.write_str("Late"),
            ServerEvent::Bye => f.write_str("Bye"),
        }
    }
}

/// The server's state machine: [`ServerSession::on_message`] checks each client message
/// against the phase; the driver reports what it did with the `*_done` methods.
#[derive(Debug, Clone)]
pub struct ServerSession {
    phase: ServerPhase,
}

impl Default for ServerSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSession {
    /// A session waiting for AUTH.
    pub fn new() -> Self {
        ServerSession {
            phase: ServerPhase::ExpectAuth {
                tries_left: MAX_TRIES,
            },
        }
    }

    /// Where the session is.
    pub fn phase(&self) -> &ServerPhase {
        &self.phase
    }

    /// Whether the client is authenticated.
    pub fn authenticated(&self) -> bool {
        matches!(self.phase, ServerPhase::Ready | ServerPhase::Running { .. })
    }

    /// Checks a client message against the phase.
    pub fn on_message(&mut self, msg: Message) -> Result<ServerEvent, ProtoError> {
        use ServerPhase as P;
        let name = msg.name();
        match (&mut self.phase, msg) {
            (P::ExpectAuth { tries_left }, Message::Auth { user, password }) => {
                self.phase = P::Checking {
                    tries_left: tries_left.saturating_sub(1),
                };
                Ok(ServerEvent::Authenticate { user, password })
            }
            (P::ExpectAuth { .. } | P::Checking { .. }, Message::Bye) => {
                self.phase = P::Closed;
                Ok(ServerEvent::Bye)
            }
            (P::ExpectAuth { .. }, _) => Err(ProtoError::OutOfOrder(name, "before AUTH_OK")),
            (P::Checking { .. }, _) => {
                Err(ProtoError::OutOfOrder(name, "while an AUTH is checked"))
            }
            (P::Ready, Message::Exec { stdin, command }) => {
                self.phase = P::Running {
                    stdin_open: stdin,
                    window: if stdin { u64::from(STDIN_WINDOW) } else { 0 },
                };
                Ok(ServerEvent::Exec { stdin, command })
            }
            (P::Ready, Message::Stdin(_) | Message::StdinEof | Message::Signal(_)) => {
                Ok(ServerEvent::Late)
            }
            (P::Ready | P::Running { .. }, Message::Bye) => {
                self.phase = P::Closed;
                Ok(ServerEvent::Bye)
            }
            (
                P::Running {
                    stdin_open: true,
                    window,
                },
                Message::Stdin(data),
            ) => {
                let n = data.len() as u64;
                if n > *window {
                    return Err(bad(format!("STDIN of {n} bytes with a window of {window}")));
                }
                *window -= n;
                Ok(ServerEvent::Stdin(data))
            }
            (P::Running { stdin_open, .. }, Message::StdinEof) if *stdin_open => {
                *stdin_open = false;
                Ok(ServerEvent::StdinEof)
            }
            (P::Running { .. }, Message::Stdin(_) | Message::StdinEof) => Err(
                ProtoError::OutOfOrder(name, "when the command's stdin is not forwarded or ended"),
            ),
            (P::Running { .. }, Message::Signal(s)) => Ok(ServerEvent::Signal(s)),
            (P::Running { .. }, Message::Exec { .. }) => {
                Err(ProtoError::OutOfOrder(name, "while a command runs"))
            }
            (P::Closed, _) => Err(ProtoError::OutOfOrder(name, "after the session ended")),
            (_, _) => Err(ProtoError::OutOfOrder(name, "from a client")),
        }
    }

    /// The AUTH was checked: `true` makes the session ready; `false` leaves the tries left
    /// (returned; at 0 the driver closes).
    pub fn auth_done(&mut self, ok: bool) -> u8 {
        match self.phase {
            ServerPhase::Checking { tries_left } => {
                if ok {
                    self.phase = ServerPhase::Ready;
                    tries_left
                } else if tries_left == 0 {
                    self.phase = ServerPhase::Closed;
                    0
                } else {
                    self.phase = ServerPhase::ExpectAuth { tries_left };
                    tries_left
                }
            }
            _ => 0,
        }
    }

    /// The command wrote `n` bytes of stdin out, so the window grows by `n`.
    pub fn window_grant(&mut self, n: u32) {
        if let ServerPhase::Running { window, .. } = &mut self.phase {
            *window += u64::from(n);
        }
    }

    /// The command ended (its EXIT is sent).
    pub fn exec_done(&mut self) {
        if matches!(self.phase, ServerPhase::Running { .. }) {
            self.phase = ServerPhase::Ready;
        }
    }
}

/// The client's view of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPhase {
    /// AUTH sent; waiting for the answer.
    Authenticating,
    /// Authenticated, no command running.
    Ready,
    /// EXEC sent; output until EXIT.
    Running {
        /// Stdin bytes the server will still take.
        window: u64,
    },
    /// The session is over.
    Closed,
}

/// The client's state machine: checks each server message against the phase.
#[derive(Debug, Clone)]
pub struct ClientSession {
    phase: ClientPhase,
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSession {
    /// A client that has just sent AUTH.
    pub fn new() -> Self {
        ClientSession {
            phase: ClientPhase::Authenticating,
        }
    }

    /// Where the session is.
    pub fn phase(&self) -> &ClientPhase {
        &self.phase
    }

    /// Another AUTH goes out (after an AUTH_FAIL with tries left).
    pub fn auth_sent(&mut self) {
        self.phase = ClientPhase::Authenticating;
    }

    /// An EXEC goes out.
    pub fn exec_sent(&mut self) {
        self.phase = ClientPhase::Running { window: 0 };
    }

    /// `n` stdin bytes go out: the caller checked [`ClientSession::window`].
    pub fn stdin_sent(&mut self, n: usize) {
        if let ClientPhase::Running { window } = &mut self.phase {
            *window = window.saturating_sub(n as u64);
        }
    }

    /// Stdin bytes that may go out now.
    pub fn window(&self) -> u64 {
        match self.phase {
            ClientPhase::Running { window } => window,
            _ => 0,
        }
    }

    /// Checks a server message against the phase.
    pub fn on_message(&mut self, msg: &Message) -> Result<(), ProtoError> {
        use ClientPhase as P;
        let name = msg.name();
        match (&mut self.phase, msg) {
            (_, Message::Error { .. }) => {
                self.phase = P::Closed;
                Ok(())
            }
            (P::Authenticating, Message::AuthOk { .. }) => {
                self.phase = P::Ready;
                Ok(())
            }
            (P::Authenticating, Message::AuthFail { tries_left, .. }) => {
                if *tries_left == 0 {
                    self.phase = P::Closed;
                }
                Ok(())
            }
            (P::Running { .. }, Message::Stdout(_) | Message::Stderr(_)) => Ok(()),
            (P::Running { window }, Message::Window(n)) => {
                *window += u64::from(*n);
                if *window > u64::from(STDIN_WINDOW) {
                    return Err(bad("the server opened the stdin window past 262,144 bytes"));
                }
                Ok(())
            }
            (P::Running { .. }, Message::Exit { .. }) => {
                self.phase = P::Ready;
                Ok(())
            }
            (P::Closed, _) => Err(ProtoError::OutOfOrder(name, "after the session ended")),
            (P::Authenticating, _) => Err(ProtoError::OutOfOrder(name, "before AUTH_OK")),
            (P::Ready, _) => Err(ProtoError::OutOfOrder(name, "when no command runs")),
            (P::Running { .. }, _) => Err(ProtoError::OutOfOrder(name, "while a command runs")),
        }
    }
}

/// Whether a command line is the session's `cd` (which changes the directory of the
/// commands after it): `cd` alone, or `cd` and words with no shell operator, so that the
/// server can run it as `LINE >/dev/null && pwd` and keep the directory printed.
/// `cd /tmp && ls` or `cd x; y` are ordinary commands (run in their own shell, whose `cd`
/// does not outlive it, as in any `sh -c`).
pub fn is_session_cd(line: &str) -> bool {
    let t = line.trim();
    let Some(rest) = t.strip_prefix("cd") else {
        return false;
    };
    (rest.is_empty() || rest.starts_with([' ', '\t']))
        && !rest.chars().any(|c| {
            matches!(
                c,
                ';' | '&' | '|' | '<' | '>' | '(' | ')' | '`' | '\n' | '#'
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tlv::TlvCodec;
    use tokio_util::codec::Decoder;

    fn roundtrip(m: Message) -> Bytes {
        let wire = m.to_bytes();
        let mut buf = BytesMut::from(&wire[..]);
        let f = TlvCodec::new(MAX_FRAME).decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(Message::parse(f.kind, &f.value).unwrap(), m);
        wire
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(
            &roundtrip(Message::Auth {
                user: "ana".into(),
                password: b"pw".to_vec()
            })[..],
            b"\x01\x00\x00\x00\x06\x03anapw"
        );
        assert_eq!(
            &roundtrip(Message::Exec {
                stdin: true,
                command: "ls -l".into()
            })[..],
            b"\x02\x00\x00\x00\x06\x01ls -l"
        );
        assert_eq!(
            &roundtrip(Message::Stdin(Bytes::from_static(b"hi")))[..],
            b"\x03\x00\x00\x00\x02hi"
        );
        assert_eq!(&roundtrip(Message::StdinEof)[..], b"\x04\x00\x00\x00\x00");
        assert_eq!(
            &roundtrip(Message::Signal(2))[..],
            b"\x05\x00\x00\x00\x01\x02"
        );
        assert_eq!(&roundtrip(Message::Bye)[..], b"\x06\x00\x00\x00\x00");
        assert_eq!(
            &roundtrip(Message::AuthOk {
                cwd: "/root".into()
            })[..],
            b"\x81\x00\x00\x00\x05/root"
        );
        assert_eq!(
            &roundtrip(Message::AuthFail {
                tries_left: 2,
                retry_after_ms: 1500
            })[..],
            b"\x82\x00\x00\x00\x05\x02\x00\x00\x05\xdc"
        );
        assert_eq!(
            &roundtrip(Message::Stdout(Bytes::from_static(b"a\n")))[..],
            b"\x83\x00\x00\x00\x02a\n"
        );
        assert_eq!(
            &roundtrip(Message::Stderr(Bytes::from_static(b"e")))[..],
            b"\x84\x00\x00\x00\x01e"
        );
        assert_eq!(
            &roundtrip(Message::Exit {
                ending: Ending::Exited(3),
                cwd: "/tmp".into()
            })[..],
            b"\x85\x00\x00\x00\x06\x00\x03/tmp"
        );
        assert_eq!(
            &roundtrip(Message::Exit {
                ending: Ending::Signaled(2),
                cwd: "/".into()
            })[..],
            b"\x85\x00\x00\x00\x03\x01\x02/"
        );
        assert_eq!(
            &roundtrip(Message::Window(262_144))[..],
            b"\x86\x00\x00\x00\x04\x00\x04\x00\x00"
        );
        assert_eq!(
            &roundtrip(Message::Error {
                code: ErrorCode::Idle,
                reason: "idle".into()
            })[..],
            b"\x87\x00\x00\x00\x05\x02idle"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let p = |k: u8, v: &[u8]| Message::parse(k, &Bytes::copy_from_slice(v));
        assert!(p(kind::AUTH, b"").is_err());
        assert!(p(kind::AUTH, b"\x05ab").is_err(), "user runs past the end");
        assert!(p(kind::AUTH, b"\x03ana").is_err(), "empty password");
        assert!(p(kind::AUTH, b"\x02a/pw").is_err(), "a slash in the user");
        assert!(p(kind::AUTH, b"\x00pw").is_err(), "empty user");
        let mut long = vec![3u8];
        long.extend_from_slice(b"ana");
        long.extend(std::iter::repeat_n(b'x', MAX_PASSWORD + 1));
        assert!(p(kind::AUTH, &long).is_err());
        assert!(p(kind::EXEC, b"\x00").is_err(), "empty command");
        assert!(p(kind::EXEC, b"\x02ls").is_err(), "unknown flag");
        assert!(p(kind::EXEC, b"\x00l\0s").is_err(), "NUL");
        assert!(p(kind::EXEC, b"\x00\xff").is_err(), "not UTF-8");
        assert!(p(kind::STDIN, b"").is_err());
        assert!(p(kind::STDIN_EOF, b"x").is_err());
        assert!(p(kind::SIGNAL, b"\x0b").is_err(), "SIGSEGV is not offered");
        assert!(p(kind::SIGNAL, b"").is_err());
        assert!(p(kind::AUTH_FAIL, b"\x03\0\0\0\0").is_err());
        assert!(p(kind::WINDOW, b"\0\0\0\0").is_err());
        assert!(p(kind::WINDOW, b"\0\x04\0\x01").is_err(), "past the window");
        assert!(p(kind::EXIT, b"\x07\x00/").is_err());
        assert!(p(kind::EXIT, b"\x00").is_err());
        assert!(
            p(kind::EXIT, b"\x02\x01/").is_err(),
            "kind 2 carries code 0"
        );
        assert!(p(kind::ERROR, b"").is_err());
        assert_eq!(p(0x42, b""), Err(ProtoError::UnknownType(0x42)));
    }

    #[test]
    fn a_password_never_prints() {
        let m = Message::Auth {
            user: "ana".into(),
            password: b"s3cret".to_vec(),
        };
        assert!(!format!("{m:?}").contains("s3cret"));
    }

    #[test]
    fn server_allows_three_tries_then_closes() {
        let mut s = ServerSession::new();
        let auth = || Message::Auth {
            user: "ana".into(),
            password: b"x".to_vec(),
        };
        for left in [2u8, 1] {
            assert!(matches!(
                s.on_message(auth()).unwrap(),
                ServerEvent::Authenticate { .. }
            ));
            assert!(
                s.on_message(auth()).is_err(),
                "no second AUTH while checking"
            );
            // The error above does not change the phase.
            assert_eq!(s.auth_done(false), left);
        }
        s.on_message(auth()).unwrap();
        assert_eq!(s.auth_done(false), 0);
        assert_eq!(s.phase(), &ServerPhase::Closed);
    }

    #[test]
    fn server_refuses_commands_before_auth() {
        let mut s = ServerSession::new();
        assert!(
            s.on_message(Message::Exec {
                stdin: false,
                command: "id".into()
            })
            .is_err()
        );
        assert!(
            s.on_message(Message::Stdout(Bytes::from_static(b"x")))
                .is_err()
        );
    }

    #[test]
    fn server_counts_the_stdin_window() {
        let mut s = ServerSession::new();
        s.on_message(Message::Auth {
            user: "ana".into(),
            password: b"x".to_vec(),
        })
        .unwrap();
        s.auth_done(true);
        assert_eq!(
            s.on_message(Message::Signal(2)).unwrap(),
            ServerEvent::Late,
            "a Ctrl-C racing the EXIT is dropped"
        );
        s.on_message(Message::Exec {
            stdin: true,
            command: "cat".into(),
        })
        .unwrap();
        let chunk = Bytes::from(vec![0u8; MAX_DATA]);
        for _ in 0..(STDIN_WINDOW as usize / MAX_DATA) {
            s.on_message(Message::Stdin(chunk.clone())).unwrap();
        }
        assert!(
            s.on_message(Message::Stdin(Bytes::from_static(b"x")))
                .is_err(),
            "past the window"
        );
        s.window_grant(1);
        s.on_message(Message::Stdin(Bytes::from_static(b"x")))
            .unwrap();
        assert_eq!(
            s.on_message(Message::StdinEof).unwrap(),
            ServerEvent::StdinEof
        );
        assert!(
            s.on_message(Message::StdinEof).is_err(),
            "stdin ended twice"
        );
        assert!(
            s.on_message(Message::Exec {
                stdin: false,
                command: "id".into()
            })
            .is_err(),
            "one command at a time"
        );
        s.exec_done();
        assert_eq!(
            s.on_message(Message::Stdin(Bytes::from_static(b"x")))
                .unwrap(),
            ServerEvent::Late
        );
        assert_eq!(s.on_message(Message::Bye).unwrap(), ServerEvent::Bye);
    }

    #[test]
    fn stdin_without_forwarding_is_refused() {
        let mut s = ServerSession::new();
        s.on_message(Message::Auth {
            user: "ana".into(),
            password: b"x".to_vec(),
        })
        .unwrap();
        s.auth_done(true);
        s.on_message(Message::Exec {
            stdin: false,
            command: "cat".into(),
        })
        .unwrap();
        assert!(
            s.on_message(Message::Stdin(Bytes::from_static(b"x")))
                .is_err()
        );
    }

    #[test]
    fn client_checks_the_server() {
        let mut c = ClientSession::new();
        assert!(
            c.on_message(&Message::Stdout(Bytes::from_static(b"x")))
                .is_err()
        );
        c.on_message(&Message::AuthOk { cwd: "/".into() }).unwrap();
        assert!(
            c.on_message(&Message::Exit {
                ending: Ending::Exited(0),
                cwd: "/".into()
            })
            .is_err(),
            "EXIT without EXEC"
        );
        c.exec_sent();
        c.on_message(&Message::Window(STDIN_WINDOW)).unwrap();
        assert_eq!(c.window(), u64::from(STDIN_WINDOW));
        c.stdin_sent(1000);
        assert_eq!(c.window(), u64::from(STDIN_WINDOW) - 1000);
        c.on_message(&Message::Stdout(Bytes::from_static(b"x")))
            .unwrap();
        c.on_message(&Message::Exit {
            ending: Ending::Exited(0),
            cwd: "/".into(),
        })
        .unwrap();
        assert_eq!(c.phase(), &ClientPhase::Ready);
        c.on_message(&Message::Error {
            code: ErrorCode::Idle,
            reason: "idle".into(),
        })
        .unwrap();
        assert_eq!(c.phase(), &ClientPhase::Closed);
    }

    #[test]
    fn endings_map_to_statuses() {
        assert_eq!(Ending::Exited(3).status(), 3);
        assert_eq!(Ending::Signaled(2).status(), 130);
        assert_eq!(Ending::Signaled(9).status(), 137);
        assert_eq!(Ending::NotStarted.status(), 127);
        assert_eq!(Ending::TimedOut(15).status(), 124);
    }

    #[test]
    fn session_cd_is_recognised() {
        for yes in ["cd", "cd /tmp", "  cd  ..", "cd \"$HOME/x y\"", "cd ~"] {
            assert!(is_session_cd(yes), "{yes}");
        }
        for no in [
            "cdx",
            "cd /tmp && ls",
            "cd a; ls",
            "cd $(pwd)",
            "ls",
            "cd a | b",
            "cd `x`",
        ] {
            assert!(!is_session_cd(no), "{no}");
        }
    }
}
