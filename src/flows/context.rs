//! The context every flow and probe runs in (the Cognito client, the mailroom, the token checker, the
//! verdicts and metrics), and the timed steps flows are made of: `initiate`, `code` (the mail a request
//! caused), `respond` — each recorded into the metrics under the current flow and, for goose, into the
//! current flow's step records.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::checks::randomness::DigitCounts;

use crate::checks::tokens::TokenChecker;
use crate::checks::{Check, Verdicts};
use crate::cognito::{Auth, AuthAnswer, CallError, Challenge, CognitoClient, ErrorClass};
use crate::metrics::{FlowOutcome, Metrics, Step};
use crate::otp::{Delivery, Mailroom, WaitError};
use crate::scenario::{Expect, FlowKind, FlowSpec, Scenario, flow_name};

/// Everything a flow needs; one per run and way of signing in, shared by all virtual users.
pub struct FlowContext {
    /// How this context's flows and probes sign in.
    pub auth: Auth,
    pub cognito: CognitoClient,
    pub mailroom: Arc<Mailroom>,
    pub tokens: Arc<TokenChecker>,
    pub verdicts: Arc<Verdicts>,
    pub metrics: Arc<Metrics>,
    pub expect: Expect,
    pub otp_timeout: Duration,
    pub settle: Duration,
    pub get_user: bool,
    /// Digit counts of every new code handed to a virtual user, per way of signing in (for the
    /// randomness check).
    pub codes: Arc<BTreeMap<Auth, DigitCounts>>,
    /// What to change in the pool or app client, for errors that say it is not set up for the flow.
    pub diagnoses: Arc<Mutex<BTreeSet<&'static str>>>,
}

// Why task-locals: a step is timed deep inside a flow (initiate, code, respond), and both the per-flow
// metrics and goose's per-step records need to know which flow and which goose transaction it belongs
// to. Threading a flow name and a recorder through every step and probe would widen every signature
// for the sake of bookkeeping; a task-local scoped around one flow (`run_flow_from`,
// `run_flow_recorded`) carries it to every step that flow awaits, and is simply absent for probes.
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

impl FlowContext {
    /// The context of a scenario's run: its expectations, OTP wait settings and token checks.
    pub fn for_scenario(
        scenario: &Scenario,
        cognito: CognitoClient,
        mailroom: Arc<Mailroom>,
        tokens: Arc<TokenChecker>,
    ) -> Self {
        Self {
            auth: Auth::Custom,
            cognito,
            mailroom,
            tokens,
            verdicts: Arc::new(Verdicts::new()),
            metrics: Arc::new(Metrics::new()),
            expect: scenario.expect.clone(),
            otp_timeout: scenario.otp.timeout,
            settle: scenario.otp.duplicate_settle,
            get_user: scenario.checks.get_user,
            codes: Arc::new(Auth::ALL.into_iter().map(|a| (a, DigitCounts::new())).collect()),
            diagnoses: Arc::default(),
        }
    }

    /// The same context signing in another way (everything else shared).
    pub fn for_auth(&self, auth: Auth) -> Self {
        Self { auth, ..self.with_metrics(Arc::clone(&self.metrics)) }
    }

    /// A pass of `check` for this context's way of signing in.
    pub fn pass(&self, check: Check) {
        self.verdicts.pass(check.of(self.auth));
    }

    /// A failure of `check` for this context's way of signing in; the reason carries no secret.
    pub fn fail(&self, check: Check, reason: impl Into<String>) {
        self.verdicts.fail(check.of(self.auth), reason);
    }

    /// `check` could not be observed for this context's way of signing in, and why.
    pub fn skip(&self, check: Check, reason: impl Into<String>) {
        self.verdicts.skip(check.of(self.auth), reason);
    }
}

impl FlowContext {
    /// Runs one flow for `user` and counts its outcome.
    pub async fn run_flow(&self, spec: &FlowSpec, user: &str) -> FlowOutcome {
        self.run_flow_from(spec, user, Instant::now()).await
    }

    /// Runs one flow whose sign-in is timed from `started` (the open model's intended start).
    pub async fn run_flow_from(&self, spec: &FlowSpec, user: &str, started: Instant) -> FlowOutcome {
        let name = flow_name(spec.kind, self.auth);
        self.metrics.flow_started(name);
        let flow = async {
            match (spec.kind, self.auth) {
                (FlowKind::Login, _) => self.sign_in(user, 0, started).await,
                (FlowKind::Retry, _) => self.sign_in(user, spec.wrong, started).await,
                (FlowKind::Lockout, Auth::Custom) => self.lockout(user).await,
                (FlowKind::Lockout, Auth::EmailOtp) => self.lockout_email_otp(user).await,
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
            auth: self.auth,
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
            diagnoses: Arc::clone(&self.diagnoses),
        }
    }

    /// InitiateAuth, timed.
    pub async fn initiate(&self, user: &str) -> Result<(Challenge, Mailing), StepError> {
        let mailing = Mailing { mark: self.mailroom.mark(), sent: Instant::now() };
        let result = self.cognito.initiate(user, self.auth).await;
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
                if let Some(pickup) = delivery.pickup {
                    // Into the run's metrics only: goose's per-request bookkeeping is not worth it here.
                    self.metrics.record(current_flow(), Step::OtpPickup, pickup, true);
                }
                if !delivery.repeated
                    && let Some(counts) = self.codes.get(&self.auth)
                {
                    counts.add(&delivery.code);
                }
                if self.auth == Auth::EmailOtp {
                    let digits = delivery.code.len();
                    if digits == Auth::EmailOtp.code_digits() {
                        self.pass(Check::CodeLength);
                    } else {
                        self.fail(
                            Check::CodeLength,
                            format!("an EMAIL_OTP code had {digits} digits; Cognito's have 8"),
                        );
                    }
                }
                Ok(delivery)
            }
            Err(e) => {
                let error = StepError::Otp(e);
                self.record_failure(Step::OtpDelivery, &error.type_name());
                self.count_error(&error.type_name());
                Err(error)
            }
        }
    }

    /// A marker for a request about to be sent that will make the pool mail a code.
    pub fn mailing(&self) -> Mailing {
        Mailing { mark: self.mailroom.mark(), sent: Instant::now() }
    }

    pub(super) fn count(&self, step: Step, elapsed: Duration, error: Option<&CallError>) {
        match error {
            None => self.record(step, elapsed, true),
            Some(e) => {
                self.count_error(&e.type_name);
                if let Some(hint) = e.hint() {
                    self.diagnoses.lock().insert(hint);
                }
                match e.class {
                    ErrorClass::Timeout | ErrorClass::Transport => self.record_failure(step, &e.type_name),
                    _ => self.record_answer(step, elapsed, false, Some(&e.type_name)),
                }
            }
        }
    }

    /// An error by its type, under the current flow.
    pub(super) fn count_error(&self, type_name: &str) {
        self.metrics.count_error_in(current_flow(), type_name);
    }

    /// A step answered in `elapsed`, into the metrics (under the current flow) and the step recorder.
    pub(super) fn record(&self, step: Step, elapsed: Duration, ok: bool) {
        self.record_answer(step, elapsed, ok, None);
    }

    fn record_answer(&self, step: Step, elapsed: Duration, ok: bool, error: Option<&str>) {
        self.metrics.record(current_flow(), step, elapsed, ok);
        note(StepRecord { step, elapsed: Some(elapsed), ok, error: error.map(str::to_string) });
    }

    /// A step that got no answer.
    pub(super) fn record_failure(&self, step: Step, error: &str) {
        self.metrics.record_failure(current_flow(), step);
        note(StepRecord { step, elapsed: None, ok: false, error: Some(error.to_string()) });
    }
}
