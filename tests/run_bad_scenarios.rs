//! Typical mistakes in a scenario file each give one clear error — the file, the line, what is wrong
//! and how to fix it — and exit 2, before anything is started.

mod support;

use support::run::*;

const GOOD: &str = otp_harness::testkit::MINIMAL_SCENARIO;

/// Runs `text`; asserts exit 2, one error naming `line` of the file, mentioning `needle`, with a fix.
async fn assert_refused(text: &str, line: Option<usize>, needle: &str) {
    let outcome = run_scenario(text).await;
    assert_eq!(outcome.code, 2, "{}", outcome.explain());
    assert!(outcome.dir.is_none(), "nothing ran, no report");
    let stderr = &outcome.stderr;
    assert_eq!(stderr.matches("error:").count(), 1, "one error: {stderr}");
    if let Some(line) = line {
        assert!(stderr.contains(&format!("scenario.toml:{line}:")), "names line {line}: {stderr}");
    }
    assert!(stderr.contains(needle), "mentions {needle:?}: {stderr}");
    assert!(stderr.contains("fix:"), "says how to fix it: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_good_scenario_is_accepted() {
    let outcome = run_with_args(GOOD, &["--check"]).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_key() {
    assert_refused(&GOOD.replace("pattern =", "patern ="), Some(6), "patern").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_not_marked_as_test_users() {
    assert_refused(&GOOD.replace("test_users = true\n", ""), Some(4), "test users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_pattern_without_a_capture_group() {
    let text = GOOD.replace("source = \"outbox\"", "source = \"outbox\"\ncode_pattern = '\\d{6}'");
    assert_refused(&text, Some(10), "capture group").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_users_for_the_load_and_probes() {
    assert_refused(&GOOD.replace("count = 8", "count = 3"), Some(7), "users.count").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imap_source_without_its_table() {
    assert_refused(&GOOD.replace("source = \"outbox\"", "source = \"imap\""), Some(9), "[otp.imap]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_imap_to_a_remote_host() {
    let text = GOOD.replace(
        "source = \"outbox\"",
        "source = \"imap\"\n[otp.imap]\nhost = \"imap.example.test\"\ntls = false\nusername = \"u\"\npassword_env = \"P\"",
    );
    assert_refused(&text, Some(12), "in clear").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_type() {
    assert_refused(&GOOD.replace("count = 8", "count = \"eight\""), Some(7), "count").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_value() {
    assert_refused(&GOOD.replace("kind = \"local\"", "kind = \"cognito\""), Some(3), "cognito").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_on_an_unknown_step() {
    assert_refused(&format!("{GOOD}[thresholds]\n\"sigin.p99\" = \"2s\"\n"), Some(13), "sigin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_target_without_its_pool_id() {
    let text = GOOD.replace("kind = \"local\"", "kind = \"aws\"\nregion = \"eu-west-1\"\nclient_id = \"abc\"");
    let text =
        text.replace("source = \"outbox\"", "source = \"outbox\"\n[otp.outbox]\nurl = \"http://127.0.0.1:1/_aws/ses\"");
    assert_refused(&text, Some(2), "user_pool_id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness"))
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the scenario"));
}

/// An unparsable threshold is refused by `run --check` (exit 2) and the error names its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_that_cannot_be_parsed_is_refused_by_check() {
    for (key, condition, why) in [
        ("login.p99", "fast", "\"fast\" is not a duration like 800ms or 2s"),
        ("login.success_rate", ">= 99", "\"99\" is not a percentage like 99%"),
        ("throttled.count", "== none", "\"none\" is not a number"),
        ("login.p99x", "2s", "unknown metric \"p99x\""),
    ] {
        let text = format!("{GOOD}[thresholds]\n\"{key}\" = \"{condition}\"\n");
        let outcome = run_with_args(&text, &["--check"]).await;
        assert_eq!(outcome.code, 2, "{key}: {}", outcome.explain());
        assert!(outcome.dir.is_none(), "nothing ran");
        let stderr = &outcome.stderr;
        assert_eq!(stderr.matches("error:").count(), 1, "one error: {stderr}");
        assert!(stderr.contains(&format!("threshold \"{key}\" = \"{condition}\"")), "names the key: {stderr}");
        assert!(stderr.contains(why), "says why ({why}): {stderr}");
        assert!(stderr.contains("fix:"), "{stderr}");
    }
    let fine = run_with_args(&format!("{GOOD}[thresholds]\n\"login.p99\" = \"2s\"\n"), &["--check"]).await;
    assert_eq!(fine.code, 0, "control: a threshold that parses: {}", fine.explain());
}
