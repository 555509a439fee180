//! The sign-in flows: `login` (initiate, code, respond, tokens checked) and `retry` (wrong codes
//! first, then the right one), and the token checks every sign-in ends with — the tokens verified as
//! aws-jwt-verify does, then cross-checked with GetUser when `checks.get_user` is on.

use std::time::Instant;

use super::{FlowContext, wrong_code};
use crate::checks::Check;
use crate::cognito::{AuthAnswer, ErrorClass, Tokens};
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
            Err(e) if e.is_refusal() => {
                self.verdicts.fail(check, format!("the right code was refused: {e}"));
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
