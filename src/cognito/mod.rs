//! The harness's Cognito client: the AWS SDK with its retries off (a load tool must see throttling),
//! timeouts set, the standard credential chain and region (or dummy credentials for the local pool),
//! `endpoint_url` honoured. Every error is classified by its `__type` (`error`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use serde::Deserialize;

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

/// How a user signs in: custom auth (the Define / Create / Verify triggers mail a code: CUSTOM_AUTH) or
/// Cognito's native passwordless flow (USER_AUTH with the EMAIL_OTP first factor, no Lambda).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    #[default]
    Custom,
    EmailOtp,
}

impl Auth {
    pub const ALL: [Auth; 2] = [Auth::Custom, Auth::EmailOtp];

    /// As scenarios spell it.
    pub fn name(self) -> &'static str {
        match self {
            Auth::Custom => "custom",
            Auth::EmailOtp => "email_otp",
        }
    }

    /// What flow, step and check names of this kind end with ("" for custom auth, the default).
    pub fn suffix(self) -> &'static str {
        match self {
            Auth::Custom => "",
            Auth::EmailOtp => ".email_otp",
        }
    }

    /// Digits in the codes this flow mails (EMAIL_OTP: 8, fixed by Cognito; the seed's triggers: 6).
    pub fn code_digits(self) -> usize {
        match self {
            Auth::Custom => 6,
            Auth::EmailOtp => 8,
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
    /// USER_AUTH: the AvailableChallenges of the InitiateAuth answer, and whether a SELECT_CHALLENGE
    /// had to be answered first (an unknown user's fake challenge may differ here from a real one's).
    pub available: Vec<String>,
    pub selected: bool,
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
    /// Builds the client: retries off, per-call timeout, no stalled-stream monitor; local targets use
    /// dummy credentials.
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
        // The operation time-out bounds a stalled answer; the SDK's own stalled-stream guard (a
        // throughput monitor wrapped round every body) would only add per-call work at load.
        let stalled = cip::config::StalledStreamProtectionConfig::disabled();
        builder = builder.retry_config(retry).timeout_config(timeouts).stalled_stream_protection(stalled);
        if let Some(url) = &target.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        Self { sdk: cip::Client::from_conf(builder.build()), target }
    }

    pub fn target(&self) -> &ResolvedTarget {
        &self.target
    }

    /// Starts a sign-in for `username` that makes the pool mail a code: InitiateAuth with CUSTOM_AUTH,
    /// or with USER_AUTH and PREFERRED_CHALLENGE = EMAIL_OTP (answering a SELECT_CHALLENGE with
    /// EMAIL_OTP when the pool asks to choose).
    pub async fn initiate(&self, username: &str, auth: Auth) -> Result<Challenge, CallError> {
        match auth {
            Auth::Custom => self.initiate_custom_auth(username).await,
            Auth::EmailOtp => self.initiate_email_otp(username).await,
        }
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
        challenge_of(out.challenge_name(), out.session(), out.challenge_parameters(), None)
    }

    /// InitiateAuth with USER_AUTH preferring EMAIL_OTP; a SELECT_CHALLENGE is answered with EMAIL_OTP.
    async fn initiate_email_otp(&self, username: &str) -> Result<Challenge, CallError> {
        let out = self
            .sdk
            .initiate_auth()
            .auth_flow(cip::types::AuthFlowType::UserAuth)
            .client_id(&self.target.client_id)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PREFERRED_CHALLENGE", "EMAIL_OTP")
            .send()
            .await
            .map_err(CallError::from_sdk)?;
        let challenge = challenge_of(out.challenge_name(), out.session(), out.challenge_parameters(), Some(username))?;
        let offered: Vec<&str> = out.available_challenges().iter().map(|c| c.as_str()).collect();
        let challenge = Challenge { available: offered.iter().map(|c| c.to_string()).collect(), ..challenge };
        if challenge.name != "SELECT_CHALLENGE" {
            return Ok(challenge);
        }
        if !offered.contains(&"EMAIL_OTP") {
            return Err(CallError {
                class: ErrorClass::Service,
                type_name: error::EMAIL_OTP_NOT_OFFERED.into(),
                message: format!("SELECT_CHALLENGE offered {offered:?}, without EMAIL_OTP"),
            });
        }
        match self.answer(&challenge, "SELECT_CHALLENGE", &[("ANSWER", "EMAIL_OTP")]).await? {
            AuthAnswer::Challenge(next) => Ok(Challenge { available: challenge.available, selected: true, ..next }),
            AuthAnswer::Tokens(_) => Err(CallError {
                class: ErrorClass::Transport,
                type_name: "MalformedResponse".into(),
                message: "choosing EMAIL_OTP gave tokens without a code".into(),
            }),
        }
    }

    /// Answers `challenge` with a code: a CUSTOM_CHALLENGE's ANSWER, or an EMAIL_OTP's EMAIL_OTP_CODE.
    pub async fn respond(&self, challenge: &Challenge, answer: &str) -> Result<AuthAnswer, CallError> {
        match challenge.name.as_str() {
            "EMAIL_OTP" => self.answer(challenge, "EMAIL_OTP", &[("EMAIL_OTP_CODE", answer)]).await,
            _ => self.answer(challenge, "CUSTOM_CHALLENGE", &[("ANSWER", answer)]).await,
        }
    }

    /// RespondToAuthChallenge: `name` with USERNAME and `responses`.
    async fn answer(
        &self,
        challenge: &Challenge,
        name: &str,
        responses: &[(&str, &str)],
    ) -> Result<AuthAnswer, CallError> {
        let mut request = self
            .sdk
            .respond_to_auth_challenge()
            .client_id(&self.target.client_id)
            .challenge_name(cip::types::ChallengeNameType::from(name))
            .session(&challenge.session)
            .challenge_responses("USERNAME", &challenge.username);
        for (key, value) in responses {
            request = request.challenge_responses(*key, *value);
        }
        let out = request.send().await.map_err(CallError::from_sdk)?;
        if let Some(result) = out.authentication_result() {
            return Ok(AuthAnswer::Tokens(Tokens {
                id_token: result.id_token().unwrap_or_default().to_string(),
                access_token: result.access_token().unwrap_or_default().to_string(),
                has_refresh_token: result.refresh_token().is_some_and(|t| !t.is_empty()),
                expires_in: i64::from(result.expires_in()),
                token_type: result.token_type().map(str::to_string),
            }));
        }
        challenge_of(out.challenge_name(), out.session(), out.challenge_parameters(), Some(&challenge.username))
            .map(AuthAnswer::Challenge)
    }

    /// GetUser: the username and attributes the access token stands for.
    pub async fn get_user(&self, access_token: &str) -> Result<(String, HashMap<String, String>), CallError> {
        let out = self.sdk.get_user().access_token(access_token).send().await.map_err(CallError::from_sdk)?;
        let attributes =
            out.user_attributes().iter().map(|a| (a.name().to_string(), a.value().unwrap_or("").to_string())).collect();
        Ok((out.username().to_string(), attributes))
    }
}

/// A challenge from an answer; `username` stands in for a missing ChallengeParameters.USERNAME (USER_AUTH
/// challenges carry none: the name signed in with is answered with).
fn challenge_of(
    name: Option<&cip::types::ChallengeNameType>,
    session: Option<&str>,
    parameters: Option<&HashMap<String, String>>,
    username: Option<&str>,
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
        username: parameters
            .get("USERNAME")
            .cloned()
            .or_else(|| username.map(str::to_string))
            .ok_or_else(|| malformed("ChallengeParameters.USERNAME"))?,
        parameters,
        available: Vec::new(),
        selected: false,
    })
}
