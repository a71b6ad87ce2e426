//! A point-to-point chat over UDP with error control and zlib compression: `socklab p2p`.
//!
//! The course's last UDP exercise: two programs that are client and server at once talk over
//! UDP, "with compression and error control by means of zlib". UDP loses, duplicates, reorders
//! and (rarely) corrupts datagrams; this chat notices and recovers, and never loses,
//! duplicates or reorders a message.
//!
//! - [`wire`]: the datagrams byte by byte (CRC-32 first), and zlib packing with a capped
//!   inflate.
//! - [`arq`]: the error control, a sans-IO core in quinn's shape: sequence numbers, cumulative
//!   and selective acknowledgements, RFC 6298's retransmission timer, fragmentation, sessions,
//!   keepalives.
//! - [`peer`]: one peer on a UDP socket (stdin lines in, `<nick> text` lines out).
//! - [`relay`]: `socklab impair`, a UDP relay with loss, duplication, reordering, delay and
//!   corruption, for trying the chat (or anything on UDP) over a bad link.
//! - [`cli`]: `socklab p2p chat` and `socklab impair`.
//! - [`lab`]: the lab's p2p bot, which answers every message.

pub mod arq;
pub mod cli;
pub mod lab;
pub mod peer;
pub mod relay;
pub mod wire;
