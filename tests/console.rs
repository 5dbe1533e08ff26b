//! The console's security against a running `sluice run`: who it refuses (no token, a wrong
//! token, the push token; with identity tokens, the push one; behind Identity-Aware Proxy, a
//! request without IAP's signed assertion or with one for another backend), that the push endpoint does not take the console's token, that
//! hostile HTML in a configuration value, an author, a service name and a dead letter's payload
//! is shown as text, that secret-looking keys are masked, and that sluice refuses to start (and
//! `sluice validate` reports) a console reachable off loopback without authentication.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::console::{change, get, iap_assertion, identity_token, push, test_keys, wait_for_page};
use serde_json::json;

const CONSOLE_TOKEN: &str = "console-secret-1";
const PUSH_TOKEN: &str = "push-secret-1";
const PAGES: [&str; 4] = ["/", "/ui/services", "/ui/config", "/ui/dead-letters"];

fn token_env() -> Vec<(&'static str, String)> {
    [
        ("SLUICE_CONSOLE", "true"),
        ("SLUICE_CONSOLE_AUTH", "token"),
        ("SLUICE_CONSOLE_TOKEN", CONSOLE_TOKEN),
        ("SLUICE_PUSH_AUTH", "token"),
        ("SLUICE_PUSH_TOKEN", PUSH_TOKEN),
        ("SLUICE_BATCH_MAX_AGE", "300ms"),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_no_token_a_wrong_token_and_the_push_token() {
    let lake = tempfile::tempdir().unwrap();
    let sluice = common::Sluice::start_with(lake.path(), &token_env());
    let base = &sluice.url;
    for page in PAGES {
        let (status, body) = get(base, page, None).await;
        assert_eq!(status, 401, "{page} without a token: {body}");
        assert!(body.contains("no Authorization header; expected a bearer token"), "{body}");
        let (status, body) = get(base, page, Some("console-secret-2")).await;
        assert_eq!(status, 401, "{page} with a wrong token");
        assert!(body.contains("bearer token is not console.auth.token"), "{body}");
        let (status, _) = get(base, page, Some(PUSH_TOKEN)).await;
        assert_eq!(status, 401, "{page} with the push token");
        let (status, _) = get(base, &format!("{page}?fragment=1"), Some(PUSH_TOKEN)).await;
        assert_eq!(status, 401, "{page}'s live-refresh fragment with the push token");
        let (status, body) = get(base, page, Some(CONSOLE_TOKEN)).await;
        assert_eq!(status, 200, "{page} with the console token: {body}");
    }
    // A browser signs in once; the cookie then opens every page, the push token's never does.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = |token: &str| {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish();
        client
            .post(format!("{base}/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(login(PUSH_TOKEN).await.unwrap().status().as_u16(), 401, "the push token does not sign in");
    let signed_in = login(CONSOLE_TOKEN).await.unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let with = |c: &str| client.get(format!("{base}/ui/services")).header("cookie", c.to_owned()).send();
    assert_eq!(with(cookie.split(';').next().unwrap()).await.unwrap().status().as_u16(), 200);
    assert_eq!(with(&format!("sluice_console={PUSH_TOKEN}")).await.unwrap().status().as_u16(), 401);

    let record = change("billing", "limit", 1, json!(5), "ops").to_string();
    let (status, _) = push(base, "config-changes", "c-0", record.as_bytes(), Some(CONSOLE_TOKEN)).await;
    assert_eq!(status, 401, "the console token does not open the push endpoint");
    let (status, body) = push(base, "config-changes", "c-1", record.as_bytes(), Some(PUSH_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(sluice.stop().success());
}

/// `mode: oidc` on both: a valid push token (the push audience and account) does not open the
/// console, and the console's does not push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_open_only_their_own_gate() {
    let lake = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = [
        ("SLUICE_PUSH_AUTH", "oidc"),
        ("SLUICE_PUSH_AUDIENCE", "push-audience"),
        ("SLUICE_PUSH_SERVICE_ACCOUNT", "pusher@p.iam.gserviceaccount.com"),
        ("SLUICE_CONSOLE", "true"),
        ("SLUICE_CONSOLE_AUTH", "oidc"),
        ("SLUICE_CONSOLE_AUDIENCE", "console-audience"),
        ("SLUICE_CONSOLE_ACCOUNT", "oncall@example.com"),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .chain([("SLUICE_PUSH_KEYS", test_keys()), ("SLUICE_CONSOLE_KEYS", test_keys())])
    .collect();
    let sluice = common::Sluice::start_with(lake.path(), &env);
    let base = &sluice.url;
    let push_token = identity_token("push-audience", "pusher@p.iam.gserviceaccount.com");
    let console_token = identity_token("console-audience", "oncall@example.com");
    let (status, body) = get(base, "/ui/services", Some(&push_token)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("its audience is not console.auth.audience"), "{body}");
    let (status, body) =
        get(base, "/ui/services", Some(&identity_token("console-audience", "someone@example.com"))).await;
    assert_eq!(status, 403, "another account: {body}");
    assert!(body.contains("not the service account in console.auth.service_account"), "{body}");
    assert_eq!(get(base, "/ui/services", Some(&console_token)).await.0, 200);
    let record = change("billing", "limit", 1, json!(5), "ops").to_string();
    assert_eq!(push(base, "config-changes", "o-1", record.as_bytes(), Some(&console_token)).await.0, 401);
    assert_eq!(push(base, "config-changes", "o-2", record.as_bytes(), Some(&push_token)).await.0, 200);
    assert!(sluice.stop().success());
}

/// `mode: iap`: only a request carrying IAP's assertion for this backend opens the console; a
/// bearer identity token, an assertion for another backend, an expired one, or an RS256 token in
/// IAP's header are refused with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_iap_only_its_assertion_for_this_backend_opens_the_console() {
    const AUDIENCE: &str = "/projects/123/global/backendServices/456";
    let lake = tempfile::tempdir().unwrap();
    let keys = common::repo().join("tests/fixtures/push-auth/iap.jwks.json").display().to_string();
    let env: Vec<(&str, String)> = [
        ("SLUICE_CONSOLE", "true"),
        ("SLUICE_CONSOLE_AUTH", "iap"),
        ("SLUICE_CONSOLE_AUDIENCE", AUDIENCE),
        ("SLUICE_CONSOLE_KEYS", &keys),
        ("SLUICE_PUSH_AUTH", "token"),
        ("SLUICE_PUSH_TOKEN", PUSH_TOKEN),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect();
    let sluice = common::Sluice::start_with(lake.path(), &env);
    let base = &sluice.url;
    let with_assertion = |token: String| async move {
        let r = reqwest::Client::new()
            .get(format!("{base}/ui/services"))
            .header("x-goog-iap-jwt-assertion", token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    for page in PAGES {
        let (status, body) = get(base, page, Some(&identity_token(AUDIENCE, "oncall@example.com"))).await;
        assert_eq!(status, 401, "{page} with a bearer token only: {body}");
        assert!(body.contains("no x-goog-iap-jwt-assertion header"), "{body}");
    }
    assert_eq!(with_assertion(iap_assertion(AUDIENCE, 600)).await.0, 200);
    let (status, body) = with_assertion(iap_assertion("/projects/123/global/backendServices/999", 600)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("its audience is not console.auth.audience"), "{body}");
    let (status, body) = with_assertion(iap_assertion(AUDIENCE, -120)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("it has expired"), "{body}");
    let (status, body) = with_assertion(identity_token(AUDIENCE, "oncall@example.com")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signed with RS256, expected ES256"), "{body}");
    assert!(sluice.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_html_is_shown_as_text_and_secret_keys_are_masked() {
    let lake = tempfile::tempdir().unwrap();
    let sluice = common::Sluice::start_with(lake.path(), &token_env());
    let base = &sluice.url;
    let hostile = "<script>alert('x')</script>";
    let changes = [
        change("pricing", "banner", 1, json!(hostile), "<img src=x onerror=alert(1)>"),
        change("pricing", "db.password", 1, json!("hunter2-db"), "ops"),
        change("<b>evil</b>", "mode", 1, json!("fast"), "ops"),
    ];
    for (i, c) in changes.iter().enumerate() {
        let (status, body) =
            push(base, "config-changes", &format!("h-{i}"), c.to_string().as_bytes(), Some(PUSH_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
    }
    let payload = format!("not json {hostile} password=hunter2-payload");
    let (status, body) = push(base, "logs", "bad-1", payload.as_bytes(), Some(PUSH_TOKEN)).await;
    assert_eq!(status, 200, "a dead letter is durable: {body}");

    let t = Some(CONSOLE_TOKEN);
    let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;";
    let pricing = wait_for_page(base, "/ui/config?service=pricing", t, "db.password", 10).await;
    assert!(pricing.contains(escaped), "{pricing}");
    assert!(pricing.contains("&lt;img src=x onerror=alert(1)&gt;"), "the author, escaped: {pricing}");
    assert!(pricing.contains("[REDACTED]") && !pricing.contains("hunter2-db"), "a secret key's value is masked");
    let history = get(base, "/ui/config?service=pricing&key=banner", t).await.1;
    assert!(history.contains(escaped) && !history.contains(hostile), "{history}");
    let services = get(base, "/ui/config", t).await.1;
    assert!(services.contains("&lt;b&gt;evil&lt;/b&gt;") && !services.contains("<b>evil</b>"), "{services}");
    let letters = wait_for_page(base, "/ui/dead-letters", t, "bad-1", 20).await;
    assert!(letters.contains(escaped), "the payload, escaped: {letters}");
    assert!(letters.contains("password=[REDACTED]") && !letters.contains("hunter2-payload"), "{letters}");
    assert!(letters.contains("sluice replay --config config/sluice.yaml -p logs --from "), "{letters}");
    for page in PAGES {
        let body = get(base, page, t).await.1;
        assert!(!body.contains(hostile) && !body.contains("<img src=x"), "{page} shows raw HTML:\n{body}");
    }
    assert!(sluice.stop().success());
}

/// `sluice <args>` with `env`: (exit success, stdout + stderr). Gives up after 60 s.
fn sluice(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::repo())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice {args:?} still running after 60s: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn refuses_to_start_an_open_console_off_loopback_or_one_sharing_the_push_token() {
    let lake = tempfile::tempdir().unwrap();
    let lake_env = ("SLUICE_LAKE", lake.path().display().to_string());
    let port = common::free_port().to_string();
    let open = [lake_env.clone(), ("SLUICE_LISTEN", format!("0.0.0.0:{port}")), ("SLUICE_CONSOLE", "true".into())];
    let field = format!("console.auth: the console is enabled and http.listen is 0.0.0.0:{port}, not loopback");
    let (ok, out) = sluice(&["validate"], &open);
    assert!(!ok && out.contains(&field), "validate: {out}");
    let (ok, out) = sluice(&["run"], &open);
    assert!(!ok && out.contains(&field), "run: {out}");

    // The shipped default (`local`) is off, not refused, on 0.0.0.0: the container starts.
    let local = [lake_env.clone(), ("SLUICE_LISTEN", format!("0.0.0.0:{port}"))];
    let (ok, out) = sluice(&["validate"], &local);
    assert!(ok, "{out}");

    let same = [
        lake_env,
        ("SLUICE_LISTEN", format!("127.0.0.1:{port}")),
        ("SLUICE_CONSOLE", "true".into()),
        ("SLUICE_CONSOLE_AUTH", "token".into()),
        ("SLUICE_CONSOLE_TOKEN", "one-secret".into()),
        ("SLUICE_PUSH_AUTH", "token".into()),
        ("SLUICE_PUSH_TOKEN", "one-secret".into()),
    ];
    let (ok, out) = sluice(&["run"], &same);
    assert!(!ok && out.contains("console.auth.token: has the value of push_auth.token"), "run: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_unless_enabled() {
    let lake = tempfile::tempdir().unwrap();
    let sluice = common::Sluice::start_with(lake.path(), &[("SLUICE_CONSOLE", "false".into())]);
    for page in PAGES {
        assert_eq!(get(&sluice.url, page, None).await.0, 404, "{page}");
    }
    assert!(sluice.stop().success());
}
