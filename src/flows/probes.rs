//! Conformance probes, each run once on test users of its own before the load, in the order of the
//! probe catalogue (`scenario::CATALOGUE`): session reuse, code reuse (after success and from an
//! abandoned session), a new code each round and the first code after a retry, unknown users (answer
//! and timing), and the code leaked in ChallengeParameters. A probe that an error keeps from finishing
//! is skipped with the reason, never passed. (Code randomness is judged after the load.)

use std::time::{Duration, Instant};

use super::{FlowContext, StepError, wrong_code};
use crate::checks::Check;
use crate::cognito::{AuthAnswer, ErrorClass};
use crate::scenario::{Probe, Scenario, UserExistence};

/// Each enabled probe once, in catalogue order, on test users of its own after the virtual users'.
pub async fn run_all(ctx: &FlowContext, scenario: &Scenario) {
    let mut next = scenario.load.virtual_users();
    for row in scenario.probes.enabled() {
        let users: Vec<String> = (next..next + row.users).map(|i| scenario.users.address(i)).collect();
        next += row.users;
        ctx.run_probe(row.probe, &users, scenario).await;
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
                    self.verdicts.skip(*check, format!("the probe catalogue gives {probe:?} {} users", users.len()));
                }
            }
        }
    }

    /// A consumed Session must be refused, even with the code that was right for it.
    pub async fn probe_session_reuse(&self, user: &str) {
        let check = Check::SessionReuse;
        let result: Result<(), StepError> = async {
            let (first, mailing) = self.initiate(user).await?;
            let delivery = self.code(user, mailing).await?;
            let mailing = self.mailing();
            match self.respond(&first, &wrong_code(&delivery.code), |r| matches!(r, Ok(AuthAnswer::Challenge(_)))).await
            {
                Ok(AuthAnswer::Challenge(_)) => {}
                Ok(AuthAnswer::Tokens(_)) => {
                    self.verdicts.fail(check, "a wrong code signed the user in");
                    return Ok(());
                }
                Err(e) => return Err(StepError::Call(e)),
            }
            let _ = self.code(user, mailing).await;
            match self.respond(&first, &delivery.code, |r| matches!(r, Err(e) if e.is_refusal())).await {
                Err(e) if e.is_refusal() => self.verdicts.pass(check),
                Ok(AuthAnswer::Tokens(_)) => {
                    self.verdicts.fail(check, "a consumed Session was accepted and signed the user in")
                }
                Ok(AuthAnswer::Challenge(_)) => {
                    self.verdicts.fail(check, "a consumed Session was accepted (another challenge came back)")
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
            let (challenge, mailing) = self.initiate(user).await?;
            let used = self.code(user, mailing).await?;
            match self.respond(&challenge, &used.code, |r| matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
                Ok(AuthAnswer::Tokens(_)) => {}
                Ok(AuthAnswer::Challenge(_)) => {
                    self.verdicts.skip(check, "the first sign-in did not succeed");
                    return Ok(());
                }
                Err(e) => return Err(StepError::Call(e)),
            }
            self.old_code_in_new_session(
                user,
                check,
                &used.code,
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
            self.verdicts.skip(check, "the new session drew the same code by chance");
            return Ok(());
        }
        match self.respond(&challenge, old_code, |r| !matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
            Ok(AuthAnswer::Tokens(_)) => self.verdicts.fail(check, failure),
            Ok(AuthAnswer::Challenge(_)) => self.verdicts.pass(check),
            Err(e) if e.is_refusal() => self.verdicts.pass(check),
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
                    self.verdicts.fail(Check::NewCodeEachAttempt, "a wrong code signed the user in");
                    return Ok(());
                }
                Err(e) => return Err(StepError::Call(e)),
            };
            let round2 = self.code(user, mailing).await?;
            let same = round2.code == round1.code;
            match (self.expect.new_code_each_attempt, same) {
                (true, true) => self.verdicts.fail(
                    Check::NewCodeEachAttempt,
                    "round 2 mailed the same code as round 1; expect.new_code_each_attempt = true",
                ),
                (false, false) => self
                    .verdicts
                    .fail(Check::NewCodeEachAttempt, "round 2 mailed a new code; expect.new_code_each_attempt = false"),
                _ => self.verdicts.pass(Check::NewCodeEachAttempt),
            }
            if same {
                self.verdicts.skip(Check::FirstCodeAfterRetry, "both rounds mailed the same code");
                return Ok(());
            }
            match self.respond(&second, &round1.code, |r| !matches!(r, Ok(AuthAnswer::Tokens(_)))).await {
                Ok(AuthAnswer::Tokens(_)) => self.verdicts.fail(
                    Check::FirstCodeAfterRetry,
                    "the round-1 code still signed in after round 2 mailed a new one",
                ),
                Ok(AuthAnswer::Challenge(_)) => self.verdicts.pass(Check::FirstCodeAfterRetry),
                Err(e) if e.is_refusal() => self.verdicts.pass(Check::FirstCodeAfterRetry),
                Err(e) => return Err(StepError::Call(e)),
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.verdicts.skip(Check::NewCodeEachAttempt, format!("could not run: {e}"));
            self.verdicts.skip(Check::FirstCodeAfterRetry, format!("could not run: {e}"));
        }
    }

    /// Unknown users: the answer the pool is expected to give, the same ChallengeParameters shape, and
    /// the same median latency as a known user (alternating samples).
    pub async fn probe_unknown_user(&self, known: &str, unknown: impl Fn(u32) -> String, samples: u32) {
        let mut known_times = Vec::new();
        let mut unknown_times = Vec::new();
        for n in 0..samples.max(1) {
            let started = Instant::now();
            let known_keys = match self.cognito.initiate_custom_auth(known).await {
                Ok(challenge) => {
                    known_times.push(started.elapsed());
                    let mut keys: Vec<String> = challenge.parameters.keys().cloned().collect();
                    keys.sort();
                    keys
                }
                Err(e) => {
                    self.verdicts
                        .skip(Check::UnknownUserAnswer, format!("a known user could not start a sign-in: {e}"));
                    self.verdicts
                        .skip(Check::UnknownUserTiming, format!("a known user could not start a sign-in: {e}"));
                    return;
                }
            };
            let address = unknown(n);
            let started = Instant::now();
            let answer = self.cognito.initiate_custom_auth(&address).await;
            let elapsed = started.elapsed();
            match (self.expect.user_existence, answer) {
                (UserExistence::Hidden, Ok(challenge)) => {
                    unknown_times.push(elapsed);
                    let mut keys: Vec<String> = challenge.parameters.keys().cloned().collect();
                    keys.sort();
                    if known_keys != keys {
                        self.verdicts.fail(Check::UnknownUserAnswer, "unknown users get other ChallengeParameters than known users");
                    } else if challenge.username.eq_ignore_ascii_case(&address) {
                        self.verdicts.fail(Check::UnknownUserAnswer, "unknown users' challenges echo the address as USERNAME, known users' carry the internal username");
                    } else {
                        self.verdicts.pass(Check::UnknownUserAnswer);
                    }
                }
                (UserExistence::Hidden, Err(e)) if e.class == ErrorClass::Throttled => {
                    self.verdicts.skip(Check::UnknownUserAnswer, format!("throttled: {e}"));
                }
                (UserExistence::Hidden, Err(e)) => self.verdicts.fail(
                    Check::UnknownUserAnswer,
                    format!("unknown users get {e}, known users a challenge (expect.user_existence = \"hidden\")"),
                ),
                (UserExistence::Revealed, Err(e)) if e.class == ErrorClass::UserNotFound => {
                    unknown_times.push(elapsed);
                    self.verdicts.pass(Check::UnknownUserAnswer);
                }
                (UserExistence::Revealed, other) => self.verdicts.fail(
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
            self.verdicts
                .skip(Check::UnknownUserTiming, "unknown users are revealed by design (expect.user_existence)");
            return;
        }
        match (median(&mut known_times), median(&mut unknown_times)) {
            (Some(k), Some(u)) => {
                let difference = u.abs_diff(k);
                if difference > self.expect.timing_tolerance {
                    let direction = if u > k { "slower" } else { "faster" };
                    self.verdicts.fail(
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
                    self.verdicts.pass(Check::UnknownUserTiming);
                }
            }
            _ => self.verdicts.skip(Check::UnknownUserTiming, "no unknown-user sample was answered"),
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
                self.verdicts.pass(Check::ChallengeLeak);
            } else {
                self.verdicts.fail(
                    Check::ChallengeLeak,
                    format!("ChallengeParameters carry the mailed code (under {leaked:?})"),
                );
            }
            Ok(())
        }
        .await;
        self.skip_on_error(Check::ChallengeLeak, result);
    }

    fn skip_on_error(&self, check: Check, result: Result<(), StepError>) {
        if let Err(e) = result {
            self.verdicts.skip(check, format!("could not run: {e}"));
        }
    }
}

fn median(samples: &mut [Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    Some(samples[samples.len() / 2])
}
