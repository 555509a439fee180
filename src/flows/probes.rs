//! Conformance probes, each run once on test users of its own before the load, in the order of the
//! probe catalogue (`scenario::CATALOGUE`): session reuse, code reuse (after success and from an
//! abandoned session), a new code each round and the first code after a retry, unknown users (answer
//! and timing), and the code leaked in ChallengeParameters. A probe that an error keeps from finishing
//! is skipped with the reason, never passed. (Code randomness is judged after the load.)

use std::time::{Duration, Instant};

use super::{FlowContext, StepError, wrong_code};
use crate::checks::Check;
use crate::cognito::{Auth, AuthAnswer, Challenge, ErrorClass};
use crate::scenario::{Probe, Scenario, UserExistence};

/// Each probe of the scenario's plan once — every enabled probe for each way of signing in it applies
/// to, in catalogue order — on test users of its own after the virtual users'.
pub async fn run_all(ctx: &FlowContext, scenario: &Scenario) {
    let mut next = scenario.load.virtual_users();
    for (auth, row) in scenario.probe_plan() {
        let users: Vec<String> = (next..next + row.users).map(|i| scenario.users.address(i)).collect();
        next += row.users;
        ctx.for_auth(auth).run_probe(row.probe, &users, scenario).await;
    }
}

impl FlowContext {
    /// One probe on the test users the catalogue gives it.
    async fn run_probe(&self, probe: Probe, users: &[String], scenario: &Scenario) {
        match (probe, users) {
            (Probe::SessionReuse, [user]) => self.probe_session_reuse(user).await,
            (Probe::CodeReuse, [after_success, new_session]) => {
                self.probe_code_reuse_after_success(after_success).await;
                self.probe_code_reuse_in_new_session(new_session).await;
            }
            (Probe::NewCodeEachAttempt, [user]) => self.probe_new_code_each_attempt(user).await,
            (Probe::UnknownUser, [known]) => {
                let unknown = |n| scenario.users.unknown_address(n);
                self.probe_unknown_user(known, unknown, scenario.probes.unknown_user_samples).await;
            }
            (Probe::ChallengeLeak, [user]) => self.probe_challenge_leak(user).await,
            // Judged after the load, over every code of the run (`checks::randomness`).
            (Probe::CodeRandomness, []) => {}
            (probe, users) => {
                for check in probe.row().checks {
                    self.skip(*check, format!("the probe catalogue gives {probe:?} {} users", users.len()));
                }
            }
        }
    }

    /// A consumed Session must be refused, even with the code that was right for it.
    pub async fn probe_session_reuse(&self, user: &str) {
        if self.auth == Auth::EmailOtp {
            return self.probe_session_reuse_after_sign_in(user).await;
        }
        let check = Check::SessionReuse;
        let result: Result<(), StepError> = async {
            let (first, mailing) = self.initiate(user).await?;
            let delivery = self.code(user, mailing).await?;
            let mailing = self.mailing();
            match self.respond(&first, &wrong_code(&delivery.code), |r| matches!(r, Ok(AuthAnswer::Challenge(_)))).await
            {
                Ok(AuthAnswer::Challenge(_)) => {}
                Ok(AuthAnswer::Tokens(_)) => {
                    self.fail(check, "a wrong code signed the user in");
                    return Ok(());
                }
                Err(e) => return Err(StepError::Call(e)),
            }
            let _ = self.code(user, mailing).await;
            match self.respond(&first, &delivery.code, |r| matches!(r, Err(e) if e.is_refusal())).await {
                Err(e) if e.is_refusal() => self.pass(check),
                Ok(AuthAnswer::Tokens(_)) => self.fail(check, "a consumed Session was accepted and signed the user in"),
                Ok(AuthAnswer::Challenge(_)) => {
                    self.fail(check, "a consumed Session was accepted (another challenge came back)")
                }
                Err(e) => return Err(StepError::Call(e)),
            }
            Ok(())
        }
        .await;
        self.skip_on_error(check, result);
    }

    /// EMAIL_OTP keeps its session after a wrong code, so it is consumed by signing in: the same
    /// Session and code must then be refused.
    async fn probe_session_reuse_after_sign_in(&self, user: &str) {
        let check = Check::SessionReuse;
        let result: Result<(), StepError> = async {
            let Some((challenge, code)) = self.signed_in(user, check).await? else {
                return Ok(());
            };
            match self.respond(&challenge, &code, |r| matches!(r, Err(e) if e.is_refusal())).await {
                Err(e) if e.is_refusal() => self.pass(check),
                Ok(AuthAnswer::Tokens(_)) => {
                    self.fail(check, "a consumed Session was accepted and signed the user in again")
                }
                Ok(AuthAnswer::Challenge(_)) => {
                    self.fail(check, "a consumed Session was accepted (another challenge came back)")
                }
                Err(e) => return Err(StepError::Call(e)),
            }
            Ok(())
        }
        .await;
        self.skip_on_error(check, result);
    }

    /// A code that signed in must not sign in again in a new session.
    pub async fn probe_code_reuse_after_success(&self, user: &str) {
        let check = Check::CodeReuseAfterSuccess;
        let result: Result<(), StepError> = async {
            let Some((_, used)) = self.signed_in(user, check).await? else {
                return Ok(());
            };
            self.old_code_in_new_session(
                user,
                check,
                &used,
                "a code that already signed in was accepted again in a new session",
            )
            .await
        }
        .await;
        self.skip_on_error(check, result);
    }

    /// A code mailed in an abandoned session must not sign in in a new one.
    pub async fn probe_code_reuse_in_new_session(&self, user: &str) {
        let check = Check::CodeReuseInNewSession;
        let result: Result<(), StepError> = async {
            let (_abandoned, mailing) = self.initiate(user).await?;
            let old = self.code(user, mailing).await?;
            self.old_code_in_new_session(
                user,
                check,
                &old.code,
                "a code mailed in an abandoned session signed in in a new one",
            )
            .await
        }
        .await;
        self.skip_on_error(check, result);
    }

    async fn old_code_in_new_session(
        &self,
        user: &str,
        check: Check,
        old_code: &str,
        failure: &str,
    ) -> Result<(), StepError> {
        let (challenge, mailing) = self.initiate(user).await?;
        let new = self.code(user, mailing).await?;
        if new.code == old_code {
            self.skip(check, "the new session drew the same code by chance");
            return Ok(());
        }
        match self.respond(&challenge, old_code, |r| !matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
            Ok(AuthAnswer::Tokens(_)) => self.fail(check, failure),
            Ok(AuthAnswer::Challenge(_)) => self.pass(check),
            Err(e) if e.is_refusal() => self.pass(check),
            Err(e) => return Err(StepError::Call(e)),
        }
        Ok(())
    }

    /// After a wrong answer: is the next round's code new (as `expect` says), and is the first code
    /// refused once a new one was mailed?
    pub async fn probe_new_code_each_attempt(&self, user: &str) {
        let result: Result<(), StepError> = async {
            let (first, mailing) = self.initiate(user).await?;
            let round1 = self.code(user, mailing).await?;
            let mailing = self.mailing();
            let second = match self
                .respond(&first, &wrong_code(&round1.code), |r| matches!(r, Ok(AuthAnswer::Challenge(_))))
                .await
            {
                Ok(AuthAnswer::Challenge(next)) => next,
                Ok(AuthAnswer::Tokens(_)) => {
                    self.fail(Check::NewCodeEachAttempt, "a wrong code signed the user in");
                    return Ok(());
                }
                Err(e) => return Err(StepError::Call(e)),
            };
            let round2 = self.code(user, mailing).await?;
            let same = round2.code == round1.code;
            match (self.expect.new_code_each_attempt, same) {
                (true, true) => self.fail(
                    Check::NewCodeEachAttempt,
                    "round 2 mailed the same code as round 1; expect.new_code_each_attempt = true",
                ),
                (false, false) => self
                    .fail(Check::NewCodeEachAttempt, "round 2 mailed a new code; expect.new_code_each_attempt = false"),
                _ => self.pass(Check::NewCodeEachAttempt),
            }
            if same {
                self.skip(Check::FirstCodeAfterRetry, "both rounds mailed the same code");
                return Ok(());
            }
            match self.respond(&second, &round1.code, |r| !matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
                Ok(AuthAnswer::Tokens(_)) => self.fail(
                    Check::FirstCodeAfterRetry,
                    "the round-1 code still signed in after round 2 mailed a new one",
                ),
                Ok(AuthAnswer::Challenge(_)) => self.pass(Check::FirstCodeAfterRetry),
                Err(e) if e.is_refusal() => self.pass(Check::FirstCodeAfterRetry),
                Err(e) => return Err(StepError::Call(e)),
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.skip(Check::NewCodeEachAttempt, format!("could not run: {e}"));
            self.skip(Check::FirstCodeAfterRetry, format!("could not run: {e}"));
        }
    }

    /// Unknown users: the answer the pool is expected to give, the same ChallengeParameters shape, and
    /// the same median latency as a known user (alternating samples).
    pub async fn probe_unknown_user(&self, known: &str, unknown: impl Fn(u32) -> String, samples: u32) {
        let mut known_times = Vec::new();
        let mut unknown_times = Vec::new();
        for n in 0..samples.max(1) {
            let started = Instant::now();
            let (known_shape, known_echoed) = match self.cognito.initiate(known, self.auth).await {
                Ok(challenge) => {
                    known_times.push(started.elapsed());
                    // A pool without username attributes names everyone by the address they gave.
                    let echoed = challenge.parameters.get("USERNAME").is_some_and(|u| u.eq_ignore_ascii_case(known));
                    (shape(&challenge), echoed)
                }
                Err(e) => {
                    self.skip(Check::UnknownUserAnswer, format!("a known user could not start a sign-in: {e}"));
                    self.skip(Check::UnknownUserTiming, format!("a known user could not start a sign-in: {e}"));
                    return;
                }
            };
            let address = unknown(n);
            let started = Instant::now();
            let answer = self.cognito.initiate(&address, self.auth).await;
            let elapsed = started.elapsed();
            match (self.expect.user_existence, answer) {
                (UserExistence::Hidden, Ok(challenge)) => {
                    unknown_times.push(elapsed);
                    let unknown_shape = shape(&challenge);
                    let echoed = challenge.parameters.get("USERNAME").is_some_and(|u| u.eq_ignore_ascii_case(&address));
                    if known_shape != unknown_shape {
                        self.fail(
                            Check::UnknownUserAnswer,
                            format!(
                                "unknown users get another challenge than known users ({} vs {})",
                                unknown_shape.describe(),
                                known_shape.describe()
                            ),
                        );
                    } else if echoed && !known_echoed {
                        self.fail(Check::UnknownUserAnswer, "unknown users' challenges echo the address as USERNAME, known users' carry the internal username");
                    } else {
                        self.pass(Check::UnknownUserAnswer);
                    }
                }
                // Throttling, a failing trigger, a time-out: no answer about the user, so no verdict.
                (_, Err(e)) if !e.is_refusal() => {
                    self.skip(Check::UnknownUserAnswer, format!("an unknown user's sign-in could not start: {e}"));
                }
                (UserExistence::Hidden, Err(e)) => self.fail(
                    Check::UnknownUserAnswer,
                    format!("unknown users get {e}, known users a challenge (expect.user_existence = \"hidden\")"),
                ),
                (UserExistence::Revealed, Err(e)) if e.class == ErrorClass::UserNotFound => {
                    unknown_times.push(elapsed);
                    self.pass(Check::UnknownUserAnswer);
                }
                (UserExistence::Revealed, other) => self.fail(
                    Check::UnknownUserAnswer,
                    format!(
                        "expected UserNotFoundException for unknown users (expect.user_existence = \"revealed\"), got {}",
                        match other {
                            Ok(_) => "a challenge".to_string(),
                            Err(e) => e.to_string(),
                        }
                    ),
                ),
            }
        }
        if self.expect.user_existence == UserExistence::Revealed {
            self.skip(Check::UnknownUserTiming, "unknown users are revealed by design (expect.user_existence)");
            return;
        }
        match (median(&mut known_times), median(&mut unknown_times)) {
            (Some(k), Some(u)) => {
                let difference = u.abs_diff(k);
                if difference > self.expect.timing_tolerance {
                    let direction = if u > k { "slower" } else { "faster" };
                    self.fail(
                        Check::UnknownUserTiming,
                        format!(
                            "unknown users are answered {:.0} ms {direction} than known users (medians {:.0} vs {:.0} ms; tolerance {:.0} ms)",
                            difference.as_secs_f64() * 1000.0,
                            u.as_secs_f64() * 1000.0,
                            k.as_secs_f64() * 1000.0,
                            self.expect.timing_tolerance.as_secs_f64() * 1000.0
                        ),
                    );
                } else {
                    self.pass(Check::UnknownUserTiming);
                }
            }
            _ => self.skip(Check::UnknownUserTiming, "no unknown-user sample was answered"),
        }
    }

    /// ChallengeParameters must not carry the mailed code.
    pub async fn probe_challenge_leak(&self, user: &str) {
        let result: Result<(), StepError> = async {
            let (challenge, mailing) = self.initiate(user).await?;
            let delivery = self.code(user, mailing).await?;
            let leaked: Vec<&String> =
                challenge.parameters.iter().filter(|(_, v)| v.contains(&delivery.code)).map(|(k, _)| k).collect();
            if leaked.is_empty() {
                self.pass(Check::ChallengeLeak);
            } else {
                self.fail(
                    Check::ChallengeLeak,
                    format!("ChallengeParameters carry the mailed code (under {leaked:?})"),
                );
            }
            Ok(())
        }
        .await;
        self.skip_on_error(Check::ChallengeLeak, result);
    }

    /// Signs `user` in: the challenge answered and the code that signed in, or None (with `check`
    /// skipped) when the right code did not give tokens.
    async fn signed_in(&self, user: &str, check: Check) -> Result<Option<(Challenge, String)>, StepError> {
        let (challenge, mailing) = self.initiate(user).await?;
        let delivery = self.code(user, mailing).await?;
        match self.respond(&challenge, &delivery.code, |r| matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
            Ok(AuthAnswer::Tokens(_)) => Ok(Some((challenge, delivery.code))),
            Ok(AuthAnswer::Challenge(_)) => {
                self.skip(check, "the first sign-in did not succeed");
                Ok(None)
            }
            Err(e) => Err(StepError::Call(e)),
        }
    }

    fn skip_on_error(&self, check: Check, result: Result<(), StepError>) {
        if let Err(e) = result {
            self.skip(check, format!("could not run: {e}"));
        }
    }
}

/// What a challenge looks like from outside: its name, parameter keys, offered challenges, and whether
/// SELECT_CHALLENGE came first. Known and unknown users' must not differ.
#[derive(Debug, PartialEq)]
struct Shape {
    name: String,
    keys: Vec<String>,
    available: Vec<String>,
    selected: bool,
}

impl Shape {
    fn describe(&self) -> String {
        let mut text = format!("{} with {:?}", self.name, self.keys);
        if !self.available.is_empty() {
            text.push_str(&format!(", offering {:?}", self.available));
        }
        if self.selected {
            text.push_str(", after SELECT_CHALLENGE");
        }
        text
    }
}

fn shape(challenge: &Challenge) -> Shape {
    let mut keys: Vec<String> = challenge.parameters.keys().cloned().collect();
    keys.sort();
    let mut available = challenge.available.clone();
    available.sort();
    Shape { name: challenge.name.clone(), keys, available, selected: challenge.selected }
}

fn median(samples: &mut [Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    Some(samples[samples.len() / 2])
}
