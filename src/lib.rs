//! socklab: the classic socket exercises as reference tools.
//!
//! How the code is laid out (read docs/ARCHITECTURE.md first):
//!
//! - [`net`]: all socket plumbing, written once (addresses, binding, the accept loop,
//!   timeouts, allow-lists, graceful shutdown, `--trace`, errors a person can act on).
//! - [`frame`]: sans-IO framing codecs (fixed length, delimiter, header with CRC32).
//! - one module per protocol ([`echo`], …), each with a sans-IO `proto`, thin `server` and
//!   `client` drivers, and its own `cli`.
//! - [`args`]: the flag groups every protocol shares (a leaf: it imports no protocol).
//! - [`cli`], [`lab`], [`report`], [`exit`]: the binary's glue.
#![warn(missing_docs)]

pub mod args;
pub mod calc;
pub mod catalog;
pub mod chat;
pub mod cli;
pub mod echo;
pub mod exit;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod lab;
pub mod net;
pub mod p2p;
pub mod report;
pub mod rexec;
pub mod rtt;
pub mod simple;
pub mod stats;
pub mod term;
pub mod transfer;
