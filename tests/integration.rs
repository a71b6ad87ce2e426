//! Integration tests: each one runs the real `socklab` binary on an ephemeral loopback port
//! and talks to it with real peers (nc, Python's `socket` module) or raw sockets.
//!
//! One test binary (`autotests = false` in Cargo.toml) so it links once.

// Tests measure real time against real processes; the clock rule is for protocol code.
#![allow(clippy::disallowed_methods)]

mod support;

/// The postfix calculator protocol.
mod calc;
/// The TCP chat: nc, the course's MySocket class, header frames, `chat join`, slow consumers.
mod chat;
/// The TCP chat under attack: a client that never reads, a flood, a megabyte without a newline,
/// a 4 GB length, a nickname race, messages at the size limit.
mod chat_attack;
/// `chat serve --cluster`: servers through a real redis-server, Redis killed and restarted,
/// a three-server chaos run.
mod chat_cluster;
/// The chat's IRC dialect: ii and a raw IRC session beside nc users.
mod chat_irc;
/// Errors, exit codes, tracing, shutdown and the lab.
mod cli;
/// Echo over TCP, UDP and Unix sockets, framing, the threads model, control datagrams.
mod echo;
/// Headless Chromium and Firefox ESR against the HTTP server (screenshots in target/browser/).
mod http_browser;
/// `socklab http get` against real servers (Python origin, nginx) and a real proxy
/// (tinyproxy), byte for byte against curl.
mod http_client_interop;
/// `http serve`'s open-file cache: files renamed over, rewritten in place, deleted or made
/// unreadable under load are never mixed nor stale past `--file-cache-valid`; `--file-cache N`
/// bounds the open descriptors, 0 turns it off; 404 and 403 are not cached.
mod http_file_cache;
/// `socklab http get` against socklab's server, Python origins (plain and TLS) and a Python proxy.
mod http_get;
/// Hostile peers against `http serve` and `http get` (issue 15): slow bodies, a log nobody
/// reads, odd ranges and paths, endless, oversized or early answers.
mod http_hostile;
/// `http serve --precompressed`: `.br`, `.zst` and `.gz` made by brotli, zstd and gzip, chosen by
/// Accept-Encoding, decoded by curl and headless Chromium; ETags, 304 and ranges per encoding.
mod http_precompressed;
/// REDbot, the HTTP resource linter, finds no problem with `http serve`'s answers: a page, a
/// stylesheet, a binary, a range, a listing, a 404, and the precompressed variants.
mod http_redbot;
/// The static HTTP/1.1 file server against curl, wget, Python's http.client and raw sockets.
mod http_server;
/// `http serve` over HTTPS (self-signed and from PEM files): curl, wget, Python's ssl, openssl
/// s_client (TLS 1.2 and 1.3, ALPN), headless Chromium, `http get`; 64 MiB in bounded memory;
/// plain HTTP on the HTTPS port; bad certificates and keys.
mod http_tls;
/// The UDP p2p chat: two processes, pipes, exit codes.
mod p2p;
/// The p2p chat against a Python stdlib peer written from docs/PROTOCOLS.md §9 alone.
mod p2p_python;
mod p2p_ui;
/// Bugs found after their feature landed, named after the issue that found them.
mod regression;
/// `socklab rexec`: the seed session, host keys on first use and changed, a tcpdump capture
/// decrypted by tshark, openssl's fingerprint, the brute-force brake, hostile frames, 1 GiB.
mod rexec;
/// `socklab rtt`: reflector and source, echo servers (ours, Python, xinetd), irtt beside it,
/// impair's loss, duplication and delay.
mod rtt;
/// RFC 862-868 simple services, inetd, the reflection guard, xinetd and rdate interop.
mod simple;
/// `socklab transfer`: real PNG and JPEG files between texts, a hostile sender, `--continue`,
/// a Python sender written from docs/PROTOCOLS.md §11, chat, exit codes, 1 GiB in bounded memory.
mod transfer;
