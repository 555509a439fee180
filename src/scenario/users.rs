//! `[users]`: the test users a run signs in as — addresses from a plus-addressing pattern, marked as
//! test users (lockout and probes lock them out), and the addresses the unknown-user probe uses.

use serde::Deserialize;

use super::error::{Locator, ScenarioError};

/// The test users: addresses from a plus-addressing pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Must be `true`: a statement that these addresses are test users that may be locked out.
    #[serde(default)]
    pub test_users: bool,
    /// `{n}` is replaced by the user's number, e.g. `loadtest+{n}@mail.example.test`.
    pub pattern: String,
    pub count: u32,
    /// The first `{n}`.
    #[serde(default = "one")]
    pub first: u32,
    /// Addresses that are not users, for the unknown-user probe (default: the pattern's domain with
    /// `otp-harness-unknown+{n}`).
    pub unknown_pattern: Option<String>,
}

fn one() -> u32 {
    1
}

impl Users {
    /// The address of user `n` (0-based index into the range).
    pub fn address(&self, index: u32) -> String {
        self.pattern.replace("{n}", &(self.first + index).to_string())
    }

    /// An address that is not a user.
    pub fn unknown_address(&self, index: u32) -> String {
        match &self.unknown_pattern {
            Some(p) => p.replace("{n}", &index.to_string()),
            None => {
                let domain = self.pattern.rsplit_once('@').map_or("example.test", |(_, d)| d);
                format!("otp-harness-unknown+{index}-{}@{domain}", std::process::id())
            }
        }
    }

    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if !self.test_users {
            return Err(at.error(
                "users",
                0,
                "test_users",
                "the users are not marked as test users",
                "set users.test_users = true to confirm these addresses are test users: lockout and probe flows lock them out",
            ));
        }
        if !self.pattern.contains("{n}") || !self.pattern.contains('@') {
            return Err(at.error(
                "users",
                0,
                "pattern",
                format!("users.pattern {:?} needs {{n}} and an @domain", self.pattern),
                "e.g. pattern = \"loadtest+{n}@mail.example.test\"",
            ));
        }
        if self.first.checked_add(self.count.saturating_sub(1)).is_none() {
            return Err(at.error(
                "users",
                0,
                "first",
                format!("users.first = {} with count = {} numbers users past {}", self.first, self.count, u32::MAX),
                "lower users.first or users.count: the last user's {n} is first + count - 1",
            ));
        }
        if let Some(p) = &self.unknown_pattern
            && (!p.contains("{n}") || !p.contains('@'))
        {
            return Err(at.error(
                "users",
                0,
                "unknown_pattern",
                format!("users.unknown_pattern {p:?} needs {{n}} and an @domain"),
                "e.g. unknown_pattern = \"nobody+{n}@mail.example.test\"",
            ));
        }
        Ok(())
    }
}
