//! Who GCS requests are made as: nobody (an emulator) or application default credentials.

use google_cloud_auth::credentials::{Builder, CacheableResource, Credentials};
use object_store::Extensions;
use reqwest::header::HeaderMap;

use super::api::GcsError;

#[derive(Debug, Clone)]
pub(super) enum Auth {
    /// Emulators take anonymous requests.
    Anonymous,
    /// Application default credentials; the crate caches the token and refreshes it before it
    /// expires, so asking for headers on every request is cheap.
    Adc(Credentials),
}

impl Auth {
    pub(super) fn application_default() -> Result<Auth, google_cloud_auth::build_errors::Error> {
        Builder::default().build().map(Auth::Adc)
    }

    /// The headers to add to a request (none when anonymous).
    pub(super) async fn headers(&self) -> Result<HeaderMap, GcsError> {
        match self {
            Auth::Anonymous => Ok(HeaderMap::new()),
            Auth::Adc(c) => match c.headers(Extensions::new()).await? {
                CacheableResource::New { data, .. } => Ok(data),
                // Only answered to a request carrying an entity tag, which ours never does.
                CacheableResource::NotModified => Err(GcsError::Credentials(
                    google_cloud_auth::errors::CredentialsError::from_msg(true, "no headers returned (NotModified)"),
                )),
            },
        }
    }
}
