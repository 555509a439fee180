//! Native passwordless sign-in (AuthFlow USER_AUTH, first factor EMAIL_OTP) as Cognito runs it without
//! any Lambda: PREFERRED_CHALLENGE = EMAIL_OTP mails an 8-digit code at once; no preference answers
//! SELECT_CHALLENGE with AvailableChallenges, and ANSWER = EMAIL_OTP mails the code. A wrong code is a
//! `CodeMismatchException` and the session and code stay valid, up to `native.max_wrong_codes`; a right
//! one signs in and consumes the session; sessions expire with AuthSessionValidity.
//!
//! The local pool's users have no password, so they are passwordless users: EMAIL_OTP is their only
//! factor when the pool allows it; otherwise only PASSWORD and PASSWORD_SRP are offered, and answering
//! those ends in `Incorrect username or password.`. Knows nothing of JSON or HTTP: `wire.rs` translates.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::session::{SessionTable, epoch_ms, new_session_token};
use super::{AuthStep, Challenge, CodeHistory, issue_tokens, unknown_user_gate};
use crate::pool::codes::CodeGenerator;
use crate::pool::config::{
    DefectsConfig, FakeChallenge, NativeConfig, NativeLockoutError, PoolConfig, PreventUserExistenceErrors,
};
use crate::pool::error::CognitoError;
use crate::pool::mail::MailDispatcher;
use crate::pool::tokens::TokenIssuer;
use crate::pool::users::{User, UserDirectory};

/// The challenge that asks the user to pick a first factor.
pub const SELECT_CHALLENGE: &str = "SELECT_CHALLENGE";
/// The challenge that asks for the emailed code.
pub const EMAIL_OTP: &str = "EMAIL_OTP";

/// Digits in a native code: fixed at 8 by Cognito.
pub const CODE_LENGTH: usize = 8;
/// Digits in a code of the `native_short_code` defect.
const SHORT_CODE_LENGTH: usize = 6;

/// Where a sign-in stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for SELECT_CHALLENGE's ANSWER.
    Select,
    /// A code was mailed; waiting for EMAIL_OTP_CODE.
    Code,
}

/// The state of one USER_AUTH sign-in (no Debug: it holds the code).
#[derive(Clone)]
struct NativeFlow {
    id: u64,
    /// `None` for an unknown user answered with a fake challenge.
    user: Option<Arc<User>>,
    /// USERNAME as given to InitiateAuth.
    given_username: String,
    stage: Stage,
    /// The challenges offered to this user (AvailableChallenges).
    available: Vec<&'static str>,
    /// The mailed code (empty before the EMAIL_OTP stage).
    code: String,
    /// Wrong codes so far in this session.
    wrong: u32,
}

impl NativeFlow {
    fn accepts_username(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.given_username)
            || self.user.as_ref().is_some_and(|u| name == u.username || name.eq_ignore_ascii_case(&u.email))
    }
}

/// What an EMAIL_OTP answer decided, under the session lock.
enum CodeOutcome {
    SignIn(NativeFlow),
    Refused(CognitoError),
}

/// Runs USER_AUTH sign-ins for one pool and one app client.
pub struct NativeAuth {
    client_id: String,
    session_validity: Duration,
    prevent_user_existence_errors: PreventUserExistenceErrors,
    settings: NativeConfig,
    defects: DefectsConfig,
    /// The challenges a known (passwordless) user is offered.
    user_challenges: Vec<&'static str>,
    /// Every challenge the pool's first factors allow (the `all_factors` fake challenge).
    all_challenges: Vec<&'static str>,
    codes: CodeGenerator,
    users: Arc<RwLock<UserDirectory>>,
    mail: Arc<MailDispatcher>,
    tokens: Arc<TokenIssuer>,
    sessions: Mutex<SessionTable<NativeFlow>>,
    history: Mutex<HashMap<String, CodeHistory>>,
    next_flow_id: AtomicU64,
}

impl NativeAuth {
    pub fn new(
        config: &PoolConfig,
        users: Arc<RwLock<UserDirectory>>,
        mail: Arc<MailDispatcher>,
        tokens: Arc<TokenIssuer>,
    ) -> Self {
        let length = if config.defects.native_short_code { SHORT_CODE_LENGTH } else { CODE_LENGTH };
        let codes = if config.defects.native_weak_code_generator {
            CodeGenerator::weak(length)
        } else {
            CodeGenerator::secure(length)
        };
        let all_challenges: Vec<&'static str> = config
            .allowed_first_auth_factors
            .iter()
            .flat_map(|factor| match factor.as_str() {
                "PASSWORD" => vec!["PASSWORD_SRP", "PASSWORD"],
                "EMAIL_OTP" => vec![EMAIL_OTP],
                "SMS_OTP" => vec!["SMS_OTP"],
                "WEB_AUTHN" => vec!["WEB_AUTHN"],
                _ => Vec::new(),
            })
            .collect();
        let user_challenges =
            if all_challenges.contains(&EMAIL_OTP) { vec![EMAIL_OTP] } else { vec!["PASSWORD", "PASSWORD_SRP"] };
        Self {
            client_id: config.client_id.clone(),
            session_validity: config.auth_session_validity,
            prevent_user_existence_errors: config.prevent_user_existence_errors,
            settings: config.native.clone(),
            defects: config.defects.clone(),
            user_challenges,
            all_challenges,
            codes,
            users,
            mail,
            tokens,
            sessions: Mutex::new(SessionTable::default()),
            history: Mutex::new(HashMap::new()),
            next_flow_id: AtomicU64::new(1),
        }
    }

    /// InitiateAuth with AuthFlow USER_AUTH (the client and the flow are checked by the caller).
    pub async fn initiate(&self, parameters: &HashMap<String, String>) -> Result<AuthStep, CognitoError> {
        let username = parameters
            .get("USERNAME")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        let preferred = parameters.get("PREFERRED_CHALLENGE").map(String::as_str).filter(|p| !p.is_empty());
        let user = self.users.read().find(username);
        if user.is_none() {
            unknown_user_gate(self.prevent_user_existence_errors, &self.defects).await?;
        }
        let available = match (&user, self.settings.unknown_user_challenge) {
            (None, FakeChallenge::AllFactors) => self.all_challenges.clone(),
            _ => self.user_challenges.clone(),
        };
        if preferred.is_some_and(|p| p.starts_with("PASSWORD")) && available.contains(&"PASSWORD") {
            // The local pool's users have no password.
            return Err(CognitoError::incorrect_username_or_password());
        }
        let offers_code = available.contains(&EMAIL_OTP);
        let code_now = offers_code
            && match preferred {
                Some(p) => p == EMAIL_OTP,
                None => self.settings.single_factor_skips_select && available.len() == 1,
            };
        let flow = NativeFlow {
            id: self.next_flow_id.fetch_add(1, Ordering::Relaxed),
            user,
            given_username: username.clone(),
            stage: Stage::Select,
            available,
            code: String::new(),
            wrong: 0,
        };
        if code_now {
            let available = flow.available.clone();
            let mut challenge = self.code_challenge(flow);
            challenge.available_challenges = available;
            return Ok(AuthStep::Challenge(challenge));
        }
        let available_challenges = flow.available.clone();
        let session = self.store(flow);
        Ok(AuthStep::Challenge(Challenge {
            name: SELECT_CHALLENGE,
            session,
            parameters: Vec::new(),
            available_challenges,
        }))
    }

    /// RespondToAuthChallenge with ChallengeName SELECT_CHALLENGE or EMAIL_OTP.
    pub async fn respond(
        &self,
        challenge_name: &str,
        session: Option<&str>,
        responses: &HashMap<String, String>,
    ) -> Result<AuthStep, CognitoError> {
        let username = responses.get("USERNAME").ok_or_else(|| CognitoError::missing_parameter("USERNAME"))?;
        if challenge_name == SELECT_CHALLENGE {
            let answer = responses.get("ANSWER").ok_or_else(|| CognitoError::missing_parameter("ANSWER"))?;
            let session = session.filter(|s| !s.is_empty()).ok_or_else(CognitoError::invalid_session)?;
            let flow = self.take_select_session(session, username, answer)?;
            if answer.starts_with("PASSWORD") {
                return Err(CognitoError::incorrect_username_or_password());
            }
            return Ok(AuthStep::Challenge(self.code_challenge(flow)));
        }
        let code = responses.get("EMAIL_OTP_CODE").ok_or_else(|| CognitoError::missing_parameter("EMAIL_OTP_CODE"))?;
        let session = session.filter(|s| !s.is_empty()).ok_or_else(CognitoError::invalid_session)?;
        let flow = match self.answer_code(session, username, code)? {
            CodeOutcome::SignIn(flow) => flow,
            CodeOutcome::Refused(error) => return Err(error),
        };
        let user = flow.user.as_ref().ok_or_else(CognitoError::code_mismatch)?;
        if self.defects.native_code_valid_after_success {
            self.history.lock().entry(user.username.clone()).or_default().remember_success(code);
        }
        // A right email code proves the address.
        let user = match user.email_verified {
            true => Arc::clone(user),
            false => self.users.write().mark_email_verified(&user.username).unwrap_or_else(|| Arc::clone(user)),
        };
        Ok(AuthStep::Tokens(issue_tokens(&self.tokens, &user, &self.client_id)?))
    }

    /// Sessions currently held (in use, not yet expired; consumed ones are dropped at once).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Makes and mails a code (none for an unknown user) and opens the EMAIL_OTP session.
    fn code_challenge(&self, mut flow: NativeFlow) -> Challenge {
        flow.stage = Stage::Code;
        flow.code = self.codes.next_code();
        flow.wrong = 0;
        let address = match &flow.user {
            Some(user) => {
                if self.defects.native_code_valid_in_new_session {
                    self.history.lock().entry(user.username.clone()).or_default().remember_issued(flow.id, &flow.code);
                }
                self.mail.send_template_code(
                    &user.email,
                    &flow.code,
                    &self.settings.mail_subject,
                    &self.settings.mail_message,
                );
                user.email.clone()
            }
            None => flow.given_username.clone(),
        };
        let mut parameters = vec![
            ("CODE_DELIVERY_DELIVERY_MEDIUM".to_string(), "EMAIL".to_string()),
            ("CODE_DELIVERY_DESTINATION".to_string(), mask_destination(&address, self.settings.mask_keeps_tld)),
        ];
        if self.defects.native_code_in_challenge_parameters {
            parameters.push(("EMAIL_OTP_CODE".to_string(), flow.code.clone()));
        }
        let session = self.store(flow);
        Challenge { name: EMAIL_OTP, session, parameters, available_challenges: Vec::new() }
    }

    /// A new Session string for `flow`.
    fn store(&self, flow: NativeFlow) -> String {
        let now_ms = epoch_ms();
        let expires_at_ms = now_ms + self.session_validity.as_millis() as u64;
        let token = new_session_token(expires_at_ms);
        self.sessions.lock().insert(&token, flow, expires_at_ms, now_ms);
        token
    }

    /// Checks a SELECT_CHALLENGE session and its ANSWER, then consumes the session.
    fn take_select_session(&self, token: &str, username: &str, answer: &str) -> Result<NativeFlow, CognitoError> {
        self.sessions.lock().with_live_entry(token, epoch_ms(), |entry| {
            if entry.consumed {
                return Err(CognitoError::invalid_session());
            }
            let flow = entry.flow.as_ref().ok_or_else(CognitoError::invalid_session)?;
            if flow.stage != Stage::Select || !flow.accepts_username(username) {
                return Err(CognitoError::invalid_session());
            }
            if !flow.available.contains(&answer) {
                // Unknown for real pools (shared/native-email-otp.md row 4.2): the local pool's own wording.
                return Err(CognitoError::invalid_parameter(format!(
                    "The challenge {answer} is not available for this user."
                )));
            }
            entry.consumed = true;
            entry.flow.take().map(|flow| *flow).ok_or_else(CognitoError::invalid_session)
        })
    }

    /// Judges an EMAIL_OTP_CODE against its session: a lockout, a mismatch (the session stays), or a sign-in
    /// (the session is consumed).
    fn answer_code(&self, token: &str, username: &str, code: &str) -> Result<CodeOutcome, CognitoError> {
        self.sessions.lock().with_live_entry(token, epoch_ms(), |entry| {
            if entry.consumed && !self.defects.native_consumed_session_accepted {
                return Err(CognitoError::invalid_session());
            }
            let Some(flow) = entry.flow.as_mut() else {
                return Err(CognitoError::invalid_session());
            };
            if flow.stage != Stage::Code || !flow.accepts_username(username) {
                return Err(CognitoError::invalid_session());
            }
            if flow.wrong >= self.settings.max_wrong_codes && !self.defects.native_unbounded_attempts {
                entry.consumed = true;
                entry.flow = None;
                return Ok(CodeOutcome::Refused(match self.settings.lockout_error {
                    NativeLockoutError::UserLocked => CognitoError::user_temporarily_locked(),
                    NativeLockoutError::PasswordAttemptsExceeded => CognitoError::password_attempts_exceeded(),
                }));
            }
            if self.verify(flow, code) {
                entry.consumed = true;
                let flow =
                    if self.defects.native_consumed_session_accepted { entry.flow.clone() } else { entry.flow.take() };
                return flow.map(|flow| CodeOutcome::SignIn(*flow)).ok_or_else(CognitoError::invalid_session);
            }
            flow.wrong = flow.wrong.saturating_add(1);
            if self.defects.native_wrong_code_ends_session {
                entry.consumed = true;
                entry.flow = None;
            }
            Ok(CodeOutcome::Refused(CognitoError::code_mismatch()))
        })
    }

    /// The code against the session's (and, in a defective pool, against codes of other sessions).
    fn verify(&self, flow: &NativeFlow, code: &str) -> bool {
        let Some(user) = &flow.user else {
            return false;
        };
        if code == flow.code {
            return true;
        }
        if !(self.defects.native_code_valid_after_success || self.defects.native_code_valid_in_new_session) {
            return false;
        }
        let history = self.history.lock();
        let Some(h) = history.get(&user.username) else {
            return false;
        };
        (self.defects.native_code_valid_after_success && h.succeeded.iter().any(|c| c == code))
            || (self.defects.native_code_valid_in_new_session
                && h.issued.iter().any(|(id, c)| *id != flow.id && c == code))
    }
}

/// `CODE_DELIVERY_DESTINATION`: the first character of the local part and of the domain, each followed by
/// `***`, and the top-level domain when `keep_tld` (`l***@m***` or `l***@m***.test`).
pub fn mask_destination(address: &str, keep_tld: bool) -> String {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, address));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = match domain.rsplit_once('.') {
        Some((_, tld)) if keep_tld && !tld.is_empty() => format!(".{tld}"),
        _ => String::new(),
    };
    format!("{}***@{}***{tld}", first(local), first(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_masked_with_or_without_the_tld() {
        assert_eq!(mask_destination("loadtest+1@mail.test", false), "l***@m***");
        assert_eq!(mask_destination("loadtest+1@mail.example.test", true), "l***@m***.test");
        assert_eq!(mask_destination("nobody", true), "n***@n***");
        assert_eq!(mask_destination("", false), "***@***");
    }
}
