//! `sluice run`: start the pipelines and the HTTP server, and stop them in order.
//!
//! Shutdown order: stop pulling and refuse new pushes, tell sinks to write what they hold, let in-flight requests
//! get their answers, close the inputs, wait for every sink to finish. Nothing accepted is acked
//! before it is written, and nothing written is left unacknowledged.

use std::future::Future;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use tokio::net::TcpListener;

use crate::config::{Config, Sink};
use crate::config_state::{ConfigState, LakeFollower};
use crate::health::liveness::Liveness;
use crate::health::probe::Probe;
use crate::health::producers::Producers;
use crate::health::Clock;
use crate::lake_tail::LakeTail;
use crate::metrics::Metrics;
use crate::server::{router, AppState};
use crate::status::Status;
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
    PushKeys(#[from] crate::source::jwks::KeysError),
    #[error(transparent)]
    Pubsub(#[from] crate::source::pubsub::ConnectError),
    #[error("push_auth.token: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error(transparent)]
    Console(#[from] crate::console::auth::AuthError),
}

/// `push_auth.token` resolved (environment or Secret Manager) when `mode: token` needs it.
async fn push_token(config: &Config) -> Result<Option<crate::secret::Secret>, RunError> {
    let Some(auth) =
        config.global.push_auth.as_ref().filter(|a| a.mode == crate::config::push_auth::PushAuthMode::Token)
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
    let client = crate::source::pubsub::subscriber(ps).await?;
    let mut tasks = Vec::new();
    for p in &config.pipelines {
        if let Some(sub) = &p.source.subscription {
            let input = topology.inputs[&p.name].clone();
            let path = ps.subscription_path(sub);
            let metrics = topology.metrics.subscription(&p.name, &path);
            tasks.extend(crate::source::pubsub::spawn(&client, ps, path, input, metrics, stop.clone()));
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
    let location = crate::store::Location::parse(&config.global.lake.location).ok()?;
    match location.open(config.global.lake.endpoint_url().as_deref()) {
        Ok((store, base)) => Some((store, base, prefix)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the lake to read it back");
            None
        }
    }
}

/// Run until `shutdown` resolves. `listener` overrides `http.listen` (tests bind port 0).
pub async fn run(
    config: Config,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let project = std::env::var("GOOGLE_CLOUD_PROJECT").ok().or_else(|| {
        let g = &config.global;
        g.pubsub.as_ref().map(|p| p.project.clone()).or_else(|| g.bigquery.as_ref().map(|b| b.project.clone()))
    });
    if let Some(p) = project {
        crate::telemetry::set_project(&p);
    }
    let push_auth = Arc::new(crate::source::push_auth::PushAuth::from_config(
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

    let health = &config.global.health;
    let pubsub = config.global.pubsub_enabled();
    let shutting_down = tokio_util::sync::CancellationToken::new();
    let max_outstanding = pubsub.map_or(i64::MAX, |p| p.max_outstanding_messages.get() as i64);
    let liveness = Arc::new(Liveness::new(metrics.clone(), health, max_outstanding, shutting_down.clone()));
    let probe = pubsub.and_then(|p| match Probe::new(p, health.check_interval.0) {
        Ok(probe) => Some(probe),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check subscriptions; readiness follows the streams alone");
            None
        }
    });
    let background = tokio_util::sync::CancellationToken::new();
    let mut chores = vec![tokio::spawn(liveness.clone().run(probe, background.clone()))];
    let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
    if let Some(p) = &observers.producers {
        let emit_to = health.producers.emit_to(&names);
        let emit = emit_to.as_ref().and_then(|n| topology.inputs.get(n).cloned());
        chores.push(tokio::spawn(p.clone().run(config.global.instance.clone(), emit, background.clone())));
        if let Some((store, base, prefix)) = emit_to.and_then(|n| lake_of(&config, &n)) {
            let tail = LakeTail::new(store, crate::lake_tail::join(&base, &prefix), Some(p.window_hours()));
            let every = health.producers.lake_refresh.0;
            chores.push(tokio::spawn(p.clone().follow_lake(tail, every, background.clone())));
        }
    }
    if let Some(f) = follower {
        chores.push(tokio::spawn(f.run(health.config_state.refresh.0, background.clone())));
    }
    let status = Arc::new(Status::new(
        config.global.instance.clone(),
        names.iter().map(|n| n.to_string()).collect(),
        metrics.clone(),
        liveness,
        observers.producers.clone(),
        observers.config_state.clone(),
    ));
    let console = match console {
        Some(parts) => parts.start(&config, status.clone(), &push_auth, addr, &background).await?,
        None => None,
    };
    let console = console.map(|(c, tasks)| {
        chores.extend(tasks);
        c
    });
    let state = AppState {
        inputs: Arc::new(topology.inputs.clone()),
        request_timeout: config.global.http.request_timeout.0,
        shutting_down,
        metrics,
        status,
        push_auth,
        console,
    };
    let app = router(state.clone(), config.global.http.max_body.0 as usize);
    tracing::info!(%addr, lake = %config.global.lake.location, instance = %config.global.instance,
        pipelines = %names.join(","), "sluice is running");

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
    // The producer tracker holds an input of the health pipeline: it must let go before the join.
    background.cancel();
    for t in chores {
        let _ = t.await;
    }
    for t in pullers {
        let _ = t.await;
    }
    topology.join().await;
    tracing::info!("all pipelines flushed; bye");
    Ok(())
}
