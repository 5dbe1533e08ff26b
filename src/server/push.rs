//! `POST /push/{pipeline}`: refusals from the headers first, then room in the pipeline's flow
//! control, then the body, then the answer once the event has settled.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::body::{content_length, drain, read_body, BodyError};
use super::{error, AppState};
use crate::event::ack::{Ack, Outcome};
use crate::event::{footprint, Handover, Message};
use crate::source::budget::Held;
use crate::source::push;
use crate::source::PipelineInput;

/// How long a push request may wait for room in a full pipeline before being told to retry.
const ENQUEUE_WAIT: Duration = Duration::from_secs(2);

/// Largest push body after which the connection is kept open. Reading a body grows the
/// connection's read buffer and an idle connection keeps it, outside the flow control; closing
/// the connection after a large body frees it (`docs/performance.md`, push floods).
const KEEP_ALIVE_BODY: usize = 16 << 10;

/// The answer to a request refused before its body is read: bad token, no such push pipeline,
/// shutting down. `None` when it may go on.
async fn refusal(state: &AppState, pipeline: &str, headers: &HeaderMap) -> Option<Response> {
    // Before any other answer, so a caller without a valid token learns nothing (not even pipeline names).
    if let Err(refusal) = state.push_auth.check(headers).await {
        tracing::warn!(pipeline, status = refusal.status().as_u16(), reason = %refusal, "refused push request");
        let mut r = error(refusal.status(), refusal.to_string());
        if refusal.status() == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        return Some(r);
    }
    if !state.inputs.get(pipeline).is_some_and(|i| i.push) {
        let mut accepting: Vec<&str> = state.inputs.values().filter(|i| i.push).map(|i| &*i.name).collect();
        accepting.sort();
        return Some(error(
            StatusCode::NOT_FOUND,
            format!("no pipeline '{pipeline}' accepts push; these do: {}", accepting.join(", ")),
        ));
    }
    if state.shutting_down.is_cancelled() {
        return Some(error(StatusCode::SERVICE_UNAVAILABLE, "sluice is shutting down; retry"));
    }
    None
}

fn too_large(pipeline: &str, max_body: usize) -> Response {
    tracing::warn!(pipeline, max_body, "rejected push request: body over http.max_body");
    error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is over http.max_body ({max_body} bytes)"))
}

fn at_capacity(pipeline: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, format!("pipeline '{pipeline}' is at capacity; retry later"));
    r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
    r
}

pub(super) async fn push_handler(
    State(state): State<AppState>,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
    max_body: usize,
) -> Response {
    use tracing::Instrument;
    let large = content_length(&headers).is_none_or(|n| n > KEEP_ALIVE_BODY);
    // Lines logged while handling a traced request land under its trace in Cloud Logging.
    let mut r = match crate::telemetry::TraceContext::from_headers(|h| headers.get(h).and_then(|v| v.to_str().ok())) {
        Some(trace) => {
            let span = trace.span("push", &pipeline);
            push(&state, &pipeline, headers, body, max_body).instrument(span).await
        }
        None => push(&state, &pipeline, headers, body, max_body).await,
    };
    if large {
        r.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    if !r.status().is_success() {
        let known = state.inputs.contains_key(&pipeline);
        state.metrics.push_refused(if known { &pipeline } else { "unknown" }, r.status().as_u16());
    }
    r
}

async fn push(
    state: &AppState,
    pipeline: &str,
    headers: HeaderMap,
    body: axum::body::Body,
    max_body: usize,
) -> Response {
    // Refusals first, from the headers alone: a request that is refused never holds memory or
    // room in a pipeline. Its body is read and dropped before the answer, so the answer reaches
    // a client that is done sending.
    if let Some(refused) = refusal(state, pipeline, &headers).await {
        drain(body.into_data_stream()).await;
        return refused;
    }
    let input = &state.inputs[pipeline];
    // Room for the event before its body is read: that is what bounds memory whatever the
    // number of callers. A body is weighed as its event would be decoded, from the length it
    // announces (or the largest allowed), and the hold is shrunk to the event's weight below.
    let announced = content_length(&headers);
    if announced.is_some_and(|n| n > max_body) {
        drain(body.into_data_stream()).await;
        return too_large(pipeline, max_body);
    }
    let announced = announced.unwrap_or(max_body);
    let Ok(mut held) = reserve(input, announced).await else {
        drain(body.into_data_stream()).await;
        tracing::warn!(pipeline, "refused push request: pipeline at its http.max_outstanding limits");
        return at_capacity(pipeline);
    };
    // From here until its event is in a batch, the pipeline's sinks wait for this request.
    let (_answering, arriving) = input.arrivals.as_ref().map(|a| a.begin()).unzip();
    let body = match read_body(body, max_body, announced).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(pipeline, max_body),
        Err(BodyError::Broken(reason)) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let msg = match push::decode(body, header) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(pipeline, error = %e, "rejected push request");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if let Some(held) = &mut held {
        held.shrink_to(footprint(msg.data.len(), msg.message_id.len()));
    }
    let (message, ack, outcome) = message_of(state, pipeline, msg, held);
    let message_id = message.message_id.clone();
    // A caller waits on it: the chain takes it at once.
    let batch = Handover {
        awaited: true,
        arriving: arriving.map(|a| (0, a)).into_iter().collect(),
        ..Handover::one(message, ack)
    };
    deliver(state, input, pipeline, (message_id, batch), outcome).await
}

/// Room for an event of `announced` bytes in the pipeline's flow control, waiting at most
/// `ENQUEUE_WAIT`; `Ok(None)` when the pipeline has none, `Err` when it stayed full.
async fn reserve(input: &PipelineInput, announced: usize) -> Result<Option<Held>, ()> {
    let Some(budget) = &input.budget else { return Ok(None) };
    // The budget counts waits for the liveness check of pulling streams; a push wait is no
    // stream's, so its count is kept here and read by nobody.
    let waiting = AtomicU64::new(0);
    match tokio::time::timeout(ENQUEUE_WAIT, budget.reserve(footprint(announced, 0), &waiting)).await {
        Ok(held) => Ok(Some(held)),
        Err(_) => Err(()),
    }
}

/// The message of a decoded push, and its ack, which counts it, gives its room back and reports
/// its outcome on the receiver returned with them.
fn message_of(
    state: &AppState,
    pipeline: &str,
    msg: push::PushMessage,
    held: Option<Held>,
) -> (Message, Ack, tokio::sync::oneshot::Receiver<Outcome>) {
    let counted = state.metrics.input(pipeline, "push");
    counted.received(msg.publish_time);
    let (tx, outcome) = tokio::sync::oneshot::channel();
    let outstanding = state.metrics.push_outstanding(pipeline, msg.data.len());
    let ack = Ack::new(move |o| {
        counted.settled(o);
        drop(outstanding);
        let _ = tx.send(o);
        drop(held); // the room is given back when the event settles, not when the request ends
    });
    let subscription = msg.subscription.map(Arc::from).unwrap_or_else(|| Arc::from("push"));
    let message = Message {
        delivery_attempt: msg.delivery_attempt,
        ..Message::new(msg.message_id, msg.publish_time, msg.attributes, msg.data, subscription)
    };
    (message, ack, outcome)
}

/// Hand the message to the pipeline and answer once it settled (or the request timed out).
async fn deliver(
    state: &AppState,
    input: &PipelineInput,
    pipeline: &str,
    (message_id, batch): (String, Handover),
    outcome: tokio::sync::oneshot::Receiver<Outcome>,
) -> Response {
    use tokio::sync::mpsc::error::SendTimeoutError::{Closed, Timeout};
    let refused = match input.tx.send_timeout(batch, ENQUEUE_WAIT).await {
        Ok(()) => None,
        Err(Timeout(batch)) => Some((batch, at_capacity(pipeline))),
        Err(Closed(batch)) => Some((batch, error(StatusCode::SERVICE_UNAVAILABLE, "pipeline is stopping; retry"))),
    };
    if let Some((batch, answer)) = refused {
        batch.settle(Outcome::Failed);
        return answer;
    }
    match tokio::time::timeout(state.request_timeout, outcome).await {
        Ok(Ok(Outcome::Delivered)) => {
            (StatusCode::OK, Json(json!({ "messageId": message_id, "status": "delivered" }))).into_response()
        }
        Ok(Ok(Outcome::Failed)) | Ok(Err(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, format!("message {message_id} could not be made durable; retry"))
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("message {message_id} not durable after {:?}; retry", state.request_timeout),
        ),
    }
}
