//! Public keys that sign push tokens (and the console's): Google's JWKS fetched over HTTPS and
//! cached, or a local JWKS / PEM file.
//!
//! The remote set is cached for the response's `Cache-Control: max-age`. Google rotates its keys
//! every few days and publishes the next one early, so a token with an unknown `kid` triggers a
//! refetch, at most once per [`MIN_REFETCH`] so forged `kid`s cannot turn sluice into a
//! request amplifier against Google.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;

/// Least time between two fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// How long keys are kept when the response does not say (`Cache-Control` without `max-age`).
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("key file {path} is neither a JWKS nor an RSA or EC public key in PEM: {reason}")]
    Parse { path: String, reason: String },
    /// Retrying can help: the key server may be back later.
    #[error("cannot fetch signing keys from {url}: {reason}")]
    Fetch { url: String, reason: String },
}

/// Keys by `kid`; a PEM file gives one key that stands for any `kid`.
#[derive(Clone, Default)]
pub struct Keys {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    any: Option<Arc<DecodingKey>>,
}

impl Keys {
    fn get(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        kid.and_then(|k| self.by_kid.get(k)).or(self.any.as_ref()).cloned()
    }

    /// The RSA and EC keys of a JWKS document (Google's identity tokens are RS256, IAP's ES256).
    fn from_jwks(json: &[u8]) -> Result<Keys, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else { continue };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                by_kid.insert(kid.clone(), Arc::new(key));
            }
        }
        if by_kid.is_empty() {
            return Err("it holds no RSA or EC key with a `kid`".into());
        }
        Ok(Keys { by_kid, any: None })
    }
}

/// Where verification keys come from.
pub enum KeySource {
    Fixed(Keys),
    Remote(RemoteKeys),
}

impl KeySource {
    /// `https://…` (or loopback `http://…`) is fetched; anything else is read as a file now.
    pub fn from_setting(setting: &str) -> Result<KeySource, KeysError> {
        if setting.starts_with("https://") || setting.starts_with("http://") {
            return Ok(KeySource::Remote(RemoteKeys::new(setting, MIN_REFETCH)));
        }
        let path = setting.to_owned();
        let bytes = std::fs::read(&path).map_err(|source| KeysError::Read { path: path.clone(), source })?;
        let keys = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            // RSA for Google's identity tokens (RS256), EC for IAP's assertions (ES256).
            let key = DecodingKey::from_rsa_pem(&bytes)
                .or_else(|_| DecodingKey::from_ec_pem(&bytes))
                .map_err(|e| KeysError::Parse { path, reason: e.to_string() })?;
            Keys { by_kid: HashMap::new(), any: Some(Arc::new(key)) }
        } else {
            Keys::from_jwks(&bytes).map_err(|reason| KeysError::Parse { path, reason })?
        };
        Ok(KeySource::Fixed(keys))
    }

    /// The key for `kid`, fetching the remote set when it is stale or lacks `kid`.
    /// `Ok(None)`: no such key (the token is not Google's, or names a key not yet published).
    pub async fn get(&self, kid: Option<&str>) -> Result<Option<Arc<DecodingKey>>, KeysError> {
        match self {
            KeySource::Fixed(keys) => Ok(keys.get(kid)),
            KeySource::Remote(r) => r.get(kid).await,
        }
    }
}

/// A JWKS URL with its cached keys.
pub struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: Keys,
    /// When the keys go stale (`None`: never fetched).
    fresh_until: Option<Instant>,
    last_fetch: Option<Instant>,
}

impl RemoteKeys {
    pub fn new(url: &str, min_refetch: Duration) -> RemoteKeys {
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default();
        RemoteKeys { url: url.to_owned(), client, min_refetch, cache: Default::default() }
    }

    async fn get(&self, kid: Option<&str>) -> Result<Option<Arc<DecodingKey>>, KeysError> {
        // One lock across the fetch: concurrent requests wait for one fetch instead of each making one.
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let stale = cache.fresh_until.is_none_or(|t| now >= t);
        let unknown = cache.keys.get(kid).is_none();
        let may_refetch = cache.last_fetch.is_none_or(|t| now.duration_since(t) >= self.min_refetch);
        if stale || (unknown && may_refetch) {
            match self.fetch().await {
                Ok((keys, max_age)) => {
                    *cache = Cache { keys, fresh_until: Some(now + max_age), last_fetch: Some(now) };
                }
                // Stale keys still verify tokens signed before a rotation; an empty cache cannot.
                Err(e) if cache.fresh_until.is_some() => {
                    tracing::warn!(error = %e, "keeping the signing keys fetched before");
                    cache.fresh_until = Some(now + self.min_refetch);
                    cache.last_fetch = Some(now);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cache.keys.get(kid))
    }

    async fn fetch(&self) -> Result<(Keys, Duration), KeysError> {
        let fail = |reason: String| KeysError::Fetch { url: self.url.clone(), reason };
        let resp = self.client.get(&self.url).send().await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let max_age = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE);
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        let keys = Keys::from_jwks(&body).map_err(|e| fail(format!("not a usable JWKS: {e}")))?;
        tracing::info!(url = %self.url, keys = keys.by_kid.len(), max_age_s = max_age.as_secs(), "fetched push signing keys");
        Ok((keys, max_age))
    }
}

/// `max-age=N` of a Cache-Control value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok().map(Duration::from_secs))?
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use axum::response::IntoResponse;

    use super::*;

    const JWKS: &str = include_str!("../../../tests/fixtures/push-auth/signing.jwks.json");

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("public, max-age=19845, must-revalidate, no-transform"), Some(Duration::from_secs(19845)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn reads_jwks_and_pem_files_and_names_bad_ones() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/push-auth/");
        let KeySource::Fixed(k) = KeySource::from_setting(&format!("{dir}signing.jwks.json")).unwrap() else {
            panic!("a file is a fixed key set")
        };
        assert!(k.get(Some("test-key-1")).is_some() && k.get(Some("other")).is_none() && k.get(None).is_none());
        let KeySource::Fixed(k) = KeySource::from_setting(&format!("{dir}signing.pub.pem")).unwrap() else {
            panic!("a file is a fixed key set")
        };
        assert!(k.get(Some("anything")).is_some() && k.get(None).is_some());
        // IAP's key in PEM form checks an ES256 assertion signed with its private key.
        let KeySource::Fixed(k) = KeySource::from_setting(&format!("{dir}iap.pub.pem")).unwrap() else {
            panic!("a file is a fixed key set")
        };
        let signing = std::fs::read(format!("{dir}iap.key.pem")).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let claims = serde_json::json!({"sub": "accounts.google.com:1", "exp": 4_102_444_800u64});
        let token =
            jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(&signing).unwrap()).unwrap();
        let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        rules.required_spec_claims.clear();
        let key = k.get(Some("test-iap-1")).expect("a PEM key stands for any kid");
        jsonwebtoken::decode::<serde_json::Value>(&token, &key, &rules).expect("verified with the PEM key");
        let err = KeySource::from_setting(&format!("{dir}README.md")).err().unwrap().to_string();
        assert!(err.contains("is neither a JWKS nor an RSA or EC public key in PEM"), "{err}");
        let err = KeySource::from_setting("/no/such/keys.json").err().unwrap().to_string();
        assert!(err.starts_with("cannot read key file /no/such/keys.json"), "{err}");
    }

    /// A JWKS server on loopback whose document and max-age the test changes, counting fetches.
    struct KeyServer {
        url: String,
        fetches: Arc<AtomicUsize>,
        doc: Arc<Mutex<(String, u64)>>,
    }

    async fn key_server(kid: &str, max_age: u64) -> KeyServer {
        let fetches = Arc::new(AtomicUsize::new(0));
        let doc = Arc::new(Mutex::new((JWKS.replace("test-key-1", kid), max_age)));
        let (f, d) = (fetches.clone(), doc.clone());
        let app = axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                f.fetch_add(1, Ordering::SeqCst);
                let (body, age) = d.lock().unwrap().clone();
                async move { ([("cache-control", format!("public, max-age={age}"))], body).into_response() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        KeyServer { url, fetches, doc }
    }

    #[tokio::test]
    async fn caches_keys_and_refetches_for_a_rotated_kid_at_a_bounded_rate() {
        let server = key_server("k1", 3600).await;
        let keys = RemoteKeys::new(&server.url, Duration::from_millis(300));
        assert!(keys.get(Some("k1")).await.unwrap().is_some());
        assert!(keys.get(Some("k1")).await.unwrap().is_some());
        assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "max-age honoured: one fetch");

        // Google rotates: the set now holds k2 only. A k2 token makes sluice refetch.
        server.doc.lock().unwrap().0 = JWKS.replace("test-key-1", "k2");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(keys.get(Some("k2")).await.unwrap().is_some());
        assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

        // Unknown kids inside the refetch interval do not reach the key server.
        for _ in 0..5 {
            assert!(keys.get(Some("forged")).await.unwrap().is_none());
        }
        assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "refetches are rate limited");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(keys.get(Some("forged")).await.unwrap().is_none());
        assert_eq!(server.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn refetches_when_max_age_lapses_and_keeps_old_keys_if_the_server_fails() {
        let server = key_server("k1", 0).await;
        let keys = RemoteKeys::new(&server.url, Duration::from_secs(3600));
        assert!(keys.get(Some("k1")).await.unwrap().is_some());
        assert!(keys.get(Some("k1")).await.unwrap().is_some());
        assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "max-age=0: stale at once, fetched again");

        server.doc.lock().unwrap().0 = "not json".into();
        assert!(keys.get(Some("k1")).await.unwrap().is_some(), "a failed refresh keeps the keys it had");

        let dead = RemoteKeys::new("http://127.0.0.1:9/certs", Duration::from_secs(1));
        let err = dead.get(Some("k1")).await.err().unwrap().to_string();
        assert!(err.starts_with("cannot fetch signing keys from http://127.0.0.1:9/certs"), "{err}");
    }
}
