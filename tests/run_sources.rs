//! `otp-harness run` end to end: every flow through every OTP source — the outbox, IMAP (real Dovecot,
//! codes delivered over LMTP, unrelated mail in the same inbox) and S3 (a real S3 server). Every run
//! is scanned for tokens and Session strings (tests/support/run.rs); tests/no_secrets.rs also searches
//! the outputs for every code mailed.

mod support;

use std::time::Duration;

use futures::TryStreamExt;
use otp_harness::testkit::dovecot::Dovecot;
use otp_harness::testkit::s3server::S3Server;
use support::run::*;

const EVERY_CHECK: [&str; 14] = [
    "sign_in",
    "tokens",
    "retry",
    "lockout",
    "lockout.real_code_refused",
    "probe.session_reuse",
    "probe.code_reuse_after_success",
    "probe.code_reuse_in_new_session",
    "probe.new_code_each_attempt",
    "probe.first_code_after_retry",
    "probe.unknown_user_answer",
    "probe.unknown_user_timing",
    "probe.challenge_leak",
    "code_randomness",
];

fn assert_every_check_passed(outcome: &RunOutcome) {
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    for check in EVERY_CHECK {
        assert_eq!(outcome.check(check).as_deref(), Some("pass"), "{check}\n{}", outcome.explain());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_smoke_scenario_passes_every_check() {
    let scenario = std::fs::read_to_string(repo_file("scenarios/local-smoke.toml")).expect("smoke scenario");
    let outcome = run_scenario(&scenario).await;
    assert_every_check_passed(&outcome);
    let steps = &outcome.summary["steps"];
    for step in ["initiate", "otp_delivery", "respond", "login"] {
        assert!(steps[step]["count"].as_u64().unwrap_or(0) > 0, "{step} measured");
    }
    assert_eq!(outcome.summary["verdict"], "pass");
    assert!(outcome.stdout.contains("verdict: PASS"), "a readable summary: {}", outcome.stdout);
    let names: Vec<&str> = outcome.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, RUN_FILES);
    let junit = outcome.file("junit.xml").expect("junit.xml");
    assert_eq!(junit.matches("<testcase ").count(), 14 + 3, "a test case per check and per threshold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_read_over_imap_from_dovecot_with_unrelated_mail_in_the_inbox() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot");
    let sample = |name: &str| std::fs::read(repo_file(&format!("testdata/mail-samples/{name}"))).expect("sample");
    // Unrelated mail already in the inbox, and more arriving during the run.
    dovecot
        .deliver("news@news.example.test", "loadtest@mail.test", &sample("noise-newsletter.eml"))
        .await
        .expect("noise");
    let scenario = imap_scenario(
        "imap",
        &dovecot,
        9,
        "from = \"no-reply@auth.otp-harness.test\"\ntimeout = \"10s\"",
        &format!("{}\nmode = \"poll\"\npoll_interval = \"50ms\"", plain_imap(&dovecot)),
        EVERY_FLOW,
    );
    let noise = async {
        for n in 0..10 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let decoy = format!(
                "From: someone@elsewhere.test\r\nTo: loadtest+1@mail.test\r\nSubject: Order {n}\r\n\r\nYour order 55512{n} shipped.\r\n"
            );
            let _ = dovecot.deliver("someone@elsewhere.test", "loadtest+1@mail.test", decoy.as_bytes()).await;
            let _ = dovecot
                .deliver("news@news.example.test", "loadtest@mail.test", &sample("qp-alternative-059317.eml"))
                .await;
        }
    };
    let (outcome, ()) = tokio::join!(run_scenario(&scenario.text), noise);
    assert_every_check_passed(&outcome);
    assert!(outcome.summary["mail"]["ignored"].as_u64().unwrap_or(0) > 0, "unrelated mail was seen and ignored");
    assert!(!outcome.all_output().contains(&dovecot.password), "the IMAP password appears nowhere");
    outcome.assert_no_secrets(&Secrets::default().with_password(&dovecot.password));

    // Code mail was deleted once read; the unrelated mail was left where it was.
    let mut imap = dovecot.login().await.expect("login");
    let mailbox = imap.select("INBOX").await.expect("select");
    let subjects: Vec<String> = imap
        .fetch("1:*", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
        .await
        .expect("fetch")
        .try_collect::<Vec<_>>()
        .await
        .expect("fetched")
        .iter()
        .map(|f| String::from_utf8_lossy(f.header().unwrap_or_default()).trim().to_string())
        .collect();
    assert_eq!(mailbox.exists as usize, subjects.len());
    assert_eq!(subjects.len(), 21, "1 + 10 newsletters and 10 decoys stay: {subjects:?}");
    assert!(subjects.iter().all(|s| !s.contains("sign-in code")), "no code mail left: {subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_read_over_imaps_trusting_a_private_ca() {
    let dovecot = Dovecot::start_with_tls("loadtest@mail.test").await.expect("dovecot with TLS");
    let (imaps, ca) = dovecot.imaps.clone().expect("imaps");
    let connection = format!("host = \"localhost\"\nport = {imaps}\nca_file = \"{}\"", ca.display());
    let scenario = imap_scenario(
        "imaps",
        &dovecot,
        8,
        "timeout = \"10s\"",
        &connection,
        "[probes]\ncode_randomness = false\n[load]\nusers = 2\niterations = 3",
    );
    let outcome = run_scenario(&scenario.text).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"));

    // Without the private CA, the system's roots do not trust the server: the run cannot happen.
    let untrusted = run_scenario(&scenario.text.replace(&format!("ca_file = \"{}\"\n", ca.display()), "")).await;
    assert_eq!(untrusted.code, 3, "{}", untrusted.explain());
    assert!(untrusted.stderr.contains("TLS handshake"), "{}", untrusted.stderr);
    for run in [&outcome, &untrusted] {
        run.assert_no_secrets(&Secrets::default().with_password(&dovecot.password));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_read_from_s3_where_a_receipt_rule_stores_them() {
    let s3 = S3Server::start().await.expect("S3 server");
    let scenario = format!(
        r#"name = "s3"
[target]
kind = "local"
[target.pool.mail]
outbox = false
[target.pool.mail.s3]
endpoint_url = "{endpoint}"
bucket = "inbound-mail"
prefix = "otp/"
[users]
test_users = true
pattern = "loadtest+{{n}}@inbound.test"
count = 9
[otp]
source = "s3"
timeout = "10s"
[otp.s3]
bucket = "inbound-mail"
prefix = "otp/"
endpoint_url = "{endpoint}"
poll_interval = "50ms"
{EVERY_FLOW}"#,
        endpoint = s3.endpoint()
    );
    let outcome = run_scenario(&scenario).await;
    assert_every_check_passed(&outcome);
}
