//! Exit codes, one table for the whole binary (mirrored in README.md).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success (also when stdout is closed early, as in `… \| head`) |
//! | 1    | check failed: the peer answered, but wrongly (an echo that differs), a calculator's `FALLO` answer to `calc connect --eval`, an item `transfer send` sent that the receiver refused, or a file larger than `http get --max-filesize` |
//! | 2    | bad usage: unknown flag, invalid address or value; a file named by a server flag (`--not-found`, `--quotes`, `--motd`) that cannot be read, is not a regular file, or is too large |
//! | 3    | network error: refused, unreachable, name not found, address in use, permission |
//! | 4    | timeout: the peer did not answer in time, or `http get -m/--max-time` ran out |
//! | 5    | protocol error: the peer sent something malformed (a bad frame, a bad daytime/time/chargen reply, a calculator reply that is not OK/FALLO, a bad HTTP response, more than 20 1xx responses, a decompression bomb) |
//! | 6    | local I/O error (stdin, stdout, files) |
//! | 7    | HTTP error status (`http get --fail`: a status of 400 or more) |
//! | 8    | TLS error: handshake failed, certificate not trusted or not valid for the name |
//! | 9    | proxy error: the proxy refused or cannot be reached, or answered 407, 502 or another non-2xx to CONNECT |
//! | 130  | interrupted by a second Ctrl-C |
//! | 255  | `rexec connect`/`rexec run` only: socklab itself failed (every other code is the remote command's) |
//!
//! Each error type says its own code by implementing [`ExitCoded`]; this module knows only
//! the table and the generic errors ([`NetError`], [`UsageError`], `io::Error`), and imports
//! nothing but `net`. A protocol's `cli.rs` wraps
//! its driver's error with [`Coded`] (`.map_err(Coded::from)` or [`CodedResult::coded`])
//! when it turns it into an `anyhow::Error`, and [`code_for`] finds that wrapper in the
//! chain.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::net::NetError;

/// Success.
pub const OK: u8 = 0;
/// The peer's answer was wrong.
pub const CHECK_FAILED: u8 = 1;
/// Bad usage.
pub const USAGE: u8 = 2;
/// Network error.
pub const NETWORK: u8 = 3;
/// Timeout.
pub const TIMEOUT: u8 = 4;
/// Protocol error.
pub const PROTOCOL: u8 = 5;
/// Local I/O error.
pub const LOCAL_IO: u8 = 6;
/// HTTP error status (`--fail`).
pub const HTTP_STATUS: u8 = 7;
/// TLS error.
pub const TLS: u8 = 8;
/// Proxy error.
pub const PROXY: u8 = 9;

/// An error that knows which exit code it means.
pub trait ExitCoded: StdError {
    /// The code from the table above.
    fn exit_code(&self) -> u8;
}

impl ExitCoded for NetError {
    fn exit_code(&self) -> u8 {
        match self {
            NetError::Timeout { .. } => TIMEOUT,
            NetError::BadAddress { .. } => USAGE,
            _ => NETWORK,
        }
    }
}

/// A usage error found after clap parsing (a combination of flags that makes no sense): exit
/// code 2. (Here rather than in `args.rs`, so that `args` depends on `exit` and not the other
/// way round.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl ExitCoded for UsageError {
    fn exit_code(&self) -> u8 {
        USAGE
    }
}

/// An error with its exit code attached, so the code survives the trip through `anyhow`.
///
/// Its message and causes are the inner error's: wrapping changes no text.
pub struct Coded {
    code: u8,
    inner: Box<dyn StdError + Send + Sync + 'static>,
}

impl Coded {
    /// The code carried.
    pub fn code(&self) -> u8 {
        self.code
    }
}

impl<E: ExitCoded + Send + Sync + 'static> From<E> for Coded {
    fn from(e: E) -> Self {
        Coded {
            code: e.exit_code(),
            inner: Box::new(e),
        }
    }
}

impl fmt::Debug for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl StdError for Coded {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source()
    }
}

/// `result.coded()?`: attaches the error's exit code before `?` turns it into `anyhow`.
pub trait CodedResult<T> {
    /// The result with its error wrapped in [`Coded`].
    fn coded(self) -> Result<T, Coded>;
}

impl<T, E: ExitCoded + Send + Sync + 'static> CodedResult<T> for Result<T, E> {
    fn coded(self) -> Result<T, Coded> {
        self.map_err(Coded::from)
    }
}

/// The exit code for an error: the first error in the chain that we recognise decides.
pub fn code_for(err: &(dyn StdError + 'static)) -> u8 {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<Coded>() {
            return c.code;
        }
        if let Some(e) = e.downcast_ref::<NetError>() {
            return e.exit_code();
        }
        if let Some(e) = e.downcast_ref::<UsageError>() {
            return e.exit_code();
        }
        if e.downcast_ref::<io::Error>().is_some() {
            return LOCAL_IO;
        }
        cur = e.source();
    }
    LOCAL_IO
}

/// True when the error is stdout going away (`| head`), which is not a failure.
pub fn is_broken_pipe(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        if let Some(c) = e.downcast_ref::<Coded>()
            && is_broken_pipe(c.inner.as_ref())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the peer lied: {0}")]
    struct Lie(#[source] io::Error);

    impl ExitCoded for Lie {
        fn exit_code(&self) -> u8 {
            PROTOCOL
        }
    }

    #[test]
    fn a_coded_error_keeps_its_code_and_text_through_anyhow() {
        let inner = io::Error::other("x");
        let err: anyhow::Error = Err::<(), _>(Lie(inner)).coded().unwrap_err().into();
        let err = err.context("talking to 127.0.0.1:7");
        assert_eq!(code_for(err.as_ref()), PROTOCOL);
        assert_eq!(
            format!("{err:#}"),
            "talking to 127.0.0.1:7: the peer lied: x: x"
        );
    }

    #[test]
    fn generic_errors_have_their_codes() {
        let timeout = NetError::Timeout {
            what: "w".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(code_for(&timeout), TIMEOUT);
        assert_eq!(code_for(&io::Error::other("disk")), LOCAL_IO);
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&Coded::from(Lie(broken))));
    }
}
