//! Address syntax shared by every subcommand.
//!
//! | form            | meaning                                        |
//! |-----------------|------------------------------------------------|
//! | `HOST:PORT`     | a name or IPv4 address and a port              |
//! | `[V6ADDR]:PORT` | an IPv6 address (brackets as in URLs)          |
//! | `PORT`          | that port on the IPv4 loopback, 127.0.0.1      |
//! | `unix:/PATH`    | a Unix domain socket                           |
//!
//! Names resolve with getaddrinfo semantics (through tokio's `lookup_host`), so `localhost`
//! may yield both `::1` and `127.0.0.1`; clients try each address in order.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::NetError;

/// Where to connect or bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An internet address, still unresolved.
    Inet {
        /// A name or a literal address (IPv6 without brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl Endpoint {
    /// Resolves an internet endpoint to its socket addresses (getaddrinfo order).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, NetError> {
        let Endpoint::Inet { host, port } = self else {
            return Err(NetError::BadAddress {
                input: self.to_string(),
                reason: "a Unix socket path has no IP address".into(),
            });
        };
        resolve_host(host, *port).await
    }
}

/// Resolves `host` (a name or literal) with `port`, failing when it yields nothing.
pub async fn resolve_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let not_found = |reason: String| NetError::NameNotFound {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| not_found(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(not_found("the name has no addresses".into()));
    }
    Ok(addrs)
}

impl FromStr for Endpoint {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| NetError::BadAddress {
            input: s.to_string(),
            reason: format!("{reason}; expected HOST:PORT, [IPV6]:PORT, PORT or unix:/PATH"),
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty Unix socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let port = parse_port(s).map_err(|r| bad(&r))?;
            return Ok(Endpoint::Inet {
                host: Ipv4Addr::LOCALHOST.to_string(),
                port,
            });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing :PORT after the IPv6 address"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address inside the brackets"))?;
            let port = parse_port(port).map_err(|r| bad(&r))?;
            return Ok(Endpoint::Inet {
                host: host.to_string(),
                port,
            });
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address needs brackets, as in [::1]:3500"));
        }
        if host.is_empty() {
            return Err(bad("missing host before ':'"));
        }
        let port = parse_port(port).map_err(|r| bad(&r))?;
        Ok(Endpoint::Inet {
            host: host.to_string(),
            port,
        })
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("port {s:?} is not a number from 0 to 65535"))
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Inet { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Inet { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: &str, port: u16) -> Endpoint {
        Endpoint::Inet {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "127.0.0.1:3500".parse::<Endpoint>().unwrap(),
            inet("127.0.0.1", 3500)
        );
        assert_eq!(
            "localhost:7".parse::<Endpoint>().unwrap(),
            inet("localhost", 7)
        );
        assert_eq!("[::1]:3500".parse::<Endpoint>().unwrap(), inet("::1", 3500));
        assert_eq!("3500".parse::<Endpoint>().unwrap(), inet("127.0.0.1", 3500));
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/tmp/x.sock".into())
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:3500",
            "[::1]:3500",
            "unix:/tmp/e.sock",
            "example.org:80",
        ] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_forms_with_reasons() {
        for (input, needle) in [
            ("::1:3500", "brackets"),
            ("localhost", "missing :PORT"),
            ("host:99999", "0 to 65535"),
            ("[::1]3500", "missing :PORT"),
            ("[nothex]:1", "not an IPv6"),
            ("unix:", "empty"),
            (":80", "missing host"),
        ] {
            let err = input.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[tokio::test]
    async fn resolves_literals_without_dns() {
        let addrs = inet("::1", 9).resolve().await.unwrap();
        assert_eq!(addrs, vec!["[::1]:9".parse().unwrap()]);
    }

    #[tokio::test]
    async fn unknown_name_is_name_not_found() {
        let err = inet("no-such-host.invalid", 9).resolve().await.unwrap_err();
        assert!(matches!(err, NetError::NameNotFound { .. }), "{err}");
    }
}
