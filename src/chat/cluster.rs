//! `chat serve --cluster redis://HOST:PORT`: several chat servers acting as one, through Redis.
//!
//! ```text
//!   server A ──XADD──▶ ┌──────────────── Redis ─────────────────┐ ◀──XADD── server B
//!            ◀─XREAD── │ socklab:chat:log      (stream: entries) │ ──XREAD─▶
//!   claims ──EVAL────▶ │ socklab:chat:nicks    (hash: nick→owner)│ ◀──EVAL── claims
//!   every 5 s ─SET───▶ │ socklab:chat:server:ID (presence, 15 s) │ ◀──SET─── every 5 s
//!                      └─────────────────────────────────────────┘
//! ```
//!
//! Why a stream and not pub/sub: a stream keeps what was written, in one order, with ids. Every
//! server applies the same entries in the same order; a server that joins reads the recent
//! past into its rooms' history; a reconnecting server reads from just after its own `hello`,
//! a precise point in that order, and the others' snapshots (their answers) bring it up to
//! date. Pub/sub has no order across publishers, no past and no position.
//!
//! What the entries mean and how a server applies them is sans-IO, in [`super::replica`]. This
//! module is the link: it connects, reads, writes in order, claims nicknames, renews its
//! presence, and when Redis goes away it tells the users, keeps serving its own clients, and
//! reconnects with backoff; once back it reclaims its nicknames and publishes a snapshot so
//! the others resynchronise (docs/PROTOCOLS.md §8.2).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::proto::{ClientId, Hub, Outcome};
use super::replica::{self, Entry, EntryKind, Replica, Snapshot};
use crate::net::clock;

/// The stream every server writes to and reads.
pub const LOG: &str = "socklab:chat:log";
/// The hash of nicknames (lower case) to their owner, `SERVER:CLIENT`.
pub const NICKS: &str = "socklab:chat:nicks";
/// The prefix of each server's presence key.
pub const SERVER_PREFIX: &str = "socklab:chat:server:";
/// Entries the stream keeps (about; Redis trims whole nodes).
pub const LOG_LEN: usize = 100_000;
/// How often a server renews its presence and checks the others'.
pub const BEAT: Duration = Duration::from_secs(5);
/// How long a presence lasts without renewal: a server silent this long has left, and its
/// nicknames are free.
pub const PRESENCE: Duration = Duration::from_secs(15);
/// The first wait before reconnecting, doubled up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Connecting, and any one command, must finish within this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one XREAD waits for news.
const BLOCK: Duration = Duration::from_secs(2);
/// Bytes of entries waiting to be written past which the link gives up and resynchronises
/// (Redis is far too slow): the snapshot then carries what was dropped.
const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;
/// Most claims for one connection: a burst, then one a second (each is a Redis round trip).
const CLAIM_PACE: super::proto::Flood = super::proto::Flood {
    rate: 1.0,
    burst: 5.0,
};
/// Entries of the log read for history when a server first connects.
const HISTORY_SCAN: usize = 10_000;

/// Takes the nickname `ARGV[1]` for `ARGV[2]` unless a live owner holds it.
const CLAIM: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cur ~= ARGV[2] then
  local sid = string.match(cur, '^([^:]*):')
  if sid and redis.call('EXISTS', ARGV[3] .. sid) == 1 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1";

/// Frees the nickname `ARGV[1]` if `ARGV[2]` holds it.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1";

/// Frees every nickname of server `ARGV[1]` (before it reclaims what it still holds).
const RESET: &str = r"
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n";

/// What the cluster says about a nickname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// It is this client's now.
    Granted,
    /// Another client holds it, on this server or another.
    Taken,
    /// Redis cannot be asked now: only this server's hub decides (reclaimed on reconnection).
    Unchecked,
}

/// What the chat server gives the link.
pub trait Local: Send + Sync + 'static {
    /// Runs `f` on the hub, under its lock.
    fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R;
    /// Delivers to local clients.
    fn deliver(&self, out: Outcome);
    /// A fresh client id (for a remote client).
    fn alloc(&self) -> ClientId;
    /// Closes a local client, telling it why.
    fn kick(&self, client: ClientId, why: &str);
}

/// What the writer does, in order.
#[derive(Debug)]
enum Op {
    Publish(Entry),
    /// A claim, written in order with the releases (an earlier release of the same nickname
    /// by the same client must not undo it); the answer: granted or not.
    Claim {
        nick: String,
        owner: String,
        reply: oneshot::Sender<bool>,
    },
    Release {
        nick: String,
        owner: String,
    },
}

impl Op {
    /// What it counts against [`MAX_PENDING_BYTES`].
    fn cost(&self) -> usize {
        64 + match self {
            Op::Publish(e) => e.text.len(),
            Op::Claim { nick, .. } | Op::Release { nick, .. } => nick.len(),
        }
    }
}

/// The link of one chat server to the cluster.
pub struct Cluster {
    client: redis::Client,
    /// The URL as shown in messages (without a password).
    shown: String,
    /// This server's id in the cluster.
    me: String,
    tx: mpsc::UnboundedSender<Op>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Op>>>,
    /// Bytes queued for the writer, as [`Op::cost`] counts them.
    pending: AtomicUsize,
    /// The queue overflowed: the link must resynchronise.
    behind: AtomicBool,
    /// True while the link is up: entries are queued for Redis only then.
    linked: AtomicBool,
    /// The writer's connection while the link is up (for the goodbye).
    conn: Mutex<Option<MultiplexedConnection>>,
    /// The nicknames each local client holds in Redis.
    held: Mutex<HashMap<ClientId, Vec<String>>>,
}

/// A `redis://` URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad --cluster URL {url:?}: {source}")]
pub struct UrlError {
    url: String,
    source: RedisError,
}

impl Cluster {
    /// A link to the Redis at `url` (nothing is connected yet).
    pub fn new(url: &str) -> Result<Cluster, UrlError> {
        let client = redis::Client::open(url).map_err(|source| UrlError {
            url: url.into(),
            source,
        })?;
        let info = client.get_connection_info();
        let shown = format!("redis://{}", info.addr());
        let (tx, rx) = mpsc::unbounded_channel();
        let me = format!(
            "{:016x}",
            rand::random::<u64>() ^ u64::from(std::process::id())
        );
        Ok(Cluster {
            client,
            shown,
            me,
            tx,
            rx: Mutex::new(Some(rx)),
            pending: AtomicUsize::new(0),
            behind: AtomicBool::new(false),
            linked: AtomicBool::new(false),
            conn: Mutex::new(None),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// This server's id.
    pub fn id(&self) -> &str {
        &self.me
    }

    /// Where Redis is, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn owner(&self, client: ClientId) -> String {
        format!("{}:{}", self.me, client.0)
    }

    fn send(&self, op: Op) {
        if !self.linked.load(Ordering::Acquire) {
            // The snapshot sent on reconnection carries what this would have said; a claim's
            // asker sees its answer dropped (unchecked).
            return;
        }
        let cost = op.cost();
        if self.pending.fetch_add(cost, Ordering::Relaxed) + cost > MAX_PENDING_BYTES {
            self.pending.fetch_sub(cost, Ordering::Relaxed);
            if !self.behind.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    "cluster: more than {} MiB wait for Redis; resynchronising",
                    MAX_PENDING_BYTES >> 20
                );
            }
            return;
        }
        let _ = self.tx.send(op);
    }

    /// Passes a local client's line on to the other servers (call it under the hub's lock, so
    /// entries are written in the order the hub applied them).
    pub fn publish(&self, e: Entry) {
        self.send(Op::Publish(e));
    }

    /// Asks the cluster for `nick` for `client` (whose nickname now is `current`).
    pub async fn claim(&self, client: ClientId, nick: &str, current: Option<&str>) -> Claim {
        if !self.linked.load(Ordering::Acquire) {
            return Claim::Unchecked;
        }
        let key = nick.to_lowercase();
        // Recorded before it is asked: whatever becomes of the answer (a timeout, the client
        // gone meanwhile), the client's releases cover it, and they are written after it.
        let added = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let mine = held.entry(client).or_default();
            let added = !mine.contains(&key);
            if added {
                mine.push(key.clone());
            }
            added
        };
        let (reply, answer) = oneshot::channel();
        self.send(Op::Claim {
            nick: key.clone(),
            owner: self.owner(client),
            reply,
        });
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(true)) => {
                let stale = {
                    let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                    let mine = held.entry(client).or_default();
                    let keep = |n: &String| {
                        *n == key || current.is_some_and(|c| c.eq_ignore_ascii_case(n))
                    };
                    let stale: Vec<String> = mine.iter().filter(|n| !keep(n)).cloned().collect();
                    mine.retain(keep);
                    stale
                };
                for nick in stale {
                    self.send(Op::Release {
                        nick,
                        owner: self.owner(client),
                    });
                }
                Claim::Granted
            }
            Ok(Ok(false)) => {
                if added {
                    let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(mine) = held.get_mut(&client) {
                        mine.retain(|n| *n != key);
                    }
                }
                Claim::Taken
            }
            // The link went down (its reconnection reclaims what the hub holds) or Redis is
            // slow (the claim stays recorded, and is released with the client).
            Ok(Err(_)) | Err(_) => Claim::Unchecked,
        }
    }

    /// A pacer for one connection's claims.
    pub fn claim_pacer(now: std::time::Instant) -> super::proto::Pacer {
        super::proto::Pacer::new(now, CLAIM_PACE)
    }

    /// `client`'s nickname is now `nick` (`None`: it has none yet): the others it held are
    /// freed, after what it said before is written.
    pub fn settle(&self, client: ClientId, nick: Option<&str>) {
        let Some(nick) = nick.map(str::to_lowercase) else {
            return;
        };
        let stale: Vec<String> = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let Some(mine) = held.get_mut(&client) else {
                return;
            };
            let stale = mine.iter().filter(|n| **n != nick).cloned().collect();
            mine.retain(|n| *n == nick);
            stale
        };
        for n in stale {
            self.send(Op::Release {
                nick: n,
                owner: self.owner(client),
            });
        }
    }

    /// `client` left: its nicknames are freed (after its `bye`, which the caller published).
    pub fn release_all(&self, client: ClientId) {
        let mine = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client)
            .unwrap_or_default();
        for nick in mine {
            self.send(Op::Release {
                nick,
                owner: self.owner(client),
            });
        }
    }

    /// Keeps the link up until `shutdown`, then says goodbye to the cluster.
    pub async fn run<L: Local>(&self, local: &L, shutdown: CancellationToken) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut state = LinkState {
            replica: Replica::new(&self.me),
            last_id: None,
            down_since_up: false,
            linked_at: clock::now(),
        };
        let mut backoff = MIN_BACKOFF;
        let mut first_failure = true;
        loop {
            let result = tokio::select! {
                r = self.session(local, &mut rx, &mut state) => r,
                _ = shutdown.cancelled() => break,
            };
            let was_linked = self.linked.swap(false, Ordering::AcqRel);
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
            let e = match result {
                Ok(()) => break,
                Err(e) => e,
            };
            if was_linked {
                // A link that held a while starts over quickly; one that fails as soon as it is
                // up (a Redis that refuses us) keeps backing off.
                if clock::now().saturating_duration_since(state.linked_at) >= BEAT {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(
                    "cluster: lost Redis at {}: {e}; serving this server's clients only, \
                     reconnecting",
                    self.shown
                );
                state.down_since_up = true;
                let out = local.with_hub(|hub| {
                    hub.notice_all(
                        clock::unix_micros(),
                        "cluster link lost: until it is back, messages reach only the users \
                         of this server",
                    )
                });
                local.deliver(out);
            } else if first_failure {
                tracing::warn!(
                    "cluster: cannot reach Redis at {}: {e}; serving this server's clients \
                     only, retrying",
                    self.shown
                );
            } else {
                tracing::debug!("cluster: Redis at {}: {e}", self.shown);
            }
            first_failure = false;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.leave().await;
    }

    /// Tells the cluster this server is going: its clients leave, its nicknames are freed.
    async fn leave(&self) {
        self.linked.store(false, Ordering::Release);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut conn) = conn else { return };
        let gone = Entry::server(
            &self.me,
            EntryKind::Gone,
            clock::unix_micros(),
            "server shutting down".into(),
        );
        let mut pipe = redis::pipe();
        xadd(&mut pipe, &gone);
        pipe.cmd("DEL").arg(format!("{SERVER_PREFIX}{}", self.me));
        pipe.cmd("EVAL")
            .arg(RESET)
            .arg(1)
            .arg(NICKS)
            .arg(&self.me)
            .ignore();
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
    }

    /// One connection to Redis, from connecting to the first error.
    async fn session<L: Local>(
        &self,
        local: &L,
        rx: &mut mpsc::UnboundedReceiver<Op>,
        state: &mut LinkState,
    ) -> Result<(), RedisError> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let mut w = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?;
        let rcfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(BLOCK + COMMAND_TIMEOUT));
        let r = self
            .client
            .get_multiplexed_async_connection_with_config(&rcfg)
            .await?;
        let history_end = match state.last_id {
            None => Some(self.load_history(local, &mut w).await?),
            Some(_) => None,
        };
        let mut beat = redis::pipe();
        beat.cmd("SET")
            .arg(format!("{SERVER_PREFIX}{}", self.me))
            .arg(1)
            .arg("PX")
            .arg(PRESENCE.as_millis() as u64)
            .ignore();
        beat.query_async::<()>(&mut w).await?;
        // Its old claims go (a Redis that did not restart still has them, under client ids
        // that may have left meanwhile), and what its clients hold now is claimed again.
        redis::cmd("EVAL")
            .arg(RESET)
            .arg(1)
            .arg(NICKS)
            .arg(&self.me)
            .query_async::<i64>(&mut w)
            .await?;
        let nicks = local.with_hub(|hub| hub.local_clients());
        let granted = self.claim_all(&mut w, &nicks).await?;
        // Then, under the hub's lock: the clients whose nickname another server's client took
        // meanwhile (two users picked the same one during a split) leave; entries queued while
        // the link was down are dropped (the snapshot carries them); the link is up; and the
        // snapshot is taken. Clients that took a nickname since the list above are claimed
        // after.
        let mut losers = Vec::new();
        let (snap, late, out) = local.with_hub(|hub| {
            let mut out = Outcome::default();
            let wall = clock::unix_micros();
            for ((id, nick, _), ok) in nicks.iter().zip(&granted) {
                if !ok && hub.nick(*id) == Some(nick.as_str()) {
                    out.merge(hub.disconnect(wall, *id, "nickname collision"));
                    losers.push((*id, nick.clone()));
                }
            }
            while let Ok(op) = rx.try_recv() {
                self.pending.fetch_sub(op.cost(), Ordering::Relaxed);
            }
            self.behind.store(false, Ordering::Release);
            self.linked.store(true, Ordering::Release);
            let snap = Snapshot::entry(&self.me, hub, wall);
            let late: Vec<_> = hub
                .local_clients()
                .into_iter()
                .filter(|c| !nicks.contains(c))
                .collect();
            (snap, late, out)
        });
        local.deliver(out);
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for ((id, nick, _), ok) in nicks.iter().zip(&granted) {
                let mine = held.entry(*id).or_default();
                let key = nick.to_lowercase();
                if *ok && !mine.contains(&key) {
                    mine.push(key);
                }
            }
        }
        for (id, nick) in &losers {
            local.kick(
                *id,
                &format!(
                    "nickname collision: {nick} was taken on another server while the cluster \
                     was split; reconnect with another nickname"
                ),
            );
        }
        let hello = Entry::server(
            &self.me,
            EntryKind::Hello,
            clock::unix_micros(),
            String::new(),
        );
        let mut pipe = redis::pipe();
        xadd_id(&mut pipe, &hello);
        xadd(&mut pipe, &snap);
        let (hello_id,): (String,) = pipe.query_async(&mut w).await?;
        // The rare client that took a nickname while the above ran: claimed now, closed if
        // another server's client holds it (its `bye` follows the snapshot that listed it).
        let late_granted = self.claim_all(&mut w, &late).await?;
        for ((id, nick, _), ok) in late.iter().zip(&late_granted) {
            if *ok {
                let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                held.entry(*id).or_default().push(nick.to_lowercase());
            } else {
                local.kick(
                    *id,
                    &format!("nickname collision: {nick} is held on another server"),
                );
            }
        }
        // Where to read from: on the first connection, after the history just read; after an
        // outage, after this server's hello. What the others wrote during the outage is not
        // delivered late as if it were new: their snapshots (answers to the hello) carry
        // where things stand.
        let start = history_end.unwrap_or(hello_id);
        state.last_id = Some(start.clone());
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(w.clone());
        state.linked_at = clock::now();
        if std::mem::take(&mut state.down_since_up) {
            tracing::warn!("cluster: Redis at {} is back; resynchronised", self.shown);
            let out = local.with_hub(|hub| {
                hub.notice_all(
                    clock::unix_micros(),
                    "cluster link restored: messages reach every server again",
                )
            });
            local.deliver(out);
        } else {
            tracing::info!(
                "cluster: linked through Redis at {} as {}",
                self.shown,
                self.me
            );
        }

        let (etx, mut erx) = mpsc::channel(4);
        let reader = tokio::spawn(read_loop(r, start, etx));
        let _reader = AbortOnDrop(reader);
        let mut beat_timer = tokio::time::interval(BEAT);
        beat_timer.tick().await;
        loop {
            tokio::select! {
                got = erx.recv() => {
                    let batch = match got {
                        Some(Ok(b)) => b,
                        Some(Err(e)) => return Err(e),
                        None => return Err(RedisError::from(std::io::Error::other("the reader stopped"))),
                    };
                    self.apply(local, state, batch);
                }
                op = rx.recv() => {
                    let Some(op) = op else { return Ok(()) };
                    let mut ops = vec![op];
                    while ops.len() < 1024 {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    if self.behind.load(Ordering::Acquire) {
                        return Err(RedisError::from(std::io::Error::other(
                            "the link fell too far behind",
                        )));
                    }
                    self.pending
                        .fetch_sub(ops.iter().map(Op::cost).sum(), Ordering::Relaxed);
                    let mut pipe = redis::pipe();
                    let mut replies = Vec::new();
                    for op in ops {
                        match op {
                            Op::Publish(e) => xadd(&mut pipe, &e),
                            Op::Claim { nick, owner, reply } => {
                                claim_cmd(&mut pipe, &nick, &owner);
                                replies.push(reply);
                            }
                            Op::Release { nick, owner } => {
                                pipe.cmd("EVAL")
                                    .arg(RELEASE)
                                    .arg(1)
                                    .arg(NICKS)
                                    .arg(nick)
                                    .arg(owner)
                                    .ignore();
                            }
                        }
                    }
                    let answers: Vec<i64> = pipe.query_async(&mut w).await?;
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(answer == 1);
                    }
                }
                _ = beat_timer.tick() => self.beat(local, state, &mut w).await?,
            }
        }
    }

    /// Claims each client's nickname (one pipeline): granted or not, in order.
    async fn claim_all(
        &self,
        w: &mut MultiplexedConnection,
        clients: &[(ClientId, String, String)],
    ) -> Result<Vec<bool>, RedisError> {
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, nick, _) in clients {
            claim_cmd(&mut pipe, &nick.to_lowercase(), &self.owner(*id));
        }
        let got: Vec<i64> = pipe.query_async(w).await?;
        Ok(got.into_iter().map(|g| g == 1).collect())
    }

    /// Renews this server's presence; the clients of servers whose presence lapsed leave.
    async fn beat<L: Local>(
        &self,
        local: &L,
        state: &mut LinkState,
        w: &mut MultiplexedConnection,
    ) -> Result<(), RedisError> {
        // Just after (re)connecting, the others may not have renewed their presence in this
        // Redis yet (it may have restarted empty): give them a full presence period.
        let servers = if clock::now().saturating_duration_since(state.linked_at) < PRESENCE {
            Vec::new()
        } else {
            state.replica.servers()
        };
        let mut pipe = redis::pipe();
        // GET: the old value, nil if this server's own presence lapsed (it stalled past
        // PRESENCE, or Redis lost its keys without closing the connection): the others have
        // dropped its clients, so it resynchronises.
        pipe.cmd("SET")
            .arg(format!("{SERVER_PREFIX}{}", self.me))
            .arg(1)
            .arg("PX")
            .arg(PRESENCE.as_millis() as u64)
            .arg("GET");
        for s in &servers {
            pipe.cmd("EXISTS").arg(format!("{SERVER_PREFIX}{s}"));
        }
        let mut got: Vec<Value> = pipe.query_async(w).await?;
        if got.first().is_none_or(|v| matches!(v, Value::Nil)) {
            return Err(RedisError::from(std::io::Error::other(
                "this server's presence lapsed",
            )));
        }
        let alive: Vec<i64> = got
            .drain(1..)
            .map(|v| i64::from(matches!(v, Value::Int(1))))
            .collect();
        for (s, alive) in servers.iter().zip(alive) {
            if alive == 0 {
                tracing::warn!(
                    "cluster: server {s} stopped renewing its presence; its clients leave"
                );
                let out = local.with_hub(|hub| {
                    state.replica.drop_server(
                        hub,
                        clock::unix_micros(),
                        s,
                        "their server left the cluster",
                    )
                });
                local.deliver(out);
            }
        }
        Ok(())
    }

    /// Applies what the other servers wrote.
    fn apply<L: Local>(&self, local: &L, state: &mut LinkState, batch: Vec<(String, Fields)>) {
        let mut answer = false;
        let mut out = Outcome::default();
        local.with_hub(|hub| {
            let now = clock::now();
            for (id, fields) in &batch {
                state.last_id = Some(id.clone());
                let e = match Entry::from_fields(
                    fields.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                ) {
                    Ok(e) => e,
                    Err(err) => {
                        tracing::warn!("cluster: skipping log entry {id}: {err}");
                        continue;
                    }
                };
                let mut alloc = || ClientId::remote(local.alloc().0);
                let done = state.replica.apply(hub, now, &e, &mut alloc);
                answer |= done.answer;
                out.merge(done.outcome);
            }
            if answer {
                self.publish(Snapshot::entry(&self.me, hub, clock::unix_micros()));
            }
        });
        local.deliver(out);
    }

    /// Reads the recent past of the log into the rooms' history; returns where to read on.
    async fn load_history<L: Local>(
        &self,
        local: &L,
        w: &mut MultiplexedConnection,
    ) -> Result<String, RedisError> {
        let v: Value = redis::cmd("XREVRANGE")
            .arg(LOG)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(HISTORY_SCAN)
            .query_async(w)
            .await?;
        let mut entries = parse_entries(&v);
        let Some(last) = entries.first().map(|(id, _)| id.clone()) else {
            return Ok("0-0".into());
        };
        entries.reverse();
        local.with_hub(|hub| {
            for (_, fields) in &entries {
                let Ok(e) =
                    Entry::from_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                else {
                    continue;
                };
                if let Some((room, msg)) = replica::history_message(&e) {
                    hub.remember(&room, msg);
                }
            }
        });
        Ok(last)
    }
}

/// What [`Cluster::run`] keeps between connections.
struct LinkState {
    replica: Replica,
    /// The id of the last entry applied (`None`: never connected).
    last_id: Option<String>,
    /// The users were told the link is down.
    down_since_up: bool,
    /// When the link last came up.
    linked_at: std::time::Instant,
}

/// A stream entry's fields.
type Fields = Vec<(String, Vec<u8>)>;

/// What the reader hands over: a batch of entries, or why it stopped.
type Batch = Result<Vec<(String, Fields)>, RedisError>;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the log from after `last`, handing over batches, until an error.
async fn read_loop(mut r: MultiplexedConnection, mut last: String, tx: mpsc::Sender<Batch>) {
    loop {
        let got: Result<Value, RedisError> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1024)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(LOG)
            .arg(&last)
            .query_async(&mut r)
            .await;
        let v = match got {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        // [[LOG, [[id, [field, value, …]], …]]], or nil when nothing came within BLOCK.
        let mut batch = Vec::new();
        if let Value::Array(streams) = &v {
            for s in streams {
                if let Value::Array(kv) = s
                    && let Some(entries) = kv.get(1)
                {
                    batch.extend(parse_entries(entries));
                }
            }
        }
        if let Some((id, _)) = batch.last() {
            last = id.clone();
        }
        if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
            return;
        }
    }
}

/// `[[id, [field, value, …]], …]` as ids and fields; malformed parts are skipped.
fn parse_entries(v: &Value) -> Vec<(String, Fields)> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else { continue };
        let (Some(id), Some(Value::Array(kv))) = (pair.first().and_then(text), pair.get(1)) else {
            continue;
        };
        let mut fields = Vec::with_capacity(kv.len() / 2);
        for f in kv.chunks(2) {
            if let [k, v] = f
                && let (Some(k), Some(v)) = (text(k), bytes(v))
            {
                fields.push((k, v));
            }
        }
        out.push((id, fields));
    }
    out
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

/// `EVAL CLAIM 1 NICKS nick owner SERVER_PREFIX`, its reply kept (1: granted).
fn claim_cmd(pipe: &mut redis::Pipeline, nick: &str, owner: &str) {
    pipe.cmd("EVAL")
        .arg(CLAIM)
        .arg(1)
        .arg(NICKS)
        .arg(nick)
        .arg(owner)
        .arg(SERVER_PREFIX);
}

/// `XADD LOG MAXLEN ~ LOG_LEN * field value …`, its reply (the new entry's id) kept.
fn xadd_id(pipe: &mut redis::Pipeline, e: &Entry) {
    let cmd = pipe
        .cmd("XADD")
        .arg(LOG)
        .arg("MAXLEN")
        .arg("~")
        .arg(LOG_LEN)
        .arg("*");
    for (k, v) in e.fields() {
        cmd.arg(k).arg(v);
    }
}

/// `XADD LOG MAXLEN ~ LOG_LEN * field value …`, its reply ignored.
fn xadd(pipe: &mut redis::Pipeline, e: &Entry) {
    xadd_id(pipe, e);
    pipe.ignore();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_replies_are_read_and_bad_parts_skipped() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Array(vec![
                b("1-0"),
                Value::Array(vec![b("from"), b("a"), b("kind"), b("hello")]),
            ]),
            Value::Int(3),
            Value::Array(vec![b("2-0"), Value::Nil]),
            Value::Array(vec![
                b("3-1"),
                Value::Array(vec![b("text"), b("hi"), b("odd")]),
            ]),
        ]);
        let got = parse_entries(&v);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1[1], ("kind".to_string(), b"hello".to_vec()));
        assert_eq!(
            got[1],
            (
                "3-1".to_string(),
                vec![("text".to_string(), b"hi".to_vec())]
            )
        );
        assert!(parse_entries(&Value::Nil).is_empty());
    }

    #[test]
    fn a_bad_url_is_refused_and_a_password_never_shown() {
        assert!(Cluster::new("http://nope").is_err());
        let c = Cluster::new("redis://:secret@127.0.0.1:7000/").unwrap();
        assert_eq!(c.shown(), "redis://127.0.0.1:7000");
        assert_eq!(c.id().len(), 16);
    }
}
