//! `--precompressed`: which stored variant of a file (`FILE.br`, `FILE.zst`, `FILE.gz`) a
//! request's `Accept-Encoding` asks for (RFC 9110 §12.5.3), as a pure function of the request
//! headers. Looking the variants up on disk is [`files::variant`](super::files::variant)'s job;
//! this module never touches a file.
//!
//! Decisions:
//!
//! - No `Accept-Encoding` field at all, or an empty one: the plain file. (RFC 9110 lets a
//!   server send any coding to a request without the field; no real server does, and a client
//!   that sent nothing may well not decode.)
//! - Each coding gets the weight its own entry gives it (`br;q=0.8`), else the weight of `*`,
//!   else it is not acceptable. `q=0` means "not acceptable". `x-gzip` counts as `gzip`
//!   (§8.4.1.3). Names and the `q` parameter are case-insensitive. An entry whose weight is not
//!   a valid qvalue (`q=2`, `q=abc`) is ignored, as if it were not there.
//! - The plain file (`identity`) takes part in the choice: a client that says
//!   `gzip;q=0.5, identity` prefers the plain bytes, and gets them. When `identity` is not
//!   listed it has the weight of `*` if `*` is listed, otherwise it ranks below every coding
//!   the client named (the client named them because it wants them).
//! - Ties are broken by a fixed server order, smallest files first: `br` > `zstd` > `gzip` >
//!   identity.
//! - The plain file is the fallback whatever the client said: when no acceptable variant
//!   exists, even `identity;q=0` gets it rather than 406 (§12.5.3 allows either; nginx and
//!   static-web-server do the same).

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// A content coding a stored variant can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli (RFC 7932), `FILE.br`.
    Br,
    /// Zstandard (RFC 8878), `FILE.zst`.
    Zstd,
    /// gzip (RFC 1952), `FILE.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in the server's order of preference (used to break ties).
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The file name suffix of the stored variant, dot included.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    /// The coding whose variant files end with `name`'s suffix, if any.
    pub fn of_variant(name: &[u8]) -> Option<(Coding, &[u8])> {
        Coding::ALL.into_iter().find_map(|c| {
            name.strip_suffix(c.suffix().as_bytes())
                .filter(|base| !base.is_empty())
                .map(|base| (c, base))
        })
    }
}

/// A weight in thousandths (`q=0.5` is 500), 0 to 1000.
type Weight = u16;

/// The codings worth looking for, best first; the plain file comes after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ranked {
    codings: [Option<Coding>; 3],
}

impl Ranked {
    /// The codings, best first.
    pub fn iter(&self) -> impl Iterator<Item = Coding> + '_ {
        self.codings.iter().map_while(|c| *c)
    }

    /// Whether no coding beats the plain file.
    pub fn is_empty(&self) -> bool {
        self.codings[0].is_none()
    }
}

/// The weights an `Accept-Encoding` field gives, field lines joined.
#[derive(Debug, Default)]
struct Weights {
    /// `br`, `zstd`, `gzip` (in [`Coding::ALL`]'s order): the weight of their own entry.
    named: [Option<Weight>; 3],
    identity: Option<Weight>,
    star: Option<Weight>,
}

/// Ranks the stored variants for a request: the codings the client prefers to the plain file,
/// best first (see the module docs for the rules).
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use socklab::http::server::encoding::{Coding, rank};
/// let mut h = HeaderMap::new();
/// h.insert("accept-encoding", HeaderValue::from_static("gzip, br;q=0.9, identity;q=0.5"));
/// assert_eq!(rank(&h).iter().collect::<Vec<_>>(), [Coding::Gzip, Coding::Br]);
/// ```
pub fn rank(headers: &HeaderMap) -> Ranked {
    let mut lines = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    if lines.peek().is_none() {
        return Ranked::default();
    }
    let mut w = Weights::default();
    for line in lines {
        // A value that is not visible ASCII names no coding we know.
        let Ok(text) = line.to_str() else { continue };
        for entry in text.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("").trim();
            let Some(weight) = weight(parts) else {
                continue;
            };
            let slot = if name.eq_ignore_ascii_case("identity") {
                &mut w.identity
            } else if name == "*" {
                &mut w.star
            } else if name.eq_ignore_ascii_case("x-gzip") {
                &mut w.named[2]
            } else if let Some(i) = Coding::ALL
                .iter()
                .position(|c| name.eq_ignore_ascii_case(c.token()))
            {
                &mut w.named[i]
            } else {
                continue;
            };
            // A coding listed twice keeps its best weight.
            *slot = Some(slot.map_or(weight, |old| old.max(weight)));
        }
    }
    // Below every coding the client named, above "not acceptable".
    let identity = w.identity.or(w.star).unwrap_or(0);
    let mut order: Vec<(Weight, Coding)> = Coding::ALL
        .iter()
        .zip(w.named)
        .filter_map(|(&c, own)| {
            let q = own.or(w.star)?;
            // Ties with the plain file go to the coding (server order), so `>=`.
            (q > 0 && q >= identity).then_some((q, c))
        })
        .collect();
    // Stable: equal weights keep the server's order from Coding::ALL.
    order.sort_by_key(|&(q, _)| std::cmp::Reverse(q));
    let mut ranked = Ranked::default();
    for (slot, (_, c)) in ranked.codings.iter_mut().zip(order) {
        *slot = Some(c);
    }
    ranked
}

/// The weight of one entry from its parameters: 1000 without `q`, `None` when `q` is not a
/// valid qvalue (RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`).
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<Weight> {
    let mut q = 1000;
    for p in params {
        let (key, value) = p.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
        }
    }
    Some(q)
}

fn qvalue(text: &str) -> Option<Weight> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + Weight::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use Coding::*;

    fn ranked(lines: &[&str]) -> Vec<Coding> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(ACCEPT_ENCODING, HeaderValue::from_str(l).unwrap());
        }
        rank(&h).iter().collect()
    }

    #[test]
    fn no_field_or_an_empty_one_gets_the_plain_file() {
        assert_eq!(ranked(&[]), []);
        assert_eq!(ranked(&[""]), []);
        assert_eq!(ranked(&["identity"]), []);
        assert_eq!(ranked(&["deflate, compress"]), []);
    }

    #[test]
    fn equal_weights_follow_the_server_order() {
        assert_eq!(ranked(&["gzip, deflate, br, zstd"]), [Br, Zstd, Gzip]);
        assert_eq!(ranked(&["gzip, br"]), [Br, Gzip]);
        assert_eq!(ranked(&["*"]), [Br, Zstd, Gzip]);
        // curl --compressed's.
        assert_eq!(ranked(&["deflate, gzip, br, zstd"]), [Br, Zstd, Gzip]);
    }

    #[test]
    fn weights_order_the_codings() {
        assert_eq!(
            ranked(&["br;q=0.5, gzip;q=0.8, zstd;q=0.7"]),
            [Gzip, Zstd, Br]
        );
        assert_eq!(ranked(&["br;q=0.001, gzip"]), [Gzip, Br]);
        assert_eq!(ranked(&["*;q=0.5, gzip"]), [Gzip, Br, Zstd]);
        // Field lines are joined; a coding listed twice keeps its best weight.
        assert_eq!(ranked(&["gzip;q=0.2", "br;q=0.3, gzip;q=0.9"]), [Gzip, Br]);
    }

    #[test]
    fn q_zero_refuses_a_coding() {
        assert_eq!(ranked(&["gzip;q=0"]), []);
        assert_eq!(ranked(&["gzip;q=0.000, br"]), [Br]);
        assert_eq!(ranked(&["*, gzip;q=0"]), [Br, Zstd]);
        assert_eq!(ranked(&["*;q=0"]), []);
        assert_eq!(ranked(&["*;q=0, br"]), [Br]);
    }

    #[test]
    fn the_plain_file_competes_with_the_codings() {
        // The client prefers identity to gzip: no coding beats it.
        assert_eq!(ranked(&["gzip;q=0.5, identity"]), []);
        assert_eq!(ranked(&["br;q=0.9, gzip;q=0.5, identity;q=0.7"]), [Br]);
        // A tie with identity goes to the coding.
        assert_eq!(ranked(&["gzip, identity"]), [Gzip]);
        // `*` gives identity its weight when identity is not listed.
        assert_eq!(ranked(&["*;q=0.6, br;q=0.5"]), [Zstd, Gzip]);
        // identity;q=0 does not make a refused coding acceptable.
        assert_eq!(ranked(&["identity;q=0, gzip;q=0"]), []);
        assert_eq!(ranked(&["identity;q=0, gzip;q=0.1"]), [Gzip]);
    }

    #[test]
    fn spelling_is_lenient_where_the_rfc_allows() {
        assert_eq!(ranked(&["GZIP;Q=1.0"]), [Gzip]);
        assert_eq!(ranked(&["x-gzip"]), [Gzip]);
        assert_eq!(ranked(&["  br ; q=0.5 ,gzip;q=1"]), [Gzip, Br]);
        assert_eq!(ranked(&[",,br,,"]), [Br]);
    }

    #[test]
    fn bad_weights_void_their_entry() {
        for bad in [
            "q=2", "q=1.5", "q=abc", "q=0.1234", "q=", "q=-0", "q", "q=1.001",
        ] {
            assert_eq!(ranked(&[&format!("br;{bad}, gzip;q=0.5")]), [Gzip], "{bad}");
        }
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1."), Some(1000));
        assert_eq!(qvalue("0"), Some(0));
        // Parameters other than q are allowed and ignored.
        assert_eq!(ranked(&["br;level=5"]), [Br]);
    }

    #[test]
    fn variant_names_give_their_coding_and_base() {
        assert_eq!(Coding::of_variant(b"a.css.br"), Some((Br, &b"a.css"[..])));
        assert_eq!(Coding::of_variant(b"x.tar.gz"), Some((Gzip, &b"x.tar"[..])));
        assert_eq!(Coding::of_variant(b"x.zst"), Some((Zstd, &b"x"[..])));
        assert_eq!(Coding::of_variant(b".gz"), None);
        assert_eq!(Coding::of_variant(b"a.css"), None);
    }
}
