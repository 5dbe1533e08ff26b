//! Storage Write API streams, fed Arrow IPC.
//!
//! - `default_stream`: the table's default stream, shared by every writer and instance. An append
//!   retried after a lost response may be written twice (at-least-once).
//! - `exactly_once`: a committed stream of this writer's own, each append at an explicit offset.
//!   A retry reuses the offset, and BigQuery answers ALREADY_EXISTS instead of writing the rows
//!   again, so a retried append is never duplicated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema as ArrowSchema;
use arrow::ipc::writer::{write_message, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
use arrow::record_batch::RecordBatch;
use google_cloud_bigquery::client::Write;
use google_cloud_bigquery::error::AppendError;
use google_cloud_bigquery::model::{ArrowRecordBatch, ArrowSchema as WireSchema};
use google_cloud_bigquery::write::format::Arrow;
use google_cloud_bigquery::write::stream_type::CommittedStream;
use google_cloud_bigquery::write::{CommittedWriter, DefaultWriter};
use google_cloud_gax::error::rpc::Code;
// The sink retries appends itself (with backoff, bounded, logged): the default-stream client
// must not retry underneath it for minutes, nor retry what can never pass.
use google_cloud_gax::retry_policy::NeverRetry;
use tokio::sync::Mutex;

use crate::config::global::{BigQueryConfig, WriteMode};

/// Why an append did not go through.
#[derive(Debug, thiserror::Error)]
pub enum AppendFailure {
    /// BigQuery refused these rows (index in the appended batch, reason); nothing was written.
    #[error("{} rows refused", .0.len())]
    Rows(Vec<(usize, String)>),
    /// The request as a whole was refused; retrying the same rows cannot help.
    #[error("{0}")]
    Invalid(String),
    /// Transport, overload or server trouble: the same append may pass later.
    #[error(transparent)]
    Transient(#[from] Transient),
    /// An earlier attempt whose outcome is unknown went to a committed stream this appender had
    /// to replace: its rows may be in the table. Nothing was appended; check before appending again.
    #[error("an earlier attempt may have landed on a write stream that was replaced")]
    Uncertain,
}

/// Why an append that may pass later did not.
#[derive(Debug, thiserror::Error)]
pub enum Transient {
    #[error("{what} timed out after {after:?}")]
    TimedOut { what: &'static str, after: std::time::Duration },
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The service or the connection failed (overload, unavailable, a broken stream).
    #[error("{}", crate::gcp::causes(.0))]
    Append(#[source] AppendError),
}

#[derive(Debug, thiserror::Error)]
#[error("opening a Storage Write stream on {table}: {}", crate::gcp::causes(.source.as_ref()))]
pub struct OpenError {
    pub table: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

enum State {
    Default(DefaultWriter<Arrow>),
    /// A committed stream and the offset of the next row to append to it.
    Committed {
        writer: CommittedWriter<Arrow>,
        next: i64,
    },
}

/// Appends Arrow batches to one table.
pub struct Appender {
    client: Arc<Write>,
    table: String,
    mode: WriteMode,
    wire_schema: WireSchema,
    state: Mutex<Option<State>>,
    /// A committed stream to reconnect to (name, next offset) after its connection broke.
    pending_reattach: std::sync::Mutex<Option<(String, i64)>>,
    /// An attempt on the current committed stream failed without saying whether it landed.
    /// Offsets settle that while the stream is kept; if it must be replaced, the caller is told.
    uncertain: AtomicBool,
}

/// Longest one append (or opening a stream) may take: a service that accepts the request and
/// never answers must not stall the sink for good. Appends take seconds, so this is generous.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The Storage Write client for a config: emulator endpoint with anonymous credentials, or
/// bigquerystorage.googleapis.com with application default credentials.
pub async fn client(config: &BigQueryConfig) -> Result<Arc<Write>, OpenError> {
    let endpoint = config.grpc_endpoint.clone();
    let open_error = |e: Box<dyn std::error::Error + Send + Sync>| OpenError {
        table: format!("dataset {}", config.dataset),
        source: e,
    };
    let creds = crate::gcp::credentials(endpoint.is_some()).map_err(|e| open_error(e.into()))?;
    let mut b = Write::builder().with_credentials(creds);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e);
    }
    b.build().await.map(Arc::new).map_err(|e| open_error(e.into()))
}

impl Appender {
    /// Open the stream `mode` asks for on `table` (`projects/P/datasets/D/tables/T`).
    pub async fn open(
        client: Arc<Write>,
        table: String,
        schema: &ArrowSchema,
        mode: WriteMode,
    ) -> Result<Appender, OpenError> {
        let wire_schema = WireSchema::new().set_serialized_schema(schema_message(schema));
        let a = Appender {
            client,
            table,
            mode,
            wire_schema,
            state: Mutex::new(None),
            pending_reattach: Default::default(),
            uncertain: AtomicBool::new(false),
        };
        let (state, _) = a.connect().await?;
        *a.state.lock().await = Some(state);
        Ok(a)
    }

    /// The stream to append to, and whether it is a new one (not the one reconnected to).
    async fn connect(&self) -> Result<(State, bool), OpenError> {
        let err = |e: google_cloud_bigquery::error::WriterBuilderError| OpenError {
            table: self.table.clone(),
            source: e.into(),
        };
        let reattach = crate::locks::lock(&self.pending_reattach).take();
        if let Some((stream, next)) = reattach {
            let attached =
                self.client.attach_to_stream::<CommittedStream>(&stream).build_arrow(self.wire_schema.clone());
            match attached.await {
                Ok(writer) => {
                    tracing::info!(table = %self.table, %stream, offset = next, "reconnected to the committed write stream");
                    return Ok((State::Committed { writer, next }, false));
                }
                // The stream is gone (finalized, expired, or the service lost it): a new one
                // follows, and `uncertain` makes the caller check what landed on the old one.
                Err(e) if gone(&e.to_string()) => {
                    tracing::warn!(table = %self.table, %stream, error = %e, "the committed write stream is gone; opening a new one");
                }
                Err(e) => {
                    // Keep trying the same stream: a new one would lose track of what landed.
                    crate::locks::lock(&self.pending_reattach).replace((stream.clone(), next));
                    return Err(err(e));
                }
            }
        }
        let state = match self.mode {
            WriteMode::DefaultStream => State::Default(
                self.client
                    .open_default_stream(&self.table)
                    .with_retry_policy(NeverRetry)
                    .build_arrow(self.wire_schema.clone())
                    .await
                    .map_err(err)?,
            ),
            WriteMode::ExactlyOnce => {
                let writer: CommittedWriter<Arrow> = self
                    .client
                    .create_stream::<CommittedStream>(&self.table)
                    .build_arrow(self.wire_schema.clone())
                    .await
                    .map_err(err)?;
                tracing::info!(table = %self.table, stream = %writer.write_stream(), "opened a committed write stream");
                State::Committed { writer, next: 0 }
            }
        };
        Ok((state, true))
    }

    /// Append one batch (at most ~9 MB of IPC: the API caps a request at 10 MB). One attempt;
    /// the caller decides about retrying, which is safe in both modes (see the module doc).
    pub async fn append(&self, batch: &RecordBatch) -> Result<(), AppendFailure> {
        let rows = ArrowRecordBatch::new()
            .set_serialized_record_batch(batch_message(batch).map_err(|e| AppendFailure::Invalid(e.to_string()))?);
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            // A stream that failed earlier: reconnect to it, or open a new one (exactly-once: a
            // fresh stream at offset 0).
            let connect = tokio::time::timeout(ATTEMPT_TIMEOUT, self.connect());
            let (state, new) = match connect.await {
                Ok(r) => r.map_err(Transient::Open)?,
                Err(_) => {
                    return Err(Transient::TimedOut { what: "opening a write stream", after: ATTEMPT_TIMEOUT }.into())
                }
            };
            *guard = Some(state);
            if new && self.uncertain.swap(false, Ordering::SeqCst) {
                return Err(AppendFailure::Uncertain);
            }
        }
        let result = match guard.as_mut().expect("connected above") {
            State::Default(w) => match tokio::time::timeout(ATTEMPT_TIMEOUT, w.append(rows).send()).await {
                Ok(r) => r.map(|_| ()),
                Err(_) => {
                    *guard = None;
                    return Err(Transient::TimedOut { what: "append", after: ATTEMPT_TIMEOUT }.into());
                }
            },
            State::Committed { writer, next } => {
                let r = match tokio::time::timeout(ATTEMPT_TIMEOUT, writer.append(rows).set_offset(*next).send()).await
                {
                    Ok(r) => r,
                    Err(_) => {
                        // It may land yet: keep the stream and offset, so a retry lands once.
                        self.uncertain.store(true, Ordering::SeqCst);
                        if let Some(state) = guard.take() {
                            self.remember_stream(state);
                        }
                        return Err(Transient::TimedOut { what: "append", after: ATTEMPT_TIMEOUT }.into());
                    }
                };
                match r {
                    Ok(_) => {
                        *next += batch.num_rows() as i64;
                        self.uncertain.store(false, Ordering::SeqCst);
                        return Ok(());
                    }
                    // An earlier attempt at this offset landed (its answer was lost): done.
                    Err(e) if code(&e) == Some(Code::AlreadyExists) => {
                        tracing::info!(table = %self.table, offset = *next, "append already written by an earlier attempt");
                        *next += batch.num_rows() as i64;
                        self.uncertain.store(false, Ordering::SeqCst);
                        return Ok(());
                    }
                    Err(e) => Err(e),
                }
            }
        };
        result.map_err(|e| {
            let code = code(&e);
            let failure = classify(e);
            match code {
                // BigQuery says the stream itself is unusable: start over on a new one.
                Some(Code::NotFound | Code::FailedPrecondition | Code::OutOfRange) => *guard = None,
                // The connection broke (the append may or may not have landed): reconnect to the
                // same stream, keeping the offset, so a retry lands once.
                _ if matches!(failure, AppendFailure::Transient(_)) => {
                    if matches!(guard.as_ref(), Some(State::Committed { .. })) {
                        self.uncertain.store(true, Ordering::SeqCst);
                    }
                    if let Some(state) = guard.take() {
                        self.remember_stream(state);
                    }
                }
                _ => {}
            }
            failure
        })
    }

    /// Reconnect to the same committed stream (lazily, on the next append), keeping its offset.
    fn remember_stream(&self, state: State) {
        if let State::Committed { writer, next } = state {
            crate::locks::lock(&self.pending_reattach).replace((writer.write_stream().to_owned(), next));
        }
    }

    /// Give up the current stream after the caller gave up a batch whose last attempt may yet
    /// land: the next batch must not reuse that offset (BigQuery would answer ALREADY_EXISTS for
    /// other rows). The given-up rows come back as redeliveries, which are checked against the table.
    pub async fn abandon(&self) {
        if self.mode == WriteMode::ExactlyOnce {
            crate::locks::lock(&self.pending_reattach).take();
            self.state.lock().await.take();
            self.uncertain.store(false, Ordering::SeqCst);
        }
    }

    /// Stop appending: an exactly-once stream is finalized (its rows are already committed).
    pub async fn close(&self) {
        if let Some(State::Committed { writer, .. }) = self.state.lock().await.take() {
            if let Err(e) = writer.finalize().await {
                tracing::warn!(table = %self.table, error = %e, "finalizing the write stream failed (its rows are committed)");
            }
        }
    }
}

fn code(e: &AppendError) -> Option<Code> {
    match e {
        AppendError::Rpc { source, .. } => source.status().map(|s| s.code),
        _ => None,
    }
}

fn classify(e: AppendError) -> AppendFailure {
    match &e {
        AppendError::RowErrors { row_errors, .. } => {
            return AppendFailure::Rows(
                row_errors.iter().map(|r| (r.index.max(0) as usize, r.message.clone())).collect(),
            )
        }
        AppendError::Rpc { source, .. } => match source.status() {
            Some(s) if matches!(s.code, Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated) => {
                return AppendFailure::Invalid(s.message.clone())
            }
            // Quota trouble passes with time; a request too large for the service never does.
            Some(s) if s.code == Code::ResourceExhausted && too_large(&s.message) => {
                return AppendFailure::Invalid(s.message.clone())
            }
            _ => {}
        },
        _ => {}
    }
    Transient::Append(e).into()
}

/// Whether an error says the write stream no longer exists or takes no more rows.
fn gone(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") || m.contains("notfound") || m.contains("finalized")
}

fn too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("too large") || m.contains("exceeds")
}

/// The IPC message carrying an Arrow schema, as `ArrowSchema.serialized_schema` wants it.
fn schema_message(schema: &ArrowSchema) -> bytes::Bytes {
    let opts = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &opts,
    );
    let mut buf = Vec::new();
    write_message(&mut buf, encoded, &opts).expect("writing to a Vec cannot fail");
    buf.into()
}

/// The IPC message carrying one record batch, as `ArrowRecordBatch.serialized_record_batch` wants it.
pub fn batch_message(batch: &RecordBatch) -> Result<bytes::Bytes, arrow::error::ArrowError> {
    let opts = IpcWriteOptions::default();
    // `encode`, its replacement, takes an IpcWriteContext that arrow-ipc 60 does not export.
    #[allow(deprecated)]
    let (_dictionaries, encoded) =
        IpcDataGenerator::default().encoded_batch(batch, &mut DictionaryTracker::new(false), &opts)?;
    let mut buf = Vec::new();
    write_message(&mut buf, encoded, &opts)?;
    Ok(buf.into())
}
