//! The GCS JSON API as plain data: request URLs (with object names percent-encoded), the
//! object resource, and HTTP failures mapped onto `object_store` errors so callers can tell a
//! retryable failure (`Generic`) from one retrying cannot fix.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::ObjectMeta;
use serde::Deserialize;

use crate::gcp::causes;

/// What went wrong talking to GCS. Kept as the source of the `object_store::Error` it becomes,
/// so a caller can downcast and ask [`GcsError::retryable`].
#[derive(Debug, thiserror::Error)]
pub enum GcsError {
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status { method: reqwest::Method, url: String, status: u16, message: String },
    #[error("{method} {url}: {}", causes(source))]
    Transport { method: reqwest::Method, url: String, source: reqwest::Error },
    #[error("application default credentials: {}", causes(.0))]
    Credentials(#[from] crate::gcp::AuthError),
    #[error("{url}: unexpected answer: {message}")]
    Decode { url: String, message: String },
    #[error("{url}: {message}")]
    Range { url: String, message: String },
}

impl GcsError {
    /// Throttling, server errors, timeouts and broken connections may pass; the rest will not.
    pub fn retryable(&self) -> bool {
        match self {
            GcsError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            GcsError::Transport { source, .. } => !source.is_builder(),
            GcsError::Credentials(e) => e.is_transient(),
            GcsError::Decode { .. } | GcsError::Range { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GcsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What a 412 means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnPrecondition {
    /// `ifGenerationMatch=0`: the object exists already.
    AlreadyExists,
    /// A generation or etag condition did not hold.
    Precondition,
}

pub(super) const STORE: &str = "GCS";

/// An `object_store` error for `path`: callers match on the variant (the lake sink retries
/// `Generic`), so only failures that may pass on retry become `Generic`.
pub(super) fn to_store_error(e: GcsError, path: &str, on_412: OnPrecondition) -> object_store::Error {
    use object_store::Error as E;
    let path = path.to_owned();
    match e.status() {
        Some(404) => E::NotFound { path, source: Box::new(e) },
        Some(412) if on_412 == OnPrecondition::AlreadyExists => E::AlreadyExists { path, source: Box::new(e) },
        Some(412) => E::Precondition { path, source: Box::new(e) },
        Some(304) => E::NotModified { path, source: Box::new(e) },
        Some(401) => E::Unauthenticated { path, source: Box::new(e) },
        Some(403) => E::PermissionDenied { path, source: Box::new(e) },
        _ => match e {
            GcsError::Credentials(c) if !c.is_transient() => E::Unauthenticated { path, source: Box::new(c) },
            e => E::Generic { store: STORE, source: Box::new(e) },
        },
    }
}

/// Whether an `object_store` error may pass on retry: `Generic` ones from this backend say so
/// themselves; other backends' `Generic` errors are assumed transient.
pub fn retryable(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => {
            source.downcast_ref::<GcsError>().is_none_or(GcsError::retryable)
        }
        object_store::Error::JoinError { .. } => true,
        _ => false,
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters: object names go into one URL
/// path segment (so `/` becomes `%2F`) or a query value.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URLs of one bucket's JSON API.
#[derive(Debug, Clone)]
pub(super) struct Urls {
    /// `https://storage.googleapis.com` or an emulator's base URL, without a trailing slash.
    pub base: String,
    pub bucket: String,
}

impl Urls {
    pub(super) fn new(base: &str, bucket: &str) -> Urls {
        Urls { base: base.trim_end_matches('/').to_owned(), bucket: bucket.to_owned() }
    }

    fn objects(&self) -> String {
        format!("{}/storage/v1/b/{}/o", self.base, encode(&self.bucket))
    }

    /// The object resource (metadata, delete).
    pub(super) fn object(&self, name: &str, query: &[(&str, &str)]) -> String {
        with_query(format!("{}/{}", self.objects(), encode(name)), query)
    }

    /// Listing of the bucket's objects.
    pub(super) fn list(&self, query: &[(&str, &str)]) -> String {
        with_query(self.objects(), query)
    }

    /// Uploads (`uploadType=media` or `resumable`).
    pub(super) fn upload(&self, query: &[(&str, &str)]) -> String {
        with_query(format!("{}/upload/storage/v1/b/{}/o", self.base, encode(&self.bucket)), query)
    }

    /// Server-side copy within the bucket.
    pub(super) fn rewrite(&self, from: &str, to: &str, query: &[(&str, &str)]) -> String {
        let b = encode(&self.bucket);
        with_query(format!("{}/{}/rewriteTo/b/{b}/o/{}", self.objects(), encode(from), encode(to)), query)
    }
}

fn with_query(mut url: String, query: &[(&str, &str)]) -> String {
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(k);
        url.push('=');
        url.push_str(&encode(v));
    }
    url
}

/// A `multipart/related` upload body: the object's metadata, then its bytes. Returns the
/// Content-Type (with the boundary) and the body.
pub(super) fn multipart_body(name: &str, content_type: &str, data: &[u8]) -> (String, Bytes) {
    // Random, so it cannot occur in the data except by a 2^-122 chance.
    let boundary = format!("sluice-{}", uuid::Uuid::new_v4().simple());
    let metadata = serde_json::json!({ "name": name, "contentType": content_type });
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = BytesMut::with_capacity(head.len() + data.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(tail.as_bytes());
    (format!("multipart/related; boundary={boundary}"), body.freeze())
}

/// The fields of the JSON API object resource that `ObjectMeta` needs.
#[derive(Debug, Deserialize)]
pub(super) struct Object {
    pub name: String,
    /// A decimal string in the API (some emulators send a number).
    #[serde(deserialize_with = "u64_or_string")]
    pub size: u64,
    pub updated: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    #[serde(default, deserialize_with = "opt_u64_or_string")]
    pub generation: Option<u64>,
}

impl Object {
    pub(super) fn meta(&self) -> Result<ObjectMeta, object_store::path::Error> {
        Ok(ObjectMeta {
            location: Path::parse(&self.name)?,
            last_modified: self.updated.unwrap_or_default(),
            size: self.size,
            e_tag: self.etag.clone(),
            version: self.generation.map(|g| g.to_string()),
        })
    }
}

/// One page of `objects.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListPage {
    #[serde(default)]
    pub items: Vec<Object>,
    #[serde(default)]
    pub prefixes: Vec<String>,
    next_page_token: Option<String>,
}

impl ListPage {
    /// The token of the next page; `None` on the last (an empty token would restart the listing).
    pub(super) fn next(&self) -> Option<String> {
        self.next_page_token.clone().filter(|t| !t.is_empty())
    }
}

/// The answer to `rewriteTo`: large copies take several calls.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RewriteResponse {
    pub done: bool,
    pub rewrite_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

fn u64_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::Num(n) => Ok(n),
        NumOrText::Text(t) => {
            t.parse().map_err(|_| serde::de::Error::custom(format!("expected a number, found '{t}'")))
        }
    }
}

fn opt_u64_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64_or_string(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcp::error_message;
    use google_cloud_auth::errors::CredentialsError;

    #[test]
    fn names_are_encoded_as_one_path_segment() {
        assert_eq!(
            encode("lake/dt=2026-11-26/hour=09/a b.parquet"),
            "lake%2Fdt%3D2026-11-26%2Fhour%3D09%2Fa%20b.parquet"
        );
        assert_eq!(encode("🙀/%48?#&+"), "%F0%9F%99%80%2F%2548%3F%23%26%2B");
        assert_eq!(encode("A-z_0.9~"), "A-z_0.9~");
        let u = Urls::new("http://127.0.0.1:4443/", "b");
        assert_eq!(u.object("a/b c", &[]), "http://127.0.0.1:4443/storage/v1/b/b/o/a%2Fb%20c");
        assert_eq!(
            u.object("x", &[("alt", "media"), ("generation", "7")]),
            "http://127.0.0.1:4443/storage/v1/b/b/o/x?alt=media&generation=7"
        );
        assert_eq!(
            u.upload(&[("uploadType", "media"), ("name", "a/b+c"), ("ifGenerationMatch", "0")]),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=media&name=a%2Fb%2Bc&ifGenerationMatch=0"
        );
        assert_eq!(u.list(&[("prefix", "a b/")]), "http://127.0.0.1:4443/storage/v1/b/b/o?prefix=a%20b%2F");
        assert_eq!(
            u.upload(&[("uploadType", "multipart")]),
            "http://127.0.0.1:4443/upload/storage/v1/b/b/o?uploadType=multipart"
        );
        assert_eq!(u.rewrite("a/1", "b/2", &[]), "http://127.0.0.1:4443/storage/v1/b/b/o/a%2F1/rewriteTo/b/b/o/b%2F2");
    }

    #[test]
    fn multipart_bodies_carry_metadata_then_bytes() {
        let (content_type, body) = multipart_body("a/b \"c\"", "application/octet-stream", b"\x00PAR1");
        let boundary = content_type.strip_prefix("multipart/related; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
        assert_eq!(parts.len(), 4, "{text}");
        assert_eq!(parts[3], "--\r\n");
        let (head, json) = parts[1].split_once("\r\n\r\n").unwrap();
        assert!(head.contains("application/json"));
        let meta: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(meta["name"], "a/b \"c\"");
        assert!(body.ends_with(format!("\x00PAR1\r\n--{boundary}--\r\n").as_bytes()));
    }

    fn status(status: u16) -> GcsError {
        GcsError::Status { method: reqwest::Method::GET, url: "u".into(), status, message: "m".into() }
    }

    #[test]
    fn http_failures_map_to_store_errors_that_say_whether_to_retry() {
        use object_store::Error as E;
        let map = |s, on| to_store_error(status(s), "p", on);
        assert!(matches!(map(404, OnPrecondition::Precondition), E::NotFound { .. }));
        assert!(matches!(map(412, OnPrecondition::AlreadyExists), E::AlreadyExists { .. }));
        assert!(matches!(map(412, OnPrecondition::Precondition), E::Precondition { .. }));
        assert!(matches!(map(304, OnPrecondition::Precondition), E::NotModified { .. }));
        assert!(matches!(map(401, OnPrecondition::Precondition), E::Unauthenticated { .. }));
        assert!(matches!(map(403, OnPrecondition::Precondition), E::PermissionDenied { .. }));
        for s in [408, 429, 500, 502, 503] {
            let e = map(s, OnPrecondition::Precondition);
            assert!(matches!(e, E::Generic { .. }) && retryable(&e), "{s}: {e}");
        }
        let bad = map(400, OnPrecondition::Precondition);
        assert!(matches!(bad, E::Generic { .. }) && !retryable(&bad), "{bad}");
        assert!(!retryable(&map(404, OnPrecondition::Precondition)));
        let token = |transient, m| crate::gcp::AuthError::Token(CredentialsError::from_msg(transient, m));
        let creds = GcsError::Credentials(token(true, "later"));
        assert!(retryable(&to_store_error(creds, "p", OnPrecondition::Precondition)));
        let creds = GcsError::Credentials(token(false, "no ADC"));
        assert!(matches!(to_store_error(creds, "p", OnPrecondition::Precondition), E::Unauthenticated { .. }));
        let other = E::Generic { store: "LocalFileSystem", source: "disk".into() };
        assert!(retryable(&other));
    }

    #[test]
    fn object_resources_become_object_meta() {
        let o: Object = serde_json::from_str(
            r#"{"name": "a/%48.parquet", "size": "14", "updated": "2026-11-26T09:00:00.5Z", "etag": "CJ", "generation": "17", "bucket": "b"}"#,
        )
        .unwrap();
        let m = o.meta().unwrap();
        assert_eq!(
            (m.location.as_ref(), m.size, m.version.as_deref(), m.e_tag.as_deref()),
            ("a/%48.parquet", 14, Some("17"), Some("CJ"))
        );
        let o: Object = serde_json::from_str(r#"{"name": "x", "size": 3}"#).unwrap();
        assert_eq!((o.size, o.generation), (3, None));
        let page: ListPage = serde_json::from_str(r#"{"prefixes": ["a/"], "nextPageToken": ""}"#).unwrap();
        assert_eq!((page.items.len(), page.next()), (0, None), "an empty token ends the listing");
        let page: ListPage =
            serde_json::from_str(r#"{"items": [{"name": "a", "size": "1"}], "nextPageToken": "t"}"#).unwrap();
        assert_eq!(page.next().as_deref(), Some("t"));
        assert_eq!(error_message(r#"{"error": {"code": 404, "message": "Not Found"}}"#), "Not Found");
        assert_eq!(error_message("plain"), "plain");
    }
}
