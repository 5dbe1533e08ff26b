//! Where the lake lives: one `object_store` abstraction for local folders and GCS buckets, so
//! `file://` and `gs://` locations run the same sink (and reader) code.
//!
//! - `gcs`: a bucket over the GCS JSON API (production, or an emulator at `lake.endpoint`).

pub mod gcs;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

/// `rest` (slash-separated) under `base`.
pub fn join(base: &ObjectPath, rest: &str) -> ObjectPath {
    rest.split('/').filter(|s| !s.is_empty()).fold(base.clone(), |p, s| p.join(s))
}

/// A parsed lake location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder (`file:///abs/path` or a plain path, relative to the working directory).
    Local(PathBuf),
    /// `gs://bucket/prefix`.
    Gcs { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(rest) = text.strip_prefix("gs://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("expected gs://BUCKET[/prefix], found '{text}'"));
            }
            return Ok(Location::Gcs { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!(
                    "expected an absolute path after file:// (file:///data/lake) or a plain path (./data/lake), found '{text}'"
                ));
            }
            return Ok(Location::Local(rest.into()));
        }
        if text.contains("://") {
            return Err(format!("expected gs://, file:// or a local path, found '{text}'"));
        }
        if text.is_empty() {
            return Err("expected a location, found an empty string".into());
        }
        Ok(Location::Local(text.into()))
    }

    /// Open the store and return it with the prefix every object name starts with. A bucket is
    /// reached at `endpoint` anonymously (an emulator), else at storage.googleapis.com with
    /// application default credentials; a local folder ignores it.
    pub fn open(&self, endpoint: Option<&str>) -> Result<(Arc<dyn ObjectStore>, ObjectPath), object_store::Error> {
        match self {
            Location::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
                Ok((Arc::new(store), ObjectPath::default()))
            }
            Location::Gcs { bucket, prefix } => {
                let store = gcs::GcsStore::new(bucket, endpoint)?;
                Ok((Arc::new(store), ObjectPath::from(prefix.as_str())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("gs://b/lake/x/").unwrap(),
            Location::Gcs { bucket: "b".into(), prefix: "lake/x".into() }
        );
        assert_eq!(Location::parse("./data").unwrap(), Location::Local("./data".into()));
        assert_eq!(Location::parse("file:///d").unwrap(), Location::Local("/d".into()));
        assert!(Location::parse("file://rel").is_err());
        assert!(Location::parse("s3://b").unwrap_err().contains("expected gs://"));
        assert!(Location::parse("gs://").is_err());
    }
}
