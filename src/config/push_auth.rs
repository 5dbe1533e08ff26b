//! `push_auth` in `config/sluice.yaml`: who may call `POST /push/{pipeline}`.
//!
//! Cloud Run push subscriptions sign each request with a Google OIDC token for a service account;
//! `mode: oidc` checks it (see `source::push::auth`). `mode: token` checks a shared bearer token
//! (a `SecretSetting`) for producers that post directly rather than through Pub/Sub. `mode: none`
//! accepts anyone and is meant for local use only: `sluice run` logs a warning when it is set.

use serde::Deserialize;

use crate::secret::SecretSetting;

/// Google's published signing keys for OIDC tokens (a JWKS).
pub const GOOGLE_CERTS: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The keys Identity-Aware Proxy signs its assertions with (ES256).
pub const IAP_KEYS: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";

/// `push_auth`, and `console.auth` (whose `mode` also takes `iap`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig<M> {
    pub mode: M,
    /// The `aud` claim the push subscription puts in its tokens (its audience setting, by
    /// default the push endpoint URL).
    pub audience: Option<String>,
    /// Email of the service account the push subscription signs tokens as.
    pub service_account: Option<String>,
    /// Where the signing keys come from: an `https://` JWKS URL (fetched and cached), or a local
    /// JWKS or PEM public-key file (tests, offline use); empty: Google's keys for the mode.
    pub keys: Option<String>,
    /// `mode: token`: the bearer token every push must carry (`{env: VAR}`, `{secret: NAME}`).
    pub token: Option<SecretSetting>,
}

pub type PushAuthConfig = AuthConfig<PushAuthMode>;
pub type ConsoleAuthConfig = AuthConfig<ConsoleAuthMode>;

/// What a gate checks, whichever setting it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone may pass: local development only.
    None,
    /// Every request carries a Google-signed OIDC token for `service_account` and `audience`.
    Oidc,
    /// Every request carries `Authorization: Bearer <token>`, the shared secret `token`.
    Token,
    /// Every request came through Identity-Aware Proxy, which signs `x-goog-iap-jwt-assertion`
    /// for `audience` (ES256).
    Iap,
}

/// The modes `push_auth` takes: Pub/Sub push requests do not pass through IAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAuthMode {
    None,
    Oidc,
    Token,
}

/// The modes `console.auth` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleAuthMode {
    None,
    Oidc,
    Token,
    Iap,
}

impl From<PushAuthMode> for AuthMode {
    fn from(m: PushAuthMode) -> AuthMode {
        match m {
            PushAuthMode::None => AuthMode::None,
            PushAuthMode::Oidc => AuthMode::Oidc,
            PushAuthMode::Token => AuthMode::Token,
        }
    }
}

impl From<ConsoleAuthMode> for AuthMode {
    fn from(m: ConsoleAuthMode) -> AuthMode {
        match m {
            ConsoleAuthMode::None => AuthMode::None,
            ConsoleAuthMode::Oidc => AuthMode::Oidc,
            ConsoleAuthMode::Token => AuthMode::Token,
            ConsoleAuthMode::Iap => AuthMode::Iap,
        }
    }
}

impl<M: Copy + Into<AuthMode>> AuthConfig<M> {
    pub fn mode(&self) -> AuthMode {
        self.mode.into()
    }

    /// The key set in force: `keys`, or Google's for the mode when it is empty.
    pub fn key_source(&self) -> &str {
        match self.keys.as_deref().unwrap_or_default().trim() {
            "" if self.mode() == AuthMode::Iap => IAP_KEYS,
            "" => GOOGLE_CERTS,
            keys => keys,
        }
    }

    /// Problems as (field under `push_auth`, message).
    pub fn check(&self, report: &mut impl FnMut(&str, String)) {
        match self.mode() {
            AuthMode::None => return,
            AuthMode::Token => {
                if self.token.is_none() {
                    report(
                        "push_auth.token",
                        "expected the shared token, e.g. {env: SLUICE_PUSH_TOKEN} (mode is token)".into(),
                    );
                }
                return;
            }
            AuthMode::Oidc | AuthMode::Iap => {}
        }
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        let iap = self.mode() == AuthMode::Iap;
        if blank(&self.audience) {
            let expected = match iap {
                true => {
                    "expected IAP's audience, /projects/NUMBER/global/backendServices/ID (a load balancer) or \
                     /projects/NUMBER/locations/REGION/services/NAME (Cloud Run) (mode is iap)"
                }
                false => "expected the push subscription's audience (mode is oidc)",
            };
            report("push_auth.audience", expected.into());
        }
        match self.service_account.as_deref().map(str::trim) {
            Some(sa) if iap && !sa.is_empty() => report(
                "push_auth.service_account",
                format!("'{sa}' is not used with mode iap: IAP's access policy decides who passes"),
            ),
            _ if iap => {}
            Some(sa) if sa.contains('@') => {}
            Some(sa) if !sa.is_empty() => {
                report("push_auth.service_account", format!("expected a service account email, found '{sa}'"))
            }
            _ => report("push_auth.service_account", "expected the push service account's email (mode is oidc)".into()),
        }
        let keys = self.key_source();
        if keys.starts_with("http://") && !is_loopback_url(keys) {
            report("push_auth.keys", "expected https:// for a remote key set (http:// only on loopback)".into());
        }
    }
}

/// `http://127.0.0.1:…` / `http://localhost:…`: a key server started by a test.
fn is_loopback_url(u: &str) -> bool {
    url::Url::parse(u).ok().and_then(|u| u.host_str().map(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]"))
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let c: ConsoleAuthConfig = crate::config::from_yaml_str(yaml).unwrap();
        let mut out = Vec::new();
        c.check(&mut |f, m| out.push(format!("{f}: {m}")));
        out
    }

    #[test]
    fn oidc_needs_an_audience_and_a_service_account() {
        assert!(problems("mode: none").is_empty());
        assert_eq!(
            problems("mode: oidc"),
            [
                "push_auth.audience: expected the push subscription's audience (mode is oidc)",
                "push_auth.service_account: expected the push service account's email (mode is oidc)"
            ]
        );
        assert_eq!(
            problems("{mode: oidc, audience: a, service_account: pusher, keys: 'http://keys.example.com/'}"),
            [
                "push_auth.service_account: expected a service account email, found 'pusher'",
                "push_auth.keys: expected https:// for a remote key set (http:// only on loopback)"
            ]
        );
        assert!(problems("{mode: oidc, audience: a, service_account: p@x.iam.gserviceaccount.com}").is_empty());
        assert!(problems("{mode: oidc, audience: a, service_account: p@x, keys: 'http://127.0.0.1:9/k'}").is_empty());
    }

    #[test]
    fn iap_needs_its_audience_and_takes_iap_keys_by_default() {
        let found = problems("mode: iap");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("push_auth.audience: expected IAP's audience, /projects/NUMBER/"), "{found:?}");
        assert_eq!(
            problems("{mode: iap, audience: /projects/1/global/backendServices/2, service_account: a@b}"),
            ["push_auth.service_account: 'a@b' is not used with mode iap: IAP's access policy decides who passes"]
        );
        let c: ConsoleAuthConfig = crate::config::from_yaml_str("{mode: iap, audience: a}").unwrap();
        assert_eq!(c.key_source(), IAP_KEYS);
        let c: PushAuthConfig = crate::config::from_yaml_str("{mode: oidc, audience: a, keys: ' '}").unwrap();
        assert_eq!(c.key_source(), GOOGLE_CERTS);
    }
}
