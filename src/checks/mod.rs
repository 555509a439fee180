//! Conformance checks and their verdicts. Flows and probes report each observation as a pass or a
//! failure with a reason; a check fails if any observation failed, passes if some passed and none
//! failed, and is skipped (with a reason) when nothing could be observed. Each check is made apart for
//! each way of signing in (`CheckId`: `sign_in` for custom auth, `sign_in.email_otp` for the native flow),
//! so a migration run judges both side by side.

pub mod randomness;
pub mod tokens;

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cognito::Auth;

/// Every check the harness makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    SignIn,
    Tokens,
    Retry,
    Lockout,
    LockoutRealCodeRefused,
    SessionReuse,
    CodeReuseAfterSuccess,
    CodeReuseInNewSession,
    NewCodeEachAttempt,
    FirstCodeAfterRetry,
    UnknownUserAnswer,
    UnknownUserTiming,
    ChallengeLeak,
    CodeRandomness,
    /// EMAIL_OTP codes have Cognito's fixed length.
    CodeLength,
}

impl Check {
    /// Stable name (summary.json, junit.xml).
    pub fn name(self) -> &'static str {
        match self {
            Check::SignIn => "sign_in",
            Check::Tokens => "tokens",
            Check::Retry => "retry",
            Check::Lockout => "lockout",
            Check::LockoutRealCodeRefused => "lockout.real_code_refused",
            Check::SessionReuse => "probe.session_reuse",
            Check::CodeReuseAfterSuccess => "probe.code_reuse_after_success",
            Check::CodeReuseInNewSession => "probe.code_reuse_in_new_session",
            Check::NewCodeEachAttempt => "probe.new_code_each_attempt",
            Check::FirstCodeAfterRetry => "probe.first_code_after_retry",
            Check::UnknownUserAnswer => "probe.unknown_user_answer",
            Check::UnknownUserTiming => "probe.unknown_user_timing",
            Check::ChallengeLeak => "probe.challenge_leak",
            Check::CodeRandomness => "code_randomness",
            Check::CodeLength => "code_length",
        }
    }

    /// What the check asserts, in a line.
    pub fn description(self) -> &'static str {
        match self {
            Check::SignIn => "the right code signs the user in",
            Check::Tokens => {
                "tokens verify as aws-jwt-verify does (RS256 by kid, iss, exp, token_use, aud/client_id) and match the user"
            }
            Check::Retry => "after fewer than max_attempts wrong codes, the right code still signs in",
            Check::Lockout => "the max_attempts-th wrong code ends the sign-in with NotAuthorizedException",
            Check::LockoutRealCodeRefused => "after the lockout, the real code is refused",
            Check::SessionReuse => "a consumed Session is refused",
            Check::CodeReuseAfterSuccess => "a code that signed in is refused in a later session",
            Check::CodeReuseInNewSession => "a code mailed in an abandoned session is refused in a new one",
            Check::NewCodeEachAttempt => "each round mails a new code (or the same one, as expected)",
            Check::FirstCodeAfterRetry => "the first code no longer works once a new one was mailed",
            Check::UnknownUserAnswer => {
                "unknown users get the answer expected of the pool (same as known users when hidden)"
            }
            Check::UnknownUserTiming => "unknown users are answered as fast as known users",
            Check::ChallengeLeak => "ChallengeParameters do not carry the code",
            Check::CodeRandomness => {
                "code digits are uniform overall and at each position (chi-squared over all digits and per \
                 position, and no digit missing at a position; Bonferroni-corrected so a sound generator \
                 fails at most once in 10,000 runs)"
            }
            Check::CodeLength => "EMAIL_OTP codes have 8 digits, the length Cognito fixes",
        }
    }
}

/// A check, made for one way of signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckId {
    pub check: Check,
    pub auth: Auth,
}

impl CheckId {
    /// Stable name: the check's, with `.email_otp` for the native flow.
    pub fn name(self) -> String {
        format!("{}{}", self.check.name(), self.auth.suffix())
    }

    pub fn description(self) -> String {
        match self.auth {
            Auth::Custom => self.check.description().to_string(),
            other => format!("{} ({})", self.check.description(), other.name()),
        }
    }
}

impl From<Check> for CheckId {
    /// The check for custom auth.
    fn from(check: Check) -> Self {
        Self { check, auth: Auth::Custom }
    }
}

impl Check {
    /// This check for a way of signing in.
    pub fn of(self, auth: Auth) -> CheckId {
        CheckId { check: self, auth }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    /// As every report labels it (a failure stands out).
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub description: String,
    pub status: Status,
    pub passed: u64,
    pub failed: u64,
    /// Why it failed (the first distinct reasons) or was skipped; empty when it passed.
    pub reason: String,
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    reasons: Vec<String>,
    skip_reason: Option<String>,
}

const REASONS_KEPT: usize = 3;

/// Collects observations from every virtual user.
#[derive(Default)]
pub struct Verdicts {
    tallies: Mutex<BTreeMap<CheckId, Tally>>,
}

impl Verdicts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pass(&self, check: impl Into<CheckId>) {
        self.tallies.lock().entry(check.into()).or_default().passed += 1;
    }

    /// A failed observation; the reason must carry no code, token or password.
    pub fn fail(&self, check: impl Into<CheckId>, reason: impl Into<String>) {
        let reason = reason.into();
        let mut tallies = self.tallies.lock();
        let tally = tallies.entry(check.into()).or_default();
        tally.failed += 1;
        if tally.reasons.len() < REASONS_KEPT && !tally.reasons.contains(&reason) {
            tally.reasons.push(reason);
        }
    }

    /// Nothing could be observed for `check`, and why.
    pub fn skip(&self, check: impl Into<CheckId>, reason: impl Into<String>) {
        self.tallies.lock().entry(check.into()).or_default().skip_reason = Some(reason.into());
    }

    /// The verdicts, in check order.
    pub fn results(&self) -> Vec<CheckResult> {
        self.tallies
            .lock()
            .iter()
            .map(|(check, t)| {
                let (status, reason) = if t.failed > 0 {
                    (Status::Fail, t.reasons.join("; "))
                } else if t.passed > 0 {
                    (Status::Pass, String::new())
                } else {
                    (Status::Skip, t.skip_reason.clone().unwrap_or_else(|| "nothing was observed".into()))
                };
                CheckResult {
                    name: check.name(),
                    description: check.description(),
                    status,
                    passed: t.passed,
                    failed: t.failed,
                    reason,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_failure_fails_the_check_and_reasons_are_kept_distinct() {
        let v = Verdicts::new();
        v.pass(Check::SignIn);
        v.fail(Check::SignIn, "refused");
        v.fail(Check::SignIn, "refused");
        v.pass(Check::Tokens);
        v.skip(Check::CodeRandomness, "too few codes");
        let results = v.results();
        let sign_in = results.iter().find(|r| r.name == "sign_in").expect("sign_in");
        assert_eq!((sign_in.status, sign_in.passed, sign_in.failed), (Status::Fail, 1, 2));
        assert_eq!(sign_in.reason, "refused");
        assert_eq!(results.iter().find(|r| r.name == "tokens").map(|r| r.status), Some(Status::Pass));
        assert_eq!(results.iter().find(|r| r.name == "code_randomness").map(|r| r.status), Some(Status::Skip));
    }
}
