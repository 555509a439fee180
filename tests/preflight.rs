//! The preflight against a pool configured wrongly in each way it checks: each misconfiguration gives
//! exactly its verdict (and the default local pool passes every one); a call the credentials may not
//! make is a "skipped: AccessDenied for …" line; the command writes preflight.json and JUnit and exits
//! 3 on a failed verdict; `run` stops before the load when the preflight fails.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use otp_harness::cognito::ResolvedTarget;
use otp_harness::pool::{PoolConfig, RunningPool};
use otp_harness::preflight::{self, Preflight, Status};
use otp_harness::scenario::Scenario;
use support::run::{external_scenario, outbox_otp};
use support::start_pool;

/// A pool from `toml` (pool config keys), and the preflight of a scenario against it: `top` goes
/// before the scenario's first table (e.g. `auth = "email_otp"`), `tables` after them.
async fn preflight_of(toml: &str, top: &str, tables: &str) -> (Preflight, RunningPool) {
    let config = PoolConfig::from_toml(toml).expect("pool config");
    let pool = start_pool(config).await;
    let text = format!(
        "{top}\n{}\n{tables}",
        external_scenario(&pool, pool.endpoint(), "vu+{n}@mail.test", 12, &outbox_otp(&pool))
    );
    let scenario = Scenario::parse(&text, std::path::Path::new("preflight.toml")).expect("scenario");
    let target = ResolvedTarget::local_pool(pool.info(), Duration::from_secs(10));
    (preflight::run(&scenario, &target).await, pool)
}

/// Every verdict that did not pass: id → (status, message).
fn not_passed(p: &Preflight) -> BTreeMap<&'static str, (Status, String)> {
    p.verdicts.iter().filter(|v| v.status != Status::Pass).map(|v| (v.id, (v.status, v.message.clone()))).collect()
}

/// Asserts the preflight gives exactly these non-pass verdicts; returns their messages.
fn assert_exactly(p: &Preflight, expected: &[(&str, Status)]) -> BTreeMap<&'static str, String> {
    let found = not_passed(p);
    let ids: Vec<(&str, Status)> = found.iter().map(|(id, (s, _))| (*id, *s)).collect();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(ids, want, "{}", p.render());
    found.into_iter().map(|(id, (_, m))| (id, m)).collect()
}

const SMALL_LOAD: &str = "[load]\nusers = 2\niterations = 2\n";

#[tokio::test]
async fn the_default_local_pool_passes_every_verdict_for_either_way_of_signing_in() {
    for top in ["", "auth = \"email_otp\""] {
        let (p, _pool) = preflight_of("", top, SMALL_LOAD).await;
        assert_exactly(&p, &[]);
        let auth_specific = if top.is_empty() { "pool.triggers" } else { "pool.tier" };
        for id in [
            auth_specific,
            "client.auth_flows",
            "ses.sending_enabled",
            "ses.daily_quota",
            "ses.send_rate",
            "ses.sender_identity",
            "ses.suppression",
            "quota.user_authentication",
            "cost.estimate",
        ] {
            assert!(p.verdicts.iter().any(|v| v.id == id), "{id} judged:\n{}", p.render());
        }
    }
}

#[tokio::test]
async fn a_missing_trigger_fails_custom_auth() {
    let (p, _pool) = preflight_of("lambda_triggers = [\"define\", \"create\"]", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("pool.triggers", Status::Fail)]);
    assert!(m["pool.triggers"].contains("Verify"), "{m:?}");
}

#[tokio::test]
async fn native_email_otp_needs_the_tier_the_first_factor_and_ses_mail() {
    let (p, _pool) = preflight_of("tier = \"LITE\"", "auth = \"email_otp\"", SMALL_LOAD).await;
    assert_exactly(&p, &[("pool.tier", Status::Fail)]);
    let (p, _pool) =
        preflight_of("allowed_first_auth_factors = [\"PASSWORD\"]", "auth = \"email_otp\"", SMALL_LOAD).await;
    assert_exactly(&p, &[("pool.first_factors", Status::Fail)]);
    let (p, _pool) = preflight_of(
        "email_sending_account = \"COGNITO_DEFAULT\"",
        "auth = \"email_otp\"",
        "[load]\nusers = 4\niterations = 20\n",
    )
    .await;
    let m = assert_exactly(&p, &[("pool.email_sending", Status::Fail), ("ses", Status::Skip)]);
    assert!(m["pool.email_sending"].contains("50 mails a day"), "{m:?}");
    assert!(m["ses"].contains("COGNITO_DEFAULT"), "{m:?}");
}

#[tokio::test]
async fn threat_protection_warns() {
    let (p, _pool) = preflight_of("tier = \"PLUS\"\nthreat_protection = \"ENFORCED\"", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("pool.threat_protection", Status::Warn)]);
    assert!(m["pool.threat_protection"].contains("ENFORCED"), "{m:?}");
}

#[tokio::test]
async fn the_client_must_allow_the_flow_match_the_existence_setting_and_have_no_secret() {
    let (p, _pool) = preflight_of("explicit_auth_flows = [\"ALLOW_USER_AUTH\"]", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("client.auth_flows", Status::Fail)]);
    assert!(m["client.auth_flows"].contains("ALLOW_CUSTOM_AUTH"), "{m:?}");
    let (p, _pool) = preflight_of("prevent_user_existence_errors = \"LEGACY\"", "", SMALL_LOAD).await;
    assert_exactly(&p, &[("client.user_existence", Status::Fail)]);
    let (p, _pool) = preflight_of("client_secret = true", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("client.secret", Status::Fail)]);
    assert!(!m["client.secret"].contains("local-pool-client-secret"), "the secret's value is never shown");
}

#[tokio::test]
async fn an_otp_time_out_longer_than_the_session_warns() {
    let (p, _pool) = preflight_of("auth_session_validity = \"3m\"", "", SMALL_LOAD).await;
    assert_exactly(&p, &[]);
    let config = PoolConfig { auth_session_validity: Duration::from_secs(180), ..PoolConfig::default() };
    let pool = start_pool(config).await;
    let otp = outbox_otp(&pool).replacen("source = \"outbox\"", "source = \"outbox\"\ntimeout = \"5m\"", 1);
    let text = format!("{}\n{SMALL_LOAD}", external_scenario(&pool, pool.endpoint(), "vu+{n}@mail.test", 12, &otp));
    let scenario = Scenario::parse(&text, std::path::Path::new("p.toml")).expect("scenario");
    let p = preflight::run(&scenario, &ResolvedTarget::local_pool(pool.info(), Duration::from_secs(10))).await;
    let m = assert_exactly(&p, &[("client.session_validity", Status::Warn)]);
    assert!(m["client.session_validity"].contains("3 min") && m["client.session_validity"].contains("300s"), "{m:?}");
}

#[tokio::test]
async fn ses_paused_suppressed_unverified_or_out_of_quota_each_fail_their_verdict() {
    let (p, _pool) = preflight_of("[ses]\nsending_enabled = false", "", SMALL_LOAD).await;
    assert_exactly(&p, &[("ses.sending_enabled", Status::Fail)]);
    let (p, _pool) = preflight_of("[ses]\nmax_24_hour_send = 100\nsent_last_24_hours = 95", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("ses.daily_quota", Status::Fail)]);
    assert!(m["ses.daily_quota"].contains("5 left"), "{m:?}");
    let (p, _pool) = preflight_of("[ses]\nverified_identities = [\"mail.test\"]", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("ses.sender_identity", Status::Fail)]);
    assert!(m["ses.sender_identity"].contains("not an SES identity"), "{m:?}");
    let (p, _pool) = preflight_of(
        "[ses]\nverified_identities = [\"mail.test\"]\npending_identities = [\"auth.otp-harness.test\"]",
        "",
        SMALL_LOAD,
    )
    .await;
    let m = assert_exactly(&p, &[("ses.sender_identity", Status::Fail)]);
    assert!(m["ses.sender_identity"].contains("not verified for sending"), "{m:?}");
    let (p, _pool) =
        preflight_of("[[ses.suppressed]]\naddress = \"vu+7@mail.test\"\nreason = \"BOUNCE\"", "", SMALL_LOAD).await;
    let m = assert_exactly(&p, &[("ses.suppression", Status::Fail)]);
    assert!(m["ses.suppression"].contains("vu+7@mail.test"), "{m:?}");
}

#[tokio::test]
async fn a_load_above_the_sandbox_rate_warns_with_both_numbers() {
    let sandbox = "[ses]\nsandbox = true\nmax_24_hour_send = 200\nmax_send_rate = 1\n\
                   verified_identities = [\"auth.otp-harness.test\", \"mail.test\"]";
    let (p, _pool) =
        preflight_of(sandbox, "", "[load]\nmodel = \"open\"\nrate = 4\nduration = \"10s\"\nmax_in_flight = 4\n").await;
    let m = assert_exactly(&p, &[("ses.sandbox", Status::Warn), ("ses.send_rate", Status::Warn)]);
    assert!(m["ses.send_rate"].contains("4.0 mails/s") && m["ses.send_rate"].contains("MaxSendRate 1.0/s"), "{m:?}");
    assert!(p.verdicts.iter().any(|v| v.id == "ses.sandbox_recipients" && v.status == Status::Pass), "{}", p.render());
    // In the sandbox, unverified recipients fail.
    let unverified = "[ses]\nsandbox = true\nverified_identities = [\"auth.otp-harness.test\"]";
    let (p, _pool) = preflight_of(unverified, "", SMALL_LOAD).await;
    assert_exactly(&p, &[("ses.sandbox", Status::Warn), ("ses.sandbox_recipients", Status::Fail)]);
}

#[tokio::test]
async fn a_refused_call_is_a_skipped_line_naming_the_action() {
    let (p, _pool) =
        preflight_of("[faults]\naccess_denied = [\"GetAccount\", \"DescribeUserPool\"]", "", SMALL_LOAD).await;
    let m = assert_exactly(
        &p,
        &[("pool", Status::Skip), ("ses.account", Status::Skip), ("ses.sender_identity", Status::Skip)],
    );
    assert_eq!(m["pool"], "skipped: AccessDenied for cognito-idp:DescribeUserPool");
    assert_eq!(m["ses.account"], "skipped: AccessDenied for ses:GetAccount");
    assert!(m["ses.sender_identity"].starts_with("skipped: AccessDenied for cognito-idp:DescribeUserPool"), "{m:?}");
    let (p, _pool) = preflight_of(
        "[faults]\naccess_denied = [\"ListSuppressedDestinations\", \"GetSuppressedDestination\"]",
        "",
        SMALL_LOAD,
    )
    .await;
    let m = assert_exactly(&p, &[("ses.suppression", Status::Skip)]);
    assert_eq!(m["ses.suppression"], "skipped: AccessDenied for ses:GetSuppressedDestination");
}

#[tokio::test]
async fn quotas_and_cost_warn_with_their_numbers() {
    let open = "[load]\nmodel = \"open\"\nrate = 150\nduration = \"10s\"\nmax_in_flight = 6\n";
    let (p, _pool) = preflight_of("", "", open).await;
    let m = assert_exactly(&p, &[("quota.user_authentication", Status::Warn)]);
    assert!(
        m["quota.user_authentication"].contains("150.0/s") && m["quota.user_authentication"].contains("120/s"),
        "{m:?}"
    );
    let (p, _pool) = preflight_of("", "", &format!("{SMALL_LOAD}[preflight]\nwarn_cost_above = 0.0\n")).await;
    let m = assert_exactly(&p, &[("cost.estimate", Status::Warn)]);
    assert!(m["cost.estimate"].contains("monthly active users"), "{m:?}");
}

/// The command: verdict lines on stdout, preflight.json and JUnit written, exit 3 on a failed verdict;
/// and `run` stops before the load (exit 3) unless `--no-preflight`.
#[tokio::test]
async fn the_command_and_the_run_act_on_a_failed_verdict() {
    let pool = start_pool(PoolConfig { client_secret: true, ..PoolConfig::default() }).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("s.toml");
    let text = format!(
        "{}\n{SMALL_LOAD}",
        external_scenario(&pool, pool.endpoint(), "vu+{n}@mail.test", 12, &outbox_otp(&pool))
    );
    std::fs::write(&file, text).expect("written");
    let out_dir = temp.path().join("pf");
    let output = support::run::harness_command()
        .args(["preflight", &file.to_string_lossy(), "--out", &out_dir.to_string_lossy()])
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().any(|l| l.trim_start().starts_with("FAIL  client.secret")), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("preflight.json")).expect("preflight.json"))
            .expect("JSON");
    let failed: Vec<&str> = json["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .filter(|v| v["status"] == "fail")
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(failed, ["client.secret"]);
    let junit = std::fs::read_to_string(out_dir.join("preflight.junit.xml")).expect("junit");
    assert_eq!(junit.matches("<testcase ").count(), json["verdicts"].as_array().map_or(0, Vec::len));
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");

    let text = std::fs::read_to_string(&file).expect("scenario");
    let stopped = support::run::run_scenario(&text).await;
    assert_eq!(stopped.code, 3, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("the preflight failed (1 verdict(s))"), "{}", stopped.stderr);
    assert!(stopped.summary.is_null(), "no load ran, no summary");
    let forced = support::run::run_with_args(&text, &["--no-preflight"]).await;
    assert!(!forced.stderr.contains("the preflight failed"), "{}", forced.stderr);
    assert!(!forced.summary.is_null(), "--no-preflight runs the load, which then fails on its own: {}", forced.stderr);
}

/// A real third-party SES: moto serves GetEmailIdentity but not GetAccount nor the suppression list —
/// what it has is judged, what it lacks is a clear skipped line, as a refused call is.
#[tokio::test]
async fn the_ses_checks_against_moto_judge_what_it_serves_and_skip_what_it_lacks() {
    use aws_sdk_sesv2 as sesv2;
    let moto =
        otp_harness::testkit::s3server::S3Server::start().await.expect("moto server (scripts/install-test-deps.sh)");
    let ses = sesv2::Client::from_conf(
        sesv2::Config::builder()
            .behavior_version(sesv2::config::BehaviorVersion::latest())
            .region(sesv2::config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(sesv2::config::Credentials::new("test", "test", None, None, "tests"))
            .build(),
    );
    ses.create_email_identity().email_identity("codes@pending.test").send().await.expect("CreateEmailIdentity");
    let pool = start_pool(PoolConfig::default()).await;
    // moto answers a created identity as not yet verified for sending (as SES does until the owner
    // confirms it), and an unknown one with NotFoundException: both are moto's answers, judged.
    for (from, expected) in
        [("codes@pending.test", "is not verified for sending"), ("codes@unknown.test", "is not an SES identity")]
    {
        let otp =
            outbox_otp(&pool).replacen("source = \"outbox\"", &format!("source = \"outbox\"\nfrom = \"{from}\""), 1);
        let text = format!(
            "{}\n{SMALL_LOAD}",
            external_scenario(&pool, pool.endpoint(), "vu+{n}@mail.test", 12, &otp).replacen(
                "[users]",
                &format!("ses_endpoint_url = \"{}\"\n[users]", moto.endpoint()),
                1
            )
        );
        let scenario = Scenario::parse(&text, std::path::Path::new("moto.toml")).expect("scenario");
        let p = preflight::run(&scenario, &ResolvedTarget::local_pool(pool.info(), Duration::from_secs(10))).await;
        let verdict = |id: &str| p.verdicts.iter().find(|v| v.id == id).cloned().expect(id);
        let sender = verdict("ses.sender_identity");
        assert_eq!(sender.status, Status::Fail, "{}", p.render());
        assert!(sender.message.contains(from) && sender.message.contains(expected), "{}", p.render());
        for id in ["ses.account", "ses.suppression"] {
            let v = verdict(id);
            assert_eq!(v.status, Status::Skip, "{}", p.render());
            assert!(
                v.message.starts_with("skipped: ses:") && v.message.contains("is not served by this endpoint"),
                "{}",
                p.render()
            );
        }
    }
}
