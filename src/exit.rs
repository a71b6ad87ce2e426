//! Exit codes, one table for the whole binary (mirrored in README.md).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success (also when stdout is closed early, as in `… \| head`) |
//! | 1    | check failed: the peer answered, but wrongly (an echo that differs), or a calculator's `FALLO` answer to `calc connect --eval` |
//! | 2    | bad usage: unknown flag, invalid address or value |
//! | 3    | network error: refused, unreachable, name not found, address in use, permission |
//! | 4    | timeout: the peer did not answer in time |
//! | 5    | protocol error: the peer sent something malformed (a bad frame, a bad daytime/time/chargen reply, a calculator reply that is not OK/FALLO) |
//! | 6    | local I/O error (stdin, stdout, files) |
//! | 7    | HTTP error status (`http get --fail`: a status of 400 or more) |
//! | 8    | TLS error: handshake failed, certificate not trusted or not valid for the name |
//! | 9    | proxy error: the proxy refused or cannot be reached, or answered 407, 502 or another non-2xx to CONNECT |
//! | 130  | interrupted by a second Ctrl-C |

use std::error::Error as StdError;
use std::io;

use crate::net::NetError;
use crate::{calc, echo, http, simple};

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

/// The exit code for an error: the first error in the chain that we recognise decides.
pub fn code_for(err: &(dyn StdError + 'static)) -> u8 {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(e) = e.downcast_ref::<NetError>() {
            return match e {
                NetError::Timeout { .. } => TIMEOUT,
                NetError::BadAddress { .. } => USAGE,
                _ => NETWORK,
            };
        }
        if let Some(e) = e.downcast_ref::<simple::client::Error>() {
            return match e {
                simple::client::Error::Net(n) => code_for(n),
                _ => PROTOCOL,
            };
        }
        if let Some(e) = e.downcast_ref::<echo::client::Error>() {
            return match e {
                echo::client::Error::Net(n) => code_for(n),
                echo::client::Error::Mismatch { .. } => CHECK_FAILED,
                echo::client::Error::Frame { .. } => PROTOCOL,
                echo::client::Error::Usage(_) => USAGE,
                _ => LOCAL_IO,
            };
        }
        if let Some(e) = e.downcast_ref::<calc::client::Error>() {
            return match e {
                calc::client::Error::Net(n) => code_for(n),
                calc::client::Error::Fallo { .. } => CHECK_FAILED,
                calc::client::Error::BadReply { .. } | calc::client::Error::ReplyTooLong { .. } => {
                    PROTOCOL
                }
                calc::client::Error::NoResult => USAGE,
                _ => LOCAL_IO,
            };
        }
        if let Some(e) = e.downcast_ref::<http::client::Error>() {
            return e.exit_code();
        }
        if e.downcast_ref::<crate::cli::UsageError>().is_some() {
            return USAGE;
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
        cur = e.source();
    }
    false
}
