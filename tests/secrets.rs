//! Secrets stay secret: the real binary runs with a push token from the environment, is driven
//! through accepted, refused and malformed requests, and its log, `/status` and `/metrics` are
//! searched for the value. Secret references are checked by `validate` without being fetched.
//! (The Secret Manager client itself is unit-tested against a local HTTP server in
//! `src/secret/manager.rs`: Secret Manager has no official emulator.)

mod common;

use sluice::source::push::envelope;

const SECRET: &str = "sk-test-7f3a9c2e4b1d8f60a5e7c3b9d2f4a6e8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_token_never_appears_in_logs_status_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let env = [("SLUICE_PUSH_AUTH", "token"), ("SLUICE_PUSH_TOKEN", SECRET), ("RUST_LOG", "debug")];
    let sluice = common::Sluice::start(&lake, &env);
    let http = reqwest::Client::new();
    let url = format!("{}/push/logs", sluice.url);
    let event = |id: &str| {
        let data = br#"{"timestamp": "2026-11-26T09:00:00Z", "service": "s", "severity": "INFO", "message": "m"}"#;
        envelope(data, id, &Default::default(), "sub").to_string()
    };
    let mut answers = Vec::new();
    let cases: [(Option<String>, String, u16); 6] = [
        (Some(format!("Bearer {SECRET}")), event("ok-1"), 200),
        (Some(format!("Bearer {SECRET}x")), event("longer"), 401),
        (Some(format!("Bearer {}", &SECRET[..SECRET.len() - 1])), event("shorter"), 401),
        (Some(format!("Basic {SECRET}")), event("basic"), 401),
        (None, event("none"), 401),
        (Some(format!("Bearer {SECRET}")), r#"{"message": {"data": "%%", "messageId": "bad"}}"#.into(), 400),
    ];
    for (auth, body, status) in cases {
        let mut r = http.post(&url).body(body);
        if let Some(a) = &auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{auth:?}");
        answers.push(r.text().await.unwrap());
    }
    assert!(answers[1].contains("bearer token is not push_auth.token"), "{}", answers[1]);
    let status = http.get(format!("{}/status", sluice.url)).send().await.unwrap().text().await.unwrap();
    let metrics = http.get(format!("{}/metrics", sluice.url)).send().await.unwrap().text().await.unwrap();
    let port = sluice.url.rsplit(':').next().unwrap().to_owned();
    assert!(sluice.stop().success());
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("sluice-{port}.log"))).unwrap();
    assert!(log.contains("refused push request"), "refusals are logged:\n{log}");
    assert!(status.contains("\"logs\"") && metrics.contains("sluice_events_in_total"));
    // Any 12 characters of it would be a leak, not only the whole value.
    for (what, text) in [("log", &log), ("/status", &status), ("/metrics", &metrics), ("answers", &answers.join("\n"))]
    {
        for window in SECRET.as_bytes().windows(12) {
            let part = std::str::from_utf8(window).unwrap();
            assert!(!text.contains(part), "{what} contains part of the secret ({part})");
        }
    }
    assert_eq!(common::lake_ids(&lake, "logs").get("ok-1"), Some(&1));
}

#[test]
fn token_mode_without_the_token_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_command(dir.path(), common::free_port())
        .env("SLUICE_PUSH_AUTH", "token")
        .env_remove("SLUICE_PUSH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("push_auth.token: environment variable SLUICE_PUSH_TOKEN is not set or empty"), "{stderr}");
}

#[test]
fn validate_checks_secret_references_without_fetching() {
    let root = common::shipped_copy();
    std::fs::create_dir_all(root.path().join("config/secrets")).unwrap();
    std::fs::copy(
        common::repo().join("config/secrets/push-token.yaml"),
        root.path().join("config/secrets/push-token.yaml"),
    )
    .unwrap();
    let file = root.path().join("config/sluice.yaml");
    common::edit(root.path(), "config/sluice.yaml", "{env: SLUICE_PUSH_TOKEN}", "{secret: push-token}");
    let env = |k: &str| (k == "SLUICE_PUSH_AUTH").then(|| "token".to_owned());
    // The shipped reference is well formed; nothing is fetched (there is no server).
    sluice::config::load_with_env(&file, env).unwrap();

    common::edit(root.path(), "config/sluice.yaml", "{secret: push-token}", "{secret: api-key}");
    let problems = sluice::config::load_with_env(&file, env).unwrap_err().0;
    assert_eq!((problems[0].file.as_path(), problems[0].field.as_str()), (file.as_path(), "push_auth.token"));
    assert!(problems[0].message.contains("config/secrets/api-key.yaml: cannot read"), "{}", problems[0]);

    std::fs::write(root.path().join("config/secrets/api-key.yaml"), "secret: api-key\n").unwrap();
    let problems = sluice::config::load_with_env(&file, env).unwrap_err().0;
    assert!(
        problems[0]
            .message
            .ends_with("secret: expected projects/PROJECT/secrets/NAME/versions/(NUMBER|latest), found 'api-key'"),
        "{}",
        problems[0]
    );
}
