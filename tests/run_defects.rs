//! Every check of the harness can fail: for each defect the local pool can be configured with, the run
//! exits 98 and names the failed check (tests/run_sources.rs shows a sound pool passing them all).

mod support;

use support::run::*;

/// Runs the test scenario against a pool with `defects` (TOML lines of `[target.pool.defects]`) and
/// asserts exit 98 with exactly `failed` failing (the first named in every output).
async fn assert_caught(defects: &str, failed: &[&str]) -> RunOutcome {
    let check = failed[0];
    let pool = format!("[target.pool.defects]\n{defects}");
    let outcome = run_scenario(&local_scenario(&pool, 4, 12, "")).await;
    assert_eq!(outcome.code, 98, "{defects}: {}", outcome.explain());
    assert_eq!(outcome.summary["verdict"], "conformance_failure");
    let mut expected: Vec<String> = failed.iter().map(|c| c.to_string()).collect();
    expected.sort();
    let mut got = outcome.failed_checks();
    got.sort();
    assert_eq!(got, expected, "{defects}: exactly these checks fail");
    assert!(outcome.stdout.contains(&format!("FAIL {check}")), "the terminal names it: {}", outcome.stdout);
    let junit = &outcome.files.iter().find(|(n, _)| n == "junit.xml").expect("junit").1;
    assert!(junit.contains(&format!("name=\"{check}\" time=\"0\">\n      <failure")), "junit marks {check} failed");
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_retries_fail_the_lockout_check() {
    let outcome = assert_caught("unbounded_retries = true", &["lockout"]).await;
    let reason = outcome.summary["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "lockout"))
        .map(|c| c["reason"].to_string());
    assert!(reason.is_some_and(|r| r.contains("not bounded")), "the reason says why");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_code_every_round_fails_new_code_each_attempt() {
    assert_caught("same_code_every_round = true", &["probe.new_code_each_attempt"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_code_accepted_again_fails_code_reuse_after_success() {
    assert_caught("code_valid_after_success = true", &["probe.code_reuse_after_success"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sessions_code_accepted_fails_both_code_reuse_probes() {
    // The code that signed in came from an earlier session too, so both probes catch it.
    assert_caught(
        "code_valid_in_new_session = true",
        &["probe.code_reuse_in_new_session", "probe.code_reuse_after_success"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_sessions_accepted_fail_session_reuse_and_the_lockout_follow_up() {
    assert_caught("consumed_session_accepted = true", &["probe.session_reuse", "lockout.real_code_refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_in_challenge_parameters_fails_challenge_leak() {
    assert_caught("answer_in_challenge_parameters = true", &["probe.challenge_leak"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_code_generator_fails_code_randomness() {
    assert_caught("weak_code_generator = true", &["code_randomness"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_refused_with_their_own_error_fail_unknown_user_answer() {
    assert_caught("unknown_user_error = true", &["probe.unknown_user_answer"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_answered_later_fail_unknown_user_timing() {
    assert_caught("unknown_user_delay = \"300ms\"", &["probe.unknown_user_timing"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_round_codes_accepted_fail_first_code_after_retry() {
    assert_caught("earlier_round_codes_accepted = true", &["probe.first_code_after_retry"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_by_one_verify_fails_retry_and_first_code_after_retry() {
    // The retry's right code is checked against the round before it; the probe's round-1 code passes.
    assert_caught("verify_against_previous_round = true", &["retry", "probe.first_code_after_retry"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_refused_for_a_leading_zero_fail_sign_in() {
    // One code in ten starts with 0: 90 sign-ins all but surely meet one (0.9^90 ≈ 8e-5).
    let pool = "[target.pool.defects]\nleading_zero_codes_refused = true";
    let outcome = run_scenario(&local_scenario(pool, 4, 30, "")).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    let failed = outcome.failed_checks();
    assert!(failed.contains(&"sign_in".to_string()), "{failed:?}");
    assert!(
        failed.iter().all(|c| c == "sign_in" || c == "retry"),
        "only the checks that answer the right code: {failed:?}"
    );
}

/// Each token defect, what the harness's own token checks say about it (GetUser off, so the pool's
/// GetUser cannot be what caught it), and what GetUser adds when it is on.
const TOKEN_DEFECTS: [(&str, &[&str], &[&str]); 10] = [
    ("unknown_kid", &["ID token: kid ", " is not in the pool's JWKS"], &[]),
    ("bad_signature", &["ID token rejected: the signature does not verify"], &[]),
    (
        "wrong_issuer",
        &["ID token rejected: iss is not http://127.0.0.1:", "access token rejected: iss is not http://127.0.0.1:"],
        &["GetUser refused the access token: NotAuthorizedException: Invalid Access Token"],
    ),
    ("wrong_audience", &["ID token rejected: aud is not the app client id"], &[]),
    (
        "expired",
        &["ID token rejected: it has expired", "access token rejected: it has expired"],
        &["GetUser refused the access token: NotAuthorizedException: Access Token has expired"],
    ),
    ("wrong_token_use", &["ID token: token_use is Some(\"access\"), not \"id\""], &[]),
    ("origin_jti_mismatch", &["ID and access tokens carry different origin_jti"], &[]),
    ("repeated_jti", &["access token: jti was already used by another token"], &[]),
    ("wrong_sub", &["ID and access tokens name different subs"], &["GetUser's sub differs from the ID token's"]),
    ("lifetime_mismatch", &["ID token: exp - iat = 4200s but ExpiresIn = 3600s"], &[]),
];

fn reason(outcome: &RunOutcome, check: &str) -> String {
    outcome.summary["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == check))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_defect_fails_the_tokens_check() {
    for (defect, own, get_user) in TOKEN_DEFECTS {
        let pool = format!("[target.pool.defects]\ntoken = \"{defect}\"");
        let probes = "[probes]\nunknown_user = false\ncode_randomness = false";
        let on = local_scenario(&pool, 1, 2, probes);
        let off = local_scenario(&pool, 1, 2, &format!("{probes}\n[checks]\nget_user = false"));
        let (with_get_user, without) = tokio::join!(run_scenario(&on), run_scenario(&off));
        for outcome in [&with_get_user, &without] {
            assert_eq!(outcome.code, 98, "{defect}: {}", outcome.explain());
            assert_eq!(outcome.failed_checks(), ["tokens"], "{defect}");
        }
        // The harness's own check found it: with GetUser off, the reason is the token check's.
        let found = reason(&without, "tokens");
        for needle in own {
            assert!(found.contains(needle), "{defect} without GetUser: {needle:?} in {found:?}");
        }
        assert!(!found.contains("GetUser"), "{defect}: GetUser was off: {found:?}");
        let found = reason(&with_get_user, "tokens");
        for needle in own.iter().chain(get_user.iter()) {
            assert!(found.contains(needle), "{defect} with GetUser: {needle:?} in {found:?}");
        }
        if get_user.is_empty() {
            assert!(!found.contains("GetUser"), "{defect}: GetUser accepts these tokens: {found:?}");
        }
    }
}

/// Which part of GetUser's answer the proxy rewrites.
#[derive(Clone, Copy, PartialEq)]
enum GetUserLie {
    Nothing,
    Username,
    Sub,
    Email,
}

/// A proxy in front of `pool`'s Cognito API that rewrites GetUser's answer as `lie` says; its endpoint.
async fn lying_proxy(pool: &otp_harness::pool::RunningPool, lie: GetUserLie) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let upstream = pool.endpoint().to_string();
    let client = reqwest::Client::new();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (upstream, client) = (upstream.clone(), client.clone());
        async move {
            let mut request = client.post(upstream.as_str()).body(body);
            for (name, value) in headers.iter().filter(|(n, _)| *n != "host" && *n != "content-length") {
                request = request.header(name.as_str(), value.as_bytes());
            }
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let answer = request.send().await.expect("pool answers");
            let status = StatusCode::from_u16(answer.status().as_u16()).expect("status");
            let mut out = HeaderMap::new();
            for (name, value) in answer.headers().iter().filter(|(n, _)| *n != "content-length") {
                out.insert(
                    axum::http::HeaderName::from_bytes(name.as_str().as_bytes()).expect("name"),
                    axum::http::HeaderValue::from_bytes(value.as_bytes()).expect("value"),
                );
            }
            let mut body = answer.bytes().await.expect("body").to_vec();
            if target.ends_with(".GetUser") && status.is_success() {
                let mut json: serde_json::Value = serde_json::from_slice(&body).expect("GetUser JSON");
                let attribute = |json: &mut serde_json::Value, name: &str, value: &str| {
                    for a in json["UserAttributes"].as_array_mut().expect("attributes") {
                        if a["Name"] == name {
                            a["Value"] = value.into();
                        }
                    }
                };
                match lie {
                    GetUserLie::Nothing => {}
                    GetUserLie::Username => json["Username"] = "00000000-0000-4000-8000-00000000beef".into(),
                    GetUserLie::Sub => attribute(&mut json, "sub", "00000000-0000-4000-8000-00000000beef"),
                    GetUserLie::Email => attribute(&mut json, "email", "someone.else@mail.test"),
                }
                body = serde_json::to_vec(&json).expect("JSON");
            }
            (status, out, body).into_response()
        }
    };
    let app = axum::Router::new().route("/", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// The GetUser comparisons (username, sub, email against the ID token and the user) each fail once:
/// no pool defect makes GetUser disagree with the tokens, so a proxy rewrites its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_user_answer_about_someone_else_fails_the_tokens_check() {
    for (lie, expected) in [
        (GetUserLie::Nothing, None),
        (GetUserLie::Username, Some("GetUser names another user than the ID token")),
        (GetUserLie::Sub, Some("GetUser's sub differs from the ID token's")),
        (GetUserLie::Email, Some("GetUser's email is not the user's address")),
    ] {
        let mut config = otp_harness::pool::PoolConfig::default();
        config.users.pattern = Some("gu+{n}@mail.test".into());
        config.users.count = 8;
        let pool =
            otp_harness::pool::LocalPool::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("pool");
        let proxy = lying_proxy(&pool, lie).await;
        let rest = "[probes]\nunknown_user = false\ncode_randomness = false\n[load]\nusers = 1\niterations = 2";
        let scenario =
            external_scenario(&pool, &proxy, "gu+{n}@mail.test", 8, &format!("{}\n{rest}", outbox_otp(&pool)));
        let outcome = run_scenario(&scenario).await;
        match expected {
            None => {
                assert_eq!(outcome.code, 0, "control: the proxy alone changes nothing: {}", outcome.explain());
                assert_eq!(outcome.check("tokens").as_deref(), Some("pass"));
            }
            Some(expected) => {
                assert_eq!(outcome.code, 98, "{expected}: {}", outcome.explain());
                assert_eq!(outcome.failed_checks(), ["tokens"]);
                assert_eq!(reason(&outcome, "tokens"), expected, "exactly this comparison failed");
            }
        }
    }
}

/// The status and reason of `check`.
fn verdict(outcome: &RunOutcome, check: &str) -> (Option<String>, String) {
    (outcome.check(check), reason(outcome, check))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revealed_user_existence_is_expected_of_a_legacy_pool_and_not_of_an_enabled_one() {
    let expect = "[probes]\ncode_randomness = false\n[expect]\nuser_existence = \"revealed\"";
    let legacy = local_scenario("prevent_user_existence_errors = \"LEGACY\"", 1, 2, expect);
    let enabled = local_scenario("prevent_user_existence_errors = \"ENABLED\"", 1, 2, expect);
    // The preflight would stop the mismatched run first (client.user_existence): this is the probe's
    // own proof, so it runs without it.
    let (legacy, enabled) = tokio::join!(run_scenario(&legacy), run_with_args(&enabled, &["--no-preflight"]));

    assert_eq!(legacy.code, 0, "{}", legacy.explain());
    assert_eq!(verdict(&legacy, "probe.unknown_user_answer"), (Some("pass".into()), String::new()));
    assert_eq!(
        verdict(&legacy, "probe.unknown_user_timing"),
        (Some("skip".into()), "unknown users are revealed by design (expect.user_existence)".into())
    );

    assert_eq!(enabled.code, 98, "{}", enabled.explain());
    assert_eq!(enabled.failed_checks(), ["probe.unknown_user_answer"]);
    assert_eq!(
        reason(&enabled, "probe.unknown_user_answer"),
        "expected UserNotFoundException for unknown users (expect.user_existence = \"revealed\"), got a challenge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_code_every_round_is_expected_only_when_said() {
    let expect = "[probes]\nunknown_user = false\ncode_randomness = false\n[expect]\nnew_code_each_attempt = false";
    let same = local_scenario("[target.pool.defects]\nsame_code_every_round = true", 2, 4, expect);
    let fresh = local_scenario("", 2, 4, expect);
    let (same, fresh) = tokio::join!(run_scenario(&same), run_scenario(&fresh));

    assert_eq!(same.code, 0, "{}", same.explain());
    assert_eq!(verdict(&same, "probe.new_code_each_attempt"), (Some("pass".into()), String::new()));
    assert_eq!(
        verdict(&same, "probe.first_code_after_retry"),
        (Some("skip".into()), "both rounds mailed the same code".into())
    );
    assert_eq!(same.check("retry").as_deref(), Some("pass"), "the one code signs in after wrong ones");

    assert_eq!(fresh.code, 98, "{}", fresh.explain());
    assert_eq!(fresh.failed_checks(), ["probe.new_code_each_attempt"]);
    assert_eq!(
        reason(&fresh, "probe.new_code_each_attempt"),
        "round 2 mailed a new code; expect.new_code_each_attempt = false"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_locking_earlier_than_expected_fails_lockout_and_retry() {
    // The pool locks at the 2nd wrong code; the scenario expects 3 (retry flows answer 2 wrong codes).
    let probes = "[probes]\nunknown_user = false\ncode_randomness = false";
    let outcome = run_scenario(&local_scenario("max_attempts = 2", 2, 8, probes)).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    let mut failed = outcome.failed_checks();
    failed.sort();
    assert_eq!(failed, ["lockout", "retry"]);
    let lockout = reason(&outcome, "lockout");
    assert!(
        lockout.starts_with("the sign-in ended after 2 wrong code(s) (")
            && lockout.contains("Incorrect username or password.")
            && lockout.ends_with("); expected 3"),
        "{lockout}"
    );
    let retry = reason(&outcome, "retry");
    assert!(
        retry.starts_with("the sign-in ended after 2 wrong code(s) (")
            && retry.contains("Incorrect username or password.")
            && retry.ends_with("); expect.max_attempts = 3"),
        "{retry}"
    );
    assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"), "plain sign-ins are not affected");
}
