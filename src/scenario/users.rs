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

    /// True if `address` is one of this range's users (case-insensitive): the pattern with a number
    /// from `first` to `first + count - 1` for `{n}`. Mail to anyone else in a shared inbox is another
    /// run's or another worker's.
    pub fn owns(&self, address: &str) -> bool {
        let (pattern, address) = (self.pattern.to_ascii_lowercase(), address.trim().to_ascii_lowercase());
        let Some((prefix, suffix)) = pattern.split_once("{n}") else {
            return false;
        };
        let number = address.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(suffix));
        let Some(number) = number.filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) else {
            return false;
        };
        // No leading zeros: `{n}` is written without them, so "vu+03" is nobody.
        if number.len() > 1 && number.starts_with('0') {
            return false;
        }
        number
            .parse::<u64>()
            .is_ok_and(|n| n >= u64::from(self.first) && n < u64::from(self.first) + u64::from(self.count))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_owns_its_own_addresses_only() {
        let users = Users {
            test_users: true,
            pattern: "LoadTest+{n}@Mail.test".into(),
            count: 5,
            first: 11,
            unknown_pattern: None,
        };
        assert!(users.owns("loadtest+11@mail.test") && users.owns("LOADTEST+15@MAIL.TEST"));
        for other in [
            "loadtest+10@mail.test",
            "loadtest+16@mail.test",
            "loadtest+011@mail.test",
            "loadtest+@mail.test",
            "loadtest+1x@mail.test",
            "loadtest@mail.test",
            "loadtest+12@mail.test.evil",
            "loadtest+99999999999999999999999@mail.test",
        ] {
            assert!(!users.owns(other), "{other}");
        }
    }
}
