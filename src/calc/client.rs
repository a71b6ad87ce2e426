//! `socklab calc connect`: a calculator client.
//!
//! Three ways to use it, all sending **one token per line** as the protocol wants:
//!
//! - `--eval "3 4 +"`: send each word, stop at the first `FALLO`, print the last result;
//! - on a terminal, a REPL with line editing and history (rustyline). A line may hold several
//!   tokens (`3 4 +`); each becomes one protocol line, and each reply is printed;
//! - with stdin not a terminal (a pipe, a file), the same without the editor, so
//!   `printf '3\n4\n+\n' | socklab calc connect ADDR` prints `OK`, `OK`, `OK 7`.
//!
//! rustyline blocks, so it runs on its own thread and hands each line over a channel; the
//! async side sends it, prints the replies, then lets the editor prompt again. While the
//! user is typing, the async side also watches the socket, so a server that gives up on an
//! idle client (`FALLO idle timeout`, then close) is reported at once, above the prompt.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustyline::ExternalPrinter;
use rustyline::error::ReadlineError;
use tokio_util::codec::{Framed, FramedRead};

use super::proto::{Answer, BadAnswer};
use crate::frame::delimited::DelimitedCodec;
use crate::frame::{Frame, FrameError};
use crate::net::{self, Endpoint, Metered, NetError, Tracer};
use crate::report::{Event, Line, Reporter};

/// The REPL's prompt.
pub const PROMPT: &str = "calc> ";
/// Longest reply line accepted (ours are at most about 10 KB: `OK`, a sign, 10,000 digits and
/// a point).
pub const MAX_REPLY: usize = 64 * 1024;
/// Longest stdin line read in pipe mode.
const MAX_INPUT_LINE: usize = 1024 * 1024;

/// Everything `calc connect` needs, already checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server.
    pub target: Endpoint,
    /// Connect timeout, and the longest wait for each reply.
    pub timeout: Duration,
    /// `--trace`.
    pub trace: bool,
    /// `--eval`: the tokens to send; `None` for the REPL or stdin.
    pub eval: Option<Vec<String>>,
}

/// Why `calc connect` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, sending or receiving failed, or the server closed the connection.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server refused a token of `--eval`.
    #[error("the server answered FALLO {reason} to {token:?}")]
    Fallo {
        /// The token it refused.
        token: String,
        /// Its reason.
        reason: String,
    },
    /// A reply that is not `OK…` or `FALLO…`.
    #[error("bad reply from {addr}: {source}")]
    BadReply {
        /// The server.
        addr: String,
        /// The line.
        source: BadAnswer,
    },
    /// A reply line longer than [`MAX_REPLY`].
    #[error("{addr} sent a reply line longer than {max} bytes")]
    ReplyTooLong {
        /// The server.
        addr: String,
        /// The limit.
        max: usize,
    },
    /// `--eval` ended without any operator's result.
    #[error("the expression gave no result: end it with an operator, as in \"3 4 +\"")]
    NoResult,
    /// Reading stdin or writing stdout failed.
    #[error("{what}: {source}")]
    Local {
        /// Which.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The line editor failed.
    #[error("line editor: {0}")]
    Editor(String),
}

impl crate::exit::ExitCoded for Error {
    fn exit_code(&self) -> u8 {
        use crate::exit;
        match self {
            Error::Net(n) => n.exit_code(),
            Error::Fallo { .. } => exit::CHECK_FAILED,
            Error::BadReply { .. } | Error::ReplyTooLong { .. } => exit::PROTOCOL,
            Error::NoResult => exit::USAGE,
            _ => exit::LOCAL_IO,
        }
    }
}

/// Runs the client: `--eval`, the REPL, or stdin lines.
pub async fn run(cfg: Config, out: Reporter) -> Result<(), Error> {
    let mut conn = Conn::open(&cfg).await?;
    match &cfg.eval {
        Some(tokens) => eval(&mut conn, tokens, out).await,
        None => {
            let mut source = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                out.status(&format!(
                    "connected to {}: type numbers and operators (several per line if you \
                     like); Ctrl-D leaves",
                    conn.addr
                ));
                Source::editor().await?
            } else {
                Source::pipe()
            };
            interactive(&mut conn, &mut source, out).await
        }
    }
}

/// One connection: lines out, lines in, each read bounded by the timeout.
struct Conn {
    framed: Framed<Metered<net::connect::ClientStream>, DelimitedCodec>,
    addr: String,
    timeout: Duration,
}

impl Conn {
    async fn open(cfg: &Config) -> Result<Conn, Error> {
        let addr = cfg.target.to_string();
        let stream = net::connect::stream(&cfg.target, cfg.timeout).await?;
        let tracer = cfg.trace.then(|| Tracer::new(addr.clone()));
        // The same line codec as the server, reused for the other role.
        let codec = DelimitedCodec::new(b"\n".to_vec(), MAX_REPLY);
        Ok(Conn {
            framed: Framed::new(Metered::new(stream, tracer), codec),
            addr,
            timeout: cfg.timeout,
        })
    }

    /// Sends one token as one line and waits for its reply line.
    async fn ask(&mut self, token: &[u8]) -> Result<(String, Answer), Error> {
        let shown = String::from_utf8_lossy(token).into_owned();
        let sent = tokio::time::timeout(
            self.timeout,
            self.framed.send(Frame::new(Bytes::copy_from_slice(token))),
        )
        .await;
        match sent {
            Err(_) => {
                return Err(NetError::Timeout {
                    what: format!("sending {shown:?} to {}", self.addr),
                    after: self.timeout,
                }
                .into());
            }
            Ok(Err(e)) => return Err(self.frame_error(e, "sending")),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout(self.timeout, self.receive()).await {
            Err(_) => Err(NetError::Timeout {
                what: format!("waiting for the reply to {shown:?}"),
                after: self.timeout,
            }
            .into()),
            Ok(Some(reply)) => reply,
            Ok(None) => Err(NetError::ClosedEarly {
                addr: self.addr.clone(),
                when: format!("before answering {shown:?}"),
            }
            .into()),
        }
    }

    /// The next reply line, or `None` at the end of the stream. Cancel-safe.
    async fn receive(&mut self) -> Option<Result<(String, Answer), Error>> {
        let frame = match self.framed.next().await? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(self.frame_error(e, "reading"))),
        };
        let line = frame.payload.strip_suffix(b"\r").unwrap_or(&frame.payload);
        let text = String::from_utf8_lossy(line).into_owned();
        Some(match Answer::parse(line) {
            Ok(answer) => Ok((text, answer)),
            Err(source) => Err(Error::BadReply {
                addr: self.addr.clone(),
                source,
            }),
        })
    }

    /// Says goodbye: `QUIT`, and its reply if it comes in time. Failures do not matter here.
    async fn quit(&mut self) {
        if let Ok((text, _)) = self.ask(b"QUIT").await {
            tracing::debug!("QUIT -> {text}");
        }
    }

    fn frame_error(&self, e: FrameError, what: &str) -> Error {
        match e {
            FrameError::TooLarge { .. } => Error::ReplyTooLong {
                addr: self.addr.clone(),
                max: MAX_REPLY,
            },
            FrameError::Io(e) => {
                NetError::from_io(e, &self.addr, format!("{what} {}", self.addr)).into()
            }
            // The last bytes before the close had no `\n`.
            other => NetError::ClosedEarly {
                addr: self.addr.clone(),
                when: format!("in the middle of a reply ({other})"),
            }
            .into(),
        }
    }
}

async fn eval(conn: &mut Conn, tokens: &[String], out: Reporter) -> Result<(), Error> {
    let mut result = None;
    for token in tokens {
        let (text, answer) = conn.ask(token.as_bytes()).await?;
        tracing::debug!("{token} -> {text}");
        match answer {
            Answer::Accepted => {}
            Answer::Value(v) => result = Some(v),
            Answer::Bye => return finish(result, out),
            Answer::Fallo(reason) => {
                conn.quit().await;
                out.emit(&Refused {
                    fallo: &reason,
                    token,
                })
                .map_err(stdout)?;
                return Err(Error::Fallo {
                    token: token.clone(),
                    reason,
                });
            }
        }
    }
    conn.quit().await;
    finish(result, out)
}

fn finish(result: Option<String>, out: Reporter) -> Result<(), Error> {
    let value = result.ok_or(Error::NoResult)?;
    out.emit(&Evaluated { result: &value }).map_err(stdout)
}

fn stdout(source: io::Error) -> Error {
    Error::Local {
        what: "writing to stdout",
        source,
    }
}

/// Lines typed or piped in, sent token by token; every reply printed.
async fn interactive(conn: &mut Conn, source: &mut Source, out: Reporter) -> Result<(), Error> {
    loop {
        let line = tokio::select! {
            line = source.next() => line?,
            heard = conn.receive() => {
                // The server spoke without being asked: normally the idle-timeout FALLO just
                // before it closes.
                match heard {
                    Some(Ok((text, _))) => {
                        source.notify(out, &text)?;
                        continue;
                    }
                    Some(Err(e)) => return source.fail(out, e).await,
                    None => {
                        let closed = NetError::ClosedEarly {
                            addr: conn.addr.clone(),
                            when: "while waiting for input".into(),
                        };
                        return source.fail(out, closed.into()).await;
                    }
                }
            }
        };
        let Some(line) = line else {
            conn.quit().await;
            return Ok(());
        };
        for token in line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
        {
            let (text, answer) = conn.ask(token).await?;
            out.emit(&Replied {
                reply: &text,
                token: &String::from_utf8_lossy(token),
            })
            .map_err(stdout)?;
            if answer == Answer::Bye {
                return Ok(());
            }
        }
        source.done();
    }
}

/// Where interactive lines come from.
enum Source {
    /// A terminal: rustyline on its own thread.
    Editor {
        lines: tokio::sync::mpsc::Receiver<Typed>,
        /// Tells the editor thread the replies are printed, so it may prompt again.
        ready: std::sync::mpsc::Sender<()>,
        /// Prints above the prompt while the user types.
        printer: Option<Box<dyn ExternalPrinter + Send>>,
    },
    /// A pipe or file.
    Pipe(FramedRead<tokio::io::Stdin, DelimitedCodec>),
}

/// What the editor thread read.
enum Typed {
    Line(String),
    End,
    Failed(String),
}

impl Source {
    fn pipe() -> Self {
        Source::Pipe(FramedRead::new(
            tokio::io::stdin(),
            DelimitedCodec::new(b"\n".to_vec(), MAX_INPUT_LINE),
        ))
    }

    async fn editor() -> Result<Self, Error> {
        let (line_tx, lines) = tokio::sync::mpsc::channel(1);
        let (ready, ready_rx) = std::sync::mpsc::channel::<()>();
        let (printer_tx, printer_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("calc-editor".into())
            .spawn(move || {
                let mut editor = match rustyline::DefaultEditor::new() {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = printer_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let printer = editor
                    .create_external_printer()
                    .ok()
                    .map(|p| Box::new(p) as Box<dyn ExternalPrinter + Send>);
                let _ = printer_tx.send(Ok(printer));
                loop {
                    let typed = match editor.readline(PROMPT) {
                        Ok(line) => {
                            // History is kept in memory for this session only.
                            let _ = editor.add_history_entry(line.as_str());
                            Typed::Line(line)
                        }
                        // Ctrl-C abandons the line being typed, as in a shell.
                        Err(ReadlineError::Interrupted) => continue,
                        Err(ReadlineError::Eof) => Typed::End,
                        Err(e) => Typed::Failed(e.to_string()),
                    };
                    let more = matches!(typed, Typed::Line(_));
                    if line_tx.blocking_send(typed).is_err() || !more {
                        return;
                    }
                    // Wait until the replies are printed before prompting again.
                    if ready_rx.recv().is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Editor(format!("cannot start its thread: {e}")))?;
        let printer = printer_rx
            .await
            .map_err(|_| Error::Editor("its thread ended at once".into()))?
            .map_err(Error::Editor)?;
        Ok(Source::Editor {
            lines,
            ready,
            printer,
        })
    }

    /// The next line, or `None` at the end of input. Cancel-safe.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Source::Editor { lines, .. } => match lines.recv().await {
                Some(Typed::Line(line)) => Ok(Some(line.into_bytes())),
                Some(Typed::End) | None => Ok(None),
                Some(Typed::Failed(e)) => Err(Error::Editor(e)),
            },
            Source::Pipe(stdin) => match stdin.next().await {
                None => Ok(None),
                Some(Ok(frame)) => Ok(Some(frame.payload.to_vec())),
                Some(Err(FrameError::TooLarge { max, .. })) => Err(Error::Local {
                    what: "reading stdin",
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a line longer than {max} bytes"),
                    ),
                }),
                // The last line had no newline: take it as it is.
                Some(Err(FrameError::PartialFrame { .. })) => {
                    Ok(Some(stdin.read_buffer_mut().split().to_vec()))
                }
                Some(Err(FrameError::Io(source))) => Err(Error::Local {
                    what: "reading stdin",
                    source,
                }),
                Some(Err(e)) => Err(Error::Editor(format!("reading stdin: {e}"))),
            },
        }
    }

    /// The replies to a line are printed: the editor may prompt again.
    fn done(&mut self) {
        if let Source::Editor { ready, .. } = self {
            let _ = ready.send(());
        }
    }

    /// Prints a line the server sent unasked (above the prompt on a terminal).
    fn notify(&mut self, out: Reporter, text: &str) -> Result<(), Error> {
        if let Source::Editor {
            printer: Some(printer),
            ..
        } = self
            && !out.is_json()
        {
            return printer
                .print(format!("{text}\n"))
                .map_err(|e| Error::Editor(e.to_string()));
        }
        out.emit(&Unsolicited { unsolicited: text }).map_err(stdout)
    }

    /// The connection is gone. On a terminal, say so above the prompt and wait for the user
    /// to leave it (Enter or Ctrl-D), so rustyline restores the terminal before we exit.
    async fn fail(&mut self, out: Reporter, error: Error) -> Result<(), Error> {
        if let Source::Editor { .. } = self {
            let _ = self.notify(out, &format!("{error}; press Enter to leave"));
            let _ = self.next().await;
        }
        Err(error)
    }
}

/// `--eval` stopped at a `FALLO` (the error itself is the text; JSON also names it).
#[derive(Debug, serde::Serialize)]
struct Refused<'a> {
    fallo: &'a str,
    token: &'a str,
}

impl Event for Refused<'_> {
    fn lines(&self) -> Vec<Line> {
        Vec::new()
    }
}

/// `--eval`'s result.
#[derive(Debug, serde::Serialize)]
struct Evaluated<'a> {
    result: &'a str,
}

impl Event for Evaluated<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(self.result.to_string())]
    }
}

/// The server's reply to one token.
#[derive(Debug, serde::Serialize)]
struct Replied<'a> {
    reply: &'a str,
    token: &'a str,
}

impl Event for Replied<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(self.reply.to_string())]
    }
}

/// A line the server sent unasked.
#[derive(Debug, serde::Serialize)]
struct Unsolicited<'a> {
    unsolicited: &'a str,
}

impl Event for Unsolicited<'_> {
    fn lines(&self) -> Vec<Line> {
        vec![Line::Result(self.unsolicited.to_string())]
    }
}
