//! The reflector in `socklab lab`: UDP and TCP on 8620.

use std::net::SocketAddr;

use super::server;
use crate::catalog::{Entry, Sockets, Tools};
use crate::net::ServeOptions;
use crate::net::guard::GuardConfig;

/// The lab's reflector.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "rtt",
        transport: "udp+tcp, RFC 2681",
        port: server::DEFAULT_PORT,
        sockets: Sockets::TcpAndUdp,
        start: Box::new(|bound, env, shutdown| {
            let guard = GuardConfig::for_services(None, env.ports.iter().copied());
            let mut it = bound.into_iter();
            let (Some(tcp), Some(udp)) = (it.next(), it.next()) else {
                return Box::pin(async { Ok(()) });
            };
            Box::pin(server::run(
                tcp,
                udp,
                ServeOptions::default(),
                guard,
                std::time::Duration::from_secs(300),
                shutdown,
            ))
        }),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab rtt measure {a} -c 50 --rate 50 --plot rtt.svg")
}

/// A probe from Python's standard library (docs/PROTOCOLS.md §10): the reply comes back as hex.
fn try_peer(a: SocketAddr, _: Tools) -> String {
    format!(
        "python3 -c \"import socket,struct,zlib; b=b'RT\\1\\1'+struct.pack('>IIQQQ',1,0,0,0,0); \
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b+struct.pack('>I',zlib.crc32(b)),('{}',{})); \
         print(s.recv(99).hex())\"",
        a.ip(),
        a.port()
    )
}
