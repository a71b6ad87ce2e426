//! The chat's sans-IO core: nicknames, rooms, commands, history and flood control, with no
//! socket, no clock and no framing. The server driver feeds it what each client said
//! ([`Hub::connect`], [`Hub::line`], [`Hub::disconnect`]) with the time as an argument, and
//! delivers what it returns: a list of [`Delivery`] values, each one message for one client.
//!
//! ```text
//!  client 7: "/join #rust"  ──▶ Hub::line(now, 7, "/join #rust") ──▶ [(7, notice "you joined #rust"),
//!                                                                      (3, notice "carol joined #rust"),
//!                                                                      (7, replayed history …)]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest nickname, in characters.
pub const MAX_NICK: usize = 16;
/// Longest room name, `#` included.
pub const MAX_ROOM: usize = 32;
/// Longest chat line accepted from a client, in bytes (longer ones are refused with an error
/// message; the line is not cut).
pub const MAX_TEXT: usize = 2048;
/// Longest topic, in bytes.
pub const MAX_TOPIC: usize = 256;
/// The room every client starts in.
pub const DEFAULT_ROOM: &str = "#general";
/// Default messages kept per room and replayed on join.
pub const DEFAULT_HISTORY: usize = 50;
/// Most rooms at once: each may keep a history, so their number is bounded (a client cannot
/// make the server's memory grow by creating rooms).
pub const MAX_ROOMS: usize = 1000;
/// Most messages `/history N` replays.
pub const MAX_HISTORY: usize = 1000;

/// A connected client, as the driver names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl ClientId {
    /// The bit that marks the id of another server's client (see [`ClientId::remote`]).
    pub const REMOTE: u64 = 1 << 63;

    /// The id for another server's client numbered `n` here: deliveries to it are for its own
    /// server, and the hub skips it when it fans a room's message out (one bit test per member).
    pub fn remote(n: u64) -> ClientId {
        ClientId(n | Self::REMOTE)
    }

    /// True for an id made by [`ClientId::remote`].
    pub fn is_remote(self) -> bool {
        self.0 & Self::REMOTE != 0
    }
}

/// Per-client flood control: a token bucket (IRC servers' "penalty" model: each message costs
/// one token; tokens come back at `rate` per second up to `burst`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flood {
    /// Messages per second, sustained.
    pub rate: f64,
    /// Messages in a burst.
    pub burst: f64,
}

impl Flood {
    /// Default: 5 messages per second, bursts of 10.
    pub const DEFAULT: Flood = Flood {
        rate: 5.0,
        burst: 10.0,
    };
}

/// What the core needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Messages kept per room (`--history`).
    pub history: usize,
    /// Flood control (`None`: `--flood off`).
    pub flood: Option<Flood>,
    /// The message of the day, sent after the nickname is accepted.
    pub motd: Option<String>,
    /// Most bytes of history one replay may send (each message counted as its text plus
    /// [`REPLAY_OVERHEAD`]): the most recent messages that fit are replayed, and the client is
    /// told how many older ones were left out. The server sets it from its send queue.
    pub replay_budget: usize,
    /// The longest message a client can take in one frame (`fixed:N` framing: N). A chat line,
    /// action or private message whose rendered form is longer is refused with an error, so
    /// that every chat line still reaches the others as one message.
    pub max_rendered: Option<usize>,
}

/// What a replayed message is counted beyond its text: its time, room, nick and framing.
pub const REPLAY_OVERHEAD: usize = 128;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            history: DEFAULT_HISTORY,
            flood: Some(Flood::DEFAULT),
            motd: None,
            replay_budget: 128 * 1024,
            max_rendered: None,
        }
    }
}

/// What kind of message a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A chat line in a room.
    Chat {
        /// The room.
        room: String,
        /// Who said it.
        nick: String,
    },
    /// `/me` in a room.
    Action {
        /// The room.
        room: String,
        /// Who did it.
        nick: String,
    },
    /// A private message (`/msg`), to or from `nick`.
    Private {
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
    },
    /// Something the server says (replies to commands, the welcome, the motd).
    Notice,
    /// A change in the chat that a client sees (a join, a leave, a new nick or topic). It is
    /// shown as a notice with the same text; the structure is for dialects that show these
    /// their own way (IRC's `JOIN`, `PART`, `QUIT`, `NICK`, `TOPIC`).
    Event(Event),
    /// An error in reply to what the client sent.
    Error,
}

/// A change in the chat, as [`Kind::Event`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `nick` came into `room` (to its other members).
    Joined {
        /// The room.
        room: String,
        /// Who.
        nick: String,
    },
    /// The client itself is now in `room` (after its nickname, `/join` or `/part`).
    Entered {
        /// The room, as it was first named.
        room: String,
        /// Its topic then.
        topic: Option<String>,
        /// Who is in it then (the client included), sorted.
        members: Vec<String>,
    },
    /// `nick` went from `room` to another room (to the members of the room it left).
    Moved {
        /// The room it left.
        room: String,
        /// Who.
        nick: String,
        /// Where it went.
        to: String,
    },
    /// `nick` left the chat (`/quit`, closed, dropped), to the members of its room.
    Left {
        /// Its room.
        room: String,
        /// Who.
        nick: String,
        /// Why, as the driver said.
        why: String,
    },
    /// `old` is now called `new` (to its room, and to itself).
    Renamed {
        /// The old nickname.
        old: String,
        /// The new one.
        new: String,
    },
    /// `nick` set the topic of `room` (to everyone in it).
    Topic {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// The new topic.
        topic: String,
    },
}

/// One message for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The server's message id (increasing; replayed history keeps its original id).
    pub id: u32,
    /// When the server accepted it, microseconds since the Unix epoch.
    pub time_us: u64,
    /// What it is.
    pub kind: Kind,
    /// Its text, unchanged from what the sender wrote for chat lines.
    pub text: String,
    /// True for a message replayed from history.
    pub replayed: bool,
}

impl Message {
    /// The message as one line of text, without a line end: `[HH:MM:SS] <nick> text` and so
    /// on. It contains the sender's nickname and the text unchanged.
    pub fn render(&self) -> String {
        let clock = clock_text(self.time_us);
        let mark = if self.replayed { " (history)" } else { "" };
        match &self.kind {
            Kind::Chat { room, nick } => format!("[{clock}]{mark} {room} <{nick}> {}", self.text),
            Kind::Action { room, nick } => format!("[{clock}]{mark} {room} * {nick} {}", self.text),
            Kind::Private { from, to } => format!("[{clock}] *{from}* -> {to}: {}", self.text),
            Kind::Notice | Kind::Event(_) => format!("[{clock}] -!- {}", self.text),
            Kind::Error => format!("[{clock}] !!! {}", self.text),
        }
    }
}

/// `HH:MM:SS` (UTC) of a time in microseconds since the Unix epoch, as messages show it.
pub fn clock_text(time_us: u64) -> String {
    let secs = time_us / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// One message for one client: what the driver delivers. A message for a whole room is one
/// allocation shared by every recipient.
pub type Delivery = (ClientId, Arc<Message>);

/// What the driver must do beyond delivering messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Messages to deliver, in order.
    pub deliveries: Vec<Delivery>,
    /// Clients to disconnect after their messages are delivered (`/quit`).
    pub close: Vec<ClientId>,
    /// The chat lines, actions and private messages said, once each (for a transcript).
    pub said: Vec<Arc<Message>>,
    /// The line changed what every server of a cluster must know (a nick, a room, a topic, a
    /// message for others): a cluster passes it on to the other servers. False for lines that
    /// only got a reply (`/who`, an error).
    pub shared: bool,
    /// When `shared`: the line itself, as the other servers must apply it.
    pub line: Option<String>,
}

impl Outcome {
    /// Adds `other`'s work after this one's.
    pub fn merge(&mut self, other: Outcome) {
        self.deliveries.extend(other.deliveries);
        self.close.extend(other.close);
        self.said.extend(other.said);
        self.shared |= other.shared;
        if other.line.is_some() {
            self.line = other.line;
        }
    }

    fn to(&mut self, client: ClientId, msg: impl Into<Arc<Message>>) {
        self.deliveries.push((client, msg.into()));
    }
}

#[derive(Debug)]
struct Client {
    nick: Option<String>,
    room: String,
    /// What it said with `/quit`, shown to the others when it leaves.
    quit: Option<String>,
    tokens: f64,
    last: Instant,
    /// A client of another server of the cluster: its server checked its flood and lengths,
    /// and this hub only keeps it in the rooms and delivers what it says to local members.
    remote: bool,
}

#[derive(Debug, Default)]
struct Room {
    name: String,
    topic: Option<String>,
    members: BTreeSet<ClientId>,
    history: VecDeque<Arc<Message>>,
}

/// The whole chat: who is connected, under which nick, in which room.
#[derive(Debug)]
pub struct Hub {
    settings: Settings,
    clients: HashMap<ClientId, Client>,
    /// Lower-cased nick → its owner.
    nicks: HashMap<String, ClientId>,
    /// Lower-cased room name → room.
    rooms: BTreeMap<String, Room>,
    next_id: u32,
    /// A nickname (lower case) the cluster says another server holds, for the one call it is
    /// set around (see [`Hub::set_taken_elsewhere`]).
    elsewhere: Option<String>,
    /// Joins and leaves are not announced (a cluster applying a netsplit's worth at once says
    /// it in one notice instead).
    quiet: bool,
}

/// Why a nickname or room name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("a nickname cannot be empty")]
    EmptyNick,
    /// Too long.
    #[error("nickname {0:?} is longer than {MAX_NICK} characters")]
    NickTooLong(String),
    /// Bad characters.
    #[error(
        "nickname {0:?} may use letters, digits and - _ [ ] {{ }} \\ | ^, and must not start \
         with a digit or -"
    )]
    BadNick(String),
    /// Taken (case-insensitive).
    #[error("nickname {0:?} is taken")]
    NickTaken(String),
    /// A bad room name.
    #[error("room {0:?} must start with # and have 1 to 31 letters, digits or - _ . after it")]
    BadRoom(String),
}

/// A token bucket that paces something per connection (the cluster's nickname claims): each
/// [`Pacer::delay`] takes a token, and says how long to wait first when none is left.
#[derive(Debug, Clone)]
pub struct Pacer {
    pace: Flood,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A full bucket at `now`.
    pub fn new(now: Instant, pace: Flood) -> Self {
        Pacer {
            pace,
            tokens: pace.burst,
            last: now,
        }
    }

    /// Takes a token at `now`: zero when one was there, else the wait until it is (the token
    /// is owed meanwhile).
    pub fn delay(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.pace.rate).min(self.pace.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.pace.rate)
        }
    }
}

/// The nickname a registered client's line asks for (`/nick NAME`), if it is one.
pub fn nick_wanted(line: &str) -> Option<&str> {
    let (cmd, rest) = line.strip_prefix('/')?.split_once(char::is_whitespace)?;
    cmd.eq_ignore_ascii_case("nick").then(|| rest.trim())
}

/// Checks a nickname (IRC's rules, RFC 2812 §2.3.1, with a length of 16).
pub fn check_nick(nick: &str) -> Result<(), NameError> {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::EmptyNick);
    };
    if nick.chars().count() > MAX_NICK {
        return Err(NameError::NickTooLong(nick.into()));
    }
    let special = |c: char| "-_[]{}\\|^".contains(c);
    if first.is_ascii_digit() || first == '-' {
        return Err(NameError::BadNick(nick.into()));
    }
    if !nick
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || special(c))
    {
        return Err(NameError::BadNick(nick.into()));
    }
    Ok(())
}

/// Checks a room name: `#` and 1 to 31 letters, digits, `-`, `_` or `.`.
pub fn check_room(room: &str) -> Result<(), NameError> {
    let ok = room.starts_with('#')
        && (2..=MAX_ROOM).contains(&room.len())
        && room[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError::BadRoom(room.into()))
    }
}

/// The commands, for `/help`.
pub const HELP: &[&str] = &[
    "/nick NAME        change your nickname",
    "/join #ROOM       go to a room (it is made if it does not exist)",
    "/part             go back to #general",
    "/msg NICK TEXT    a private message",
    "/me TEXT          an action (* nick TEXT)",
    "/who              who is in your room",
    "/rooms            every room and how many are in it",
    "/topic [TEXT]     show or set your room's topic",
    "/history [N]      the last N messages of your room",
    "/ping             the server answers pong",
    "/pong TOKEN       the answer to the server's PING TOKEN",
    "/quit [TEXT]      leave",
    "/help             this list",
    "A line that starts with // sends the rest as text starting with /.",
];

impl Hub {
    /// An empty chat.
    pub fn new(settings: Settings) -> Self {
        Hub {
            settings,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            rooms: BTreeMap::new(),
            next_id: 1,
            elsewhere: None,
            quiet: false,
        }
    }

    /// Clients connected.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True with no client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Who owns `nick` (compared without regard to case).
    pub fn nick_owner(&self, nick: &str) -> Option<ClientId> {
        self.nicks.get(&nick.to_lowercase()).copied()
    }

    /// True when `nick` belongs to someone other than `me`: a client here, or (as the cluster
    /// said for this call) a client of another server.
    pub fn nick_taken(&self, nick: &str, me: Option<ClientId>) -> bool {
        let key = nick.to_lowercase();
        if self.elsewhere.as_deref() == Some(key.as_str()) {
            return true;
        }
        matches!(self.nicks.get(&key), Some(&owner) if Some(owner) != me)
    }

    /// The cluster's answer for the next call: `nick` is held on another server (`Some`), or
    /// nothing is (`None`). The driver sets it just before handing over a line that claims a
    /// nickname and clears it after, under the same lock.
    pub fn set_taken_elsewhere(&mut self, nick: Option<&str>) {
        self.elsewhere = nick.map(str::to_lowercase);
    }

    /// While `quiet`, joins, moves, leaves and renames are not announced.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// True for a client of another server of the cluster.
    pub fn is_remote(&self, client: ClientId) -> bool {
        client.is_remote() || self.clients.get(&client).is_some_and(|c| c.remote)
    }

    /// This server's own clients that have a nickname: id, nickname, room (for a cluster's
    /// snapshot).
    pub fn local_clients(&self) -> Vec<(ClientId, String, String)> {
        let mut v: Vec<_> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.remote)
            .filter_map(|(id, c)| Some((*id, c.nick.clone()?, c.room.clone())))
            .collect();
        v.sort();
        v
    }

    /// Every room's topic, by room name.
    pub fn topics(&self) -> Vec<(String, String)> {
        self.rooms
            .values()
            .filter_map(|r| Some((r.name.clone(), r.topic.clone()?)))
            .collect()
    }

    /// Sets `room`'s topic without telling anyone (what another server of the cluster already
    /// announced).
    pub fn adopt_topic(&mut self, room: &str, topic: &str) {
        let known = self.rooms.contains_key(&room.to_lowercase());
        if check_room(room).is_ok()
            && topic.len() <= MAX_TOPIC
            && (known || self.rooms.len() < MAX_ROOMS)
        {
            self.room_mut(room).topic = Some(topic.into());
        }
    }

    /// Puts a message said on another server, before this one knew its rooms, into `room`'s
    /// history (a server joining a cluster learns the recent past this way).
    pub fn remember(&mut self, room: &str, msg: Message) {
        let keep = self.settings.history;
        if keep == 0 || check_room(room).is_err() {
            return;
        }
        if !self.rooms.contains_key(&room.to_lowercase()) && self.rooms.len() >= MAX_ROOMS {
            return;
        }
        let mut msg = msg;
        msg.id = self.id();
        let room = self.room_mut(room);
        if room.history.len() == keep {
            room.history.pop_front();
        }
        room.history.push_back(Arc::new(msg));
    }

    /// A notice to every client of this server (the cluster's link went down or came back).
    pub fn notice_all(&mut self, wall_us: u64, text: &str) -> Outcome {
        let mut out = Outcome::default();
        let ids: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| !c.remote && c.nick.is_some())
            .map(|(id, _)| *id)
            .collect();
        let msg = Arc::new(self.notice(wall_us, text.into()));
        for id in ids {
            out.to(id, msg.clone());
        }
        out
    }

    /// The room `client` is in, as it was first named.
    pub fn room_of(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client).map(|c| c.room.as_str())
    }

    /// The nicknames in `room`, sorted.
    pub fn members(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .rooms
            .get(&room.to_lowercase())
            .map(|r| {
                r.members
                    .iter()
                    .filter_map(|m| self.nick(*m).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|n| n.to_lowercase());
        names
    }

    /// The topic of `room`, if it has one.
    pub fn topic(&self, room: &str) -> Option<&str> {
        self.rooms.get(&room.to_lowercase())?.topic.as_deref()
    }

    /// Every room: its name, how many are in it, its topic.
    pub fn rooms(&self) -> Vec<(&str, usize, Option<&str>)> {
        self.rooms
            .values()
            .map(|r| (r.name.as_str(), r.members.len(), r.topic.as_deref()))
            .collect()
    }

    /// The message of the day, if the server has one.
    pub fn motd(&self) -> Option<&str> {
        self.settings.motd.as_deref()
    }

    /// The nickname of `client`, once it has one.
    pub fn nick(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client)?.nick.as_deref()
    }

    /// A new connection. Its first message must be its nickname.
    pub fn connect(&mut self, now: Instant, client: ClientId) {
        let burst = self.settings.flood.map_or(0.0, |f| f.burst);
        self.clients.insert(
            client,
            Client {
                nick: None,
                room: DEFAULT_ROOM.into(),
                quit: None,
                tokens: burst,
                last: now,
                remote: false,
            },
        );
    }

    /// A client of another server of the cluster, which will name itself with its first line
    /// as a local client does. Its server checked flood and lengths already; it is not checked
    /// again here.
    pub fn connect_remote(&mut self, now: Instant, client: ClientId) {
        self.connect(now, client);
        if let Some(c) = self.clients.get_mut(&client) {
            c.remote = true;
        }
    }

    /// A connection ended (`/quit`, the peer closed, an error): the others are told.
    pub fn disconnect(&mut self, wall_us: u64, client: ClientId, why: &str) -> Outcome {
        let mut out = Outcome::default();
        let Some(c) = self.clients.remove(&client) else {
            return out;
        };
        let Some(nick) = c.nick else {
            return out;
        };
        self.nicks.remove(&nick.to_lowercase());
        self.leave_room(&c.room, client);
        let why = c.quit.as_deref().unwrap_or(why);
        let text = format!("{nick} left ({why})");
        let event = Event::Left {
            room: c.room.clone(),
            nick,
            why: why.into(),
        };
        self.announce(&mut out, wall_us, &c.room, event, text, None);
        out
    }

    /// One message from `client`: its nickname if it has none yet, a command, or chat text.
    pub fn line(&mut self, now: Instant, wall_us: u64, client: ClientId, line: &str) -> Outcome {
        let mut out = self.line_inner(now, wall_us, client, line);
        if out.shared {
            out.line = Some(line.to_string());
        }
        out
    }

    fn line_inner(&mut self, now: Instant, wall_us: u64, client: ClientId, line: &str) -> Outcome {
        let mut out = Outcome::default();
        let Some(c) = self.clients.get(&client) else {
            return out;
        };
        if c.nick.is_none() {
            self.register(wall_us, client, line.trim(), &mut out);
            return out;
        }
        if line.is_empty() {
            // An empty line (Enter in nc, an all-NUL fixed record) says nothing.
            return out;
        }
        if line.len() > MAX_TEXT {
            let text = format!(
                "message of {} bytes refused: the limit is {MAX_TEXT}",
                line.len()
            );
            out.to(client, self.error(wall_us, text));
            return out;
        }
        if !self.take_token(now, client) {
            let text = "flood control: too many messages; wait a moment (this one was not sent)";
            out.to(client, self.error(wall_us, text.into()));
            return out;
        }
        match line.strip_prefix('/') {
            Some(rest) if !rest.starts_with('/') => self.command(wall_us, client, rest, &mut out),
            Some(rest) => self.say(wall_us, client, rest, false, &mut out),
            None => self.say(wall_us, client, line, false, &mut out),
        }
        out
    }

    /// Everyone is told the server is going away (graceful shutdown).
    pub fn shutdown(&mut self, wall_us: u64, why: &str) -> Outcome {
        let mut out = Outcome::default();
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            let msg = self.notice(wall_us, format!("server shutting down: {why}"));
            out.to(id, msg);
        }
        out
    }

    fn take_token(&mut self, now: Instant, client: ClientId) -> bool {
        let Some(flood) = self.settings.flood else {
            return true;
        };
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        if c.remote {
            return true;
        }
        let elapsed = now.saturating_duration_since(c.last).as_secs_f64();
        c.tokens = (c.tokens + elapsed * flood.rate).min(flood.burst);
        c.last = now;
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn message(&mut self, wall_us: u64, kind: Kind, text: String) -> Message {
        Message {
            id: self.id(),
            time_us: wall_us,
            kind,
            text,
            replayed: false,
        }
    }

    fn notice(&mut self, wall_us: u64, text: String) -> Message {
        self.message(wall_us, Kind::Notice, text)
    }

    fn error(&mut self, wall_us: u64, text: String) -> Message {
        self.message(wall_us, Kind::Error, text)
    }

    fn register(&mut self, wall_us: u64, client: ClientId, nick: &str, out: &mut Outcome) {
        if let Err(e) = self.claim(client, nick) {
            let text = format!("{e}; send another nickname");
            out.to(client, self.error(wall_us, text));
            return;
        }
        out.shared = true;
        if self.is_remote(client) {
            // Its own server welcomed it.
            self.enter_room(wall_us, client, DEFAULT_ROOM, out);
            return;
        }
        let welcome =
            format!("welcome, {nick}: you are in {DEFAULT_ROOM}; /help lists the commands");
        out.to(client, self.notice(wall_us, welcome));
        if let Some(motd) = self.settings.motd.clone() {
            for line in motd.lines() {
                let msg = self.notice(wall_us, format!("motd: {line}"));
                out.to(client, msg);
            }
        }
        self.enter_room(wall_us, client, DEFAULT_ROOM, out);
    }

    /// Takes `nick` for `client`, releasing its old one.
    fn claim(&mut self, client: ClientId, nick: &str) -> Result<(), NameError> {
        check_nick(nick)?;
        let key = nick.to_lowercase();
        if self.elsewhere.as_deref() == Some(key.as_str()) {
            return Err(NameError::NickTaken(nick.into()));
        }
        match self.nicks.get(&key) {
            Some(&owner) if owner != client => return Err(NameError::NickTaken(nick.into())),
            _ => {}
        }
        let Some(c) = self.clients.get_mut(&client) else {
            return Ok(());
        };
        if let Some(old) = c.nick.replace(nick.into()) {
            self.nicks.remove(&old.to_lowercase());
        }
        self.nicks.insert(key, client);
        Ok(())
    }

    fn room_mut(&mut self, name: &str) -> &mut Room {
        self.rooms
            .entry(name.to_lowercase())
            .or_insert_with(|| Room {
                name: name.into(),
                ..Room::default()
            })
    }

    fn leave_room(&mut self, name: &str, client: ClientId) {
        let key = name.to_lowercase();
        if let Some(room) = self.rooms.get_mut(&key) {
            room.members.remove(&client);
            // An empty room goes, unless it has a history worth keeping.
            if room.members.is_empty() && room.history.is_empty() && room.topic.is_none() {
                self.rooms.remove(&key);
            }
        }
    }

    fn enter_room(&mut self, wall_us: u64, client: ClientId, name: &str, out: &mut Outcome) {
        let nick = self.nick(client).unwrap_or_default().to_string();
        let budget = self.settings.replay_budget;
        let remote = self.is_remote(client);
        let room = self.room_mut(name);
        room.members.insert(client);
        let shown = room.name.clone();
        let topic = room.topic.clone();
        let (replay, older) = if remote {
            (Vec::new(), 0)
        } else {
            recent(&room.history, usize::MAX, budget)
        };
        if let Some(c) = self.clients.get_mut(&client) {
            c.room = shown.clone();
        }
        let joined = format!("{nick} joined {shown}");
        let event = Event::Joined {
            room: shown.clone(),
            nick,
        };
        self.announce(out, wall_us, &shown, event, joined, Some(client));
        if remote {
            // What it sees on entering (members, topic, history) its own server sends it.
            return;
        }
        let here = format!("you are in {shown}");
        let entered = Event::Entered {
            room: shown.clone(),
            topic: self.topic(&shown).map(str::to_string),
            members: self.members(&shown),
        };
        let msg = self.message(wall_us, Kind::Event(entered), here);
        out.to(client, msg);
        if let Some(t) = topic {
            let msg = self.notice(wall_us, format!("topic of {shown}: {t}"));
            out.to(client, msg);
        }
        self.replay(wall_us, client, replay, older, out);
    }

    /// Sends `past` to `client` as replayed messages, after a word on the `older` ones left out.
    fn replay(
        &mut self,
        wall_us: u64,
        client: ClientId,
        past: Vec<Arc<Message>>,
        older: usize,
        out: &mut Outcome,
    ) {
        if older > 0 {
            let note = format!(
                "{older} older messages not replayed: the replay is kept under {} KiB",
                self.settings.replay_budget / 1024
            );
            out.to(client, self.notice(wall_us, note));
        }
        for m in past {
            out.to(client, replayed(&m));
        }
    }

    /// An event, shown as `text`, to everyone in `room` but `except`.
    fn announce(
        &mut self,
        out: &mut Outcome,
        wall_us: u64,
        room: &str,
        event: Event,
        text: String,
        except: Option<ClientId>,
    ) {
        if self.quiet && !matches!(event, Event::Topic { .. }) {
            return;
        }
        let members: Vec<ClientId> = match self.rooms.get(&room.to_lowercase()) {
            Some(r) => r.members.iter().copied().collect(),
            None => return,
        };
        let msg = Arc::new(self.message(wall_us, Kind::Event(event), text));
        // Another server's clients hear it from their own server.
        for m in members
            .into_iter()
            .filter(|&m| Some(m) != except && !m.is_remote())
        {
            out.to(m, msg.clone());
        }
    }

    fn say(&mut self, wall_us: u64, client: ClientId, text: &str, action: bool, out: &mut Outcome) {
        let Some(c) = self.clients.get(&client) else {
            return;
        };
        let (nick, room_name) = (c.nick.clone().unwrap_or_default(), c.room.clone());
        let kind = if action {
            Kind::Action {
                room: room_name.clone(),
                nick,
            }
        } else {
            Kind::Chat {
                room: room_name.clone(),
                nick,
            }
        };
        let msg = Arc::new(self.message(wall_us, kind, text.into()));
        if self.refuse_too_long(wall_us, client, &msg, out) {
            return;
        }
        out.shared = true;
        out.said.push(msg.clone());
        let keep = self.settings.history;
        let room = self.room_mut(&room_name);
        if keep > 0 {
            if room.history.len() == keep {
                room.history.pop_front();
            }
            room.history.push_back(msg.clone());
        }
        let members: Vec<ClientId> = room.members.iter().copied().collect();
        for m in members
            .into_iter()
            .filter(|&m| m != client && !m.is_remote())
        {
            out.to(m, msg.clone());
        }
    }

    /// Refuses (with an error to `client`) a message that would not fit one frame.
    fn refuse_too_long(
        &mut self,
        wall_us: u64,
        client: ClientId,
        msg: &Message,
        out: &mut Outcome,
    ) -> bool {
        let Some(max) = self.settings.max_rendered else {
            return false;
        };
        if self.is_remote(client) {
            return false;
        }
        let len = msg.render().len();
        if len <= max {
            return false;
        }
        let room_for_text = max.saturating_sub(len - msg.text.len());
        let text = format!(
            "message too long for one {max}-byte record: at most {room_for_text} bytes of text \
             here (this one has {})",
            msg.text.len()
        );
        out.to(client, self.error(wall_us, text));
        true
    }

    fn command(&mut self, wall_us: u64, client: ClientId, line: &str, out: &mut Outcome) {
        let (name, rest) = match line.split_once(char::is_whitespace) {
            Some((n, r)) => (n, r.trim()),
            None => (line, ""),
        };
        let reply = |hub: &mut Hub, out: &mut Outcome, text: String| {
            let msg = hub.notice(wall_us, text);
            out.to(client, msg);
        };
        let fail = |hub: &mut Hub, out: &mut Outcome, text: String| {
            let msg = hub.error(wall_us, text);
            out.to(client, msg);
        };
        match name.to_ascii_lowercase().as_str() {
            "nick" => {
                let old = self.nick(client).unwrap_or_default().to_string();
                match self.claim(client, rest) {
                    Err(e) => fail(self, out, e.to_string()),
                    Ok(()) => {
                        out.shared = true;
                        let room = self.clients.get(&client).map(|c| c.room.clone());
                        let text = format!("{old} is now {rest}");
                        let event = Event::Renamed {
                            old,
                            new: rest.into(),
                        };
                        if let Some(room) = room {
                            self.announce(out, wall_us, &room, event.clone(), text, Some(client));
                        }
                        let msg = self.message(
                            wall_us,
                            Kind::Event(event),
                            format!("you are now {rest}"),
                        );
                        out.to(client, msg);
                    }
                }
            }
            "join" => {
                let target = if rest.starts_with('#') {
                    rest.to_string()
                } else {
                    format!("#{rest}")
                };
                if let Err(e) = check_room(&target) {
                    return fail(self, out, e.to_string());
                }
                // (Another server's client went there already: its server counted.)
                if !self.rooms.contains_key(&target.to_lowercase())
                    && self.rooms.len() >= MAX_ROOMS
                    && !self.is_remote(client)
                {
                    return fail(
                        self,
                        out,
                        format!("the server has {MAX_ROOMS} rooms already; join one of them"),
                    );
                }
                self.move_to(wall_us, client, &target, out);
            }
            "part" => self.move_to(wall_us, client, DEFAULT_ROOM, out),
            "msg" => {
                let Some((to, text)) = rest.split_once(char::is_whitespace) else {
                    return fail(self, out, "usage: /msg NICK TEXT".into());
                };
                let Some(&target) = self.nicks.get(&to.to_lowercase()) else {
                    return fail(self, out, format!("no one is called {to:?}"));
                };
                let from = self.nick(client).unwrap_or_default().to_string();
                let to = self.nick(target).unwrap_or_default().to_string();
                let msg =
                    Arc::new(self.message(wall_us, Kind::Private { from, to }, text.trim().into()));
                if self.refuse_too_long(wall_us, client, &msg, out) {
                    return;
                }
                out.shared = true;
                out.said.push(msg.clone());
                out.to(target, msg.clone());
                if target != client {
                    out.to(client, msg);
                }
            }
            "me" => self.say(wall_us, client, rest, true, out),
            "who" => {
                let room = self.clients.get(&client).map(|c| c.room.clone());
                let room = room.unwrap_or_default();
                let names = self.members(&room);
                reply(self, out, format!("in {room}: {}", names.join(" ")));
            }
            "rooms" => {
                let list: Vec<String> = self
                    .rooms
                    .values()
                    .map(|r| format!("{} ({})", r.name, r.members.len()))
                    .collect();
                reply(self, out, format!("rooms: {}", list.join(", ")));
            }
            "topic" => {
                let room = self.clients.get(&client).map(|c| c.room.clone());
                let room = room.unwrap_or_default();
                if rest.is_empty() {
                    let topic = self
                        .rooms
                        .get(&room.to_lowercase())
                        .and_then(|r| r.topic.clone());
                    let text = match topic {
                        Some(t) => format!("topic of {room}: {t}"),
                        None => format!("{room} has no topic"),
                    };
                    return reply(self, out, text);
                }
                if rest.len() > MAX_TOPIC {
                    return fail(self, out, format!("a topic has at most {MAX_TOPIC} bytes"));
                }
                out.shared = true;
                self.room_mut(&room).topic = Some(rest.into());
                let nick = self.nick(client).unwrap_or_default().to_string();
                let text = format!("{nick} set the topic of {room}: {rest}");
                let event = Event::Topic {
                    room: room.clone(),
                    nick,
                    topic: rest.into(),
                };
                self.announce(out, wall_us, &room, event, text, None);
            }
            "history" => {
                let n = if rest.is_empty() {
                    self.settings.history
                } else {
                    match rest.parse::<usize>() {
                        Ok(n) => n.min(MAX_HISTORY),
                        Err(_) => return fail(self, out, "usage: /history [N]".into()),
                    }
                };
                let room = self.clients.get(&client).map(|c| c.room.clone());
                let budget = self.settings.replay_budget;
                let (past, older) = self
                    .rooms
                    .get(&room.unwrap_or_default().to_lowercase())
                    .map(|r| recent(&r.history, n, budget))
                    .unwrap_or_default();
                self.replay(wall_us, client, past, older, out);
            }
            "ping" => reply(self, out, "pong".into()),
            // The answer to the server's ping (see Liveness): hearing it was the point.
            "pong" => {}
            "quit" => {
                let why = if rest.is_empty() { "quit" } else { rest };
                reply(self, out, format!("bye ({why})"));
                if let Some(c) = self.clients.get_mut(&client) {
                    c.quit = Some(why.to_string());
                }
                out.shared = true;
                out.close.push(client);
            }
            "help" => {
                for line in HELP {
                    reply(self, out, (*line).into());
                }
            }
            _ => fail(
                self,
                out,
                format!("unknown command /{name}; /help lists the commands"),
            ),
        }
    }

    fn move_to(&mut self, wall_us: u64, client: ClientId, target: &str, out: &mut Outcome) {
        let Some(c) = self.clients.get(&client) else {
            return;
        };
        let from = c.room.clone();
        if from.eq_ignore_ascii_case(target) {
            let msg = self.notice(wall_us, format!("you are already in {from}"));
            out.to(client, msg);
            return;
        }
        let nick = c.nick.clone().unwrap_or_default();
        out.shared = true;
        self.leave_room(&from, client);
        let text = format!("{nick} went to {target}");
        let event = Event::Moved {
            room: from.clone(),
            nick,
            to: target.into(),
        };
        self.announce(out, wall_us, &from, event, text, None);
        self.enter_room(wall_us, client, target, out);
    }
}

/// A copy of `m` marked as replayed from history.
/// The last `n` messages of `history` that fit `budget` bytes (oldest first), and how many of
/// those `n` did not fit.
fn recent(history: &VecDeque<Arc<Message>>, n: usize, budget: usize) -> (Vec<Arc<Message>>, usize) {
    let wanted = history.len().min(n);
    let mut used = 0usize;
    let mut kept: Vec<Arc<Message>> = Vec::new();
    for m in history.iter().rev().take(wanted) {
        used = used.saturating_add(m.text.len() + REPLAY_OVERHEAD);
        if used > budget {
            break;
        }
        kept.push(m.clone());
    }
    kept.reverse();
    let older = wanted - kept.len();
    (kept, older)
}

fn replayed(m: &Message) -> Message {
    Message {
        replayed: true,
        ..m.clone()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Makes `text` safe to send with a delimiter framing: the server never sends a message that
/// contains its delimiter, so each occurrence is replaced: a space by a no-break space
/// (U+00A0), a `.` by a one-dot leader (U+2024), `\n` by a space, anything else by U+FFFD.
pub fn without_delimiter(text: &str, delim: &[u8]) -> String {
    let Ok(d) = std::str::from_utf8(delim) else {
        return text.replace(|c: char| delim.contains(&(c as u8)), "\u{FFFD}");
    };
    if d.is_empty() || !text.contains(d) {
        return text.to_string();
    }
    let with = match d {
        " " => "\u{00A0}",
        "." => "\u{2024}",
        "\n" | "\r\n" => " ",
        _ => "\u{FFFD}",
    };
    text.replace(d, with)
}

/// How long a flood-limited client waits for one more message (for tests and messages).
pub fn refill_time(flood: Flood) -> Duration {
    Duration::from_secs_f64(1.0 / flood.rate.max(f64::MIN_POSITIVE))
}

/// The server's liveness check, as a client sees it: after `interval` of silence the server
/// sends the notice `PING <token>: …`; a client that says anything within another `interval`
/// (`/pong <token>` is the polite answer, and what `socklab chat join` sends by itself) stays,
/// one that says nothing is disconnected. TCP keepalive finds a vanished host; this finds a
/// client program that hangs with its socket open.
///
/// Sans-IO: the driver says when it heard from the client ([`Liveness::heard`]), sleeps until
/// [`Liveness::poll_timeout`] and then calls [`Liveness::handle_timeout`]. The deadline only
/// moves later, so a driver may keep a timer armed at an older deadline and re-arm it when it
/// fires.
#[derive(Debug, Clone)]
pub struct Liveness {
    interval: Duration,
    last_heard: Instant,
    /// The token of the ping sent and not yet answered, and when it was sent.
    pinged: Option<(u32, Instant)>,
    sent: u32,
}

/// What the driver must do when the liveness timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alive {
    /// Send this notice (a [`Kind::Notice`] message) to the client.
    Ping(String),
    /// The client answered nothing for this long after the ping: disconnect it.
    Dead(Duration),
}

impl Liveness {
    /// Liveness of a client heard from at `now`, pinged after `interval` of silence.
    pub fn new(now: Instant, interval: Duration) -> Self {
        Liveness {
            interval,
            last_heard: now,
            pinged: None,
            sent: 0,
        }
    }

    /// The client sent something (any bytes) at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.pinged = None;
    }

    /// When [`Liveness::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        match self.pinged {
            Some((_, at)) => at + self.interval,
            None => self.last_heard + self.interval,
        }
    }

    /// Called at or after [`Liveness::poll_timeout`]: a ping to send, a dead client, or
    /// nothing yet.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Alive> {
        if now < self.poll_timeout() {
            return None;
        }
        if self.pinged.is_some() {
            return Some(Alive::Dead(self.interval));
        }
        self.sent = self.sent.wrapping_add(1);
        self.pinged = Some((self.sent, now));
        Some(Alive::Ping(ping_text(self.sent, self.interval)))
    }
}

/// The text of a ping notice.
fn ping_text(token: u32, within: Duration) -> String {
    format!(
        "PING {token}: answer /pong {token} (or say anything) within {} or be disconnected",
        crate::net::fmt_duration(within)
    )
}

/// The token of a ping notice, from the message as a client receives it (`[12:00:00] -!- PING
/// 3: …`): what `/pong` answers. `None` for every other message.
pub fn ping_token(rendered: &str) -> Option<&str> {
    let rest = rendered
        .strip_prefix('[')?
        .get(8..)?
        .strip_prefix("] -!- PING ")?;
    let (token, _) = rest.split_once(": answer /pong ")?;
    (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> (Hub, Instant) {
        (Hub::new(Settings::default()), crate::net::clock::now())
    }

    fn join(h: &mut Hub, t: Instant, id: u64, nick: &str) -> Outcome {
        h.connect(t, ClientId(id));
        h.line(t, 0, ClientId(id), nick)
    }

    fn texts(out: &Outcome, to: u64) -> Vec<String> {
        out.deliveries
            .iter()
            .filter(|(c, _)| c.0 == to)
            .map(|(_, m)| m.text.clone())
            .collect()
    }

    #[test]
    fn nicknames_follow_the_rules() {
        for ok in ["alice", "Bob_2", "[x]", "a-b", "z^"] {
            check_nick(ok).unwrap();
        }
        for bad in ["", "2x", "-x", "a b", "é", "seventeen_chars_x", "a:b"] {
            assert!(check_nick(bad).is_err(), "{bad}");
        }
        check_room("#general").unwrap();
        for bad in ["general", "#", "#a b", "#a,b"] {
            assert!(check_room(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_message_is_the_nickname_and_taken_ones_are_refused() {
        let (mut h, t) = hub();
        let out = join(&mut h, t, 1, "alice");
        assert!(texts(&out, 1)[0].starts_with("welcome, alice"));
        let out = join(&mut h, t, 2, "ALICE");
        assert_eq!(out.deliveries[0].1.kind, Kind::Error);
        assert!(texts(&out, 2)[0].contains("taken"), "{out:?}");
        let out = h.line(t, 0, ClientId(2), "bob");
        assert!(texts(&out, 2)[0].starts_with("welcome, bob"));
        assert!(texts(&out, 1).iter().any(|m| m == "bob joined #general"));
    }

    #[test]
    fn a_chat_line_reaches_everyone_else_in_the_room_unchanged() {
        let (mut h, t) = hub();
        join(&mut h, t, 1, "alice");
        join(&mut h, t, 2, "bob");
        join(&mut h, t, 3, "carol");
        h.line(t, 0, ClientId(3), "/join #other");
        let out = h.line(t, 1_700_000_000_000_000, ClientId(1), "héllo, wörld  ");
        assert_eq!(out.deliveries.len(), 1, "{out:?}");
        let (to, msg) = &out.deliveries[0];
        assert_eq!(*to, ClientId(2));
        assert_eq!(msg.text, "héllo, wörld  ");
        assert_eq!(
            out.said,
            std::slice::from_ref(msg),
            "said once, for the transcript"
        );
        assert!(
            msg.render().contains("<alice> héllo, wörld  "),
            "{}",
            msg.render()
        );
    }

    #[test]
    fn history_is_replayed_on_join_and_on_request() {
        let (mut h, t) = hub();
        join(&mut h, t, 1, "alice");
        for i in 0..3 {
            h.line(t, 0, ClientId(1), &format!("line {i}"));
        }
        let out = join(&mut h, t, 2, "bob");
        let replayed: Vec<_> = out
            .deliveries
            .iter()
            .filter(|(c, m)| c.0 == 2 && m.replayed)
            .map(|(_, m)| m.text.as_str())
            .collect();
        assert_eq!(replayed, ["line 0", "line 1", "line 2"]);
        let out = h.line(t, 0, ClientId(2), "/history 2");
        assert_eq!(texts(&out, 2), ["line 1", "line 2"]);
    }

    #[test]
    fn commands_answer_and_unknown_ones_are_errors() {
        let (mut h, t) = hub();
        join(&mut h, t, 1, "alice");
        join(&mut h, t, 2, "bob");
        let out = h.line(t, 0, ClientId(1), "/msg BOB psst");
        assert_eq!(texts(&out, 2), ["psst"]);
        assert_eq!(
            texts(&out, 1),
            ["psst"],
            "the sender sees its own private message"
        );
        let out = h.line(t, 0, ClientId(1), "/who");
        assert_eq!(texts(&out, 1), ["in #general: alice bob"]);
        let out = h.line(t, 0, ClientId(1), "/frobnicate");
        assert_eq!(out.deliveries[0].1.kind, Kind::Error);
        let out = h.line(t, 0, ClientId(1), "/nick al");
        assert_eq!(texts(&out, 2), ["alice is now al"]);
        assert!(
            h.line(t, 0, ClientId(1), "").deliveries.is_empty(),
            "empty says nothing"
        );
        let out = h.line(t, 0, ClientId(1), "//not a command");
        assert_eq!(texts(&out, 2), ["/not a command"]);
        let out = h.line(t, 0, ClientId(2), "/quit gone");
        assert_eq!(out.close, [ClientId(2)]);
        let out = h.disconnect(0, ClientId(2), "gone");
        assert_eq!(texts(&out, 1), ["bob left (gone)"]);
        let out = join(&mut h, t, 3, "bob");
        assert!(
            texts(&out, 3)[0].starts_with("welcome, bob"),
            "the nick is free again"
        );
    }

    #[test]
    fn the_number_of_rooms_is_bounded() {
        let (mut h, t) = hub();
        h.settings.flood = None;
        join(&mut h, t, 1, "alice");
        for i in 0..MAX_ROOMS {
            h.line(t, 0, ClientId(1), &format!("/join #r{i}"));
            h.line(t, 0, ClientId(1), "keep me");
        }
        let out = h.line(t, 0, ClientId(1), "/join #one-more");
        assert_eq!(out.deliveries[0].1.kind, Kind::Error, "{out:?}");
        assert!(h.rooms.len() <= MAX_ROOMS);
    }

    #[test]
    fn flood_control_refuses_past_the_burst_and_refills() {
        let mut h = Hub::new(Settings {
            flood: Some(Flood {
                rate: 2.0,
                burst: 3.0,
            }),
            ..Settings::default()
        });
        let t = crate::net::clock::now();
        join(&mut h, t, 1, "alice");
        join(&mut h, t, 2, "bob");
        let sent = (0..10)
            .filter(|i| {
                !h.line(t, 0, ClientId(1), &format!("{i}")).deliveries[0]
                    .1
                    .kind
                    .eq(&Kind::Error)
            })
            .count();
        assert_eq!(sent, 3, "the burst");
        let later = t + Duration::from_millis(1000);
        let sent = (0..10)
            .filter(|i| {
                !h.line(later, 0, ClientId(1), &format!("{i}")).deliveries[0]
                    .1
                    .kind
                    .eq(&Kind::Error)
            })
            .count();
        assert_eq!(sent, 2, "2 per second");
    }

    #[test]
    fn delimiters_never_leave_in_a_message() {
        assert_eq!(without_delimiter("a b.c", b" "), "a\u{a0}b.c");
        assert_eq!(without_delimiter("a b.c", b"."), "a b\u{2024}c");
        assert_eq!(without_delimiter("a||b", b"||"), "a\u{FFFD}b");
        assert_eq!(without_delimiter("plain", b"."), "plain");
    }

    #[test]
    fn a_silent_client_is_pinged_then_dropped_and_any_word_keeps_it() {
        let t = crate::net::clock::now();
        let i = Duration::from_secs(60);
        let mut l = Liveness::new(t, i);
        assert_eq!(l.poll_timeout(), t + i);
        assert_eq!(l.handle_timeout(t + i - Duration::from_millis(1)), None);
        // Heard at 30 s: the deadline moves, and a timer armed at the old one finds nothing.
        l.heard(t + Duration::from_secs(30));
        assert_eq!(l.handle_timeout(t + i), None);
        assert_eq!(l.poll_timeout(), t + Duration::from_secs(90));
        let ping = match l.handle_timeout(t + Duration::from_secs(90)) {
            Some(Alive::Ping(text)) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ping,
            "PING 1: answer /pong 1 (or say anything) within 1m or be disconnected"
        );
        let rendered = Message {
            id: 0,
            time_us: 0,
            kind: Kind::Notice,
            text: ping,
            replayed: false,
        }
        .render();
        assert_eq!(ping_token(&rendered), Some("1"));
        // Answered: no death, and the next ping has a new token.
        l.heard(t + Duration::from_secs(100));
        assert_eq!(l.handle_timeout(t + Duration::from_secs(150)), None);
        assert!(matches!(
            l.handle_timeout(t + Duration::from_secs(160)),
            Some(Alive::Ping(p)) if p.starts_with("PING 2:")
        ));
        // Not answered within the interval: dead.
        assert_eq!(l.handle_timeout(t + Duration::from_secs(219)), None);
        assert_eq!(
            l.handle_timeout(t + Duration::from_secs(220)),
            Some(Alive::Dead(i))
        );
    }

    #[test]
    fn only_the_servers_ping_notice_has_a_token() {
        assert_eq!(
            ping_token("[12:00:00] -!- PING 42: answer /pong 42 (or say anything) within 2m"),
            Some("42")
        );
        for not in [
            "[12:00:00] #general <bob> -!- PING 4: answer /pong 4",
            "[12:00:00] -!- PING x: answer /pong x",
            "[12:00:00] -!- PING : answer /pong ",
            "-!- PING 4: answer /pong 4",
            "[12:00:00] -!- pong",
            "",
        ] {
            assert_eq!(ping_token(not), None, "{not:?}");
        }
        let (mut h, t) = hub();
        join(&mut h, t, 1, "alice");
        assert!(h.line(t, 0, ClientId(1), "/pong 1").deliveries.is_empty());
    }

    #[test]
    fn a_replay_keeps_the_most_recent_messages_that_fit() {
        let msg = |t: &str| {
            Arc::new(Message {
                id: 1,
                time_us: 0,
                kind: Kind::Notice,
                text: t.into(),
                replayed: false,
            })
        };
        let h: VecDeque<Arc<Message>> = ["a", "bb", "ccc", "dddd"].into_iter().map(msg).collect();
        let texts = |v: &[Arc<Message>]| v.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        let (kept, older) = recent(&h, usize::MAX, usize::MAX);
        assert_eq!(
            (texts(&kept), older),
            (
                vec!["a".into(), "bb".into(), "ccc".into(), "dddd".into()],
                0
            )
        );
        // Room for the last two only: "ccc" and "dddd" cost 3 + 4 + 2 x REPLAY_OVERHEAD.
        let (kept, older) = recent(&h, usize::MAX, 7 + 2 * REPLAY_OVERHEAD);
        assert_eq!(
            (texts(&kept), older),
            (vec!["ccc".into(), "dddd".into()], 2)
        );
        let (kept, older) = recent(&h, 1, usize::MAX);
        assert_eq!((texts(&kept), older), (vec!["dddd".into()], 0));
        let (kept, older) = recent(&h, 3, 0);
        assert_eq!((kept.len(), older), (0, 3));
    }

    #[test]
    fn changes_in_the_chat_come_as_events_with_their_usual_text() {
        let (mut h, t) = hub();
        join(&mut h, t, 1, "alice");
        let out = join(&mut h, t, 2, "bob");
        let events = |out: &Outcome, to: u64| -> Vec<(Event, String)> {
            out.deliveries
                .iter()
                .filter(|(c, _)| c.0 == to)
                .filter_map(|(_, m)| match &m.kind {
                    Kind::Event(e) => Some((e.clone(), m.text.clone())),
                    _ => None,
                })
                .collect()
        };
        let joined = Event::Joined {
            room: "#general".into(),
            nick: "bob".into(),
        };
        assert_eq!(events(&out, 1), [(joined, "bob joined #general".into())]);
        let entered = Event::Entered {
            room: "#general".into(),
            topic: None,
            members: vec!["alice".into(), "bob".into()],
        };
        assert_eq!(events(&out, 2), [(entered, "you are in #general".into())]);
        let out = h.line(t, 0, ClientId(2), "/nick Robert");
        let renamed = Event::Renamed {
            old: "bob".into(),
            new: "Robert".into(),
        };
        assert_eq!(
            events(&out, 1),
            [(renamed.clone(), "bob is now Robert".into())]
        );
        assert_eq!(events(&out, 2), [(renamed, "you are now Robert".into())]);
        let out = h.line(t, 0, ClientId(1), "/topic hello all");
        let topic = Event::Topic {
            room: "#general".into(),
            nick: "alice".into(),
            topic: "hello all".into(),
        };
        let text = "alice set the topic of #general: hello all".to_string();
        assert_eq!(events(&out, 1), [(topic.clone(), text.clone())]);
        assert_eq!(events(&out, 2), [(topic, text)]);
        let out = h.line(t, 0, ClientId(2), "/join #rust");
        let moved = Event::Moved {
            room: "#general".into(),
            nick: "Robert".into(),
            to: "#rust".into(),
        };
        assert_eq!(events(&out, 1), [(moved, "Robert went to #rust".into())]);
        let out = h.disconnect(0, ClientId(1), "quit");
        assert!(out.deliveries.is_empty(), "alice was alone in #general");
        h.line(t, 0, ClientId(2), "/part");
        join(&mut h, t, 3, "carol");
        let out = h.disconnect(0, ClientId(3), "closed");
        let left = Event::Left {
            room: "#general".into(),
            nick: "carol".into(),
            why: "closed".into(),
        };
        assert_eq!(events(&out, 2), [(left, "carol left (closed)".into())]);
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    #[test]
    fn a_pacer_lets_a_burst_through_then_spaces_the_rest() {
        let t = crate::net::clock::now();
        let mut p = Pacer::new(
            t,
            Flood {
                rate: 2.0,
                burst: 3.0,
            },
        );
        for _ in 0..3 {
            assert_eq!(p.delay(t), Duration::ZERO);
        }
        assert_eq!(p.delay(t), Duration::from_millis(500));
        assert_eq!(p.delay(t), Duration::from_millis(1000));
        // Time pays the debt back.
        assert_eq!(p.delay(t + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn the_nickname_a_line_asks_for() {
        assert_eq!(nick_wanted("/nick bob"), Some("bob"));
        assert_eq!(nick_wanted("/NICK  bob "), Some("bob"));
        assert_eq!(nick_wanted("/nickname bob"), None);
        assert_eq!(nick_wanted("nick bob"), None);
        assert_eq!(nick_wanted("/nick"), None);
    }

    #[test]
    fn a_nick_held_elsewhere_is_refused_for_that_call_only() {
        let t = crate::net::clock::now();
        let mut h = Hub::new(Settings::default());
        h.connect(t, ClientId(1));
        h.set_taken_elsewhere(Some("Ann"));
        assert!(h.nick_taken("ANN", Some(ClientId(1))));
        let out = h.line(t, 0, ClientId(1), "ann");
        assert!(!out.shared);
        assert!(out.deliveries[0].1.text.contains("\"ann\" is taken"));
        h.set_taken_elsewhere(None);
        let out = h.line(t, 0, ClientId(1), "ann");
        assert!(out.shared);
        assert_eq!(out.line.as_deref(), Some("ann"));
        assert_eq!(h.nick(ClientId(1)), Some("ann"));
    }

    #[test]
    fn remote_clients_skip_flood_and_get_no_notices() {
        let t = crate::net::clock::now();
        let mut h = Hub::new(Settings::default());
        h.connect_remote(t, ClientId(9));
        h.line(t, 0, ClientId(9), "far");
        assert!(h.is_remote(ClientId(9)));
        // Far past the burst of 10: its own server did the counting.
        for i in 0..50 {
            let out = h.line(t, 0, ClientId(9), &format!("m{i}"));
            assert!(out.shared, "message {i} refused");
        }
        assert!(h.local_clients().is_empty());
        assert!(h.notice_all(0, "x").deliveries.is_empty());
    }
}
