//! `sluice run`: start the pipelines and the HTTP server, and stop them in order.
//!
//! Shutdown order: refuse new pushes, tell sinks to write what they hold, let in-flight requests
//! get their answers, close the inputs, wait for every sink to finish. Nothing accepted is acked
//! before it is written, and nothing written is left unacknowledged.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::server::{router, AppState};
use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] crate::topology::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// Run until `shutdown` resolves. `listener` overrides `http.listen` (tests bind port 0).
pub async fn run(config: Config, listener: Option<TcpListener>, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    if config.global.pubsub.is_some() {
        tracing::warn!("pubsub is configured, but this build feeds pipelines from the push endpoint only");
    }
    let topology = Topology::start(&config)?;
    let listener = match listener {
        Some(l) => l,
        None => {
            let addr = config.global.http.listen;
            TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, source })?
        }
    };
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let state = AppState {
        inputs: Arc::new(topology.inputs.clone()),
        request_timeout: config.global.http.request_timeout.0,
        shutting_down: tokio_util::sync::CancellationToken::new(),
    };
    let app = router(state.clone(), config.global.http.max_body.0 as usize);
    let pipelines: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(%addr, lake = %config.global.lake.location, instance = %config.global.instance,
        pipelines = %pipelines.join(","), "sluice is running");

    let drain = topology.drain.clone();
    let stopping = state.shutting_down.clone();
    drop(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
            drain.cancel();
        })
        .await
        .map_err(RunError::Serve)?;
    tracing::info!("http server stopped; writing what remains");
    topology.join().await;
    tracing::info!("all pipelines flushed; bye");
    Ok(())
}
