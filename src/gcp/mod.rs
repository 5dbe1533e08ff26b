//! Google Cloud plumbing shared by sluice's clients: credentials, and [`Api`], the one
//! REST layer (base URL, credentials, timeouts, Google's error body) that the BigQuery, Secret
//! Manager, Pub/Sub probe and GCS clients call through.
//!
//! An endpoint named in config (an emulator or a test server) is always reached with anonymous
//! credentials; production endpoints use application default credentials (a service account key,
//! workload identity or `gcloud auth`).

mod api;

pub(crate) use api::{causes, Api, CallError, Timeout};

use google_cloud_auth::credentials::{self, Credentials};
use google_cloud_auth::errors::CredentialsError;
use http::HeaderMap;

/// The message of a Google API error body (`{"error": {"message": ..}}`), else the body's first
/// 500 characters: Google's message names the problem (NOT_FOUND, PERMISSION_DENIED).
pub(crate) fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("application default credentials are not available ({0}); set GOOGLE_APPLICATION_CREDENTIALS, run on GCP with a service account, or point sluice at an emulator")]
    Unavailable(String),
    #[error("cannot get an access token: {0}")]
    Token(#[source] CredentialsError),
}

impl AuthError {
    /// A token refresh that may succeed later (the metadata server was slow, say).
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Token(e) if e.is_transient())
    }
}

/// Anonymous credentials for an emulator, application default credentials otherwise.
pub(crate) fn credentials(emulator: bool) -> Result<Credentials, AuthError> {
    if emulator {
        return Ok(credentials::anonymous::Builder::new().build());
    }
    credentials::Builder::default()
        .with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
        .build()
        .map_err(|e| AuthError::Unavailable(e.to_string()))
}

/// The headers (Authorization) to send with one request; the credentials cache the token.
pub(crate) async fn auth_headers(creds: &Credentials) -> Result<HeaderMap, AuthError> {
    match creds.headers(http::Extensions::new()).await {
        Ok(credentials::CacheableResource::New { data, .. }) => Ok(data),
        // Only answered to a request carrying an entity tag, which sluice's never do.
        Ok(credentials::CacheableResource::NotModified) => Ok(HeaderMap::new()),
        Err(e) => Err(AuthError::Token(e)),
    }
}
