//! The native passwordless flow (USER_AUTH with EMAIL_OTP) through `otp-harness run`: the shipped
//! migration scenario judges both flows side by side and passes on the default pool; each native
//! defect of the pool makes a run exit 98 naming exactly the check it breaks; a pool or client that is
//! not set up for the flow gets a note naming the setting to change; unknown users' fake challenges are
//! compared with real ones; the flow works through IMAP (Dovecot) and S3 and under the open model.

mod support;

use otp_harness::testkit::dovecot::Dovecot;
use otp_harness::testkit::s3server::S3Server;
use support::run::*;

/// Native flows only; the probes named in `probes` on, the others off; `extra` is appended (tables).
fn native(pool: &str, probes: &[&str], extra: &str) -> String {
    let flags: String = ["session_reuse", "code_reuse", "unknown_user", "challenge_leak", "code_randomness"]
        .iter()
        .map(|flag| format!("{flag} = {}\n", probes.contains(flag)))
        .collect();
    format!(
        r#"name = "native"
auth = "email_otp"
[target]
kind = "local"
[target.pool]
{pool}
[users]
test_users = true
pattern = "nat+{{n}}@mail.test"
count = 12
[otp]
source = "outbox"
timeout = "5s"
[otp.outbox]
poll_interval = "10ms"
[[flow]]
kind = "login"
weight = 4
[[flow]]
kind = "retry"
wrong = 2
[[flow]]
kind = "lockout"
[probes]
{flags}unknown_user_samples = 2
[report]
progress = "0s"
[load]
users = 3
iterations = 6
{extra}
"#
    )
}

const EVERY_PROBE: &[&str] = &["session_reuse", "code_reuse", "unknown_user", "challenge_leak", "code_randomness"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_scenario_judges_both_flows_side_by_side() {
    let text = std::fs::read_to_string(repo_file("scenarios/local-migration.toml")).expect("migration scenario");
    let outcome = run_scenario(&text).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    for check in [
        "sign_in",
        "sign_in.email_otp",
        "retry.email_otp",
        "lockout.email_otp",
        "lockout.real_code_refused.email_otp",
        "tokens.email_otp",
        "code_length.email_otp",
        "probe.session_reuse.email_otp",
        "probe.code_reuse_after_success.email_otp",
        "probe.code_reuse_in_new_session.email_otp",
        "probe.unknown_user_answer.email_otp",
        "probe.unknown_user_timing.email_otp",
        "probe.challenge_leak.email_otp",
        "code_randomness.email_otp",
        "probe.new_code_each_attempt",
    ] {
        assert_eq!(outcome.check(check).as_deref(), Some("pass"), "{check}\n{}", outcome.explain());
    }
    assert_eq!(outcome.check("probe.new_code_each_attempt.email_otp"), None, "no rounds in EMAIL_OTP: not planned");
    for flow in ["login", "login.email_otp", "retry.email_otp", "lockout.email_otp"] {
        let steps = &outcome.summary["flow_steps"][flow];
        assert!(steps["respond"]["count"].as_u64().unwrap_or(0) > 0, "{flow}'s steps are kept apart: {steps}");
    }
    let md = outcome.file("summary.md").expect("summary.md");
    assert!(md.contains("## Steps by flow (ms)") && md.contains("| login.email_otp | login |"), "{md}");
    let html = outcome.file("report.html").expect("report.html");
    assert!(html.contains("id=\"flow-steps\"") && html.contains("<td>login.email_otp</td>"));
    assert!(outcome.stdout.contains("sign-ins by flow"), "{}", outcome.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_native_defect_fails_exactly_its_check() {
    let control = run_scenario(&native("", EVERY_PROBE, "")).await;
    assert_eq!(control.code, 0, "the default pool passes: {}", control.explain());
    let cases: [(&str, &[&str]); 7] = [
        ("native_unbounded_attempts = true", &["lockout.email_otp"]),
        ("native_code_valid_after_success = true", &["probe.code_reuse_after_success.email_otp"]),
        // The code that signed in came from an earlier session too, so both code-reuse probes catch it.
        (
            "native_code_valid_in_new_session = true",
            &["probe.code_reuse_after_success.email_otp", "probe.code_reuse_in_new_session.email_otp"],
        ),
        ("native_consumed_session_accepted = true", &["probe.session_reuse.email_otp"]),
        ("native_short_code = true", &["code_length.email_otp"]),
        ("native_code_in_challenge_parameters = true", &["probe.challenge_leak.email_otp"]),
        ("native_wrong_code_ends_session = true", &["retry.email_otp", "lockout.email_otp"]),
    ];
    for (defect, failing) in cases {
        let outcome = run_scenario(&native(&format!("[target.pool.defects]\n{defect}"), EVERY_PROBE, "")).await;
        assert_eq!(outcome.code, 98, "{defect}: {}", outcome.explain());
        assert_eq!(outcome.failed_checks(), failing, "{defect}: {}", outcome.explain());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_native_generator_fails_the_randomness_check() {
    let (probes, expect) = (&["code_randomness"][..], "[expect]\nmin_codes_for_randomness = 40");
    let control = run_scenario(&native("", probes, expect).replace("iterations = 6", "iterations = 20")).await;
    assert_eq!(control.code, 0, "{}", control.explain());
    assert_eq!(control.check("code_randomness.email_otp").as_deref(), Some("pass"));
    let weak = native("[target.pool.defects]\nnative_weak_code_generator = true", probes, expect)
        .replace("iterations = 6", "iterations = 20");
    let outcome = run_scenario(&weak).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    assert_eq!(outcome.failed_checks(), ["code_randomness.email_otp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_the_pool_locks_is_measured_against_the_expectation() {
    // The pool locks after 3 wrong codes; the scenario expects 5.
    let outcome = run_scenario(&native("[target.pool.native]\nmax_wrong_codes = 3", &[], "")).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    assert_eq!(outcome.failed_checks(), ["lockout.email_otp"]);
    let reason = outcome.summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "lockout.email_otp")
        .expect("lockout")["reason"]
        .to_string();
    assert!(reason.contains("locked after 3 wrong code(s); expected 5"), "{reason}");
    // Told so, the same pool passes.
    let told = native("[target.pool.native]\nmax_wrong_codes = 3", &[], "[expect]\nemail_otp_max_wrong_codes = 3");
    let outcome = run_scenario(&told).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    // A pool that never locks is reported with the count.
    let endless =
        native("[target.pool.defects]\nnative_unbounded_attempts = true", &[], "[expect]\nemail_otp_lock_limit = 9");
    let outcome = run_scenario(&endless).await;
    let reason = outcome.summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "lockout.email_otp")
        .expect("lockout")["reason"]
        .to_string();
    assert!(reason.contains("no lock after 9 wrong codes"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_not_set_up_for_the_flow_is_named_in_a_note() {
    // The preflight names these settings before the run (tests/preflight.rs); here the run's own note,
    // for runs made with --no-preflight.
    let no_user_auth = native("explicit_auth_flows = [\"ALLOW_CUSTOM_AUTH\"]", &[], "");
    let outcome = run_with_args(&no_user_auth, &["--no-preflight"]).await;
    assert_eq!(outcome.code, 3, "no flow completed: {}", outcome.explain());
    let notes = outcome.summary["notes"].to_string();
    assert!(notes.contains("add ALLOW_USER_AUTH to its ExplicitAuthFlows"), "{notes}");
    let no_email_otp = native("allowed_first_auth_factors = [\"PASSWORD\"]", &[], "");
    let outcome = run_with_args(&no_email_otp, &["--no-preflight"]).await;
    assert_eq!(outcome.code, 3, "{}", outcome.explain());
    let notes = outcome.summary["notes"].to_string();
    assert!(notes.contains("add EMAIL_OTP to its Policies.SignInPolicy.AllowedFirstAuthFactors"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_fake_challenges_are_compared_with_real_ones() {
    let probe = &["unknown_user"][..];
    let outcome = run_scenario(&native("", probe, "")).await;
    assert_eq!(outcome.code, 0, "a mirrored fake challenge passes: {}", outcome.explain());
    assert_eq!(outcome.check("probe.unknown_user_answer.email_otp").as_deref(), Some("pass"));
    let telling = native("[target.pool.native]\nunknown_user_challenge = \"all_factors\"", probe, "");
    let outcome = run_scenario(&telling).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    assert_eq!(outcome.failed_checks(), ["probe.unknown_user_answer.email_otp"]);
    let legacy = native("prevent_user_existence_errors = \"LEGACY\"", probe, "[expect]\nuser_existence = \"revealed\"");
    let outcome = run_scenario(&legacy).await;
    assert_eq!(outcome.code, 0, "UserNotFoundException expected and given: {}", outcome.explain());
    assert_eq!(outcome.check("probe.unknown_user_answer.email_otp").as_deref(), Some("pass"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_flow_reads_codes_over_imap_and_from_s3_and_runs_open() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot");
    let imap = imap_scenario(
        "native-imap",
        &dovecot,
        8,
        "timeout = \"10s\"",
        &format!("{}\nmode = \"poll\"\npoll_interval = \"20ms\"", plain_imap(&dovecot)),
        "[[flow]]\nkind = \"login\"\nauth = \"email_otp\"\n[[flow]]\nkind = \"retry\"\nauth = \"email_otp\"\n[probes]\ncode_randomness = false\nunknown_user = false\n[load]\nusers = 2\niterations = 4",
    );
    let outcome = run_scenario(&imap.text).await;
    assert_eq!(outcome.code, 0, "IMAP: {}", outcome.explain());
    assert_eq!(outcome.check("sign_in.email_otp").as_deref(), Some("pass"));
    assert_eq!(outcome.check("retry.email_otp").as_deref(), Some("pass"));

    let s3 = S3Server::start().await.expect("s3 server");
    let text = native(
        &format!(
            "[target.pool.mail.s3]\nbucket = \"mail\"\nprefix = \"inbound/\"\nendpoint_url = \"{}\"\ncreate_bucket = true",
            s3.endpoint()
        ),
        &[],
        "",
    )
    .replace("source = \"outbox\"", "source = \"s3\"")
    .replace(
        "[otp.outbox]\npoll_interval = \"10ms\"\n",
        &format!("[otp.s3]\nbucket = \"mail\"\nprefix = \"inbound/\"\nendpoint_url = \"{}\"\npoll_interval = \"50ms\"\n", s3.endpoint()),
    );
    let outcome = run_scenario(&text).await;
    assert_eq!(outcome.code, 0, "S3: {}", outcome.explain());
    assert_eq!(outcome.check("sign_in.email_otp").as_deref(), Some("pass"));

    let open = native("", &[], "")
        .replace("users = 3\niterations = 6", "model = \"open\"\nrate = 10\nduration = \"3s\"\nmax_in_flight = 4");
    let outcome = run_scenario(&open).await;
    assert_eq!(outcome.code, 0, "open model: {}", outcome.explain());
    assert!(
        outcome.summary["flows"]["login.email_otp"]["succeeded"].as_u64().unwrap_or(0) > 5,
        "{}",
        outcome.summary["flows"]
    );
}
