//! `otp-harness run` against the embedded pool running a team's own triggers (tests/triggers/): sound
//! Node.js (CommonJS, ES modules) and Python handlers pass every check; the common tutorial's handlers
//! fail exactly what they get wrong — `code_randomness` for a first digit that is never 0, `sign_in`
//! and `retry` for a code kept as a number — and a handler mailing `event.userName` in a pool signing
//! in by email is named plainly in the report. No code reaches any output, though the handlers log.

mod support;

use std::path::PathBuf;

use support::run::*;

fn fixture(folder: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/triggers");
    assert!(
        dir.join("node_modules/@aws-sdk/client-ses").is_dir(),
        "tests/triggers/node_modules is missing: run scripts/install-test-deps.sh"
    );
    dir.join(folder).display().to_string()
}

fn python() -> String {
    std::env::var("OTP_HARNESS_PYTHON").unwrap_or_else(|_| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        assert!(venv.is_file(), "{} is missing: run scripts/install-test-deps.sh", venv.display());
        venv.display().to_string()
    })
}

/// `[target.pool]` lines running the folder's three handlers (plus `more`).
fn pool(folder: &str, more: &str) -> String {
    format!(
        "{more}\n[target.pool.triggers]\ncode_dir = {dir:?}\ndefine = \"define.handler\"\ncreate = \"create.handler\"\n\
         verify = \"verify.handler\"\npython = {python:?}\nenvironment = {{ MAIL_FROM = \"no-reply@auth.otp-harness.test\" }}\n",
        dir = fixture(folder),
        python = python(),
    )
}

/// A run of the folder's handlers with enough codes for the randomness tests to see a flaw at one
/// position (about 250 codes).
async fn run_with(folder: &str, more: &str) -> RunOutcome {
    let scenario = local_scenario(&pool(folder, more), 4, 40, "[expect]\nmin_codes_for_randomness = 50\n");
    let outcome = run_scenario(&scenario).await;
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.explain());
    outcome
}

fn reason(outcome: &RunOutcome, check: &str) -> String {
    outcome.summary["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == check))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sound_triggers_pass_every_check_in_node_commonjs_es_modules_and_python() {
    for folder in ["node-cjs", "node-esm", "python"] {
        let outcome = run_with(folder, "").await;
        assert_eq!(outcome.code, 0, "{folder}: {:?}\n{}", outcome.failed_checks(), outcome.explain());
        assert_eq!(outcome.check("code_randomness").as_deref(), Some("pass"), "{folder}");
        assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"), "{folder}");
        let create = &outcome.summary["pool"]["triggers"]["CreateAuthChallenge"];
        assert!(create["invocations"].as_u64().is_some_and(|n| n >= 200), "{folder}: {create}");
        assert_eq!(create["handler_errors"], 0, "{folder}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_generator_fails_code_randomness() {
    let outcome = run_with("tutorial", "").await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    assert_eq!(outcome.failed_checks(), ["code_randomness"], "the number became its text: sign-in works");
    let why = reason(&outcome, "code_randomness");
    assert!(why.contains("never appeared at position 1") && why.contains("never start with 0"), "{why}");
    assert!(
        outcome.stderr.contains("privateChallengeParameters.secretLoginCode"),
        "the pool's log names the coerced key: {}",
        outcome.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_kept_as_a_number_fails_sign_in_with_a_reason_a_person_understands() {
    let outcome = run_with("numeric-verify", "").await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    let mut failed = outcome.failed_checks();
    failed.retain(|c| c != "retry");
    assert_eq!(failed, ["sign_in"], "{:?}", outcome.failed_checks());
    let why = reason(&outcome, "sign_in");
    assert!(why.contains("started with 0") && why.contains("compares the answer as a number"), "{why}");
    assert_eq!(outcome.check("code_randomness").as_deref(), Some("pass"), "its generator is sound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailing_the_username_in_a_pool_signing_in_by_email_is_named_in_the_report() {
    let outcome = run_scenario(&local_scenario(&pool("username-mailer", ""), 2, 3, "")).await;
    assert_ne!(outcome.code, 0, "{}", outcome.explain());
    let notes = outcome.summary["notes"].to_string();
    assert!(notes.contains("event.userName is the user's internal UUID"), "{notes}");
    assert!(outcome.summary["errors"].to_string().contains("UserLambdaValidationException"), "{}", outcome.summary);

    let outcome = run_scenario(&local_scenario(&pool("username-mailer", "username_attributes = []"), 2, 3, "")).await;
    assert_eq!(outcome.code, 0, "where the username is the address, it works: {}", outcome.explain());
}
