//! Drivers for the simple services: the TCP handlers run on `net::serve`, the UDP loop applies
//! the reflection guard, and all replies come from [`super::proto`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::proto::{self, Quotes, Service};
use crate::net::guard::{Guard, GuardConfig, Verdict};
use crate::net::serve::{self, ServeSummary};
use crate::net::trace::Direction;
use crate::net::{ConnReport, Metered, NetError, Peer, ServeOptions, Tracer, clock, dgram, within};

/// Everything a simple-service server needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Accept-loop policy.
    pub serve: ServeOptions,
    /// Timeout on every read and write.
    pub timeout: Duration,
    /// `--trace`.
    pub trace: bool,
    /// Quotes for qotd.
    pub quotes: Arc<Quotes>,
    /// The UDP reflection guard.
    pub guard: GuardConfig,
    /// The zone daytime replies are written in.
    pub tz: jiff::tz::TimeZone,
    /// The current second's daytime reply, shared by all connections.
    pub daytime: Arc<DaytimeCache>,
}

/// The daytime line changes once a second, and formatting it (time zone rules, names) costs
/// more than the rest of a request; so it is built once per second and shared.
#[derive(Debug, Default)]
pub struct DaytimeCache {
    current: std::sync::Mutex<Option<(i64, Arc<[u8]>)>>,
}

impl DaytimeCache {
    /// The reply for `now` in `tz`.
    pub fn reply(&self, now: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Vec<u8> {
        let second = now.as_second();
        // A poisoned lock only means another thread panicked mid-update; the value is still
        // a whole reply or None.
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        match &*cur {
            Some((s, line)) if *s == second => line.to_vec(),
            _ => {
                let line: Arc<[u8]> = proto::daytime_reply(&now.to_zoned(tz.clone()))
                    .into_bytes()
                    .into();
                *cur = Some((second, line.clone()));
                line.to_vec()
            }
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            serve: ServeOptions::default(),
            timeout: Duration::from_secs(300),
            trace: false,
            quotes: Arc::new(Quotes::builtin()),
            guard: GuardConfig::default(),
            tz: jiff::tz::TimeZone::system(),
            daytime: Arc::default(),
        }
    }
}

/// Runs one service over TCP on an already bound listener until `shutdown`.
pub async fn run_tcp(
    service: Service,
    listener: TcpListener,
    cfg: Config,
    shutdown: CancellationToken,
) -> ServeSummary {
    if service == Service::Echo {
        let echo = crate::echo::server::Config {
            serve: cfg.serve.clone(),
            timeout: cfg.timeout,
            trace: cfg.trace,
            ..crate::echo::server::Config::default()
        };
        return crate::echo::server::run_stream(listener, echo, shutdown).await;
    }
    let cfg = Arc::new(cfg);
    let cycle: Arc<[u8]> = proto::chargen_cycle().into();
    let opts = cfg.serve.clone();
    serve::serve(listener, opts, shutdown, move |stream, peer, _| {
        let cfg = cfg.clone();
        let cycle = cycle.clone();
        async move {
            let tracer = cfg.trace.then(|| Tracer::new(peer.to_string()));
            let mut s = Metered::new(stream, tracer);
            let result = match service {
                Service::Discard => discard(&mut s, cfg.timeout).await,
                Service::Chargen => chargen(&mut s, &cycle, cfg.timeout).await,
                Service::Echo => unreachable!("handled above"),
                _ => {
                    let reply = one_shot_reply(service, &cfg);
                    within(cfg.timeout, s.write_all(&reply)).await
                }
            };
            report(&s, &peer, result)
        }
    })
    .await
}

fn report<S>(s: &Metered<S>, _peer: &Peer, result: std::io::Result<()>) -> ConnReport {
    ConnReport {
        bytes_in: s.bytes_in(),
        bytes_out: s.bytes_out(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// The reply of the services that answer once (qotd, daytime, time), for TCP and UDP alike.
fn one_shot_reply(service: Service, cfg: &Config) -> Vec<u8> {
    match service {
        Service::Qotd => {
            let i = rand::rng().random_range(0..usize::MAX);
            cfg.quotes.pick(i).as_bytes().to_vec()
        }
        Service::Daytime => {
            let now =
                jiff::Timestamp::try_from(clock::wall()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            cfg.daytime.reply(now, &cfg.tz)
        }
        Service::Time => {
            let secs = clock::wall()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            proto::time_reply(secs).to_vec()
        }
        Service::Chargen => {
            let mut rng = rand::rng();
            let len = rng.random_range(0..=proto::MAX_UDP_CHARGEN);
            proto::chargen_datagram(len, rng.random_range(0..proto::PRINTABLE))
        }
        Service::Echo | Service::Discard => Vec::new(),
    }
}

/// RFC 863: "simply throws away any data it receives".
async fn discard<S: AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    while within(timeout, s.read(&mut buf)).await? > 0 {}
    Ok(())
}

/// RFC 864: "send a continual stream of data ... until the calling user terminates the
/// connection". We write the 95-line cycle over and over, and stop when the client closes
/// (its read side returns end of stream, or a write fails with a reset).
async fn chargen<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    cycle: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(s);
    let writer = async {
        loop {
            within(timeout, wr.write_all(cycle)).await?;
        }
    };
    let reader = async {
        // Anything the client sends is ignored (RFC 864); its end of stream ends the service.
        let mut buf = [0u8; 1024];
        while rd.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let result: std::io::Result<()> = tokio::select! {
        r = writer => r,
        r = reader => r,
    };
    match result {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Counts dropped datagrams and logs them at most once a second.
#[derive(Default)]
struct DropLog {
    pending: u64,
    last_log: Option<std::time::Instant>,
}

impl DropLog {
    fn drop(&mut self, service: Service, from: SocketAddr, why: &str, now: std::time::Instant) {
        self.pending += 1;
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(
                "{service}/udp: dropped {} datagram(s); latest from {from}: {why}",
                self.pending
            );
            self.pending = 0;
            self.last_log = Some(now);
        }
    }
}

/// Runs one service over UDP until `shutdown`, with the reflection guard.
pub async fn run_udp(
    service: Service,
    sock: UdpSocket,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<(), NetError> {
    let mut guard = Guard::new(cfg.guard.clone());
    let mut drops = DropLog::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let got = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = dgram::recv_udp(&sock, &mut buf) => r,
        };
        let got = match got {
            Ok(g) => g,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                return Err(NetError::Io {
                    what: format!("receiving a {service} datagram"),
                    source: e,
                });
            }
        };
        let from = got.from;
        let now = clock::now();
        let tracer = cfg.trace.then(|| Tracer::new(from.to_string()));
        if let Some(t) = &tracer {
            t.event(Direction::Recv, &buf[..got.copied]);
        }
        if !cfg.serve.allow.allows(from.ip()) {
            drops.drop(service, from, "not in the --allow list", now);
            continue;
        }
        if service == Service::Discard {
            continue;
        }
        match guard.check(from, now) {
            Verdict::Allow => {}
            Verdict::PortZero => {
                drops.drop(service, from, "source port 0", now);
                continue;
            }
            Verdict::ServicePort(p) => {
                drops.drop(
                    service,
                    from,
                    &format!("source port {p} is a simple service's (a loop)"),
                    now,
                );
                continue;
            }
            Verdict::RateLimited => {
                drops.drop(service, from, "rate limit for this source", now);
                continue;
            }
        }
        let reply = match service {
            Service::Echo if got.truncated() => {
                drops.drop(
                    service,
                    from,
                    &format!("{}-byte datagram, larger than the buffer", got.size),
                    now,
                );
                continue;
            }
            Service::Echo => buf[..got.copied].to_vec(),
            // RFC 868 asks for an empty datagram; we answer any (nc sends a newline).
            _ => one_shot_reply(service, &cfg),
        };
        if let Some(t) = &tracer {
            t.event(Direction::Send, &reply);
        }
        if let Err(e) = sock.send_to(&reply, from).await {
            tracing::warn!("{service}/udp: cannot reply to {from}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daytime_cache_follows_the_second() {
        let cache = DaytimeCache::default();
        let tz = jiff::tz::TimeZone::UTC;
        let t: jiff::Timestamp = "2026-11-21T21:04:07.100Z".parse().unwrap();
        let a = cache.reply(t, &tz);
        let b = cache.reply("2026-11-21T21:04:07.900Z".parse().unwrap(), &tz);
        let c = cache.reply("2026-11-21T21:04:08Z".parse().unwrap(), &tz);
        assert_eq!(a, b);
        assert_eq!(
            String::from_utf8(c).unwrap(),
            "Saturday, November 21, 2026 21:04:08-UTC (+00:00)\r\n"
        );
    }
}
