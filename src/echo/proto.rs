//! The sans-IO core of echo: what the server answers, and how the client checks the answer.
//!
//! Echo itself (RFC 862) needs no parsing: "send back to the originating source any data it
//! receives". The pieces worth testing without a socket are:
//!
//! - [`Verifier`]: the client's check that the byte stream coming back equals the one sent,
//!   however the stream is split into reads;
//! - [`Control`]: the opt-in UDP control datagrams (`SHUTDOWN`, `EXEC <command>`) and their
//!   replies.

use std::fmt;

/// Longest command output returned in an `EXIT` reply.
pub const MAX_EXEC_OUTPUT: usize = 1024;

/// Reply to an accepted `SHUTDOWN`.
pub const SHUTDOWN_REPLY: &[u8] = b"OK shutting down\n";

/// Reply to a control datagram from an address not allowed to control the server.
pub const REFUSED_REPLY: &[u8] = b"REFUSED control commands are not allowed from your address\n";

/// An opt-in control request (server started with `--control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control<'a> {
    /// `SHUTDOWN`: stop the server gracefully.
    Shutdown,
    /// `EXEC <command>`: run the command with `sh -c` and reply `EXIT <status>`.
    Exec(&'a str),
}

impl<'a> Control<'a> {
    /// Recognises a control datagram. One trailing `\n` or `\r\n` is allowed (as `nc` sends
    /// it). Anything else (including `EXEC` with no command) is not a control request and is
    /// echoed as usual.
    ///
    /// ```
    /// use socklab::echo::proto::Control;
    /// assert_eq!(Control::parse(b"SHUTDOWN\n"), Some(Control::Shutdown));
    /// assert_eq!(Control::parse(b"EXEC uname -s"), Some(Control::Exec("uname -s")));
    /// assert_eq!(Control::parse(b"hello"), None);
    /// ```
    pub fn parse(datagram: &'a [u8]) -> Option<Self> {
        let line = datagram
            .strip_suffix(b"\r\n")
            .or_else(|| datagram.strip_suffix(b"\n"))
            .unwrap_or(datagram);
        if line == b"SHUTDOWN" {
            return Some(Control::Shutdown);
        }
        let cmd = line.strip_prefix(b"EXEC ")?;
        let cmd = std::str::from_utf8(cmd).ok()?.trim();
        if cmd.is_empty() || cmd.contains('\0') {
            return None;
        }
        Some(Control::Exec(cmd))
    }
}

/// Encodes the reply to `EXEC`: `EXIT <status>\n` then at most [`MAX_EXEC_OUTPUT`] bytes of
/// the command's output. A command killed by a signal (no status) reports `EXIT signal`;
/// one that ran out of time reports `EXIT timeout`.
pub fn exit_reply(status: ExecStatus, output: &[u8]) -> Vec<u8> {
    let mut out = format!("EXIT {status}\n").into_bytes();
    out.extend_from_slice(&output[..output.len().min(MAX_EXEC_OUTPUT)]);
    out
}

/// How an `EXEC` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStatus {
    /// Exited with this status.
    Code(i32),
    /// Killed by a signal.
    Signal,
    /// Killed because it ran too long.
    Timeout,
    /// Could not be started.
    NotStarted,
}

impl fmt::Display for ExecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecStatus::Code(c) => write!(f, "{c}"),
            ExecStatus::Signal => f.write_str("signal"),
            ExecStatus::Timeout => f.write_str("timeout"),
            ExecStatus::NotStarted => f.write_str("not-started"),
        }
    }
}

/// The echo did not match what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// A byte differs.
    #[error(
        "echo differs at byte {offset}: sent 0x{sent:02x} {}, got 0x{got:02x} {}",
        show(*.sent),
        show(*.got)
    )]
    Differs {
        /// Offset from the start of the stream.
        offset: u64,
        /// What we sent there.
        sent: u8,
        /// What came back.
        got: u8,
    },
    /// More came back than was sent.
    #[error("server sent {extra} more byte(s) than we sent ({sent} sent)")]
    Extra {
        /// Bytes sent in total.
        sent: u64,
        /// Bytes beyond that.
        extra: u64,
    },
    /// Less came back than was sent.
    #[error("echo is short: sent {sent} bytes, got back {got}")]
    Short {
        /// Bytes sent.
        sent: u64,
        /// Bytes echoed.
        got: u64,
    },
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("({:?})", b as char)
    } else {
        String::new()
    }
}

/// Checks a returning byte stream against what was sent, byte for byte, whatever the reads'
/// sizes. Only bytes sent but not yet echoed are kept, so memory is bounded by how far the
/// sender runs ahead (the driver caps that with [`Verifier::pending`]).
///
/// ```
/// use socklab::echo::proto::Verifier;
/// let mut v = Verifier::default();
/// v.sent(b"hello");
/// v.received(b"hel").unwrap();
/// v.received(b"lo").unwrap();
/// v.finish().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Verifier {
    pending: std::collections::VecDeque<u8>,
    sent: u64,
    got: u64,
}

impl Verifier {
    /// Records bytes handed to the socket. Call this *before* writing them, so an echo that
    /// arrives quickly is never mistaken for an extra byte.
    pub fn sent(&mut self, data: &[u8]) {
        self.pending.extend(data);
        self.sent += data.len() as u64;
    }

    /// Checks bytes that came back.
    pub fn received(&mut self, data: &[u8]) -> Result<(), Mismatch> {
        for (i, &b) in data.iter().enumerate() {
            let Some(expected) = self.pending.pop_front() else {
                return Err(Mismatch::Extra {
                    sent: self.sent,
                    extra: (data.len() - i) as u64,
                });
            };
            if b != expected {
                return Err(Mismatch::Differs {
                    offset: self.got,
                    sent: expected,
                    got: b,
                });
            }
            self.got += 1;
        }
        Ok(())
    }

    /// Bytes sent but not yet echoed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes checked so far.
    pub fn echoed(&self) -> u64 {
        self.got
    }

    /// Bytes sent so far.
    pub fn total_sent(&self) -> u64 {
        self.sent
    }

    /// At end of stream: everything sent must have come back.
    pub fn finish(&self) -> Result<(), Mismatch> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(Mismatch::Short {
                sent: self.sent,
                got: self.got,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_parsing() {
        assert_eq!(Control::parse(b"SHUTDOWN"), Some(Control::Shutdown));
        assert_eq!(Control::parse(b"SHUTDOWN\r\n"), Some(Control::Shutdown));
        assert_eq!(Control::parse(b"shutdown"), None);
        assert_eq!(Control::parse(b"SHUTDOWN now"), None);
        assert_eq!(
            Control::parse(b"EXEC echo hi\n"),
            Some(Control::Exec("echo hi"))
        );
        assert_eq!(Control::parse(b"EXEC "), None);
        assert_eq!(Control::parse(b"EXEC \xff"), None);
        assert_eq!(Control::parse(b"EXEC a\0b"), None);
    }

    #[test]
    fn exit_reply_golden() {
        assert_eq!(exit_reply(ExecStatus::Code(0), b"hi\n"), b"EXIT 0\nhi\n");
        assert_eq!(exit_reply(ExecStatus::Signal, b""), b"EXIT signal\n");
        let long = vec![b'x'; 5000];
        assert_eq!(
            exit_reply(ExecStatus::Code(3), &long).len(),
            7 + MAX_EXEC_OUTPUT
        );
    }

    #[test]
    fn verifier_reports_first_difference() {
        let mut v = Verifier::default();
        v.sent(b"hello");
        v.received(b"he").unwrap();
        let err = v.received(b"Xlo").unwrap_err();
        assert_eq!(
            err,
            Mismatch::Differs {
                offset: 2,
                sent: b'l',
                got: b'X'
            }
        );
        assert_eq!(
            err.to_string(),
            "echo differs at byte 2: sent 0x6c ('l'), got 0x58 ('X')"
        );
    }

    #[test]
    fn verifier_reports_extra_and_short() {
        let mut v = Verifier::default();
        v.sent(b"ab");
        assert!(matches!(
            v.received(b"abc"),
            Err(Mismatch::Extra { sent: 2, extra: 1 })
        ));
        let mut v = Verifier::default();
        v.sent(b"abc");
        v.received(b"ab").unwrap();
        assert_eq!(v.finish(), Err(Mismatch::Short { sent: 3, got: 2 }));
    }

    proptest! {
        #[test]
        fn verifier_accepts_any_split(data in proptest::collection::vec(any::<u8>(), 0..2000),
                                      cuts in proptest::collection::vec(1usize..64, 0..100)) {
            let mut v = Verifier::default();
            v.sent(&data);
            let mut rest = &data[..];
            for c in cuts {
                let n = c.min(rest.len());
                v.received(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            v.received(rest).unwrap();
            prop_assert!(v.finish().is_ok());
            prop_assert_eq!(v.echoed(), data.len() as u64);
        }
    }
}
