//! Shared helpers for the integration tests: an in-process pool, an AWS SDK client pointed at it, and
//! code and token readers.
#![allow(dead_code)]

pub mod run;
pub mod secrets;

use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use cip::error::{ProvideErrorMetadata, SdkError};
use otp_harness::pool::{LocalPool, PoolConfig, RunningPool};

pub const USER: &str = "loadtest+1@mail.test";

/// A pool on a free loopback port with `USER` (and `loadtest+2..n`) created.
pub async fn start_pool(mut config: PoolConfig) -> RunningPool {
    if config.users.pattern.is_none() {
        config.users.pattern = Some("loadtest+{n}@mail.test".into());
        config.users.count = 3;
    }
    LocalPool::start(config, "127.0.0.1:0".parse().expect("address")).await.expect("pool starts")
}

/// The Rust AWS SDK pointed at the pool: dummy credentials, retries off.
pub fn sdk(pool: &RunningPool) -> cip::Client {
    let config = cip::Config::builder()
        .behavior_version(cip::config::BehaviorVersion::latest())
        .region(cip::config::Region::new(pool.info().region.clone()))
        .endpoint_url(pool.endpoint())
        .credentials_provider(cip::config::Credentials::new("test", "test", None, None, "tests"))
        .retry_config(cip::config::retry::RetryConfig::disabled())
        .timeout_config(
            cip::config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build(),
        )
        .build();
    cip::Client::from_conf(config)
}

/// The `__type` and message of a service error (panics on transport errors: tests expect a service answer).
pub fn service_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> (String, String) {
    match err.as_service_error() {
        Some(e) => (e.code().unwrap_or("").to_string(), e.message().unwrap_or("").to_string()),
        None => panic!("expected a service error, got {err:?}"),
    }
}

/// Starts a custom-auth sign-in for `username`.
pub async fn initiate(
    client: &cip::Client,
    pool: &RunningPool,
    username: &str,
) -> Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    SdkError<cip::operation::initiate_auth::InitiateAuthError, cip::config::http::HttpResponse>,
> {
    client
        .initiate_auth()
        .auth_flow(cip::types::AuthFlowType::CustomAuth)
        .client_id(&pool.info().client_id)
        .auth_parameters("USERNAME", username)
        .send()
        .await
}

/// Answers the current challenge.
pub async fn respond(
    client: &cip::Client,
    pool: &RunningPool,
    session: &str,
    username: &str,
    answer: &str,
) -> Result<
    cip::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
    SdkError<cip::operation::respond_to_auth_challenge::RespondToAuthChallengeError, cip::config::http::HttpResponse>,
> {
    client
        .respond_to_auth_challenge()
        .client_id(&pool.info().client_id)
        .challenge_name(cip::types::ChallengeNameType::CustomChallenge)
        .session(session)
        .challenge_responses("USERNAME", username)
        .challenge_responses("ANSWER", answer)
        .send()
        .await
}

/// Codes mailed to `to`, oldest first, read from the outbox over HTTP (`GET /_aws/ses?to=`).
pub async fn codes_for(pool: &RunningPool, to: &str) -> Vec<String> {
    let url = format!("{}/_aws/ses", pool.endpoint());
    let body: serde_json::Value = reqwest::Client::new()
        .get(url)
        .query(&[("to", to)])
        .send()
        .await
        .expect("outbox answers")
        .json()
        .await
        .expect("outbox JSON");
    body["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| code_in(m["Body"]["text_part"].as_str().expect("text part")))
        .collect()
}

/// The newest code mailed to `to`.
pub async fn latest_code(pool: &RunningPool, to: &str) -> String {
    codes_for(pool, to).await.pop().expect("a code was mailed")
}

/// The six digits after "code is ".
pub fn code_in(text: &str) -> String {
    let (_, rest) = text.split_once("code is ").expect("a code in the mail");
    rest.chars().take_while(char::is_ascii_digit).collect()
}

/// Session and challenge USERNAME of a challenge answer.
pub fn challenge_of(
    session: Option<&str>,
    parameters: Option<&std::collections::HashMap<String, String>>,
) -> (String, String) {
    (
        session.expect("a Session").to_string(),
        parameters.and_then(|p| p.get("USERNAME")).expect("USERNAME in ChallengeParameters").clone(),
    )
}

/// A code that is not `code` (same length).
pub fn wrong_code(code: &str) -> String {
    code.chars().map(|c| if c == '0' { '1' } else { '0' }).collect()
}
