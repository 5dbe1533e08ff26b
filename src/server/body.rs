//! Reading push bodies: at most `http.max_body` kept, and what is refused read and dropped
//! (bounded) before the answer, so a client still sending gets the answer, not a reset.

use std::time::Duration;

use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// After refusing a body as too large, how long and how much of the rest is read and dropped.
/// Closing with the body unread races the client still sending it: it gets a broken pipe instead
/// of the 413 (as nginx's lingering close, bounded so a slow sender cannot hold a task for long).
const LINGER: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 64 << 20;

/// Why a request body could not be read.
pub(super) enum BodyError {
    /// Over `http.max_body`; the rest was read and dropped (within [`LINGER`]).
    TooLarge,
    /// The connection broke mid-body.
    Broken(String),
}

/// Reads at most `max` bytes of body, into a buffer of `expected` bytes to start with. A larger
/// body is refused, but first drained (bounded) so the client is still reading when the 413 arrives.
pub(super) async fn read_body(body: axum::body::Body, max: usize, expected: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::with_capacity(expected.min(max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(format!("request body could not be read: {e}")))?;
        if buf.len() + chunk.len() > max {
            drop(buf);
            drain(stream).await;
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Bodies drained at once. Each grows its connection's read buffer while it lasts (up to [`LINGER`]), so a flood of refused large pushes could otherwise hold one
/// per connection. Past this, the body is left unread: the connection closes and the client may
/// see a reset instead of the answer, which it retries all the same.
static DRAINS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

/// Reads and drops the rest of a body (for up to [`LINGER`] or `LINGER_BYTES`), so the answer to
/// a refused request reaches a client still sending instead of a reset connection.
pub(super) async fn drain(mut stream: axum::body::BodyDataStream) {
    let Ok(_draining) = DRAINS.try_acquire() else { return };
    let mut dropped = 0;
    let rest = async {
        while let Some(Ok(chunk)) = stream.next().await {
            dropped += chunk.len();
            if dropped > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, rest).await;
}

/// The body length a request announces, if it does.
pub(super) fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
