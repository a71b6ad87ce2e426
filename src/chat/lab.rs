//! The chat in `socklab lab`, on 6667 with line framing.

use std::net::SocketAddr;

use crate::catalog::{self, Entry, Sockets, Tools};

use super::server::{self, Config, DEFAULT_PORT};

/// The lab's chat server.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "chat",
        transport: "tcp, lines",
        port: DEFAULT_PORT,
        sockets: Sockets::Tcp,
        start: catalog::single(|b, _env, shutdown| server::run(b, Config::default(), shutdown)),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab chat join {a} --nick alice")
}

fn try_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!("nc {} {}  (first line: a nickname)", a.ip(), a.port())
    } else {
        catalog::python_tcp(a, "bob\\nhello\\n/quit\\n")
    }
}
