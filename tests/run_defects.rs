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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_defect_fails_the_tokens_check() {
    for defect in [
        "unknown_kid",
        "bad_signature",
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "wrong_token_use",
        "origin_jti_mismatch",
        "repeated_jti",
        "wrong_sub",
        "lifetime_mismatch",
    ] {
        let pool = format!("[target.pool.defects]\ntoken = \"{defect}\"");
        let outcome =
            run_scenario(&local_scenario(&pool, 1, 2, "[probes]\nunknown_user = false\ncode_randomness = false")).await;
        assert_eq!(outcome.code, 98, "{defect}: {}", outcome.explain());
        assert_eq!(outcome.failed_checks(), ["tokens"], "{defect}");
    }
}
