//! The `lockout` flow: `expect.max_attempts` wrong codes must end the sign-in with
//! NotAuthorizedException, and the real code must then be refused on the locked session.

use super::{FlowContext, wrong_code};
use crate::checks::Check;
use crate::cognito::{AuthAnswer, ErrorClass};
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
            Err(e) if e.is_refusal() => self.verdicts.pass(Check::LockoutRealCodeRefused),
            Err(_) => return FlowOutcome::Errored,
        }
        if conforming { FlowOutcome::Succeeded } else { FlowOutcome::Nonconforming }
    }
}
