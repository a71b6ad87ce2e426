//! `socklab calc serve` and `socklab calc connect`: arguments and their conversion to configs.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::proto::{ParseError, Request};
use super::{client, server};
use crate::args::{JsonArg, OutputArgs, ServerNetArgs, UsageError, parse_duration};
use crate::exit::CodedResult;
use crate::net::{self, Endpoint};

/// Calculator roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run a postfix calculator server: operands and operators, one per line, each answered
    /// with one `OK…` or `FALLO…` line.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Talk to a calculator server: a REPL on a terminal, stdin lines otherwise, or one
    /// expression with --eval.
    #[command(after_help = CONNECT_EXAMPLES)]
    Connect(ConnectArgs),
}

const SERVE_EXAMPLES: &str = "\
Examples:
  socklab calc serve                          TCP on 127.0.0.1:51216
  socklab calc serve -p 0 -t 30s              a free port (printed first); idle clients closed
                                              after 30 s
  socklab calc serve --unix /tmp/calc.sock    Unix stream socket
Try it:
  printf '3\\n4\\n+\\n' | nc -N 127.0.0.1 51216    prints OK, OK, OK 7
  socklab calc connect 127.0.0.1:51216           a REPL: calc> 3 4 +
Limits: lines of 1024 bytes, numbers of 10,000 digits written out, |exponent| of ^ up to
100,000; / and sqrt round half-even to 50 significant digits (docs/PROTOCOLS.md).";

const CONNECT_EXAMPLES: &str = "\
Examples:
  socklab calc connect 127.0.0.1:51216                  REPL (history, line editing)
  socklab calc connect 51216 --eval '0.1 0.2 +'         prints 0.3
  socklab calc connect 51216 --eval '2 100 ^' --json    prints {\"result\":\"1267…376\"}
  printf '3\\n4\\n+\\n' | socklab calc connect 51216      prints OK, OK, OK 7
Exit status: 0 success, 1 the server answered FALLO to --eval, 2 bad usage or --eval
without a result, 3 network error or the server closed the connection, 4 no reply in
time, 5 a reply that is not OK/FALLO, 6 local I/O error (see README).";

/// `socklab calc serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    net: ServerNetArgs,
}

impl TryFrom<&ServeArgs> for server::Config {
    type Error = UsageError;

    fn try_from(a: &ServeArgs) -> Result<Self, UsageError> {
        if a.net.udp {
            return Err(UsageError(
                "calc runs over a byte stream (TCP, or a Unix stream socket with --unix), \
                 not --udp"
                    .into(),
            ));
        }
        if a.net.timeout.is_zero() {
            return Err(UsageError("--timeout must be more than 0".into()));
        }
        Ok(server::Config {
            serve: a.net.serve_options(),
            timeout: a.net.timeout,
        })
    }
}

/// `socklab calc connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Server address: HOST:PORT, [IPV6]:PORT, PORT (loopback) or unix:/PATH.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Evaluate one postfix expression and print its result: each word is sent as one line
    /// ("3 4 +" sends 3, 4 and +). Stops at the first FALLO (exit status 1).
    #[arg(short, long, value_name = "EXPR")]
    eval: Option<String>,
    /// Give up on connecting, or on a reply, after this long.
    #[arg(short, long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print every send and receive as a hex dump on stderr.
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    json: JsonArg,
}

impl TryFrom<&ConnectArgs> for client::Config {
    type Error = anyhow::Error;

    fn try_from(a: &ConnectArgs) -> anyhow::Result<Self> {
        let target: Endpoint = a.addr.parse()?;
        let eval = match &a.eval {
            None => None,
            Some(expr) => {
                let tokens: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
                let Some(last) = tokens.last() else {
                    return Err(
                        UsageError("--eval needs an expression, e.g. \"3 4 +\"".into()).into(),
                    );
                };
                // The last token decides whether there is a result: a number leaves its
                // transaction open. Checked here, before connecting to anyone.
                if matches!(
                    Request::parse(last.as_bytes()),
                    Ok(Request::Operand(_))
                        | Err(ParseError::NotANumber | ParseError::TooManyDigits)
                ) {
                    return Err(UsageError(format!(
                        "--eval must end with an operator, e.g. \"3 4 +\"; {last:?} is a number"
                    ))
                    .into());
                }
                Some(tokens)
            }
        };
        if a.timeout.is_zero() {
            return Err(UsageError("--timeout must be more than 0".into()).into());
        }
        Ok(client::Config {
            target,
            timeout: a.timeout,
            trace: a.trace,
            eval,
        })
    }
}

impl Role {
    /// Runs the role.
    pub async fn run(self, out: OutputArgs) -> anyhow::Result<ExitCode> {
        match self {
            Role::Serve(args) => serve(args).await,
            Role::Connect(args) => connect(args, out).await,
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = server::Config::try_from(&args)?;
    let shutdown = net::shutdown::on_signals();
    let bound = args.net.listen_spec(server::DEFAULT_PORT)?.bind().await?;
    bound.announce()?;
    server::run(bound, cfg, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn connect(args: ConnectArgs, out: OutputArgs) -> anyhow::Result<ExitCode> {
    let cfg = client::Config::try_from(&args)?;
    client::run(cfg, out.reporter(args.json)).await.coded()?;
    Ok(ExitCode::SUCCESS)
}
