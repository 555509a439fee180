//! The sign-in flows: `login` (initiate, code, respond, tokens checked) and `retry` (wrong codes
//! first, then the right one), and the token checks every sign-in ends with — the tokens verified as
//! aws-jwt-verify does, then cross-checked with GetUser when `checks.get_user` is on.

use std::time::Instant;

use super::{FlowContext, wrong_code};
use crate::checks::Check;
use crate::cognito::{Auth, AuthAnswer, CallError, ErrorClass, Tokens};
use crate::metrics::{FlowOutcome, Step};

impl FlowContext {
    /// `login` (wrong = 0) and `retry` (wrong > 0); the `login` step is timed from `started`.
    pub(super) async fn sign_in(&self, user: &str, wrong: u32, started: Instant) -> FlowOutcome {
        let check = if wrong == 0 { Check::SignIn } else { Check::Retry };
        let end = |outcome: FlowOutcome| {
            match outcome {
                FlowOutcome::Succeeded => self.record(Step::Login, started.elapsed(), true),
                _ => self.record_failure(Step::Login, "SignInFailed"),
            }
            outcome
        };
        let (mut challenge, mailing) = match self.initiate(user).await {
            Ok(v) => v,
            Err(_) => return end(FlowOutcome::Errored),
        };
        let Ok(mut delivery) = self.code(user, mailing).await else {
            return end(FlowOutcome::Errored);
        };
        for round in 1..=wrong {
            // Custom auth mails a new code with the next challenge; EMAIL_OTP keeps session and code.
            let next_mailing = self.mailing();
            let answer = self.respond(&challenge, &wrong_code(&delivery.code), |r| self.wrong_code_answered(r)).await;
            match (self.auth, answer) {
                (_, Ok(AuthAnswer::Tokens(_))) => {
                    self.fail(check, "a wrong code signed the user in");
                    return end(FlowOutcome::Nonconforming);
                }
                (Auth::Custom, Ok(AuthAnswer::Challenge(next))) => {
                    challenge = next;
                    let Ok(next_code) = self.code(user, next_mailing).await else {
                        return end(FlowOutcome::Errored);
                    };
                    delivery = next_code;
                }
                (Auth::EmailOtp, Err(e)) if e.class == ErrorClass::CodeMismatch => {}
                (Auth::EmailOtp, Ok(AuthAnswer::Challenge(next))) => {
                    self.fail(
                        check,
                        format!("a wrong code was answered with a {} challenge, not CodeMismatchException", next.name),
                    );
                    return end(FlowOutcome::Nonconforming);
                }
                (auth, Err(e)) if e.class == ErrorClass::NotAuthorized => {
                    let limit = match auth {
                        Auth::Custom => format!("expect.max_attempts = {}", self.expect.max_attempts),
                        Auth::EmailOtp => {
                            format!("expect.email_otp_max_wrong_codes = {}", self.expect.email_otp_max_wrong_codes)
                        }
                    };
                    self.fail(check, format!("the sign-in ended after {round} wrong code(s) ({e}); {limit}"));
                    return end(FlowOutcome::Nonconforming);
                }
                (_, Err(_)) => return end(FlowOutcome::Errored),
            }
        }
        let answer = self.respond(&challenge, &delivery.code, |r| matches!(r, Ok(AuthAnswer::Tokens(_)))).await;
        if delivery.uncertain && !matches!(answer, Ok(AuthAnswer::Tokens(_))) {
            // Perhaps the late mail of an earlier, timed-out wait: no proof of a defect.
            self.count_error("PossiblyStaleCode");
            return end(FlowOutcome::Errored);
        }
        match answer {
            Ok(AuthAnswer::Tokens(tokens)) => {
                self.pass(check);
                let conforming = self.check_tokens(&tokens, user).await;
                end(if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming })
            }
            Ok(AuthAnswer::Challenge(_)) => {
                self.fail(
                    check,
                    format!("the right code was answered with another challenge{}", leading_zero_hint(&delivery.code)),
                );
                end(FlowOutcome::Nonconforming)
            }
            Err(e) if e.is_refusal() => {
                self.fail(check, format!("the right code was refused: {e}{}", leading_zero_hint(&delivery.code)));
                end(FlowOutcome::Nonconforming)
            }
            Err(_) => end(FlowOutcome::Errored),
        }
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
                Err(e) if e.is_refusal() => problems.push(format!("GetUser refused the access token: {e}")),
                Err(e) => self.count_error(&e.type_name),
            }
        }
        if problems.is_empty() {
            self.pass(Check::Tokens);
            true
        } else {
            for problem in problems {
                self.fail(Check::Tokens, problem);
            }
            false
        }
    }

    /// Whether an answer to a wrong code is the one the pool should give: another challenge with a new
    /// code (custom auth), or CodeMismatchException with the session kept (EMAIL_OTP).
    pub(super) fn wrong_code_answered(&self, answer: &Result<AuthAnswer, CallError>) -> bool {
        match self.auth {
            Auth::Custom => matches!(answer, Ok(AuthAnswer::Challenge(_))),
            Auth::EmailOtp => matches!(answer, Err(e) if e.class == ErrorClass::CodeMismatch),
        }
    }
}

/// Why a refused right code that starts with 0 was most likely refused (the code itself is not named).
fn leading_zero_hint(code: &str) -> &'static str {
    if code.starts_with('0') {
        " — this code started with 0: a Verify trigger that compares the answer as a number (Number(answer), \
         parseInt, or the code kept as a number in privateChallengeParameters) loses the leading zero, so every \
         code that starts with 0 (one in ten) is refused"
    } else {
        ""
    }
}
