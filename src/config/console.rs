//! `console` in `config/sluice.yaml`: the web console at `/` and `/ui/...` (see `crate::console`).
//!
//! It shows configuration values and payloads, so it is off unless enabled, and anywhere but
//! loopback it requires authentication: `console.auth` takes the same shape as `push_auth`
//! (`mode: token` with a secret setting, or `mode: oidc` for Google identity tokens as a bearer),
//! plus `mode: iap` for Identity-Aware Proxy's signed assertion,
//! and sluice refuses to start without it. Its credentials must differ from the push ones,
//! so a push token never opens the console.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::push_auth::{AuthMode, ConsoleAuthConfig, PushAuthConfig};

/// `console.enabled`: `true`, `false`, or `local` (on only when `http.listen` is loopback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enabled {
    #[default]
    Off,
    /// On for a loopback `http.listen`, off elsewhere: the shipped default, safe in a container.
    Local,
    On,
}

impl<'de> Deserialize<'de> for Enabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d) {
            Ok(Raw::Bool(true)) => Ok(Enabled::On),
            Ok(Raw::Bool(false)) => Ok(Enabled::Off),
            Ok(Raw::Text(t)) if t == "local" => Ok(Enabled::Local),
            Ok(Raw::Text(t)) if t == "true" => Ok(Enabled::On),
            Ok(Raw::Text(t)) if t == "false" => Ok(Enabled::Off),
            _ => Err(serde::de::Error::custom("expected true, false or local")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Off by default: the console shows configuration values and payloads.
    #[serde(default)]
    pub enabled: Enabled,
    /// Who may open it; required unless `http.listen` is loopback. Same fields as `push_auth`.
    pub auth: Option<ConsoleAuthConfig>,
}

impl ConsoleConfig {
    /// Whether the console is served on `listen`.
    pub fn active(&self, listen: SocketAddr) -> bool {
        match self.enabled {
            Enabled::Off => false,
            Enabled::Local => listen.ip().is_loopback(),
            Enabled::On => true,
        }
    }

    /// The authentication in force: `None` for `mode: none` or no `auth`.
    pub fn auth_required(&self) -> Option<&ConsoleAuthConfig> {
        self.auth.as_ref().filter(|a| a.mode() != AuthMode::None)
    }

    /// Problems as (field, message), given where sluice listens and the push authentication.
    pub fn check(&self, listen: SocketAddr, push: Option<&PushAuthConfig>, report: &mut impl FnMut(&str, String)) {
        if let Some(a) = &self.auth {
            a.check(&mut |field: &str, m: String| {
                let field = field.replacen("push_auth", "console.auth", 1);
                report(&field, m.replace("SLUICE_PUSH_TOKEN", "SLUICE_CONSOLE_TOKEN"))
            });
        }
        if self.active(listen) && !listen.ip().is_loopback() && self.auth_required().is_none() {
            report(
                "console.auth",
                format!(
                    "the console is enabled and http.listen is {listen}, not loopback: expected `console.auth` \
                     with `mode: token` (token: {{env: SLUICE_CONSOLE_TOKEN}}), `mode: oidc` or `mode: iap`; \
                     it shows configuration values and payloads"
                ),
            );
        }
        let (Some(mine), Some(push)) = (self.auth_required(), push) else { return };
        if mine.mode() == AuthMode::Token && push.mode() == AuthMode::Token && mine.token == push.token {
            report(
                "console.auth.token",
                "is the same setting as push_auth.token: a push token must not open the console; \
                 expected a secret of its own"
                    .into(),
            );
        }
        if mine.mode() == AuthMode::Oidc && push.mode() == AuthMode::Oidc && mine.audience == push.audience {
            report(
                "console.auth.audience",
                "is push_auth.audience: a push subscription's token would open the console; expected an audience \
                 of its own"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str, listen: &str, push: Option<&str>) -> Vec<String> {
        let c: ConsoleConfig = crate::config::from_yaml_str(yaml).unwrap();
        let push: Option<PushAuthConfig> = push.map(|p| crate::config::from_yaml_str(p).unwrap());
        let mut out = Vec::new();
        c.check(listen.parse().unwrap(), push.as_ref(), &mut |f, m| out.push(format!("{f}: {m}")));
        out
    }

    #[test]
    fn enabled_reads_true_false_and_local() {
        let listen = |s: &str| s.parse::<SocketAddr>().unwrap();
        let c = |y: &str| crate::config::from_yaml_str::<ConsoleConfig>(y).unwrap();
        assert!(!c("{}").active(listen("127.0.0.1:8080")));
        assert!(c("enabled: local").active(listen("127.0.0.1:8080")));
        assert!(!c("enabled: local").active(listen("0.0.0.0:8080")));
        assert!(c("enabled: 'true'").active(listen("0.0.0.0:8080")));
        assert!(!c("enabled: false").active(listen("[::1]:8080")));
        let e = crate::config::from_yaml_str::<ConsoleConfig>("enabled: yes please").unwrap_err();
        assert_eq!(e, ("enabled".into(), "expected true, false or local".into()));
    }

    #[test]
    fn non_loopback_needs_auth_loopback_does_not() {
        assert!(problems("enabled: true", "127.0.0.1:8080", None).is_empty());
        assert!(problems("enabled: local", "0.0.0.0:8080", None).is_empty(), "local is off on 0.0.0.0");
        let refused = problems("{enabled: true, auth: {mode: none}}", "0.0.0.0:8080", None);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].starts_with("console.auth: the console is enabled and http.listen is 0.0.0.0:8080"));
        assert!(problems("{enabled: true, auth: {mode: token, token: {env: C}}}", "0.0.0.0:8080", None).is_empty());
        assert_eq!(
            problems("{enabled: true, auth: {mode: token}}", "0.0.0.0:8080", None),
            ["console.auth.token: expected the shared token, e.g. {env: SLUICE_CONSOLE_TOKEN} (mode is token)"]
        );
    }

    #[test]
    fn push_credentials_cannot_open_the_console() {
        let push = "{mode: token, token: {env: P}}";
        let same = problems("{enabled: true, auth: {mode: token, token: {env: P}}}", "0.0.0.0:1", Some(push));
        assert_eq!(same.len(), 1);
        assert!(same[0].starts_with("console.auth.token: is the same setting as push_auth.token"));
        assert!(problems("{enabled: true, auth: {mode: token, token: {env: C}}}", "0.0.0.0:1", Some(push)).is_empty());
        let oidc = "{mode: oidc, audience: a, service_account: p@x.iam.gserviceaccount.com}";
        let console = "{enabled: true, auth: {mode: oidc, audience: a, service_account: me@x.com}}";
        let same = problems(console, "0.0.0.0:1", Some(oidc));
        assert_eq!(same.len(), 1);
        assert!(same[0].starts_with("console.auth.audience: is push_auth.audience"));
    }
}
