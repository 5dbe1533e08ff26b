//! Who may open the console: `console.auth`, checked on every console request.
//!
//! `mode: token` compares `Authorization: Bearer <token>` with the console's own secret (in
//! constant time); `mode: oidc` checks a Google identity token exactly as pushes are checked
//! ([`Verifier`]), against the console's audience and account; `mode: iap` checks the assertion
//! Identity-Aware Proxy signs into `x-goog-iap-jwt-assertion`, against IAP's audience for this
//! backend (IAP's policy has decided who passes). The push gate is a different
//! object with different credentials (and `sluice validate` refuses shared ones), so a push
//! token never opens the console. A refusal is a 401 that names the setting, never the token.

use axum::http::HeaderMap;

use crate::config::console::ConsoleConfig;
use crate::config::push_auth::AuthMode;
use crate::secret::Secret;
use crate::source::push::auth::{bearer, Refusal, Verifier};
use crate::source::push::jwks::KeysError;

pub enum ConsoleAuth {
    /// Loopback without `console.auth`: everyone on this machine.
    Open,
    Token(Secret),
    Oidc(Box<Verifier>),
}

/// Why the console could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("console.auth.keys: {0}")]
    Keys(#[from] KeysError),
    #[error("console.auth.token: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error(
        "console.auth: the console is enabled and sluice listens on {0}, not loopback: expected console.auth \
         with mode token, oidc or iap"
    )]
    Required(std::net::SocketAddr),
    #[error("console.auth.token: has the value of push_auth.token; a push token must not open the console")]
    SameAsPush,
}

impl ConsoleAuth {
    /// From the checked config; `token` is `console.auth.token` resolved. `listen` is the address
    /// actually bound: off loopback an open console is refused here too.
    pub fn new(config: &ConsoleConfig, token: Option<Secret>, listen: std::net::SocketAddr) -> Result<Self, AuthError> {
        let Some(c) = config.auth_required() else {
            if !listen.ip().is_loopback() {
                return Err(AuthError::Required(listen));
            }
            return Ok(ConsoleAuth::Open);
        };
        match (c.mode(), token) {
            (AuthMode::Token, Some(t)) => Ok(ConsoleAuth::Token(t)),
            (AuthMode::Token, None) => {
                Err(AuthError::Secret(crate::secret::SecretError::EnvMissing("console.auth.token (not set)".into())))
            }
            _ => Ok(ConsoleAuth::Oidc(Box::new(Verifier::from_config(c)?))),
        }
    }

    /// For the start-up log line.
    pub fn describe(&self) -> &'static str {
        match self {
            ConsoleAuth::Open => "none (loopback)",
            ConsoleAuth::Token(_) => "bearer token",
            ConsoleAuth::Oidc(v) if v.is_iap() => "Identity-Aware Proxy assertion",
            ConsoleAuth::Oidc(_) => "Google identity token",
        }
    }

    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match self {
            ConsoleAuth::Open => Ok(()),
            ConsoleAuth::Token(t) => {
                let given = match (headers.contains_key(axum::http::header::AUTHORIZATION), cookie(headers)) {
                    (false, Some(c)) => c,
                    _ => bearer(headers)?.to_owned(),
                };
                match given {
                    given if t.matches(given.as_bytes()) => Ok(()),
                    _ => Err(Refusal::Unauthenticated("bearer token is not console.auth.token".into())),
                }
            }
            ConsoleAuth::Oidc(v) => v.check(headers).await.map_err(|r| match r {
                Refusal::Unauthenticated(m) => Refusal::Unauthenticated(for_console(&m)),
                Refusal::Forbidden(m) => Refusal::Forbidden(for_console(&m)),
                other => other,
            }),
        }
    }
}

/// The cookie `/ui/login` sets in token mode, for browsers (which cannot add a header).
pub const COOKIE: &str = "sluice_console";

/// The token in the [`COOKIE`] of a request, if any.
fn cookie(headers: &HeaderMap) -> Option<String> {
    let prefix = format!("{COOKIE}=");
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&prefix).map(str::to_owned))
        .map(|v| url::form_urlencoded::parse(format!("t={v}").as_bytes()).map(|(_, v)| v.into_owned()).collect())
}

/// The verifier's messages name the push settings; here they are the console's.
fn for_console(message: &str) -> String {
    message.replace("push_auth.service_account", "console.auth.service_account").replace("push_auth.", "console.auth.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(axum::http::header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    fn config(yaml: &str) -> ConsoleConfig {
        crate::config::from_yaml_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn token_mode_refuses_no_token_a_wrong_one_and_the_push_token() {
        let c = config("{enabled: true, auth: {mode: token, token: {env: C}}}");
        let auth = ConsoleAuth::new(&c, Some(Secret::new("console-secret")), "0.0.0.0:8080".parse().unwrap()).unwrap();
        assert!(auth.check(&headers(Some("Bearer console-secret"))).await.is_ok());
        let refused = |r: Result<(), Refusal>| r.unwrap_err().to_string();
        assert_eq!(refused(auth.check(&headers(None)).await), "no Authorization header; expected a bearer token");
        assert_eq!(
            refused(auth.check(&headers(Some("Bearer console-secreT"))).await),
            "bearer token is not console.auth.token"
        );
        assert_eq!(
            refused(auth.check(&headers(Some("Bearer push-secret"))).await),
            "bearer token is not console.auth.token"
        );
        assert_eq!(refused(auth.check(&headers(Some("Basic x"))).await), "Authorization is not a Bearer token");
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, "a=b; sluice_console=console-secret".parse().unwrap());
        assert!(auth.check(&h).await.is_ok(), "the login cookie");
        h.insert(axum::http::header::COOKIE, "sluice_console=push-secret".parse().unwrap());
        assert!(auth.check(&h).await.is_err());
    }

    #[test]
    fn open_only_on_loopback() {
        let c = config("enabled: true");
        assert!(matches!(ConsoleAuth::new(&c, None, "127.0.0.1:1".parse().unwrap()), Ok(ConsoleAuth::Open)));
        let e = ConsoleAuth::new(&c, None, "0.0.0.0:1".parse().unwrap()).err().unwrap();
        assert!(e.to_string().starts_with("console.auth: the console is enabled and sluice listens on 0.0.0.0:1"));
    }
}
