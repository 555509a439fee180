//! No code, token, Session string or password appears in any output of a run — every file of the run
//! folder, stdout and stderr — whether the run passes, fails its checks (exit 98, with reasons) or meets
//! faults (throttling, failing triggers, a dropped IMAP connection). The pools here belong to the test
//! (an aws-kind target pointed at them), so every code they mailed can be searched for. The scanner
//! itself (tests/support/secrets.rs) is shown to find real tokens, Session strings and codes first.

mod support;

use std::time::Duration;

use otp_harness::pool::config::{RelayConfig, RelayProtocol, TriggerFailure, TriggerFault};
use otp_harness::pool::{LocalPool, PoolConfig, RunningPool};
use otp_harness::testkit::dovecot::Dovecot;
use support::run::*;
use support::secrets::Finding;

/// A pool on a free port with `{pattern}` users 1..=count.
async fn own_pool(mut config: PoolConfig, pattern: &str, count: u32) -> RunningPool {
    config.users.pattern = Some(pattern.into());
    config.users.count = count;
    LocalPool::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("pool")
}

/// Every code the pool mailed (its outbox).
fn mailed_codes(pool: &RunningPool) -> Vec<String> {
    pool.state()
        .mail
        .outbox()
        .expect("outbox")
        .list(&Default::default())
        .into_iter()
        .map(|m| support::code_in(&m.body.text_part.unwrap_or_default()))
        .collect()
}

fn kinds(found: &[Finding]) -> Vec<&'static str> {
    found.iter().map(|f| f.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scanner_finds_real_tokens_session_strings_codes_and_passwords() {
    let pool = support::start_pool(PoolConfig::default()).await;
    let client = support::sdk(&pool);
    let started = support::initiate(&client, &pool, support::USER).await.expect("initiate");
    let (session, username) = support::challenge_of(started.session(), started.challenge_parameters());
    let code = support::latest_code(&pool, support::USER).await;
    let signed_in = support::respond(&client, &pool, &session, &username, &code).await.expect("signs in");
    let result = signed_in.authentication_result().expect("tokens");
    let id = result.id_token().expect("id token");
    let access = result.access_token().expect("access token");
    let refresh = result.refresh_token().expect("refresh token");
    let secrets = Secrets::codes(vec![code.clone()]).with_password("s3cret-Pa55\n");
    let scan_one = |text: &str| kinds(&scan("t", text, &secrets));

    assert_eq!(scan_one(&format!("session: \"{session}\"")), ["Session string"]);
    assert_eq!(scan_one(&format!("your code is {code}.")), ["one-time code"]);
    assert_eq!(scan_one("password=s3cret-Pa55 "), ["password"]);
    for token in [id, access] {
        let found = scan_one(&format!("token {token}"));
        assert!(found.contains(&"JWT (three dotted base64url parts)"), "{found:?}");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(scan_one(parts[0]), ["JWT segment (base64url JSON)"], "the header alone");
        assert!(scan_one(parts[1]).contains(&"JWT segment (base64url JSON)"), "the claims alone");
        assert_eq!(scan_one(parts[2]), ["long base64url run (a signature or refresh-token part)"], "the signature");
        assert_eq!(scan_one(&format!("{}…", &token[..24])), ["JWT segment (base64url JSON)"], "a prefix");
    }
    let found = scan_one(&format!("refresh={refresh}"));
    assert!(found.contains(&"JWT segment (base64url JSON)") && found.len() >= 3, "{found:?}");

    // What reports legitimately hold is not mistaken for a secret.
    let clean = format!(
        "p50_ms: 12.{code}, at 2026-01-01T00:00:00.{code}Z; code {}; login.p99 = 2s; probe.code_reuse_after_success",
        support::wrong_code(&code)
    );
    assert_eq!(scan_one(&clean), Vec::<&str>::new(), "{clean}");
}

/// A passing run: every check, every report file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_or_token_appears_in_any_output() {
    let pool = own_pool(PoolConfig::default(), "ext+{n}@mail.test", 8).await;
    let rest = "[[flow]]\nkind = \"login\"\nweight = 3\n[[flow]]\nkind = \"lockout\"\nweight = 1\n[expect]\nmin_codes_for_randomness = 10\n[load]\nusers = 2\niterations = 4";
    let scenario =
        external_scenario(&pool, pool.endpoint(), "ext+{n}@mail.test", 8, &format!("{}\n{rest}", outbox_otp(&pool)));
    let outcome = run_scenario(&scenario).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(outcome.failed_checks().is_empty(), "{:?}", outcome.failed_checks());
    assert_eq!(outcome.check("tokens").as_deref(), Some("pass"));
    assert_eq!(outcome.check("lockout").as_deref(), Some("pass"));
    let names: Vec<&str> = outcome.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, RUN_FILES, "every file read");
    let codes = mailed_codes(&pool);
    assert!(codes.len() > 10, "codes were mailed: {}", codes.len());
    outcome.assert_no_secrets(&Secrets::codes(codes));
}

/// A failing run (exit 98): the reasons describe the defects without the codes or tokens behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_reasons_of_a_failing_run() {
    let mut config = PoolConfig::default();
    config.defects.answer_in_challenge_parameters = true;
    config.defects.code_valid_after_success = true;
    config.defects.consumed_session_accepted = true;
    config.defects.token = otp_harness::pool::config::TokenDefect::WrongSub;
    let pool = own_pool(config, "bad+{n}@mail.test", 10).await;
    let rest = "[[flow]]\nkind = \"login\"\nweight = 3\n[[flow]]\nkind = \"lockout\"\nweight = 1\n[probes]\ncode_randomness = false\n[load]\nusers = 2\niterations = 4";
    let scenario =
        external_scenario(&pool, pool.endpoint(), "bad+{n}@mail.test", 10, &format!("{}\n{rest}", outbox_otp(&pool)));
    let outcome = run_scenario(&scenario).await;
    assert_eq!(outcome.code, 98, "{}", outcome.explain());
    let mut failed = outcome.failed_checks();
    failed.sort();
    assert_eq!(
        failed,
        [
            "lockout.real_code_refused",
            "probe.challenge_leak",
            "probe.code_reuse_after_success",
            "probe.session_reuse",
            "tokens"
        ]
    );
    let reasons: Vec<&str> = outcome.summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");
    assert!(outcome.stdout.contains("FAIL probe.challenge_leak"), "{}", outcome.stdout);
    let codes = mailed_codes(&pool);
    assert!(codes.len() > 10, "codes were mailed: {}", codes.len());
    outcome.assert_no_secrets(&Secrets::codes(codes));
}

/// Faults: throttling, failing triggers and an IMAP connection dropped mid-run, codes read over IMAP
/// with a password file — the warnings and error counts carry none of the secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_warnings_of_a_run_with_faults() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot");
    let mut config = PoolConfig::default();
    config.mail.relay = Some(RelayConfig {
        protocol: RelayProtocol::Lmtp,
        host: "127.0.0.1".into(),
        port: dovecot.lmtp_port,
        concurrency: 4,
    });
    config.faults.throttle.user_authentication = Some(4.0);
    config.faults.trigger = vec![TriggerFault {
        trigger: otp_harness::pool::config::Trigger::Create,
        failure: TriggerFailure::Error,
        rate: 0.35,
        after: Duration::from_secs(5),
    }];
    let pool = own_pool(config, "loadtest+{n}@mail.test", 9).await;
    let password = tempfile::NamedTempFile::new().expect("password file");
    std::fs::write(password.path(), format!("{}\n", dovecot.password)).expect("password written");
    let otp = format!(
        "[otp]\nsource = \"imap\"\ntimeout = \"10s\"\n[otp.imap]\n{}\nmode = \"idle\"\nusername = \"{}\"\npassword_file = \"{}\"\n[probes]\ncode_randomness = false\n[load]\nusers = 3\nduration = \"5s\"\nerror_backoff = \"100ms\"",
        support::run::plain_imap(&dovecot),
        dovecot.user,
        password.path().display()
    );
    let scenario = external_scenario(&pool, pool.endpoint(), "loadtest+{n}@mail.test", 9, &otp);
    let kick = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        dovecot.kick().expect("kick");
    };
    let (outcome, ()) = tokio::join!(run_scenario(&scenario), kick);
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    let count = |p: &str| outcome.summary.pointer(p).and_then(|v| v.as_u64()).unwrap_or(0);
    assert!(count("/throttled") > 0, "throttled: {}", outcome.summary);
    assert!(count("/errors/UserLambdaValidationException") > 0, "{}", outcome.summary["errors"]);
    assert!(count("/mail/reconnects") >= 1, "reconnected: {}", outcome.summary["mail"]);
    assert!(!outcome.stderr.is_empty(), "warnings were printed");
    let codes = mailed_codes(&pool);
    assert!(codes.len() > 5, "codes were mailed: {}", codes.len());
    outcome.assert_no_secrets(&Secrets::codes(codes).with_password(&dovecot.password));
}
