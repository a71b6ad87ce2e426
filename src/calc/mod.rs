//! The postfix calculator protocol (the course's exercise), on TCP port 51216.
//!
//! A client sends **one token per line**: a number, or an operator that applies to the numbers
//! sent before it (postfix, or "reverse Polish", notation: `3 4 +` rather than `3 + 4`).
//! Every line gets **exactly one reply line**, `OK…` or `FALLO <reason>` (*fallo* is Spanish
//! for failure). A *transaction* is up to two operands and then one operator; the operator's
//! reply, whatever it is, ends the transaction.
//!
//! ```text
//!  client                        server          held operands
//!    | ---- "3\n" ------------------> |             [3]
//!    | <--- "OK\n" ------------------ |
//!    | ---- "4x\n" -----------------> |             [3]     refused: nothing changes,
//!    | <--- "FALLO not a number\n" -- |                     the client may send it again
//!    | ---- "4\n" ------------------> |             [3, 4]
//!    | <--- "OK\n" ------------------ |
//!    | ---- "+\n" ------------------> |             []      an operator ends the transaction
//!    | <--- "OK 7\n" ---------------- |
//!    | ---- "1\n" "0\n" "/\n" ------> |             []      (three lines sent at once are
//!    | <--- "OK\n" "OK\n"             |                      answered in order)
//!    |      "FALLO division by zero\n"|
//!    | ---- "QUIT\n" ---------------> |
//!    | <--- "OK bye\n", FIN --------- |
//! ```
//!
//! - Lines end in `\n` or `\r\n`, hold at most 1024 bytes before that, and the token may have
//!   spaces or tabs around it. A longer line gets `FALLO line too long` (once, as soon as the
//!   limit is passed); the rest of it is skipped and the connection goes on, state unchanged.
//!   An empty line gets `FALLO empty line`, state unchanged.
//! - Operands are decimal numbers (`3`, `-2.5`, `.5`, `1e3`, `123456789012345678901234567890`)
//!   of at most 10,000 digits written out. At most two are held; a third gets
//!   `FALLO too many operands`.
//! - Binary operators `+ - * / % ^` need exactly two operands, unary `neg abs sqrt` exactly
//!   one. Operator words and `QUIT` are matched without regard to case.
//! - Arithmetic is exact decimal; `/`, `sqrt` and negative powers round half-even to 50
//!   significant digits. See [`number`] for every rule and limit.
//! - `QUIT` gets `OK bye` and the server closes. A client silent for the idle timeout (`-t`,
//!   300 s by default) gets `FALLO idle timeout` and is closed.
//! - Replies are ASCII; reasons are short fixed English phrases (see [`proto::Reason`]).
//!
//! Try it: `socklab calc serve`, then `printf '3\n4\n+\n' | nc -N 127.0.0.1 51216`, or
//! `nc 127.0.0.1 51216` and type, or `socklab calc connect 127.0.0.1:51216` for a REPL, or
//! `socklab calc connect 51216 --eval "0.1 0.2 +"`.
//!
//! - [`proto`]: the sans-IO core (requests, the transaction, replies); [`number`]: the
//!   decimal arithmetic, its limits and formatting;
//! - [`server`], [`client`]: the drivers; [`cli`]: arguments.

pub mod cli;
pub mod client;
pub mod lab;
pub mod number;
pub mod proto;
pub mod server;
