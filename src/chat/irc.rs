//! The IRC message codec: one line of RFC 1459/2812 grammar with IRCv3 message tags, parsed into
//! a borrowed [`Message`] and written back with [`write_message`]. Sans-IO: no socket, no clock;
//! the chat server's IRC dialect drives it.
//!
//! # The grammar
//!
//! An IRC message is one line of text. Everything but the command is optional:
//!
//! ```text
//!  @time=2026-12-04T17:06:59.123Z;+example=a\sb :nick!user@host PRIVMSG #chan :hello world\r\n
//!  └────────────── tags (IRCv3) ──────────────┘ └── prefix ───┘ └─────┘ └───┘ └ trailing ┘
//!                                                               command middle
//! ```
//!
//! - **Tags** (IRCv3 `message-tags`) carry metadata: the time a message was sent
//!   (`server-time`), a label, a reply-to id. A value cannot hold `;`, a space, CR or LF, so
//!   they travel escaped (`\:`, `\s`, `\r`, `\n`, and `\\` for the backslash itself); the
//!   parser hands out unescaped values, the writer escapes them.
//! - **The prefix** (RFC 2812 §2.3.1 calls it the prefix, IRCv3 the source) says who sent
//!   the message: a server name or `nick!user@host`. Clients do not send one; servers do.
//! - **The command** is a word of letters (`PRIVMSG`, case-insensitive: `privmsg` is the same
//!   command) or a three-digit *numeric reply* such as `001` ([`RPL_WELCOME`]).
//! - **Parameters** are separated by spaces. A parameter cannot contain a space, except the
//!   last: written after ` :`, it runs to the end of the line (the *trailing* parameter). That
//!   is how a chat line with spaces fits in one parameter, and how an empty parameter is sent
//!   (`TOPIC #c :` clears a topic).
//!
//! # Limits, and why they are counted the way they are
//!
//! RFC 1459 §2.3 caps a message at 512 bytes *including* the CR LF, so 510 bytes of content
//! ([`MAX_LINE`], [`MAX_CONTENT`]). IRCv3 added tags without touching that budget: the tag part
//! (from `@` to the space after it) has its own limit, 8191 bytes in total ([`MAX_TAGS`]; a
//! client may send at most 4094 of them, a server adds its own, and 8191 is what a receiver
//! must accept). RFC 2812 allows at most 15 parameters ([`MAX_PARAMS`]). Every limit is checked
//! before anything is allocated for the line, and each has its own [`ParseError`] variant that
//! says how long the line was: the server answers an over-long line with
//! [`ERR_INPUTTOOLONG`] (417), see [`ParseError::reply_numeric`].
//!
//! # Decisions a real network would make too
//!
//! - **Bytes that are not UTF-8 are refused** ([`ParseError::NotUtf8`]). Old IRC is byte-based
//!   and some clients still send Latin-1, but the chat relays text to clients of other dialects
//!   as `String`s, and a borrowed `&str` message cannot hold a lossy repair. Servers that
//!   enforce UTF-8 (Ergo, for one) do the same and say so with the `UTF8ONLY` ISUPPORT token. A
//!   caller that prefers repair to refusal can run `String::from_utf8_lossy` on the line and
//!   parse the result.
//! - **NUL, CR and LF are never part of a message**: in a line given to [`parse`] they are
//!   refused ([`ParseError::ForbiddenByte`]; a line end left on the line is stripped first), and
//!   [`write_message`] replaces them with a space in the text it writes, so a peer can never
//!   inject a second line into the stream through a relayed message.
//! - **Spaces are forgiven where clients and servers are sloppy**: leading spaces, several
//!   spaces between parameters and trailing spaces (RFC 1459 says "one or more"; RFC 2812's
//!   "exactly one" breaks real traffic).
//! - **A 16th parameter is an error** ([`ParseError::TooManyParams`]). RFC 2812's grammar would
//!   instead fold everything after the 14th middle parameter into a 15th; no client sends such
//!   lines, and refusing them keeps "what was sent" and "what was parsed" the same.
//! - **The writer cuts only the last parameter**, at a UTF-8 character boundary, to fit 512
//!   bytes; that is where free text lives (a chat line, a topic, a quit message). Everything
//!   before it must fit, or the message is refused. To send long text whole, cut it first with
//!   [`split_text`] and [`trailing_budget`].
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use socklab::chat::irc::{self, RPL_WELCOME};
//!
//! let msg = irc::parse(b"@label=x :alice!a@h PRIVMSG #rust :hello world").unwrap();
//! assert_eq!(msg.tag("label"), Some("x"));
//! assert_eq!(msg.prefix, Some("alice!a@h"));
//! assert!(msg.is_command("privmsg"));
//! assert_eq!(msg.params, ["#rust", "hello world"]);
//!
//! let mut out = BytesMut::new();
//! irc::write_message(&mut out, &[], Some("socklab"), RPL_WELCOME, &["alice", "Welcome!"])
//!     .unwrap();
//! assert_eq!(&out[..], b":socklab 001 alice Welcome!\r\n");
//!
//! // What was written parses back to the same message.
//! let again = msg.to_bytes().unwrap();
//! assert_eq!(irc::parse(&again).unwrap(), msg);
//! ```

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::frame::FrameError;
use crate::frame::delimited::DelimitedCodec;

/// Longest message, in bytes, not counting its tags but counting the CR LF that ends it (RFC
/// 1459 §2.3): what a server has always had to accept.
pub const MAX_LINE: usize = 512;

/// Longest message content: [`MAX_LINE`] without the two bytes of CR LF. This is the limit a
/// line given to [`parse`] (without its line end) is checked against, whether the client ended
/// it with CR LF or a bare LF: the budget is the same for everyone.
pub const MAX_CONTENT: usize = MAX_LINE - 2;

/// Longest tag part, in bytes, from the `@` to the space after the tags, both included.
///
/// IRCv3 `message-tags` gives clients 4094 bytes of tags and a whole message (the client's tags
/// plus those a server adds) 8191. A server that receives tags must accept the total, so this
/// is the limit in both directions: a client that sends more than 4094 gets through too, which
/// costs nothing since the line limit bounds the memory either way.
pub const MAX_TAGS: usize = 8191;

/// Most parameters in one message (RFC 2812 §2.3.1: 14 middle ones and a trailing one).
pub const MAX_PARAMS: usize = 15;

/// Longest line [`LineSplitter`] buffers, line end included: tags plus a message.
pub const MAX_WIRE_LINE: usize = MAX_TAGS + MAX_LINE;

// ------------------------------------------------------------------------------------------
// Numeric replies (RFC 1459 §6, RFC 2812 §5; RPL_ISUPPORT and ERR_INPUTTOOLONG from the modern
// IRC documents). Each is a command of three digits, ready for `write_message`; the first
// parameter of a numeric is always the nickname it is addressed to.
// ------------------------------------------------------------------------------------------

/// `001`: the first reply after registration: "Welcome to the network, nick!user@host".
pub const RPL_WELCOME: &str = "001";
/// `002`: "Your host is NAME, running version VERSION".
pub const RPL_YOURHOST: &str = "002";
/// `003`: "This server was created DATE".
pub const RPL_CREATED: &str = "003";
/// `004`: server name, version, user modes and channel modes, as separate parameters.
pub const RPL_MYINFO: &str = "004";
/// `005`: the server's features as `TOKEN=value` parameters (`CHANTYPES=#&`, `NICKLEN=16`, …).
pub const RPL_ISUPPORT: &str = "005";
/// `221`: a user's own modes, answering `MODE nick`.
pub const RPL_UMODEIS: &str = "221";
/// End of a channel's invite-exception list (`MODE #chan +I`).
pub const RPL_ENDOFINVITELIST: &str = "347";
/// End of a channel's ban-exception list (`MODE #chan +e`).
pub const RPL_ENDOFEXCEPTLIST: &str = "349";
/// End of a channel's ban list (`MODE #chan +b`).
pub const RPL_ENDOFBANLIST: &str = "368";
/// `311`: `WHOIS`: nick, user, host, `*`, real name.
pub const RPL_WHOISUSER: &str = "311";
/// `312`: `WHOIS`: the server the nick is on.
pub const RPL_WHOISSERVER: &str = "312";
/// `315`: the end of a `WHO` list.
pub const RPL_ENDOFWHO: &str = "315";
/// `318`: the end of a `WHOIS` reply.
pub const RPL_ENDOFWHOIS: &str = "318";
/// `319`: `WHOIS`: the channels the nick is on.
pub const RPL_WHOISCHANNELS: &str = "319";
/// `322`: one channel of a `LIST`: name, visible users, topic.
pub const RPL_LIST: &str = "322";
/// `323`: the end of a `LIST`.
pub const RPL_LISTEND: &str = "323";
/// `324`: a channel's modes, answering `MODE #chan`.
pub const RPL_CHANNELMODEIS: &str = "324";
/// `331`: the channel has no topic.
pub const RPL_NOTOPIC: &str = "331";
/// `332`: the channel's topic (sent on `JOIN` and on `TOPIC #chan`).
pub const RPL_TOPIC: &str = "332";
/// `352`: one user of a `WHO` list.
pub const RPL_WHOREPLY: &str = "352";
/// `353`: names in a channel (`= #chan :@op alice bob`), as many lines as needed.
pub const RPL_NAMREPLY: &str = "353";
/// `366`: the end of the names list.
pub const RPL_ENDOFNAMES: &str = "366";
/// `372`: one line of the message of the day.
pub const RPL_MOTD: &str = "372";
/// `375`: the start of the message of the day.
pub const RPL_MOTDSTART: &str = "375";
/// `376`: the end of the message of the day.
pub const RPL_ENDOFMOTD: &str = "376";
/// `401`: no such nick or channel.
pub const ERR_NOSUCHNICK: &str = "401";
/// `403`: no such channel.
pub const ERR_NOSUCHCHANNEL: &str = "403";
/// `404`: cannot send to the channel (not on it, or moderated).
pub const ERR_CANNOTSENDTOCHAN: &str = "404";
/// `411`: `PRIVMSG` without a recipient.
pub const ERR_NORECIPIENT: &str = "411";
/// `412`: `PRIVMSG` without text.
pub const ERR_NOTEXTTOSEND: &str = "412";
/// `417`: the line (or its tags) was too long; see [`ParseError::reply_numeric`].
pub const ERR_INPUTTOOLONG: &str = "417";
/// `421`: unknown command.
pub const ERR_UNKNOWNCOMMAND: &str = "421";
/// `422`: there is no message of the day.
pub const ERR_NOMOTD: &str = "422";
/// `431`: `NICK` without a nickname.
pub const ERR_NONICKNAMEGIVEN: &str = "431";
/// `432`: the nickname has characters or a length the server refuses.
pub const ERR_ERRONEUSNICKNAME: &str = "432";
/// `433`: the nickname is taken.
pub const ERR_NICKNAMEINUSE: &str = "433";
/// `442`: you are not on that channel.
pub const ERR_NOTONCHANNEL: &str = "442";
/// `451`: the command needs registration (`NICK` and `USER`) first.
pub const ERR_NOTREGISTERED: &str = "451";
/// `461`: the command needs more parameters.
pub const ERR_NEEDMOREPARAMS: &str = "461";
/// `462`: `USER` (or `PASS`) after registration. The RFC spells it with one E.
pub const ERR_ALREADYREGISTRED: &str = "462";
/// `472`: unknown channel mode character.
pub const ERR_UNKNOWNMODE: &str = "472";
/// `482`: the command needs channel operator privileges.
pub const ERR_CHANOPRIVSNEEDED: &str = "482";
/// `501`: unknown user mode flag.
pub const ERR_UMODEUNKNOWNFLAG: &str = "501";
/// `502`: cannot change or view another user's modes.
pub const ERR_USERSDONTMATCH: &str = "502";

/// One IRC message, borrowing its pieces from the line it was parsed from.
///
/// Borrowing keeps parsing cheap (a chat server parses every line every client sends): only
/// tag values with escapes and the two small vectors are allocated. Turn it into bytes again
/// with [`Message::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The IRCv3 tags in the order sent: the key (with its `+` for client-only tags and its
    /// `vendor/` if any) and the unescaped value. A key sent without a value, with an empty
    /// one (`key=`), or with one that unescapes to nothing has `None`: IRCv3 makes the three
    /// equivalent. A key sent twice appears twice; [`Message::tag`] gives the last, as IRCv3
    /// asks.
    pub tags: Vec<(&'a str, Option<Cow<'a, str>>)>,
    /// Who sent the message, without its `:`: a server name or `nick!user@host`.
    pub prefix: Option<&'a str>,
    /// The command as sent: letters in any case, or three digits. Compare it with
    /// [`Message::is_command`], which ignores case as IRC does.
    pub command: &'a str,
    /// The parameters, at most [`MAX_PARAMS`], without the `:` of a trailing one. Only the last
    /// may be empty or contain spaces.
    pub params: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// The value of tag `key` (its last occurrence), `Some("")` for a tag without a value, and
    /// `None` if the tag is absent.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Whether the command is `name`, ignoring ASCII case (`privmsg` is `PRIVMSG`).
    pub fn is_command(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }

    /// The command in upper case, for a `match`; borrowed when it already is.
    pub fn command_upper(&self) -> Cow<'a, str> {
        if self.command.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(self.command.to_ascii_uppercase())
        } else {
            Cow::Borrowed(self.command)
        }
    }

    /// The numeric reply's number, if the command is three digits.
    pub fn numeric(&self) -> Option<u16> {
        match self.command.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
            }
            _ => None,
        }
    }

    /// Appends this message to `out` with [`write_message`]: tags escaped, a trailing `:` where
    /// the last parameter needs one, CR LF at the end.
    ///
    /// A message that [`parse`] returned always writes back whole (never longer than the line
    /// it came from, so never cut) and parses back to itself.
    pub fn write(&self, out: &mut BytesMut) -> Result<Written, EncodeError> {
        let tags: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (*k, v.as_deref().unwrap_or("")))
            .collect();
        write_message(out, &tags, self.prefix, self.command, &self.params)
    }

    /// The message as a new buffer, CR LF included (see [`Message::write`]; a message built by
    /// hand with a last parameter too long is cut the same way).
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        // A parsed message is never cut; a hand-built one may be, as `write` says.
        let _written = self.write(&mut out)?;
        Ok(out.freeze())
    }
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is empty or holds only spaces. Not a fault: servers ignore such lines (a telnet
    /// user pressing Enter), so callers skip this one silently.
    #[error("empty line")]
    Empty,
    /// The tag part is longer than [`MAX_TAGS`].
    #[error("tags of {len} bytes exceed the limit of {max} bytes")]
    TagsTooLong {
        /// The tag part's length, from the line's start to the space after the tags.
        len: usize,
        /// The limit, [`MAX_TAGS`].
        max: usize,
    },
    /// The message after the tags is longer than [`MAX_LINE`] with its CR LF counted.
    #[error("line of {len} bytes (with its line end) exceeds the limit of {max} bytes")]
    LineTooLong {
        /// The message's length after the tags, plus 2 for the CR LF.
        len: usize,
        /// The limit, [`MAX_LINE`].
        max: usize,
    },
    /// A NUL, CR or LF inside the line: none may appear in an IRC message.
    #[error("byte {byte:#04x} at offset {at} is not allowed in an irc message")]
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Where it is in the line.
        at: usize,
    },
    /// The line is not valid UTF-8 (see the module docs for why that is refused).
    #[error("the line is not utf-8 (first bad byte at offset {at})")]
    NotUtf8 {
        /// The offset of the first byte that is not part of valid UTF-8.
        at: usize,
    },
    /// A tag's key is not `[+][vendor/]name` with a name of letters, digits and hyphens.
    #[error("invalid tag key {key:?}")]
    BadTagKey {
        /// The key as sent.
        key: String,
    },
    /// A `:` with no prefix after it.
    #[error("empty prefix")]
    EmptyPrefix,
    /// Tags or a prefix and then nothing.
    #[error("no command")]
    MissingCommand,
    /// The command is neither letters nor exactly three digits.
    #[error("invalid command {command:?}: expected letters or three digits")]
    BadCommand {
        /// The command as sent.
        command: String,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {max} parameters")]
    TooManyParams {
        /// The limit, [`MAX_PARAMS`].
        max: usize,
    },
}

impl ParseError {
    /// The numeric a server answers this error with, if any: [`ERR_INPUTTOOLONG`] for a line
    /// or tags over their limit (IRCv3 `message-tags` asks for it for tags too). A server
    /// ignores empty lines and, like most real ones, drops other malformed lines silently or
    /// closes a client that keeps sending them; an unknown but well-formed command is not a
    /// parse error at all and gets [`ERR_UNKNOWNCOMMAND`] from the server's dispatch.
    pub fn reply_numeric(&self) -> Option<&'static str> {
        match self {
            Self::TagsTooLong { .. } | Self::LineTooLong { .. } => Some(ERR_INPUTTOOLONG),
            _ => None,
        }
    }
}

/// Parses one line, given without its line end, into a [`Message`].
///
/// A line end left on (`\n`, `\r\n`, or a lone `\r`) is stripped first, so a caller may pass
/// either. Checks the limits, then the bytes (no NUL, CR or LF; UTF-8), and only then looks at
/// the grammar, so that nothing is allocated for a line that is too long.
pub fn parse(line: &[u8]) -> Result<Message<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(start) = line.iter().position(|&b| b != b' ') else {
        return Err(ParseError::Empty);
    };

    // The limits, counted on raw bytes before anything else.
    let after_tags = if line[start] == b'@' {
        let end = line[start..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(line.len(), |at| start + at + 1);
        if end > MAX_TAGS {
            return Err(ParseError::TagsTooLong {
                len: end,
                max: MAX_TAGS,
            });
        }
        end
    } else {
        0
    };
    let content = line.len() - after_tags;
    if content > MAX_CONTENT {
        return Err(ParseError::LineTooLong {
            len: content + 2,
            max: MAX_LINE,
        });
    }
    if let Some(at) = line.iter().position(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(ParseError::ForbiddenByte { byte: line[at], at });
    }
    let text = std::str::from_utf8(line).map_err(|e| ParseError::NotUtf8 {
        at: e.valid_up_to(),
    })?;

    let mut rest = &text[start..];
    let mut tags = Vec::new();
    if let Some(after_at) = rest.strip_prefix('@') {
        let (raw, after) = split_word(after_at);
        rest = after;
        for item in raw.split(';').filter(|item| !item.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            if !is_tag_key(key) {
                return Err(ParseError::BadTagKey { key: key.into() });
            }
            let value = unescape(value);
            tags.push((key, Some(value).filter(|v| !v.is_empty())));
        }
    }

    let mut prefix = None;
    if let Some(after_colon) = rest.strip_prefix(':') {
        let (word, after) = split_word(after_colon);
        if word.is_empty() {
            return Err(ParseError::EmptyPrefix);
        }
        prefix = Some(word);
        rest = after;
    }

    let (command, mut rest) = split_word(rest);
    if command.is_empty() {
        return Err(ParseError::MissingCommand);
    }
    if !is_command_name(command) {
        return Err(ParseError::BadCommand {
            command: command.into(),
        });
    }

    let mut params = Vec::new();
    while !rest.is_empty() {
        if params.len() == MAX_PARAMS {
            return Err(ParseError::TooManyParams { max: MAX_PARAMS });
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        let (word, after) = split_word(rest);
        params.push(word);
        rest = after;
    }

    Ok(Message {
        tags,
        prefix,
        command,
        params,
    })
}

/// Splits `s` at its first space: the word before it, and what follows the spaces after it
/// (RFC 1459: "separated by one (or more) ASCII space character(s)").
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(' ') {
        Some((word, rest)) => (word, rest.trim_start_matches(' ')),
        None => (s, ""),
    }
}

/// Whether `name` can be a command: letters, or exactly three digits (RFC 2812 §2.3.1:
/// `command = 1*letter / 3digit`).
pub fn is_command_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (!bytes.is_empty() && bytes.iter().all(u8::is_ascii_alphabetic))
        || (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit))
}

/// Whether `key` is a tag key by the IRCv3 grammar: `['+'] [vendor '/'] name`, where the vendor
/// is a host name (letters, digits, `-`, `.`) and the name letters, digits and `-`.
fn is_tag_key(key: &str) -> bool {
    let key = key.strip_prefix('+').unwrap_or(key);
    let (vendor, name) = match key.split_once('/') {
        Some((vendor, name)) => (Some(vendor), name),
        None => (None, key),
    };
    let host = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    vendor.is_none_or(|v| !v.is_empty() && v.bytes().all(host))
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Undoes IRCv3 tag escaping: `\:` is `;`, `\s` a space, `\\` a backslash, `\r` and `\n` CR
/// and LF; any other escaped character stands for itself, and a lone backslash at the end is
/// dropped. Borrows when there is nothing to undo.
///
/// Unescaping goes character by character, never by search-and-replace: `\\n` is a backslash
/// and an `n`, not a backslash and a newline.
fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    // Never longer than the raw value, which the tag limit bounds.
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

/// Appends `value` to `out` with IRCv3 escaping. A NUL, which tags cannot carry even escaped,
/// becomes a space (`\s`).
fn escape_into(out: &mut BytesMut, value: &str) {
    for c in value.chars() {
        match c {
            ';' => out.put_slice(b"\\:"),
            ' ' | '\0' => out.put_slice(b"\\s"),
            '\\' => out.put_slice(b"\\\\"),
            '\r' => out.put_slice(b"\\r"),
            '\n' => out.put_slice(b"\\n"),
            _ => out.put_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// What [`write_message`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Written {
    /// Bytes appended, tags and CR LF included.
    pub len: usize,
    /// Bytes cut from the end of the last parameter so that the message fits [`MAX_LINE`]; 0
    /// when it was written whole.
    pub cut: usize,
}

/// Why a message cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The command is neither letters nor three digits.
    #[error("invalid command {command:?}: expected letters or three digits")]
    BadCommand {
        /// The command given.
        command: String,
    },
    /// The prefix is empty or contains a space, CR, LF or NUL.
    #[error("invalid prefix {prefix:?}")]
    BadPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// A parameter before the last is empty, starts with `:`, or contains a space, CR, LF or
    /// NUL: only the last parameter can carry those.
    #[error("parameter {index} ({param:?}) cannot be a middle parameter")]
    BadParam {
        /// Its position, from 0.
        index: usize,
        /// The parameter given.
        param: String,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("too many parameters: {count}, the limit is {max}")]
    TooManyParams {
        /// How many were given.
        count: usize,
        /// The limit, [`MAX_PARAMS`].
        max: usize,
    },
    /// A tag key that is not `[+][vendor/]name`.
    #[error("invalid tag key {key:?}")]
    BadTagKey {
        /// The key given.
        key: String,
    },
    /// The tags, escaped, are longer than [`MAX_TAGS`].
    #[error("tags of {len} bytes exceed the limit of {max} bytes")]
    TagsTooLong {
        /// The tag part's length as it would be written.
        len: usize,
        /// The limit, [`MAX_TAGS`].
        max: usize,
    },
    /// The message without its last parameter's text is already longer than [`MAX_LINE`].
    #[error("message of at least {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// Its length with CR LF, before the last parameter's text.
        len: usize,
        /// The limit, [`MAX_LINE`].
        max: usize,
    },
}

/// Appends one message to `out`: `@tags :prefix COMMAND params\r\n`.
///
/// - Tag values are escaped (a tag with an empty value is written as its key alone).
/// - The last parameter gets a `:` when it must have one (it is empty, contains a space or
///   starts with `:`) or when it was cut; CR, LF and NUL in it become spaces, so no message
///   can smuggle a second line to the receiver.
/// - The result never exceeds [`MAX_LINE`] bytes after the tags, CR LF included. If the last
///   parameter does not fit, its end is cut at a UTF-8 character boundary and
///   [`Written::cut`] says how many bytes were left out: that is right for free text (a
///   relayed chat line, which the server should rather cut into several messages with
///   [`split_text`]) and the caller's business for anything else (a channel name that long
///   should have been refused before).
///
/// Refuses, writing nothing, a bad command, prefix, middle parameter or tag key, more than
/// [`MAX_PARAMS`] parameters, tags longer than [`MAX_TAGS`], and a message that does not fit
/// even with its last parameter cut to nothing.
pub fn write_message(
    out: &mut BytesMut,
    tags: &[(&str, &str)],
    prefix: Option<&str>,
    command: &str,
    params: &[&str],
) -> Result<Written, EncodeError> {
    if !is_command_name(command) {
        return Err(EncodeError::BadCommand {
            command: command.into(),
        });
    }
    if let Some(p) = prefix
        && (p.is_empty() || p.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)))
    {
        return Err(EncodeError::BadPrefix { prefix: p.into() });
    }
    if params.len() > MAX_PARAMS {
        return Err(EncodeError::TooManyParams {
            count: params.len(),
            max: MAX_PARAMS,
        });
    }
    let (last, middle) = match params.split_last() {
        Some((last, middle)) => (Some(*last), middle),
        None => (None, params),
    };
    if let Some((index, param)) = middle.iter().enumerate().find(|(_, p)| !is_middle(p)) {
        return Err(EncodeError::BadParam {
            index,
            param: (*param).into(),
        });
    }
    if let Some((key, _)) = tags.iter().find(|(key, _)| !is_tag_key(key)) {
        return Err(EncodeError::BadTagKey { key: (*key).into() });
    }

    let start = out.len();
    if !tags.is_empty() {
        out.put_u8(b'@');
        for (i, (key, value)) in tags.iter().enumerate() {
            if i > 0 {
                out.put_u8(b';');
            }
            out.put_slice(key.as_bytes());
            if !value.is_empty() {
                out.put_u8(b'=');
                escape_into(out, value);
            }
        }
        out.put_u8(b' ');
        let len = out.len() - start;
        if len > MAX_TAGS {
            out.truncate(start);
            return Err(EncodeError::TagsTooLong { len, max: MAX_TAGS });
        }
    }

    let body = out.len();
    if let Some(p) = prefix {
        out.put_u8(b':');
        out.put_slice(p.as_bytes());
        out.put_u8(b' ');
    }
    out.put_slice(command.as_bytes());
    for param in middle {
        out.put_u8(b' ');
        out.put_slice(param.as_bytes());
    }
    let mut cut = 0;
    if let Some(last) = last {
        // The bytes before the last parameter's text, with its space (and colon if needed).
        let fixed = out.len() - body + 1;
        let colon = !is_middle(last);
        let mut text = last;
        let mut with_colon = colon;
        if fixed + usize::from(colon) + last.len() > MAX_CONTENT {
            with_colon = true;
            let Some(room) = MAX_CONTENT.checked_sub(fixed + 1) else {
                out.truncate(start);
                return Err(EncodeError::TooLong {
                    len: fixed + 1 + 2,
                    max: MAX_LINE,
                });
            };
            text = &last[..floor_char_boundary(last, room)];
            cut = last.len() - text.len();
        }
        out.put_slice(if with_colon { b" :" } else { b" " });
        out.extend(text.bytes().map(|b| {
            if matches!(b, b'\r' | b'\n' | 0) {
                b' '
            } else {
                b
            }
        }));
    } else if out.len() - body > MAX_CONTENT {
        let len = out.len() - body + 2;
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max: MAX_LINE });
    }
    out.put_slice(b"\r\n");
    Ok(Written {
        len: out.len() - start,
        cut,
    })
}

/// Whether `param` can be written as a middle parameter: not empty, not starting with `:`, and
/// with no space, CR, LF or NUL.
fn is_middle(param: &str) -> bool {
    !param.is_empty()
        && !param.starts_with(':')
        && !param.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

/// The largest index at most `at` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// How many bytes of text fit in a trailing last parameter after `prefix`, `command` and the
/// `middle` parameters, within [`MAX_LINE`] (tags are not counted: they have their own limit).
/// Zero if even the rest does not fit.
///
/// This is the `budget` to give [`split_text`] for a relayed message:
/// `trailing_budget(Some("alice!a@h"), "PRIVMSG", &["#rust"])` is 510 minus the length of
/// `:alice!a@h PRIVMSG #rust :`.
pub fn trailing_budget(prefix: Option<&str>, command: &str, middle: &[&str]) -> usize {
    let prefix = prefix.map_or(0, |p| p.len() + 2);
    let middle: usize = middle.iter().map(|m| m.len() + 1).sum();
    MAX_CONTENT.saturating_sub(prefix + command.len() + middle + 2)
}

/// Cuts `text` into pieces of at most `budget` bytes, each ending on a UTF-8 character
/// boundary, preferring to end a piece just after a space so that words stay whole.
///
/// The chat accepts lines of up to 2,048 bytes from its other dialects, four times what one IRC
/// message holds; relayed to an IRC client, such a line becomes several `PRIVMSG`s, each cut by
/// this function with [`trailing_budget`] as the budget. The pieces put back together are
/// exactly `text` (a space at a cut stays at the end of its piece, where clients do not show
/// it). Empty text gives no pieces. A piece is never empty: in the odd case of a budget smaller
/// than the next character (under 4 bytes), that character makes a piece alone.
pub fn split_text(budget: usize, text: &str) -> SplitText<'_> {
    SplitText { rest: text, budget }
}

/// The pieces of a text cut by [`split_text`].
#[derive(Debug, Clone)]
pub struct SplitText<'a> {
    rest: &'a str,
    budget: usize,
}

impl<'a> Iterator for SplitText<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let end = if self.rest.len() <= self.budget {
            self.rest.len()
        } else {
            match floor_char_boundary(self.rest, self.budget) {
                // A budget smaller than the first character: that character alone.
                0 => self.rest.chars().next().map_or(0, char::len_utf8),
                end => match self.rest[..end].rfind(' ') {
                    Some(space) if space > 0 => space + 1,
                    _ => end,
                },
            }
        };
        let (piece, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(piece)
    }
}

/// Whether `name` is a channel name by its first character: `#` (network-wide channels) or `&`
/// (channels local to one server), the two types of RFC 1459 §1.3, which a server announces to
/// its clients as `CHANTYPES=#&` in [`RPL_ISUPPORT`]. Anything else is a nickname.
pub fn is_channel(name: &str) -> bool {
    name.starts_with(['#', '&'])
}

/// The IRCv3 `server-time` tag value for a time given as microseconds since the Unix epoch:
/// `2026-12-04T17:06:59.123Z` (UTC, milliseconds, as the specification requires).
///
/// The time is an argument, like every time in a sans-IO core: the server reads the clock
/// once, and tests pass fixed values. Times past what `jiff` represents (the end of year 9999)
/// are written as its last instant.
pub fn server_time(unix_micros: u64) -> String {
    let ts = i64::try_from(unix_micros)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    format!(
        "{}.{:03}Z",
        ts.strftime("%Y-%m-%dT%H:%M:%S"),
        ts.subsec_millisecond()
    )
}

/// Cuts a byte stream into IRC lines: each ends at `\n`, with an optional `\r` before it, and
/// comes out without its line end, ready for [`parse`].
///
/// Lines are bounded by [`MAX_WIRE_LINE`] (tags plus a 512-byte message) *before* more is
/// buffered: a peer that sends a longer line gets one [`FrameError::TooLarge`] as soon as the
/// limit is passed, the rest of that line is skipped up to its `\n`, and the lines after it are
/// decoded as usual (the connection goes on; the server answers [`ERR_INPUTTOOLONG`]). This is
/// the project's delimited codec, which already does all that for the chat's plain lines; the
/// finer limits (tags and message apart) are [`parse`]'s.
///
/// At the end of the stream, a last line without its `\n` is [`FrameError::PartialFrame`], as
/// for the other codecs.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    inner: DelimitedCodec,
}

impl LineSplitter {
    /// A splitter with the limit of [`MAX_WIRE_LINE`] bytes per line, line end included.
    pub fn new() -> Self {
        // The delimited codec counts the `\r` but not the `\n`.
        Self {
            inner: DelimitedCodec::new(b"\n".to_vec(), MAX_WIRE_LINE - 1),
        }
    }
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for LineSplitter {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        Ok(self.inner.decode(src)?.map(|frame| strip_cr(frame.payload)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        Ok(self
            .inner
            .decode_eof(src)?
            .map(|frame| strip_cr(frame.payload)))
    }
}

/// `line` without one `\r` at its end.
fn strip_cr(mut line: Bytes) -> Bytes {
    if line.ends_with(b"\r") {
        line.truncate(line.len() - 1);
    }
    line
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A message built by hand, for comparing with what [`parse`] returns.
    fn msg<'a>(
        tags: &[(&'a str, Option<&'a str>)],
        prefix: Option<&'a str>,
        command: &'a str,
        params: &[&'a str],
    ) -> Message<'a> {
        Message {
            tags: tags
                .iter()
                .map(|(k, v)| (*k, v.map(Cow::Borrowed)))
                .collect(),
            prefix,
            command,
            params: params.to_vec(),
        }
    }

    /// Writes a message with [`write_message`] and returns the bytes.
    fn emit(
        tags: &[(&str, &str)],
        prefix: Option<&str>,
        command: &str,
        params: &[&str],
    ) -> Vec<u8> {
        let mut out = BytesMut::new();
        let written = write_message(&mut out, tags, prefix, command, params).unwrap();
        assert_eq!(written.len, out.len());
        assert_eq!(written.cut, 0);
        out.to_vec()
    }

    /// The golden pairs: a line as it travels (CR LF included) and the message it is. Each is
    /// parsed (`test_parse`) and written (`test_emit`) in the two tests below; see
    /// [`emitted`] for the lines the writer spells differently.
    fn golden() -> Vec<(&'static [u8], Message<'static>)> {
        vec![
            (
                b":nick!user@host PRIVMSG #chan :hello world\r\n",
                msg(
                    &[],
                    Some("nick!user@host"),
                    "PRIVMSG",
                    &["#chan", "hello world"],
                ),
            ),
            (b"NICK alice\r\n", msg(&[], None, "NICK", &["alice"])),
            (
                b"USER alice 0 * :Alice Real\r\n",
                msg(&[], None, "USER", &["alice", "0", "*", "Alice Real"]),
            ),
            (b"CAP LS 302\r\n", msg(&[], None, "CAP", &["LS", "302"])),
            (
                b"CAP REQ :server-time message-tags\r\n",
                msg(&[], None, "CAP", &["REQ", "server-time message-tags"]),
            ),
            (
                b"@time=2026-12-04T17:06:59.123Z;+example=a\\sb\\:c :n!u@h PRIVMSG #c :x\r\n",
                msg(
                    &[
                        ("time", Some("2026-12-04T17:06:59.123Z")),
                        ("+example", Some("a b;c")),
                    ],
                    Some("n!u@h"),
                    "PRIVMSG",
                    &["#c", "x"],
                ),
            ),
            (b"TOPIC #c :\r\n", msg(&[], None, "TOPIC", &["#c", ""])),
            (
                b"PRIVMSG #c ::-)\r\n",
                msg(&[], None, "PRIVMSG", &["#c", ":-)"]),
            ),
            (
                b":irc.example 001 alice :Welcome to the socklab network, alice\r\n",
                msg(
                    &[],
                    Some("irc.example"),
                    "001",
                    &["alice", "Welcome to the socklab network, alice"],
                ),
            ),
            (
                b"@a;b=\\\\\\r\\n;vendor.example/c=1 QUIT\r\n",
                msg(
                    &[
                        ("a", None),
                        ("b", Some("\\\r\n")),
                        ("vendor.example/c", Some("1")),
                    ],
                    None,
                    "QUIT",
                    &[],
                ),
            ),
            (
                b"A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :15 and more\r\n",
                msg(
                    &[],
                    None,
                    "A",
                    &[
                        "1",
                        "2",
                        "3",
                        "4",
                        "5",
                        "6",
                        "7",
                        "8",
                        "9",
                        "10",
                        "11",
                        "12",
                        "13",
                        "14",
                        "15 and more",
                    ],
                ),
            ),
        ]
    }

    #[test]
    fn test_parse() {
        for (wire, expected) in golden() {
            let line = wire.strip_suffix(b"\r\n").unwrap();
            assert_eq!(
                parse(line).as_ref(),
                Ok(&expected),
                "{}",
                line.escape_ascii()
            );
            // The line end may also be left on.
            assert_eq!(parse(wire).as_ref(), Ok(&expected));
        }
    }

    /// How the writer spells a golden line: as received, except that it uses a trailing `:`
    /// only where one is needed (RFC 2812 allows both; `:x` and `x` are the same parameter).
    fn emitted(wire: &[u8]) -> Vec<u8> {
        let sent: &[u8] =
            b"@time=2026-12-04T17:06:59.123Z;+example=a\\sb\\:c :n!u@h PRIVMSG #c :x\r\n";
        if wire == sent {
            return b"@time=2026-12-04T17:06:59.123Z;+example=a\\sb\\:c :n!u@h PRIVMSG #c x\r\n"
                .to_vec();
        }
        wire.to_vec()
    }

    #[test]
    fn test_emit() {
        for (wire, message) in golden() {
            let wire = &emitted(wire)[..];
            let tags: Vec<(&str, &str)> = message
                .tags
                .iter()
                .map(|(k, v)| (*k, v.as_deref().unwrap_or("")))
                .collect();
            let out = emit(&tags, message.prefix, message.command, &message.params);
            assert_eq!(
                out.escape_ascii().to_string(),
                wire.escape_ascii().to_string()
            );
            assert_eq!(&message.to_bytes().unwrap()[..], wire);
        }
    }

    #[test]
    fn parser_test_vectors() {
        // A selection from ircdocs/parser-tests (msg-split.yaml, CC0): lines servers really
        // send, with the sloppy spacing real software produces.
        let cases: &[(&str, Message<'_>)] = &[
            (
                "foo bar baz asdf",
                msg(&[], None, "foo", &["bar", "baz", "asdf"]),
            ),
            (
                ":coolguy foo bar baz :  asdf quux ",
                msg(&[], Some("coolguy"), "foo", &["bar", "baz", "  asdf quux "]),
            ),
            (
                ":coolguy PRIVMSG bar :lol :) ",
                msg(&[], Some("coolguy"), "PRIVMSG", &["bar", "lol :) "]),
            ),
            (
                "@a=b;c=32;k;rt=ql7 foo",
                msg(
                    &[
                        ("a", Some("b")),
                        ("c", Some("32")),
                        ("k", None),
                        ("rt", Some("ql7")),
                    ],
                    None,
                    "foo",
                    &[],
                ),
            ),
            (
                "@a=b\\\\and\\nk;c=72\\s45;d=gh\\:764 foo",
                msg(
                    &[
                        ("a", Some("b\\and\nk")),
                        ("c", Some("72 45")),
                        ("d", Some("gh;764")),
                    ],
                    None,
                    "foo",
                    &[],
                ),
            ),
            (
                "@c;h=;a=b :quux ab cd",
                msg(
                    &[("c", None), ("h", None), ("a", Some("b"))],
                    Some("quux"),
                    "ab",
                    &["cd"],
                ),
            ),
            (":src AWAY ", msg(&[], Some("src"), "AWAY", &[])),
            (
                ":cool\tguy foo bar baz",
                msg(&[], Some("cool\tguy"), "foo", &["bar", "baz"]),
            ),
            (
                ":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters",
                msg(
                    &[],
                    Some("gravel.mozilla.org"),
                    "432",
                    &["#momo", "Erroneous Nickname: Illegal characters"],
                ),
            ),
            (
                ":services.esper.net MODE #foo-bar +o foobar  ",
                msg(
                    &[],
                    Some("services.esper.net"),
                    "MODE",
                    &["#foo-bar", "+o", "foobar"],
                ),
            ),
            (
                "@tag1=value\\\\ntest COMMAND",
                msg(&[("tag1", Some("value\\ntest"))], None, "COMMAND", &[]),
            ),
            (
                "@tag1=value\\1 COMMAND",
                msg(&[("tag1", Some("value1"))], None, "COMMAND", &[]),
            ),
            (
                "@tag1=value1\\ COMMAND",
                msg(&[("tag1", Some("value1"))], None, "COMMAND", &[]),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line.as_bytes()).as_ref(), Ok(expected), "{line}");
        }
    }

    #[test]
    fn duplicate_tags_keep_the_last_value() {
        let m = parse(b"@tag1=1;tag2=3;tag1=5;vendor/tag2=8 COMMAND").unwrap();
        assert_eq!(m.tag("tag1"), Some("5"));
        assert_eq!(m.tag("tag2"), Some("3"));
        assert_eq!(m.tag("vendor/tag2"), Some("8"));
        assert_eq!(m.tag("tag3"), None);
        assert_eq!(parse(b"@k CMD").unwrap().tag("k"), Some(""));
    }

    #[test]
    fn spaces_are_forgiven() {
        let expected = msg(&[], Some("p"), "PRIVMSG", &["#c", "a  b"]);
        for line in [
            ":p PRIVMSG #c :a  b",
            "   :p PRIVMSG #c :a  b",
            ":p    PRIVMSG   #c    :a  b",
        ] {
            assert_eq!(parse(line.as_bytes()), Ok(expected.clone()), "{line:?}");
        }
        assert_eq!(
            parse(b"  @a=1   :p  PING   x  ").unwrap(),
            msg(&[("a", Some("1"))], Some("p"), "PING", &["x"])
        );
        assert_eq!(parse(b"MODE #c +o  x").unwrap().params, ["#c", "+o", "x"]);
        // The trailing parameter keeps its spaces, at either end.
        assert_eq!(parse(b"PRIVMSG #c :  x  ").unwrap().params, ["#c", "  x  "]);
    }

    #[test]
    fn empty_and_blank_lines() {
        for line in [&b""[..], b" ", b"      ", b"\r\n", b"\n", b"   \r\n"] {
            assert_eq!(parse(line), Err(ParseError::Empty), "{line:?}");
        }
    }

    #[test]
    fn nul_cr_and_lf_are_refused() {
        assert_eq!(
            parse(b"PRIVMSG #c :a\0b"),
            Err(ParseError::ForbiddenByte { byte: 0, at: 13 })
        );
        assert_eq!(
            parse(b"PRIVMSG #c :a\rb"),
            Err(ParseError::ForbiddenByte {
                byte: b'\r',
                at: 13
            })
        );
        assert_eq!(
            parse(b"NICK a\nNICK b"),
            Err(ParseError::ForbiddenByte { byte: b'\n', at: 6 })
        );
        assert_eq!(
            parse(b"\0"),
            Err(ParseError::ForbiddenByte { byte: 0, at: 0 })
        );
        assert_eq!(
            parse(b"PRIVMSG #c :a\0b").unwrap_err().to_string(),
            "byte 0x00 at offset 13 is not allowed in an irc message"
        );
    }

    #[test]
    fn non_utf8_is_refused() {
        let error = parse(b"PRIVMSG #c :caf\xe9").unwrap_err();
        assert_eq!(error, ParseError::NotUtf8 { at: 15 });
        assert_eq!(
            error.to_string(),
            "the line is not utf-8 (first bad byte at offset 15)"
        );
        assert_eq!(
            parse("PRIVMSG #c :café ☕".as_bytes()).unwrap().params[1],
            "café ☕"
        );
    }

    #[test]
    fn invalid_commands() {
        for (line, command) in [
            ("12", "12"),
            ("1234", "1234"),
            ("12a x", "12a"),
            ("PRIV-MSG #c :x", "PRIV-MSG"),
            (":p 0x1 x", "0x1"),
            ("PRIVMSG\t#c", "PRIVMSG\t#c"),
            ("ÉTÉ x", "ÉTÉ"),
        ] {
            assert_eq!(
                parse(line.as_bytes()),
                Err(ParseError::BadCommand {
                    command: command.into()
                }),
                "{line:?}"
            );
        }
        // "PRIV MSG" is the command PRIV with a parameter: valid grammar, unknown command.
        assert_eq!(
            parse(b"PRIV MSG").unwrap(),
            msg(&[], None, "PRIV", &["MSG"])
        );
        assert_eq!(parse(b":p"), Err(ParseError::MissingCommand));
        assert_eq!(parse(b"@a=b "), Err(ParseError::MissingCommand));
        assert_eq!(parse(b"@a=b"), Err(ParseError::MissingCommand));
        assert_eq!(parse(b": PRIVMSG"), Err(ParseError::EmptyPrefix));
        assert_eq!(parse(b":"), Err(ParseError::EmptyPrefix));
        // The tags end at the first space: "b=c" is then the command.
        assert_eq!(
            parse(b"@a b=c CMD"),
            Err(ParseError::BadCommand {
                command: "b=c".into()
            })
        );
    }

    #[test]
    fn bad_tag_keys() {
        for key in ["=x", "+", "/a", "v/", "a.b", "a_b", "é", "+/x", "a/b/c"] {
            let line = format!("@{key} CMD");
            let error = parse(line.as_bytes()).unwrap_err();
            assert!(
                matches!(
                    error,
                    ParseError::BadTagKey { .. } | ParseError::BadCommand { .. }
                ),
                "{line:?}: {error:?}"
            );
        }
        assert_eq!(
            parse(b"@a_b=1 CMD"),
            Err(ParseError::BadTagKey { key: "a_b".into() })
        );
        // Empty items between semicolons are skipped.
        assert_eq!(
            parse(b"@;a=1;; CMD").unwrap(),
            msg(&[("a", Some("1"))], None, "CMD", &[])
        );
    }

    #[test]
    fn commands_compare_without_case() {
        let m = parse(b"privMsg #c :x").unwrap();
        assert_eq!(m.command, "privMsg");
        assert!(m.is_command("PRIVMSG"));
        assert_eq!(m.command_upper(), "PRIVMSG");
        assert!(matches!(
            parse(b"NICK a").unwrap().command_upper(),
            Cow::Borrowed("NICK")
        ));
        assert_eq!(parse(b"433 * a :taken").unwrap().numeric(), Some(433));
        assert_eq!(parse(b"001 a").unwrap().numeric(), Some(1));
        assert_eq!(m.numeric(), None);
    }

    #[test]
    fn fifteen_params_and_no_more() {
        let fifteen = (1..=15)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let m_line = format!("CMD {fifteen}");
        assert_eq!(parse(m_line.as_bytes()).unwrap().params.len(), 15);
        let with_trailing = format!("CMD {fifteen} :sixteen");
        assert_eq!(
            parse(with_trailing.as_bytes()),
            Err(ParseError::TooManyParams { max: 15 })
        );
        let sixteen = format!("CMD {fifteen} 16");
        assert_eq!(
            parse(sixteen.as_bytes()),
            Err(ParseError::TooManyParams { max: 15 })
        );
        // Trailing spaces after the fifteenth are not a sixteenth.
        assert_eq!(
            parse(format!("{m_line}   ").as_bytes())
                .unwrap()
                .params
                .len(),
            15
        );

        let params: Vec<&str> = fifteen.split(' ').collect();
        assert!(write_message(&mut BytesMut::new(), &[], None, "CMD", &params).is_ok());
        let mut sixteen: Vec<&str> = params.clone();
        sixteen.push("16");
        let mut out = BytesMut::new();
        assert_eq!(
            write_message(&mut out, &[], None, "CMD", &sixteen),
            Err(EncodeError::TooManyParams { count: 16, max: 15 })
        );
        assert!(out.is_empty());
    }

    /// A `PRIVMSG #c :xxx…` line of exactly `len` bytes, line end not counted.
    fn privmsg_of_len(len: usize) -> Vec<u8> {
        let head = b"PRIVMSG #c :";
        let mut line = head.to_vec();
        line.resize(len, b'x');
        line
    }

    #[test]
    fn line_of_510_bytes_accepted_511_refused() {
        let line = privmsg_of_len(510);
        assert_eq!(parse(&line).unwrap().params[1].len(), 510 - 12);
        let mut with_crlf = line.clone();
        with_crlf.extend_from_slice(b"\r\n");
        assert!(parse(&with_crlf).is_ok(), "512 with its CR LF");
        let error = parse(&privmsg_of_len(511)).unwrap_err();
        assert_eq!(error, ParseError::LineTooLong { len: 513, max: 512 });
        assert_eq!(error.reply_numeric(), Some(ERR_INPUTTOOLONG));
        assert_eq!(
            error.to_string(),
            "line of 513 bytes (with its line end) exceeds the limit of 512 bytes"
        );
        // Tags do not count against the 510: they have their own budget.
        let mut tagged = b"@label=abc ".to_vec();
        tagged.extend_from_slice(&line);
        assert!(parse(&tagged).is_ok());
    }

    #[test]
    fn tags_up_to_their_limit() {
        let tags_of = |len: usize| {
            // "@a=" + value + " " is `len` bytes.
            let mut line = b"@a=".to_vec();
            line.resize(len - 1, b'v');
            line.extend_from_slice(b" PING x");
            line
        };
        assert_eq!(
            parse(&tags_of(MAX_TAGS)).unwrap().tag("a").unwrap().len(),
            MAX_TAGS - 4
        );
        let error = parse(&tags_of(MAX_TAGS + 1)).unwrap_err();
        assert_eq!(
            error,
            ParseError::TagsTooLong {
                len: 8192,
                max: 8191
            }
        );
        assert_eq!(error.reply_numeric(), Some(ERR_INPUTTOOLONG));
        // Tags that never end are too long as soon as they pass the limit.
        assert!(matches!(
            parse(&[b'@'; 9000]),
            Err(ParseError::TagsTooLong { len: 9000, .. })
        ));
        assert_eq!(ParseError::Empty.reply_numeric(), None);
    }

    #[test]
    fn write_puts_a_colon_only_where_needed() {
        assert_eq!(emit(&[], None, "JOIN", &["#c"]), b"JOIN #c\r\n");
        assert_eq!(
            emit(&[], None, "PRIVMSG", &["#c", "hi"]),
            b"PRIVMSG #c hi\r\n"
        );
        assert_eq!(
            emit(&[], None, "PRIVMSG", &["#c", "a b"]),
            b"PRIVMSG #c :a b\r\n"
        );
        assert_eq!(
            emit(&[], None, "PRIVMSG", &["#c", ":)"]),
            b"PRIVMSG #c ::)\r\n"
        );
        assert_eq!(emit(&[], None, "TOPIC", &["#c", ""]), b"TOPIC #c :\r\n");
        assert_eq!(emit(&[], None, "PING", &[]), b"PING\r\n");
        assert_eq!(
            emit(&[("+typing", "active")], None, "TAGMSG", &["#c"]),
            b"@+typing=active TAGMSG #c\r\n"
        );
    }

    #[test]
    fn write_never_emits_cr_lf_or_nul() {
        let out = emit(
            &[("k", "a\r\nb\0c;d e\\")],
            None,
            "PRIVMSG",
            &["#c", "x\r\nQUIT\0y"],
        );
        assert_eq!(
            out.escape_ascii().to_string(),
            "@k=a\\\\r\\\\nb\\\\sc\\\\:d\\\\se\\\\\\\\ PRIVMSG #c :x  QUIT y\\r\\n"
        );
        let m = parse(&out).unwrap();
        assert_eq!(m.tag("k"), Some("a\r\nb c;d e\\"));
        assert_eq!(m.params, ["#c", "x  QUIT y"]);
    }

    #[test]
    fn write_refuses_what_would_not_parse_back() {
        let mut out = BytesMut::from(&b"kept"[..]);
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
            EncodeError,
        );
        let cases: [Case<'_>; 7] = [
            (
                &[],
                None,
                "12",
                &[],
                EncodeError::BadCommand {
                    command: "12".into(),
                },
            ),
            (
                &[],
                None,
                "PRIV MSG",
                &[],
                EncodeError::BadCommand {
                    command: "PRIV MSG".into(),
                },
            ),
            (
                &[],
                Some(""),
                "PING",
                &[],
                EncodeError::BadPrefix { prefix: "".into() },
            ),
            (
                &[],
                Some("a b"),
                "PING",
                &[],
                EncodeError::BadPrefix {
                    prefix: "a b".into(),
                },
            ),
            (
                &[],
                None,
                "KICK",
                &["", "x"],
                EncodeError::BadParam {
                    index: 0,
                    param: "".into(),
                },
            ),
            (
                &[],
                None,
                "KICK",
                &["#c", "a b", "x"],
                EncodeError::BadParam {
                    index: 1,
                    param: "a b".into(),
                },
            ),
            (
                &[("a b", "")],
                None,
                "PING",
                &[],
                EncodeError::BadTagKey { key: "a b".into() },
            ),
        ];
        for (tags, prefix, command, params, error) in cases {
            assert_eq!(
                write_message(&mut out, tags, prefix, command, params),
                Err(error)
            );
            assert_eq!(&out[..], b"kept", "nothing written on error");
        }
        let huge = "v".repeat(MAX_TAGS);
        assert_eq!(
            write_message(&mut out, &[("a", &huge)], None, "PING", &[]),
            Err(EncodeError::TagsTooLong {
                len: MAX_TAGS + 4,
                max: MAX_TAGS
            })
        );
        let long_target = "#".repeat(600);
        assert_eq!(
            write_message(&mut out, &[], None, "PRIVMSG", &[&long_target, "hi"]),
            Err(EncodeError::TooLong {
                len: 8 + 600 + 2 + 2,
                max: MAX_LINE
            })
        );
        assert_eq!(
            write_message(&mut out, &[], None, &"A".repeat(511), &[]),
            Err(EncodeError::TooLong {
                len: 513,
                max: MAX_LINE
            })
        );
        assert_eq!(&out[..], b"kept");
    }

    #[test]
    fn write_cuts_a_long_last_param_at_a_char_boundary() {
        // 510 bytes of content: "PRIVMSG #c :" is 12, so 498 bytes of text fit.
        let text = "é".repeat(300); // 600 bytes
        let mut out = BytesMut::new();
        let written =
            write_message(&mut out, &[("time", "x")], None, "PRIVMSG", &["#c", &text]).unwrap();
        assert_eq!(written.cut, 600 - 498);
        assert_eq!(written.len, out.len());
        assert_eq!(out.len() - b"@time=x ".len(), MAX_LINE);
        let m = parse(&out).unwrap();
        assert_eq!(m.params[1], "é".repeat(249));
        // One byte less of room: the cut falls inside an "é" and backs up to its start.
        let written =
            write_message(&mut BytesMut::new(), &[], None, "PRIVMSG", &["#cc", &text]).unwrap();
        assert_eq!(written.cut, 600 - 496);
        // A last parameter that needs no colon gets one when cut.
        let word = "x".repeat(600);
        let out = emit_cut(&["#c", &word]);
        assert!(out.starts_with(b"PRIVMSG #c :xxx"));
        assert_eq!(out.len(), MAX_LINE);
    }

    fn emit_cut(params: &[&str]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let written = write_message(&mut out, &[], None, "PRIVMSG", params).unwrap();
        assert!(written.cut > 0);
        out.to_vec()
    }

    #[test]
    fn split_text_prefers_spaces_and_keeps_every_byte() {
        let pieces: Vec<&str> = split_text(10, "hello big wide world").collect();
        assert_eq!(pieces, ["hello big ", "wide world"]);
        let pieces: Vec<&str> = split_text(4, "abcdefghij").collect();
        assert_eq!(pieces, ["abcd", "efgh", "ij"]);
        let pieces: Vec<&str> = split_text(5, "ééé").collect();
        assert_eq!(pieces, ["éé", "é"]);
        assert_eq!(
            split_text(1, "é").collect::<Vec<_>>(),
            ["é"],
            "over budget, alone"
        );
        assert_eq!(split_text(0, "ab").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(split_text(10, "").count(), 0);
        assert_eq!(
            split_text(3, " abcdef").collect::<Vec<_>>(),
            [" ab", "cde", "f"]
        );
    }

    #[test]
    fn long_chat_text_is_relayed_in_pieces_that_fit() {
        let text = "lorem ipsum dolor sit amet ".repeat(75); // 2,025 bytes
        let prefix = "alice!alice@127.0.0.1";
        let budget = trailing_budget(Some(prefix), "PRIVMSG", &["#rust"]);
        assert_eq!(budget, 510 - ":alice!alice@127.0.0.1 PRIVMSG #rust :".len());
        let mut out = BytesMut::new();
        let mut back = String::new();
        for piece in split_text(budget, &text) {
            let before = out.len();
            let written =
                write_message(&mut out, &[], Some(prefix), "PRIVMSG", &["#rust", piece]).unwrap();
            assert_eq!(written.cut, 0);
            assert!(out.len() - before <= MAX_LINE);
            back.push_str(parse(&out[before..]).unwrap().params[1]);
        }
        assert_eq!(back, text);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 5);
        assert_eq!(trailing_budget(None, "X", &[&"m".repeat(600)]), 0);
    }

    #[test]
    fn channel_names() {
        assert!(is_channel("#rust"));
        assert!(is_channel("&local"));
        assert!(!is_channel("alice"));
        assert!(!is_channel(""));
        assert!(!is_channel("+modeless"));
    }

    #[test]
    fn server_time_format() {
        // 2026-12-04T17:06:59.123456Z
        assert_eq!(
            server_time(1_796_404_019_123_456),
            "2026-12-04T17:06:59.123Z"
        );
        assert_eq!(server_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(server_time(999), "1970-01-01T00:00:00.000Z");
        assert_eq!(server_time(u64::MAX), "9999-12-30T22:00:00.999Z");
        let tag = server_time(1_796_404_019_123_456);
        let out = emit(&[("time", &tag)], Some("s"), "PRIVMSG", &["#c", "x"]);
        assert_eq!(parse(&out).unwrap().tag("time"), Some(tag.as_str()));
    }

    #[test]
    fn numerics_are_three_digits() {
        for numeric in [
            RPL_WELCOME,
            RPL_YOURHOST,
            RPL_CREATED,
            RPL_MYINFO,
            RPL_ISUPPORT,
            RPL_UMODEIS,
            RPL_ENDOFINVITELIST,
            RPL_ENDOFEXCEPTLIST,
            RPL_ENDOFBANLIST,
            RPL_WHOISUSER,
            RPL_WHOISSERVER,
            RPL_ENDOFWHO,
            RPL_ENDOFWHOIS,
            RPL_WHOISCHANNELS,
            RPL_LIST,
            RPL_LISTEND,
            RPL_CHANNELMODEIS,
            RPL_NOTOPIC,
            RPL_TOPIC,
            RPL_WHOREPLY,
            RPL_NAMREPLY,
            RPL_ENDOFNAMES,
            RPL_MOTD,
            RPL_MOTDSTART,
            RPL_ENDOFMOTD,
            ERR_NOSUCHNICK,
            ERR_NOSUCHCHANNEL,
            ERR_CANNOTSENDTOCHAN,
            ERR_NORECIPIENT,
            ERR_NOTEXTTOSEND,
            ERR_INPUTTOOLONG,
            ERR_UNKNOWNCOMMAND,
            ERR_NOMOTD,
            ERR_NONICKNAMEGIVEN,
            ERR_ERRONEUSNICKNAME,
            ERR_NICKNAMEINUSE,
            ERR_NOTONCHANNEL,
            ERR_NOTREGISTERED,
            ERR_NEEDMOREPARAMS,
            ERR_ALREADYREGISTRED,
            ERR_UNKNOWNMODE,
            ERR_CHANOPRIVSNEEDED,
            ERR_UMODEUNKNOWNFLAG,
            ERR_USERSDONTMATCH,
        ] {
            assert!(is_command_name(numeric) && numeric.len() == 3, "{numeric}");
        }
        assert_eq!((ERR_INPUTTOOLONG, ERR_ALREADYREGISTRED), ("417", "462"));
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errors: Vec<String> = [
            ParseError::Empty,
            ParseError::TagsTooLong { len: 1, max: 0 },
            ParseError::LineTooLong { len: 1, max: 0 },
            ParseError::ForbiddenByte { byte: 0, at: 0 },
            ParseError::NotUtf8 { at: 0 },
            ParseError::BadTagKey { key: "k".into() },
            ParseError::EmptyPrefix,
            ParseError::MissingCommand,
            ParseError::BadCommand {
                command: "1".into(),
            },
            ParseError::TooManyParams { max: 15 },
        ]
        .iter()
        .map(ToString::to_string)
        .chain(
            [
                EncodeError::BadCommand {
                    command: "1".into(),
                },
                EncodeError::BadPrefix { prefix: "".into() },
                EncodeError::BadParam {
                    index: 0,
                    param: "".into(),
                },
                EncodeError::TooManyParams { count: 16, max: 15 },
                EncodeError::BadTagKey { key: "".into() },
                EncodeError::TagsTooLong { len: 1, max: 0 },
                EncodeError::TooLong { len: 1, max: 0 },
            ]
            .iter()
            .map(ToString::to_string),
        )
        .collect();
        for message in errors {
            assert!(
                message.starts_with(|c: char| c.is_ascii_lowercase()),
                "{message}"
            );
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    // The line splitter.

    /// Every line (or error kind) the splitter gives for `stream` cut into reads of `read`.
    fn split_lines(stream: &[u8], read: usize) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut splitter = LineSplitter::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let push = |r: Result<Option<Bytes>, FrameError>, out: &mut Vec<_>| match r {
            Ok(Some(line)) => {
                out.push(Ok(line.to_vec()));
                true
            }
            Ok(None) => false,
            Err(FrameError::TooLarge { .. }) => {
                out.push(Err("too large"));
                true
            }
            Err(_) => {
                out.push(Err("partial"));
                false
            }
        };
        for piece in stream.chunks(read.max(1)) {
            buf.extend_from_slice(piece);
            while push(splitter.decode(&mut buf), &mut out) {}
            assert!(buf.len() <= MAX_WIRE_LINE);
        }
        while push(splitter.decode_eof(&mut buf), &mut out) {}
        out
    }

    #[test]
    fn splitter_takes_lf_and_crlf() {
        let stream = b"NICK a\r\nUSER a 0 * :A\n\r\nPING x\r\n";
        let expected: Vec<Result<Vec<u8>, &str>> = vec![
            Ok(b"NICK a".to_vec()),
            Ok(b"USER a 0 * :A".to_vec()),
            Ok(b"".to_vec()),
            Ok(b"PING x".to_vec()),
        ];
        for read in [1, 2, 3, 7, stream.len()] {
            assert_eq!(split_lines(stream, read), expected, "reads of {read}");
        }
        // A lone \r is kept (parse refuses it); only the one before \n is the line end.
        assert_eq!(split_lines(b"a\r\r\n", 1), [Ok(b"a\r".to_vec())]);
        assert_eq!(split_lines(b"PING x", 2), [Err("partial")]);
    }

    #[test]
    fn splitter_skips_an_over_long_line_once_and_goes_on() {
        let mut stream = b"NICK a\r\n".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 100_000));
        stream.extend_from_slice(b"\r\nPING y\r\n");
        let expected: Vec<Result<Vec<u8>, &str>> = vec![
            Ok(b"NICK a".to_vec()),
            Err("too large"),
            Ok(b"PING y".to_vec()),
        ];
        for read in [1000, 4096, stream.len()] {
            assert_eq!(split_lines(&stream, read), expected, "reads of {read}");
        }
    }

    #[test]
    fn splitter_limit_is_tags_plus_a_message() {
        let mut line = vec![b'@'; MAX_WIRE_LINE - 2];
        line.extend_from_slice(b"\r\n");
        assert_eq!(split_lines(&line, 512).len(), 1);
        assert!(split_lines(&line, 512)[0].is_ok());
        let mut longer = vec![b'@'; MAX_WIRE_LINE - 1];
        longer.extend_from_slice(b"\r\n");
        assert_eq!(split_lines(&longer, 512), [Err("too large")]);
    }

    // Round trips.

    /// A middle parameter: printable, no space, not starting with ':'.
    fn middle() -> impl Strategy<Value = String> {
        "[^ :\r\n\0][^ \r\n\0]{0,20}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn write_then_parse_gives_the_message_back(
            tags in proptest::collection::vec(("\\+?([a-z0-9.-]{1,8}/)?[A-Za-z0-9-]{1,8}", "\\PC{0,12}"), 0..4),
            prefix in proptest::option::of("[^ \r\n\0]{1,30}"),
            command in "[A-Za-z]{1,10}|[0-9]{3}",
            mut params in proptest::collection::vec(middle(), 0..14),
            last in proptest::option::of("\\PC{0,40}|[ :]{0,3}"),
        ) {
            params.extend(last);
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            // Keep to messages that fit whole (cutting has its own tests).
            let len = prefix.as_ref().map_or(0, |p| p.len() + 2)
                + command.len()
                + params.iter().map(|p| p.len() + 2).sum::<usize>();
            prop_assume!(len <= MAX_CONTENT);
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut out = BytesMut::new();
            let written = write_message(&mut out, &tags, prefix.as_deref(), &command, &params).unwrap();
            prop_assert_eq!(written.cut, 0);
            let tags_len = if tags.is_empty() { 0 } else { out.iter().position(|&b| b == b' ').unwrap() + 1 };
            prop_assert!(out.len() - tags_len <= MAX_LINE);
            let m = parse(&out).unwrap();
            prop_assert_eq!(m.prefix, prefix.as_deref());
            prop_assert_eq!(m.command, command.as_str());
            prop_assert_eq!(&m.params, &params);
            let got: Vec<(&str, &str)> = m.tags.iter().map(|(k, v)| (*k, v.as_deref().unwrap_or(""))).collect();
            prop_assert_eq!(got, tags);
            // And the parsed message writes back to the same bytes.
            prop_assert_eq!(&m.to_bytes().unwrap()[..], &out[..]);
        }

        #[test]
        fn parse_then_write_then_parse_is_stable(line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b':'), Just(b'@'), Just(b';'), Just(b'='), Just(b'\\'),
                        Just(b'a'), Just(b'B'), Just(b'1'), Just(b'+'), Just(b'/'), any::<u8>()],
            0..60,
        )) {
            if let Ok(m) = parse(&line) {
                let wire = m.to_bytes().unwrap();
                prop_assert!(wire.len() <= line.len() + 2, "the message grew");
                prop_assert_eq!(parse(&wire).unwrap(), m);
            }
        }

        #[test]
        fn split_text_pieces_fit_and_join_back(budget in 4usize..64, text in "\\PC{0,300}") {
            let pieces: Vec<&str> = split_text(budget, &text).collect();
            prop_assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= budget));
            prop_assert_eq!(pieces.concat(), text);
        }
    }
}
