//! Shared by the console tests: push records to a running sluice, and read its pages.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A change of `service`'s `key` as the config-changes topic carries it.
pub(crate) fn change(service: &str, key: &str, version: i64, value: Value, author: &str) -> Value {
    json!({"timestamp": now(), "service": service, "key": key, "old_value": null, "new_value": value,
           "version": version, "author": author})
}

/// A heartbeat of `service`, now.
pub(crate) fn heartbeat(service: &str) -> Value {
    json!({"timestamp": now(), "service": service, "instance": "i-1", "status": "healthy", "latency_ms": 3.0})
}

/// POST one payload to `/push/<pipeline>` with an optional bearer token; the status and body.
pub(crate) async fn push(base: &str, pipeline: &str, id: &str, payload: &[u8], token: Option<&str>) -> (u16, String) {
    let body = sluice::source::push::envelope(payload, id, &BTreeMap::new(), "s").to_string();
    let mut r = reqwest::Client::new()
        .post(format!("{base}/push/{pipeline}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GET `path` with an optional bearer token; the status and body.
pub(crate) async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GET `path` until its body contains `needle`, or panic after `secs` with the last body.
pub(crate) async fn wait_for_page(base: &str, path: &str, token: Option<&str>, needle: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (status, body) = get(base, path, token).await;
        if status == 200 && body.contains(needle) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{path}: no {needle:?} within {secs}s; last ({status}):\n{body}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A Google-style identity token for `audience` and `email`, valid for an hour, signed with the
/// test key of `tests/fixtures/push-auth/` (whose JWKS is [`test_keys`]).
pub(crate) fn identity_token(audience: &str, email: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": "https://accounts.google.com", "aud": audience, "email": email,
        "email_verified": true, "sub": "1", "iat": now - 10, "exp": now + 3600});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let pem = std::fs::read(super::repo().join("tests/fixtures/push-auth/signing.key.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// An Identity-Aware Proxy assertion for `audience` (ES256, as IAP signs them), valid for
/// `valid_secs` (negative: expired that long ago), signed with the test EC key of
/// `tests/fixtures/push-auth/` (whose JWKS is `iap.jwks.json`).
pub(crate) fn iap_assertion(audience: &str, valid_secs: i64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"iss": "https://cloud.google.com/iap", "aud": audience, "email": "oncall@example.com",
        "sub": "accounts.google.com:1", "iat": now - 600, "exp": now + valid_secs});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("test-iap-1".into());
    let pem = std::fs::read(super::repo().join("tests/fixtures/push-auth/iap.key.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

/// The JWKS file that verifies [`identity_token`]s.
pub(crate) fn test_keys() -> String {
    super::repo().join("tests/fixtures/push-auth/signing.jwks.json").display().to_string()
}
