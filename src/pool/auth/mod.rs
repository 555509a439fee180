//! Sign-in for one pool and its app client, one state machine per flow: `custom` (CUSTOM_AUTH with the
//! built-in Define/Create/Verify triggers or the team's own) and `native` (USER_AUTH: SELECT_CHALLENGE and EMAIL_OTP).
//! `AuthEngine` checks the client and its ExplicitAuthFlows, then hands the request to the flow's
//! machine. Nothing here knows JSON or HTTP: `wire.rs` translates `AuthStep`s.

pub mod custom;
pub mod native;
mod session;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::RwLock;

pub use custom::CUSTOM_CHALLENGE;
pub use native::{EMAIL_OTP, SELECT_CHALLENGE};

use super::config::{DefectsConfig, PoolConfig, PreventUserExistenceErrors};
use super::error::{CognitoError, ErrorKind};
use super::faults::Faults;
use super::mail::MailDispatcher;
use super::tokens::{IssuedTokens, TokenIssuer};
use super::users::UserDirectory;

/// What a sign-in step answers: another challenge, or tokens.
pub enum AuthStep {
    Challenge(Challenge),
    Tokens(IssuedTokens),
}

/// A challenge for the client to answer (no Debug: a defective pool may leak the code in it).
pub struct Challenge {
    /// `ChallengeName`.
    pub name: &'static str,
    pub session: String,
    /// Public ChallengeParameters, in the order they are sent.
    pub parameters: Vec<(String, String)>,
    /// `AvailableChallenges` (InitiateAuth of USER_AUTH only; empty otherwise).
    pub available_challenges: Vec<&'static str>,
}

/// Codes a user was mailed and signed in with, kept only when a code-reuse defect needs them.
#[derive(Default)]
struct CodeHistory {
    /// (flow id, code), newest last.
    issued: VecDeque<(u64, String)>,
    succeeded: VecDeque<String>,
}

const CODE_HISTORY: usize = 16;

impl CodeHistory {
    fn remember_issued(&mut self, flow_id: u64, code: &str) {
        self.issued.push_back((flow_id, code.to_string()));
        if self.issued.len() > CODE_HISTORY {
            self.issued.pop_front();
        }
    }

    fn remember_success(&mut self, code: &str) {
        self.succeeded.push_back(code.to_string());
        if self.succeeded.len() > CODE_HISTORY {
            self.succeeded.pop_front();
        }
    }
}

/// What happens at InitiateAuth for a user the pool does not know, before any fake challenge: LEGACY
/// refuses, and the unknown-user defects tell such users apart (both flows share them).
async fn unknown_user_gate(mode: PreventUserExistenceErrors, defects: &DefectsConfig) -> Result<(), CognitoError> {
    if mode == PreventUserExistenceErrors::Legacy {
        return Err(CognitoError::user_not_found());
    }
    if defects.unknown_user_error {
        return Err(CognitoError::new(ErrorKind::NotAuthorized, "User does not exist."));
    }
    if !defects.unknown_user_delay.is_zero() {
        tokio::time::sleep(defects.unknown_user_delay).await;
    }
    Ok(())
}

/// Signs tokens, as a Cognito error when signing fails.
fn issue_tokens(
    tokens: &TokenIssuer,
    user: &super::users::User,
    client_id: &str,
) -> Result<IssuedTokens, CognitoError> {
    tokens
        .issue(user, client_id)
        .map_err(|e| CognitoError::new(ErrorKind::InternalError, format!("token signing failed: {e}")))
}

/// Runs sign-ins for one pool and one app client.
pub struct AuthEngine {
    client_id: String,
    explicit_auth_flows: Vec<String>,
    /// The client has a secret: InitiateAuth must carry a SECRET_HASH (its value is not checked).
    client_secret: bool,
    /// The pool has a Define trigger: without one, CUSTOM_AUTH fails as Cognito's does.
    define_trigger: bool,
    custom: custom::CustomAuth,
    native: native::NativeAuth,
}

impl AuthEngine {
    pub fn new(
        config: &PoolConfig,
        users: Arc<RwLock<UserDirectory>>,
        faults: Arc<Faults>,
        mail: Arc<MailDispatcher>,
        tokens: Arc<TokenIssuer>,
        triggers: Option<Arc<super::triggers::TriggerHost>>,
    ) -> Self {
        Self {
            client_id: config.client_id.clone(),
            explicit_auth_flows: config.explicit_auth_flows.clone(),
            client_secret: config.client_secret,
            define_trigger: config.lambda_triggers.iter().any(|t| t == "define") || config.triggers.define.is_some(),
            custom: custom::CustomAuth::new(
                config,
                Arc::clone(&users),
                Arc::clone(&faults),
                Arc::clone(&mail),
                Arc::clone(&tokens),
                triggers,
            ),
            native: native::NativeAuth::new(config, users, mail, tokens),
        }
    }

    /// InitiateAuth.
    pub async fn initiate(
        &self,
        client_id: &str,
        auth_flow: &str,
        parameters: &HashMap<String, String>,
    ) -> Result<AuthStep, CognitoError> {
        self.check_client(client_id)?;
        if self.client_secret && !parameters.contains_key("SECRET_HASH") {
            return Err(CognitoError::new(
                ErrorKind::NotAuthorized,
                format!("Client {client_id} is configured for secret but secret was not received"),
            ));
        }
        match auth_flow {
            "CUSTOM_AUTH" => {
                self.check_flow_enabled("ALLOW_CUSTOM_AUTH", auth_flow)?;
                if !self.define_trigger {
                    return Err(CognitoError::invalid_parameter(
                        "Custom auth lambda trigger is not configured for the user pool.",
                    ));
                }
                self.custom.initiate(parameters).await
            }
            "USER_AUTH" => {
                self.check_flow_enabled("ALLOW_USER_AUTH", auth_flow)?;
                self.native.initiate(parameters).await
            }
            "USER_PASSWORD_AUTH" | "USER_SRP_AUTH" | "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => {
                Err(CognitoError::invalid_parameter(format!("{auth_flow} flow not enabled for this client")))
            }
            "ADMIN_NO_SRP_AUTH" | "ADMIN_USER_PASSWORD_AUTH" => {
                Err(CognitoError::invalid_parameter(format!("Initiate Auth method not supported: {auth_flow}")))
            }
            other => Err(CognitoError::invalid_parameter(format!(
                "1 validation error detected: Value '{other}' at 'authFlow' failed to satisfy constraint: \
                 Member must satisfy enum value set: [USER_SRP_AUTH, REFRESH_TOKEN_AUTH, REFRESH_TOKEN, \
                 CUSTOM_AUTH, ADMIN_NO_SRP_AUTH, USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH, USER_AUTH]"
            ))),
        }
    }

    /// RespondToAuthChallenge.
    pub async fn respond(
        &self,
        client_id: &str,
        challenge_name: &str,
        session: Option<&str>,
        responses: &HashMap<String, String>,
        client_metadata: Option<&HashMap<String, String>>,
    ) -> Result<AuthStep, CognitoError> {
        self.check_client(client_id)?;
        match challenge_name {
            CUSTOM_CHALLENGE => self.custom.respond(session, responses, client_metadata).await,
            SELECT_CHALLENGE | EMAIL_OTP => self.native.respond(challenge_name, session, responses).await,
            other => {
                Err(CognitoError::invalid_parameter(format!("Invalid challenge name {other} for the current session.")))
            }
        }
    }

    /// Sessions currently held by both flows (in use, not yet expired).
    pub fn session_count(&self) -> usize {
        self.custom.session_count() + self.native.session_count()
    }

    fn check_client(&self, client_id: &str) -> Result<(), CognitoError> {
        if client_id.is_empty() {
            return Err(CognitoError::missing_parameter("ClientId"));
        }
        if client_id != self.client_id {
            return Err(CognitoError::client_not_found(client_id));
        }
        Ok(())
    }

    /// The client's ExplicitAuthFlows must hold `flag`, or Cognito refuses the flow by name.
    fn check_flow_enabled(&self, flag: &str, auth_flow: &str) -> Result<(), CognitoError> {
        if self.explicit_auth_flows.iter().any(|f| f == flag) {
            Ok(())
        } else {
            Err(CognitoError::invalid_parameter(format!("{auth_flow} flow not enabled for this client")))
        }
    }
}
