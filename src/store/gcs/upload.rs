//! Multipart writes as one GCS resumable upload. Parts are sent in the order `put_part` was
//! called, in chunks of whole 256 KiB units (the API's rule for all but the last request); the
//! object exists only once `complete` sends the last bytes with the total size. At most one
//! unaligned tail (< 256 KiB) stays buffered between parts.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::Method;

use super::api::{to_store_error, GcsError, Object, OnPrecondition};
use super::GcsStore;

/// Every request but the last carries a multiple of this.
const UNIT: usize = 256 * 1024;

#[derive(Debug)]
pub(super) struct ResumableUpload {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: GcsStore,
    /// The session URI every chunk is sent to.
    session: String,
    path: String,
    /// Parts given to `put_part` and not yet taken by a sender, in call order. Filled at call
    /// time, so whichever part's future runs first sends everything before it too.
    queued: Mutex<Vec<Bytes>>,
    /// The sending side: one request at a time.
    sent: tokio::sync::Mutex<Sent>,
}

#[derive(Debug, Default)]
struct Sent {
    /// Bytes GCS has acknowledged.
    offset: u64,
    /// Bytes taken from the queue and not yet acknowledged.
    buffer: BytesMut,
    /// Set once a request failed: the session's state is then unknown, so nothing more is sent.
    failed: Option<String>,
}

/// What GCS answered to a chunk.
enum Answer {
    /// 308: it holds this many bytes and wants the rest.
    More(u64),
    /// The upload is finished.
    Done(Object),
}

impl ResumableUpload {
    pub(super) async fn start(
        store: GcsStore,
        path: &Path,
        content_type: &str,
    ) -> object_store::Result<ResumableUpload> {
        let name = path.as_ref();
        let url = store.urls.upload(&[("uploadType", "resumable"), ("name", name)]);
        let fail = |e| to_store_error(e, name, OnPrecondition::Precondition);
        let response = store
            .send(Method::POST, &url, |r| {
                r.header(CONTENT_TYPE, "application/json").header("X-Upload-Content-Type", content_type).body("{}")
            })
            .await
            .map_err(fail)?;
        let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Some(location) = location else {
            return Err(fail(GcsError::Decode { url, message: "no Location header for the upload session".into() }));
        };
        let session = if location.starts_with('/') { format!("{}{location}", store.urls.base) } else { location };
        Ok(ResumableUpload {
            shared: Arc::new(Shared {
                store,
                session,
                path: name.to_owned(),
                queued: Mutex::new(Vec::new()),
                sent: tokio::sync::Mutex::new(Sent::default()),
            }),
        })
    }
}

impl Shared {
    fn error(&self, e: GcsError) -> object_store::Error {
        to_store_error(e, &self.path, OnPrecondition::Precondition)
    }

    /// Move queued parts into the send buffer, in order.
    fn take_queued(&self, sent: &mut Sent) {
        let mut queued = crate::locks::lock(&self.queued);
        for part in queued.drain(..) {
            sent.buffer.extend_from_slice(&part);
        }
    }

    /// Send `chunk` at `offset`; `total` is given only with the last bytes.
    async fn send_chunk(&self, offset: u64, chunk: Bytes, total: Option<u64>) -> Result<Answer, GcsError> {
        let total_text = total.map_or("*".to_owned(), |t| t.to_string());
        let range = if chunk.is_empty() {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {offset}-{}/{total_text}", offset + chunk.len() as u64 - 1)
        };
        let url = self.session.as_str();
        let response = self.store.send(Method::PUT, url, |r| r.header(CONTENT_RANGE, range).body(chunk)).await?;
        if response.status().as_u16() != 308 {
            let body = response.bytes().await.map_err(|source| GcsError::Transport {
                method: Method::PUT,
                url: url.to_owned(),
                source,
            })?;
            let object = serde_json::from_slice(&body)
                .map_err(|e| GcsError::Decode { url: url.to_owned(), message: e.to_string() })?;
            return Ok(Answer::Done(object));
        }
        // `Range: bytes=0-N` says N+1 bytes are held; no header means none.
        let held = match response.headers().get(RANGE).and_then(|v| v.to_str().ok()) {
            None => 0,
            Some(r) => {
                r.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).map(|n| n + 1).ok_or_else(|| {
                    GcsError::Decode { url: url.to_owned(), message: format!("bad Range header '{r}'") }
                })?
            }
        };
        Ok(Answer::More(held))
    }

    /// Send the buffer: whole units only, unless `last`, when everything goes with the total.
    async fn flush(&self, sent: &mut Sent, last: bool) -> object_store::Result<Option<Object>> {
        if let Some(why) = &sent.failed {
            return Err(self.error(GcsError::Decode { url: self.session.clone(), message: why.clone() }));
        }
        loop {
            let n = if last { sent.buffer.len() } else { sent.buffer.len() / UNIT * UNIT };
            if n == 0 && !last {
                return Ok(None);
            }
            let total = last.then(|| sent.offset + sent.buffer.len() as u64);
            let chunk = sent.buffer.split_to(n).freeze();
            match self.send_chunk(sent.offset, chunk.clone(), total).await {
                Ok(Answer::Done(object)) => return Ok(Some(object)),
                Ok(Answer::More(held)) if held > sent.offset && held <= sent.offset + n as u64 => {
                    // GCS may keep less than it was sent: put the rest back in front.
                    let kept = (held - sent.offset) as usize;
                    let mut rest = BytesMut::from(&chunk[kept..]);
                    rest.extend_from_slice(&sent.buffer);
                    sent.buffer = rest;
                    sent.offset = held;
                }
                Ok(Answer::More(held)) => {
                    let why = format!("upload session holds {held} bytes after {} were sent", sent.offset + n as u64);
                    sent.failed = Some(why.clone());
                    return Err(self.error(GcsError::Decode { url: self.session.clone(), message: why }));
                }
                Err(e) => {
                    sent.failed = Some(format!("an earlier chunk failed: {e}"));
                    return Err(self.error(e));
                }
            }
        }
    }
}

#[async_trait]
impl MultipartUpload for ResumableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        crate::locks::lock(&self.shared.queued).push(Bytes::from(data));
        let shared = self.shared.clone();
        async move {
            let mut sent = shared.sent.lock().await;
            shared.take_queued(&mut sent);
            shared.flush(&mut sent, false).await.map(|_| ())
        }
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let mut sent = self.shared.sent.lock().await;
        self.shared.take_queued(&mut sent);
        let object = self.shared.flush(&mut sent, true).await?.ok_or_else(|| {
            self.shared
                .error(GcsError::Decode { url: self.shared.session.clone(), message: "upload not finished".into() })
        })?;
        Ok(PutResult {
            e_tag: object.etag,
            version: object.generation.map(|g| g.to_string()),
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let _sent = self.shared.sent.lock().await;
        match self.shared.store.send(Method::DELETE, &self.shared.session, |r| r).await {
            Ok(_) => Ok(()),
            // 499 is GCS's answer to a cancelled session; 404/410: it is gone already.
            Err(GcsError::Status { status: 499 | 404 | 410, .. }) => Ok(()),
            Err(e) => Err(self.shared.error(e)),
        }
    }
}
