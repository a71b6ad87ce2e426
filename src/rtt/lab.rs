//! The reflector in `socklab lab`: UDP and TCP on 8620.

use std::net::SocketAddr;

use super::server;
use crate::catalog::{Entry, Sockets, Tools};
use crate::net::ServeOptions;

/// The lab's reflector.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "rtt",
        transport: "udp+tcp, RFC 2681 reflector",
        port: server::DEFAULT_PORT,
        sockets: Sockets::TcpAndUdp,
        start: Box::new(|bound, _env, shutdown| {
            let mut it = bound.into_iter();
            let (Some(tcp), Some(udp)) = (it.next(), it.next()) else {
                return Box::pin(async { Ok(()) });
            };
            Box::pin(server::run(
                tcp,
                udp,
                ServeOptions::default(),
                std::time::Duration::from_secs(60),
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

fn try_peer(a: SocketAddr, _: Tools) -> String {
    format!("socklab rtt measure {a} --tcp -c 50 --rate 50")
}
