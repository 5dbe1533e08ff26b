use super::super::testing::{build, event};
use super::BUILT_IN;
use serde_json::json;

fn redact_message(config: &str, message: &str) -> String {
    let mut s = build(config, &[]).unwrap();
    let mut e = event(json!({ "message": message }));
    s.apply(&mut e).unwrap();
    e.record["message"].as_str().unwrap().to_owned()
}

/// Each built-in on its own: what it masks, and look-alikes it must leave alone.
#[test]
fn each_built_in_pattern_masks_its_secret_and_leaves_plain_text() {
    // (pattern, [(input, masked)], [left alone])
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "password",
            &[
                ("login ok password=hunter2 user=bob", "login ok password=[REDACTED] user=bob"),
                ("db_password: s3cret, retry", "db_password: [REDACTED], retry"),
                (r#"{"password": "two words"}"#, r#"{"password": "[REDACTED]"}"#),
                ("PWD='x y' next", "PWD='[REDACTED]' next"),
            ],
            &["password reset requested", "password_hint=blue", "wrong password"],
        ),
        (
            "bearer_token",
            &[("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [REDACTED]")],
            &["bearer of bad news", "bearer"],
        ),
        (
            "api_key",
            &[
                ("retrying with api_key=sk_live_abcdef123", "retrying with api_key=[REDACTED]"),
                ("X-Api-Key: k-123 sent", "X-Api-Key: [REDACTED] sent"),
                (r#"{"client_secret":"cs"}"#, r#"{"client_secret":"[REDACTED]"}"#),
            ],
            &["api_key is required", "the access token expired"],
        ),
        (
            "aws_access_key",
            &[("aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used")],
            &["AKIA is a prefix", "AKIAIOSFODNN7EXAMPL", "akiaiosfodnn7example", "XAKIAIOSFODNN7EXAMPLE"],
        ),
        (
            "google_api_key",
            &[("key AIzaSyA1234567890abcdefghijklmnopqrstuv ok", "key [REDACTED] ok")],
            &["AIzaShort", "key AIza-not-long-enough-1234567890"],
        ),
        (
            "jwt",
            &[("tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "tok [REDACTED] end")],
            &["eyJhbGciOiJIUzI1NiJ9 alone", "eyJhbGciOiJIUzI1NiJ9.notjwt.sig", "v1.2.3"],
        ),
        (
            "private_key",
            &[
                ("k: -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done", "k: [REDACTED] done"),
                ("-----BEGIN PRIVATE KEY-----\nMIIEvQ (truncated", "[REDACTED]"),
            ],
            &["-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "no private key here"],
        ),
    ];
    assert_eq!(cases.len(), BUILT_IN.len(), "every built-in has cases");
    for (name, masked, plain) in cases {
        let config = format!("redact: {{patterns: [{name}]}}");
        for (input, want) in *masked {
            assert_eq!(redact_message(&config, input), *want, "{name}: {input}");
            assert_eq!(redact_message("redact: {}", input), *want, "defaults, {name}: {input}");
        }
        for input in *plain {
            assert_eq!(redact_message(&config, input), *input, "{name} must leave: {input}");
        }
    }
}

/// The words and the secret spans only skip work: on random lines (secrets of every kind,
/// look-alikes, mixed case, letters that `(?i)` folds from outside ASCII, white space from
/// outside ASCII) the masked text is what all patterns give, their groups saying the secret.
#[test]
fn words_change_nothing_but_the_work() {
    use super::super::{testing::schema, BuildContext};
    use super::Config;
    let pieces = [
        "login ok ",
        "password=hunter2 ",
        "PaSsWd: 'a b' ",
        "pwd",
        "Bearer abcdefgh123 ",
        "bearer x ",
        "api_key=k1 ",
        "X-Api-Key: k ",
        "client_secret",
        "=s ",
        "access-token: t ",
        "AKIAIOSFODNN7EXAMPLE ",
        "ASIA",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv ",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln ",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
        "-----END RSA PRIVATE KEY----- ",
        "paſſword=x ",
        "\u{212a}ey ",
        "apikey ",
        "secret",
        "_key=v ",
        "plain words ",
        "é ",
        "=",
        "\"",
        "'",
        " ",
        "password:\u{a0}x ",
        "bearer\u{2003}abcdefghij ",
        "api_key = \"q w\" ",
        "pwd=''",
        "secret_key\t:\t",
    ];
    let ctx = BuildContext { pipeline: "p", schema: &schema(), sinks: &[] };
    for replacement in [None, Some("***".to_owned())] {
        let config = Config { replacement, ..Config::default() };
        let with = config.build(&ctx).unwrap();
        assert!(with.needles.is_some());
        let mut without = config.build(&ctx).unwrap();
        without.needles = None;
        // And the secrets found by the regexes' own groups, as custom patterns are.
        let mut by_groups = config.build(&ctx).unwrap();
        by_groups.needles = None;
        by_groups.patterns.iter_mut().for_each(|p| p.secret_at = None);
        let mut r = crate::publish::sample::Rng::new(5);
        for _ in 0..20_000 {
            let text: String = (0..r.below(8)).map(|_| *r.pick(&pieces)).collect();
            let masked = with.mask_text(&text);
            assert_eq!(masked, without.mask_text(&text), "{text:?}");
            assert_eq!(masked, by_groups.mask_text(&text), "{text:?}");
        }
    }
    // A replacement a word could form across is not trusted with the words.
    let config = Config { replacement: Some("REDACTED".into()), ..Config::default() };
    assert!(config.build(&ctx).unwrap().needles.is_none());
}

#[test]
fn masks_secret_named_fields_at_any_depth() {
    let mut s = build("redact: {}", &[]).unwrap();
    let mut e = event(json!({"user": "bob", "Password": "x", "none": null, "token": null,
                                 "auth": {"API_KEY": {"k": 1}, "list": [{"token": 1}]}}));
    s.apply(&mut e).unwrap();
    assert_eq!(
        e.record,
        json!({"user": "bob", "Password": "[REDACTED]", "none": null, "token": null,
                   "auth": {"API_KEY": "[REDACTED]", "list": [{"token": "[REDACTED]"}]}})
    );
    let mut s = build("redact: {fields: [pin], patterns: []}", &[]).unwrap();
    let mut e = event(json!({"PIN": 1234, "password": "kept: not in this list"}));
    s.apply(&mut e).unwrap();
    assert_eq!(e.record, json!({"PIN": "[REDACTED]", "password": "kept: not in this list"}));
    // Names that share a first letter and a length with a secret name, or are empty.
    let mut s = build(
        r#"redact: {fields: [Pin, "", very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok]}"#,
        &[],
    )
    .unwrap();
    let mut e = event(json!({"pIN": 1, "pun": 2, "pi": 3, "": 4, "x": 5,
            "VERY_LONG_SECRET_NAME_BEYOND_SIXTY_THREE_CHARACTERS_OF_TEXT_HERE_OK": 6,
            "very_long_secret_name_beyond_sixty_three_characters_of_text_here_no": 7,
            "very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok!": 8}));
    s.apply(&mut e).unwrap();
    assert_eq!(
        e.record,
        json!({"pIN": "[REDACTED]", "pun": 2, "pi": 3, "": "[REDACTED]", "x": 5,
                "VERY_LONG_SECRET_NAME_BEYOND_SIXTY_THREE_CHARACTERS_OF_TEXT_HERE_OK": "[REDACTED]",
                "very_long_secret_name_beyond_sixty_three_characters_of_text_here_no": 7,
                "very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok!": 8})
    );
}

#[test]
fn in_fields_limits_pattern_search_and_custom_patterns_work() {
    let config = r"redact: {in_fields: [message, http.url], patterns: [{name: card, regex: '\d{16}'}, {name: pin, regex: 'pin (?P<secret>\d+)'}], replacement: '***'}";
    let mut s = build(config, &[]).unwrap();
    let mut e = event(json!({"message": "card 4111111111111111 pin 1234", "note": "card 4111111111111111",
                                 "http": {"url": "/pay?pin 99"}}));
    s.apply(&mut e).unwrap();
    assert_eq!(
        e.record,
        json!({"message": "card *** pin ***", "note": "card 4111111111111111", "http": {"url": "/pay?pin ***"}})
    );
}

#[test]
fn config_errors_name_the_pattern() {
    let err = |y: &str| {
        let e = build(y, &[]).err().unwrap();
        (e.field, e.message)
    };
    assert_eq!(
            err("redact: {patterns: [bearer_token, ssn]}"),
            (
                "patterns[1]".into(),
                "unknown pattern 'ssn'; built-in ones are private_key, bearer_token, password, api_key, aws_access_key, google_api_key, jwt, or give {name, regex}".into()
            )
        );
    let (field, message) = err("redact: {patterns: [{name: x, regex: '('}]}");
    assert_eq!(field, "patterns[0].regex");
    assert!(message.starts_with("pattern 'x' is not a valid regular expression: regex parse error"), "{message}");
    assert_eq!(
        err("redact: {patterns: [{name: x}]}"),
        ("patterns[0]".into(), r#"expected a built-in pattern name or {name, regex}, found {"name":"x"}"#.into())
    );
    assert_eq!(err("redact: {in_fields: ['']}"), ("in_fields[0]".into(), "field path is empty".into()));
}
