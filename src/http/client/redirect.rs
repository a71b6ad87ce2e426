//! Following redirects: which statuses, where to (`Location` against the current URL), with
//! which method and body, whether credentials go along, and when to stop (loops, hop limit).
//! Sans-IO.

use std::fmt;

use http::header::LOCATION;
use http::{HeaderValue, Method, StatusCode};
use url::Url;

use super::request::same_origin;
use crate::http::h1::Response;

/// The next request after a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Where to go (fragment removed).
    pub url: Url,
    /// With which method.
    pub method: Method,
    /// Whether the request body goes along (307/308 only).
    pub keep_body: bool,
    /// Whether `Authorization` may go along (same scheme, host and port).
    pub keep_credentials: bool,
}

/// Why a redirect cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// A redirect status without `Location`, or one that does not parse.
    #[error("redirect {status} with a bad Location {location:?}: {reason}")]
    BadLocation {
        /// The status.
        status: u16,
        /// What the server sent.
        location: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A `Location` in a scheme we cannot fetch.
    #[error("redirect {status} to {url}: only http and https can be followed")]
    Scheme {
        /// The status.
        status: u16,
        /// The target.
        url: String,
    },
    /// The same URL twice in the chain.
    #[error("redirect loop: {chain}")]
    Loop {
        /// The whole chain, `a -> b -> a`.
        chain: String,
    },
    /// More hops than `--max-redirects`.
    #[error("more than {max} redirects: {chain}")]
    TooMany {
        /// The limit.
        max: usize,
        /// The whole chain.
        chain: String,
    },
}

/// True for the statuses we follow: 301, 302, 303, 307, 308.
pub fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The request that follows a redirect `status` answered to `method` on `current`.
///
/// 303 turns everything but HEAD into GET without a body; 301 and 302 turn POST into GET
/// without a body (what browsers, curl and wget do); 307 and 308 keep method and body.
pub fn next_hop(
    status: StatusCode,
    method: &Method,
    current: &Url,
    location: Option<&HeaderValue>,
) -> Result<Hop, RedirectError> {
    let code = status.as_u16();
    let bad = |location: &str, reason: &str| RedirectError::BadLocation {
        status: code,
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let location = location.ok_or_else(|| bad("", "missing"))?;
    // Some servers send raw UTF-8 in Location; url percent-encodes it.
    let text = String::from_utf8_lossy(location.as_bytes());
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(text, "empty"));
    }
    let mut url = current.join(text).map_err(|e| bad(text, &e.to_string()))?;
    url.set_fragment(None);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RedirectError::Scheme {
            status: code,
            url: url.to_string(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(text, "no host"));
    }
    let (method, keep_body) = match code {
        303 if *method == Method::HEAD => (Method::HEAD, false),
        303 => (Method::GET, false),
        301 | 302 if *method == Method::POST => (Method::GET, false),
        301 | 302 => (method.clone(), false),
        _ => (method.clone(), true),
    };
    let keep_credentials = same_origin(current, &url);
    Ok(Hop {
        url,
        method,
        keep_body,
        keep_credentials,
    })
}

/// The URLs visited so far, to detect loops and count hops.
#[derive(Debug, Clone)]
pub struct Chain {
    urls: Vec<Url>,
    max: usize,
}

impl Chain {
    /// A chain starting at `start`, allowing `max` redirects.
    pub fn new(start: &Url, max: usize) -> Self {
        let mut u = start.clone();
        u.set_fragment(None);
        Self { urls: vec![u], max }
    }

    /// Records a hop to `url`; an error for a URL already visited or one hop too many.
    pub fn push(&mut self, url: &Url) -> Result<(), RedirectError> {
        let seen = self.urls.contains(url);
        self.urls.push(url.clone());
        if seen {
            return Err(RedirectError::Loop {
                chain: self.to_string(),
            });
        }
        if self.urls.len() - 1 > self.max {
            return Err(RedirectError::TooMany {
                max: self.max,
                chain: self.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.urls.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{u}")?;
        }
        Ok(())
    }
}

/// Location header of a response, for messages.
pub fn location(head: &Response) -> Option<&HeaderValue> {
    head.headers.get(LOCATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn loc(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn redirect_method_rules() {
        let cur = url("http://h:8080/a/b?x#f");
        let hop = |code: u16, m: Method| {
            next_hop(
                StatusCode::from_u16(code).unwrap(),
                &m,
                &cur,
                Some(&loc("../c?y#z")),
            )
            .unwrap()
        };
        let h = hop(301, Method::POST);
        assert_eq!(h.url.as_str(), "http://h:8080/c?y");
        assert_eq!((h.method, h.keep_body), (Method::GET, false));
        assert_eq!(hop(302, Method::PUT).method, Method::PUT);
        assert!(!hop(302, Method::PUT).keep_body);
        assert_eq!(hop(303, Method::POST).method, Method::GET);
        assert_eq!(hop(303, Method::HEAD).method, Method::HEAD);
        let h = hop(307, Method::POST);
        assert_eq!((h.method, h.keep_body), (Method::POST, true));
        assert_eq!(hop(308, Method::PUT).method, Method::PUT);
        assert!(hop(308, Method::GET).keep_credentials);
    }

    #[test]
    fn redirect_credentials_and_bad_locations() {
        let cur = url("http://h/a");
        let to = |l: &str| next_hop(StatusCode::FOUND, &Method::GET, &cur, Some(&loc(l)));
        assert!(!to("http://other/").unwrap().keep_credentials);
        assert!(!to("https://h/").unwrap().keep_credentials);
        assert!(!to("http://h:81/").unwrap().keep_credentials);
        assert!(to("http://h:80/x").unwrap().keep_credentials);
        assert!(matches!(
            to("ftp://h/file"),
            Err(RedirectError::Scheme { .. })
        ));
        assert!(matches!(
            next_hop(StatusCode::FOUND, &Method::GET, &cur, None),
            Err(RedirectError::BadLocation { .. })
        ));
        assert!(matches!(
            to("http://[::1"),
            Err(RedirectError::BadLocation { .. })
        ));
    }

    #[test]
    fn chain_detects_loops_and_counts_hops() {
        let a = url("http://h/a");
        let b = url("http://h/b");
        let mut chain = Chain::new(&a, 20);
        chain.push(&b).unwrap();
        let err = chain.push(&a).unwrap_err();
        assert_eq!(
            err.to_string(),
            "redirect loop: http://h/a -> http://h/b -> http://h/a"
        );
        let mut chain = Chain::new(&a, 2);
        chain.push(&url("http://h/1")).unwrap();
        chain.push(&url("http://h/2")).unwrap();
        assert!(matches!(
            chain.push(&url("http://h/3")),
            Err(RedirectError::TooMany { max: 2, .. })
        ));
        let mut none = Chain::new(&a, 0);
        assert!(none.push(&b).is_err());
    }
}
