//! Who may push: the Google-signed OIDC token on each `POST /push/{pipeline}`.
//!
//! A Cloud Run push subscription sends `Authorization: Bearer <JWT>` signed by Google (RS256) for
//! its service account. The token is accepted only if its signature verifies against Google's keys
//! ([`jwks`](super::jwks)), it was issued by Google for the configured audience, it has not
//! expired (30 s leeway for clock skew), and it names the configured service account with a
//! verified email. With `mode: token` the bearer token must equal the configured shared secret
//! (compared in constant time). The same checks serve the console, which may also take
//! Identity-Aware Proxy's ES256 assertion (`mode: iap`). Refusals say why, and never contain the
//! token.

use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::jwks::{KeySource, KeysError};
use crate::config::push_auth::{AuthConfig, AuthMode, PushAuthConfig};

/// Issuers Google puts in its ID tokens.
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// The issuer of Identity-Aware Proxy's assertions, and the header they come in.
const IAP_ISSUER: &str = "https://cloud.google.com/iap";
const IAP_HEADER: &str = "x-goog-iap-jwt-assertion";
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// Why a push was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    /// 401: no token, or one that is not a valid Google token for this audience.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a valid token for someone other than the configured service account.
    #[error("{0}")]
    Forbidden(String),
    /// 503: the signing keys could not be fetched; Pub/Sub retries.
    #[error("{0}")]
    KeysUnavailable(String),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The push endpoint's gate.
pub enum PushAuth {
    /// `mode: none`: every push is let in.
    Open,
    Oidc(Box<Verifier>),
    /// `mode: token`: the shared bearer token, resolved at start.
    Token(crate::secret::Secret),
}

pub struct Verifier {
    keys: KeySource,
    validation: Validation,
    /// `mode: iap`: the token is IAP's header (ES256), and any identity IAP let through passes.
    iap: bool,
    service_account: String,
}

/// The claims sluice reads; `exp`, `iss` and `aud` are checked by [`Validation`].
#[derive(Deserialize)]
struct Claims {
    email: Option<String>,
    #[serde(default)]
    email_verified: EmailVerified,
}

/// Google writes `email_verified` as a boolean; some issuers as the string "true".
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum EmailVerified {
    Bool(bool),
    Text(String),
    #[default]
    Absent,
}

impl PushAuth {
    /// Build from the checked config; a local key file is read now, so a bad one stops the start.
    /// `token` is `push_auth.token` resolved (required for `mode: token`).
    pub fn from_config(
        config: Option<&PushAuthConfig>,
        token: Option<crate::secret::Secret>,
    ) -> Result<PushAuth, KeysError> {
        if let (Some(AuthMode::Token), Some(token)) = (config.map(|c| c.mode()), token) {
            tracing::info!("push requests must carry the bearer token of push_auth.token");
            return Ok(PushAuth::Token(token));
        }
        let Some(c) = config.filter(|c| c.mode() == AuthMode::Oidc) else {
            tracing::warn!(
                "push_auth.mode is none: POST /push accepts unauthenticated requests; set push_auth.mode: oidc \
                 (SLUICE_PUSH_AUTH=oidc) wherever the endpoint is reachable by others"
            );
            return Ok(PushAuth::Open);
        };
        let verifier = Verifier::from_config(c)?;
        tracing::info!(keys = %c.key_source(), service_account = verifier.service_account, "push requests must carry a Google OIDC token");
        Ok(PushAuth::Oidc(Box::new(verifier)))
    }

    /// Check a request's `Authorization` header.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match self {
            PushAuth::Open => Ok(()),
            PushAuth::Oidc(v) => v.check(headers).await,
            PushAuth::Token(t) => match bearer(headers)? {
                given if t.matches(given.as_bytes()) => Ok(()),
                _ => Err(Refusal::Unauthenticated("bearer token is not push_auth.token".into())),
            },
        }
    }
}

/// The bearer token of the `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let unauthenticated = |m: &str| Refusal::Unauthenticated(m.to_owned());
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("no Authorization header; expected a bearer token"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| unauthenticated("Authorization is not a Bearer token"))
}

impl Verifier {
    /// The checks of `c` (`mode: oidc` or, for the console, `iap`); a local key file is read now.
    /// Also the console's (`console.auth`), which has the same shape.
    pub fn from_config<M: Copy + Into<AuthMode>>(c: &AuthConfig<M>) -> Result<Verifier, KeysError> {
        let iap = c.mode() == AuthMode::Iap;
        let mut validation = Validation::new(algorithm(iap));
        if iap {
            validation.set_issuer(&[IAP_ISSUER]);
        } else {
            validation.set_issuer(&GOOGLE_ISSUERS);
        }
        validation.set_audience(&[c.audience.as_deref().unwrap_or_default().trim()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        let keys = KeySource::from_setting(c.key_source())?;
        let service_account = c.service_account.as_deref().unwrap_or_default().trim().to_owned();
        Ok(Verifier { keys, validation, iap, service_account })
    }

    /// Whether it checks Identity-Aware Proxy's assertions.
    pub fn is_iap(&self) -> bool {
        self.iap
    }

    /// Check a request's `Authorization: Bearer` Google identity token, or with `mode: iap` its
    /// IAP assertion.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let token = match self.iap {
            true => iap_assertion(headers)?,
            false => bearer(headers)?,
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal::Unauthenticated(format!("token is malformed: {}", self.describe(e.kind()))))?;
        if header.alg != algorithm(self.iap) {
            let (got, expected) = (header.alg, algorithm(self.iap));
            return Err(Refusal::Unauthenticated(format!("token is signed with {got:?}, expected {expected:?}")));
        }
        let kid = header.kid.as_deref();
        let key = self.keys.get(kid).await.map_err(|e| Refusal::KeysUnavailable(e.to_string()))?.ok_or_else(|| {
            Refusal::Unauthenticated(format!("token is signed by unknown key '{}'", kid.unwrap_or("(no kid)")))
        })?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| Refusal::Unauthenticated(format!("token refused: {}", self.describe(e.kind()))))?
            .claims;
        if self.iap {
            return Ok(()); // IAP's access policy let this identity through, and signed that it did
        }
        let email = claims.email.unwrap_or_default();
        if email != self.service_account {
            return Err(Refusal::Forbidden(format!(
                "token is for '{email}', not the service account in push_auth.service_account"
            )));
        }
        match claims.email_verified {
            EmailVerified::Bool(true) => Ok(()),
            EmailVerified::Text(t) if t == "true" => Ok(()),
            _ => Err(Refusal::Forbidden(format!("token's email '{email}' is not verified"))),
        }
    }
}

/// The assertion Identity-Aware Proxy adds to every request it lets through.
fn iap_assertion(headers: &HeaderMap) -> Result<&str, Refusal> {
    let value = headers.get(IAP_HEADER).ok_or_else(|| {
        Refusal::Unauthenticated(format!(
            "no {IAP_HEADER} header; expected the request to come through Identity-Aware Proxy"
        ))
    })?;
    value.to_str().map(str::trim).map_err(|_| Refusal::Unauthenticated(format!("{IAP_HEADER} is not ASCII text")))
}

/// The one algorithm accepted: RS256 for Google's identity tokens, ES256 for IAP's assertions.
fn algorithm(iap: bool) -> Algorithm {
    if iap {
        Algorithm::ES256
    } else {
        Algorithm::RS256
    }
}

impl Verifier {
    /// A token error in words; never includes the token.
    fn describe(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::ExpiredSignature => "it has expired".into(),
            ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
            ErrorKind::InvalidSignature => "its signature does not verify against Google's key".into(),
            ErrorKind::InvalidAudience => "its audience is not push_auth.audience".into(),
            ErrorKind::InvalidIssuer if self.iap => format!("it was not issued by {IAP_ISSUER}"),
            ErrorKind::InvalidIssuer => "it was not issued by accounts.google.com".into(),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                format!("its algorithm is not {:?}", algorithm(self.iap))
            }
            ErrorKind::MissingRequiredClaim(c) => format!("it has no `{c}` claim"),
            ErrorKind::InvalidToken => "it is not a JWT (three base64url parts)".into(),
            ErrorKind::Base64(_) => "it is not valid base64url".into(),
            ErrorKind::Json(_) => "its header or claims are not the JSON expected".into(),
            ErrorKind::Utf8(_) => "it is not UTF-8".into(),
            other => format!("{other:?}"),
        }
    }
}
