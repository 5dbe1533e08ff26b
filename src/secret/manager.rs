//! Secret Manager over REST: `GET /v1/{version}:access` returns the payload, base64 encoded.
//!
//! Production is secretmanager.googleapis.com with application default credentials (workload
//! identity on Cloud Run; the service account needs `roles/secretmanager.secretAccessor` on the
//! secret). An endpoint given in config (`secrets.endpoint`, e.g. a test server) is reached
//! anonymously, like every emulator. Errors name the version and the status, never the payload.

use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde::Deserialize;

use super::{valid_version_name, Secret, SecretError};
use crate::gcp::{Api, CallError, Timeout};

const PRODUCTION: &str = "https://secretmanager.googleapis.com";
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
struct AccessResponse {
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    data: String,
}

/// Fetch the payload of `version` (`projects/P/secrets/S/versions/V`). A trailing newline (as
/// `echo` writes it into `gcloud secrets create --data-file=-`) is dropped.
pub(crate) async fn access(endpoint: Option<&str>, version: &str) -> Result<Secret, SecretError> {
    let fail = |message: String| SecretError::Fetch { name: version.to_owned(), message };
    if !valid_version_name(version) {
        return Err(fail(
            "expected projects/PROJECT/secrets/NAME/versions/(NUMBER|latest) (is a ${VARIABLE} unset?)".into(),
        ));
    }
    let api = Api::new(endpoint, PRODUCTION, Timeout::Whole(TIMEOUT))?;
    let url = format!("{}/v1/{version}:access", api.base());
    // Google's error body names the problem (NOT_FOUND, PERMISSION_DENIED), not the secret.
    let answer = api.send(api.request(Method::GET, &url).await?).await.map_err(|e| match e {
        CallError::Transport(e) => fail(format!("request failed: {}", e.without_url())),
        e => fail(e.to_string()),
    })?;
    let r: AccessResponse =
        answer.json().await.map_err(|_| fail("answer is not an AccessSecretVersionResponse".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.payload.data.trim())
        .map_err(|_| fail("payload.data is not base64".into()))?;
    let mut text = String::from_utf8(bytes).map_err(|_| fail("payload is not UTF-8 text".into()))?;
    while text.ends_with(['\n', '\r']) {
        text.pop();
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    //! Secret Manager has no official emulator: a small HTTP server in the test answers as its
    //! REST API does (same path, same JSON), so the request, decoding and errors are exercised.
    use super::*;
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;

    async fn server() -> String {
        let app = axum::Router::new().route(
            "/v1/{*name}",
            get(|Path(name): Path<String>| async move {
                let data = base64::engine::general_purpose::STANDARD.encode("s3cr3t-value\n");
                match name.as_str() {
                    "projects/p/secrets/token/versions/latest:access" => (
                        StatusCode::OK,
                        serde_json::json!({"name": "projects/1/secrets/token/versions/3", "payload": {"data": data}})
                            .to_string(),
                    ),
                    "projects/p/secrets/junk/versions/1:access" => (StatusCode::OK, r#"{"payload": {"data": "!!"}}"#.into()),
                    _ => (
                        StatusCode::NOT_FOUND,
                        r#"{"error": {"code": 404, "message": "Secret [projects/1/secrets/x] not found or has no versions.", "status": "NOT_FOUND"}}"#.into(),
                    ),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn fetches_decodes_and_names_failures() {
        let url = server().await;
        let s = access(Some(&url), "projects/p/secrets/token/versions/latest").await.unwrap();
        assert_eq!(s.expose(), "s3cr3t-value");
        let e = access(Some(&url), "projects/p/secrets/x/versions/2").await.unwrap_err().to_string();
        assert_eq!(
            e,
            "Secret Manager projects/p/secrets/x/versions/2: HTTP 404: Secret [projects/1/secrets/x] not found or has no versions."
        );
        let e = access(Some(&url), "projects/p/secrets/junk/versions/1").await.unwrap_err().to_string();
        assert_eq!(e, "Secret Manager projects/p/secrets/junk/versions/1: payload.data is not base64");
        let e = access(Some(&url), "projects/${P}/secrets/t/versions/1").await.unwrap_err().to_string();
        assert!(e.contains("is a ${VARIABLE} unset?"), "{e}");
    }

    #[tokio::test]
    async fn a_reference_file_resolves_through_the_endpoint() {
        let url = server().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("push-token.yaml"), "secret: projects/${P}/secrets/token/versions/latest\n")
            .unwrap();
        let setting = crate::secret::SecretSetting::Reference("push-token".into());
        let env = |k: &str| (k == "P").then(|| "p".to_owned());
        assert_eq!(setting.resolve(dir.path(), Some(&url), env).await.unwrap().expose(), "s3cr3t-value");
    }
}
