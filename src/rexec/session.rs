//! One command of a session, on the server: `sh -c LINE` in its own process group, in the
//! session's working directory, with a clean environment; stdout and stderr read into
//! messages as the connection can take them (a client that stops reading stops the command
//! at its next full pipe: back-pressure, never a growing buffer), stdin written as it comes.
//!
//! The environment is exactly: `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
//! `HOME`, `USER` and `LOGNAME` (the server's own user), `SHELL=/bin/sh`, `LANG=C.UTF-8`,
//! `TERM=dumb`, `PWD` (the working directory), `SOCKLAB_REXEC_USER` (the authenticated name)
//! and `SOCKLAB_REXEC_PEER` (the client's address and port, like ssh's `SSH_CLIENT`).
//!
//! `cd` is the session's (see [`super::proto::is_session_cd`]): the line runs as
//! `LINE >/dev/null && pwd`, and the directory printed becomes the working directory of the
//! commands after it.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::proto::{Ending, MAX_DATA, Message, is_session_cd};
use crate::net::clock;

/// How long a timed-out or abandoned command has between SIGTERM (or SIGHUP) and SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(2);

/// What a command needs.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The command line.
    pub line: String,
    /// The session's working directory.
    pub cwd: PathBuf,
    /// Where to run instead when that directory is gone (the server's start directory).
    pub home: PathBuf,
    /// The environment (already the whole of it).
    pub env: Vec<(String, String)>,
    /// Stdin is forwarded (otherwise /dev/null).
    pub stdin: bool,
    /// `--command-timeout`.
    pub timeout: Option<Duration>,
}

/// How a command went.
#[derive(Debug, Clone)]
pub struct Done {
    /// How it ended.
    pub ending: Ending,
    /// The new working directory, after a successful session `cd`.
    pub cwd: Option<PathBuf>,
    /// Stdout bytes sent.
    pub bytes_out: u64,
    /// Stderr bytes sent.
    pub bytes_err: u64,
    /// From start to end.
    pub duration: Duration,
}

/// Stdin for a running command.
#[derive(Debug)]
pub enum Input {
    /// Bytes to write.
    Data(Bytes),
    /// Close its stdin.
    Eof,
}

/// A command started.
#[derive(Debug)]
pub struct Running {
    /// Its process group (its pid).
    pub pgid: Option<i32>,
    /// Where its stdin goes (when forwarded).
    pub stdin: Option<mpsc::UnboundedSender<Input>>,
    /// Its end.
    pub done: tokio::task::JoinHandle<Done>,
}

impl Running {
    /// Sends `sig` to the command's process group (a group already gone is not an error).
    pub fn signal(&self, sig: u8) {
        if let (Some(pgid), Ok(sig)) = (self.pgid, Signal::try_from(i32::from(sig))) {
            let _ = killpg(Pid::from_raw(pgid), sig);
        }
    }
}

/// The environment commands get.
pub fn environment(user: &str, peer: &str, cwd: &std::path::Path) -> Vec<(String, String)> {
    let (os_user, pw_home) = os_user();
    let home = std::env::var("HOME").unwrap_or(pw_home);
    vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), home),
        ("USER".into(), os_user.clone()),
        ("LOGNAME".into(), os_user),
        ("SHELL".into(), "/bin/sh".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
        ("PWD".into(), cwd.display().to_string()),
        ("SOCKLAB_REXEC_USER".into(), user.into()),
        ("SOCKLAB_REXEC_PEER".into(), peer.into()),
    ]
}

/// The server's user name and home directory, from the password database (the uid and `/`
/// when it has no entry).
fn os_user() -> (String, String) {
    // SAFETY: getuid cannot fail; getpwuid_r writes into the buffers given, whose sizes are
    // passed, and `result` is null or points at `pwd`, whose strings live in `buf`.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() {
            return (uid.to_string(), "/".into());
        }
        let s = |p: *const libc::c_char| {
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        (s(pwd.pw_name), s(pwd.pw_dir))
    }
}

/// Starts a command. Its output goes to `out` as STDOUT and STDERR messages (the channel's
/// bound is the back-pressure); each stdin write's size is reported on `written` (so the
/// session can open the client's window again). A command that cannot start still gives a
/// [`Done`] (ending [`Ending::NotStarted`], the reason sent as STDERR).
pub fn start(
    spec: Spec,
    out: mpsc::Sender<Message>,
    written: mpsc::UnboundedSender<u32>,
) -> Running {
    let began = clock::now();
    let cd = is_session_cd(&spec.line);
    let script = if cd {
        // The whole of stdout is the directory (no newline to split on: a name may hold one).
        format!("{} >/dev/null && printf '%s' \"$PWD\"", spec.line)
    } else {
        spec.line.clone()
    };
    // A working directory removed since: run in the start directory (or /) and say so,
    // rather than fail every command from now on.
    let mut moved = None;
    let cwd = if spec.cwd.is_dir() {
        spec.cwd.clone()
    } else {
        let to = if spec.home.is_dir() {
            spec.home.clone()
        } else {
            PathBuf::from("/")
        };
        moved = Some(format!(
            "socklab rexec: {} is gone; running in {}\n",
            spec.cwd.display(),
            to.display()
        ));
        to
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(&cwd)
        .env("PWD", &cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = format!(
                "socklab rexec: cannot start the command in {}: {e}\n",
                spec.cwd.display()
            );
            let done = tokio::spawn(async move {
                let n = why.len() as u64;
                let _ = out.send(Message::Stderr(Bytes::from(why))).await;
                Done {
                    ending: Ending::NotStarted,
                    cwd: None,
                    bytes_out: 0,
                    bytes_err: n,
                    duration: clock::since(began),
                }
            });
            return Running {
                pgid: None,
                stdin: None,
                done,
            };
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let done = tokio::spawn(async move {
        let mut note_bytes = 0;
        if let Some(note) = &moved {
            note_bytes = note.len() as u64;
            let _ = out.send(Message::Stderr(Bytes::from(note.clone()))).await;
        }
        let mut done =
            supervise(child, pgid, cd, spec.timeout, out, stdin_rx, written, began).await;
        done.bytes_err += note_bytes;
        if moved.is_some() && done.cwd.is_none() {
            done.cwd = Some(cwd);
        }
        done
    });
    Running {
        pgid,
        stdin: spec.stdin.then_some(stdin_tx),
        done,
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    mut child: Child,
    pgid: Option<i32>,
    cd: bool,
    timeout: Option<Duration>,
    out: mpsc::Sender<Message>,
    stdin_rx: mpsc::UnboundedReceiver<Input>,
    written: mpsc::UnboundedSender<u32>,
    began: std::time::Instant,
) -> Done {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    if let Some(stdin) = child.stdin.take() {
        tokio::spawn(feed(stdin, stdin_rx, written));
    }
    let out_count = Arc::new(AtomicU64::new(0));
    let err_count = Arc::new(AtomicU64::new(0));
    // A session `cd` keeps its stdout (the new directory) instead of sending it.
    let (out_pump, captured) = if cd {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let h = tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut s) = stdout {
                let _ = (&mut s).take(64 * 1024).read_to_end(&mut buf).await;
            }
            let _ = tx.send(buf);
        });
        (h, Some(rx))
    } else {
        (
            tokio::spawn(pump(stdout, out.clone(), false, out_count.clone())),
            None,
        )
    };
    let err_pump = tokio::spawn(pump(stderr, out, true, err_count.clone()));

    // --command-timeout covers the whole command: the shell, and the pipes it leaves open to
    // a process that outlives it (`setsid daemon &`), which no signal to the group reaches.
    let deadline = timeout.map(|t| tokio::time::Instant::from_std(began) + t);
    let mut timed_out = None;
    let status = match deadline {
        None => child.wait().await,
        Some(d) => match tokio::time::timeout_at(d, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                timed_out = Some(15u8);
                kill_group(pgid, Signal::SIGTERM);
                match tokio::time::timeout(KILL_AFTER, child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        timed_out = Some(9);
                        kill_group(pgid, Signal::SIGKILL);
                        child.wait().await
                    }
                }
            }
        },
    };
    let (out_abort, err_abort) = (out_pump.abort_handle(), err_pump.abort_handle());
    let pipes = async {
        let _ = out_pump.await;
        let _ = err_pump.await;
    };
    match deadline {
        Some(d) if timed_out.is_none() => {
            if tokio::time::timeout_at(d, pipes).await.is_err() {
                // Our ends of the pipes close: the holder gets SIGPIPE at its next write.
                out_abort.abort();
                err_abort.abort();
                kill_group(pgid, Signal::SIGTERM);
                timed_out = Some(15);
            }
        }
        Some(_) => {
            // Already timed out: whatever is still queued in the pipes, for a moment.
            if tokio::time::timeout(KILL_AFTER, pipes).await.is_err() {
                out_abort.abort();
                err_abort.abort();
            }
        }
        None => pipes.await,
    }
    let bytes_out = out_count.load(Ordering::Relaxed);
    let bytes_err = err_count.load(Ordering::Relaxed);
    let ending = match (timed_out, status) {
        (Some(sig), _) => Ending::TimedOut(sig),
        (None, Ok(s)) => ending_of(s),
        (None, Err(_)) => Ending::NotStarted,
    };
    let mut new_cwd = None;
    if let Some(rx) = captured
        && ending == Ending::Exited(0)
        && let Ok(buf) = rx.await
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&buf));
        if dir.is_absolute() && dir.is_dir() {
            new_cwd = Some(dir);
        }
    }
    Done {
        ending,
        cwd: new_cwd,
        bytes_out,
        bytes_err,
        duration: clock::since(began),
    }
}

fn ending_of(s: std::process::ExitStatus) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => Ending::Exited(c as u8),
        (None, Some(sig)) => Ending::Signaled(sig as u8),
        (None, None) => Ending::NotStarted,
    }
}

/// Sends a signal to a process group (gone already: nothing to do).
pub fn kill_group(pgid: Option<i32>, sig: Signal) {
    if let Some(pgid) = pgid {
        let _ = killpg(Pid::from_raw(pgid), sig);
    }
}

/// Reads a pipe into STDOUT or STDERR messages until it ends, counting the bytes sent.
async fn pump<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    out: mpsc::Sender<Message>,
    err: bool,
    count: Arc<AtomicU64>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = BytesMut::with_capacity(MAX_DATA);
    loop {
        buf.reserve(MAX_DATA);
        let n = match (&mut pipe).take(MAX_DATA as u64).read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = buf.split().freeze();
        let msg = if err {
            Message::Stderr(data)
        } else {
            Message::Stdout(data)
        };
        if out.send(msg).await.is_err() {
            // The connection is gone: keep draining so the command is not stuck on a full
            // pipe before the session kills it.
            let mut sink = vec![0u8; 16 * 1024];
            while matches!(pipe.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Writes stdin as it comes; a command that closed its stdin makes the rest be dropped (as
/// ssh does), still reported as written so the client's window keeps opening.
async fn feed(
    mut stdin: ChildStdin,
    mut rx: mpsc::UnboundedReceiver<Input>,
    written: mpsc::UnboundedSender<u32>,
) {
    let mut open = true;
    while let Some(input) = rx.recv().await {
        match input {
            Input::Data(b) => {
                if open && let Err(e) = stdin.write_all(&b).await {
                    open = false;
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        tracing::debug!("stdin of a command: {e}");
                    }
                }
                let _ = written.send(b.len() as u32);
            }
            Input::Eof => {
                let _ = stdin.shutdown().await;
                drop(stdin);
                // Anything after EOF is a protocol error the session catches first.
                while rx.recv().await.is_some() {}
                return;
            }
        }
    }
}
