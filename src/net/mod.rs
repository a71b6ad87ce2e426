//! The socket plumbing every protocol shares, written once.
//!
//! - [`addr`]: the address syntax (`HOST:PORT`, `[V6]:PORT`, `PORT`, `unix:/PATH`).
//! - [`host`]: the service host: a `ListenSpec` becomes a bound, announced socket;
//!   `serve_stream` and `serve_datagram` run a protocol's service on it with every policy
//!   below applied once (allow-list, limits, guard, trace, input budget, graceful close).
//! - [`listen`]: binding with socket2 (`SO_REUSEADDR`, backlog, dual-stack `::`), stale Unix
//!   socket files.
//! - [`serve`]: the accept loop with allow-list, connection limit, logging and graceful
//!   shutdown.
//! - [`dgram`]: datagram receive that detects truncation (`MSG_TRUNC`).
//! - [`driver`]: runs a timer-driven sans-IO protocol core over a datagram socket.
//! - [`impair`]: a seeded lossy link (loss, duplication, reordering, delay, corruption) and a
//!   socket wrapper that puts it around any datagram socket.
//! - [`trace`]: `--trace` hex dumps and byte counting.
//! - [`shutdown`]: Ctrl-C / SIGTERM.
//! - [`stamp`]: kernel packet timestamps (`SO_TIMESTAMPING`), DSCP, `ppoll` waits.
//! - [`timer`]: a timerfd-backed timer with microsecond precision (tokio's has 1 ms ticks).
//! - [`clock`]: the only place that reads the clock.
//! - [`error`]: errors a person can act on.
//!
//! Protocol drivers (`echo::server`, …) use these and nothing lower.

pub mod addr;
pub mod allow;
pub mod blocking;
pub mod clock;
pub mod connect;
pub mod dgram;
pub mod driver;
pub mod error;
pub mod exchange;
pub mod guard;
pub mod host;
pub mod impair;
pub mod listen;
pub mod sendfile;
pub mod serve;
pub mod shutdown;
pub mod stamp;
pub mod timer;
pub mod trace;

use std::future::Future;
use std::io;
use std::time::Duration;

pub use addr::Endpoint;
pub use allow::AllowList;
pub use error::NetError;
pub use listen::BindOptions;
pub use sendfile::SendFile;
pub use serve::{ConnReport, Peer, ServeOptions};
pub use trace::{Metered, Tracer};

/// Formats a duration for people: `250µs`, `1.5ms`, `2.003s`, `30s`, `5m`.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{}ms", trim_zeros(format!("{:.3}", us as f64 / 1e3)))
    } else if d.as_secs() >= 60 && d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{}s", trim_zeros(format!("{:.3}", d.as_secs_f64())))
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Runs an I/O future with a deadline; running out of time is an `io::ErrorKind::TimedOut`
/// error, so a read from a silent peer always ends.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(res) => res,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no progress for {}", fmt_duration(limit)),
        )),
    }
}

/// Writes the `listening on ADDR` line (the first line every server prints on stdout, so a
/// test or script can learn the real port when it asked for port 0).
pub fn announce(addr: impl std::fmt::Display) -> io::Result<()> {
    use std::io::Write;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

/// The soft limit on open files of this process.
pub fn fd_limit() -> io::Result<u64> {
    nofile().map(|lim| lim.rlim_cur)
}

/// RLIMIT_NOFILE, soft and hard.
fn nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises the soft limit on open files to the hard limit, as servers that hold thousands of
/// clients must (the usual soft limit, 1024, would stop an echo server at about 1000 clients
/// with "Too many open files"). Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = nofile()?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_micros(250)), "250µs");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_duration(Duration::from_millis(2003)), "2.003s");
        assert_eq!(fmt_duration(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn fd_limit_only_goes_up() {
        let before = raise_fd_limit().unwrap();
        assert!(raise_fd_limit().unwrap() >= before);
        assert!(before >= 1024, "soft limit {before}");
    }

    #[tokio::test]
    async fn within_times_out() {
        let err = within(
            Duration::from_millis(10),
            std::future::pending::<io::Result<()>>(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
