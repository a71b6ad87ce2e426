//! The calculator in `socklab lab`.

use std::net::SocketAddr;

use crate::catalog::{self, Entry, Sockets, Tools};

use super::server::{self, Config, DEFAULT_PORT};

/// The lab's calculator server.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "calc",
        transport: "tcp",
        port: DEFAULT_PORT,
        sockets: Sockets::Tcp,
        start: catalog::single(|b, _env, shutdown| server::run(b, Config::default(), shutdown)),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab calc connect {a} --eval '3 4 +'")
}

fn try_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!(
            "nc {} {}  (then 3, 4, + on separate lines)",
            a.ip(),
            a.port()
        )
    } else {
        catalog::python_tcp(a, "3\\n4\\n+\\n")
    }
}
