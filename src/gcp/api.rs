//! One Google REST API as sluice calls it: a base URL (production or the configured endpoint),
//! the credentials that go with it, timeouts, and a failed answer read as Google's error body.

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use reqwest::{Method, RequestBuilder, Response};

use super::{auth_headers, credentials, error_message, AuthError};

/// How long a request may take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timeout {
    /// The whole request, answer included.
    Whole(Duration),
    /// To connect, then between bytes: an upload of many MiB may take longer than any whole bound.
    BetweenBytes { connect: Duration, read: Duration },
}

/// A call that failed: no answer, or an answer other than the ones accepted. (A missing token
/// fails earlier, in [`Api::request`].)
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{}", causes(.0))]
    Transport(#[source] reqwest::Error),
    /// `message` is Google's (`error.message`), else the start of the body.
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
}

impl CallError {
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A Google REST API; cheap to clone (the HTTP client and the credentials' token cache are shared).
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
}

impl Api {
    /// The API at `endpoint` (anonymously) when one is configured, else at `production` with
    /// application default credentials. `endpoint` is a URL, as config reads it.
    pub(crate) fn new(endpoint: Option<&str>, production: &str, timeout: Timeout) -> Result<Api, AuthError> {
        let creds = credentials(endpoint.is_some())?;
        let base = endpoint.unwrap_or(production).trim_end_matches('/').to_owned();
        let http = match timeout {
            Timeout::Whole(t) => reqwest::Client::builder().timeout(t),
            Timeout::BetweenBytes { connect, read } => {
                reqwest::Client::builder().connect_timeout(connect).read_timeout(read)
            }
        };
        Ok(Api { http: http.build().expect("static HTTP client settings"), base, creds })
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// A request to `url` (usually under [`Api::base`]) carrying the credentials' headers.
    pub(crate) async fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, AuthError> {
        Ok(self.http.request(method, url).headers(auth_headers(&self.creds).await?))
    }

    /// Send; any answer but 2xx is an error carrying Google's message.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, CallError> {
        self.send_accepting(request, |_| false).await
    }

    /// Send, taking 2xx and the statuses `also` accepts (GCS's 308 "send more") as answers.
    pub(crate) async fn send_accepting(
        &self,
        request: RequestBuilder,
        also: impl Fn(u16) -> bool,
    ) -> Result<Response, CallError> {
        let response = request.send().await.map_err(CallError::Transport)?;
        let status = response.status();
        if status.is_success() || also(status.as_u16()) {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(CallError::Status { status: status.as_u16(), message: error_message(&body) })
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") hides
/// the reason (connection refused, timeout) in its source.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failed_answers_carry_googles_message() {
        let app = axum::Router::new()
            .route(
                "/missing",
                axum::routing::get(|| async {
                    (
                        axum::http::StatusCode::NOT_FOUND,
                        r#"{"error": {"code": 404, "message": "Not found: Table p:d.t", "status": "NOT_FOUND"}}"#,
                    )
                }),
            )
            .route("/plain", axum::routing::get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }))
            .route("/more", axum::routing::get(|| async { axum::http::StatusCode::PERMANENT_REDIRECT }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // Reached anonymously; the base never ends in a slash.
        let endpoint = format!("http://{addr}/");
        let api = Api::new(Some(&endpoint), "https://unused.example", Timeout::Whole(Duration::from_secs(5))).unwrap();
        assert_eq!(api.base(), format!("http://{addr}"));
        let call = |path: &str| {
            let url = format!("{}{path}", api.base());
            let api = api.clone();
            async move { api.send(api.request(Method::GET, &url).await.unwrap()).await }
        };
        let e = call("/missing").await.unwrap_err();
        assert_eq!((e.status(), e.to_string().as_str()), (Some(404), "HTTP 404: Not found: Table p:d.t"));
        assert_eq!(call("/plain").await.unwrap_err().to_string(), "HTTP 502: upstream down");
        assert_eq!(call("/more").await.unwrap_err().status(), Some(308));
        let url = format!("{}/more", api.base());
        let r = api.send_accepting(api.request(Method::GET, &url).await.unwrap(), |s| s == 308).await.unwrap();
        assert_eq!(r.status().as_u16(), 308);
        let closed = Api::new(Some("http://127.0.0.1:9"), "", Timeout::Whole(Duration::from_secs(5))).unwrap();
        let e = closed.send(closed.request(Method::GET, "http://127.0.0.1:9/").await.unwrap()).await.unwrap_err();
        assert!(matches!(e, CallError::Transport(_)) && e.to_string().contains("error sending request"), "{e}");
    }
}
