//! `[probes]` and the probe catalogue. A probe is a conformance test run once before the load on test
//! users of its own (session reuse, code reuse, a new code each round, unknown users, the code leaked
//! in ChallengeParameters; code randomness is judged after the load over every code of the run).
//!
//! The catalogue has one row per probe — its `[probes]` flag, the test users it needs, the checks it
//! owns, the ways of signing in it applies to — and is what the scenario's keys, the check plan, the probe runner (`flows::probes`) and worker
//! slicing all read: a new probe is one row here and one function there.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::checks::Check;
use crate::cognito::Auth;

/// A conformance probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    SessionReuse,
    CodeReuse,
    NewCodeEachAttempt,
    UnknownUser,
    ChallengeLeak,
    CodeRandomness,
}

/// One row of the catalogue.
#[derive(Debug)]
pub struct ProbeRow {
    pub probe: Probe,
    /// Its on/off key in `[probes]`.
    pub flag: &'static str,
    /// Test users it signs in as (after the virtual users' own, in catalogue order).
    pub users: u32,
    /// The checks it owns.
    pub checks: &'static [Check],
    /// The ways of signing in it applies to (it runs once for each the scenario's flows use).
    pub auths: &'static [Auth],
}

const BOTH: &[Auth] = &Auth::ALL;

/// Every probe, in the order they run.
pub const CATALOGUE: [ProbeRow; 6] = [
    ProbeRow {
        probe: Probe::SessionReuse,
        flag: "session_reuse",
        users: 1,
        checks: &[Check::SessionReuse],
        auths: BOTH,
    },
    ProbeRow {
        probe: Probe::CodeReuse,
        flag: "code_reuse",
        users: 2,
        checks: &[Check::CodeReuseAfterSuccess, Check::CodeReuseInNewSession],
        auths: BOTH,
    },
    ProbeRow {
        probe: Probe::NewCodeEachAttempt,
        flag: "new_code_each_attempt",
        users: 1,
        checks: &[Check::NewCodeEachAttempt, Check::FirstCodeAfterRetry],
        // EMAIL_OTP has no rounds: one code per session, kept after a wrong answer.
        auths: &[Auth::Custom],
    },
    ProbeRow {
        probe: Probe::UnknownUser,
        flag: "unknown_user",
        users: 1,
        checks: &[Check::UnknownUserAnswer, Check::UnknownUserTiming],
        auths: BOTH,
    },
    ProbeRow {
        probe: Probe::ChallengeLeak,
        flag: "challenge_leak",
        users: 1,
        checks: &[Check::ChallengeLeak],
        auths: BOTH,
    },
    ProbeRow {
        probe: Probe::CodeRandomness,
        flag: "code_randomness",
        users: 0,
        checks: &[Check::CodeRandomness],
        auths: BOTH,
    },
];

impl Probe {
    /// Its row of the catalogue.
    pub fn row(self) -> &'static ProbeRow {
        CATALOGUE.iter().find(|r| r.probe == self).unwrap_or_else(|| unreachable!("every probe has a row"))
    }
}

/// The `[probes]` key that is not a probe's flag.
const SAMPLES_KEY: &str = "unknown_user_samples";

/// `[probes]`: which probes run (every one by default; `flag = false` turns one off) and how many
/// sign-in starts per side the unknown-user timing comparison takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "BTreeMap<String, toml::Value>")]
pub struct Probes {
    enabled: BTreeSet<Probe>,
    /// Sign-in starts per side (known, unknown) for the unknown-user timing comparison.
    pub unknown_user_samples: u32,
}

impl Default for Probes {
    fn default() -> Self {
        Self { enabled: CATALOGUE.iter().map(|r| r.probe).collect(), unknown_user_samples: 5 }
    }
}

impl TryFrom<BTreeMap<String, toml::Value>> for Probes {
    type Error = String;

    fn try_from(table: BTreeMap<String, toml::Value>) -> Result<Self, String> {
        let mut probes = Probes::default();
        for (key, value) in table {
            if key == SAMPLES_KEY {
                probes.unknown_user_samples = value
                    .as_integer()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("probes.{SAMPLES_KEY} must be a whole number, e.g. 5"))?;
                continue;
            }
            let Some(row) = CATALOGUE.iter().find(|r| r.flag == key) else {
                let known: Vec<String> =
                    CATALOGUE.iter().map(|r| r.flag).chain([SAMPLES_KEY]).map(|k| format!("`{k}`")).collect();
                return Err(format!("unknown field `{key}`, expected one of {}", known.join(", ")));
            };
            match value.as_bool() {
                Some(true) => probes.enabled.insert(row.probe),
                Some(false) => probes.enabled.remove(&row.probe),
                None => return Err(format!("probes.{key} must be true or false")),
            };
        }
        Ok(probes)
    }
}

impl Probes {
    pub fn is_enabled(&self, probe: Probe) -> bool {
        self.enabled.contains(&probe)
    }

    /// The enabled probes' rows, in the order they run.
    pub fn enabled(&self) -> impl Iterator<Item = &'static ProbeRow> + '_ {
        CATALOGUE.iter().filter(|r| self.is_enabled(r.probe))
    }

    /// Test users the enabled probes need (each probe signs in on users of its own).
    pub fn users_needed(&self) -> u32 {
        self.enabled().map(|r| r.users).sum()
    }

    /// No probe runs (the samples setting is kept).
    pub fn disable_all(&mut self) {
        self.enabled.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_turn_probes_off_and_unknown_keys_are_named() {
        let all = Probes::default();
        assert_eq!(all.users_needed(), 6);
        let table: BTreeMap<String, toml::Value> =
            toml::from_str("code_reuse = false\nunknown_user_samples = 9").expect("toml");
        let some = Probes::try_from(table).expect("valid");
        assert!(!some.is_enabled(Probe::CodeReuse) && some.is_enabled(Probe::SessionReuse));
        assert_eq!((some.users_needed(), some.unknown_user_samples), (4, 9));
        let bad: BTreeMap<String, toml::Value> = toml::from_str("session_reuse = 1").expect("toml");
        assert_eq!(Probes::try_from(bad).unwrap_err(), "probes.session_reuse must be true or false");
        let unknown: BTreeMap<String, toml::Value> = toml::from_str("sesion_reuse = true").expect("toml");
        assert!(Probes::try_from(unknown).unwrap_err().starts_with("unknown field `sesion_reuse`, expected one of"));
    }

    #[test]
    fn every_probe_has_one_row_and_every_check_one_owner() {
        for (i, row) in CATALOGUE.iter().enumerate() {
            assert_eq!(row.probe.row().flag, row.flag);
            assert!(CATALOGUE[i + 1..].iter().all(|r| r.probe != row.probe && r.flag != row.flag));
            for check in row.checks {
                let owners = CATALOGUE.iter().filter(|r| r.checks.contains(check)).count();
                assert_eq!(owners, 1, "{check:?}");
            }
        }
    }
}
