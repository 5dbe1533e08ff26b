//! A GCS bucket as an `object_store::ObjectStore`, spoken over the JSON API.
//!
//! object_store's own GCS backend speaks the XML API, which the local emulator
//! (fake-gcs-server) does not serve; the JSON API is served by both, so production and tests run
//! this same code. A put is one request (`uploadType=multipart`: metadata and bytes), so an
//! object appears whole or not at all; `PutMode::Create` is `ifGenerationMatch=0`. Reads fetch
//! the object resource first (size, generation, preconditions), then its bytes pinned to that
//! generation. Failures become `object_store` errors by status (see `api::to_store_error`).
//!
//! Why not a ready-made client: the official `google-cloud-storage` (1.21) loses the port of a
//! custom endpoint on resumable uploads and lists only over gRPC, which fake-gcs-server does not
//! serve; `gcloud-storage` would save about a third of this code and bring a second auth stack;
//! `object_store`'s own backend speaks XML only. Requests go through `gcp::Api`, as every
//! other Google REST call of sluice does.

mod api;
mod upload;

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::gcp::{Api, CallError, Timeout};
pub use api::{retryable, GcsError};
use api::{to_store_error, ListPage, Object, OnPrecondition, RewriteResponse, Urls};

/// Production endpoint of the JSON API.
pub const GOOGLE: &str = "https://storage.googleapis.com";

/// How many deletes of one `delete_stream` run at once.
const DELETE_CONCURRENCY: usize = 10;

/// Objects per listing page: the API's default and maximum.
const PAGE_SIZE: u32 = 1000;

/// One bucket. Cheap to clone (the HTTP client and credentials are shared).
#[derive(Debug, Clone)]
pub struct GcsStore {
    api: Api,
    urls: Urls,
    /// Objects asked for per listing page.
    page_size: u32,
}

impl std::fmt::Display for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcsStore(gs://{} at {})", self.urls.bucket, self.urls.base)
    }
}

impl GcsStore {
    /// A store for `bucket`: at `endpoint` anonymously (an emulator), else at
    /// storage.googleapis.com with application default credentials.
    pub fn new(bucket: &str, endpoint: Option<&str>) -> Result<GcsStore, object_store::Error> {
        // Connect, then between bytes, not for the whole request: a 64 MiB upload may take longer.
        let timeout = Timeout::BetweenBytes { connect: Duration::from_secs(10), read: Duration::from_secs(60) };
        let api = Api::new(endpoint, GOOGLE, timeout).map_err(|e| object_store::Error::Unauthenticated {
            path: format!("gs://{bucket}"),
            source: Box::new(e),
        })?;
        Ok(GcsStore { urls: Urls::new(api.base(), bucket), api, page_size: PAGE_SIZE })
    }

    /// Ask for at most `n` objects per listing page (the API caps it at 1000).
    pub fn with_page_size(mut self, n: u32) -> GcsStore {
        self.page_size = n.clamp(1, PAGE_SIZE);
        self
    }

    /// Send one request with credentials; any answer but 2xx (or 308, resumable uploads'
    /// "send more") becomes an error carrying the API's message.
    async fn send(
        &self,
        method: Method,
        url: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, GcsError> {
        let request = build(self.api.request(method.clone(), url).await?);
        self.api.send_accepting(request, |s| s == 308).await.map_err(|e| match e {
            CallError::Transport(source) => GcsError::Transport { method, url: url.to_owned(), source },
            CallError::Status { status, message } => GcsError::Status { method, url: url.to_owned(), status, message },
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, GcsError> {
        let response = self.send(method.clone(), url, build).await?;
        let body =
            response.bytes().await.map_err(|source| GcsError::Transport { method, url: url.to_owned(), source })?;
        serde_json::from_slice(&body).map_err(|e| GcsError::Decode { url: url.to_owned(), message: e.to_string() })
    }

    async fn object(&self, path: &Path, generation: Option<&str>) -> Result<Object, object_store::Error> {
        let query: Vec<(&str, &str)> = generation.map(|g| ("generation", g)).into_iter().collect();
        let url = self.urls.object(path.as_ref(), &query);
        self.json(Method::GET, &url, |r| r)
            .await
            .map_err(|e| to_store_error(e, path.as_ref(), OnPrecondition::Precondition))
    }

    async fn list_page(
        &self,
        prefix: Option<&Path>,
        delimiter: bool,
        token: Option<&str>,
    ) -> Result<ListPage, object_store::Error> {
        // A path prefix matches whole segments: `a` lists `a/x`, never `ab`.
        let prefix = prefix.map(|p| p.as_ref()).filter(|p| !p.is_empty()).map(|p| format!("{p}/"));
        let page_size = self.page_size.to_string();
        let mut query = vec![("maxResults", page_size.as_str())];
        if let Some(p) = &prefix {
            query.push(("prefix", p.as_str()));
        }
        if delimiter {
            query.push(("delimiter", "/"));
        }
        if let Some(t) = token {
            query.push(("pageToken", t));
        }
        let url = self.urls.list(&query);
        self.json(Method::GET, &url, |r| r)
            .await
            .map_err(|e| to_store_error(e, prefix.as_deref().unwrap_or(""), OnPrecondition::Precondition))
    }

    /// Write a whole object in one request, optionally only if its generation is `if_generation`
    /// (`0`: only if absent). `uploadType=multipart` (metadata + bytes in one body) rather than
    /// `media`: both are single requests, but fake-gcs-server ignores preconditions on `media`.
    async fn upload(
        &self,
        name: &str,
        data: Bytes,
        content_type: &str,
        if_generation: Option<&str>,
    ) -> Result<Object, GcsError> {
        let mut query = vec![("uploadType", "multipart")];
        if let Some(g) = if_generation {
            query.push(("ifGenerationMatch", g));
        }
        let url = self.urls.upload(&query);
        let (body_type, body) = api::multipart_body(name, content_type, &data);
        self.json(Method::POST, &url, |r| r.header(reqwest::header::CONTENT_TYPE, body_type).body(body)).await
    }

    async fn delete_one(&self, path: &Path) -> Result<(), object_store::Error> {
        let url = self.urls.object(path.as_ref(), &[]);
        self.send(Method::DELETE, &url, |r| r)
            .await
            .map(|_| ())
            .map_err(|e| to_store_error(e, path.as_ref(), OnPrecondition::Precondition))
    }
}

fn invalid_name(e: object_store::path::Error) -> object_store::Error {
    object_store::Error::InvalidPath { source: e }
}

fn content_type(attributes: &Attributes) -> String {
    attributes.get(&Attribute::ContentType).map(|v| v.to_string()).unwrap_or_else(|| "application/octet-stream".into())
}

#[async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let generation = match &opts.mode {
            PutMode::Overwrite => None,
            PutMode::Create => Some("0".to_owned()),
            PutMode::Update(v) => Some(v.version.clone().ok_or_else(|| object_store::Error::NotSupported {
                source: "a conditional update on GCS needs the object's generation (ObjectMeta::version)".into(),
            })?),
        };
        let on_412 =
            if opts.mode == PutMode::Create { OnPrecondition::AlreadyExists } else { OnPrecondition::Precondition };
        let object = self
            .upload(location.as_ref(), Bytes::from(payload), &content_type(&opts.attributes), generation.as_deref())
            .await
            .map_err(|e| to_store_error(e, location.as_ref(), on_412))?;
        Ok(PutResult {
            e_tag: object.etag,
            version: object.generation.map(|g| g.to_string()),
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = upload::ResumableUpload::start(self.clone(), location, &content_type(&opts.attributes)).await?;
        Ok(Box::new(upload))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let name = location.as_ref();
        let object = self.object(location, options.version.as_deref()).await?;
        let meta = object.meta().map_err(invalid_name)?;
        options.check_preconditions(&meta)?;
        let range: Range<u64> = match &options.range {
            Some(r) => r.as_range(meta.size).map_err(|e| {
                let e = GcsError::Range { url: name.to_owned(), message: e.to_string() };
                to_store_error(e, name, OnPrecondition::Precondition)
            })?,
            None => 0..meta.size,
        };
        let result = |payload| GetResult {
            payload: GetResultPayload::Stream(payload),
            meta: meta.clone(),
            range: range.clone(),
            attributes: Attributes::new(),
            extensions: Default::default(),
        };
        if options.head || range.is_empty() {
            return Ok(result(futures::stream::empty().boxed()));
        }
        // Pinned to the generation just read, so metadata and bytes describe one version.
        let generation = object.generation.map(|g| g.to_string());
        let mut query = vec![("alt", "media")];
        if let Some(g) = &generation {
            query.push(("generation", g));
        }
        let url = self.urls.object(name, &query);
        let partial = range != (0..meta.size);
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let response = self
            .send(Method::GET, &url, |r| if partial { r.header(reqwest::header::RANGE, header) } else { r })
            .await
            .map_err(|e| to_store_error(e, name, OnPrecondition::Precondition))?;
        if partial && response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            let e = GcsError::Decode {
                url,
                message: format!("expected 206 to a range request, got {}", response.status()),
            };
            return Err(to_store_error(e, name, OnPrecondition::Precondition));
        }
        let path = name.to_owned();
        let stream = response
            .bytes_stream()
            .map_err(move |source| {
                let e = GcsError::Transport { method: Method::GET, url: url.clone(), source };
                to_store_error(e, &path, OnPrecondition::Precondition)
            })
            .boxed();
        Ok(result(stream))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let store = self.clone();
        locations
            .map(move |p| {
                let store = store.clone();
                async move {
                    let p = p?;
                    store.delete_one(&p).await.map(|()| p)
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let store = self.clone();
        let prefix = prefix.cloned();
        // State: the next page token; `Some(None)` is the first page, `None` the end.
        futures::stream::try_unfold(Some(None::<String>), move |state| {
            let (store, prefix) = (store.clone(), prefix.clone());
            async move {
                let Some(token) = state else { return Ok::<_, object_store::Error>(None) };
                let page = store.list_page(prefix.as_ref(), false, token.as_deref()).await?;
                let metas: Vec<_> = page.items.iter().map(|o| o.meta().map_err(invalid_name)).collect();
                Ok(Some((futures::stream::iter(metas), page.next().map(Some))))
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut result =
            ListResult { common_prefixes: Vec::new(), objects: Vec::new(), extensions: Default::default() };
        let mut token = None;
        loop {
            let page = self.list_page(prefix, true, token.as_deref()).await?;
            for o in &page.items {
                result.objects.push(o.meta().map_err(invalid_name)?);
            }
            for p in &page.prefixes {
                result.common_prefixes.push(Path::parse(p.trim_end_matches('/')).map_err(invalid_name)?);
            }
            match page.next() {
                Some(t) => token = Some(t),
                None => return Ok(result),
            }
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        if options.mode == CopyMode::Create {
            // fake-gcs-server ignores ifGenerationMatch on rewriteTo, so copy-if-absent is a read
            // and an upload-if-absent (atomic on both servers). Nothing sluice writes needs it.
            let source = self.get_opts(from, GetOptions::default()).await?;
            let data = source.bytes().await?;
            return self
                .upload(to.as_ref(), data, "application/octet-stream", Some("0"))
                .await
                .map(|_| ())
                .map_err(|e| to_store_error(e, to.as_ref(), OnPrecondition::AlreadyExists));
        }
        let mut token: Option<String> = None;
        // A rewrite across locations or storage classes may answer `done: false` with a token
        // to continue with; within one bucket it is usually done in one call.
        loop {
            let query: Vec<(&str, &str)> = token.iter().map(|t| ("rewriteToken", t.as_str())).collect();
            let url = self.urls.rewrite(from.as_ref(), to.as_ref(), &query);
            let r: RewriteResponse = self
                .json(Method::POST, &url, |r| r.header(reqwest::header::CONTENT_TYPE, "application/json").body("{}"))
                .await
                .map_err(|e| to_store_error(e, from.as_ref(), OnPrecondition::Precondition))?;
            if r.done {
                return Ok(());
            }
            match r.rewrite_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => {
                    let e = GcsError::Decode { url, message: "rewrite not done and no rewriteToken".into() };
                    return Err(to_store_error(e, to.as_ref(), OnPrecondition::Precondition));
                }
            }
        }
    }
}
