//! Push authentication through the real binary: Google-style OIDC tokens signed with the test keys
//! in `tests/fixtures/push-auth/` (test only), checked against a local JWKS file.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sluice::source::push::envelope;

const AUDIENCE: &str = "https://sluice.example.run.app/push";
const PUSHER: &str = "pusher@sluice-test.iam.gserviceaccount.com";

fn fixture(name: &str) -> String {
    common::repo().join("tests/fixtures/push-auth").join(name).to_str().unwrap().to_owned()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The claims Google puts in a push token, valid for an hour.
fn google_claims() -> Value {
    json!({
        "iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234567890",
        "email": PUSHER, "email_verified": true, "sub": "1234567890",
        "iat": now() - 10, "exp": now() + 3600,
    })
}

fn sign_with(claims: &Value, key_file: &str, alg: Algorithm) -> String {
    let mut header = Header::new(alg);
    header.kid = Some("test-key-1".into());
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(&pem),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    encode(&header, claims, &key).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with(claims, "signing.key.pem", Algorithm::RS256)
}

fn with(change: &[(&str, Value)]) -> Value {
    let mut c = google_claims();
    for (k, v) in change {
        c[*k] = v.clone();
    }
    c
}

fn without(claim: &str) -> Value {
    let mut c = google_claims();
    c.as_object_mut().unwrap().remove(claim);
    c
}

fn start(lake: &Path, keys: &str) -> common::Sluice {
    common::Sluice::start_with(
        lake,
        &[
            ("SLUICE_PUSH_AUTH", "oidc".into()),
            ("SLUICE_PUSH_AUDIENCE", AUDIENCE.into()),
            ("SLUICE_PUSH_SERVICE_ACCOUNT", PUSHER.into()),
            ("SLUICE_PUSH_KEYS", fixture(keys)),
            ("SLUICE_BATCH_MAX_AGE", "100ms".into()),
            ("SLUICE_BATCH_MAX_IDLE", "50ms".into()),
        ],
    )
}

fn log_of(s: &common::Sluice) -> String {
    let port = s.url.rsplit(':').next().unwrap();
    std::fs::read_to_string(std::env::temp_dir().join(format!("sluice-{port}.log"))).unwrap()
}

fn body(id: &str) -> String {
    let data = json!({"timestamp": "2026-11-26T09:00:00Z", "service": "s", "severity": "INFO", "message": "m"});
    envelope(data.to_string().as_bytes(), id, &Default::default(), "sub").to_string()
}

async fn push(url: &str, authorization: Option<&str>, id: &str) -> (u16, String) {
    let mut req = reqwest::Client::new().post(format!("{url}/push/logs")).body(body(id));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_google_token_for_the_configured_account_and_audience_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = start(dir.path(), "signing.jwks.json");
    let forged = sign_with(&google_claims(), "forged.key.pem", Algorithm::RS256);
    let hmac = sign_with(&google_claims(), "signing.pub.pem", Algorithm::HS256);
    let valid = sign(&google_claims());
    let other_kid = {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rotated-away".into());
        encode(
            &h,
            &google_claims(),
            &EncodingKey::from_rsa_pem(&std::fs::read(fixture("signing.key.pem")).unwrap()).unwrap(),
        )
        .unwrap()
    };
    // (case, Authorization header, status, reason in the answer and the log)
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing", None, 401, "no Authorization header"),
        ("not bearer", Some("Basic dXNlcjpwYXNz".into()), 401, "Authorization is not a Bearer token"),
        ("malformed", Some("Bearer not.a.jwt".into()), 401, "token is malformed"),
        ("garbage", Some("Bearer a.b.c.d".into()), 401, "token is malformed"),
        ("forged", Some(format!("Bearer {forged}")), 401, "signature does not verify"),
        ("hmac with the public key", Some(format!("Bearer {hmac}")), 401, "signed with HS256, expected RS256"),
        ("unknown key id", Some(format!("Bearer {other_kid}")), 401, "unknown key 'rotated-away'"),
        ("expired", Some(format!("Bearer {}", sign(&with(&[("exp", json!(now() - 120))])))), 401, "expired"),
        (
            "wrong audience",
            Some(format!("Bearer {}", sign(&with(&[("aud", json!("https://elsewhere"))])))),
            401,
            "audience is not push_auth.audience",
        ),
        (
            "wrong issuer",
            Some(format!("Bearer {}", sign(&with(&[("iss", json!("https://evil.example"))])))),
            401,
            "not issued by accounts.google.com",
        ),
        ("no exp", Some(format!("Bearer {}", sign(&without("exp")))), 401, "no `exp` claim"),
        (
            "wrong email",
            Some(format!("Bearer {}", sign(&with(&[("email", json!("intruder@x.iam.gserviceaccount.com"))])))),
            403,
            "token is for 'intruder@x.iam.gserviceaccount.com'",
        ),
        (
            "unverified email",
            Some(format!("Bearer {}", sign(&with(&[("email_verified", json!(false))])))),
            403,
            "is not verified",
        ),
        ("no email", Some(format!("Bearer {}", sign(&without("email")))), 403, "token is for ''"),
    ];
    let mut secrets = Vec::new();
    for (i, (case, auth, status, reason)) in cases.iter().enumerate() {
        let (got, text) = push(&sluice.url, auth.as_deref(), &format!("refused-{i}")).await;
        assert_eq!(got, *status, "{case}: {text}");
        assert!(text.contains(reason), "{case}: {text}");
        if let Some(a) = auth {
            secrets.push(a.trim_start_matches("Bearer ").to_owned());
        }
    }
    // The valid token, also as Google sends it, and with the bare issuer form.
    for (i, token) in [valid.clone(), sign(&with(&[("iss", json!("accounts.google.com"))]))].iter().enumerate() {
        let (status, text) = push(&sluice.url, Some(&format!("Bearer {token}")), &format!("ok-{i}")).await;
        assert_eq!(status, 200, "{text}");
        secrets.push(token.clone());
    }
    let log = log_of(&sluice);
    assert!(sluice.stop().success());
    let rows = common::read_rows(&dir.path().join("logs"));
    let mut ids: Vec<&str> = rows.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["ok-0", "ok-1"], "only authenticated pushes reach the lake");

    assert_eq!(log.matches("refused push request").count(), cases.len(), "{log}");
    for (case, _, _, reason) in &cases {
        assert!(log.contains(reason), "log says why for {case}");
    }
    for token in secrets.iter().filter(|t| t.len() > 20) {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token leaked into the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pem_key_file_works_and_unauthenticated_mode_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = start(dir.path(), "signing.pub.pem");
    let (status, text) = push(&sluice.url, Some(&format!("Bearer {}", sign(&google_claims()))), "pem-1").await;
    assert_eq!(status, 200, "{text}");
    let (status, _) = push(&sluice.url, None, "pem-2").await;
    assert_eq!(status, 401);
    assert!(!log_of(&sluice).contains("accepts unauthenticated requests"));
    assert!(sluice.stop().success());

    let open = common::Sluice::start(dir.path(), &[]);
    assert!(log_of(&open).contains("push_auth.mode is none: POST /push accepts unauthenticated requests"));
    let (status, text) = push(&open.url, None, "open-1").await;
    assert_eq!(status, 200, "the shipped default takes unauthenticated pushes: {text}");
    assert!(open.stop().success());
}

#[test]
fn a_bad_key_file_stops_the_start_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::repo())
        .args(["run", "--config", "config/sluice.yaml"])
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_PUSH_AUTH", "oidc")
        .env("SLUICE_PUSH_AUDIENCE", AUDIENCE)
        .env("SLUICE_PUSH_SERVICE_ACCOUNT", PUSHER)
        .env("SLUICE_PUSH_KEYS", fixture("README.md"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("push_auth.keys: key file")
            && err.contains("is neither a JWKS nor an RSA or EC public key in PEM"),
        "{err}"
    );
}
