//! What each protocol offers `socklab lab`: its servers, how to start them, how to try them.
//!
//! A leaf module: protocols fill in [`Entry`] values (in their own `lab.rs`), and `lab.rs`
//! binds, starts and presents them. Neither side needs to know the other's insides, so a
//! new protocol joins the lab by listing its entries, without touching `lab.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::net::NetError;
use crate::net::host::Bound;

/// The sockets an entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// One TCP listener.
    Tcp,
    /// One UDP socket.
    Udp,
    /// One UDP socket on the port of the TCP entry listed just before (echo's UDP beside
    /// echo's TCP, also when the kernel chose that port).
    UdpBesideTcp,
    /// A TCP listener and a UDP socket on the same port (inetd's way).
    TcpAndUdp,
}

/// A running lab server: ends when the shutdown token is cancelled.
pub type Running = Pin<Box<dyn Future<Output = Result<(), NetError>> + Send>>;

/// Starts an entry's server on its bound sockets (in the order [`Sockets`] names them).
pub type Start = Box<dyn FnOnce(Vec<Bound>, &Env, CancellationToken) -> Running + Send>;

/// A [`Start`] for an entry with one socket: `run` gets it, the lab's environment and the
/// shutdown token, and returns the server's future.
pub fn single<F, Fut, T>(run: F) -> Start
where
    F: FnOnce(Bound, &Env, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetError>> + Send + 'static,
{
    Box::new(move |bound: Vec<Bound>, env: &Env, shutdown| -> Running {
        match bound.into_iter().next() {
            Some(b) => {
                let fut = run(b, env, shutdown);
                Box::pin(async move { fut.await.map(drop) })
            }
            None => Box::pin(async { Ok(()) }),
        }
    })
}

/// What the lab knows that an entry may need.
#[derive(Debug, Clone)]
pub struct Env {
    /// Every port the lab serves (a UDP server drops datagrams from them: a reflection
    /// loop between two lab services).
    pub ports: Vec<u16>,
    /// Every entry's name and address, for pages that point to the others.
    pub addresses: Vec<(String, SocketAddr)>,
}

/// How to try a server.
#[derive(Debug, Clone, Copy)]
pub struct Tools {
    /// `nc` (netcat-openbsd) is on PATH.
    pub nc: bool,
    /// `rdate` is on PATH.
    pub rdate: bool,
}

impl Tools {
    /// Looks for the programs on PATH.
    pub fn detect() -> Self {
        Tools {
            nc: on_path("nc"),
            rdate: on_path("rdate"),
        }
    }
}

/// A line that tries a server.
pub type TryLine = fn(SocketAddr, Tools) -> String;

/// One server of the lab.
pub struct Entry {
    /// Its name in the table and in log lines ("echo", "echo-lines", "daytime").
    pub name: &'static str,
    /// What it speaks, for the table ("tcp", "tcp, header frames", "tcp+udp").
    pub transport: &'static str,
    /// Its port before `--port-base`.
    pub port: u16,
    /// The sockets it needs.
    pub sockets: Sockets,
    /// How to start it.
    pub start: Start,
    /// How to try it with socklab.
    pub try_ours: TryLine,
    /// How to try it with a program people already have.
    pub try_peer: TryLine,
}

/// Where the named program is on PATH, if it is.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn on_path(name: &str) -> bool {
    find_on_path(name).is_some()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A Python one-liner that connects over TCP, sends `send` and prints what comes back (for
/// machines without nc).
pub fn python_tcp(addr: SocketAddr, send: &str) -> String {
    format!(
        "python3 -c \"import socket; s=socket.create_connection(('{}',{})); \
         s.sendall(b'{send}'); s.shutdown(1); print(s.recv(65536))\"",
        addr.ip(),
        addr.port()
    )
}

/// A Python one-liner that sends one UDP datagram and prints the reply.
pub fn python_udp(addr: SocketAddr, send: &str) -> String {
    format!(
        "python3 -c \"import socket; s=socket.socket(2,2); s.settimeout(2); \
         s.sendto(b'{send}',('{}',{})); print(s.recv(65536))\"",
        addr.ip(),
        addr.port()
    )
}
