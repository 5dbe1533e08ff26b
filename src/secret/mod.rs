//! Secret-bearing config values: where they come from, and a type that never prints them.
//!
//! A secret setting is written in three ways: a plain string (usually `${VAR}` from the
//! environment), `{env: NAME}` (read at start, never through the YAML text), or
//! `{secret: NAME}`, which names `config/secrets/NAME.yaml` holding a Secret Manager reference
//! (`secret: projects/P/secrets/S/versions/V`). The repository keeps references only.
//! `sluice validate` checks that references are well formed without fetching them; `sluice run`
//! resolves them at start ([`manager`]). A resolved value lives in a [`Secret`], whose Debug,
//! Display and Serialize print `***`, so it cannot reach a log line, an error or `/status`.

pub(crate) mod manager;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value. Only [`Secret::expose`] gives it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it (never for printing).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compare with `other` in time independent of where they differ (a timing oracle would let a
    /// caller guess the value byte by byte).
    pub fn matches(&self, other: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let mut diff = mine.len() ^ other.len();
        for (i, b) in other.iter().enumerate() {
            diff |= usize::from(mine.get(i).copied().unwrap_or(0) ^ b);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A secret as written in config.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSetting {
    /// The value itself (from `${VAR}` interpolation, or written inline for local use).
    Value(Secret),
    /// `{env: NAME}`: the environment variable NAME, read at start.
    Env(String),
    /// `{secret: NAME}`: the Secret Manager reference in `<secrets dir>/NAME.yaml`.
    Reference(String),
}

impl<'de> Deserialize<'de> for SecretSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Value(String),
            Map(std::collections::BTreeMap<String, String>),
        }
        let expected = "expected a value, {env: VARIABLE} or {secret: NAME} (config/secrets/NAME.yaml)";
        // The value is never echoed: serde's own messages would quote it.
        let raw = Raw::deserialize(d).map_err(|_| serde::de::Error::custom(expected))?;
        match raw {
            Raw::Value(v) => Ok(SecretSetting::Value(Secret(v))),
            Raw::Map(m) if m.len() == 1 => match m.into_iter().next() {
                Some((k, v)) if k == "env" => Ok(SecretSetting::Env(v)),
                Some((k, v)) if k == "secret" => Ok(SecretSetting::Reference(v)),
                _ => Err(serde::de::Error::custom(expected)),
            },
            Raw::Map(_) => Err(serde::de::Error::custom(expected)),
        }
    }
}

/// Why a secret could not be had; never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or empty")]
    EnvMissing(String),
    #[error("{}: {message}", file.display())]
    ReferenceFile { file: PathBuf, message: String },
    #[error("Secret Manager {name}: {message}")]
    Fetch { name: String, message: String },
    /// Retrying cannot help: credentials are missing.
    #[error(transparent)]
    Auth(#[from] crate::gcp::AuthError),
}

/// `config/secrets/NAME.yaml`: a reference, never a value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    /// `projects/P/secrets/S/versions/V` (V a number or `latest`).
    secret: String,
}

/// Whether `name` is a Secret Manager version name: `projects/P/secrets/S/versions/V`.
pub(crate) fn valid_version_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    matches!(parts.as_slice(), ["projects", p, "secrets", s, "versions", v]
        if word(p) && word(s) && s.len() <= 255 && (*v == "latest" || (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))))
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SecretSetting {
    /// Check the setting without fetching anything: a valid variable name, or a reference file
    /// that exists and holds a well-formed version name. `report` gets the problem's message.
    pub fn check(&self, secrets_dir: &Path, report: &mut impl FnMut(String)) {
        match self {
            SecretSetting::Value(_) => {}
            SecretSetting::Env(name) if !valid_env_name(name) => {
                report(format!("'{name}' is not an environment variable name (letters, digits, '_')"))
            }
            SecretSetting::Env(_) => {}
            SecretSetting::Reference(name) => {
                if let Err(e) = reference(secrets_dir, name, |_| None) {
                    report(e.to_string());
                }
            }
        }
    }

    /// The value: from the config, the environment, or Secret Manager (`endpoint` overrides
    /// secretmanager.googleapis.com, e.g. a test server, reached anonymously).
    pub async fn resolve(
        &self,
        secrets_dir: &Path,
        endpoint: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secret, SecretError> {
        match self {
            SecretSetting::Value(s) => Ok(s.clone()),
            SecretSetting::Env(name) => {
                env(name).filter(|v| !v.is_empty()).map(Secret).ok_or_else(|| SecretError::EnvMissing(name.clone()))
            }
            SecretSetting::Reference(name) => {
                let version = reference(secrets_dir, name, env)?;
                manager::access(endpoint, &version).await
            }
        }
    }
}

/// Read `<dir>/<name>.yaml` and return its checked version name (`${VAR}` interpolated).
fn reference(dir: &Path, name: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, SecretError> {
    let file = dir.join(format!("{name}.yaml"));
    let fail = |message: String| SecretError::ReferenceFile { file: file.clone(), message };
    if !valid_env_name(&name.replace('-', "_")) {
        return Err(fail(format!("'{name}' is not a secret file name (letters, digits, '-', '_')")));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| fail(format!("cannot read: {e}")))?;
    // Unset variables stay as written: validate must not need the deployment's environment.
    let text =
        crate::interpolate::interpolate(&text, |k| env(k).or_else(|| Some(format!("${{{k}}}")))).map_err(fail)?;
    let r: ReferenceFile =
        crate::json::from_yaml_str(&text).map_err(|(f, m)| fail(if f.is_empty() { m } else { format!("{f}: {m}") }))?;
    let version = r.secret.trim().to_owned();
    if version.contains("${") {
        return Ok(version);
    }
    if !valid_version_name(&version) {
        return Err(fail(format!(
            "secret: expected projects/PROJECT/secrets/NAME/versions/(NUMBER|latest), found '{version}'"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", SecretSetting::Value(s.clone())), "*** *** Value(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter") && !s.matches(b"hunter22") && !s.matches(b"Hunter2"));
    }

    #[test]
    fn settings_are_written_three_ways() {
        let read = |y: &str| crate::json::from_yaml_str::<SecretSetting>(y);
        assert_eq!(read("abc").unwrap(), SecretSetting::Value(Secret::new("abc")));
        assert_eq!(read("{env: TOKEN}").unwrap(), SecretSetting::Env("TOKEN".into()));
        assert_eq!(read("{secret: push-token}").unwrap(), SecretSetting::Reference("push-token".into()));
        let e = read("{vault: x}").unwrap_err().1;
        assert_eq!(e, "expected a value, {env: VARIABLE} or {secret: NAME} (config/secrets/NAME.yaml)");
    }

    #[test]
    fn version_names() {
        assert!(valid_version_name("projects/p-1/secrets/push_token/versions/latest"));
        assert!(valid_version_name("projects/p/secrets/s/versions/12"));
        for bad in ["projects/p/secrets/s", "projects//secrets/s/versions/1", "projects/p/secrets/s/versions/x", "s"] {
            assert!(!valid_version_name(bad), "{bad}");
        }
    }

    #[test]
    fn references_are_checked_without_fetching() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.yaml"), "secret: projects/${PROJECT}/secrets/t/versions/latest\n").unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "secret: t/versions/latest\n").unwrap();
        std::fs::write(dir.path().join("value.yaml"), "value: hunter2\n").unwrap();
        let problems = |s: SecretSetting| {
            let mut out = Vec::new();
            s.check(dir.path(), &mut |m| out.push(m));
            out
        };
        assert!(problems(SecretSetting::Reference("ok".into())).is_empty());
        let bad = problems(SecretSetting::Reference("bad".into()));
        assert!(bad[0].ends_with("bad.yaml: secret: expected projects/PROJECT/secrets/NAME/versions/(NUMBER|latest), found 't/versions/latest'"), "{bad:?}");
        let missing = problems(SecretSetting::Reference("gone".into()));
        assert!(missing[0].contains("gone.yaml: cannot read"), "{missing:?}");
        let value = problems(SecretSetting::Reference("value".into()));
        assert!(value[0].contains("unknown field `value`") && !value[0].contains("hunter2"), "{value:?}");
        assert_eq!(
            problems(SecretSetting::Env("A B".into())),
            ["'A B' is not an environment variable name (letters, digits, '_')"]
        );
    }
}
