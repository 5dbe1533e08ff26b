//! Building the console for `sluice run`: its observers before the pipelines start (producer
//! transitions, configuration changes), then, once sluice listens, its authentication and its
//! background chores (rate samples, dead letters read back from the lake).

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::auth::{AuthError, ConsoleAuth};
use super::changes::ChangeLog;
use super::letters::{Follower, Letters};
use super::rates::Rates;
use super::timeline::Timeline;
use super::{Budget, Console, ReplayHint};
use crate::config::console::Enabled;
use crate::config::{Config, Sink};
use crate::server::status::Status;
use crate::source::push::auth::PushAuth;
use crate::store::join;
use crate::topology::Observer;

/// The observers, made before the pipelines start so they see every event.
pub struct Parts {
    timeline: Option<Arc<Timeline>>,
    changes: Option<Arc<ChangeLog>>,
}

impl Parts {
    /// `None` when `console.enabled` is false.
    pub fn new(config: &Config) -> Option<Parts> {
        if config.global.console.enabled == Enabled::Off {
            return None;
        }
        let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        let h = &config.global.health;
        let timeline = h.producers.emit_to(&names).map(|p| Arc::new(Timeline::new(p)));
        let changes = h.config_state.pipeline(&names).map(|p| Arc::new(ChangeLog::new(p)));
        Some(Parts { timeline, changes })
    }

    pub fn observers(&self) -> Vec<Arc<dyn Observer>> {
        let mut all: Vec<Arc<dyn Observer>> = Vec::new();
        all.extend(self.timeline.clone().map(|t| t as Arc<dyn Observer>));
        all.extend(self.changes.clone().map(|c| c as Arc<dyn Observer>));
        all
    }

    /// The console for sluice listening on `listen`, and its chores (stopped by `stop`);
    /// `None` when `enabled: local` and `listen` is not loopback.
    pub async fn start(
        self,
        config: &Config,
        status: Arc<Status>,
        push_auth: &PushAuth,
        listen: std::net::SocketAddr,
        stop: &CancellationToken,
    ) -> Result<Option<(Arc<Console>, Vec<JoinHandle<()>>)>, AuthError> {
        let c = &config.global.console;
        if !c.active(listen) {
            tracing::info!(%listen, "console is off: console.enabled is local and sluice does not listen on loopback");
            return Ok(None);
        }
        let token_mode = c.auth_required().filter(|a| a.mode() == crate::config::push_auth::AuthMode::Token);
        let token = match token_mode.and_then(|a| a.token.as_ref()) {
            Some(setting) => {
                let dir = crate::config::secrets_dir(&config.file, &config.global);
                let endpoint = config.global.secrets.endpoint.as_deref();
                Some(setting.resolve(&dir, endpoint, |k| std::env::var(k).ok()).await?)
            }
            None => None,
        };
        if let (Some(mine), PushAuth::Token(push)) = (&token, push_auth) {
            if push.matches(mine.expose().as_bytes()) {
                return Err(AuthError::SameAsPush);
            }
        }
        let auth = ConsoleAuth::new(c, token, listen)?;
        let rates = Arc::new(Rates::new(status.pipelines.clone()));
        let letters = Arc::new(Letters::default());
        let mut chores = vec![tokio::spawn(rates.clone().run(status.metrics.clone(), stop.clone()))];
        chores.extend(follow_dead_letters(config, letters.clone(), stop));
        tracing::info!(%listen, auth = auth.describe(), "console at http://{listen}/");
        let console = Console {
            status,
            auth,
            rates,
            timeline: self.timeline,
            changes: self.changes,
            letters,
            mask: super::mask::Mask::new(),
            budget: budget(config),
            replay: replay_hint(config),
        };
        Ok(Some((Arc::new(console), chores)))
    }
}

fn budget(config: &Config) -> Budget {
    Budget {
        pubsub_messages: config.global.pubsub_enabled().map(|p| p.max_outstanding_messages.get()),
        push_messages: config.global.http.max_outstanding_messages.get(),
    }
}

fn replay_hint(config: &Config) -> ReplayHint {
    let g = &config.global;
    let bigquery = g.bigquery.as_ref().is_some_and(|b| b.enabled);
    ReplayHint {
        config: config.file.display().to_string(),
        dead_letters: format!("{}/{}", g.lake.location.trim_end_matches('/'), g.lake.dead_letters.trim_matches('/')),
        to_bigquery: config
            .pipelines
            .iter()
            .filter(|p| bigquery && p.sinks.iter().any(|s| matches!(s, Sink::BigQuery { .. })))
            .map(|p| p.name.clone())
            .collect(),
    }
}

/// Reads every pipeline's dead letters back from the lake, when the lake opens.
fn follow_dead_letters(config: &Config, letters: Arc<Letters>, stop: &CancellationToken) -> Option<JoinHandle<()>> {
    let lake = &config.global.lake;
    let location = crate::store::Location::parse(&lake.location).ok()?;
    let (store, base) = match location.open(lake.endpoint.as_deref()) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(error = %e, "console: cannot open the lake to read dead letters back");
            return None;
        }
    };
    let prefixes = config.pipelines.iter().map(|p| join(&base, &format!("{}/{}", lake.dead_letters, p.name))).collect();
    Some(tokio::spawn(Follower::new(store, prefixes, letters).run(stop.clone())))
}
