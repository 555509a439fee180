//! Every injected fault of the local pool is observable from a client.

mod support;

use std::time::{Duration, Instant};

use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::{ThrottleConfig, Trigger, TriggerFailure, TriggerFault};
use support::*;

#[tokio::test]
async fn added_latency_delays_the_operation() {
    let mut config = PoolConfig::default();
    config.faults.latency.insert("InitiateAuth".into(), Duration::from_millis(250));
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = Instant::now();
    initiate(&client, &pool, USER).await.expect("initiate");
    assert!(started.elapsed() >= Duration::from_millis(250), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn throttling_answers_too_many_requests_past_the_quota() {
    let mut config = PoolConfig::default();
    config.faults.throttle = ThrottleConfig { user_authentication: Some(2.0), ..Default::default() };
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let mut throttled = 0;
    let mut admitted = 0;
    for _ in 0..8 {
        match initiate(&client, &pool, USER).await {
            Ok(_) => admitted += 1,
            Err(e) => {
                assert_eq!(service_error(e), ("TooManyRequestsException".to_string(), "Rate exceeded".to_string()));
                throttled += 1;
            }
        }
    }
    assert!(admitted >= 2 && throttled >= 4, "admitted {admitted}, throttled {throttled}");
    assert_eq!(pool.state().stats_snapshot().errors.get("TooManyRequestsException"), Some(&throttled));
    // Each quota category has a bucket of its own.
    let admin = client.admin_get_user().user_pool_id(&pool.info().user_pool_id).username(USER).send().await;
    assert!(admin.is_ok(), "other categories are not throttled");
}

#[tokio::test]
async fn delayed_mail_arrives_late() {
    let mut config = PoolConfig::default();
    config.faults.mail.delay = Duration::from_millis(1000);
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    initiate(&client, &pool, USER).await.expect("initiate");
    assert!(codes_for(&pool, USER).await.is_empty(), "not there yet");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(codes_for(&pool, USER).await.len(), 1);
}

#[tokio::test]
async fn duplicated_mail_arrives_twice_with_the_same_code() {
    let mut config = PoolConfig::default();
    config.faults.mail.duplicate_rate = 1.0;
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    initiate(&client, &pool, USER).await.expect("initiate");
    let codes = codes_for(&pool, USER).await;
    assert_eq!(codes.len(), 2);
    assert_eq!(codes[0], codes[1]);
    assert_eq!(pool.state().stats_snapshot().mail.duplicated, 1);
}

#[tokio::test]
async fn lost_mail_never_arrives_but_the_challenge_does() {
    let mut config = PoolConfig::default();
    config.faults.mail.loss_rate = 1.0;
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("a challenge all the same");
    assert!(started.session().is_some());
    assert!(codes_for(&pool, USER).await.is_empty());
    assert_eq!(pool.state().stats_snapshot().mail.lost, 1);
}

fn with_trigger_fault(trigger: Trigger, failure: TriggerFailure) -> PoolConfig {
    let mut config = PoolConfig::default();
    config.faults.trigger.push(TriggerFault { trigger, failure, rate: 1.0, after: Duration::from_millis(200) });
    config
}

#[tokio::test]
async fn trigger_failures_surface_as_cognitos_lambda_errors() {
    let cases = [
        (
            Trigger::Create,
            TriggerFailure::Error,
            "UserLambdaValidationException",
            "CreateAuthChallenge failed with error Injected fault.",
        ),
        (Trigger::Define, TriggerFailure::BadOutput, "InvalidLambdaResponseException", "Unrecognizable lambda output"),
        (
            Trigger::Create,
            TriggerFailure::Timeout,
            "UnexpectedLambdaException",
            "CreateAuthChallenge invocation failed due to error Socket timeout while invoking Lambda function.",
        ),
    ];
    for (trigger, failure, kind, message) in cases {
        let pool = start_pool(with_trigger_fault(trigger, failure)).await;
        let client = sdk(&pool);
        let started = Instant::now();
        let err = initiate(&client, &pool, USER).await.unwrap_err();
        assert_eq!(service_error(err), (kind.to_string(), message.to_string()), "{trigger:?} {failure:?}");
        if failure == TriggerFailure::Timeout {
            assert!(started.elapsed() >= Duration::from_millis(200), "a time-out waits first");
        }
    }
}

#[tokio::test]
async fn a_failing_verify_trigger_fails_the_answer() {
    let pool = start_pool(with_trigger_fault(Trigger::Verify, TriggerFailure::Error)).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate works: Verify runs on answers");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let code = latest_code(&pool, USER).await;
    let err = respond(&client, &pool, &session, &username, &code).await.unwrap_err();
    assert_eq!(
        service_error(err),
        (
            "UserLambdaValidationException".to_string(),
            "VerifyAuthChallengeResponse failed with error Injected fault.".to_string()
        )
    );
}
