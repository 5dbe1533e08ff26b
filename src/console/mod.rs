//! The web console: server-rendered pages at `/` and `/ui/...` on sluice's own HTTP server,
//! everything embedded in the binary, a small script for live refresh (it fetches the page's
//! `<main>` again with `?fragment=1` every few seconds).
//!
//! Pages: `overview` (sluice's verdict, per pipeline rates with sparklines, lag, flow control,
//! sinks, subscriptions), `services` (producer states and timelines), `config` (current
//! configuration, history and diff of a key), `dead_letters` (the latest, from the lake, with the
//! `sluice replay` command). Every request passes [`auth`] first; every shown text is escaped
//! ([`html`]) and configuration values and payloads are masked ([`mask`]).

pub mod auth;
pub mod changes;
pub mod config;
pub mod dead_letters;
pub mod diff;
pub mod html;
pub mod letters;
pub mod login;
pub mod mask;
pub mod overview;
pub mod rates;
pub mod services;
pub mod setup;
#[cfg(test)]
mod tests;
pub mod timeline;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::server::status::Status;
use crate::server::AppState;
use html::Nav;

/// The flow-control limits outstanding messages are shown against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    /// `pubsub.max_outstanding_messages`, per subscription, when pulling.
    pub pubsub_messages: Option<usize>,
    /// `http.max_outstanding_messages`, per push-only pipeline.
    pub push_messages: usize,
}

/// What the dead-letters page needs to write the replay command.
#[derive(Debug, Clone, Default)]
pub struct ReplayHint {
    /// The config file sluice runs with.
    pub config: String,
    /// `lake.location` joined with `lake.dead_letters`.
    pub dead_letters: String,
    /// Pipelines with an enabled BigQuery sink (replayed there; others into the lake).
    pub to_bigquery: Vec<String>,
}

/// Everything the pages read.
pub struct Console {
    pub status: Arc<Status>,
    pub auth: auth::ConsoleAuth,
    pub rates: Arc<rates::Rates>,
    pub timeline: Option<Arc<timeline::Timeline>>,
    pub changes: Option<Arc<changes::ChangeLog>>,
    pub letters: Arc<letters::Letters>,
    pub mask: mask::Mask,
    pub budget: Budget,
    pub replay: ReplayHint,
}

impl Console {
    /// The `<main>` of a page and its title.
    pub fn render(&self, nav: Nav, q: &html::Query, now: DateTime<Utc>) -> (&'static str, String) {
        match nav {
            Nav::Overview => ("Overview", overview::render(self, now)),
            Nav::Services => ("Services", services::render(self, q, now)),
            Nav::Config => ("Configuration", config::render(self, q)),
            Nav::DeadLetters => ("Dead letters", dead_letters::render(self, q)),
        }
    }

    /// A whole page, or only its `<main>` for the live refresh (`fragment=1`).
    pub fn page(&self, nav: Nav, q: &html::Query, now: DateTime<Utc>) -> String {
        let (title, main) = self.render(nav, q, now);
        if q.get("fragment").is_some_and(|f| f == "1") {
            html::fragment(now, &main)
        } else {
            html::layout(title, nav, &self.status.instance, now, &main)
        }
    }
}

/// The console's routes, merged into the server's router when it is enabled.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|s, h, q| serve(s, h, q, Nav::Overview)))
        .route("/ui", get(|s, h, q| serve(s, h, q, Nav::Overview)))
        .route("/ui/services", get(|s, h, q| serve(s, h, q, Nav::Services)))
        .route("/ui/config", get(|s, h, q| serve(s, h, q, Nav::Config)))
        .route("/ui/dead-letters", get(|s, h, q| serve(s, h, q, Nav::DeadLetters)))
        .route(html::SCRIPT_PATH, get(script))
        .route("/ui/login", get(login::form).post(login::submit))
}

/// The live-refresh script: static and public, like any page's script.
async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], html::JS).into_response()
}

/// No script, style, frame or form from anywhere else; nothing cached or sent on as a referrer.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

async fn serve(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<html::Query>, nav: Nav) -> Response {
    let Some(console) = state.console.clone() else { return StatusCode::NOT_FOUND.into_response() };
    if let Err(refusal) = console.auth.check(&headers).await {
        let login = match console.auth {
            auth::ConsoleAuth::Token(_) => "<p><a href=\"/ui/login\">sign in with the console's token</a></p>",
            _ => "",
        };
        let body = format!(
            "<!doctype html><title>sluice console</title><h1>{}</h1><p>{}</p>{login}",
            refusal.status(),
            html::esc(&refusal.to_string())
        );
        let mut r = (refusal.status(), [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sluice console\""));
        return r;
    }
    // Rendering takes locks and walks up to every service: off the async workers.
    let body = tokio::task::spawn_blocking(move || console.page(nav, &q, Utc::now())).await;
    let Ok(body) = body else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}
