//! The `lockout` flow: for custom auth, `expect.max_attempts` wrong codes must end the sign-in with
//! NotAuthorizedException; for EMAIL_OTP, where the pool stops accepting codes is measured and held
//! against `expect.email_otp_max_wrong_codes`. Either way the real code must then be refused on the
//! locked session.

use super::{FlowContext, wrong_code};
use crate::checks::Check;
use crate::cognito::{AuthAnswer, Challenge, ErrorClass};
use crate::metrics::FlowOutcome;

impl FlowContext {
    /// `lockout`: max_attempts wrong codes must end the sign-in; the real code must then be refused.
    pub(super) async fn lockout(&self, user: &str) -> FlowOutcome {
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
                    self.fail(
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
                    self.fail(Check::Lockout, "a wrong code signed the user in");
                    return FlowOutcome::Nonconforming;
                }
                Err(e) if e.class == ErrorClass::NotAuthorized && wanted_lock => {
                    self.pass(Check::Lockout);
                    last = Some((challenge.clone(), delivery.code));
                }
                Err(e) if e.class == ErrorClass::NotAuthorized => {
                    self.fail(
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
        match self.real_code_refused(&old_session, &real_code).await {
            Some(refused) => conforming &= refused,
            None => return FlowOutcome::Errored,
        }
        if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming }
    }

    /// `lockout` for EMAIL_OTP: wrong codes (each CodeMismatchException, the session kept) until the pool
    /// refuses the next answer — measured, up to `expect.email_otp_lock_limit`, and held against
    /// `expect.email_otp_max_wrong_codes`; then the real code must be refused on the locked session.
    pub(super) async fn lockout_email_otp(&self, user: &str) -> FlowOutcome {
        let (expected, limit) = (self.expect.email_otp_max_wrong_codes, self.expect.email_otp_lock_limit);
        let (challenge, mailing) = match self.initiate(user).await {
            Ok(v) => v,
            Err(_) => return FlowOutcome::Errored,
        };
        let Ok(delivery) = self.code(user, mailing).await else {
            return FlowOutcome::Errored;
        };
        let mut mismatches = 0;
        loop {
            if mismatches >= limit {
                self.fail(
                    Check::Lockout,
                    format!(
                        "no lock after {limit} wrong codes (expect.email_otp_lock_limit): wrong codes are not bounded; \
                         expected the answer after {expected} to be refused"
                    ),
                );
                return FlowOutcome::Nonconforming;
            }
            let should_lock = mismatches == expected;
            let answer = self
                .respond(&challenge, &wrong_code(&delivery.code), |r| match r {
                    Err(e) if e.class == ErrorClass::CodeMismatch => !should_lock,
                    Err(e) if e.class == ErrorClass::NotAuthorized => should_lock,
                    _ => false,
                })
                .await;
            match answer {
                Err(e) if e.class == ErrorClass::CodeMismatch => mismatches += 1,
                Err(e) if e.class == ErrorClass::NotAuthorized => break,
                Ok(AuthAnswer::Tokens(_)) => {
                    self.fail(Check::Lockout, "a wrong code signed the user in");
                    return FlowOutcome::Nonconforming;
                }
                Ok(AuthAnswer::Challenge(next)) => {
                    self.fail(
                        Check::Lockout,
                        format!("a wrong code was answered with a {} challenge, not CodeMismatchException", next.name),
                    );
                    return FlowOutcome::Nonconforming;
                }
                Err(_) => return FlowOutcome::Errored,
            }
        }
        let mut conforming = true;
        if mismatches == expected {
            self.pass(Check::Lockout);
        } else {
            self.fail(
                Check::Lockout,
                format!(
                    "the session locked after {mismatches} wrong code(s); expected {expected} (expect.email_otp_max_wrong_codes)"
                ),
            );
            conforming = false;
        }
        match self.real_code_refused(&challenge, &delivery.code).await {
            Some(refused) => conforming &= refused,
            None => return FlowOutcome::Errored,
        }
        if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming }
    }

    /// After a lockout, the real code on the locked session: `Some(true)` if refused, `Some(false)` if
    /// accepted (a failure recorded), `None` if no answer came.
    async fn real_code_refused(&self, locked: &Challenge, real_code: &str) -> Option<bool> {
        match self.respond(locked, real_code, |r| matches!(r, Err(e) if e.is_refusal())).await {
            Err(e) if e.is_refusal() => {
                self.pass(Check::LockoutRealCodeRefused);
                Some(true)
            }
            Ok(AuthAnswer::Tokens(_)) => {
                self.fail(Check::LockoutRealCodeRefused, "the real code signed in on the locked session");
                Some(false)
            }
            Ok(AuthAnswer::Challenge(_)) => {
                self.fail(Check::LockoutRealCodeRefused, "the locked session was answered with another challenge");
                Some(false)
            }
            Err(_) => None,
        }
    }
}
