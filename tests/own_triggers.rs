//! The local pool running a team's own Define / Create / Verify handlers (tests/triggers/): Node.js
//! (CommonJS and ES modules, mailing with `@aws-sdk/client-ses` / `client-sesv2`) and Python (boto3),
//! driven by the AWS SDK for Rust. The events the handlers get, Cognito's errors for a handler that
//! throws, hangs, answers garbage or dies, one clear error at start for a bad setup, both username modes,
//! and a runtime killed under load. Node.js packages come from `npm ci` in tests/triggers and Python's
//! boto3 from `.venv` (scripts/install-test-deps.sh makes both); a missing one is a failure, not a skip.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use otp_harness::pool::config::PreventUserExistenceErrors;
use otp_harness::pool::triggers::TriggersConfig;
use otp_harness::pool::{LocalPool, PoolConfig};
use serde_json::Value;
use support::*;

const MAIL_FROM: &str = "no-reply@auth.otp-harness.test";

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/triggers");
    assert!(
        dir.join("node_modules/@aws-sdk/client-ses").is_dir(),
        "tests/triggers/node_modules is missing: run scripts/install-test-deps.sh (npm ci in tests/triggers)"
    );
    dir
}

/// `OTP_HARNESS_PYTHON`, or the project's `.venv` (moto brings boto3).
fn python() -> String {
    if let Some(path) = std::env::var_os("OTP_HARNESS_PYTHON") {
        return path.to_string_lossy().into_owned();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run scripts/install-test-deps.sh", venv.display());
    venv.display().to_string()
}

/// The folder's define/create/verify handlers (`None` leaves that trigger built in).
fn triggers(folder: &str, define: Option<&str>, create: Option<&str>, verify: Option<&str>) -> TriggersConfig {
    TriggersConfig {
        code_dir: Some(fixtures().join(folder)),
        define: define.map(String::from),
        create: create.map(String::from),
        verify: verify.map(String::from),
        environment: [("MAIL_FROM".to_string(), MAIL_FROM.to_string())].into(),
        python: python(),
        ..TriggersConfig::default()
    }
}

fn all_three(folder: &str) -> TriggersConfig {
    triggers(folder, Some("define.handler"), Some("create.handler"), Some("verify.handler"))
}

fn with_triggers(triggers: TriggersConfig) -> PoolConfig {
    PoolConfig { triggers, ..PoolConfig::default() }
}

/// A sign-in answered wrong once, then right; then three wrong answers end a second sign-in.
async fn sign_in_with_a_retry_and_a_lockout(config: PoolConfig) {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let first = latest_code(&pool, USER).await;
    let again = respond(&client, &pool, &session, &username, &wrong_code(&first)).await.expect("a new round");
    let (session, _) = challenge_of(again.session(), again.challenge_parameters());
    let codes = codes_for(&pool, USER).await;
    assert_eq!(codes.len(), 2, "the team's Create mailed a new code for round 2");
    let done = respond(&client, &pool, &session, &username, &codes[1]).await.expect("the right code");
    assert!(done.authentication_result().and_then(|r| r.id_token()).is_some(), "tokens");

    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (mut session, _) = challenge_of(started.session(), started.challenge_parameters());
    for round in 1..=3 {
        let code = latest_code(&pool, USER).await;
        match respond(&client, &pool, &session, &username, &wrong_code(&code)).await {
            Ok(next) if round < 3 => session = next.session().expect("session").to_string(),
            Err(e) if round == 3 => {
                assert_eq!(
                    service_error(e),
                    ("NotAuthorizedException".into(), "Incorrect username or password.".into())
                );
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    let stats: Value =
        reqwest::get(format!("{}/_pool/stats", pool.endpoint())).await.expect("stats").json().await.expect("json");
    for (trigger, calls) in [("DefineAuthChallenge", 7), ("CreateAuthChallenge", 5), ("VerifyAuthChallengeResponse", 5)]
    {
        let function = &stats["triggers"][trigger];
        if !function.is_null() {
            assert_eq!(function["invocations"], calls, "{trigger}: {stats}");
            assert_eq!(function["cold_starts"], 1, "one runtime served every call of {trigger}");
            assert_eq!(function["handler_errors"], 0);
        }
    }
    assert_eq!(stats["ses"]["accepted"], 5, "the team's Create mailed every code through SES: {stats}");
}

/// Verifies a token against the pool's JWKS as aws-jwt-verify does; its claims.
fn verify(jwks: &Value, token: &str, issuer: &str, audience: Option<&str>) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses");
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("RSA key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token verifies").claims
}

#[tokio::test]
async fn node_commonjs_triggers_sign_in_mailing_through_ses_v1() {
    sign_in_with_a_retry_and_a_lockout(with_triggers(all_three("node-cjs"))).await;
}

#[tokio::test]
async fn node_es_module_triggers_sign_in_mailing_through_ses_v2() {
    sign_in_with_a_retry_and_a_lockout(with_triggers(triggers(
        "node-esm",
        Some("define.handler"),
        Some("create.handler"),
        Some("verify.handler"),
    )))
    .await;
}

#[tokio::test]
async fn python_triggers_sign_in_mailing_through_boto3() {
    sign_in_with_a_retry_and_a_lockout(with_triggers(all_three("python"))).await;
}

#[tokio::test]
async fn a_team_create_with_the_built_in_define_and_verify_signs_in() {
    // The built-in Verify compares the answer with the private parameter `answer`.
    sign_in_with_a_retry_and_a_lockout(with_triggers(triggers("node-cjs", None, Some("create.handler"), None))).await;
}

/// The events each trigger got, in order.
fn recorded(file: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .expect("record file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line"))
        .collect()
}

#[tokio::test]
async fn triggers_get_the_events_cognito_sends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("events.jsonl");
    let mut config = with_triggers(all_three("recorder"));
    config.triggers.environment.insert("RECORD_FILE".into(), record.display().to_string());
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    assert_eq!(started.challenge_parameters().and_then(|p| p.get("hint")).map(String::as_str), Some("fixed"));
    let next = client
        .respond_to_auth_challenge()
        .client_id(&pool.info().client_id)
        .challenge_name(cip::types::ChallengeNameType::CustomChallenge)
        .session(&session)
        .challenge_responses("USERNAME", &username)
        .challenge_responses("ANSWER", "012345")
        .client_metadata("app", "tests")
        .send()
        .await
        .expect("a second round");
    respond(&client, &pool, next.session().expect("session"), &username, "sesame").await.expect("tokens");

    let seen = recorded(&record);
    let sources: Vec<&str> = seen.iter().map(|s| s["event"]["triggerSource"].as_str().expect("source")).collect();
    assert_eq!(
        sources,
        [
            "DefineAuthChallenge_Authentication",
            "CreateAuthChallenge_Authentication",
            "VerifyAuthChallengeResponse_Authentication",
            "DefineAuthChallenge_Authentication",
            "CreateAuthChallenge_Authentication",
            "VerifyAuthChallengeResponse_Authentication",
            "DefineAuthChallenge_Authentication",
        ]
    );
    let first = &seen[0]["event"];
    assert_eq!(first["version"], "1");
    assert_eq!(first["region"], "us-east-1");
    assert_eq!(first["userPoolId"], pool.info().user_pool_id.as_str());
    assert_eq!(first["userName"], username.as_str(), "the internal (UUID) username");
    assert_eq!(first["callerContext"]["clientId"], pool.info().client_id.as_str());
    assert_eq!(first["callerContext"]["awsSdkVersion"], "aws-sdk-unknown-unknown");
    assert_eq!(first["request"]["userAttributes"]["email"], USER);
    assert_eq!(first["request"]["userAttributes"]["sub"], username.as_str());
    assert_eq!(first["request"]["userAttributes"]["email_verified"], "true");
    assert_eq!(first["request"]["session"], Value::Array(vec![]));
    assert_eq!(first["request"]["userNotFound"], false);
    assert!(first["request"].get("clientMetadata").is_none(), "InitiateAuth's metadata never reaches Define");
    assert_eq!(
        first["response"],
        serde_json::json!({ "challengeName": null, "issueTokens": null, "failAuthentication": null })
    );

    let verify = &seen[2]["event"];
    assert_eq!(verify["request"]["challengeAnswer"], "012345", "the answer as sent, a string");
    assert_eq!(verify["request"]["privateChallengeParameters"], serde_json::json!({ "answer": "sesame" }));
    assert_eq!(verify["request"]["clientMetadata"], serde_json::json!({ "app": "tests" }));
    assert_eq!(verify["response"], serde_json::json!({ "answerCorrect": null }));

    let define = &seen[3]["event"];
    assert_eq!(
        define["request"]["session"],
        serde_json::json!([{ "challengeName": "CUSTOM_CHALLENGE", "challengeResult": false, "challengeMetadata": "ROUND-1" }])
    );
    let create = &seen[4]["event"];
    assert_eq!(create["request"]["challengeName"], "CUSTOM_CHALLENGE");
    assert_eq!(create["request"]["session"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        create["response"],
        serde_json::json!({ "publicChallengeParameters": null, "privateChallengeParameters": null, "challengeMetadata": null })
    );

    let context = &seen[1]["context"];
    assert_eq!(context["functionName"], "otp-harness-create-auth-challenge");
    assert!(context["remaining"].as_u64().is_some_and(|ms| ms > 0 && ms <= 5000), "{context}");
    assert_ne!(seen[1]["context"]["awsRequestId"], seen[4]["context"]["awsRequestId"]);
    let env = &seen[1]["env"];
    assert_eq!(env["AWS_ENDPOINT_URL"], pool.endpoint());
    assert_eq!(env["AWS_ENDPOINT_URL_SESV2"], pool.endpoint());
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_PROFILE"], Value::Null, "nothing of the developer's AWS setup");
    assert_eq!(env["_HANDLER"], "create.handler");
    assert_eq!(env["TZ"], "UTC");
    assert_eq!(env["MAIL_FROM"], MAIL_FROM);
    assert_eq!(seen[1]["pid"], seen[4]["pid"], "a warm runtime serves the next call");
}

#[tokio::test]
async fn unknown_users_reach_the_triggers_with_user_not_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let record = dir.path().join("events.jsonl");
    let mut config = with_triggers(all_three("recorder"));
    config.triggers.environment.insert("RECORD_FILE".into(), record.display().to_string());
    config.prevent_user_existence_errors = PreventUserExistenceErrors::Enabled;
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, "nobody@mail.test").await.expect("a challenge, as for anyone");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let answer = respond(&client, &pool, &session, &username, "sesame").await;
    assert_eq!(
        service_error(answer.expect_err("no tokens for nobody")),
        ("NotAuthorizedException".into(), "Incorrect username or password.".into())
    );
    let seen = recorded(&record);
    assert_eq!(seen[0]["event"]["request"]["userNotFound"], true);
    assert_eq!(seen[0]["event"]["userName"], "nobody@mail.test");
    assert_eq!(seen[0]["event"]["request"]["userAttributes"], serde_json::json!({}));
}

/// The error a sign-in gets from InitiateAuth (Define and Create run there) or, when it gets a
/// challenge, from answering it.
async fn first_error(config: PoolConfig) -> (String, String) {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    match initiate(&client, &pool, USER).await {
        Err(e) => service_error(e),
        Ok(started) => {
            let (session, username) = challenge_of(started.session(), started.challenge_parameters());
            service_error(respond(&client, &pool, &session, &username, "123456").await.expect_err("an error"))
        }
    }
}

#[tokio::test]
async fn a_throwing_trigger_is_a_user_lambda_validation_exception() {
    let config = with_triggers(triggers("broken", None, Some("throws.handler"), None));
    assert_eq!(
        first_error(config).await,
        (
            "UserLambdaValidationException".into(),
            "CreateAuthChallenge failed with error the code store is unavailable.".into()
        )
    );
    let config = with_triggers(triggers("broken", None, Some("pythrows.handler"), None));
    assert_eq!(
        first_error(config).await,
        ("UserLambdaValidationException".into(), "CreateAuthChallenge failed with error 'challengeMetaData'.".into())
    );
}

#[tokio::test]
async fn a_hanging_trigger_times_out_as_cognito_does_and_is_replaced() {
    for (handler, trigger) in [("hangs.handler", "verify"), ("spins.handler", "verify")] {
        let mut config = with_triggers(triggers("broken", None, None, Some(handler)));
        config.triggers.timeout = Duration::from_millis(800);
        let pool = start_pool(config).await;
        let client = sdk(&pool);
        for _ in 0..2 {
            let started = initiate(&client, &pool, USER).await.expect("built-in Define and Create");
            let (session, username) = challenge_of(started.session(), started.challenge_parameters());
            let code = latest_code(&pool, USER).await;
            let error = respond(&client, &pool, &session, &username, &code).await.expect_err("timed out");
            assert_eq!(
                service_error(error),
                (
                    "UnexpectedLambdaException".into(),
                    "VerifyAuthChallengeResponse invocation failed due to error Socket timeout while invoking Lambda function."
                        .into()
                ),
                "{handler} as {trigger}"
            );
        }
        let stats = pool.state().stats_snapshot();
        let verify = &stats.triggers["VerifyAuthChallengeResponse"];
        assert_eq!(verify.timeouts, 2, "{handler}");
        assert_eq!(verify.cold_starts, 2, "the killed runtime was replaced by the second call ({handler})");
        assert!(verify.runtimes <= 1, "the hung runtimes are gone ({handler})");
    }
}

#[tokio::test]
async fn unreadable_answers_are_invalid_lambda_responses() {
    for (config, what) in [
        (with_triggers(triggers("broken", None, None, Some("malformed.handler"))), "not the event"),
        (with_triggers(triggers("broken", None, Some("nested.handler"), None)), "a nested parameter"),
    ] {
        assert_eq!(
            first_error(config).await,
            ("InvalidLambdaResponseException".into(), "Unrecognizable lambda output".into()),
            "{what}"
        );
    }
}

#[tokio::test]
async fn numbers_in_challenge_parameters_are_coerced_or_refused_when_strict() {
    let pool = start_pool(with_triggers(all_three("tutorial"))).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let code = latest_code(&pool, USER).await;
    respond(&client, &pool, &session, &username, &code).await.expect("the number became its text: it matches");
    assert_eq!(pool.state().stats_snapshot().triggers["CreateAuthChallenge"].coerced_values, 1);

    let mut strict = with_triggers(all_three("tutorial"));
    strict.triggers.strict_parameters = true;
    assert_eq!(
        first_error(strict).await,
        ("InvalidLambdaResponseException".into(), "Unrecognizable lambda output".into())
    );
}

#[tokio::test]
async fn a_runtime_that_dies_fails_its_call_only() {
    let config = with_triggers(triggers("broken", Some("crashes.handler"), None, None));
    let (kind, message) = first_error(config).await;
    assert_eq!(kind, "UserLambdaValidationException");
    assert!(message.starts_with("DefineAuthChallenge failed with error RequestId: "), "{message}");
    assert!(message.ends_with(" Error: Runtime exited with error: exit status 129."), "{message}");
}

/// The error `LocalPool::start` gives for a config.
async fn start_error(config: PoolConfig) -> String {
    match LocalPool::start(config, "127.0.0.1:0".parse().expect("address")).await {
        Ok(_) => panic!("the pool started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_setups_fail_at_start_with_one_clear_error() {
    let cases: [(TriggersConfig, &[&str]); 8] = [
        (
            triggers("broken", Some("syntax.handler"), None, None),
            &["DefineAuthChallenge", "Runtime.UserCodeSyntaxError", "SyntaxError", "syntax.js:"],
        ),
        (
            triggers("broken", None, None, Some("pysyntax.handler")),
            &["VerifyAuthChallengeResponse", "Runtime.UserCodeSyntaxError", "pysyntax.py, line 4"],
        ),
        (
            triggers("broken", None, Some("noexport.handler"), None),
            &["Runtime.HandlerNotFound", "noexport.handler is undefined or not exported"],
        ),
        (
            triggers("broken", None, Some("missing.handler"), None),
            &[
                "Runtime.ImportModuleError",
                "cannot find module 'left-pad-not-installed'",
                "tests/triggers/node_modules",
            ],
        ),
        (
            triggers("broken", None, Some("pymissing.handler"), None),
            &["Runtime.ImportModuleError", "No module named 'not_installed_anywhere'", "looked for it in"],
        ),
        (triggers("broken", Some("absent.handler"), None, None), &["triggers.define", "no handler file", "absent.js"]),
        (
            TriggersConfig {
                node: "node-not-installed-here".into(),
                ..triggers("node-cjs", Some("define.handler"), None, None)
            },
            &["needs Node.js", "node-not-installed-here", "triggers.node"],
        ),
        (
            TriggersConfig {
                python: "/nonexistent/python3".into(),
                ..triggers("python", Some("define.handler"), None, None)
            },
            &["needs Python", "/nonexistent/python3", "triggers.python"],
        ),
    ];
    for (triggers, needles) in cases {
        let error = tokio::time::timeout(Duration::from_secs(30), start_error(with_triggers(triggers)))
            .await
            .expect("a bad setup never hangs");
        for needle in needles {
            assert!(error.contains(needle), "{needle:?} not in: {error}");
        }
    }
}

#[tokio::test]
async fn mailing_the_username_works_only_where_the_username_is_the_address() {
    let mut config = with_triggers(all_three("username-mailer"));
    config.username_attributes = Vec::new();
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    assert_eq!(username, USER, "without username attributes, the username is the address");
    let code = latest_code(&pool, USER).await;
    let done = respond(&client, &pool, &session, &username, &code).await.expect("tokens");
    let jwks: Value = reqwest::get(&pool.info().jwks_uri).await.expect("jwks").json().await.expect("json");
    let id = verify(
        &jwks,
        done.authentication_result().and_then(|r| r.id_token()).expect("id"),
        &pool.info().issuer,
        Some(&pool.info().client_id),
    );
    assert_eq!(id["cognito:username"], USER);
    assert_ne!(id["sub"], USER);
    drop(pool);

    let error = first_error(with_triggers(all_three("username-mailer"))).await;
    assert_eq!(
        error,
        (
            "UserLambdaValidationException".into(),
            "CreateAuthChallenge failed with error Missing final '@domain'.".into()
        ),
        "SES refuses the UUID the trigger mailed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_killed_under_load_costs_only_its_call() {
    let mut config = with_triggers(all_three("node-cjs"));
    config.users.pattern = Some("loadtest+{n}@mail.test".into());
    config.users.count = 8;
    let pool = std::sync::Arc::new(start_pool(config).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 1..=8 {
        let (pool, stop) = (std::sync::Arc::clone(&pool), std::sync::Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let client = sdk(&pool);
            let user = format!("loadtest+{n}@mail.test");
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let result = async {
                    let started = initiate(&client, &pool, &user).await.map_err(service_error)?;
                    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
                    let code = latest_code(&pool, &user).await;
                    respond(&client, &pool, &session, &username, &code).await.map_err(service_error)
                }
                .await;
                match result {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victims = pool.state().triggers.as_ref().expect("triggers").pids(otp_harness::pool::config::Trigger::Create);
    assert!(!victims.is_empty());
    for pid in &victims {
        let status = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().expect("kill runs");
        assert!(status.success());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total_ok = 0;
    let mut failures = Vec::new();
    for task in tasks {
        let (ok, failed) =
            tokio::time::timeout(Duration::from_secs(30), task).await.expect("nothing hangs").expect("task");
        total_ok += ok;
        failures.extend(failed);
    }
    let create = &pool.state().stats_snapshot().triggers["CreateAuthChallenge"];
    assert!(total_ok > 16, "the run went on: {total_ok} sign-ins");
    assert!(failures.len() <= victims.len(), "at most the calls in flight failed: {failures:?}");
    for (kind, message) in &failures {
        assert_eq!(kind, "UserLambdaValidationException");
        assert!(message.ends_with("Runtime exited with error: signal: killed."), "{message}");
    }
    assert_eq!(create.runtime_exits as usize, victims.len(), "every loss is counted");
    assert!(create.cold_starts as usize > victims.len(), "replacements started");
}

/// The text of the newest message in the Dovecot mailbox (waits up to 10 s for one).
async fn newest_imap_text(dovecot: &otp_harness::testkit::dovecot::Dovecot, count: usize) -> String {
    use futures::TryStreamExt;
    let mut imap = dovecot.login().await.expect("imap login");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let raw = loop {
        imap.select("INBOX").await.expect("select");
        let uids = imap.uid_search("ALL").await.expect("search");
        if uids.len() >= count
            && let Some(uid) = uids.into_iter().max()
        {
            let fetched: Vec<_> = imap
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .await
                .expect("fetch")
                .try_collect()
                .await
                .expect("fetched");
            break fetched[0].body().expect("body").to_vec();
        }
        assert!(std::time::Instant::now() < deadline, "the trigger's mail reached the mailbox within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    imap.logout().await.ok();
    let message = mail_parser::MessageParser::default().parse(&raw[..]).expect("MIME");
    message.body_text(0).expect("text part").into_owned()
}

#[tokio::test]
async fn mail_a_trigger_sends_through_ses_reaches_the_outbox_dovecot_and_s3() {
    use otp_harness::pool::config::{RelayConfig, RelayProtocol, S3SinkConfig};
    let dovecot = otp_harness::testkit::dovecot::Dovecot::start("loadtest@mail.test").await.expect("dovecot starts");
    let s3 = otp_harness::testkit::s3server::S3Server::start().await.expect("S3 server starts");
    let s3_client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(s3.endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
            .force_path_style(true)
            .build(),
    );
    // SES v1 from Node.js (@aws-sdk/client-ses), then SES v2 from Python (boto3).
    for (round, folder) in ["node-cjs", "python"].into_iter().enumerate() {
        let mut config = with_triggers(all_three(folder));
        config.mail.relay = Some(RelayConfig {
            protocol: RelayProtocol::Lmtp,
            host: "127.0.0.1".into(),
            port: dovecot.lmtp_port,
            concurrency: 2,
        });
        let prefix = format!("{folder}/");
        config.mail.s3 = Some(S3SinkConfig {
            endpoint_url: s3.endpoint(),
            bucket: "otp-mail".into(),
            prefix: prefix.clone(),
            region: "us-east-1".into(),
            create_bucket: true,
        });
        let pool = start_pool(config).await;
        let client = sdk(&pool);
        let started = initiate(&client, &pool, USER).await.expect("initiate");
        let (session, username) = challenge_of(started.session(), started.challenge_parameters());

        let from_outbox = latest_code(&pool, USER).await;
        let from_imap = code_in(&newest_imap_text(&dovecot, round + 1).await);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let key = loop {
            let listed = s3_client.list_objects_v2().bucket("otp-mail").prefix(&prefix).send().await.expect("list");
            if let Some(key) = listed.contents().first().and_then(|o| o.key()) {
                break key.to_string();
            }
            assert!(std::time::Instant::now() < deadline, "the trigger's mail reached S3 within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let object = s3_client.get_object().bucket("otp-mail").key(&key).send().await.expect("get");
        let raw = object.body.collect().await.expect("body").into_bytes();
        let message = mail_parser::MessageParser::default().parse(&raw[..]).expect("MIME");
        let from_s3 = code_in(&message.body_text(0).expect("text"));
        assert_eq!((&from_imap, &from_s3), (&from_outbox, &from_outbox), "{folder}: the same mail in every sink");
        assert_eq!(message.from().and_then(|a| a.first()).and_then(|a| a.address()), Some(MAIL_FROM), "{folder}");

        let done = respond(&client, &pool, &session, &username, &from_imap).await.expect("the code read over IMAP");
        assert!(done.authentication_result().is_some(), "{folder}");
        assert_eq!(pool.state().stats_snapshot().mail.relayed, 1, "{folder}");
    }
}
