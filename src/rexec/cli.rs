//! `socklab rexec passwd`, `serve`, `connect` and `run`: arguments and their conversion to
//! a [`server::Config`] or a [`client::Config`].

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use ipnet::IpNet;
use tokio::io::AsyncBufReadExt;
use zeroize::Zeroizing;

use super::client::{self, Channel, ClientError, PasswordSource, Trust};
use super::proto::{Ending, valid_user};
use super::server;
use super::tls::{self, HostKey};
use super::users::{self, Users, UsersError};
use crate::args::{OutputArgs, UsageError, parse_duration};
use crate::exit::CodedResult;
use crate::net::{self, AllowList, ServeOptions};

/// rexec roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Manage the users file: add (or change) a user's password, remove a user, list users.
    #[command(after_help = PASSWD_EXAMPLES)]
    Passwd(PasswdArgs),
    /// Run commands for authenticated users, over TLS 1.3 (TCP port 2222).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// A prompt (`>>> `) whose lines run on the server; piped, each stdin line is a command.
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
    /// Run one command on the server, like `ssh host cmd`: its stdout, stderr and exit
    /// status are socklab's.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
}

const PASSWD_EXAMPLES: &str = "\
Examples:
  socklab rexec passwd users add ana                  asks twice, without echo
  echo 's3cret' | socklab rexec passwd users add ana --password-stdin
  socklab rexec passwd users list
  socklab rexec passwd users remove ana
The file holds one `USER:$argon2id$…` line per user (mode 0600). These users are not system
accounts: every command runs as the server's own user.";

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab rexec serve --users users                   on 127.0.0.1:2222
  socklab rexec serve --users users -b :: --log audit.jsonl --command-timeout 10m
The host key is made on first start (Ed25519, mode 0600, in ~/.local/share/socklab/ unless
--host-key) and its fingerprint printed on stderr: give it to your users so they can check it.
Commands run with `sh -c` as this server's user, in their own process group, with a clean
environment (PATH, HOME, USER, LOGNAME, SHELL, LANG, TERM, PWD, SOCKLAB_REXEC_USER,
SOCKLAB_REXEC_PEER). As root it refuses to start unless --allow-root.";

const CONNECT_EXAMPLES: &str = "\
Examples:
  socklab rexec connect ana@127.0.0.1:2222            the first time: shows the key, asks
  socklab rexec connect ana@server --accept-new --log session.txt
  printf 'pwd\\ncd /tmp\\nls\\n' | SOCKLAB_PASSWORD=… socklab rexec connect ana@server
`cd DIR` changes the directory of the commands after it; `exit` or Ctrl-D ends the session;
Ctrl-C interrupts the remote command. Exit status: the last command's, or 255 when socklab
itself fails (connection, host key, authentication).";

const RUN_EXAMPLES: &str = "\
Examples:
  socklab rexec run ana@127.0.0.1:2222 -- uname -a
  tar cz dir | socklab rexec run ana@server -- 'tar xz -C /tmp'
Like ssh, the words after -- are joined with spaces and run by `sh -c` on the server.
Exit status: the command's; 128+N when signal N killed it; 124 when --command-timeout ended
it; 127 when it could not start; 255 when socklab itself fails (connection, host key
changed or unknown, authentication).";

/// `socklab rexec passwd FILE …`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The users file (created with mode 0600 if missing).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(subcommand)]
    action: PasswdAction,
}

/// What to do to the users file.
#[derive(Debug, Subcommand)]
pub enum PasswdAction {
    /// Add a user, or change its password.
    Add {
        /// The user name: 1 to 32 of A-Z a-z 0-9 . _ - (not first . or -).
        #[arg(value_name = "USER")]
        user: String,
        /// Read the password from the first line of stdin instead of asking twice.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// List the users.
    List,
}

/// `socklab rexec serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The users file (`socklab rexec passwd FILE add USER`); read again at each login.
    #[arg(long, value_name = "FILE")]
    users: PathBuf,
    /// Port (0 picks a free one; the first stdout line says which).
    #[arg(short, long, default_value_t = server::DEFAULT_PORT)]
    port: u16,
    /// Address to bind: 127.0.0.1 (the default), ::1, 0.0.0.0, or ::.
    #[arg(short, long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// The host key (PKCS#8 PEM, made on first start with mode 0600) [default:
    /// ~/.local/share/socklab/rexec_host_key.pem].
    #[arg(long, value_name = "FILE")]
    host_key: Option<PathBuf>,
    /// Append every event (connections, logins, commands, disconnections) to FILE as JSON
    /// lines.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Start even as root (every command then runs as root).
    #[arg(long)]
    allow_root: bool,
    /// Where each session starts [default: this server's HOME].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Close a connection not authenticated this long after it came.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    login_grace: Duration,
    /// Close a session with no command and no message for this long.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// End a command running longer than this (SIGTERM, then SIGKILL 2 s later; 0: never).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    command_timeout: Duration,
    /// Password checks at once (Argon2id takes 19 MiB each); more wait their turn.
    #[arg(long, default_value_t = server::DEFAULT_MAX_AUTH, value_name = "N")]
    max_auth: usize,
    /// Connections not logged in yet, at most, in all: more are closed at once (as sshd's
    /// MaxStartups), so peers that never log in cannot take every --max-conns slot.
    #[arg(long, default_value_t = server::DEFAULT_MAX_STARTUPS, value_name = "N")]
    max_startups: usize,
    /// Connections not logged in yet, at most, per source address (an IPv6 /64 counts as
    /// one address).
    #[arg(long, default_value_t = server::DEFAULT_PER_SOURCE_STARTUPS, value_name = "N")]
    max_startups_per_source: usize,
    /// Accept only these clients (an address or CIDR network; repeatable).
    #[arg(long, value_name = "ADDR|CIDR", value_parser = net::allow::parse_net)]
    allow: Vec<IpNet>,
    /// Serve at most N connections at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_conns: usize,
}

/// Flags `connect` and `run` share.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Who and where: USER@HOST:PORT, USER@HOST (port 2222), or HOST (user: $USER).
    #[arg(value_name = "USER@HOST:PORT")]
    target: String,
    /// Trust and remember a host key not seen before without asking (for scripts). A key
    /// that changed is still refused.
    #[arg(long)]
    accept_new: bool,
    /// Trust exactly this host key (SHA256:…, as the server printed it), whatever the
    /// known-hosts file says.
    #[arg(long, value_name = "SHA256:…")]
    fingerprint: Option<String>,
    /// The known-hosts file [default: ~/.local/share/socklab/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Read the password from the first line of FILE (otherwise SOCKLAB_PASSWORD, otherwise
    /// a no-echo prompt).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Append a transcript of the session (commands, output, exit statuses, times) to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Give up connecting, or waiting for the server's answer to the login, after this long.
    #[arg(short, long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

/// `socklab rexec connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// `socklab rexec run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The command and its arguments (after --), joined with spaces as ssh does.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Passwd(args) => passwd(args),
            Role::Serve(args) => serve(args, out).await,
            Role::Connect(args) => connect(args).await,
            Role::Run(args) => run(args).await,
        }
    }
}

fn passwd(args: PasswdArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        PasswdAction::List => {
            let u = Users::load(&args.file, false).coded()?;
            for name in u.names() {
                println!("{name}");
            }
        }
        PasswdAction::Remove { user } => {
            let mut u = Users::load(&args.file, false).coded()?;
            if !u.remove(&user) {
                return Err(UsersError::NoSuchUser(user))
                    .coded()
                    .map_err(Into::into);
            }
            u.save(&args.file).coded()?;
            eprintln!("removed {user} from {}", args.file.display());
        }
        PasswdAction::Add {
            user,
            password_stdin,
        } => {
            if !valid_user(&user) {
                return Err(UsersError::BadName(user)).coded().map_err(Into::into);
            }
            let mut u = Users::load(&args.file, true).coded()?;
            let password = if password_stdin {
                let mut line = Zeroizing::new(String::new());
                std::io::stdin().lock().read_line(&mut line)?;
                let trimmed = line.trim_end_matches(['\n', '\r']);
                Zeroizing::new(trimmed.to_string())
            } else {
                if std::fs::File::open("/dev/tty").is_err() {
                    return Err(UsageError(
                        "no terminal to ask the password on: use --password-stdin".into(),
                    )
                    .into());
                }
                let a = Zeroizing::new(rpassword::prompt_password(format!(
                    "New password for {user}: "
                ))?);
                let b = Zeroizing::new(rpassword::prompt_password("Again: ")?);
                if a != b {
                    return Err(
                        UsageError("the two passwords differ; nothing changed".into()).into(),
                    );
                }
                a
            };
            if password.is_empty() || password.len() > super::proto::MAX_PASSWORD {
                return Err(UsageError(format!(
                    "the password must be 1 to {} bytes",
                    super::proto::MAX_PASSWORD
                ))
                .into());
            }
            let phc = users::hash(password.as_bytes().to_vec()).coded()?;
            let existed = u.set(&user, phc);
            u.save(&args.file).coded()?;
            eprintln!(
                "{} {user} in {}",
                if existed {
                    "changed the password of"
                } else {
                    "added"
                },
                args.file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let ip = crate::args::bind_ip(&args.bind)?;
    if unsafe_geteuid() == 0 && !args.allow_root {
        return Err(UsageError(
            "refusing to start as root: every command would run as root. Run it as an \
             ordinary user, or pass --allow-root if that is really meant"
                .into(),
        )
        .into());
    }
    if args.max_conns == 0
        || args.max_auth == 0
        || args.max_startups == 0
        || args.max_startups_per_source == 0
    {
        return Err(UsageError(
            "--max-conns, --max-auth and --max-startups(-per-source) must be at least 1".into(),
        )
        .into());
    }
    // The users file must be readable now (an empty one is allowed: nobody gets in yet).
    let users = Users::load_for_server(&args.users).coded()?;
    if users.names().is_empty() {
        tracing::warn!(
            "{} has no users yet: add one with `socklab rexec passwd {} add USER`",
            args.users.display(),
            args.users.display()
        );
    }
    let home = match args.dir {
        Some(d) if d.is_dir() => d,
        Some(d) => {
            return Err(UsageError(format!("--dir {} is not a directory", d.display())).into());
        }
        // A HOME that does not exist (`nobody`'s /nonexistent): sessions start in /, as
        // sshd does when it cannot enter a home directory.
        None => match std::env::var_os("HOME").map(PathBuf::from) {
            Some(h) if h.is_dir() => h,
            other => {
                if let Some(h) = other {
                    tracing::warn!(
                        "HOME {} is not a directory: sessions start in /",
                        h.display()
                    );
                }
                PathBuf::from("/")
            }
        },
    };
    // Absolute, so AUTH_OK and EXIT carry what `pwd` would print.
    let home = std::fs::canonicalize(&home)
        .map_err(|e| anyhow::Error::new(e).context(format!("resolving {}", home.display())))?;
    let key_path = match args.host_key {
        Some(p) => p,
        None => tls::data_dir("the host key")
            .coded()?
            .join("rexec_host_key.pem"),
    };
    let key = HostKey::load_or_create(&key_path).coded()?;
    let audit = match &args.log {
        Some(p) => server::Audit::open(p).map_err(|e| {
            anyhow::Error::new(e).context(format!("opening the log {}", p.display()))
        })?,
        None => server::Audit::none(),
    };
    let shutdown = net::shutdown::on_signals();
    let bound = net::host::ListenSpec::tcp(std::net::SocketAddr::new(ip, args.port))
        .bind()
        .await?;
    bound.announce()?;
    if key.created {
        eprintln!(
            "socklab: made a new host key in {} (mode 0600)",
            key_path.display()
        );
    }
    if !out.quiet {
        eprintln!("socklab: host key fingerprint {}", key.fingerprint);
    }
    let cfg = server::Config {
        serve: ServeOptions {
            allow: AllowList::new(args.allow),
            max_conns: args.max_conns,
            ..ServeOptions::default()
        },
        users: args.users,
        home,
        login_grace: args.login_grace,
        idle: args.idle_timeout,
        command_timeout: (!args.command_timeout.is_zero()).then_some(args.command_timeout),
        max_auth: args.max_auth,
        max_startups: args.max_startups,
        per_source_startups: args.max_startups_per_source,
    };
    server::run(bound, cfg, &key, audit, shutdown)
        .await
        .coded()?;
    Ok(ExitCode::SUCCESS)
}

/// The effective user id.
fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Parses `USER@HOST:PORT`.
fn target(s: &str) -> Result<(String, String, u16), UsageError> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (u.to_string(), r),
        None => (std::env::var("USER").unwrap_or_else(|_| "root".into()), s),
    };
    if !valid_user(&user) {
        return Err(UsageError(format!(
            "{user:?} is not a user name (1 to 32 of A-Z a-z 0-9 . _ -)"
        )));
    }
    let endpoint = crate::args::inet_endpoint(rest, server::DEFAULT_PORT, "rexec runs over TCP")?;
    match endpoint {
        net::Endpoint::Inet { host, port } => Ok((user, host, port)),
        net::Endpoint::Unix(_) => Err(UsageError("rexec runs over TCP".into())),
    }
}

fn client_config(a: ClientArgs) -> anyhow::Result<client::Config> {
    let (user, host, port) = target(&a.target)?;
    if let Some(fp) = &a.fingerprint
        && !tls::valid_fingerprint(fp)
    {
        return Err(UsageError(format!(
            "--fingerprint {fp:?} is not SHA256: and 43 characters of base64"
        ))
        .into());
    }
    let known_hosts = match a.known_hosts {
        Some(p) => p,
        None => tls::data_dir("the known hosts")
            .coded()?
            .join("known_hosts"),
    };
    let password = if let Some(path) = &a.password_file {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            anyhow::Error::new(e).context(format!("reading --password-file {}", path.display()))
        })?);
        let first = text.lines().next().unwrap_or("");
        PasswordSource::Given(Zeroizing::new(first.to_string()))
    } else if let Ok(p) = std::env::var("SOCKLAB_PASSWORD") {
        PasswordSource::Given(Zeroizing::new(p))
    } else {
        PasswordSource::Prompt
    };
    Ok(client::Config {
        user,
        host,
        port,
        trust: Trust {
            fingerprint: a.fingerprint,
            accept_new: a.accept_new,
            known_hosts,
        },
        password,
        timeout: a.timeout,
        log: a.log,
    })
}

/// socklab's own failure: the message, and exit 255 (the other codes are the remote
/// command's).
fn own(e: ClientError) -> anyhow::Result<ExitCode> {
    Err(crate::exit::Coded::from(e).into())
}

/// The client's settings; every problem is one of socklab's own (exit 255), found before
/// anything is sent.
fn client_setup(a: ClientArgs) -> Result<client::Config, ClientError> {
    client_config(a).map_err(|e| ClientError::Setup(format!("{e:#}")))
}

async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = match client_setup(args.client) {
        Ok(c) => c,
        Err(e) => return own(e),
    };
    let line = args.command.join(" ");
    if line.trim().is_empty() {
        return own(ClientError::Setup("no command to run".into()));
    }
    if line.len() > super::proto::MAX_COMMAND {
        return own(ClientError::Setup(format!(
            "a command of {} bytes: commands are at most {} bytes",
            line.len(),
            super::proto::MAX_COMMAND
        )));
    }
    if let Err(e) = client::exit_on_interrupt_outside_commands() {
        return own(e);
    }
    let mut chan = match client::connect(&cfg).await {
        Ok(c) => c,
        Err(e) => return own(e),
    };
    let ending = match chan.exec(&line, Some(tokio::io::stdin())).await {
        Ok(e) => e,
        Err(e) => return own(e),
    };
    let _ = chan.bye().await;
    Ok(ExitCode::from(ending.status()))
}

async fn connect(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let cfg = match client_setup(args.client) {
        Ok(c) => c,
        Err(e) => return own(e),
    };
    let interactive = client::interactive();
    if let Err(e) = client::exit_on_interrupt_outside_commands() {
        return own(e);
    }
    let mut chan = match client::connect(&cfg).await {
        Ok(c) => c,
        Err(e) => return own(e),
    };
    let mut last = 0u8;
    let result = if interactive {
        prompt_loop(&mut chan, &mut last).await
    } else {
        piped_loop(&mut chan, &mut last).await
    };
    if let Err(e) = result {
        return own(e);
    }
    if let Err(e) = chan.bye().await {
        return own(e);
    }
    Ok(ExitCode::from(last))
}

/// Whether a line ends the session on the client's side.
fn is_exit(line: &str) -> bool {
    matches!(line.trim(), "exit" | "logout" | "quit")
}

async fn one(chan: &mut Channel, line: &str, last: &mut u8) -> Result<bool, ClientError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(true);
    }
    if is_exit(line) {
        return Ok(false);
    }
    let ending: Ending = chan.exec(line, None::<tokio::io::Empty>).await?;
    *last = ending.status();
    if matches!(
        ending,
        Ending::Signaled(_) | Ending::TimedOut(_) | Ending::NotStarted
    ) {
        eprintln!("socklab: {ending}");
    }
    Ok(true)
}

async fn piped_loop(chan: &mut Channel, last: &mut u8) -> Result<(), ClientError> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(ClientError::Local {
                    what: "reading stdin".into(),
                    source: e,
                });
            }
        };
        if !one(chan, &line, last).await? {
            return Ok(());
        }
    }
}

/// The interactive prompt: a line editor on its own thread, asked for one line at a time
/// (so the command's output is not mixed with the prompt).
async fn prompt_loop(chan: &mut Channel, last: &mut u8) -> Result<(), ClientError> {
    let (want_tx, want_rx) = std::sync::mpsc::channel::<()>();
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<Option<String>>(1);
    let restore = crate::term::TermRestore::save();
    std::thread::Builder::new()
        .name("line-editor".into())
        .spawn(move || {
            let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                let _ = line_tx.blocking_send(None);
                return;
            };
            while want_rx.recv().is_ok() {
                let line = loop {
                    match editor.readline(">>> ") {
                        Ok(l) => {
                            let _ = editor.add_history_entry(l.as_str());
                            break Some(l);
                        }
                        // Ctrl-C at the prompt: a new prompt, as in a shell.
                        Err(rustyline::error::ReadlineError::Interrupted) => continue,
                        Err(_) => break None,
                    }
                };
                let end = line.is_none();
                if line_tx.blocking_send(line).is_err() || end {
                    return;
                }
            }
        })
        .map_err(|e| ClientError::Local {
            what: "starting the line editor".into(),
            source: e,
        })?;
    eprintln!(
        "socklab: connected ({}); `exit` or Ctrl-D ends the session",
        chan.fingerprint
    );
    let r = async {
        loop {
            if want_tx.send(()).is_err() {
                return Ok(());
            }
            let Some(Some(line)) = line_rx.recv().await else {
                return Ok(());
            };
            if !one(chan, &line, last).await? {
                return Ok(());
            }
        }
    }
    .await;
    drop(restore);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            target("ana@127.0.0.1:2200").unwrap(),
            ("ana".into(), "127.0.0.1".into(), 2200)
        );
        assert_eq!(
            target("ana@[::1]:22").unwrap(),
            ("ana".into(), "::1".into(), 22)
        );
        assert_eq!(
            target("ana@example.org").unwrap(),
            ("ana".into(), "example.org".into(), server::DEFAULT_PORT)
        );
        assert!(target("a/b@host").is_err());
        assert!(target("ana@").is_err());
    }

    #[test]
    fn exit_words() {
        assert!(is_exit("exit"));
        assert!(is_exit("  logout "));
        assert!(!is_exit("exit 3"));
    }
}
