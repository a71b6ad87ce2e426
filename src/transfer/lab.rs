//! The receiver in `socklab lab`, saving into a temporary directory.

use std::net::SocketAddr;
use std::time::Duration;

use super::server::{self, Config, DEFAULT_MAX_SIZE, DEFAULT_PORT};
use crate::catalog::{self, Entry, Sockets, Tools};
use crate::net::{NetError, ServeOptions};
use crate::report::Reporter;

/// The lab's receiver.
pub fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "transfer",
        transport: "tcp",
        port: DEFAULT_PORT,
        sockets: Sockets::Tcp,
        start: catalog::single(|b, _env, shutdown| async move {
            let dir = tempfile::Builder::new()
                .prefix("socklab-transfer-")
                .tempdir()
                .map_err(|e| NetError::Io {
                    what: "creating the receiving directory".into(),
                    source: e,
                })?;
            tracing::info!(
                "transfer: files received are saved in {}",
                dir.path().display()
            );
            let cfg = Config {
                serve: ServeOptions::default(),
                dir: dir.path().to_path_buf(),
                overwrite: false,
                max_size: DEFAULT_MAX_SIZE,
                timeout: Duration::from_secs(600),
                reporter: Reporter::new(false, false),
            };
            // The directory and what it holds go when the server is done with it.
            let summary = server::run(b, cfg, shutdown).await;
            drop(dir);
            summary
        }),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!("socklab transfer send {a} --text hello /etc/hostname")
}

fn try_peer(a: SocketAddr, _: Tools) -> String {
    // HELLO, TEXT 1 "hi", BYE; the reply is HELLO and TEXT_OK 1.
    catalog::python_tcp(
        a,
        "\\x01\\x00\\x00\\x00\\x05SLXF\\x01\\x10\\x00\\x00\\x00\\x06\\x00\\x00\\x00\\x01hi0\\x00\\x00\\x00\\x00",
    )
}
