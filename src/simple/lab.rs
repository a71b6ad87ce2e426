//! The simple services in `socklab lab`, each on TCP and UDP on its RFC port + 10000.

use std::net::SocketAddr;

use tokio::task::JoinSet;

use crate::catalog::{self, Entry, Sockets, Tools};
use crate::net::guard::{AMPLIFIER_LIMIT, GuardConfig};

use super::proto::Service;
use super::server::{self, Config};

/// The lab runs the simple services on RFC port + 10000 (daytime on 10013), so no root is
/// needed.
pub const LAB_BASE: u16 = 10000;

/// The lab's simple services (echo is echo's own entry).
pub fn entries() -> Vec<Entry> {
    [
        Service::Discard,
        Service::Daytime,
        Service::Qotd,
        Service::Chargen,
        Service::Time,
    ]
    .into_iter()
    .map(entry)
    .collect()
}

fn entry(service: Service) -> Entry {
    Entry {
        name: service.name(),
        transport: "tcp+udp",
        port: service.rfc_port() + LAB_BASE,
        sockets: Sockets::TcpAndUdp,
        start: Box::new(move |bound, env, shutdown| {
            let limit = (service != Service::Discard).then_some(AMPLIFIER_LIMIT);
            let cfg = Config {
                guard: GuardConfig::for_services(limit, env.ports.iter().copied()),
                ..Config::default()
            };
            Box::pin(async move {
                let mut tasks = JoinSet::new();
                for b in bound {
                    tasks.spawn(server::run(service, b, cfg.clone(), shutdown.clone()));
                }
                while let Some(res) = tasks.join_next().await {
                    if let Ok(Err(e)) = res {
                        return Err(e);
                    }
                }
                Ok(())
            })
        }),
        try_ours: match service {
            Service::Discard => |a, _| format!("socklab discard send {a} hello"),
            Service::Daytime => |a, _| format!("socklab daytime get {a}"),
            Service::Qotd => |a, _| format!("socklab qotd get {a}"),
            Service::Chargen => |a, _| format!("socklab chargen get {a}"),
            _ => |a, _| format!("socklab time get {a}"),
        },
        try_peer: match service {
            Service::Time => time_peer,
            Service::Discard => discard_peer,
            _ => text_peer,
        },
    }
}

fn time_peer(a: SocketAddr, t: Tools) -> String {
    if t.rdate {
        format!("rdate -p -o {} {}", a.port(), a.ip())
    } else {
        format!(
            "python3 -c \"import socket,struct,time; s=socket.create_connection(('{}',{})); \
             print(time.ctime(struct.unpack('!I',s.recv(4))[0]-2208988800))\"",
            a.ip(),
            a.port()
        )
    }
}

fn discard_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!("nc -N {} {} < /etc/hostname", a.ip(), a.port())
    } else {
        catalog::python_tcp(a, "hello\\n")
    }
}

fn text_peer(a: SocketAddr, t: Tools) -> String {
    if t.nc {
        format!("nc {} {}; nc -u {} {}", a.ip(), a.port(), a.ip(), a.port())
    } else {
        catalog::python_tcp(a, "")
    }
}
