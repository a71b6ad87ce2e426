//! `socklab impair`: a UDP relay that makes the link between two programs lossy, for tests and
//! for teaching (no `tc netem` needed: it runs in user space, needs no root, and the same seed
//! gives the same faults).
//!
//! ```text
//!   client ──▶ relay (--listen) ──[up: loss, dup, reorder, rate, delay, corrupt]──▶ --to
//!   client ◀── relay ◀─────────[down: the same faults, its own seed]────────────── --to
//! ```
//!
//! Whatever comes from `--to` goes back to the last other address that sent to the relay, so
//! two p2p peers each name the relay as `--peer` and the relay's `--to` is one of them. The
//! faults are [`net::impair`](crate::net::impair)'s sans-IO [`Impairment`], one per direction.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::net::impair::{ImpairConfig, ImpairStats, Impairment};
use crate::net::timer::PreciseTimer;
use crate::net::{NetError, clock};

/// What the relay did, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayStats {
    /// From the client to `--to`.
    pub up: Counts,
    /// From `--to` back to the client.
    pub down: Counts,
}

/// One direction's counts (as [`ImpairStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Datagrams that came in.
    pub received: u64,
    /// Datagrams (and copies) sent on.
    pub sent: u64,
    /// Dropped on purpose.
    pub dropped: u64,
    /// Given a second copy.
    pub duplicated: u64,
    /// Held back so that later ones overtook them.
    pub reordered: u64,
    /// One bit flipped.
    pub corrupted: u64,
    /// Dropped because the queue was full (`--limit`; with `--rate`, a sender faster than the
    /// rate fills it).
    pub overflowed: u64,
}

impl From<ImpairStats> for Counts {
    fn from(s: ImpairStats) -> Self {
        Counts {
            received: s.submitted,
            sent: s.released,
            dropped: s.dropped,
            duplicated: s.duplicated,
            reordered: s.reordered,
            corrupted: s.corrupted,
            overflowed: s.overflowed,
        }
    }
}

/// Relays between a client and `to` until `shutdown`, with `up` and `down` faults.
pub async fn run(
    listen: SocketAddr,
    to: SocketAddr,
    up: ImpairConfig,
    down: ImpairConfig,
    shutdown: CancellationToken,
) -> Result<RelayStats, NetError> {
    let sock = super::peer::bind(listen).await?;
    let mut up = Impairment::new(up);
    let mut down = Impairment::new(down);
    let mut client: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65_536];
    // `--delay 10ms` must mean 10 ms, not 10 to 11 (tokio's timers tick in milliseconds).
    let mut timer = PreciseTimer::new().map_err(|e| NetError::Io {
        what: "creating the relay's timer".into(),
        source: e,
    })?;
    loop {
        let deadline = match (up.poll_timeout(), down.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = timer.sleep_until(deadline) => {}
            got = sock.recv_from(&mut buf) => match got {
                Ok((n, from)) if from == to => down.submit(clock::now(), buf[..n].to_vec()),
                Ok((n, from)) => {
                    client = Some(from);
                    up.submit(clock::now(), buf[..n].to_vec());
                }
                // An ICMP error about an earlier datagram (a peer not started yet): UDP goes on.
                Err(e) => tracing::debug!("impair: {e}"),
            },
        }
        let now = clock::now();
        while let Some(d) = up.poll_release(now) {
            let _ = sock.send_to(&d, to).await;
        }
        while let Some(d) = down.poll_release(now) {
            if let Some(c) = client {
                let _ = sock.send_to(&d, c).await;
            }
        }
    }
    Ok(RelayStats {
        up: up.stats().into(),
        down: down.stats().into(),
    })
}
