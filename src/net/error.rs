//! Errors a person can act on.
//!
//! The OS reports failures as bare errno values ("Connection refused (os error 111)"). That is
//! the right information but the wrong sentence for someone learning sockets: they need to know
//! *which* address refused and what to try next. [`NetError`] carries the address and the
//! operation, and its messages say what to do.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// A network failure, with the address it concerns and a hint where one helps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Nothing listens at the address (TCP RST, or ICMP port unreachable for UDP).
    #[error("connection refused by {addr}: is a server listening there?")]
    Refused {
        /// The address that refused.
        addr: String,
    },
    /// A UDP request got an ICMP port unreachable.
    #[error("no {service} server at {addr} (port unreachable)")]
    PortUnreachable {
        /// What was expected there, e.g. "echo".
        service: &'static str,
        /// The address tried.
        addr: String,
    },
    /// The peer reset the connection (closed it abruptly, with data unread or an RST).
    #[error(
        "{addr} reset the connection (the server closed it abruptly; is this client allowed there?)"
    )]
    Reset {
        /// The peer.
        addr: String,
    },
    /// The network or host cannot be reached.
    #[error("no route to {addr}: the host or its network is unreachable")]
    Unreachable {
        /// The address tried.
        addr: String,
    },
    /// A connect, read or write did not finish in time.
    #[error("timed out after {} while {what}", crate::net::fmt_duration(*.after))]
    Timeout {
        /// What we were waiting for ("connecting to 127.0.0.1:7", "waiting for the echo").
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// Another socket already holds the address.
    #[error(
        "address {addr} is already in use: another server is listening there; \
         stop it or choose another --port"
    )]
    AddrInUse {
        /// The address we tried to bind.
        addr: String,
    },
    /// Another socket already holds the address, for a command that chooses its ports in
    /// another way than `--port` (`lab`, `inetd`).
    #[error("address {addr} is already in use: another server is listening there; {hint}")]
    AddrInUseHint {
        /// The address we tried to bind.
        addr: String,
        /// What to do instead.
        hint: String,
    },
    /// The address is not one of this machine's.
    #[error("cannot bind {addr}: that address is not assigned to this machine")]
    AddrNotAvailable {
        /// The address we tried to bind.
        addr: String,
    },
    /// Binding a port below 1024 without the privilege to do so.
    #[error("port {port} needs root; try --port {suggestion}")]
    PrivilegedPort {
        /// The privileged port.
        port: u16,
        /// An unprivileged port to suggest instead.
        suggestion: u16,
    },
    /// Some other permission problem (a Unix socket path, a firewall rule).
    #[error("permission denied: {what}")]
    PermissionDenied {
        /// What was denied.
        what: String,
    },
    /// A host name did not resolve.
    #[error("cannot resolve host name {host:?}: {reason}")]
    NameNotFound {
        /// The name.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// An address argument that does not parse.
    #[error("invalid address {input:?}: {reason}")]
    BadAddress {
        /// What the user typed.
        input: String,
        /// Why it is wrong, with the accepted forms.
        reason: String,
    },
    /// The peer closed or reset the connection at a point where we needed more.
    #[error("{addr} closed the connection {when}")]
    ClosedEarly {
        /// The peer.
        addr: String,
        /// When ("before echoing 5 of 12 bytes").
        when: String,
    },
    /// Anything else, with the operation that failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation, e.g. "reading from 127.0.0.1:5000".
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

impl NetError {
    /// Classifies an OS error from `connect`, `send` or `recv` on `addr`.
    pub fn from_io(err: io::Error, addr: impl ToString, what: impl Into<String>) -> Self {
        let addr = addr.to_string();
        match err.kind() {
            io::ErrorKind::ConnectionRefused => NetError::Refused { addr },
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => NetError::Reset { addr },
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                NetError::Unreachable { addr }
            }
            io::ErrorKind::TimedOut => NetError::Timeout {
                what: what.into(),
                after: Duration::ZERO,
            },
            io::ErrorKind::PermissionDenied => NetError::PermissionDenied {
                what: format!("{} ({})", what.into(), addr),
            },
            _ => NetError::Io {
                what: what.into(),
                source: err,
            },
        }
    }

    /// Classifies an OS error from `bind` on `addr`.
    pub fn from_bind(err: io::Error, addr: SocketAddr) -> Self {
        match err.kind() {
            io::ErrorKind::AddrInUse => NetError::AddrInUse {
                addr: addr.to_string(),
            },
            io::ErrorKind::AddrNotAvailable => NetError::AddrNotAvailable {
                addr: addr.to_string(),
            },
            io::ErrorKind::PermissionDenied if addr.port() != 0 && addr.port() < 1024 => {
                NetError::PrivilegedPort {
                    port: addr.port(),
                    suggestion: suggest_port(addr.port()),
                }
            }
            io::ErrorKind::PermissionDenied => NetError::PermissionDenied {
                what: format!("binding {addr}"),
            },
            _ => NetError::Io {
                what: format!("binding {addr}"),
                source: err,
            },
        }
    }

    /// True when the error means "nothing is there" (refused or port unreachable).
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            NetError::Refused { .. } | NetError::PortUnreachable { .. }
        )
    }
}

/// The unprivileged port we suggest for a privileged one: 7 → 7007, 80 → 7080, 1023 → 8023.
pub fn suggest_port(port: u16) -> u16 {
    port.saturating_add(7000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_port_message_suggests_another() {
        let err = io::Error::from(io::ErrorKind::PermissionDenied);
        let e = NetError::from_bind(err, "0.0.0.0:7".parse().unwrap());
        assert_eq!(e.to_string(), "port 7 needs root; try --port 7007");
    }

    #[test]
    fn refused_names_the_address() {
        let err = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = NetError::from_io(err, "127.0.0.1:9", "connecting");
        assert_eq!(
            e.to_string(),
            "connection refused by 127.0.0.1:9: is a server listening there?"
        );
        assert!(e.is_refused());
    }

    #[test]
    fn addr_in_use_says_what_to_do() {
        let err = io::Error::from(io::ErrorKind::AddrInUse);
        let e = NetError::from_bind(err, "127.0.0.1:3500".parse().unwrap());
        assert!(e.to_string().contains("already in use"), "{e}");
        assert!(e.to_string().contains("--port"), "{e}");
    }
}
