//! The HTTP server in `socklab lab`, on a demo site built into the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::catalog::{self, Entry, Env, Sockets, Tools};
use crate::net::NetError;
use crate::net::serve::ServeSummary;

use super::server::{self, Config, DEFAULT_PORT, log::Destination};

/// The lab's HTTP server.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "http",
        transport: "tcp",
        port: DEFAULT_PORT,
        sockets: Sockets::Tcp,
        start: catalog::single(|b, env, shutdown| {
            let site = b.local_addr().map(|addr| DemoSite::write(addr, env));
            async move {
                let site = match site {
                    Some(Ok(site)) => site,
                    Some(Err(e)) => {
                        return Err(NetError::Io {
                            what: "writing the demo site".into(),
                            source: e,
                        });
                    }
                    None => return Ok(ServeSummary::default()),
                };
                let mut cfg = Config::new(site.root().to_path_buf());
                // Like `http serve`: the access log on stdout, under the lab's table.
                cfg.log = Destination::Stdout;
                let summary = server::run(b, cfg, shutdown).await;
                // The demo site goes when the server is done with it.
                drop(site);
                summary
            }
        }),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab http get http://{a}/ -O -   (or open it in a browser)")
}

fn try_peer(a: SocketAddr, _: Tools) -> String {
    format!("curl -i http://{a}/no-such-page.html")
}

/// The files the lab's HTTP server serves, built into the binary.
const DEMO: &[(&str, &[u8])] = &[
    ("style.css", include_bytes!("lab_demo/style.css")),
    ("socket.png", include_bytes!("lab_demo/socket.png")),
    ("files/notes.txt", include_bytes!("lab_demo/notes.txt")),
    ("files/style-copy.css", include_bytes!("lab_demo/style.css")),
];

const INDEX: &str = include_str!("lab_demo/index.html");

/// The demo site in a fresh temporary directory, removed when dropped (also when the lab
/// fails to start).
struct DemoSite {
    root: PathBuf,
}

impl DemoSite {
    fn write(addr: SocketAddr, env: &Env) -> std::io::Result<DemoSite> {
        remove_abandoned_sites();
        let dir = std::env::temp_dir().join(format!("{SITE_PREFIX}{}", std::process::id()));
        // Owned from here on: removed again whatever fails next.
        let mut site = DemoSite { root: dir.clone() };
        for (name, bytes) in DEMO {
            write_file(&dir.join(name), bytes)?;
        }
        let services: String = env
            .addresses
            .iter()
            .map(|(name, a)| format!("<li><code>{name}</code> on <code>{a}</code></li>\n"))
            .collect();
        let index = INDEX
            .replace("{{ADDR}}", &addr.to_string())
            .replace("{{SERVICES}}", services.trim_end());
        write_file(&dir.join("index.html"), index.as_bytes())?;
        // The HTTP server needs a canonical root.
        site.root = std::fs::canonicalize(&site.root)?;
        Ok(site)
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

/// The demo site's directory is this prefix and the lab's process id.
const SITE_PREFIX: &str = "socklab-lab-";

/// Removes the demo sites of labs that were killed (SIGKILL leaves no chance to clean up):
/// a `socklab-lab-PID` directory whose process is gone.
fn remove_abandoned_sites() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SITE_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        let ours = entry.file_type().is_ok_and(|t| t.is_dir());
        if !alive && ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
