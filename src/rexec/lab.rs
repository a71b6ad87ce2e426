//! The server in `socklab lab`: a one-time user `lab` with a random password (printed in the
//! table), a host key and a start directory in a temporary directory removed when the lab
//! stops. Not started when the lab runs as root: its commands would run as root.

use std::net::SocketAddr;
use std::sync::OnceLock;

use super::server::{self, Audit, Config, DEFAULT_IDLE, DEFAULT_LOGIN_GRACE, DEFAULT_MAX_AUTH};
use super::tls::HostKey;
use super::users::{self, Users};
use crate::catalog::{self, Entry, Sockets, Tools};
use crate::net::{NetError, ServeOptions};

/// The lab's password, made once per run.
fn password() -> &'static str {
    static PW: OnceLock<String> = OnceLock::new();
    PW.get_or_init(|| {
        use rand::RngExt;
        const CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut rng = rand::rng();
        (0..12)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    })
}

fn io(what: &str, e: impl std::fmt::Display) -> NetError {
    NetError::Io {
        what: what.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The lab's rexec server (none as root).
pub fn entries() -> Vec<Entry> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        tracing::info!(
            "rexec is not in the lab as root (its commands would run as root); run the lab as \
             an ordinary user, or start `socklab rexec serve --allow-root` yourself"
        );
        return Vec::new();
    }
    vec![Entry {
        name: "rexec",
        transport: "tcp, TLS 1.3",
        port: server::DEFAULT_PORT,
        sockets: Sockets::Tcp,
        start: catalog::single(|b, _env, shutdown| async move {
            let dir = tempfile::Builder::new()
                .prefix("socklab-rexec-")
                .tempdir()
                .map_err(|e| io("creating the lab's rexec directory", e))?;
            let mut u = Users::default();
            let phc = users::hash(password().as_bytes().to_vec())
                .map_err(|e| io("hashing the lab's password", e))?;
            u.set("lab", phc);
            let users_file = dir.path().join("users");
            u.save(&users_file)
                .map_err(|e| io("writing the lab's users file", e))?;
            let key = HostKey::load_or_create(&dir.path().join("host_key.pem"))
                .map_err(|e| io("making the lab's host key", e))?;
            tracing::info!(
                "rexec: user lab, password {}, host key {}, commands start in {}",
                password(),
                key.fingerprint,
                dir.path().display()
            );
            let cfg = Config {
                serve: ServeOptions {
                    max_conns: 64,
                    ..ServeOptions::default()
                },
                users: users_file,
                home: dir.path().to_path_buf(),
                login_grace: DEFAULT_LOGIN_GRACE,
                idle: DEFAULT_IDLE,
                command_timeout: None,
                max_auth: DEFAULT_MAX_AUTH,
                max_startups: server::DEFAULT_MAX_STARTUPS,
                per_source_startups: server::DEFAULT_PER_SOURCE_STARTUPS,
            };
            let summary = server::run(b, cfg, &key, Audit::none(), shutdown).await;
            drop(dir);
            summary
        }),
        try_ours,
        try_peer,
    }]
}

fn try_ours(a: SocketAddr, _: Tools) -> String {
    format!(
        "SOCKLAB_PASSWORD={} socklab rexec run lab@{a} --accept-new -- 'pwd; uname -a'",
        password()
    )
}

fn try_peer(a: SocketAddr, _: Tools) -> String {
    format!(
        "openssl s_client -connect {a} -alpn socklab-rexec/1 -brief </dev/null   (the host key's certificate)"
    )
}
