//! Which proxy, if any, a URL goes through: `-x`, or the environment's `http_proxy` /
//! `https_proxy` unless `no_proxy` exempts the host. Sans-IO: the environment is read by the
//! caller and passed in as a [`ProxyEnv`].

use std::net::IpAddr;

use ipnet::IpNet;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyHost {
    Net(IpNet),
    Ip(IpAddr),
    Domain(String),
}

/// A `no_proxy` list: `*`, host names (matching themselves and their subdomains, with or
/// without a leading dot), IP addresses (IPv6 with or without brackets), CIDR networks, each
/// optionally with `:PORT`. Separated by commas or white space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<(NoProxyHost, Option<u16>)>,
}

impl NoProxy {
    /// Parses a list; entries that mean nothing are skipped.
    pub fn parse(list: &str) -> Self {
        let mut out = NoProxy::default();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
            let item = item.trim().to_ascii_lowercase();
            if item.is_empty() {
                continue;
            }
            if item == "*" {
                out.all = true;
                continue;
            }
            if let Some(entry) = parse_no_proxy_entry(&item) {
                out.entries.push(entry);
            }
        }
        out
    }

    /// True when `url` must not go through a proxy.
    pub fn matches(&self, url: &Url) -> bool {
        if self.all {
            return true;
        }
        let port = url.port_or_known_default();
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                NoProxyHost::Domain(d.trim_end_matches('.').to_ascii_lowercase())
            }
            Some(url::Host::Ipv4(ip)) => NoProxyHost::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => NoProxyHost::Ip(ip.into()),
            None => return false,
        };
        self.entries.iter().any(|(entry, p)| {
            if p.is_some() && *p != port {
                return false;
            }
            match (entry, &host) {
                (NoProxyHost::Net(net), NoProxyHost::Ip(ip)) => net.contains(ip),
                (NoProxyHost::Ip(a), NoProxyHost::Ip(b)) => a == b,
                (NoProxyHost::Domain(d), NoProxyHost::Domain(h)) => {
                    h == d
                        || (h.len() > d.len()
                            && h.ends_with(d.as_str())
                            && h.as_bytes()[h.len() - d.len() - 1] == b'.')
                }
                _ => false,
            }
        })
    }
}

fn parse_no_proxy_host(s: &str) -> Option<NoProxyHost> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(NoProxyHost::Net(net));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(NoProxyHost::Ip(ip));
    }
    let d = s
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    if d.is_empty() || d.contains(['/', '[', ']', ':']) {
        return None;
    }
    Some(NoProxyHost::Domain(d.to_string()))
}

fn parse_no_proxy_entry(item: &str) -> Option<(NoProxyHost, Option<u16>)> {
    // `[v6]` or `[v6]:port`.
    if let Some(rest) = item.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((parse_no_proxy_host(host)?, port));
    }
    // A bare address or network first: `::1` and `fe80::/10` have colons that are no port
    // separator (so an IPv6 address with a port needs its brackets).
    if let Ok(net) = item.parse::<IpNet>() {
        return Some((NoProxyHost::Net(net), None));
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some((NoProxyHost::Ip(ip), None));
    }
    if let Some((host, port)) = item.rsplit_once(':') {
        return Some((parse_no_proxy_host(host)?, Some(port.parse().ok()?)));
    }
    Some((parse_no_proxy_host(item)?, None))
}

/// The proxy settings read from the environment (`http_proxy`, `https_proxy`/`HTTPS_PROXY`,
/// `no_proxy`/`NO_PROXY`; an empty value counts as unset). `HTTP_PROXY` in capitals is
/// ignored, as curl does: a CGI program gets it from a request's `Proxy:` header (httpoxy).
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    /// For http URLs.
    pub http: Option<String>,
    /// For https URLs.
    pub https: Option<String>,
    /// Exceptions.
    pub no_proxy: Option<String>,
}

/// Parses a proxy URL: `http://host:port`, or `host:port` (http assumed; a missing port means
/// 80, as in any http URL). Only http proxies are supported.
pub fn parse_proxy(s: &str) -> Result<Url, String> {
    let s = s.trim();
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("proxy {s:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "proxy {s:?}: only http:// proxies are supported (https URLs reach them through CONNECT)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy {s:?}: no host"));
    }
    Ok(url)
}

/// The proxy for `url`: `explicit` (`-x`) always wins; otherwise the environment's proxy for
/// the URL's scheme unless `no_proxy` exempts the host; `env` is `None` under `--no-proxy`.
pub fn choose_proxy(
    url: &Url,
    explicit: Option<&Url>,
    env: Option<&ProxyEnv>,
) -> Result<Option<Url>, String> {
    if let Some(p) = explicit {
        return Ok(Some(p.clone()));
    }
    let Some(env) = env else { return Ok(None) };
    let var = match url.scheme() {
        "https" => env.https.as_deref(),
        _ => env.http.as_deref(),
    };
    let Some(var) = var.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if env
        .no_proxy
        .as_deref()
        .is_some_and(|n| NoProxy::parse(n).matches(url))
    {
        return Ok(None);
    }
    parse_proxy(var).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn no_proxy_lists() {
        let np = NoProxy::parse(
            "localhost, .example.com,internal.test:8080 10.0.0.0/8,::1,[fe80::/10],192.168.1.7,[2001:db8::1]:443",
        );
        let m = |u: &str| np.matches(&url(u));
        assert!(m("http://localhost/"));
        assert!(m("http://LOCALHOST:9/"));
        assert!(m("http://example.com/"));
        assert!(m("http://a.b.example.com/"));
        assert!(!m("http://badexample.com/"));
        assert!(m("http://internal.test:8080/"));
        assert!(!m("http://internal.test/"));
        assert!(m("http://10.1.2.3/"));
        assert!(!m("http://11.1.2.3/"));
        assert!(m("http://[::1]:8080/"));
        assert!(m("http://[fe80::1]/"));
        assert!(m("http://192.168.1.7/"));
        assert!(!m("http://192.168.1.8/"));
        assert!(m("https://[2001:db8::1]/"));
        assert!(!m("http://[2001:db8::1]/"));
        assert!(NoProxy::parse("*").matches(&url("http://anything/")));
        assert!(!NoProxy::parse("").matches(&url("http://anything/")));
        assert!(NoProxy::parse("example.com").matches(&url("http://www.example.com/")));
    }

    #[test]
    fn proxy_choice() {
        let env = ProxyEnv {
            http: Some("127.0.0.1:3128".into()),
            https: Some("http://127.0.0.1:3129".into()),
            no_proxy: Some("internal".into()),
        };
        let p = |u: &str, x: Option<&Url>, e: Option<&ProxyEnv>| {
            choose_proxy(&url(u), x, e).unwrap().map(|u| u.to_string())
        };
        assert_eq!(
            p("http://a/", None, Some(&env)).as_deref(),
            Some("http://127.0.0.1:3128/")
        );
        assert_eq!(
            p("https://a/", None, Some(&env)).as_deref(),
            Some("http://127.0.0.1:3129/")
        );
        assert_eq!(p("http://internal/", None, Some(&env)), None);
        assert_eq!(p("http://a/", None, None), None);
        let x = url("http://px:1/");
        assert_eq!(
            p("http://internal/", Some(&x), Some(&env)).as_deref(),
            Some("http://px:1/")
        );
        assert!(parse_proxy("https://p:1").is_err());
        assert!(parse_proxy("socks5://p:1").is_err());
    }
}
