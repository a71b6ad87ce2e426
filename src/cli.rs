//! The command-line tree: `socklab <protocol> <role> [options]`, and nothing else.
//!
//! Each protocol owns its arguments in `<protocol>/cli.rs` and converts them into its
//! `Config`; drivers never see clap types. The flag groups every protocol shares live in
//! [`crate::args`], a leaf module. This file and `main.rs` are the only ones that know every
//! protocol: adding one is one `Command` variant and one arm in [`Command::run`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::args::{OutputArgs, UsageError};
use crate::simple::proto::Service;
use crate::{calc, chat, echo, http, lab, p2p, rexec, rtt, simple, transfer};

/// `0.1.0 (git 1a2b3c4)`: the package version and the revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SOCKLAB_GIT_REVISION"),
    ")"
);

/// socklab: reference clients and servers for the classic socket exercises.
#[derive(Debug, Parser)]
#[command(
    name = "socklab",
    version = VERSION,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with `socklab lab` to run every server on loopback, \
    or `socklab echo serve --help`. Exit codes: see `socklab man` or README.md."
)]
pub struct Cli {
    /// Output options, accepted after any subcommand.
    #[command(flatten)]
    pub out: OutputArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The protocols.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Echo over TCP, UDP and Unix sockets (RFC 862), with optional framing.
    #[command(
        after_help = "Examples:\n  socklab echo serve -p 0\n  socklab echo send 127.0.0.1:3500 hello\nMore: socklab echo serve --help, socklab echo send --help"
    )]
    Echo {
        /// Server or client.
        #[command(subcommand)]
        role: echo::cli::Role,
    },
    /// Discard (RFC 863): a server that throws away what it gets, and a client.
    #[command(
        after_help = "Examples:\n  socklab discard serve -p 10009\n  socklab discard send 10009 < file.bin\nMore: socklab discard serve --help, socklab discard send --help"
    )]
    Discard {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::DiscardRole,
    },
    /// Character generator (RFC 864): an endless pattern of printable lines.
    #[command(
        after_help = "Examples:\n  socklab chargen serve -p 10019\n  socklab chargen get 10019 --bytes 1M -q > out.txt\nMore: socklab chargen serve --help, socklab chargen get --help"
    )]
    Chargen {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::ChargenRole,
    },
    /// Quote of the day (RFC 865).
    #[command(
        after_help = "Examples:\n  socklab qotd serve -p 10017 --quotes quotes.txt\n  socklab qotd get 10017\nMore: socklab qotd serve --help, socklab qotd get --help"
    )]
    Qotd {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::QotdRole,
    },
    /// Daytime (RFC 867): the date and time as text; the client shows the clock offset.
    #[command(
        after_help = "Examples:\n  socklab daytime serve -p 10013\n  socklab daytime get 10013        the date and the offset of its clock\nMore: socklab daytime serve --help, socklab daytime get --help"
    )]
    Daytime {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// Time (RFC 868): seconds since 1900 in 4 bytes; the client shows the clock offset.
    #[command(
        after_help = "Examples:\n  socklab time serve -p 10037\n  socklab time get -u 10037\nMore: socklab time serve --help, socklab time get --help"
    )]
    Time {
        /// Server or client.
        #[command(subcommand)]
        role: simple::cli::Role,
    },
    /// All six simple services (echo, discard, daytime, qotd, chargen, time) on TCP and UDP,
    /// like inetd's built-ins.
    Inetd(simple::cli::InetdArgs),
    /// Postfix calculator protocol on TCP 51216 (the course's exercise).
    #[command(
        after_help = "Examples:\n  socklab calc serve\n  socklab calc connect 51216 --eval '3 4 +'\nMore: socklab calc serve --help, socklab calc connect --help"
    )]
    Calc {
        /// Server or client.
        #[command(subcommand)]
        role: calc::cli::Role,
    },
    /// HTTP/1.1: a static file server and a wget-like downloader.
    #[command(
        after_help = "Examples:\n  socklab http serve ./site -p 8080\n  socklab http get http://127.0.0.1:8080/ -O -\nMore: socklab http serve --help, socklab http get --help"
    )]
    Http {
        /// Server or client.
        #[command(subcommand)]
        role: http::cli::Role,
    },
    /// A UDP relay that loses, duplicates, reorders, delays and corrupts datagrams on purpose.
    Impair(p2p::cli::ImpairArgs),
    /// A chat between two peers over UDP, with error control and zlib compression.
    #[command(
        after_help = "Examples:\n  socklab p2p chat --listen 7000 --peer 7001 --nick ann\n  socklab p2p chat --listen 7001 --peer 7000 --nick bob\nMore: socklab p2p chat --help"
    )]
    P2p {
        /// What to do.
        #[command(subcommand)]
        role: p2p::cli::Role,
    },
    /// Round-trip time after RFC 2681: a reflector, and a Poisson stream of probes with the
    /// RFC's statistics, calibration and a plot.
    #[command(
        after_help = "Examples:\n  socklab rtt serve\n  socklab rtt measure 127.0.0.1 -c 100 --plot rtt.svg\nMore: socklab rtt serve --help, socklab rtt measure --help"
    )]
    Rtt {
        /// Reflector or source.
        #[command(subcommand)]
        role: rtt::cli::Role,
    },
    /// A TCP chat: rooms and nicknames over lines (nc) or the course's framings.
    #[command(
        after_help = "Examples:\n  socklab chat serve\n  socklab chat join 6667 --nick alice\nMore: socklab chat serve --help, socklab chat join --help"
    )]
    Chat {
        /// Server or client.
        #[command(subcommand)]
        role: chat::cli::Role,
    },
    /// A text message and files over one TCP connection: typed frames, texts between a
    /// file's chunks, files saved only once their SHA-256 is verified.
    #[command(
        after_help = "Examples:\n  socklab transfer serve --dir inbox\n  socklab transfer send 127.0.0.1:3600 --text hi photo.png\nMore: socklab transfer serve --help, socklab transfer send --help"
    )]
    Transfer {
        /// Receiver or sender.
        #[command(subcommand)]
        role: transfer::cli::Role,
    },
    /// Remote commands over TLS 1.3: Argon2id passwords, host keys trusted as ssh does, a
    /// JSON audit log of every command.
    #[command(
        after_help = "Examples:\n  socklab rexec passwd users add ana\n  socklab rexec serve --users users\n  socklab rexec connect ana@127.0.0.1:2222\n  socklab rexec run ana@127.0.0.1:2222 -- ls -l\nMore: socklab rexec serve --help, socklab rexec run --help"
    )]
    Rexec {
        /// passwd, serve, connect or run.
        #[command(subcommand)]
        role: rexec::cli::Role,
    },
    /// Start every server on loopback and show how to try each one.
    Lab(lab::LabArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per subcommand with --dir.
    #[command(after_help = MAN_EXAMPLES)]
    Man(ManArgs),
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  socklab completions bash > ~/.local/share/bash-completion/completions/socklab
  socklab completions zsh > ~/.zfunc/_socklab        (with fpath+=~/.zfunc in .zshrc)
  socklab completions fish > ~/.config/fish/completions/socklab.fish";

const MAN_EXAMPLES: &str = "\
Examples:
  socklab man | man -l -                 read it now
  socklab man --dir ~/.local/share/man/man1  socklab.1 and socklab-echo-serve.1, …";

/// `socklab man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write socklab.1 and one page per subcommand (socklab-echo-serve.1, …) into DIR
    /// instead of printing socklab.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl Command {
    /// Runs the command.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        if out.json && !self.takes_json() {
            return Err(UsageError(
                "--json is for commands whose output is data (echo send, calc connect, \
                 daytime get, …); this one prints logs or files"
                    .into(),
            )
            .into());
        }
        match self {
            Command::Echo { role } => role.run(out).await,
            Command::Calc { role } => role.run(out).await,
            Command::Discard { role } => role.run(out).await,
            Command::Chargen { role } => role.run(out).await,
            Command::Qotd { role } => role.run(out).await,
            Command::Daytime { role } => role.run(Service::Daytime, out).await,
            Command::Time { role } => role.run(Service::Time, out).await,
            Command::Inetd(args) => simple::cli::inetd(args).await,
            Command::Http { role } => role.run(out).await,
            Command::Chat { role } => role.run(out).await,
            Command::P2p { role } => role.run(out).await,
            Command::Rtt { role } => role.run(out).await,
            Command::Transfer { role } => role.run(out).await,
            Command::Rexec { role } => role.run(out).await,
            Command::Impair(args) => args.run(out.json).await,
            Command::Lab(args) => lab::run(args).await,
            Command::Completions { shell } => {
                let mut out = std::io::stdout().lock();
                clap_complete::generate(shell, &mut Cli::command(), "socklab", &mut out);
                out.flush()?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Man(args) => man(args),
        }
    }

    /// Whether the command prints data or results that `--json` can shape.
    fn takes_json(&self) -> bool {
        use simple::cli::{ChargenRole, DiscardRole, QotdRole, Role};
        matches!(
            self,
            Command::Echo {
                role: echo::cli::Role::Send(_)
            } | Command::Calc {
                role: calc::cli::Role::Connect(_)
            } | Command::Discard {
                role: DiscardRole::Send(_)
            } | Command::Chargen {
                role: ChargenRole::Get(_)
            } | Command::Qotd {
                role: QotdRole::Get(_)
            } | Command::Chat {
                role: chat::cli::Role::Join(_)
            } | Command::Daytime { role: Role::Get(_) }
                | Command::Time { role: Role::Get(_) }
                | Command::Impair(_)
                | Command::P2p { .. }
                | Command::Rtt {
                    role: rtt::cli::Role::Measure(_)
                }
                | Command::Transfer { .. }
        )
    }
}

/// `socklab man`: the page for the whole tool on stdout, or every page into a directory.
fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    write_pages(&dir, cmd, "socklab", &mut written)?;
    eprintln!("wrote {written} manual pages into {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_pages(
    dir: &std::path::Path,
    cmd: clap::Command,
    name: &str,
    written: &mut usize,
) -> std::io::Result<()> {
    let cmd = cmd.name(name.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    // Written whole to a temporary name, then renamed: no half-written page is left.
    let path = dir.join(format!("{name}.1"));
    let tmp = dir.join(format!(".{name}.1.tmp"));
    std::fs::write(&tmp, &page)?;
    std::fs::rename(&tmp, &path)?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(
            dir,
            sub.clone(),
            &format!("{name}-{}", sub.get_name()),
            written,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
