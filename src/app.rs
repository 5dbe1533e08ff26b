//! `sluice run`: start the pipelines and the HTTP server, and stop them in order.
//!
//! Shutdown order: stop pulling and refuse new pushes, tell sinks to write what they hold, let in-flight requests
//! get their answers, close the inputs, wait for every sink to finish. Nothing accepted is acked
//! before it is written, and nothing written is left unacknowledged.

use std::future::Future;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, Sink};
use crate::health::config_state::{ConfigState, LakeFollower};
use crate::health::liveness::Liveness;
use crate::health::probe::Probe;
use crate::health::producers::Producers;
use crate::health::Clock;
use crate::lake_tail::LakeTail;
use crate::server::status::Status;
use crate::server::{router, AppState};
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::Metrics;
use crate::topology::{Observer, Topology};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] crate::topology::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("http server: {0}")]
    Serve(std::io::Error),
    #[error("push_auth.keys: {0}")]
    PushKeys(#[from] crate::source::push::jwks::KeysError),
    #[error(transparent)]
    Pubsub(#[from] crate::source::pull::ConnectError),
    #[error("push_auth.token: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    Console(#[from] crate::console::auth::AuthError),
}

/// `push_auth.token` resolved (environment or Secret Manager) when `mode: token` needs it.
async fn push_token(config: &Config) -> Result<Option<crate::secret::Secret>, RunError> {
    let Some(auth) = config.global.push_auth.as_ref().filter(|a| a.mode() == crate::config::push_auth::AuthMode::Token)
    else {
        return Ok(None);
    };
    let Some(setting) = &auth.token else { return Ok(None) };
    let dir = crate::config::secrets_dir(&config.file, &config.global);
    let endpoint = config.global.secrets.endpoint.as_deref();
    Ok(Some(setting.resolve(&dir, endpoint, |k| std::env::var(k).ok()).await?))
}

/// Streaming pull for every pipeline with a subscription, when `pubsub.enabled`.
async fn start_pulling(
    config: &Config,
    topology: &Topology,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Vec<tokio::task::JoinHandle<()>>, RunError> {
    let Some(ps) = config.global.pubsub_enabled() else {
        tracing::info!("pubsub is not enabled; pipelines are fed by the push endpoint only");
        return Ok(Vec::new());
    };
    let client = crate::source::pull::grpc::Client::new(ps)?;
    let mut tasks = Vec::new();
    for p in &config.pipelines {
        if let Some(sub) = &p.source.subscription {
            let input = topology.inputs[&p.name].clone();
            let path = ps.subscription_path(sub);
            let metrics = topology.metrics.subscription(&p.name, &path);
            tasks.extend(crate::source::pull::spawn(&client, ps, path, input, metrics, stop.clone()));
        }
    }
    Ok(tasks)
}

/// The observers of the chains' output: producer liveness and the configuration state.
struct Observers {
    producers: Option<Arc<Producers>>,
    config_state: Option<Arc<ConfigState>>,
}

impl Observers {
    fn new(config: &Config, metrics: &Arc<Metrics>) -> Observers {
        let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        let h = &config.global.health;
        let watched = h.producers.watched(&names);
        let producers = (!watched.is_empty())
            .then(|| Arc::new(Producers::new(h.producers.clone(), watched, Clock::default(), metrics.clone())));
        let config_state = h.config_state.pipeline(&names).map(|p| Arc::new(ConfigState::new(p, metrics.clone())));
        Observers { producers, config_state }
    }

    fn all(&self) -> Vec<Arc<dyn Observer>> {
        let mut all: Vec<Arc<dyn Observer>> = Vec::new();
        all.extend(self.producers.clone().map(|p| p as Arc<dyn Observer>));
        all.extend(self.config_state.clone().map(|c| c as Arc<dyn Observer>));
        all
    }
}

/// The configuration state rebuilt from its snapshot and lake files, and the follower that
/// keeps reading the lake; `None` when there is no config pipeline with a lake sink.
async fn rebuild_config_state(config: &Config, state: &Arc<ConfigState>) -> Option<LakeFollower> {
    let (store, base, prefix) = lake_of(config, state.pipeline())?;
    let mut follower = LakeFollower::new(store, &base, &prefix, &config.global.instance, state.clone());
    match follower.rebuild().await {
        Ok(changes) => {
            let (services, keys) = state.size();
            tracing::info!(changes, services, keys, "configuration state rebuilt from the lake");
        }
        Err(e) => tracing::warn!(error = %e, "cannot rebuild the configuration state from the lake"),
    }
    Some(follower)
}

/// The lake store, its base path and the prefix of `pipeline`'s (first) lake sink.
fn lake_of(config: &Config, pipeline: &str) -> Option<(Arc<dyn object_store::ObjectStore>, ObjectPath, String)> {
    let pipeline = config.pipelines.iter().find(|p| p.name == pipeline)?;
    let prefix = pipeline.sinks.iter().find_map(|s| match s {
        Sink::Lake { prefix, .. } => Some(prefix.clone()),
        _ => None,
    })?;
    match config.lake.open(config.global.lake.endpoint.as_deref()) {
        Ok((store, base)) => Some((store, base, prefix)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the lake to read it back");
            None
        }
    }
}

/// The resident memory `sluice run` stays within (`docs/operations.md`, "Memory"): the largest
/// flow control of one pipeline (its subscription's when pulled, else its pushes'), plus a fixed
/// 64 MiB ([`crate::alloc::governor::FIXED_PART`]). Several pipelines full at once go past it;
/// freed memory then goes back at once.
pub fn memory_bound(config: &Config) -> u64 {
    let flow = |p: &crate::config::Pipeline| match config.global.pulling(&p.source) {
        Some(pubsub) => pubsub.max_outstanding_bytes.0,
        None => config.global.http.max_outstanding_bytes.0,
    };
    config.pipelines.iter().map(flow).max().unwrap_or(0) + crate::alloc::governor::FIXED_PART
}

/// Run until `shutdown` resolves. `listener` overrides `http.listen` (tests bind port 0).
pub async fn run(
    config: Config,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    set_project(&config);
    let push_auth = Arc::new(crate::source::push::auth::PushAuth::from_config(
        config.global.push_auth.as_ref(),
        push_token(&config).await?,
    )?);
    let metrics = Arc::new(Metrics::new());
    let observers = Observers::new(&config, &metrics);
    let console = crate::console::setup::Parts::new(&config);
    let mut watching = observers.all();
    watching.extend(console.iter().flat_map(|c| c.observers()));
    let topology = Topology::start_with(&config, metrics.clone(), &watching).await?;
    let follower = match &observers.config_state {
        Some(c) => rebuild_config_state(&config, c).await,
        None => None,
    };
    let phases = Shutdown::new(topology.drain.clone());
    let pullers = start_pulling(&config, &topology, &phases.draining()).await?;
    let listener = match listener {
        Some(l) => l,
        None => {
            let addr = config.global.http.listen;
            TcpListener::bind(addr).await.map_err(|source| RunError::Bind { addr, source })?
        }
    };
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let (liveness, mut chores) = start_liveness(&config, &metrics, &phases);
    chores.extend(start_followers(&config, &observers, &topology, follower, &phases));
    let names: Vec<String> = config.pipelines.iter().map(|p| p.name.clone()).collect();
    let status = Arc::new(Status::new(
        config.global.instance.clone(),
        names.clone(),
        metrics.clone(),
        liveness,
        observers.producers.clone(),
        observers.config_state.clone(),
    ));
    let console = match console {
        Some(parts) => parts.start(&config, status.clone(), &push_auth, addr, &phases.chores()).await?,
        None => None,
    };
    let console = console.map(|(c, tasks)| {
        chores.extend(tasks);
        c
    });
    let state = AppState {
        inputs: Arc::new(topology.inputs.clone()),
        request_timeout: config.global.http.request_timeout.0,
        shutting_down: phases.draining(),
        metrics,
        status,
        push_auth,
        console,
    };
    let app = router(state, config.global.http.max_body.0 as usize);
    tracing::info!(%addr, lake = %config.global.lake.location, instance = %config.global.instance,
        pipelines = %names.join(","), "sluice is running");
    let signalled = phases.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            signalled.begin_draining();
        })
        .await
        .map_err(RunError::Serve)?;
    tracing::info!("http server stopped; writing what remains");
    finish(&phases, chores, pullers, topology).await;
    tracing::info!("all pipelines flushed; bye");
    Ok(())
}

/// Logs name the project: `GOOGLE_CLOUD_PROJECT`, else Pub/Sub's or BigQuery's.
fn set_project(config: &Config) {
    let project = std::env::var("GOOGLE_CLOUD_PROJECT").ok().or_else(|| {
        let g = &config.global;
        g.pubsub.as_ref().map(|p| p.project.clone()).or_else(|| g.bigquery.as_ref().map(|b| b.project.clone()))
    });
    if let Some(p) = project {
        crate::telemetry::set_project(&p);
    }
}

/// sluice's own readiness and stall checks, running until the chores stop.
fn start_liveness(config: &Config, metrics: &Arc<Metrics>, phases: &Shutdown) -> (Arc<Liveness>, Vec<JoinHandle<()>>) {
    let health = &config.global.health;
    let pubsub = config.global.pubsub_enabled();
    let max_outstanding = pubsub.map_or(i64::MAX, |p| p.max_outstanding_messages.get() as i64);
    let liveness = Arc::new(Liveness::new(metrics.clone(), health, max_outstanding, phases.draining()));
    let probe = pubsub.and_then(|p| match Probe::new(p, health.check_interval.0) {
        Ok(probe) => Some(probe),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check subscriptions; readiness follows the streams alone");
            None
        }
    });
    let task = tokio::spawn(liveness.clone().run(probe, phases.chores()));
    (liveness, vec![task])
}

/// The producer tracker (emitting transitions, following the lake) and the configuration
/// state's lake follower, running until the chores stop.
fn start_followers(
    config: &Config,
    observers: &Observers,
    topology: &Topology,
    follower: Option<LakeFollower>,
    phases: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let health = &config.global.health;
    let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
    let mut chores = Vec::new();
    if let Some(p) = &observers.producers {
        let emit_to = health.producers.emit_to(&names);
        let emit = emit_to.as_ref().and_then(|n| topology.inputs.get(n).cloned());
        chores.push(tokio::spawn(p.clone().run(config.global.instance.clone(), emit, phases.chores())));
        if let Some((store, base, prefix)) = emit_to.and_then(|n| lake_of(config, &n)) {
            let tail = LakeTail::new(store, crate::store::join(&base, &prefix), Some(p.window_hours()));
            let every = health.producers.lake_refresh.0;
            chores.push(tokio::spawn(p.clone().follow_lake(tail, every, phases.chores())));
        }
    }
    if let Some(f) = follower {
        chores.push(tokio::spawn(f.run(health.config_state.refresh.0, phases.chores())));
    }
    chores
}

/// After the server answered its last request: stop the chores, let the streams deliver their
/// acks, then wait for every pipeline to write what it holds.
async fn finish(phases: &Shutdown, chores: Vec<JoinHandle<()>>, pullers: Vec<JoinHandle<()>>, topology: Topology) {
    // The producer tracker holds an input of the health pipeline: it must let go before the join.
    phases.stop_chores();
    for t in chores.into_iter().chain(pullers) {
        let _ = t.await;
    }
    topology.join().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_bound_is_the_largest_flow_control_of_one_pipeline_plus_64_mib() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sluice.yaml");
        let pushed = crate::config::load_with_env(&file, |_| None).unwrap();
        assert_eq!(memory_bound(&pushed), (100 + 64) << 20, "http.max_outstanding_bytes: 100MiB");
        let pulled = crate::config::load_with_env(&file, |k| (k == "SLUICE_PUBSUB").then(|| "true".into())).unwrap();
        assert!(pulled.pipelines.iter().all(|p| pulled.global.pulling(&p.source).is_some()));
        assert_eq!(memory_bound(&pulled), (100 + 64) << 20, "pubsub.max_outstanding_bytes: 100MiB");
    }
}
