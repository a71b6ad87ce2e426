//! `socklab calc` (placeholder; being written).

use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::OutputArgs;

/// Calculator roles.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run the calculator server.
    Serve,
}

impl Role {
    /// Runs the role.
    pub async fn run(self, _out: OutputArgs) -> anyhow::Result<ExitCode> {
        anyhow::bail!("not written yet")
    }
}
