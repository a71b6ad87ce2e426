//! Echo's servers in `socklab lab`: plain TCP and UDP, and two framed TCP servers.

use std::net::SocketAddr;

use crate::catalog::{self, Entry, Env, Sockets, Tools};
use crate::frame::Framing;
use crate::net::guard::GuardConfig;

use super::server::{self, Config, DEFAULT_PORT};

/// The lab's echo servers.
pub fn entries() -> Vec<Entry> {
    vec![
        entry("echo", "tcp", 0, Sockets::Tcp, None, tcp_ours, tcp_peer),
        entry(
            "echo",
            "udp",
            0,
            Sockets::UdpBesideTcp,
            None,
            udp_ours,
            udp_peer,
        ),
        entry(
            "echo-lines",
            "tcp, delim:\\n frames",
            1,
            Sockets::Tcp,
            Some(Framing::Delimited(b"\n".to_vec())),
            lines_ours,
            tcp_peer,
        ),
        entry(
            "echo-header",
            "tcp, header frames",
            2,
            Sockets::Tcp,
            Some(Framing::Header),
            header_ours,
            header_peer,
        ),
    ]
}

fn entry(
    name: &'static str,
    transport: &'static str,
    offset: u16,
    sockets: Sockets,
    framing: Option<Framing>,
    try_ours: catalog::TryLine,
    try_peer: catalog::TryLine,
) -> Entry {
    Entry {
        name,
        transport,
        port: DEFAULT_PORT + offset,
        sockets,
        start: catalog::single(move |b, env: &Env, shutdown| {
            let cfg = Config {
                framing,
                guard: GuardConfig::for_services(None, env.ports.iter().copied()),
                name: name.into(),
                ..Config::default()
            };
            server::run(b, cfg, shutdown)
        }),
        try_ours,
        try_peer,
    }
}

fn tcp_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab echo send {a} hello")
}

fn udp_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab echo send -u {a} hello")
}

fn lines_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab echo send --framing 'delim:\\n' {a} hello")
}

fn header_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab echo send --framing header {a} hello")
}

fn tcp_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!("nc {} {}", a.ip(), a.port())
    } else {
        catalog::python_tcp(a, "hello\\n")
    }
}

fn udp_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!("nc -u {} {}", a.ip(), a.port())
    } else {
        catalog::python_udp(a, "hello")
    }
}

fn header_peer(_: SocketAddr, _: Tools) -> String {
    "see docs/PROTOCOLS.md (header frame)".into()
}
