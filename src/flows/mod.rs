//! Flows: what a virtual user does in one iteration — `login`, `retry` (k wrong codes, then the right
//! one) and `lockout` (max_attempts wrong codes, then the real code on the old session) — and the
//! shared steps they are made of, each timed into the metrics. Probes live in `probes`.

pub mod probes;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::checks::tokens::TokenChecker;
use crate::checks::{Check, Verdicts};
use crate::cognito::{AuthAnswer, CallError, Challenge, CognitoClient, ErrorClass, Tokens};
use crate::metrics::{FlowOutcome, Metrics, Step};
use crate::otp::{Delivery, Mailroom, WaitError};
use crate::scenario::{Expect, FlowKind, FlowSpec};

/// Everything a flow needs; one per run, shared by all virtual users.
pub struct FlowContext {
    pub cognito: CognitoClient,
    pub mailroom: Arc<Mailroom>,
    pub tokens: Arc<TokenChecker>,
    pub verdicts: Arc<Verdicts>,
    pub metrics: Arc<Metrics>,
    pub expect: Expect,
    pub otp_timeout: Duration,
    pub settle: Duration,
    pub get_user: bool,
    /// Every new code handed to a virtual user (for the randomness check; never reported).
    pub codes: Arc<Mutex<Vec<String>>>,
}

tokio::task_local! {
    /// The flow the current task is running, for per-flow metrics.
    static CURRENT_FLOW: &'static str;
    /// Where the current flow's steps are noted, when someone wants them (goose).
    static RECORDER: RefCell<Vec<StepRecord>>;
}

/// One step as goose is told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: Step,
    /// None when no answer came (time-out, transport error).
    pub elapsed: Option<Duration>,
    pub ok: bool,
    /// The error type, never a message with data in it.
    pub error: Option<String>,
}

fn current_flow() -> Option<&'static str> {
    CURRENT_FLOW.try_with(|f| *f).ok()
}

fn note(record: StepRecord) {
    let _ = RECORDER.try_with(|r| r.borrow_mut().push(record));
}

/// A request in flight whose answer makes the pool mail a code: the mailroom mark and the send time.
#[derive(Debug, Clone, Copy)]
pub struct Mailing {
    mark: u64,
    sent: Instant,
}

/// How a step failed.
#[derive(Debug)]
pub enum StepError {
    Call(CallError),
    Otp(WaitError),
}

impl StepError {
    /// The type it is counted under.
    pub fn type_name(&self) -> String {
        match self {
            StepError::Call(e) => e.type_name.clone(),
            StepError::Otp(WaitError::Timeout(_)) => "OtpTimeout".into(),
            StepError::Otp(WaitError::SourceStopped(_)) => "OtpSourceStopped".into(),
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Call(e) => write!(f, "{e}"),
            StepError::Otp(e) => write!(f, "{e}"),
        }
    }
}

/// A code that is certainly not `code` (every digit shifted by five).
pub fn wrong_code(code: &str) -> String {
    code.chars().map(|c| c.to_digit(10).map_or('0', |d| char::from(b'0' + ((d as u8 + 5) % 10)))).collect()
}

pub fn flow_name(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::Login => "login",
        FlowKind::Retry => "retry",
        FlowKind::Lockout => "lockout",
    }
}

impl FlowContext {
    /// Runs one flow for `user` and counts its outcome.
    pub async fn run_flow(&self, spec: &FlowSpec, user: &str) -> FlowOutcome {
        self.run_flow_from(spec, user, Instant::now()).await
    }

    /// Runs one flow whose sign-in is timed from `started` (the open model's intended start).
    pub async fn run_flow_from(&self, spec: &FlowSpec, user: &str, started: Instant) -> FlowOutcome {
        let name = flow_name(spec.kind);
        self.metrics.flow_started(name);
        let flow = async {
            match spec.kind {
                FlowKind::Login => self.sign_in(user, 0, started).await,
                FlowKind::Retry => self.sign_in(user, spec.wrong, started).await,
                FlowKind::Lockout => self.lockout(user).await,
            }
        };
        let outcome = CURRENT_FLOW.scope(name, flow).await;
        self.metrics.flow_ended(name, outcome);
        outcome
    }

    /// As `run_flow_from`, also returning every step it took (for goose's own metrics).
    pub async fn run_flow_recorded(
        &self,
        spec: &FlowSpec,
        user: &str,
        started: Instant,
    ) -> (FlowOutcome, Vec<StepRecord>) {
        RECORDER
            .scope(RefCell::new(Vec::new()), async {
                let outcome = self.run_flow_from(spec, user, started).await;
                (outcome, RECORDER.with(|r| r.take()))
            })
            .await
    }

    /// The same context with other metrics (probes keep out of the load's numbers).
    pub fn with_metrics(&self, metrics: Arc<Metrics>) -> Self {
        Self {
            cognito: self.cognito.clone(),
            mailroom: Arc::clone(&self.mailroom),
            tokens: Arc::clone(&self.tokens),
            verdicts: Arc::clone(&self.verdicts),
            metrics,
            expect: self.expect.clone(),
            otp_timeout: self.otp_timeout,
            settle: self.settle,
            get_user: self.get_user,
            codes: Arc::clone(&self.codes),
        }
    }

    /// InitiateAuth, timed.
    pub async fn initiate(&self, user: &str) -> Result<(Challenge, Mailing), StepError> {
        let mailing = Mailing { mark: self.mailroom.mark(), sent: Instant::now() };
        let result = self.cognito.initiate_custom_auth(user).await;
        self.count(Step::Initiate, mailing.sent.elapsed(), result.as_ref().err());
        result.map(|c| (c, mailing)).map_err(StepError::Call)
    }

    /// RespondToAuthChallenge, timed; `wanted` says whether an error answer is what the flow expects.
    pub async fn respond(
        &self,
        challenge: &Challenge,
        answer: &str,
        wanted: impl Fn(&Result<AuthAnswer, CallError>) -> bool,
    ) -> Result<AuthAnswer, CallError> {
        let started = Instant::now();
        let result = self.cognito.respond(challenge, answer).await;
        let elapsed = started.elapsed();
        if wanted(&result) {
            self.record(Step::Respond, elapsed, true);
        } else {
            self.count(Step::Respond, elapsed, result.as_ref().err());
        }
        result
    }

    /// The code of the mail a request caused, timed from the request.
    pub async fn code(&self, user: &str, mailing: Mailing) -> Result<Delivery, StepError> {
        match self.mailroom.wait(user, mailing.mark, self.otp_timeout, self.settle).await {
            Ok(delivery) => {
                self.record(Step::OtpDelivery, mailing.sent.elapsed(), true);
                if !delivery.repeated {
                    self.codes.lock().push(delivery.code.clone());
                }
                Ok(delivery)
            }
            Err(e) => {
                let error = StepError::Otp(e);
                self.record_failure(Step::OtpDelivery, &error.type_name());
                self.metrics.count_error(&error.type_name());
                Err(error)
            }
        }
    }

    /// A marker for a request about to be sent that will make the pool mail a code.
    pub fn mailing(&self) -> Mailing {
        Mailing { mark: self.mailroom.mark(), sent: Instant::now() }
    }

    fn count(&self, step: Step, elapsed: Duration, error: Option<&CallError>) {
        match error {
            None => self.record(step, elapsed, true),
            Some(e) => {
                self.metrics.count_error(&e.type_name);
                match e.class {
                    ErrorClass::Timeout | ErrorClass::Transport => self.record_failure(step, &e.type_name),
                    _ => self.record_answer(step, elapsed, false, Some(&e.type_name)),
                }
            }
        }
    }

    /// A step answered in `elapsed`, into the metrics (under the current flow) and the step recorder.
    fn record(&self, step: Step, elapsed: Duration, ok: bool) {
        self.record_answer(step, elapsed, ok, None);
    }

    fn record_answer(&self, step: Step, elapsed: Duration, ok: bool, error: Option<&str>) {
        self.metrics.record(current_flow(), step, elapsed, ok);
        note(StepRecord { step, elapsed: Some(elapsed), ok, error: error.map(str::to_string) });
    }

    /// A step that got no answer.
    fn record_failure(&self, step: Step, error: &str) {
        self.metrics.record_failure(current_flow(), step);
        note(StepRecord { step, elapsed: None, ok: false, error: Some(error.to_string()) });
    }

    /// `login` (wrong = 0) and `retry` (wrong > 0); the `login` step is timed from `started`.
    async fn sign_in(&self, user: &str, wrong: u32, started: Instant) -> FlowOutcome {
        let check = if wrong == 0 { Check::SignIn } else { Check::Retry };
        let end = |outcome: FlowOutcome| {
            match outcome {
                FlowOutcome::Succeeded => self.record(Step::Login, started.elapsed(), true),
                _ => self.record_failure(Step::Login, "SignInFailed"),
            }
            outcome
        };
        let (mut challenge, mut mailing) = match self.initiate(user).await {
            Ok(v) => v,
            Err(_) => return end(FlowOutcome::Errored),
        };
        for round in 1..=wrong {
            let Ok(delivery) = self.code(user, mailing).await else {
                return end(FlowOutcome::Errored);
            };
            mailing = self.mailing();
            match self
                .respond(&challenge, &wrong_code(&delivery.code), |r| matches!(r, Ok(AuthAnswer::Challenge(_))))
                .await
            {
                Ok(AuthAnswer::Challenge(next)) => challenge = next,
                Ok(AuthAnswer::Tokens(_)) => {
                    self.verdicts.fail(check, "a wrong code signed the user in");
                    return end(FlowOutcome::Nonconforming);
                }
                Err(e) if e.class == ErrorClass::NotAuthorized => {
                    self.verdicts.fail(
                        check,
                        format!(
                            "the sign-in ended after {round} wrong code(s) ({e}); expect.max_attempts = {}",
                            self.expect.max_attempts
                        ),
                    );
                    return end(FlowOutcome::Nonconforming);
                }
                Err(_) => return end(FlowOutcome::Errored),
            }
        }
        let Ok(delivery) = self.code(user, mailing).await else {
            return end(FlowOutcome::Errored);
        };
        let answer = self.respond(&challenge, &delivery.code, |r| matches!(r, Ok(AuthAnswer::Tokens(_)))).await;
        if delivery.uncertain && !matches!(answer, Ok(AuthAnswer::Tokens(_))) {
            // Perhaps the late mail of an earlier, timed-out wait: no proof of a defect.
            self.metrics.count_error("PossiblyStaleCode");
            return end(FlowOutcome::Errored);
        }
        match answer {
            Ok(AuthAnswer::Tokens(tokens)) => {
                self.verdicts.pass(check);
                let conforming = self.check_tokens(&tokens, user).await;
                end(if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming })
            }
            Ok(AuthAnswer::Challenge(_)) => {
                self.verdicts.fail(check, "the right code was answered with another challenge");
                end(FlowOutcome::Nonconforming)
            }
            Err(e) if is_refusal(&e) => {
                self.verdicts.fail(check, format!("the right code was refused: {e}"));
                end(FlowOutcome::Nonconforming)
            }
            Err(_) => end(FlowOutcome::Errored),
        }
    }

    /// `lockout`: max_attempts wrong codes must end the sign-in; the real code must then be refused.
    async fn lockout(&self, user: &str) -> FlowOutcome {
        let max = self.expect.max_attempts;
        let (mut challenge, mut mailing) = match self.initiate(user).await {
            Ok(v) => v,
            Err(_) => return FlowOutcome::Errored,
        };
        let mut conforming = true;
        let mut last = None;
        for attempt in 1..=max {
            let Ok(delivery) = self.code(user, mailing).await else {
                return FlowOutcome::Errored;
            };
            mailing = self.mailing();
            let wanted_lock = attempt == max;
            let answer = self
                .respond(&challenge, &wrong_code(&delivery.code), |r| match r {
                    Ok(AuthAnswer::Challenge(_)) => !wanted_lock,
                    Err(e) => wanted_lock && e.class == ErrorClass::NotAuthorized,
                    Ok(AuthAnswer::Tokens(_)) => false,
                })
                .await;
            match answer {
                Ok(AuthAnswer::Challenge(next)) if !wanted_lock => challenge = next,
                Ok(AuthAnswer::Challenge(_)) => {
                    self.verdicts.fail(
                        Check::Lockout,
                        format!("still challenged after {max} wrong codes: retries are not bounded"),
                    );
                    conforming = false;
                    // The pool mailed yet another code: take it so it cannot be mistaken for a later one.
                    let _ = self.code(user, mailing).await;
                    last = Some((challenge.clone(), delivery.code));
                    break;
                }
                Ok(AuthAnswer::Tokens(_)) => {
                    self.verdicts.fail(Check::Lockout, "a wrong code signed the user in");
                    return FlowOutcome::Nonconforming;
                }
                Err(e) if e.class == ErrorClass::NotAuthorized && wanted_lock => {
                    self.verdicts.pass(Check::Lockout);
                    last = Some((challenge.clone(), delivery.code));
                }
                Err(e) if e.class == ErrorClass::NotAuthorized => {
                    self.verdicts.fail(
                        Check::Lockout,
                        format!("the sign-in ended after {attempt} wrong code(s) ({e}); expected {max}"),
                    );
                    return FlowOutcome::Nonconforming;
                }
                Err(_) => return FlowOutcome::Errored,
            }
        }
        let Some((old_session, real_code)) = last else {
            return FlowOutcome::Errored;
        };
        match self
            .respond(&old_session, &real_code, |r| matches!(r, Err(e) if e.class == ErrorClass::NotAuthorized))
            .await
        {
            Err(e) if e.class == ErrorClass::NotAuthorized => self.verdicts.pass(Check::LockoutRealCodeRefused),
            Ok(AuthAnswer::Tokens(_)) => {
                self.verdicts.fail(Check::LockoutRealCodeRefused, "the real code signed in on the locked session");
                conforming = false;
            }
            Ok(AuthAnswer::Challenge(_)) => {
                self.verdicts
                    .fail(Check::LockoutRealCodeRefused, "the locked session was answered with another challenge");
                conforming = false;
            }
            Err(e) if is_refusal(&e) => self.verdicts.pass(Check::LockoutRealCodeRefused),
            Err(_) => return FlowOutcome::Errored,
        }
        if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming }
    }

    /// Token checks, and GetUser with the access token when enabled. True if all hold.
    pub async fn check_tokens(&self, tokens: &Tokens, user: &str) -> bool {
        let (mut problems, identity) = self.tokens.check(tokens, user);
        if self.get_user {
            match self.cognito.get_user(&tokens.access_token).await {
                Ok((username, attributes)) => {
                    if let Some((sub, id_username)) = &identity {
                        if &username != id_username {
                            problems.push("GetUser names another user than the ID token".into());
                        }
                        if attributes.get("sub") != Some(sub) {
                            problems.push("GetUser's sub differs from the ID token's".into());
                        }
                    }
                    if attributes.get("email").is_none_or(|e| !e.eq_ignore_ascii_case(user)) {
                        problems.push("GetUser's email is not the user's address".into());
                    }
                }
                Err(e) if is_refusal(&e) => problems.push(format!("GetUser refused the access token: {e}")),
                Err(e) => self.metrics.count_error(&e.type_name),
            }
        }
        if problems.is_empty() {
            self.verdicts.pass(Check::Tokens);
            true
        } else {
            for problem in problems {
                self.verdicts.fail(Check::Tokens, problem);
            }
            false
        }
    }
}

/// A service error that is the pool's answer to the request (not throttling, a trigger or transport failure).
pub fn is_refusal(e: &CallError) -> bool {
    matches!(
        e.class,
        ErrorClass::NotAuthorized
            | ErrorClass::UserNotFound
            | ErrorClass::InvalidParameter
            | ErrorClass::ResourceNotFound
            | ErrorClass::Service
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_differ_in_every_digit() {
        assert_eq!(wrong_code("059317"), "504862");
        for code in ["000000", "999999", "123456"] {
            assert!(wrong_code(code).chars().zip(code.chars()).all(|(a, b)| a != b));
        }
    }
}
