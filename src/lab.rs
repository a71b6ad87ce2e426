//! `socklab lab`: every server at once, on loopback, with a line to try each one.
//!
//! Each protocol lists its servers in its own `lab.rs` ([`crate::catalog::Entry`]); this
//! file binds them all first (so a lab that cannot start leaves nothing behind), then starts
//! them on the service host and prints the table. All servers share one shutdown token, so
//! one Ctrl-C stops them all (each with its grace period).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use clap::Args;
use tokio::task::JoinSet;

use crate::args::UsageError;
use crate::catalog::{self, Entry, Env, Sockets, Tools};
use crate::net::host::{self, Bound, ListenSpec};
use crate::net::{self, BindOptions, NetError};

/// `socklab lab`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct LabArgs {
    /// Add N to every port (e.g. --port-base 10000 puts echo on 13500), to run two labs.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub port_base: u16,
    /// Bind every server to a free port chosen by the kernel (for tests and scripts).
    #[arg(long, conflicts_with = "port_base")]
    pub ephemeral: bool,
}

const EXAMPLES: &str = "\
Examples:
  socklab lab                         echo on 3500, http on 8080, calc on 51216, daytime on
                                      10013, … (the table shows every address)
  socklab lab --port-base 1000        every port + 1000, to run a second lab
  socklab lab --ephemeral             free ports chosen by the kernel
A port another program holds is skipped with a warning; the others start.";

/// Every lab server, in the table's order.
pub fn entries() -> Vec<Entry> {
    let mut all = crate::echo::lab::entries();
    all.extend(crate::http::lab::entries());
    all.extend(crate::calc::lab::entries());
    all.extend(crate::simple::lab::entries());
    all.extend(crate::chat::lab::entries());
    all.extend(crate::p2p::lab::entries());
    all.extend(crate::rtt::lab::entries());
    all.extend(crate::transfer::lab::entries());
    all.extend(crate::rexec::lab::entries());
    all
}

/// A row of the table.
struct Row {
    name: &'static str,
    transport: &'static str,
    address: String,
    ours: String,
    peer: String,
}

/// Runs the lab until Ctrl-C.
pub async fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let entries = entries();
    if !args.ephemeral {
        let top = entries.iter().map(|e| e.port).max().unwrap_or(0);
        if top.checked_add(args.port_base).is_none() {
            return Err(UsageError(format!(
                "--port-base {} pushes port {top} past 65535; the largest base that fits is {}",
                args.port_base,
                u16::MAX - top
            ))
            .into());
        }
    }
    let shutdown = net::shutdown::on_signals();
    // Bind everything first.
    let mut started: Vec<(Entry, Vec<Bound>)> = Vec::new();
    let mut rows = Vec::new();
    let tools = Tools::detect();
    let mut last_tcp: Option<u16> = None;
    for entry in entries {
        let port = match (args.ephemeral, entry.sockets, last_tcp) {
            (true, Sockets::UdpBesideTcp, Some(p)) => p,
            (true, _, _) => 0,
            (false, _, _) => entry.port + args.port_base,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let bound = bind(entry.sockets, addr).await;
        last_tcp = match (&bound, entry.sockets) {
            (Ok(b), Sockets::Tcp | Sockets::TcpAndUdp) => {
                b.first().and_then(Bound::local_addr).map(|a| a.port())
            }
            _ => None,
        };
        match bound {
            Ok(bound) => {
                let at = bound.first().and_then(Bound::local_addr).unwrap_or(addr);
                rows.push(Row {
                    name: entry.name,
                    transport: entry.transport,
                    address: at.to_string(),
                    ours: (entry.try_ours)(at, tools),
                    peer: (entry.try_peer)(at, tools),
                });
                started.push((entry, bound));
            }
            Err(NetError::AddrInUse { addr }) => {
                tracing::warn!(
                    "{} ({}) not started: {addr} is already in use (another lab running? \
                     try --port-base 1000 or --ephemeral)",
                    entry.name,
                    entry.transport
                );
                rows.push(Row {
                    name: entry.name,
                    transport: entry.transport,
                    address: format!("{addr} (busy)"),
                    ours: "not started: the port is in use".into(),
                    peer: String::new(),
                });
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "starting {} ({}) on {addr}",
                    entry.name, entry.transport
                )));
            }
        }
    }
    if started.is_empty() {
        return Err(NetError::AddrInUseHint {
            addr: "every lab address".into(),
            hint: "is another lab running? try --port-base 1000 or --ephemeral".into(),
        }
        .into());
    }
    let env = Env {
        ports: started
            .iter()
            .flat_map(|(_, b)| b.iter().filter_map(Bound::local_addr).map(|a| a.port()))
            .collect(),
        addresses: started
            .iter()
            .filter_map(|(e, b)| {
                let a = b.first()?.local_addr()?;
                Some((format!("{} ({})", e.name, e.transport), a))
            })
            .collect(),
    };
    print_table(&rows)?;
    let mut tasks = JoinSet::new();
    for (entry, bound) in started {
        let name = entry.name;
        let running = (entry.start)(bound, &env, shutdown.clone());
        tasks.spawn(async move { (name, running.await) });
    }
    while let Some(res) = tasks.join_next().await {
        if let Ok((name, Err(e))) = res {
            tracing::error!("the lab's {name} server stopped: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn bind(sockets: Sockets, addr: SocketAddr) -> Result<Vec<Bound>, NetError> {
    Ok(match sockets {
        Sockets::Tcp => vec![ListenSpec::tcp(addr).bind().await?],
        Sockets::Udp | Sockets::UdpBesideTcp => vec![ListenSpec::udp(addr).bind().await?],
        Sockets::TcpAndUdp => {
            let (tcp, udp) = host::bind_pair(addr, BindOptions::default()).await?;
            vec![tcp, udp]
        }
    })
}

fn print_table(rows: &[Row]) -> std::io::Result<()> {
    use std::io::Write;
    let header = [
        "SERVICE",
        "TRANSPORT",
        "ADDRESS",
        "TRY WITH SOCKLAB",
        "TRY WITH A REAL PEER",
    ];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [r.name, r.transport, &r.address, &r.ours, &r.peer])
        .collect();
    let mut widths = header.map(str::len);
    for r in &cells {
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
    if let Some(note) = path_note() {
        writeln!(out, "{note}")?;
    }
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
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header))?;
    for r in cells {
        writeln!(out, "{}", line(r))?;
    }
    out.flush()
}

/// When `socklab` on PATH is not this program (after `cargo run`, it usually is not there at
/// all), says how to run the table's commands.
fn path_note() -> Option<String> {
    let me = std::env::current_exe().ok()?;
    let on_path = catalog::find_on_path("socklab");
    let same = on_path
        .as_ref()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| std::fs::canonicalize(&me).is_ok_and(|m| m == p));
    if same {
        return None;
    }
    Some(format!(
        "(`socklab` below means {}; to type it as shown: alias socklab='{}')",
        me.display(),
        me.display()
    ))
}
