//! Custom authentication (AuthFlow CUSTOM_AUTH) as Cognito runs it: Define decides (another round,
//! tokens, or failure), Create makes the round's challenge, Verify judges the answer. Each trigger is
//! the team's own function when `[triggers]` names one (`pool::triggers`), else the built-in one:
//! Define allows `max_attempts` wrong answers, Create makes and mails a fresh code every round (its
//! private parameter `answer`), Verify compares. Each round gets a new Session string; a used one is
//! consumed; all expire.
//!
//! Knows nothing of HTTP: `wire.rs` translates. The deliberate defects are applied here, in the
//! built-in triggers, where a real pool's trigger code would have them.

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
use crate::pool::triggers::TriggerHost;
use crate::pool::triggers::events::{ChallengeRecord, CreatedChallenge, DefineDecision, EventUser};
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
    /// The rounds answered so far (the triggers' `session` list).
    results: Vec<ChallengeRecord>,
    /// The private answer of the current round (the built-in Create's code, or the team's Create's
    /// private parameter `answer`).
    code: String,
    /// The current round's privateChallengeParameters and challengeMetadata.
    private: std::collections::BTreeMap<String, String>,
    metadata: Option<String>,
    /// Codes of the earlier rounds, oldest first.
    earlier_codes: Vec<String>,
}

impl Flow {
    fn failures(&self) -> usize {
        self.results.iter().filter(|r| !r.challenge_result).count()
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
    /// The team's functions, for the triggers they replace.
    triggers: Option<Arc<TriggerHost>>,
}

impl CustomAuth {
    pub fn new(
        config: &PoolConfig,
        users: Arc<RwLock<UserDirectory>>,
        faults: Arc<Faults>,
        mail: Arc<MailDispatcher>,
        tokens: Arc<TokenIssuer>,
        triggers: Option<Arc<TriggerHost>>,
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
            triggers,
        }
    }

    /// InitiateAuth with AuthFlow CUSTOM_AUTH (the client and the flow are checked by the caller).
    pub async fn initiate(&self, parameters: &HashMap<String, String>) -> Result<AuthStep, CognitoError> {
        let username = parameters
            .get("USERNAME")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let (user, uuid_usernames) = {
            let users = self.users.read();
            (users.find(username), users.email_is_username_attribute())
        };
        if user.is_none() {
            unknown_user_gate(self.prevent_user_existence_errors, &self.defects).await?;
        }
        // An unknown user's USERNAME looks like a known one's: a fresh UUID, or the name given.
        let fake_username = || if uuid_usernames { uuid::Uuid::new_v4().to_string() } else { username.clone() };
        let flow = Flow {
            id: self.next_flow_id.fetch_add(1, Ordering::Relaxed),
            challenge_username: user.as_ref().map_or_else(fake_username, |u| u.username.clone()),
            given_username: username.clone(),
            user,
            results: Vec::new(),
            code: String::new(),
            private: Default::default(),
            metadata: None,
            earlier_codes: Vec::new(),
        };
        // Define, with an empty session list (InitiateAuth's ClientMetadata never reaches it).
        self.decide(flow, None).await
    }

    /// RespondToAuthChallenge with ChallengeName CUSTOM_CHALLENGE.
    pub async fn respond(
        &self,
        session: Option<&str>,
        responses: &HashMap<String, String>,
        client_metadata: Option<&HashMap<String, String>>,
    ) -> Result<AuthStep, CognitoError> {
        let username = responses.get("USERNAME").ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let answer = responses.get("ANSWER").ok_or_else(|| CognitoError::missing_parameter("ANSWER"))?;
        let session = session.filter(|s| !s.is_empty()).ok_or_else(CognitoError::invalid_session)?;
        let mut flow = self.take_session(session, username)?;

        self.faults.invoke_trigger(Trigger::Verify).await?;
        let correct = match self.team(Trigger::Verify) {
            Some(host) => {
                let user = self.event_user(host, &flow, client_metadata);
                host.verify(&user, &flow.private, answer).await?
            }
            None => self.verify(&flow, answer),
        };
        flow.results.push(ChallengeRecord {
            challenge_name: CUSTOM_CHALLENGE.into(),
            challenge_result: correct,
            challenge_metadata: flow.metadata.clone(),
        });
        if correct && let Some(user) = &flow.user {
            self.remember_success(user, answer);
        }
        self.decide(flow, client_metadata).await
    }

    /// Runs Define on the flow's session list and acts on its decision: tokens, failure, or the next
    /// round (Create, a new Session).
    async fn decide(
        &self,
        flow: Flow,
        client_metadata: Option<&HashMap<String, String>>,
    ) -> Result<AuthStep, CognitoError> {
        self.faults.invoke_trigger(Trigger::Define).await?;
        let decision = match self.team(Trigger::Define) {
            Some(host) => {
                let user = self.event_user(host, &flow, client_metadata);
                host.define(&user, &flow.results).await?
            }
            None => self.built_in_define(&flow),
        };
        match decision {
            DefineDecision::IssueTokens => {
                // Cognito signs in only a user it has: an unknown user's flow fails however Define decides.
                let user = flow.user.as_ref().ok_or_else(CognitoError::incorrect_username_or_password)?;
                Ok(AuthStep::Tokens(issue_tokens(&self.tokens, user, &self.client_id)?))
            }
            DefineDecision::FailAuthentication => Err(CognitoError::incorrect_username_or_password()),
            DefineDecision::Challenge(_) => self.next_challenge(flow, client_metadata).await,
        }
    }

    /// The built-in Define: a first round, tokens after a right answer, failure after `max_attempts`
    /// wrong ones (never, with the unbounded-retries defect).
    fn built_in_define(&self, flow: &Flow) -> DefineDecision {
        match flow.results.last() {
            None => DefineDecision::Challenge(CUSTOM_CHALLENGE.into()),
            Some(last) if last.challenge_result => DefineDecision::IssueTokens,
            Some(_) if flow.failures() >= self.max_attempts && !self.defects.unbounded_retries => {
                DefineDecision::FailAuthentication
            }
            Some(_) => DefineDecision::Challenge(CUSTOM_CHALLENGE.into()),
        }
    }

    /// The team's function for `trigger`, if it replaces the built-in one.
    fn team(&self, trigger: Trigger) -> Option<&TriggerHost> {
        self.triggers.as_deref().filter(|host| host.has(trigger))
    }

    /// The user part of a trigger event: the internal username and attributes of a known user; the
    /// given name and no attributes for an unknown one (`userNotFound` says which, when the client
    /// hides unknown users).
    fn event_user<'a>(
        &self,
        host: &'a TriggerHost,
        flow: &'a Flow,
        client_metadata: Option<&'a HashMap<String, String>>,
    ) -> EventUser<'a> {
        let (name, attributes) = match &flow.user {
            Some(user) => {
                let mut attributes: serde_json::Map<String, serde_json::Value> =
                    user.attributes().into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                attributes.insert("cognito:user_status".into(), user.status().into());
                (user.username.as_str(), attributes)
            }
            None => (flow.given_username.as_str(), serde_json::Map::new()),
        };
        let not_found =
            (self.prevent_user_existence_errors == PreventUserExistenceErrors::Enabled).then_some(flow.user.is_none());
        host.user(name, attributes, not_found, client_metadata)
    }

    /// Sessions currently held (in use, not yet expired; consumed ones are dropped at once).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Create (the team's, or the built-in one: a new code, mailed) and a new Session string for the
    /// next round.
    async fn next_challenge(
        &self,
        mut flow: Flow,
        client_metadata: Option<&HashMap<String, String>>,
    ) -> Result<AuthStep, CognitoError> {
        self.faults.invoke_trigger(Trigger::Create).await?;
        let mut parameters = vec![("USERNAME".to_string(), flow.challenge_username.clone())];
        if let Some(host) = self.team(Trigger::Create) {
            let user = self.event_user(host, &flow, client_metadata);
            let CreatedChallenge { public, private, metadata } =
                host.create(&user, CUSTOM_CHALLENGE, &flow.results).await?;
            let previous = std::mem::replace(&mut flow.code, private.get("answer").cloned().unwrap_or_default());
            if !previous.is_empty() {
                flow.earlier_codes.push(previous);
            }
            flow.private = private;
            flow.metadata = metadata;
            parameters.extend(public.into_iter().filter(|(k, _)| k != "USERNAME"));
        } else {
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
            flow.private = std::iter::once(("answer".to_string(), flow.code.clone())).collect();
            flow.metadata = None;
            if self.defects.answer_in_challenge_parameters {
                parameters.push(("answer".to_string(), flow.code.clone()));
            }
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
