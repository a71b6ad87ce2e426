//! The chat's IRC dialect, sans-IO: what an IRC client's commands do to the [`Hub`], and how
//! the hub's messages look to it.
//!
//! A connection whose first line starts with `NICK`, `USER`, `CAP` or `PASS` ([`is_irc_start`])
//! is an IRC client. Its [`Session`] registers it (`CAP LS/REQ/END`, `NICK`, `USER`, then
//! 001–005 and the MOTD numerics), turns each later command into what the hub understands (a
//! chat line, `/join`, `/msg`, `/nick`, `/topic`, `/quit`), answers the queries the hub has no
//! words for (`NAMES`, `WHO`, `WHOIS`, `LIST`, `MODE`, `PING`) from the hub's state, and renders
//! every hub [`Message`] as IRC lines ([`Session::render`]): a chat line becomes `PRIVMSG`, a
//! join `JOIN`, a rename `NICK`, and so on. Rooms are IRC channels, so an IRC user and an `nc`
//! user in `#general` see each other.
//!
//! One difference from IRC servers: the hub keeps each client in exactly one room, as the
//! course's chat does. `JOIN #rust` therefore leaves the room you were in (you see your own
//! `PART`), and `PART` takes you back to `#general`.
//!
//! ```text
//!  NICK ana / USER ana 0 * :Ana      ──▶ Session::handle ──▶ 001…005, 375/372/376
//!                                                         ──▶ Hub::line("ana") ──▶ Outcome
//!  PRIVMSG #general :hi              ──▶ Hub::line("hi")  ──▶ others: "[t] #general <ana> hi"
//!                                                              IRC peers: ":ana!ana@socklab PRIVMSG #general :hi"
//! ```

use std::time::Instant;

use bytes::BytesMut;

use super::irc::{self, Message as Line};
use super::proto::{self, ClientId, Event, Hub, Kind, Message, Outcome};

/// The server's name in prefixes and numerics.
pub const SERVER: &str = "socklab";
/// The host part of every user's prefix (`nick!nick@socklab`): the chat does not show
/// addresses.
pub const HOST: &str = "socklab";
/// The IRCv3 capabilities offered.
pub const CAPS: &[&str] = &["message-tags", "server-time"];

/// Whether a connection's first line makes it an IRC client: `NICK`, `USER`, `CAP` or `PASS`
/// (any case) followed by a space. A line user may still be called `nick` or `cap`: a nickname
/// alone has no space after it.
pub fn is_irc_start(line: &[u8]) -> bool {
    let Some(space) = line.iter().position(|b| *b == b' ') else {
        return false;
    };
    let word = &line[..space];
    ["NICK", "USER", "CAP", "PASS"]
        .iter()
        .any(|c| word.eq_ignore_ascii_case(c.as_bytes()))
}

/// One IRC client's state.
#[derive(Debug, Default)]
pub struct Session {
    /// The nickname asked for before registration.
    nick: Option<String>,
    /// `USER` was sent.
    user: bool,
    /// Between `CAP LS`/`CAP REQ` and `CAP END`: registration waits.
    negotiating: bool,
    /// `server-time` was acknowledged.
    server_time: bool,
    /// `message-tags` was acknowledged.
    message_tags: bool,
    /// 001 was sent: the hub knows the client.
    registered: bool,
    /// User mode `+i` was asked for (nothing here depends on it; `MODE nick` shows it).
    invisible: bool,
}

/// What one command from the client produced.
#[derive(Debug, Default)]
pub struct Step {
    /// IRC lines for this client, to write before the hub's deliveries.
    pub replies: BytesMut,
    /// What the hub did: messages for every client concerned (this one's included; render
    /// them with [`Session::render`]) and clients to close.
    pub outcome: Outcome,
    /// The client asked to leave (`QUIT`): close after writing.
    pub quit: bool,
}

impl Session {
    /// A new IRC session, not registered yet.
    pub fn new() -> Self {
        Session::default()
    }

    /// True when the client asked for IRCv3 `server-time`.
    pub fn server_time(&self) -> bool {
        self.server_time
    }

    /// True once the client is registered (it has a nickname in the hub).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Handles one IRC message from client `me`.
    pub fn handle(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        wall_us: u64,
        me: ClientId,
        msg: &Line<'_>,
    ) -> Step {
        let mut replies = BytesMut::new();
        let mut outcome = Outcome::default();
        let mut quit = false;
        let nick = hub.nick(me).unwrap_or("*").to_string();
        let p = &msg.params;
        let cmd = msg.command_upper();
        let out = &mut replies;
        match cmd.as_ref() {
            "CAP" => self.cap(out, &nick, p),
            "PASS" => {}
            "NICK" if !self.registered => match p.first() {
                None => numeric(out, irc::ERR_NONICKNAMEGIVEN, "*", &[], "No nickname given"),
                Some(n) => match check_free(hub, n, None) {
                    Err((code, text)) => numeric(out, code, "*", &[n], &text),
                    Ok(()) => self.nick = Some((*n).to_string()),
                },
            },
            "USER" if !self.registered => {
                if p.len() < 4 {
                    numeric(
                        out,
                        irc::ERR_NEEDMOREPARAMS,
                        "*",
                        &["USER"],
                        "Not enough parameters",
                    );
                } else {
                    self.user = true;
                }
            }
            "PING" => {
                let token = p.first().copied().unwrap_or(SERVER);
                line(out, &[], Some(SERVER), "PONG", &[SERVER, token]);
            }
            "PONG" => {}
            "QUIT" => {
                let why = p.first().copied().unwrap_or("quit");
                if self.registered {
                    outcome = hub.line(now, wall_us, me, &format!("/quit {why}"));
                    // ERROR is the last thing an IRC client reads: the hub's "bye" notice is for
                    // the other dialects.
                    outcome.deliveries.retain(|(to, _)| *to != me);
                }
                let bye = format!("Closing link: {nick} ({why})");
                line(out, &[], None, "ERROR", &[&bye]);
                quit = true;
            }
            _ if !self.registered => {
                numeric(
                    out,
                    irc::ERR_NOTREGISTERED,
                    "*",
                    &[],
                    "You have not registered",
                );
            }
            "USER" => {
                numeric(
                    out,
                    irc::ERR_ALREADYREGISTRED,
                    &nick,
                    &[],
                    "You may not reregister",
                );
            }
            "NICK" => match p.first() {
                None => numeric(
                    out,
                    irc::ERR_NONICKNAMEGIVEN,
                    &nick,
                    &[],
                    "No nickname given",
                ),
                Some(n) => match check_free(hub, n, Some(me)) {
                    Err((code, text)) => numeric(out, code, &nick, &[n], &text),
                    Ok(()) => outcome = hub.line(now, wall_us, me, &format!("/nick {n}")),
                },
            },
            "PRIVMSG" | "NOTICE" => {
                let quiet = cmd == "NOTICE";
                match (p.first(), p.get(1)) {
                    (None, _) if !quiet => {
                        let text = format!("No recipient given ({cmd})");
                        numeric(out, irc::ERR_NORECIPIENT, &nick, &[], &text);
                    }
                    (Some(_), None) | (Some(_), Some(&"")) if !quiet => {
                        numeric(out, irc::ERR_NOTEXTTOSEND, &nick, &[], "No text to send");
                    }
                    (Some(to), Some(text)) if !text.is_empty() => {
                        self.say(
                            hub,
                            now,
                            wall_us,
                            me,
                            &nick,
                            to,
                            text,
                            quiet,
                            out,
                            &mut outcome,
                        );
                    }
                    _ => {}
                }
            }
            "JOIN" => match p.first() {
                None => numeric(
                    out,
                    irc::ERR_NEEDMOREPARAMS,
                    &nick,
                    &["JOIN"],
                    "Not enough parameters",
                ),
                Some(&"0") => self.go(
                    hub,
                    now,
                    wall_us,
                    me,
                    &nick,
                    proto::DEFAULT_ROOM,
                    out,
                    &mut outcome,
                ),
                Some(list) => {
                    // One room at a time: the first channel of a list.
                    let room = list.split(',').next().unwrap_or_default();
                    if proto::check_room(room).is_err() {
                        numeric(
                            out,
                            irc::ERR_NOSUCHCHANNEL,
                            &nick,
                            &[room],
                            "No such channel",
                        );
                    } else if !hub
                        .room_of(me)
                        .is_some_and(|r| r.eq_ignore_ascii_case(room))
                    {
                        self.go(hub, now, wall_us, me, &nick, room, out, &mut outcome);
                    }
                }
            },
            "PART" => match p.first() {
                None => numeric(
                    out,
                    irc::ERR_NEEDMOREPARAMS,
                    &nick,
                    &["PART"],
                    "Not enough parameters",
                ),
                Some(room) => {
                    let current = hub.room_of(me).unwrap_or_default().to_string();
                    if !current.eq_ignore_ascii_case(room) {
                        numeric(
                            out,
                            irc::ERR_NOTONCHANNEL,
                            &nick,
                            &[room],
                            "You're not on that channel",
                        );
                    } else if current.eq_ignore_ascii_case(proto::DEFAULT_ROOM) {
                        let text = "you are always in one room: JOIN another to leave #general";
                        line(out, &[], Some(SERVER), "NOTICE", &[&nick, text]);
                    } else {
                        self.go(
                            hub,
                            now,
                            wall_us,
                            me,
                            &nick,
                            proto::DEFAULT_ROOM,
                            out,
                            &mut outcome,
                        );
                    }
                }
            },
            "NAMES" => {
                let room = match p.first() {
                    Some(r) => r.split(',').next().unwrap_or_default().to_string(),
                    None => hub.room_of(me).unwrap_or_default().to_string(),
                };
                names(out, &nick, &room, &hub.members(&room));
            }
            "TOPIC" => match (p.first(), p.get(1)) {
                (None, _) => numeric(
                    out,
                    irc::ERR_NEEDMOREPARAMS,
                    &nick,
                    &["TOPIC"],
                    "Not enough parameters",
                ),
                (Some(room), None) => match hub.topic(room) {
                    Some(t) => numeric(out, irc::RPL_TOPIC, &nick, &[room], t),
                    None => numeric(out, irc::RPL_NOTOPIC, &nick, &[room], "No topic is set"),
                },
                (Some(room), Some(topic)) => {
                    if hub
                        .room_of(me)
                        .is_some_and(|r| r.eq_ignore_ascii_case(room))
                    {
                        outcome = hub.line(now, wall_us, me, &format!("/topic {topic}"));
                    } else {
                        numeric(
                            out,
                            irc::ERR_NOTONCHANNEL,
                            &nick,
                            &[room],
                            "You're not on that channel",
                        );
                    }
                }
            },
            "WHO" => {
                let mask = p.first().copied().unwrap_or("*");
                let who: Vec<(String, String)> = if irc::is_channel(mask) {
                    hub.members(mask)
                        .into_iter()
                        .map(|n| (mask.to_string(), n))
                        .collect()
                } else {
                    hub.nick_owner(mask)
                        .and_then(|c| Some((hub.room_of(c)?.to_string(), hub.nick(c)?.to_string())))
                        .into_iter()
                        .collect()
                };
                for (room, n) in &who {
                    let real = format!("0 {n}");
                    numeric(
                        out,
                        irc::RPL_WHOREPLY,
                        &nick,
                        &[room, n, HOST, SERVER, n, "H"],
                        &real,
                    );
                }
                numeric(out, irc::RPL_ENDOFWHO, &nick, &[mask], "End of WHO list");
            }
            "WHOIS" if p.is_empty() => {
                numeric(
                    out,
                    irc::ERR_NONICKNAMEGIVEN,
                    &nick,
                    &[],
                    "No nickname given",
                );
            }
            "WHOIS" => {
                let target = p[p.len() - 1];
                match hub.nick_owner(target) {
                    None => numeric(
                        out,
                        irc::ERR_NOSUCHNICK,
                        &nick,
                        &[target],
                        "No such nick/channel",
                    ),
                    Some(c) => {
                        let n = hub.nick(c).unwrap_or_default().to_string();
                        let room = hub.room_of(c).unwrap_or_default().to_string();
                        numeric(out, irc::RPL_WHOISUSER, &nick, &[&n, &n, HOST, "*"], &n);
                        numeric(
                            out,
                            irc::RPL_WHOISSERVER,
                            &nick,
                            &[&n, SERVER],
                            "socklab chat",
                        );
                        numeric(out, irc::RPL_WHOISCHANNELS, &nick, &[&n], &room);
                    }
                }
                numeric(
                    out,
                    irc::RPL_ENDOFWHOIS,
                    &nick,
                    &[target],
                    "End of WHOIS list",
                );
            }
            "LIST" => {
                for (room, count, topic) in hub.rooms() {
                    let count = count.to_string();
                    numeric(
                        out,
                        irc::RPL_LIST,
                        &nick,
                        &[room, &count],
                        topic.unwrap_or(""),
                    );
                }
                numeric(out, irc::RPL_LISTEND, &nick, &[], "End of LIST");
            }
            "MODE" => match (p.first(), p.get(1)) {
                (None, _) => numeric(
                    out,
                    irc::ERR_NEEDMOREPARAMS,
                    &nick,
                    &["MODE"],
                    "Not enough parameters",
                ),
                (Some(t), None) if irc::is_channel(t) => {
                    line(
                        out,
                        &[],
                        Some(SERVER),
                        irc::RPL_CHANNELMODEIS,
                        &[&nick, t, "+"],
                    );
                }
                // A query of the lists (bans, exceptions, invites; irssi asks for bans after
                // each JOIN): they are empty here. RFC 2812 §3.2.3 wants the end reply even so.
                (Some(t), Some(modes))
                    if irc::is_channel(t)
                        && p.len() == 2
                        && !modes.trim_start_matches('+').is_empty()
                        && modes
                            .trim_start_matches('+')
                            .chars()
                            .all(|c| "beI".contains(c)) =>
                {
                    for c in modes.trim_start_matches('+').chars() {
                        let (code, text) = match c {
                            'b' => (irc::RPL_ENDOFBANLIST, "End of channel ban list"),
                            'e' => (irc::RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
                            _ => (irc::RPL_ENDOFINVITELIST, "End of channel invite list"),
                        };
                        numeric(out, code, &nick, &[t], text);
                    }
                }
                (Some(t), Some(_)) if irc::is_channel(t) => {
                    numeric(
                        out,
                        irc::ERR_CHANOPRIVSNEEDED,
                        &nick,
                        &[t],
                        "Channel modes cannot be changed here",
                    );
                }
                (Some(t), _) if t.eq_ignore_ascii_case(&nick) => match p.get(1) {
                    None => {
                        let modes = if self.invisible { "+i" } else { "+" };
                        line(out, &[], Some(SERVER), irc::RPL_UMODEIS, &[&nick, modes]);
                    }
                    // `i` (invisible), the one user mode 004 lists: `+i`, `-i`, `+i-i`…
                    Some(m) if m.chars().all(|c| "+-i".contains(c)) && m.contains('i') => {
                        let mut on = true;
                        for c in m.chars() {
                            match c {
                                '+' => on = true,
                                '-' => on = false,
                                _ => self.invisible = on,
                            }
                        }
                        let change = if self.invisible { "+i" } else { "-i" };
                        line(
                            out,
                            &[],
                            Some(&user_prefix(&nick)),
                            "MODE",
                            &[&nick, change],
                        );
                    }
                    Some(_) => numeric(
                        out,
                        irc::ERR_UMODEUNKNOWNFLAG,
                        &nick,
                        &[],
                        "Unknown MODE flag",
                    ),
                },
                (Some(t), _) => {
                    numeric(
                        out,
                        irc::ERR_USERSDONTMATCH,
                        &nick,
                        &[t],
                        "Cannot change mode for other users",
                    );
                }
            },
            _ => numeric(
                out,
                irc::ERR_UNKNOWNCOMMAND,
                &nick,
                &[msg.command],
                "Unknown command",
            ),
        }
        if !self.registered
            && !quit
            && let Some(n) = self.nick.clone()
            && self.user
            && !self.negotiating
        {
            self.register(hub, now, wall_us, me, &n, out, &mut outcome);
        }
        Step {
            replies,
            outcome,
            quit,
        }
    }

    /// `CAP`: the IRCv3 capability negotiation (version 302, the two capabilities in [`CAPS`]).
    fn cap(&mut self, out: &mut BytesMut, nick: &str, p: &[&str]) {
        match p.first().map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("LS") => {
                self.negotiating = !self.registered;
                line(
                    out,
                    &[],
                    Some(SERVER),
                    "CAP",
                    &[nick, "LS", &CAPS.join(" ")],
                );
            }
            Some("REQ") => {
                self.negotiating = !self.registered;
                let asked = p.get(1).copied().unwrap_or_default();
                let all_known = asked
                    .split_whitespace()
                    .all(|c| CAPS.contains(&c.trim_start_matches('-')));
                if all_known {
                    for c in asked.split_whitespace() {
                        let on = !c.starts_with('-');
                        match c.trim_start_matches('-') {
                            "server-time" => self.server_time = on,
                            "message-tags" => self.message_tags = on,
                            _ => {}
                        }
                    }
                }
                let verb = if all_known { "ACK" } else { "NAK" };
                line(out, &[], Some(SERVER), "CAP", &[nick, verb, asked]);
            }
            Some("LIST") => {
                let mut on = Vec::new();
                if self.message_tags {
                    on.push("message-tags");
                }
                if self.server_time {
                    on.push("server-time");
                }
                line(
                    out,
                    &[],
                    Some(SERVER),
                    "CAP",
                    &[nick, "LIST", &on.join(" ")],
                );
            }
            Some("END") => self.negotiating = false,
            _ => {
                let sub = p.first().copied().unwrap_or_default();
                numeric(out, "410", nick, &[sub], "Invalid CAP command");
            }
        }
    }

    /// Registration: the hub takes the nickname; the client gets 001–005 and the MOTD. The
    /// hub's welcome and motd notices are left out (the numerics say it the IRC way).
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        wall_us: u64,
        me: ClientId,
        nick: &str,
        out: &mut BytesMut,
        outcome: &mut Outcome,
    ) {
        let mut said = hub.line(now, wall_us, me, nick);
        if hub.nick(me).is_none() {
            // Taken between NICK and now is impossible under one lock; a refused nick was
            // answered when it came. Ask again.
            self.nick = None;
            numeric(
                out,
                irc::ERR_NICKNAMEINUSE,
                "*",
                &[nick],
                "Nickname is already in use",
            );
            return;
        }
        self.registered = true;
        let welcome = format!("Welcome to the socklab chat, {nick}!{nick}@{HOST}");
        numeric(out, irc::RPL_WELCOME, nick, &[], &welcome);
        let host = format!(
            "Your host is {SERVER}, running socklab {}",
            env!("CARGO_PKG_VERSION")
        );
        numeric(out, irc::RPL_YOURHOST, nick, &[], &host);
        numeric(
            out,
            irc::RPL_CREATED,
            nick,
            &[],
            "This server was created to teach sockets",
        );
        let version = env!("CARGO_PKG_VERSION");
        line(
            out,
            &[],
            Some(SERVER),
            irc::RPL_MYINFO,
            &[nick, SERVER, version, "i", "nt"],
        );
        let len = proto::MAX_NICK.to_string();
        let isupport = [
            "CASEMAPPING=ascii".to_string(),
            "CHANTYPES=#".to_string(),
            format!("NICKLEN={len}"),
            format!("CHANNELLEN={}", proto::MAX_ROOM),
            format!("TOPICLEN={}", proto::MAX_TOPIC),
            "NETWORK=socklab".to_string(),
        ];
        let mut params: Vec<&str> = isupport.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        let mut all = vec![nick];
        all.extend(params);
        line(out, &[], Some(SERVER), irc::RPL_ISUPPORT, &all);
        match hub.motd() {
            None => numeric(out, irc::ERR_NOMOTD, nick, &[], "MOTD File is missing"),
            Some(motd) => {
                let start = format!("- {SERVER} Message of the day -");
                numeric(out, irc::RPL_MOTDSTART, nick, &[], &start);
                for l in motd.lines() {
                    numeric(out, irc::RPL_MOTD, nick, &[], &format!("- {l}"));
                }
                numeric(out, irc::RPL_ENDOFMOTD, nick, &[], "End of MOTD command");
            }
        }
        said.deliveries
            .retain(|(to, m)| *to != me || m.kind != Kind::Notice);
        *outcome = said;
    }

    /// A chat line, action or private message.
    #[allow(clippy::too_many_arguments)]
    fn say(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        wall_us: u64,
        me: ClientId,
        nick: &str,
        to: &str,
        text: &str,
        quiet: bool,
        out: &mut BytesMut,
        outcome: &mut Outcome,
    ) {
        let body = match text.strip_prefix("\u{1}ACTION ") {
            Some(a) => format!("/me {}", a.trim_end_matches('\u{1}')),
            // The hub reads a leading `/` as a command; `//` says "the text starts with /".
            None if text.starts_with('/') => format!("/{text}"),
            None => text.to_string(),
        };
        if irc::is_channel(to) {
            if hub.room_of(me).is_some_and(|r| r.eq_ignore_ascii_case(to)) {
                *outcome = hub.line(now, wall_us, me, &body);
            } else if !quiet {
                numeric(
                    out,
                    irc::ERR_CANNOTSENDTOCHAN,
                    nick,
                    &[to],
                    "Cannot send to channel (join it first)",
                );
            }
        } else if hub.nick_owner(to).is_some() {
            let body = body
                .strip_prefix("/me ")
                .map_or(body.clone(), |a| format!("\u{1}ACTION {a}\u{1}"));
            *outcome = hub.line(now, wall_us, me, &format!("/msg {to} {body}"));
        } else if !quiet {
            numeric(
                out,
                irc::ERR_NOSUCHNICK,
                nick,
                &[to],
                "No such nick/channel",
            );
        }
    }

    /// Moves the client to `room`: its own `PART` first (the hub tells only the others).
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn go(
        &mut self,
        hub: &mut Hub,
        now: Instant,
        wall_us: u64,
        me: ClientId,
        nick: &str,
        room: &str,
        out: &mut BytesMut,
        outcome: &mut Outcome,
    ) {
        let from = hub.room_of(me).unwrap_or_default().to_string();
        *outcome = hub.line(now, wall_us, me, &format!("/join {room}"));
        if hub
            .room_of(me)
            .is_some_and(|r| !r.eq_ignore_ascii_case(&from))
        {
            let who = user_prefix(nick);
            line(
                out,
                &[],
                Some(&who),
                "PART",
                &[&from, &format!("went to {room}")],
            );
        }
    }

    /// How hub message `m` looks to this client, whose nickname is `me`: appended to `out` as
    /// IRC lines (none for a private message it sent itself, which IRC clients show on their
    /// own).
    pub fn render(&self, me: &str, m: &Message, out: &mut BytesMut) {
        let time = irc::server_time(m.time_us);
        let tags: Vec<(&str, &str)> = if self.server_time {
            vec![("time", time.as_str())]
        } else {
            Vec::new()
        };
        let server = Some(SERVER);
        match &m.kind {
            Kind::Chat { room, nick } | Kind::Action { room, nick } => {
                let action = matches!(m.kind, Kind::Action { .. });
                if m.replayed && !self.server_time {
                    // Without server-time the client would show an old line as new: say when.
                    let text = m.render();
                    relay(out, &[], server, "NOTICE", room, &text, false);
                } else {
                    relay(
                        out,
                        &tags,
                        Some(&user_prefix(nick)),
                        "PRIVMSG",
                        room,
                        &m.text,
                        action,
                    );
                }
            }
            Kind::Private { from, to } => {
                if from.eq_ignore_ascii_case(me) && !to.eq_ignore_ascii_case(me) {
                    return;
                }
                let (text, action) = match m.text.strip_prefix("\u{1}ACTION ") {
                    Some(a) => (a.trim_end_matches('\u{1}'), true),
                    None => (m.text.as_str(), false),
                };
                relay(
                    out,
                    &tags,
                    Some(&user_prefix(from)),
                    "PRIVMSG",
                    me,
                    text,
                    action,
                );
            }
            Kind::Notice | Kind::Error => relay(out, &tags, server, "NOTICE", me, &m.text, false),
            Kind::Event(e) => match e {
                Event::Joined { room, nick } => {
                    line(out, &tags, Some(&user_prefix(nick)), "JOIN", &[room])
                }
                Event::Entered {
                    room,
                    topic,
                    members,
                } => {
                    line(out, &tags, Some(&user_prefix(me)), "JOIN", &[room]);
                    if let Some(t) = topic {
                        numeric(out, irc::RPL_TOPIC, me, &[room], t);
                    }
                    names(out, me, room, members);
                }
                Event::Moved { room, nick, to } => {
                    let why = format!("went to {to}");
                    line(out, &tags, Some(&user_prefix(nick)), "PART", &[room, &why]);
                }
                Event::Left { nick, why, .. } => {
                    line(out, &tags, Some(&user_prefix(nick)), "QUIT", &[why])
                }
                Event::Renamed { old, new } => {
                    line(out, &tags, Some(&user_prefix(old)), "NICK", &[new])
                }
                Event::Topic { room, nick, topic } => {
                    line(
                        out,
                        &tags,
                        Some(&user_prefix(nick)),
                        "TOPIC",
                        &[room, topic],
                    );
                }
            },
        }
    }
}

/// How `m` looks to every IRC client with (or without) `server-time`, when that does not depend
/// on who receives it: chat lines, actions, joins, moves, leaves, renames and topics. A room's
/// message is then rendered once for all its IRC members, as it is framed once for the others.
/// `None` for a message meant for one client (a private message, a notice, `Entered`).
pub fn render_shared(m: &Message, server_time: bool) -> Option<bytes::Bytes> {
    let shared = match &m.kind {
        Kind::Chat { .. } | Kind::Action { .. } => true,
        Kind::Event(e) => !matches!(e, Event::Entered { .. }),
        Kind::Private { .. } | Kind::Notice | Kind::Error => false,
    };
    if !shared {
        return None;
    }
    let session = Session {
        server_time,
        ..Session::default()
    };
    let mut out = BytesMut::new();
    // These kinds never use the recipient's nickname.
    session.render("", m, &mut out);
    Some(out.freeze())
}

/// Whether `nick` may be taken by `me` (`None`: not registered yet): 432 or 433 if not.
fn check_free(hub: &Hub, nick: &str, me: Option<ClientId>) -> Result<(), (&'static str, String)> {
    if let Err(e) = proto::check_nick(nick) {
        return Err((
            irc::ERR_ERRONEUSNICKNAME,
            format!("Erroneous nickname: {e}"),
        ));
    }
    if hub.nick_taken(nick, me) {
        return Err((irc::ERR_NICKNAMEINUSE, "Nickname is already in use".into()));
    }
    Ok(())
}

/// `nick!nick@socklab`.
fn user_prefix(nick: &str) -> String {
    format!("{nick}!{nick}@{HOST}")
}

/// One line. A line the codec refuses (a name that cannot be a parameter) is left out: every
/// name here passed the hub's checks, so it does not happen.
fn line(
    out: &mut BytesMut,
    tags: &[(&str, &str)],
    prefix: Option<&str>,
    command: &str,
    params: &[&str],
) {
    let _ = irc::write_message(out, tags, prefix, command, params);
}

/// A numeric reply to `nick`: `:socklab CODE nick middle… :text`.
fn numeric(out: &mut BytesMut, code: &str, nick: &str, middle: &[&str], text: &str) {
    let mut params = Vec::with_capacity(middle.len() + 2);
    params.push(nick);
    params.extend_from_slice(middle);
    params.push(text);
    line(out, &[], Some(SERVER), code, &params);
}

/// 353 (as many as the names need) and 366.
fn names(out: &mut BytesMut, me: &str, room: &str, members: &[String]) {
    let budget = irc::trailing_budget(Some(SERVER), irc::RPL_NAMREPLY, &[me, "=", room]);
    let all = members.join(" ");
    for piece in irc::split_text(budget, &all) {
        numeric(out, irc::RPL_NAMREPLY, me, &["=", room], piece.trim_end());
    }
    numeric(out, irc::RPL_ENDOFNAMES, me, &[room], "End of NAMES list");
}

/// `text` to `target` as one or more `PRIVMSG`/`NOTICE` lines, each within 512 bytes; an
/// action is wrapped in CTCP `ACTION`.
fn relay(
    out: &mut BytesMut,
    tags: &[(&str, &str)],
    prefix: Option<&str>,
    command: &str,
    target: &str,
    text: &str,
    action: bool,
) {
    let budget =
        irc::trailing_budget(prefix, command, &[target]).saturating_sub(if action { 9 } else { 0 });
    for piece in irc::split_text(budget, text) {
        if action {
            line(
                out,
                tags,
                prefix,
                command,
                &[target, &format!("\u{1}ACTION {piece}\u{1}")],
            );
        } else {
            line(out, tags, prefix, command, &[target, piece]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::proto::Settings;

    /// A hub and a clock, and a way to feed one client's IRC lines.
    struct Fixture {
        hub: Hub,
        now: Instant,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                hub: Hub::new(Settings::default()),
                now: crate::net::clock::now(),
            }
        }

        fn send(&mut self, s: &mut Session, me: u64, raw: &str) -> Step {
            let msg = irc::parse(raw.as_bytes()).unwrap();
            s.handle(&mut self.hub, self.now, 0, ClientId(me), &msg)
        }

        /// Registers an IRC client `nick` as client `me`.
        fn irc(&mut self, me: u64, nick: &str) -> (Session, String) {
            self.hub.connect(self.now, ClientId(me));
            let mut s = Session::new();
            let a = self.send(&mut s, me, &format!("NICK {nick}"));
            let b = self.send(&mut s, me, &format!("USER {nick} 0 * :{nick}"));
            let mut all = text(&a.replies) + &text(&b.replies);
            all += &rendered(&s, nick, &b.outcome, me);
            (s, all)
        }
    }

    fn text(b: &BytesMut) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// What `me` (an IRC client) receives of an outcome.
    fn rendered(s: &Session, nick: &str, out: &Outcome, me: u64) -> String {
        let mut b = BytesMut::new();
        for (to, m) in &out.deliveries {
            if to.0 == me {
                s.render(nick, m, &mut b);
            }
        }
        text(&b)
    }

    #[test]
    fn only_the_four_registration_commands_start_irc() {
        for yes in [
            "NICK ana",
            "user ana 0 * :Ana",
            "CAP LS 302",
            "PASS x",
            "cap END",
        ] {
            assert!(is_irc_start(yes.as_bytes()), "{yes}");
        }
        for no in [
            "ana",
            "nick",
            "CAP",
            "nickname",
            "/nick ana",
            "",
            "PRIVMSG #a :x",
            "nicky x",
        ] {
            assert!(!is_irc_start(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn registration_sends_the_numerics_then_joins_general() {
        let mut f = Fixture::new();
        let (s, got) = f.irc(1, "ana");
        assert!(s.is_registered());
        let lines: Vec<&str> = got.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines[0],
            ":socklab 001 ana :Welcome to the socklab chat, ana!ana@socklab"
        );
        for (i, code) in ["002", "003", "004", "005"].iter().enumerate() {
            assert!(
                lines[i + 1].starts_with(&format!(":socklab {code} ana ")),
                "{got}"
            );
        }
        assert!(
            lines[4].contains("CHANTYPES=#") && lines[4].contains("NICKLEN=16"),
            "{got}"
        );
        assert_eq!(lines[5], ":socklab 422 ana :MOTD File is missing");
        assert_eq!(lines[6], ":ana!ana@socklab JOIN #general");
        assert_eq!(lines[7], ":socklab 353 ana = #general ana");
        assert_eq!(lines[8], ":socklab 366 ana #general :End of NAMES list");
        assert_eq!(
            lines.len(),
            9,
            "the hub's welcome notice is left out: {got}"
        );
    }

    #[test]
    fn registration_waits_for_cap_end_and_acks_server_time() {
        let mut f = Fixture::new();
        f.hub.connect(f.now, ClientId(1));
        let mut s = Session::new();
        let ls = f.send(&mut s, 1, "CAP LS 302");
        assert_eq!(
            text(&ls.replies),
            ":socklab CAP * LS :message-tags server-time\r\n"
        );
        f.send(&mut s, 1, "NICK ana");
        let user = f.send(&mut s, 1, "USER ana 0 * :Ana");
        assert!(
            user.replies.is_empty() && !s.is_registered(),
            "waits for CAP END"
        );
        let req = f.send(&mut s, 1, "CAP REQ :server-time");
        assert_eq!(text(&req.replies), ":socklab CAP * ACK server-time\r\n");
        let nak = f.send(&mut s, 1, "CAP REQ :sasl");
        assert_eq!(text(&nak.replies), ":socklab CAP * NAK sasl\r\n");
        let end = f.send(&mut s, 1, "CAP END");
        assert!(text(&end.replies).starts_with(":socklab 001 ana "));
        assert!(s.is_registered());
        // With server-time, what it receives carries the time.
        f.hub.connect(f.now, ClientId(2));
        f.hub.line(f.now, 0, ClientId(2), "bob");
        let out = f
            .hub
            .line(f.now, 1_764_868_019_123_456, ClientId(2), "hello ana");
        assert_eq!(
            rendered(&s, "ana", &out, 1),
            "@time=2025-12-04T17:06:59.123Z :bob!bob@socklab PRIVMSG #general :hello ana\r\n"
        );
    }

    #[test]
    fn nick_errors_are_numerics() {
        let mut f = Fixture::new();
        f.irc(1, "ana");
        f.hub.connect(f.now, ClientId(2));
        let mut s = Session::new();
        let taken = f.send(&mut s, 2, "NICK ANA");
        assert_eq!(
            text(&taken.replies),
            ":socklab 433 * ANA :Nickname is already in use\r\n"
        );
        let bad = f.send(&mut s, 2, "NICK 9lives");
        assert!(text(&bad.replies).starts_with(":socklab 432 * 9lives :Erroneous nickname"));
        let early = f.send(&mut s, 2, "PRIVMSG #general :hi");
        assert_eq!(
            text(&early.replies),
            ":socklab 451 * :You have not registered\r\n"
        );
        f.send(&mut s, 2, "NICK bob");
        f.send(&mut s, 2, "USER bob 0 * :Bob");
        let again = f.send(&mut s, 2, "USER bob 0 * :Bob");
        assert_eq!(
            text(&again.replies),
            ":socklab 462 bob :You may not reregister\r\n"
        );
        let what = f.send(&mut s, 2, "FROB x");
        assert_eq!(
            text(&what.replies),
            ":socklab 421 bob FROB :Unknown command\r\n"
        );
    }

    #[test]
    fn an_irc_user_and_a_line_user_talk_in_general() {
        let mut f = Fixture::new();
        let (mut ana, _) = f.irc(1, "ana");
        f.hub.connect(f.now, ClientId(2));
        let joined = f.hub.line(f.now, 0, ClientId(2), "nc");
        assert_eq!(
            rendered(&ana, "ana", &joined, 1),
            ":nc!nc@socklab JOIN #general\r\n"
        );
        // IRC to lines: the nc user gets the chat line with ana's nick and the text unchanged.
        let said = f.send(&mut ana, 1, "PRIVMSG #general :hello, nc: /not a command");
        let to_nc: Vec<String> = said
            .outcome
            .deliveries
            .iter()
            .filter(|(c, _)| c.0 == 2)
            .map(|(_, m)| m.render())
            .collect();
        assert_eq!(to_nc.len(), 1);
        assert!(
            to_nc[0].ends_with("#general <ana> hello, nc: /not a command"),
            "{to_nc:?}"
        );
        let slash = f.send(&mut ana, 1, "PRIVMSG #general :/me is not a command here");
        assert!(slash.outcome.deliveries[0].1.text == "/me is not a command here");
        // Lines to IRC, an action, a private message, a rename, a topic.
        let out = f.hub.line(f.now, 0, ClientId(2), "hi ana");
        assert_eq!(
            rendered(&ana, "ana", &out, 1),
            ":nc!nc@socklab PRIVMSG #general :hi ana\r\n"
        );
        let out = f.hub.line(f.now, 0, ClientId(2), "/me waves");
        assert_eq!(
            rendered(&ana, "ana", &out, 1),
            ":nc!nc@socklab PRIVMSG #general :\u{1}ACTION waves\u{1}\r\n"
        );
        let out = f.hub.line(f.now, 0, ClientId(2), "/msg ana psst");
        assert_eq!(
            rendered(&ana, "ana", &out, 1),
            ":nc!nc@socklab PRIVMSG ana psst\r\n"
        );
        let out = f.hub.line(f.now, 0, ClientId(2), "/nick netcat");
        assert_eq!(
            rendered(&ana, "ana", &out, 1),
            ":nc!nc@socklab NICK netcat\r\n"
        );
        let out = f.send(&mut ana, 1, "TOPIC #general :sockets");
        assert_eq!(
            rendered(&ana, "ana", &out.outcome, 1),
            ":ana!ana@socklab TOPIC #general sockets\r\n"
        );
        // IRC private message to the nc user, and ana's own copy is not echoed.
        let out = f.send(&mut ana, 1, "PRIVMSG netcat :just you");
        let to_nc = out
            .outcome
            .deliveries
            .iter()
            .find(|(c, _)| c.0 == 2)
            .unwrap();
        assert!(to_nc.1.render().ends_with("*ana* -> netcat: just you"));
        assert_eq!(rendered(&ana, "ana", &out.outcome, 1), "");
        let none = f.send(&mut ana, 1, "PRIVMSG nobody :x");
        assert_eq!(
            text(&none.replies),
            ":socklab 401 ana nobody :No such nick/channel\r\n"
        );
    }

    #[test]
    fn join_moves_with_a_part_and_queries_answer_from_the_hub() {
        let mut f = Fixture::new();
        let (mut ana, _) = f.irc(1, "ana");
        let j = f.send(&mut ana, 1, "JOIN #rust,#go");
        let mut got = text(&j.replies);
        got += &rendered(&ana, "ana", &j.outcome, 1);
        assert_eq!(
            got,
            ":ana!ana@socklab PART #general :went to #rust\r\n\
             :ana!ana@socklab JOIN #rust\r\n\
             :socklab 353 ana = #rust ana\r\n\
             :socklab 366 ana #rust :End of NAMES list\r\n"
        );
        let names = f.send(&mut ana, 1, "NAMES");
        assert!(text(&names.replies).starts_with(":socklab 353 ana = #rust ana\r\n"));
        let list = text(&f.send(&mut ana, 1, "LIST").replies);
        assert!(list.contains(":socklab 322 ana #rust 1 :\r\n"), "{list}");
        assert!(
            list.ends_with(":socklab 323 ana :End of LIST\r\n"),
            "{list}"
        );
        let who = text(&f.send(&mut ana, 1, "WHO #rust").replies);
        assert_eq!(
            who,
            ":socklab 352 ana #rust ana socklab socklab ana H :0 ana\r\n\
             :socklab 315 ana #rust :End of WHO list\r\n"
        );
        let whois = text(&f.send(&mut ana, 1, "WHOIS ana").replies);
        assert!(whois.contains(":socklab 319 ana ana #rust\r\n"), "{whois}");
        let mode = text(&f.send(&mut ana, 1, "MODE #rust").replies);
        assert_eq!(mode, ":socklab 324 ana #rust +\r\n");
        let ping = text(&f.send(&mut ana, 1, "PING :abc").replies);
        assert_eq!(ping, ":socklab PONG socklab abc\r\n");
        let part = f.send(&mut ana, 1, "PART #rust");
        assert!(text(&part.replies).starts_with(":ana!ana@socklab PART #rust"));
        assert_eq!(f.hub.room_of(ClientId(1)), Some("#general"));
        let quit = f.send(&mut ana, 1, "QUIT :bye all");
        assert!(quit.quit);
        assert_eq!(
            text(&quit.replies),
            "ERROR :Closing link: ana (bye all)\r\n"
        );
    }

    #[test]
    fn shared_rendering_is_what_each_client_would_render() {
        let mut f = Fixture::new();
        let (ana, _) = f.irc(1, "ana");
        f.hub.connect(f.now, ClientId(2));
        let mut all = f.hub.line(f.now, 7, ClientId(2), "bob").deliveries;
        all.extend(f.hub.line(f.now, 8, ClientId(2), "hi").deliveries);
        all.extend(f.hub.line(f.now, 9, ClientId(2), "/me waves").deliveries);
        all.extend(
            f.hub
                .line(f.now, 10, ClientId(2), "/msg ana psst")
                .deliveries,
        );
        all.extend(
            f.hub
                .line(f.now, 11, ClientId(2), "/nick robert")
                .deliveries,
        );
        let mut shared = 0;
        for (_, m) in &all {
            for time in [false, true] {
                let mut s = Session::new();
                s.server_time = time;
                let mut own = BytesMut::new();
                s.render("ana", m, &mut own);
                match render_shared(m, time) {
                    Some(b) => {
                        assert_eq!(b, own.freeze(), "{m:?}");
                        shared += 1;
                    }
                    None => assert!(matches!(
                        m.kind,
                        Kind::Private { .. } | Kind::Notice | Kind::Event(Event::Entered { .. })
                    )),
                }
            }
        }
        assert_eq!(
            shared,
            2 * 5,
            "join, chat line, action, rename to the room and to bob"
        );
        assert!(!ana.server_time());
    }
}
