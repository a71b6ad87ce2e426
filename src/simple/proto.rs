//! The sans-IO core of the simple services: what each one says, and how a client reads it.
//!
//! Nothing here touches a socket or reads the clock: the time and the random choices come in
//! as arguments, so every reply is a deterministic function that unit tests pin down.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, Zoned};

/// The six services of RFCs 862–868, as inetd runs them built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// RFC 862: send back what arrives.
    Echo,
    /// RFC 863: throw away what arrives.
    Discard,
    /// RFC 864: an endless stream of characters.
    Chargen,
    /// RFC 865: a quotation.
    Qotd,
    /// RFC 867: the date and time, human readable.
    Daytime,
    /// RFC 868: seconds since 1900, as 4 bytes.
    Time,
}

impl Service {
    /// All six, in port order.
    pub const ALL: [Service; 6] = [
        Service::Echo,
        Service::Discard,
        Service::Daytime,
        Service::Qotd,
        Service::Chargen,
        Service::Time,
    ];

    /// The port the RFC assigns.
    pub fn rfc_port(self) -> u16 {
        match self {
            Service::Echo => 7,
            Service::Discard => 9,
            Service::Daytime => 13,
            Service::Qotd => 17,
            Service::Chargen => 19,
            Service::Time => 37,
        }
    }

    /// The service's name (as in /etc/services).
    pub fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::Discard => "discard",
            Service::Chargen => "chargen",
            Service::Qotd => "qotd",
            Service::Daytime => "daytime",
            Service::Time => "time",
        }
    }

    /// The RFC that defines it.
    pub fn rfc(self) -> u16 {
        match self {
            Service::Echo => 862,
            Service::Discard => 863,
            Service::Chargen => 864,
            Service::Qotd => 865,
            Service::Daytime => 867,
            Service::Time => 868,
        }
    }

    /// True for the services whose UDP reply can be larger than the request (an attacker who
    /// forges the source address turns them into amplifiers).
    pub fn amplifies(self) -> bool {
        matches!(self, Service::Chargen | Service::Qotd | Service::Daytime)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// chargen (RFC 864)

/// Characters per chargen line (RFC 864: "72 character lines").
pub const CHARGEN_LINE: usize = 72;
/// The printable ASCII characters, space (0x20) to tilde (0x7E).
pub const PRINTABLE: usize = 95;

/// Line `n` of the TCP chargen stream: 72 printable characters starting with character
/// `n mod 95`, then CR LF (RFC 864's "rotating" pattern).
///
/// ```
/// use socklab::simple::proto::chargen_line;
/// assert!(chargen_line(0).starts_with(b" !\"#$%&"));
/// assert!(chargen_line(1).starts_with(b"!\"#$%&'"));
/// assert!(chargen_line(0).ends_with(b"efg\r\n"));
/// ```
pub fn chargen_line(n: usize) -> [u8; CHARGEN_LINE + 2] {
    let mut line = [0u8; CHARGEN_LINE + 2];
    for (i, b) in line[..CHARGEN_LINE].iter_mut().enumerate() {
        *b = 0x20 + ((n + i) % PRINTABLE) as u8;
    }
    line[CHARGEN_LINE] = b'\r';
    line[CHARGEN_LINE + 1] = b'\n';
    line
}

/// One full period of the TCP stream (95 lines, 7030 bytes); the stream is this, repeated.
pub fn chargen_cycle() -> Vec<u8> {
    (0..PRINTABLE).flat_map(chargen_line).collect()
}

/// The UDP chargen reply: `len` bytes (at most 512) of the TCP stream, starting at the
/// beginning of line `line`. RFC 864: "the server sends a UDP datagram containing a random
/// number (between 0 and 512) of characters". The caller picks `len` and `line` at random.
pub fn chargen_datagram(len: usize, line: usize) -> Vec<u8> {
    let len = len.min(MAX_UDP_CHARGEN);
    (line..).flat_map(chargen_line).take(len).collect()
}

/// Largest UDP chargen reply RFC 864 allows (some servers, xinetd among them, send 1024).
pub const MAX_UDP_CHARGEN: usize = 512;

/// Checks that `data` is a stretch of a chargen stream, cut anywhere: printable characters
/// in lines of 72 ended by CR LF, each line the previous one shifted left by one character.
/// Servers differ in which characters the ring holds (ours: all 95 printables, as RFC 864
/// suggests; xinetd: `!` to `}`), so only the shift is checked, never the ring itself.
/// Returns the offset of the first byte that breaks the pattern.
pub fn check_chargen(data: &[u8]) -> Result<(), usize> {
    // Split into segments between CR LF pairs: (offset, bytes).
    let mut segments = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                segments.push((start, &data[start..i]));
                i += 2;
                start = i;
            }
            // A lone CR at the very end: the LF was cut off.
            b'\r' if i + 1 == data.len() => {
                segments.push((start, &data[start..i]));
                i += 1;
                start = i;
            }
            // A lone LF at the very start: the CR was cut off.
            b'\n' if i == 0 => {
                i += 1;
                start = i;
            }
            0x20..=0x7e => i += 1,
            _ => return Err(i),
        }
    }
    if start < data.len() {
        segments.push((start, &data[start..]));
    }
    for (k, &(at, seg)) in segments.iter().enumerate() {
        if seg.len() > CHARGEN_LINE {
            return Err(at + CHARGEN_LINE);
        }
        // Lines between the first and the last must be whole.
        if k > 0 && k + 1 < segments.len() && seg.len() != CHARGEN_LINE {
            return Err(at + seg.len());
        }
    }
    for pair in segments.windows(2) {
        let ((a_at, a), (_, b)) = (pair[0], pair[1]);
        // `a` may be the tail of a line: its first byte sits in column `col`.
        let col = CHARGEN_LINE - a.len();
        for (t, &byte) in a.iter().enumerate() {
            let j = col + t;
            if j >= 1 && j - 1 < b.len() && b[j - 1] != byte {
                return Err(a_at + t);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// qotd (RFC 865)

/// RFC 865: "the quote ... should be limited to ASCII printing characters, space, carriage
/// return, and line feed. The quote may be just one or up to several lines, but it should be
/// less than 512 characters."
pub const MAX_QUOTE: usize = 511;
/// Largest `--quotes` file read (a fortune file is a few hundred KiB): it is read whole at
/// start-up and kept in memory.
pub const MAX_QUOTES_FILE: u64 = 16 << 20;

/// The built-in quotations (all from antiquity or from the RFCs themselves).
pub const BUILTIN_QUOTES: &[&str] = &[
    "Be conservative in what you do, be liberal in what you accept from others. - RFC 793",
    "The only true wisdom is in knowing you know nothing. - Socrates",
    "No man ever steps in the same river twice. - Heraclitus",
    "It does not matter how slowly you go as long as you do not stop. - Confucius",
    "Luck is what happens when preparation meets opportunity. - Seneca",
    "We are what we repeatedly do. - after Aristotle",
    "A journey of a thousand miles begins with a single step. - Lao Tzu",
    "Well begun is half done. - Aristotle",
    "An investment in knowledge pays the best interest. - Benjamin Franklin",
    "Any data received is sent back. - RFC 862",
];

/// Why a quotes file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotesError {
    /// Nothing usable in it.
    #[error("no quotes in the file (one per line, or fortune style separated by '%' lines)")]
    Empty,
}

/// A parsed quotes file, with the count of entries skipped for being too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotes {
    /// The usable quotes, each already in wire form (ends with CR LF).
    pub quotes: Vec<String>,
    /// Entries longer than [`MAX_QUOTE`] or not printable ASCII, skipped.
    pub skipped: usize,
}

impl Quotes {
    /// The built-in list.
    pub fn builtin() -> Self {
        Self {
            quotes: BUILTIN_QUOTES.iter().map(|q| format!("{q}\r\n")).collect(),
            skipped: 0,
        }
    }

    /// Parses a quotes file: fortune style (entries separated by lines holding only `%`) when
    /// it has such a line, otherwise one quote per non-empty line. Entries that are too long
    /// or hold anything but printable ASCII, tabs and line breaks are skipped and counted.
    pub fn parse(text: &str) -> Result<Self, QuotesError> {
        let fortune = text.lines().any(|l| l.trim_end() == "%");
        let entries: Vec<String> = if fortune {
            let mut out = Vec::new();
            let mut cur = String::new();
            for line in text.lines() {
                if line.trim_end() == "%" {
                    out.push(std::mem::take(&mut cur));
                } else {
                    cur.push_str(line.trim_end());
                    cur.push('\n');
                }
            }
            out.push(cur);
            out
        } else {
            text.lines().map(|l| l.trim().to_string()).collect()
        };
        let mut quotes = Vec::new();
        let mut skipped = 0;
        for entry in entries {
            let entry = entry.trim_matches('\n').trim_end();
            if entry.is_empty() {
                continue;
            }
            let wire = format!("{}\r\n", entry.replace('\n', "\r\n"));
            let printable = wire
                .bytes()
                .all(|b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            if wire.len() > MAX_QUOTE || !printable {
                skipped += 1;
                continue;
            }
            quotes.push(wire);
        }
        if quotes.is_empty() {
            return Err(QuotesError::Empty);
        }
        Ok(Self { quotes, skipped })
    }

    /// The quote for a random index.
    pub fn pick(&self, random: usize) -> &str {
        // `parse` and `builtin` never build an empty list.
        &self.quotes[random % self.quotes.len()]
    }
}

// ---------------------------------------------------------------------------------------------
// daytime (RFC 867)

/// The daytime string for `now`, in the form of RFC 867's example ("Weekday, Month Day, Year
/// HH:MM:SS-Zone"), then CR LF. RFC 867 leaves the syntax free; this one is unambiguous
/// because the numeric offset follows the zone name.
///
/// ```
/// use socklab::simple::proto::daytime_reply;
/// let t: jiff::Timestamp = "1982-02-22T17:37:43Z".parse().unwrap();
/// let now = t.to_zoned(jiff::tz::TimeZone::UTC);
/// assert_eq!(daytime_reply(&now), "Monday, February 22, 1982 17:37:43-UTC (+00:00)\r\n");
/// ```
pub fn daytime_reply(now: &Zoned) -> String {
    let name = now.strftime("%Z").to_string();
    let clock = now.strftime("%A, %B %-d, %Y %H:%M:%S");
    let offset = now.strftime("%:z");
    if name.starts_with(['+', '-']) || name.is_empty() {
        // A zone with no abbreviation: the offset alone.
        format!("{clock} ({offset})\r\n")
    } else {
        format!("{clock}-{name} ({offset})\r\n")
    }
}

/// Longest daytime reply a client accepts (RFC 867 replies are one short line).
pub const MAX_DAYTIME: usize = 512;

/// A daytime string that was understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDaytime {
    /// The instant it names.
    pub at: Timestamp,
    /// Which format matched.
    pub format: &'static str,
}

/// Reads the time out of a daytime reply, trying the forms servers actually send: RFC 3339,
/// RFC 2822, the NIST format (`60586 24-11-21 20:59:10 00 0 0 123.4 UTC(NIST) *`), RFC 867's
/// example form (`Tuesday, February 22, 1982 17:37:43-PST`, also with our `(+00:00)`), xinetd's
/// (`21 NOV 2026 21:04:07 UTC`) and asctime/ctime (`Sat Nov 21 21:04:07 2026`, inetutils and
/// most C daemons). A string with no zone is read in `local`. `None` when nothing matches, or
/// when the zone is a name we cannot place (the offset would be a guess).
pub fn parse_daytime(reply: &str, local: &TimeZone) -> Option<ParsedDaytime> {
    let text = reply.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if let Ok(at) = text.parse::<Timestamp>() {
        return Some(ParsedDaytime {
            at,
            format: "RFC 3339",
        });
    }
    if let Ok(z) = jiff::fmt::rfc2822::parse(text) {
        return Some(ParsedDaytime {
            at: z.timestamp(),
            format: "RFC 2822",
        });
    }
    if let Some(at) = parse_nist(text) {
        return Some(ParsedDaytime { at, format: "NIST" });
    }
    // Free forms: find the zone (a numeric offset in parentheses, or a name), take it out,
    // drop the weekday (RFC 867's own example has the wrong one), and try the known layouts.
    let (rest, zone) = take_zone(text)?;
    let words: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .filter(|w| !is_weekday(w))
        .collect();
    let joined = words.join(" ");
    for (format, layout) in [
        ("RFC 867 example", "%B %d %Y %H:%M:%S"),
        ("asctime", "%b %d %H:%M:%S %Y"),
        ("day month year", "%d %b %Y %H:%M:%S"),
    ] {
        let Ok(dt) = jiff::fmt::strtime::parse(layout, &joined).and_then(|b| b.to_datetime())
        else {
            continue;
        };
        let at = match &zone {
            Zone::Offset(off) => off.to_timestamp(dt).ok()?,
            Zone::Local => local.to_ambiguous_timestamp(dt).compatible().ok()?,
        };
        return Some(ParsedDaytime { at, format });
    }
    None
}

enum Zone {
    Offset(Offset),
    Local,
}

fn is_weekday(w: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let w = w.to_ascii_lowercase();
    DAYS.iter()
        .any(|d| *d == w || (w.len() == 3 && d.starts_with(&w)))
}

/// Splits the zone off a free-form daytime string.
fn take_zone(text: &str) -> Option<(String, Zone)> {
    // Our own form ends with "(+01:00)": the offset is authoritative.
    if let Some(open) = text.rfind('(')
        && text.ends_with(')')
    {
        let inner = &text[open + 1..text.len() - 1];
        let off = parse_offset(inner)?;
        let rest = text[..open].trim_end();
        // Drop the zone name before it ("17:37:43-CET").
        let rest = match rest.rfind(['-', ' ']) {
            Some(i)
                if rest[i + 1..].chars().all(|c| c.is_ascii_alphabetic()) && i + 1 < rest.len() =>
            {
                &rest[..i]
            }
            _ => rest,
        };
        return Some((rest.to_string(), Zone::Offset(off)));
    }
    // A zone word anywhere ("... 17:37:43-PST", "... 21:04:07 UTC", "... 21:04:07 UTC 2026").
    let mut rest = String::new();
    let mut zone = None;
    for word in text.split(' ') {
        let (head, tail) = match word.rsplit_once('-') {
            Some((h, t)) if h.contains(':') => (h, Some(t)),
            _ => (word, None),
        };
        let candidate = tail.unwrap_or(head);
        if zone.is_none()
            && !candidate.is_empty()
            && candidate.chars().all(|c| c.is_ascii_alphabetic())
            && let Some(off) = known_zone(candidate)
        {
            zone = Some(off);
            if tail.is_some() {
                rest.push_str(head);
                rest.push(' ');
            }
            continue;
        }
        if tail.is_some() && zone.is_none() && candidate.chars().all(|c| c.is_ascii_alphabetic()) {
            // A zone name we cannot place: no honest offset.
            return None;
        }
        rest.push_str(word);
        rest.push(' ');
    }
    let zone = zone.map(Zone::Offset).unwrap_or(Zone::Local);
    Some((rest.trim_end().to_string(), zone))
}

fn parse_offset(s: &str) -> Option<Offset> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = digits
        .split_once(':')
        .unwrap_or((digits.get(..2)?, digits.get(2..)?));
    // Unsigned, two digits each: "+07:-88" or "+0700000" is no offset.
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    Offset::from_seconds(sign * (i32::from(h) * 3600 + i32::from(m) * 60)).ok()
}

/// Zone names whose offset is unambiguous enough to use.
fn known_zone(name: &str) -> Option<Offset> {
    let hours = match name.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "UT" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => return None,
    };
    Offset::from_hours(hours).ok()
}

/// NIST's daytime: `JJJJJ YR-MO-DA HH:MM:SS TT L H msADV UTC(NIST) OTM`.
fn parse_nist(text: &str) -> Option<Timestamp> {
    if !text.contains("UTC(NIST)") {
        return None;
    }
    let mut words = text.split_whitespace();
    let _mjd = words.next()?;
    let date = words.next()?;
    let time = words.next()?;
    let dt: DateTime = jiff::fmt::strtime::parse("%y-%m-%d %H:%M:%S", format!("{date} {time}"))
        .and_then(|b| b.to_datetime())
        .ok()?;
    Offset::UTC.to_timestamp(dt).ok()
}

// ---------------------------------------------------------------------------------------------
// time (RFC 868)

/// Seconds from 1900-01-01 00:00 UTC to the Unix epoch (RFC 868 "the time 1 Jan 1970 GMT"
/// is 2,208,988,800).
pub const EPOCH_OFFSET: i64 = 2_208_988_800;

/// The 4-byte RFC 868 reply for a Unix time: seconds since 1900, big-endian, modulo 2^32 (the
/// count wraps on 2036-02-07 06:28:16 UTC).
///
/// ```
/// use socklab::simple::proto::time_reply;
/// assert_eq!(time_reply(0), 2_208_988_800u32.to_be_bytes());
/// ```
pub fn time_reply(unix_secs: i64) -> [u8; 4] {
    ((unix_secs + EPOCH_OFFSET).rem_euclid(1 << 32) as u32).to_be_bytes()
}

/// Reads an RFC 868 value back into Unix seconds, choosing the 136-year era closest to
/// `now_unix` (so a server past the 2036 wrap, or a client clock slightly off, still works).
pub fn decode_time(reply: [u8; 4], now_unix: i64) -> i64 {
    let raw = u32::from_be_bytes(reply) as i64 - EPOCH_OFFSET;
    let era = 1i64 << 32;
    let k = ((now_unix - raw) as f64 / era as f64).round() as i64;
    raw + k * era
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chargen_lines_rotate_through_the_printables() {
        let l0 = chargen_line(0);
        assert_eq!(&l0[..10], b" !\"#$%&'()");
        assert_eq!(&l0[70..], b"fg\r\n");
        let l94 = chargen_line(94);
        assert_eq!(l94[0], b'~');
        assert_eq!(l94[1], b' ');
        assert_eq!(chargen_line(95), l0, "the pattern repeats every 95 lines");
        let cycle = chargen_cycle();
        assert_eq!(cycle.len(), 95 * 74);
        assert!(
            cycle
                .chunks(74)
                .all(|l| l[..72].iter().all(|b| (0x20..0x7f).contains(b)))
        );
    }

    #[test]
    fn chargen_checker_accepts_the_stream_from_anywhere_and_finds_a_flaw() {
        let stream: Vec<u8> = chargen_cycle().repeat(2);
        for start in [0, 1, 71, 72, 73, 74, 75, 500, 7029] {
            for len in [0, 1, 50, 74, 148, 1000] {
                let part = &stream[start..start + len];
                assert_eq!(check_chargen(part), Ok(()), "{start}+{len}");
            }
        }
        let mut bad = stream[..1000].to_vec();
        bad[300] = b'#';
        assert!(check_chargen(&bad).is_err());
        let mut bad = stream[..1000].to_vec();
        bad[72] = b'\n';
        assert!(check_chargen(&bad).is_err());
        assert_eq!(check_chargen(b"abc\x01"), Err(3));
    }

    #[test]
    fn chargen_checker_accepts_other_rings() {
        // xinetd's ring runs from '!' to '}' (93 characters).
        let ring: Vec<u8> = (b'!'..=b'}').collect();
        let mut data = Vec::new();
        for line in 0..40 {
            data.extend((0..72).map(|i| ring[(line + i) % ring.len()]));
            data.extend_from_slice(b"\r\n");
        }
        assert_eq!(check_chargen(&data[100..2000]), Ok(()));
    }

    #[test]
    fn chargen_datagram_is_bounded() {
        assert_eq!(chargen_datagram(0, 5), b"");
        assert_eq!(chargen_datagram(3, 0), b" !\"");
        assert_eq!(chargen_datagram(3, 1), b"!\"#");
        assert_eq!(chargen_datagram(10_000, 0).len(), 512);
        for line in 0..95 {
            assert_eq!(check_chargen(&chargen_datagram(512, line)), Ok(()));
        }
    }

    #[test]
    fn quotes_one_per_line_and_fortune() {
        let q = Quotes::parse("first\n\nsecond\n").unwrap();
        assert_eq!(q.quotes, ["first\r\n", "second\r\n"]);
        let f = Quotes::parse("one\nline two\n%\nthree\n%\n").unwrap();
        assert_eq!(f.quotes, ["one\r\nline two\r\n", "three\r\n"]);
        let long = "x".repeat(600);
        let q = Quotes::parse(&format!("ok\n{long}\nbad\u{7}\n")).unwrap();
        assert_eq!((q.quotes.len(), q.skipped), (1, 2));
        assert_eq!(Quotes::parse("\n\n%\n"), Err(QuotesError::Empty));
        assert!(
            Quotes::builtin()
                .quotes
                .iter()
                .all(|q| q.len() <= MAX_QUOTE && q.ends_with("\r\n"))
        );
    }

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn daytime_round_trips_through_our_own_parser() {
        let plus_one = TimeZone::fixed(Offset::from_hours(1).unwrap());
        let now = ts("2026-11-21T21:04:07Z").to_zoned(plus_one);
        let reply = daytime_reply(&now);
        assert_eq!(reply, "Saturday, November 21, 2026 22:04:07 (+01:00)\r\n");
        let p = parse_daytime(&reply, &utc()).unwrap();
        assert_eq!(p.at, ts("2026-11-21T21:04:07Z"));
    }

    #[test]
    fn daytime_formats_servers_send() {
        let cases = [
            ("2026-11-21T21:04:07Z", "RFC 3339"),
            ("Sat, 21 Nov 2026 21:04:07 +0000", "RFC 2822"),
            ("61000 26-11-21 21:04:07 00 0 0 150.0 UTC(NIST) *", "NIST"),
            (
                "Saturday, November 21, 2026 21:04:07-UTC",
                "RFC 867 example",
            ),
            ("Tuesday, November 21, 2026 13:04:07-PST", "RFC 867 example"),
            // xinetd's form (jiff's RFC 2822 parser takes it: the weekday is optional there).
            ("21 NOV 2026 21:04:07 UTC", "RFC 2822"),
            ("21 Nov 2026 21:04:07", "day month year"),
            ("Sat Nov 21 21:04:07 2026\r\n", "asctime"),
            ("Sat Nov 21 21:04:07 UTC 2026", "asctime"),
        ];
        for (text, format) in cases {
            let p = parse_daytime(text, &utc()).unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(
                (p.at, p.format),
                (ts("2026-11-21T21:04:07Z"), format),
                "{text:?}"
            );
        }
    }

    #[test]
    fn daytime_without_zone_is_local_and_unknown_zone_is_refused() {
        let cet = TimeZone::fixed(Offset::from_hours(1).unwrap());
        let p = parse_daytime("Sat Nov 21 22:04:07 2026", &cet).unwrap();
        assert_eq!(p.at, ts("2026-11-21T21:04:07Z"));
        assert_eq!(
            parse_daytime("Saturday, November 21, 2026 21:04:07-XYZ", &utc()),
            None
        );
        assert_eq!(parse_daytime("hello world", &utc()), None);
        // Found by the simple_reply fuzz target: a signed minute field overflowed.
        assert_eq!(
            parse_daytime("Sy\u{ec}@\0-(+07:-888888806)\n", &utc()),
            None
        );
        assert_eq!(
            parse_daytime("Nov 21 2026 21:04:07 (+0700000)", &utc()),
            None
        );
        assert_eq!(parse_daytime("", &utc()), None);
    }

    #[test]
    fn time_golden_bytes() {
        assert_eq!(time_reply(0), [0x83, 0xaa, 0x7e, 0x80]);
        // 2036-02-07T06:28:16Z is 2^32 seconds after 1900: the counter reads 0.
        let wrap = ts("2036-02-07T06:28:16Z").as_second();
        assert_eq!(time_reply(wrap), [0, 0, 0, 0]);
        assert_eq!(decode_time([0, 0, 0, 0], wrap), wrap);
        assert_eq!(decode_time([0xff, 0xff, 0xff, 0xff], wrap), wrap - 1);
        assert_eq!(decode_time(time_reply(0), 1_800_000_000), 0);
    }

    proptest! {
        #[test]
        fn time_round_trips_near_now(t in -1_000_000_000i64..10_000_000_000, skew in -1_000_000i64..1_000_000) {
            prop_assert_eq!(decode_time(time_reply(t), t + skew), t);
        }

        #[test]
        fn daytime_parser_never_panics(s in ".{0,80}") {
            let _ = parse_daytime(&s, &TimeZone::UTC);
        }

        #[test]
        fn daytime_round_trips_any_instant(secs in 0i64..4_000_000_000, off_h in -12i8..14) {
            let tz = TimeZone::fixed(Offset::from_hours(off_h).unwrap());
            let now = Timestamp::from_second(secs).unwrap().to_zoned(tz);
            let p = parse_daytime(&daytime_reply(&now), &TimeZone::UTC).unwrap();
            prop_assert_eq!(p.at.as_second(), secs);
        }
    }
}
