//! A chat cluster's replication, sans-IO: what one server tells the others, and what it makes
//! of what they tell it.
//!
//! Every server of a cluster keeps the whole chat in its own [`Hub`]: its own clients, and the
//! other servers' clients as *remote* clients. A server passes on the lines that changed the
//! chat (a nickname, a chat line, a move, a topic, a quit) as [`Entry`] values on one shared,
//! ordered log (a Redis stream: see `cluster.rs` and docs/PROTOCOLS.md §8.2), and applies the
//! other servers' entries to its hub as if their clients had typed them here. The hub then
//! delivers to local members what a remote client said; what it would deliver to remote
//! clients is dropped (their own server delivered it).
//!
//! ```text
//!  server A: ann says "hi"   ──Hub::line──▶ local members get it
//!                             └─ Entry{from A, line, client 7, "hi"} ──▶ stream
//!  server B: ◀── Entry ── Replica::apply ──Hub::line(remote 7 = ann)──▶ B's members get it
//! ```
//!
//! After its link to the log was down, a server sends a [`EntryKind::Snap`]shot of its clients;
//! the others compare it with what they knew and apply the difference (joins, leaves, moves,
//! renames), as IRC servers do after a netsplit. Nothing here touches a socket or a clock.

use std::collections::HashMap;
use std::time::Instant;

use super::proto::{ClientId, DEFAULT_ROOM, Hub, Kind, Message, Outcome, check_room};

/// Longest text an entry may carry (a chat line is at most [`super::proto::MAX_TEXT`]).
pub const MAX_TEXT_FIELD: usize = 64 * 1024;
/// Longest snapshot: 100,000 clients at about 80 bytes each.
pub const MAX_SNAPSHOT: usize = 8 * 1024 * 1024;
/// Longest server id.
pub const MAX_SERVER_ID: usize = 64;
/// More joins or leaves than this from one snapshot or one lost server are told in one notice
/// rather than one announcement each (a netsplit of thousands would fill every local client's
/// send queue).
pub const NETSPLIT_QUIET: usize = 10;

/// What an entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A server (re)joined the log; the others answer with their snapshots.
    Hello,
    /// A client took its first nickname (`text`): it is now in the chat, in `#general`.
    Reg,
    /// A client's line that changed the chat (`text`, as the hub takes it).
    Line,
    /// A client left (`text`: why).
    Bye,
    /// Every client of the server, and the topics it knows (`text`: JSON, see [`Snapshot`]).
    Snap,
    /// The server is going away (`text`: why); its clients leave with it.
    Gone,
}

impl EntryKind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Hello => "hello",
            EntryKind::Reg => "reg",
            EntryKind::Line => "line",
            EntryKind::Bye => "bye",
            EntryKind::Snap => "snap",
            EntryKind::Gone => "gone",
        }
    }

    fn parse(s: &[u8]) -> Option<EntryKind> {
        Some(match s {
            b"hello" => EntryKind::Hello,
            b"reg" => EntryKind::Reg,
            b"line" => EntryKind::Line,
            b"bye" => EntryKind::Bye,
            b"snap" => EntryKind::Snap,
            b"gone" => EntryKind::Gone,
            _ => return None,
        })
    }
}

/// One entry of the cluster's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The server that wrote it.
    pub from: String,
    /// What it says.
    pub kind: EntryKind,
    /// The client, as its server numbers it (0 for server-wide entries).
    pub client: u64,
    /// When its server accepted it, µs since the Unix epoch.
    pub time_us: u64,
    /// The nickname, line, reason or snapshot.
    pub text: String,
    /// For a chat line or action: the room and nickname it was said under (a server that joins
    /// later fills its rooms' history from these).
    pub said: Option<(String, String)>,
}

/// Why an entry of the log cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A field is missing.
    #[error("entry without a {0:?} field")]
    Missing(&'static str),
    /// A field is not what it should be.
    #[error("entry with a bad {0:?} field")]
    Bad(&'static str),
    /// A field is longer than its limit.
    #[error("entry whose {0:?} field has more than {1} bytes")]
    TooLong(&'static str, usize),
}

impl Entry {
    /// A server-wide entry.
    pub fn server(from: &str, kind: EntryKind, time_us: u64, text: String) -> Entry {
        Entry {
            from: from.into(),
            kind,
            client: 0,
            time_us,
            text,
            said: None,
        }
    }

    /// The entry's fields, in the order they are written.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("from", self.from.clone()),
            ("kind", self.kind.as_str().to_string()),
            ("client", self.client.to_string()),
            ("time", self.time_us.to_string()),
            ("text", self.text.clone()),
        ];
        if let Some((room, nick)) = &self.said {
            f.push(("room", room.clone()));
            f.push(("nick", nick.clone()));
        }
        f
    }

    /// Reads an entry from its fields (as a stream entry holds them). Unknown fields are
    /// ignored, so later versions may add some.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Entry, EntryError> {
        let mut map: HashMap<&str, &[u8]> = HashMap::new();
        for (k, v) in fields {
            map.insert(k, v);
        }
        let text_of = |name: &'static str, max: usize| -> Result<String, EntryError> {
            let v = map.get(name).ok_or(EntryError::Missing(name))?;
            if v.len() > max {
                return Err(EntryError::TooLong(name, max));
            }
            String::from_utf8(v.to_vec()).map_err(|_| EntryError::Bad(name))
        };
        let num = |name: &'static str| -> Result<u64, EntryError> {
            text_of(name, 20)?
                .parse()
                .map_err(|_| EntryError::Bad(name))
        };
        let kind = EntryKind::parse(map.get("kind").ok_or(EntryError::Missing("kind"))?)
            .ok_or(EntryError::Bad("kind"))?;
        let max = if kind == EntryKind::Snap {
            MAX_SNAPSHOT
        } else {
            MAX_TEXT_FIELD
        };
        let said = match (map.contains_key("room"), map.contains_key("nick")) {
            (true, true) => Some((text_of("room", 64)?, text_of("nick", 64)?)),
            _ => None,
        };
        Ok(Entry {
            from: text_of("from", MAX_SERVER_ID)?,
            kind,
            client: num("client")?,
            time_us: num("time")?,
            text: text_of("text", max)?,
            said,
        })
    }

    /// What a local client's line means for the other servers, if anything: `had_nick` says
    /// whether the client had a nickname before the line, `out` is what the hub made of it.
    pub fn for_line(
        from: &str,
        hub: &Hub,
        client: ClientId,
        had_nick: bool,
        time_us: u64,
        out: &Outcome,
    ) -> Option<Entry> {
        if !out.shared {
            return None;
        }
        let (kind, text) = if had_nick {
            (EntryKind::Line, out.line.clone()?)
        } else {
            (EntryKind::Reg, hub.nick(client)?.to_string())
        };
        let said = out.said.iter().find_map(|m| match &m.kind {
            Kind::Chat { room, nick } | Kind::Action { room, nick } => {
                Some((room.clone(), nick.clone()))
            }
            _ => None,
        });
        Some(Entry {
            from: from.into(),
            kind,
            client: client.0,
            time_us,
            text,
            said,
        })
    }
}

/// A server's clients and topics, as a [`EntryKind::Snap`] entry carries them (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Each client: its id on its server, its nickname, its room.
    pub clients: Vec<(u64, String, String)>,
    /// Each room's topic.
    pub topics: Vec<(String, String)>,
}

impl Snapshot {
    /// This server's snapshot, as an entry.
    pub fn entry(from: &str, hub: &Hub, time_us: u64) -> Entry {
        let snap = Snapshot {
            clients: hub
                .local_clients()
                .into_iter()
                .map(|(id, nick, room)| (id.0, nick, room))
                .collect(),
            topics: hub.topics(),
        };
        let text = serde_json::to_string(&snap).unwrap_or_default();
        Entry::server(from, EntryKind::Snap, time_us, text)
    }
}

/// What applying an entry did.
#[derive(Debug, Default)]
pub struct Applied {
    /// What to deliver to local clients (deliveries to remote ones are for their servers).
    pub outcome: Outcome,
    /// A server said hello: send it this server's snapshot.
    pub answer: bool,
}

/// What one server knows of the others' clients.
#[derive(Debug)]
pub struct Replica {
    me: String,
    /// Server → its client's id there → the id this hub gave it.
    remote: HashMap<String, HashMap<u64, ClientId>>,
}

impl Replica {
    /// Nothing known yet; `me` is this server's id (its own entries are skipped).
    pub fn new(me: &str) -> Self {
        Replica {
            me: me.into(),
            remote: HashMap::new(),
        }
    }

    /// The servers this one has clients from.
    pub fn servers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.remote.keys().cloned().collect();
        v.sort();
        v
    }

    /// How many remote clients this server knows.
    pub fn len(&self) -> usize {
        self.remote.values().map(HashMap::len).sum()
    }

    /// True with no remote client.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies another server's entry to `hub`. `alloc` numbers a new remote client.
    pub fn apply(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        e: &Entry,
        alloc: &mut dyn FnMut() -> ClientId,
    ) -> Applied {
        let mut done = Applied::default();
        if e.from == self.me {
            return done;
        }
        let known = self
            .remote
            .get(&e.from)
            .and_then(|m| m.get(&e.client))
            .copied();
        match e.kind {
            EntryKind::Hello => done.answer = true,
            EntryKind::Reg => {
                if known.is_none() {
                    let id = alloc();
                    let out = self.register(hub, now, &e.from, e.client, id, &e.text, e.time_us);
                    done.outcome = out;
                }
            }
            EntryKind::Line => {
                // A client whose nickname this hub refused (it collided with a local one) or
                // never saw is skipped until the next snapshot.
                if let Some(id) = known.filter(|id| hub.nick(*id).is_some()) {
                    done.outcome = hub.line(now, e.time_us, id, &e.text);
                }
            }
            EntryKind::Bye => {
                if let Some(id) = known {
                    if let Some(m) = self.remote.get_mut(&e.from) {
                        m.remove(&e.client);
                    }
                    done.outcome = hub.disconnect(e.time_us, id, &e.text);
                }
            }
            EntryKind::Snap => {
                // A snapshot that does not parse changes nothing (the server's next one will).
                if let Ok(snap) = serde_json::from_str::<Snapshot>(&e.text) {
                    done.outcome = self.resync(hub, now, &e.from, e.time_us, &snap, alloc);
                }
            }
            EntryKind::Gone => done.outcome = self.drop_server(hub, e.time_us, &e.from, &e.text),
        }
        self.remote.retain(|_, m| !m.is_empty());
        // Deliveries to remote clients belong to their own servers.
        done.outcome
            .deliveries
            .retain(|(to, _)| !hub.is_remote(*to));
        done.outcome.close.clear();
        done
    }

    /// Another server's client `client` took `nick`: it enters this hub as `id`. A nickname
    /// this hub already gave to someone else (possible only after the cluster's Redis lost its
    /// state) is refused: the client stays unknown here.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        server: &str,
        client: u64,
        id: ClientId,
        nick: &str,
        time_us: u64,
    ) -> Outcome {
        hub.connect_remote(now, id);
        let out = hub.line(now, time_us, id, nick);
        if hub.nick(id).is_none() {
            hub.disconnect(time_us, id, "refused");
            return Outcome::default();
        }
        self.remote
            .entry(server.to_string())
            .or_default()
            .insert(client, id);
        out
    }

    /// Every client of `server` leaves (it went away, or stopped renewing its presence).
    pub fn drop_server(&mut self, hub: &mut Hub, wall_us: u64, server: &str, why: &str) -> Outcome {
        let mut out = Outcome::default();
        let gone = self.remote.remove(server).unwrap_or_default();
        let quiet = gone.len() > NETSPLIT_QUIET;
        hub.set_quiet(quiet);
        for id in gone.values() {
            out.merge(hub.disconnect(wall_us, *id, why));
        }
        hub.set_quiet(false);
        if quiet {
            let text = format!("{} users of another server left ({why})", gone.len());
            out.merge(hub.notice_all(wall_us, &text));
        }
        out.deliveries.retain(|(to, _)| !hub.is_remote(*to));
        out
    }

    /// Makes what this hub knows of `server`'s clients what its snapshot says: the ones gone
    /// leave, new ones join, the others take the snapshot's nickname and room. The hub's members
    /// are told as if it happened now (as after an IRC netsplit).
    fn resync(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        server: &str,
        wall_us: u64,
        snap: &Snapshot,
        alloc: &mut dyn FnMut() -> ClientId,
    ) -> Outcome {
        let mut out = Outcome::default();
        let listed: HashMap<u64, (&str, &str)> = snap
            .clients
            .iter()
            .map(|(c, n, r)| (*c, (n.as_str(), r.as_str())))
            .collect();
        let known = self.remote.get(server).cloned().unwrap_or_default();
        let left = known.keys().filter(|c| !listed.contains_key(c)).count();
        let joined = listed.keys().filter(|c| !known.contains_key(c)).count();
        let quiet = left + joined > NETSPLIT_QUIET;
        hub.set_quiet(quiet);
        for (client, id) in &known {
            if !listed.contains_key(client) {
                if let Some(m) = self.remote.get_mut(server) {
                    m.remove(client);
                }
                out.merge(hub.disconnect(wall_us, *id, "gone while the cluster was split"));
            }
        }
        for (client, nick, room) in &snap.clients {
            let id = match known.get(client) {
                Some(id) => *id,
                None => {
                    let id = alloc();
                    out.merge(self.register(hub, now, server, *client, id, nick, wall_us));
                    if hub.nick(id).is_none() {
                        continue;
                    }
                    id
                }
            };
            if hub.nick(id) != Some(nick.as_str()) {
                out.merge(hub.line(now, wall_us, id, &format!("/nick {nick}")));
            }
            let here = hub.room_of(id).unwrap_or_default();
            if !here.eq_ignore_ascii_case(room) && check_room(room).is_ok() {
                let line = if room.eq_ignore_ascii_case(DEFAULT_ROOM) {
                    "/part".to_string()
                } else {
                    format!("/join {room}")
                };
                out.merge(hub.line(now, wall_us, id, &line));
            }
        }
        hub.set_quiet(false);
        if quiet {
            let text = format!(
                "the cluster was split: {joined} users of another server joined, {left} left \
                 (/who lists who is here)"
            );
            out.merge(hub.notice_all(wall_us, &text));
        }
        for (room, topic) in &snap.topics {
            if hub.topic(room).is_none() {
                hub.adopt_topic(room, topic);
            }
        }
        out
    }
}

/// A chat line or action said on another server, as history to keep.
pub fn history_message(e: &Entry) -> Option<(String, Message)> {
    let (room, nick) = e.said.clone()?;
    if e.kind != EntryKind::Line || check_room(&room).is_err() {
        return None;
    }
    let (kind, text) = match e.text.strip_prefix('/') {
        None => (
            Kind::Chat {
                room: room.clone(),
                nick,
            },
            e.text.clone(),
        ),
        Some(rest) if rest.starts_with('/') => (
            Kind::Chat {
                room: room.clone(),
                nick,
            },
            rest.into(),
        ),
        Some(rest) => {
            let (cmd, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !cmd.eq_ignore_ascii_case("me") {
                return None;
            }
            (
                Kind::Action {
                    room: room.clone(),
                    nick,
                },
                arg.trim().into(),
            )
        }
    };
    Some((
        room,
        Message {
            id: 0,
            time_us: e.time_us,
            kind,
            text,
            replayed: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::proto::Settings;

    /// One server of a test cluster: its hub, its replica, its numbering.
    struct Server {
        name: &'static str,
        hub: Hub,
        replica: Replica,
        next: u64,
        now: Instant,
    }

    impl Server {
        fn new(name: &'static str, first_id: u64) -> Self {
            Server {
                name,
                hub: Hub::new(Settings::default()),
                replica: Replica::new(name),
                next: first_id,
                now: crate::net::clock::now(),
            }
        }

        fn connect(&mut self) -> ClientId {
            let id = ClientId(self.next);
            self.next += 1;
            self.hub.connect(self.now, id);
            id
        }

        /// A local client's line: what it delivers here, and what goes on the log.
        fn line(&mut self, id: ClientId, text: &str) -> (Outcome, Option<Entry>) {
            let had = self.hub.nick(id).is_some();
            let out = self.hub.line(self.now, 1_000_000, id, text);
            let e = Entry::for_line(self.name, &self.hub, id, had, 1_000_000, &out);
            (out, e)
        }

        fn apply(&mut self, e: &Entry) -> Applied {
            let next = &mut self.next;
            let mut alloc = || {
                *next += 1;
                ClientId::remote(*next - 1)
            };
            self.replica.apply(&mut self.hub, self.now, e, &mut alloc)
        }
    }

    fn texts(out: &Outcome, to: ClientId) -> Vec<String> {
        out.deliveries
            .iter()
            .filter(|(c, _)| *c == to)
            .map(|(_, m)| m.render())
            .collect()
    }

    #[test]
    fn entries_round_trip_through_their_fields() {
        let e = Entry {
            from: "a1".into(),
            kind: EntryKind::Line,
            client: 7,
            time_us: 1_700_000_000_000_000,
            text: "hello, world".into(),
            said: Some(("#general".into(), "ann".into())),
        };
        let fields = e.fields();
        assert_eq!(fields[0], ("from", "a1".to_string()));
        assert_eq!(fields[1], ("kind", "line".to_string()));
        let back = Entry::from_fields(fields.iter().map(|(k, v)| (*k, v.as_bytes()))).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_field() {
        let ok = |k: &'static str, v: &'static str| (k, v.as_bytes());
        let missing = [ok("from", "a"), ok("kind", "line"), ok("client", "1")];
        assert_eq!(
            Entry::from_fields(missing),
            Err(EntryError::Missing("time"))
        );
        let bad = [
            ok("from", "a"),
            ok("kind", "shout"),
            ok("client", "1"),
            ok("time", "1"),
            ok("text", ""),
        ];
        assert_eq!(Entry::from_fields(bad), Err(EntryError::Bad("kind")));
        let long = "x".repeat(MAX_TEXT_FIELD + 1);
        let fields = [
            ("from", "a".as_bytes()),
            ("kind", b"line".as_slice()),
            ("client", b"1".as_slice()),
            ("time", b"1".as_slice()),
            ("text", long.as_bytes()),
        ];
        assert_eq!(
            Entry::from_fields(fields),
            Err(EntryError::TooLong("text", MAX_TEXT_FIELD))
        );
    }

    #[test]
    fn a_line_on_one_server_reaches_the_members_of_the_other() {
        let mut a = Server::new("a", 1);
        let mut b = Server::new("b", 1000);
        let ann = a.connect();
        let bob = b.connect();
        let (_, reg) = a.line(ann, "ann");
        let reg = reg.expect("a registration is passed on");
        assert_eq!((reg.kind, reg.text.as_str()), (EntryKind::Reg, "ann"));
        b.apply(&reg);
        let (_, reg_b) = b.line(bob, "bob");
        let joined = a.apply(&reg_b.unwrap());
        assert!(texts(&joined.outcome, ann)[0].ends_with("bob joined #general"));
        // Queries are not passed on.
        assert!(a.line(ann, "/who").1.is_none());
        let (_, said) = a.line(ann, "hello bob");
        let said = said.unwrap();
        assert_eq!(said.said, Some(("#general".into(), "ann".into())));
        let got = b.apply(&said);
        assert_eq!(texts(&got.outcome, bob).len(), 1);
        assert!(texts(&got.outcome, bob)[0].ends_with("#general <ann> hello bob"));
        // The sender's own copy is not delivered twice: ann is remote on b.
        assert_eq!(got.outcome.deliveries.len(), 1);
        // A nick held on a is refused on b.
        let eve = b.connect();
        let (out, e) = b.line(eve, "ANN");
        assert!(e.is_none());
        assert!(texts(&out, eve)[0].contains("is taken"));
    }

    #[test]
    fn private_messages_cross_servers_once() {
        let mut a = Server::new("a", 1);
        let mut b = Server::new("b", 1000);
        let ann = a.connect();
        let bob = b.connect();
        let r = a.line(ann, "ann").1.unwrap();
        b.apply(&r);
        let r = b.line(bob, "bob").1.unwrap();
        a.apply(&r);
        let (here, e) = b.line(bob, "/msg ann psst");
        // bob sees his own copy; ann's is for her server.
        assert_eq!(texts(&here, bob).len(), 1);
        let there = a.apply(&e.unwrap());
        assert_eq!(
            texts(&there.outcome, ann),
            vec!["[00:00:01] *bob* -> ann: psst"]
        );
        assert_eq!(there.outcome.deliveries.len(), 1);
    }

    #[test]
    fn a_snapshot_brings_a_server_up_to_date() {
        let mut a = Server::new("a", 1);
        let mut b = Server::new("b", 1000);
        let ann = a.connect();
        let cat = a.connect();
        let bob = b.connect();
        b.line(bob, "bob");
        // b missed everything a did while its link was down.
        a.line(ann, "ann");
        a.line(cat, "cat");
        a.line(cat, "/join #rust");
        a.line(cat, "/topic crabs");
        let snap = Snapshot::entry("a", &a.hub, 2_000_000);
        let got = b.apply(&snap);
        assert!(
            texts(&got.outcome, bob)
                .iter()
                .any(|t| t.ends_with("ann joined #general"))
        );
        assert_eq!(b.hub.members("#general"), vec!["ann", "bob"]);
        assert_eq!(b.hub.members("#rust"), vec!["cat"]);
        assert_eq!(b.hub.topic("#rust"), Some("crabs"));
        // ann quits and cat renames while the link is down again: the next snapshot says so.
        a.hub.disconnect(3_000_000, ann, "quit");
        a.line(cat, "/nick kat");
        let got = b.apply(&Snapshot::entry("a", &a.hub, 4_000_000));
        assert!(
            texts(&got.outcome, bob)
                .iter()
                .any(|t| t.contains("ann left (gone while the cluster was split)"))
        );
        assert_eq!(b.hub.members("#general"), vec!["bob"]);
        assert_eq!(b.hub.members("#rust"), vec!["kat"]);
        // The same snapshot again changes nothing.
        let again = b.apply(&Snapshot::entry("a", &a.hub, 5_000_000));
        assert!(again.outcome.deliveries.is_empty());
        assert_eq!(b.replica.len(), 1);
    }

    #[test]
    fn a_server_that_goes_takes_its_clients_with_it() {
        let mut a = Server::new("a", 1);
        let mut b = Server::new("b", 1000);
        let ann = a.connect();
        let bob = b.connect();
        b.line(bob, "bob");
        let r = a.line(ann, "ann").1.unwrap();
        b.apply(&r);
        assert_eq!(b.replica.servers(), vec!["a"]);
        let gone = Entry::server("a", EntryKind::Gone, 9, "server shutting down".into());
        let got = b.apply(&gone);
        assert!(texts(&got.outcome, bob)[0].ends_with("ann left (server shutting down)"));
        assert!(b.replica.is_empty());
        assert!(b.hub.nick_owner("ann").is_none());
        // Its own entries are skipped.
        assert!(a.apply(&gone).outcome.deliveries.is_empty());
    }

    #[test]
    fn a_netsplit_of_many_is_told_in_one_notice() {
        let mut a = Server::new("a", 1);
        let mut b = Server::new("b", 1000);
        let bob = b.connect();
        b.line(bob, "bob");
        for i in 0..(NETSPLIT_QUIET + 5) {
            let c = a.connect();
            a.line(c, &format!("u{i}"));
        }
        let got = b.apply(&Snapshot::entry("a", &a.hub, 1));
        let to_bob = texts(&got.outcome, bob);
        assert_eq!(to_bob.len(), 1, "{to_bob:?}");
        assert!(to_bob[0].contains("15 users of another server joined, 0 left"));
        assert_eq!(b.hub.members("#general").len(), NETSPLIT_QUIET + 6);
        // A few are still announced one by one.
        let c = a.connect();
        a.line(c, "solo");
        let got = b.apply(&Snapshot::entry("a", &a.hub, 2));
        assert_eq!(texts(&got.outcome, bob).len(), 1);
        assert!(texts(&got.outcome, bob)[0].ends_with("solo joined #general"));
        let gone = b
            .replica
            .drop_server(&mut b.hub, 3, "a", "their server left the cluster");
        assert_eq!(
            texts(&gone, bob),
            vec!["[00:00:00] -!- 16 users of another server left (their server left the cluster)"]
        );
        assert_eq!(b.hub.members("#general"), vec!["bob"]);
    }

    #[test]
    fn history_is_taken_from_chat_lines_only() {
        let mut e = Entry {
            from: "a".into(),
            kind: EntryKind::Line,
            client: 1,
            time_us: 5,
            text: "/me waves".into(),
            said: Some(("#general".into(), "ann".into())),
        };
        let (room, m) = history_message(&e).unwrap();
        assert_eq!(room, "#general");
        assert_eq!(m.render(), "[00:00:00] #general * ann waves");
        e.text = "//etc".into();
        assert_eq!(history_message(&e).unwrap().1.text, "/etc");
        e.said = None;
        assert!(history_message(&e).is_none());
    }
}
