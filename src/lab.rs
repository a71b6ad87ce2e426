//! `socklab lab`: every server at once, on loopback, with a line to try each one.
//!
//! Later protocols add their rows to `services()`. All servers share one shutdown token, so
//! one Ctrl-C stops them all (each with its grace period).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::echo::server as echo;
use crate::frame::Framing;
use crate::net::{self, BindOptions};
use crate::simple::proto::Service;
use crate::simple::server as simple;

/// `socklab lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Add N to every port (e.g. --port-base 10000 puts echo on 13500), to run two labs.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub port_base: u16,
    /// Bind every server to a free port chosen by the kernel (for tests and scripts).
    #[arg(long, conflicts_with = "port_base")]
    pub ephemeral: bool,
}

/// One lab server: what it is and how to try it.
struct Entry {
    name: &'static str,
    transport: &'static str,
    port: u16,
    kind: Kind,
}

enum Kind {
    EchoTcp(Option<Framing>),
    EchoUdp,
    /// The postfix calculator.
    Calc,
    /// The static HTTP server, on a demo directory.
    Http,
    /// A simple service on TCP and UDP, on its RFC port + [`SIMPLE_BASE`].
    Simple(Service),
}

/// The lab runs the simple services on RFC port + 10000 (daytime on 10013), so no root is
/// needed.
pub const SIMPLE_BASE: u16 = 10000;

fn services() -> Vec<Entry> {
    let mut list = vec![
        Entry {
            name: "echo",
            transport: "tcp",
            port: 3500,
            kind: Kind::EchoTcp(None),
        },
        Entry {
            name: "echo",
            transport: "udp",
            port: 3500,
            kind: Kind::EchoUdp,
        },
        Entry {
            name: "echo-lines",
            transport: "tcp, delim:\\n frames",
            port: 3501,
            kind: Kind::EchoTcp(Some(Framing::Delimited(b"\n".to_vec()))),
        },
        Entry {
            name: "echo-header",
            transport: "tcp, header frames",
            port: 3502,
            kind: Kind::EchoTcp(Some(Framing::Header)),
        },
    ];
    list.push(Entry {
        name: "http",
        transport: "tcp",
        port: 8080,
        kind: Kind::Http,
    });
    list.push(Entry {
        name: "calc",
        transport: "tcp",
        port: crate::calc::server::DEFAULT_PORT,
        kind: Kind::Calc,
    });
    for service in [
        Service::Discard,
        Service::Daytime,
        Service::Qotd,
        Service::Chargen,
        Service::Time,
    ] {
        list.push(Entry {
            name: service.name(),
            transport: "tcp+udp",
            port: service.rfc_port() + SIMPLE_BASE,
            kind: Kind::Simple(service),
        });
    }
    list
}

fn try_lines(s: &Entry, addr: SocketAddr) -> (String, String) {
    let (host, port) = (addr.ip(), addr.port());
    match (&s.kind, s.name) {
        (Kind::Http, _) => (
            format!("open http://{addr}/ in a browser"),
            format!("curl -i http://{addr}/no-such-page.html"),
        ),
        (Kind::Calc, _) => (
            format!("socklab calc connect {addr} --eval '3 4 +'"),
            format!("nc {host} {port}  (then 3, 4, + on separate lines)"),
        ),
        (Kind::Simple(service), _) => (
            match service {
                Service::Discard => format!("socklab discard send {addr} hello"),
                _ => format!("socklab {service} get {addr}"),
            },
            match service {
                Service::Time => format!("rdate -p -o {port} {host}"),
                Service::Discard => format!("nc -N {host} {port} < /etc/hostname"),
                _ => format!("nc {host} {port}; nc -u {host} {port}"),
            },
        ),
        (Kind::EchoUdp, _) => (
            format!("socklab echo send -u {addr} hello"),
            format!("nc -u {host} {port}"),
        ),
        (Kind::EchoTcp(None), _) => (
            format!("socklab echo send {addr} hello"),
            format!("nc {host} {port}"),
        ),
        (Kind::EchoTcp(Some(Framing::Header)), _) => (
            format!("socklab echo send --framing header {addr} hello"),
            "see docs/PROTOCOLS.md (header frame)".into(),
        ),
        (Kind::EchoTcp(Some(_)), _) => (
            format!("socklab echo send --framing 'delim:\\n' {addr} hello"),
            format!("nc {host} {port}"),
        ),
    }
}

/// Runs the lab until Ctrl-C.
pub async fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let shutdown = net::shutdown::on_signals();
    let mut tasks = JoinSet::new();
    let mut rows = Vec::new();
    for s in services() {
        let port = if args.ephemeral {
            0
        } else {
            s.port.checked_add(args.port_base).with_context(|| {
                format!(
                    "--port-base {} pushes port {} past 65535",
                    args.port_base, s.port
                )
            })?
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let what = format!("starting {} ({})", s.name, s.transport);
        let bound = start(&s, addr, &mut tasks, shutdown.clone()).with_context(|| what)?;
        let (ours, theirs) = try_lines(&s, bound);
        rows.push([
            s.name.to_string(),
            s.transport.to_string(),
            bound.to_string(),
            ours,
            theirs,
        ]);
    }
    print_table(&rows)?;
    while let Some(res) = tasks.join_next().await {
        if let Ok(Err(e)) = res {
            tracing::error!("a lab server stopped: {e}");
        }
    }
    // The demo site was ours to write; it is ours to remove.
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("socklab-lab-{}", std::process::id())),
    );
    Ok(ExitCode::SUCCESS)
}

fn start(
    s: &Entry,
    addr: SocketAddr,
    tasks: &mut JoinSet<Result<(), net::NetError>>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, net::NetError> {
    let local = |r: std::io::Result<SocketAddr>| {
        r.map_err(|e| net::NetError::Io {
            what: "reading the bound address".into(),
            source: e,
        })
    };
    match &s.kind {
        Kind::EchoTcp(framing) => {
            let l = net::listen::tcp_listener(addr, BindOptions::default())?;
            let bound = local(l.local_addr())?;
            let cfg = echo::Config {
                framing: framing.clone(),
                ..echo::Config::default()
            };
            tasks.spawn(async move {
                echo::run_stream(l, cfg, shutdown).await;
                Ok(())
            });
            Ok(bound)
        }
        Kind::EchoUdp => {
            let sock = net::listen::udp_socket(addr, BindOptions::default())?;
            let bound = local(sock.local_addr())?;
            tasks.spawn(async move {
                echo::run_datagram(sock, echo::Config::default(), shutdown)
                    .await
                    .map(|_| ())
            });
            Ok(bound)
        }
        Kind::Http => {
            let root = demo_directory().map_err(|e| net::NetError::Io {
                what: "writing the demo directory".into(),
                source: e,
            })?;
            let listener = net::listen::tcp_listener(addr, BindOptions::default())?;
            let bound = local(listener.local_addr())?;
            let cfg = crate::http::server::Config::new(root);
            tasks.spawn(async move {
                crate::http::server::run(listener, cfg, shutdown).await;
                Ok(())
            });
            Ok(bound)
        }
        Kind::Calc => {
            let listener = net::listen::tcp_listener(addr, BindOptions::default())?;
            let bound = local(listener.local_addr())?;
            let cfg = crate::calc::server::Config::default();
            tasks.spawn(async move {
                crate::calc::server::run(listener, cfg, shutdown).await;
                Ok(())
            });
            Ok(bound)
        }
        Kind::Simple(service) => {
            let service = *service;
            let listener = net::listen::tcp_listener(addr, BindOptions::default())?;
            let bound = local(listener.local_addr())?;
            // UDP on the same port as TCP, as inetd does (with --ephemeral, TCP's free port).
            let sock = net::listen::udp_socket(bound, BindOptions::default())?;
            let cfg = simple::Config::default();
            let (c2, s2) = (cfg.clone(), shutdown.clone());
            tasks.spawn(async move {
                simple::run_tcp(service, listener, cfg, shutdown).await;
                Ok(())
            });
            tasks.spawn(async move { simple::run_udp(service, sock, c2, s2).await });
            Ok(bound)
        }
    }
}

/// The files the lab's HTTP server serves, built into the binary.
const DEMO: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("lab_demo/index.html")),
    ("style.css", include_bytes!("lab_demo/style.css")),
    ("socket.png", include_bytes!("lab_demo/socket.png")),
    ("files/notes.txt", include_bytes!("lab_demo/notes.txt")),
    ("files/style-copy.css", include_bytes!("lab_demo/style.css")),
];

/// Writes the demo site into a fresh directory under the system's temporary directory and
/// returns its canonical path (the HTTP server needs a canonical root).
fn demo_directory() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("socklab-lab-{}", std::process::id()));
    for (name, bytes) in DEMO {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    std::fs::canonicalize(&dir)
}

fn print_table(rows: &[[String; 5]]) -> std::io::Result<()> {
    use std::io::Write;
    let header = [
        "SERVICE",
        "TRANSPORT",
        "ADDRESS",
        "TRY WITH SOCKLAB",
        "TRY WITH A REAL PEER",
    ];
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "socklab lab: {} servers on loopback; Ctrl-C stops them all",
        rows.len()
    )?;
    writeln!(out)?;
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(header))?;
    for r in rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
    }
    out.flush()
}
