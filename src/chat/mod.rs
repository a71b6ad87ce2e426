//! A TCP chat: `socklab chat serve` and `socklab chat join`.
//!
//! The course's exercise is a client/server chat over TCP, written three times: with
//! fixed-size messages (the `MySocket` class, MSGLEN 1024), with messages delimited by a token,
//! and with a header carrying length, id, timestamp and CRC32. One server speaks any of those
//! (`--framing fixed:1024`, `delim:.`, `header`) or plain lines (the default, for nc and
//! telnet), and its clients meet in rooms named like IRC channels.
//!
//! ```text
//!  client                                    server
//!    | ---- "alice\n" ------------------------> |  the first message is the nickname
//!    | <--- "[12:00:01] -!- welcome, alice…\n"  |
//!    | ---- "hello\n" ------------------------> |  a chat line: everyone else in the room gets
//!    |                                          |  "[12:00:02] #general <alice> hello"
//!    | ---- "/join #rust\n" ------------------> |  a command
//! ```
//!
//! Try it: `socklab chat serve`, then `nc 127.0.0.1 6667` in two terminals; type a nickname,
//! then lines. See docs/PROTOCOLS.md for every framing byte by byte.
//!
//! - [`proto`]: the sans-IO core (nicknames, rooms, commands, history, flood control).
//! - [`irc`]: the sans-IO IRC message codec (parse, write, line splitting, numerics).
//! - [`ircd`]: the IRC dialect, sans-IO: registration, commands to the hub, its messages as IRC
//!   lines (not yet wired into the server).
//! - [`server`]: the server on the service host (queues, slow consumers, framings).
//! - [`client`]: `chat join`.

pub mod cli;
pub mod client;
pub mod cluster;
pub mod irc;
pub mod ircd;
pub mod lab;
pub mod proto;
pub mod replica;
pub mod server;
