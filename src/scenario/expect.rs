//! `[expect]`: what the pool under test is supposed to do — its attempt limit, whether each round
//! mails a new code, whether unknown users are hidden — so one harness judges differently built pools.

use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, ScenarioError};
use crate::cognito::Auth;

/// Whether unknown users must look like known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserExistence {
    /// PreventUserExistenceErrors=ENABLED: same answer, same timing.
    Hidden,
    /// LEGACY: `UserNotFoundException` is expected.
    Revealed,
}

/// What the pool is supposed to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    pub max_attempts: u32,
    pub new_code_each_attempt: bool,
    pub user_existence: UserExistence,
    /// Largest difference of median InitiateAuth latency between known and unknown users.
    #[serde(with = "humantime_serde")]
    pub timing_tolerance: Duration,
    /// Fewest codes for the randomness check to give a verdict.
    pub min_codes_for_randomness: u32,
    /// email_otp: wrong codes answered with CodeMismatchException in one session before the next answer
    /// is refused (the session locked). Undocumented for EMAIL_OTP; 5 is what the docs give for MFA codes.
    pub email_otp_max_wrong_codes: u32,
    /// email_otp: the lockout flow gives up looking for the lock after this many wrong codes (a pool
    /// that never locks fails the lockout check with the count).
    pub email_otp_lock_limit: u32,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            new_code_each_attempt: true,
            user_existence: UserExistence::Hidden,
            timing_tolerance: Duration::from_millis(100),
            min_codes_for_randomness: 50,
            email_otp_max_wrong_codes: 5,
            email_otp_lock_limit: 20,
        }
    }
}

impl Expect {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.max_attempts == 0 {
            return Err(at.error(
                "expect",
                0,
                "max_attempts",
                "expect.max_attempts must be at least 1",
                "the seed's Define trigger allows 3",
            ));
        }
        if self.email_otp_max_wrong_codes == 0 || self.email_otp_lock_limit <= self.email_otp_max_wrong_codes {
            return Err(at.error(
                "expect",
                0,
                "email_otp_lock_limit",
                format!(
                    "expect.email_otp_lock_limit ({}) must be above expect.email_otp_max_wrong_codes ({}), which must be at least 1",
                    self.email_otp_lock_limit, self.email_otp_max_wrong_codes
                ),
                "e.g. email_otp_max_wrong_codes = 5 and email_otp_lock_limit = 20",
            ));
        }
        if self.email_otp_lock_limit > 1000 {
            return Err(at.error(
                "expect",
                0,
                "email_otp_lock_limit",
                "expect.email_otp_lock_limit must be at most 1000",
                "e.g. email_otp_lock_limit = 20",
            ));
        }
        Ok(())
    }

    /// The most wrong codes a retry flow of `auth` can give and still sign in.
    pub fn wrong_codes_before_lock(&self, auth: Auth) -> u32 {
        match auth {
            Auth::Custom => self.max_attempts.saturating_sub(1),
            Auth::EmailOtp => self.email_otp_max_wrong_codes.saturating_sub(1),
        }
    }
}
