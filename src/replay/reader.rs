//! Reads a lake file one row group at a time with ranged reads, so memory is bounded by a row
//! group (sluice writes at most 64Ki rows per group) whatever the size of the file.

use std::ops::Range;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::select::{Kind, Selector};
use super::ReplayError;

/// Rows per decoded batch: the unit that goes through the chain and is written as one object.
pub const BATCH_ROWS: usize = 8192;

/// A file in an object store as Parquet reads it: ranged gets, the footer found from the known
/// size (no suffix request, which not every store serves).
#[derive(Clone)]
pub struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn object_reader(store: &Arc<dyn ObjectStore>, path: &ObjectPath, size: u64) -> StoreReader {
    StoreReader { store: store.clone(), path: path.clone(), size }
}

fn read_error(path: &ObjectPath, e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Read { path: path.to_string(), reason: e.to_string() }
}

/// The file's footer: row groups and Arrow schema, read with one or two ranged requests.
pub async fn footer(
    store: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    size: u64,
) -> Result<ArrowReaderMetadata, ReplayError> {
    ArrowReaderMetadata::load_async(&mut object_reader(store, path, size), ArrowReaderOptions::new())
        .await
        .map_err(|e| read_error(path, e))
}

/// The batches of one row group, all columns.
pub fn row_group(
    store: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    size: u64,
    footer: &ArrowReaderMetadata,
    index: usize,
) -> Result<ParquetRecordBatchStream<StoreReader>, ReplayError> {
    ParquetRecordBatchStreamBuilder::new_with_metadata(object_reader(store, path, size), footer.clone())
        .with_row_groups(vec![index])
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| read_error(path, e))
}

/// The next batch of a row-group stream.
pub async fn next(
    stream: &mut ParquetRecordBatchStream<StoreReader>,
    path: &ObjectPath,
) -> Result<Option<RecordBatch>, ReplayError> {
    stream.next().await.transpose().map_err(|e| read_error(path, e))
}

/// Rows the selector keeps, reading only the columns it looks at.
pub async fn count_selected(
    store: &Arc<dyn ObjectStore>,
    path: &ObjectPath,
    size: u64,
    footer: &ArrowReaderMetadata,
    kind: Kind,
    selector: &Selector,
) -> Result<u64, ReplayError> {
    let wanted: Vec<&str> =
        [selector.time_column(kind), (kind == Kind::DeadLetters).then_some("pipeline")].into_iter().flatten().collect();
    let schema = footer.schema();
    let roots: Vec<usize> = wanted.iter().filter_map(|c| schema.index_of(c).ok()).collect();
    let mask = ProjectionMask::roots(footer.metadata().file_metadata().schema_descr(), roots);
    let mut stream =
        ParquetRecordBatchStreamBuilder::new_with_metadata(object_reader(store, path, size), footer.clone())
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| read_error(path, e))?;
    let mut n = 0;
    while let Some(batch) = next(&mut stream, path).await? {
        n += match selector.mask(kind, &batch).map_err(|e| read_error(path, e))? {
            None => batch.num_rows() as u64,
            Some(m) => m.true_count() as u64,
        };
    }
    Ok(n)
}
