//! One unit's inputs merged into one Parquet object in memory: each input's row groups are read
//! one Arrow batch at a time (ranged reads, [`crate::replay::reader`]) and written as they are
//! with the lake's Parquet settings, so memory holds the output (about the target size) and one
//! row group in the writer.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use parquet::arrow::ArrowWriter;

use super::manifest::Input;
use super::CompactError;
use crate::replay::progress::Progress;
use crate::replay::reader;
use crate::sink::{dictionary, encode};

/// The merged object.
pub struct Merged {
    pub bytes: Bytes,
    pub rows: u64,
}

/// The writer, opened at the first batch: its columns decide which keep a dictionary, as for
/// a batch the sink writes.
struct Output {
    path: String,
    writer: Option<(SchemaRef, ArrowWriter<Vec<u8>>)>,
    rows: u64,
}

impl Output {
    fn write(&mut self, batch: RecordBatch) -> Result<(), CompactError> {
        let error = |e: &dyn std::fmt::Display| CompactError::Write { path: self.path.clone(), reason: e.to_string() };
        if self.writer.is_none() {
            let properties = encode::writer_properties(&dictionary::plain_columns(&batch));
            let writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(|e| error(&e))?;
            self.writer = Some((batch.schema(), writer));
        }
        let (schema, writer) = self.writer.as_mut().expect("opened above");
        // Inputs have the same columns (planned so); their schema metadata may differ.
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| error(&e))?;
        self.rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| error(&e))
    }

    fn finish(self) -> Result<Merged, CompactError> {
        let Some((_, writer)) = self.writer else {
            return Err(CompactError::Write { path: self.path, reason: "the inputs hold no rows".into() });
        };
        let bytes = writer.into_inner().map_err(|e| CompactError::Write { path: self.path, reason: e.to_string() })?;
        Ok(Merged { bytes: Bytes::from(bytes), rows: self.rows })
    }
}

/// Read every row of `inputs`, in order, into one Parquet object named `output` (for errors).
pub async fn merge(
    store: &Arc<dyn ObjectStore>,
    inputs: &[Input],
    output: &ObjectPath,
    progress: &mut Progress,
) -> Result<Merged, CompactError> {
    let mut out = Output { path: output.to_string(), writer: None, rows: 0 };
    for input in inputs {
        let path = ObjectPath::from(input.path.as_str());
        let footer = reader::footer(store, &path, input.size).await?;
        for rg in 0..footer.metadata().num_row_groups() {
            let mut stream = reader::row_group(store, &path, input.size, &footer, rg)?;
            while let Some(batch) = reader::next(&mut stream, &path).await? {
                let n = batch.num_rows() as u64;
                out.write(batch)?;
                progress.advance(n);
            }
        }
        progress.file_done();
    }
    out.finish()
}
