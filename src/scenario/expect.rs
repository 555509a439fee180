//! `[expect]`: what the pool under test is supposed to do — its attempt limit, whether each round
//! mails a new code, whether unknown users are hidden — so one harness judges differently built pools.

use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, ScenarioError};

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
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            new_code_each_attempt: true,
            user_existence: UserExistence::Hidden,
            timing_tolerance: Duration::from_millis(100),
            min_codes_for_randomness: 50,
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
        Ok(())
    }
}
