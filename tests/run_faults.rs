//! Faults do not stop a run and are reported as what they are: throttling, slow, duplicated and lost
//! mail, failing triggers, an IMAP connection dropped mid-run. Thresholds turn them into exit 99.

mod support;

use std::time::Duration;

use otp_harness::testkit::dovecot::Dovecot;
use support::run::*;

fn count(outcome: &RunOutcome, pointer: &str) -> u64 {
    outcome.summary.pointer(pointer).and_then(|v| v.as_u64()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_counted_apart_and_the_run_goes_on() {
    let pool = "[target.pool.faults.throttle]\nuser_authentication = 4";
    let duration_bound = |extra: &str| {
        local_scenario(
            pool,
            3,
            1,
            &format!("duration = \"3s\"\nerror_backoff = \"100ms\"\n[probes]\nunknown_user = false\n{extra}"),
        )
        .replace("iterations = 1\n", "")
    };
    let outcome = run_scenario(&duration_bound("")).await;
    assert_eq!(outcome.code, 0, "throttling is not a conformance failure: {}", outcome.explain());
    assert!(count(&outcome, "/throttled") > 0, "{}", outcome.explain());
    assert_eq!(count(&outcome, "/throttled"), count(&outcome, "/errors/TooManyRequestsException"));
    let flows = &outcome.summary["flows"];
    let errored: u64 = ["login", "retry", "lockout"].iter().map(|f| flows[f]["errored"].as_u64().unwrap_or(0)).sum();
    let succeeded: u64 =
        ["login", "retry", "lockout"].iter().map(|f| flows[f]["succeeded"].as_u64().unwrap_or(0)).sum();
    assert!(errored > 0 && succeeded > 0, "some flows were throttled, others went through: {flows}");
    assert!(outcome.failed_checks().is_empty(), "{:?}", outcome.failed_checks());

    let breached = run_scenario(&duration_bound("[thresholds]\n\"throttled.count\" = \"== 0\"")).await;
    assert_eq!(breached.code, 99, "{}", breached.explain());
    assert_eq!(breached.summary["verdict"], "threshold_breached");
    assert!(
        breached
            .files
            .iter()
            .any(|(n, t)| n == "junit.xml" && t.contains("throttled.count == 0") && t.contains("<failure"))
    );
    assert_eq!(breached.breached_thresholds(), ["throttled.count"]);
    let (_, observed, reason) = breached.threshold("throttled.count").expect("evaluated");
    assert_eq!(observed, breached.summary["throttled"].as_f64(), "the throttled count: {reason}");
    assert!(observed.unwrap_or(0.0) > 0.0 && reason.contains("breached"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mail_shows_in_otp_delivery_not_as_failures() {
    let pool = "[target.pool.faults.mail]\ndelay = \"700ms\"";
    let outcome =
        run_scenario(&local_scenario(pool, 2, 2, "[probes]\nunknown_user = false\ncode_randomness = false")).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    let p50 = outcome.summary["steps"]["otp_delivery"]["p50_ms"].as_f64().unwrap_or(0.0);
    assert!(p50 >= 700.0, "otp_delivery p50 {p50} ms includes the 700 ms delay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_mail_is_not_mistaken_for_new_codes() {
    let pool = "[target.pool.faults.mail]\nduplicate_rate = 1.0";
    let outcome = run_scenario(&local_scenario(pool, 3, 6, "")).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(outcome.failed_checks().is_empty(), "{:?}", outcome.failed_checks());
    let delivered = count(&outcome, "/steps/otp_delivery/ok");
    assert!(
        count(&outcome, "/mail/code_mails") >= 2 * delivered - 2,
        "every code came twice: {}",
        outcome.summary["mail"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_mail_and_failing_triggers_are_errors_not_conformance_failures() {
    let pool = "[target.pool.faults.mail]\nloss_rate = 0.25\n[[target.pool.faults.trigger]]\ntrigger = \"create\"\nfailure = \"error\"\nrate = 0.15";
    let scenario = local_scenario(pool, 3, 8, "[probes]\nunknown_user = false\ncode_randomness = false")
        .replace("timeout = \"5s\"", "timeout = \"1s\"");
    let outcome = run_scenario(&scenario).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(count(&outcome, "/errors/OtpTimeout") > 0, "lost mail counted: {}", outcome.summary["errors"]);
    assert!(count(&outcome, "/errors/UserLambdaValidationException") > 0, "{}", outcome.summary["errors"]);
    assert!(outcome.failed_checks().is_empty(), "{:?}", outcome.failed_checks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_imap_connection_is_reopened_without_losing_codes() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot");
    let scenario = imap_scenario(
        "imap-drop",
        &dovecot,
        8,
        "timeout = \"15s\"",
        &format!("{}\nmode = \"idle\"", plain_imap(&dovecot)),
        "[probes]\nunknown_user = false\ncode_randomness = false\n[load]\nusers = 2\niterations = 6",
    );
    let kicks = async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            dovecot.kick().expect("kick");
        }
    };
    let (outcome, ()) = tokio::join!(run_scenario(&scenario.text), kicks);
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(count(&outcome, "/mail/reconnects") >= 1, "reconnected: {}", outcome.summary["mail"]);
    assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"));
    assert_eq!(count(&outcome, "/errors/OtpTimeout"), 0, "no code was lost: {}", outcome.summary["errors"]);
    outcome.assert_no_secrets(&Secrets::default().with_password(&dovecot.password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_is_polled_instead() {
    let no_idle = "\nprotocol imap {\n  imap_capability = IMAP4rev1 LITERAL+ SASL-IR UIDPLUS\n}\n";
    let dovecot = Dovecot::start_with_config("loadtest@mail.test", no_idle).await.expect("dovecot without IDLE");
    let scenario = imap_scenario(
        "no-idle",
        &dovecot,
        7,
        "timeout = \"10s\"",
        &format!("{}\nmode = \"idle\"", plain_imap(&dovecot)),
        "[probes]\ncode_randomness = false\n[load]\nusers = 1\niterations = 3",
    );
    let outcome = run_scenario(&scenario.text).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(outcome.stderr.contains("does not offer IDLE"), "{}", outcome.stderr);
    outcome.assert_no_secrets(&Secrets::default().with_password(&dovecot.password));
    assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmeetable_threshold_exits_99() {
    let outcome = run_scenario(&local_scenario("", 1, 2, "[probes]\nunknown_user = false\ncode_randomness = false\n[thresholds]\n\"login.p99\" = \"1ms\"\n\"login.success_rate\" = \">= 99%\"")).await;
    assert_eq!(outcome.code, 99, "{}", outcome.explain());
    let thresholds = outcome.summary["thresholds"].as_array().expect("thresholds");
    assert_eq!(thresholds.iter().filter(|t| t["passed"] == false).count(), 1, "only the p99 is breached");
    assert!(outcome.stdout.contains("THRESHOLD BREACHED"));
    assert_eq!(outcome.breached_thresholds(), ["login.p99"], "the breached one is named");
    let (passed, observed, reason) = outcome.threshold("login.p99").expect("login.p99 evaluated");
    let p99 = observed.expect("an observed p99");
    assert!(!passed && p99 > 1.0, "{reason}");
    assert_eq!(p99, outcome.summary["steps"]["login"]["p99_ms"].as_f64().unwrap_or(f64::NAN));
    assert!(reason.starts_with("login.p99 = ") && reason.contains("breached"), "{reason}");
    assert!(outcome.stdout.contains(&format!("FAIL {reason}")), "the terminal names it: {}", outcome.stdout);
    let (passed, observed, _) = outcome.threshold("login.success_rate").expect("evaluated");
    assert!(passed && observed == Some(1.0));
}
