//! The official Pub/Sub client's builders (publisher, topic and subscription admin), pointed at
//! the configured endpoint. Pulling does not use it: see [`super::pull`].

use crate::config::global::PubsubConfig;

/// Credentials for an endpoint: anonymous for an emulator or private endpoint named in config,
/// application default credentials otherwise.
pub fn credentials(config: &PubsubConfig) -> Option<google_cloud_auth::credentials::Credentials> {
    config.endpoint.as_ref().map(|_| google_cloud_auth::credentials::anonymous::Builder::new().build())
}

/// Point any Google client builder (publisher, admin) at the configured endpoint with the
/// matching credentials. The builders share no trait, hence a macro.
macro_rules! at_endpoint {
    ($builder:expr, $config:expr) => {{
        let (mut b, config) = ($builder, $config);
        if let Some(e) = config.endpoint.clone() {
            b = b.with_endpoint(e);
        }
        if let Some(c) = $crate::source::pubsub::credentials(config) {
            b = b.with_credentials(c);
        }
        b
    }};
}
pub(crate) use at_endpoint;
