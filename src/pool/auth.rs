//! Custom authentication (AuthFlow CUSTOM_AUTH) as Cognito runs it with the seed's triggers:
//! Define allows `max_attempts` wrong answers, Create makes and mails a fresh code every round,
//! Verify compares. Each round gets a new Session string; a used one is consumed; all expire.
//!
//! Knows nothing of JSON or HTTP: `wire.rs` translates. The deliberate defects are applied here,
//! where a real pool's trigger code would have them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::{Mutex, RwLock};

use super::codes::CodeGenerator;
use super::config::{DefectsConfig, PoolConfig, PreventUserExistenceErrors, Trigger};
use super::error::{CognitoError, ErrorKind};
use super::faults::Faults;
use super::mail::MailDispatcher;
use super::tokens::{IssuedTokens, TokenIssuer};
use super::users::{User, UserDirectory};

/// The challenge name of custom auth.
pub const CUSTOM_CHALLENGE: &str = "CUSTOM_CHALLENGE";

/// What a sign-in step answers: another challenge, or tokens.
pub enum AuthStep {
    Challenge {
        session: String,
        /// Public ChallengeParameters (USERNAME first).
        parameters: Vec<(String, String)>,
    },
    Tokens(IssuedTokens),
}

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

struct SessionEntry {
    /// Kept while usable; a consumed entry keeps it only when the defect replays sessions.
    flow: Option<Flow>,
    consumed: bool,
    expires_at_ms: u64,
}

/// Live and consumed sessions, dropped once expired (expiry is also written into the Session string,
/// so an expired one is recognized after it is dropped).
#[derive(Default)]
struct SessionTable {
    entries: HashMap<String, SessionEntry>,
    expiry_order: VecDeque<(u64, String)>,
}

impl SessionTable {
    fn insert(&mut self, token: String, flow: Flow, expires_at_ms: u64, now_ms: u64) {
        while let Some((at, _)) = self.expiry_order.front() {
            if *at > now_ms {
                break;
            }
            if let Some((_, old)) = self.expiry_order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.expiry_order.push_back((expires_at_ms, token.clone()));
        self.entries.insert(token, SessionEntry { flow: Some(flow), consumed: false, expires_at_ms });
    }
}

/// Codes a user was mailed and signed in with, kept only when a code-reuse defect needs them.
#[derive(Default)]
struct CodeHistory {
    /// (flow id, code), newest last.
    issued: VecDeque<(u64, String)>,
    succeeded: VecDeque<String>,
}

const CODE_HISTORY: usize = 16;

/// Runs custom-auth sign-ins for one pool and one app client.
pub struct AuthEngine {
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
    sessions: Mutex<SessionTable>,
    history: Mutex<HashMap<String, CodeHistory>>,
    next_flow_id: AtomicU64,
}

impl AuthEngine {
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

    /// InitiateAuth.
    pub async fn initiate(
        &self,
        client_id: &str,
        auth_flow: &str,
        parameters: &HashMap<String, String>,
    ) -> Result<AuthStep, CognitoError> {
        self.check_client(client_id)?;
        match auth_flow {
            "CUSTOM_AUTH" => {}
            "USER_PASSWORD_AUTH" | "USER_SRP_AUTH" | "USER_AUTH" | "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => {
                return Err(CognitoError::invalid_parameter(format!("{auth_flow} flow not enabled for this client")));
            }
            "ADMIN_NO_SRP_AUTH" | "ADMIN_USER_PASSWORD_AUTH" => {
                return Err(CognitoError::invalid_parameter(format!(
                    "Initiate Auth method not supported: {auth_flow}"
                )));
            }
            other => {
                return Err(CognitoError::invalid_parameter(format!(
                    "1 validation error detected: Value '{other}' at 'authFlow' failed to satisfy constraint: \
                     Member must satisfy enum value set: [USER_SRP_AUTH, REFRESH_TOKEN_AUTH, REFRESH_TOKEN, \
                     CUSTOM_AUTH, ADMIN_NO_SRP_AUTH, USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH, USER_AUTH]"
                )));
            }
        }
        let username = parameters
            .get("USERNAME")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let user = self.users.read().find(username);
        if user.is_none() {
            if self.prevent_user_existence_errors == PreventUserExistenceErrors::Legacy {
                return Err(CognitoError::user_not_found());
            }
            if self.defects.unknown_user_error {
                return Err(CognitoError::new(ErrorKind::NotAuthorized, "User does not exist."));
            }
            if !self.defects.unknown_user_delay.is_zero() {
                tokio::time::sleep(self.defects.unknown_user_delay).await;
            }
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

    /// RespondToAuthChallenge.
    pub async fn respond(
        &self,
        client_id: &str,
        challenge_name: &str,
        session: Option<&str>,
        responses: &HashMap<String, String>,
    ) -> Result<AuthStep, CognitoError> {
        self.check_client(client_id)?;
        if challenge_name != CUSTOM_CHALLENGE {
            return Err(CognitoError::invalid_parameter(format!(
                "Invalid challenge name {challenge_name} for the current session."
            )));
        }
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
            let tokens = self
                .tokens
                .issue(user, &self.client_id)
                .map_err(|e| CognitoError::new(ErrorKind::InternalError, format!("token signing failed: {e}")))?;
            return Ok(AuthStep::Tokens(tokens));
        }
        if flow.failures() >= self.max_attempts && !self.defects.unbounded_retries {
            return Err(CognitoError::incorrect_username_or_password());
        }
        self.next_challenge(flow).await
    }

    /// Sessions currently held (live or consumed, not yet expired).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().entries.len()
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
        self.sessions.lock().insert(token.clone(), flow, expires_at_ms, now_ms);
        Ok(AuthStep::Challenge { session: token, parameters })
    }

    /// Looks a Session string up, checks it and the USERNAME, and consumes it.
    fn take_session(&self, token: &str, username: &str) -> Result<Flow, CognitoError> {
        let now_ms = epoch_ms();
        let mut table = self.sessions.lock();
        let Some(entry) = table.entries.get_mut(token) else {
            return Err(match session_token_expiry(token) {
                Some(at) if at <= now_ms => CognitoError::expired_session(),
                _ => CognitoError::invalid_session(),
            });
        };
        if entry.expires_at_ms <= now_ms {
            return Err(CognitoError::expired_session());
        }
        if entry.consumed && !self.defects.consumed_session_accepted {
            return Err(CognitoError::invalid_session());
        }
        let flow = entry.flow.as_ref().ok_or_else(CognitoError::invalid_session)?;
        if !flow.accepts_username(username) {
            return Err(CognitoError::invalid_session());
        }
        entry.consumed = true;
        if self.defects.consumed_session_accepted {
            Ok(flow.clone())
        } else {
            entry.flow.take().ok_or_else(CognitoError::invalid_session)
        }
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
        let mut history = self.history.lock();
        let h = history.entry(user.username.clone()).or_default();
        h.issued.push_back((flow_id, code.to_string()));
        if h.issued.len() > CODE_HISTORY {
            h.issued.pop_front();
        }
    }

    fn remember_success(&self, user: &User, code: &str) {
        if !self.defects.code_valid_after_success {
            return;
        }
        let mut history = self.history.lock();
        let h = history.entry(user.username.clone()).or_default();
        h.succeeded.push_back(code.to_string());
        if h.succeeded.len() > CODE_HISTORY {
            h.succeeded.pop_front();
        }
    }
}

/// An opaque Session string: 32 random bytes and the expiry (ms since the epoch), base64url.
fn new_session_token(expires_at_ms: u64) -> String {
    let mut bytes = [0u8; 40];
    bytes[..32].copy_from_slice(&rand::random::<[u8; 32]>());
    bytes[32..].copy_from_slice(&expires_at_ms.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The expiry written into a Session string, if it is one of ours.
fn session_token_expiry(token: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let tail: [u8; 8] = bytes.get(32..40)?.try_into().ok()?;
    (bytes.len() == 40).then(|| u64::from_be_bytes(tail))
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_carry_their_expiry() {
        let token = new_session_token(1_234_567);
        assert_eq!(session_token_expiry(&token), Some(1_234_567));
        assert_eq!(session_token_expiry("not-a-session"), None);
        assert_ne!(new_session_token(1), new_session_token(1));
    }
}
