//! `sluice run`: start the pipelines and the HTTP server, and stop them in order.
//!
//! Shutdown order: stop pulling and refuse new pushes, tell sinks to write what they hold, let in-flight requests
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
    #[error(transparent)]
    Pubsub(#[from] crate::source::pubsub::ConnectError),
}

/// Streaming pull for every pipeline with a subscription, when `pubsub.enabled`.
async fn start_pulling(
    config: &Config,
    topology: &Topology,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, RunError> {
    let Some(ps) = config.global.pubsub.as_ref().filter(|p| p.enabled) else {
        tracing::info!("pubsub is not enabled; pipelines are fed by the push endpoint only");
        return Ok(Vec::new());
    };
    let client = crate::source::pubsub::subscriber(ps).await?;
    let mut tasks = Vec::new();
    for p in &config.pipelines {
        if let Some(sub) = &p.source.subscription {
            let input = topology.inputs[&p.name].clone();
            tasks.extend(crate::source::pubsub::spawn(&client, ps, ps.subscription_path(sub), input, stop.clone()));
        }
    }
    Ok(tasks)
}

/// Run until `shutdown` resolves. `listener` overrides `http.listen` (tests bind port 0).
pub async fn run(
    config: Config,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let topology = Topology::start(&config)?;
    let stop_pulling = tokio_util::sync::CancellationToken::new();
    let pullers = start_pulling(&config, &topology, &stop_pulling).await?;
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
    let stop = stop_pulling.clone();
    drop(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
            stopping.cancel();
            drain.cancel();
        })
        .await
        .map_err(RunError::Serve)?;
    tracing::info!("http server stopped; writing what remains");
    for t in pullers {
        let _ = t.await;
    }
    topology.join().await;
    tracing::info!("all pipelines flushed; bye");
    Ok(())
}
