//! The `socklab` binary: parse arguments, set up logging and the runtime, dispatch, and turn
//! errors into the documented exit codes (see `exit.rs` and README.md).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use socklab::args::OutputArgs;
use socklab::cli::Cli;
use socklab::exit;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.out);
    match socklab::net::raise_fd_limit() {
        Ok(n) => tracing::debug!("open-file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("socklab: cannot start the async runtime: {e}");
            return ExitCode::from(exit::LOCAL_IO);
        }
    };
    let result = runtime.block_on(cli.command.run(cli.out));
    // Do not wait for connection tasks or threads that outlived their grace period.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) if exit::is_broken_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("socklab: {}", describe(&err));
            ExitCode::from(exit::code_for(err.as_ref()))
        }
    }
}

/// The error and its causes, "outer: inner", skipping a cause whose text the message
/// already contains (many of our errors quote their cause).
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn init_logging(out: &OutputArgs) {
    let level = match (out.quiet, out.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Its default reports a failed log write with eprintln!, which panics when stderr is a
        // closed pipe. A lost log line must never stop a server.
        .log_internal_errors(false)
        .with_target(false)
        .init();
}
