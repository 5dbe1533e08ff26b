//! The HTTP surface: `POST /push/{pipeline}` (Cloud Run push subscriptions, `sluice publish`),
//! `GET /healthz` (not stalled, sinks not failing on and on), `GET /readyz` (sources connected,
//! sinks writable, not shutting down), `GET /status` (JSON), `GET /metrics` (OpenMetrics text)
//! and `GET /config/{service}` (current configuration state); the console (`crate::console`) at
//! `/` and `/ui/...` when enabled.
//!
//! A push request is answered only once its event has settled: 200 when durable (or in dead
//! letters), 503 when it could not be made durable or sluice is shutting down, 429 when the
//! pipeline is at capacity, 4xx with a reason for a malformed request. Pub/Sub retries non-2xx.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::server::status::Status;
use crate::source::push::auth::PushAuth;
use crate::telemetry::metrics::Metrics;
use crate::topology::PipelineInput;

mod body;
mod push;
pub mod status;

#[derive(Clone)]
pub struct AppState {
    pub inputs: Arc<HashMap<String, PipelineInput>>,
    /// Longest a request waits for its event to become durable.
    pub request_timeout: Duration,
    /// Cancelled when shutdown starts: new pushes are refused with 503 so Pub/Sub retries elsewhere.
    pub shutting_down: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    /// Checks each push's OIDC token (or lets everyone in, with `push_auth.mode: none`).
    pub push_auth: Arc<PushAuth>,
    /// The web console at `/` and `/ui/...`, when `console.enabled`.
    pub console: Option<Arc<crate::console::Console>>,
}

pub fn router(state: AppState, max_body: usize) -> Router {
    let console = if state.console.is_some() { crate::console::routes() } else { Router::new() };
    console
        .route(
            "/push/{pipeline}",
            post(move |state, pipeline, headers, body| push::push_handler(state, pipeline, headers, body, max_body)),
        )
        .route("/healthz", get(healthy))
        .route("/readyz", get(ready))
        .route("/status", get(|State(s): State<AppState>| async move { Json(s.status.to_json()) }))
        .route("/metrics", get(metrics))
        .route("/config/{service}", get(config_of))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    let r = state.status.liveness.report();
    if r.ready {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let body = json!({ "error": "not ready", "not_ready": r.not_ready, "unhealthy": r.unhealthy });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn healthy(State(state): State<AppState>) -> Response {
    let r = state.status.liveness.report();
    if r.healthy {
        return (StatusCode::OK, "ok\n").into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "unhealthy", "unhealthy": r.unhealthy }))).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}

async fn config_of(State(state): State<AppState>, Path(service): Path<String>) -> Response {
    let Some(config) = &state.status.config_state else {
        return error(StatusCode::NOT_FOUND, "no configuration-changes pipeline: the configuration state is off");
    };
    match config.service(&service) {
        Some(keys) => Json(json!({ "service": service, "keys": keys })).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no configuration change seen for service '{service}'")),
    }
}
