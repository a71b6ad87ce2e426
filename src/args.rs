//! Shared flag groups and value parsers: what `-p`, `-b`, `-t`, `--json` … mean, written once.
//!
//! A leaf module: protocols' `cli.rs` files flatten these groups into their own arguments;
//! this file imports no protocol and no dispatcher, so following a flag from a protocol
//! leads here and then down into [`crate::net`], never back up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use crate::net::guard::GuardConfig;
use crate::net::host::{InputBudget, ListenSpec, Place, Transport};
use crate::net::{self, AllowList, BindOptions, ServeOptions};

/// Flags about output, valid everywhere.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// More log detail on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors on stderr; no per-round status lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Results as JSON lines (also accepted after the subcommand, by the commands whose
    /// output is data or results; the others refuse it).
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    /// The reporter for a command that takes `--json` after its name too.
    pub fn reporter(&self, json: JsonArg) -> crate::report::Reporter {
        crate::report::Reporter::new(self.json || json.json, self.quiet)
    }
}

/// `--json`, for the commands whose output is data or results (servers print logs, and
/// `http get` prints the body, so they do not take it).
#[derive(Debug, Args, Clone, Copy)]
pub struct JsonArg {
    /// Results as JSON lines on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

pub use crate::exit::UsageError;

/// Flags every server takes.
#[derive(Debug, Args, Clone)]
pub struct ServerNetArgs {
    /// Port to listen on (0 picks a free one; the real port is printed).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Address to bind: 127.0.0.1 (loopback, the default), ::1, 0.0.0.0, or :: (IPv4 and
    /// IPv6 on every interface).
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: String,
    /// UDP (datagrams) instead of TCP; with --unix, a Unix datagram socket.
    #[arg(short, long)]
    pub udp: bool,
    /// Listen on a Unix domain socket at PATH instead of a port (a stale socket file left
    /// by a dead server is replaced; a live one or a regular file is not).
    #[arg(long, value_name = "PATH", conflicts_with = "port")]
    pub unix: Option<PathBuf>,
    /// Close a client that sends nothing for this long (e.g. 30s, 5m).
    #[arg(short, long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// listen() backlog: connections the kernel queues before we accept them.
    #[arg(long, default_value_t = net::listen::DEFAULT_BACKLOG, value_name = "N")]
    pub backlog: i32,
    /// Accept only these clients (an address or CIDR network; repeatable). Others are
    /// dropped and logged.
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    pub allow: Vec<IpNet>,
    /// Serve at most N clients at once; more wait in the listen backlog.
    #[arg(long, default_value_t = net::serve::DEFAULT_MAX_CONNS, value_name = "N")]
    pub max_conns: usize,
    /// Most bytes of partial messages buffered across all clients at once (e.g. 256M); a
    /// client whose message would go past it is told so and closed.
    #[arg(long, default_value = "256M", value_parser = parse_size, value_name = "BYTES")]
    pub input_budget: usize,
    /// On Ctrl-C/SIGTERM, give open connections this long to finish (the listening socket
    /// closes at once, so new clients are refused).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    pub trace: bool,
    /// Turn SO_REUSEADDR off for TCP (on by default, so a restarted server can rebind at
    /// once; UDP sockets never set it, so a busy UDP port is refused).
    #[arg(long)]
    pub no_reuseaddr: bool,
}

impl ServerNetArgs {
    /// The host's policy for this server: allow-list, limits, grace, tracing.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            allow: AllowList::new(self.allow.clone()),
            max_conns: self.max_conns,
            grace: self.grace,
            workers: 0,
            trace: self.trace,
            input_budget: InputBudget::new(self.input_budget),
        }
    }

    /// Socket options for binding.
    pub fn bind_options(&self) -> BindOptions {
        BindOptions {
            backlog: self.backlog,
            reuse_addr: !self.no_reuseaddr,
        }
    }

    /// Where to listen: `--unix PATH`, or `--bind`/`--port` with `default_port`; a stream or
    /// a datagram socket as `-u` says.
    pub fn listen_spec(&self, default_port: u16) -> Result<ListenSpec, UsageError> {
        let place = match &self.unix {
            Some(path) => Place::Unix(path.clone()),
            None => {
                let host = self.bind.trim_start_matches('[').trim_end_matches(']');
                if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(UsageError(format!(
                        "--bind takes an address without a port ({:?}); give the port with -p",
                        self.bind
                    )));
                }
                Place::Inet {
                    host: host.to_string(),
                    port: self.port.unwrap_or(default_port),
                }
            }
        };
        Ok(ListenSpec {
            place,
            transport: if self.udp {
                Transport::Datagram
            } else {
                Transport::Stream
            },
            bind: self.bind_options(),
        })
    }
}

/// Flags of the UDP reflection guard (see `net::guard`).
#[derive(Debug, Args, Clone)]
pub struct GuardArgs {
    /// UDP replies per second to one source address. Services whose reply is larger than
    /// the request (chargen, qotd, daytime, time) are amplifiers, so they default to 20;
    /// echo, whose reply is the request, is not limited unless asked.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// UDP replies one source may get in a burst before --rate applies (default 2 x rate).
    #[arg(long, value_name = "N")]
    pub burst: Option<f64>,
}

impl GuardArgs {
    /// The guard for a server, blocking `service_ports` (the ports of every service this
    /// process runs) as sources; `default_rate` applies when `--rate` is not given.
    pub fn config(
        &self,
        default_rate: Option<f64>,
        service_ports: &[u16],
    ) -> Result<GuardConfig, UsageError> {
        let rate = self.rate.or(default_rate);
        let burst = self.burst.or(rate.map(|r| (2.0 * r).max(1.0)));
        if let Some(r) = rate
            && !(r > 0.0 && r.is_finite())
        {
            return Err(UsageError("--rate must be above 0".into()));
        }
        if let Some(b) = burst
            && !(b >= 1.0 && b.is_finite())
        {
            return Err(UsageError("--burst must be at least 1".into()));
        }
        if self.burst.is_some() && rate.is_none() {
            return Err(UsageError("--burst needs --rate".into()));
        }
        Ok(GuardConfig::for_services(
            rate.zip(burst),
            service_ports.iter().copied(),
        ))
    }
}

/// `--bind`'s value as an IP address (brackets around IPv6 allowed, no port).
pub fn bind_ip(bind: &str) -> Result<std::net::IpAddr, UsageError> {
    bind.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            UsageError(format!(
                "--bind takes an IP address without a port, not {bind:?}"
            ))
        })
}

/// A client's address as given (HOST:PORT, [IPV6]:PORT, PORT), or a bare host with
/// `default_port`; a Unix socket address is refused with `no_unix` (the protocol's words).
pub fn inet_endpoint(
    addr: &str,
    default_port: u16,
    no_unix: &str,
) -> Result<net::Endpoint, UsageError> {
    use net::Endpoint;
    if let Ok(e) = addr.parse::<Endpoint>() {
        if matches!(e, Endpoint::Unix(_)) {
            return Err(UsageError(no_unix.into()));
        }
        return Ok(e);
    }
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host.contains('/')
        || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err(UsageError(format!(
            "{addr:?} is not an address (HOST, HOST:PORT, [IPV6]:PORT or PORT)"
        )));
    }
    Ok(Endpoint::Inet {
        host: host.to_string(),
        port: default_port,
    })
}

/// Parses a human duration: `300s`, `5m`, `1.5s`, `200ms`, `1h 30m`; a bare number means
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s:?} is not a duration"));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; try 300s, 5m, 1.5s or 200ms"))?;
    d.try_into()
        .map_err(|_| format!("{s:?} is negative or too large"))
}

/// Parses a byte size: `1024`, `64k`, `16M` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1usize),
        Some((i, _)) => {
            let mult = match s[i..].to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                "b" => 1,
                other => return Err(format!("unknown size unit {other:?}; use k, M or G")),
            };
            (&s[..i], mult)
        }
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; try 1024, 64k or 16M"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Reads a file the operator named with a flag (`http serve --not-found`, `qotd serve
/// --quotes`, `chat serve --motd`), read once at start-up and kept in memory.
///
/// It must be a regular file of at most `max` bytes: `/dev/zero`, a FIFO or `/dev/stdin` would
/// otherwise be read forever (or block) before the server even listens, and a huge file would
/// be held in memory for the server's life. The file is opened without blocking (a FIFO
/// would block the open until a writer came), checked with `fstat` on the open descriptor, and
/// read through a `max + 1` byte window, so a file that grows after the check is still refused.
/// Every failure is a usage error (exit 2), as for any bad flag value.
pub fn read_operator_file(flag: &str, path: &Path, max: u64) -> Result<Vec<u8>, UsageError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let bad = |why: String| UsageError(format!("{flag} {}: {why}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let too_big = || {
        bad(format!(
            "larger than {} bytes, the most this flag reads",
            max
        ))
    };
    if meta.len() > max {
        return Err(too_big());
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| bad(e.to_string()))?;
    if data.len() as u64 > max {
        return Err(too_big());
    }
    Ok(data)
}

/// [`read_operator_file`] for a text file: it must also be UTF-8.
pub fn read_operator_text(flag: &str, path: &Path, max: u64) -> Result<String, UsageError> {
    String::from_utf8(read_operator_file(flag, path, max)?)
        .map_err(|_| UsageError(format!("{flag} {}: not UTF-8 text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 15. `--not-found /dev/zero` read forever before listening.
    #[test]
    fn operator_files_must_be_regular_and_small() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "hello").unwrap();
        assert_eq!(read_operator_file("--x", &small, 5).unwrap(), b"hello");
        let err = read_operator_file("--x", &small, 4).unwrap_err().0;
        assert!(err.contains("larger than 4 bytes"), "{err}");
        for special in ["/dev/zero", "/dev/null"] {
            let err = read_operator_file("--x", Path::new(special), 1 << 20)
                .unwrap_err()
                .0;
            assert_eq!(err, format!("--x {special}: not a regular file"));
        }
        let err = read_operator_file("--x", dir.path(), 1 << 20)
            .unwrap_err()
            .0;
        assert!(err.ends_with("not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Refused at once: the open does not wait for a writer.
        let err = read_operator_file("--x", &fifo, 1 << 20).unwrap_err().0;
        assert!(err.ends_with("not a regular file"), "{err}");
        let missing = read_operator_file("--x", &dir.path().join("nope"), 1).unwrap_err();
        assert!(missing.0.contains("No such file"), "{}", missing.0);
        std::fs::write(&small, [0xff, 0xfe]).unwrap();
        assert!(
            read_operator_text("--x", &small, 10)
                .unwrap_err()
                .0
                .ends_with("not UTF-8 text")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert!(parse_size("12q").is_err());
    }

    #[test]
    fn guard_defaults_follow_the_service() {
        let none = GuardArgs {
            rate: None,
            burst: None,
        };
        let amp = none.config(Some(20.0), &[10013]).unwrap();
        assert_eq!(amp.limit, Some((20.0, 40.0)));
        assert!(amp.blocked_ports.contains(&10013) && amp.blocked_ports.contains(&19));
        assert_eq!(none.config(None, &[3500]).unwrap().limit, None);
        let bad = GuardArgs {
            rate: Some(0.0),
            burst: None,
        };
        assert!(bad.config(None, &[]).is_err());
    }
}
