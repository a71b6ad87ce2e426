//! The p2p chat in `socklab lab`: a peer on UDP 7070 that answers every message, so the chat
//! can be tried from one terminal.
//!
//! The bot talks to one peer at a time: whoever it last heard a valid datagram from (a
//! `p2p chat` on any port, the same through `socklab impair`, a Python peer). A new address
//! starts a new session with it (a fresh random session id, so the newcomer is never confused
//! by sequence numbers meant for someone else).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::arq::{self, Arq, Event};
use super::wire;
use crate::catalog::{self, Entry, Sockets, Tools};
use crate::net::NetError;
use crate::net::driver::{self, Core, Transmit};
use crate::net::host::Bound;

/// The bot's port in the lab.
pub const PORT: u16 = 7070;

/// The bot's nickname.
pub const NICK: &str = "lab";

/// The lab's p2p bot.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "p2p",
        transport: "udp, p2p chat",
        port: PORT,
        sockets: Sockets::Udp,
        start: catalog::single(|b, _env, shutdown| run(b, shutdown)),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!(
        "socklab p2p chat --listen {}:{} --peer {a} --nick you",
        a.ip(),
        a.port().wrapping_add(1)
    )
}

fn try_peer(a: SocketAddr, _: Tools) -> String {
    let relay = a.port().wrapping_add(2);
    format!(
        "over a bad link: socklab impair --listen {ip}:{relay} --to {a} --loss 20% & \
         socklab p2p chat --listen {ip}:{} --peer {ip}:{relay} --nick you",
        a.port().wrapping_add(1),
        ip = a.ip()
    )
}

/// The reply to a message.
pub fn reply(message: &[u8]) -> Vec<u8> {
    let text = match wire::parse_chat(message) {
        Some((nick, text)) => format!("{nick}, you said: {text}"),
        None => "you said something I could not read".into(),
    };
    wire::chat_message(NICK, &text)
}

/// The bot: an [`Arq`] for the peer last heard from, answering each message. Sans-IO.
#[derive(Debug)]
pub struct Bot {
    arq: Option<(SocketAddr, Arq)>,
    cfg: arq::Config,
    /// Replies waiting for room in the core's queue.
    replies: VecDeque<Vec<u8>>,
    /// Peers talked to so far.
    pub peers: u64,
}

/// Most replies the bot keeps waiting (a peer sending faster than the bot may answer loses
/// the answers beyond it, never its own messages).
const MAX_REPLIES: usize = 1024;

impl Bot {
    /// A bot with these settings (its session id is drawn for each new peer).
    pub fn new(cfg: arq::Config) -> Self {
        Bot {
            arq: None,
            cfg,
            replies: VecDeque::new(),
            peers: 0,
        }
    }

    /// Answers what the core delivered, as far as its queue takes them.
    fn pump(&mut self, now: Instant) {
        let Some((_, arq)) = &mut self.arq else {
            return;
        };
        while let Some(ev) = arq.poll_event() {
            if let Event::Message(m) = ev
                && self.replies.len() < MAX_REPLIES
            {
                self.replies.push_back(reply(&m));
            }
        }
        while arq.wants_input() {
            let Some(r) = self.replies.pop_front() else {
                break;
            };
            arq.handle_input(now, r);
        }
    }
}

impl Core for Bot {
    type Input = ();
    type Event = ();

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let known = self.arq.as_ref().is_some_and(|(peer, _)| *peer == from);
        if !known {
            // Only a valid datagram makes the bot turn to a new peer.
            if wire::parse(data).is_err() {
                return;
            }
            let cfg = arq::Config {
                session: super::peer::new_session(),
                ..self.cfg.clone()
            };
            self.arq = Some((from, Arq::new(now, from, cfg)));
            self.replies.clear();
            self.peers += 1;
        }
        if let Some((_, arq)) = &mut self.arq {
            arq.handle_datagram(now, from, data);
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, arq)) = &mut self.arq {
            arq.handle_timeout(now);
        }
        self.pump(now);
    }

    fn handle_input(&mut self, _: Instant, (): ()) {}

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.arq.as_mut()?.1.poll_transmit(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.arq.as_ref()?.1.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

/// Runs the bot on its bound socket until `shutdown`.
pub async fn run(bound: Bound, shutdown: CancellationToken) -> Result<(), NetError> {
    let Some(sock) = bound.into_udp() else {
        return Ok(());
    };
    let mut bot = Bot::new(arq::Config::default());
    // No inputs: the bot only answers.
    let (_, inputs) = mpsc::channel(1);
    driver::run(&mut bot, &sock, inputs, &shutdown, |()| {
        ControlFlow::<()>::Continue(())
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::clock;
    use crate::net::driver::Pair;

    /// A peer talks to the bot through the virtual-clock pair: every message is answered,
    /// once, in order; a second peer on another address gets its own session.
    #[test]
    fn the_bot_answers_every_message_in_order() {
        let t0 = clock::now();
        let (you, bot): (SocketAddr, SocketAddr) = (
            "10.0.0.1:7001".parse().unwrap(),
            "10.0.0.2:7000".parse().unwrap(),
        );
        let peer = Arq::new(
            t0,
            bot,
            arq::Config {
                session: 77,
                ..arq::Config::default()
            },
        );
        let mut pair = Pair::new(t0, (peer, you), (Bot::new(arq::Config::default()), bot));
        for i in 0..100 {
            pair.a
                .handle_input(t0, wire::chat_message("you", &format!("line {i}")));
        }
        // The bot never ends (keepalives): the clock stops at the limit.
        assert!(!pair.drive(t0 + std::time::Duration::from_secs(10)));
        let got: Vec<String> = pair
            .a_events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => wire::parse_chat(m).map(|(n, t)| format!("<{n}> {t}")),
                _ => None,
            })
            .collect();
        let want: Vec<String> = (0..100)
            .map(|i| format!("<lab> you, you said: line {i}"))
            .collect();
        assert_eq!(got, want);
        assert_eq!(pair.b.peers, 1);
    }

    #[test]
    fn a_garbage_datagram_does_not_turn_the_bot() {
        let t0 = clock::now();
        let mut b = Bot::new(arq::Config::default());
        b.handle_datagram(t0, "10.0.0.9:1".parse().unwrap(), b"not ours");
        assert!(b.arq.is_none());
        assert_eq!(b.peers, 0);
        assert_eq!(
            reply(b"\x03annhi"),
            wire::chat_message(NICK, "ann, you said: hi")
        );
    }
}
