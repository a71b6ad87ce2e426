//! Echo (RFC 862): the "hello world" of sockets.
//!
//! > A very useful debugging and measurement tool is an echo service. An echo service simply
//! > sends back to the originating source any data it receives. (RFC 862)
//!
//! ```text
//!  client                         server
//!    | ---- "hello\n" (5+1 bytes) --> |     TCP: a byte stream, echoed until the
//!    | <--- "hello\n" --------------- |     client closes; reads may split or merge
//!    | ---- FIN ---------------------> |
//!    | <--- FIN ---------------------- |
//!
//!    | ==== datagram "ping" =========> |     UDP: each datagram goes back to its
//!    | <=== datagram "ping" ========== |     sender, whole
//! ```
//!
//! With `--framing` both sides exchange whole frames from [`crate::frame`] instead of raw
//! bytes (header frames have their CRC32 checked on the way in).
//!
//! Try it: `socklab echo serve` then `nc 127.0.0.1 3500`, or `socklab echo send 3500 hi`.
//!
//! - [`proto`]: the sans-IO parts (echo verification, control datagrams);
//! - [`server`], [`client`]: the drivers; [`cli`]: arguments.

pub mod cli;
pub mod client;
pub mod lab;
pub mod proto;
pub mod server;
