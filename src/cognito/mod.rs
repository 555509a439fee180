//! The harness's Cognito client: the AWS SDK with its retries off (a load tool must see throttling),
//! timeouts set, the standard credential chain and region (or dummy credentials for the local pool),
//! `endpoint_url` honoured. Every error is classified by its `__type` (`error`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;

use crate::pool::PoolInfo;

pub mod error;

pub use error::{CallError, ErrorClass};

/// Where the run signs in.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub endpoint_url: Option<String>,
    /// The tokens' `iss`; the JWKS is at `{issuer}/.well-known/jwks.json`.
    pub issuer: String,
    /// The embedded pool: dummy credentials, no credential chain.
    pub local: bool,
    pub call_timeout: Duration,
}

impl ResolvedTarget {
    /// A pool of this process (the embedded one, or a benchmark's).
    pub fn local_pool(info: &PoolInfo, call_timeout: Duration) -> Self {
        Self {
            region: info.region.clone(),
            user_pool_id: info.user_pool_id.clone(),
            client_id: info.client_id.clone(),
            endpoint_url: Some(info.endpoint.clone()),
            issuer: info.issuer.clone(),
            local: true,
            call_timeout,
        }
    }
}

/// A challenge to answer.
#[derive(Clone)]
pub struct Challenge {
    pub name: String,
    pub session: String,
    /// ChallengeParameters.USERNAME (the internal username).
    pub username: String,
    pub parameters: HashMap<String, String>,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Session and (in a defective pool) the parameters are secrets: only their shape is shown.
        let mut keys: Vec<&String> = self.parameters.keys().collect();
        keys.sort();
        f.debug_struct("Challenge").field("name", &self.name).field("parameter_keys", &keys).finish_non_exhaustive()
    }
}

/// Tokens of a finished sign-in.
#[derive(Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub has_refresh_token: bool,
    pub expires_in: i64,
    pub token_type: Option<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// What answering a challenge gives.
#[derive(Debug, Clone)]
pub enum AuthAnswer {
    Challenge(Challenge),
    Tokens(Tokens),
}

/// The SDK client bound to one pool and app client.
#[derive(Debug, Clone)]
pub struct CognitoClient {
    sdk: cip::Client,
    target: ResolvedTarget,
}

impl CognitoClient {
    /// Builds the client: retries off, per-call timeout; local targets use dummy credentials.
    pub async fn new(target: ResolvedTarget) -> Self {
        let retry = cip::config::retry::RetryConfig::disabled();
        let timeouts = cip::config::timeout::TimeoutConfig::builder()
            .connect_timeout(target.call_timeout.min(Duration::from_secs(5)))
            .operation_timeout(target.call_timeout)
            .build();
        let region = cip::config::Region::new(target.region.clone());
        let mut builder = if target.local {
            cip::Config::builder()
                .behavior_version(cip::config::BehaviorVersion::latest())
                .region(region)
                .credentials_provider(cip::config::Credentials::new("local", "local", None, None, "otp-harness"))
        } else {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region).load().await;
            cip::config::Builder::from(&shared)
        };
        builder = builder.retry_config(retry).timeout_config(timeouts);
        if let Some(url) = &target.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Self { sdk: cip::Client::from_conf(builder.build()), target }
    }

    pub fn target(&self) -> &ResolvedTarget {
        &self.target
    }

    /// InitiateAuth with CUSTOM_AUTH for `username`.
    pub async fn initiate_custom_auth(&self, username: &str) -> Result<Challenge, CallError> {
        let out = self
            .sdk
            .initiate_auth()
            .auth_flow(cip::types::AuthFlowType::CustomAuth)
            .client_id(&self.target.client_id)
            .auth_parameters("USERNAME", username)
            .send()
            .await
            .map_err(CallError::from_sdk)?;
        challenge_of(out.challenge_name(), out.session(), out.challenge_parameters())
    }

    /// RespondToAuthChallenge with a CUSTOM_CHALLENGE answer.
    pub async fn respond(&self, challenge: &Challenge, answer: &str) -> Result<AuthAnswer, CallError> {
        let out = self
            .sdk
            .respond_to_auth_challenge()
            .client_id(&self.target.client_id)
            .challenge_name(cip::types::ChallengeNameType::CustomChallenge)
            .session(&challenge.session)
            .challenge_responses("USERNAME", &challenge.username)
            .challenge_responses("ANSWER", answer)
            .send()
            .await
            .map_err(CallError::from_sdk)?;
        if let Some(result) = out.authentication_result() {
            return Ok(AuthAnswer::Tokens(Tokens {
                id_token: result.id_token().unwrap_or_default().to_string(),
                access_token: result.access_token().unwrap_or_default().to_string(),
                has_refresh_token: result.refresh_token().is_some_and(|t| !t.is_empty()),
                expires_in: i64::from(result.expires_in()),
                token_type: result.token_type().map(str::to_string),
            }));
        }
        challenge_of(out.challenge_name(), out.session(), out.challenge_parameters()).map(AuthAnswer::Challenge)
    }

    /// GetUser: the username and attributes the access token stands for.
    pub async fn get_user(&self, access_token: &str) -> Result<(String, HashMap<String, String>), CallError> {
        let out = self.sdk.get_user().access_token(access_token).send().await.map_err(CallError::from_sdk)?;
        let attributes =
            out.user_attributes().iter().map(|a| (a.name().to_string(), a.value().unwrap_or("").to_string())).collect();
        Ok((out.username().to_string(), attributes))
    }
}

fn challenge_of(
    name: Option<&cip::types::ChallengeNameType>,
    session: Option<&str>,
    parameters: Option<&HashMap<String, String>>,
) -> Result<Challenge, CallError> {
    let malformed = |what: &str| CallError {
        class: ErrorClass::Transport,
        type_name: "MalformedResponse".into(),
        message: format!("the answer has no {what}"),
    };
    let parameters = parameters.cloned().unwrap_or_default();
    Ok(Challenge {
        name: name.map(|n| n.as_str().to_string()).ok_or_else(|| malformed("ChallengeName"))?,
        session: session.ok_or_else(|| malformed("Session"))?.to_string(),
        username: parameters.get("USERNAME").cloned().ok_or_else(|| malformed("ChallengeParameters.USERNAME"))?,
        parameters,
    })
}
