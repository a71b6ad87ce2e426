//! The simple services of RFCs 862–868, as inetd has run them built in since 4.2BSD.
//!
//! | service | port | RFC | TCP                                   | UDP                          |
//! |---------|------|-----|---------------------------------------|------------------------------|
//! | echo    | 7    | 862 | everything back until the client closes | the datagram back          |
//! | discard | 9    | 863 | read and throw away                   | throw away                   |
//! | daytime | 13   | 867 | one line of date and time, then close | the same line                |
//! | qotd    | 17   | 865 | one quotation (< 512 chars), then close | the same                   |
//! | chargen | 19   | 864 | 72-char rotating lines until close    | 0–512 characters             |
//! | time    | 37   | 868 | 4 bytes: seconds since 1900, then close | the same 4 bytes           |
//!
//! ```text
//!  client                              daytime server (TCP 13)
//!    | ---- SYN / SYN-ACK / ACK ------------> |
//!    | <--- "Saturday, November 21, 2026 21:04:07-UTC (+00:00)\r\n"
//!    | <--- FIN ----------------------------- |   the server closes: that is the framing
//! ```
//!
//! Over UDP these services are reflection and amplification tools in the wrong hands, so the
//! UDP drivers run every datagram through [`crate::net::guard`] first.
//!
//! Try it: `socklab inetd --port-base 10000`, then `nc 127.0.0.1 10013`,
//! `nc -u 127.0.0.1 10017`, `rdate -p -o 10037 127.0.0.1`.

pub mod cli;
pub mod client;
pub mod lab;
pub mod proto;
pub mod server;
