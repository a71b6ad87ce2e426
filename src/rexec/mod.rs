//! Remote command execution with encrypted authentication and a session log: `socklab rexec`
//! (docs/PROTOCOLS.md §12, docs/REXEC.md for the security model).
//!
//! The sans-IO parts: [`proto`], the inner protocol's typed messages on the TLV framing of
//! [`crate::frame::tlv`] and the two state machines that say which message may come when;
//! [`penalty`], the brute-force brake (failures per source and user make the next tries
//! wait). Then [`users`], the Argon2id users file; [`tls`], the host key, its self-signed
//! certificate, the client's pinning verifier and the known-hosts file; [`session`], one
//! command in its own process group; and the drivers: [`server`] (`rexec serve`) and
//! [`client`] (`rexec connect`, `rexec run`), with their arguments in [`cli`].

pub mod cli;
pub mod client;
pub mod lab;
pub mod penalty;
pub mod proto;
pub mod server;
pub mod session;
pub mod tls;
pub mod users;
