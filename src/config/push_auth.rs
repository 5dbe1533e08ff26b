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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushAuthConfig {
    pub mode: PushAuthMode,
    /// The `aud` claim the push subscription puts in its tokens (its audience setting, by
    /// default the push endpoint URL).
    pub audience: Option<String>,
    /// Email of the service account the push subscription signs tokens as.
    pub service_account: Option<String>,
    /// Where the signing keys come from: an `https://` JWKS URL (fetched and cached), or a local
    /// JWKS or PEM public-key file (tests, offline use).
    #[serde(default = "google_certs")]
    pub keys: String,
    /// `mode: token`: the bearer token every push must carry (`{env: VAR}`, `{secret: NAME}`).
    pub token: Option<SecretSetting>,
}

fn google_certs() -> String {
    GOOGLE_CERTS.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAuthMode {
    /// Anyone may push: local development only.
    None,
    /// Every push carries a Google-signed OIDC token for `service_account` and `audience`.
    Oidc,
    /// Every push carries `Authorization: Bearer <token>`, the shared secret `token`.
    Token,
}

impl PushAuthConfig {
    /// Problems as (field under `push_auth`, message).
    pub fn check(&self, report: &mut impl FnMut(&str, String)) {
        match self.mode {
            PushAuthMode::None => return,
            PushAuthMode::Token => {
                if self.token.is_none() {
                    report(
                        "push_auth.token",
                        "expected the shared token, e.g. {env: SLUICE_PUSH_TOKEN} (mode is token)".into(),
                    );
                }
                return;
            }
            PushAuthMode::Oidc => {}
        }
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.audience) {
            report("push_auth.audience", "expected the push subscription's audience (mode is oidc)".into());
        }
        match self.service_account.as_deref().map(str::trim) {
            Some(sa) if sa.contains('@') => {}
            Some(sa) if !sa.is_empty() => {
                report("push_auth.service_account", format!("expected a service account email, found '{sa}'"))
            }
            _ => report("push_auth.service_account", "expected the push service account's email (mode is oidc)".into()),
        }
        if self.keys.trim().is_empty() {
            report("push_auth.keys", format!("expected a JWKS URL (e.g. {GOOGLE_CERTS}) or a key file"));
        } else if self.keys.starts_with("http://") && !is_loopback_url(&self.keys) {
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
        let c: PushAuthConfig = crate::config::from_yaml_str(yaml).unwrap();
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
}
