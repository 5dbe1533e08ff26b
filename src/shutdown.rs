//! Waiting for the signal to stop (SIGINT, or SIGTERM from Cloud Run or Kubernetes), and the
//! phases of stopping that follow it ([`Shutdown`]).

use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops sluice");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Stopping `sluice run`, in its phases. Each task holds the token of the phase that stops it,
/// so the app names two phases instead of handing out one token per task.
#[derive(Clone)]
pub struct Shutdown {
    /// Phase 1, on the signal: streams stop pulling, pushes are refused and readiness reports
    /// false, sinks write what they hold instead of waiting for full batches.
    draining: CancellationToken,
    /// Phase 2, once the HTTP server has answered its last request: background chores stop (the
    /// producer tracker lets go of the health pipeline's input, so the pipelines can close).
    chores: CancellationToken,
}

impl Shutdown {
    /// Phases whose first one cancels `drain` (the topology's: its sinks stop waiting).
    pub fn new(drain: CancellationToken) -> Shutdown {
        Shutdown { draining: drain, chores: CancellationToken::new() }
    }

    /// Cancelled when phase 1 begins.
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// Cancelled when phase 2 begins.
    pub fn chores(&self) -> CancellationToken {
        self.chores.clone()
    }

    /// Begin phase 1: stop taking events in and write what is held.
    pub fn begin_draining(&self) {
        self.draining.cancel();
    }

    /// Begin phase 2: stop the background chores.
    pub fn stop_chores(&self) {
        self.chores.cancel();
    }
}
