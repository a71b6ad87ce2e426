//! Drivers for the simple services, on the service host: a [`StreamService`] for TCP and a
//! [`DatagramService`] for UDP (the host applies the reflection guard); all replies come
//! from [`super::proto`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::proto::{self, Quotes, Service};
use crate::net::dgram::DatagramSocket;
use crate::net::guard::GuardConfig;
use crate::net::host::{
    self, Answer, Bound, Conn, Datagram, DatagramCtx, DatagramOptions, DatagramService, Stream,
    StreamService, Transport,
};
use crate::net::serve::ServeSummary;
use crate::net::{NetError, ServeOptions, clock, within};

/// Everything a simple-service server needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host policy (allow-list, limits, grace, `--trace`).
    pub serve: ServeOptions,
    /// Timeout on every read and write.
    pub timeout: Duration,
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
            quotes: Arc::new(Quotes::builtin()),
            guard: GuardConfig::default(),
            tz: jiff::tz::TimeZone::system(),
            daytime: Arc::default(),
        }
    }
}

/// Runs one service on `bound` (TCP or UDP) until `shutdown`.
pub async fn run(
    service: Service,
    bound: Bound,
    cfg: Config,
    shutdown: CancellationToken,
) -> Result<ServeSummary, NetError> {
    if service == Service::Echo {
        // inetd's echo is socklab's echo, with inetd's guard (rate limit included).
        let echo = crate::echo::server::Config {
            serve: cfg.serve.clone(),
            timeout: cfg.timeout,
            guard: cfg.guard.clone(),
            ..crate::echo::server::Config::default()
        };
        return crate::echo::server::run(bound, echo, shutdown).await;
    }
    let opts = cfg.serve.clone();
    let dgram_opts = DatagramOptions {
        allow: cfg.serve.allow.clone(),
        guard: cfg.guard.clone(),
        trace: cfg.serve.trace,
        ..DatagramOptions::default()
    };
    let simple = Arc::new(Simple {
        service,
        cfg,
        cycle: proto::chargen_cycle().into(),
    });
    match bound.transport() {
        Transport::Stream => host::serve_stream(bound, opts, shutdown, simple).await,
        Transport::Datagram => {
            host::serve_datagram(bound, dgram_opts, shutdown, simple).await?;
            Ok(ServeSummary::default())
        }
    }
}

/// One simple service (not echo, which is [`crate::echo`]'s).
struct Simple {
    service: Service,
    cfg: Config,
    /// chargen's 95-line cycle, built once.
    cycle: Arc<[u8]>,
}

impl StreamService for Simple {
    type Error = io::Error;

    fn name(&self) -> &str {
        self.service.name()
    }

    async fn serve<S: Stream>(&self, conn: &mut Conn<S>) -> io::Result<()> {
        let s = &mut conn.io;
        match self.service {
            Service::Discard => discard(s, self.cfg.timeout).await,
            Service::Chargen => chargen(s, &self.cycle, self.cfg.timeout).await,
            _ => {
                let reply = one_shot_reply(self.service, &self.cfg);
                within(self.cfg.timeout, s.write_all(&reply)).await
            }
        }
    }
}

impl DatagramService for Simple {
    fn name(&self) -> &str {
        self.service.name()
    }

    fn answer<D: DatagramSocket>(
        &self,
        _dgram: Datagram<'_, D::Addr>,
        reply: &mut Vec<u8>,
        _ctx: &DatagramCtx<D>,
    ) -> Answer {
        match self.service {
            Service::Discard => Answer::Nothing,
            // RFC 868 asks for an empty datagram; we answer any (nc sends a newline).
            _ => {
                reply.extend_from_slice(&one_shot_reply(self.service, &self.cfg));
                Answer::Reply
            }
        }
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
