//! `--allow ADDR|CIDR`: who may talk to a server.
//!
//! An empty list allows everyone. Addresses arriving on a dual-stack (`::`) socket as
//! IPv4-mapped IPv6 (`::ffff:127.0.0.1`) are compared as the IPv4 address they are.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A list of networks; an address is allowed when any of them contains it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// A list that allows everyone.
    pub fn any() -> Self {
        Self::default()
    }

    /// A list of the given networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Loopback only (127.0.0.0/8 and ::1).
    pub fn loopback() -> Self {
        Self::new(vec![
            "127.0.0.0/8".parse().expect("literal network"),
            "::1/128".parse().expect("literal network"),
        ])
    }

    /// True when no restriction is set.
    pub fn is_open(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` may talk to us.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// Parses one `--allow` value: a single address or a CIDR network.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = IpNet::from_str(s) {
        return Ok(net.trunc());
    }
    match IpAddr::from_str(s) {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!(
            "{s:?} is neither an address (127.0.0.1, ::1) nor a network (10.0.0.0/8, fd00::/8)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> AllowList {
        AllowList::new(items.iter().map(|s| parse_net(s).unwrap()).collect())
    }

    #[test]
    fn empty_list_allows_all() {
        assert!(AllowList::any().allows("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn address_and_cidr_entries() {
        let l = list(&["127.0.0.1", "10.1.0.0/16", "fd00::/8"]);
        assert!(l.allows("127.0.0.1".parse().unwrap()));
        assert!(!l.allows("127.0.0.2".parse().unwrap()));
        assert!(l.allows("10.1.200.3".parse().unwrap()));
        assert!(!l.allows("10.2.0.1".parse().unwrap()));
        assert!(l.allows("fd12::1".parse().unwrap()));
        assert!(!l.allows("::1".parse().unwrap()));
    }

    #[test]
    fn mapped_ipv4_is_compared_as_ipv4() {
        let l = list(&["127.0.0.0/8"]);
        assert!(l.allows("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn host_bits_in_cidr_are_ignored() {
        let l = list(&["10.1.2.3/16"]);
        assert!(l.allows("10.1.99.99".parse().unwrap()));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_net("10.0.0.0/40").is_err());
        assert!(parse_net("example.org").is_err());
    }
}
