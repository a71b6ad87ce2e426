//! Graceful shutdown on Ctrl-C or SIGTERM.
//!
//! The first signal cancels a [`CancellationToken`]: servers stop accepting, and open
//! connections get a grace period to finish (see `serve`). A second signal exits at once
//! with status 130, for when the grace period is more patience than the user has.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Returns a token cancelled by the first Ctrl-C (SIGINT) or SIGTERM.
///
/// Must be called inside a tokio runtime. If the signal handlers cannot be installed the
/// token is simply never cancelled by signals (the process still dies on them).
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot install signal handlers; Ctrl-C will stop at once");
            return;
        };
        // Cancel first, log second: logging must never stand between a signal and shutdown.
        let what = tokio::select! {
            _ = int.recv() => "interrupted",
            _ = term.recv() => "terminated",
        };
        cancel.cancel();
        tracing::info!("{what}: shutting down (signal again to force)");
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}
