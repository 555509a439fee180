//! Custom authentication (AuthFlow CUSTOM_AUTH) as Cognito runs it with the seed's triggers:
//! Define allows `max_attempts` wrong answers, Create makes and mails a fresh code every round,
//! Verify compares. Each round gets a new Session string; a used one is consumed; all expire.
//!
//! Knows nothing of JSON or HTTP: `wire.rs` translates. The deliberate defects are applied here,
//! where a real pool's trigger code would have them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::session::{SessionTable, epoch_ms, new_session_token};
use super::{AuthStep, Challenge, CodeHistory, issue_tokens, unknown_user_gate};
use crate::pool::codes::CodeGenerator;
use crate::pool::config::{DefectsConfig, PoolConfig, PreventUserExistenceErrors, Trigger};
use crate::pool::error::CognitoError;
use crate::pool::faults::Faults;
use crate::pool::mail::MailDispatcher;
use crate::pool::tokens::TokenIssuer;
use crate::pool::users::{User, UserDirectory};

/// The challenge name of custom auth.
pub const CUSTOM_CHALLENGE: &str = "CUSTOM_CHALLENGE";

/// The state of one sign-in, carried from Session string to Session string (no Debug: it holds the code).
#[derive(Clone)]
struct Flow {
    /// Identifies the sign-in across its rounds.
    id: u64,
    /// `None` for an unknown user answered with a fake challenge (PreventUserExistenceErrors=ENABLED).
    user: Option<Arc<User>>,
    /// USERNAME as given to InitiateAuth.
    given_username: String,
    /// USERNAME as returned in ChallengeParameters (internal username, or a fake one).
    challenge_username: String,
    /// Results of the answers so far (the trigger's `session` list).
    results: Vec<bool>,
    /// The private answer of the current round.
    code: String,
    /// Codes of the earlier rounds, oldest first.
    earlier_codes: Vec<String>,
}

impl Flow {
    fn failures(&self) -> usize {
        self.results.iter().filter(|ok| !**ok).count()
    }

    fn accepts_username(&self, name: &str) -> bool {
        name == self.challenge_username
            || name.eq_ignore_ascii_case(&self.given_username)
            || self.user.as_ref().is_some_and(|u| name == u.username || name.eq_ignore_ascii_case(&u.email))
    }
}

/// Runs custom-auth sign-ins for one pool and one app client.
pub struct CustomAuth {
    client_id: String,
    max_attempts: usize,
    session_validity: Duration,
    prevent_user_existence_errors: PreventUserExistenceErrors,
    defects: DefectsConfig,
    codes: CodeGenerator,
    users: Arc<RwLock<UserDirectory>>,
    faults: Arc<Faults>,
    mail: Arc<MailDispatcher>,
    tokens: Arc<TokenIssuer>,
    sessions: Mutex<SessionTable<Flow>>,
    history: Mutex<HashMap<String, CodeHistory>>,
    next_flow_id: AtomicU64,
}

impl CustomAuth {
    pub fn new(
        config: &PoolConfig,
        users: Arc<RwLock<UserDirectory>>,
        faults: Arc<Faults>,
        mail: Arc<MailDispatcher>,
        tokens: Arc<TokenIssuer>,
    ) -> Self {
        let codes = if config.defects.weak_code_generator {
            CodeGenerator::weak(config.code_length)
        } else {
            CodeGenerator::secure(config.code_length)
        };
        Self {
            client_id: config.client_id.clone(),
            max_attempts: config.max_attempts as usize,
            session_validity: config.auth_session_validity,
            prevent_user_existence_errors: config.prevent_user_existence_errors,
            defects: config.defects.clone(),
            codes,
            users,
            faults,
            mail,
            tokens,
            sessions: Mutex::new(SessionTable::default()),
            history: Mutex::new(HashMap::new()),
            next_flow_id: AtomicU64::new(1),
        }
    }

    /// InitiateAuth with AuthFlow CUSTOM_AUTH (the client and the flow are checked by the caller).
    pub async fn initiate(&self, parameters: &HashMap<String, String>) -> Result<AuthStep, CognitoError> {
        let username = parameters
            .get("USERNAME")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let user = self.users.read().find(username);
        if user.is_none() {
            unknown_user_gate(self.prevent_user_existence_errors, &self.defects).await?;
        }
        // Define, with an empty session list: always a custom challenge.
        self.faults.invoke_trigger(Trigger::Define).await?;
        let flow = Flow {
            id: self.next_flow_id.fetch_add(1, Ordering::Relaxed),
            challenge_username: user.as_ref().map_or_else(|| uuid::Uuid::new_v4().to_string(), |u| u.username.clone()),
            given_username: username.clone(),
            user,
            results: Vec::new(),
            code: String::new(),
            earlier_codes: Vec::new(),
        };
        self.next_challenge(flow).await
    }

    /// RespondToAuthChallenge with ChallengeName CUSTOM_CHALLENGE.
    pub async fn respond(
        &self,
        session: Option<&str>,
        responses: &HashMap<String, String>,
    ) -> Result<AuthStep, CognitoError> {
        let username = responses.get("USERNAME").ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let answer = responses.get("ANSWER").ok_or_else(|| CognitoError::missing_parameter("ANSWER"))?;
        let session = session.filter(|s| !s.is_empty()).ok_or_else(CognitoError::invalid_session)?;
        let mut flow = self.take_session(session, username)?;

        self.faults.invoke_trigger(Trigger::Verify).await?;
        let correct = self.verify(&flow, answer);
        flow.results.push(correct);

        self.faults.invoke_trigger(Trigger::Define).await?;
        if correct {
            let user = flow.user.as_ref().ok_or_else(CognitoError::incorrect_username_or_password)?;
            self.remember_success(user, answer);
            return Ok(AuthStep::Tokens(issue_tokens(&self.tokens, user, &self.client_id)?));
        }
        if flow.failures() >= self.max_attempts && !self.defects.unbounded_retries {
            return Err(CognitoError::incorrect_username_or_password());
        }
        self.next_challenge(flow).await
    }

    /// Sessions currently held (in use, not yet expired; consumed ones are dropped at once).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Create (a new code, mailed) and a new Session string for the next round.
    async fn next_challenge(&self, mut flow: Flow) -> Result<AuthStep, CognitoError> {
        self.faults.invoke_trigger(Trigger::Create).await?;
        if flow.code.is_empty() || !self.defects.same_code_every_round {
            let previous = std::mem::replace(&mut flow.code, self.codes.next_code());
            if !previous.is_empty() {
                flow.earlier_codes.push(previous);
            }
        }
        if let Some(user) = &flow.user {
            self.remember_issued(user, flow.id, &flow.code);
            let minutes = self.session_validity.as_secs().div_ceil(60);
            self.mail.send_code(&user.email, &flow.code, minutes);
        }
        let mut parameters = vec![("USERNAME".to_string(), flow.challenge_username.clone())];
        if self.defects.answer_in_challenge_parameters {
            parameters.push(("answer".to_string(), flow.code.clone()));
        }
        let now_ms = epoch_ms();
        let expires_at_ms = now_ms + self.session_validity.as_millis() as u64;
        let token = new_session_token(expires_at_ms);
        self.sessions.lock().insert(&token, flow, expires_at_ms, now_ms);
        Ok(AuthStep::Challenge(Challenge {
            name: CUSTOM_CHALLENGE,
            session: token,
            parameters,
            available_challenges: Vec::new(),
        }))
    }

    /// Looks a Session string up, checks it and the USERNAME, and consumes it.
    fn take_session(&self, token: &str, username: &str) -> Result<Flow, CognitoError> {
        self.sessions.lock().with_live_entry(token, epoch_ms(), |entry| {
            if entry.consumed && !self.defects.consumed_session_accepted {
                return Err(CognitoError::invalid_session());
            }
            let flow = entry.flow.as_ref().ok_or_else(CognitoError::invalid_session)?;
            if !flow.accepts_username(username) {
                return Err(CognitoError::invalid_session());
            }
            entry.consumed = true;
            if self.defects.consumed_session_accepted {
                Ok(Flow::clone(flow))
            } else {
                entry.flow.take().map(|flow| *flow).ok_or_else(CognitoError::invalid_session)
            }
        })
    }

    /// The Verify trigger: the answer against this round's code (and, in a defective pool, old codes).
    fn verify(&self, flow: &Flow, answer: &str) -> bool {
        let Some(user) = &flow.user else {
            return false;
        };
        let expected = match flow.earlier_codes.last() {
            Some(previous) if self.defects.verify_against_previous_round => previous,
            _ => &flow.code,
        };
        if self.defects.leading_zero_codes_refused && expected.starts_with('0') {
            // `Number(answer) === code`: the number has lost its leading zero, the text has not.
            return answer.parse::<u64>().is_ok_and(|n| n.to_string() == *expected);
        }
        if answer == expected {
            return true;
        }
        if self.defects.earlier_round_codes_accepted && flow.earlier_codes.iter().any(|c| c == answer) {
            return true;
        }
        if !(self.defects.code_valid_after_success || self.defects.code_valid_in_new_session) {
            return false;
        }
        let history = self.history.lock();
        let Some(h) = history.get(&user.username) else {
            return false;
        };
        (self.defects.code_valid_after_success && h.succeeded.iter().any(|c| c == answer))
            || (self.defects.code_valid_in_new_session && h.issued.iter().any(|(id, c)| *id != flow.id && c == answer))
    }

    fn remember_issued(&self, user: &User, flow_id: u64, code: &str) {
        if !self.defects.code_valid_in_new_session {
            return;
        }
        self.history.lock().entry(user.username.clone()).or_default().remember_issued(flow_id, code);
    }

    fn remember_success(&self, user: &User, code: &str) {
        if !self.defects.code_valid_after_success {
            return;
        }
        self.history.lock().entry(user.username.clone()).or_default().remember_success(code);
    }
}
